//! The serial Meshtastic transport (`[downlink] type = "meshtastic-serial"`, SPEC §8/§11): a
//! message to a mesh node goes out as a `ToRadio` text with `want_ack` through the radio on
//! USB that last heard the node.
//!
//! The radio tasks (`[[serial]]` components) and the downlink (its own component) are started
//! and reloaded independently, so they meet in [`Radios`], one per process in the
//! [`crate::context::Context`]: each radio task [`Radios::attach`]es under its device name and
//! records every node it hears; [`RadioDeliver`] routes jobs by that. All radios report into one
//! channel owned here, so a report made while the downlink restarts waits for the next one.
//! Outcomes map one to one: the routing ack is `delivered`, a NAK `failed` with the mesh's
//! reason, no ack within the profile's `ack_timeout` `sent`, a text still waiting when the
//! port closed `unsent` (queued again).

use super::deliver::{Deliver, Job, Outcome, Refused, Reporter, PATIENCE};
use crate::config::profile::DownlinkKind;
use crate::decode::meshtastic_serial::downlink::Outcome as RadioOutcome;
use crate::ingest::meshtastic_serial::{self as radio_task, RadioEnds, TextReport, TextRequest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Texts waiting for one radio (the dispatcher sends one per device at a time).
const REQUESTS: usize = 64;
/// Reports of every radio not yet taken by the downlink (a full channel drops one, counted by
/// the radio task as `radio_report_full`; the dispatcher then sends it again after its patience).
const REPORTS: usize = 1024;
/// Nodes remembered with the radio that heard them (a mesh has a few hundred at most).
const MAX_HEARD: usize = 16_384;

struct Slot {
    requests: mpsc::Sender<TextRequest>,
    online: Arc<AtomicBool>,
}

impl Slot {
    fn up(&self) -> bool {
        self.online.load(Relaxed) && !self.requests.is_closed()
    }
}

#[derive(Default)]
struct Inner {
    /// By `[[serial]] device` name.
    radios: HashMap<String, Slot>,
    /// Node (`!a1b2c3d4`) → the radio that heard it last.
    heard: HashMap<String, String>,
}

/// The process's radios (see the module docs).
pub struct Radios {
    inner: Mutex<Inner>,
    reports_tx: mpsc::Sender<TextReport>,
    reports_rx: tokio::sync::Mutex<mpsc::Receiver<TextReport>>,
}

impl Default for Radios {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(REPORTS);
        Radios {
            inner: Mutex::new(Inner::default()),
            reports_tx: tx,
            reports_rx: tokio::sync::Mutex::new(rx),
        }
    }
}

impl Radios {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by radio `name`'s task when it starts: its downlink ends. A task restarted under
    /// the same name replaces the old slot.
    pub fn attach(&self, name: &str) -> RadioEnds {
        let (tx, rx) = mpsc::channel(REQUESTS);
        let online = Arc::new(AtomicBool::new(false));
        self.lock().radios.insert(
            name.to_string(),
            Slot {
                requests: tx,
                online: online.clone(),
            },
        );
        radio_task::ends(rx, self.reports_tx.clone(), online)
    }

    /// Radio `radio` heard node `dev`.
    pub fn heard(&self, dev: &str, radio: &str) {
        let mut g = self.lock();
        if g.heard.get(dev).is_some_and(|r| r == radio) {
            return;
        }
        if g.heard.len() >= MAX_HEARD {
            // Forget the lot rather than grow: a node is routed again when next heard, and
            // with one radio the fallback below routes it anyway.
            g.heard.clear();
        }
        g.heard.insert(dev.to_string(), radio.to_string());
    }

    /// The request channel for `dev` while its radio is up: the radio that heard it, else
    /// (after a restart, before the node is heard again, or when that radio's task is gone)
    /// the only radio there is.
    fn route(&self, dev: &str) -> Option<mpsc::Sender<TextRequest>> {
        let g = self.lock();
        let heard = g.heard.get(dev).and_then(|r| g.radios.get(r));
        let slot = match heard.filter(|s| !s.requests.is_closed()) {
            Some(s) => s,
            None => {
                let mut live = g.radios.values().filter(|s| !s.requests.is_closed());
                match (live.next(), live.next()) {
                    (Some(s), None) => s,
                    _ => return None,
                }
            }
        };
        slot.up().then(|| slot.requests.clone())
    }
}

