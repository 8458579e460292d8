//! A TAK user for tests: a plain CoT client on a TAK server (as ATAK would be), which records
//! every event it is sent, parsed as XML (servers re-serialise, so tests compare parsed
//! values, never text), and sends what a test gives it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use outpost_cot::split::Splitter;
use outpost_cot::xml::Element;

/// A connected CoT client; disconnects on drop.
pub struct TakUser {
    stream: TcpStream,
    seen: Arc<Mutex<Vec<Element>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl TakUser {
    /// Connects to `addr` and starts recording.
    pub fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connect to TAK server {addr}"))?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut rd = stream.try_clone()?;
        let sink = seen.clone();
        let reader = std::thread::spawn(move || {
            let mut split = Splitter::new(1 << 20);
            let mut buf = [0u8; 8192];
            let mut docs = Vec::new();
            while let Ok(n) = rd.read(&mut buf) {
                if n == 0 {
                    break;
                }
                split.push(&buf[..n], &mut docs);
                for d in docs.drain(..).flatten() {
                    if let Ok(e) = Element::parse(&d) {
                        sink.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                    }
                }
            }
        });
        Ok(TakUser {
            stream,
            seen,
            reader: Some(reader),
        })
    }

    /// Sends one CoT event.
    pub fn send(&self, xml: &str) -> anyhow::Result<()> {
        (&self.stream).write_all(xml.as_bytes())?;
        Ok(())
    }

    /// Every event received so far.
    pub fn seen(&self) -> Vec<Element> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets what was received so far.
    pub fn clear(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The first received event matching `pred`, waiting up to `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Element) -> bool) -> Option<Element> {
        let mut found = None;
        crate::wait_until(timeout, || {
            found = self.seen().into_iter().find(|e| pred(e));
            found.is_some()
        });
        found
    }
}

impl Drop for TakUser {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
