//! The delivery trait: how a queued message leaves the gateway for one device.
//!
//! The dispatcher ([`super::dispatch`]) owns the queue in Redis and calls [`Deliver::submit`]
//! with the head message of a device that is online, one message per device at a time (so
//! order per device is kept). A transport reports back on its [`Reporter`]: `Sent` when the
//! message left the gateway (e.g. the device broker's PUBACK), `Delivered` when the device
//! acknowledged it, `Failed(reason)` when it never will, `Unsent` when it handed the message
//! back untouched (its link went down first: queued again, no receipt). The first report
//! after a submit lets the device's next message go; `Delivered` or `Failed` may still follow
//! a `Sent`.
//!
//! # Transports
//! - [`super::mqtt`]: the device broker (`meshtastic`, `json`, `owntracks`).
//! - [`super::radio`]: Meshtastic radios on USB (`meshtastic-serial`): a routing ack is
//!   `Delivered`, a routing error `Failed("MAX_RETRANSMIT")`, no ack before the profile's
//!   `ack_timeout` `Sent`.
//! - [`super::tak`]: TAK contacts (`tak`): `Sent` once the GeoChat is on a connected TAK
//!   link's queue, `Delivered` on the contact's `b-t-f-d` receipt.
//!
//! # Plugging in a transport
//! 1. Add the profile kind to [`crate::config::profile::DownlinkKind`] (and its checks; a text
//!    limit known up front, like Meshtastic's 233 bytes, goes in [`super::accept`] so the
//!    message fails at once instead of waiting).
//! 2. Implement [`Deliver`]: `handles` names the kinds, `reachable` says whether the link to
//!    that device is up (the dispatcher keeps the message queued otherwise), `submit` hands
//!    the [`Job`] to the transport's own task without waiting — e.g. `try_send` on the
//!    task's `mpsc` channel; a full channel is [`Refused::Unreachable`], which keeps the
//!    message queued and retries it shortly. `patience` is how long the dispatcher waits for
//!    the first report before it sends the message again.
//! 3. The task reports with [`Reporter::report`].
//! 4. Register it in [`super::transports`].
//!
//! A transport that is a task reading an `mpsc` channel with one link needs no `Deliver` impl
//! of its own: [`ChannelDeliver`] is one.
//! Reports name `(msg_id, dev)`; a stale or repeated one is ignored, so a transport may report
//! after a restart without harm. Receipts and their exactly-once delivery are the dispatcher's.

use crate::config::profile::DownlinkKind;
use crate::config::Profile;
use outpost_proto::down::Kind;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a submitted message may go without any report before it is queued again (sent
/// once more), unless the transport's [`Deliver::patience`] says otherwise.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// One message for one device, ready to go out.
#[derive(Debug, Clone)]
pub struct Job {
    pub msg_id: String,
    pub dev: String,
    pub text: String,
    pub kind: Kind,
    /// The device's profile (its `[downlink]` says how).
    pub profile: Arc<Profile>,
    /// The MQTT topic of the device's latest report (empty for serial devices).
    pub topic: String,
}

/// Why a job was not taken.
#[derive(Debug)]
pub enum Refused {
    /// Not now (link down, transport busy): stays queued, retried later.
    Unreachable(Box<Job>),
    /// Never (e.g. `too_long`, no node number): receipt `failed` with this reason.
    Invalid(Box<Job>, String),
}

/// What became of a submitted message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent,
    Delivered,
    Failed(String),
    /// Handed back untouched (the link went down before it left): queued again, no receipt.
    Unsent,
}

/// A transport's report. `dev` may be unknown (an acknowledgement naming only the msg_id):
/// then every device the message was sent to and not yet settled is meant.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub msg_id: String,
    pub dev: Option<String>,
    pub outcome: Outcome,
}

/// Where transports send their reports (bounded: reports are one per message).
#[derive(Clone)]
pub struct Reporter(pub(super) mpsc::Sender<Report>);

