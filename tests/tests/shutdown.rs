//! Graceful shutdown (SPEC §2, issue 2 item 7): on SIGTERM/SIGINT the gateway stops ingest,
//! finishes its Redis writes, waits up to 5 s for in-flight uplink acks and exits 0 — and
//! nothing the device broker handed it is lost: after a restart the hub has every event once.

use std::time::{Duration, Instant};

use outpost_system_tests::{rfc3339, wait_until, Device, Rig, GW};
use serde_json::json;

const T: Duration = Duration::from_secs(30);
const BASE_TST: i64 = 1_700_000_000;

/// Publishes `n` OwnTracks fixes for two phones in chunks (each chunk PUBACKed by the device
/// broker before the next), returning (dev, ts) of each in publish order.
fn publish_stream(url: &str, n: i64) -> Vec<(String, String)> {
    let dev = Device::connect(url, "stream").unwrap();
    let mut published = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let msgs: Vec<(String, String)> = chunk
            .iter()
            .map(|&i| {
                let user = if i % 2 == 0 { "x" } else { "y" };
                published.push((format!("unit-{user}"), rfc3339(BASE_TST + i)));
                let p = json!({"_type": "location", "lat": 50.0, "lon": 8.0 + i as f64 * 1e-5, "tst": BASE_TST + i});
                (format!("owntracks/unit/{user}"), p.to_string())
            })
            .collect();
        dev.publish_many_qos1(msgs).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    published
}

#[test]
fn sigterm_mid_stream_exits_0_and_every_acknowledged_event_reaches_the_hub_once() {
    let rig = Rig::with_proxy().unwrap();
    // A slow link keeps batches in flight when the signal comes.
    rig.proxy().set_delay(Duration::from_millis(100));
    let cfg = rig
        .config()
        .mqtt("owntracks")
        .batch_max_events(8)
        .inflight(4);
    let mut gw = rig.start(&cfg).unwrap();
    let n = 400;

    let published = std::thread::scope(|s| {
        let url = rig.devices.url();
        let publisher = s.spawn(move || publish_stream(&url, n));
        assert!(
            rig.hub.wait_for_events("location", 40, T),
            "stream did not start"
        );
        let t0 = Instant::now();
        let status = gw.terminate().unwrap();
        let took = t0.elapsed();
        assert_eq!(
            status.code(),
            Some(0),
            "exit status {status:?}\n{}",
            gw.log()
        );
        println!("stopped {took:?} after SIGTERM");
        publisher.join().unwrap()
    });
    assert!(
        rig.hub
            .wait_for(|h| h.gateway_state(GW).as_deref() == Some("offline"), T),
        "no offline state on graceful stop: {:?}",
        rig.hub.gateway(GW)
    );
    let before_restart = rig.hub.events_of("location").len();
    assert!(
        before_restart < n as usize,
        "the signal came too late to test anything"
    );

    gw.restart().unwrap();
    assert!(
        rig.hub.wait_for_events("location", n as usize, T),
        "{} of {n} after restart\n{}",
        rig.hub.events_of("location").len(),
        gw.log()
    );
    assert_eq!(
        rig.stored_locations(),
        published,
        "lost, duplicated or reordered across the stop"
    );
    assert_eq!(rig.accepted("location"), n as u64);
    assert!(rig.hub.errors().is_empty(), "{:?}", rig.hub.errors());
    println!(
        "{before_restart} before the stop, {} duplicates dropped at the hub",
        rig.hub.duplicates_dropped()
    );
}

#[test]
fn sigint_with_the_hub_unreachable_exits_0_and_the_backlog_waits_in_redis() {
    let rig = Rig::with_proxy().unwrap();
    // `replay` is not stored at the hub: the wire shows it.
    let tap = rig.wire_tap().unwrap();
    let mut gw = rig.start(&rig.config().mqtt("owntracks")).unwrap();
    rig.proxy().cut();
    let published = publish_stream(&rig.devices.url(), 30);
    assert!(wait_until(T, || rig.accepted("location") == 30));

    gw.signal(libc::SIGINT).unwrap();
    let status = gw.wait_exit(Duration::from_secs(10)).unwrap();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "SIGINT: {status:?}\n{}",
        gw.log()
    );
    assert_eq!(
        rig.outbox_len("location"),
        30,
        "the backlog stays in the outbox"
    );

    rig.proxy().pass();
    gw.restart().unwrap();
    assert!(rig.hub.wait_for_events("location", 30, T));
    assert_eq!(rig.stored_locations(), published);
    assert!(tap.wait_for_events("location", 30, T));
    assert!(tap
        .events_of("location")
        .iter()
        .all(|e| e["replay"] == true));
}
