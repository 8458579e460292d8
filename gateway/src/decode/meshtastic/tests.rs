use super::*;
use crate::decode::testkit::{decode_fixture, now, secs};

const FIXTURE: &str = include_str!("../../../tests/fixtures/mqtt/meshtastic.txt");

fn fixture() -> Vec<Decoded> {
    decode_fixture(FIXTURE, |p| decode("relay", p, now()))
}

#[test]
fn every_fixture_line_decodes_with_a_dedup_key() {
    let got: Vec<(Option<String>, Vec<&str>)> = fixture()
        .iter()
        .map(|d| {
            (
                d.dedup_key.clone(),
                d.events.iter().map(|e| e.class().as_str()).collect(),
            )
        })
        .collect();
    let key = |s: &str| Some(s.to_string());
    assert_eq!(
        got,
        [
            (key("mesh:7efeee00:452664778"), vec![]),
            (key("mesh:da65ade0:1186871389"), vec!["location"]),
            (key("mesh:7efeb2c8:1576523471"), vec!["status"]),
            (key("mesh:da65ade0:1186871390"), vec!["status"]),
            (key("mesh:da65ade0:1186871391"), vec!["message"]),
        ]
    );
}

#[test]
fn position_scales_integers_and_uses_the_originators_clock() {
    let e = &fixture()[1].events[0];
    assert_eq!(
        e.dev, "!da65ade0",
        "the originator, not the relaying sender !da656a30"
    );
    assert_eq!((e.ts, e.ts_src), (secs(1_714_295_445), TsSrc::Device));
    let Body::Location(loc) = &e.body else {
        panic!()
    };
    assert_eq!((loc.lat, loc.lon), (51.772, 0.0395));
    assert_eq!((loc.alt, loc.acc), (Some(85.0), None));
}

#[test]
fn position_optional_fields_and_precision() {
    let p = br#"{"from":1,"id":2,"type":"position","payload":{"latitude_i":-337000000,"longitude_i":1512000000,
        "ground_speed":3,"ground_track":9000000,"sats_in_view":9,"HDOP":120,"precision_bits":13}}"#;
    let e = &decode("x", p, now()).unwrap().events[0];
    assert_eq!((e.ts, e.ts_src), (now(), TsSrc::Gateway));
    let Body::Location(loc) = &e.body else {
        panic!()
    };
    assert_eq!(
        (loc.speed, loc.course, loc.sats, loc.hdop),
        (Some(3.0), Some(90.0), Some(9), Some(1.2))
    );
    assert_eq!(loc.acc.map(f64::round), Some(2918.0));
}

#[test]
fn position_without_fix_is_no_event() {
    let p = br#"{"from":1,"id":2,"type":"position","payload":{"latitude_i":0,"longitude_i":0}}"#;
    assert!(decode("x", p, now()).unwrap().events.is_empty());
}

#[test]
fn telemetry_maps_device_metrics() {
    let e = &fixture()[3].events[0];
    assert_eq!((e.ts, e.ts_src), (secs(1_714_295_500), TsSrc::Gateway));
    let Body::Status(st) = &e.body else { panic!() };
    assert_eq!(
        (st.battery, st.voltage, st.uptime),
        (Some(87.0), Some(4.02), Some(5210))
    );
    assert_eq!((st.rssi, st.snr), (None, None));
    assert_eq!(st.extra["channel_utilization"], 3.5);
    assert_eq!(st.extra["air_util_tx"], 0.8);
}

#[test]
fn telemetry_without_battery_monitoring_reports_no_battery() {
    let e = &fixture()[2].events[0];
    assert_eq!(e.dev, "!7efeb2c8");
    assert_eq!(
        (e.ts, e.ts_src),
        (now(), TsSrc::Gateway),
        "timestamp 0 is no time"
    );
    let Body::Status(st) = &e.body else { panic!() };
    assert_eq!((st.battery, st.voltage), (None, None));
}

