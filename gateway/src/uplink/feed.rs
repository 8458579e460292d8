//! How new outbox entries reach the uplink sessions, one [`Tap`] per region: a wake-up, and the
//! entries ingest has just stored, handed over so that a session which has sent everything
//! before them publishes them without reading them back from Redis. At a low rate that read
//! was a round trip, a Redis command and two task wake-ups per input (issue 16, goal 5).
//!
//! Each handed entry carries `prev`, the id its stream had generated last before it was added
//! (the ingest script reads it). A session takes handed entries only while they chain onto
//! what it sent: the first one's `prev` is its cursor, each next one's `prev` the one before.
//! Anything else — another writer's entry, one added while the session was not listening, an
//! entry thinned away, a retried write whose reply was lost — breaks the chain or marks the
//! tap `unknown`, and the session reads Redis as before. The hand-off can save a read; it
//! cannot skip an entry or send one twice.

use crate::event::Class;
use crate::store::{expand_entries, parse_id, Added, OutboxEntry};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::Notify;

/// Entries held per region and class; past it they are dropped and the session reads Redis.
const MAX_HELD: usize = 4096;

/// Where ingest and the other outbox writers announce what they added.
#[derive(Default)]
pub struct Feed {
    taps: Mutex<Vec<Weak<Tap>>>,
}

impl Feed {
    /// A new tap (one per region); fed until dropped.
    pub fn tap(&self) -> Arc<Tap> {
        let tap = Arc::new(Tap::default());
        let mut taps = lock(&self.taps);
        taps.retain(|t| t.strong_count() > 0);
        taps.push(Arc::downgrade(&tap));
        tap
    }

    /// Entries were added that are not handed over (presence expiry, receipts): every session
    /// reads Redis.
    pub fn changed(&self) {
        self.each(|t| {
            t.state().unknown = true;
            t.wake.notify_one();
        });
    }

    /// Ingest stored `added` (in stream order within each class): held by every listening
    /// tap, which wakes. An entry whose stored form is not known marks the taps `unknown`.
    pub fn stored<'a>(&self, added: impl Iterator<Item = &'a Added> + Clone) {
        self.each(|t| {
            let mut s = t.state();
            for a in added.clone() {
                s.hold(a);
            }
            drop(s);
            t.wake.notify_one();
        });
    }

    fn each(&self, f: impl Fn(&Tap)) {
        for t in lock(&self.taps).iter().filter_map(Weak::upgrade) {
            f(&t);
        }
    }
}

/// One region's side of the [`Feed`].
#[derive(Default)]
pub struct Tap {
    wake: Notify,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Whether a session holds entries now; while not, anything stored only marks `unknown`.
    listening: bool,
    /// Something was added that is not among the held entries.
    unknown: bool,
    held: [VecDeque<Held>; Class::COUNT],
}

/// A handed entry: its stored form, expanded only when taken.
struct Held {
    id: String,
    prev: String,
    form: String,
}

/// What [`Tap::take`] found for a class.
#[derive(Debug, PartialEq)]
pub enum Taken {
    /// Nothing held after the cursor.
    Nothing,
    /// The entries right after the cursor, in order.
    Chain(Vec<OutboxEntry>),
    /// Entries are held that do not follow the cursor: read Redis.
    Gap,
}

impl State {
    fn hold(&mut self, a: &Added) {
        if !self.listening {
            self.unknown = true;
            return;
        }
        let Some(form) = &a.form else {
            self.unknown = true;
            return;
        };
        let q = &mut self.held[a.class.index()];
        if q.len() >= MAX_HELD {
            q.clear();
            self.unknown = true;
        }
        q.push_back(Held {
            id: a.id.clone(),
            prev: a.prev.clone(),
            form: form.clone(),
        });
    }
}

impl Tap {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Resolves once something was added since the last wake.
    pub async fn notified(&self) {
        self.wake.notified().await
    }

    /// A session starts (true: hold what is stored from now on) or ends (false: drop it).
    pub fn listen(&self, on: bool) {
        let mut s = self.state();
        s.listening = on;
        s.unknown = true;
        s.held.iter_mut().for_each(VecDeque::clear);
    }

    /// Whether anything was added that is not held, since the last call.
    pub fn take_unknown(&self) -> bool {
        std::mem::take(&mut self.state().unknown)
    }

    /// Whether entries of `class` are held.
    pub fn holds(&self, class: Class) -> bool {
        !self.state().held[class.index()].is_empty()
    }

