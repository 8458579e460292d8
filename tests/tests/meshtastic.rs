//! Meshtastic beyond JSON (issue 13, SPEC §11 and §8). Protobuf envelopes over MQTT, made by
//! upstream's code, through the real binary: decrypted, deduplicated across relays and across
//! the JSON uplink, bad ones counted by reason.
//!
//! A Meshtastic radio on USB: a scripted radio on a pseudo-terminal
//! ([`outpost_system_tests::mesh_radio`]) answers the `want_config_id` handshake, answers
//! heartbeats, emits packets made by upstream's code, and acks or NAKs the text sent to it.
//! Uplink through the real `outpost` binary to a private Redis and hub; the radio task's own
//! downlink API here through the gateway library on the same pty, with the same Redis (the
//! whole downlink through the binary, `outpost send` to receipts: tests/tests/downlink/radio.rs).

use base64::Engine as _;
use outpost::decode::meshtastic_serial::downlink::Outcome;
use outpost::ingest::meshtastic_serial::{self as radio_task, TextRequest};
use outpost_system_tests::mesh_radio::MeshRadio;
use outpost_system_tests::{
    free_port, pty::Pty, wait_until, GatewayConfig, Hub, Mosquitto, Outpost, RedisServer,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const RADIO_NODE: u32 = 0xda65_6a30;
const OPS_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

fn packets() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../gateway/tests/fixtures/meshtastic/packets.bin");
    std::fs::read(p).expect("fixture")
}

