//! Ingest: sources (the device MQTT broker, serial lines) turn inputs into events, and
//! [`accept`] writes them to the store. An input is acknowledged to its source only once the
//! store has accepted it (SPEC §6).

mod in_hand;
pub mod lines;
pub mod meshtastic_serial;
pub mod mqtt;
mod pipeline;
pub mod serial;
pub mod topic;

use crate::context::Context;
use crate::store::{IngestItem, Outcome};
use crate::util::backoff::Backoff;
use std::time::Duration;
use tracing::warn;

/// Writes `items` to the store, retrying through Redis outages with backoff. Returns `None` only
/// when cancelled before the write succeeded (the caller must then not acknowledge).
///
/// A retry may follow a write that did land (the reply was lost): every retried item is marked
/// `maybe_duplicate`, so the store recognises it by its input hash and stores it once.
pub async fn accept(ctx: &Context, items: &mut [IngestItem]) -> Option<Vec<Outcome>> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let started = std::time::Instant::now();
        let result = ctx.store.ingest(items).await;
        ctx.metrics.observe_redis_ingest(started.elapsed());
        match result {
            Ok(outcomes) => {
                accepted(ctx, items, &outcomes);
                return Some(outcomes);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                warn!(error = %e, retry_in = ?delay, "redis write failed; holding inputs unacknowledged");
                for i in items.iter_mut() {
                    i.maybe_duplicate = true;
                }
                tokio::select! {
                    _ = ctx.token.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Bookkeeping once the store has answered for `items`: metrics, the TAK feed, and a wake-up
/// for the uplink when something new is in the outbox.
pub fn accepted(ctx: &Context, items: &[IngestItem], outcomes: &[Outcome]) {
    for (item, o) in items.iter().zip(outcomes) {
        match o {
            Outcome::Stored(_) => {
                for e in &item.events {
                    ctx.metrics.add_ingested(e.class(), &item.profile, 1);
                }
            }
            Outcome::Duplicate => ctx.metrics.add_duplicate(),
            Outcome::Full(_) => ctx.metrics.add_refused(),
        }
    }
    ctx.tak.accepted(&ctx.settings, items, outcomes);
    let added = outcomes.iter().flat_map(|o| match o {
        Outcome::Stored(added) => added.as_slice(),
        _ => &[],
    });
    if added.clone().next().is_some() {
        ctx.outbox.stored(added);
    }
    if outcomes.iter().any(|o| matches!(o, Outcome::Duplicate)) {
        // Perhaps stored by an attempt whose reply was lost: not handed over, so read.
        ctx.outbox.changed();
    }
}
