use super::*;
use crate::event::{Alert, Body, Event, Location, Message, Status, TsSrc};

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn events() -> Vec<Event> {
    let mut extra = serde_json::Map::new();
    extra.insert("note".into(), r#"a "quoted", {braced} [x] \ text"#.into());
    extra.insert(
        "nested".into(),
        serde_json::json!({"a": [1, {"b": "}"}], "c": null}),
    );
    let ev = |body, ts_src| Event {
        dev: "bench-d007".into(),
        body,
        ts: at(1_764_343_865_000),
        ts_src,
    };
    vec![
        ev(
            Body::Location(Location {
                lat: 52.00712,
                lon: 13.00845,
                alt: Some(48.0),
                speed: Some(10.0),
                course: Some(120.5),
                acc: Some(5.0),
                ..Default::default()
            }),
            TsSrc::Device,
        ),
        ev(
            Body::Location(Location {
                lat: -33.9,
                lon: 151.2,
                sats: Some(7),
                ..Default::default()
            }),
            TsSrc::Gps,
        ),
        ev(
            Body::Status(Status {
                battery: Some(81.0),
                extra,
                ..Default::default()
            }),
            TsSrc::Gateway,
        ),
        ev(
            Body::Message(Message {
                text: "Copy, en route \u{1F697} \"now\"".into(),
                to: Some("!deadbeef".into()),
                msg_id: None,
            }),
            TsSrc::Device,
        ),
        ev(
            Body::Alert(Alert {
                reason: "emergency".into(),
                text: None,
                lat: Some(1.5),
                lon: Some(2.5),
            }),
            TsSrc::Device,
        ),
    ]
}

#[test]
fn expands_to_exactly_the_stored_json() {
    let rx = at(1_764_616_265_123);
    for e in events() {
        let full = e.to_stored_json(rx);
        let c = compact(&e.to_json(), rx.timestamp_millis()).expect("compactable");
        assert!(c.len() < full.len(), "{c}");
        // rx from the id's milliseconds…
        assert_eq!(expand(c.clone(), e.class(), 1_764_616_265_123), full, "{c}");
        // The read path's form: from the bytes as Redis sent them.
        let mut x = Expander::default();
        assert_eq!(
            x.expand_bytes(c.as_bytes(), e.class(), 1_764_616_265_123),
            full
        );
        // …or from "r", which the ingest script adds when Redis picked the id.
        let with_r = format!("{},\"r\":1764616265123}}", &c[..c.len() - 1]);
        assert_eq!(expand(with_r, e.class(), 1_764_616_299_000), full);
    }
}

#[test]
fn a_bench_location_is_small() {
    let e = &events()[0];
    let c = compact(&e.to_json(), 1_764_616_265_123).unwrap();
    assert_eq!(
        c,
        r#"{"d":"bench-d007","a":52.00712,"o":13.00845,"h":48,"v":10,"c":120.5,"e":5,"t":-272400123}"#
    );
}

#[test]
fn full_form_and_garbage_pass_through() {
    let full = events()[0].to_stored_json(at(5));
    assert_eq!(expand(full.clone(), Class::Location, 7), full);
    // The last two: `d` not first, and twice (the compact form writes it first, once).
    for bad in [
        "",
        "{",
        "{\"d\":",
        "{\"d\":\"x\",\"t\":\"no\"}",
        "not json",
        "{\"a\":1,\"d\":\"x\",\"t\":0}",
        "{\"d\":\"x\",\"d\":\"y\",\"t\":0}",
    ] {
        assert_eq!(expand(bad.to_string(), Class::Location, 7), bad);
        let mut x = Expander::default();
        assert_eq!(x.expand_bytes(bad.as_bytes(), Class::Location, 7), bad);
    }
    // Bytes that are not UTF-8 are passed on with the bad bytes replaced, not dropped.
    let mut x = Expander::default();
    assert_eq!(
        x.expand_bytes(b"{\"d\":\"\xff\",\"t\":0}", Class::Location, 7),
        "{\"d\":\"\u{fffd}\",\"t\":0}"
    );
}

#[test]
fn what_cannot_round_trip_is_not_compacted() {
    // A class field named like one of the compact form's own keys.
    assert_eq!(
        compact(
            r#"{"dev":"a","class":"status","t":1,"ts":"2023-11-14T22:13:20.000Z","ts_src":"device"}"#,
            0
        ),
        None
    );
    // A time the full form would print differently.
    assert_eq!(
        compact(
            r#"{"dev":"a","class":"status","ts":"2023-11-14T22:13:20.5Z","ts_src":"device"}"#,
            0
        ),
        None
    );
}

#[test]
fn one_expander_over_many_entries_formats_every_time_right() {
    let mut x = Expander::default();
    let e = &events()[0];
    // Across second and day boundaries, forwards and back.
    for rx_ms in [
        1_764_616_265_123i64,
        1_764_616_265_999,
        1_764_616_266_000,
        1_764_633_599_999,
        1_764_633_600_001,
        1_764_616_265_005,
    ] {
        let c = compact(&e.to_json(), rx_ms).unwrap();
        assert_eq!(
            x.expand(c, Class::Location, rx_ms as u64),
            e.to_stored_json(at(rx_ms))
        );
    }
}
