//! Messages to devices (SPEC §8, issue 12), end to end with the real `outpost`, Redis and two
//! mosquitto brokers: the test publishes to `<prefix>/<gw>/down` as the hub would, watches the
//! device broker for what the gateway sends, and reads receipts (class `receipt`) at the hub.

use std::io::{Read, Write};
use std::time::Duration;

use outpost_system_tests::{
    free_port, wait_until, GatewayConfig, Outpost, ProfileDir, Rig, Sniffer, GW,
};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);
/// The relaying gateway radio of every report here (`!da656a30`).
const GATEWAY_NODE: u32 = 0xda65_6a30;
const RADIO_TOPIC: &str = "msh/US/2/json/LongFast/!da656a30";
const DOWN_TOPIC: &str = "msh/US/2/json/mqtt/";
const DOWN_CLIENT: &str = "outpost-veh-0042-uplink-down";

/// A Meshtastic telemetry packet from node `from` (packet id `id`).
fn report(from: u32, id: u32) -> String {
    json!({"channel":0,"from":from,"id":id,"payload":{"battery_level":80},"sender":"!da656a30",
           "timestamp":1714295500,"to":4294967295u32,"type":"telemetry"})
    .to_string()
}

fn expires_in(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Publishes a down message as the hub would.
fn down(rig: &Rig, msg_id: &str, to: &str, text: &str, ttl_s: i64) {
    let m = json!({"msg_id": msg_id, "to": to, "text": text, "expires": expires_in(ttl_s), "from": "dispatch"});
    down_raw(rig, m.to_string().as_bytes());
}

fn down_raw(rig: &Rig, payload: &[u8]) {
    rig.hub
        .publish(&format!("outpost/v1/{GW}/down"), payload, false)
        .unwrap();
}

/// (msg_id, dev, state, reason) of every receipt the hub stored, in order.
fn receipts(rig: &Rig) -> Vec<(String, String, String, String)> {
    rig.hub
        .events_of("receipt")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("msg_id"), s("dev"), s("state"), s("reason"))
        })
        .collect()
}

fn states_of(rig: &Rig, msg_id: &str) -> Vec<String> {
    receipts(rig)
        .into_iter()
        .filter(|r| r.0 == msg_id)
        .map(|r| r.2)
        .collect()
}

fn wait_states(rig: &Rig, msg_id: &str, want: &[&str]) {
    let ok = wait_until(T, || states_of(rig, msg_id) == want);
    assert!(ok, "{msg_id}: receipts {:?}, want {want:?}", receipts(rig));
}

/// A gateway on `rig` with the meshtastic profile (presence timeout `presence`).
fn start(rig: &Rig, dir: &ProfileDir) -> (Outpost, GatewayConfig) {
    let cfg = rig
        .config()
        .profiles(dir.path())
        .mqtt("meshtastic")
        .mqtt("radio-json");
    let gw = rig.start(&cfg).unwrap();
    let ok = wait_until(T, || rig.hub_broker.subscriptions_of(DOWN_CLIENT) >= 1);
    assert!(ok, "no down subscription; log:\n{}", gw.log());
    (gw, cfg)
}

fn profiles(presence: &str) -> ProfileDir {
    let dir = ProfileDir::copy().unwrap();
    dir.set("meshtastic", "presence_timeout", &format!("{presence:?}"))
        .unwrap();
    dir
}

/// A radio known to the gateway and online: its report was stored.
fn online(rig: &Rig, node: u32, id: u32) {
    let radio = rig.device(&format!("radio-{id}")).unwrap();
    radio.publish_qos1(RADIO_TOPIC, report(node, id)).unwrap();
    let dev = format!("!{node:08x}");
    let ok = wait_until(T, || {
        rig.hget(&format!("outpost:dev:{dev}"), "presence")
            .as_deref()
            == Some("online")
    });
    assert!(ok, "{dev} not online");
}

fn sendtext(to: u32, text: &str) -> Value {
    json!({"from": GATEWAY_NODE, "to": to, "type": "sendtext", "payload": text})
}

