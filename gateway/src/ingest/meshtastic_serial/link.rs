//! The radio task's downlink ends (SPEC §8): texts in, one final report out per text.
//!
//! [`link`] makes both ends with channels of their own (tests, tools); the gateway's
//! downlink registry ([`crate::downlink::radio`]) builds the task's end with [`ends`] instead,
//! so every radio reports into one channel that outlives reloads of either side.

use crate::decode::meshtastic_serial::downlink::Outcome;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A text for a mesh node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextRequest {
    /// The caller's id of this message (e.g. the §8 `msg_id`), echoed in its report.
    pub msg_id: String,
    /// The node: `!a1b2c3d4`, a node number, or `*` for a broadcast.
    pub to: String,
    pub text: String,
}

/// What became of one [`TextRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextReport {
    pub msg_id: String,
    /// The request's `to`, as given.
    pub to: String,
    /// The mesh packet id it went out as (0 if it never went out).
    pub packet_id: u32,
    pub outcome: Outcome,
}

/// The caller's side of a radio's downlink.
#[derive(Debug)]
pub struct RadioLink {
    pub requests: mpsc::Sender<TextRequest>,
    pub reports: mpsc::Receiver<TextReport>,
    /// Set while the radio's port is open and its handshake done (texts go out at once).
    pub online: Arc<AtomicBool>,
}

/// The task's side of a radio's downlink.
#[derive(Debug)]
pub struct RadioEnds {
    pub(super) requests: mpsc::Receiver<TextRequest>,
    pub(super) reports: mpsc::Sender<TextReport>,
    pub(super) online: Arc<AtomicBool>,
    /// The caller dropped its request sender.
    pub(super) closed: bool,
}

/// A downlink pair whose channels each hold `capacity` messages (when full, the caller's send
/// waits: back-pressure, nothing dropped).
pub fn link(capacity: usize) -> (RadioLink, RadioEnds) {
    let (rq_tx, rq_rx) = mpsc::channel(capacity.max(1));
    let (rp_tx, rp_rx) = mpsc::channel(capacity.max(1));
    let online = Arc::new(AtomicBool::new(false));
    (
        RadioLink {
            requests: rq_tx,
            reports: rp_rx,
            online: online.clone(),
        },
        ends(rq_rx, rp_tx, online),
    )
}

/// The task's end from channels the caller made: it takes texts from `requests`, reports on
/// `reports` (never waiting: a full channel drops the report, counted) and keeps `online`.
pub fn ends(
    requests: mpsc::Receiver<TextRequest>,
    reports: mpsc::Sender<TextReport>,
    online: Arc<AtomicBool>,
) -> RadioEnds {
    RadioEnds {
        requests,
        reports,
        online,
        closed: false,
    }
}
