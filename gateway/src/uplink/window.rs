//! The in-flight window, sans-I/O: which batches await PUBACK, and how far each class's
//! acknowledged cursor may advance (strictly in order, SPEC §5).

use crate::event::Class;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A published batch: its class, last entry id and size.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub class: Class,
    pub last_id: String,
    pub len: usize,
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
    pub fn assigned(&mut self, pkid: u16) {
        if let Some(Some(b)) = self.unassigned.pop_front() {
            let seq = self.per_class[b.class.index()]
                .iter()
                .rev()
                .find(|(_, x, acked)| !acked && x.last_id == b.last_id)
                .map(|(s, _, _)| *s);
            if let Some(seq) = seq {
                self.by_pkid.insert(pkid, (b.class, seq));
                self.written_at.insert(pkid, Instant::now());
            }
        }
    }

    /// Time since the tracked batch with packet id `pkid` was written (call on its PUBACK,
    /// before [`Window::acked`]).
    pub fn ack_latency(&mut self, pkid: u16) -> Option<Duration> {
        self.written_at.remove(&pkid).map(|t| t.elapsed())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(class: Class, id: &str) -> Batch {
        Batch {
            class,
            last_id: id.into(),
            len: 2,
        }
    }

    #[test]
    fn cursor_advances_only_in_order() {
        let mut w = Window::default();
        w.published(b(Class::Location, "1-1"));
        w.published_untracked();
        w.published(b(Class::Location, "1-3"));
        w.assigned(10);
        w.assigned(11);
        w.assigned(12);
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
    fn classes_advance_independently() {
        let mut w = Window::default();
        w.published(b(Class::Location, "5-0"));
        w.published(b(Class::Alert, "6-0"));
        w.assigned(1);
        w.assigned(2);
        assert_eq!(w.acked(2), Some((Class::Alert, "6-0".into(), 2)));
        assert_eq!(w.acked(1), Some((Class::Location, "5-0".into(), 2)));
        assert_eq!(w.acked(1), None, "unknown pkid is ignored");
    }
}
