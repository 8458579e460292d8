//! `outpost-bench soak --minutes N` (issue 17; not a test, not in CI): OwnTracks devices
//! publish continuously while faults are injected one after another at random — `kill -9` of
//! the gateway, of Redis, of the device broker and of the hub broker; the hub link cut,
//! black-holed or slowed (the harness's TCP proxy). Every few minutes and at the end it prints
//! acknowledged / delivered / duplicates dropped / lost and the gateway's RSS and open file
//! descriptors; it exits non-zero on any loss (or any other broken guarantee: a duplicate past
//! the hub's dedup, a fix out of order).
//!
//! The rig is the system-test harness's: private `redis-server` (AOF, `appendfsync always`),
//! two `mosquitto`, the proxy, the real `outpost-hub` with its own Redis (read through its API), and the tracked feeds
//! and end checks of the fault tests (`outpost_system_tests::{feed, tally}`).
//!
//! Broker kills happen at a quiet point: Mosquitto's own persistence is periodic (autosave
//! every second), so a `kill -9` of a broker loses what *it* acknowledged since — no gateway
//! can recover that. Before killing the device broker the devices pause until the gateway has
//! accepted everything they published; before killing the hub broker, until the hub received
//! everything the gateway accepted. The gateway and Redis are killed mid-stream.

mod faults;
mod watch;

use std::time::{Duration, Instant};

use anyhow::Context;
use outpost_system_tests::feed::{Feed, Publisher};
use outpost_system_tests::tally::check;
use outpost_system_tests::{GatewayConfig, Hub, Mosquitto, Outpost, RedisServer, Rng, TcpProxy};

use faults::Fault;
use watch::Watch;

/// Gateway id and uplink prefix of the soak.
const GW: &str = "veh-soak";
const PREFIX: &str = "outpost/v1";

/// Soak settings (the defaults are a modest load for a shared machine).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub minutes: u64,
    /// Feeds (device connections), each with 3 phones.
    pub feeds: u64,
    /// Fixes per publish round of one feed, and the pause between rounds.
    pub chunk: u64,
    pub every: Duration,
    /// Pause between one fault's end and the next fault (uniform in this range, ms).
    pub gap_ms: (u64, u64),
    /// Progress line interval.
    pub report_every: Duration,
    pub seed: u64,
}

/// The whole rig. Field order = drop order: the gateway first.
pub struct Soak {
    pub outpost: Outpost,
    pub hub: Hub,
    pub proxy: TcpProxy,
    pub redis: RedisServer,
    pub devices: Mosquitto,
    pub hub_broker: Mosquitto,
    /// Locations accepted before the feeds started (the warm-up probes).
    pub base: u64,
}

impl Soak {
    fn start() -> anyhow::Result<Soak> {
        let redis = RedisServer::new()?;
        let devices = Mosquitto::new()?;
        let hub_broker = Mosquitto::new()?;
        let hub = Hub::start(&hub_broker.url())?;
        let proxy = TcpProxy::start(hub_broker.addr())?;
        let cfg = GatewayConfig::new(GW, &redis.url(), &devices.url(), &proxy.mqtt_url())
            .topic_prefix(PREFIX)
            .mqtt("owntracks")
            .keep_alive("5s");
        let outpost = Outpost::start_with(&cfg)?;
        Ok(Soak {
            outpost,
            hub,
            proxy,
            redis,
            devices,
            hub_broker,
            base: 0,
        })
    }

    /// `<prefix>:stats accepted:location`; `None` while Redis does not answer.
    pub fn accepted(&self) -> Option<u64> {
        let mut c = self.redis.conn().ok()?;
        redis::cmd("HGET")
            .arg("outpost:stats")
            .arg("accepted:location")
            .query::<Option<u64>>(&mut c)
            .ok()
            .map(|n| n.unwrap_or(0))
    }

    /// Location events the hub stored (each once).
    pub fn delivered(&self) -> u64 {
        self.hub.events_for(GW, "location").len() as u64
    }
}

