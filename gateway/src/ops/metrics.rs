//! The metrics registry: counters and gauges shared by every component through the context
//! (no globals). Logs never carry counts; this does.

use super::health::Liveness;
use super::histogram::Histogram;
use crate::event::Class;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Counters and gauges of one gateway process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events accepted into the outbox, by class.
    pub accepted: [AtomicU64; Class::COUNT],
    /// Events the hub acknowledged, by class.
    pub forwarded: [AtomicU64; Class::COUNT],
    /// Inputs recognised as duplicates at ingest.
    pub duplicates: AtomicU64,
    /// Inputs refused because the outbox share was full.
    pub refused: AtomicU64,
    /// Uplink connected.
    pub uplink_up: AtomicBool,
    /// Uplink (re)connections.
    pub uplink_connects: AtomicU64,
    /// Device broker (re)connections.
    pub devices_connects: AtomicU64,
    drops: Mutex<BTreeMap<String, u64>>,
    /// Events accepted, by (class, source); the source is the device profile, or `gateway`
    /// for events the gateway makes itself (presence timeouts).
    ingested: Mutex<BTreeMap<(Class, String), u64>>,
    /// Time from publishing a batch to its PUBACK.
    pub puback: Histogram,
    /// Duration of one ingest pipeline to Redis (the accept path's command latency).
    pub redis_ingest: Histogram,
    /// Component liveness, for the watchdog and `/healthz`.
    pub live: Liveness,
    /// Per region (SPEC §9), by name.
    regions: Mutex<BTreeMap<String, RegionStats>>,
}

/// One region's uplink figures (label `region` on /metrics).
#[derive(Debug, Default, Clone)]
pub struct RegionStats {
    pub up: bool,
    pub connects: u64,
    /// Events this region's hub acknowledged, by class.
    pub forwarded: [u64; Class::COUNT],
    /// Events trimmed before this region got them (it lagged past `max_lag`).
    pub missed: u64,
}

impl Metrics {
    /// Counts events accepted for `class` that the gateway made itself (source `gateway`).
    pub fn add_accepted(&self, class: Class, n: u64) {
        self.add_ingested(class, "gateway", n);
    }

    /// Counts events accepted for `class` from `source` (a device profile name).
    pub fn add_ingested(&self, class: Class, source: &str, n: u64) {
        self.accepted[class.index()].fetch_add(n, Relaxed);
        let mut m = self.ingested.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(&(class, source.to_string())) {
            Some(v) => *v += n,
            None => {
                m.insert((class, source.to_string()), n);
            }
        }
    }

    /// Events accepted so far, by (class, source).
    pub fn ingested(&self) -> BTreeMap<(Class, String), u64> {
        self.ingested
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the time from publish to PUBACK of one uplink batch.
    pub fn observe_puback(&self, d: Duration) {
        self.puback.observe(d);
    }

    /// Records the duration of one ingest pipeline round trip to Redis.
    pub fn observe_redis_ingest(&self, d: Duration) {
        self.redis_ingest.observe(d);
    }

    /// Counts events acknowledged by the hub for `class`.
    pub fn add_forwarded(&self, class: Class, n: u64) {
        self.forwarded[class.index()].fetch_add(n, Relaxed);
    }

    /// Updates region `name`'s figures.
    pub fn region(&self, name: &str, f: impl FnOnce(&mut RegionStats)) {
        let mut m = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(name.to_string()).or_default());
    }

    /// Every region's figures, by name.
    pub fn regions(&self) -> BTreeMap<String, RegionStats> {
        self.regions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts a dropped input by reason.
    pub fn add_drop(&self, reason: &str, n: u64) {
        let mut d = self.drops.lock().unwrap_or_else(|e| e.into_inner());
        *d.entry(reason.to_string()).or_default() += n;
    }

    /// Drops so far, by reason.
    pub fn drops(&self) -> BTreeMap<String, u64> {
        self.drops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
