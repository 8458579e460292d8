//! The device broker source: a persistent MQTT session (fixed client id, clean session off)
//! with manual acks. One task owns the rumqttc event loop (STYLE 8); a worker task
//! ([`super::pipeline`]) decodes, writes to the store and only then acknowledges (SPEC §6).

use super::topic::{matches, DeviceIdTemplate};
use crate::config::{Broker, MqttSource};
use crate::context::Context;
use crate::decode::MqttDecoder;
use crate::store::IngestItem;
use crate::util::{backoff::Backoff, input_hash, ratelimit::LogGate, stale::take_stale_publishes};
use chrono::Utc;
use rumqttc::{AsyncClient, Event, Packet, Publish, QoS};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Inputs waiting between the event loop and the worker; past it the event loop holds them
/// (`overflow` in [`run`]): it never waits on the worker.
const QUEUE: usize = 4096;
/// Memory (payload, topic and the struct) of the inputs held in the event loop beyond the
/// worker queue before further ones are set aside. The device broker may send far more than its
/// in-flight limit: mosquitto 2.0.11 with `max_inflight_messages 20` stops at 20 for a client
/// that acknowledges nothing, but once it does, it sends on (its log, a 20,000-input burst:
/// 8,000 outstanding after 420 PUBACKs; eclipse-mosquitto/mosquitto#2301 reports a bug in its
/// quota on acknowledgements). Each cycle of setting aside costs a reconnect and a redelivery:
/// held to 4,096 inputs, ingest past its rate fell from ~45k to 5–7k inputs/s; held to 16 MiB
/// (~65,000 OwnTracks inputs) it kept up at the 58k/s step (issue 16 goal 1).
/// `OUTPOST_HELD_MAX_BYTES` overrides it, for tests of setting aside (`tests/tests/burst.rs`).
const HELD_MAX_BYTES: usize = 16 << 20;

