//! What one received message does: a batch is checked and stored, a gateway `state` or
//! `snapshot` updates liveness and latest state, anything else is refused and counted.
//! [`Handled::Retry`] only for store failures: bad input is never retried.

use crate::metrics::class as label;
use crate::store::{latest_of, parse_ms, stored_form, stored_json, stream_line_into, StoreError};
use crate::Ctx;
use chrono::Utc;
use outpost_proto::batch::{self, Parsed};
use outpost_proto::fields::Head;
use outpost_proto::topic::{Kind, Topics};
use rumqttc::v5::mqttbytes::v5::Publish;
use serde_json::{Map, Value};
use std::time::Instant;
use tracing::{debug, warn};

/// The largest batch payload stored (SPEC §7 "oversize"). The gateway's batches of 256 events
/// are about 64 KiB.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// The outcome of handling a message.
pub enum Handled {
    /// Stored or refused: acknowledge it.
    Done,
    /// Could not be stored: do not acknowledge, try again.
    Retry(StoreError),
}

/// Handles one message.
/// `attempt` names this message's handling across its tries ([`Ctx::attempt`]).
pub async fn handle(ctx: &Ctx, p: &Publish, attempt: &str) -> Handled {
    let Some(store) = ctx.store.get() else {
        return Handled::Retry(StoreError(redis::RedisError::from((
            redis::ErrorKind::Io,
            "not connected to Redis yet",
        ))));
    };
    let topics = Topics::new(&ctx.settings.topic_prefix);
    let topic = String::from_utf8_lossy(&p.topic);
    let Some(parsed) = topics.parse(&topic) else {
        return refuse(ctx, "unknown_topic", &topic, "not an uplink topic");
    };
    let gw = parsed.gw;
    let result = match parsed.kind {
        Kind::Up(_) => {
            let class = topic.rsplit('/').next().unwrap_or("");
            match batch::parse(gw, class, &p.payload, MAX_BATCH_BYTES) {
                Ok(b) => store_batch(ctx, store, &b, attempt).await,
                Err(e) => return refuse(ctx, e.reason(), &topic, &e.to_string()),
            }
        }
        Kind::State => match object(&p.payload) {
            Some(v) => gateway_state(ctx, store, gw, &v).await,
            None => return refuse(ctx, "bad_state", &topic, "not a JSON object"),
        },
        Kind::Snapshot => match object(&p.payload) {
            Some(v) if v.get("gw").and_then(Value::as_str) == Some(gw) => {
                snapshot(store, gw, &v).await
            }
            Some(_) => {
                return refuse(
                    ctx,
                    "gw_mismatch",
                    &topic,
                    "snapshot gw differs from the topic's",
                )
            }
            None => return refuse(ctx, "bad_snapshot", &topic, "not a JSON object"),
        },
        Kind::Down => return Handled::Done,
    };
    match result {
        Ok(()) => {
            ctx.metrics.redis_up.set(1);
            Handled::Done
        }
        Err(e) => Handled::Retry(e),
    }
}

