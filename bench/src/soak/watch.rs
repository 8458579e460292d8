//! What the soak watches and prints: the gateway's RSS and open file descriptors over time, the
//! faults applied, and the running tallies.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use outpost_system_tests::tally::Tally;

use super::faults::{Fault, Outcome};
use super::{Settings, Soak};

/// One reading of the gateway process.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    pub at: Duration,
    pub pid: u32,
    pub rss: u64,
    pub fds: usize,
    pub acked: u64,
}

/// Readings, faults and trouble so far.
pub struct Watch {
    t0: Instant,
    readings: Vec<Reading>,
    faults: BTreeMap<Fault, (u32, Duration)>,
    trouble: Vec<String>,
}

impl Watch {
    pub fn new(t0: Instant) -> Watch {
        Watch {
            t0,
            readings: Vec::new(),
            faults: BTreeMap::new(),
            trouble: Vec::new(),
        }
    }

    /// Records a fault that was applied.
    pub fn fault(&mut self, f: Fault, o: &Outcome) {
        let e = self.faults.entry(f).or_default();
        e.0 += 1;
        e.1 += o.held;
        if let Some(t) = &o.trouble {
            eprintln!("soak: {}: {t}", f.name());
            self.trouble.push(format!("{}: {t}", f.name()));
        }
    }

    /// Reads the gateway's RSS and fd count (skipped while it is not running); `acked` is
    /// what the devices had acknowledged by now.
    pub fn sample(&mut self, rig: &Soak, acked: u64) {
        let Some(pid) = rig.outpost.pid() else { return };
        let Ok(s) = crate::procstat::sample(pid) else {
            return;
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        self.readings.push(Reading {
            at: self.t0.elapsed(),
            pid,
            rss: s.rss,
            fds,
            acked,
        });
    }

    /// One progress line on stderr.
    pub fn report(&self, rig: &Soak, acked: u64) {
        let n: u32 = self.faults.values().map(|v| v.0).sum();
        let r = self.readings.last();
        eprintln!(
            "[{:>5.1} min] acknowledged={acked} accepted={} delivered={} duplicates_dropped_at_hub={} faults={n} gateway rss={} fds={}",
            self.t0.elapsed().as_secs_f64() / 60.0,
            rig.accepted().map_or("(redis down)".to_string(), |a| a.saturating_sub(rig.base).to_string()),
            rig.delivered().saturating_sub(rig.base),
            rig.hub.duplicates_dropped(),
            r.map_or("?".into(), |r| mib(r.rss)),
            r.map_or("?".into(), |r| r.fds.to_string()),
        );
    }

    /// The final report, Markdown (for docs/guarantees.md).
    pub fn markdown(&self, t: &Tally, s: &Settings, took: Duration) -> String {
        let mut o = format!(
            "Soak run {} UTC: `outpost-bench soak --minutes {}` (seed {}), {} feeds x 3 phones, {} fixes every {:?} per feed, {:.1} min in all.\n\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M"),
            s.minutes,
            s.seed,
            s.feeds,
            s.chunk,
            s.every,
            took.as_secs_f64() / 60.0
        );
        o += "| sent | acknowledged by the device broker | delivered to the hub | duplicates dropped at the hub | lost |\n|---:|---:|---:|---:|---:|\n";
        o += &format!(
            "| {} | {} | {} | {} | {} |\n\n",
            t.sent, t.acked, t.delivered, t.hub_duplicates, t.lost
        );
        o += "| fault | times | held in all |\n|---|---:|---:|\n";
        for (f, (n, d)) in &self.faults {
            o += &format!("| {} | {n} | {:.0} s |\n", f.name(), d.as_secs_f64());
        }
        o += "\nGateway process over time (a new pid after each kill -9):\n\n";
        o += "| min | pid | RSS | open fds | acknowledged so far |\n|---:|---:|---:|---:|---:|\n";
        let step = (self.readings.len() / 30).max(1);
        for (i, r) in self.readings.iter().enumerate() {
            if i % step == 0 || i + 1 == self.readings.len() {
                o += &format!(
                    "| {:.1} | {} | {} | {} | {} |\n",
                    r.at.as_secs_f64() / 60.0,
                    r.pid,
                    mib(r.rss),
                    r.fds,
                    r.acked
                );
            }
        }
        if let (Some(lo), Some(hi)) = (
            self.readings.iter().map(|r| r.rss).min(),
            self.readings.iter().map(|r| r.rss).max(),
        ) {
            let fds_hi = self.readings.iter().map(|r| r.fds).max().unwrap_or(0);
            o += &format!(
                "\nRSS {}–{}, open fds ≤ {fds_hi} over {} readings.\n",
                mib(lo),
                mib(hi),
                self.readings.len()
            );
        }
        for t in &self.trouble {
            o += &format!("\nRig trouble: {t}\n");
        }
        o
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}
