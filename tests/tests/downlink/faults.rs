//! Faults and bad input: the uplink cut, kill -9 of gateway and Redis, bad down messages, no hub at all.

use crate::common::*;
use outpost_system_tests::{free_port, wait_until, GatewayConfig, Rig, Sniffer, GW};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn receipts_written_while_the_uplink_is_cut_arrive_after_it_returns() {
    let rig = Rig::with_proxy().unwrap();
    let dir = profiles("1h");
    let (gw, _) = start(&rig, &dir);
    let sniff = Sniffer::start(&rig.devices.url(), "sniff", DOWN_TOPIC).unwrap();
    online(&rig, 42, 1);
    // Sent by the hub before the cut; the gateway has it once a receipt is back.
    down(&rig, "c-1", "!0000002a", "before the cut", 3600);
    wait_states(&rig, "c-1", &["queued", "sent"]);
    rig.proxy().cut();
    assert!(wait_until(T, || rig.uplink_state().as_deref() == Some("down")));
    // Queued locally while the link is down: goes to the radio, its receipts wait.
    let out = gw
        .cli(&["send", "--to", "!0000002a", "during the cut"])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wait_until(T, || parsed(&sniff)
        .contains(&sendtext(42, "during the cut"))));
    // Published by the hub during the cut: its broker keeps it for the gateway's session.
    down(&rig, "c-2", "!0000002a", "published during the cut", 3600);
    assert!(states_of(&rig, "c-2").is_empty());
    rig.proxy().pass();
    wait_states(&rig, "c-2", &["queued", "sent"]);
    let local: Vec<_> = receipts(&rig)
        .into_iter()
        .filter(|r| r.0.starts_with(GW))
        .map(|r| r.2)
        .collect();
    assert!(
        wait_until(T, || receipts(&rig)
            .iter()
            .filter(|r| r.0.starts_with(GW))
            .count()
            == 2),
        "{local:?}"
    );
    assert_eq!(parsed(&sniff).len(), 3);
    assert_eq!(rig.hub.errors(), Vec::<String>::new());
}

#[test]
fn pending_messages_survive_kill9_of_gateway_and_redis_and_go_out_exactly_once() {
    let mut rig = Rig::new().unwrap();
    let dir = profiles("2s");
    let (mut gw, _) = start(&rig, &dir);
    let sniff = Sniffer::start(&rig.devices.url(), "sniff", DOWN_TOPIC).unwrap();
    online(&rig, 42, 1);
    assert!(wait_until(T, || rig
        .hget("outpost:dev:!0000002a", "presence")
        .as_deref()
        == Some("offline")));
    for i in 0..3 {
        down(
            &rig,
            &format!("k-{i}"),
            "!0000002a",
            &format!("msg {i}"),
            3600,
        );
    }
    for i in 0..3 {
        wait_states(&rig, &format!("k-{i}"), &["queued"]);
    }
    gw.kill9().unwrap();
    rig.redis.kill9().unwrap();
    rig.redis.restart().unwrap();
    gw.restart().unwrap();
    // A redelivered duplicate from the hub is ignored.
    down(&rig, "k-0", "!0000002a", "msg 0", 3600);
    online(&rig, 42, 2);
    for i in 0..3 {
        wait_states(&rig, &format!("k-{i}"), &["queued", "sent"]);
    }
    let want: Vec<Value> = (0..3).map(|i| sendtext(42, &format!("msg {i}"))).collect();
    assert!(wait_until(T, || parsed(&sniff).len() >= 3));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(parsed(&sniff), want, "each message exactly once, in order");
    assert_eq!(receipts(&rig).len(), 6, "{:?}", receipts(&rig));
}

#[test]
fn bad_down_messages_get_a_failed_receipt_and_do_not_block_the_next() {
    let rig = Rig::new().unwrap();
    let dir = profiles("1h");
    let port = free_port();
    let cfg = rig
        .config()
        .profiles(dir.path())
        .mqtt("meshtastic")
        .ops_listen(&format!("127.0.0.1:{port}"));
    let gw = rig.start(&cfg).unwrap();
    assert!(wait_until(T, || rig
        .hub_broker
        .subscriptions_of(DOWN_CLIENT)
        >= 1));
    online(&rig, 42, 1);
    down_raw(&rig, b"not json at all");
    down(&rig, "b-unknown", "nobody", "hello", 3600);
    down_raw(
        &rig,
        json!({"msg_id":"b-notext","to":"!0000002a","expires":expires_in(60)})
            .to_string()
            .as_bytes(),
    );
    down(&rig, "b-expired", "!0000002a", "old", -10);
    down(&rig, "b-ok", "!0000002a", "fine", 3600);
    down(&rig, "b-ok", "!0000002a", "fine again", 3600);
    wait_states(&rig, "b-ok", &["queued", "sent"]);
    let reason = |id: &str| {
        wait_states(&rig, id, &["failed"]);
        receipts(&rig).into_iter().find(|r| r.0 == id).unwrap().3
    };
    assert_eq!(reason("b-unknown"), "unknown_device");
    assert_eq!(reason("b-notext"), "missing_text");
    assert_eq!(reason("b-expired"), "already_expired");
    let stats = rig.hash("outpost:down:stats");
    assert_eq!(stats.get("bad:not_json"), Some(&1), "{stats:?}");
    assert_eq!(stats.get("bad:duplicate"), Some(&1), "{stats:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        states_of(&rig, "b-ok"),
        ["queued", "sent"],
        "duplicate: no second receipt"
    );
    let m = metrics(port);
    for (series, want) in [
        (r#"outpost_downlink_messages_total{state="sent"}"#, "1"),
        (r#"outpost_downlink_messages_total{state="failed"}"#, "3"),
        (r#"outpost_downlink_bad_total{reason="not_json"}"#, "1"),
        (r#"outpost_downlink_bad_total{reason="duplicate"}"#, "1"),
        ("outpost_downlink_pending", "0"),
    ] {
        assert!(
            m.lines().any(|l| l == format!("{series} {want}")),
            "{series} {want}:\n{m}"
        );
    }
    drop(gw);
}

#[test]
fn outpost_send_queues_with_no_hub_at_all() {
    let rig = Rig::new().unwrap();
    let dir = profiles("1h");
    // A hub URL where nothing listens.
    let cfg = GatewayConfig::new(
        GW,
        &rig.redis.url(),
        &rig.devices.url(),
        "mqtt://127.0.0.1:9",
    )
    .profiles(dir.path())
    .mqtt("meshtastic");
    let gw = rig.start(&cfg).unwrap();
    let sniff = Sniffer::start(&rig.devices.url(), "sniff", DOWN_TOPIC).unwrap();
    online(&rig, 42, 1);
    let out = gw
        .cli(&["send", "--to", "!0000002a", "--ttl", "10m", "Hold position"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("!0000002a: queued"),
        "{text}"
    );
    assert!(
        wait_until(T, || parsed(&sniff) == [sendtext(42, "Hold position")]),
        "{}",
        gw.log()
    );
    let out = gw.cli(&["send", "--to", "nobody", "x"]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nobody: failed (unknown_device)"));
    // Receipts wait in the outbox for the hub.
    let status = gw.cli(&["status", "--json"]).unwrap();
    let v: Value = serde_json::from_slice(&status.stdout).unwrap();
    let receipt = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "receipt")
        .unwrap()
        .clone();
    assert_eq!(receipt["backlog"], 3, "{receipt}");
}
