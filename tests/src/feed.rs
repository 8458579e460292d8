//! Simulated devices whose every publish is tracked: which were sent, which the device broker
//! acknowledged (the source's view of "accepted"); a thread that keeps publishing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Device;
use serde_json::{json, Value};

/// OwnTracks phones publishing numbered fixes QoS 1, remembering which publishes the device
/// broker acknowledged. Fix number `seq` goes to device `<name>-d<seq % devices>` with
/// `tst = t0 + seq`, so the event time at the hub names the publish.
pub struct Feed {
    device: Device,
    pub name: String,
    devices: u64,
    t0: i64,
    next: u64,
    pub sent: BTreeSet<u64>,
    pub acked: BTreeSet<u64>,
    failures: usize,
}

impl Feed {
    /// A feed of `devices` phones named `<name>-d<i>` on the broker at `url`.
    pub fn new(url: &str, name: &str, devices: u64) -> Feed {
        let device = Device::connect(url, &format!("pub-{name}")).expect("device connect");
        Feed {
            device,
            name: name.to_string(),
            devices,
            // Two days back: a plausible device clock for `seq` up to a day and more.
            t0: chrono::Utc::now().timestamp() - 2 * 86_400,
            next: 0,
            sent: BTreeSet::new(),
            acked: BTreeSet::new(),
            failures: 0,
        }
    }

    /// Device id of publish `seq`.
    pub fn dev_of(&self, seq: u64) -> String {
        format!("{}-d{}", self.name, seq % self.devices)
    }

    /// Whether `dev` is one of this feed's devices.
    pub fn owns(&self, dev: &str) -> bool {
        dev.strip_prefix(&self.name)
            .and_then(|r| r.strip_prefix("-d"))
            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n < self.devices))
    }

    /// The publish number of a location event of this feed.
    pub fn seq_of(&self, event: &Value) -> Option<u64> {
        let ts = event.get("ts")?.as_str()?;
        let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?.timestamp();
        u64::try_from(t - self.t0).ok()
    }

    /// Publishes the next `n` fixes (pipelined) and waits for the broker's PUBACKs; returns
    /// whether all were acknowledged.
    pub fn publish(&mut self, n: u64) -> bool {
        let seqs: Vec<u64> = (self.next..self.next + n).collect();
        self.next += n;
        let msgs: Vec<(String, String)> = seqs
            .iter()
            .map(|&seq| {
                let d = seq % self.devices;
                let payload = json!({
                    "_type": "location",
                    "lat": 52.0 + (seq as f64) * 1e-6,
                    "lon": 13.0 + d as f64 * 0.01,
                    "acc": 5,
                    "tst": self.t0 + seq as i64,
                });
                (format!("owntracks/{}/d{d}", self.name), payload.to_string())
            })
            .collect();
        self.sent.extend(seqs.iter().copied());
        match self.device.publish_many_qos1(msgs) {
            Ok(()) => {
                self.acked.extend(seqs);
                true
            }
            Err(e) => {
                self.failures += 1;
                if self.failures <= 3 {
                    eprintln!("[feed {}] publish not acknowledged: {e:#}", self.name);
                }
                false
            }
        }
    }

    /// Acknowledged publishes not (yet) among `events`.
    pub fn missing(&self, events: &[Value]) -> usize {
        let got: BTreeSet<u64> = events
            .iter()
            .filter(|e| e["dev"].as_str().is_some_and(|d| self.owns(d)))
            .filter_map(|e| self.seq_of(e))
            .collect();
        self.acked.difference(&got).count()
    }
}

/// A [`Feed`] on its own thread: `chunk` fixes every `every`, until stopped.
pub struct Publisher {
    ctl: Arc<Ctl>,
    handle: Option<JoinHandle<Feed>>,
}

#[derive(Default)]
struct Ctl {
    stop: AtomicBool,
    paused: AtomicBool,
    busy: AtomicBool,
    /// Publishes the broker acknowledged so far (readable while the feed runs).
    acked: AtomicU64,
}

impl Publisher {
    /// Starts publishing.
    pub fn start(mut feed: Feed, chunk: u64, every: Duration) -> Publisher {
        let ctl = Arc::new(Ctl::default());
        let c = ctl.clone();
        let handle = std::thread::spawn(move || {
            loop {
                c.busy.store(true, SeqCst);
                if c.stop.load(SeqCst) {
                    break;
                }
                if c.paused.load(SeqCst) {
                    c.busy.store(false, SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                if feed.publish(chunk) {
                    c.acked.fetch_add(chunk, SeqCst);
                }
                c.busy.store(false, SeqCst);
                std::thread::sleep(every);
            }
            c.busy.store(false, SeqCst);
            feed
        });
        Publisher {
            ctl,
            handle: Some(handle),
        }
    }

    /// Stops publishing; returns once no publish is in progress.
    pub fn pause(&self) {
        self.ctl.paused.store(true, SeqCst);
        while self.ctl.busy.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Publishes acknowledged by the device broker so far.
    pub fn acked(&self) -> u64 {
        self.ctl.acked.load(SeqCst)
    }

    /// Publishes again.
    pub fn resume(&self) {
        self.ctl.paused.store(false, SeqCst);
    }

    /// Stops and hands back the feed with its record.
    pub fn stop(mut self) -> Feed {
        self.ctl.stop.store(true, SeqCst);
        self.handle
            .take()
            .expect("joined once")
            .join()
            .expect("publisher thread")
    }
}
