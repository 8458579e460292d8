//! Batch payloads (SPEC §5): `{"gw":…,"class":…,"events":[{"id":…,"replay":…,…}…]}`.
//!
//! The gateway builds them from stored event JSON with `id` and `replay` spliced in front of
//! each stored object (no re-serialisation on the hot path); the hub parses and checks them
//! ([`parse`]) before anything is stored.

use crate::event::Class;
use crate::fields::{self, Head, Members};
use crate::id::EventId;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One stored event: its stream id and its JSON object (without `id`/`replay`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub json: String,
}

/// Builds a batch payload. `replay_upto`: entries at or below this id waited in the outbox
/// rather than going out live.
pub fn payload(gw: &str, class: Class, entries: &[Entry], replay_upto: (u64, u64)) -> Vec<u8> {
    let size: usize = entries.iter().map(|e| e.json.len() + 48).sum();
    let mut out = String::with_capacity(size + 64);
    out.push_str("{\"gw\":");
    out.push_str(&serde_json::to_string(gw).unwrap_or_default());
    out.push_str(",\"class\":\"");
    out.push_str(class.as_str());
    out.push_str("\",\"events\":[");
    let upto = EventId {
        ms: replay_upto.0,
        seq: replay_upto.1,
    };
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let replay = EventId::parse(&e.id).is_some_and(|id| id <= upto);
        out.push_str("{\"id\":\"");
        out.push_str(&e.id);
        out.push_str("\",\"replay\":");
        out.push_str(if replay { "true" } else { "false" });
        // Stored JSON is an object `{…}` written by us; splice its fields after ours.
        match e.json.strip_prefix('{') {
            Some(rest) if rest != "}" => {
                out.push(',');
                out.push_str(rest);
            }
            _ => out.push('}'),
        }
    }
    out.push_str("]}");
    out.into_bytes()
}

/// Why a batch is refused: each a drop reason the hub counts (SPEC §7 "bad input").
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    #[error("payload of {0} bytes is over the limit")]
    Oversize(usize),
    #[error("payload is not UTF-8")]
    NotUtf8,
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload is not a batch object: {0}")]
    NotBatch(&'static str),
    #[error("gw {payload:?} in the payload is not the topic's {topic:?}")]
    GwMismatch { topic: String, payload: String },
    #[error("class {payload:?} in the payload is not the topic's {topic:?}")]
    ClassMismatch { topic: String, payload: String },
    #[error("event {0}: {1}")]
    BadEvent(usize, &'static str),
    #[error("event {0}: id {1} is not above the one before it")]
    IdsNotIncreasing(usize, String),
}

impl BatchError {
    /// The drop reason, as counted and shown in metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BatchError::Oversize(_) => "oversize",
            BatchError::NotUtf8 => "not_utf8",
            BatchError::NotJson(_) => "not_json",
            BatchError::NotBatch(_) => "not_batch",
            BatchError::GwMismatch { .. } => "gw_mismatch",
            BatchError::ClassMismatch { .. } => "class_mismatch",
            BatchError::BadEvent(..) => "bad_event",
            BatchError::IdsNotIncreasing(..) => "ids_not_increasing",
        }
    }
}

/// One event of a received batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub id: EventId,
    pub dev: String,
    /// The event object as received (with `id` and `replay`): its JSON text.
    pub json: String,
    /// The fields read of every event.
    pub head: Head,
    /// Whether the object has a `gw` member of its own.
    pub has_gw: bool,
    /// `(a, b)`: `json[..a] + json[b..]` is the object without `replay`, when its only
    /// `replay` follows a leading `id` as the gateway writes them (`{"id":"…","replay":true,…`)
    /// and the text has no line breaks.
    cut: Option<(usize, usize)>,
}

