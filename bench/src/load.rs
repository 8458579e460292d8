//! The load generator: OwnTracks phones publishing QoS 1 to a device broker.
//!
//! Several MQTT connections in parallel, each with a deep in-flight window, each owning a share
//! of the devices (a phone is one connection, so per-device order is kept). Paced (a target
//! rate, open loop: a slow system under test builds a backlog in the broker, it does not slow
//! the generator) or as fast as the broker acknowledges. Every message carries a unique
//! `(device, tst)`, which is how the hub side matches what it receives back to the send time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Device `i`'s topic: `owntracks/bench/dNNN` (the owntracks profile names it `bench-dNNN`).
pub fn topic(dev: usize) -> String {
    format!("owntracks/bench/d{dev:03}")
}

/// The device index back from a device id (`bench-d007`) or topic (`owntracks/bench/d007`).
pub fn dev_index(s: &str) -> Option<u32> {
    let i = s.rfind('d')?;
    s[i + 1..].parse().ok()
}

/// An OwnTracks location report (~140 bytes), distinct per (device, tst).
pub fn payload(dev: usize, tst: i64) -> Vec<u8> {
    let lat = 52.0 + dev as f64 * 0.001 + (tst % 1000) as f64 * 1e-5;
    let lon = 13.0 + dev as f64 * 0.001 + (tst % 997) as f64 * 1e-5;
    format!(
        r#"{{"_type":"location","tid":"{:02}","acc":5,"alt":48,"lat":{lat:.6},"lon":{lon:.6},"tst":{tst},"vel":36,"cog":{},"conn":"m"}}"#,
        dev % 100,
        tst % 360
    )
    .into_bytes()
}

/// A first `tst` such that `tst_base + n` stays plausible (past, after 2000) for any run.
pub fn tst_base() -> i64 {
    chrono::Utc::now().timestamp() - 3 * 86_400
}

/// Send times by (device index, tst), filled by the generator, read by the hub side.
#[derive(Default)]
pub struct SendLog(Mutex<HashMap<(u32, i64), Instant>>);

impl SendLog {
    pub fn take(&self, dev: u32, tst: i64) -> Option<Instant> {
        self.0.lock().expect("send log").remove(&(dev, tst))
    }
}

/// One load: `total` messages spread over `devices`, `tst` counting up from `tst_base`.
#[derive(Clone, Debug)]
pub struct Load {
    pub devices: usize,
    pub conns: usize,
    pub total: u64,
    /// Messages/s over all connections; `None`: as fast as the broker acknowledges.
    pub rate: Option<f64>,
    pub tst_base: i64,
}

/// What the generator achieved.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub published: u64,
    /// From the first publish to the last PUBACK.
    pub elapsed: Duration,
}

impl Sent {
    pub fn rate(&self) -> f64 {
        self.published as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the load against `port` and returns once every message is acknowledged by the broker.
pub async fn run(port: u16, load: &Load, log: Option<Arc<SendLog>>) -> anyhow::Result<Sent> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..load.conns {
        let devs: Vec<usize> = (0..load.devices).filter(|d| d % load.conns == c).collect();
        let counts: Vec<u64> = devs.iter().map(|&d| share(load, d)).collect();
        let rate = load
            .rate
            .map(|r| r * counts.iter().sum::<u64>() as f64 / load.total as f64);
        let l = load.clone();
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            connection(port, c, &l, devs, counts, rate, log).await
        }));
    }
    let mut published = 0;
    for t in tasks {
        published += t.await.context("generator task")??;
    }
    Ok(Sent {
        published,
        elapsed: started.elapsed(),
    })
}

/// Messages device `d` publishes.
fn share(load: &Load, d: usize) -> u64 {
    let n = load.devices as u64;
    load.total / n + u64::from((d as u64) < load.total % n)
}

async fn connection(
    port: u16,
    c: usize,
    load: &Load,
    devs: Vec<usize>,
    counts: Vec<u64>,
    rate: Option<f64>,
    log: Option<Arc<SendLog>>,
) -> anyhow::Result<u64> {
    let id = format!("bench-gen-{}-{c}", std::process::id());
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_clean_session(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_request_channel_capacity(4096);
    let (client, mut el) = AsyncClient::new(opts, 4096);
    let total: u64 = counts.iter().sum();
    let acked = Arc::new(AtomicU64::new(0));
    let acks = acked.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    let poller = tokio::spawn(async move {
        let mut done_tx = Some(done_tx);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    if acks.fetch_add(1, Relaxed) + 1 == total {
                        if let Some(tx) = done_tx.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(tx) = done_tx.take() {
                        let _ = tx.send(Err(anyhow::anyhow!("generator connection: {e}")));
                    }
                    return;
                }
            }
        }
    });
    let start = Instant::now();
    let mut sent = 0u64;
    let mut next = vec![0u64; devs.len()];
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    'outer: loop {
        let due = match rate {
            Some(r) => ((start.elapsed().as_secs_f64() * r) as u64).min(total),
            None => total,
        };
        while sent < due {
            // Round-robin over this connection's devices, skipping those that are done.
            let i = (sent as usize) % devs.len();
            let Some(k) = (0..devs.len())
                .map(|j| (i + j) % devs.len())
                .find(|&k| next[k] < counts[k])
            else {
                break 'outer;
            };
            let tst = load.tst_base + next[k] as i64;
            next[k] += 1;
            if let Some(log) = &log {
                log.0
                    .lock()
                    .expect("send log")
                    .insert((devs[k] as u32, tst), Instant::now());
            }
            client
                .publish(
                    topic(devs[k]),
                    QoS::AtLeastOnce,
                    false,
                    payload(devs[k], tst),
                )
                .await
                .context("generator publish")?;
            sent += 1;
        }
        if sent >= total {
            break;
        }
        tick.tick().await;
    }
    if total > 0 {
        done_rx.await.context("generator poller")??;
    }
    poller.abort();
    Ok(sent)
}
