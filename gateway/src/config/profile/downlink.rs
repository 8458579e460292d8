//! `[downlink]` of a profile (SPEC §8): how a message reaches a device of this kind. Schema in
//! `docs/device-profiles.md`; what serde cannot check is checked by [`validate`], each problem
//! at its key.

use super::DecoderKind;
use crate::config::diag::Problems;
use crate::ingest::topic::validate_filter;
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

/// The Meshtastic JSON downlink's text limit (the firmware's `DATA_PAYLOAD_LEN` for text).
pub const MESHTASTIC_MAX_BYTES: usize = 233;

/// How messages go out; each kind fits one decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DownlinkKind {
    /// Meshtastic MQTT JSON `sendtext` through the gateway node.
    Meshtastic,
    /// Topic and payload templates; optional acknowledgement by JSON Pointer.
    Json,
    /// OwnTracks `reportLocation` command (no text downlink).
    Owntracks,
    /// A `ToRadio` text with `want_ack` through the Meshtastic radio on USB that heard the node.
    MeshtasticSerial,
    /// GeoChat to a TAK contact through the `[[tak]]` outputs (SPEC §10).
    Tak,
}

impl DownlinkKind {
    /// The name profiles use.
    pub fn name(self) -> &'static str {
        match self {
            DownlinkKind::Meshtastic => "meshtastic",
            DownlinkKind::Json => "json",
            DownlinkKind::Owntracks => "owntracks",
            DownlinkKind::MeshtasticSerial => "meshtastic-serial",
            DownlinkKind::Tak => "tak",
        }
    }

    /// True when a text over [`MESHTASTIC_MAX_BYTES`] can never go out this way.
    pub fn meshtastic_limit(self) -> bool {
        matches!(
            self,
            DownlinkKind::Meshtastic | DownlinkKind::MeshtasticSerial
        )
    }

    /// True when this kind carries text (a `to = "*"` message fans out to these devices).
    pub fn carries_text(self) -> bool {
        !matches!(self, DownlinkKind::Owntracks)
    }

    /// The decoder a profile with this downlink must have.
    fn decoder(self) -> DecoderKind {
        match self {
            DownlinkKind::Meshtastic => DecoderKind::Meshtastic,
            DownlinkKind::Json => DecoderKind::Json,
            DownlinkKind::Owntracks => DecoderKind::Owntracks,
            DownlinkKind::MeshtasticSerial => DecoderKind::MeshtasticSerial,
            DownlinkKind::Tak => DecoderKind::Cot,
        }
    }
}

/// `[downlink]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDownlink {
    #[serde(rename = "type")]
    pub kind: Spanned<DownlinkKind>,
    /// meshtastic: the topic `sendtext` goes to (default: `<root>/2/json/mqtt/`, the root
    /// taken from the device's latest report); json: topic template.
    pub topic: Option<Spanned<String>>,
    /// meshtastic: the gateway node (`"!a1b2c3d4"` or a number); default: the node that
    /// relayed the device's latest report (last level of its topic).
    pub from: Option<Spanned<toml::Value>>,
    /// json: payload template.
    pub payload: Option<Spanned<String>>,
    /// json: topic filter the devices publish acknowledgements on.
    pub ack_topic: Option<Spanned<String>>,
    /// json: JSON Pointer (RFC 6901) of the `msg_id` in an acknowledgement.
    pub ack_pointer: Option<Spanned<String>>,
}

/// Parses a Meshtastic node number: `"!a1b2c3d4"`, a decimal string or an integer.
pub fn parse_node(v: &toml::Value) -> Option<u32> {
    match v {
        toml::Value::Integer(n) => u32::try_from(*n).ok(),
        toml::Value::String(s) => parse_node_str(s),
        _ => None,
    }
}

/// `"!a1b2c3d4"` (as Meshtastic names nodes) or a decimal number.
pub fn parse_node_str(s: &str) -> Option<u32> {
    match s.strip_prefix('!') {
        Some(hex) if hex.len() == 8 => u32::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None => s.parse().ok(),
    }
}

/// The placeholders a json template may use.
pub const PLACEHOLDERS: [&str; 3] = ["dev", "msg_id", "text"];

/// Fills `{dev}`, `{msg_id}`, `{text}` (each JSON-string-escaped, without quotes).
pub fn fill(template: &str, dev: &str, msg_id: &str, text: &str) -> String {
    let esc = |s: &str| {
        let q = serde_json::to_string(s).expect("string serialises");
        q[1..q.len() - 1].to_string()
    };
    template
        .replace("{dev}", &esc(dev))
        .replace("{msg_id}", &esc(msg_id))
        .replace("{text}", &esc(text))
}

/// Placeholders in `t` that are not in [`PLACEHOLDERS`].
fn unknown_placeholders(t: &str) -> Vec<String> {
    t.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .filter(|n| !PLACEHOLDERS.contains(n))
        .map(str::to_string)
        .collect()
}

