use super::*;
use chrono::TimeZone;

const REPORTS: &str = include_str!("../../../tests/fixtures/serial/gpsd-reports.jsonl");
const REAL: &str = include_str!("../../../tests/fixtures/serial/gpsd-real.jsonl");

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

fn loc(e: &Event) -> &Location {
    match &e.body {
        Body::Location(l) => l,
        other => panic!("not a location: {other:?}"),
    }
}

type One = Result<Option<Event>, DecodeError>;

/// The single report of a line, as "an event or not".
fn one(mut v: Vec<Result<Decoded, DecodeError>>) -> One {
    assert_eq!(v.len(), 1, "one report on the line");
    v.pop().unwrap().map(|d| {
        assert!(d.dropped.is_empty(), "{:?}", d.dropped);
        d.events.into_iter().next()
    })
}

/// Every fixture line through one decoder, in order.
fn decode_fixture() -> Vec<One> {
    let mut d = GpsdDecoder::new();
    REPORTS
        .lines()
        .map(|l| one(d.push_line("gps0", l, now())))
        .collect()
}

#[test]
fn tpv_2d_then_3d_then_repeat() {
    let out = decode_fixture();
    let first = out[0].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(
        first.to_json(),
        r#"{"dev":"gps0","class":"location","lat":-45.877567167,"lon":170.500111333,"speed":0.013,"fix":"2d","ts":"2019-04-12T00:39:56.000Z","ts_src":"gps"}"#
    );
    let second = out[1].as_ref().unwrap().as_ref().unwrap();
    let l = loc(second);
    assert_eq!(
        (l.alt, l.acc, l.fix),
        (Some(14.2), Some(12.16), Some(Fix::ThreeD))
    );
    assert_eq!(out[2], Ok(None), "unchanged TPV is not a new position");
    assert_eq!(out[3], Ok(None), "SKY yields no event");
}

#[test]
fn sky_is_merged_into_the_next_tpv_and_status_sets_the_fix() {
    let out = decode_fixture();
    let dgps = out[4].as_ref().unwrap().as_ref().unwrap();
    let l = loc(dgps);
    assert_eq!(
        (l.sats, l.hdop, l.fix),
        (Some(12), Some(0.64), Some(Fix::Dgps))
    );
    assert_eq!(dgps.ts_src, TsSrc::Gateway, "TPV without time");
    let rtk = out[5].as_ref().unwrap().as_ref().unwrap();
    assert_eq!((loc(rtk).fix, loc(rtk).course), (Some(Fix::Rtk), Some(0.0)));
    assert_eq!(out[6], Ok(None), "mode 1: no fix");
    let float = out[7].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(
        (loc(float).fix, loc(float).sats),
        (Some(Fix::RtkFloat), None),
        "SKY dropped at fix loss"
    );
    assert_eq!(
        out[8].as_ref().unwrap_err().reason(),
        "unsupported",
        "simulated"
    );
    assert_eq!(
        loc(out[9].as_ref().unwrap().as_ref().unwrap()).acc,
        Some(10.59)
    );
    assert_eq!(out[10], Ok(None), "GST ignored");
    assert_eq!(out.len(), 11);
}

#[test]
fn stale_sky_is_not_merged_and_old_sky_counts_used_satellites() {
    let mut d = GpsdDecoder::new();
    let sky = r#"{"class":"SKY","satellites":[{"PRN":5,"used":true},{"PRN":7,"used":false},{"PRN":9,"used":true}]}"#;
    let tpv = r#"{"class":"TPV","mode":3,"lat":1.0,"lon":2.0,"epx":3.0,"epy":4.0}"#;
    assert_eq!(one(d.push_line("g", sky, now())), Ok(None));
    let e = one(d.push_line("g", tpv, now())).unwrap().unwrap();
    assert_eq!((loc(&e).sats, loc(&e).acc), (Some(2), Some(5.0)));
    let later = now() + Duration::seconds(6);
    let tpv2 = r#"{"class":"TPV","mode":3,"lat":1.5,"lon":2.0,"altMSL":7,"alt":9}"#;
    let e = one(d.push_line("g", tpv2, later)).unwrap().unwrap();
    assert_eq!((loc(&e).sats, loc(&e).alt, e.ts), (None, Some(7.0), later));
}