#[test]
fn battery_level_101_means_external_power() {
    let p =
        br#"{"from":1,"id":2,"type":"telemetry","payload":{"battery_level":101,"voltage":4.2}}"#;
    let Body::Status(st) = &decode("x", p, now()).unwrap().events[0].body else {
        panic!()
    };
    assert_eq!((st.battery, st.charging), (None, Some(true)));
    assert_eq!(st.extra["external_power"], true);
}

#[test]
fn environment_metrics_map_temperature_and_pass_the_rest() {
    let p = br#"{"from":1,"id":2,"type":"telemetry","payload":{"temperature":21.5,"relative_humidity":40}}"#;
    let Body::Status(st) = &decode("x", p, now()).unwrap().events[0].body else {
        panic!()
    };
    assert_eq!(st.temperature, Some(21.5));
    assert_eq!(st.extra["relative_humidity"], 40);
}

#[test]
fn text_message_addressing() {
    let e = &fixture()[4].events[0];
    let want = Message {
        text: "Engine 7 on scene, staging north lot".into(),
        to: None,
        msg_id: Some("1186871391".into()),
    };
    assert_eq!(e.body, Body::Message(want));
    let p = br#"{"from":1,"id":2,"to":-1,"type":"text","payload":{"text":"hi"}}"#;
    let Body::Message(m) = &decode("x", p, now()).unwrap().events[0].body else {
        panic!()
    };
    assert_eq!(m.to, None);
    let p = br#"{"from":1,"id":2,"to":3735928559,"type":"text","payload":{"text":"hi"}}"#;
    let Body::Message(m) = &decode("x", p, now()).unwrap().events[0].body else {
        panic!()
    };
    assert_eq!(m.to.as_deref(), Some("!deadbeef"));
}

