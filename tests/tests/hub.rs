//! The hub (`outpost-hub`, SPEC §7, issue 10) against real mosquitto, redis-server (single
//! and a 3-master cluster) and the real binaries: exactly once through reordering,
//! redelivery, receiver kill and broker restart; latest state; `near`; bad input; auth.

use std::collections::HashSet;
use std::time::Duration;

use outpost_system_tests::{
    wait_until, Device, HubApi, HubConfig, HubProc, Mosquitto, RedisCluster, RedisServer,
};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

/// A batch payload as a gateway would send it.
fn batch(gw: &str, class: &str, events: &[Value]) -> String {
    json!({"gw": gw, "class": class, "events": events}).to_string()
}

/// A location event with id `ms-0`.
fn loc(ms: u64, dev: &str, lat: f64, lon: f64, ts: &str) -> Value {
    json!({"id": format!("{ms}-0"), "replay": false, "dev": dev, "class": "location",
           "lat": lat, "lon": lon, "ts": ts, "ts_src": "device", "rx": ts})
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn up(gw: &str, class: &str) -> String {
    format!("outpost/v1/{gw}/up/{class}")
}

/// A hub on a single Redis and its own broker, plus a publisher on that broker.
struct Bench {
    _redis: RedisServer,
    broker: Mosquitto,
    hub: HubProc,
    gw: Device,
}

impl Bench {
    fn new() -> Self {
        let redis = RedisServer::new().unwrap();
        let broker = Mosquitto::new().unwrap();
        let hub = HubProc::start(&HubConfig::new("h1", &broker.url(), vec![redis.url()])).unwrap();
        let gw = Device::connect(&broker.url(), "hand-made-gateway").unwrap();
        Bench {
            _redis: redis,
            broker,
            hub,
            gw,
        }
    }

    fn api(&self) -> HubApi {
        self.hub.api()
    }
}

#[test]
fn reordered_and_duplicated_batches_are_stored_exactly_once_in_id_order() {
    let b = Bench::new();
    let ts = "2026-11-30T10:00:00.000Z";
    let e = |ms| loc(ms, "r7", 52.5, 13.4, ts);
    // What two receivers on one share group and a republishing gateway can produce: a later
    // batch first, then the earlier one, the later one again (after a reconnect), an
    // overlapping one, and a late batch entirely below ids already stored.
    let sequence = [
        vec![e(30), e(40)],
        vec![e(10), e(20)],
        vec![e(30), e(40)],
        vec![e(40), e(50)],
        vec![e(5)],
        vec![e(10), e(20), e(30), e(40), e(50)],
    ];
    for evs in &sequence {
        b.gw.publish_qos1(&up("veh-1", "location"), batch("veh-1", "location", evs))
            .unwrap();
    }
    let api = b.api();
    let want = ["5-0", "10-0", "20-0", "30-0", "40-0", "50-0"];
    let got = || api.all_events("veh-1", "location", 2).unwrap();
    assert!(
        wait_until(T, || ids(&got()).len() >= want.len()),
        "{:?}",
        got()
    );
    // Everything is in: one more batch behind it shows the hub is done with the sequence.
    b.gw.publish_qos1(
        &up("veh-1", "location"),
        batch("veh-1", "location", &[e(60)]),
    )
    .unwrap();
    assert!(wait_until(T, || ids(&got()).len() == want.len() + 1));
    let events = got();
    assert_eq!(ids(&events)[..6], want, "each id once, in id order");
    assert!(
        events.iter().all(|e| e.get("replay").is_none()),
        "replay is not part of the stored event"
    );
    assert_eq!(events[0]["lat"], 52.5);
    let metrics = api.get("/metrics").map(|_| ()).ok();
    assert!(metrics.is_some());
}
