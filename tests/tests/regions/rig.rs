//! The regions tests' rig: two regions, each a broker, Redis and receiver behind a proxy, and
//! one gateway with an `[[uplink]]` for each.

use std::collections::BTreeMap;
use std::time::Duration;

use outpost_system_tests::{
    hub_sync, wait_until, Device, GatewayConfig, HubApi, HubConfig, HubProc, Mosquitto, Outpost,
    ProfileDir, RedisServer, TcpProxy,
};
use serde_json::Value;

pub const T: Duration = Duration::from_secs(60);
pub const GW: &str = "veh-r";
pub const CLASSES: [&str; 6] = [
    "alert", "message", "receipt", "presence", "status", "location",
];

/// One region: its broker, store and receiver, behind a proxy the gateway's config points at.
pub struct Region {
    pub name: &'static str,
    pub redis: RedisServer,
    pub broker: Mosquitto,
    pub hub: HubProc,
    pub proxy: TcpProxy,
}

pub struct Servers {
    pub redis: RedisServer,
    pub broker: Mosquitto,
    pub hub: HubProc,
}

pub fn servers(name: &str) -> Servers {
    let redis = RedisServer::new().unwrap();
    let broker = Mosquitto::new().unwrap();
    let mut cfg = HubConfig::new(&format!("{name}-1"), &broker.url(), vec![redis.url()]);
    cfg.region = name.into();
    let hub = HubProc::start(&cfg).unwrap();
    Servers { redis, broker, hub }
}

impl Region {
    pub fn new(name: &'static str) -> Self {
        let s = servers(name);
        let proxy = TcpProxy::start(s.broker.addr()).unwrap();
        Region {
            name,
            redis: s.redis,
            broker: s.broker,
            hub: s.hub,
            proxy,
        }
    }

    pub fn api(&self) -> HubApi {
        self.hub.api()
    }

    /// Events of every class the hub stored for the gateway.
    pub fn events(&self) -> BTreeMap<&'static str, Vec<Value>> {
        let api = self.api();
        CLASSES
            .iter()
            .map(|c| (*c, api.all_events(GW, c, 500).unwrap_or_default()))
            .collect()
    }

    pub fn count(&self, class: &str) -> usize {
        self.api().all_events(GW, class, 500).map_or(0, |v| v.len())
    }

    /// `kill -9` of broker, receiver and Redis; their temp dirs are deleted; then new, empty
    /// ones behind the same proxy address.
    pub fn lose(&mut self) {
        self.hub.kill9().unwrap();
        self.broker.kill9().unwrap();
        self.redis.kill9().unwrap();
        self.proxy.cut();
    }

    pub fn rebuild(&mut self) {
        let s = servers(self.name);
        // Drops the old harness objects: their data directories go with them.
        (self.redis, self.broker, self.hub) = (s.redis, s.broker, s.hub);
        self.proxy.retarget(self.broker.addr());
        self.proxy.pass();
    }
}

/// The gateway side: its Redis and device broker, the profiles, and the config text.
pub struct Gateway {
    pub redis: RedisServer,
    pub devices: Mosquitto,
    pub _profiles: ProfileDir,
    pub cfg: GatewayConfig,
}

impl Gateway {
    pub fn new(regions: &[&Region], max_lag: &str) -> Self {
        let redis = RedisServer::new().unwrap();
        let devices = Mosquitto::new().unwrap();
        let profiles = ProfileDir::copy().unwrap();
        let mut cfg = GatewayConfig::new(GW, &redis.url(), &devices.url(), "mqtt://unused:1")
            .profiles(profiles.path())
            .keep_alive("5s")
            .mqtt("owntracks");
        let mut extra = String::new();
        for r in &regions[1..] {
            extra += &format!(
                "[[uplink]]\nname = \"{}\"\nurl = \"{}\"\nkeep_alive = \"5s\"\nmax_lag = \"{max_lag}\"\n\n",
                r.name,
                r.proxy.mqtt_url()
            );
        }
        cfg = cfg.extra_toml(&extra);
        cfg.uplink_url = regions[0].proxy.mqtt_url();
        let first = format!(
            "[[uplink]]\nname = \"{}\"\nmax_lag = \"{max_lag}\"\n",
            regions[0].name
        );
        cfg.uplink_header = Some(first);
        Gateway {
            redis,
            devices,
            _profiles: profiles,
            cfg,
        }
    }

