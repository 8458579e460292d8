//! A fixed-bucket latency histogram on atomics (Prometheus `histogram` semantics: cumulative
//! `le` buckets, `_sum`, `_count`). Lock-free so the uplink and ingest hot paths can observe
//! without contention.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds in seconds: 1 ms … 30 s, enough for a LAN Redis and a satellite uplink alike.
pub const BOUNDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counts of observations per bucket (non-cumulative; cumulated when rendered).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    /// Observations above the last bound (the `+Inf` bucket minus the others).
    over: AtomicU64,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A consistent-enough copy for rendering: cumulative bucket counts, sum (s), count.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub cumulative: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        match BOUNDS.iter().position(|b| s <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Relaxed),
            None => self.over.fetch_add(1, Relaxed),
        };
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Cumulative counts per bound.
    pub fn snapshot(&self) -> Snapshot {
        let mut acc = 0;
        let cumulative = BOUNDS
            .iter()
            .zip(&self.buckets)
            .map(|(b, c)| {
                acc += c.load(Relaxed);
                (*b, acc)
            })
            .collect();
        Snapshot {
            cumulative,
            sum_seconds: self.sum_micros.load(Relaxed) as f64 / 1e6,
            count: acc + self.over.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_includes_overflow() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], (0.001, 1));
        assert_eq!(s.cumulative[4], (0.025, 2));
        assert_eq!(s.cumulative.last().unwrap().1, 2);
        assert_eq!(s.count, 3);
        assert!((s.sum_seconds - 60.0205).abs() < 1e-6);
    }
}
