//! The in-flight window, sans-I/O: which batches await PUBACK, and how far each class's
//! acknowledged cursor may advance (strictly in order, SPEC §5).

use crate::event::Class;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A published batch: its class, last entry id, size and payload bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub class: Class,
    pub last_id: String,
    pub len: usize,
    pub bytes: usize,
}

/// Most payload bytes awaiting PUBACK: what the window may hold in memory (rumqttc keeps each
/// unacknowledged publish for republication), whatever the round trip.
pub const MAX_BYTES: usize = 8 << 20;
/// Most batches awaiting PUBACK (rumqttc's in-flight slots are sized for it).
pub const MAX_BATCHES: usize = 256;

/// The window's size from the measured PUBACK round trip, between `[uplink] inflight` and the
/// memory bound. While a PUBACK comes back about as fast as the quickest seen (nothing queues
/// at the hub or on the link), one more batch is allowed per PUBACK: the window doubles per
/// round trip until the link is full. Once batches start to queue (the round trip is well
/// above the quickest), it shrinks by one per such PUBACK. A link with a long round trip thus
/// gets the window its bandwidth-delay product needs, a saturated hub no more than it drains.
#[derive(Debug, Clone)]
pub struct Sizing {
    floor: usize,
    cap: usize,
    size: usize,
    min_rtt: Option<Duration>,
}

impl Sizing {
    pub fn new(floor: usize) -> Sizing {
        let floor = floor.max(1);
        Sizing {
            floor,
            cap: MAX_BATCHES.max(floor),
            size: floor,
            min_rtt: None,
        }
    }

    /// Batches that may await PUBACK now.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A tracked batch's PUBACK came `rtt` after it was written.
    pub fn on_ack(&mut self, rtt: Duration) {
        let min = *self
            .min_rtt
            .insert(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        let slack = Duration::from_millis(2);
        if rtt <= min * 2 + slack {
            self.size = (self.size + 1).min(self.cap);
        } else if rtt > min * 4 + slack * 2 {
            self.size = (self.size - 1).max(self.floor);
        }
    }
}

/// Batches between `publish()` and PUBACK.
#[derive(Debug, Default)]
pub struct Window {
    /// Publishes handed to rumqttc, in order, waiting for their packet id
    /// (`None` = a publish we do not track: state, snapshot).
    unassigned: VecDeque<Option<Batch>>,
    /// Packet id → (class, sequence number within class).
    by_pkid: HashMap<u16, (Class, u64)>,
    /// Per class, batches in publish order: (seq, batch, acked).
    per_class: [VecDeque<(u64, Batch, bool)>; Class::COUNT],
    next_seq: u64,
    /// Packet id → when rumqttc wrote the batch, for the PUBACK latency histogram.
    written_at: HashMap<u16, Instant>,
}

impl Window {
    /// Batches not yet acknowledged.
    pub fn len(&self) -> usize {
        self.per_class.iter().map(|q| q.len()).sum()
    }

    /// Batches of `class` not yet acknowledged.
    pub fn in_flight(&self, class: Class) -> usize {
        self.per_class[class.index()].len()
    }

