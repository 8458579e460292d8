//! Bad input (SPEC §6, issue 2 item 8): every kind is counted by reason in `<prefix>:drops`,
//! never crashes the gateway, never holds up the good messages behind it, and is acknowledged
//! to the device broker (it will never become valid, so it must not come back).

use std::collections::HashMap;
use std::time::Duration;

use outpost_system_tests::{wait_until, Rig};
use serde_json::json;

const T: Duration = Duration::from_secs(20);
const PHONE: &str = "owntracks/field/phone";
const RADIO: &str = "msh/EU/2/json/LongFast/!0badc0de";

/// One bad input: what it is, where it goes, its bytes and the drop reason it must count as.
struct Bad {
    what: &'static str,
    topic: &'static str,
    payload: Vec<u8>,
    reason: &'static str,
}

fn bad(
    what: &'static str,
    topic: &'static str,
    payload: impl Into<Vec<u8>>,
    reason: &'static str,
) -> Bad {
    Bad {
        what,
        topic,
        payload: payload.into(),
        reason,
    }
}

fn bad_inputs() -> Vec<Bad> {
    let mut invalid_utf8 = br#"{"_type":"location","lat":52.1,"lon":13.4,"desc":""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    invalid_utf8.extend_from_slice(br#""}"#);
    let mut huge = br#"{"_type":"location","lat":52.1,"lon":13.4,"pad":""#.to_vec();
    huge.resize(1024 * 1024 - 2, b'x');
    huge.extend_from_slice(br#""}"#);
    let long_text = json!({
        "from": 1, "id": 77, "type": "text", "payload": {"text": "x".repeat(5000)}
    });
    vec![
        bad("not JSON", PHONE, "lat=52.1 lon=13.4", "not_json"),
        bad(
            "truncated JSON",
            PHONE,
            r#"{"_type":"location","lat":52"#,
            "not_json",
        ),
        // A number in a string is accepted (the apps send them); words are not.
        bad(
            "lat as a word",
            PHONE,
            r#"{"_type":"location","lat":"north","lon":13.4}"#,
            "bad_field",
        ),
        bad(
            "tst as an object",
            PHONE,
            r#"{"_type":"location","lat":52.1,"lon":13.4,"tst":{}}"#,
            "bad_field",
        ),
        bad(
            "mesh from as text",
            RADIO,
            r#"{"from":"me","id":1,"type":"text","payload":{"text":"hi"}}"#,
            "bad_field",
        ),
        bad(
            "lat 95",
            PHONE,
            r#"{"_type":"location","lat":95,"lon":13.4}"#,
            "bad_position",
        ),
        bad(
            "lon -181",
            PHONE,
            r#"{"_type":"location","lat":45,"lon":-181}"#,
            "bad_position",
        ),
        bad(
            "mesh lat 95",
            RADIO,
            r#"{"from":1,"id":2,"type":"position","payload":{"latitude_i":950000000,"longitude_i":10}}"#,
            "bad_position",
        ),
        bad(
            "NaN literal",
            PHONE,
            r#"{"_type":"location","lat":NaN,"lon":13.4}"#,
            "not_json",
        ),
        bad(
            "Infinity literal",
            PHONE,
            r#"{"_type":"location","lat":52.1,"lon":Infinity}"#,
            "not_json",
        ),
        bad(
            "number overflowing f64",
            PHONE,
            r#"{"_type":"location","lat":1e999,"lon":13.4}"#,
            "not_json",
        ),
        bad(
            "missing lat",
            PHONE,
            r#"{"_type":"location","lon":13.4}"#,
            "missing_field",
        ),
        bad(
            "missing _type",
            PHONE,
            r#"{"lat":52.1,"lon":13.4}"#,
            "missing_field",
        ),
        bad(
            "mesh without from",
            RADIO,
            r#"{"id":1,"type":"text","payload":{"text":"hi"}}"#,
            "missing_field",
        ),
        bad("1 MiB payload", PHONE, huge, "too_large"),
        bad("invalid UTF-8", PHONE, invalid_utf8, "bad_utf8"),
        bad("text over 4 KiB", RADIO, long_text.to_string(), "bad_field"),
        // Matches the profile's filter `owntracks/+/+/#` but has no device id in it.
        bad(
            "empty user level",
            "owntracks//phone",
            r#"{"_type":"location","lat":52.1,"lon":13.4}"#,
            "no_device_id",
        ),
    ]
}

fn good_fix(i: i64) -> String {
    json!({"_type": "location", "lat": 52.1, "lon": 13.4, "tst": 1_700_000_000 + i}).to_string()
}

fn expected_drops(inputs: &[Bad]) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for b in inputs {
        *m.entry(b.reason.to_string()).or_insert(0) += 1;
    }
    m
}