/// Checks `[downlink]` against the profile's decoder; `at` finds a key's span.
pub fn validate(
    d: &RawDownlink,
    decoder: DecoderKind,
    at: &dyn Fn(&str) -> Option<Range<usize>>,
    p: &mut Problems,
) {
    let kind = *d.kind.get_ref();
    if kind.decoder() != decoder {
        p.push(
            Some(d.kind.span()),
            format!(
                "downlink.type: {:?} needs decoder {:?}, this profile's is {:?}",
                kind.name(),
                kind.decoder().name(),
                decoder.name()
            ),
        );
        return;
    }
    let allowed: &[&str] = match kind {
        DownlinkKind::Meshtastic => &["topic", "from"],
        DownlinkKind::Json => &["topic", "payload", "ack_topic", "ack_pointer"],
        // The radio and the TAK link need no settings of their own.
        DownlinkKind::Owntracks | DownlinkKind::MeshtasticSerial | DownlinkKind::Tak => &[],
    };
    let present = [
        ("topic", d.topic.is_some()),
        ("from", d.from.is_some()),
        ("payload", d.payload.is_some()),
        ("ack_topic", d.ack_topic.is_some()),
        ("ack_pointer", d.ack_pointer.is_some()),
    ];
    for (key, set) in present {
        if set && !allowed.contains(&key) {
            p.push(
                at(&format!("downlink.{key}")),
                format!(
                    "downlink.{key}: not used by downlink type {:?}",
                    kind.name()
                ),
            );
        }
    }
    let need = |key: &str, set: bool, p: &mut Problems| {
        if !set {
            p.push(
                Some(d.kind.span()),
                format!("downlink type {:?} needs downlink.{key}", kind.name()),
            );
        }
    };
    match kind {
        DownlinkKind::Meshtastic => {
            topic_name(d.topic.as_ref(), p);
            if let Some(f) = &d.from {
                if parse_node(f.get_ref()).is_none() {
                    p.push(
                        Some(f.span()),
                        "downlink.from: must be a node number like \"!a1b2c3d4\" or 2712847316",
                    );
                }
            }
        }
        DownlinkKind::Json => json(d, p, need),
        DownlinkKind::Owntracks | DownlinkKind::MeshtasticSerial | DownlinkKind::Tak => {}
    }
}

fn topic_name(t: Option<&Spanned<String>>, p: &mut Problems) {
    let Some(t) = t else { return };
    let s = t.get_ref();
    if s.is_empty() || s.contains(['+', '#']) || s.contains('\0') {
        p.push(
            Some(t.span()),
            "downlink.topic: must be a topic name (no wildcards), not empty",
        );
    }
}

fn json(d: &RawDownlink, p: &mut Problems, need: impl Fn(&str, bool, &mut Problems)) {
    need("topic", d.topic.is_some(), p);
    need("payload", d.payload.is_some(), p);
    topic_name(d.topic.as_ref(), p);
    for t in [&d.topic, &d.payload].into_iter().flatten() {
        for n in unknown_placeholders(t.get_ref()) {
            p.push(
                Some(t.span()),
                format!(
                    "downlink: unknown placeholder {{{n}}}; use {{dev}}, {{msg_id}} or {{text}}"
                ),
            );
        }
    }
    if let Some(pl) = &d.payload {
        let sample = fill(pl.get_ref(), "r\"1", "m-1", "a \"quoted\"\nline");
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&sample) {
            p.push(
                Some(pl.span()),
                format!(
                    "downlink.payload: not JSON once filled in ({e}); put {{text}} inside quotes"
                ),
            );
        }
    }
    match (&d.ack_topic, &d.ack_pointer) {
        (Some(t), Some(ptr)) => {
            if let Err(e) = validate_filter(t.get_ref()) {
                p.push(Some(t.span()), format!("downlink.ack_topic: {e}"));
            }
            if !ptr.get_ref().starts_with('/') {
                p.push(
                    Some(ptr.span()),
                    "downlink.ack_pointer: must be a JSON Pointer starting with \"/\"",
                );
            }
        }
        (Some(t), None) => p.push(
            Some(t.span()),
            "downlink.ack_topic: needs downlink.ack_pointer (where the msg_id is)",
        ),
        (None, Some(ptr)) => p.push(
            Some(ptr.span()),
            "downlink.ack_pointer: needs downlink.ack_topic (where acknowledgements come)",
        ),
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_escapes_json() {
        let t = r#"{"id":"{msg_id}","to":"{dev}","text":"{text}"}"#;
        let s = fill(t, "r1", "m-1", "say \"hi\"\n");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["text"], "say \"hi\"\n");
        assert_eq!(unknown_placeholders("{dev}{txt}{0}"), ["txt", "0"]);
    }

    #[test]
    fn radio_and_tak_downlinks_fit_their_decoders_and_take_no_keys() {
        let parse = |decoder: &str, body: &str, downlink: &str| {
            let src = format!("name = \"p\"\ndescription = \"d\"\nversion = 1\ndecoder = \"{decoder}\"\n{body}[downlink]\n{downlink}");
            crate::config::Profile::parse(std::path::Path::new("p.toml"), &src)
                .map(|_| ())
                .map_err(|p| p.lines())
        };
        let serial = "[serial]\nbaud = 115200\n";
        assert_eq!(
            parse(
                "meshtastic-serial",
                serial,
                "type = \"meshtastic-serial\"\n"
            ),
            Ok(())
        );
        assert_eq!(parse("cot", "", "type = \"tak\"\n"), Ok(()));
        let json = "[mqtt]\ntopic = \"r/+\"\n[json.message]\ntext = \"/t\"\n";
        assert_eq!(
            parse("json", json, "type = \"tak\"\n"),
            Err(vec![
                "p.toml:10:8: downlink.type: \"tak\" needs decoder \"cot\", this profile's is \"json\"".to_string()
            ])
        );
        assert_eq!(
            parse(
                "meshtastic-serial",
                serial,
                "type = \"meshtastic-serial\"\ntopic = \"x\"\n"
            ),
            Err(vec![
                "p.toml:9:9: downlink.topic: not used by downlink type \"meshtastic-serial\""
                    .to_string()
            ])
        );
    }

    #[test]
    fn node_numbers() {
        assert_eq!(parse_node_str("!a1b2c3d4"), Some(0xa1b2c3d4));
        assert_eq!(parse_node_str("42"), Some(42));
        assert_eq!(parse_node_str("!a1"), None);
    }
}
