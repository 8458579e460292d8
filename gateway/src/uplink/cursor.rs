//! Recording acknowledged cursors off the drain's path. With `appendfsync always` every Redis
//! write waits for an fsync; awaiting one per PUBACK would cap the drain at the disk's fsync
//! rate. Instead the session hands each cursor move here and goes on; a task writes the latest
//! cursor of every class in one transaction whenever there is news (moves coalesce while a
//! write is in flight). A crash before a write lands only means the hub sees those events again
//! and drops them by its high-water rule.

use crate::event::Class;
use crate::store::Store;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::debug;

/// Pending cursor moves: per class the newest acknowledged id and how many events it covers.
#[derive(Default)]
struct Pending([Option<(String, u64)>; Class::COUNT]);

/// Handle the session uses; cheap to clone.
#[derive(Clone)]
pub struct CursorWriter {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
}

impl CursorWriter {
    /// Starts the writer task; it ends after `flush_and_stop`.
    pub fn start(store: Store) -> (CursorWriter, tokio::task::JoinHandle<()>) {
        let w = CursorWriter {
            pending: Arc::default(),
            wake: Arc::new(Notify::new()),
        };
        let task = tokio::spawn(w.clone().run(store));
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

    async fn run(self, store: Store) {
        loop {
            self.wake.notified().await;
            let moves = self.take();
            if moves.is_empty() {
                if Arc::strong_count(&self.pending) == 1 {
                    return; // every handle but ours is gone and nothing is pending
                }
                continue;
            }
            if let Err(e) = store.ack_many(&moves).await {
                debug!(error = %e, "could not record uplink cursors; will retry");
                self.put_back(moves);
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.wake.notify_one();
            }
        }
    }

    /// Writes what is pending now (on shutdown), giving up after `timeout`.
    pub async fn flush(&self, store: &Store, timeout: Duration) {
        let moves = self.take();
        if moves.is_empty() {
            return;
        }
        match tokio::time::timeout(timeout, store.ack_many(&moves)).await {
            Ok(Ok(())) => {}
            _ => self.put_back(moves),
        }
    }
}