    pub fn start(&self) -> Outpost {
        let gw = Outpost::start(&self.cfg.to_toml()).unwrap();
        assert!(
            wait_until(T, || self
                .devices
                .subscriptions_of(&self.cfg.devices_client_id)
                > 0),
            "gateway did not subscribe: {}",
            gw.log()
        );
        gw
    }

    pub fn hash(&self, key: &str) -> BTreeMap<String, String> {
        let mut c = self.redis.conn().unwrap();
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut c)
            .unwrap_or_default()
    }

    pub fn region_state(&self, name: &str) -> Option<String> {
        self.hash(&format!("outpost:uplink:{name}")).remove("state")
    }

    pub fn accepted(&self) -> BTreeMap<String, u64> {
        self.hash("outpost:stats")
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("accepted:")?.to_string(), v.parse().ok()?)))
            .collect()
    }

    pub fn total_accepted(&self) -> u64 {
        self.accepted().values().sum()
    }

    pub fn outbox_len(&self) -> u64 {
        let mut c = self.redis.conn().unwrap();
        CLASSES
            .iter()
            .map(|cl| {
                redis::cmd("XLEN")
                    .arg(format!("outpost:outbox:{cl}"))
                    .query::<u64>(&mut c)
                    .unwrap_or(0)
            })
            .sum()
    }

    pub fn wait_up(&self, names: &[&str]) {
        assert!(
            wait_until(T, || names
                .iter()
                .all(|n| self.region_state(n).as_deref() == Some("up"))),
            "regions {names:?} not up"
        );
    }
}

/// One OwnTracks fix per call, each different (location + status, presence on first).
pub fn publish(phone: &Device, from: u64, n: u64) {
    for i in from..from + n {
        let fix = format!(
            r#"{{"_type":"location","tid":"AP","lat":{},"lon":13.6,"tst":{},"batt":80}}"#,
            51.0 + i as f64 * 1e-4,
            1_700_000_000 + i
        );
        phone.publish_qos1("owntracks/alice/phone", fix).unwrap();
    }
}

pub fn total(events: &BTreeMap<&str, Vec<Value>>) -> usize {
    events.values().map(Vec::len).sum()
}

/// No event twice (by id) in any class.
pub fn assert_exactly_once(events: &BTreeMap<&str, Vec<Value>>, what: &str) {
    for (class, evs) in events {
        let mut ids: Vec<&str> = evs.iter().filter_map(|e| e["id"].as_str()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{what}: duplicate {class} ids");
    }
}

pub fn sync(from: &Region, to: &Region) -> String {
    let url = |r: &Region| format!("{}#hub", r.redis.url());
    hub_sync(&url(from), &url(to))
}

/// Every class of A and B identical and as many as the gateway accepted.
pub fn assert_converged(gw: &Gateway, a: &Region, b: &Region) -> usize {
    let (ea, eb) = (a.events(), b.events());
    for c in CLASSES {
        assert_eq!(ea[c], eb[c], "class {c} differs between regions");
        let acc = gw.accepted().get(c).copied().unwrap_or(0) as usize;
        assert_eq!(ea[c].len(), acc, "class {c}: accepted {acc}");
    }
    assert_exactly_once(&ea, "A");
    total(&ea)
}

pub fn wait_drained(gw: &Gateway, out: &Outpost) {
    assert!(
        wait_until(T, || gw.outbox_len() == 0),
        "outbox not drained to every region: {} left\n{}",
        gw.outbox_len(),
        out.log()
    );
}
