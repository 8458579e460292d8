//! The wire tap's bookkeeping, sans I/O: routes uplink messages by topic and applies the
//! one-receiver form of the SPEC §5 dedup rule — per (gateway, class), keep the highest `id`
//! seen and ignore anything at or below it. [`crate::WireTap`] feeds it from MQTT; unit tests
//! feed it by hand. (What the hub stores is the real `outpost-hub`'s, [`crate::Hub`].)

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Instant;

use serde_json::Value;

/// An event id, `"<ms>-<seq>"` (a Redis stream entry id), ordered numerically as (ms, seq).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence within the millisecond.
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Parses `"<ms>-<seq>"`; `None` for anything else (compared as strings, "9-0" > "10-0").
pub fn parse_event_id(id: &str) -> Option<EventId> {
    let (ms, seq) = id.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some(EventId {
        ms: ms.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// What arrived at the hub, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrivalKind {
    /// The hub's own client (re)connected to the hub broker.
    HubConnected {
        /// Whether the broker still had the hub's persistent session.
        session_present: bool,
    },
    /// A `<prefix>/<gw>/state` message; `state` is its `"state"` field (`online`/`offline`).
    State {
        /// Gateway id from the topic.
        gw: String,
        /// The payload's `state` field, empty if absent.
        state: String,
    },
    /// A `<prefix>/<gw>/snapshot` message.
    Snapshot {
        /// Gateway id from the topic.
        gw: String,
    },
    /// A batch on `<prefix>/<gw>/up/<class>`.
    Batch {
        /// Gateway id from the topic.
        gw: String,
        /// Class from the topic.
        class: String,
        /// Events newly stored from it.
        stored: usize,
        /// Events ignored as at or below the highest stored id.
        duplicates: usize,
    },
}

/// One arrival: what, whether the broker flagged it retained (set only for retained messages
/// sent because of a new subscription, not for live delivery), and when.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// What arrived.
    pub kind: ArrivalKind,
    /// The MQTT retain flag as delivered.
    pub retained: bool,
    /// When the hub saw it.
    pub at: Instant,
}

/// A batch exactly as received.
#[derive(Clone, Debug)]
pub struct RawBatch {
    /// The topic it came on.
    pub topic: String,
    /// The parsed payload (`Value::Null` if it was not JSON).
    pub payload: Value,
    /// When the hub saw it.
    pub at: Instant,
}

/// For one gateway (re)connect seen at the hub (a live `state: online`): did the snapshot come
/// before the first batch?
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOrder {
    /// Gateway id.
    pub gw: String,
    /// `Some(true)`: snapshot first; `Some(false)`: a batch first; `None`: neither arrived
    /// before the next connect.
    pub snapshot_first: Option<bool>,
}

/// The hub's state: stored events, duplicates, raw batches, latest state and snapshot.
#[derive(Debug, Default)]
pub struct DedupStore {
    topic_prefix: String,
    highest: HashMap<(String, String), EventId>,
    events: Vec<Value>,
    by_class: BTreeMap<String, Vec<Value>>,
    duplicates: u64,
    batches: Vec<RawBatch>,
    states: Vec<Value>,
    snapshots: Vec<Value>,
    timeline: Vec<Arrival>,
    errors: Vec<String>,
}

impl DedupStore {
    /// An empty store for topics under `topic_prefix` (e.g. `outpost/v1`).
    pub fn new(topic_prefix: &str) -> Self {
        Self {
            topic_prefix: topic_prefix.trim_end_matches('/').to_string(),
            ..Self::default()
        }
    }

    /// The dedup rule for one event: stores it if its id is above the highest stored for
    /// (gw, class) and returns true; otherwise counts a duplicate and returns false.
    /// An event without a parseable id is a protocol error (recorded, not stored).
    pub fn accept_event(&mut self, gw: &str, class: &str, event: Value) -> bool {
        let raw = event.get("id").and_then(Value::as_str).unwrap_or_default();
        let Some(id) = parse_event_id(raw) else {
            self.errors
                .push(format!("{gw}/{class}: bad event id {raw:?} in {event}"));
            return false;
        };
        let key = (gw.to_string(), class.to_string());
        if self.highest.get(&key).is_some_and(|&top| id <= top) {
            self.duplicates += 1;
            return false;
        }
        self.highest.insert(key, id);
        self.by_class
            .entry(class.to_string())
            .or_default()
            .push(event.clone());
        self.events.push(event);
        true
    }

    /// Handles one message from the hub broker, routed by topic.
    pub fn handle_message(&mut self, topic: &str, payload: &[u8], retained: bool) {
        let Some(rest) = topic
            .strip_prefix(self.topic_prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            self.errors.push(format!("unexpected topic {topic}"));
            return;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [gw, "up", class] => self.apply_batch(topic, gw, class, payload, retained),
            [gw, "state"] => {
                let value = self.json(topic, payload);
                let state = value.get("state").and_then(Value::as_str).unwrap_or("");
                let kind = ArrivalKind::State {
                    gw: gw.to_string(),
                    state: state.to_string(),
                };
                self.states.push(value);
                self.push_arrival(kind, retained);
            }
            [gw, "snapshot"] => {
                let value = self.json(topic, payload);
                self.snapshots.push(value);
                let kind = ArrivalKind::Snapshot { gw: gw.to_string() };
                self.push_arrival(kind, retained);
            }
            _ => self.errors.push(format!("unexpected topic {topic}")),
        }
    }

    /// Records that the hub's client (re)connected.
    pub fn hub_connected(&mut self, session_present: bool) {
        self.push_arrival(ArrivalKind::HubConnected { session_present }, false);
    }

    fn apply_batch(&mut self, topic: &str, gw: &str, class: &str, payload: &[u8], retained: bool) {
        if payload.is_empty() {
            self.errors.push(format!("{topic}: empty batch payload"));
        }
        let value = self.json(topic, payload);
        self.batches.push(RawBatch {
            topic: topic.to_string(),
            payload: value.clone(),
            at: Instant::now(),
        });
        let (mut stored, mut duplicates) = (0, 0);
        if !value.is_null() {
            (stored, duplicates) = self.apply_events(topic, gw, class, &value);
        }
        let kind = ArrivalKind::Batch {
            gw: gw.to_string(),
            class: class.to_string(),
            stored,
            duplicates,
        };
        self.push_arrival(kind, retained);
    }

    /// Checks a parsed batch and runs its events through the dedup rule; (stored, duplicates).
    fn apply_events(
        &mut self,
        topic: &str,
        gw: &str,
        class: &str,
        value: &Value,
    ) -> (usize, usize) {
        if value.get("gw").and_then(Value::as_str) != Some(gw) {
            self.errors.push(format!("{topic}: batch gw is not {gw:?}"));
        }
        if value.get("class").and_then(Value::as_str) != Some(class) {
            self.errors
                .push(format!("{topic}: batch class is not {class:?}"));
        }
        let events = match value.get("events").and_then(Value::as_array) {
            Some(events) => events.clone(),
            None => {
                self.errors.push(format!("{topic}: batch without events"));
                Vec::new()
            }
        };
        let (mut stored, mut duplicates) = (0, 0);
        for event in events {
            if event.get("class").and_then(Value::as_str) != Some(class) {
                self.errors
                    .push(format!("{topic}: event of another class: {event}"));
            }
            if self.accept_event(gw, class, event) {
                stored += 1;
            } else {
                duplicates += 1;
            }
        }
        (stored, duplicates)
    }

    fn json(&mut self, topic: &str, payload: &[u8]) -> Value {
        serde_json::from_slice(payload).unwrap_or_else(|e| {
            if !payload.is_empty() {
                self.errors
                    .push(format!("{topic}: payload is not JSON: {e}"));
            }
            Value::Null
        })
    }

    fn push_arrival(&mut self, kind: ArrivalKind, retained: bool) {
        self.timeline.push(Arrival {
            kind,
            retained,
            at: Instant::now(),
        });
    }

    /// Every stored event, all classes, in arrival order.
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    /// Stored events of one class, in arrival order.
    pub fn events_of(&self, class: &str) -> &[Value] {
        self.by_class.get(class).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Stored events of one device (any class), in arrival order.
    pub fn events_of_dev(&self, dev: &str) -> Vec<&Value> {
        let is_dev = |e: &&Value| e.get("dev").and_then(Value::as_str) == Some(dev);
        self.events.iter().filter(is_dev).collect()
    }

    /// Events ignored by the dedup rule.
    pub fn duplicates_dropped(&self) -> u64 {
        self.duplicates
    }

    /// The highest stored id for (gw, class).
    pub fn highest_id(&self, gw: &str, class: &str) -> Option<EventId> {
        self.highest
            .get(&(gw.to_string(), class.to_string()))
            .copied()
    }

    /// Every batch as received, duplicates included.
    pub fn batches(&self) -> &[RawBatch] {
        &self.batches
    }

    /// The latest state message (`Value::Null` for a cleared or non-JSON one).
    pub fn state(&self) -> Option<&Value> {
        self.states.last()
    }

    /// Every state message, in order.
    pub fn states(&self) -> &[Value] {
        &self.states
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Option<&Value> {
        self.snapshots.last()
    }

    /// Every snapshot, in order.
    pub fn snapshots(&self) -> &[Value] {
        &self.snapshots
    }

    /// Everything that arrived, in order.
    pub fn timeline(&self) -> &[Arrival] {
        &self.timeline
    }

    /// Protocol violations seen (bad topics, payloads, ids, class mismatches); should be empty.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// For each live (not retained-on-subscribe) `online` state: whether that gateway's snapshot
    /// arrived before its first batch. A snapshot arriving right before the state counts too,
    /// since the spec orders snapshot before history, not relative to the state message.
    pub fn connect_orders(&self) -> Vec<ConnectOrder> {
        let tl = &self.timeline;
        let mut orders = Vec::new();
        for (i, arrival) in tl.iter().enumerate() {
            let ArrivalKind::State { gw, state } = &arrival.kind else {
                continue;
            };
            if arrival.retained || state != "online" {
                continue;
            }
            let snapshot_just_before = i > 0
                && !tl[i - 1].retained
                && tl[i - 1].kind == ArrivalKind::Snapshot { gw: gw.clone() };
            let mut snapshot_first = snapshot_just_before.then_some(true);
            for later in &tl[i + 1..] {
                if snapshot_first.is_some() {
                    break;
                }
                match &later.kind {
                    ArrivalKind::State { gw: g, state } if g == gw && state == "online" => break,
                    ArrivalKind::Snapshot { gw: g } if g == gw => snapshot_first = Some(true),
                    ArrivalKind::Batch { gw: g, .. } if g == gw => snapshot_first = Some(false),
                    _ => {}
                }
            }
            orders.push(ConnectOrder {
                gw: gw.clone(),
                snapshot_first,
            });
        }
        orders
    }
}
