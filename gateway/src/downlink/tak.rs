//! The TAK transport (`[downlink] type = "tak"`, SPEC §8/§10): a message to TAK user
//! `tak:<uid>` goes out as a GeoChat (`b-t-f`) from the gateway to contact `<uid>` on the
//! `[[tak]]` outputs (`crate::tak::Feed::send_chat`), `__chat@messageId` = the msg_id.
//!
//! CoT has no acknowledgement of its own, so `sent` means the chat is on the send queue of a
//! connected TAK link, where it is never dropped and is written again after a reconnect if
//! the connection broke just after writing it. `delivered` is the contact's `b-t-f-d`
//! receipt naming the msg_id. With no output connected the contact is unreachable: the
//! message stays queued (and may expire) until a link is back.

use super::deliver::{Deliver, Job, Outcome, Refused, Reporter};
use crate::config::profile::DownlinkKind;
use crate::context::Context;
use outpost_cot::events::{tak_dev, TAK_DEV_PREFIX};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, warn};

/// Jobs waiting for the task (each is a queue push and a Redis read).
const JOBS: usize = 256;

/// The transport: hands jobs to its task.
pub struct TakDeliver {
    ctx: Context,
    tx: mpsc::Sender<Job>,
}

impl TakDeliver {
    /// Starts the task: it sends the chats and turns TAK receipts into reports, until the
    /// downlink stops.
    pub fn start(ctx: &Context, reporter: Reporter) -> Self {
        let (tx, rx) = mpsc::channel(JOBS);
        let receipts = ctx.tak.receipts();
        tokio::spawn(run(ctx.clone(), rx, receipts, reporter));
        TakDeliver {
            ctx: ctx.clone(),
            tx,
        }
    }
}

impl Deliver for TakDeliver {
    fn name(&self) -> &'static str {
        "tak"
    }

    fn handles(&self, kind: DownlinkKind) -> bool {
        kind == DownlinkKind::Tak
    }

    fn reachable(&self, _dev: &str) -> bool {
        self.ctx.tak.connected() && !self.tx.is_closed()
    }

    fn submit(&self, job: Job) -> Result<(), Refused> {
        if job.kind != outpost_proto::down::Kind::Text {
            return Err(Refused::Invalid(Box::new(job), "no_locate_downlink".into()));
        }
        if !job.dev.starts_with(TAK_DEV_PREFIX) {
            return Err(Refused::Invalid(Box::new(job), "not_a_tak_contact".into()));
        }
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => {
                Refused::Unreachable(Box::new(j))
            }
        })
    }
}

async fn run(
    ctx: Context,
    mut jobs: mpsc::Receiver<Job>,
    mut receipts: broadcast::Receiver<crate::tak::Delivered>,
    reporter: Reporter,
) {
    loop {
        tokio::select! {
            _ = ctx.token.cancelled() => return,
            j = jobs.recv() => match j {
                Some(j) => send(&ctx, j, &reporter).await,
                None => return,
            },
            d = receipts.recv() => match d {
                Ok(d) => {
                    // The receipt's sender is the contact; without one, every device the
                    // message went to is meant.
                    let dev = d.from.as_deref().map(tak_dev);
                    reporter.report(&d.msg_id, dev.as_deref(), Outcome::Delivered).await;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "TAK delivery receipts came faster than recorded; some missed");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Queues the GeoChat of `job` on the TAK outputs and reports `sent` (or hands it back when
/// no output is connected any more).
async fn send(ctx: &Context, job: Job, reporter: &Reporter) {
    let Some(uid) = job.dev.strip_prefix(TAK_DEV_PREFIX) else {
        return;
    };
    if !ctx.tak.connected() {
        return reporter
            .report(&job.msg_id, Some(&job.dev), Outcome::Unsent)
            .await;
    }
    // The contact's callsign (its PLI's, kept in its latest status); the uid will do.
    let name = crate::tak::picture::latest(&ctx.store, &job.dev)
        .await
        .and_then(|(_, name)| name);
    let callsign = name.as_deref().unwrap_or(uid);
    let n = ctx
        .tak
        .send_chat(&ctx.settings, uid, callsign, &job.text, &job.msg_id);
    debug!(msg_id = %job.msg_id, dev = %job.dev, outputs = n, "GeoChat queued for a TAK contact");
    let outcome = if n == 0 {
        Outcome::Unsent
    } else {
        Outcome::Sent
    };
    reporter.report(&job.msg_id, Some(&job.dev), outcome).await;
}