impl Received {
    /// An event made by the hub itself (TAK users), `object` with its `id`.
    pub fn from_object(id: EventId, dev: String, object: Map<String, Value>) -> Received {
        let json = Value::Object(object).to_string();
        let m = fields::members(&json).unwrap_or_default();
        let (head, has_gw) = (Head::of_members(&m), fields::get(&m, "gw").is_some());
        let cut = replay_cut(&json, &m, &id.to_string());
        Received {
            id,
            dev,
            head,
            has_gw,
            cut,
            json,
        }
    }

    /// The object without `replay`, cut out of the text as received, when it is where the
    /// gateway writes it; `None` otherwise (the caller edits [`Received::object`]).
    pub fn without_replay(&self) -> Option<String> {
        let (a, b) = self.cut?;
        let mut s = String::with_capacity(self.json.len());
        s.push_str(&self.json[..a]);
        s.push_str(&self.json[b..]);
        Some(s)
    }

    /// The whole object, read again from its text (for what needs more than [`Head`]).
    pub fn object(&self) -> Map<String, Value> {
        match serde_json::from_str(&self.json) {
            Ok(Value::Object(o)) => o,
            _ => Map::new(),
        }
    }
}

/// Where the `replay` member of `json` is, for [`Received::without_replay`].
fn replay_cut(json: &str, m: &Members<'_>, id: &str) -> Option<(usize, usize)> {
    if m.iter().filter(|(k, _)| k == "replay").count() != 1 || json.contains(['\n', '\r']) {
        return None;
    }
    const OPEN: &str = "{\"id\":\"";
    let rest = json
        .strip_prefix(OPEN)?
        .strip_prefix(id)?
        .strip_prefix('"')?;
    let a = json.len() - rest.len();
    let rest = rest.strip_prefix(",\"replay\":")?;
    let after = rest
        .strip_prefix("true")
        .or_else(|| rest.strip_prefix("false"))?;
    (after.starts_with(',') || after.starts_with('}')).then_some((a, json.len() - after.len()))
}

/// A received batch that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub gw: String,
    pub class: Class,
    pub events: Vec<Received>,
}

