//! Measure 4, footprint: Outpost and the bridge side by side at 100 devices × 1 Hz with the hub
//! up. Outpost's RSS and CPU from /proc (plus its Redis, for context); the bridge's device
//! broker, which does the bridging, likewise; uplink bytes per location event at the hub
//! (payload + topic bytes of every PUBLISH / events).

use std::time::Duration;

use tokio::runtime::Runtime;

use crate::broker::BrokerTuning;
use crate::hub;
use crate::load::{self, Load};
use crate::procstat::{self, Sample};
use crate::sut::{Kind, Sut};

#[derive(Clone, Debug)]
pub struct Usage {
    pub rss: u64,
    pub hwm: u64,
    /// Share of one core.
    pub cpu: f64,
}

#[derive(Clone, Debug)]
pub struct Footprint {
    pub kind: Kind,
    /// Outpost itself, or the bridging mosquitto.
    pub main: Usage,
    /// Outpost's Redis.
    pub redis: Option<Usage>,
    pub uplink_bytes_per_event: f64,
    pub events: u64,
    /// Devices reporting at 1 Hz each.
    pub devices: u64,
}

fn usage(a: &Sample, b: &Sample) -> Usage {
    Usage {
        rss: b.rss,
        hwm: b.hwm,
        cpu: procstat::cpu_share(a, b),
    }
}

pub fn run(
    rt: &Runtime,
    duration: Duration,
    tuning: BrokerTuning,
    devices: u64,
) -> anyhow::Result<Vec<Footprint>> {
    let suts = [
        Sut::start(Kind::Outpost, tuning)?,
        Sut::start(Kind::Bridge, tuning)?,
    ];
    let mut subs = Vec::new();
    for s in &suts {
        let (port, shape) = s.hub_side();
        subs.push(rt.block_on(hub::subscribe(port, shape, None))?);
    }
    let pids: Vec<(u32, Option<u32>)> = suts
        .iter()
        .map(|s| match s.kind {
            Kind::Outpost => (
                s.outpost
                    .as_ref()
                    .and_then(|o| o.pid())
                    .expect("outpost pid"),
                s.redis.as_ref().map(redis_pid),
            ),
            _ => (s.device.pid(), None),
        })
        .collect();
    let take = |pid: u32| procstat::sample(pid);
    let before: Vec<(Sample, Option<Sample>)> = pids
        .iter()
        .map(|(p, r)| Ok((take(*p)?, r.map(take).transpose()?)))
        .collect::<anyhow::Result<_>>()?;
    let n = devices * duration.as_secs();
    let l = Load {
        devices: devices as usize,
        conns: 4,
        total: n,
        rate: Some(devices as f64),
        tst_base: load::tst_base(),
    };
    let (a, b) = rt.block_on(async {
        tokio::join!(
            load::run(suts[0].device.port(), &l, None),
            load::run(suts[1].device.port(), &l, None)
        )
    });
    a.and(b)?;
    for s in &subs {
        rt.block_on(hub::wait_events(
            &s.counter,
            n,
            Duration::from_secs(3),
            Duration::from_secs(30),
        ));
    }
    let mut out = Vec::new();
    for (i, s) in suts.iter().enumerate() {
        let (p, r) = pids[i];
        let main = usage(&before[i].0, &take(p)?);
        let redis = match (r, &before[i].1) {
            (Some(r), Some(b)) => Some(usage(b, &take(r)?)),
            _ => None,
        };
        let c = &subs[i].counter;
        let events = c.events();
        out.push(Footprint {
            kind: s.kind,
            main,
            redis,
            uplink_bytes_per_event: c.bytes.load(std::sync::atomic::Ordering::Relaxed) as f64
                / events.max(1) as f64,
            events,
            devices,
        });
    }
    Ok(out)
}

fn redis_pid(r: &outpost_system_tests::RedisServer) -> u32 {
    let mut c = r.conn().expect("redis conn");
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut c)
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
