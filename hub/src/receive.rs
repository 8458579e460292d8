//! The receiver (SPEC §7): one MQTT 5 session on the hub broker, batches through a shared
//! subscription, the gateways' retained `state` and `snapshot` through plain ones (MQTT 5
//! §4.8.2: a shared subscription gets no retained messages).
//!
//! Manual acks: a message is PUBACKed only after Redis stored it, or after it was refused as
//! bad input (counted: a bad message must never block the ones behind it). A message that
//! could not be stored (Redis down) is retried here with backoff and never acknowledged until
//! stored. The session is persistent (fixed client id, long session expiry) so what the broker
//! handed to a receiver that died waits in its session until it is back; the broker's receive
//! maximum bounds what is in flight.
//!
//! One task owns the event loop (STYLE 8); each message is handled in its own task, at most
//! `receive_maximum` at once.

use crate::handle::{handle, Handled};
use crate::Ctx;
use outpost::util::backoff::Backoff;
use outpost::util::ratelimit::LogGate;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep, timeout};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Session expiry asked of the broker: a receiver down for up to a week finds its session.
const SESSION_EXPIRY_S: u32 = 7 * 86_400;
/// Largest packet we accept; bigger batches are refused as `oversize` (1 MiB) after reading.
const MAX_PACKET: u32 = 16 << 20;
/// SIGTERM: how long in-flight messages may take to finish and be acknowledged.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the receiver until the token is cancelled.
pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut gate = LogGate::default();
    loop {
        let reason = match session(&ctx, &mut backoff).await {
            Ok(None) => break,
            Ok(Some(r)) => r,
            Err(e) => format!("{e:#}"),
        };
        ctx.metrics.broker_up.set(0);
        let delay = backoff.next_delay();
        if let Some(s) = gate.check("broker") {
            warn!(reason = %reason, retry_in = ?delay, suppressed = s, "hub broker connection lost; reconnecting");
        }
        tokio::select! {
            _ = ctx.token.cancelled() => break,
            _ = sleep(delay) => {}
        }
    }
    info!("receiver stopped");
    Ok(())
}

fn options(ctx: &Ctx) -> anyhow::Result<MqttOptions> {
    let mut o = outpost::mqtt_opts::options_v5(&ctx.settings.broker)?;
    o.set_clean_start(false)
        .set_session_expiry_interval(Some(SESSION_EXPIRY_S))
        .set_receive_maximum(Some(ctx.settings.receive_maximum))
        .set_max_packet_size(Some(MAX_PACKET))
        .set_manual_acks(true);
    Ok(o)
}

/// One connection; `Ok(None)` on shutdown, `Ok(Some(reason))` when the link was lost.
async fn session(ctx: &Arc<Ctx>, backoff: &mut Backoff) -> anyhow::Result<Option<String>> {
    let cap = ctx.settings.receive_maximum as usize * 2 + 16;
    let (client, mut el) = AsyncClient::new(options(ctx)?, cap);
    loop {
        tokio::select! {
            _ = ctx.token.cancelled() => return Ok(None),
            ev = el.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(a))) => {
                    info!(session_present = a.session_present, "connected to hub broker");
                    break;
                }
                Ok(_) => {}
                Err(e) => return Ok(Some(format!("connect: {e}"))),
            }
        }
    }
    backoff.reset();
    let topics = outpost_proto::topic::Topics::new(&ctx.settings.topic_prefix);
    let [up, state, snapshot] = topics.hub_filters();
    let shared = format!("$share/{}/{up}", ctx.settings.share_group);
    for t in [shared, state, snapshot] {
        client.subscribe(t, QoS::AtLeastOnce).await?;
    }
    if let Ok(mut d) = ctx.downlink.lock() {
        *d = Some(client.clone());
    }
    let tracker = TaskTracker::new();
    // At most `receive_maximum` messages parsed and in Redis at once, whatever the broker
    // sends: the rest wait as raw payloads. (The broker should stop at our receive maximum;
    // a burst from 1,000 gateways showed the hub growing past 1 GB without this bound.)
    let permits = Arc::new(tokio::sync::Semaphore::new(
        ctx.settings.receive_maximum as usize,
    ));
    // Up (and `/healthz` 200) once the broker confirmed all three subscriptions: before
    // that, batches published to the shared subscription could miss this receiver.
    let mut subacks = 0;
    let end = loop {
        tokio::select! {
            _ = ctx.token.cancelled() => break None,
            ev = el.poll() => match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    subacks += 1;
                    if subacks == 3 {
                        ctx.metrics.broker_up.set(1);
                        info!("subscribed on the hub broker");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let (ctx, client, permits) = (ctx.clone(), client.clone(), permits.clone());
                    tracker.spawn(async move {
                        let Ok(_permit) = permits.acquire_owned().await else { return };
                        process(&ctx, &client, p).await
                    });
                }
                Ok(_) => {}
                Err(e) => break Some(format!("{e}")),
            }
        }
    };
    if let Ok(mut d) = ctx.downlink.lock() {
        *d = None;
    }
    tracker.close();
    if end.is_none() {
        // Shutdown: finish what is in flight and get its acks out, then leave.
        let drain = async {
            loop {
                tokio::select! {
                    _ = tracker.wait() => break,
                    ev = el.poll() => if ev.is_err() { break },
                }
            }
            let _ = client.disconnect().await;
            let _ = timeout(Duration::from_millis(500), async {
                while el.poll().await.is_ok() {}
            })
            .await;
        };
        let _ = timeout(SHUTDOWN_GRACE, drain).await;
    }
    Ok(end)
}

/// Handles one message until it is stored or refused, then acknowledges it.
async fn process(ctx: &Ctx, client: &AsyncClient, p: Publish) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let attempt = ctx.attempt();
    loop {
        match handle(ctx, &p, &attempt).await {
            Handled::Done => break,
            Handled::Retry(e) => {
                ctx.metrics.store_errors.inc();
                ctx.metrics.redis_up.set(0);
                let delay = backoff.next_delay();
                if let Some(s) = ctx.log_gate("store") {
                    warn!(error = %e, retry_in = ?delay, suppressed = s, "could not store; not acknowledged, retrying");
                }
                tokio::select! {
                    // Not acknowledged: the broker keeps it in our session.
                    _ = ctx.token.cancelled() => return,
                    _ = sleep(delay) => {}
                }
            }
        }
    }
    if p.qos != QoS::AtMostOnce {
        // Fails only when the connection is gone: then the broker redelivers and the
        // store recognises the duplicate.
        let _ = client.ack(&p).await;
    }
}
