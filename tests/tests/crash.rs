//! Crashes (SPEC §6): an input is acknowledged to the device broker only once Redis has it, so a
//! `kill -9` of the gateway loses nothing (the broker redelivers what was not acknowledged, and
//! the store recognises what it already had), and a `kill -9` of Redis loses nothing accepted.

use std::time::Duration;

use outpost_system_tests::{rfc3339, wait_until, Device, Rig};
use serde_json::json;

const T: Duration = Duration::from_secs(30);
const BASE_TST: i64 = 1_700_000_000;

/// Publishes fixes `range` for three phones in chunks of 25, 10 ms apart; returns (dev, ts) in
/// publish order. The pause keeps the stream going while the test acts on it: unpaced, a quick
/// gateway had taken all 600 before the test's kill (a clean-clone CI run, "the kill came too
/// late to test anything").
fn publish(dev: &Device, range: std::ops::Range<i64>) -> Vec<(String, String)> {
    let mut published = Vec::new();
    let all: Vec<i64> = range.collect();
    for chunk in all.chunks(25) {
        let msgs: Vec<(String, String)> = chunk
            .iter()
            .map(|&i| {
                let user = ["p", "q", "r"][(i % 3) as usize];
                published.push((format!("crash-{user}"), rfc3339(BASE_TST + i)));
                let p = json!({"_type": "location", "lat": 40.0, "lon": -3.7, "tst": BASE_TST + i});
                (format!("owntracks/crash/{user}"), p.to_string())
            })
            .collect();
        dev.publish_many_qos1(msgs).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    published
}

#[test]
fn gateway_killed_mid_stream_loses_and_duplicates_nothing_after_restart() {
    let rig = Rig::new().unwrap();
    let cfg = rig
        .config()
        .mqtt("owntracks")
        .batch_max_events(10)
        .inflight(4);
    let mut gw = rig.start(&cfg).unwrap();
    let n = 600;

    let published = std::thread::scope(|s| {
        let url = rig.devices.url();
        let publisher = s.spawn(move || {
            let dev = Device::connect(&url, "crash-phones").unwrap();
            publish(&dev, 0..n)
        });
        assert!(wait_until(T, || rig.accepted("location") >= 100));
        gw.kill9().unwrap();
        publisher.join().unwrap()
    });
    let at_kill = rig.accepted("location");
    assert!(
        at_kill < n as u64,
        "the kill came too late to test anything"
    );

    gw.restart().unwrap();
    assert!(
        rig.hub.wait_for_events("location", n as usize, T),
        "{} of {n} at the hub\n{}",
        rig.hub.events_of("location").len(),
        gw.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        rig.stored_locations(),
        published,
        "lost, duplicated or reordered across the crash"
    );
    assert_eq!(
        rig.accepted("location"),
        n as u64,
        "each input accepted once"
    );
    assert!(rig.hub.errors().is_empty(), "{:?}", rig.hub.errors());
}

#[test]
fn redis_killed_and_restarted_under_a_running_gateway_loses_nothing() {
    let mut rig = Rig::new().unwrap();
    let cfg = rig.config().mqtt("owntracks").batch_max_events(10);
    let gw = rig.start(&cfg).unwrap();
    let dev = rig.device("crash-phones").unwrap();

    let mut published = publish(&dev, 0..50);
    assert!(rig.hub.wait_for_events("location", 50, T));

    rig.redis.kill9().unwrap();
    // The broker takes these; the gateway must hold them unacknowledged until Redis is back.
    published.extend(publish(&dev, 50..120));
    std::thread::sleep(Duration::from_secs(1));
    rig.redis.restart().unwrap();
    published.extend(publish(&dev, 120..150));

    assert!(
        rig.hub.wait_for_events("location", 150, T),
        "{} of 150 at the hub\n{}",
        rig.hub.events_of("location").len(),
        gw.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        rig.stored_locations(),
        published,
        "lost, duplicated or reordered across the Redis crash"
    );
    assert!(rig.hub.errors().is_empty(), "{:?}", rig.hub.errors());
}
