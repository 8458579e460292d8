//! The metrics registry: counters, gauges and histograms shared by every component through the
//! context (no globals). Logs never carry counts; this does.
//!
//! The metric types are `prometheus-client`'s (lock-free atomics, `Family` for labelled series);
//! [`super::prometheus`] registers them, with the scrape-time gauges, for `/metrics`.

use super::health::Liveness;
use crate::event::Class;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket bounds in seconds: 1 ms … 30 s, enough for a LAN Redis and a satellite uplink
/// alike (the `le` labels of both histograms; part of the ops contract).
pub const BOUNDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Labels of `outpost_events_in_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InLabels {
    pub class: &'static str,
    /// The device profile, or `gateway` for events the gateway makes itself.
    pub source: String,
}

/// Labels of per-class series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: &'static str,
}

/// Labels of `outpost_drops_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Labels of per-region series (SPEC §9).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabel {
    pub region: String,
}

/// Labels of `outpost_uplink_region_forwarded_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionClassLabels {
    pub region: String,
    pub class: &'static str,
}

/// Labels of `outpost_downlink_messages_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

/// Counters, gauges and histograms of one gateway process. The fields are handles: cloning
/// one (as the scrape registry does) shares the same atomics.
#[derive(Debug)]
pub struct Metrics {
    /// Events accepted into the outbox, by class and source.
    pub events_in: Family<InLabels, Counter>,
    /// Events the hub acknowledged, by class (every class present from the start).
    pub forwarded: Family<ClassLabel, Counter>,
    /// Inputs dropped, by reason.
    pub drops: Family<ReasonLabel, Counter>,
    /// Inputs recognised as duplicates at ingest.
    pub duplicates: Counter,
    /// Inputs refused because the outbox share was full.
    pub refused: Counter,
    /// Uplink connected (any region).
    uplink_up: AtomicBool,
    /// Uplink (re)connections, every region together.
    pub uplink_connects: Counter,
    /// Device broker (re)connections.
    pub devices_connects: Counter,
    /// Time from publishing a batch to its PUBACK.
    pub puback: Histogram,
    /// Duration of one ingest pipeline to Redis (the accept path's command latency).
    pub redis_ingest: Histogram,
    /// Component liveness, for the watchdog and `/healthz`.
    pub live: Liveness,
    /// Per region (SPEC §9), by name.
    regions: Mutex<BTreeMap<String, RegionStats>>,
    /// Per `[[tak]]` output (SPEC §10), by name: link and send-queue figures.
    pub tak: std::sync::Arc<outpost_cot::stats::Links>,
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
    /// Batches its hub broker answered with a failure reason (0x10 no receiver subscribed,
    /// 0x87 not authorized, …): kept and sent again.
    pub refused: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        let forwarded = Family::<ClassLabel, Counter>::default();
        for c in Class::ALL {
            let _ = forwarded.get_or_create(&ClassLabel { class: c.as_str() });
        }
        Metrics {
            events_in: Family::default(),
            forwarded,
            drops: Family::default(),
            duplicates: Counter::default(),
            refused: Counter::default(),
            uplink_up: AtomicBool::new(false),
            uplink_connects: Counter::default(),
            devices_connects: Counter::default(),
            puback: Histogram::new(BOUNDS),
            redis_ingest: Histogram::new(BOUNDS),
            live: Liveness::default(),
            regions: Mutex::default(),
            tak: Default::default(),
        }
    }
}

impl Metrics {
    /// Counts events accepted for `class` that the gateway made itself (source `gateway`).
    pub fn add_accepted(&self, class: Class, n: u64) {
        self.add_ingested(class, "gateway", n);
    }

    /// Counts events accepted for `class` from `source` (a device profile name).
    pub fn add_ingested(&self, class: Class, source: &str, n: u64) {
        let labels = InLabels {
            class: class.as_str(),
            source: source.to_string(),
        };
        self.events_in.get_or_create(&labels).inc_by(n);
    }

    /// Records the time from publish to PUBACK of one uplink batch.
    pub fn observe_puback(&self, d: Duration) {
        self.puback.observe(d.as_secs_f64());
    }

    /// Records the duration of one ingest pipeline round trip to Redis.
    pub fn observe_redis_ingest(&self, d: Duration) {
        self.redis_ingest.observe(d.as_secs_f64());
    }

    /// Counts events acknowledged by the hub for `class`.
    pub fn add_forwarded(&self, class: Class, n: u64) {
        self.forwarded
            .get_or_create(&ClassLabel {
                class: class.as_str(),
            })
            .inc_by(n);
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
        let labels = ReasonLabel {
            reason: reason.to_string(),
        };
        self.drops.get_or_create(&labels).inc_by(n);
    }

    /// Counts an input the store already had.
    pub fn add_duplicate(&self) {
        self.duplicates.inc();
    }

    /// Counts an input refused for lack of outbox room.
    pub fn add_refused(&self) {
        self.refused.inc();
    }

    /// Counts a connection to the device broker.
    pub fn add_devices_connect(&self) {
        self.devices_connects.inc();
    }

    /// The uplink connected: sets `outpost_uplink_up` and counts the connection.
    pub fn uplink_connected(&self) {
        self.uplink_up.store(true, Relaxed);
        self.uplink_connects.inc();
    }

    /// The uplink is down; returns whether it was up until now.
    pub fn uplink_lost(&self) -> bool {
        self.uplink_up.swap(false, Relaxed)
    }

    /// Region `name` connected: marks it up, counts the connection (for the region and in
    /// `outpost_uplink_connects`) and sets `outpost_uplink_up`. Returns whether the region
    /// was down until now.
    pub fn region_connected(&self, name: &str) -> bool {
        let mut m = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        let r = m.entry(name.to_string()).or_default();
        let was = r.up;
        r.up = true;
        r.connects += 1;
        self.uplink_connected();
        !was
    }

    /// Region `name` is down. `outpost_uplink_up` stays 1 while another region is up (the
    /// process-wide uplink is "any region up"). Returns whether the region was up until now.
    pub fn region_lost(&self, name: &str) -> bool {
        let mut m = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        let r = m.entry(name.to_string()).or_default();
        let was = std::mem::replace(&mut r.up, false);
        if !m.values().any(|r| r.up) {
            self.uplink_lost();
        }
        was
    }

    /// Whether the uplink is connected.
    pub fn uplink_is_up(&self) -> bool {
        self.uplink_up.load(Relaxed)
    }
}
