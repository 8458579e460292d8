//! Hub ingest (issue 10): `outpost-hub` storing a stream of batches, with 1 and 2 receivers on
//! one Redis and on a 3-master Redis Cluster (there in the order [`CLUSTER_ORDER`]), side by
//! side with a bare `mosquitto_sub` of the same stream (what the broker delivers) and Redis' own pipelined
//! `XADD` of the same events (what the store can take; before and after the hub's runs on the
//! one Redis), in one run.
//!
//! Each system gets the same pre-built batches (20 gateways, 250 events each, the §5 format)
//! published QoS 1 as fast as one client can; the time is from the first publish to the last
//! event stored (hub) or received (mosquitto_sub).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use outpost_proto::batch::{payload, Entry};
use outpost_proto::Class;
use outpost_system_tests::{HubConfig, HubProc, Mosquitto, RedisCluster, RedisServer};
use rumqttc::{AsyncClient, MqttOptions, QoS};

use crate::procstat;

mod report;

pub(crate) use report::sum_of;
pub use report::{markdown, HubResult};
use report::{redis_cpu, redis_time, ReceiverTally};

const GATEWAYS: usize = 20;
const PER_BATCH: usize = 250;
/// The receiver counts of the cluster runs, in order.
pub(crate) const CLUSTER_ORDER: [usize; 4] = [1, 2, 2, 1];

/// A location event of `dev` as a gateway forwards it (§5), the `i`-th of a run, received at
/// `rx`; positions walk around a small area so the geo index sees distinct points.
pub(crate) fn location_json(dev: &str, i: usize, rx: &str) -> String {
    format!(
        r#"{{"dev":"{dev}","class":"location","lat":{},"lon":{},"acc":8,"speed":4.2,"course":270,"ts":"{rx}","ts_src":"device","rx":"{rx}"}}"#,
        52.0 + (i % 1000) as f64 * 1e-4,
        13.0 + (i % 777) as f64 * 1e-4
    )
}

/// (topic, payload) of every batch, and the events as (gateway, id, json) for XADD.
fn batches(events: u64) -> Vec<(String, Vec<u8>, usize)> {
    let n_batches = (events as usize).div_ceil(PER_BATCH);
    (0..n_batches)
        .map(|b| {
            let gw = format!("veh-{:04}", b % GATEWAYS);
            let round = b / GATEWAYS;
            let entries: Vec<Entry> = (0..PER_BATCH)
                .map(|k| {
                    let i = round * PER_BATCH + k;
                    let dev = format!("{gw}-d{}", i % 50);
                    Entry {
                        id: format!("{}-{}", 1_764_000_000_000u64 + i as u64, 0),
                        json: location_json(&dev, i, "2026-11-30T10:00:00.100Z"),
                    }
                })
                .collect();
            let topic = format!("outpost/v1/{gw}/up/location");
            (
                topic,
                payload(&gw, Class::Location, &entries, (0, 0)),
                entries.len(),
            )
        })
        .collect()
}

/// Publishes every batch QoS 1 (200 in flight) and returns when all were PUBACKed.
async fn publish(port: u16, batches: &[(String, Vec<u8>, usize)]) -> anyhow::Result<()> {
    let mut o = MqttOptions::new("bench-gateways", "127.0.0.1", port);
    o.set_inflight(200)
        .set_max_packet_size(1 << 24, 1 << 24)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = AsyncClient::new(o, 1000);
    let total = batches.len();
    let pump = tokio::spawn(async move {
        let mut acked = 0;
        while acked < total {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("publisher: {e}")),
            }
        }
        Ok(())
    });
    for (t, p, _) in batches {
        client
            .publish(t.clone(), QoS::AtLeastOnce, false, p.clone())
            .await?;
    }
    pump.await??;
    Ok(())
}

/// Events stored by the hub (sum of `stored:location` over the gateways' meta hashes).
fn stored(conn: &mut dyn redis::ConnectionLike, prefix: &str) -> u64 {
    (0..GATEWAYS)
        .map(|g| {
            redis::cmd("HGET")
                .arg(format!("{prefix}:{{gw:veh-{g:04}}}:meta"))
                .arg("stored:location")
                .query::<Option<u64>>(conn)
                .ok()
                .flatten()
                .unwrap_or(0)
        })
        .sum()
}

fn cpu(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| procstat::sample(*p).ok())
        .map(|s| s.cpu.as_secs_f64())
        .sum()
}

/// The hub with `receivers` receivers on `urls` (a cluster when several), its keys under
/// `prefix` (each run its own, so a run never finds another's events stored).
fn hub_run(
    rt: &tokio::runtime::Runtime,
    name: &str,
    urls: Vec<String>,
    prefix: &str,
    receivers: usize,
    all: &[(String, Vec<u8>, usize)],
    conn: &mut dyn redis::ConnectionLike,
) -> anyhow::Result<HubResult> {
    let broker = Mosquitto::new()?;
    let prefix = prefix.to_string();
    let hubs: Vec<HubProc> = (0..receivers)
        .map(|i| {
            let mut c = HubConfig::new(&format!("r{i}"), &broker.url(), urls.clone());
            c.prefix = prefix.clone();
            HubProc::start(&c)
        })
        .collect::<Result<_, _>>()?;
    let pids: Vec<u32> = hubs.iter().filter_map(HubProc::pid).collect();
    let events: u64 = all.iter().map(|b| b.2 as u64).sum();
    let cpu0 = cpu(&pids);
    let rcpu0 = redis_cpu(&urls)?;
    let t0 = Instant::now();
    rt.block_on(publish(broker.port(), all))?;
    let deadline = t0 + Duration::from_secs(600);
    while stored(conn, &prefix) < events && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = t0.elapsed();
    let got = stored(conn, &prefix);
    anyhow::ensure!(got == events, "{name}: stored {got} of {events}");
    Ok(HubResult {
        name: name.into(),
        events,
        elapsed,
        cpu_s: cpu(&pids) - cpu0,
        redis_cpu_s: redis_cpu(&urls)? - rcpu0,
        receivers: Some(ReceiverTally::of(&hubs, all.len())),
    })
}

