//! Measure 2, sustained throughput with the hub up: the publish rate steps up (×1.4 each step);
//! at each step the bare subscriber, Outpost and the bridge get the same load in turn (so noise
//! from the shared machine hits all three alike). A system keeps up at a rate when every event
//! of the step reaches the hub within `GRACE` of the generator's last PUBACK — no growing
//! backlog. A system stops stepping at its first miss; its hub-side rate in that step is its
//! saturated capacity.

use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::broker::BrokerTuning;
use crate::hub::{self, HubSub};
use crate::load::{self, Load};
use crate::sut::{Kind, Sut};

/// How far behind the generator the hub may be when a step ends.
const GRACE: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct Sustained {
    pub kind: Kind,
    /// Highest step rate kept up with (msg/s), 0 if none.
    pub max_ok: f64,
    /// Hub-side events/s in the first step it could not keep up with (its capacity).
    pub saturated: Option<f64>,
    /// The generator could not reach the next step's rate (the ceiling is the generator's).
    pub generator_bound: bool,
    /// Every step: (target rate, generator rate, hub events/s, kept up).
    pub steps: Vec<(f64, f64, f64, bool)>,
}

struct Lane {
    res: Sustained,
    sut: Sut,
    sub: HubSub,
    tst: i64,
    done: bool,
}

pub fn run(
    rt: &Runtime,
    kinds: &[Kind],
    start_rate: f64,
    step: Duration,
    tuning: BrokerTuning,
) -> anyhow::Result<Vec<Sustained>> {
    let mut lanes = Vec::new();
    for &kind in kinds {
        let sut = Sut::start(kind, tuning)?;
        let (port, shape) = sut.hub_side();
        let sub = rt.block_on(hub::subscribe(port, shape, None))?;
        lanes.push(Lane {
            res: Sustained {
                kind,
                max_ok: 0.0,
                saturated: None,
                generator_bound: false,
                steps: Vec::new(),
            },
            sut,
            sub,
            tst: load::tst_base(),
            done: false,
        });
    }
    let mut rate = start_rate;
    while lanes.iter().any(|l| !l.done) {
        for lane in lanes.iter_mut().filter(|l| !l.done) {
            one_step(rt, lane, rate, step)?;
        }
        rate *= 1.4;
    }
    Ok(lanes.into_iter().map(|l| l.res).collect())
}

fn one_step(rt: &Runtime, lane: &mut Lane, rate: f64, step: Duration) -> anyhow::Result<()> {
    let n = (rate * step.as_secs_f64()) as u64;
    let l = Load {
        devices: 100,
        conns: 4,
        total: n,
        rate: Some(rate),
        tst_base: lane.tst,
    };
    // Next step's tst values follow on, so (device, tst) stays unique across steps.
    lane.tst += (n / 100 + 1) as i64;
    let c = &lane.sub.counter;
    c.reset();
    let sent = rt.block_on(load::run(lane.sut.device.port(), &l, None))?;
    let t_end = Instant::now();
    let kept_up = rt.block_on(hub::wait_events(c, n, GRACE, GRACE));
    // Past the grace, let a lagging system finish this step (bounded) to measure its rate
    // and so the next system does not share the machine with its backlog.
    if !kept_up {
        rt.block_on(hub::wait_events(
            c,
            n,
            Duration::from_secs(5),
            Duration::from_secs(60),
        ));
    }
    let hub_rate = match (c.first(), c.last()) {
        (Some(a), Some(b)) if b > a => c.events().saturating_sub(1) as f64 / (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let gen_ok = sent.rate() >= 0.95 * rate;
    let per_message =
        c.events() as f64 / c.messages.load(std::sync::atomic::Ordering::Relaxed).max(1) as f64;
    eprintln!(
        "  {:<22} step {:>8.0}/s: generator {:>8.0}/s, hub {:>8.0} ev/s ({:.0} a message), {}{}",
        lane.res.kind.name(),
        rate,
        sent.rate(),
        hub_rate,
        per_message,
        if kept_up { "kept up" } else { "fell behind" },
        match (kept_up, c.last()) {
            (false, Some(last)) => format!(
                " (last event {:.1} s after the generator's last PUBACK)",
                last.saturating_duration_since(t_end).as_secs_f64()
            ),
            _ => String::new(),
        },
    );
    lane.res.steps.push((rate, sent.rate(), hub_rate, kept_up));
    if kept_up && gen_ok {
        lane.res.max_ok = rate;
    } else if !gen_ok {
        lane.res.generator_bound = true;
        lane.done = true;
    } else {
        lane.res.saturated = Some(hub_rate);
        lane.done = true;
    }
    Ok(())
}
