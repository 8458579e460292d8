//! systemd integration (STYLE 11; model: omnect-device-service `src/systemd/watchdog.rs`).
//!
//! - `READY=1` once the config is valid and Redis is reachable ([`ready`], from the daemon).
//! - `WATCHDOG=1` from [`supervise`] only while every started component is alive and its loop
//!   turns ([`super::health::Liveness::stuck`] is empty). A disconnected uplink or an
//!   unreachable Redis still counts as alive (restarting would not help; `/healthz` says so).
//! - `STOPPING=1` on shutdown ([`stopping`]).
//!
//! Without `NOTIFY_SOCKET` (not under systemd) every notification is a no-op.

use super::health::Component;
use super::Ops;
use crate::util::ratelimit::LogGate;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

/// How often Redis is probed (`PING`) for `/healthz` and the store heartbeat.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// A probe that takes longer than this counts as Redis unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        debug!(error = %e, "sd_notify failed");
    }
}

/// `READY=1`: config valid, Redis reachable.
pub fn ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("running")]);
}

/// `STATUS=…`: shown by `systemctl status` (e.g. while waiting for Redis at start).
pub fn status(text: &str) {
    notify(&[NotifyState::Status(text)]);
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Probes Redis on the shared connection; each finished probe is the store's heartbeat.
pub async fn probe_redis(ops: Arc<Ops>, token: CancellationToken) {
    let live = &ops.metrics.live;
    let _alive = live.running(Component::Store);
    let mut tick = tokio::time::interval(PROBE_EVERY);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {}
        }
        let ok = match ops.store() {
            Some(store) => {
                let mut conn = store.conn();
                let cmd = redis::cmd("PING");
                let ping = cmd.query_async::<String>(&mut conn);
                matches!(tokio::time::timeout(PROBE_TIMEOUT, ping).await, Ok(Ok(_)))
            }
            None => false, // still connecting at start-up
        };
        live.set_redis_ok(ok);
        live.beat(Component::Store);
    }
}

/// The supervising loop: tracks uplink down-time and feeds the watchdog while healthy enough.
pub async fn supervise(ops: Arc<Ops>, token: CancellationToken) {
    let watchdog = sd_notify::watchdog_enabled();
    // Ping three times per watchdog period so one late tick is not fatal.
    let every = watchdog.map_or(Duration::from_secs(1), |w| {
        (w / 3).max(Duration::from_millis(100))
    });
    let mut tick = tokio::time::interval(every);
    let mut gate = LogGate::new(Duration::from_secs(30));
    let live = &ops.metrics.live;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {}
        }
        live.observe_uplink(ops.metrics.uplink_is_up());
        let stuck = live.stuck();
        if stuck.is_empty() {
            if watchdog.is_some() {
                notify(&[NotifyState::Watchdog]);
            }
        } else if let Some(s) = gate.check("stuck") {
            error!(problems = %stuck.join("; "), suppressed = s, watchdog = watchdog.is_some(), "component not alive; not feeding the watchdog");
        }
    }
}