#[test]
fn each_bad_input_is_counted_by_reason_acknowledged_and_never_blocks_good_ones() {
    let rig = Rig::new().unwrap();
    let cfg = rig.config().mqtt("owntracks").mqtt("meshtastic");
    let mut gw = rig.start(&cfg).unwrap();
    let dev = rig.device("mixed").unwrap();
    let inputs = bad_inputs();

    // Each bad input followed by a good one: the good one must get through.
    let mut msgs: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, b) in inputs.iter().enumerate() {
        msgs.push((b.topic.to_string(), b.payload.clone()));
        msgs.push((PHONE.to_string(), good_fix(i as i64).into_bytes()));
    }
    dev.publish_many_qos1(msgs).unwrap();

    let n = inputs.len();
    assert!(
        rig.hub.wait_for_events("location", n, T),
        "good fixes behind bad input: {} of {n} arrived; drops {:?}",
        rig.hub.events_of("location").len(),
        rig.drops()
    );
    let expected = expected_drops(&inputs);
    let kinds: Vec<String> = inputs
        .iter()
        .map(|b| format!("{} → {}", b.what, b.reason))
        .collect();
    assert!(
        wait_until(T, || rig.drops() == expected),
        "drops by reason: got {:?}, want {expected:?} from {kinds:#?}",
        rig.drops()
    );
    let ts: Vec<String> = rig
        .hub
        .events_of("location")
        .iter()
        .map(|e| e["ts"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ts.len(), n, "only the good fixes are events");
    assert!(gw.is_running(), "bad input must not crash the gateway");
    assert!(
        gw.log().contains("input dropped"),
        "drops are logged:\n{}",
        gw.log()
    );

    // Acknowledged: after a restart the broker has nothing of it left to redeliver.
    assert_eq!(gw.terminate().unwrap().code(), Some(0));
    gw.restart().unwrap();
    dev.publish_qos1(PHONE, good_fix(1000)).unwrap();
    assert!(rig.hub.wait_for_events("location", n + 1, T));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rig.drops(), expected, "bad input came back after restart");
    assert_eq!(rig.hub.events_of("location").len(), n + 1);
    assert!(gw.is_running());
}

#[test]
fn message_on_a_topic_no_profile_claims_is_counted_as_unknown_topic_and_acknowledged() {
    // A radio profile is removed from the config while the gateway is down; what the radio
    // published meanwhile still waits in the gateway's persistent session (subscribed under the
    // old config) and is delivered on reconnect, where no route claims it.
    let rig = Rig::new().unwrap();
    let with_radio = rig.config().mqtt("owntracks").mqtt("radio-json");
    let mut gw = rig.start(&with_radio).unwrap();
    assert_eq!(gw.terminate().unwrap().code(), Some(0));

    let dev = rig.device("legacy").unwrap();
    let radio = r#"{"ts":1700000000,"bat":81,"rssi":-71,"ch":3,"sos":false,"gps":{"lat":52.52,"lon":13.4}}"#;
    dev.publish_many_qos1([
        ("radios/r7/status", radio.to_string()),
        (PHONE, good_fix(1)),
    ])
    .unwrap();
    gw.write_config(&rig.config().mqtt("owntracks").to_toml())
        .unwrap();
    gw.restart().unwrap();
    assert!(rig.hub.wait_for_events("location", 1, T), "{}", gw.log());
    assert!(
        wait_until(T, || rig.drops().get("unknown_topic") == Some(&1)),
        "drops: {:?}\n{}",
        rig.drops(),
        gw.log()
    );
    assert_eq!(rig.hub.events_of("location")[0]["dev"], "field-phone");
    assert!(
        rig.hub.events_of("status").is_empty(),
        "the radio is not decoded"
    );
    assert!(gw.is_running());

    // Acknowledged, so not redelivered after another restart.
    gw.restart().unwrap();
    dev.publish_qos1(PHONE, good_fix(2)).unwrap();
    assert!(rig.hub.wait_for_events("location", 2, T));
    assert_eq!(
        rig.drops().get("unknown_topic"),
        Some(&1),
        "redelivered after restart"
    );
}
