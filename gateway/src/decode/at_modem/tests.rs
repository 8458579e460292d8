//! Unit tests of the AT modem decoder and poller.

use super::*;
use std::time::{Duration, Instant};

use crate::event::Body;
use chrono::TimeZone;

const FIXTURE: &str = include_str!("../../../tests/fixtures/serial/at-modem.txt");

fn wall() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

fn status(e: &Event) -> &Status {
    match &e.body {
        Body::Status(s) => s,
        other => panic!("not a status: {other:?}"),
    }
}

fn cfg(queries: AtQueries) -> AtPollerConfig {
    AtPollerConfig {
        queries,
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(2),
    }
}

#[test]
fn csq_maps_rssi_to_dbm_and_ber_class_to_percent() {
    assert_eq!(parse_csq("+CSQ: 17,99"), Ok((Some(-79.0), None)));
    assert_eq!(parse_csq("+CSQ: 99,99"), Ok((None, None)));
    assert_eq!(parse_csq("+CSQ: 0,0"), Ok((Some(-113.0), Some(0.14))));
    assert_eq!(parse_csq("+CSQ: 1,7"), Ok((Some(-111.0), Some(18.10))));
    assert_eq!(parse_csq("+CSQ: 2,3"), Ok((Some(-109.0), Some(1.13))));
    assert_eq!(parse_csq("+CSQ: 30,99"), Ok((Some(-53.0), None)));
    assert_eq!(parse_csq("31,99"), Ok((Some(-51.0), None)));
    assert_eq!(parse_csq("+CSQ: 191,99"), Ok((Some(-25.0), None)));
}

#[test]
fn csq_rejects_out_of_range_and_malformed_values() {
    for bad in [
        "+CSQ: 32,99",
        "+CSQ: 17,8",
        "+CSQ: 17",
        "+CSQ: 1,2,3",
        "+CSQ: x,1",
        "+CSQ: -1,0",
        "+CSQ: 99999999,0",
        "",
    ] {
        assert!(parse_csq(bad).is_err(), "{bad}");
    }
}

#[test]
fn cesq_maps_each_technology_per_its_table() {
    let lte = parse_cesq("+CESQ: 99,99,255,255,31,62").unwrap();
    assert_eq!(
        lte,
        Cesq {
            rsrq: Some(-4.5),
            rsrp: Some(-79.0),
            ..Cesq::default()
        }
    );
    let edges = parse_cesq("+CESQ: 0,0,0,0,0,0").unwrap();
    assert_eq!(
        edges,
        Cesq {
            rxlev: Some(-111.0),
            ber: Some(0.14),
            rscp: Some(-121.0),
            ecno: Some(-24.5),
            rsrq: Some(-20.0),
            rsrp: Some(-141.0)
        }
    );
    let top = parse_cesq("+CESQ: 63,7,96,49,34,97").unwrap();
    assert_eq!(
        top,
        Cesq {
            rxlev: Some(-48.0),
            ber: Some(18.10),
            rscp: Some(-25.0),
            ecno: Some(0.0),
            rsrq: Some(-3.0),
            rsrp: Some(-44.0)
        }
    );
    assert!(parse_cesq("+CESQ: 99,99,255,255,35,62").is_err());
    assert!(parse_cesq("+CESQ: 99,99,255,255,31").is_err());
}

#[test]
fn fixture_transcript_decodes_every_answer() {
    let out = decode_transcript("modem0", FIXTURE, wall());
    assert_eq!(out.len(), 3, "{out:?}");
    let csq = out[0].as_ref().unwrap();
    assert_eq!(
        csq.to_json(),
        r#"{"dev":"modem0","class":"status","rssi":-79,"ts":"2023-11-14T22:13:20.000Z","ts_src":"gateway"}"#
    );
    let cesq = status(out[1].as_ref().unwrap());
    assert_eq!(cesq.extra.get("rsrq"), Some(&serde_json::json!(-4.5)));
    assert_eq!(cesq.extra.get("rsrp"), Some(&serde_json::json!(-79)));
    assert_eq!(cesq.extra.len(), 2);
    assert_eq!(out[2].as_ref().unwrap_err().reason(), "unsupported");
}

/// Feeds `reply` line by line, returning the events.
fn feed(p: &mut AtPoller, reply: &str, now: Instant) -> Vec<Event> {
    reply
        .lines()
        .filter_map(|l| p.on_line(l, now, wall()))
        .collect()
}

