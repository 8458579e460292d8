//! The device broker worker: decodes, stores, then acknowledges (SPEC §6), with up to
//! [`FLIGHTS`] store pipelines in flight on the one Redis connection. Waiting for each fsync'd
//! pipeline before reading the next inputs left the broker's in-flight window idle half the
//! time; overlapping them lets Redis fsync several pipelines at once.
//!
//! What stays as it was: an input is acknowledged only once stored, acknowledgements go out in
//! the order the pipelines were sent (inputs in arrival order within each), and the store
//! applies pipelines in the order they were sent: each one's first script call runs only if
//! the previous pipeline landed ([`Order`]), so one that fails cannot be overtaken; it and all
//! behind it are retried in order, one at a time, as duplicates-aware retries.

use super::in_hand::InHand;
use super::mqtt::{decode, Route};
use crate::context::Context;
use crate::event::Class;
use crate::store::{IngestItem, Order, Outcome, Store, StoreError};
use crate::util::ratelimit::LogGate;
use rumqttc::{AsyncClient, Publish, QoS};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Store pipelines in flight at once.
const FLIGHTS: usize = 4;
/// Inputs that must be waiting before a pipeline is sent while another is in flight. Fewer
/// wait for the one in flight to land: at a low rate overlapping buys nothing and costs an
/// fsync per input (the p99 latency measure showed it); under load the broker's in-flight
/// window fills and they overlap.
const OVERLAP_MIN: usize = 8;
/// Inputs written to Redis in one pipeline (at most).
const BATCH: usize = 512;
/// How long an input waits for others to be stored with while fewer than [`OVERLAP_MIN`] wait,
/// unless it carries an alert or a message. At 100 devices × 1 Hz each input otherwise paid a
/// script call, an fsync, an uplink batch and its PUBACK of its own, each a wake-up of a
/// process whose caches had gone cold (issue 16 goal 5: ~200 µs of CPU an input).
const LINGER: Duration = Duration::from_millis(50);

/// One input awaiting storage: its publish (acknowledged once every item is stored) and the
/// items not yet stored (none: acknowledged as it is, e.g. dropped as bad input).
struct Input {
    publish: Publish,
    items: Vec<IngestItem>,
    /// Still counted in [`InHand`] (until its first answer; a refused input retried is not).
    in_hand: bool,
}

type Stored = (Vec<IngestItem>, Result<Vec<Outcome>, StoreError>);

/// A batch of inputs on its way through the store.
struct Flight {
    inputs: Vec<Input>,
    drops: Vec<(String, u64)>,
    names: Vec<(String, String)>,
    write: Pin<Box<dyn Future<Output = Stored> + Send>>,
    /// The write's result if it finished on its first poll.
    done: Option<Stored>,
}

impl Flight {
    async fn finish(&mut self) -> Stored {
        match self.done.take() {
            Some(d) => d,
            None => (&mut self.write).await,
        }
    }
}

/// Decoded inputs not yet sent to the store.
#[derive(Default)]
struct Waiting {
    inputs: Vec<Input>,
    drops: Vec<(String, u64)>,
    names: Vec<(String, String)>,
    /// When the oldest of them arrived.
    since: Option<Instant>,
    /// One of them carries an alert or a message: it does not linger.
    urgent: bool,
}

impl Waiting {
    fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether they should be stored now (nothing is in flight): enough of them, an urgent
    /// one, or the oldest has lingered long enough.
    fn ripe(&self) -> bool {
        self.urgent
            || self.len() >= OVERLAP_MIN
            || self.since.is_some_and(|t| t.elapsed() >= LINGER)
    }
}

struct Worker {
    ctx: Context,
    client: AsyncClient,
    routes: Arc<Vec<Route>>,
    flights: VecDeque<Flight>,
    waiting: Waiting,
    refused: VecDeque<Input>,
    in_hand: Arc<InHand>,
    gate: LogGate,
    /// Names this worker's sequence of ordered store calls; `last` = the last number used.
    order_key: String,
    last: u64,
}

