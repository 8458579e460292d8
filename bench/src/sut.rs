//! The systems under test, each with its own device broker, hub broker and a TCP proxy in front
//! of the hub (the link that is cut in the backlog measure, identically for both):
//!
//! - [`Kind::Outpost`]: the release `outpost` binary with a private Redis (AOF,
//!   `appendfsync always`: durable), subscribed to the device broker.
//! - [`Kind::Bridge`]: the device broker bridges `owntracks/#` out to the hub (QoS 1,
//!   `cleansession false`, queue unbounded).
//! - [`Kind::Bare`]: no forwarding at all; the "hub" subscriber subscribes to the device broker
//!   itself — what the broker can deliver to one QoS 1 subscriber, the ceiling for the others.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use outpost_system_tests::{GatewayConfig, Outpost, RedisServer, TcpProxy};

use crate::broker::{BridgeTo, Broker, BrokerTuning};
use crate::hub::Shape;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Outpost,
    Bridge,
    Bare,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Outpost => "Outpost",
            Kind::Bridge => "Mosquitto bridge",
            Kind::Bare => "bare QoS 1 subscriber",
        }
    }
}

/// One running system under test; everything stops on drop (Outpost first).
pub struct Sut {
    pub kind: Kind,
    // Field order = drop order: the daemon before the servers it talks to.
    pub outpost: Option<Outpost>,
    pub redis: Option<RedisServer>,
    pub device: Broker,
    pub proxy: Option<TcpProxy>,
    pub hub: Broker,
}

impl Sut {
    /// Starts the system and waits until it is connected to the device broker and the hub.
    pub fn start(kind: Kind, tuning: BrokerTuning) -> anyhow::Result<Sut> {
        let hub = Broker::start("hub", tuning)?;
        if kind == Kind::Bare {
            let device = Broker::start("device", tuning)?;
            return Ok(Sut {
                kind,
                outpost: None,
                redis: None,
                device,
                proxy: None,
                hub,
            });
        }
        let proxy = TcpProxy::start(hub.addr()).context("hub proxy")?;
        let (device, redis, outpost) = match kind {
            Kind::Bridge => {
                let device = Broker::bridged(tuning, BridgeTo { port: proxy.port() })?;
                (device, None, None)
            }
            _ => {
                let device = Broker::start("device", tuning)?;
                let redis = RedisServer::new()?;
                let mut cfg =
                    GatewayConfig::new("bench-gw", &redis.url(), &device.url(), &proxy.mqtt_url())
                        .mqtt("owntracks");
                if let Some(n) = tuning.uplink_inflight {
                    cfg = cfg.inflight(n);
                }
                let outpost = Outpost::start_with(&cfg)?;
                if !outpost.wait_for_log("device broker connected", Duration::from_secs(20)) {
                    bail!(
                        "outpost did not connect to the device broker:\n{}",
                        outpost.log()
                    );
                }
                (device, Some(redis), Some(outpost))
            }
        };
        let sut = Sut {
            kind,
            outpost,
            redis,
            device,
            proxy: Some(proxy),
            hub,
        };
        sut.wait_hub_link(Duration::from_secs(40))?;
        Ok(sut)
    }

    /// What the hub-side subscriber sees and where it subscribes.
    pub fn hub_side(&self) -> (u16, Shape) {
        match self.kind {
            Kind::Outpost => (self.hub.port(), Shape::Batches),
            Kind::Bridge => (self.hub.port(), Shape::Raw),
            Kind::Bare => (self.device.port(), Shape::Raw),
        }
    }

    /// Waits until the system holds a connection to the hub through the proxy.
    pub fn wait_hub_link(&self, timeout: Duration) -> anyhow::Result<()> {
        let Some(proxy) = &self.proxy else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        while proxy.connections_active() == 0 {
            if Instant::now() > deadline {
                bail!("{} did not connect to the hub", self.kind.name());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(o) = &self.outpost {
            if !o.wait_for_log("uplink connected", timeout) {
                bail!("outpost uplink did not connect:\n{}", o.log());
            }
        }
        Ok(())
    }

    /// Cuts the link to the hub (connections closed, new ones refused).
    pub fn hub_down(&self) {
        if let Some(p) = &self.proxy {
            p.cut();
        }
    }

    /// Restores the link to the hub.
    pub fn hub_up(&self) {
        if let Some(p) = &self.proxy {
            p.pass();
        }
    }

    fn redis_conn(&self) -> anyhow::Result<redis::Connection> {
        self.redis.as_ref().context("no redis")?.conn()
    }

    /// Outpost: `outpost:stats` `accepted:location` (events Redis has).
    pub fn accepted_locations(&self) -> anyhow::Result<u64> {
        let mut c = self.redis_conn()?;
        let n: Option<u64> = redis::cmd("HGET")
            .arg("outpost:stats")
            .arg("accepted:location")
            .query(&mut c)?;
        Ok(n.unwrap_or(0))
    }

    /// Outpost: Redis `INFO memory` `used_memory`.
    pub fn redis_used_memory(&self) -> anyhow::Result<u64> {
        let mut c = self.redis_conn()?;
        let info: String = redis::cmd("INFO").arg("memory").query(&mut c)?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .context("used_memory in INFO")
    }

    /// Outpost: turns on Redis' latency monitor (events slower than `ms`).
    pub fn redis_latency_monitor(&self, ms: u32) -> anyhow::Result<()> {
        let mut c = self.redis_conn()?;
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("latency-monitor-threshold")
            .arg(ms)
            .query(&mut c)?;
        Ok(())
    }

    /// Outpost: Redis `LATENCY LATEST`, as `event: latest/max ms (at)` lines.
    pub fn redis_latency_latest(&self) -> anyhow::Result<Vec<String>> {
        let mut c = self.redis_conn()?;
        let rows: Vec<(String, i64, i64, i64)> =
            redis::cmd("LATENCY").arg("LATEST").query(&mut c)?;
        Ok(rows
            .into_iter()
            .map(|(ev, _at, latest, max)| format!("{ev} latest {latest} ms, max {max} ms"))
            .collect())
    }

    /// Outpost: Redis `INFO commandstats` rows of the commands Outpost's hot paths use
    /// (calls, µs per call), for attributing time.
    pub fn redis_commandstats(&self) -> anyhow::Result<Vec<String>> {
        let mut c = self.redis_conn()?;
        let info: String = redis::cmd("INFO").arg("commandstats").query(&mut c)?;
        Ok(info
            .lines()
            .filter(|l| {
                ["evalsha", "xrange", "exec", "xadd"]
                    .iter()
                    .any(|k| l.starts_with(&format!("cmdstat_{k}:")))
            })
            .map(|l| l.trim().to_string())
            .collect())
    }

    /// Waits until Outpost has accepted `n` locations; the time it took.
    pub fn wait_accepted(&self, n: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.accepted_locations()?;
            if got >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("outpost accepted only {got} of {n} locations in {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
