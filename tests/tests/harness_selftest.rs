//! Tests of the harness itself: real redis-server and mosquitto, no `outpost` binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_system_tests::dedup::{ArrivalKind, ConnectOrder};
use outpost_system_tests::{
    parse_event_id, wait_until, DedupStore, Device, EventId, GatewayConfig, Mosquitto, RedisServer,
    TcpProxy, WireTap,
};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- redis

#[test]
fn redis_data_survives_kill9_and_restart() {
    let mut redis = RedisServer::new().unwrap();
    assert!(redis.url().starts_with("redis://127.0.0.1:"));
    let mut c = redis.conn().unwrap();
    let id: String = redis::cmd("XADD")
        .arg("outpost:test")
        .arg("*")
        .arg("k")
        .arg("v")
        .query(&mut c)
        .unwrap();
    redis::cmd("SET")
        .arg("plain")
        .arg("1")
        .exec(&mut c)
        .unwrap();
    drop(c);

    redis.kill9().unwrap();
    assert!(!redis.is_running());
    assert!(redis.conn().is_err(), "killed server must not answer");
    redis.restart().unwrap();

    let mut c = redis.conn().unwrap();
    let len: u64 = redis::cmd("XLEN")
        .arg("outpost:test")
        .query(&mut c)
        .unwrap();
    assert_eq!(len, 1, "stream entry {id} lost across kill -9");
    let plain: String = redis::cmd("GET").arg("plain").query(&mut c).unwrap();
    assert_eq!(plain, "1");
}

#[test]
fn redis_answers_on_its_unix_socket() {
    let redis = RedisServer::new().unwrap();
    let client = redis::Client::open(redis.unix_url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}

// ---------------------------------------------------------------- mosquitto + wire tap + device

fn batch(gw: &str, class: &str, ids: &[&str]) -> Value {
    let events: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "dev": "d1", "class": class, "replay": false}))
        .collect();
    json!({"gw": gw, "class": class, "events": events})
}

#[test]
fn mosquitto_persistent_session_keeps_qos1_across_stop_start() {
    let mut broker = Mosquitto::new().unwrap();
    // Subscribe once with a persistent session, then go away.
    drop(WireTap::connect(&broker.url(), "p").unwrap());

    let dev = Device::connect(&broker.url(), "dev-1").unwrap();
    let payload = batch("gw1", "location", &["1-0"]).to_string();
    dev.publish_qos1("p/gw1/up/location", payload).unwrap();
    drop(dev);

    broker.stop().unwrap();
    broker.start().unwrap();

    let tap = WireTap::connect(&broker.url(), "p").unwrap();
    assert!(
        tap.wait_for_events("location", 1, T),
        "queued QoS 1 message lost"
    );
    let tl = tap.timeline();
    assert_eq!(
        tl[0].kind,
        ArrivalKind::HubConnected {
            session_present: true
        }
    );
}

#[test]
fn wire_tap_reconnects_after_hub_broker_restart() {
    let mut broker = Mosquitto::new().unwrap();
    let tap = WireTap::connect(&broker.url(), "p").unwrap();
    broker.stop().unwrap();
    broker.start().unwrap();
    let dev = Device::connect(&broker.url(), "dev-1").unwrap();
    dev.publish_qos1(
        "p/gw1/up/alert",
        batch("gw1", "alert", &["5-0"]).to_string(),
    )
    .unwrap();
    assert!(tap.wait_for_events("alert", 1, T));
    let connects = tap
        .timeline()
        .iter()
        .filter(|a| matches!(a.kind, ArrivalKind::HubConnected { .. }))
        .count();
    assert!(connects >= 2, "tap did not reconnect");
}

