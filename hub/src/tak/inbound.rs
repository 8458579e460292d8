//! `subscribe = true`: what TAK users send becomes hub events of devices `tak:<uid>`, stored
//! under a gateway of the hub's own, `tak-<name>` (the `[[tak]] name`), through the same
//! batch path as a gateway's (history, dedup, latest state, live stream, metrics).
//!
//! Why a pseudo-gateway: every hub event belongs to a (gateway, class) history with ids
//! strictly its own; TAK users have no gateway, and one per `[[tak]]` output keeps each
//! server's stream apart. Why ids from the event itself (ms = the event's own time, seq = a
//! 64-bit FNV-1a of [`identity`]): TAK servers replay what they keep to every client that
//! connects, and every receiver of a share group subscribes to the same server, so the same
//! TAK event arrives many times; the same id each time makes the store's exact-once rule
//! (SPEC §5) recognise every repeat, with no extra keys.

use crate::handle::store_batch;
use crate::store::Store;
use crate::Ctx;
use chrono::Utc;
use outpost::util::backoff::Backoff;
use outpost_cot::decode::Inbound;
use outpost_cot::events::{identity, to_events};
use outpost_proto::batch::{Parsed, Received};
use outpost_proto::{Class, EventId};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Inbound events stored per round at most.
const BATCH: usize = 64;
/// A TAK event dated further ahead than this is refused (`tak_future_ts`): its id would lift
/// the store's dedup floor past every real event once retention reaches it.
const MAX_AHEAD: chrono::Duration = chrono::Duration::minutes(5);

/// The hub's gateway id for the TAK users of output `name`.
pub fn pseudo_gateway(name: &str) -> String {
    format!("tak-{name}")
}

/// Takes in what the link hands over until it closes or the hub stops.
pub async fn run(
    ctx: Arc<Ctx>,
    store: Store,
    gw: String,
    self_uid: String,
    mut rx: mpsc::Receiver<Inbound>,
) {
    let mut got = Vec::new();
    loop {
        got.clear();
        tokio::select! {
            _ = ctx.token.cancelled() => return,
            n = rx.recv_many(&mut got, BATCH) => if n == 0 { return },
        }
        for b in batches(&ctx, &gw, &self_uid, &got) {
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            let attempt = ctx.attempt();
            // A TAK server cannot be asked again: retry until stored (or shutdown).
            while let Err(e) = store_batch(&ctx, &store, &b, &attempt).await {
                ctx.metrics.store_errors.inc();
                let delay = backoff.next_delay();
                if let Some(s) = ctx.log_gate("tak-store") {
                    warn!(error = %e, retry_in = ?delay, suppressed = s, "could not store TAK events; retrying");
                }
                tokio::select! {
                    _ = ctx.token.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// The batches (one per class, ids increasing) of what the server sent; what is not for us is
/// counted by reason (`outpost_hub_drops_total`).
pub fn batches(ctx: &Ctx, gw: &str, self_uid: &str, got: &[Inbound]) -> Vec<Parsed> {
    let now = Utc::now();
    let mut by_class: BTreeMap<Class, BTreeMap<EventId, Received>> = BTreeMap::new();
    for ib in got {
        if let Inbound::Delivered { msg_id, .. } = ib {
            // The hub sends no direct chats: a receipt names someone else's message.
            debug!(msg_id = %msg_id, "TAK delivery receipt ignored");
            continue;
        }
        let (dev, events) = match to_events(ib, self_uid) {
            Ok(x) => x,
            Err(skip) => {
                ctx.metrics.dropped(skip.reason());
                continue;
            }
        };
        let seq = fnv1a64(&identity(ib));
        for e in events {
            if e.ts > now + MAX_AHEAD {
                ctx.metrics.dropped("tak_future_ts");
                continue;
            }
            let id = EventId {
                ms: e.ts.timestamp_millis().max(0) as u64,
                seq,
            };
            let Ok(Value::Object(mut object)) = serde_json::from_str(&e.to_stored_json(now)) else {
                continue;
            };
            object.insert("id".into(), id.to_string().into());
            let r = Received::from_object(id, dev.clone(), object);
            by_class.entry(e.class()).or_default().insert(id, r);
        }
    }
    by_class
        .into_iter()
        .map(|(class, evs)| Parsed {
            gw: gw.to_string(),
            class,
            events: evs.into_values().collect(),
        })
        .collect()
}

/// 64-bit FNV-1a: stable across processes and versions (unlike std's hasher).
fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
