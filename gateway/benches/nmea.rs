//! Throughput of `NmeaDecoder` against bare `nmea::parse_str`, on gpsd's 40 receiver logs.
//!
//! Not a test: prints lines/s for both and their ratio. The decoder does more (epoch merging,
//! dates, a `Location` per fix) than `parse_str` (one sentence, no state), so the ratio says
//! what that costs — or saves, since the decoder skips the sentences it does not need.
//! Each side runs several rounds over the whole corpus; the median round is reported.
//!
//! Run: `cargo bench -p outpost --bench nmea`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use outpost::decode::nmea::NmeaDecoder;

const ROUNDS: usize = 15;

/// Every log as its lines, `#` comments dropped (as gpsfake feeds them).
fn corpus() -> Vec<Vec<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nmea-gpsd");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).expect("read log");
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.trim_end_matches('\r').to_string())
                .collect()
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median time of `ROUNDS` runs of `f`.
fn measure(mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    median(
        (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let logs = corpus();
    let all: usize = logs.iter().map(Vec::len).sum();
    let dollar: Vec<&str> = logs
        .iter()
        .flatten()
        .filter(|l| l.starts_with('$'))
        .map(String::as_str)
        .collect();

    let mut events = 0usize;
    let dec_time = measure(|| {
        events = 0;
        for log in &logs {
            let mut dec = NmeaDecoder::new("bench".to_string());
            for line in log {
                if let Ok(Some(e)) = dec.push_line(black_box(line)) {
                    events += 1;
                    black_box(e);
                }
            }
            events += usize::from(dec.finish().is_some());
        }
    });

    let mut parsed = 0usize;
    let crate_time = measure(|| {
        parsed = 0;
        for line in &dollar {
            if let Ok(r) = nmea::parse_str(black_box(line)) {
                parsed += 1;
                black_box(r);
            }
        }
    });

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    let dec_rate = rate(all, dec_time);
    let crate_rate = rate(dollar.len(), crate_time);
    println!(
        "corpus: {} logs, {all} lines, {} starting with '$'",
        logs.len(),
        dollar.len()
    );
    println!(
        "NmeaDecoder::push_line   {:>12.0} lines/s  ({all} lines in {dec_time:?}, {events} locations)",
        dec_rate
    );
    println!(
        "nmea::parse_str          {:>12.0} lines/s  ({} lines in {crate_time:?}, {parsed} parsed)",
        crate_rate,
        dollar.len()
    );
    println!("ratio decoder / parse_str: {:.2}x", dec_rate / crate_rate);
}
