//! The faults of the soak, one at a time: each is applied, held for a random while, and
//! repaired before the next (so every fault starts from a working rig).

use std::time::{Duration, Instant};

use outpost_system_tests::feed::Publisher;
use outpost_system_tests::{wait_until, Rng};

use super::Soak;

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    KillGateway,
    KillRedis,
    KillDeviceBroker,
    KillHubBroker,
    CutLink,
    BlackholeLink,
    SlowLink,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::KillGateway,
        Fault::KillRedis,
        Fault::KillDeviceBroker,
        Fault::KillHubBroker,
        Fault::CutLink,
        Fault::BlackholeLink,
        Fault::SlowLink,
    ];

    /// Uniformly one of [`Fault::ALL`].
    pub fn pick(rng: &mut Rng) -> Fault {
        Fault::ALL[(rng.next_u64() % Fault::ALL.len() as u64) as usize]
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillGateway => "kill -9 gateway",
            Fault::KillRedis => "kill -9 redis",
            Fault::KillDeviceBroker => "kill -9 device broker",
            Fault::KillHubBroker => "kill -9 hub broker",
            Fault::CutLink => "hub link cut",
            Fault::BlackholeLink => "hub link black-holed",
            Fault::SlowLink => "hub link slowed",
        }
    }
}

/// What applying a fault came to.
#[derive(Debug, Default)]
pub struct Outcome {
    /// How long the fault was held.
    pub held: Duration,
    /// Anything that went wrong with the rig itself (a restart that failed, a quiet point
    /// that was not reached), for the report.
    pub trouble: Option<String>,
}

/// Applies `fault`, holds it, repairs it.
pub fn apply(rig: &mut Soak, fault: Fault, rng: &mut Rng, pubs: &[Publisher]) -> Outcome {
    let t = Instant::now();
    let trouble = match fault {
        Fault::KillGateway => {
            let r = rig.outpost.kill9();
            std::thread::sleep(rng.millis(500, 5000));
            r.and_then(|()| rig.outpost.restart())
                .err()
                .map(|e| format!("{e:#}"))
        }
        Fault::KillRedis => {
            let r = rig.redis.kill9();
            std::thread::sleep(rng.millis(500, 4000));
            r.and_then(|()| rig.redis.restart())
                .err()
                .map(|e| format!("{e:#}"))
        }
        Fault::KillDeviceBroker => with_devices_paused(pubs, || {
            let quiet = gateway_has_everything(rig, pubs);
            let r = rig.devices.kill9();
            std::thread::sleep(rng.millis(500, 3000));
            let r = r.and_then(|()| rig.devices.start());
            join(quiet, r)
        }),
        Fault::KillHubBroker => with_devices_paused(pubs, || {
            let quiet = hub_has_everything(rig);
            let r = rig.hub_broker.kill9();
            std::thread::sleep(rng.millis(500, 3000));
            // The gateway stays off the restarted broker until the hub subscribed again:
            // mosquitto does not restore the hub's shared subscription (`Hub::wait_subscribed`).
            rig.proxy.cut();
            let r = r
                .and_then(|()| rig.hub_broker.start())
                .and_then(|()| rig.hub.wait_subscribed(Duration::from_secs(30)));
            rig.proxy.pass();
            join(quiet, r)
        }),
        Fault::CutLink => {
            rig.proxy.cut();
            std::thread::sleep(rng.millis(1000, 15_000));
            rig.proxy.pass();
            None
        }
        Fault::BlackholeLink => {
            rig.proxy.pause();
            std::thread::sleep(rng.millis(3000, 20_000));
            rig.proxy.pass();
            None
        }
        Fault::SlowLink => {
            rig.proxy.set_delay(rng.millis(100, 1500));
            std::thread::sleep(rng.millis(5000, 20_000));
            rig.proxy.set_delay(Duration::ZERO);
            None
        }
    };
    Outcome {
        held: t.elapsed(),
        trouble,
    }
}

fn join(quiet: Result<(), String>, r: anyhow::Result<()>) -> Option<String> {
    match (quiet, r) {
        (Ok(()), Ok(())) => None,
        (Err(q), Ok(())) => Some(q),
        (q, Err(e)) => Some(format!("{e:#} {}", q.err().unwrap_or_default())),
    }
}

fn with_devices_paused<T>(pubs: &[Publisher], f: impl FnOnce() -> T) -> T {
    pubs.iter().for_each(Publisher::pause);
    let out = f();
    pubs.iter().for_each(Publisher::resume);
    out
}

/// Waits (≤ 60 s) until Redis holds at least as many locations as the devices had
/// acknowledged (plus the warm-up probes), i.e. nothing is left only in the device broker.
fn gateway_has_everything(rig: &Soak, pubs: &[Publisher]) -> Result<(), String> {
    let acked: u64 = pubs.iter().map(Publisher::acked).sum::<u64>() + rig.base;
    let ok = wait_until(Duration::from_secs(60), || {
        rig.accepted().is_some_and(|n| n >= acked)
    });
    std::thread::sleep(Duration::from_millis(300));
    ok.then_some(())
        .ok_or_else(|| format!("device broker killed before the gateway had all {acked}"))
}

/// Waits (≤ 60 s) until the hub stored every location Redis accepted.
fn hub_has_everything(rig: &Soak) -> Result<(), String> {
    let ok = wait_until(Duration::from_secs(60), || {
        rig.accepted().is_some_and(|n| rig.delivered() >= n)
    });
    // Let the hub broker's autosave (1 s) write the session state it has.
    std::thread::sleep(Duration::from_millis(1500));
    ok.then_some(())
        .ok_or_else(|| "hub broker killed before the hub had everything".to_string())
}
