//! The delivery trait: how a queued message leaves the gateway for one device.
//!
//! The dispatcher ([`super::dispatch`]) owns the queue in Redis and calls [`Deliver::submit`]
//! with the head message of a device that is online, one message per device at a time (so
//! order per device is kept). A transport reports back on its [`Reporter`]: `Sent` when the
//! message left the gateway (e.g. the device broker's PUBACK), `Delivered` when the device
//! acknowledged it, `Failed(reason)` when it never will. The first report after a submit lets
//! the device's next message go; `Delivered` or `Failed` may still follow a `Sent`.
//!
//! # Plugging in a transport (issue 13 `meshtastic-serial`, issue 14 `tak`)
//! 1. Add the profile kind to [`crate::config::profile::DownlinkKind`] (and its checks).
//! 2. Implement [`Deliver`]: `handles` names the kinds, `reachable` says whether the link to
//!    that device is up (the dispatcher keeps the message queued otherwise), `submit` hands
//!    the [`Job`] to the transport's own task without waiting — e.g. `try_send` on the
//!    serial task's `mpsc` channel; a full channel is [`Refused::Unreachable`], which keeps
//!    the message queued and retries it shortly.
//! 3. The task reports with [`Reporter::report`]: a Meshtastic routing ack is `Delivered`, a
//!    routing error `Failed("MAX_RETRANSMIT")`, no ack before its timeout `Sent`; a TAK
//!    `b-t-f-d` receipt is `Delivered`.
//! 4. Register it in [`super::transports`].
//! Reports name `(msg_id, dev)`; a stale or repeated one is ignored, so a transport may report
//! after a restart without harm. Receipts and their exactly-once delivery are the dispatcher's.

use crate::config::profile::DownlinkKind;
use crate::config::Profile;
use outpost_proto::down::Kind;
use std::sync::Arc;
use tokio::sync::mpsc;

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
    Unreachable(Job),
    /// Never (e.g. `too_long`, no node number): receipt `failed` with this reason.
    Invalid(Job, String),
}

/// What became of a submitted message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent,
    Delivered,
    Failed(String),
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
}
