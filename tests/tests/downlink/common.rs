//! Helpers of the downlink tests: the down topic as the hub would publish, receipts at the hub.

use std::io::{Read, Write};
use std::time::Duration;

use outpost_system_tests::{wait_until, GatewayConfig, Outpost, ProfileDir, Rig, Sniffer, GW};
use serde_json::{json, Value};

pub const T: Duration = Duration::from_secs(20);
/// The relaying gateway radio of every report here (`!da656a30`).
pub const GATEWAY_NODE: u32 = 0xda65_6a30;
pub const RADIO_TOPIC: &str = "msh/US/2/json/LongFast/!da656a30";
pub const DOWN_TOPIC: &str = "msh/US/2/json/mqtt/";
pub const DOWN_CLIENT: &str = "outpost-veh-0042-uplink-down";

/// A Meshtastic telemetry packet from node `from` (packet id `id`).
pub fn report(from: u32, id: u32) -> String {
    json!({"channel":0,"from":from,"id":id,"payload":{"battery_level":80},"sender":"!da656a30",
           "timestamp":1714295500,"to":4294967295u32,"type":"telemetry"})
    .to_string()
}

pub fn expires_in(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Publishes a down message as the hub would.
pub fn down(rig: &Rig, msg_id: &str, to: &str, text: &str, ttl_s: i64) {
    let m = json!({"msg_id": msg_id, "to": to, "text": text, "expires": expires_in(ttl_s), "from": "dispatch"});
    down_raw(rig, m.to_string().as_bytes());
}

pub fn down_raw(rig: &Rig, payload: &[u8]) {
    rig.publish_on_hub_broker(&format!("outpost/v1/{GW}/down"), payload)
        .unwrap();
}

/// (msg_id, dev, state, reason) of every receipt the hub stored, in order.
pub fn receipts(rig: &Rig) -> Vec<(String, String, String, String)> {
    rig.hub
        .events_of("receipt")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("msg_id"), s("dev"), s("state"), s("reason"))
        })
        .collect()
}

pub fn states_of(rig: &Rig, msg_id: &str) -> Vec<String> {
    rig.receipt_states(msg_id)
}

pub fn wait_states(rig: &Rig, msg_id: &str, want: &[&str]) {
    let ok = wait_until(T, || states_of(rig, msg_id) == want);
    assert!(ok, "{msg_id}: receipts {:?}, want {want:?}", receipts(rig));
}

/// A gateway on `rig` with the meshtastic profile (presence timeout `presence`).
pub fn start(rig: &Rig, dir: &ProfileDir) -> (Outpost, GatewayConfig) {
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

pub fn profiles(presence: &str) -> ProfileDir {
    let dir = ProfileDir::copy().unwrap();
    dir.set("meshtastic", "presence_timeout", &format!("{presence:?}"))
        .unwrap();
    dir
}

/// A radio known to the gateway and online: its report was stored.
pub fn online(rig: &Rig, node: u32, id: u32) {
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

pub fn sendtext(to: u32, text: &str) -> Value {
    json!({"from": GATEWAY_NODE, "to": to, "type": "sendtext", "payload": text})
}

pub fn parsed(s: &Sniffer) -> Vec<Value> {
    s.payloads()
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

/// The body of `GET /metrics`.
pub fn metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string())
}
