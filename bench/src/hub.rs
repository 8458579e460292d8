//! The hub side: a QoS 1 subscriber that counts *events* (not MQTT messages), payload bytes, the
//! first and last arrival, and optionally each event's latency from its send time.
//!
//! Outpost sends batches (`{"gw":…,"events":[{"id":…},…]}`, many events per message); the bridge
//! and the bare subscriber's broker forward one device message per MQTT message.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::load::{dev_index, SendLog};

/// What arrives on the subscribed topic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// Outpost uplink batches of location events.
    Batches,
    /// One OwnTracks message per MQTT message (the bridge; a bare subscriber).
    Raw,
}

impl Shape {
    pub fn filter(self) -> &'static str {
        match self {
            // Every class, as outpost-hub subscribes: a class nobody subscribes to is answered
            // 0x10 (no matching subscribers) and Outpost holds it back and probes.
            Shape::Batches => "outpost/v1/+/up/+",
            Shape::Raw => "owntracks/#",
        }
    }
}

/// Counters shared with the subscriber task. Times are nanoseconds since `epoch`, 0 = none yet.
pub struct Counter {
    epoch: Instant,
    pub events: AtomicU64,
    pub messages: AtomicU64,
    /// Payload plus topic bytes of every PUBLISH received.
    pub bytes: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    /// (send time, latency) of every matched event.
    latencies: Mutex<Vec<(Instant, Duration)>>,
    log: Option<Arc<SendLog>>,
}

impl Counter {
    /// Zeroes everything (e.g. right before the hub comes back).
    pub fn reset(&self) {
        for a in [
            &self.events,
            &self.messages,
            &self.bytes,
            &self.first_ns,
            &self.last_ns,
        ] {
            a.store(0, Relaxed);
        }
        self.latencies.lock().expect("latencies").clear();
    }

    pub fn events(&self) -> u64 {
        self.events.load(Relaxed)
    }

    pub fn first(&self) -> Option<Instant> {
        self.at(&self.first_ns)
    }

    pub fn last(&self) -> Option<Instant> {
        self.at(&self.last_ns)
    }

    fn at(&self, a: &AtomicU64) -> Option<Instant> {
        match a.load(Relaxed) {
            0 => None,
            ns => Some(self.epoch + Duration::from_nanos(ns)),
        }
    }

    pub fn latencies(&self) -> Vec<(Instant, Duration)> {
        self.latencies.lock().expect("latencies").clone()
    }

    fn record(&self, shape: Shape, topic: &str, payload: &[u8]) {
        // Only location batches are counted (the measures are in location events).
        if shape == Shape::Batches && !topic.ends_with("/up/location") {
            return;
        }
        let now = Instant::now();
        let ns = (now - self.epoch).as_nanos().max(1) as u64;
        let n = match shape {
            Shape::Batches => count_events(payload),
            Shape::Raw => 1,
        };
        let _ = self.first_ns.compare_exchange(0, ns, Relaxed, Relaxed);
        self.last_ns.store(ns, Relaxed);
        self.messages.fetch_add(1, Relaxed);
        self.bytes
            .fetch_add((payload.len() + topic.len()) as u64, Relaxed);
        self.events.fetch_add(n, Relaxed);
        if let Some(log) = &self.log {
            let mut lat = self.latencies.lock().expect("latencies");
            for (dev, tst) in sent_keys(shape, topic, payload) {
                if let Some(t) = log.take(dev, tst) {
                    lat.push((t, now - t));
                }
            }
        }
    }
}

/// Events in an Outpost batch: each event object starts with `{"id":"` (uplink/batch.rs).
fn count_events(p: &[u8]) -> u64 {
    const NEEDLE: &[u8] = b"{\"id\":\"";
    let mut n = 0;
    let mut i = 0;
    while let Some(off) = p[i..].iter().position(|&b| b == b'{') {
        let at = i + off;
        if p[at..].starts_with(NEEDLE) {
            n += 1;
        }
        i = at + 1;
    }
    n
}

/// The (device, tst) keys of what arrived, to look up send times.
fn sent_keys(shape: Shape, topic: &str, payload: &[u8]) -> Vec<(u32, i64)> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Vec::new();
    };
    match shape {
        Shape::Raw => dev_index(topic)
            .zip(v["tst"].as_i64())
            .into_iter()
            .collect(),
        Shape::Batches => v["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let dev = dev_index(e["dev"].as_str()?)?;
                let ts = chrono::DateTime::parse_from_rfc3339(e["ts"].as_str()?).ok()?;
                Some((dev, ts.timestamp()))
            })
            .collect(),
    }
}

/// A running hub subscriber; stops on drop.
pub struct HubSub {
    pub counter: Arc<Counter>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HubSub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes (QoS 1, clean session) to `shape`'s topic on the broker at `port`; returns once
/// the subscription is in place.
pub async fn subscribe(
    port: u16,
    shape: Shape,
    log: Option<Arc<SendLog>>,
) -> anyhow::Result<HubSub> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let id = format!(
        "bench-hub-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Relaxed)
    );
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_clean_session(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(64 << 20, 64 << 20);
    let (client, mut el) = AsyncClient::new(opts, 64);
    let counter = Arc::new(Counter {
        epoch: Instant::now(),
        events: AtomicU64::new(0),
        messages: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        first_ns: AtomicU64::new(0),
        last_ns: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
        log,
    });
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let c = counter.clone();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe(shape.filter(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => c.record(shape, &p.topic, &p.payload),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .map_err(|_| anyhow!("hub subscriber not subscribed within 10 s"))?
        .context("hub subscriber task")?;
    Ok(HubSub { counter, task })
}

/// Waits until `counter` has `n` events, or nothing arrived for `idle`; returns whether all
/// `n` arrived.
pub async fn wait_events(counter: &Counter, n: u64, idle: Duration, max: Duration) -> bool {
    let start = Instant::now();
    let mut last = (counter.events(), Instant::now());
    loop {
        let got = counter.events();
        if got >= n {
            return true;
        }
        if got != last.0 {
            last = (got, Instant::now());
        } else if last.1.elapsed() > idle || start.elapsed() > max {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
