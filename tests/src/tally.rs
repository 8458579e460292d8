//! The end checks of issue 3 (shared by the fault tests and the bench soak), over what the real
//! hub stored: every acknowledged event exactly once, in order per device, the history in id
//! order; duplicates as the hub counted them; and the tally line.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::feed::Feed;
use crate::{parse_event_id, EventId, Hub};

/// The per-test counts of issue 3.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub sent: usize,
    pub acked: usize,
    pub delivered: usize,
    pub hub_duplicates: u64,
    pub lost: usize,
}

impl Tally {
    /// One line, greppable: `TALLY <test>: sent=… …`.
    pub fn print(&self, test: &str) {
        eprintln!(
            "TALLY {test}: sent={} acknowledged_by_device_broker={} delivered={} duplicates_dropped_at_hub={} lost={}",
            self.sent, self.acked, self.delivered, self.hub_duplicates, self.lost
        );
    }
}

/// The end checks over what the real hub stored for gateway `gw` (its `location` history in id
/// order, `/api/v1/events`) and its `/metrics` (duplicates, refused input); returns the tally
/// and every problem found.
pub fn check(hub: &Hub, gw: &str, feeds: &[&Feed]) -> (Tally, Vec<String>) {
    let mut problems = hub.errors();
    let mut tally = Tally {
        hub_duplicates: hub.duplicates_dropped(),
        ..Tally::default()
    };
    let events = hub.events_for(gw, "location");
    for feed in feeds {
        tally.sent += feed.sent.len();
        tally.acked += feed.acked.len();
        let (delivered, lost, p) = check_feed(feed, &events);
        tally.delivered += delivered;
        tally.lost += lost;
        problems.extend(p);
    }
    problems.extend(check_ids(&events));
    problems.truncate(40);
    (tally, problems)
}

/// Exactly once, in order per device, nothing unknown, nothing acknowledged missing.
fn check_feed(feed: &Feed, events: &[Value]) -> (usize, usize, Vec<String>) {
    let mut problems = Vec::new();
    let mut count: BTreeMap<u64, usize> = BTreeMap::new();
    let mut last: HashMap<String, u64> = HashMap::new();
    for e in events {
        let Some(dev) = e["dev"].as_str().filter(|d| feed.owns(d)) else {
            continue;
        };
        let Some(seq) = feed.seq_of(e) else {
            problems.push(format!("{}: event without a readable ts: {e}", feed.name));
            continue;
        };
        *count.entry(seq).or_default() += 1;
        if feed.dev_of(seq) != dev || !feed.sent.contains(&seq) {
            problems.push(format!("{}: event never sent: {e}", feed.name));
        }
        if let Some(prev) = last.insert(dev.to_string(), seq) {
            if seq <= prev {
                problems.push(format!("{dev}: fix {seq} arrived after fix {prev}"));
            }
        }
    }
    for (seq, n) in &count {
        if *n > 1 {
            problems.push(format!("{}: fix {seq} delivered {n} times", feed.name));
        }
    }
    let lost: Vec<u64> = feed
        .acked
        .iter()
        .filter(|s| !count.contains_key(s))
        .copied()
        .collect();
    if !lost.is_empty() {
        let head: Vec<u64> = lost.iter().take(20).copied().collect();
        problems.push(format!(
            "{}: {} acknowledged fixes lost, e.g. {head:?}",
            feed.name,
            lost.len()
        ));
    }
    (count.len(), lost.len(), problems)
}

/// The stored history is in strictly increasing id order with well-formed ids, one event per
/// id. Together with the per-device order above, this shows each fix got an id above every
/// earlier one (ids are assigned in acceptance order and never reused), and the hub's dedup
/// kept exactly one copy of each.
fn check_ids(events: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut prev: Option<EventId> = None;
    for e in events {
        let Some(id) = e["id"].as_str().and_then(parse_event_id) else {
            problems.push(format!("stored event without a valid id: {e}"));
            continue;
        };
        if prev.is_some_and(|p| id <= p) {
            problems.push(format!("stored history not in id order at {id}"));
        }
        prev = Some(id);
    }
    problems.truncate(20);
    problems
}
