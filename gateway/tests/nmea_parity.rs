//! Parity with gpsd: every log of gpsd's NMEA regression suite (40 real receivers, copied into
//! `tests/fixtures/nmea-gpsd/` with gpsd's BSD-2-Clause notice) is decoded with `NmeaDecoder`
//! and compared with the fixes gpsd itself reported for it (the `TPV` objects with `mode` 2 or 3
//! in the matching `.log.chk`).
//!
//! How gpsd's output is read:
//! - gpsd may report one epoch several times (after GGA, after GSA, after RMC…); those reports
//!   share a `time`, so an expected fix is a distinct `time`, and it matches a decoded event
//!   with the same timestamp whose lat/lon are within 1e-6° of one of gpsd's reports for it.
//! - gpsd's reports without `time` (before the receiver's first RMC/ZDA gave a date) are not
//!   comparable; the decoder reports nothing without a date either. They are counted, shown
//!   as `untimed`, and left out of the percentage.
//! - gpsd's regression driver sets gpsd's clock from the log's `# Date: y-m-d` header. With
//!   one, dates are taken as sent. Without one (only `neo-m8n.log`, whose header reads
//!   `# Date = …`, which gpsd's parser does not accept), gpsd runs with the real clock and its
//!   week-rollover check (`gpsd_utc_resolve` in `timebase.c`: a date before 2017-01-01 cannot
//!   go with 18 leap seconds) moves the 2015 dates forward 1024 weeks, to 2034. The decoder
//!   has the same correction as an option, and the test turns it on exactly where gpsd did.
//!
//! `extra` counts decoded fixes gpsd did not report; it is shown, not asserted on. On this
//! corpus there are 9, each a valid fix (RMC `A`, GGA quality ≥ 1): the first fixed epoch of
//! a log, which gpsd — still learning the receiver's cycle — did not report, or the last one
//! before a log ends or is spliced, which gpsd never saw completed and `finish()` flushes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use outpost::decode::nmea::{NmeaDecoder, NmeaStats};
use outpost::event::{Body, Event};

/// Position tolerance, degrees (about 0.1 m).
const TOL: f64 = 1e-6;

/// Receiver family of each log (gpsd's INDEX "vendor" column), for the summary.
const FAMILIES: &[(&str, &str)] = &[
    ("ublox", "u-blox"),
    ("neo-m8n", "u-blox"),
    ("gr601", "u-blox"),
    ("gr8013", "u-blox"),
    ("rx210", "u-blox"),
    ("jl-micro", "u-blox"),
    ("firefly", "u-blox"),
    ("bu353", "SiRF"),
    ("sirf", "SiRF"),
    ("beidou", "SiRF"),
    ("blumax", "SiRF"),
    ("garmin", "Garmin"),
    ("GPSmap", "Garmin"),
    ("mt3339", "MTK"),
    ("mtk", "MTK"),
    ("bt-q818", "MTK"),
    ("quectel", "Quectel"),
    ("furuno", "Furuno"),
    ("skytraq", "SkyTraq"),
    ("unicore", "Unicore"),
    ("st-teseo", "ST"),
    ("telit", "Telit"),
    ("ericsson", "ST/Trimble"),
    ("nmea-", "Trimble"),
    ("hemi", "Hemisphere"),
    ("gp-320", "SE4100L"),
    ("polarx", "Septentrio"),
];

#[derive(Default, Clone, Copy)]
struct Row {
    expected: usize,
    matched: usize,
    wrong_pos: usize,
    extra: usize,
    untimed: usize,
}

/// Every `.log` of the fixture folder, sorted.
fn logs() -> Vec<PathBuf> {
    let mut logs: Vec<_> = std::fs::read_dir(fixtures())
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nmea-gpsd")
}

fn family(name: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|(p, _)| name.starts_with(p))
        .map_or("other", |(_, f)| f)
}

/// gpsd's fixes: time → every (lat, lon) it reported at that time.
type Fixes = BTreeMap<DateTime<Utc>, Vec<(f64, f64)>>;

