//! One uplink connection: connect, announce (state, snapshot), then drain and track PUBACKs
//! until the link is lost or we shut down.
//!
//! MQTT 5, for the PUBACK's reason code: a broker that accepted a batch but had no subscriber
//! for it (0x10: e.g. a restarted mosquitto, which does not restore the receivers' shared
//! subscription until they subscribe again) or refused it (0x87 not authorized, …) answers
//! with a PUBACK all the same. Such a batch was not delivered: the cursor stays before it and
//! it is sent again after a pause, one event at a time until one is delivered
//! ([`Window::refused`], [`Refusals`]); the other classes go on meanwhile.
//!
//! After the CONNACK the rumqttc event loop runs in a task of its own ([`Events`]): while the
//! session reads the next batches from Redis, the last ones are written and their PUBACKs
//! read. In one task the two took turns, and the backlog drain was bound by the sum of both
//! (issue 16 goal 3: the gateway busy ~60% of the time at 515k events/s).

mod fill;

use super::cursor::CursorWriter;
use super::feed::Tap;
use super::refused::Refusals;
use super::window::{self, Sizing, Window};
use super::{region_topic, set_up, End};
use crate::config::Uplink;
use crate::context::Context;
use crate::event::{format_ts, Class};
use crate::store::parse_id;
use crate::util::backoff::Backoff;
use crate::util::ratelimit::LogGate;
use chrono::Utc;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAck, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop};
use rumqttc::Outgoing;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

/// Time allowed for the broker's CONNACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// SPEC §2: on shutdown wait this long for in-flight acknowledgements.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Connection events the session has not taken yet (the event loop waits past this).
const EVENTS_QUEUED: usize = 1024;

/// The connection's events, each with the time it came (the PUBACK round trip is measured from
/// it, not from when the session got to it), from the event loop's task; dropping this stops
/// the task and closes the connection. After the first error nothing more comes.
struct Events {
    rx: mpsc::Receiver<(Instant, Result<Event, ConnectionError>)>,
    _task: AbortOnDropHandle<()>,
}

impl Events {
    fn spawn(mut el: EventLoop) -> Events {
        let (tx, rx) = mpsc::channel(EVENTS_QUEUED);
        let task = tokio::spawn(async move {
            loop {
                let ev = el.poll().await;
                let failed = ev.is_err();
                if tx.send((Instant::now(), ev)).await.is_err() || failed {
                    return;
                }
            }
        });
        Events {
            rx,
            _task: AbortOnDropHandle::new(task),
        }
    }

    /// The next event; an error once the task has stopped.
    async fn next(&mut self) -> (Instant, Result<Event, String>) {
        match self.rx.recv().await {
            Some((at, ev)) => (at, ev.map_err(|e| e.to_string())),
            None => (Instant::now(), Err("event loop stopped".into())),
        }
    }
}

struct Session<'a> {
    ctx: &'a Context,
    /// This region's hub settings.
    u: &'a Uplink,
    /// Index of this region in `settings.uplinks` (0 also counts the process-wide totals).
    me: usize,
    /// Wakes when new entries are in the outbox, and holds those ingest handed over.
    tap: &'a Tap,
    client: AsyncClient,
    window: Window,
    /// How many batches may await PUBACK, from the measured round trip.
    sizing: Sizing,
    /// Last id published per class (in flight or acknowledged).
    sent: [String; Class::COUNT],
    /// Last id the hub acknowledged per class (where a refused batch's class resumes).
    acked: [String; Class::COUNT],
    /// Entries at or below these ids were already waiting when the link came up.
    replay_upto: [(u64, u64); Class::COUNT],
    /// Classes known to have nothing after `sent` (until the outbox is notified).
    idle: [bool; Class::COUNT],
    /// Where acknowledged cursors go to be recorded in Redis.
    cursors: CursorWriter,
    /// Since when we wait for any packet from the broker (a publish or ping is outstanding).
    awaiting_since: Option<Instant>,
    response_timeout: Duration,
    fill_blocked_until: Option<Instant>,
    /// Classes the broker refused batches of, pausing and probing ([`Refusals`]).
    refusals: Refusals,
    refused_log: LogGate,
}