/// The shipped profile with the Ops channel's key, a 1 s heartbeat and a 1 s ack timeout.
fn profiles(dir: &Path) -> PathBuf {
    let p = dir.join("profiles");
    std::fs::create_dir_all(&p).unwrap();
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../device-profiles/meshtastic-serial.toml");
    let text = std::fs::read_to_string(shipped)
        .unwrap()
        .replace(
            r#"keys = ["AQ=="]"#,
            &format!(r#"keys = ["AQ==", "{OPS_KEY}"]"#),
        )
        .replace(r#"heartbeat = "30s""#, r#"heartbeat = "1s""#)
        .replace(r#"ack_timeout = "2m""#, r#"ack_timeout = "1s""#);
    assert!(
        text.contains(OPS_KEY) && text.contains(r#"heartbeat = "1s""#),
        "profile template changed"
    );
    std::fs::write(p.join("meshtastic-serial.toml"), text).unwrap();
    p
}

fn config(redis: &RedisServer, hub_url: &str, profiles: &Path, tty: &Path) -> GatewayConfig {
    GatewayConfig::new(
        "veh-1",
        &redis.url(),
        &format!("mqtt://127.0.0.1:{}", free_port()),
        hub_url,
    )
    .profiles(profiles)
    .keep_alive("5s")
    .serial("radio0", tty, "meshtastic-serial")
}

fn presence_states(hub: &Hub, dev: &str) -> Vec<String> {
    hub.events_of("presence")
        .iter()
        .filter(|e| e["dev"] == dev)
        .map(|e| e["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn radio_on_usb_handshakes_and_every_packet_it_hears_reaches_the_hub_across_a_replug() {
    let (redis, hub_broker) = (RedisServer::new().unwrap(), Mosquitto::new().unwrap());
    let hub = Hub::start(&hub_broker.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pty = Pty::plug(dir.path());
    let radio = MeshRadio::start(pty.open_feed(), RADIO_NODE, packets());
    let cfg = config(&redis, &hub_broker.url(), &profiles(dir.path()), &pty.dev);
    let gw = Outpost::start_with(&cfg).unwrap();

    let of = |class: &str, dev: &str| {
        hub.events_of(class)
            .into_iter()
            .filter(|e| e["dev"] == dev)
            .count()
    };
    assert!(
        wait_until(T, || of("location", "!da65ade0") == 1
            && of("message", "!da65ade0") == 1
            && of("status", "!da65ade0") == 2
            && of("status", "!7efeb2c8") == 1),
        "events at the hub: {:?}\n{}",
        hub.events_of("status"),
        gw.log()
    );
    let loc = &hub.events_of("location")[0];
    assert_eq!(
        (loc["lat"].as_f64(), loc["lon"].as_f64()),
        (Some(51.772), Some(0.0395))
    );
    let env = hub
        .events_of("status")
        .into_iter()
        .find(|e| e["dev"] == "!7efeb2c8")
        .unwrap();
    assert_eq!(
        env["temperature"].as_f64(),
        Some(21.5),
        "left encrypted by the radio, decrypted with the profile's key"
    );
    assert_eq!(radio.log().want_configs.len(), 1);
    assert!(
        wait_until(T, || radio.log().heartbeats >= 2),
        "heartbeats: {:?}",
        radio.log()
    );
    assert!(wait_until(T, || presence_states(&hub, "radio0") == ["online"]));

    // Unplug: the radio goes offline. Replug: a new handshake, and the same packets heard
    // again are the same mesh packets — not stored twice.
    pty.unplug();
    assert!(
        wait_until(T, || presence_states(&hub, "radio0")
            == ["online", "offline"]),
        "{:?}",
        presence_states(&hub, "radio0")
    );
    let pty = Pty::plug(dir.path());
    let radio = MeshRadio::start(pty.open_feed(), RADIO_NODE, packets());
    assert!(
        wait_until(T, || radio.log().want_configs.len() == 1),
        "no handshake after replug\n{}",
        gw.log()
    );
    assert!(wait_until(T, || presence_states(&hub, "radio0")
        == ["online", "offline", "online"]));
    assert!(wait_until(T, || gw
        .log()
        .contains("radio handshake complete")));
    std::thread::sleep(Duration::from_millis(500)); // let any wrongly stored copy arrive
    assert_eq!(
        of("location", "!da65ade0"),
        1,
        "relayed again after replug, deduplicated"
    );
    assert!(
        gw.log().contains("radio port closed; reopening"),
        "{}",
        gw.log()
    );
    assert_eq!(radio.log().unknown, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_are_delivered_failed_or_sent_by_the_meshs_acks() {
    let redis = RedisServer::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pty = Pty::plug(dir.path());
    let radio = MeshRadio::start(pty.open_feed(), RADIO_NODE, Vec::new());
    let cfg = config(
        &redis,
        "mqtt://127.0.0.1:1",
        &profiles(dir.path()),
        &pty.dev,
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, cfg.to_toml()).unwrap();
    let settings = outpost::config::Settings::load(&path).expect("config");
    let store =
        outpost::store::Store::connect(&settings.redis_url, &settings.prefix, settings.max_events)
            .await
            .unwrap();
    let dev = settings.serial[0].clone();
    let ctx = outpost::context::Context {
        settings: std::sync::Arc::new(settings),
        store,
        metrics: Default::default(),
        outbox: Default::default(),
        tak: Default::default(),
        radios: Default::default(),
        token: tokio_util::sync::CancellationToken::new(),
    };
    let token = ctx.token.clone();
    let (mut link, ends) = radio_task::link(8);
    let task = tokio::spawn(radio_task::run(ctx, dev, ends));

    let sends = [
        ("m1", "!deadbeef", "ack: Evacuate sector 4".to_string()),
        ("m2", "!deadbeef", "nak: nobody home".to_string()),
        ("m3", "!0000beef", "noroute: far away".to_string()),
        (
            "m4",
            "!deadbeef",
            "silence: only the radio's implicit ack".to_string(),
        ),
        ("m5", "*", "ack: all units".to_string()),
        ("m6", "!deadbeef", "x".repeat(234)),
        ("m7", "gps0", "not a node".to_string()),
    ];
    for (msg_id, to, text) in &sends {
        let rq = TextRequest {
            msg_id: msg_id.to_string(),
            to: to.to_string(),
            text: text.clone(),
        };
        link.requests.send(rq).await.unwrap();
    }
    let mut got = std::collections::BTreeMap::new();
    while got.len() < sends.len() {
        let r = tokio::time::timeout(T, link.reports.recv())
            .await
            .expect("reports")
            .expect("open");
        got.insert(r.msg_id.clone(), r);
    }
    let outcome = |m: &str| got[m].outcome.clone();
    assert_eq!(outcome("m1"), Outcome::Delivered);
    assert_eq!(outcome("m2"), Outcome::Failed("MAX_RETRANSMIT".into()));
    assert_eq!(outcome("m3"), Outcome::Failed("NO_ROUTE".into()));
    assert_eq!(
        outcome("m4"),
        Outcome::Sent,
        "an implicit ack is no delivery; the timeout leaves it sent"
    );
    assert_eq!(
        outcome("m5"),
        Outcome::Delivered,
        "a broadcast's ack is the mesh's"
    );
    assert_eq!(
        (outcome("m6"), got["m6"].packet_id),
        (Outcome::Failed("too_long".into()), 0)
    );
    assert_eq!(outcome("m7"), Outcome::Failed("bad_node".into()));

    // What the radio got: five texts, each with want_ack, under the packet id reported.
    let texts = radio.log().texts;
    assert_eq!(texts.len(), 5, "{texts:?}");
    for (to, id, want_ack, text) in &texts {
        let (msg_id, ..) = sends.iter().find(|(_, _, t)| t == text).unwrap();
        assert!(*want_ack, "{text}");
        assert_eq!(got[*msg_id].packet_id, *id, "{text}");
        let want_to = if text == "ack: all units" {
            u32::MAX
        } else if text.starts_with("noroute") {
            0xbeef
        } else {
            0xdeadbeef
        };
        assert_eq!(*to, want_to);
    }
    assert_eq!(radio.log().want_configs.len(), 1);
    token.cancel();
    task.await.unwrap().unwrap();
}

/// `(topic, payload)` of every envelope in the fixture.
fn envelopes() -> Vec<(String, Vec<u8>)> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../gateway/tests/fixtures/meshtastic/envelopes.txt");
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (t, b) = l.split_once(" base64:").unwrap();
            (
                t.to_string(),
                base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
            )
        })
        .collect()
}

#[test]
fn protobuf_envelopes_are_decrypted_deduplicated_with_json_and_bad_ones_counted() {
    let rig = outpost_system_tests::Rig::new().unwrap();
    let cfg = rig.config().mqtt("meshtastic").mqtt("meshtastic-proto");
    let _gw = rig.start(&cfg).unwrap();
    let dev = rig.device("relays").unwrap();
    // The same position packet over the JSON uplink first (tests/fixtures/mqtt/meshtastic.txt).
    let json = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/tests/fixtures/mqtt/meshtastic.txt"),
    )
    .unwrap();
    let line = json.lines().find(|l| l.contains("1186871389")).unwrap();
    let (topic, payload) = line.split_once(' ').unwrap();
    let mut msgs = vec![(topic.to_string(), payload.as_bytes().to_vec())];
    msgs.extend(envelopes());
    dev.publish_many_qos1(msgs).unwrap();

    let of = |class: &str| {
        rig.hub
            .events_of(class)
            .into_iter()
            .filter(|e| e["dev"] == "!da65ade0")
            .count()
    };
    let want_drops: std::collections::HashMap<String, u64> =
        [("wrong_key", 3), ("undecryptable", 1), ("not_protobuf", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    assert!(
        wait_until(T, || of("status") == 2
            && of("message") == 1
            && rig.drops() == want_drops),
        "status {} message {} drops {:?}",
        of("status"),
        of("message"),
        rig.drops()
    );
    assert_eq!(
        of("location"),
        1,
        "one packet: JSON and two protobuf relays of it"
    );
    let names = rig
        .hub
        .events_of("status")
        .into_iter()
        .find(|e| e["extra"]["long_name"].is_string())
        .unwrap();
    assert_eq!(
        (names["dev"].as_str(), names["extra"]["long_name"].as_str()),
        (Some("!da65ade0"), Some("Engine 7"))
    );
}
