//! Unit and property tests of the NMEA decoder: epoch merging, dates, counters, and that no
//! input — random text, random bytes, mutated real sentences — can panic it.

use chrono::{NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::event::{Fix, Location};

/// `$body*hh` with the right checksum.
fn ck(body: &str) -> String {
    let sum = body.bytes().fold(0u8, |x, c| x ^ c);
    format!("${body}*{sum:02X}")
}

fn loc(e: &Event) -> &Location {
    match &e.body {
        Body::Location(l) => l,
        other => panic!("not a location: {other:?}"),
    }
}

/// Pushes every line, collecting events (errors ignored), then flushes.
fn run(dec: &mut NmeaDecoder, lines: &[String]) -> Vec<Event> {
    let mut out: Vec<Event> = lines
        .iter()
        .filter_map(|l| dec.push_line(l).ok().flatten())
        .collect();
    out.extend(dec.finish());
    out
}

/// A u-blox style 1 Hz burst: RMC, VTG, GGA, GSA, GLL.
fn burst(hhmmss: &str, date: &str) -> Vec<String> {
    vec![
        ck(&format!(
            "GNRMC,{hhmmss}.00,A,4404.14063,N,12118.85478,W,1.944,90.5,{date},,,A"
        )),
        ck("GNVTG,90.5,T,,M,1.944,N,3.6,K,A"),
        ck(&format!(
            "GNGGA,{hhmmss}.00,4404.14063,N,12118.85478,W,1,12,0.91,1147.2,M,-21.3,M,,"
        )),
        ck("GNGSA,A,3,01,11,31,14,22,32,04,25,03,,,,1.56,0.91,1.27"),
        ck(&format!("GNGLL,4404.14063,N,12118.85478,W,{hhmmss}.00,A,A")),
    ]
}

#[test]
fn one_location_per_epoch_with_merged_fields() {
    let mut dec = NmeaDecoder::new("gps0".into());
    let mut lines = burst("171926", "180315");
    lines.extend(burst("171927", "180315"));
    let events = run(&mut dec, &lines);
    assert_eq!(events.len(), 2);
    let e = &events[0];
    assert_eq!(e.dev, "gps0");
    assert_eq!(e.ts, Utc.with_ymd_and_hms(2015, 3, 18, 17, 19, 26).unwrap());
    assert_eq!(e.ts_src, TsSrc::Gps);
    let l = loc(e);
    assert!((l.lat - 44.069010500).abs() < 1e-9);
    assert!((l.lon - -121.314246333).abs() < 1e-9);
    assert_eq!(l.alt, Some(1147.2));
    assert!((l.speed.unwrap() - 1.944 * 0.514444).abs() < 1e-9);
    assert_eq!(l.course, Some(90.5));
    assert_eq!(l.hdop, Some(0.91));
    assert_eq!(l.sats, Some(12));
    assert_eq!(l.fix, Some(Fix::ThreeD));
    assert_eq!(dec.stats().epochs, 2);
    assert_eq!(dec.stats().sentences_ok, 10);
}

#[test]
fn learned_cycle_ender_reports_without_waiting_for_the_next_epoch() {
    let mut dec = NmeaDecoder::new("gps0".into());
    let first = burst("120000", "010124");
    let second = burst("120001", "010124");
    for l in &first {
        assert_eq!(
            dec.push_line(l),
            Ok(None),
            "first epoch: ender not known yet"
        );
    }
    // The first sentence of the next epoch completes the first one.
    assert!(dec.push_line(&second[0]).unwrap().is_some());
    // From now on GLL, the last timed sentence, completes each epoch as it arrives.
    for l in &second[1..4] {
        assert_eq!(dec.push_line(l), Ok(None));
    }
    let e = dec
        .push_line(&second[4])
        .unwrap()
        .expect("GLL ends the epoch");
    assert_eq!(e.ts, Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 1).unwrap());
    assert_eq!(dec.finish(), None, "nothing left to flush");
    assert!(dec.has_fix());
}

#[test]
fn no_location_without_a_fix() {
    let no_fix = [
        ck("GPRMC,120000.00,V,4404.1,N,12118.8,W,,,010124,,,N"),
        ck("GPGGA,120001.00,4404.1,N,12118.8,W,0,00,,,M,,M,,"),
        ck("GNGNS,120002.00,4404.1,N,12118.8,W,NNN,00,,,,,,V"),
        ck("GPGLL,4404.1,N,12118.8,W,120003.00,V,N"),
    ];
    let mut dec = NmeaDecoder::new("gps0".into());
    let lines: Vec<String> = no_fix.to_vec();
    assert!(run(&mut dec, &lines).is_empty());
    assert_eq!(dec.stats().no_fix_epochs, 4);
    assert!(!dec.has_fix());
}