impl Reporter {
    /// Reports an outcome; waits only if the dispatcher is far behind.
    pub async fn report(&self, msg_id: &str, dev: Option<&str>, outcome: Outcome) {
        let _ = self
            .0
            .send(Report {
                msg_id: msg_id.to_string(),
                dev: dev.map(str::to_string),
                outcome,
            })
            .await;
    }

    /// As [`Reporter::report`], from synchronous code; `false` if the channel is full.
    pub fn try_report(&self, msg_id: &str, dev: Option<&str>, outcome: Outcome) -> bool {
        self.0
            .try_send(Report {
                msg_id: msg_id.to_string(),
                dev: dev.map(str::to_string),
                outcome,
            })
            .is_ok()
    }
}

/// A way out to devices; see the module docs.
pub trait Deliver: Send + Sync {
    /// For logs.
    fn name(&self) -> &'static str;
    /// True for the profile downlink kinds this transport carries.
    fn handles(&self, kind: DownlinkKind) -> bool;
    /// True while `dev` can be reached now (e.g. the device broker is connected).
    fn reachable(&self, dev: &str) -> bool;
    /// Hands `job` over without waiting.
    fn submit(&self, job: Job) -> Result<(), Refused>;
    /// How long after submitting `job` its first report may take (e.g. a radio's ack
    /// timeout); past it the message is queued and sent again.
    fn patience(&self, _job: &Job) -> Duration {
        PATIENCE
    }
}

/// A [`Deliver`] that hands jobs to a task over a bounded channel: the task sets `up` while its
/// link works and reports on its [`Reporter`]. A full or closed channel keeps the message
/// queued (retried on the next turn).
pub struct ChannelDeliver {
    name: &'static str,
    kinds: Vec<DownlinkKind>,
    tx: mpsc::Sender<Job>,
    up: Arc<AtomicBool>,
}

impl ChannelDeliver {
    /// A transport `name` for `kinds`, feeding `tx`; reachable while `up` is set.
    pub fn new(
        name: &'static str,
        kinds: Vec<DownlinkKind>,
        tx: mpsc::Sender<Job>,
        up: Arc<AtomicBool>,
    ) -> Self {
        ChannelDeliver {
            name,
            kinds,
            tx,
            up,
        }
    }
}

impl Deliver for ChannelDeliver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn handles(&self, kind: DownlinkKind) -> bool {
        self.kinds.contains(&kind)
    }

    fn reachable(&self, _dev: &str) -> bool {
        self.up.load(Relaxed) && !self.tx.is_closed()
    }

    fn submit(&self, job: Job) -> Result<(), Refused> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => {
                Refused::Unreachable(Box::new(j))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn job(id: &str) -> Job {
        let p = "name = \"p\"\ndescription = \"d\"\nversion = 1\ndecoder = \"meshtastic\"\n[mqtt]\ntopic = \"msh/#\"\n[downlink]\ntype = \"meshtastic\"\n";
        Job {
            msg_id: id.into(),
            dev: "!0000002a".into(),
            text: "hi".into(),
            kind: Kind::Text,
            profile: Arc::new(Profile::parse(Path::new("p.toml"), p).unwrap()),
            topic: String::new(),
        }
    }

    #[test]
    fn a_full_channel_hands_the_job_back() {
        let (tx, mut rx) = mpsc::channel(1);
        let up = Arc::new(AtomicBool::new(false));
        let d = ChannelDeliver::new("serial", vec![DownlinkKind::Meshtastic], tx, up.clone());
        assert!(d.handles(DownlinkKind::Meshtastic) && !d.handles(DownlinkKind::Json));
        assert!(!d.reachable("!0000002a"), "link not up yet");
        up.store(true, Relaxed);
        assert!(d.reachable("!0000002a"));
        assert!(d.submit(job("a")).is_ok());
        match d.submit(job("b")) {
            Err(Refused::Unreachable(j)) => assert_eq!(j.msg_id, "b"),
            other => panic!("{other:?}"),
        }
        assert_eq!(rx.try_recv().unwrap().msg_id, "a");
        drop(rx);
        assert!(!d.reachable("!0000002a"), "task gone");
    }
}