    /// Payload bytes not yet acknowledged.
    pub fn bytes(&self) -> usize {
        self.per_class
            .iter()
            .flat_map(|q| q.iter())
            .map(|(_, b, _)| b.bytes)
            .sum()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A batch was handed to rumqttc.
    pub fn published(&mut self, b: Batch) {
        self.next_seq += 1;
        self.per_class[b.class.index()].push_back((self.next_seq, b.clone(), false));
        self.unassigned.push_back(Some(b));
    }

    /// An untracked QoS 1 publish was handed to rumqttc (it still takes a packet id).
    pub fn published_untracked(&mut self) {
        self.unassigned.push_back(None);
    }

    /// rumqttc wrote the next publish with packet id `pkid` (same order as handed over).
    pub fn assigned(&mut self, pkid: u16, at: Instant) {
        if let Some(Some(b)) = self.unassigned.pop_front() {
            let seq = self.per_class[b.class.index()]
                .iter()
                .rev()
                .find(|(_, x, acked)| !acked && x.last_id == b.last_id)
                .map(|(s, _, _)| *s);
            if let Some(seq) = seq {
                self.by_pkid.insert(pkid, (b.class, seq));
                self.written_at.insert(pkid, at);
            }
        }
    }

    /// Time from the write of the tracked batch with packet id `pkid` to its PUBACK at `at`
    /// (call on the PUBACK, before [`Window::acked`]).
    pub fn ack_latency(&mut self, pkid: u16, at: Instant) -> Option<Duration> {
        self.written_at
            .remove(&pkid)
            .map(|t| at.saturating_duration_since(t))
    }

    /// PUBACK for `pkid`. Returns the cursor advance it allows, if any:
    /// (class, new acknowledged id, events acknowledged by this advance).
    pub fn acked(&mut self, pkid: u16) -> Option<(Class, String, u64)> {
        let (class, seq) = self.by_pkid.remove(&pkid)?;
        let q = &mut self.per_class[class.index()];
        if let Some(e) = q.iter_mut().find(|(s, _, _)| *s == seq) {
            e.2 = true;
        }
        let mut advance = None;
        let mut n = 0u64;
        while q.front().is_some_and(|(_, _, acked)| *acked) {
            let (_, b, _) = q.pop_front().expect("front exists");
            n += b.len as u64;
            advance = Some(b.last_id);
        }
        advance.map(|id| (class, id, n))
    }

    /// PUBACK with a failure reason for `pkid` (MQTT 5: e.g. 0x10, no matching subscribers):
    /// the batch was not delivered. It and every later batch of its class leave the window —
    /// their PUBACKs, if any come, are ignored — to be published again from
    /// [`Window::last_unacked_id`] (or the acknowledged cursor). Returns the class, or `None`
    /// for an untracked or unknown packet id.
    pub fn refused(&mut self, pkid: u16) -> Option<Class> {
        let (class, seq) = self.by_pkid.remove(&pkid)?;
        self.written_at.remove(&pkid);
        self.per_class[class.index()].retain(|(s, _, _)| *s < seq);
        let later: Vec<u16> = self
            .by_pkid
            .iter()
            .filter(|(_, (c, s))| *c == class && *s > seq)
            .map(|(p, _)| *p)
            .collect();
        for p in later {
            self.by_pkid.remove(&p);
            self.written_at.remove(&p);
        }
        // Handed to rumqttc but not yet written: all later than the refused one.
        for b in self.unassigned.iter_mut() {
            if b.as_ref().is_some_and(|b| b.class == class) {
                *b = None;
            }
        }
        Some(class)
    }

    /// Last id of the newest batch of `class` still awaiting PUBACK.
    pub fn last_unacked_id(&self, class: Class) -> Option<String> {
        self.per_class[class.index()]
            .back()
            .map(|(_, b, _)| b.last_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(class: Class, id: &str) -> Batch {
        Batch {
            class,
            last_id: id.into(),
            len: 2,
            bytes: 100,
        }
    }

    #[test]
    fn cursor_advances_only_in_order() {
        let mut w = Window::default();
        w.published(b(Class::Location, "1-1"));
        w.published_untracked();
        w.published(b(Class::Location, "1-3"));
        w.assigned(10, Instant::now());
        w.assigned(11, Instant::now());
        w.assigned(12, Instant::now());
        assert_eq!(w.len(), 2);
        assert_eq!(
            w.acked(12),
            None,
            "second batch acked first: cursor must wait"
        );
        assert_eq!(w.acked(11), None, "untracked publish");
        assert_eq!(w.acked(10), Some((Class::Location, "1-3".into(), 4)));
        assert!(w.is_empty());
    }

    #[test]
    fn sizing_grows_while_acks_are_quick_and_shrinks_when_they_queue() {
        let ms = Duration::from_millis;
        let mut s = Sizing::new(8);
        assert_eq!(s.size(), 8);
        for _ in 0..20 {
            s.on_ack(ms(3));
        }
        assert_eq!(s.size(), 28, "one more per quick PUBACK");
        for _ in 0..5 {
            s.on_ack(ms(40));
        }
        assert_eq!(s.size(), 23, "one less per queued PUBACK");
        for _ in 0..100 {
            s.on_ack(ms(40));
        }
        assert_eq!(s.size(), 8, "never below [uplink] inflight");
        for _ in 0..1000 {
            s.on_ack(ms(1));
        }
        assert_eq!(s.size(), MAX_BATCHES, "never above the memory bound");
    }

    #[test]
    fn classes_advance_independently() {
        let mut w = Window::default();
        w.published(b(Class::Location, "5-0"));
        w.published(b(Class::Alert, "6-0"));
        w.assigned(1, Instant::now());
        w.assigned(2, Instant::now());
        assert_eq!(w.acked(2), Some((Class::Alert, "6-0".into(), 2)));
        assert_eq!(w.acked(1), Some((Class::Location, "5-0".into(), 2)));
        assert_eq!(w.acked(1), None, "unknown pkid is ignored");
    }

    #[test]
    fn a_refused_batch_and_those_after_it_leave_the_window_and_their_acks_are_ignored() {
        let mut w = Window::default();
        w.published(b(Class::Location, "1-0"));
        w.published(b(Class::Location, "2-0"));
        w.published(b(Class::Alert, "3-0"));
        w.published(b(Class::Location, "4-0"));
        w.published(b(Class::Location, "5-0"));
        for pkid in 1..=4 {
            w.assigned(pkid, Instant::now());
        }
        // 5-0 is still unassigned when 2-0 is refused.
        assert_eq!(w.refused(2), Some(Class::Location));
        assert_eq!(w.last_unacked_id(Class::Location), Some("1-0".into()));
        assert_eq!(w.len(), 2, "1-0 and the alert stay");
        w.assigned(5, Instant::now());
        assert_eq!(
            w.acked(4),
            None,
            "a later batch's PUBACK does not move the cursor"
        );
        assert_eq!(w.acked(5), None, "nor does one written after the refusal");
        assert_eq!(w.acked(1), Some((Class::Location, "1-0".into(), 2)));
        assert_eq!(w.acked(3), Some((Class::Alert, "3-0".into(), 2)));
        assert!(w.is_empty());
        // Published again from 1-0: tracked as usual.
        w.published(b(Class::Location, "4-0"));
        w.assigned(6, Instant::now());
        assert_eq!(w.acked(6), Some((Class::Location, "4-0".into(), 2)));
        assert_eq!(w.refused(99), None, "unknown pkid");
    }
}