#[test]
fn wire_tap_records_state_snapshot_order_and_retain_flag() {
    let broker = Mosquitto::new().unwrap();
    let dev = Device::connect(&broker.url(), "gw-sim").unwrap();
    // Retained before the tap subscribes: delivered with the retain flag.
    dev.publish_retained("p/gw1/state", r#"{"state":"online"}"#)
        .unwrap();
    let tap = WireTap::connect(&broker.url(), "p").unwrap();
    assert!(tap.wait_for(|h| h.state().is_some(), T));
    assert!(tap.timeline().last().unwrap().retained);

    // A live reconnect: state, snapshot, then history.
    dev.publish_retained("p/gw1/state", r#"{"state":"online","since":"x"}"#)
        .unwrap();
    dev.publish_retained("p/gw1/snapshot", r#"{"devices":[]}"#)
        .unwrap();
    dev.publish_qos1(
        "p/gw1/up/location",
        batch("gw1", "location", &["1-0"]).to_string(),
    )
    .unwrap();
    // And one where history came first.
    dev.publish_retained("p/gw1/state", r#"{"state":"online"}"#)
        .unwrap();
    dev.publish_qos1(
        "p/gw1/up/location",
        batch("gw1", "location", &["2-0"]).to_string(),
    )
    .unwrap();
    dev.publish_retained("p/gw1/snapshot", r#"{"devices":[1]}"#)
        .unwrap();
    assert!(tap.wait_for(|h| h.snapshots().len() == 2, T));

    assert_eq!(tap.snapshot().unwrap(), json!({"devices":[1]}));
    assert_eq!(tap.state().unwrap()["state"], "online");
    let orders = tap.connect_orders();
    let gw = "gw1".to_string();
    assert_eq!(
        orders,
        vec![
            ConnectOrder {
                gw: gw.clone(),
                snapshot_first: Some(true)
            },
            ConnectOrder {
                gw,
                snapshot_first: Some(false)
            },
        ]
    );
    assert!(tap.errors().is_empty(), "{:?}", tap.errors());
}

#[test]
fn device_bulk_publish_is_acked_and_delivered_in_order() {
    let broker = Mosquitto::new().unwrap();
    let tap = WireTap::connect(&broker.url(), "p").unwrap();
    let dev = Device::connect(&broker.url(), "dev-bulk").unwrap();
    let n = 2000;
    let started = Instant::now();
    let msgs = (0..n).map(|i| {
        let id = format!("1000-{i}");
        (
            "p/gw1/up/status",
            batch("gw1", "status", &[&id]).to_string(),
        )
    });
    dev.publish_many_qos1(msgs).unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(tap.wait_for_events("status", n, T));
    let ids: Vec<String> = tap
        .events_of("status")
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..n).map(|i| format!("1000-{i}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(tap.duplicates_dropped(), 0);
}

#[test]
fn device_publishes_a_decode_capture() {
    let broker = Mosquitto::new().unwrap();
    let dev = Device::connect(&broker.url(), "dev-cap").unwrap();
    let n = dev
        .publish_capture("owntracks/a/b {\"_type\":\"location\"}\n\nowntracks/a/c {}\n")
        .unwrap();
    assert_eq!(n, 2);
}

// ---------------------------------------------------------------- proxy

/// An echo server on a free port; counts accepted connections.
fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

fn connect(proxy: &TcpProxy) -> TcpStream {
    let s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn read_exact_string(s: &mut TcpStream, n: usize) -> String {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn proxy_pass_forwards_both_ways() {
    let (echo, _) = echo_server();
    let proxy = TcpProxy::start(echo).unwrap();
    let mut s = connect(&proxy);
    s.write_all(b"hello").unwrap();
    assert_eq!(read_exact_string(&mut s, 5), "hello");
    assert_eq!(proxy.connections_active(), 1);
}

#[test]
fn proxy_pause_holds_traffic_without_closing_then_releases_it() {
    let (echo, _) = echo_server();
    let proxy = TcpProxy::start(echo).unwrap();
    let mut s = connect(&proxy);
    s.write_all(b"a").unwrap();
    assert_eq!(read_exact_string(&mut s, 1), "a");

    proxy.pause();
    s.write_all(b"held").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 16];
    let err = s
        .read(&mut buf)
        .expect_err("nothing may pass a paused link (and no EOF)");
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));

    proxy.pass();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_exact_string(&mut s, 4), "held");
}

#[test]
fn proxy_pause_drops_connections_abandoned_during_the_outage() {
    let (echo, accepted) = echo_server();
    let proxy = TcpProxy::start(echo).unwrap();
    proxy.pause();
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.write_all(b"CONNECT").unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(100));
    proxy.pass();
    let mut live = connect(&proxy);
    live.write_all(b"x").unwrap();
    assert_eq!(read_exact_string(&mut live, 1), "x");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "stale connection forwarded"
    );
}

#[test]
fn proxy_cut_closes_connections_and_refuses_new_until_pass() {
    let (echo, _) = echo_server();
    let proxy = TcpProxy::start(echo).unwrap();
    let mut s = connect(&proxy);
    proxy.cut();
    let mut buf = [0u8; 16];
    // EOF or reset: either way the link is gone.
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    assert!(wait_until(T, || proxy.connections_active() == 0));

    let mut refused = connect(&proxy);
    let _ = refused.write_all(b"x");
    assert!(matches!(refused.read(&mut buf), Ok(0) | Err(_)));

    proxy.pass();
    let mut s = connect(&proxy);
    s.write_all(b"back").unwrap();
    assert_eq!(read_exact_string(&mut s, 4), "back");
}

#[test]
fn proxy_delay_applies_each_way_and_keeps_throughput() {
    let (echo, _) = echo_server();
    let proxy = TcpProxy::start(echo).unwrap();
    proxy.set_delay(Duration::from_millis(300));
    let mut s = connect(&proxy);

    let t0 = Instant::now();
    s.write_all(b"ping").unwrap();
    assert_eq!(read_exact_string(&mut s, 4), "ping");
    let rtt = t0.elapsed();
    assert!(rtt >= Duration::from_millis(600), "round trip {rtt:?}");
    assert!(rtt < Duration::from_millis(1500), "round trip {rtt:?}");

    // Ten sends 50 ms apart: delayed, not serialized, so all back in ~ 600 + 450 ms.
    let t0 = Instant::now();
    for i in 0..10u8 {
        s.write_all(&[b'0' + i]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_exact_string(&mut s, 10), "0123456789");
    let total = t0.elapsed();
    assert!(total < Duration::from_millis(2000), "took {total:?}");

    proxy.set_delay(Duration::ZERO);
    let t0 = Instant::now();
    s.write_all(b"z").unwrap();
    assert_eq!(read_exact_string(&mut s, 1), "z");
    assert!(t0.elapsed() < Duration::from_millis(200));
}

// ---------------------------------------------------------------- dedup (sans I/O)

#[test]
fn event_ids_compare_numerically() {
    let id = |s| parse_event_id(s).unwrap();
    assert_eq!(
        id("1700000000000-3"),
        EventId {
            ms: 1_700_000_000_000,
            seq: 3
        }
    );
    assert!(id("9-0") < id("10-0"));
    assert!(id("5-2") < id("5-10"));
    assert!(id("5-10") < id("6-0"));
    for bad in ["", "5", "5-", "-1", "a-1", "1-2-3", "1.5-0", " 1-0"] {
        assert_eq!(parse_event_id(bad), None, "{bad:?}");
    }
}

fn ev(class: &str, id: &str) -> Value {
    json!({"id": id, "dev": "d1", "class": class})
}

#[test]
fn dedup_keeps_highest_id_per_gateway_and_class() {
    let mut s = DedupStore::new("p");
    assert!(s.accept_event("gw1", "location", ev("location", "9-0")));
    assert!(s.accept_event("gw1", "location", ev("location", "10-0")));
    assert!(!s.accept_event("gw1", "location", ev("location", "10-0")));
    assert!(!s.accept_event("gw1", "location", ev("location", "9-5")));
    // Other class, other gateway: independent.
    assert!(s.accept_event("gw1", "alert", ev("alert", "1-0")));
    assert!(s.accept_event("gw2", "location", ev("location", "1-0")));
    assert_eq!(s.duplicates_dropped(), 2);
    assert_eq!(s.events_of("location").len(), 3);
    assert_eq!(s.highest_id("gw1", "location"), parse_event_id("10-0"));
    assert!(!s.accept_event("gw1", "location", json!({"id": "x"})));
    assert_eq!(s.errors().len(), 1);
}

#[test]
fn dedup_handles_republished_and_overlapping_batches() {
    let mut s = DedupStore::new("outpost/v1");
    let b1 = batch("gw1", "message", &["1-0", "1-1", "2-0"]).to_string();
    let b2 = batch("gw1", "message", &["1-1", "2-0", "3-0"]).to_string();
    s.handle_message("outpost/v1/gw1/up/message", b1.as_bytes(), false);
    s.handle_message("outpost/v1/gw1/up/message", b1.as_bytes(), false);
    s.handle_message("outpost/v1/gw1/up/message", b2.as_bytes(), false);
    let ids: Vec<&str> = s
        .events_of("message")
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1-0", "1-1", "2-0", "3-0"]);
    assert_eq!(s.duplicates_dropped(), 5);
    assert_eq!(s.batches().len(), 3);
    assert_eq!(
        s.timeline()[2].kind,
        ArrivalKind::Batch {
            gw: "gw1".into(),
            class: "message".into(),
            stored: 1,
            duplicates: 2
        }
    );
    assert!(s.errors().is_empty(), "{:?}", s.errors());
}

#[test]
fn dedup_reports_protocol_errors() {
    let mut s = DedupStore::new("p");
    let wrong_class = json!({"gw": "gw1", "class": "alert", "events": [ev("location", "1-0")]});
    s.handle_message("p/gw1/up/alert", wrong_class.to_string().as_bytes(), false);
    s.handle_message("p/gw1/up/alert", b"not json", false);
    s.handle_message(
        "p/gw2/up/alert",
        batch("gw1", "alert", &[]).to_string().as_bytes(),
        false,
    );
    s.handle_message("elsewhere/x", b"{}", false);
    assert_eq!(s.errors().len(), 4, "{:?}", s.errors());
}

// ---------------------------------------------------------------- config

#[test]
fn gateway_config_renders_valid_toml() {
    let cfg = GatewayConfig::new(
        "veh-1",
        "redis://127.0.0.1:1/0",
        "mqtt://127.0.0.1:2",
        "mqtt://127.0.0.1:3",
    )
    .keep_alive("5s")
    .batch_max_events(64)
    .inflight(4)
    .buffer_max_events(1000)
    .mqtt("owntracks")
    .mqtt_topic("meshtastic", "msh/#")
    .serial("gps0", "/dev/pts/7", "nmea-gps")
    .extra_toml("[ops]\nlisten = \"127.0.0.1:0\"");
    let text = cfg.to_toml();
    let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(v["gateway"]["id"].as_str(), Some("veh-1"));
    assert!(v["gateway"]["profiles"]
        .as_str()
        .unwrap()
        .ends_with("device-profiles"));
    assert_eq!(v["redis"]["prefix"].as_str(), Some("outpost"));
    assert_eq!(
        v["devices_mqtt"]["client_id"].as_str(),
        Some("outpost-veh-1")
    );
    assert_eq!(v["uplink"]["topic_prefix"].as_str(), Some("outpost/v1"));
    assert_eq!(v["uplink"]["inflight"].as_integer(), Some(4));
    assert_eq!(v["buffer"]["max_events"].as_integer(), Some(1000));
    assert_eq!(v["mqtt"].as_array().unwrap().len(), 2);
    assert_eq!(v["mqtt"][1]["topic"].as_str(), Some("msh/#"));
    assert_eq!(v["serial"][0]["path"].as_str(), Some("/dev/pts/7"));
    assert_eq!(v["ops"]["listen"].as_str(), Some("127.0.0.1:0"));
}

// ---------------------------------------------------------------- outpost runner

/// Builds the real binary (slow on a cold target dir), so not part of the fast selftests:
/// `cargo test -p outpost-system-tests -- --ignored outpost_runner`.
#[test]
#[ignore = "builds the outpost binary"]
fn outpost_runner_builds_the_binary_and_captures_its_output() {
    let bin = outpost_system_tests::outpost_bin().unwrap();
    assert!(bin.is_file(), "{}", bin.display());
    let cfg = GatewayConfig::new(
        "veh-1",
        "redis://127.0.0.1:1/0",
        "mqtt://127.0.0.1:2",
        "mqtt://127.0.0.1:3",
    );
    let mut gw = outpost_system_tests::Outpost::start_with(&cfg).unwrap();
    assert!(std::fs::read_to_string(gw.config_path())
        .unwrap()
        .contains("veh-1"));
    // Whatever the daemon does with this config, it must be stoppable and leave a log.
    if gw.is_running() {
        gw.kill9().unwrap();
    }
    assert!(gw.log().contains("harness: outpost run started"));
    gw.restart().unwrap();
    assert_eq!(gw.log().matches("harness: outpost run started").count(), 2);
    let help = gw.cli(&["--version"]);
    assert!(help.is_ok());
}
