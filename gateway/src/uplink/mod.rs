//! The uplink to the regional hub (SPEC §5): drains the outbox in class priority order, one
//! class per batch, QoS 1, up to `inflight` batches awaiting PUBACK; advances each class's
//! cursor strictly in order on PUBACK. Each connection is a fresh rumqttc event loop with a
//! clean session: whatever was not acknowledged is republished from the cursor, and the hub's
//! high-water rule drops what it already has.

mod cursor;
mod session;
pub mod window;

use crate::context::Context;
use crate::util::{backoff::Backoff, ratelimit::LogGate};
use chrono::Utc;
use std::time::Duration;
use tracing::{info, warn};

/// How a session ended.
pub enum End {
    Shutdown,
    Lost(String),
}

/// Runs the uplink until cancelled.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    // Short: the hub coming back should be used within a second (issue 7 goal); a refused or
    // timed-out connect once a second is no load even on a metered link.
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    let mut gate = LogGate::default();
    let u = &ctx.settings.uplink;
    info!(hub = %format!("{}:{}", u.broker.host, u.broker.port), tls = u.broker.tls, "uplink starting");
    let (cursors, writer) = cursor::CursorWriter::start(ctx.store.clone());
    loop {
        ctx.metrics.live.beat(crate::ops::Component::Uplink);
        let end = session::run(&ctx, &mut backoff, &cursors).await;
        if ctx.metrics.uplink_lost() {
            let _ = ctx.store.set_uplink_state("down", Utc::now()).await;
        }
        let reason = match end {
            Ok(End::Shutdown) => break,
            Ok(End::Lost(r)) => r,
            Err(e) => format!("{e:#}"),
        };
        let delay = backoff.next_delay();
        if let Some(s) = gate.check("uplink") {
            warn!(reason = %reason, retry_in = ?delay, suppressed = s, "uplink down; reconnecting");
        }
        tokio::select! {
            _ = ctx.token.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    cursors.flush(&ctx.store, Duration::from_secs(2)).await;
    writer.abort();
    info!("uplink stopped");
    Ok(())
}

/// `<topic_prefix>/<gateway id>/<rest>`.
pub fn topic(ctx: &Context, rest: &str) -> String {
    format!(
        "{}/{}/{}",
        ctx.settings.uplink.topic_prefix, ctx.settings.gateway_id, rest
    )
}
