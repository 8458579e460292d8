//! The hub's metrics (`/metrics`, Prometheus text format, `prometheus-client`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Every counter, gauge and histogram of one hub process.
pub struct Metrics {
    registry: Registry,
    pub batches: Family<ClassLabel, Counter>,
    pub events_in: Family<ClassLabel, Counter>,
    pub stored: Family<ClassLabel, Counter>,
    pub duplicates: Family<ClassLabel, Counter>,
    pub drops: Family<ReasonLabel, Counter>,
    pub store_errors: Counter,
    pub store_seconds: Histogram,
    pub lag_seconds: Histogram,
    pub redis_up: Gauge,
    pub broker_up: Gauge,
    /// Per `[[tak]]` output (SPEC §10): `outpost_hub_tak_*`, read at each scrape.
    pub tak: Arc<outpost_cot::stats::Links>,
}

impl Metrics {
    pub fn new(hub_id: &str) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix_and_labels(
            "outpost_hub",
            [(
                std::borrow::Cow::Borrowed("hub"),
                std::borrow::Cow::Owned(hub_id.to_string()),
            )]
            .into_iter(),
        );
        let m = Metrics {
            batches: Family::default(),
            events_in: Family::default(),
            stored: Family::default(),
            duplicates: Family::default(),
            drops: Family::default(),
            store_errors: Counter::default(),
            // 0.5 ms … ~16 s
            store_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            // 1 ms … ~9 h: a gateway's backlog after an outage arrives hours late.
            lag_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 25)),
            redis_up: Gauge::default(),
            broker_up: Gauge::default(),
            tak: Arc::default(),
            registry: Registry::default(),
        };
        registry.register("batches", "Batches received, by class", m.batches.clone());
        registry.register(
            "events",
            "Events received in valid batches, by class",
            m.events_in.clone(),
        );
        registry.register(
            "events_stored",
            "Events stored for the first time, by class",
            m.stored.clone(),
        );
        registry.register(
            "duplicates",
            "Events already stored (redeliveries, republished batches), by class",
            m.duplicates.clone(),
        );
        registry.register(
            "drops",
            "Messages refused and acknowledged, by reason",
            m.drops.clone(),
        );
        registry.register(
            "store_errors",
            "Store attempts that failed (batch not acknowledged, retried)",
            m.store_errors.clone(),
        );
        registry.register(
            "store_seconds",
            "Time to store one batch",
            m.store_seconds.clone(),
        );
        registry.register(
            "lag_seconds",
            "From an event's rx at the gateway to stored at the hub",
            m.lag_seconds.clone(),
        );
        registry.register(
            "redis_up",
            "1 while the last Redis operation succeeded",
            m.redis_up.clone(),
        );
        registry.register(
            "broker_up",
            "1 while connected to the hub broker",
            m.broker_up.clone(),
        );
        registry.register_collector(Box::new(m.tak.clone()));
        Arc::new(Metrics { registry, ..m })
    }

    /// Counts a refused message.
    pub fn dropped(&self, reason: &str) {
        self.drops
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

/// The label for a class.
pub fn class(c: &str) -> ClassLabel {
    ClassLabel {
        class: c.to_string(),
    }
}
