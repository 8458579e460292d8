//! The bounded send queue of one TAK link (STYLE 7: bounded, and says what happens when full).
//!
//! The link carries live state, not history (SPEC §10): a device's newest position replaces
//! its older one while that is still unsent, so a slow or down server costs one entry per
//! device, not a backlog. Alerts are never dropped. When the queue is full, the oldest
//! position or chat makes room (counted); if only alerts are left, the newcomer itself is
//! dropped (counted) unless it is an alert, which is always taken.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// What an outgoing CoT event is, for the queue's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Live state of one unit (the key, e.g. the device id): newest replaces unsent older.
    Position(String),
    /// An emergency: never dropped.
    Alert,
    /// A chat or anything else: may make room when the queue is full.
    Other,
}

/// One CoT event waiting to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub kind: Kind,
    pub xml: String,
}

/// Counters of the queue's decisions.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Unsent positions replaced by a newer one of the same unit.
    pub replaced: AtomicU64,
    /// Entries dropped because the queue was full.
    pub dropped_full: AtomicU64,
}

#[derive(Default)]
struct Inner {
    q: VecDeque<(i64, Outgoing)>,
    /// Position key → sequence number of its unsent entry.
    positions: HashMap<String, i64>,
    next: i64,
}

/// A bounded multi-producer queue with one consumer (the link task).
pub struct SendQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    cap: usize,
    /// Shared with the metrics registry ([`crate::stats`]), so counts outlive one queue.
    pub stats: Arc<QueueStats>,
}

impl SendQueue {
    /// A queue of at most `cap` entries (alerts beyond it are still taken).
    pub fn new(cap: usize) -> SendQueue {
        SendQueue::with_stats(cap, Arc::default())
    }

    /// A queue counting into `stats` (kept by the metrics across reconfigurations).
    pub fn with_stats(cap: usize, stats: Arc<QueueStats>) -> SendQueue {
        SendQueue {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            cap: cap.max(1),
            stats,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queue inconsistent in a way that
        // matters more than losing the link: keep going with what is there.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.lock().q.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `o` by the policy above.
    pub fn push(&self, o: Outgoing) {
        let mut g = self.lock();
        if let Kind::Position(key) = &o.kind {
            if let Some(&seq) = g.positions.get(key) {
                if let Ok(i) = g.q.binary_search_by_key(&seq, |(s, _)| *s) {
                    g.q[i].1 = o;
                    self.stats.replaced.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        if g.q.len() >= self.cap && !self.make_room(&mut g) && o.kind != Kind::Alert {
            self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let seq = g.next;
        g.next += 1;
        if let Kind::Position(key) = &o.kind {
            g.positions.insert(key.clone(), seq);
        }
        g.q.push_back((seq, o));
        drop(g);
        self.notify.notify_one();
    }

    /// Drops the oldest entry that is not an alert; false when there is none.
    fn make_room(&self, g: &mut Inner) -> bool {
        let Some(i) = g.q.iter().position(|(_, o)| o.kind != Kind::Alert) else {
            return false;
        };
        if let Some((_, o)) = g.q.remove(i) {
            if let Kind::Position(k) = o.kind {
                g.positions.remove(&k);
            }
        }
        self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The oldest entry, if any.
    pub fn try_pop(&self) -> Option<Outgoing> {
        let mut g = self.lock();
        let (_, o) = g.q.pop_front()?;
        if let Kind::Position(k) = &o.kind {
            g.positions.remove(k);
        }
        Some(o)
    }

    /// Waits for and takes the oldest entry.
    pub async fn pop(&self) -> Outgoing {
        loop {
            let notified = self.notify.notified();
            if let Some(o) = self.try_pop() {
                return o;
            }
            notified.await;
        }
    }

    /// Puts `o` back at the front (its write failed); it goes out first after the reconnect.
    pub fn push_front(&self, o: Outgoing) {
        let mut g = self.lock();
        let seq = g.q.front().map_or(g.next, |(s, _)| s - 1);
        if seq >= g.next {
            g.next = seq + 1;
        }
        g.q.push_front((seq, o));
        drop(g);
        self.notify.notify_one();
    }

    /// Removes every unsent position: on (re)connect the current picture is read afresh and
    /// sent first, so these would only repeat it. Returns how many were removed.
    pub fn clear_positions(&self) -> usize {
        let mut g = self.lock();
        let before = g.q.len();
        g.q.retain(|(_, o)| !matches!(o.kind, Kind::Position(_)));
        g.positions.clear();
        before - g.q.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(k: &str, x: &str) -> Outgoing {
        Outgoing {
            kind: Kind::Position(k.into()),
            xml: x.into(),
        }
    }
    fn alert(x: &str) -> Outgoing {
        Outgoing {
            kind: Kind::Alert,
            xml: x.into(),
        }
    }
    fn drain(q: &SendQueue) -> Vec<String> {
        std::iter::from_fn(|| q.try_pop()).map(|o| o.xml).collect()
    }

    #[test]
    fn newest_position_replaces_the_unsent_one_in_place() {
        let q = SendQueue::new(10);
        q.push(pos("a", "a1"));
        q.push(pos("b", "b1"));
        q.push(pos("a", "a2"));
        assert_eq!(drain(&q), ["a2", "b1"]);
        assert_eq!(q.stats.replaced.load(Ordering::Relaxed), 1);
        q.push(pos("a", "a3"));
        assert_eq!(drain(&q), ["a3"], "a sent position is not replaced");
    }

    #[test]
    fn full_queue_drops_oldest_non_alert_and_keeps_every_alert() {
        let q = SendQueue::new(3);
        q.push(alert("x1"));
        q.push(pos("a", "a1"));
        q.push(alert("x2"));
        q.push(pos("b", "b1")); // drops a1
        q.push(alert("x3")); // drops b1
        q.push(alert("x4")); // only alerts left: taken anyway
        q.push(pos("c", "c1")); // only alerts: the newcomer is dropped
        assert_eq!(drain(&q), ["x1", "x2", "x3", "x4"]);
        assert_eq!(q.stats.dropped_full.load(Ordering::Relaxed), 3);
        q.push(pos("a", "a2"));
        assert_eq!(
            drain(&q),
            ["a2"],
            "a dropped position leaves no stale index"
        );
    }

    #[test]
    fn clear_positions_keeps_alerts_and_chats() {
        let q = SendQueue::new(10);
        q.push(pos("a", "a1"));
        q.push(alert("x"));
        q.push(Outgoing {
            kind: Kind::Other,
            xml: "chat".into(),
        });
        assert_eq!(q.clear_positions(), 1);
        assert_eq!(drain(&q), ["x", "chat"]);
    }
}
