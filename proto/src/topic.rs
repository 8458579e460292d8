//! Uplink topics (SPEC §5): `<topic_prefix>/<gateway id>/…`
//!
//! | topic | what |
//! |---|---|
//! | `…/up/<class>` | batches of one class, QoS 1 |
//! | `…/state` | retained liveness, also the last will |
//! | `…/snapshot` | retained latest state of every device, before history |
//! | `…/down` | messages for devices (SPEC §8) |

use crate::event::Class;

/// True for a valid gateway id: `[A-Za-z0-9._-]{1,64}` (SPEC §3). Such an id is one topic
/// level and one Redis hash tag, with no wildcard or `{}` in it.
pub fn valid_gateway_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// What a topic under the prefix is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A batch topic; `class` is `None` for a class name this build does not know.
    Up(Option<Class>),
    State,
    Snapshot,
    Down,
}

/// A topic under the prefix, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub gw: &'a str,
    pub kind: Kind,
}

/// The topics of one prefix (`outpost/v1`, no trailing slash).
#[derive(Clone, Debug)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// `prefix` as configured; a trailing `/` is ignored.
    pub fn new(prefix: &str) -> Self {
        Topics {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// The prefix, without a trailing slash.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>/<gw>/up/<class>`.
    pub fn up(&self, gw: &str, class: Class) -> String {
        format!("{}/{gw}/up/{}", self.prefix, class.as_str())
    }

    /// `<prefix>/<gw>/state`.
    pub fn state(&self, gw: &str) -> String {
        format!("{}/{gw}/state", self.prefix)
    }

    /// `<prefix>/<gw>/snapshot`.
    pub fn snapshot(&self, gw: &str) -> String {
        format!("{}/{gw}/snapshot", self.prefix)
    }

    /// `<prefix>/<gw>/down`.
    pub fn down(&self, gw: &str) -> String {
        format!("{}/{gw}/down", self.prefix)
    }

    /// The filters a hub subscribes to: every gateway's batches, state and snapshot.
    pub fn hub_filters(&self) -> [String; 3] {
        [
            format!("{}/+/up/+", self.prefix),
            format!("{}/+/state", self.prefix),
            format!("{}/+/snapshot", self.prefix),
        ]
    }

    /// Splits a topic under this prefix; `None` for anything else (another prefix, a level
    /// too many, an invalid gateway id).
    pub fn parse<'a>(&self, topic: &'a str) -> Option<Parsed<'a>> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?;
        let (gw, tail) = rest.split_once('/')?;
        if !valid_gateway_id(gw) {
            return None;
        }
        let kind = match tail {
            "state" => Kind::State,
            "snapshot" => Kind::Snapshot,
            "down" => Kind::Down,
            _ => {
                let class = tail.strip_prefix("up/")?;
                if class.is_empty() || class.contains('/') {
                    return None;
                }
                Kind::Up(Class::parse(class))
            }
        };
        Some(Parsed { gw, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_every_topic() {
        let t = Topics::new("outpost/v1/");
        assert_eq!(t.up("veh-1", Class::Alert), "outpost/v1/veh-1/up/alert");
        let p = t.parse("outpost/v1/veh-1/up/alert").unwrap();
        assert_eq!((p.gw, p.kind), ("veh-1", Kind::Up(Some(Class::Alert))));
        assert_eq!(t.parse(&t.state("g")).unwrap().kind, Kind::State);
        assert_eq!(t.parse(&t.snapshot("g")).unwrap().kind, Kind::Snapshot);
        assert_eq!(t.parse(&t.down("g")).unwrap().kind, Kind::Down);
        assert_eq!(
            t.parse("outpost/v1/g/up/weather").unwrap().kind,
            Kind::Up(None)
        );
    }

    #[test]
    fn refuses_topics_outside_the_protocol() {
        let t = Topics::new("outpost/v1");
        for bad in [
            "outpost/v2/g/up/alert",
            "outpost/v1/g/up/alert/x",
            "outpost/v1/g/up/",
            "outpost/v1/g/other",
            "outpost/v1/{g}/up/alert",
            "outpost/v1g/up/alert",
        ] {
            assert_eq!(t.parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn gateway_ids() {
        assert!(valid_gateway_id("veh-0042"));
        assert!(!valid_gateway_id(""));
        assert!(!valid_gateway_id(&"a".repeat(65)));
        assert!(!valid_gateway_id("a/b"));
        assert!(!valid_gateway_id("a+"));
    }
}