/// `mosquitto_sub` receiving the same stream.
fn bare_run(
    rt: &tokio::runtime::Runtime,
    all: &[(String, Vec<u8>, usize)],
) -> anyhow::Result<HubResult> {
    let broker = Mosquitto::new()?;
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port().to_string(),
            "-q",
            "1",
            "-c",
            "-i",
            "bench-sub",
        ])
        .args(["-t", "outpost/v1/+/up/+", "-C", &all.len().to_string()])
        .stdout(Stdio::null())
        .spawn()
        .context("mosquitto_sub")?;
    std::thread::sleep(Duration::from_millis(500));
    let pid = sub.id();
    let cpu0 = cpu(&[pid]);
    let t0 = Instant::now();
    rt.block_on(publish(broker.port(), all))?;
    let mut cpu1 = cpu0;
    loop {
        if let Some(st) = sub.try_wait()? {
            anyhow::ensure!(st.success(), "mosquitto_sub: {st}");
            break;
        }
        cpu1 = cpu(&[pid]).max(cpu1);
        std::thread::sleep(Duration::from_millis(2));
    }
    let events = all.iter().map(|b| b.2 as u64).sum();
    Ok(HubResult {
        name: "bare mosquitto_sub".into(),
        events,
        elapsed: t0.elapsed(),
        cpu_s: cpu1 - cpu0,
        redis_cpu_s: 0.0,
        receivers: None,
    })
}

/// Redis' own rate for the same events: `XADD` pipelined a batch at a time on one connection.
fn xadd_run(
    redis: &RedisServer,
    all: &[(String, Vec<u8>, usize)],
    when: &str,
) -> anyhow::Result<HubResult> {
    let mut conn = redis.conn()?;
    let events: u64 = all.iter().map(|b| b.2 as u64).sum();
    let bodies: Vec<(String, Vec<String>)> = all
        .iter()
        .map(|(t, p, _)| {
            let v: serde_json::Value = serde_json::from_slice(p).expect("our batch");
            let evs = v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.to_string())
                .collect();
            (format!("xadd:{when}:{t}"), evs)
        })
        .collect();
    let rcpu0 = redis_cpu(&[redis.url()])?;
    let t0 = Instant::now();
    for (key, evs) in &bodies {
        let mut pipe = redis::pipe();
        for e in evs {
            pipe.cmd("XADD").arg(key).arg("*").arg("e").arg(e).ignore();
        }
        pipe.query::<()>(&mut conn)?;
    }
    Ok(HubResult {
        name: format!("Redis pipelined XADD, {when}"),
        events,
        elapsed: t0.elapsed(),
        cpu_s: 0.0,
        redis_cpu_s: redis_cpu(&[redis.url()])? - rcpu0,
        receivers: None,
    })
}

/// All systems, in one run.
pub fn run(rt: &tokio::runtime::Runtime, events: u64) -> anyhow::Result<Vec<HubResult>> {
    let all = batches(events);
    let redis = RedisServer::new()?;
    let mut out = Vec::new();
    eprintln!("== hub ingest: {} batches of {PER_BATCH} events", all.len());
    out.push(bare_run(rt, &all)?);
    eprintln!("  {:?}", out.last());
    out.push(xadd_run(&redis, &all, "before")?);
    eprintln!("  {:?}", out.last());
    let mut conn = redis.conn()?;
    for n in [1, 2] {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query::<()>(&mut conn)?;
        out.push(hub_run(
            rt,
            &format!("outpost-hub, {n} receiver(s), one Redis"),
            vec![redis.url()],
            &format!("b{n}"),
            n,
            &all,
            &mut conn,
        )?);
        eprintln!("  {:?}", out.last());
        // Where Redis' time went (commands run inside scripts are counted too).
        for row in redis_time(&mut conn)? {
            eprintln!("    {row}");
        }
    }
    // Again after the hub's runs on the same server: on a shared machine `XADD` alone moved by
    // ±25% between runs, and the ratio is taken to the mean of the two.
    out.push(xadd_run(&redis, &all, "after")?);
    eprintln!("  {:?}", out.last());
    let cluster = RedisCluster::new()?;
    let mut cconn = cluster.client()?.get_connection()?;
    // 1, 2, 2, 1: each run adds its events to the same three nodes, so a later run meets a
    // fuller keyspace; in this order both counts meet it alike (`report::cluster_ratio`).
    for (k, n) in CLUSTER_ORDER.into_iter().enumerate() {
        out.push(hub_run(
            rt,
            &format!("outpost-hub, {n} receiver(s), 3-node cluster"),
            cluster.urls(),
            &format!("c{k}"),
            n,
            &all,
            &mut cconn,
        )?);
        eprintln!("  {:?}", out.last());
    }
    Ok(out)
}
