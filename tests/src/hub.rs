//! The regional hub of a system test: the real `outpost-hub` receiver (SPEC §7) with its own
//! `redis-server`, on the hub broker, read through its HTTP API. What a test asserts as
//! delivered — stored events per (gateway, class) in id order, duplicates, latest state,
//! presence, alerts, gateways' liveness — is what this hub stored and serves.
//!
//! The reads panic when the API does not answer: a test must not pass because its hub was gone.
//! [`Hub::events_for`] keeps each (gateway, class) history it paged and asks only for what came
//! after it, using the gateway's `stored` count (`/api/v1/gateways`) to know it is complete (a
//! late batch below ids already read, as concurrent stores can produce, means one full read):
//! waiting on a long stream does not page the whole history on every poll.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::{wait_until, HubApi, HubConfig, HubProc, RedisServer};

/// The receiver id of a test hub (its `hub` label in `/metrics`).
pub const HUB_ID: &str = "test-hub-1";

/// Events per `/api/v1/events` page the reads ask for.
const PAGE: usize = 5_000;

/// A running hub: receiver process, its Redis, its API. Field order = drop order: the receiver
/// goes before its Redis.
pub struct Hub {
    proc: HubProc,
    redis: RedisServer,
    api: HubApi,
    /// (gateway, class) → its history as last read, in id order.
    cache: Mutex<HashMap<(String, String), Vec<Value>>>,
}

impl Hub {
    /// A receiver on `broker_url` (topic prefix `outpost/v1`) storing in a fresh Redis;
    /// returns once it is subscribed (`/healthz` 200), so nothing published after is missed.
    pub fn start(broker_url: &str) -> anyhow::Result<Hub> {
        Self::start_with(broker_url, |c| c)
    }

