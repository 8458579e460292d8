//! What every fault test shares: the rig (Redis, both brokers, the real hub with its own Redis,
//! optional proxies, the `outpost` daemon), a seeded RNG, and the rig's end: wait until everything acknowledged
//! arrived, then run the checks (`checks.rs`) on the tracked feeds (`feed.rs`).

use std::time::{Duration, Instant};

use outpost_system_tests::{
    parse_event_id, wait_until, EventId, GatewayConfig, Hub, Mosquitto, Outpost, RedisServer, Rng,
    TcpProxy, WireTap,
};
use serde_json::{json, Value};

pub use outpost_system_tests::feed::{Feed, Publisher};
pub use outpost_system_tests::tally::{check, Tally};

/// Gateway id of every fault test.
pub const GW: &str = "veh-fault";
/// Uplink topic prefix.
pub const PREFIX: &str = "outpost/v1";
/// Outbox classes, drain order.
pub const CLASSES: [&str; 6] = [
    "alert", "message", "receipt", "presence", "status", "location",
];

// ------------------------------------------------------------------------------- random

/// The fault schedule's RNG, seeded from `OUTPOST_FAULT_SEED` if set, else `default`; prints
/// the seed so a failing run can be replayed.
pub fn rng_from_env(test: &str, default: u64) -> Rng {
    let seed = std::env::var("OUTPOST_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("[{test}] seed {seed} (replay with OUTPOST_FAULT_SEED={seed})");
    Rng::new(seed)
}

// ------------------------------------------------------------------------------- rig

/// Which links go through a fault proxy.
#[derive(Default, Clone, Copy)]
pub struct RigOpts {
    /// Outpost → hub broker through a [`TcpProxy`].
    pub uplink_proxy: bool,
    /// Outpost → device broker through a [`TcpProxy`].
    pub devices_proxy: bool,
    /// A [`WireTap`] on the hub broker too, for a test that asserts on raw batches.
    pub wire_tap: bool,
}

/// One gateway under test and everything around it. Outpost is the first field, so it is
/// killed first on drop.
pub struct Rig {
    pub outpost: Outpost,
    /// The real hub (`outpost-hub` and its Redis): what it stored is what was delivered.
    pub hub: Hub,
    pub tap: Option<WireTap>,
    pub uplink_proxy: Option<TcpProxy>,
    pub devices_proxy: Option<TcpProxy>,
    pub redis: RedisServer,
    pub devices: Mosquitto,
    pub hub_broker: Mosquitto,
}

impl Rig {
    /// Starts Redis, both brokers, the hub (subscribed before Outpost starts) and
    /// Outpost with the `owntracks` source; `tweak` adjusts the config.
    pub fn start(opts: RigOpts, tweak: impl FnOnce(GatewayConfig) -> GatewayConfig) -> Rig {
        let redis = RedisServer::new().expect("redis");
        let devices = Mosquitto::new().expect("device broker");
        let hub_broker = Mosquitto::new().expect("hub broker");
        let hub = Hub::start(&hub_broker.url()).expect("hub");
        let tap = opts
            .wire_tap
            .then(|| WireTap::connect(&hub_broker.url(), PREFIX).expect("wire tap"));
        let proxy = |on: bool, target| on.then(|| TcpProxy::start(target).expect("proxy"));
        let uplink_proxy = proxy(opts.uplink_proxy, hub_broker.addr());
        let devices_proxy = proxy(opts.devices_proxy, devices.addr());
        let devices_url = devices_proxy
            .as_ref()
            .map_or_else(|| devices.url(), TcpProxy::mqtt_url);
        let uplink_url = uplink_proxy
            .as_ref()
            .map_or_else(|| hub_broker.url(), TcpProxy::mqtt_url);
        let config = tweak(
            GatewayConfig::new(GW, &redis.url(), &devices_url, &uplink_url)
                .topic_prefix(PREFIX)
                .mqtt("owntracks"),
        );
        let outpost = Outpost::start_with(&config).expect("outpost");
        Rig {
            outpost,
            hub,
            tap,
            uplink_proxy,
            devices_proxy,
            redis,
            devices,
            hub_broker,
        }
    }

    /// The wire tap (panics if the rig has none).
    pub fn tap(&self) -> &WireTap {
        self.tap.as_ref().expect("rig without wire tap")
    }

    /// Stops the hub broker (gracefully) and waits until the hub noticed.
    pub fn stop_hub_broker(&mut self) {
        self.hub_broker.stop().expect("stop hub broker");
        self.hub
            .wait_broker_down(Duration::from_secs(20))
            .expect("hub");
    }

    /// Starts the hub broker again. The restarted mosquitto has no shared subscription until
    /// the hub subscribes again, so the gateway, if it is back first, gets PUBACK 0x10 for its
    /// batches and must send them again. With a wire tap (a subscriber the broker restores,
    /// which would take those batches) the uplink is cut until the hub is back
    /// (`Hub::wait_subscribed`).
    pub fn start_hub_broker(&mut self) {
        let tap = self.tap.is_some();
        if tap {
            self.uplink().cut();
        }
        self.hub_broker.start().expect("start hub broker");
        self.hub
            .wait_subscribed(Duration::from_secs(30))
            .expect("hub");
        if tap {
            self.uplink().pass();
        }
    }

    /// The uplink proxy (panics if the rig has none).
    pub fn uplink(&self) -> &TcpProxy {
        self.uplink_proxy
            .as_ref()
            .expect("rig without uplink proxy")
    }

    /// Proves the whole path works before a test measures anything: publishes a probe fix
    /// every 300 ms until one reaches the hub (the gateway subscribes after it connected, so
    /// the first probes may go nowhere).
    pub fn warm_up(&self) {
        let mut probe = Feed::new(&self.devices.url(), "probe", 1);
        let ok = wait_until(Duration::from_secs(30), || {
            probe.publish(1);
            wait_until(Duration::from_millis(300), || {
                self.hub.device("probe-d0").is_some()
            })
        });
        assert!(
            ok,
            "warm-up: no probe reached the hub\n{}",
            self.outpost.log()
        );
    }

    /// A sync Redis connection (retries while Redis restarts).
    pub fn redis(&self) -> redis::Connection {
        let mut last = None;
        for _ in 0..50 {
            match self.redis.conn() {
                Ok(c) => return c,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis unreachable: {:?}", last);
    }

    /// `<prefix>:stats accepted:<class>`.
    pub fn accepted(&self, class: &str) -> u64 {
        self.hget("outpost:stats", &format!("accepted:{class}"))
    }

    /// A counter field of a hash (0 when absent).
    pub fn hget(&self, key: &str, field: &str) -> u64 {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query::<Option<u64>>(&mut self.redis())
            .expect("HGET")
            .unwrap_or(0)
    }

    /// Outbox length of one class.
    pub fn outbox_len(&self, class: &str) -> u64 {
        redis::cmd("XLEN")
            .arg(format!("outpost:outbox:{class}"))
            .query(&mut self.redis())
            .expect("XLEN")
    }

    /// Events in the outbox, all classes.
    pub fn outbox_total(&self) -> u64 {
        CLASSES.iter().map(|c| self.outbox_len(c)).sum()
    }

    /// The stream's last generated id (kept across trims and restarts), `0-0` if none.
    pub fn last_generated_id(&self, class: &str) -> EventId {
        let v: Value = match redis::cmd("XINFO")
            .arg("STREAM")
            .arg(format!("outpost:outbox:{class}"))
            .query::<redis::Value>(&mut self.redis())
        {
            Ok(v) => redis_to_json(v),
            Err(_) => return EventId { ms: 0, seq: 0 },
        };
        let id = match &v {
            Value::Array(kv) => kv
                .chunks(2)
                .find(|p| p[0] == "last-generated-id")
                .and_then(|p| p[1].as_str().map(str::to_string)),
            Value::Object(m) => m["last-generated-id"].as_str().map(str::to_string),
            _ => None,
        };
        id.and_then(|s| parse_event_id(&s))
            .unwrap_or(EventId { ms: 0, seq: 0 })
    }

    /// How often `needle` occurs in the gateway log.
    pub fn log_count(&self, needle: &str) -> usize {
        self.outpost.log().matches(needle).count()
    }

    /// Waits until every acknowledged event of `feeds` is at the hub, then until the outbox is
    /// empty (nothing more can arrive), then checks and prints the tally.
    pub fn finish(&self, test: &str, feeds: &[&Feed], timeout: Duration) -> Tally {
        let delivered_all = wait_until(timeout, || {
            let events = self.hub.events_for(GW, "location");
            feeds.iter().all(|f| f.missing(&events) == 0)
        });
        let drained = wait_until(Duration::from_secs(30), || self.outbox_total() == 0);
        std::thread::sleep(Duration::from_millis(500));
        let (tally, problems) = check(&self.hub, GW, feeds);
        tally.print(test);
        if !(delivered_all && drained && problems.is_empty()) {
            let log = self.outpost.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let hub_log = self.hub.log();
            let hub_tail: Vec<&str> = hub_log.lines().rev().take(20).collect();
            panic!(
                "{test}: delivered_all={delivered_all} outbox_drained={drained}\n{}\n--- outpost log tail ---\n{}\n--- hub log tail ---\n{}",
                problems.join("\n"),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                hub_tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tally
    }
}

fn redis_to_json(v: redis::Value) -> Value {
    use redis::Value as R;
    match v {
        R::BulkString(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        R::SimpleString(s) => Value::String(s),
        R::Int(i) => json!(i),
        R::Array(a) | R::Set(a) => Value::Array(a.into_iter().map(redis_to_json).collect()),
        R::Map(m) => Value::Array(
            m.into_iter()
                .flat_map(|(k, v)| [redis_to_json(k), redis_to_json(v)])
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// Seconds since `t`, for progress lines.
pub fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