/// gpsd-real.jsonl: a newer daemon's VERSION (proto_major 16), reports back to back on one
/// line, classes this decoder does not know.
#[test]
fn newer_gpsd_concatenated_reports_and_unknown_classes() {
    let mut d = GpsdDecoder::new();
    let lines: Vec<&str> = REAL.lines().filter(|l| !l.starts_with('#')).collect();
    let out: Vec<Vec<Result<Decoded, DecodeError>>> =
        lines.iter().map(|l| d.push_line("g", l, now())).collect();
    let counts: Vec<usize> = out.iter().map(Vec::len).collect();
    assert_eq!(counts, [1, 3, 3, 2]);
    assert!(out.iter().flatten().all(|r| r.is_ok()), "{out:?}");
    let events: Vec<&Event> = out
        .iter()
        .flatten()
        .flat_map(|r| &r.as_ref().unwrap().events)
        .collect();
    assert_eq!(events.len(), 2);
    let l = loc(events[0]);
    assert_eq!(
        (l.sats, l.hdop, l.fix),
        (Some(16), Some(0.56), Some(Fix::Dgps))
    );
    assert_eq!(
        (events[0].ts, events[0].ts_src),
        (
            Utc.with_ymd_and_hms(2020, 7, 11, 22, 37, 46).unwrap(),
            TsSrc::Gps
        )
    );
    assert_eq!(
        events[1].ts,
        Utc.with_ymd_and_hms(2020, 7, 11, 22, 37, 47).unwrap()
    );
}

#[test]
fn a_bad_optional_field_is_dropped_and_the_position_kept() {
    let tpv = r#"{"class":"TPV","mode":3,"lat":1.0,"lon":2.0,"speed":"fast","eph":null,"epx":[],"status":"x"}"#;
    let mut r = GpsdDecoder::new().push_line("g", tpv, now());
    let d = r.pop().unwrap().unwrap();
    assert_eq!(d.events.len(), 1);
    let names: Vec<String> = d.dropped.iter().map(|f| f.reason()).collect();
    assert_eq!(
        names,
        ["bad_field:status", "bad_field:epx", "bad_field:speed"]
    );
    assert_eq!(
        (loc(&d.events[0]).speed, loc(&d.events[0]).acc),
        (None, None)
    );
}

#[test]
fn old_protocol_is_refused() {
    let v = r#"{"class":"VERSION","release":"2.95","proto_major":2,"proto_minor":0}"#;
    let r = one(GpsdDecoder::new().push_line("g", v, now()));
    assert_eq!(r.unwrap_err().reason(), "unsupported");
}

proptest::proptest! {
    #[test]
    fn arbitrary_lines_never_panic(
        line in r#"(\{"class":"(TPV|SKY|VERSION)"(,"[a-zA-Z_]{1,11}":(-?[0-9]{1,4}(\.[0-9]{1,3})?|"[^"]{0,8}"|\[\]|\{\}|true|null))*\} ?){1,3}|.{0,60}"#,
    ) {
        let _ = GpsdDecoder::new().push_line("g", &line, now());
    }
}

#[test]
fn control_reports_are_ignored_and_bad_input_is_typed() {
    let mut d = GpsdDecoder::new();
    for ok in [
        r#"{"class":"VERSION","release":"3.25","rev":"3.25","proto_major":3,"proto_minor":15}"#,
        r#"{"class":"DEVICES","devices":[{"class":"DEVICE","path":"/dev/ttyACM0"}]}"#,
        r#"{"class":"WATCH","enable":true,"json":true}"#,
        r#"{"class":"TPV","mode":1}"#,
    ] {
        assert_eq!(one(d.push_line("g", ok, now())), Ok(None), "{ok}");
    }
    let reason = |l: &str| {
        GpsdDecoder::new()
            .push_line("g", l, now())
            .pop()
            .unwrap()
            .unwrap_err()
            .reason()
    };
    assert_eq!(reason("not json"), "not_json");
    assert_eq!(reason(""), "not_json");
    assert_eq!(reason(r#"{"mode":3}"#), "missing_field");
    assert_eq!(
        reason(r#"{"class":"TPV","mode":3,"lat":"x","lon":1}"#),
        "bad_field"
    );
    assert_eq!(
        reason(r#"{"class":"TPV","mode":3,"lon":1}"#),
        "missing_field"
    );
    assert_eq!(
        reason(r#"{"class":"TPV","mode":3,"lat":91,"lon":1}"#),
        "bad_position"
    );
    assert_eq!(
        reason(r#"{"class":"TPV","mode":2,"lat":1,"lon":1,"time":"yesterday"}"#),
        "bad_field"
    );
    assert_eq!(
        reason(r#"{"class":"TPV","mode":300,"lat":1,"lon":1}"#),
        "malformed"
    );
    assert_eq!(reason(r#"{"class":"SKY"} {"class":"#), "not_json");
    assert!(WATCH.starts_with("?WATCH=") && WATCH.ends_with('\n'));
}