/// Decodes, stores, then acknowledges. Inputs refused for lack of room are kept
/// unacknowledged (the broker keeps them too) and retried every second.
pub(super) async fn worker(
    ctx: Context,
    client: AsyncClient,
    routes: Arc<Vec<Route>>,
    mut rx: mpsc::Receiver<Publish>,
    in_hand: Arc<InHand>,
) {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let mut w = Worker {
        ctx,
        client,
        routes,
        flights: VecDeque::new(),
        waiting: Waiting::default(),
        refused: VecDeque::new(),
        in_hand,
        gate: LogGate::default(),
        order_key: format!("{}-{nanos:x}", std::process::id()),
        last: 0,
    };
    let mut buf = Vec::with_capacity(BATCH);
    let mut closed = false;
    loop {
        if closed && w.flights.is_empty() {
            // Inputs still refused stay unacknowledged: the broker redelivers them.
            break;
        }
        let can_take = !closed && w.flights.len() < FLIGHTS && w.waiting.len() < BATCH;
        let retry_refused = !w.refused.is_empty() && w.flights.is_empty();
        let room = BATCH - w.waiting.len();
        let linger_until = match w.waiting.since {
            Some(t) if w.flights.is_empty() => Some(t + LINGER),
            _ => None,
        };
        tokio::select! {
            biased;
            stored = front(&mut w.flights) => {
                let f = w.flights.pop_front().expect("front exists");
                if !w.landed(f, stored).await {
                    break; // cancelled during a Redis outage: nothing more acknowledged
                }
            }
            // Adds to what waits (lingering, or below OVERLAP_MIN while a pipeline is in flight).
            n = rx.recv_many(&mut buf, room), if can_take => {
                if n == 0 {
                    closed = true;
                }
                w.decode(&mut buf);
            }
            _ = tokio::time::sleep(Duration::from_secs(1)), if retry_refused && !closed => {
                w.dispatch().await;
            }
            _ = tokio::time::sleep_until(linger_until.unwrap_or_else(Instant::now).into()), if linger_until.is_some() => {}
        }
        let send = w.waiting.len() > 0
            && w.flights.len() < FLIGHTS
            && ((w.flights.is_empty() && w.waiting.ripe())
                || w.waiting.len() >= OVERLAP_MIN
                || closed);
        if send {
            w.dispatch().await;
        }
    }
}

/// The oldest flight's result; never resolves when nothing is in flight.
async fn front(flights: &mut VecDeque<Flight>) -> Stored {
    match flights.front_mut() {
        Some(f) => f.finish().await,
        None => std::future::pending().await,
    }
}

impl Worker {
    /// Decodes `buf` into what waits to be stored.
    fn decode(&mut self, buf: &mut Vec<Publish>) {
        let w = &mut self.waiting;
        if !buf.is_empty() {
            w.since.get_or_insert_with(Instant::now);
        }
        let (inputs, drops, names) = (&mut w.inputs, &mut w.drops, &mut w.names);
        for p in buf.drain(..) {
            match decode(&self.routes, &p) {
                Ok(d) => {
                    // Malformed optional fields: counted and logged like drops, event kept.
                    for f in &d.dropped {
                        let reason = f.reason();
                        self.ctx.metrics.add_drop(&reason, 1);
                        if let Some(s) = self.gate.check(&reason) {
                            warn!(topic = %p.topic, reason = %reason, error = %f, suppressed = s, "malformed field dropped; event kept");
                        }
                        drops.push((reason, 1));
                    }
                    names.extend(d.name);
                    w.urgent |= d
                        .items
                        .iter()
                        .flat_map(|i| &i.events)
                        .any(|e| matches!(e.class(), Class::Alert | Class::Message));
                    inputs.push(Input {
                        publish: p,
                        items: d.items,
                        in_hand: true,
                    })
                }
                Err(reason) => {
                    self.ctx.metrics.add_drop(&reason.0, 1);
                    drops.push((reason.0.clone(), 1));
                    if let Some(s) = self.gate.check(&reason.0) {
                        warn!(topic = %p.topic, reason = %reason.0, error = %reason.1, suppressed = s, "input dropped");
                    }
                    inputs.push(Input {
                        publish: p,
                        items: Vec::new(),
                        in_hand: true,
                    });
                }
            }
        }
    }

