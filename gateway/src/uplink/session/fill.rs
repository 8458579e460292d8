//! Filling the window: one read of every class per pass, cut into batches and published,
//! highest-priority class first; a class the broker refused waits (`Refusals`) while the
//! others go on.

use super::Session;
use crate::event::Class;
use crate::store::OutboxEntry;
use crate::uplink::feed::Taken;
use crate::uplink::region_topic;
use crate::uplink::window::{self, Batch};
use outpost_proto::batch;
use rumqttc::v5::mqttbytes::QoS;
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// Most batches read from the outbox in one round trip (bounds one reply's size).
const READ_BATCHES: usize = 16;

/// What [`Session::publish`] did with a read's entries.
enum Published {
    All,
    /// The window filled first.
    WindowFull,
    /// The request queue refused a batch.
    Refused,
}

impl Session<'_> {
    /// Whether `class` waits now: in its pause after a refusal, or probing with its one
    /// batch in flight.
    fn held(&self, class: Class) -> bool {
        self.refusals.paused(class, std::time::Instant::now())
            || (self.refusals.probing(class) && self.window.in_flight(class) > 0)
    }

    /// Events per batch of `class`: `batch_max_events`, or one while it probes after a
    /// refusal (a probe costs a metered link next to nothing while no receiver is there).
    fn per_batch(&self, class: Class) -> usize {
        if self.refusals.probing(class) {
            1
        } else {
            self.u.batch_max_events
        }
    }

    /// Publishes batches, highest-priority class first, while the window has room (its size
    /// from the round trip, its bytes within the memory bound).
    pub(super) async fn fill(&mut self) {
        if self.fill_blocked_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.fill_handed();
        while self.free_slots() > 0 {
            let Some(first) = Class::ALL
                .into_iter()
                .find(|c| !self.idle[c.index()] && !self.held(*c))
            else {
                return;
            };
            if !self.pass(first).await {
                return;
            }
        }
    }

    /// Batches the window may take now: its size from the round trip, none once its bytes reach
    /// the memory bound.
    fn free_slots(&self) -> usize {
        if self.window.bytes() >= window::MAX_BYTES {
            return 0;
        }
        self.sizing.size().saturating_sub(self.window.len())
    }

    /// Publishes what ingest handed over (`uplink::feed`) without reading it back, class by
    /// class in priority order, while every class before it is known to have nothing more in
    /// Redis; a class whose held entries do not follow what was sent is read instead, and
    /// nothing after it is taken before that read.
    fn fill_handed(&mut self) {
        for c in Class::ALL {
            let i = c.index();
            if self.held(c) {
                // Refused by the broker, it waits and the others go on (as in a pass); what it
                // holds is read once it may go again.
                if self.tap.holds(c) {
                    self.idle[i] = false;
                }
                continue;
            }
            if !self.idle[i] {
                return;
            }
            if self.refusals.probing(c) {
                // Sent one event at a time after a refusal: the pass does that.
                if self.tap.holds(c) {
                    self.idle[i] = false;
                    return;
                }
                continue;
            }
            let slots = self.free_slots();
            if slots == 0 {
                return;
            }
            match self
                .tap
                .take(c, &self.sent[i], slots * self.u.batch_max_events)
            {
                Taken::Nothing => {}
                Taken::Gap => {
                    self.idle[i] = false;
                    return;
                }
                Taken::Chain(entries) => {
                    if !matches!(self.publish(c, &entries), Published::All) {
                        // What was not published is read again from where `sent` stands.
                        self.idle[i] = false;
                        return;
                    }
                }
            }
        }
    }

    /// One read of every class in one snapshot and one round trip (a pass at a low rate used to
    /// take one round trip per class): the classes before `first` (read as empty since the
    /// last wake) one entry each, to look again; `first` for every free slot at once; the
    /// classes after it one batch each, used only while every class before them was read to
    /// its end. False when the pass must not be repeated now (Redis failed, or the request
    /// queue refused a batch).
    async fn pass(&mut self, first: Class) -> bool {
        let per = self.u.batch_max_events;
        let slots = self.free_slots().min(READ_BATCHES);
        let held: Vec<bool> = Class::ALL.into_iter().map(|c| self.held(c)).collect();
        let probing: Vec<bool> = Class::ALL
            .into_iter()
            .map(|c| self.refusals.probing(c))
            .collect();
        let count = |c: Class| match c.index().cmp(&first.index()) {
            _ if held[c.index()] || probing[c.index()] => 1,
            std::cmp::Ordering::Less => 1,
            std::cmp::Ordering::Equal => slots * per,
            std::cmp::Ordering::Greater => per.min(slots * per),
        };
        let reads: Vec<(Class, &str, usize)> = Class::ALL
            .into_iter()
            .map(|c| (c, self.sent[c.index()].as_str(), count(c)))
            .collect();
        let read = self.ctx.store.read_pass(&reads).await;
        let replies = match read {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "cannot read outbox; retrying in 1s");
                self.fill_blocked_until = Some(Instant::now() + Duration::from_secs(1));
                return false;
            }
        };
        for (c, entries) in Class::ALL.into_iter().zip(replies) {
            let i = c.index();
            if held[i] {
                continue; // refused by the broker: waits, and the others go on
            }
            if c.index() < first.index() {
                if !entries.is_empty() {
                    // It has entries now: the next pass reads it first.
                    self.idle[i] = false;
                    return true;
                }
                continue;
            }
            let exhausted = entries.len() < count(c);
            match self.publish(c, &entries) {
                Published::All => self.idle[i] = exhausted,
                Published::WindowFull => return true,
                Published::Refused => return false,
            }
            if !exhausted {
                return true; // more of this class waits: nothing lower goes before it
            }
        }
        true
    }

    /// Publishes `entries` of `class` as batches of up to `batch_max_events` while the window
    /// has room; what was not published is read again next pass.
    fn publish(&mut self, class: Class, entries: &[OutboxEntry]) -> Published {
        let i = class.index();
        let probing = self.refusals.probing(class);
        for chunk in entries.chunks(self.per_batch(class)) {
            if self.window.len() >= self.sizing.size()
                || (probing && self.window.in_flight(class) > 0)
            {
                self.idle[i] = false;
                return Published::WindowFull;
            }
            let last_id = chunk[chunk.len() - 1].id.clone();
            let payload = batch::payload(
                &self.ctx.settings.gateway_id,
                class,
                chunk,
                self.replay_upto[i],
            );
            let bytes = payload.len();
            let t = region_topic(
                self.u,
                &self.ctx.settings.gateway_id,
                &format!("up/{class}"),
            );
            if let Err(e) = self.client.try_publish(t, QoS::AtLeastOnce, false, payload) {
                // The request channel is sized above the window, so this is a bug, not load.
                warn!(error = %e, "uplink request queue refused a batch; will retry");
                self.idle[i] = false;
                return Published::Refused;
            }
            self.window.published(Batch {
                class,
                last_id: last_id.clone(),
                len: chunk.len(),
                bytes,
            });
            self.sent[i] = last_id;
        }
        Published::All
    }
}
