//! The hub (`outpost-hub`, SPEC §7, issue 10) against real mosquitto, redis-server (single
//! and a 3-master cluster) and the real binaries: exactly once through reordering,
//! redelivery, receiver kill and broker restart; latest state; `near`; bad input; auth.
//! One module per concern; the helpers every module shares are here.

mod acl;
mod auth;
mod bad_input;
mod check;
mod history;
mod ingest;
mod messages;
mod queries;
mod retry;
mod sync;
mod track;

use std::time::Duration;

use outpost_system_tests::{Device, HubApi, HubConfig, HubProc, Mosquitto, RedisServer};
use serde_json::{json, Value};

pub const T: Duration = Duration::from_secs(30);

/// The hub's own `Store` on a fresh Redis, with a runtime to drive it in-process: for tests
/// that need a store operation on cue, which the binary cannot be made to do.
pub fn store_on_fresh_redis() -> (
    RedisServer,
    tokio::runtime::Runtime,
    outpost_hub::store::Store,
) {
    let redis = RedisServer::new().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = outpost_hub::sync::endpoint(&redis.url(), Duration::from_secs(86_400)).unwrap();
    let store = rt
        .block_on(outpost_hub::store::Store::connect(&settings))
        .unwrap();
    (redis, rt, store)
}

/// A batch payload as a gateway would send it.
pub fn batch(gw: &str, class: &str, events: &[Value]) -> String {
    json!({"gw": gw, "class": class, "events": events}).to_string()
}

/// A location event with id `ms-0`.
pub fn loc(ms: u64, dev: &str, lat: f64, lon: f64, ts: &str) -> Value {
    json!({"id": format!("{ms}-0"), "replay": false, "dev": dev, "class": "location",
           "lat": lat, "lon": lon, "ts": ts, "ts_src": "device", "rx": ts})
}

/// The `id` of each event.
pub fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// `outpost/v1/<gw>/up/<class>`.
pub fn up(gw: &str, class: &str) -> String {
    format!("outpost/v1/{gw}/up/{class}")
}

/// A hub on a single Redis and its own broker, plus a publisher on that broker.
pub struct Bench {
    pub redis: RedisServer,
    pub broker: Mosquitto,
    pub hub: HubProc,
    pub gw: Device,
}

impl Bench {
    // No `Default`: this starts a Redis, a broker and a hub.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let redis = RedisServer::new().unwrap();
        let broker = Mosquitto::new().unwrap();
        let hub = HubProc::start(&HubConfig::new("h1", &broker.url(), vec![redis.url()])).unwrap();
        let gw = Device::connect(&broker.url(), "hand-made-gateway").unwrap();
        Bench {
            redis,
            broker,
            hub,
            gw,
        }
    }

    pub fn api(&self) -> HubApi {
        self.hub.api()
    }
}
