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
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
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
    /// Uplink connected.
    uplink_up: AtomicBool,
    /// Uplink (re)connections.
    pub uplink_connects: Counter,
    /// Device broker (re)connections.
    pub devices_connects: Counter,
    /// Time from publishing a batch to its PUBACK.
    pub puback: Histogram,
    /// Duration of one ingest pipeline to Redis (the accept path's command latency).
    pub redis_ingest: Histogram,
    /// Component liveness, for the watchdog and `/healthz`.
    pub live: Liveness,
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

    /// Whether the uplink is connected.
    pub fn uplink_is_up(&self) -> bool {
        self.uplink_up.load(Relaxed)
    }
}
