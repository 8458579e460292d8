//! The main path, end to end (SPEC §5, issue 2): device MQTT → `outpost run` → Redis → the
//! real hub, with exact values as the hub stored them, and per-device order. The first test
//! also taps the wire for what the hub does not keep: `replay` and the batches' drain order.

use std::time::Duration;

use outpost_system_tests::dedup::ArrivalKind;
use outpost_system_tests::rig::of_dev;
use outpost_system_tests::{Device, Rig, WireTap};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

const OWNTRACKS_FIX: &str = r#"{"_type":"location","tid":"AP","lat":51.06263391678321,"lon":13.60279820860699,"tst":1440405601,"acc":10,"alt":262,"vel":18,"cog":82,"batt":99,"bs":2}"#;

/// Fields every stored event must have (SPEC §5), whatever its class (the hub keeps events
/// without `replay`: see [`assert_replay`]).
fn assert_envelope(e: &Value, class: &str) {
    assert_eq!(e["class"], class, "{e}");
    for f in ["id", "dev", "ts", "ts_src", "rx"] {
        assert!(e[f].is_string(), "missing {f}: {e}");
    }
    for f in ["ts", "rx"] {
        let ts = e[f].as_str().unwrap();
        assert!(
            ts.ends_with('Z') && ts.len() == "2015-08-24T08:40:01.000Z".len(),
            "{f} is not RFC 3339 UTC with ms: {ts}"
        );
    }
}

/// Every event of `class` on the wire carried `replay` = `want`.
fn assert_replay(tap: &WireTap, class: &str, want: bool) {
    let events = tap.events_of(class);
    assert!(!events.is_empty(), "no {class} on the wire");
    for e in events {
        assert_eq!(e["replay"], want, "{e}");
    }
}

#[test]
fn owntracks_location_reaches_hub_with_exact_coordinates_and_device_time() {
    let rig = Rig::new().unwrap();
    let tap = rig.wire_tap().unwrap();
    let _gw = rig.start(&rig.config().mqtt("owntracks")).unwrap();
    // "Went out live" (replay false) needs the uplink up before the fix arrives.
    assert!(outpost_system_tests::wait_until(T, || rig
        .uplink_state()
        .as_deref()
        == Some("up")));
    let phone = rig.device("alice-phone-app").unwrap();
    phone
        .publish_qos1("owntracks/alice/phone", OWNTRACKS_FIX)
        .unwrap();

    let hub = &rig.hub;
    assert!(
        hub.wait_for(
            |h| h.events_of("location").len() == 1
                && h.events_of("status").len() == 1
                && !h.events_of("presence").is_empty(),
            T
        ),
        "hub got {:?}",
        hub.events()
    );

    let loc = &hub.events_of("location")[0];
    assert_envelope(loc, "location");
    assert_eq!(loc["dev"], "alice-phone");
    assert_eq!(loc["lat"].as_f64(), Some(51.06263391678321));
    assert_eq!(loc["lon"].as_f64(), Some(13.60279820860699));
    assert_eq!(loc["ts"], "2015-08-24T08:40:01.000Z");
    assert_eq!(loc["ts_src"], "device");
    assert_eq!(loc["alt"].as_f64(), Some(262.0));
    assert_eq!(loc["acc"].as_f64(), Some(10.0));
    assert_eq!(loc["speed"].as_f64(), Some(5.0), "vel is km/h, speed m/s");
    assert_eq!(loc["course"].as_f64(), Some(82.0));

    let st = &hub.events_of("status")[0];
    assert_envelope(st, "status");
    assert_eq!(st["dev"], "alice-phone");
    assert_eq!(st["battery"].as_f64(), Some(99.0));
    assert_eq!(st["charging"], true);
    assert_eq!(st["ts"], "2015-08-24T08:40:01.000Z");
    assert_eq!(st["ts_src"], "device");

    let presence = hub.events_of("presence");
    assert_eq!(presence.len(), 1, "{presence:?}");
    assert_envelope(&presence[0], "presence");
    assert_eq!(presence[0]["dev"], "alice-phone");
    assert_eq!(presence[0]["state"], "online");
    assert!(presence[0]["last_seen"].is_string());

    // On the wire: it went out live, and the presence batch went out before the status and
    // location ones (drain order, SPEC §6).
    assert!(tap.wait_for_events("location", 1, T));
    assert_replay(&tap, "location", false);
    let first_batch = tap.timeline().into_iter().find_map(|a| match a.kind {
        ArrivalKind::Batch { class, .. } => Some(class),
        _ => None,
    });
    assert_eq!(first_batch.as_deref(), Some("presence"));
    assert!(tap.errors().is_empty(), "{:?}", tap.errors());
    assert!(hub.errors().is_empty(), "{:?}", hub.errors());
    assert_eq!(hub.duplicates_dropped(), 0);
}

