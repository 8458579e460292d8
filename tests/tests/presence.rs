//! Presence (SPEC §4, §5; issue 2 item 6): a device that stays silent past its profile's
//! `presence_timeout` goes offline with its `last_seen`; its next report brings it back online.
//! Deadlines live in Redis, so this holds across a gateway crash.

use std::time::Duration;

use outpost_system_tests::{wait_until, Device, Hub, ProfileDir, Rig};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

fn fix(tst: i64) -> String {
    json!({"_type": "location", "lat": 48.1, "lon": 11.5, "tst": tst}).to_string()
}

/// The presence states the hub stored for `dev`, in order.
fn presence_states(h: &Hub, dev: &str) -> Vec<String> {
    h.events_of("presence")
        .iter()
        .filter(|e| e["dev"] == dev)
        .map(|e| e["state"].as_str().unwrap().to_string())
        .collect()
}

fn ms(ts: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// OwnTracks profile copy with a short presence timeout.
fn profiles(timeout: &str) -> ProfileDir {
    let dir = ProfileDir::copy().unwrap();
    dir.set("owntracks", "presence_timeout", &format!("{timeout:?}"))
        .unwrap();
    dir
}

#[test]
fn silent_device_goes_offline_after_its_presence_timeout_and_online_on_next_report() {
    let rig = Rig::new().unwrap();
    let dir = profiles("2s");
    let _gw = rig
        .start(&rig.config().profiles(dir.path()).mqtt("owntracks"))
        .unwrap();
    let phone = rig.device("phone").unwrap();
    let dev = "ops-phone";

    phone
        .publish_qos1("owntracks/ops/phone", fix(1_700_000_000))
        .unwrap();
    assert!(rig.hub.wait_for(|h| h.events_of("location").len() == 1, T));
    assert!(
        rig.hub.wait_for(|h| presence_states(h, dev).len() >= 2, T),
        "no offline after silence: {:?}",
        presence_states(&rig.hub, dev)
    );
    assert_eq!(presence_states(&rig.hub, dev), ["online", "offline"]);
    // The hub's live picture follows: the device is shown offline.
    let shown = rig.hub.device(dev).expect("device at the hub");
    assert_eq!(shown["presence"], "offline", "{shown}");
    let presence = rig.hub.events_of("presence");
    let (online, offline) = (&presence[0], &presence[1]);
    let loc = &rig.hub.events_of("location")[0];
    assert_eq!(offline["ts_src"], "gateway");
    assert_eq!(
        offline["last_seen"], loc["rx"],
        "last_seen is when the gateway last heard the device"
    );
    assert_eq!(
        ms(&offline["ts"]) - ms(&offline["last_seen"]),
        2000,
        "offline at last_seen + presence_timeout"
    );
    assert_eq!(online["last_seen"], loc["rx"]);
    assert_eq!(
        rig.hget(&format!("outpost:dev:{dev}"), "presence")
            .as_deref(),
        Some("offline")
    );

    phone
        .publish_qos1("owntracks/ops/phone", fix(1_700_000_100))
        .unwrap();
    assert!(rig.hub.wait_for(|h| presence_states(h, dev).len() >= 3, T));
    assert_eq!(
        presence_states(&rig.hub, dev)[..3],
        ["online", "offline", "online"]
    );
    assert!(rig.hub.errors().is_empty(), "{:?}", rig.hub.errors());
}

#[test]
fn a_device_that_keeps_reporting_stays_online() {
    let rig = Rig::new().unwrap();
    let dir = profiles("3s");
    let _gw = rig
        .start(&rig.config().profiles(dir.path()).mqtt("owntracks"))
        .unwrap();
    let phone = rig.device("phone").unwrap();
    // Report every second for five seconds: never three seconds of silence.
    for i in 0..6 {
        phone
            .publish_qos1("owntracks/ops/phone", fix(1_700_000_000 + i))
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(rig.hub.wait_for(|h| h.events_of("location").len() == 6, T));
    assert_eq!(presence_states(&rig.hub, "ops-phone"), ["online"]);
}

#[test]
fn device_goes_offline_when_its_timeout_passed_while_the_gateway_was_down() {
    let rig = Rig::new().unwrap();
    let dir = profiles("4s");
    let mut gw = rig
        .start(&rig.config().profiles(dir.path()).mqtt("owntracks"))
        .unwrap();
    let phone = Device::connect(&rig.devices.url(), "phone").unwrap();
    let dev = "ops-phone";
    let key = format!("outpost:dev:{dev}");

    phone
        .publish_qos1("owntracks/ops/phone", fix(1_700_000_000))
        .unwrap();
    assert!(wait_until(T, || rig.accepted("location") == 1));
    gw.kill9().unwrap();
    assert_eq!(
        rig.hget(&key, "presence").as_deref(),
        Some("online"),
        "the crash must come while the device is online"
    );

    // Stay down until the deadline Redis holds has passed.
    let mut c = rig.redis.conn().unwrap();
    let deadline: i64 = redis::cmd("ZSCORE")
        .arg("outpost:presence:deadline")
        .arg(dev)
        .query(&mut c)
        .unwrap();
    let wait = deadline - chrono::Utc::now().timestamp_millis() + 1000;
    std::thread::sleep(Duration::from_millis(wait.max(0) as u64));

    gw.restart().unwrap();
    assert!(
        rig.hub.wait_for(|h| presence_states(h, dev).len() >= 2, T),
        "no offline after restart: {:?}\n{}",
        presence_states(&rig.hub, dev),
        gw.log()
    );
    assert_eq!(presence_states(&rig.hub, dev), ["online", "offline"]);
    let offline = &rig.hub.events_of("presence")[1];
    assert_eq!(ms(&offline["ts"]), deadline, "offline as of the deadline");
    assert!(offline["last_seen"].is_string());
}

#[test]
fn owntracks_last_will_takes_the_phone_offline_at_once_and_its_next_report_online() {
    let rig = Rig::new().unwrap();
    // The shipped 30 min timeout: any offline seen here comes from the last will.
    let _gw = rig.start(&rig.config().mqtt("owntracks")).unwrap();
    let phone = rig.device("phone").unwrap();
    let dev = "ops-phone";
    phone
        .publish_many_qos1([
            ("owntracks/ops/phone", fix(1_700_000_000)),
            (
                "owntracks/ops/phone",
                r#"{"_type":"lwt","tst":1699990000}"#.to_string(),
            ),
        ])
        .unwrap();
    assert!(
        rig.hub.wait_for(|h| presence_states(h, dev).len() >= 2, T),
        "{:?}",
        presence_states(&rig.hub, dev)
    );
    assert_eq!(presence_states(&rig.hub, dev), ["online", "offline"]);
    let offline = rig.hub.events_of("presence")[1].clone();
    assert!(offline["last_seen"].is_string(), "{offline}");

    phone
        .publish_qos1("owntracks/ops/phone", fix(1_700_000_060))
        .unwrap();
    assert!(rig.hub.wait_for(|h| presence_states(h, dev).len() >= 3, T));
    assert_eq!(
        presence_states(&rig.hub, dev),
        ["online", "offline", "online"]
    );
    assert_eq!(rig.hub.events_of("location").len(), 2);
}
