//! Bad input per SPEC §7: counted by reason, acknowledged, never stored, never blocking the
//! good batches behind it; Redis down means not acknowledged, then stored when it returns.

use std::time::Duration;

use outpost_system_tests::{
    wait_until, Device, HubApi, HubConfig, HubProc, Mosquitto, RedisServer,
};

use crate::{batch, ids, loc, up, Bench, T};

/// `outpost_hub_drops_total{…,reason="<reason>"}` from `/metrics`.
fn drops(api: &HubApi, reason: &str) -> u64 {
    let by_reason = api.drops().unwrap_or_default();
    by_reason.get(reason).copied().unwrap_or(0)
}

fn api_text(api: &HubApi, path: &str) -> String {
    api.text(path).unwrap_or_default()
}

#[test]
fn each_bad_input_is_counted_acknowledged_and_never_blocks_a_good_batch() {
    let b = Bench::new();
    let good = |ms| loc(ms, "r1", 1.0, 2.0, "2026-11-30T10:00:00.000Z");
    let t = up("veh-1", "location");
    let big = format!("{{\"gw\":\"veh-1\",\"pad\":\"{}\"}}", "x".repeat(1 << 20));
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        ("not_json", t.clone(), b"{not json".to_vec()),
        ("not_utf8", t.clone(), b"{\"gw\":\"veh-1\xff\"}".to_vec()),
        (
            "gw_mismatch",
            t.clone(),
            batch("veh-2", "location", &[good(1)]).into_bytes(),
        ),
        (
            "class_mismatch",
            t.clone(),
            batch("veh-1", "status", &[good(2)]).into_bytes(),
        ),
        (
            "ids_not_increasing",
            t.clone(),
            batch("veh-1", "location", &[good(5), good(4)]).into_bytes(),
        ),
        ("oversize", t.clone(), big.into_bytes()),
        (
            "not_batch",
            up("veh-1", "weather"),
            batch("veh-1", "weather", &[]).into_bytes(),
        ),
        ("bad_state", "outpost/v1/veh-1/state".into(), b"[]".to_vec()),
    ];
    for (_, topic, payload) in &cases {
        b.gw.publish_qos1(topic, payload.clone()).unwrap();
    }
    b.gw.publish_qos1(&t, batch("veh-1", "location", &[good(10)]))
        .unwrap();
    let api = b.api();
    assert!(wait_until(T, || api
        .all_events("veh-1", "location", 10)
        .unwrap()
        .len()
        == 1));
    assert_eq!(
        ids(&api.all_events("veh-1", "location", 10).unwrap()),
        ["10-0"],
        "only the good batch"
    );
    for (reason, ..) in &cases {
        assert!(
            wait_until(T, || drops(&api, reason) == 1),
            "{reason}: {}",
            api_text(&api, "/metrics")
        );
    }
    assert!(api.all_events("veh-2", "location", 10).unwrap().is_empty());
    // Nothing refused is redelivered: the broker has no unacknowledged message for the hub.
    std::thread::sleep(Duration::from_millis(300));
    for (reason, ..) in &cases {
        assert_eq!(drops(&api, reason), 1, "{reason} counted once");
    }
    let _ = &b.broker;
}

#[test]
fn redis_down_means_not_acknowledged_then_stored_when_it_returns() {
    let mut redis = RedisServer::new().unwrap();
    let broker = Mosquitto::new().unwrap();
    let hub = HubProc::start(&HubConfig::new("h1", &broker.url(), vec![redis.url()])).unwrap();
    let gw = Device::connect(&broker.url(), "hand-made-gateway").unwrap();
    let api = hub.api();
    let e = |ms| loc(ms, "r1", 1.0, 2.0, "2026-11-30T10:00:00.000Z");
    gw.publish_qos1(
        &up("veh-1", "location"),
        batch("veh-1", "location", &[e(1)]),
    )
    .unwrap();
    assert!(wait_until(T, || api
        .all_events("veh-1", "location", 10)
        .map(|v| v.len())
        .unwrap_or(0)
        == 1));
    redis.kill9().unwrap();
    for ms in 2..=20 {
        gw.publish_qos1(
            &up("veh-1", "location"),
            batch("veh-1", "location", &[e(ms)]),
        )
        .unwrap();
    }
    assert!(
        wait_until(T, || api.get("/healthz").is_ok_and(|(s, _)| s == 503)),
        "healthz must say 503"
    );
    assert!(
        wait_until(T, || hub.log().contains("not acknowledged, retrying")),
        "{}",
        hub.log()
    );
    redis.restart().unwrap();
    assert!(wait_until(T, || api
        .get("/healthz")
        .is_ok_and(|(s, _)| s == 200)));
    assert!(wait_until(T, || api
        .all_events("veh-1", "location", 100)
        .map(|v| v.len())
        .unwrap_or(0)
        == 20));
    let want: Vec<String> = (1..=20).map(|ms| format!("{ms}-0")).collect();
    assert_eq!(
        ids(&api.all_events("veh-1", "location", 100).unwrap()),
        want
    );
}