/// Runs one session; `Err` for failures before the link was up.
pub async fn run(
    ctx: &Context,
    u: &Uplink,
    me: usize,
    tap: &Tap,
    backoff: &mut Backoff,
    cursors: &CursorWriter,
) -> anyhow::Result<End> {
    let gw = &ctx.settings.gateway_id;
    let state_topic = region_topic(u, gw, "state");
    let mut opts = crate::mqtt_opts::options_v5(&u.broker)?;
    // At most this many publishes in flight, fewer if the broker's receive maximum says so.
    opts.set_clean_start(true)
        .set_outgoing_inflight_upper_limit(
            (window::MAX_BATCHES.max(u.inflight) + 8).min(u16::MAX as usize) as u16,
        )
        .set_max_packet_size(Some(1024 * 1024))
        .set_request_channel_capacity(window::MAX_BATCHES.max(u.inflight) * 2 + 16)
        .set_last_will(LastWill::new(
            &state_topic,
            r#"{"state":"offline"}"#,
            QoS::AtLeastOnce,
            true,
            None,
        ));
    let (client, mut el) = AsyncClient::new(opts, window::MAX_BATCHES.max(u.inflight) * 2 + 16);
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        tokio::select! {
            _ = ctx.token.cancelled() => return Ok(End::Shutdown),
            _ = sleep_until(deadline) => return Ok(End::Lost("no CONNACK from hub".into())),
            ev = el.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(e) => return Ok(End::Lost(format!("connect: {e}"))),
            }
        }
    }
    backoff.reset();
    let since = Utc::now();
    let mut s = Session {
        ctx,
        u,
        me,
        tap,
        client,
        window: Window::default(),
        sizing: Sizing::new(u.inflight),
        sent: Default::default(),
        acked: Default::default(),
        replay_upto: [(0, 0); Class::COUNT],
        idle: [false; Class::COUNT],
        cursors: cursors.clone(),
        awaiting_since: None,
        response_timeout: (u.broker.keep_alive / 2).max(Duration::from_secs(1)),
        fill_blocked_until: None,
        refusals: Refusals::default(),
        refused_log: LogGate::default(),
    };
    // Held from before the first read on: what is stored meanwhile is read or handed over.
    tap.listen(true);
    // The replay mark before the link is reported up: whatever is accepted once it is up is
    // live, not replay.
    s.load_cursors().await?;
    set_up(ctx, &u.name, true).await;
    info!(region = %u.name, "uplink connected");
    let state = serde_json::json!({"state": "online", "version": env!("CARGO_PKG_VERSION"), "since": format_ts(since)});
    s.publish_untracked(&state_topic, state.to_string().into_bytes())?;
    // Snapshot first, history behind it (SPEC §5). Redis being down must not keep the link
    // from draining later: without a snapshot we still drain.
    match ctx.store.snapshot(&ctx.settings.gateway_id).await {
        Ok(snap) => s.publish_untracked(&region_topic(u, gw, "snapshot"), snap.into_bytes())?,
        Err(e) => warn!(error = %e, "could not build snapshot"),
    }
    s.drive(&mut Events::spawn(el)).await
}

