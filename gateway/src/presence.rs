//! Presence: a device that has not reported for its profile's timeout goes offline (SPEC §4).
//! Deadlines and last-seen live in Redis, so this survives restarts; the next report brings the
//! device back online (in the ingest script).

use crate::context::Context;
use crate::util::ratelimit::LogGate;
use chrono::Utc;
use std::time::Duration;
use tracing::{info, warn};

/// How often deadlines are checked: presence timeouts are minutes, a second is precise enough.
const PERIOD: Duration = Duration::from_millis(500);

/// Runs the presence sweeper until cancelled.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(PERIOD);
    let mut gate = LogGate::default();
    loop {
        tokio::select! {
            _ = ctx.token.cancelled() => break,
            _ = tick.tick() => {}
        }
        match ctx.store.expire_presence(Utc::now()).await {
            Ok(gone) if gone.is_empty() => {}
            Ok(gone) => {
                let n = gone.len();
                info!(devices = n, "devices went offline (presence timeout)");
                ctx.tak.went_offline(&ctx.settings, &ctx.store, &gone).await;
                ctx.metrics
                    .add_accepted(crate::event::Class::Presence, n as u64);
                ctx.outbox.changed();
            }
            Err(e) => {
                if let Some(s) = gate.check("presence") {
                    warn!(error = %e, suppressed = s, "presence sweep failed");
                }
            }
        }
    }
    Ok(())
}
