//! `outpost-hub sync`: anti-entropy between two regions' stores (SPEC §9).

use outpost_system_tests::{wait_until, Device, HubConfig, HubProc, Mosquitto, RedisCluster};
use serde_json::json;

use crate::{batch, loc, up, Bench, T};

#[test]
fn sync_fills_a_rebuilt_region_and_copies_nothing_the_second_time() {
    let a = Bench::new();
    let b_redis = RedisCluster::new().unwrap();
    let b_broker = Mosquitto::new().unwrap();
    let b_hub = HubProc::start(&HubConfig::new("b1", &b_broker.url(), b_redis.urls())).unwrap();
    let b_gw = Device::connect(&b_broker.url(), "gw-to-b").unwrap();
    let ts = |s: u64| format!("2026-11-30T10:00:{s:02}.000Z");
    // Region B got everything; region A (rebuilt) only the live tail.
    for ms in 1..=30u64 {
        let evs = [loc(
            ms,
            &format!("d{}", ms % 3),
            50.0 + ms as f64 * 1e-3,
            8.0,
            &ts(ms),
        )];
        let p = batch("veh-1", "location", &evs);
        b_gw.publish_qos1(&up("veh-1", "location"), p.clone())
            .unwrap();
        if ms > 25 {
            a.gw.publish_qos1(&up("veh-1", "location"), p).unwrap();
        }
    }
    let alert = json!({"id": "7-0", "replay": true, "dev": "d1", "class": "alert", "reason": "emergency", "ts": ts(7), "ts_src": "device", "rx": ts(7)});
    b_gw.publish_qos1(&up("veh-2", "alert"), batch("veh-2", "alert", &[alert]))
        .unwrap();
    let (api_a, api_b) = (a.api(), b_hub.api());
    assert!(wait_until(T, || api_b
        .all_events("veh-1", "location", 100)
        .unwrap()
        .len()
        == 30));
    assert!(wait_until(T, || api_b
        .all_events("veh-2", "alert", 100)
        .unwrap()
        .len()
        == 1));
    assert!(wait_until(T, || api_a
        .all_events("veh-1", "location", 100)
        .unwrap()
        .len()
        == 5));
    let from = format!("{}#hub", b_redis.urls().join(","));
    let to = format!("{}#hub", a.redis.url());
    let sync = || outpost_system_tests::hub_sync(&from, &to);
    assert!(sync().contains("2 gateways, 31 events seen, 26 copied"));
    for (gw, class) in [("veh-1", "location"), ("veh-2", "alert")] {
        assert_eq!(
            api_a.all_events(gw, class, 7).unwrap(),
            api_b.all_events(gw, class, 7).unwrap(),
            "{gw} {class}"
        );
    }
    assert!(sync().contains("31 events seen, 0 copied"), "idempotent");
    // Latest state followed: d0's newest fix (ms 30) is the same in both regions.
    assert_eq!(
        api_a.json("/api/v1/devices/d0").unwrap()["location"],
        api_b.json("/api/v1/devices/d0").unwrap()["location"]
    );
    assert_eq!(
        api_a.json("/api/v1/alerts").unwrap(),
        api_b.json("/api/v1/alerts").unwrap()
    );
}
