//! Operations: the in-process metrics registry, component liveness, and — with `[ops] listen`
//! — the `/metrics` (OpenMetrics text, `prometheus-client`) and `/healthz` endpoint (`axum`); plus the systemd
//! integration (`READY=1`, watchdog, `STOPPING=1`; STYLE 11).
//!
//! [`start`] runs before Redis is reachable, so `/healthz` can already say why the gateway is
//! not healthy while the daemon is still waiting for Redis; [`Ops::set_store`] completes it.

pub mod gauges;
pub mod health;
pub mod http;
pub mod metrics;
pub mod prometheus;
pub mod systemd;

pub use health::Component;
pub use metrics::Metrics;

use crate::config::Settings;
use crate::store::Store;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the ops tasks share: settings, the registry, and the store once connected.
pub struct Ops {
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    store: OnceLock<Store>,
}

/// The verdict of `/healthz`.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Why the gateway is not healthy; empty = healthy.
    pub reasons: Vec<String>,
}

impl Health {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.reasons.is_empty()
    }
}

impl Ops {
    /// Hands over the connected store (scrapes read backlog gauges through it from now on).
    pub fn set_store(&self, store: Store) {
        let _ = self.store.set(store);
        // It just answered (connect loads the scripts); the probe confirms every 2 s from now.
        self.metrics.live.set_redis_ok(true);
    }

    /// The store, once connected.
    pub fn store(&self) -> Option<&Store> {
        self.store.get()
    }

    /// Healthy unless: Redis did not answer the last probe, a component task is dead or
    /// wedged, or the uplink has been down longer than `[ops] uplink_down_grace`.
    pub fn health(&self) -> Health {
        let live = &self.metrics.live;
        let mut reasons = Vec::new();
        if !live.redis_ok() {
            reasons.push("redis unreachable".to_string());
        }
        reasons.extend(live.stuck());
        if let Some(down) = live.uplink_down_for() {
            if down > self.settings.ops_uplink_grace {
                reasons.push(format!("uplink down for {} s", down.as_secs()));
            }
        }
        Health { reasons }
    }
}

/// Starts the ops tasks under `tracker`: the Redis probe, the supervisor (watchdog), and the
/// HTTP endpoint when `[ops] listen` is set. Binding the endpoint fails here, at start-up.
pub async fn start(
    tracker: &TaskTracker,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    token: CancellationToken,
) -> anyhow::Result<Arc<Ops>> {
    if let Some(b) = &settings.devices_mqtt {
        // The device broker loop turns at least once per keep-alive ping.
        metrics.live.set_stale_after(b.keep_alive * 3);
    }
    let ops = Arc::new(Ops {
        settings: settings.clone(),
        metrics,
        store: OnceLock::new(),
    });
    let listener = match settings.ops_listen {
        Some(addr) => Some(http::bind(addr).await?),
        None => None,
    };
    tracker.spawn(systemd::probe_redis(ops.clone(), token.clone()));
    tracker.spawn(systemd::supervise(ops.clone(), token.clone()));
    if let Some(l) = listener {
        tracker.spawn(http::serve(l, ops.clone(), token));
    }
    Ok(ops)
}

/// Wall-clock ms since the epoch (stream ids are wall-clock ms too).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}
