//! The dispatcher: one task that moves queued messages out, device by device, in order.
//!
//! Each turn it expires what is past its expiry (receipt `expired`), then for every device with
//! a queue takes the head message if the device is online and its transport reachable, marks
//! it `sending` and submits it. Reports from transports move it on (`sent`, `delivered`,
//! `failed`) with their receipts; only then does the device's next message go. Every move is
//! one atomic script call with its receipt (`store/down.lua`), so a receipt goes out once.

use super::accept::Profiles;
use super::deliver::{Deliver, Job, Outcome, Refused, Report, PATIENCE};
use crate::context::Context;
use crate::event::ReceiptState;
use crate::store::down::{receipt_json, Queued};
use crate::store::StoreError;
use crate::util::ratelimit::LogGate;
use chrono::Utc;
use outpost_proto::down::Kind;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// How often queues are looked at (a new message, a device coming online, an expiry).
const TICK: Duration = Duration::from_millis(200);

/// The dispatcher's state.
pub struct Dispatcher {
    ctx: Context,
    profiles: Arc<Profiles>,
    transports: Vec<Arc<dyn Deliver>>,
    reports: mpsc::Receiver<Report>,
    /// Reports not yet recorded (Redis was down): retried next turn, in order.
    unrecorded: VecDeque<Report>,
    /// Until when each in-flight (msg_id, dev) may go without a report (its transport's
    /// patience): a transport that never reports (a lost connection, a bug) must not hold the
    /// device's queue forever.
    submitted: HashMap<(String, String), Instant>,
    /// Receipts written so far, as last seen: more means some were written by another process
    /// (`outpost send`), which cannot wake the uplink itself.
    receipts_seen: Option<u64>,
    gate: LogGate,
}

impl Dispatcher {
    pub fn new(
        ctx: Context,
        profiles: Arc<Profiles>,
        transports: Vec<Arc<dyn Deliver>>,
        reports: mpsc::Receiver<Report>,
    ) -> Self {
        Dispatcher {
            ctx,
            profiles,
            transports,
            reports,
            unrecorded: VecDeque::new(),
            submitted: HashMap::new(),
            receipts_seen: None,
            gate: LogGate::default(),
        }
    }