    /// Sends the store pipeline of the inputs waiting for room and those waiting.
    async fn dispatch(&mut self) {
        let w = std::mem::take(&mut self.waiting);
        let mut inputs: Vec<Input> = self.refused.drain(..).collect();
        inputs.extend(w.inputs);
        let (drops, names) = (w.drops, w.names);
        let items: Vec<IngestItem> = inputs
            .iter()
            .flat_map(|i| i.items.iter().cloned())
            .collect();
        let mut write: Pin<Box<dyn Future<Output = Stored> + Send>> = if items.is_empty() {
            Box::pin(std::future::ready((items, Ok(Vec::new()))))
        } else {
            let order = Order {
                key: self.order_key.clone(),
                prev: if self.flights.is_empty() {
                    0
                } else {
                    self.last
                },
                first: self.last + 1,
            };
            self.last += Store::calls(items.len());
            let (store, metrics) = (self.ctx.store.clone(), self.ctx.metrics.clone());
            Box::pin(async move {
                let started = Instant::now();
                let r = store.ingest_ordered(&items, Some(&order)).await;
                metrics.observe_redis_ingest(started.elapsed());
                (items, r)
            })
        };
        // Poll once now: that hands the pipeline to the connection, so pipelines go out in
        // the order they were made (the store's order check covers any that do not).
        let done = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        self.flights.push_back(Flight {
            inputs,
            drops,
            names,
            write,
            done: match done {
                Poll::Ready(d) => Some(d),
                Poll::Pending => None,
            },
        });
    }

    /// The front flight's write finished. On failure every flight behind it is finished too
    /// and each failed one retried in order; false when cancelled meanwhile.
    async fn landed(&mut self, f: Flight, stored: Stored) -> bool {
        if stored.1.is_ok() {
            return self.complete(f, stored).await;
        }
        let mut all = vec![(f, stored)];
        while let Some(mut next) = self.flights.pop_front() {
            let s = next.finish().await;
            all.push((next, s));
        }
        for (f, (mut items, r)) in all {
            let outcomes = match r {
                Ok(o) => {
                    super::accepted(&self.ctx, &items, &o);
                    o
                }
                Err(e) => {
                    match e {
                        StoreError::Later => {
                            debug!("ingest pipeline behind a failed one; retrying in order")
                        }
                        e => warn!(error = %e, "redis write failed; holding inputs unacknowledged"),
                    }
                    // It may have landed with its reply lost: the retry is recognised by hash.
                    for i in items.iter_mut() {
                        i.maybe_duplicate = true;
                    }
                    match super::accept(&self.ctx, &mut items).await {
                        Some(o) => o,
                        None => return false,
                    }
                }
            };
            self.finish_with(f, outcomes).await;
        }
        true
    }

    async fn complete(&mut self, f: Flight, (items, r): Stored) -> bool {
        let outcomes = r.expect("checked by the caller");
        super::accepted(&self.ctx, &items, &outcomes);
        self.finish_with(f, outcomes).await;
        true
    }

    /// Acknowledges what was stored (or dropped), keeps what was refused for lack of room.
    async fn finish_with(&mut self, f: Flight, outcomes: Vec<Outcome>) {
        let mut outcomes = outcomes.into_iter();
        let mut to_ack = Vec::with_capacity(f.inputs.len());
        for mut input in f.inputs {
            let gate = &mut self.gate;
            input.items.retain(|item| match outcomes.next() {
                Some(Outcome::Full(class)) => {
                    if let Some(s) = gate.check("full") {
                        warn!(dev = %item.dev, %class, suppressed = s, "outbox share full; input refused (kept at the broker)");
                    }
                    true
                }
                _ => false,
            });
            if input.items.is_empty() {
                to_ack.push((input.publish, input.in_hand));
            } else {
                if std::mem::take(&mut input.in_hand) {
                    self.in_hand.answer();
                }
                self.refused.push_back(input);
            }
        }
        if let Err(e) = self.ctx.store.count_drops(&f.drops).await {
            debug!(error = %e, "could not count drops in redis");
        }
        if let Err(e) = self.ctx.store.set_device_names(&f.names).await {
            debug!(error = %e, "could not record device names in redis");
        }
        for (p, in_hand) in to_ack {
            if p.qos != QoS::AtMostOnce {
                let _ = self.client.ack(&p).await;
            }
            // After the ack is queued: a disconnect asked for from now on goes out behind it.
            if in_hand {
                self.in_hand.answer();
            }
        }
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
