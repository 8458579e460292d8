//! The scale model (issue 16 goal 6): `outpost-bench scale --gateways 1000` runs that many
//! lightweight simulated gateways against one hub on this machine — one hub broker
//! (mosquitto), `--receivers` outpost-hub receivers on one share group, one Redis with AOF
//! `appendfsync always` — and reports the per-core figures `docs/scale.md` extrapolates from.
//!
//! A simulated gateway is one MQTT session speaking the uplink protocol (SPEC §5) and nothing
//! else: a retained `state` (online), then batches of location events of its `DEVICES`
//! devices with increasing ids, QoS 1, at most `INFLIGHT` batches unacknowledged — what the
//! real gateway sends, without its Redis, so a thousand fit in one process.
//!
//! Phases: (1) all sessions connect and publish their state, until the hub lists every gateway
//! online; (2) steady: each gateway sends one batch of `DEVICES` fixes every `period`
//! (phases spread evenly), for `seconds`; the hub must keep up (every event stored within a
//! grace after the last publish), the rx → stored lag comes from the hub's own histogram;
//! (3) burst: every gateway sends `BURST_BATCHES` batches at once (a region coming back from
//! an outage) — the hub's ingest rate with every session busy. CPU per 100k events for the
//! receivers, the broker and Redis, and Redis bytes per stored event, are read over (2)+(3).

mod probe;
mod sim;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use outpost_system_tests::{HubConfig, HubProc, Mosquitto, RedisServer};
use rumqttc::QoS;
use tokio::runtime::Runtime;

use crate::procstat;
use probe::{info_field, lag_quantile, stored, wait_stored, Cpu};
use sim::connect_all;

/// Devices per simulated gateway (the 50).
const DEVICES: usize = 50;
/// Batches a gateway may have unacknowledged (the gateway's default window).
const INFLIGHT: u16 = 8;
/// Batches per gateway in the burst phase.
const BURST_BATCHES: usize = 4;
/// How long after the last publish the hub may take to store everything and still count as
/// keeping up.
const GRACE: Duration = Duration::from_secs(5);

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Scale {
    pub gateways: usize,
    pub receivers: usize,
    pub connect: Duration,
    pub offered_rate: f64,
    pub steady_events: u64,
    /// Stored within GRACE of the steady phase's last publish.
    pub kept_up: bool,
    pub lag_p50: f64,
    pub lag_p99: f64,
    pub burst_events: u64,
    pub burst_elapsed: Duration,
    /// CPU-seconds per 100k events over steady + burst.
    pub cpu_hub: f64,
    pub cpu_broker: f64,
    pub cpu_redis: f64,
    pub cpu_sim: f64,
    pub redis_bytes_per_event: f64,
    pub hub_rss: u64,
    pub broker_rss: u64,
    /// Uplink bytes (topic + payload) per event, as published.
    pub wire_bytes_per_event: f64,
}

impl Scale {
    pub fn burst_rate(&self) -> f64 {
        self.burst_events as f64 / self.burst_elapsed.as_secs_f64().max(1e-9)
    }
}

