//! A whole test bench in one value: private Redis, device broker, hub broker, an optional fault
//! proxy between the gateway and the hub broker, and the real hub (`outpost-hub` with its own
//! Redis) — everything an end-to-end test of `outpost run` needs, on free ports, cleaned up on
//! drop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tempfile::TempDir;

use crate::{Device, GatewayConfig, Hub, Mosquitto, Outpost, RedisServer, TcpProxy, WireTap};

/// Gateway id used by [`Rig`] configs.
pub const GW: &str = "veh-0042";

/// Redis, two brokers, maybe a proxy, and the real hub.
pub struct Rig {
    /// The gateway's local Redis.
    pub redis: RedisServer,
    /// The broker field devices publish to.
    pub devices: Mosquitto,
    /// The regional hub's broker.
    pub hub_broker: Mosquitto,
    /// Between the gateway and the hub broker, when asked for.
    pub proxy: Option<TcpProxy>,
    /// The real hub on the hub broker (subscribed before the gateway starts): what it stored
    /// is what was delivered.
    pub hub: Hub,
}

impl Rig {
    /// A bench with the gateway talking to the hub broker directly.
    pub fn new() -> anyhow::Result<Self> {
        Self::build(false)
    }

    /// A bench with a [`TcpProxy`] between the gateway and the hub broker.
    pub fn with_proxy() -> anyhow::Result<Self> {
        Self::build(true)
    }

    fn build(proxy: bool) -> anyhow::Result<Self> {
        let redis = RedisServer::new()?;
        let devices = Mosquitto::new()?;
        let hub_broker = Mosquitto::new()?;
        let proxy = if proxy {
            Some(TcpProxy::start(hub_broker.addr())?)
        } else {
            None
        };
        let hub = Hub::start(&hub_broker.url())?;
        Ok(Self {
            redis,
            devices,
            hub_broker,
            proxy,
            hub,
        })
    }

    /// The URL the gateway uses for the hub (through the proxy if there is one).
    pub fn uplink_url(&self) -> String {
        match &self.proxy {
            Some(p) => p.mqtt_url(),
            None => self.hub_broker.url(),
        }
    }

    /// A gateway config for [`GW`] pointing at this bench (uplink keep-alive 5 s, the MQTT 5
    /// client's shortest, so a dead link is noticed quickly).
    pub fn config(&self) -> GatewayConfig {
        GatewayConfig::new(
            GW,
            &self.redis.url(),
            &self.devices.url(),
            &self.uplink_url(),
        )
        .keep_alive("5s")
    }

    /// Starts `outpost run` on `cfg` and returns once it subscribed to every `[[mqtt]]` filter
    /// on the device broker: only from then on does its persistent session keep what devices
    /// publish.
    pub fn start(&self, cfg: &GatewayConfig) -> anyhow::Result<Outpost> {
        let before = self.devices.subscriptions_of(&cfg.devices_client_id);
        let gw = Outpost::start_with(cfg)?;
        self.wait_subscribed(&gw, cfg, before)?;
        Ok(gw)
    }

    /// Waits until `gw` subscribed all of `cfg`'s filters, counting broker log lines after
    /// `before` (from [`Mosquitto::subscriptions_of`]).
    pub fn wait_subscribed(
        &self,
        gw: &Outpost,
        cfg: &GatewayConfig,
        before: usize,
    ) -> anyhow::Result<()> {
        let want = before + cfg.mqtt.len();
        let ok = crate::wait_until(Duration::from_secs(20), || {
            self.devices.subscriptions_of(&cfg.devices_client_id) >= want
        });
        if !ok {
            anyhow::bail!(
                "outpost did not subscribe on the device broker within 20 s; its log:\n{}",
                gw.log()
            );
        }
        Ok(())
    }

    /// A [`WireTap`] on the hub broker, for a test that asserts on the wire itself (connect it
    /// before starting the gateway).
    pub fn wire_tap(&self) -> anyhow::Result<WireTap> {
        WireTap::connect(&self.hub_broker.url(), "outpost/v1")
    }

    /// Publishes QoS 1 on the hub broker as dispatch would (e.g. a hand-made `down` message the
    /// hub's API would refuse to send); returns once the broker acknowledged it.
    pub fn publish_on_hub_broker(&self, topic: &str, payload: &[u8]) -> anyhow::Result<()> {
        Device::connect(&self.hub_broker.url(), "outpost-test-dispatch")?
            .publish_qos1(topic, payload.to_vec())
    }

    /// (dev, ts) of every location the hub stored, in id order.
    pub fn stored_locations(&self) -> Vec<(String, String)> {
        self.hub
            .events_of("location")
            .iter()
            .map(|e| {
                (
                    e["dev"].as_str().unwrap_or_default().into(),
                    e["ts"].as_str().unwrap_or_default().into(),
                )
            })
            .collect()
    }

    /// Stops the hub broker (gracefully) and waits until the hub noticed.
    pub fn stop_hub_broker(&mut self) -> anyhow::Result<()> {
        self.hub_broker.stop()?;
        self.hub.wait_broker_down(Duration::from_secs(20))
    }