#[test]
fn poller_merges_csq_and_cesq_into_one_event_per_cycle() {
    let t0 = Instant::now();
    let mut p = AtPoller::new("modem0", cfg(AtQueries::Both), t0);
    assert_eq!(p.next_command(t0), Some(&b"AT+CSQ\r"[..]));
    assert_eq!(p.next_command(t0), None, "one command in flight");
    assert!(feed(&mut p, "AT+CSQ\r\n+CSQ: 17,3\r\n\r\nOK", t0).is_empty());
    assert_eq!(p.next_command(t0), Some(&b"AT+CESQ\r"[..]));
    let ev = feed(&mut p, "RING\n+CESQ: 99,99,255,255,31,62\n+CREG: 1\nOK", t0);
    assert_eq!(ev.len(), 1);
    let s = status(&ev[0]);
    assert_eq!((s.rssi, s.ber), (Some(-79.0), Some(1.13)));
    assert_eq!(s.extra.len(), 2);
    assert_eq!(p.stats().unsolicited, 2);
    assert_eq!(p.next_command(t0 + Duration::from_secs(59)), None);
    assert_eq!(p.wake_at(), t0 + Duration::from_secs(60));
    assert!(p.next_command(t0 + Duration::from_secs(60)).is_some());
    assert_eq!(p.stats().cycles, 2);
}

#[test]
fn error_moves_on_and_keeps_what_the_cycle_has() {
    let t0 = Instant::now();
    let mut p = AtPoller::new("m", cfg(AtQueries::Both), t0);
    p.next_command(t0);
    feed(&mut p, "+CSQ: 20,99\nOK", t0);
    p.next_command(t0);
    let ev = feed(&mut p, "+CME ERROR: 4", t0);
    assert_eq!(status(&ev[0]).rssi, Some(-73.0));
    assert_eq!(p.stats().errors, 1);
    // A cycle with nothing known yields no event.
    let t1 = t0 + Duration::from_secs(60);
    p.next_command(t1);
    assert!(feed(&mut p, "+CSQ: 99,99\nOK\nERROR", t1).is_empty());
    assert_eq!(p.next_command(t1), Some(&b"AT+CESQ\r"[..]));
    assert!(feed(&mut p, "ERROR", t1).is_empty());
}

#[test]
fn silence_times_out_and_is_measurable() {
    let t0 = Instant::now();
    let mut p = AtPoller::new("m", cfg(AtQueries::Csq), t0);
    p.next_command(t0);
    assert_eq!(p.on_tick(t0 + Duration::from_secs(1), wall()), None);
    assert_eq!(p.stats().timeouts, 0);
    assert_eq!(p.on_tick(t0 + Duration::from_secs(2), wall()), None);
    assert_eq!(p.stats().timeouts, 1);
    assert_eq!(
        p.silent_for(t0 + Duration::from_secs(10)),
        Duration::from_secs(10)
    );
    // A late answer outside any cycle is counted, not used.
    assert!(feed(&mut p, "+CSQ: 5,0\nOK", t0 + Duration::from_secs(3)).is_empty());
    assert_eq!(p.stats().unsolicited, 2);
    assert_eq!(
        p.silent_for(t0 + Duration::from_secs(10)),
        Duration::from_secs(7)
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_lines_never_panic(lines in proptest::collection::vec(".{0,40}|[+]C(E)?SQ: [0-9,]{0,24}|OK|ERROR", 0..30)) {
        let t0 = Instant::now();
        let mut p = AtPoller::new("m", cfg(AtQueries::Both), t0);
        for (i, l) in lines.iter().enumerate() {
            let now = t0 + Duration::from_millis(700 * i as u64);
            p.next_command(now);
            p.on_line(l, now, wall());
            p.on_tick(now, wall());
        }
        decode_transcript("m", &lines.join("\n"), wall());
    }
}

#[test]
fn garbage_and_malformed_answers_are_counted_not_fatal() {
    let t0 = Instant::now();
    let mut p = AtPoller::new("m", cfg(AtQueries::Csq), t0);
    p.next_command(t0);
    let ev = feed(&mut p, "~~~\n+CSQ: 40,1\n+CSQ: 10,99\nOK", t0);
    assert_eq!(status(&ev[0]).rssi, Some(-93.0));
    assert_eq!((p.stats().garbage, p.stats().malformed), (1, 1));
}
