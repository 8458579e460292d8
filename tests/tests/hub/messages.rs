//! `POST /api/v1/messages` (SPEC §8): validated, published down, kept with its state.

use std::time::Duration;

use outpost_system_tests::wait_until;
use serde_json::{json, Value};

use crate::{batch, loc, up, Bench, T};

#[test]
fn post_message_is_validated_published_down_and_kept_with_its_state() {
    let b = Bench::new();
    let api = b.api();
    b.gw.publish_qos1(
        &up("veh-1", "location"),
        batch(
            "veh-1",
            "location",
            &[loc(1, "r7", 1.0, 2.0, "2026-11-30T10:00:00.000Z")],
        ),
    )
    .unwrap();
    assert!(wait_until(T, || api
        .get("/api/v1/devices/r7")
        .is_ok_and(|(s, _)| s == 200)));
    let post = |v: Value| api.post("/api/v1/messages", &v).unwrap();
    let (s, e) = post(json!({"gw": "veh-9", "to": "r7", "text": "x"}));
    assert_eq!(s, 404, "{e}");
    assert!(e["error"].as_str().unwrap().contains("unknown gateway"));
    let (s, e) = post(json!({"gw": "veh-1", "to": "nobody", "text": "x"}));
    assert_eq!(s, 404, "{e}");
    assert!(e["error"].as_str().unwrap().contains("unknown device"));
    assert_eq!(post(json!({"gw": "veh-1", "to": "r7", "text": ""})).0, 400);
    assert_eq!(
        post(json!({"gw": "veh-1", "to": "r7", "text": "x".repeat(4097)})).0,
        400
    );
    assert_eq!(post(json!({"to": "r7"})).0, 400);
    // A subscriber on the gateway's down topic, as the gateway would be.
    let port = b.broker.port().to_string();
    let sub = std::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "outpost/v1/veh-1/down",
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "20",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub (mosquitto-clients) on PATH");
    std::thread::sleep(Duration::from_millis(500));
    // `gw` may be left out: the hub knows r7's gateway.
    let (s, created) =
        post(json!({"to": "r7", "text": "Evacuate sector 4 <now> & \"fast\"", "ttl": "1h"}));
    assert_eq!(s, 201, "{created}");
    let id = created["msg_id"].as_str().unwrap().to_string();
    let out = sub.wait_with_output().unwrap();
    let down: Value = serde_json::from_slice(&out.stdout).expect("one down message");
    assert_eq!(down["msg_id"], id.as_str());
    assert_eq!(down["to"], "r7");
    assert_eq!(down["text"], "Evacuate sector 4 <now> & \"fast\"");
    assert_eq!(down["from"], "local");
    assert!(down["expires"].as_str().unwrap().ends_with('Z'));
    let m = api.json(&format!("/api/v1/messages/{id}")).unwrap();
    assert_eq!(
        (m["gw"].as_str(), m["to"].as_str(), m["state"].as_str()),
        (Some("veh-1"), Some("r7"), Some("accepted"))
    );
    assert_eq!(m["history"], json!([]));
    assert_eq!(api.get("/api/v1/messages/nope").unwrap().0, 404);
}
