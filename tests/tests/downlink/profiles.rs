//! The other profile downlinks: a JSON radio acknowledging by msg_id, OwnTracks locate.

use crate::common::*;
use outpost_system_tests::{wait_until, Rig, Sniffer};
use serde_json::{json, Value};

#[test]
fn json_radio_echoing_the_msg_id_makes_it_delivered() {
    let rig = Rig::new().unwrap();
    let dir = profiles("1h");
    let (_gw, _) = start(&rig, &dir);
    let sniff = Sniffer::start(&rig.devices.url(), "sniff", "radios/+/cmd").unwrap();
    let radio = rig.device("r1").unwrap();
    radio
        .publish_qos1("radios/r1/status", r#"{"ts":1700000000,"bat":81}"#)
        .unwrap();
    assert!(wait_until(T, || rig
        .hget("outpost:dev:r1", "presence")
        .is_some()));
    down(&rig, "j-1", "r1", "Say \"hi\"", 3600);
    assert!(wait_until(T, || !sniff.seen().is_empty()));
    let (topic, payload) = sniff.seen()[0].clone();
    assert_eq!(topic, "radios/r1/cmd");
    let v: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(v, json!({"type":"text","id":"j-1","text":"Say \"hi\""}));
    wait_states(&rig, "j-1", &["queued", "sent"]);
    radio
        .publish_qos1("radios/r1/ack", r#"{"ack":"j-1"}"#)
        .unwrap();
    wait_states(&rig, "j-1", &["queued", "sent", "delivered"]);
}

#[test]
fn owntracks_locate_asks_the_phone_for_its_position() {
    let rig = Rig::new().unwrap();
    let cfg = rig.config().mqtt("owntracks");
    let gw = rig.start(&cfg).unwrap();
    let sniff = Sniffer::start(&rig.devices.url(), "sniff", "owntracks/+/+/cmd").unwrap();
    let phone = rig.device("phone").unwrap();
    let fix = json!({"_type": "location", "lat": 48.1, "lon": 11.5, "tst": 1_700_000_000});
    phone
        .publish_qos1("owntracks/ops/phone", fix.to_string())
        .unwrap();
    assert!(wait_until(T, || rig
        .hget("outpost:dev:ops-phone", "presence")
        .as_deref()
        == Some("online")));
    let out = gw.cli(&["send", "--to", "ops-phone", "--locate"]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(wait_until(T, || !sniff.seen().is_empty()), "{}", gw.log());
    let (topic, payload) = sniff.seen()[0].clone();
    assert_eq!(topic, "owntracks/ops/phone/cmd");
    assert_eq!(payload, r#"{"_type":"cmd","action":"reportLocation"}"#);
    assert!(wait_until(T, || receipts(&rig)
        .iter()
        .filter(|r| r.2 == "sent")
        .count()
        == 1));
    // The apps take no text.
    let out = gw.cli(&["send", "--to", "ops-phone", "hello"]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("failed (no_text_downlink)"));
}
