//! The whole downlink with the real hub (SPEC §8): `POST /api/v1/messages` on `outpost-hub`, the
//! real `outpost` taking it from the hub broker, the `sendtext` on the device broker, and the
//! receipts back in `GET /api/v1/messages/{msg_id}`. A message posted while the gateway is down
//! reaches it when it comes back.

use std::time::Duration;

use outpost_system_tests::{wait_until, ProfileDir, Rig, Sniffer};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

fn report(id: u32) -> String {
    json!({"channel":0,"from":42,"id":id,"payload":{"battery_level":80},"sender":"!da656a30",
           "timestamp":1714295500,"to":4294967295u32,"type":"telemetry"})
    .to_string()
}

/// The receipt states in the hub's history of `msg_id`.
fn history(m: &Value) -> Vec<String> {
    m["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| e["state"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn posted_message_reaches_the_radio_and_its_receipts_the_hub_api() {
    // The rig's hub is the real `outpost-hub` with its own Redis.
    let rig = Rig::new().unwrap();
    let hub = &rig.hub;
    let api = hub.api();
    let dir = ProfileDir::copy().unwrap();
    let cfg = rig.config().profiles(dir.path()).mqtt("meshtastic");
    let mut gw = rig.start(&cfg).unwrap();
    let sniff = Sniffer::start(&rig.devices.url(), "sniff", "msh/+/2/json/mqtt/").unwrap();
    let radio = rig.device("radio").unwrap();
    radio
        .publish_qos1("msh/US/2/json/LongFast/!da656a30", report(1))
        .unwrap();
    assert!(
        wait_until(T, || api
            .get("/api/v1/devices/!0000002a")
            .is_ok_and(|(s, _)| s == 200)),
        "{}",
        hub.log()
    );

    let (s, created) = api
        .post(
            "/api/v1/messages",
            &json!({"to": "!0000002a", "text": "Evacuate sector 4"}),
        )
        .unwrap();
    assert_eq!(s, 201, "{created}");
    let id = created["msg_id"].as_str().unwrap().to_string();
    let want = r#"{"from":3664079408,"to":42,"type":"sendtext","payload":"Evacuate sector 4"}"#;
    assert!(
        wait_until(T, || sniff.payloads() == [want]),
        "{:?}\n{}",
        sniff.payloads(),
        gw.log()
    );
    let sent = || api.json(&format!("/api/v1/messages/{id}")).unwrap();
    assert!(wait_until(T, || sent()["state"] == "sent"), "{}", sent());
    assert_eq!(history(&sent()), ["queued", "sent"]);

    // Posted while the gateway is down: it gets the message when it is back.
    gw.kill9().unwrap();
    let (s, created) = api
        .post(
            "/api/v1/messages",
            &json!({"to": "!0000002a", "text": "While you were out"}),
        )
        .unwrap();
    assert_eq!(s, 201, "{created}");
    let id2 = created["msg_id"].as_str().unwrap().to_string();
    gw.restart().unwrap();
    let m2 = || api.json(&format!("/api/v1/messages/{id2}")).unwrap();
    assert!(
        wait_until(T, || m2()["state"] == "sent"),
        "{}\n{}",
        m2(),
        gw.log()
    );
    assert_eq!(
        history(&m2()),
        ["queued", "sent"],
        "one receipt per state, though the hub may offer it twice"
    );
    assert_eq!(sniff.payloads().len(), 2, "{:?}", sniff.payloads());
}