/// gpsd's fixes in a `.chk`, and how many it reported without a time.
fn expected(chk: &str) -> (Fixes, usize) {
    let mut by_time: BTreeMap<_, Vec<_>> = BTreeMap::new();
    let mut untimed = 0;
    for line in chk.lines().filter(|l| l.starts_with("{\"class\":\"TPV\"")) {
        let v: serde_json::Value = serde_json::from_str(line).expect("TPV is JSON");
        if v["mode"].as_i64().unwrap_or(0) < 2 {
            continue;
        }
        let (Some(lat), Some(lon)) = (v["lat"].as_f64(), v["lon"].as_f64()) else {
            continue;
        };
        match v["time"].as_str() {
            Some(t) => {
                let t = DateTime::parse_from_rfc3339(t).expect("TPV time").to_utc();
                by_time.entry(t).or_default().push((lat, lon));
            }
            None => untimed += 1,
        }
    }
    (by_time, untimed)
}

/// Decodes a log the way gpsfake feeds it: line by line, `#` comment lines skipped.
fn decode(name: &str, log: &[u8]) -> (Vec<Event>, NmeaStats) {
    let text = String::from_utf8_lossy(log);
    let header_date = text.lines().any(|l| {
        l.strip_prefix("# Date: ")
            .and_then(|d| d.split('-').next())
            .is_some_and(|y| y.trim().parse::<u32>().is_ok())
    });
    let mut dec = NmeaDecoder::new(name.to_string());
    if !header_date {
        dec = dec.with_rollover_floor(NaiveDate::from_ymd_opt(2017, 1, 1).unwrap());
    }
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Ok(Some(e)) = dec.push_line(line.trim_end_matches('\r')) {
            out.push(e);
        }
    }
    out.extend(dec.finish());
    (out, *dec.stats())
}

fn compare(name: &str, events: &[Event], chk: &str, verbose: bool) -> Row {
    let (want, untimed) = expected(chk);
    let mut row = Row {
        expected: want.len(),
        untimed,
        ..Row::default()
    };
    for e in events {
        let Body::Location(l) = &e.body else {
            panic!("nmea decoder produced a non-location event")
        };
        match want.get(&e.ts) {
            None => {
                row.extra += 1;
                if verbose {
                    println!("  {name}: extra {} {:.7} {:.7}", e.ts, l.lat, l.lon);
                }
            }
            Some(ps) => {
                let close = ps
                    .iter()
                    .any(|(a, b)| (a - l.lat).abs() <= TOL && (b - l.lon).abs() <= TOL);
                if close {
                    row.matched += 1;
                } else {
                    row.wrong_pos += 1;
                    if verbose {
                        println!(
                            "  {name}: {} got {:.9} {:.9} want {ps:?}",
                            e.ts, l.lat, l.lon
                        );
                    }
                }
            }
        }
    }
    if verbose {
        let got: std::collections::BTreeSet<_> = events.iter().map(|e| e.ts).collect();
        for t in want.keys().filter(|t| !got.contains(t)) {
            println!("  {name}: missing {t}");
        }
    }
    row
}

