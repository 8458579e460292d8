//! Event ids: the gateway's Redis stream entry ids, `"<ms>-<seq>"`, unique and strictly
//! increasing per (gateway, class) and stable across restarts (SPEC §5). They compare
//! numerically as `(ms, seq)`, never as strings (`"9-0"` < `"10-0"`).

use std::fmt;

/// A parsed event id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence within the millisecond.
    pub seq: u64,
}

impl EventId {
    /// The id before every other (`"0-0"`; Redis never issues it).
    pub const ZERO: EventId = EventId { ms: 0, seq: 0 };

    /// Parses `"<ms>-<seq>"` (decimal digits only); `None` for anything else.
    pub fn parse(id: &str) -> Option<EventId> {
        // One pass over the bytes: this runs twice per event on the drain path.
        let b = id.as_bytes();
        let dash = b.iter().position(|&c| c == b'-')?;
        Some(EventId {
            ms: decimal(&b[..dash])?,
            seq: decimal(&b[dash + 1..])?,
        })
    }

    /// The smallest id greater than this one (exclusive ranges without Redis 6.2's `(`).
    pub fn next(self) -> EventId {
        if self.seq == u64::MAX {
            EventId {
                ms: self.ms + 1,
                seq: 0,
            }
        } else {
            EventId {
                ms: self.ms,
                seq: self.seq + 1,
            }
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// ASCII digits only (1 to 20 of them) as a `u64`; `None` on anything else or overflow.
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.iter().try_fold(0u64, |v, &c| {
        c.is_ascii_digit()
            .then(|| v.checked_mul(10)?.checked_add(u64::from(c - b'0')))
            .flatten()
    })
}

/// `"ms-seq"` → `(ms, seq)`.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    EventId::parse(id).map(|e| (e.ms, e.seq))
}

/// The smallest stream id greater than `id`; `"0-1"` when `id` does not parse.
pub fn next_id(id: &str) -> String {
    EventId::parse(id)
        .unwrap_or(EventId::ZERO)
        .next()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_numerically_not_as_strings() {
        let a = EventId::parse("9-0").unwrap();
        let b = EventId::parse("10-0").unwrap();
        assert!(a < b);
        assert!(EventId::parse("10-2").unwrap() > EventId::parse("10-1").unwrap());
    }

    #[test]
    fn rejects_what_is_not_an_id() {
        for s in [
            "",
            "-",
            "1-",
            "-1",
            "a-1",
            "1-1-1",
            "+1-0",
            " 1-0",
            "1.5-0",
            "123456789012345678901-0",
        ] {
            assert_eq!(EventId::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn next_is_the_least_greater_id() {
        assert_eq!(next_id("5-3"), "5-4");
        assert_eq!(next_id(&format!("5-{}", u64::MAX)), "6-0");
        assert_eq!(next_id("junk"), "0-1");
    }
}
