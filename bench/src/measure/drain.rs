//! Measure 1, backlog drain: the hub link is cut, N OwnTracks messages from 50 devices are
//! published at QoS 1 and accepted (Outpost: all in Redis; bridge: all acknowledged by its
//! broker, plus a settle), then the link comes back. Reported: time from the hub's return to
//! the first event at the hub, and the drain rate from first to last event.
//!
//! Outpost's run also yields Redis bytes per buffered location (measure 4): `used_memory`
//! before and after the backlog.

use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::runtime::Runtime;

use crate::broker::BrokerTuning;
use crate::hub::{self, HubSub};
use crate::load::{self, Load};
use crate::sut::{Kind, Sut};

/// Messages per publish chunk (a multiple of the 50 devices).
const CHUNK: u64 = 2000;

#[derive(Clone, Debug)]
pub struct Drain {
    pub kind: Kind,
    pub n: u64,
    /// Generator rate into the device broker while the hub was down.
    pub publish_rate: f64,
    /// From the first publish until the system held the whole backlog.
    pub accept_time: Duration,
    /// Hub back → first event at the hub.
    pub first_after: Duration,
    /// Events/s from the first to the last event at the hub.
    pub rate: f64,
    pub delivered: u64,
    /// Outpost only: Redis `used_memory` growth per buffered location.
    pub redis_bytes_per_event: Option<f64>,
}

pub fn run(rt: &Runtime, kind: Kind, n: u64, tuning: BrokerTuning) -> anyhow::Result<Drain> {
    let sut = Sut::start(kind, tuning)?;
    let (port, shape) = sut.hub_side();
    let sub: HubSub = rt.block_on(hub::subscribe(port, shape, None))?;
    sut.hub_down();
    std::thread::sleep(Duration::from_millis(500));
    let mem_before = match kind {
        Kind::Outpost => Some(sut.redis_used_memory()?),
        _ => None,
    };
    // Published in chunks, each waiting until the system holds the previous one: with a
    // deeper broker-side backlog Outpost's device ingest deadlocks (see README, Benchmarks).
    let t_pub = Instant::now();
    let mut published = 0;
    let mut gen_time = Duration::ZERO;
    let base = load::tst_base();
    while published < n {
        let l = Load {
            devices: 50,
            conns: 4,
            total: CHUNK.min(n - published),
            rate: None,
            tst_base: base + (published / 50) as i64,
        };
        let sent = rt.block_on(load::run(sut.device.port(), &l, None))?;
        gen_time += sent.elapsed;
        published += sent.published;
        if kind == Kind::Outpost {
            sut.wait_accepted(published, Duration::from_secs(120))?;
        }
    }
    if kind != Kind::Outpost {
        std::thread::sleep(Duration::from_secs(1));
    }
    let accept_time = t_pub.elapsed();
    let redis_bytes_per_event = match mem_before {
        Some(before) => Some((sut.redis_used_memory()? as f64 - before as f64) / n as f64),
        None => None,
    };
    if sub.counter.events() > 0 {
        bail!(
            "{}: events reached the hub while it was cut off",
            kind.name()
        );
    }
    sub.counter.reset();
    let t0 = Instant::now();
    sut.hub_up();
    // Reconnect backoffs (Outpost: up to 30 s with jitter; mosquitto bridge: 5–30 s) come
    // first, so allow for them before giving up on the first event.
    let all = rt.block_on(hub::wait_events(
        &sub.counter,
        n,
        Duration::from_secs(45),
        Duration::from_secs(600),
    ));
    if kind == Kind::Outpost {
        eprintln!("  redis commandstats: {:?}", sut.redis_commandstats()?);
        if let Some(o) = &sut.outpost {
            eprintln!(
                "  outpost log lines mentioning uplink: {:?}",
                o.log()
                    .lines()
                    .filter(|l| l.contains("uplink"))
                    .map(|l| l.chars().skip(11).take(160).collect::<String>())
                    .collect::<Vec<_>>()
            );
        }
    }
    let c = &sub.counter;
    let delivered = c.events();
    let (Some(first), Some(last)) = (c.first(), c.last()) else {
        bail!(
            "{}: nothing reached the hub after it came back",
            kind.name()
        );
    };
    if !all {
        eprintln!(
            "  warning: {}: only {delivered} of {n} events reached the hub",
            kind.name()
        );
    }
    Ok(Drain {
        kind,
        n,
        publish_rate: n as f64 / gen_time.as_secs_f64().max(1e-9),
        accept_time,
        first_after: first.saturating_duration_since(t0),
        rate: delivered.saturating_sub(1) as f64 / (last - first).as_secs_f64().max(1e-9),
        delivered,
        redis_bytes_per_event,
    })
}
