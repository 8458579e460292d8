//! Between the device broker source and its worker: how many inputs the worker holds that it
//! has not answered yet. The source reconnects (to have what it set aside redelivered) only
//! once there are none, so every acknowledgement is queued ahead of the disconnect (`mqtt::run`).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Inputs handed to the worker and not yet answered: acknowledged (the ack in the request
/// channel), dropped, or refused for lack of room.
#[derive(Default)]
pub(super) struct InHand {
    n: AtomicUsize,
    /// Signalled when the count falls to zero.
    zero: tokio::sync::Notify,
}

impl InHand {
    /// One more is handed over (counted before it is sent, so its answer cannot come first).
    pub fn handed(&self) {
        self.n.fetch_add(1, Ordering::SeqCst);
    }

    /// One counted by [`InHand::handed`] was not sent after all.
    pub fn taken_back(&self) {
        self.n.fetch_sub(1, Ordering::SeqCst);
    }

    /// One was answered.
    pub fn answer(&self) {
        if self.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.zero.notify_one();
        }
    }

    /// Whether every input handed over has been answered.
    pub fn none(&self) -> bool {
        self.n.load(Ordering::SeqCst) == 0
    }

    /// Resolves after the count last fell to zero (at once if it did since the last call).
    pub async fn answered(&self) {
        self.zero.notified().await
    }
}