/// The corpus's known dirt is counted where it is (INDEX.md: bad-ck column).
fn check_counters(name: &str, s: &NmeaStats) {
    let dropped = s.bad_checksum + s.malformed;
    match name {
        // 23 GGA lines with bad checksums.
        "firefly-II.log" => assert_eq!(s.bad_checksum, 23, "{name}: {s:?}"),
        // Every line starts with `$$`; one has a bad checksum.
        "st-teseo-liv4f.log" => {
            assert_eq!(s.bad_checksum, 1, "{name}: {s:?}");
            assert!(s.sentences_ok > 100, "{name}: {s:?}");
        }
        // Cold-boot garbage: truncated and merged lines.
        "gp-320fw-2019-04-07-coldboot.log" => assert!(dropped >= 40, "{name}: {s:?}"),
        // Clean captures: nothing dropped except non-NMEA lines.
        "bu353s4.log" | "ublox-zed-f9p-nmea.log" | "nmea-rtk.log" => {
            assert_eq!(dropped, 0, "{name}: {s:?}")
        }
        _ => {}
    }
    assert!(s.sentences_ok + s.proprietary + s.unsupported + dropped <= s.lines);
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

#[test]
fn decoder_reports_the_fixes_gpsd_reports() {
    let verbose = std::env::var_os("NMEA_PARITY_VERBOSE").is_some();
    let logs = logs();
    assert_eq!(logs.len(), 40, "all 40 gpsd logs are present");

    let mut total = Row::default();
    let mut families: BTreeMap<&str, Row> = BTreeMap::new();
    println!(
        "{:<36} {:>8} {:>8} {:>6} {:>6} {:>8} {:>7}",
        "log", "expected", "matched", "wrong", "extra", "untimed", "percent"
    );
    for log in &logs {
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(log).expect("read log");
        let chk = std::fs::read_to_string(log.with_extension("log.chk")).expect("read .chk");
        let (events, stats) = decode(&name, &bytes);
        check_counters(&name, &stats);
        if name == "nmea-rtk.log" {
            // Trimble GGA quality 2 and 4 come through as `dgps` and `rtk`.
            let kinds: std::collections::BTreeSet<_> = events
                .iter()
                .filter_map(|e| match &e.body {
                    Body::Location(l) => l.fix.map(|f| format!("{f:?}")),
                    _ => None,
                })
                .collect();
            assert_eq!(kinds, ["Dgps".to_string(), "Rtk".to_string()].into());
        }
        let r = compare(&name, &events, &chk, verbose);
        println!(
            "{:<36} {:>8} {:>8} {:>6} {:>6} {:>8} {:>6.1}%",
            name,
            r.expected,
            r.matched,
            r.wrong_pos,
            r.extra,
            r.untimed,
            pct(r.matched, r.expected)
        );
        for acc in [&mut total, families.entry(family(&name)).or_default()] {
            acc.expected += r.expected;
            acc.matched += r.matched;
            acc.wrong_pos += r.wrong_pos;
            acc.extra += r.extra;
            acc.untimed += r.untimed;
        }
    }
    println!("\nby receiver family:");
    for (f, r) in families.iter().chain([(&"TOTAL", &total)]) {
        println!(
            "{:<36} {:>8} {:>8} {:>6} {:>6} {:>8} {:>6.1}%",
            f,
            r.expected,
            r.matched,
            r.wrong_pos,
            r.extra,
            r.untimed,
            pct(r.matched, r.expected)
        );
    }
    let p = pct(total.matched, total.expected);
    assert!(
        p >= 99.0,
        "only {p:.2}% of gpsd's fixes matched ({} of {})",
        total.matched,
        total.expected
    );
}

/// The same parity through the technician's tool: `outpost decode -p nmea-gps LOG` (the real
/// binary and the shipped profile), as issue 4 asks. No rollover fix here: the shipped
/// profile does not move dates, so `neo-m8n.log` (which gpsd dated 1024 weeks later, see
/// `decode`) is the one log below parity, and the total must still reach 99%.
#[test]
fn outpost_decode_with_the_nmea_gps_profile_reports_the_fixes_gpsd_reports() {
    let bin = env!("CARGO_BIN_EXE_outpost");
    let profile = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../device-profiles/nmea-gps.toml"
    );
    let logs = logs();
    let (mut expected_n, mut matched_n) = (0usize, 0usize);
    for log in &logs {
        let out = std::process::Command::new(bin)
            .args(["decode", "-p", profile])
            .arg(log)
            .output()
            .expect("run outpost decode");
        assert!(
            out.status.success(),
            "{}: {}",
            log.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let chk = std::fs::read_to_string(log.with_extension("log.chk")).expect("read .chk");
        let (want, _) = expected(&chk);
        let mut matched = 0;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            let ts = DateTime::parse_from_rfc3339(v["ts"].as_str().expect("ts"))
                .expect("ts")
                .to_utc();
            let (lat, lon) = (
                v["lat"].as_f64().expect("lat"),
                v["lon"].as_f64().expect("lon"),
            );
            if want.get(&ts).is_some_and(|ps| {
                ps.iter()
                    .any(|(a, b)| (a - lat).abs() <= TOL && (b - lon).abs() <= TOL)
            }) {
                matched += 1;
            }
        }
        println!(
            "{:<36} {:>5}/{:<5}",
            log.file_name().unwrap().to_string_lossy(),
            matched,
            want.len()
        );
        expected_n += want.len();
        matched_n += matched;
    }
    let p = pct(matched_n, expected_n);
    println!("outpost decode -p nmea-gps: {matched_n}/{expected_n} = {p:.2}% of gpsd's fixes");
    assert!(p >= 99.0, "parity {p:.2}% < 99%");
}