    /// As [`Hub::start`], with the config adjusted (topic prefix, credentials, …).
    pub fn start_with(
        broker_url: &str,
        tweak: impl FnOnce(HubConfig) -> HubConfig,
    ) -> anyhow::Result<Hub> {
        let redis = RedisServer::new().context("hub redis")?;
        let cfg = tweak(HubConfig::new(HUB_ID, broker_url, vec![redis.url()]));
        let proc = HubProc::start(&cfg)?;
        let api = proc.api();
        Ok(Hub {
            proc,
            redis,
            api,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The API client.
    pub fn api(&self) -> &HubApi {
        &self.api
    }

    /// The receiver process (kill, restart, log).
    pub fn process(&mut self) -> &mut HubProc {
        &mut self.proc
    }

    /// The hub's Redis.
    pub fn redis(&self) -> &RedisServer {
        &self.redis
    }

    /// Everything the receiver logged.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Waits until the receiver noticed its broker went away (`/healthz` no longer 200).
    pub fn wait_broker_down(&self, timeout: Duration) -> anyhow::Result<()> {
        let api = &self.api;
        let down = wait_until(timeout, || api.get("/healthz").is_ok_and(|(s, _)| s != 200));
        anyhow::ensure!(
            down,
            "hub still healthy {timeout:?} after its broker went away"
        );
        Ok(())
    }

    /// Waits until the receiver is subscribed on its broker again (`/healthz` 200).
    ///
    /// After a broker *restart* mosquitto (2.0) restores a persistent session and its queued
    /// messages, but not the session's shared subscription: until the receiver subscribes
    /// again the broker answers a gateway's batches with PUBACK 0x10 (no matching
    /// subscribers) and the gateway sends them again. A [`crate::WireTap`] on the same broker
    /// is a subscriber too (the batch is routed to it, acknowledged 0x00, and the hub misses
    /// it), so rigs with a tap keep the gateway off the restarted broker until this returns.
    pub fn wait_subscribed(&self, timeout: Duration) -> anyhow::Result<()> {
        self.proc.wait_healthy(timeout)
    }

    /// Polls `pred` every 20 ms until it holds or `timeout` passes.
    pub fn wait_for(&self, pred: impl Fn(&Hub) -> bool, timeout: Duration) -> bool {
        wait_until(timeout, || pred(self))
    }

    /// Waits until at least `n` events of `class` are stored (all gateways).
    pub fn wait_for_events(&self, class: &str, n: usize, timeout: Duration) -> bool {
        self.wait_for(|h| h.events_of(class).len() >= n, timeout)
    }

    /// Every gateway the hub heard of, sorted (`/api/v1/gateways`).
    pub fn gateway_ids(&self) -> Vec<String> {
        self.gateways()
            .iter()
            .filter_map(|g| g["gw"].as_str().map(str::to_string))
            .collect()
    }

    /// `/api/v1/gateways`: each gateway's `state`, `since`, `version`, `last_batch`, `stored`.
    pub fn gateways(&self) -> Vec<Value> {
        self.api.gateways().expect("hub API: /api/v1/gateways")
    }

    /// One gateway's liveness entry; `None` before the hub heard of it.
    pub fn gateway(&self, gw: &str) -> Option<Value> {
        self.gateways().into_iter().find(|g| g["gw"] == gw)
    }

    /// The `state` the hub holds for `gw` (`online`/`offline`, from its retained state topic).
    pub fn gateway_state(&self, gw: &str) -> Option<String> {
        self.gateway(gw)?["state"].as_str().map(str::to_string)
    }

    /// Stored events of (`gw`, `class`) in id order (`/api/v1/events`, every page).
    pub fn events_for(&self, gw: &str, class: &str) -> Vec<Value> {
        let stored = |h: &Hub| h.gateway(gw).map_or(0, |g| stored_of(&g, class));
        self.history(gw, class, stored(self), || stored(self))
    }

    /// The cached history of (`gw`, `class`) brought up to `stored` events: what came after the
    /// last id read, or everything again when that does not add up to the count (`recount`
    /// after the read: the cache is a subset of the history, so equal counts mean all of it).
    fn history(&self, gw: &str, class: &str, stored: u64, recount: impl Fn() -> u64) -> Vec<Value> {
        let mut cache = self.cache.lock().expect("hub cache");
        let events = cache
            .entry((gw.to_string(), class.to_string()))
            .or_default();
        if events.len() as u64 == stored {
            return events.clone();
        }
        let after = events
            .last()
            .and_then(|e| e["id"].as_str())
            .unwrap_or("0-0")
            .to_string();
        let read = |after: &str| {
            outpost_proto::api::all_events_after(gw, class, after, PAGE, |p| self.api.json(p))
                .unwrap_or_else(|e| panic!("hub API: events of {gw}/{class}: {e:#}"))
        };
        events.extend(read(&after));
        if events.len() as u64 != recount() {
            *events = read("0-0");
        }
        events.clone()
    }

    /// Stored events of `class` from every gateway (by gateway id, then id order).
    pub fn events_of(&self, class: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for g in self.gateways() {
            let Some(gw) = g["gw"].as_str() else { continue };
            let recount = || self.gateway(gw).map_or(0, |g| stored_of(&g, class));
            out.extend(self.history(gw, class, stored_of(&g, class), recount));
        }
        out
    }

    /// Every stored event of every class (for failure messages).
    pub fn events(&self) -> Vec<Value> {
        outpost_proto::Class::ALL
            .iter()
            .flat_map(|c| self.events_of(c.as_str()))
            .collect()
    }

    /// Stored events of one device (any class).
    pub fn events_of_dev(&self, dev: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["dev"] == dev)
            .collect()
    }

    /// The hub's latest state of `dev` (`/api/v1/devices/{dev}`); `None` when unknown.
    pub fn device(&self, dev: &str) -> Option<Value> {
        self.api
            .device(dev)
            .unwrap_or_else(|e| panic!("hub API: /api/v1/devices/{dev}: {e:#}"))
    }

    /// `/api/v1/alerts`, newest first.
    pub fn alerts(&self) -> Vec<Value> {
        self.api.alerts().expect("hub API: /api/v1/alerts")
    }

    /// Events the hub found already stored and did not store again (`/metrics`).
    pub fn duplicates_dropped(&self) -> u64 {
        self.api.duplicates().expect("hub API: /metrics")
    }

    /// Bad input the hub refused (counted by reason in `/metrics`), one line per reason; a
    /// passing test of a well-behaved gateway expects none.
    pub fn errors(&self) -> Vec<String> {
        let drops: BTreeMap<String, u64> = self.api.drops().expect("hub API: /metrics");
        drops
            .into_iter()
            .map(|(reason, n)| format!("hub refused {n} message(s): {reason}"))
            .collect()
    }
}

/// A gateway entry's count of stored events of `class` (0 when it has none).
fn stored_of(gateway: &Value, class: &str) -> u64 {
    gateway["stored"][class].as_u64().unwrap_or(0)
}
