//! Hub ingest (issue 10): `outpost-hub` storing a stream of batches, with 1 and 2 receivers on
//! one Redis and 2 receivers on a 3-master Redis Cluster, side by side with a bare
//! `mosquitto_sub` of the same stream (what the broker delivers) and Redis' own pipelined
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

const GATEWAYS: usize = 20;
const PER_BATCH: usize = 250;

/// One system's result.
#[derive(Debug, Clone)]
pub struct HubResult {
    pub name: String,
    pub events: u64,
    pub elapsed: Duration,
    /// CPU seconds of the receiver processes over the run.
    pub cpu_s: f64,
    /// CPU seconds of the Redis servers over the run (their `INFO cpu`); 0 where none.
    pub redis_cpu_s: f64,
    /// What the receivers saw (hubs only): batches received (redeliveries included) of the
    /// batches published, events they found already stored, broker sessions lost.
    pub receivers: Option<ReceiverTally>,
}

/// The receivers' own account of a run, from their `/metrics` and logs: a slow run with
/// redelivered batches or lost sessions is a different problem from a slow store.
#[derive(Debug, Clone, Default)]
pub struct ReceiverTally {
    pub batches_published: u64,
    pub batches_received: u64,
    pub duplicates: u64,
    pub sessions_lost: u64,
    /// Mean time a batch spent in Redis (`outpost_hub_store_seconds`), all receivers.
    pub store_mean: Duration,
}

impl ReceiverTally {
    fn of(hubs: &[HubProc], published: usize) -> ReceiverTally {
        let mut t = ReceiverTally {
            batches_published: published as u64,
            ..ReceiverTally::default()
        };
        let (mut secs, mut n) = (0.0, 0.0);
        for h in hubs {
            let metrics = h.api().text("/metrics").unwrap_or_default();
            secs += float_of(&metrics, "outpost_hub_store_seconds_sum");
            n += float_of(&metrics, "outpost_hub_store_seconds_count");
            t.batches_received += sum_of(&metrics, "outpost_hub_batches_total");
            t.duplicates += sum_of(&metrics, "outpost_hub_duplicates_total");
            t.sessions_lost += h.log().matches("hub broker connection lost").count() as u64;
        }
        t.store_mean = Duration::from_secs_f64(if n > 0.0 { secs / n } else { 0.0 });
        t
    }
}

/// Sum of every sample of one metric family in a Prometheus text exposition.
pub(crate) fn sum_of(text: &str, name: &str) -> u64 {
    float_of(text, name) as u64
}

/// [`sum_of`] unrounded.
fn float_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
}

impl HubResult {
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// CPU-seconds per 100k events.
    pub fn cpu_per_100k(&self) -> f64 {
        self.cpu_s * 100_000.0 / self.events.max(1) as f64
    }
    /// Redis CPU-seconds per 100k events.
    pub fn redis_cpu_per_100k(&self) -> f64 {
        self.redis_cpu_s * 100_000.0 / self.events.max(1) as f64
    }
}

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

/// CPU seconds Redis servers have used (`used_cpu_user` + `used_cpu_sys` of `INFO cpu`),
/// summed over `urls`: with the elapsed time it says whether Redis was the busy part.
fn redis_cpu(urls: &[String]) -> anyhow::Result<f64> {
    let mut sum = 0.0;
    for u in urls {
        let mut c = redis::Client::open(u.as_str())?.get_connection()?;
        let info: String = redis::cmd("INFO").arg("cpu").query(&mut c)?;
        sum += info
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| *k == "used_cpu_user" || *k == "used_cpu_sys")
            .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
            .sum::<f64>();
    }
    Ok(sum)
}

fn cpu(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| procstat::sample(*p).ok())
        .map(|s| s.cpu.as_secs_f64())
        .sum()
}

/// The hub with `receivers` receivers on `urls` (a cluster when several).
fn hub_run(
    rt: &tokio::runtime::Runtime,
    name: &str,
    urls: Vec<String>,
    receivers: usize,
    all: &[(String, Vec<u8>, usize)],
    conn: &mut dyn redis::ConnectionLike,
) -> anyhow::Result<HubResult> {
    let broker = Mosquitto::new()?;
    let prefix = format!("b{}", receivers);
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
    for n in [1, 2] {
        out.push(hub_run(
            rt,
            &format!("outpost-hub, {n} receiver(s), 3-node cluster"),
            cluster.urls(),
            n,
            &all,
            &mut cconn,
        )?);
        eprintln!("  {:?}", out.last());
    }
    Ok(out)
}

/// Redis' `INFO commandstats` rows with the most time (µs in all), most first: "cmd calls
/// µs/call µs".
fn redis_time(conn: &mut redis::Connection) -> anyhow::Result<Vec<String>> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn)?;
    let field = |l: &str, k: &str| -> f64 {
        l.split([':', ','])
            .find_map(|kv| kv.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let mut rows: Vec<(f64, String)> = info
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .map(|l| {
            let name = l.split(':').next().unwrap_or("?");
            let (calls, usec) = (field(l, "calls="), field(l, "usec="));
            let per = if calls > 0.0 { usec / calls } else { 0.0 };
            (
                usec,
                format!("{name:<18} {calls:>9} calls {per:>8.2} µs/call {usec:>12} µs"),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(rows.into_iter().take(10).map(|r| r.1).collect())
}

/// The Markdown table.
pub fn markdown(r: &[HubResult]) -> String {
    let bare = r
        .iter()
        .find(|x| x.name.starts_with("bare"))
        .map(HubResult::rate)
        .unwrap_or(1.0);
    let xadds: Vec<f64> = r
        .iter()
        .filter(|x| x.name.contains("XADD"))
        .map(HubResult::rate)
        .collect();
    let xadd = if xadds.is_empty() {
        1.0
    } else {
        xadds.iter().sum::<f64>() / xadds.len() as f64
    };
    let mut s = String::from("| system | events | time | events/s | vs bare mosquitto_sub | vs Redis XADD (mean of before and after) | CPU-s per 100k events | Redis CPU-s per 100k events | mean store time per batch | batches received / published | duplicates | sessions lost |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for x in r {
        let (store, recv, dups, lost) = match &x.receivers {
            Some(t) => (
                format!("{:.1} ms", t.store_mean.as_secs_f64() * 1e3),
                format!("{} / {}", t.batches_received, t.batches_published),
                t.duplicates.to_string(),
                t.sessions_lost.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        s += &format!(
            "| {} | {} | {:.2} s | {:.0} | {:.2}× | {:.2}× | {} | {} | {store} | {recv} | {dups} | {lost} |\n",
            x.name,
            x.events,
            x.elapsed.as_secs_f64(),
            x.rate(),
            x.rate() / bare,
            x.rate() / xadd,
            if x.cpu_s > 0.0 {
                format!("{:.2}", x.cpu_per_100k())
            } else {
                "-".into()
            },
            if x.redis_cpu_s > 0.0 {
                format!("{:.2}", x.redis_cpu_per_100k())
            } else {
                "-".into()
            }
        );
    }
    s
}