impl Session<'_> {
    fn publish_untracked(&mut self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, true, payload)
            .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
        self.window.published_untracked();
        Ok(())
    }

    async fn load_cursors(&mut self) -> anyhow::Result<()> {
        self.sent = self.ctx.store.acked_cursors(&self.u.name).await?;
        self.acked = self.sent.clone();
        for c in Class::ALL {
            let last = self.ctx.store.last_id(c).await?;
            self.replay_upto[c.index()] = parse_id(&last).unwrap_or((0, 0));
        }
        Ok(())
    }

    /// The main loop: fill the window, then wait for broker events, new outbox entries or
    /// shutdown.
    async fn drive(&mut self, el: &mut Events) -> anyhow::Result<End> {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            self.fill().await;
            tokio::select! {
                _ = self.ctx.token.cancelled() => return Ok(self.shutdown(el).await),
                _ = self.tap.notified() => if self.tap.take_unknown() {
                    // Added and not handed over: read every class again.
                    self.idle = [false; Class::COUNT];
                },
                _ = tick.tick() => {
                    self.ctx.metrics.live.beat(crate::ops::Component::Uplink);
                    if let Some(since) = self.awaiting_since {
                        if since.elapsed() > self.response_timeout {
                            return Ok(End::Lost(format!("hub silent for {:?} (half-open link?)", self.response_timeout)));
                        }
                    }
                }
                (at, ev) = el.next() => match ev {
                    Ok(ev) => self.on_event(ev, at),
                    Err(e) => return Ok(End::Lost(e)),
                },
            }
        }
    }

    fn on_event(&mut self, ev: Event, at: Instant) {
        match ev {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                self.window.assigned(pkid, at.into_std());
                self.awaiting_since.get_or_insert_with(Instant::now);
            }
            Event::Outgoing(Outgoing::PingReq) => {
                self.awaiting_since.get_or_insert_with(Instant::now);
            }
            Event::Incoming(p) => {
                if let Packet::PubAck(ack) = &p {
                    self.on_puback(ack, at);
                }
                self.awaiting_since = (!self.window.is_empty()).then(Instant::now);
            }
            _ => {}
        }
    }

    fn on_puback(&mut self, ack: &PubAck, at: Instant) {
        if let Some(d) = self.window.ack_latency(ack.pkid, at.into_std()) {
            self.ctx.metrics.observe_puback(d);
            self.sizing.on_ack(d);
        }
        if ack.reason != PubAckReason::Success {
            self.on_refused(ack);
            return;
        }
        if let Some((class, id, n)) = self.window.acked(ack.pkid) {
            self.refusals.delivered(class);
            if self.me == 0 {
                self.ctx.metrics.add_forwarded(class, n);
            }
            self.ctx
                .metrics
                .region(&self.u.name, |r| r.forwarded[class.index()] += n);
            self.acked[class.index()] = id.clone();
            self.cursors.moved(class, id, n);
        }
    }

    /// The broker answered a batch with a failure reason: not delivered. Everything of its
    /// class from it on is sent again (the hub stores each id once) after a pause.
    fn on_refused(&mut self, ack: &PubAck) {
        let Some(class) = self.window.refused(ack.pkid) else {
            return; // state or snapshot (retained: stored with or without a subscriber)
        };
        let i = class.index();
        self.sent[i] = self
            .window
            .last_unacked_id(class)
            .unwrap_or_else(|| self.acked[i].clone());
        self.idle[i] = false;
        self.ctx.metrics.region(&self.u.name, |r| r.refused += 1);
        let delay = self.refusals.refused(class, std::time::Instant::now());
        if let Some(suppressed) = self.refused_log.check("refused") {
            let why = if ack.reason == PubAckReason::NoMatchingSubscribers {
                "no receiver is subscribed on the hub broker"
            } else {
                "the hub broker refused it"
            };
            warn!(region = %self.u.name, class = %class, reason = ?ack.reason, retry_in = ?delay, suppressed,
                "batch not delivered ({why}); it stays in the outbox and is sent again");
        }
    }

    /// SPEC §2: wait up to 5 s for in-flight acknowledgements, say offline, disconnect.
    async fn shutdown(&mut self, el: &mut Events) -> End {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while !self.window.is_empty() {
            tokio::select! {
                _ = sleep_until(deadline) => {
                    warn!(in_flight = self.window.len(), "shutdown: hub did not acknowledge everything in time; those events stay in the outbox");
                    break;
                }
                (at, ev) = el.next() => match ev {
                    Ok(ev) => self.on_event(ev, at),
                    Err(_) => break,
                }
            }
        }
        let _ = self.client.try_publish(
            region_topic(self.u, &self.ctx.settings.gateway_id, "state"),
            QoS::AtLeastOnce,
            true,
            r#"{"state":"offline"}"#,
        );
        let _ = self.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let (_, Ok(ev)) = el.next().await {
                if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
        End::Shutdown
    }
}
