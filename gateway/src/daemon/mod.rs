//! `outpost run`: connect the store, start every component under one cancellation token and
//! task tracker (STYLE 6), reload on SIGHUP, stop on SIGTERM/SIGINT.

mod components;

use crate::config::Settings;
use crate::ops::Metrics;
use crate::store::Store;
use crate::util::backoff::Backoff;
use components::Components;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// Runs the gateway until a termination signal.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    spawn_signal_handler(token.clone())?;
    let mut hup = signal(SignalKind::hangup())?;
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
    store.check_durability().await;
    ops.set_store(store.clone());
    // Config is valid (we got here) and Redis is reachable: ready (STYLE 11).
    crate::ops::systemd::ready();
    let mut comps = Components::new(store, metrics, Arc::default(), token.clone());
    comps.apply(settings.clone()).await?;
    let mut current = settings;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = hup.recv() => {
                info!(config = %current.path.display(), "SIGHUP: reloading config and profiles");
                match Settings::load(&current.path) {
                    Ok(new) => {
                        let new = Arc::new(new);
                        if new.redis_url != current.redis_url || new.prefix != current.prefix {
                            warn!("redis url or prefix changed: that needs a restart; keeping the old store settings");
                        }
                        match comps.apply(new.clone()).await {
                            Ok(()) => current = new,
                            Err(e) => error!(error = %format!("{e:#}"), "reload failed; still running on the old config"),
                        }
                    }
                    Err(e) => {
                        for line in e.lines() {
                            error!(problem = %line, "reload: invalid config or profile");
                        }
                        warn!("reload refused: still running on the old config and profiles");
                    }
                }
            }
        }
    }
    crate::ops::systemd::stopping();
    info!("shutting down: stopping ingest, finishing writes, waiting for in-flight acks");
    comps.stop_all().await;
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(3), tracker.wait())
        .await
        .is_err()
    {
        warn!("some tasks did not stop in time");
    }
    info!("outpost stopped");
    Ok(())
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
