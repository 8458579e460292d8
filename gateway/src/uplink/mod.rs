//! The uplink to the regional hubs (SPEC §5, §9): per region, drains the outbox in class
//! priority order, one class per batch, QoS 1, up to `inflight` batches awaiting PUBACK;
//! advances that region's cursor of each class strictly in order on PUBACK. Each connection is
//! a fresh rumqttc event loop with a clean session: whatever was not acknowledged is
//! republished from the cursor, and the hub's high-water rule drops what it already has.
//! Regions share nothing but the outbox: each has its own task, session, cursors, backoff and
//! wake-up, so one slow or lost region never holds back another's live traffic.

mod cursor;
pub mod feed;
mod refused;
mod session;
pub mod window;

use crate::config::Uplink;
use crate::context::Context;
use crate::store::Region;
use crate::util::{backoff::Backoff, ratelimit::LogGate};
use chrono::Utc;
use feed::Tap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// How a session ended.
pub enum End {
    Shutdown,
    Lost(String),
}

/// Runs one task per region until cancelled.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let ups = ctx.settings.uplinks.clone();
    let regions: Arc<Vec<Region>> = Arc::new(
        ups.iter()
            .map(|u| Region {
                name: u.name.clone(),
                max_lag: u.max_lag,
            })
            .collect(),
    );
    let names: Vec<String> = ups.iter().map(|u| u.name.clone()).collect();
    if let Err(e) = ctx.store.set_regions(&names).await {
        warn!(error = %e, "could not record the region list for status");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ups.len() {
        // Tapped here, before any session reads: nothing stored from now on goes unnoticed.
        let tap = ctx.outbox.tap();
        tasks.spawn(region(ctx.clone(), regions.clone(), i, tap));
    }
    // A region ends only on shutdown; one that fails ends the uplink with its error.
    tokio::select! {
        _ = ctx.token.cancelled() => {}
        r = tasks.join_next() => match r {
            Some(Ok(Err(e))) => return Err(e),
            Some(Err(e)) => anyhow::bail!("uplink region task: {e}"),
            _ => {}
        },
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// One region: sessions with backoff between them.
async fn region(
    ctx: Context,
    regions: Arc<Vec<Region>>,
    me: usize,
    tap: Arc<Tap>,
) -> anyhow::Result<()> {
    // Short: the hub coming back should be used within a second (issue 7 goal); a refused or
    // timed-out connect once a second is no load even on a metered link.
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    let mut gate = LogGate::default();
    let u: Uplink = ctx.settings.uplinks[me].clone();
    info!(region = %u.name, hub = %format!("{}:{}", u.broker.host, u.broker.port), tls = u.broker.tls, "uplink starting");
    ctx.metrics.region(&u.name, |_| {});
    let (cursors, writer) = cursor::CursorWriter::start(ctx.clone(), regions, me);
    loop {
        ctx.metrics.live.beat(crate::ops::Component::Uplink);
        let end = session::run(&ctx, &u, me, &tap, &mut backoff, &cursors).await;
        tap.listen(false);
        set_up(&ctx, &u.name, false).await;
        let reason = match end {
            Ok(End::Shutdown) => break,
            Ok(End::Lost(r)) => r,
            Err(e) => format!("{e:#}"),
        };
        let delay = backoff.next_delay();
        if let Some(s) = gate.check("uplink") {
            warn!(region = %u.name, reason = %reason, retry_in = ?delay, suppressed = s, "uplink down; reconnecting");
        }
        tokio::select! {
            _ = ctx.token.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    cursors.flush(&ctx, Duration::from_secs(2)).await;
    writer.abort();
    info!(region = %u.name, "uplink stopped");
    Ok(())
}

/// Records region `name` up or down (metrics, and Redis for `status` when it changed); the
/// process-wide `uplink_up` is "any region up".
async fn set_up(ctx: &Context, name: &str, up: bool) {
    let changed = if up {
        ctx.metrics.region_connected(name)
    } else {
        ctx.metrics.region_lost(name)
    };
    if changed {
        let state = if up { "up" } else { "down" };
        if let Err(e) = ctx.store.set_uplink_state(name, state, Utc::now()).await {
            tracing::debug!(error = %e, "could not record uplink state");
        }
    }
}

/// `<topic_prefix>/<gateway id>/<rest>` on the first region's hub (the downlink's).
pub fn topic(ctx: &Context, rest: &str) -> String {
    region_topic(&ctx.settings.uplink, &ctx.settings.gateway_id, rest)
}

/// `<topic_prefix>/<gateway id>/<rest>` on region `u`'s hub.
pub fn region_topic(u: &Uplink, gw: &str, rest: &str) -> String {
    format!("{}/{}/{}", u.topic_prefix, gw, rest)
}
