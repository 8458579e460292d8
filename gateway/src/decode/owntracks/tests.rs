use super::*;
use crate::decode::testkit::{decode_fixture, now, secs};

const FIXTURE: &str = include_str!("../../../tests/fixtures/mqtt/owntracks.txt");
const APPS: &str = include_str!("../../../tests/fixtures/mqtt/owntracks-apps.txt");
const ENCRYPTED: &str = include_str!("../../../tests/fixtures/mqtt/owntracks-encrypted.txt");
const KEY: &str = include_str!("../../../tests/fixtures/mqtt/owntracks.key");

fn fixture() -> Vec<Decoded> {
    decode_fixture(FIXTURE, |p| decode("phone", p, now()))
}

fn apps() -> Vec<Decoded> {
    decode_fixture(APPS, |p| decode("phone", p, now()))
}

fn classes(d: &Decoded) -> Vec<&'static str> {
    d.events.iter().map(|e| e.class().as_str()).collect()
}

fn dropped(d: &Decoded) -> Vec<String> {
    d.dropped.iter().map(|f| f.reason()).collect()
}

fn loc(e: &Event) -> &Location {
    match &e.body {
        Body::Location(l) => l,
        other => panic!("not a location: {other:?}"),
    }
}

fn status(e: &Event) -> &Status {
    match &e.body {
        Body::Status(s) => s,
        other => panic!("not a status: {other:?}"),
    }
}

#[test]
fn every_fixture_line_decodes_to_the_expected_classes() {
    let got: Vec<Vec<&str>> = fixture().iter().map(classes).collect();
    assert_eq!(
        got,
        [
            vec!["location", "status"],
            vec!["location", "status"],
            vec!["location", "status"],
            vec!["location", "status"],
            vec!["presence"],
        ]
    );
    assert!(fixture().iter().all(|d| d.dropped.is_empty()));
}

#[test]
fn location_converts_units_and_keeps_device_time() {
    let d = &fixture()[0];
    let l = &d.events[0];
    assert_eq!((l.ts, l.ts_src), (secs(1_440_405_601), TsSrc::Device));
    assert_eq!(
        l.body,
        Body::Location(Location {
            lat: 51.06263391678321,
            lon: 13.60279820860699,
            alt: Some(262.0),
            speed: Some(5.0),
            course: Some(82.0),
            acc: Some(10.0),
            ..Default::default()
        })
    );
    let st = status(&d.events[1]);
    assert_eq!((st.battery, st.charging), (Some(99.0), None));
    assert_eq!(d.events[1].ts, l.ts);
}

#[test]
fn battery_state_maps_to_charging() {
    let st = status(&fixture()[1].events[1]).clone();
    assert_eq!((st.battery, st.charging), (Some(98.0), Some(false)));
    for (bs, charging) in [(0, None), (2, Some(true)), (3, Some(true))] {
        let p = format!(r#"{{"_type":"location","lat":1,"lon":2,"bs":{bs}}}"#);
        let d = decode("p", p.as_bytes(), now()).unwrap();
        let got = d.events.get(1).map(|e| status(e).charging);
        assert_eq!(got.flatten(), charging, "bs {bs}");
    }
}

#[test]
fn transition_is_a_location_and_a_status_with_the_region() {
    let d = &fixture()[3];
    let l = loc(&d.events[0]);
    assert_eq!((l.lat, l.lon, l.acc), (48.85833, 2.29513, Some(17.0)));
    let st = status(&d.events[1]);
    assert_eq!(st.extra["transition"], "leave");
    assert_eq!(st.extra["region"], "Staging area");
    assert_eq!(d.events[1].ts, secs(1_497_476_460));
    let quiet = Owntracks {
        transition_status: false,
        ..Default::default()
    };
    let line = FIXTURE.lines().find(|l| l.contains("transition")).unwrap();
    let payload = line.split_once(' ').unwrap().1.as_bytes();
    assert_eq!(
        classes(&quiet.decode("p", payload, now()).unwrap()),
        ["location"]
    );
}

#[test]
fn lwt_is_presence_offline_at_gateway_time() {
    for d in [&fixture()[4], &apps()[0], &apps()[1]] {
        let e = &d.events[0];
        assert_eq!(
            e.body,
            Body::Presence(Presence {
                state: PresenceState::Offline,
                last_seen: now()
            })
        );
        assert_eq!((e.ts, e.ts_src), (now(), TsSrc::Gateway));
    }
}

/// Every line of the apps fixture: the classes it yields and the fields it drops.
#[test]
fn what_the_apps_send_keeps_every_position() {
    let got: Vec<(Vec<&str>, Vec<String>)> =
        apps().iter().map(|d| (classes(d), dropped(d))).collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        [
            (vec!["presence"], vec![]),
            (vec!["presence"], vec![]),
            (vec!["status"], vec![]),
            (vec!["location"], vec![]),
            (vec!["location", "status"], vec![]),
            (vec!["location"], s(&["bad_field:batt"])),
            (vec!["location", "status"], vec![]),
            (vec!["location"], s(&["bad_field:batt", "bad_field:bs"])),
            (vec!["location", "status"], vec![]),
            (vec!["location", "status"], vec![]),
            (vec![], vec![]),
            (vec![], vec![]),
            (vec![], vec![]),
            (vec![], vec![]),
            (vec![], vec![]),
            (vec![], vec![]),
        ]
    );
}

