//! `subscribe = true`: what TAK users send becomes events of devices `tak:<uid>` (SPEC §10),
//! stored through the one accept path like any device's, with the `tak` profile's presence
//! timeout. Receipts go to the downlink through [`super::Feed::receipts`].
//!
//! TAK servers replay what they persist (recent PLIs, chats, alerts) to every client that
//! connects, so each event carries a dedup key of its sender, class and own time: a replay
//! after our reconnect is recognised by the store and not stored twice.

use super::feed::Delivered;
use crate::context::Context;
use crate::ingest::accept;
use crate::store::{IngestItem, Outcome};
use chrono::Utc;
use outpost_cot::decode::Inbound;
use outpost_cot::events::to_events;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Inputs stored per accept call at most.
const BATCH: usize = 64;

/// Takes in what the link hands over until it closes or the gateway stops.
pub async fn run(ctx: Context, mut rx: mpsc::Receiver<Inbound>) {
    let self_uid = outpost_cot::self_uid(&ctx.settings.gateway_id);
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            _ = ctx.token.cancelled() => return,
            ib = rx.recv() => match ib { Some(ib) => ib, None => return },
        };
        let mut items = Vec::new();
        batch.clear();
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(ib) => batch.push(ib),
                Err(_) => break,
            }
        }
        for ib in batch.drain(..) {
            if let Some(item) = item_of(&ctx, &ib, &self_uid) {
                items.push(item);
            }
        }
        if items.is_empty() {
            continue;
        }
        let Some(outcomes) = accept(&ctx, &mut items).await else {
            return;
        };
        let full = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Full(_)))
            .count();
        if full > 0 {
            // A TAK server cannot be asked to redeliver: count what the outbox refused.
            ctx.metrics.add_drop("tak_outbox_full", full as u64);
            warn!(inputs = full, "outbox full: TAK inputs refused");
        }
    }
}

/// The store input for `ib`; `None` for receipts (handed on) and what is not for us (counted).
fn item_of(ctx: &Context, ib: &Inbound, self_uid: &str) -> Option<IngestItem> {
    if let Inbound::Delivered {
        msg_id,
        sender,
        time,
    } = ib
    {
        info!(msg_id = %msg_id, from = sender.as_deref().unwrap_or("?"), "TAK delivery receipt");
        ctx.tak.receipt(Delivered {
            msg_id: msg_id.clone(),
            from: sender.clone(),
            ts: *time,
        });
        return None;
    }
    let (dev, events) = match to_events(ib, self_uid) {
        Ok(x) => x,
        Err(skip) => {
            debug!(reason = skip.reason(), "TAK event not taken in");
            ctx.metrics.add_drop(skip.reason(), 1);
            return None;
        }
    };
    let profile = ctx.settings.tak_profile.as_ref()?;
    let dedup = format!("cot:{}", outpost_cot::events::identity(ib));
    Some(IngestItem {
        dev,
        profile: profile.name.clone(),
        presence_timeout: profile.presence_timeout,
        events,
        dedup_key: Some(dedup),
        input_hash: None,
        maybe_duplicate: false,
        slot: None,
        rx: Utc::now(),
        // Not an MQTT input: the downlink has no topic to answer on.
        topic: String::new(),
    })
}
