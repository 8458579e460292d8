//! A burst of OwnTracks reports from four phones, `owntracks/burst/<a|b|c|d>` (devices
//! `burst-<x>`), `tst` counting up from 1,700,000,000 one per report: what `tests/burst.rs`
//! and `tests/burst_cut.rs` queue for a gateway that is down, and how they check what arrived.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use crate::Hub;

const USERS: [&str; 4] = ["a", "b", "c", "d"];

/// The first `n` reports as (topic, payload).
pub fn messages(n: i64) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let user = USERS[(i % 4) as usize];
            let p = json!({"_type": "location", "lat": 45.0 + i as f64 * 1e-6, "lon": 7.0, "tst": 1_700_000_000 + i});
            (format!("owntracks/burst/{user}"), p.to_string())
        })
        .collect()
}

/// How many distinct reports (device, `ts`) are among `events`, however often each was stored.
pub fn distinct(events: &[Value]) -> usize {
    let keys: HashSet<String> = events
        .iter()
        .map(|e| format!("{}|{}", e["dev"], e["ts"]))
        .collect();
    keys.len()
}

/// The hub's location events once every one of the `n` reports is there, counted once however
/// often it was stored (copies must not hide a loss), and 2 s more for late copies; panics
/// with `log()` (the gateway's) after 3 minutes.
pub fn arrived(hub: &Hub, n: i64, log: impl Fn() -> String) -> Vec<Value> {
    let ok = hub.wait_for(
        |h| distinct(&h.events_of("location")) as i64 >= n,
        Duration::from_secs(180),
    );
    std::thread::sleep(Duration::from_secs(2));
    let got = hub.events_of("location");
    assert!(
        ok,
        "{} of {n} inputs arrived; log:\n{}",
        distinct(&got),
        log()
    );
    got
}

/// Panics unless `got` (the hub's location events) holds each of the `n` reports exactly
/// once, each phone's in `ts` order; the failure names reports stored twice (with each copy's
/// id and rx) or the first one out of order. `log` is the gateway's, for the message.
pub fn assert_once_in_order(got: &[Value], n: i64, log: &str) {
    let mut copies = HashMap::<(String, String), Vec<(String, String)>>::new();
    for e in got {
        copies
            .entry((e["dev"].to_string(), e["ts"].to_string()))
            .or_default()
            .push((e["id"].to_string(), e["rx"].to_string()));
    }
    let mut twice: Vec<_> = copies.iter().filter(|(_, c)| c.len() > 1).collect();
    twice.sort();
    assert_eq!(
        got.len() as i64,
        n,
        "not exactly once: {} distinct inputs, {} stored more than once, e.g. {:?}\nlog:\n{log}",
        copies.len(),
        twice.len(),
        &twice[..twice.len().min(12)]
    );
    for user in USERS {
        let mine: Vec<&Value> = got
            .iter()
            .filter(|e| e["dev"] == format!("burst-{user}"))
            .collect();
        assert_eq!(mine.len() as i64, n / 4, "burst-{user}");
        let back = mine
            .windows(2)
            .position(|w| w[0]["ts"].as_str() >= w[1]["ts"].as_str());
        assert!(
            back.is_none(),
            "per-device order: burst-{user} at {back:?}: {:?}\nlog:\n{log}",
            back.map(|i| &mine[i.saturating_sub(2)..(i + 4).min(mine.len())])
        );
    }
}