/// Runs the soak; `Ok(true)` when nothing was lost and every check held.
pub fn run(s: Settings) -> anyhow::Result<bool> {
    let t0 = Instant::now();
    let mut rig = Soak::start().context("start the rig")?;
    warm_up(&rig)?;
    std::thread::sleep(Duration::from_secs(1));
    rig.base = rig.accepted().context("redis after warm-up")?;
    let publishers: Vec<Publisher> = (0..s.feeds)
        .map(|i| {
            Publisher::start(
                Feed::new(&rig.devices.url(), &format!("s{i}"), 3),
                s.chunk,
                s.every,
            )
        })
        .collect();
    let mut rng = Rng::new(s.seed);
    let mut watch = Watch::new(t0);
    let end = t0 + Duration::from_secs(s.minutes * 60);
    let mut next_report = Instant::now() + s.report_every;
    eprintln!(
        "soak: {} min, {} feeds x 3 phones, {} fixes every {:?} per feed, seed {}",
        s.minutes, s.feeds, s.chunk, s.every, s.seed
    );
    while Instant::now() < end {
        let gap = rng.millis(s.gap_ms.0, s.gap_ms.1);
        sleep_watching(
            &rig,
            &mut watch,
            gap,
            &publishers,
            &mut next_report,
            s.report_every,
        );
        if Instant::now() >= end {
            break;
        }
        let fault = Fault::pick(&mut rng);
        let outcome = faults::apply(&mut rig, fault, &mut rng, &publishers);
        watch.fault(fault, &outcome);
        watch.sample(&rig, acked(&publishers));
    }
    eprintln!("soak: time is up; stopping the devices and waiting for the hub to have everything");
    let feeds: Vec<Feed> = publishers.into_iter().map(Publisher::stop).collect();
    rig.proxy.pass();
    rig.proxy.set_delay(Duration::ZERO);
    let acked: usize = feeds.iter().map(|f| f.acked.len()).sum();
    let all_in = outpost_system_tests::wait_until(Duration::from_secs(180), || {
        let events = rig.hub.events_for(GW, "location");
        feeds.iter().all(|f| f.missing(&events) == 0)
    });
    std::thread::sleep(Duration::from_secs(1));
    watch.sample(&rig, acked as u64);
    let refs: Vec<&Feed> = feeds.iter().collect();
    let (tally, problems) = check(&rig.hub, GW, &refs);
    watch.report(&rig, acked as u64);
    println!("{}", watch.markdown(&tally, &s, t0.elapsed()));
    for p in &problems {
        println!("PROBLEM: {p}");
    }
    if !all_in {
        println!("not everything acknowledged reached the hub within 180 s of the end");
    }
    let ok = tally.lost == 0 && problems.is_empty();
    if !ok {
        let log = rig.outpost.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!(
            "--- gateway log tail ---\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(ok)
}

/// Fixes the device broker acknowledged so far, all feeds.
fn acked(publishers: &[Publisher]) -> u64 {
    publishers.iter().map(Publisher::acked).sum()
}

/// One probe fix end to end before measuring (the gateway subscribes after it connects).
fn warm_up(rig: &Soak) -> anyhow::Result<()> {
    let mut probe = Feed::new(&rig.devices.url(), "probe", 1);
    let ok = outpost_system_tests::wait_until(Duration::from_secs(60), || {
        probe.publish(1);
        outpost_system_tests::wait_until(Duration::from_millis(500), || {
            rig.hub.device("probe-d0").is_some()
        })
    });
    anyhow::ensure!(
        ok,
        "warm-up: no probe reached the hub\n{}",
        rig.outpost.log()
    );
    Ok(())
}

/// Sleeps `d`, printing a progress line whenever one is due.
fn sleep_watching(
    rig: &Soak,
    watch: &mut Watch,
    d: Duration,
    publishers: &[Publisher],
    next_report: &mut Instant,
    every: Duration,
) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250).min(until - Instant::now()));
        if Instant::now() >= *next_report {
            watch.sample(rig, acked(publishers));
            watch.report(rig, acked(publishers));
            *next_report = Instant::now() + every;
        }
    }
}
