//! Recording acknowledged cursors off the drain's path. With `appendfsync always` every Redis
//! write waits for an fsync; awaiting one per PUBACK would cap the drain at the disk's fsync
//! rate. Instead the session hands each cursor move here and goes on; a task writes the latest
//! cursor of every class in one transaction whenever there is news (moves coalesce while a
//! write is in flight, and for [`COALESCE`] after it). A crash before a write lands only means the hub sees those events again
//! and drops them by its high-water rule. Each region has its own writer (SPEC §9); the write
//! also trims behind the slowest region still within its `max_lag` (`store/ack.lua`).

use crate::context::Context;
use crate::event::Class;
use crate::store::Region;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Least time between two cursor writes. A crash loses at most this much more of the record
/// (those events are sent again and dropped by the hub as duplicates); shutdown flushes.
const COALESCE: Duration = Duration::from_millis(100);

/// Pending cursor moves: per class the newest acknowledged id and how many events it covers.
#[derive(Default)]
struct Pending([Option<(String, u64)>; Class::COUNT]);

/// Handle the session uses; cheap to clone.
#[derive(Clone)]
pub struct CursorWriter {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    regions: Arc<Vec<Region>>,
    me: usize,
}

impl CursorWriter {
    /// Starts the writer task; it ends after `flush_and_stop`.
    pub fn start(
        ctx: Context,
        regions: Arc<Vec<Region>>,
        me: usize,
    ) -> (CursorWriter, tokio::task::JoinHandle<()>) {
        let w = CursorWriter {
            pending: Arc::default(),
            wake: Arc::new(Notify::new()),
            regions,
            me,
        };
        let task = tokio::spawn(w.clone().run(ctx));
        (w, task)
    }

    /// The hub acknowledged `class` up to `id` (`n` more events).
    pub fn moved(&self, class: Class, id: String, n: u64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut p.0[class.index()];
        let total = n + slot.as_ref().map_or(0, |(_, m)| *m);
        *slot = Some((id, total));
        drop(p);
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<(Class, String, u64)> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        Class::ALL
            .into_iter()
            .filter_map(|c| p.0[c.index()].take().map(|(id, n)| (c, id, n)))
            .collect()
    }

    fn put_back(&self, moves: Vec<(Class, String, u64)>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (c, id, n) in moves {
            let slot = &mut p.0[c.index()];
            // A newer move may have arrived meanwhile: keep it, add the counts.
            *slot = Some(match slot.take() {
                Some((newer, m)) => (newer, m + n),
                None => (id, n),
            });
        }
    }

    /// Records `moves` for this region; what lagging regions missed goes to metrics and the log.
    async fn write(&self, ctx: &Context, moves: &[(Class, String, u64)]) -> bool {
        match ctx.store.ack_region(&self.regions, self.me, moves).await {
            Ok(lagging) => {
                for (name, missed, started) in lagging {
                    ctx.metrics.region(&name, |r| r.missed += missed);
                    if started {
                        let max_lag = self
                            .regions
                            .iter()
                            .find(|r| r.name == name)
                            .map(|r| r.max_lag);
                        warn!(region = %name, ?max_lag, missed, "region lags longer than max_lag: no longer holding back the outbox trim; what it misses is counted (outpost-hub sync fills it in)");
                    }
                }
                true
            }
            Err(e) => {
                debug!(error = %e, "could not record uplink cursors; will retry");
                false
            }
        }
    }

    async fn run(self, ctx: Context) {
        loop {
            self.wake.notified().await;
            let moves = self.take();
            if moves.is_empty() {
                if Arc::strong_count(&self.pending) == 1 {
                    return; // every handle but ours is gone and nothing is pending
                }
                continue;
            }
            if !self.write(&ctx, &moves).await {
                self.put_back(moves);
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.wake.notify_one();
            } else {
                // Moves that come meanwhile wait and go in the next write: at a low rate each
                // PUBACK would otherwise cost its own Redis round trip (and fsync).
                tokio::time::sleep(COALESCE).await;
            }
        }
    }

    /// Writes what is pending now (on shutdown), giving up after `timeout`.
    pub async fn flush(&self, ctx: &Context, timeout: Duration) {
        let moves = self.take();
        if moves.is_empty() {
            return;
        }
        match tokio::time::timeout(timeout, self.write(ctx, &moves)).await {
            Ok(true) => {}
            _ => self.put_back(moves),
        }
    }
}
