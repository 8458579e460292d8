//! Batch payloads (SPEC §5), sans-I/O: stored event JSON in, one class per batch, with `id`
//! and `replay` spliced in front of each stored object (no re-serialisation on the hot path).

use crate::event::Class;
use crate::store::{parse_id, OutboxEntry};

/// `{"gw":…,"class":…,"events":[{"id":…,"replay":…,<stored fields>}…]}`.
/// `replay_upto`: entries at or below this id waited in the outbox rather than going out live.
pub fn payload(
    gw: &str,
    class: Class,
    entries: &[OutboxEntry],
    replay_upto: (u64, u64),
) -> Vec<u8> {
    let size: usize = entries.iter().map(|e| e.json.len() + 48).sum();
    let mut out = String::with_capacity(size + 64);
    out.push_str("{\"gw\":");
    out.push_str(&serde_json::to_string(gw).unwrap_or_default());
    out.push_str(",\"class\":\"");
    out.push_str(class.as_str());
    out.push_str("\",\"events\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let replay = parse_id(&e.id).is_some_and(|id| id <= replay_upto);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_id_and_replay() {
        let e = |id: &str| OutboxEntry {
            id: id.into(),
            json: r#"{"dev":"a","class":"alert","reason":"emergency"}"#.into(),
        };
        let p = payload("veh-1", Class::Alert, &[e("5-0"), e("7-1")], (5, 0));
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["gw"], "veh-1");
        assert_eq!(v["class"], "alert");
        assert_eq!(v["events"][0]["id"], "5-0");
        assert_eq!(v["events"][0]["replay"], true);
        assert_eq!(v["events"][1]["replay"], false);
        assert_eq!(v["events"][1]["reason"], "emergency");
    }
}
