//! A Meshtastic radio on USB (`[[serial]]` with a `meshtastic-serial` profile, SPEC §11): the
//! port task. It owns the port; the protocol is sans-I/O in
//! [`crate::decode::meshtastic_serial`]. Per open: wake and `want_config_id` handshake, then
//! every packet the radio hears becomes events (device = the originating node, `!%08x`; the
//! radio itself, named by `[[serial]] device`, is kept present while it talks), a heartbeat
//! every `[meshtastic] heartbeat` (the firmware answers each with its queue status, so a live
//! radio is never silent for long), and texts to send are taken from a [`RadioLink`].
//!
//! Unplug and replug as for the other serial devices: end of file, a read or write error, or
//! `serial.no_data_timeout` of silence closes the port, the radio goes offline, and the port
//! is reopened with backoff. Texts still awaiting their ack when the port closes end `sent`.
//!
//! # Downlink API (SPEC §8; the gateway's transport is [`crate::downlink::radio`])
//! [`link`] (or [`ends`]) makes the channel ends: the caller keeps a [`RadioLink`] (send
//! [`TextRequest`]s, receive [`TextReport`]s), [`run`] takes the [`RadioEnds`]. Requests are
//! taken only once the handshake is done; `online` says when that is. Every request gets
//! exactly one final report: `delivered` (acked by the destination, or by the mesh for a
//! broadcast), `failed` with the mesh's reason (`MAX_RETRANSMIT`, `NO_ROUTE`, …, or
//! `too_long` / `bad_node` before sending), `sent` (handed to the radio, no ack within
//! `[meshtastic] ack_timeout`), or `unsent` (still waiting in the channel when the port
//! closed: never written, the caller may send it again).

mod link;
pub use link::{ends, link, RadioEnds, RadioLink, TextReport, TextRequest};

use super::serial::{open_serial, DeviceState};
use crate::config::SerialDevice;
use crate::context::Context;
use crate::decode::meshtastic_serial::downlink::{self, Outcome, Pending};
use crate::decode::meshtastic_serial::framer::{Chunk, StreamFramer};
use crate::decode::meshtastic_serial::{heartbeat, Heard, Radio};
use crate::decode::Decoded;
use crate::event::Event;
use crate::store::IngestItem;
use crate::util::{backoff::Backoff, input_hash, ratelimit::LogGate};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

/// How often a talking radio refreshes its own presence when it produces no event.
const PRESENCE_REFRESH: Duration = Duration::from_secs(5);

/// Runs one radio until cancelled, with downlink `ends` (see the module docs).
#[instrument(skip_all, fields(device = %dev.device))]
pub async fn run(ctx: Context, dev: SerialDevice, mut ends: RadioEnds) -> anyhow::Result<()> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    let mut gate = LogGate::new(Duration::from_secs(60));
    let mut state = DeviceState::new(&dev);
    let mut pending = Pending::default();
    let mut ids = PacketIds::new();
    let mut msg_ids = HashMap::new();
    loop {
        match open_serial(&dev) {
            Ok(port) => {
                backoff.reset();
                info!(path = %dev.path.display(), "radio port open");
                let mut s = Session {
                    ctx: &ctx,
                    dev: &dev,
                    st: &mut state,
                    ends: &mut ends,
                    pending: &mut pending,
                    msg_ids: &mut msg_ids,
                    ids: &mut ids,
                };
                let reason = s.run(port).await;
                s.ends.online.store(false, Relaxed);
                s.give_up_pending().await;
                s.hand_back_waiting().await;
                if ctx.token.is_cancelled() {
                    break;
                }
                warn!(path = %dev.path.display(), %reason, "radio port closed; reopening");
                state.went_offline(&ctx).await;
            }
            Err(e) => {
                if let Some(s) = gate.check("open") {
                    warn!(path = %dev.path.display(), error = %e, suppressed = s, "cannot open radio port; retrying");
                }
                state.went_offline(&ctx).await;
            }
        }
        tokio::select! {
            _ = ctx.token.cancelled() => break,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
    Ok(())
}

/// Packet ids for texts: random start, then counting, never 0 (the firmware's own scheme).
struct PacketIds(u32);

impl PacketIds {
    fn new() -> Self {
        PacketIds(rand::random::<u32>() | 1)
    }
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1).max(1);
        self.0
    }
}