/// Parses and checks a batch that arrived on `<prefix>/<topic_gw>/up/<topic_class>`:
/// at most `max_bytes`, UTF-8 JSON, `gw` and `class` agreeing with the topic, every event an
/// object with a valid `id` (strictly increasing), a `dev` and the batch's `class`. Each
/// event is kept as its text with the fields the hub reads ([`fields`]), not as a value tree.
pub fn parse(
    topic_gw: &str,
    topic_class: &str,
    bytes: &[u8],
    max_bytes: usize,
) -> Result<Parsed, BatchError> {
    if bytes.len() > max_bytes {
        return Err(BatchError::Oversize(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| BatchError::NotUtf8)?;
    let Some(top) = fields::members(text) else {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => BatchError::NotBatch("not an object"),
            Err(e) => BatchError::NotJson(e.to_string()),
        });
    };
    let text_of = |k: &str| fields::get(&top, k).and_then(fields::str_of);
    let Some(gw) = text_of("gw") else {
        return Err(BatchError::NotBatch("no \"gw\" string"));
    };
    if gw != topic_gw {
        return Err(BatchError::GwMismatch {
            topic: topic_gw.into(),
            payload: gw.into_owned(),
        });
    }
    let Some(class_name) = text_of("class") else {
        return Err(BatchError::NotBatch("no \"class\" string"));
    };
    if class_name != topic_class {
        return Err(BatchError::ClassMismatch {
            topic: topic_class.into(),
            payload: class_name.into_owned(),
        });
    }
    let class = Class::parse(&class_name).ok_or(BatchError::NotBatch("unknown class"))?;
    let list: Vec<&RawValue> = fields::get(&top, "events")
        .and_then(|v| serde_json::from_str(v.get()).ok())
        .ok_or(BatchError::NotBatch("no \"events\" array"))?;
    let mut events = Vec::with_capacity(list.len());
    let mut last: Option<EventId> = None;
    for (i, raw) in list.into_iter().enumerate() {
        let json = raw.get();
        let Some(m) = fields::members(json) else {
            return Err(BatchError::BadEvent(i, "not an object"));
        };
        let Some(id_text) = fields::get(&m, "id").and_then(fields::str_of) else {
            return Err(BatchError::BadEvent(i, "no id"));
        };
        let id = EventId::parse(&id_text).ok_or(BatchError::BadEvent(i, "bad id"))?;
        if last.is_some_and(|l| id <= l) {
            return Err(BatchError::IdsNotIncreasing(i, id.to_string()));
        }
        last = Some(id);
        let dev = match fields::get(&m, "dev").and_then(fields::str_of) {
            Some(s) if !s.is_empty() => s.into_owned(),
            _ => return Err(BatchError::BadEvent(i, "no dev")),
        };
        if fields::get(&m, "class").and_then(fields::str_of).as_deref() != Some(class.as_str()) {
            return Err(BatchError::BadEvent(i, "class differs from the batch's"));
        }
        events.push(Received {
            id,
            dev,
            head: Head::of_members(&m),
            has_gw: fields::get(&m, "gw").is_some(),
            cut: replay_cut(json, &m, &id_text),
            json: json.to_string(),
        });
    }
    if events.is_empty() {
        return Err(BatchError::NotBatch("no events"));
    }
    Ok(Parsed {
        gw: gw.into_owned(),
        class,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> Entry {
        Entry {
            id: id.into(),
            json: r#"{"dev":"a","class":"alert","reason":"emergency"}"#.into(),
        }
    }

    #[test]
    fn splices_id_and_replay() {
        let p = payload("veh-1", Class::Alert, &[entry("5-0"), entry("7-1")], (5, 0));
        let v: Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["gw"], "veh-1");
        assert_eq!(v["class"], "alert");
        assert_eq!(v["events"][0]["id"], "5-0");
        assert_eq!(v["events"][0]["replay"], true);
        assert_eq!(v["events"][1]["replay"], false);
        assert_eq!(v["events"][1]["reason"], "emergency");
    }

    #[test]
    fn what_the_gateway_builds_the_hub_parses() {
        let p = payload(
            "veh-1",
            Class::Alert,
            &[entry("5-0"), entry("10-0")],
            (0, 0),
        );
        let b = parse("veh-1", "alert", &p, 1 << 20).unwrap();
        assert_eq!(b.class, Class::Alert);
        assert_eq!(b.events.len(), 2);
        assert_eq!(b.events[1].id, EventId { ms: 10, seq: 0 });
        assert_eq!(b.events[1].dev, "a");
    }

    #[test]
    fn every_bad_kind_has_its_reason() {
        let ok = payload("g", Class::Alert, &[entry("1-0")], (0, 0));
        let reason = |gw: &str, class: &str, bytes: &[u8]| {
            parse(gw, class, bytes, 4096).unwrap_err().reason()
        };
        assert_eq!(reason("g", "alert", &vec![b' '; 5000]), "oversize");
        assert_eq!(reason("g", "alert", b"{\"gw\":\"\xff\"}"), "not_utf8");
        assert_eq!(reason("g", "alert", b"{nope"), "not_json");
        assert_eq!(reason("g", "alert", b"[1]"), "not_batch");
        assert_eq!(reason("h", "alert", &ok), "gw_mismatch");
        assert_eq!(reason("g", "status", &ok), "class_mismatch");
        let twice = payload("g", Class::Alert, &[entry("2-0"), entry("2-0")], (0, 0));
        assert_eq!(reason("g", "alert", &twice), "ids_not_increasing");
        let down = payload("g", Class::Alert, &[entry("3-0"), entry("2-9")], (0, 0));
        assert_eq!(reason("g", "alert", &down), "ids_not_increasing");
        let badid =
            br#"{"gw":"g","class":"alert","events":[{"id":"x","dev":"a","class":"alert"}]}"#;
        assert_eq!(reason("g", "alert", badid), "bad_event");
        let wrong =
            br#"{"gw":"g","class":"alert","events":[{"id":"1-0","dev":"a","class":"status"}]}"#;
        assert_eq!(reason("g", "alert", wrong), "bad_event");
    }
}