fn parsed(s: &Sniffer) -> Vec<Value> {
    s.payloads()
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

#[test]
fn message_to_an_online_meshtastic_radio_is_a_sendtext_and_the_hub_sees_sent() {
    let rig = Rig::new().unwrap();
    let dir = profiles("1h");
    let (_gw, _) = start(&rig, &dir);
    let sniff = Sniffer::start(&rig.devices.url(), "sniff", DOWN_TOPIC).unwrap();
    online(&rig, 42, 1);
    online(&rig, 43, 2);
    down(&rig, "m-1", "!0000002a", "Evacuate sector 4", 3600);
    wait_states(&rig, "m-1", &["queued", "sent"]);
    let want = format!(
        r#"{{"from":{GATEWAY_NODE},"to":42,"type":"sendtext","payload":"Evacuate sector 4"}}"#
    );
    assert_eq!(sniff.payloads(), [want]);
    // "*": one sendtext and one receipt per text-capable device.
    down(&rig, "m-all", "*", "All units: report", 3600);
    assert!(
        wait_until(T, || states_of(&rig, "m-all").len() == 4),
        "{:?}",
        receipts(&rig)
    );
    let mut per_dev: Vec<(String, String)> = receipts(&rig)
        .into_iter()
        .filter(|r| r.0 == "m-all")
        .map(|r| (r.1, r.2))
        .collect();
    per_dev.sort();
    assert_eq!(
        per_dev,
        [
            ("!0000002a", "queued"),
            ("!0000002a", "sent"),
            ("!0000002b", "queued"),
            ("!0000002b", "sent")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let got = parsed(&sniff);
    assert!(
        got.contains(&sendtext(42, "All units: report"))
            && got.contains(&sendtext(43, "All units: report"))
    );
    // Too long for the mesh: refused at once.
    down(&rig, "m-long", "!0000002a", &"x".repeat(234), 3600);
    wait_states(&rig, "m-long", &["failed"]);
    assert_eq!(
        receipts(&rig).iter().find(|r| r.0 == "m-long").unwrap().3,
        "too_long"
    );
    // The gateway hears its own sendtext on msh/US/2/json/mqtt/ (ingest filter msh/+/2/json/#).
    assert!(
        rig.drops().is_empty(),
        "its own downlink read as input: {:?}",
        rig.drops()
    );
    assert_eq!(rig.hub.errors(), Vec::<String>::new());
}

#[test]
fn message_to_an_offline_radio_waits_and_goes_in_order_when_it_reports_or_expires() {
    let rig = Rig::new().unwrap();
    let dir = profiles("2s");
    let (gw, _) = start(&rig, &dir);
    let sniff = Sniffer::start(&rig.devices.url(), "sniff", DOWN_TOPIC).unwrap();
    online(&rig, 42, 1);
    online(&rig, 44, 2);
    let offline = |dev: &str| {
        rig.hget(&format!("outpost:dev:{dev}"), "presence")
            .as_deref()
            == Some("offline")
    };
    assert!(
        wait_until(T, || offline("!0000002a") && offline("!0000002c")),
        "{}",
        gw.log()
    );
    down(&rig, "w-1", "!0000002a", "first", 3600);
    down(&rig, "w-2", "!0000002a", "second", 3600);
    down(&rig, "w-exp", "!0000002c", "too late", 2);
    wait_states(&rig, "w-1", &["queued"]);
    wait_states(&rig, "w-2", &["queued"]);
    let status = gw.cli(&["status"]).unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("Messages pending: 3") && text.contains("w-2"),
        "{text}"
    );
    // The 2 s message expires while its radio stays silent.
    wait_states(&rig, "w-exp", &["queued", "expired"]);
    assert!(
        sniff.payloads().is_empty(),
        "sent to an offline radio: {:?}",
        sniff.payloads()
    );
    online(&rig, 42, 3);
    wait_states(&rig, "w-1", &["queued", "sent"]);
    wait_states(&rig, "w-2", &["queued", "sent"]);
    assert_eq!(
        parsed(&sniff),
        [sendtext(42, "first"), sendtext(42, "second")]
    );
}

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

/// The body of `GET /metrics`.
fn metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string())
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