#[test]
fn gsa_mode_one_alone_suppresses_a_fix_of_unknown_status() {
    // GGA quality 1 with zero satellites says nothing; GSA then says "no fix".
    let lines = vec![
        ck("GPZDA,120000.00,01,01,2024,00,00"),
        ck("GPGGA,120000.00,4404.1,N,12118.8,W,1,00,3.3,10.0,M,,M,,"),
        ck("GPGSA,A,1,,,,,,,,,,,,,,,"),
    ];
    let mut dec = NmeaDecoder::new("gps0".into());
    assert!(run(&mut dec, &lines).is_empty());
}

#[test]
fn no_event_until_a_date_is_known_then_date_follows_midnight() {
    let gga = |t: &str| ck(&format!("GPGGA,{t},4404.1,N,12118.8,W,2,08,1.0,5.0,M,,M,,"));
    let lines = vec![
        gga("235958.00"),
        ck("GPZDA,235959.00,31,12,2023,,"),
        gga("235959.00"),
        gga("000000.00"),
    ];
    let mut dec = NmeaDecoder::new("gps0".into());
    let ev = run(&mut dec, &lines);
    assert_eq!(dec.stats().undated_epochs, 1);
    let ts: Vec<_> = ev.iter().map(|e| e.ts).collect();
    assert_eq!(
        ts,
        [
            Utc.with_ymd_and_hms(2023, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        ]
    );
    assert_eq!(loc(&ev[0]).fix, Some(Fix::Dgps));
}

#[test]
fn fix_quality_maps_to_fix_kind() {
    for (q, fix) in [
        ("2", Fix::Dgps),
        ("4", Fix::Rtk),
        ("5", Fix::RtkFloat),
        ("6", Fix::Est),
    ] {
        let lines = vec![
            ck(&format!(
                "GPGGA,120000.25,4404.1,N,12118.8,W,{q},08,1.0,5.0,M,,M,,"
            )),
            ck("GPRMC,120000.25,A,4404.1,N,12118.8,W,0.0,,010124,,,A"),
        ];
        let ev = run(&mut NmeaDecoder::new("d".into()), &lines);
        assert_eq!(loc(&ev[0]).fix, Some(fix), "quality {q}");
        assert_eq!(ev[0].ts.timestamp_subsec_millis(), 250);
    }
}

#[test]
fn rollover_floor_moves_old_dates_forward_1024_weeks() {
    let lines = vec![ck(
        "GPRMC,000345.03,A,4808.9993,N,01135.0798,E,0.1,0.0,220899,,,A",
    )];
    let floor = NaiveDate::from_ymd_opt(2017, 1, 1).unwrap();
    let ev = run(
        &mut NmeaDecoder::new("d".into()).with_rollover_floor(floor),
        &lines,
    );
    assert_eq!(
        ev[0].ts,
        Utc.with_ymd_and_hms(2019, 4, 7, 0, 3, 45).unwrap() + chrono::Duration::milliseconds(30)
    );
}

#[test]
fn counters_classify_every_line() {
    let lines = [
        ck("GPZDA,000427.00,22,08,2024,,"),
        "$GPZDA,000427.00,22,08,2024,,*00".to_string(),
        ck("PGRME,15.0,M,45.0,M,25.0,M"),
        ck("GPGSV,1,1,00"),
        ck("SNRSTAT,1,1,0,0"),
        "garbage".to_string(),
        ck("GPGGA,99,4404.1,N,12118.8,W,1,08,1.0,5.0,M,,M,,"),
        format!("$GPTXT,{}*00", "x".repeat(300)),
        String::new(),
        format!("${}", ck("GPZDA,000428.00,22,08,2024,,")),
    ];
    let mut dec = NmeaDecoder::new("d".into());
    let errs: Vec<_> = lines
        .iter()
        .filter_map(|l| dec.push_line(l).err().map(|e| e.reason()))
        .collect();
    assert_eq!(
        errs,
        ["bad_checksum", "malformed", "bad_field", "too_large"]
    );
    let s = *dec.stats();
    assert_eq!(
        (s.lines, s.sentences_ok, s.bad_checksum, s.proprietary),
        (10, 2, 1, 1)
    );
    assert_eq!((s.unsupported, s.malformed), (2, 3));
}

#[test]
fn long_lines_up_to_the_bound_are_accepted() {
    let pad = ",".repeat(120);
    let line = ck(&format!("GPZDA,000427.00,22,08,2024,,{pad}"));
    assert!(line.len() > 102 && line.len() <= MAX_SENTENCE);
    let mut dec = NmeaDecoder::new("d".into());
    assert_eq!(dec.push_line(&line), Ok(None));
    assert_eq!(dec.stats().sentences_ok, 1);
}

/// A real sentence of each decoded type, from the gpsd corpus.
const REAL: &[&str] = &[
    "$GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000*7D",
    "$GPRMC,030719.000,A,3747.0873,S,17518.8938,E,0.69,181.39,311214,,,A*7D",
    "$GNGNS,213712.000,4111.59903,N,11156.54809,W,AANN,13,0.93,01482.5,-016.5,,*52",
    "$GNGLL,4111.59903,N,11156.54809,W,213712.000,A,A*50",
    "$GNVTG,000.0,T,348.3,M,000.0,N,000.1,K,A*30",
    "$GPGSA,A,3,17,28,06,01,30,20,26,13,,,,,1.8,1.1,1.5*33",
    "$GNZDA,213712.000,12,02,2026,,*4B",
    "$GPZDA,120213.000,31,07,2022,+00,00*79",
];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(lines in proptest::collection::vec(".{0,120}", 1..20)) {
        let mut dec = NmeaDecoder::new("d".into());
        for l in &lines {
            let _ = dec.push_line(l);
        }
        let _ = dec.finish();
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut dec = NmeaDecoder::new("d".into());
        for l in String::from_utf8_lossy(&bytes).split('\n') {
            let _ = dec.push_line(l);
        }
        let _ = dec.finish();
    }

    /// Real sentences with bytes replaced, inserted or deleted, checksum recomputed half the
    /// time so that the field parsers (not just the checksum) see the damage.
    #[test]
    fn mutated_real_sentences_never_panic(
        which in 0..REAL.len(),
        edits in proptest::collection::vec((0usize..100, any::<char>(), 0u8..3), 1..8),
        fix_checksum in any::<bool>(),
    ) {
        let mut chars: Vec<char> = REAL[which].chars().collect();
        for (pos, c, op) in edits {
            let i = pos % (chars.len() + 1);
            match op {
                0 if i < chars.len() => chars[i] = c,
                1 => chars.insert(i, c),
                _ if i < chars.len() => { chars.remove(i); }
                _ => {}
            }
        }
        let mut s: String = chars.into_iter().collect();
        if fix_checksum {
            let body = s.trim_start_matches('$').split('*').next().unwrap_or("").to_string();
            s = ck(&body);
        }
        let mut dec = NmeaDecoder::new("d".into());
        for l in REAL.iter().take(2) {
            let _ = dec.push_line(l);
        }
        let _ = dec.push_line(&s);
        let _ = dec.finish();
    }

    /// A valid GGA (+ a ZDA for the date) decodes back to what was encoded.
    #[test]
    fn valid_gga_round_trips(
        lat in -89.99f64..89.99,
        lon in -179.99f64..179.99,
        sats in 4u32..40,
        hdop in 0.5f64..20.0,
        alt in -400.0f64..9000.0,
        tod_ms in 0u32..86_399_990,
    ) {
        let ddmm = |v: f64, w: usize| {
            let a = v.abs();
            let d = a.trunc();
            format!("{:0w$}{:010.7}", d as u32, (a - d) * 60.0, w = w)
        };
        let t = tod_ms / 10 * 10;
        let hms = format!(
            "{:02}{:02}{:02}.{:02}",
            t / 3_600_000, t / 60_000 % 60, t / 1000 % 60, t % 1000 / 10
        );
        let gga = ck(&format!(
            "GNGGA,{hms},{},{},{},{},1,{sats:02},{hdop:.2},{alt:.1},M,,M,,",
            ddmm(lat, 2), if lat < 0.0 { "S" } else { "N" },
            ddmm(lon, 3), if lon < 0.0 { "W" } else { "E" },
        ));
        let zda = ck(&format!("GNZDA,{hms},05,08,2026,00,00"));
        let ev = run(&mut NmeaDecoder::new("d".into()), &[zda, gga]);
        prop_assert_eq!(ev.len(), 1);
        let l = loc(&ev[0]);
        prop_assert!((l.lat - lat).abs() < 1e-8, "lat {} vs {}", l.lat, lat);
        prop_assert!((l.lon - lon).abs() < 1e-8, "lon {} vs {}", l.lon, lon);
        prop_assert_eq!(l.sats, Some(sats));
        prop_assert!((l.hdop.unwrap() - hdop).abs() < 0.006);
        prop_assert!((l.alt.unwrap() - alt).abs() < 0.06);
        prop_assert_eq!(l.fix, Some(Fix::ThreeD));
        let day = Utc.with_ymd_and_hms(2026, 8, 5, 0, 0, 0).unwrap();
        prop_assert_eq!((ev[0].ts - day).num_milliseconds(), i64::from(t));
    }
}
