//! `outpost run`: connect the store, start every component under one cancellation token and
//! task tracker (STYLE 6), stop them on SIGTERM/SIGINT.

use crate::config::Settings;
use crate::context::Context;
use crate::ingest::mqtt::Route;
use crate::ops::{Component, Metrics};
use crate::store::Store;
use crate::util::backoff::Backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// Runs the gateway until a termination signal.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    spawn_signal_handler(token.clone())?;
    let settings = Arc::new(settings);
    info!(gateway = %settings.gateway_id, config = %settings.path.display(), "outpost starting");
    let metrics = Arc::new(Metrics::default());
    let tracker = TaskTracker::new();
    // Ops first: `/healthz` answers (503, "redis unreachable") while we wait for Redis.
    let ops = crate::ops::start(&tracker, settings.clone(), metrics.clone(), token.clone()).await?;
    let Some(store) = connect_store(&settings, &token).await else {
        info!("stopped before redis was reachable");
        return Ok(());
    };
    ops.set_store(store.clone());
    // Config is valid (we got here) and Redis is reachable: ready (STYLE 11).
    crate::ops::systemd::ready();
    let ctx = Context {
        settings: settings.clone(),
        store,
        metrics: metrics.clone(),
        outbox: Arc::new(Notify::new()),
        token: token.clone(),
    };
    let routes = settings
        .mqtt
        .iter()
        .map(Route::new)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let m = &metrics;
    spawn(
        &tracker,
        m,
        Component::Uplink,
        "uplink",
        crate::uplink::run(ctx.clone()),
    );
    spawn(
        &tracker,
        m,
        Component::Presence,
        "presence",
        crate::presence::run(ctx.clone()),
    );
    if let (Some(broker), false) = (settings.devices_mqtt.clone(), routes.is_empty()) {
        spawn(
            &tracker,
            m,
            Component::Ingest,
            "devices-mqtt",
            crate::ingest::mqtt::run(ctx.clone(), broker, routes),
        );
    }
    tracker.close();
    token.cancelled().await;
    crate::ops::systemd::stopping();
    info!("shutting down: stopping ingest, finishing writes, waiting for in-flight acks");
    if tokio::time::timeout(Duration::from_secs(8), tracker.wait())
        .await
        .is_err()
    {
        warn!("some tasks did not stop in time");
    }
    info!("outpost stopped");
    Ok(())
}

/// Spawns a component task; it counts as alive for the watchdog until it returns.
fn spawn<F>(
    tracker: &TaskTracker,
    metrics: &Arc<Metrics>,
    component: Component,
    name: &'static str,
    fut: F,
) where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let metrics = metrics.clone();
    tracker.spawn(async move {
        let _alive = metrics.live.running(component);
        if let Err(e) = fut.await {
            error!(task = name, error = %format!("{e:#}"), "task failed");
        }
    });
}

fn spawn_signal_handler(token: CancellationToken) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM"),
            _ = int.recv() => info!("SIGINT"),
        }
        token.cancel();
    });
    Ok(())
}

/// Redis down at start is not fatal (SPEC §2): retry with backoff and say so.
async fn connect_store(s: &Settings, token: &CancellationToken) -> Option<Store> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match Store::connect(&s.redis_url, &s.prefix, s.max_events).await {
            Ok(store) => {
                info!(url = %redact(&s.redis_url), "redis connected");
                return Some(store);
            }
            Err(e) => {
                let d = backoff.next_delay();
                crate::ops::systemd::status("waiting for redis");
                warn!(url = %redact(&s.redis_url), error = %e, retry_in = ?d, "redis not reachable; retrying");
                tokio::select! {
                    _ = token.cancelled() => return None,
                    _ = tokio::time::sleep(d) => {}
                }
            }
        }
    }
}

/// A URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}