fn object(payload: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(payload) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn refuse(ctx: &Ctx, reason: &str, topic: &str, why: &str) -> Handled {
    ctx.metrics.dropped(reason);
    if let Some(s) = ctx.log_gate(reason) {
        warn!(reason, topic = %topic, why, suppressed = s, "refused a message (acknowledged, not stored)");
    }
    Handled::Done
}

/// Stores a checked batch (a gateway's, or TAK users' under the hub's own `tak-<name>`),
/// counts it, publishes what was new on the live stream and feeds it to the `[[tak]]` outputs.
pub(crate) async fn store_batch(
    ctx: &Ctx,
    store: &crate::store::Store,
    b: &Parsed,
    attempt: &str,
) -> Result<(), StoreError> {
    let class = b.class.as_str();
    ctx.metrics.batches.get_or_create(&label(class)).inc();
    ctx.metrics
        .events_in
        .get_or_create(&label(class))
        .inc_by(b.events.len() as u64);
    let started = Instant::now();
    let forms: Vec<String> = b.events.iter().map(stored_form).collect();
    let (flags, _) = tokio::try_join!(
        store.store_formed(b, &forms, attempt),
        store.add_gateway(&b.gw)
    )?;
    ctx.metrics
        .store_seconds
        .observe(started.elapsed().as_secs_f64());
    let now = Utc::now().timestamp_millis();
    // The live stream's message: one line per new event, written straight into one buffer.
    let mut lines = Vec::with_capacity(b.events.len() * 320);
    let mut stored = 0u64;
    let gw_json = Value::from(b.gw.as_str()).to_string();
    for ((e, new), json) in b.events.iter().zip(&flags).zip(&forms) {
        if !new {
            continue;
        }
        if let Some(rx) = e.head.rx.as_deref().and_then(parse_ms) {
            ctx.metrics
                .lag_seconds
                .observe(((now - rx).max(0) as f64) / 1000.0);
        }
        if stored > 0 {
            lines.push(b'\n');
        }
        stream_line_into(&mut lines, e, json, &b.gw, &gw_json);
        stored += 1;
    }
    if class == "receipt" {
        let new: Vec<Map<String, Value>> = b
            .events
            .iter()
            .zip(&flags)
            .filter(|(_, n)| **n)
            .map(|(e, _)| e.object())
            .collect();
        store.apply_receipts(&b.gw, &new).await?;
    }
    ctx.metrics
        .stored
        .get_or_create(&label(class))
        .inc_by(stored);
    ctx.metrics
        .duplicates
        .get_or_create(&label(class))
        .inc_by(b.events.len() as u64 - stored);
    debug!(gw = %b.gw, class, events = b.events.len(), stored, "batch stored");
    // Only what is new goes to TAK: a redelivery was sent when it was first stored.
    ctx.tak.stored(ctx, store, b, &flags).await;
    if let Err(e) = store.publish_stream(lines).await {
        // Stored and about to be acknowledged: a live stream missing it is not a loss.
        debug!(error = %e, "could not publish to the live stream");
    }
    Ok(())
}

/// A gateway's `state`: recorded; when it comes online, the messages it has not confirmed
/// are offered again (it recognises a `msg_id` it already holds).
async fn gateway_state(
    ctx: &Ctx,
    store: &crate::store::Store,
    gw: &str,
    v: &Map<String, Value>,
) -> Result<(), StoreError> {
    store.gateway_state(gw, v).await?;
    if v.get("state").and_then(Value::as_str) == Some("online") {
        for m in store.pending_messages(gw).await? {
            if !ctx.publish_down(&m).await {
                break;
            }
        }
    }
    Ok(())
}

/// A gateway's snapshot: `{"gw","ts","devices":{dev:{"presence":{…},"location":{…},"status":{…}}}}`
/// applied with the latest-state rule (an entry without an id loses a tie to a stored event).
async fn snapshot(
    store: &crate::store::Store,
    gw: &str,
    v: &Map<String, Value>,
) -> Result<(), StoreError> {
    let Some(Value::Object(devs)) = v.get("devices") else {
        return Ok(());
    };
    let mut entries = Vec::new();
    for (dev, d) in devs {
        for class in ["presence", "location", "status"] {
            if let Some(Value::Object(e)) = d.get(class) {
                let mut e = e.clone();
                e.entry("dev").or_insert_with(|| dev.clone().into());
                if e.get("dev").and_then(Value::as_str) != Some(dev.as_str()) {
                    continue;
                }
                let json = stored_json(&e);
                let head = Head::of_object(&e);
                let dev = dev.as_str();
                entries.push((class, dev, head, json));
            }
        }
    }
    let items = entries
        .iter()
        .map(|(class, dev, head, json)| latest_of(gw, class, None, dev, head, json))
        .collect();
    store.apply_latest(items).await?;
    store.add_gateway(gw).await
}
