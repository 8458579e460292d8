//! SIGHUP reload (issue 5): Outpost re-reads its config and profiles, applies what changed
//! without losing an event, logs what changed, and keeps running on the old config (saying
//! why) when the new one is invalid.

use outpost_system_tests::{wait_until, Rig};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn fix(lat: f64, tst: i64) -> String {
    json!({"_type": "location", "lat": lat, "lon": 11.5, "tst": tst}).to_string()
}

#[test]
fn sighup_applies_a_new_source_and_loses_nothing_published_across_the_reload() {
    let rig = Rig::new().unwrap();
    let cfg = rig.config().mqtt("owntracks");
    let gw = rig.start(&cfg).unwrap();
    let phone = rig.device("phone").unwrap();
    let radio = rig.device("radio").unwrap();
    // A steady stream from the phone while the config changes under it.
    let stream = std::thread::spawn(move || {
        for i in 0..200 {
            phone
                .publish_qos1(
                    "owntracks/ops/phone",
                    fix(48.0 + i as f64 * 1e-4, 1_700_000_000 + i),
                )
                .unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    // Add the radio profile and reload.
    let new = cfg.clone().mqtt("radio-json");
    gw.write_config(&new.to_toml()).unwrap();
    gw.signal(libc::SIGHUP).unwrap();
    // The device-broker source's routes changed: it alone is restarted.
    assert!(
        gw.wait_for_log("changed: restarting component=ingest:mqtt", T),
        "{}",
        gw.log()
    );
    assert!(
        !gw.log().contains("component=uplink"),
        "the uplink did not change: {}",
        gw.log()
    );
    assert!(
        wait_until(T, || rig.devices.subscriptions_of(&cfg.devices_client_id)
            >= 3),
        "radio filter subscribed"
    );
    radio
        .publish_qos1(
            "radios/r7/status",
            json!({"ts": 1_700_000_100, "bat": 80, "sos": false}).to_string(),
        )
        .unwrap();
    stream.join().unwrap();
    // Every phone fix published across the reload arrives, exactly once, in order.
    assert!(
        rig.hub
            .wait_for(|h| h.events_of("location").len() >= 200, T),
        "{} locations",
        rig.hub.events_of("location").len()
    );
    let lats: Vec<f64> = rig
        .hub
        .events_of("location")
        .iter()
        .filter(|e| e["dev"] == "ops-phone")
        .map(|e| e["lat"].as_f64().unwrap())
        .collect();
    assert_eq!(lats.len(), 200, "each fix once");
    assert!(lats.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(
        rig.hub.wait_for(
            |h| h.events_of("status").iter().any(|e| e["dev"] == "r7"),
            T
        ),
        "the new source works"
    );
    assert!(gw.log().contains("SIGHUP: reloading config and profiles"));
}

#[test]
fn sighup_with_an_invalid_config_keeps_running_on_the_old_one_and_says_why() {
    let rig = Rig::new().unwrap();
    let cfg = rig.config().mqtt("owntracks");
    let gw = rig.start(&cfg).unwrap();
    gw.write_config(&format!("{}\n[uplink2]\nbogus = 1\n", cfg.to_toml()))
        .unwrap();
    gw.signal(libc::SIGHUP).unwrap();
    assert!(
        gw.wait_for_log(
            "reload refused: still running on the old config and profiles",
            T
        ),
        "{}",
        gw.log()
    );
    assert!(
        gw.log().contains("uplink2"),
        "the problem is named with its place: {}",
        gw.log()
    );
    // Still working on the old config.
    let phone = rig.device("phone").unwrap();
    phone
        .publish_qos1("owntracks/ops/phone", fix(48.5, 1_700_000_500))
        .unwrap();
    assert!(rig.hub.wait_for(|h| h.events_of("location").len() == 1, T));
}
