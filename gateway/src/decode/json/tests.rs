use super::*;
use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_714_300_000, 0).unwrap()
}

/// A handheld radio that publishes its status as JSON, as a technician would map it.
const RADIO_PROFILE: &str = r#"
device = "/id"
ts = "/time"
[location]
lat = "/gps/lat"
lon = "/gps/lon"
alt = "/gps/alt"
sats = "/gps/sats"
fix = "/gps/fix"
[status]
battery = "/bat"
rssi = "/radio/rssi"
channel = "/radio/ch"
charging = "/pwr/chg"
extra = { "txpower" = "/radio/pwr", "fw" = "/fw" }
[message]
text = "/msg"
to = "/to"
[alert]
when = "/emergency"
reason = "emergency"
text = "/emergency_text"
"#;

fn radio() -> JsonMapping {
    toml::from_str(RADIO_PROFILE).unwrap()
}

fn run(m: &JsonMapping, v: serde_json::Value) -> Result<Decoded, DecodeError> {
    decode(m, "topic-dev", v.to_string().as_bytes(), now())
}

#[test]
fn radio_profile_is_valid_and_decodes_every_class() {
    let m = radio();
    assert_eq!(m.validate(), vec![]);
    let d = run(
        &m,
        json!({"id":"hr-17","time":"2024-04-28T09:10:45.250Z","gps":{"lat":51.5,"lon":-0.125,"alt":12,"sats":8,"fix":3},
               "bat":77,"radio":{"rssi":-71,"ch":"TAC-2","pwr":5},"pwr":{"chg":0},"fw":"1.4.2",
               "msg":"on scene","to":42,"emergency":true,"emergency_text":"button"}),
    )
    .unwrap();
    let ts = Utc.timestamp_millis_opt(1_714_295_445_250).unwrap();
    assert!(d
        .events
        .iter()
        .all(|e| e.dev == "hr-17" && e.ts == ts && e.ts_src == TsSrc::Device));
    let bodies: Vec<&Body> = d.events.iter().map(|e| &e.body).collect();
    assert_eq!(
        bodies[0],
        &Body::Alert(Alert {
            reason: "emergency".into(),
            text: Some("button".into()),
            lat: Some(51.5),
            lon: Some(-0.125)
        })
    );
    assert_eq!(
        bodies[1],
        &Body::Message(Message {
            text: "on scene".into(),
            to: Some("42".into()),
            msg_id: None
        })
    );
    let Body::Status(st) = bodies[2] else {
        panic!()
    };
    assert_eq!(
        (st.battery, st.rssi, st.charging),
        (Some(77.0), Some(-71.0), Some(false))
    );
    assert_eq!(st.channel, Some(json!("TAC-2")));
    assert_eq!(
        serde_json::Value::Object(st.extra.clone()),
        json!({"txpower":5,"fw":"1.4.2"})
    );
    let Body::Location(loc) = bodies[3] else {
        panic!()
    };
    assert_eq!(
        (loc.lat, loc.lon, loc.alt, loc.sats, loc.fix),
        (51.5, -0.125, Some(12.0), Some(8), Some(Fix::ThreeD))
    );
}

#[test]
fn absent_fields_skip_their_class_silently() {
    let d = run(&radio(), json!({"id":"hr-17","bat":50,"emergency":false})).unwrap();
    assert_eq!(d.events.len(), 1);
    let e = &d.events[0];
    assert_eq!(
        (e.class(), e.ts, e.ts_src),
        (crate::event::Class::Status, now(), TsSrc::Gateway)
    );
    assert_eq!(
        run(&radio(), json!({"id":"x","gps":{"lat":1}}))
            .unwrap()
            .events,
        vec![]
    );
}

#[test]
fn device_id_comes_from_topic_unless_mapped() {
    let m: JsonMapping = toml::from_str("[status]\nbattery = \"/b\"").unwrap();
    assert_eq!(run(&m, json!({"b":1})).unwrap().events[0].dev, "topic-dev");
    assert_eq!(
        run(&radio(), json!({"id":7,"bat":1})).unwrap().events[0].dev,
        "7"
    );
    assert_eq!(
        run(&radio(), json!({"bat":1})),
        Err(DecodeError::Missing("/id".into()))
    );
}

#[test]
fn numeric_times_are_seconds_or_ms_by_magnitude() {
    for t in [
        json!(1_714_295_445),
        json!(1_714_295_445_000u64),
        json!(1_714_295_445.0),
    ] {
        let e = &run(&radio(), json!({"id":"a","time":t,"bat":1}))
            .unwrap()
            .events[0];
        assert_eq!(
            (e.ts.timestamp(), e.ts_src),
            (1_714_295_445, TsSrc::Device),
            "{t}"
        );
    }
    let e = &run(&radio(), json!({"id":"a","time":0,"bat":1}))
        .unwrap()
        .events[0];
    assert_eq!((e.ts, e.ts_src), (now(), TsSrc::Gateway));
}

#[test]
fn fix_none_drops_the_location() {
    let d = run(&radio(), json!({"id":"a","gps":{"lat":0,"lon":0,"fix":1}})).unwrap();
    assert!(d.events.is_empty());
}

#[test]
fn wrong_types_of_id_time_or_position_refuse_the_payload() {
    let cases = [
        (json!({"id":"a","gps":{"lat":"51","lon":0}}), "/gps/lat"),
        (json!({"id":"a","time":true}), "/time"),
        (json!({"id":"a","time":"yesterday"}), "/time"),
        (json!({"id":""}), "/id"),
    ];
    for (v, ptr) in cases {
        match run(&radio(), v.clone()) {
            Err(DecodeError::BadField { field, .. }) => assert_eq!(field, ptr, "{v}"),
            other => panic!("{v}: {other:?}"),
        }
    }
}

