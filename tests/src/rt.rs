//! A tokio runtime on its own thread.
//!
//! Async helpers (proxy, hub, device) run here instead of on the caller's runtime: a sync test
//! has none, and a `#[tokio::test]` must not have its single thread blocked by our I/O. Results
//! come back over std channels, so waiting never needs `block_on` on the caller's thread
//! (which would panic inside an async test).

use std::future::Future;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context};
use tokio::sync::oneshot;

/// A current-thread runtime driven by a dedicated OS thread; dropping it stops every task.
pub struct RuntimeThread {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RuntimeThread {
    /// Starts the thread (named `name`, shown in panics) and its runtime.
    pub fn start(name: &str) -> anyhow::Result<Self> {
        let (handle_tx, handle_rx) = mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build tokio runtime");
                let _ = handle_tx.send(rt.handle().clone());
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
                // Dropping the runtime here, on its own thread, cancels the remaining tasks.
            })
            .context("spawn runtime thread")?;
        let handle = handle_rx
            .recv()
            .map_err(|_| anyhow!("runtime thread died at start"))?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The runtime's handle, for spawning tasks.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `fut` on the runtime and blocks the calling thread (without `block_on`) for its
    /// output, up to `timeout`.
    pub fn call<F>(&self, timeout: Duration, fut: F) -> anyhow::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv_timeout(timeout)
            .map_err(|_| anyhow!("runtime call did not finish within {timeout:?}"))
    }
}

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
