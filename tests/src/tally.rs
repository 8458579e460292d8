//! The end checks of issue 3 (shared by the fault tests and the bench soak): every acknowledged event at the hub exactly once, in order per
//! device and class; ids stable and strictly increasing; and the tally line.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::dedup::RawBatch;
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

/// The end checks; returns the tally and every problem found.
pub fn check(hub: &Hub, feeds: &[&Feed]) -> (Tally, Vec<String>) {
    let h = hub.lock();
    let mut problems: Vec<String> = h.errors().iter().map(|e| format!("hub: {e}")).collect();
    let mut tally = Tally {
        hub_duplicates: h.duplicates_dropped(),
        ..Tally::default()
    };
    for feed in feeds {
        tally.sent += feed.sent.len();
        tally.acked += feed.acked.len();
        let (delivered, lost, p) = check_feed(feed, h.events_of("location"));
        tally.delivered += delivered;
        tally.lost += lost;
        problems.extend(p);
    }
    problems.extend(check_ids(h.batches()));
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

/// Ids over every batch the hub received, duplicates included: an id always names the same
/// event (stable across restarts), ids rise within a batch, and the first sighting of each id
/// comes in id order per class (no event ever got an id below one already sent).
fn check_ids(batches: &[RawBatch]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut named: HashMap<(String, EventId), String> = HashMap::new();
    let mut top: HashMap<String, EventId> = HashMap::new();
    for b in batches {
        let class = b.payload["class"].as_str().unwrap_or("?").to_string();
        let mut prev: Option<EventId> = None;
        for e in b.payload["events"].as_array().into_iter().flatten() {
            let Some(id) = e["id"].as_str().and_then(parse_event_id) else {
                continue;
            };
            if prev.is_some_and(|p| id <= p) {
                problems.push(format!("{class}: ids not rising within a batch at {id}"));
            }
            prev = Some(id);
            let mut body = e.clone();
            body.as_object_mut().map(|o| o.remove("replay"));
            let body = body.to_string();
            match named.get(&(class.clone(), id)) {
                Some(old) if *old != body => {
                    problems.push(format!("{class}: id {id} names two events: {old} / {body}"))
                }
                Some(_) => {}
                None => {
                    if top.get(&class).is_some_and(|t| id < *t) {
                        problems.push(format!(
                            "{class}: new event {id} below an id already sent ({})",
                            top[&class]
                        ));
                    }
                    top.insert(
                        class.clone(),
                        id.max(top.get(&class).copied().unwrap_or(id)),
                    );
                    named.insert((class.clone(), id), body);
                }
            }
        }
    }
    problems.truncate(20);
    problems
}

/// Batches whose ids the hub saw more than once (republished after a lost PUBACK).
pub fn republished_events(hub: &Hub) -> usize {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for b in hub.batches() {
        let class = b.payload["class"].as_str().unwrap_or("?").to_string();
        for e in b.payload["events"].as_array().into_iter().flatten() {
            let id = e["id"].as_str().unwrap_or("").to_string();
            *seen.entry((class.clone(), id)).or_default() += 1;
        }
    }
    seen.values().filter(|n| **n > 1).count()
}
