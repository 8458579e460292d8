//! Key names (`docs/hub-redis-layout.md`). Gateway keys share the tag `{gw:<gw>}`, device keys
//! the tag `{dev:<bucket>}`: what one script touches is always in one Redis Cluster slot.

use super::BUCKETS;
use outpost_proto::{Class, EventId};

/// Builds key names under one prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    p: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            p: prefix.to_string(),
        }
    }

    /// History of one (gateway, class): sorted set, members `<padded id> <json>`, scores 0.
    pub fn history(&self, gw: &str, class: Class) -> String {
        format!("{}:{{gw:{gw}}}:ev:{}", self.p, class.as_str())
    }

    /// Retention marks of one (gateway, class).
    pub fn marks(&self, gw: &str, class: Class) -> String {
        format!("{}:{{gw:{gw}}}:marks:{}", self.p, class.as_str())
    }

    /// The history script's answer for one batch (its first and last padded ids, its size),
    /// kept briefly so a call made again after a lost reply answers as the first did.
    pub fn applied(&self, gw: &str, class: Class, first: &str, last: &str, n: usize) -> String {
        format!(
            "{}:{{gw:{gw}}}:applied:{}:{first}:{last}:{n}",
            self.p,
            class.as_str()
        )
    }

    /// A gateway's meta hash: liveness, last batch, counters, dedup floor and top.
    pub fn gw_meta(&self, gw: &str) -> String {
        format!("{}:{{gw:{gw}}}:meta", self.p)
    }

    /// Every gateway ever seen.
    pub fn gateways(&self) -> String {
        format!("{}:gateways", self.p)
    }

    /// Devices of one bucket.
    pub fn devices(&self, bucket: u32) -> String {
        format!("{}:{{dev:{bucket}}}:devices", self.p)
    }

    /// Geo index of one bucket's latest positions.
    pub fn geo(&self, bucket: u32) -> String {
        format!("{}:{{dev:{bucket}}}:geo", self.p)
    }

    /// A device's latest state hash.
    pub fn dev(&self, bucket: u32, dev: &str) -> String {
        format!("{}:{{dev:{bucket}}}:dev:{dev}", self.p)
    }

    /// A device's track: location event JSON scored by `ts` (ms).
    pub fn track(&self, bucket: u32, dev: &str) -> String {
        format!("{}:{{dev:{bucket}}}:track:{dev}", self.p)
    }

    /// A message to a device (SPEC §8): hash of its fields and state.
    pub fn msg(&self, gw: &str, id: &str) -> String {
        format!("{}:{{gw:{gw}}}:msg:{id}", self.p)
    }

    /// A message's receipt history: list of `{"state","ts","reason","dev"}`.
    pub fn msg_history(&self, gw: &str, id: &str) -> String {
        format!("{}:{{gw:{gw}}}:msg:{id}:history", self.p)
    }

    /// Messages of a gateway it has not confirmed yet (no receipt): offered again when it
    /// comes online.
    pub fn msg_pending(&self, gw: &str) -> String {
        format!("{}:{{gw:{gw}}}:msgs:pending", self.p)
    }

    /// msg_id → gateway, for `GET /api/v1/messages/{msg_id}`.
    pub fn msg_index(&self) -> String {
        format!("{}:msgs", self.p)
    }

    /// Pub/sub channel of newly stored events.
    pub fn stream_channel(&self) -> String {
        format!("{}:stream", self.p)
    }
}

/// An id as fixed-width decimal, `%020u-%020u`, so lexicographic order is id order.
pub fn pad(id: EventId) -> String {
    let mut s = String::with_capacity(PADDED_LEN);
    pad_into(&mut s, id);
    s
}

/// Length of a padded id.
pub const PADDED_LEN: usize = 41;

/// [`pad`] appended to `out`.
pub fn pad_into(out: &mut String, id: EventId) {
    use std::fmt::Write;
    let _ = write!(out, "{:020}-{:020}", id.ms, id.seq);
}

/// `<padded id> <rest>` appended to `out`: a history member (`rest` the event JSON) or a track
/// point (`rest` the gateway).
pub fn member_into(out: &mut String, id: EventId, rest: &str) {
    pad_into(out, id);
    out.push(' ');
    out.push_str(rest);
}

/// The id of a padded id or a history member (`<padded id> <json>`).
pub fn unpad(s: &str) -> Option<EventId> {
    let id = s.split(' ').next()?;
    let (ms, seq) = id.split_once('-')?;
    Some(EventId {
        ms: ms.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// The bucket of a device: FNV-1a of its id, modulo [`BUCKETS`].
pub fn bucket(dev: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in dev.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h % BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_ids_sort_as_ids() {
        let a = pad(EventId { ms: 9, seq: 5 });
        let b = pad(EventId { ms: 10, seq: 0 });
        assert!(a < b);
        assert_eq!(a.len(), PADDED_LEN);
        assert_eq!(
            pad(EventId {
                ms: u64::MAX,
                seq: u64::MAX
            })
            .len(),
            PADDED_LEN
        );
        assert_eq!(
            unpad(&format!("{b} {{\"x\":1}}")),
            Some(EventId { ms: 10, seq: 0 })
        );
    }

    #[test]
    fn one_gateway_one_slot() {
        let k = Keys::new("hub");
        let tag = |s: &str| s[s.find('{').unwrap()..=s.find('}').unwrap()].to_string();
        assert_eq!(tag(&k.history("g1", Class::Alert)), tag(&k.gw_meta("g1")));
        assert_eq!(tag(&k.marks("g1", Class::Location)), "{gw:g1}");
        assert_eq!(tag(&k.dev(3, "r7")), tag(&k.geo(3)));
        assert!(bucket("r7") < BUCKETS);
    }
}
