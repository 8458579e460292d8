//! The hub side of the downlink: a persistent MQTT session (`<uplink client id>-down`, clean
//! session off) subscribed QoS 1 to `<topic_prefix>/<gw>/down`, with manual acks. A message is
//! PUBACKed only once it is in Redis (with its receipts), so one in flight when the gateway dies
//! is redelivered and recognised by its msg_id. While the gateway is offline the hub broker
//! keeps QoS 1 messages for the session (docs/downlink.md); the uplink's own session stays
//! clean, because its state is the outbox cursor, not the broker's.

use super::accept::{accept_payload, Accepted, Profiles};
use crate::context::Context;
use crate::util::{backoff::Backoff, ratelimit::LogGate, stale::take_stale_publishes};
use chrono::Utc;
use rumqttc::{AsyncClient, Event, Packet, Publish, QoS};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Down messages between the event loop and the worker (the broker bounds what is in flight).
const QUEUE: usize = 256;

/// Runs the hub subscription until cancelled.
pub async fn run(ctx: Context, profiles: Arc<Profiles>) -> anyhow::Result<()> {
    let u = &ctx.settings.uplink;
    let mut b = u.broker.clone();
    b.client_id = format!("{}-down", b.client_id);
    let topic = crate::uplink::topic(&ctx, "down");
    let mut opts = crate::mqtt_opts::options(&b)?;
    opts.set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(64 * 1024, 64 * 1024);
    let (client, mut el) = AsyncClient::new(opts, QUEUE);
    // Each message with whether to acknowledge it once stored.
    let (tx, rx) = mpsc::channel::<(Publish, bool)>(QUEUE);
    let worker = tokio::spawn(worker(ctx.clone(), client.clone(), profiles, rx));
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut gate = LogGate::default();
    'session: loop {
        let ev = tokio::select! {
            _ = ctx.token.cancelled() => break,
            ev = el.poll() => ev,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                info!(session_present = ack.session_present, %topic, "downlink subscribed");
                let _ = client.try_subscribe(&topic, QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send((p, true)).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                // Messages read on the failed connection (`util::stale`) are stored but not
                // acknowledged: the broker of this persistent session redelivers each under its
                // packet id, and that copy, recognised by its msg_id, is acknowledged. An
                // acknowledgement of these sent on the new connection could fall on another
                // message given the packet id since; one dropped here would be lost if the
                // broker had lost the session.
                for p in take_stale_publishes(&mut el) {
                    if tx.send((p, false)).await.is_err() {
                        break 'session;
                    }
                }
                let delay = backoff.next_delay();
                if let Some(s) = gate.check("down-hub") {
                    warn!(error = %e, retry_in = ?delay, suppressed = s, "downlink: hub connection failed; retrying");
                }
                tokio::select! {
                    _ = ctx.token.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    drop(tx);
    let _ = worker.await;
    let _ = client.try_disconnect();
    Ok(())
}

/// Stores each down message, then acknowledges it; Redis down → retried, never acknowledged.
async fn worker(
    ctx: Context,
    client: AsyncClient,
    profiles: Arc<Profiles>,
    mut rx: mpsc::Receiver<(Publish, bool)>,
) {
    let mut gate = LogGate::default();
    while let Some((p, ack)) = rx.recv().await {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            match accept_payload(&ctx.store, &profiles, &p.payload, Utc::now()).await {
                Ok(a) => {
                    log(&a, &mut gate);
                    ctx.outbox.changed();
                    break;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    if let Some(s) = gate.check("down-store") {
                        warn!(error = %e, retry_in = ?delay, suppressed = s, "downlink: cannot store a message; holding it unacknowledged");
                    }
                    tokio::select! {
                        _ = ctx.token.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        if ack {
            let _ = client.ack(&p).await;
        }
    }
}

fn log(a: &Accepted, gate: &mut LogGate) {
    match a {
        Accepted::Stored(t) => info!(targets = ?t, "downlink message accepted"),
        Accepted::Duplicate(id) => {
            info!(msg_id = %id, "downlink message already accepted; ignored")
        }
        Accepted::Unreadable(r) => {
            if let Some(s) = gate.check(r) {
                warn!(reason = %r, suppressed = s, "downlink message unreadable; dropped (counted)");
            }
        }
    }
}
