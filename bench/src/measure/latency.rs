//! Measure 3, live latency: 100 devices at 1,000 msg/s in total with the hub up; each event
//! at the hub is matched back to its send time by its unique (device, tst). Outpost and the
//! bridge run one after the other, same load.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::broker::BrokerTuning;
use crate::hub;
use crate::load::{self, Load, SendLog};
use crate::sut::{Kind, Sut};

#[derive(Clone, Debug)]
pub struct Latency {
    pub kind: Kind,
    pub matched: usize,
    pub sent: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Outpost: Redis' own latency events (≥ 20 ms), e.g. `aof-fsync-always`.
    pub redis_stalls: Vec<String>,
}

pub fn run(
    rt: &Runtime,
    kind: Kind,
    rate: f64,
    duration: Duration,
    tuning: BrokerTuning,
) -> anyhow::Result<Latency> {
    let sut = Sut::start(kind, tuning)?;
    let (port, shape) = sut.hub_side();
    let log = Arc::new(SendLog::default());
    let sub = rt.block_on(hub::subscribe(port, shape, Some(log.clone())))?;
    if kind == Kind::Outpost {
        sut.redis_latency_monitor(20)?;
    }
    let n = (rate * duration.as_secs_f64()) as u64;
    let l = Load {
        devices: 100,
        conns: 4,
        total: n,
        rate: Some(rate),
        tst_base: load::tst_base(),
    };
    rt.block_on(load::run(sut.device.port(), &l, Some(log)))?;
    rt.block_on(hub::wait_events(
        &sub.counter,
        n,
        Duration::from_secs(5),
        Duration::from_secs(60),
    ));
    let mut redis_stalls = Vec::new();
    if kind == Kind::Outpost {
        redis_stalls = sut.redis_latency_latest()?;
        eprintln!("  redis LATENCY LATEST (≥ 20 ms): {redis_stalls:?}");
    }
    let pairs = sub.counter.latencies();
    if let Some(t0) = pairs.iter().map(|p| p.0).min() {
        // Where the slow ones sit in time (startup, periodic stalls): the 20 slowest.
        let mut slow: Vec<_> = pairs.iter().map(|(t, l)| (*l, *t - t0)).collect();
        slow.sort();
        let tail: Vec<String> = slow
            .iter()
            .rev()
            .take(20)
            .map(|(l, at)| format!("{:.0}ms@{:.2}s", l.as_secs_f64() * 1e3, at.as_secs_f64()))
            .collect();
        eprintln!("  slowest (latency@send offset): {}", tail.join(" "));
    }
    let mut lat: Vec<Duration> = pairs.iter().map(|p| p.1).collect();
    lat.sort();
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Latency {
        kind,
        matched: lat.len(),
        sent: n,
        p50: q(0.50),
        p99: q(0.99),
        max: lat.last().copied().unwrap_or_default(),
        redis_stalls,
    })
}