#[test]
fn strings_and_minus_one_sentinels() {
    let a = apps();
    // ios#100: strings everywhere, 0/0 (no fix) and tst "0" (clock unset): battery kept only.
    assert_eq!(status(&a[2].events[0]).battery, Some(75.0));
    assert_eq!(a[2].events[0].ts_src, TsSrc::Gateway);
    let l = loc(&a[3].events[0]);
    assert_eq!((l.speed, l.course, l.acc), (None, None, Some(65.0)));
    assert_eq!(loc(&a[4].events[0]).speed, None, "vel -3 of iOS 8.3.0");
    let st = status(&a[6].events[1]);
    assert_eq!((st.battery, st.charging), (Some(87.0), Some(true)));
    let e = &a[9].events[0];
    assert_eq!((e.ts, e.ts_src), (secs(1_497_476_460), TsSrc::Device));
    assert_eq!(loc(e).acc, Some(17.0));
    assert_eq!(status(&a[8].events[1]).extra["transition"], "enter");
}

#[test]
fn card_name_is_the_display_name() {
    let a = apps();
    assert_eq!(a[13].device_name.as_deref(), Some("Ben (tablet)"));
    assert!(a.iter().filter(|d| d.device_name.is_some()).count() == 1);
    let long = format!(r#"{{"_type":"card","name":"{}"}}"#, "n".repeat(200));
    let d = decode("p", long.as_bytes(), now()).unwrap();
    assert_eq!(
        (d.device_name.clone(), dropped(&d)),
        (None, vec!["bad_field:name".to_string()])
    );
}

#[test]
fn encrypted_payloads_made_by_libsodium_decrypt_with_the_key_file() {
    let ot = Owntracks {
        key: Some(Key::from_file_text(KEY)),
        ..Default::default()
    };
    let lines: Vec<&str> = ENCRYPTED.lines().filter(|l| !l.starts_with('#')).collect();
    let out: Vec<Result<Decoded, DecodeError>> = lines
        .iter()
        .map(|l| ot.decode("phone", l.split_once(' ').unwrap().1.as_bytes(), now()))
        .collect();
    let plain = decode(
        "phone",
        FIXTURE
            .lines()
            .nth(2)
            .unwrap()
            .split_once(' ')
            .unwrap()
            .1
            .as_bytes(),
        now(),
    )
    .unwrap();
    assert_eq!(
        out[0].as_ref().unwrap().events,
        plain.events,
        "same as the plaintext line"
    );
    assert_eq!(classes(out[1].as_ref().unwrap()), ["location", "status"]);
    assert_eq!(
        out[2].as_ref().unwrap().device_name.as_deref(),
        Some("Ben (tablet)")
    );
    assert_eq!(
        out[3].as_ref().unwrap_err().reason(),
        "decrypt_failed",
        "wrong key"
    );
    let no_key = decode("p", lines[0].split_once(' ').unwrap().1.as_bytes(), now());
    assert_eq!(no_key.unwrap_err().reason(), "decrypt_failed");
}

#[test]
fn other_types_carry_no_events_and_no_problems() {
    for t in [
        "waypoint",
        "waypoints",
        "card",
        "cmd",
        "status",
        "steps",
        "beacon",
        "configuration",
        "request",
    ] {
        let p = format!(r#"{{"_type":"{t}","data":"x"}}"#);
        let want = Decoded {
            silent: t == "cmd" || t == "card",
            ..Default::default()
        };
        assert_eq!(decode("p", p.as_bytes(), now()), Ok(want), "{t}");
    }
}

#[test]
fn missing_or_absurd_tst_falls_back_to_gateway_time() {
    for p in [
        r#"{"_type":"location","lat":1,"lon":2}"#,
        r#"{"_type":"location","lat":1,"lon":2,"tst":0}"#,
        r#"{"_type":"location","lat":1,"lon":2,"tst":"0"}"#,
        r#"{"_type":"location","lat":1,"lon":2,"tst":4102444800}"#,
    ] {
        let e = &decode("p", p.as_bytes(), now()).unwrap().events[0];
        assert_eq!((e.ts, e.ts_src), (now(), TsSrc::Gateway), "{p}");
    }
}

#[test]
fn bad_input_yields_each_error_kind() {
    let cases: [(&[u8], &str); 10] = [
        (b"\xc3\x28", "bad_utf8"),
        (b"not json", "not_json"),
        (b"[1,2]", "bad_field"),
        (br#"{"lat":1}"#, "missing_field"),
        (br#"{"_type":5}"#, "bad_field"),
        (
            br#"{"_type":"location","lat":"north","lon":2}"#,
            "bad_field",
        ),
        (br#"{"_type":"location","lon":2}"#, "missing_field"),
        (br#"{"_type":"location","lat":91,"lon":2}"#, "bad_position"),
        (
            br#"{"_type":"location","lat":1,"lon":2,"tst":true}"#,
            "bad_field",
        ),
        (
            br#"{"_type":"transition","lat":1,"lon":"x","event":"enter"}"#,
            "bad_field",
        ),
    ];
    for (p, reason) in cases {
        let err = decode("p", p, now()).unwrap_err();
        assert_eq!(
            err.reason(),
            reason,
            "{}: {err}",
            String::from_utf8_lossy(p)
        );
    }
    let big = vec![b' '; read::MAX_PAYLOAD_BYTES + 1];
    assert_eq!(decode("p", &big, now()).unwrap_err().reason(), "too_large");
}

#[test]
fn a_bad_optional_field_is_dropped_and_the_rest_kept() {
    let p = br#"{"_type":"transition","lat":1,"lon":2,"alt":"high","event":"stay","desc":7}"#;
    let d = decode("p", p, now()).unwrap();
    assert_eq!(classes(&d), ["location"]);
    assert_eq!(
        dropped(&d),
        ["bad_field:alt", "bad_field:event", "bad_field:desc"]
    );
}

fn keyed() -> Owntracks {
    Owntracks {
        key: Some(Key::from_file_text(KEY)),
        ..Default::default()
    }
}

/// Seals `plain` as the apps do (test helper; the fixtures come from libsodium itself).
fn seal(plain: &[u8], nonce: [u8; 24]) -> Vec<u8> {
    use base64::Engine as _;
    use crypto_secretbox::aead::{Aead, KeyInit};
    let key = crypto_secretbox::Key::from(Key::from_file_text(KEY).0);
    let boxed = crypto_secretbox::XSalsa20Poly1305::new(&key)
        .encrypt(&nonce.into(), plain)
        .unwrap();
    let data = base64::engine::general_purpose::STANDARD.encode([&nonce[..], &boxed].concat());
    format!(r#"{{"_type":"encrypted","data":"{data}"}}"#).into_bytes()
}

proptest::proptest! {
    #[test]
    fn encrypted_garbage_never_panics(data in "[A-Za-z0-9+/= ]{0,200}") {
        let p = format!(r#"{{"_type":"encrypted","data":"{data}"}}"#);
        let r = keyed().decode("p", p.as_bytes(), now());
        proptest::prop_assert!(r.is_err());
    }

    #[test]
    fn any_sealed_plaintext_never_panics(
        plain in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        nonce in proptest::prelude::any::<[u8; 24]>(),
        inner in r#"\{"_type":"(location|transition|card|lwt|encrypted)"(,"(lat|lon|tst|batt|bs|vel|event|desc|name)":(-?[0-9]{1,3}(\.[0-9])?|"[^"\\]{0,6}"|true|\[\]|\{\}))*\}"#,
    ) {
        // Sealing does not change what a (non-nested) message decodes to.
        if !inner.contains(r#""_type":"encrypted""#) {
            let sealed = keyed().decode("p", &seal(inner.as_bytes(), nonce), now());
            let plain_r = keyed().decode("p", inner.as_bytes(), now());
            proptest::prop_assert_eq!(sealed, plain_r);
        }
        for p in [plain, inner.into_bytes()] {
            if let Ok(d) = keyed().decode("p", &seal(&p, nonce), now()) {
                for e in &d.events {
                    if let Body::Location(l) = &e.body {
                        proptest::prop_assert!(crate::event::valid_position(l.lat, l.lon));
                    }
                }
            }
        }
    }
}