/// One open port.
struct Session<'a> {
    ctx: &'a Context,
    dev: &'a SerialDevice,
    st: &'a mut DeviceState,
    ends: &'a mut RadioEnds,
    pending: &'a mut Pending,
    /// packet id → the caller's (msg_id, to), for texts awaiting their ack.
    msg_ids: &'a mut HashMap<u32, (String, String)>,
    ids: &'a mut PacketIds,
}

/// What one read produced.
#[derive(Default)]
struct Batch {
    items: Vec<IngestItem>,
    drops: Vec<(String, u64)>,
    reports: Vec<(u32, Outcome)>,
    talking: bool,
    restart: bool,
}

impl Session<'_> {
    async fn run<P: AsyncRead + AsyncWrite + Unpin>(&mut self, port: P) -> String {
        let (mut rd, mut wr) = tokio::io::split(port);
        let opts = self.dev.profile.meshtastic();
        let decoder = match opts.decoder() {
            Ok(d) => d,
            Err(e) => return format!("profile keys: {e}"),
        };
        let mut radio = Radio::new(decoder, rand::random::<u32>() | 1);
        let mut framer = StreamFramer::default();
        let no_data = self
            .dev
            .profile
            .raw
            .serial
            .clone()
            .unwrap_or_default()
            .no_data_timeout;
        if let Err(e) = wr.write_all(&radio.start()).await {
            return format!("write: {e}");
        }
        let mut beat = tokio::time::interval_at(Instant::now() + opts.heartbeat, opts.heartbeat);
        let mut buf = [0u8; 1024];
        let mut last_data = Instant::now();
        loop {
            let ack_due = self.pending.next_deadline().map(Instant::from_std);
            let mut batch = Batch::default();
            tokio::select! {
                _ = self.ctx.token.cancelled() => return String::new(),
                _ = tokio::time::sleep_until(last_data + no_data) => return format!("no data for {no_data:?}"),
                _ = beat.tick() => {
                    if let Err(e) = wr.write_all(&heartbeat(0)).await {
                        return format!("write: {e}");
                    }
                }
                _ = sleep_until_opt(ack_due) => {
                    batch.reports = self.pending.expired(std::time::Instant::now());
                }
                rq = self.ends.requests.recv(), if radio.configured() && !self.ends.closed => match rq {
                    Some(rq) => {
                        if let Err(e) = self.send(&mut wr, rq, opts.ack_timeout).await {
                            return format!("write: {e}");
                        }
                    }
                    // The caller is gone: nothing more to send, keep receiving.
                    None => self.ends.closed = true,
                },
                r = rd.read(&mut buf) => match r {
                    Ok(0) => return "end of file (unplugged?)".into(),
                    Err(e) => return format!("read: {e}"),
                    Ok(n) => {
                        last_data = Instant::now();
                        framer.push(&buf[..n], &mut |c| self.chunk(&mut radio, c, &mut batch));
                    }
                }
            }
            if batch.restart {
                info!("radio rebooted; handshake again");
                if let Err(e) = wr.write_all(&radio.start()).await {
                    return format!("write: {e}");
                }
            }
            if !self.finish(batch).await {
                return String::new(); // shutting down during a Redis outage
            }
        }
    }

    /// One frame or text line.
    fn chunk(&mut self, radio: &mut Radio, c: Chunk, b: &mut Batch) {
        b.talking = true;
        let frame = match c {
            Chunk::Text(t) => {
                debug!(text = t, "radio debug output");
                return;
            }
            Chunk::Frame(f) => f,
        };
        match radio.on_frame(frame, Utc::now()) {
            Ok(Heard::Packet(d)) => self.items(d, frame, &mut b.items),
            Ok(Heard::Ack(ack)) => b.reports.extend(self.pending.on_ack(&ack)),
            Ok(Heard::Configured) => {
                self.ends.online.store(true, Relaxed);
                info!(node = ?radio.my_node().map(crate::decode::meshtastic_proto::packet::node_id), "radio handshake complete")
            }
            Ok(Heard::Rebooted) => {
                self.ends.online.store(false, Relaxed);
                b.restart = true;
            }
            Ok(Heard::Other) => {}
            Err(e) => {
                b.drops.push((e.reason().to_string(), 1));
                if let Some(s) = self.st.gate.check(e.reason()) {
                    warn!(reason = e.reason(), error = %e, suppressed = s, "radio frame dropped");
                }
            }
        }
    }

    /// A packet's events, one item per device (one packet names one node).
    fn items(&self, d: Decoded, frame: &[u8], out: &mut Vec<IngestItem>) {
        let mut by_dev: Vec<(String, Vec<Event>)> = Vec::new();
        for e in d.events {
            match by_dev.iter_mut().find(|(dev, _)| *dev == e.dev) {
                Some((_, v)) => v.push(e),
                None => by_dev.push((e.dev.clone(), vec![e])),
            }
        }
        let hash = input_hash(&[self.dev.device.as_bytes(), frame]);
        for (dev, events) in by_dev {
            // The downlink answers a node through the radio that heard it.
            self.ctx.radios.heard(&dev, &self.dev.device);
            out.push(IngestItem {
                dev,
                profile: self.dev.profile.name.clone(),
                presence_timeout: self.dev.profile.presence_timeout,
                events,
                dedup_key: d.dedup_key.clone(),
                input_hash: Some(hash),
                maybe_duplicate: false,
                slot: None,
                rx: Utc::now(),
                // A serial radio has no MQTT topic (the downlink reaches it over the port).
                topic: String::new(),
            });
        }
    }

    async fn send<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
        rq: TextRequest,
        timeout: Duration,
    ) -> std::io::Result<()> {
        let id = self.ids.next();
        let built = downlink::parse_node(&rq.to)
            .and_then(|to| Ok((to, downlink::send_text(to, &rq.text, id)?)));
        match built {
            Ok((to, frame)) => {
                wr.write_all(&frame).await?;
                self.pending
                    .sent(id, to, std::time::Instant::now(), timeout);
                self.msg_ids.insert(id, (rq.msg_id, rq.to));
            }
            Err(e) => {
                warn!(msg_id = %rq.msg_id, error = %e, "text not sent");
                self.report(TextReport {
                    msg_id: rq.msg_id,
                    to: rq.to,
                    packet_id: 0,
                    outcome: Outcome::Failed(e.reason().into()),
                })
                .await;
            }
        }
        Ok(())
    }

    /// Stores what a read produced, counts its drops, sends its reports. False only when
    /// cancelled during a Redis outage.
    async fn finish(&mut self, b: Batch) -> bool {
        for (r, n) in &b.drops {
            self.ctx.metrics.add_drop(r, *n);
        }
        if !b.drops.is_empty() {
            let _ = self.ctx.store.count_drops(&b.drops).await;
        }
        for (id, outcome) in b.reports {
            self.report_packet(id, outcome).await;
        }
        let refresh_due = self
            .st
            .last_refresh
            .is_none_or(|t| t.elapsed() >= PRESENCE_REFRESH);
        let mut items = b.items;
        if b.talking && (refresh_due || !items.is_empty()) {
            // The radio itself: present while it talks.
            items.push(self.st.item(Vec::new(), Utc::now()));
        }
        if items.is_empty() {
            return true;
        }
        if super::accept(self.ctx, &mut items).await.is_none() {
            return false;
        }
        self.st.present = true;
        self.st.last_refresh = Some(Instant::now());
        true
    }

    /// Hands a report to the caller. The radio task never waits on it (mesh traffic keeps
    /// flowing): a caller that does not drain its reports loses the newest, counted as drop
    /// `radio_report_full`; one that went away wants none.
    async fn report(&mut self, r: TextReport) {
        info!(msg_id = %r.msg_id, packet_id = r.packet_id, outcome = ?r.outcome, "text outcome");
        if let Err(mpsc::error::TrySendError::Full(r)) = self.ends.reports.try_send(r) {
            warn!(msg_id = %r.msg_id, "downlink report channel full; report dropped");
            self.ctx.metrics.add_drop("radio_report_full", 1);
        }
    }

    /// The port closed: texts still awaiting their ack were handed to the radio, no more.
    async fn give_up_pending(&mut self) {
        let far = std::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        for (id, outcome) in self.pending.expired(far) {
            self.report_packet(id, outcome).await;
        }
    }

    /// The port closed: texts not yet taken were never written; the caller may send them
    /// again (its queue keeps their order) rather than have them go out whenever the radio
    /// is back.
    async fn hand_back_waiting(&mut self) {
        while let Ok(rq) = self.ends.requests.try_recv() {
            self.report(TextReport {
                msg_id: rq.msg_id,
                to: rq.to,
                packet_id: 0,
                outcome: Outcome::Unsent,
            })
            .await;
        }
    }

    /// The report of sent packet `id`.
    async fn report_packet(&mut self, id: u32, outcome: Outcome) {
        let (msg_id, to) = self.msg_ids.remove(&id).unwrap_or_default();
        self.report(TextReport {
            msg_id,
            to,
            packet_id: id,
            outcome,
        })
        .await;
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