    /// Runs until cancelled.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        let mut recovered = false;
        loop {
            tokio::select! {
                _ = self.ctx.token.cancelled() => break,
                Some(r) = self.reports.recv() => self.unrecorded.push_back(r),
                _ = tick.tick() => {}
            }
            let result = async {
                if !recovered {
                    self.recover().await?;
                    recovered = true;
                }
                self.record_reports().await?;
                // One round trip for what every turn looks at (a turn at idle used to take
                // three: expiry, pending devices, receipts).
                let turn = self
                    .ctx
                    .store
                    .down_turn(Utc::now().timestamp_millis(), 256)
                    .await?;
                self.expire(turn.expired).await?;
                self.dispatch(turn.pending).await?;
                self.wake_for_receipts(turn.receipts);
                Ok::<(), StoreError>(())
            }
            .await;
            if let Err(e) = result {
                if let Some(s) = self.gate.check("down-redis") {
                    warn!(error = %e, suppressed = s, "downlink: redis unavailable; messages wait");
                }
            }
        }
    }

    /// Wakes the uplink when receipts were written since the last look. The count is read at
    /// the start of a turn, so this turn's own moves show up in the next one's: one extra wake
    /// after downlink activity, which finds what those moves already woke it for.
    fn wake_for_receipts(&mut self, n: u64) {
        if self.receipts_seen.is_some_and(|seen| n > seen) {
            self.ctx.outbox.changed();
        }
        self.receipts_seen = Some(n);
    }

    /// After a restart, a message marked `sending` may or may not have gone out; send it
    /// again (at least once to the device; the window is one publish round trip).
    async fn recover(&mut self) -> Result<(), StoreError> {
        for dev in self.ctx.store.down_pending_devices().await? {
            for q in self.ctx.store.down_queue(&dev, 1).await? {
                if q.state == "sending" {
                    info!(msg_id = %q.msg_id, dev = %dev, "resending a message cut off by a restart");
                    self.ctx
                        .store
                        .down_move(&q.msg_id, &dev, &["sending"], "queued", None)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn record_reports(&mut self) -> Result<(), StoreError> {
        while let Ok(r) = self.reports.try_recv() {
            self.unrecorded.push_back(r);
        }
        while let Some(r) = self.unrecorded.front().cloned() {
            // A report naming a device the message is not for (e.g. an acknowledgement topic
            // whose id differs from the device id) counts for every device it was sent to.
            let known = match &r.dev {
                Some(d) => self
                    .ctx
                    .store
                    .down_states(&r.msg_id)
                    .await?
                    .iter()
                    .any(|(x, _)| x == d),
                None => false,
            };
            let devs = match &r.dev {
                Some(d) if known => vec![d.clone()],
                _ => self
                    .ctx
                    .store
                    .down_states(&r.msg_id)
                    .await?
                    .into_iter()
                    .filter(|(_, st)| st == "sending" || st == "sent")
                    .map(|(d, _)| d)
                    .collect(),
            };
            for dev in devs {
                self.record(&r.msg_id, &dev, &r.outcome).await?;
            }
            self.unrecorded.pop_front();
        }
        Ok(())
    }

    async fn record(&mut self, msg_id: &str, dev: &str, o: &Outcome) -> Result<(), StoreError> {
        self.submitted
            .remove(&(msg_id.to_string(), dev.to_string()));
        let (from, state, reason): (&[&str], _, _) = match o {
            Outcome::Unsent => {
                // Back in the queue without a receipt: the device saw nothing.
                self.ctx
                    .store
                    .down_move(msg_id, dev, &["sending"], "queued", None)
                    .await?;
                return Ok(());
            }
            Outcome::Sent => (&["sending"], ReceiptState::Sent, None),
            Outcome::Delivered => (&["sending", "sent"], ReceiptState::Delivered, None),
            Outcome::Failed(r) => (&["sending", "sent"], ReceiptState::Failed, Some(r.as_str())),
        };
        self.moved(msg_id, dev, from, state, reason).await
    }

    /// Moves (msg_id, dev) to `state` with its receipt; counts and wakes the uplink.
    async fn moved(
        &self,
        msg_id: &str,
        dev: &str,
        from: &[&str],
        state: ReceiptState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let receipt = receipt_json(msg_id, dev, state, reason, Utc::now());
        let was = self
            .ctx
            .store
            .down_move(msg_id, dev, from, state.as_str(), Some(receipt))
            .await?;
        if from.contains(&was.as_str()) {
            debug!(%msg_id, %dev, from = %was, to = state.as_str(), ?reason, "downlink message moved");
            self.ctx.outbox.changed();
        }
        Ok(())
    }

    async fn expire(&self, expired: Vec<(String, String)>) -> Result<(), StoreError> {
        for (msg_id, dev) in expired {
            self.moved(
                &msg_id,
                &dev,
                &["queued", "sending"],
                ReceiptState::Expired,
                None,
            )
            .await?;
        }
        Ok(())
    }

    /// Each device's head message (read now: `pending` may name a device whose queue this
    /// turn's expiry just emptied).
    async fn dispatch(&mut self, pending: Vec<String>) -> Result<(), StoreError> {
        for dev in pending {
            let Some(head) = self.ctx.store.down_queue(&dev, 1).await?.pop() else {
                continue;
            };
            match head.state.as_str() {
                "queued" => self.try_send(head).await?,
                "sending" => self.check_stuck(&head).await?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Queues a message again whose transport never reported within its patience (one
    /// found `sending` without a record of its submit, e.g. after a reload: [`PATIENCE`]).
    async fn check_stuck(&mut self, q: &Queued) -> Result<(), StoreError> {
        let key = (q.msg_id.clone(), q.dev.clone());
        let until = *self
            .submitted
            .entry(key.clone())
            .or_insert_with(|| Instant::now() + PATIENCE);
        if Instant::now() < until {
            return Ok(());
        }
        warn!(msg_id = %q.msg_id, dev = %q.dev, "downlink: no report from the transport; sending again");
        self.submitted.remove(&key);
        self.ctx
            .store
            .down_move(&q.msg_id, &q.dev, &["sending"], "queued", None)
            .await?;
        Ok(())
    }

    /// Submits the head message of a device if it can go now.
    async fn try_send(&mut self, q: Queued) -> Result<(), StoreError> {
        let Some(facts) = self.ctx.store.device_facts(&q.dev).await? else {
            return Ok(());
        };
        if !facts.online {
            return Ok(());
        }
        let Some(profile) = self.profiles.get(&facts.profile).cloned() else {
            return Ok(());
        };
        let Some(kind) = profile.downlink().map(|d| *d.kind.get_ref()) else {
            return Ok(());
        };
        let Some(t) = self.transports.iter().find(|t| t.handles(kind)).cloned() else {
            return Ok(());
        };
        if !t.reachable(&q.dev) {
            return Ok(());
        }
        let job = Job {
            msg_id: q.msg_id.clone(),
            dev: q.dev.clone(),
            text: q.text,
            kind: if q.kind == "locate" {
                Kind::Locate
            } else {
                Kind::Text
            },
            profile,
            topic: facts.topic,
        };
        let st = &self.ctx.store;
        if st
            .down_move(&q.msg_id, &q.dev, &["queued"], "sending", None)
            .await?
            != "queued"
        {
            return Ok(());
        }
        let until = Instant::now() + t.patience(&job);
        self.submitted
            .insert((q.msg_id.clone(), q.dev.clone()), until);
        let result = t.submit(job);
        if result.is_err() {
            self.submitted.remove(&(q.msg_id.clone(), q.dev.clone()));
        }
        match result {
            Ok(()) => {
                debug!(msg_id = %q.msg_id, dev = %q.dev, via = t.name(), "downlink message submitted")
            }
            Err(Refused::Unreachable(_)) => {
                st.down_move(&q.msg_id, &q.dev, &["sending"], "queued", None)
                    .await?;
            }
            Err(Refused::Invalid(_, reason)) => {
                self.moved(
                    &q.msg_id,
                    &q.dev,
                    &["sending"],
                    ReceiptState::Failed,
                    Some(&reason),
                )
                .await?;
            }
        }
        Ok(())
    }
}