    /// Up to `max` held entries of `class` that follow `sent` without a gap, taken; held
    /// entries at or before `sent` are dropped (already read from Redis).
    pub fn take(&self, class: Class, sent: &str, max: usize) -> Taken {
        let mut s = self.state();
        let q = &mut s.held[class.index()];
        let upto = parse_id(sent).unwrap_or((0, 0));
        while q
            .front()
            .is_some_and(|h| parse_id(&h.id).is_none_or(|id| id <= upto))
        {
            q.pop_front();
        }
        match q.front() {
            None => return Taken::Nothing,
            Some(h) if h.prev != sent => return Taken::Gap,
            Some(_) => {}
        }
        let mut chain: Vec<(String, String)> = Vec::new();
        while chain.len() < max
            && q.front()
                .is_some_and(|h| h.prev == chain.last().map_or(sent, |(id, _)| id.as_str()))
        {
            let h = q.pop_front().expect("front exists");
            chain.push((h.id, h.form));
        }
        Taken::Chain(expand_entries(chain, class))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding the lock; a poisoned one still holds sound data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added(class: Class, id: &str, prev: &str) -> Added {
        Added {
            class,
            id: id.into(),
            prev: prev.into(),
            form: Some(format!(r#"{{"dev":"d","id":"{id}"}}"#)),
        }
    }

    fn ids(t: Taken) -> Vec<String> {
        match t {
            Taken::Chain(v) => v.into_iter().map(|e| e.id).collect(),
            other => panic!("expected a chain, got {other:?}"),
        }
    }

    fn listening(feed: &Feed) -> Arc<Tap> {
        let tap = feed.tap();
        tap.listen(true);
        assert!(tap.take_unknown(), "a new session reads Redis first");
        tap
    }

    #[test]
    fn entries_that_follow_the_cursor_are_taken_in_order() {
        let feed = Feed::default();
        let tap = listening(&feed);
        let a = [
            added(Class::Location, "5-0", "4-0"),
            added(Class::Location, "6-0", "5-0"),
            added(Class::Location, "6-1", "6-0"),
        ];
        feed.stored(a.iter());
        assert!(!tap.take_unknown());
        assert_eq!(
            tap.take(Class::Location, "4-0", 2),
            Taken::Chain(vec![
                OutboxEntry {
                    id: "5-0".into(),
                    json: r#"{"dev":"d","id":"5-0"}"#.into()
                },
                OutboxEntry {
                    id: "6-0".into(),
                    json: r#"{"dev":"d","id":"6-0"}"#.into()
                },
            ])
        );
        assert_eq!(ids(tap.take(Class::Location, "6-0", 10)), ["6-1"]);
        assert_eq!(tap.take(Class::Location, "6-1", 10), Taken::Nothing);
        assert_eq!(tap.take(Class::Alert, "0-0", 10), Taken::Nothing);
    }

    #[test]
    fn an_entry_not_handed_over_is_a_gap() {
        let feed = Feed::default();
        let tap = listening(&feed);
        // 5-0 was added by another writer: the next handed entry's prev says so.
        feed.stored([added(Class::Presence, "6-0", "5-0")].iter());
        assert_eq!(tap.take(Class::Presence, "4-0", 10), Taken::Gap);
        // Once a read moved the cursor past 5-0, the held entry follows it.
        assert_eq!(ids(tap.take(Class::Presence, "5-0", 10)), ["6-0"]);
        // A read that went past what is held drops it.
        feed.stored([added(Class::Presence, "7-0", "6-0")].iter());
        assert_eq!(tap.take(Class::Presence, "7-0", 10), Taken::Nothing);
    }

    #[test]
    fn a_chain_stops_at_a_gap_within_it() {
        let feed = Feed::default();
        let tap = listening(&feed);
        let a = [
            added(Class::Status, "5-0", "4-0"),
            added(Class::Status, "7-0", "6-0"),
        ];
        feed.stored(a.iter());
        assert_eq!(ids(tap.take(Class::Status, "4-0", 10)), ["5-0"]);
        assert_eq!(tap.take(Class::Status, "5-0", 10), Taken::Gap);
    }

    #[test]
    fn what_is_not_held_marks_the_tap_unknown() {
        let feed = Feed::default();
        let tap = feed.tap();
        // Not listening (no session): nothing held, but the next session must read.
        feed.stored([added(Class::Location, "5-0", "4-0")].iter());
        assert!(tap.take_unknown());
        tap.listen(true);
        tap.take_unknown();
        assert_eq!(tap.take(Class::Location, "4-0", 10), Taken::Nothing);
        let mut changed = added(Class::Location, "6-0", "5-0");
        changed.form = None;
        feed.stored([changed].iter());
        assert!(tap.take_unknown());
        feed.changed();
        assert!(tap.take_unknown());
        assert!(!tap.take_unknown());
    }

    #[test]
    fn a_full_queue_is_dropped_and_read_instead() {
        let feed = Feed::default();
        let tap = listening(&feed);
        let a: Vec<Added> = (1..=MAX_HELD as u64 + 1)
            .map(|i| added(Class::Location, &format!("{i}-0"), &format!("{}-0", i - 1)))
            .collect();
        feed.stored(a.iter());
        assert!(tap.take_unknown());
        assert_eq!(tap.take(Class::Location, "0-0", 10), Taken::Gap);
    }

    #[test]
    fn every_tap_gets_every_entry_and_dropped_taps_are_forgotten() {
        let feed = Feed::default();
        let (a, b) = (listening(&feed), listening(&feed));
        feed.stored([added(Class::Alert, "1-0", "0-0")].iter());
        assert_eq!(ids(a.take(Class::Alert, "0-0", 1)), ["1-0"]);
        assert_eq!(ids(b.take(Class::Alert, "0-0", 1)), ["1-0"]);
        drop(b);
        let _c = feed.tap();
        assert_eq!(lock(&feed.taps).len(), 2);
    }
}