fn held_max_bytes() -> usize {
    std::env::var("OUTPOST_HELD_MAX_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(HELD_MAX_BYTES)
}

/// What holding `p` costs, for [`HELD_MAX_BYTES`].
fn held_bytes(p: &Publish) -> usize {
    p.payload.len() + p.topic.len() + std::mem::size_of::<Publish>()
}
/// Largest MQTT packet read from the device broker; bigger payloads are still read (and
/// dropped as `too_large` by the decoder) so one oversized message cannot wedge the session.
const MAX_INCOMING: usize = 64 * 1024 * 1024;

/// One `[[mqtt]]` source, ready to route topics.
pub struct Route {
    pub filter: String,
    pub profile: Arc<crate::config::Profile>,
    pub device_id: DeviceIdTemplate,
    pub decoder: MqttDecoder,
}

impl Route {
    /// Builds the route of a configured source.
    pub fn new(src: &MqttSource) -> anyhow::Result<Route> {
        let device_id = match src.profile.device_id_template() {
            Some(t) => DeviceIdTemplate::parse(t).map_err(anyhow::Error::msg)?,
            None => DeviceIdTemplate::last_level(),
        };
        Ok(Route {
            filter: src.topic.clone(),
            decoder: MqttDecoder::from_profile(&src.profile)?,
            profile: src.profile.clone(),
            device_id,
        })
    }
}

/// Runs the device broker source until cancelled.
pub async fn run(ctx: Context, broker: Broker, routes: Vec<Route>) -> anyhow::Result<()> {
    let mut opts = crate::mqtt_opts::options(&broker)?;
    opts.set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_INCOMING, 64 * 1024)
        .set_request_channel_capacity(QUEUE);
    let (client, mut eventloop) = AsyncClient::new(opts, QUEUE);
    let (tx, rx) = mpsc::channel::<Publish>(QUEUE);
    let routes = Arc::new(routes);
    // Inputs handed to the worker and not yet answered (see `in_hand::InHand`).
    let in_hand = Arc::new(super::in_hand::InHand::default());
    let worker = tokio::spawn(super::pipeline::worker(
        ctx.clone(),
        client.clone(),
        routes.clone(),
        rx,
        in_hand.clone(),
    ));
    let mut backoff = Backoff::default();
    let mut gate = LogGate::default();
    let mut tx = Some(tx);
    // Inputs the worker could not take yet. The event loop must never wait on the worker: the
    // worker's acknowledgements go out through this loop, so waiting here could deadlock both
    // (found by the backlog benchmark: a burst of ~8,000 queued messages wedged ingest).
    // Bounded at HELD_MAX_BYTES: past it, every further input is set aside unacknowledged ("shed")
    // until the held ones are handed over and the worker has answered every input it was handed
    // (below); then we reconnect, and the broker redelivers what was set aside.
    let mut overflow: VecDeque<Publish> = VecDeque::new();
    let (mut held, held_max) = (0usize, held_max_bytes()); // held_bytes() of `overflow`
    let (mut shed, mut reconnecting) = (0u64, false);
    let mut stopping = false;
    info!(broker = %format!("{}:{}", broker.host, broker.port), client_id = %broker.client_id, "connecting to device broker");
    loop {
        tokio::select! {
            _ = ctx.token.cancelled(), if tx.is_some() => stopping = true,
            _ = wait_finished(&worker), if tx.is_none() => break,
            permit = reserve(&tx), if !overflow.is_empty() => {
                if let (Ok(permit), Some(p)) = (permit, overflow.pop_front()) {
                    held -= held_bytes(&p);
                    in_hand.handed();
                    permit.send(p);
                }
            }
            // The worker answered its last input: that may have been a refusal, which sends
            // nothing through the event loop to wake us. (Not a timer: every wake-up here drops
            // the event loop's `poll` future, which rumqttc does not promise to survive; with a
            // 20 ms timer `tests/tests/burst_cut.rs` stored inputs twice in 3 of 6 runs.)
            _ = in_hand.answered(), if shed > 0 && !reconnecting => {}
            ev = eventloop.poll() => match alive(&ctx, ev) {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff.reset();
                    ctx.metrics.add_devices_connect();
                    info!(session_present = ack.session_present, "device broker connected");
                    subscribe(&ctx, &client, &routes).await;
                    (shed, reconnecting) = (0, false);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Some(tx) = &tx {
                        if shed > 0 || held >= held_max {
                            if shed == 0 {
                                warn!(held = overflow.len(), held_bytes = held, "device broker sends faster than Redis accepts; setting further inputs aside (unacknowledged) until we catch up");
                            }
                            shed += 1;
                        } else if !overflow.is_empty() {
                            held += held_bytes(&p);
                            overflow.push_back(p);
                        } else {
                            in_hand.handed();
                            if let Err(mpsc::error::TrySendError::Full(p)) = tx.try_send(p) {
                                in_hand.taken_back();
                                held += held_bytes(&p);
                                overflow.push_back(p);
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    // Inputs read on the failed connection would come after the next CONNACK,
                    // when nothing is set aside any more, and overtake those set aside before
                    // them (`util::stale`; `tests/tests/burst_cut.rs`, mosquitto's log: packet
                    // id 8,160 stored right behind 7,516, and 7,517-8,159 2.8 s later). None of
                    // them is acknowledged: the broker redelivers each, in order.
                    let stale = take_stale_publishes(&mut eventloop).len();
                    if stale > 0 {
                        info!(inputs = stale, "inputs read before the connection failed are left to the broker's redelivery");
                    }
                    let delay = backoff.next_delay();
                    if let Some(s) = gate.check("devices-conn") {
                        warn!(error = %e, retry_in = ?delay, suppressed = s, "device broker connection failed; retrying");
                    }
                    if tx.is_none() {
                        break;
                    }
                    tokio::select! {
                        _ = ctx.token.cancelled() => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        // Only once the worker answered every input it was handed: its acknowledgements are
        // then in the request channel ahead of the disconnect, and go out before it. One
        // requested after the disconnect is dropped by rumqttc (`EventLoop::clean` drops queued
        // PubAcks), the broker redelivers that input, and the copy was stored a second time
        // when it came back after more inputs than the recent-input check holds (the burst
        // test, 1 run in 6: 20,226 and 20,512 events for 20,000 inputs).
        // The request channel may be full of the worker's acknowledgements: then the
        // disconnect is tried again next turn (each ack the loop sends out is one). Taken as
        // done without it, ingest waited forever: the broker holds the inputs set aside as
        // unacknowledged and sends nothing more (a clean-clone CI run of the burst test).
        if shed > 0
            && !reconnecting
            && overflow.is_empty()
            && in_hand.none()
            && client.try_disconnect().is_ok()
        {
            info!(
                set_aside = shed,
                "caught up: reconnecting so the broker redelivers what was set aside"
            );
            reconnecting = true;
        }
        if stopping && tx.is_some() {
            // Stop taking new inputs (held ones are not acknowledged: the broker redelivers
            // them); keep polling so the worker's last acks go out.
            tx = None;
            overflow.clear();
            held = 0;
        }
    }
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Ok(ev) = eventloop.poll().await {
            if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    })
    .await;
    drop(tx);
    let _ = worker.await;
    info!("device broker source stopped");
    Ok(())
}

/// The event loop turned: a heartbeat for the watchdog (`ops::health`); passes `ev` through.
fn alive<T>(ctx: &Context, ev: T) -> T {
    ctx.metrics.live.beat(crate::ops::Component::Ingest);
    ev
}

/// Subscribes every route's filter and unsubscribes filters a previous config used: the
/// session is persistent, so the broker would otherwise keep feeding them to us.
async fn subscribe(ctx: &Context, client: &AsyncClient, routes: &[Route]) {
    let now: Vec<String> = routes.iter().map(|r| r.filter.clone()).collect();
    match ctx.store.swap_subscriptions(&now).await {
        Ok(old) => {
            for f in old.iter().filter(|f| !now.contains(f)) {
                info!(topic = %f, "unsubscribing a filter the config no longer has");
                let _ = client.try_unsubscribe(f);
            }
        }
        Err(e) => debug!(error = %e, "could not read previous subscriptions"),
    }
    for f in &now {
        if let Err(e) = client.try_subscribe(f, QoS::AtLeastOnce) {
            warn!(topic = %f, error = %e, "subscribe request failed");
        }
    }
}

/// A send permit on the worker channel; never resolves once the channel is gone.
async fn reserve(
    tx: &Option<mpsc::Sender<Publish>>,
) -> Result<mpsc::Permit<'_, Publish>, mpsc::error::SendError<()>> {
    match tx {
        Some(t) => t.reserve().await,
        None => std::future::pending().await,
    }
}

async fn wait_finished(h: &tokio::task::JoinHandle<()>) {
    while !h.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Why an input was dropped: (reason label, detail).
pub(super) struct Drop(pub String, pub String);

/// A decoded input: its store items, the optional fields left out of its events, and the
/// display name (device, name) it announced.
pub(super) struct DecodedInput {
    pub items: Vec<IngestItem>,
    pub dropped: Vec<crate::decode::DroppedField>,
    pub name: Option<(String, String)>,
}

pub(super) fn decode(routes: &[Route], p: &Publish) -> Result<DecodedInput, Drop> {
    let route = routes
        .iter()
        .find(|r| matches(&r.filter, &p.topic))
        .ok_or_else(|| Drop("unknown_topic".into(), p.topic.clone()))?;
    if let Some(d) = route.profile.downlink() {
        if crate::downlink::render::is_own_downlink(d, &p.topic) {
            // Our own message to a radio: acknowledged, not an input.
            return Ok(DecodedInput {
                items: Vec::new(),
                dropped: Vec::new(),
                name: None,
            });
        }
    }
    let dev = route
        .device_id
        .apply(&p.topic)
        .ok_or_else(|| Drop("no_device_id".into(), p.topic.clone()))?;
    let rx = Utc::now();
    let decoded = route
        .decoder
        .decode(&dev, &p.payload, rx)
        .map_err(|e| Drop(e.reason().into(), e.to_string()))?;
    let hash = input_hash(&[p.topic.as_bytes(), &p.payload]);
    let name = decoded.device_name.map(|n| (dev.clone(), n));
    let dropped = decoded.dropped;
    let mut out: Vec<IngestItem> = Vec::new();
    if decoded.events.is_empty() && decoded.silent {
        // Nothing to store and no sign of the device: acknowledged as it is.
        return Ok(DecodedInput {
            items: out,
            dropped,
            name,
        });
    }
    if decoded.events.is_empty() {
        out.push(item(route, dev, vec![], &decoded.dedup_key, hash, p, rx));
        return Ok(DecodedInput {
            items: out,
            dropped,
            name,
        });
    }
    // Group events by device (a decoder may name the device, e.g. a Meshtastic sender).
    for e in decoded.events {
        match out.iter_mut().find(|i| i.dev == e.dev) {
            Some(i) => i.events.push(e),
            None => {
                let d = e.dev.clone();
                out.push(item(route, d, vec![e], &decoded.dedup_key, hash, p, rx));
            }
        }
    }
    // Distinct hashes and slots per device item, so a redelivery check is per item.
    for (n, i) in out.iter_mut().enumerate().skip(1) {
        i.input_hash = Some(hash.wrapping_add(n as u64));
        i.dedup_key = i.dedup_key.as_ref().map(|k| format!("{k}:{n}"));
        i.slot = i.slot.as_ref().map(|s| format!("{s}.{n}"));
    }
    Ok(DecodedInput {
        items: out,
        dropped,
        name,
    })
}

fn item(
    route: &Route,
    dev: String,
    events: Vec<crate::event::Event>,
    dedup: &Option<String>,
    hash: u64,
    p: &Publish,
    rx: chrono::DateTime<Utc>,
) -> IngestItem {
    IngestItem {
        dev,
        profile: route.profile.name.clone(),
        presence_timeout: route.profile.presence_timeout,
        events,
        dedup_key: dedup.clone(),
        input_hash: Some(hash),
        maybe_duplicate: p.dup,
        // QoS 0 inputs have no packet id (0), and are never redelivered.
        slot: (p.pkid != 0).then(|| p.pkid.to_string()),
        rx,
        topic: p.topic.clone(),
    }
}