    /// Starts the hub broker again, the gateway's link cut at the proxy until the hub
    /// subscribed again, then passes the link: for tests holding a [`WireTap`], which would
    /// take the batches the hub is not yet there for ([`Hub::wait_subscribed`] says why).
    pub fn start_hub_broker(&mut self) -> anyhow::Result<()> {
        self.proxy().cut();
        self.hub_broker.start()?;
        self.hub.wait_subscribed(Duration::from_secs(30))?;
        self.proxy().pass();
        Ok(())
    }

    /// The proxy (panics if the bench has none).
    pub fn proxy(&self) -> &TcpProxy {
        self.proxy.as_ref().expect("rig built without proxy")
    }

    /// A device client on the device broker.
    pub fn device(&self, client_id: &str) -> anyhow::Result<Device> {
        Device::connect(&self.devices.url(), client_id)
    }

    /// `<prefix>:drops` as a map (reason → count); empty when Redis has none.
    pub fn drops(&self) -> HashMap<String, u64> {
        self.hash("outpost:drops")
    }

    /// `<prefix>:stats` as a map.
    pub fn stats(&self) -> HashMap<String, u64> {
        self.hash("outpost:stats")
    }

    /// A Redis hash of integers; empty on any error (e.g. Redis not reachable).
    pub fn hash(&self, key: &str) -> HashMap<String, u64> {
        let Ok(mut c) = self.redis.conn() else {
            return HashMap::new();
        };
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut c)
            .unwrap_or_default()
    }

    /// One field of a Redis hash, as text; `None` if absent or Redis is not reachable.
    pub fn hget(&self, key: &str, field: &str) -> Option<String> {
        let mut c = self.redis.conn().ok()?;
        redis::cmd("HGET").arg(key).arg(field).query(&mut c).ok()?
    }

    /// The states of the receipts (SPEC §8) of `msg_id` the hub got, in order.
    pub fn receipt_states(&self, msg_id: &str) -> Vec<String> {
        self.hub
            .events_of("receipt")
            .iter()
            .filter(|e| e["msg_id"] == msg_id)
            .map(|e| e["state"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// `state` of `<prefix>:uplink` (`up`/`down`).
    pub fn uplink_state(&self) -> Option<String> {
        self.hget("outpost:uplink", "state")
    }

    /// `accepted:<class>` of `<prefix>:stats` (0 if absent).
    pub fn accepted(&self, class: &str) -> u64 {
        self.stats()
            .get(&format!("accepted:{class}"))
            .copied()
            .unwrap_or(0)
    }

    /// Events currently in the outbox stream of `class` (not yet acknowledged by the hub).
    pub fn outbox_len(&self, class: &str) -> u64 {
        let Ok(mut c) = self.redis.conn() else {
            return u64::MAX;
        };
        redis::cmd("XLEN")
            .arg(format!("outpost:outbox:{class}"))
            .query(&mut c)
            .unwrap_or(u64::MAX)
    }
}

/// The events of device `dev` among `events`, in their order.
pub fn of_dev(events: &[Value], dev: &str) -> Vec<Value> {
    events.iter().filter(|e| e["dev"] == dev).cloned().collect()
}

/// A copy of the workspace's `device-profiles/` in a temp dir, to edit for one test.
pub struct ProfileDir {
    dir: TempDir,
}

impl ProfileDir {
    /// Copies every `*.toml` profile of the workspace.
    pub fn copy() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("outpost-profiles-")
            .tempdir()
            .context("create profiles temp dir")?;
        let src = crate::workspace_root().join("device-profiles");
        for entry in std::fs::read_dir(&src).context("read device-profiles")? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let name = path.file_name().expect("file has a name");
                std::fs::copy(&path, dir.path().join(name))?;
            }
        }
        Ok(Self { dir })
    }

    /// The folder, for `[gateway] profiles`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The file of profile `name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.toml"))
    }

    /// Sets a top-level `key = value` line of profile `name` (replacing the existing one);
    /// `value` is raw TOML, e.g. `"\"2s\""`.
    pub fn set(&self, name: &str, key: &str, value: &str) -> anyhow::Result<()> {
        let path = self.file(name);
        let text = std::fs::read_to_string(&path)?;
        let prefix = format!("{key} ");
        let mut found = false;
        let mut out: Vec<String> = text
            .lines()
            .map(|l| {
                if !found && (l.starts_with(&prefix) || l.starts_with(&format!("{key}="))) {
                    found = true;
                    format!("{key} = {value}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        if !found {
            // Top-level keys must precede the first table.
            let at = out.iter().position(|l| l.starts_with('[')).unwrap_or(0);
            out.insert(at, format!("{key} = {value}"));
        }
        std::fs::write(&path, out.join("\n") + "\n")?;
        Ok(())
    }
}

/// Unix seconds as the gateway writes `ts`: RFC 3339 UTC with milliseconds.
pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