/// One scale-model run.
pub fn run(
    rt: &Runtime,
    gateways: usize,
    receivers: usize,
    period: Duration,
    seconds: u64,
) -> anyhow::Result<Scale> {
    let prefix = "outpost/v1";
    let broker = Mosquitto::new()?;
    let redis = RedisServer::new()?;
    let mut conn = redis.conn()?;
    let hubs: Vec<HubProc> = (0..receivers)
        .map(|i| {
            let mut c = HubConfig::new(&format!("s{i}"), &broker.url(), vec![redis.url()]);
            c.prefix = "scale".into();
            HubProc::start(&c)
        })
        .collect::<Result<_, _>>()?;
    for h in &hubs {
        h.wait_healthy(Duration::from_secs(20))?;
    }
    let cpu = Cpu {
        hubs: hubs.iter().filter_map(HubProc::pid).collect(),
        broker: broker.pid().context("broker pid")?,
        redis: info_field(&mut conn, "server", "process_id")? as u32,
    };

    // (1) Connect.
    eprintln!("== scale: {gateways} simulated gateways, {receivers} receiver(s)");
    let acked = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut gws = rt.block_on(connect_all(broker.port(), gateways, prefix, acked.clone()))?;
    let api = hubs[0].api();
    let online = || -> usize {
        api.json("/api/v1/gateways")
            .ok()
            .and_then(|v| v.as_array().cloned())
            .map(|a| a.iter().filter(|g| g["state"] == "online").count())
            .unwrap_or(0)
    };
    let end = Instant::now() + Duration::from_secs(120);
    while online() < gateways && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let connect = t0.elapsed();
    anyhow::ensure!(
        online() == gateways,
        "only {} of {gateways} gateways online at the hub",
        online()
    );
    eprintln!("  all online at the hub after {connect:.2?}");

    let mem0 = info_field(&mut conn, "memory", "used_memory")?;
    let cpu0 = cpu.read();
    let wire = Arc::new(AtomicU64::new(0));

    // (2) Steady: gateway g sends at offsets g/n of the period.
    let rounds = (Duration::from_secs(seconds).as_secs_f64() / period.as_secs_f64()).ceil() as u64;
    let steady_events = rounds * (gateways * DEVICES) as u64;
    let offered_rate = (gateways * DEVICES) as f64 / period.as_secs_f64();
    eprintln!("  steady: {offered_rate:.0} events/s offered for {rounds} periods of {period:?}");
    let slot = period / gateways as u32;
    let start = tokio::time::Instant::now();
    rt.block_on(async {
        for r in 0..rounds {
            for (g, gw) in gws.iter_mut().enumerate() {
                let at = start + period * r as u32 + slot * g as u32;
                tokio::time::sleep_until(at).await;
                let (t, p) = gw.batch(prefix);
                wire.fetch_add((t.len() + p.len()) as u64, Relaxed);
                gw.client.publish(t, QoS::AtLeastOnce, false, p).await?;
            }
        }
        anyhow::Ok(())
    })?;
    let last_publish = Instant::now();
    let done = wait_stored(&hubs, steady_events, GRACE + Duration::from_secs(120));
    let kept_up = done.is_some_and(|d| d - last_publish <= GRACE);
    let (lag_p50, lag_p99) = (lag_quantile(&hubs, 0.5), lag_quantile(&hubs, 0.99));
    eprintln!(
        "  steady: {} stored, kept up: {kept_up}, lag p50 ≤ {lag_p50} s, p99 ≤ {lag_p99} s",
        stored(&hubs)
    );
    anyhow::ensure!(
        done.is_some(),
        "steady phase: the hub did not store every event"
    );

    // (3) Burst: every gateway BURST_BATCHES batches at once.
    let burst_events = (gateways * DEVICES * BURST_BATCHES) as u64;
    let tb = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for gw in gws.iter_mut() {
            let batches: Vec<_> = (0..BURST_BATCHES).map(|_| gw.batch(prefix)).collect();
            let client = gw.client.clone();
            let wire = wire.clone();
            tasks.push(tokio::spawn(async move {
                for (t, p) in batches {
                    wire.fetch_add((t.len() + p.len()) as u64, Relaxed);
                    client.publish(t, QoS::AtLeastOnce, false, p).await?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        anyhow::Ok(())
    })?;
    let burst_done = wait_stored(
        &hubs,
        steady_events + burst_events,
        Duration::from_secs(600),
    )
    .context("burst phase: the hub did not store every event")?;
    let burst_elapsed = burst_done - tb;
    let cpu1 = cpu.read();
    let mem1 = info_field(&mut conn, "memory", "used_memory")?;
    let total = (steady_events + burst_events) as f64;
    let per_100k = |i: usize| (cpu1[i] - cpu0[i]) * 100_000.0 / total;
    // Peak resident memory (VmHWM) over the run.
    let rss = |p: u32| procstat::sample(p).map(|s| s.hwm).unwrap_or(0);
    let res = Scale {
        gateways,
        receivers,
        connect,
        offered_rate,
        steady_events,
        kept_up,
        lag_p50,
        lag_p99,
        burst_events,
        burst_elapsed,
        cpu_hub: per_100k(0),
        cpu_broker: per_100k(1),
        cpu_redis: per_100k(2),
        cpu_sim: per_100k(3),
        redis_bytes_per_event: (mem1.saturating_sub(mem0)) as f64 / total,
        hub_rss: cpu.hubs.iter().map(|p| rss(*p)).sum(),
        broker_rss: rss(cpu.broker),
        wire_bytes_per_event: wire.load(Relaxed) as f64 / total,
    };
    eprintln!("  {res:?}");
    drop(gws);
    Ok(res)
}

/// The Markdown table.
pub fn markdown(s: &Scale) -> String {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    format!(
        "| scale model | value |\n|---|---|\n\
         | simulated gateways (sessions) × devices | {} × {DEVICES} |\n\
         | receivers | {} |\n\
         | all online at the hub after | {:.1} s |\n\
         | steady: offered | {:.0} events/s ({} events) |\n\
         | steady: kept up (all stored ≤ {}s after the last publish) | {} |\n\
         | steady: rx → stored lag p50 / p99 (histogram bucket bound) | ≤ {} s / ≤ {} s |\n\
         | burst: {} events from every gateway at once | {:.2} s = {:.0} events/s |\n\
         | CPU-s per 100k events: receivers / broker / Redis / simulator | {:.2} / {:.2} / {:.2} / {:.2} |\n\
         | Redis bytes per stored event (used_memory growth) | {:.0} |\n\
         | uplink bytes per event (topic + payload) | {:.0} |\n\
         | peak RSS: receivers / broker | {:.1} MiB / {:.1} MiB |\n",
        s.gateways,
        s.receivers,
        s.connect.as_secs_f64(),
        s.offered_rate,
        s.steady_events,
        GRACE.as_secs(),
        if s.kept_up { "yes" } else { "no" },
        s.lag_p50,
        s.lag_p99,
        s.burst_events,
        s.burst_elapsed.as_secs_f64(),
        s.burst_rate(),
        s.cpu_hub,
        s.cpu_broker,
        s.cpu_redis,
        s.cpu_sim,
        s.redis_bytes_per_event,
        s.wire_bytes_per_event,
        mib(s.hub_rss),
        mib(s.broker_rss),
    )
}
