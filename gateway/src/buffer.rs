//! The buffer guard: keeps the outbox under 90% of `[buffer] max_events` by thinning
//! (SPEC §6), so ingest of location and status never has to be refused in normal operation.

use crate::context::Context;
use crate::util::ratelimit::LogGate;
use std::time::Duration;
use tracing::{info, warn};

/// Runs until cancelled: a pass every second.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let target = ctx.settings.max_events * 9 / 10;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut gate = LogGate::default();
    loop {
        tokio::select! {
            _ = ctx.token.cancelled() => break,
            _ = tick.tick() => {}
        }
        match ctx.store.enforce_budget(target).await {
            Ok(t) if t == Default::default() => {}
            Ok(t) => {
                ctx.metrics.add_drop("thinned_location", t.location);
                ctx.metrics.add_drop("thinned_status", t.status);
                ctx.metrics
                    .add_drop("overflow_location", t.location_overflow);
                if gate.check("thinned").is_some() {
                    info!(
                        location = t.location,
                        status = t.status,
                        overflow = t.location_overflow,
                        "outbox over 90% of its budget: thinned the oldest history"
                    );
                }
            }
            Err(e) => {
                if let Some(s) = gate.check("err") {
                    warn!(error = %e, suppressed = s, "buffer guard pass failed");
                }
            }
        }
    }
    Ok(())
}