const MESH_POSITION: &str = r#"{"channel":0,"from":3664096736,"id":1186871389,"payload":{"altitude":85,"latitude_i":517720000,"longitude_i":395000,"precision_bits":32,"time":1714295445},"rssi":-124,"sender":"!da656a30","snr":-18,"timestamp":1714295459,"to":4294967295,"type":"position"}"#;
const MESH_TELEMETRY: &str = r#"{"channel":0,"from":3664096736,"id":1186871390,"payload":{"battery_level":87,"voltage":4.02,"channel_utilization":3.5,"air_util_tx":0.8,"uptime_seconds":5210},"rssi":-101,"sender":"!da656a30","snr":4.25,"timestamp":1714295500,"to":4294967295,"type":"telemetry"}"#;
const MESH_TEXT: &str = r#"{"channel":0,"from":3664096736,"id":1186871391,"payload":{"text":"Engine 7 on scene, staging north lot"},"sender":"!da656a30","timestamp":1714295520,"to":4294967295,"type":"text"}"#;

#[test]
fn meshtastic_position_telemetry_and_text_become_location_status_and_message() {
    let rig = Rig::new().unwrap();
    let _gw = rig.start(&rig.config().mqtt("meshtastic")).unwrap();
    let radio = rig.device("mesh-gw-radio").unwrap();
    let topic = "msh/US/2/json/LongFast/!da656a30";
    radio
        .publish_many_qos1([
            (topic, MESH_POSITION),
            (topic, MESH_TELEMETRY),
            (topic, MESH_TEXT),
        ])
        .unwrap();

    let hub = &rig.hub;
    assert!(
        hub.wait_for(
            |h| h.events_of("location").len() == 1
                && h.events_of("status").len() == 1
                && h.events_of("message").len() == 1,
            T
        ),
        "hub got {:?}",
        hub.events()
    );
    let loc = &hub.events_of("location")[0];
    assert_envelope(loc, "location");
    // `from` 3664096736 = 0xda65ade0: the originating node, not the relaying radio (`sender`,
    // and the topic's last level, are !da656a30).
    assert_eq!(loc["dev"], "!da65ade0");
    assert_eq!(loc["lat"].as_f64(), Some(51.772));
    assert_eq!(loc["lon"].as_f64(), Some(0.0395));
    assert_eq!(loc["alt"].as_f64(), Some(85.0));
    assert_eq!(loc["ts"], "2024-04-28T09:10:45.000Z");
    assert_eq!(loc["ts_src"], "device");

    let st = &hub.events_of("status")[0];
    assert_envelope(st, "status");
    assert_eq!(st["dev"], "!da65ade0");
    assert_eq!(st["battery"].as_f64(), Some(87.0));
    assert_eq!(st["voltage"].as_f64(), Some(4.02));
    assert_eq!(st["uptime"].as_u64(), Some(5210));
    assert_eq!(st["extra"]["channel_utilization"].as_f64(), Some(3.5));
    assert_eq!(st["ts"], "2024-04-28T09:11:40.000Z");

    let msg = &hub.events_of("message")[0];
    assert_envelope(msg, "message");
    assert_eq!(msg["dev"], "!da65ade0");
    assert_eq!(msg["text"], "Engine 7 on scene, staging north lot");
    assert_eq!(msg["msg_id"], "1186871391");
    assert!(msg.get("to").is_none(), "broadcast has no `to`: {msg}");
    assert_eq!(msg["ts"], "2024-04-28T09:12:00.000Z");

    let presence = hub.events_of("presence");
    assert_eq!(presence.len(), 1, "{presence:?}");
    assert_eq!(presence[0]["state"], "online");
    assert!(hub.errors().is_empty(), "{:?}", hub.errors());
}