#[test]
fn text_that_was_json_is_kept_as_text() {
    let p = br#"{"from":1,"id":2,"type":"text","payload":{"a":[1,2]}}"#;
    let Body::Message(m) = &decode("x", p, now()).unwrap().events[0].body else {
        panic!()
    };
    assert_eq!(m.text, r#"{"a":[1,2]}"#);
    let p = br#"{"from":1,"id":2,"type":"text","payload":"quoted"}"#;
    let Body::Message(m) = &decode("x", p, now()).unwrap().events[0].body else {
        panic!()
    };
    assert_eq!(m.text, "quoted");
}

#[test]
fn negative_from_is_two_complement() {
    let p = br#"{"from":-2,"id":7,"type":"nodeinfo"}"#;
    assert_eq!(
        decode("x", p, now()).unwrap().dedup_key.as_deref(),
        Some("mesh:fffffffe:7")
    );
}

#[test]
fn bad_input_yields_each_error_kind() {
    let long = format!(
        r#"{{"from":1,"id":2,"type":"text","payload":{{"text":"{}"}}}}"#,
        "x".repeat(4097)
    );
    let cases: Vec<(&[u8], &str)> = vec![
        (b"\xff", "bad_utf8"),
        (b"{\"from\":", "not_json"),
        (b"\"str\"", "bad_field"),
        (br#"{"id":2}"#, "missing_field"),
        (br#"{"from":1.5,"id":2}"#, "bad_field"),
        (br#"{"from":1,"id":2,"timestamp":"noon","type":"telemetry","payload":{}}"#, "bad_field"),
        (br#"{"from":4294967296,"id":2}"#, "bad_field"),
        (br#"{"from":1,"id":2,"type":"position"}"#, "missing_field"),
        (br#"{"from":1,"id":2,"type":"position","payload":{"latitude_i":910000000,"longitude_i":1}}"#, "bad_position"),
        (br#"{"from":1,"id":2,"type":"text","payload":{"text":5}}"#, "bad_field"),
        (long.as_bytes(), "bad_field"),
    ];
    for (p, reason) in cases {
        let err = decode("x", p, now()).unwrap_err();
        assert_eq!(
            err.reason(),
            reason,
            "{}: {err}",
            String::from_utf8_lossy(p)
        );
    }
    let big = vec![b' '; read::MAX_PAYLOAD_BYTES + 1];
    assert_eq!(decode("x", &big, now()).unwrap_err().reason(), "too_large");
}

const FIRMWARE: &str = include_str!("../../../tests/fixtures/mqtt/meshtastic-firmware.txt");

fn firmware() -> Vec<Decoded> {
    decode_fixture(FIRMWARE, |p| decode("relay", p, now()))
}

fn status_of(d: &Decoded) -> &Status {
    match &d.events[0].body {
        Body::Status(s) => s,
        other => panic!("not a status: {other:?}"),
    }
}

#[test]
fn signed_and_unsigned_ids_are_one_node_and_one_packet() {
    let f = firmware();
    assert_eq!(f[0].dedup_key, f[1].dedup_key);
    assert_eq!(f[0].dedup_key.as_deref(), Some("mesh:da65ade0:2899999999"));
    assert_eq!(f[0].events, f[1].events);
    assert_eq!(f[0].events[0].dev, "!da65ade0");
    assert_eq!(dedup_key(0xda65ade0, 7), "mesh:da65ade0:7");
    let Body::Message(m) = &f[8].events[0].body else {
        panic!()
    };
    assert_eq!(m.to.as_deref(), Some("!da65ade0"));
}

#[test]
fn telemetry_kinds_are_told_apart_by_their_keys() {
    let f = firmware();
    let powered = status_of(&f[2]);
    assert_eq!((powered.battery, powered.charging), (None, Some(true)));
    assert_eq!(powered.voltage, Some(4.23));
    assert_eq!(powered.extra["external_power"], true);
    assert_eq!(powered.extra["telemetry"], "device");
    let env = status_of(&f[3]);
    assert_eq!(env.extra["telemetry"], "environment");
    assert_eq!(
        (env.temperature, env.voltage, env.battery),
        (Some(21.5), None, None)
    );
    assert_eq!(
        env.extra["voltage"], 12.1,
        "the sensor's voltage, not the battery's"
    );
    assert_eq!(env.extra["relative_humidity"], 48.2);
    let power = status_of(&f[4]);
    assert_eq!(power.extra["telemetry"], "power");
    assert_eq!(power.extra["ch1_voltage"], 12.4);
}

#[test]
fn omitted_zero_fields() {
    let f = firmware();
    let dev = status_of(&f[5]);
    assert_eq!(
        (dev.battery, dev.voltage, dev.uptime),
        (None, None, Some(600))
    );
    let Body::Location(l) = &f[6].events[0].body else {
        panic!()
    };
    assert_eq!((l.lat, l.lon, l.alt), (0.0, 32.5, Some(10.0)));
    assert_eq!(f[7].dedup_key, None, "no id: no dedup, message kept");
    assert_eq!(f[7].events[0].class().as_str(), "message");
    assert!(f.iter().all(|d| d.dropped.is_empty()));
}

#[test]
fn a_bad_optional_field_is_dropped_and_the_rest_kept() {
    let p = br#"{"from":1,"id":2,"type":"position","payload":{"latitude_i":10,"longitude_i":20,"altitude":"high","sats_in_view":-3}}"#;
    let d = decode("x", p, now()).unwrap();
    assert_eq!(d.events.len(), 1);
    let names: Vec<String> = d.dropped.iter().map(|f| f.reason()).collect();
    assert_eq!(
        names,
        [
            "bad_field:payload.altitude",
            "bad_field:payload.sats_in_view"
        ]
    );
    let p = br#"{"from":1,"id":2,"type":"telemetry","payload":{"voltage":"4","battery_level":50}}"#;
    let d = decode("x", p, now()).unwrap();
    assert_eq!(
        (status_of(&d).battery, status_of(&d).voltage),
        (Some(50.0), None)
    );
    assert_eq!(d.dropped[0].reason(), "bad_field:payload.voltage");
}