/// The transport: routes jobs to radios, forwards their reports to the dispatcher.
pub struct RadioDeliver {
    radios: Arc<Radios>,
}

impl RadioDeliver {
    /// Starts forwarding every radio's reports to `reporter` until `token` is cancelled.
    pub fn start(radios: Arc<Radios>, reporter: Reporter, token: CancellationToken) -> Self {
        tokio::spawn(forward(radios.clone(), reporter, token));
        RadioDeliver { radios }
    }
}

impl Deliver for RadioDeliver {
    fn name(&self) -> &'static str {
        "meshtastic_serial"
    }

    fn handles(&self, kind: DownlinkKind) -> bool {
        kind == DownlinkKind::MeshtasticSerial
    }

    fn reachable(&self, dev: &str) -> bool {
        self.radios.route(dev).is_some()
    }

    fn submit(&self, job: Job) -> Result<(), Refused> {
        if job.kind != outpost_proto::down::Kind::Text {
            return Err(Refused::Invalid(Box::new(job), "no_locate_downlink".into()));
        }
        let Some(tx) = self.radios.route(&job.dev) else {
            return Err(Refused::Unreachable(Box::new(job)));
        };
        let rq = TextRequest {
            msg_id: job.msg_id.clone(),
            to: job.dev.clone(),
            text: job.text.clone(),
        };
        tx.try_send(rq)
            .map_err(|_| Refused::Unreachable(Box::new(job)))
    }

    fn patience(&self, job: &Job) -> Duration {
        // The radio reports only at the ack or its timeout; it may also be busy with texts
        // for other nodes first.
        job.profile.meshtastic().ack_timeout + PATIENCE
    }
}

/// Hands each radio report to the dispatcher (one forwarder at a time holds the channel).
async fn forward(radios: Arc<Radios>, reporter: Reporter, token: CancellationToken) {
    let mut rx = tokio::select! {
        _ = token.cancelled() => return,
        g = radios.reports_rx.lock() => g,
    };
    loop {
        let r = tokio::select! {
            _ = token.cancelled() => return,
            r = rx.recv() => match r { Some(r) => r, None => return },
        };
        if r.msg_id.is_empty() {
            warn!(
                packet_id = r.packet_id,
                "radio report without a message; ignored"
            );
            continue;
        }
        let outcome = match r.outcome {
            RadioOutcome::Delivered => Outcome::Delivered,
            RadioOutcome::Failed(reason) => Outcome::Failed(reason),
            RadioOutcome::Sent => Outcome::Sent,
            RadioOutcome::Unsent => Outcome::Unsent,
        };
        debug!(msg_id = %r.msg_id, dev = %r.to, ?outcome, "radio report");
        reporter.report(&r.msg_id, Some(&r.to), outcome).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_go_to_the_radio_that_heard_the_node_else_the_only_one() {
        let radios = Radios::default();
        let up = |name: &str| radios.lock().radios[name].online.store(true, Relaxed);
        assert!(radios.route("!0000002a").is_none(), "no radio");
        let a = radios.attach("radio-a");
        assert!(radios.route("!0000002a").is_none(), "handshake not done");
        up("radio-a");
        assert!(radios.route("!0000002a").is_some(), "the only radio");
        let b = radios.attach("radio-b");
        assert!(
            radios.route("!0000002a").is_none(),
            "two radios, node not heard"
        );
        radios.heard("!0000002a", "radio-b");
        assert!(radios.route("!0000002a").is_none(), "its radio is not up");
        up("radio-b");
        let tx = radios.route("!0000002a").unwrap();
        assert!(tx.same_channel(&radios.lock().radios["radio-b"].requests));
        drop(b);
        let tx = radios
            .route("!0000002a")
            .expect("its radio's task is gone: the only one left");
        assert!(tx.same_channel(&radios.lock().radios["radio-a"].requests));
        drop(a);
        assert!(radios.route("!0000002a").is_none());
    }
}