#[test]
fn meshtastic_packet_relayed_by_two_radios_is_stored_once() {
    let rig = Rig::new().unwrap();
    let _gw = rig.start(&rig.config().mqtt("meshtastic")).unwrap();
    let radio = rig.device("mesh-gw-radios").unwrap();
    radio
        .publish_many_qos1([
            ("msh/US/2/json/LongFast/!da656a30", MESH_POSITION),
            ("msh/US/2/json/LongFast/!0badc0de", MESH_POSITION),
            ("msh/EU/2/json/LongFast/!0badc0de", MESH_TEXT),
            ("msh/US/2/json/LongFast/!da656a30", MESH_TEXT),
        ])
        .unwrap();
    // A later, distinct packet: once it is at the hub, the relays before it were handled.
    let marker = MESH_POSITION
        .replace("1186871389", "1186871400")
        .replace("517720000", "517730000");
    radio
        .publish_qos1("msh/US/2/json/LongFast/!0badc0de", marker)
        .unwrap();

    let hub = &rig.hub;
    assert!(
        hub.wait_for(
            |h| h.events_of("location").len() >= 2 && !h.events_of("message").is_empty(),
            T
        ),
        "hub got {:?}",
        hub.events()
    );
    let lats: Vec<f64> = hub
        .events_of("location")
        .iter()
        .map(|e| e["lat"].as_f64().unwrap())
        .collect();
    assert_eq!(lats, [51.772, 51.773], "relayed position stored once");
    assert_eq!(
        hub.events_of("message").len(),
        1,
        "relayed text stored once"
    );
    let stats = rig.stats();
    assert_eq!(stats.get("accepted:location"), Some(&2), "{stats:?}");
    assert_eq!(stats.get("accepted:message"), Some(&1), "{stats:?}");
    assert!(
        rig.drops().is_empty(),
        "a relay is not a drop: {:?}",
        rig.drops()
    );
}

#[test]
fn each_device_events_arrive_in_publish_order_when_devices_interleave() {
    let rig = Rig::new().unwrap();
    // Small batches and a window of several, so ordering is exercised across batches.
    let cfg = rig
        .config()
        .mqtt("owntracks")
        .batch_max_events(7)
        .inflight(4);
    let _gw = rig.start(&cfg).unwrap();
    let (devices, reports) = (12u32, 40u32);
    let base = 1_700_000_000u64;
    let mut msgs = Vec::new();
    for i in 0..reports {
        for d in 0..devices {
            let payload = json!({
                "_type": "location",
                "lat": 48.0 + f64::from(d) * 0.01,
                "lon": 11.0 + f64::from(i) * 0.0001,
                "tst": base + u64::from(i),
            });
            msgs.push((format!("owntracks/team/u{d:02}"), payload.to_string()));
        }
    }
    // Two publishers at once, each owning half of the devices (a device publishes in order
    // through one connection, as a phone does).
    let halves: Vec<Vec<(String, String)>> = (0..2)
        .map(|n| {
            msgs.iter()
                .filter(|(t, _)| t.ends_with(|c: char| c.to_digit(10).unwrap() % 2 == n))
                .cloned()
                .collect()
        })
        .collect();
    std::thread::scope(|s| {
        for (n, part) in halves.into_iter().enumerate() {
            let url = rig.devices.url();
            s.spawn(move || {
                let dev = Device::connect(&url, &format!("pub-{n}")).unwrap();
                dev.publish_many_qos1(part).unwrap();
            });
        }
    });

    let total = (devices * reports) as usize;
    let hub = &rig.hub;
    assert!(
        hub.wait_for_events("location", total, T),
        "{} of {total} locations",
        hub.events_of("location").len()
    );
    let locs = hub.events_of("location");
    assert_eq!(locs.len(), total);
    for d in 0..devices {
        let dev = format!("team-u{d:02}");
        let mine = of_dev(&locs, &dev);
        let ts: Vec<&str> = mine.iter().map(|e| e["ts"].as_str().unwrap()).collect();
        let expected: Vec<String> = (0..reports)
            .map(|i| {
                chrono::DateTime::from_timestamp((base + u64::from(i)) as i64, 0)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            })
            .collect();
        assert_eq!(ts, expected, "order of {dev}");
    }
    // The hub stored everything in id order: no event was ever ignored as stale.
    assert_eq!(hub.duplicates_dropped(), 0);
    assert!(hub.errors().is_empty(), "{:?}", hub.errors());
}
