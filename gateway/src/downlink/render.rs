//! What goes on the wire for each MQTT downlink kind (sans-I/O): topic and payload of one
//! message, or the reason it cannot be sent.

use super::deliver::Job;
use crate::config::profile::downlink::{fill, parse_node, parse_node_str, MESHTASTIC_MAX_BYTES};
use crate::config::profile::{DownlinkKind, RawDownlink};
use outpost_proto::down::Kind;

/// One MQTT publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Wire {
    pub topic: String,
    pub payload: String,
}

/// Topic and payload of `job` by its profile's `[downlink]`; `Err(reason)` when it cannot go.
pub fn render(job: &Job, d: &RawDownlink) -> Result<Wire, String> {
    match *d.kind.get_ref() {
        DownlinkKind::Meshtastic => meshtastic(job, d),
        DownlinkKind::Json => {
            let t = |s: &Option<toml::Spanned<String>>| s.as_ref().map(|t| t.get_ref().clone());
            let (Some(topic), Some(payload)) = (t(&d.topic), t(&d.payload)) else {
                return Err("no_template".into());
            };
            if job.kind != Kind::Text {
                return Err("no_locate_downlink".into());
            }
            Ok(Wire {
                topic: fill(&topic, &job.dev, &job.msg_id, &job.text),
                payload: fill(&payload, &job.dev, &job.msg_id, &job.text),
            })
        }
        DownlinkKind::Owntracks => owntracks(job),
        // Not device-broker kinds (their transports do not render through here).
        DownlinkKind::MeshtasticSerial | DownlinkKind::Tak => Err("no_downlink".into()),
    }
}

/// SPEC §8: `{"from":<gateway node>,"to":<node of dev>,"type":"sendtext","payload":"…"}`.
fn meshtastic(job: &Job, d: &RawDownlink) -> Result<Wire, String> {
    if job.kind != Kind::Text {
        return Err("no_locate_downlink".into());
    }
    if job.text.len() > MESHTASTIC_MAX_BYTES {
        return Err("too_long".into());
    }
    let to = parse_node_str(&job.dev).ok_or("not_a_node")?;
    // The gateway node: configured, else the radio that relayed the device's latest report.
    let from = match &d.from {
        Some(f) => parse_node(f.get_ref()),
        None => job.topic.rsplit('/').next().and_then(parse_node_str),
    }
    .ok_or("no_gateway_node")?;
    let topic = match &d.topic {
        Some(t) => t.get_ref().clone(),
        None => default_mesh_topic(&job.topic).ok_or("no_topic")?,
    };
    let text = serde_json::to_string(&job.text).expect("string serialises");
    Ok(Wire {
        topic,
        payload: format!(r#"{{"from":{from},"to":{to},"type":"sendtext","payload":{text}}}"#),
    })
}

/// `<root>/2/json/mqtt/` for a report on `<root>/2/json/<channel>/<node>`: the gateway node
/// listens for JSON downlink there (Meshtastic MQTT docs, "JSON downlink").
fn default_mesh_topic(report: &str) -> Option<String> {
    let (root, _) = report.split_once("/2/json/")?;
    Some(format!("{root}/2/json/mqtt/"))
}

/// True for a topic the gateway itself publishes Meshtastic downlink to (`…/2/json/mqtt/`, or the
/// profile's pinned `topic`): ingest subscribes `msh/+/2/json/#` and must not read its own
/// `sendtext` back as a report.
pub fn is_own_downlink(d: &RawDownlink, topic: &str) -> bool {
    *d.kind.get_ref() == DownlinkKind::Meshtastic
        && (d.topic.as_ref().is_some_and(|t| t.get_ref() == topic)
            || topic.contains("/2/json/mqtt/")
            || topic.ends_with("/2/json/mqtt"))
}

/// `owntracks/<user>/<device>/cmd` with `reportLocation` (the apps have no text downlink).
fn owntracks(job: &Job) -> Result<Wire, String> {
    if job.kind != Kind::Locate {
        return Err("no_text_downlink".into());
    }
    let levels: Vec<&str> = job.topic.split('/').collect();
    if levels.len() < 3 {
        return Err("no_device_topic".into());
    }
    Ok(Wire {
        topic: format!("{}/{}/{}/cmd", levels[0], levels[1], levels[2]),
        payload: r#"{"_type":"cmd","action":"reportLocation"}"#.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Profile;
    use std::path::Path;
    use std::sync::Arc;

    fn job(profile: &str, dev: &str, text: &str, kind: Kind, topic: &str) -> (Job, RawDownlink) {
        let p = Profile::parse(Path::new("p.toml"), profile).unwrap();
        let d = p.downlink().unwrap().clone();
        let j = Job {
            msg_id: "m-1".into(),
            dev: dev.into(),
            text: text.into(),
            kind,
            profile: Arc::new(p),
            topic: topic.into(),
        };
        (j, d)
    }

    const MESH: &str = "name = \"p\"\ndescription = \"d\"\nversion = 1\ndecoder = \"meshtastic\"\n[mqtt]\ntopic = \"msh/+/2/json/#\"\n[downlink]\ntype = \"meshtastic\"\ntopic = \"msh/US/2/json/mqtt/\"\n";

    #[test]
    fn meshtastic_sendtext_from_the_relaying_node() {
        let (j, d) = job(
            MESH,
            "!0000002a",
            "Evacuate \"4\"",
            Kind::Text,
            "msh/US/2/json/LongFast/!a1b2c3d4",
        );
        let w = render(&j, &d).unwrap();
        assert_eq!(w.topic, "msh/US/2/json/mqtt/");
        assert_eq!(
            w.payload,
            r#"{"from":2712847316,"to":42,"type":"sendtext","payload":"Evacuate \"4\""}"#
        );
        let (j, d) = job(
            MESH,
            "!0000002a",
            &"x".repeat(234),
            Kind::Text,
            "a/!a1b2c3d4",
        );
        assert_eq!(render(&j, &d).unwrap_err(), "too_long");
        let unpinned = MESH.replace("topic = \"msh/US/2/json/mqtt/\"\n", "");
        let (j, d) = job(
            &unpinned,
            "!0000002a",
            "hi",
            Kind::Text,
            "msh/EU/2/json/LongFast/!a1b2c3d4",
        );
        assert_eq!(render(&j, &d).unwrap().topic, "msh/EU/2/json/mqtt/");
    }

    #[test]
    fn owntracks_locate_goes_to_the_cmd_topic() {
        let p = "name = \"p\"\ndescription = \"d\"\nversion = 1\ndecoder = \"owntracks\"\n[mqtt]\ntopic = \"owntracks/+/+\"\ndevice_id = \"{1}-{2}\"\n[downlink]\ntype = \"owntracks\"\n";
        let (j, d) = job(p, "anna-phone", "", Kind::Locate, "owntracks/anna/phone");
        let w = render(&j, &d).unwrap();
        assert_eq!(w.topic, "owntracks/anna/phone/cmd");
        assert_eq!(w.payload, r#"{"_type":"cmd","action":"reportLocation"}"#);
    }
}