#[test]
fn wrong_optional_fields_are_dropped_naming_the_pointer() {
    let cases = [
        (json!({"id":"a","radio":{"pwr":[1]}}), "/radio/pwr", 0),
        (json!({"id":"a","emergency":"yes"}), "/emergency", 0),
        (json!({"id":"a","msg":{"t":1}}), "/msg", 0),
        (json!({"id":"a","msg":"x".repeat(4097)}), "/msg", 0),
        (
            json!({"id":"a","gps":{"lat":1,"lon":1,"fix":"4d"}}),
            "/gps/fix",
            1,
        ),
        (
            json!({"id":"a","gps":{"lat":1,"lon":1,"sats":-1}}),
            "/gps/sats",
            1,
        ),
        (
            json!({"id":"a","gps":{"lat":1,"lon":1},"bat":"full"}),
            "/bat",
            1,
        ),
    ];
    for (v, ptr, events) in cases {
        let d = run(&radio(), v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"));
        let names: Vec<String> = d.dropped.iter().map(|f| f.reason()).collect();
        assert_eq!(names, [format!("bad_field:{ptr}")], "{v}");
        assert_eq!(d.events.len(), events, "{v}: the rest is kept");
    }
}

#[test]
fn bad_input_yields_each_error_kind() {
    let m = radio();
    let cases: [(&[u8], &str); 4] = [
        (b"\xfe{}", "bad_utf8"),
        (b"{\"id\":", "not_json"),
        (br#"{"id":"a","gps":{"lat":-91,"lon":0}}"#, "bad_position"),
        (br#"{"bat":1}"#, "missing_field"),
    ];
    for (p, reason) in cases {
        assert_eq!(decode(&m, "d", p, now()).unwrap_err().reason(), reason);
    }
    let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
    assert_eq!(
        decode(&m, "d", &big, now()).unwrap_err().reason(),
        "too_large"
    );
}

#[test]
fn unknown_keys_are_refused_by_serde() {
    let err =
        toml::from_str::<JsonMapping>("[location]\nlat = \"/a\"\nlon = \"/b\"\nlatitude = \"/c\"")
            .unwrap_err();
    assert!(err.to_string().contains("latitude"), "{err}");
    assert!(
        toml::from_str::<JsonMapping>("[location]\nlat = \"/a\"").is_err(),
        "lon is required"
    );
}

#[test]
fn validate_reports_every_problem_with_its_key() {
    let m: JsonMapping = toml::from_str(
        r#"
        ts = "time"
        [location]
        lat = "/a~2"
        lon = "/b~1c~0"
        [status]
        [alert]
        when = "/e~"
        reason = " "
        "#,
    )
    .unwrap();
    let keys: Vec<String> = m.validate().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        ["ts", "location.lat", "alert.when", "status", "alert.reason"]
    );
    assert_eq!(JsonMapping::default().validate()[0].0, "");
    assert_eq!(pointer_problem(""), None);
    assert_eq!(pointer_problem("/a~0~1/"), None);
}

/// JSON values built from keys every decoder looks at, so the property reaches the field logic
/// and not only the parser.
fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let keys = prop::sample::select(vec![
        "_type",
        "lat",
        "lon",
        "tst",
        "batt",
        "bs",
        "vel",
        "cog",
        "event",
        "desc",
        "from",
        "id",
        "to",
        "type",
        "payload",
        "latitude_i",
        "longitude_i",
        "time",
        "timestamp",
        "text",
        "battery_level",
        "voltage",
        "precision_bits",
        "ground_track",
        "sats_in_view",
        "gps",
        "bat",
        "msg",
        "emergency",
        "fix",
        "sats",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "location",
            "transition",
            "lwt",
            "position",
            "telemetry",
            "text",
            "enter",
            "3d"
        ])
        .prop_map(serde_json::Value::from),
        ".{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(keys.clone(), inner, 0..8).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn mapping_for_props() -> JsonMapping {
    toml::from_str(
        r#"
        device = "/id"
        ts = "/time"
        [location]
        lat = "/lat"
        lon = "/lon"
        fix = "/fix"
        sats = "/sats"
        [status]
        battery = "/bat"
        uptime = "/tst"
        channel = "/payload"
        extra = { "x" = "/gps" }
        [message]
        text = "/msg"
        to = "/to"
        [alert]
        when = "/emergency"
        text = "/text"
        "#,
    )
    .unwrap()
}

fn run_all(bytes: &[u8]) {
    let _ = super::super::owntracks::decode("d", bytes, now());
    let _ = super::super::meshtastic::decode("d", bytes, now());
    let _ = decode(&mapping_for_props(), "d", bytes, now());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        run_all(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics_and_positions_stay_valid(v in arb_json()) {
        let bytes = v.to_string().into_bytes();
        run_all(&bytes);
        let decoded = [
            super::super::owntracks::decode("d", &bytes, now()),
            super::super::meshtastic::decode("d", &bytes, now()),
            decode(&mapping_for_props(), "d", &bytes, now()),
        ];
        for e in decoded.iter().flatten().flat_map(|d| &d.events) {
            if let Body::Location(l) = &e.body {
                prop_assert!(crate::event::valid_position(l.lat, l.lon));
            }
            if let Body::Message(m) = &e.body {
                prop_assert!(m.text.len() <= crate::event::MAX_TEXT_BYTES);
            }
        }
    }
}
