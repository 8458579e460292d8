//! The local Redis: the durable outbox and the gateway's picture of its devices.
//! Key layout: `docs/redis-layout.md`. One multiplexed connection (a redis-rs
//! `ConnectionManager`, which reconnects by itself); writes are pipelined Lua scripts so each
//! input is accepted atomically. The uplink's drain pass reads on a second connection of its own
//! (`raw`), parsed by hand.

mod budget;
mod compact;
pub mod down;
mod ingest;
mod outbox;
mod presence;
mod raw;
mod regions;

pub use budget::Thinned;
pub use ingest::{Added, IngestItem, Order, Outcome, DEDUP_TTL_S, RECENT_CAP};
pub use outbox::{expand_entries, next_id, parse_id, OutboxEntry};
pub use regions::{region_key, Region};

use redis::aio::ConnectionManager;
use redis::RedisError;
use std::time::Duration;
use thiserror::Error;

/// Store failures.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    /// The drain pass's own connection (`raw`).
    #[error("redis connection: {0}")]
    Io(#[from] std::io::Error),
    /// An ordered call found the call before it missing (it failed and will be retried):
    /// nothing was done.
    #[error("an earlier ingest call has not landed yet")]
    Later,
}

/// The Redis store.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    /// The drain pass's read, on a connection of its own (`None` with TLS: then `conn`).
    raw: Option<std::sync::Arc<raw::RawReader>>,
    prefix: String,
    max_events: u64,
    ingest: redis::Script,
    offline: redis::Script,
    down: redis::Script,
    ack: redis::Script,
}

impl Store {
    /// Connects once (the caller retries with backoff) and loads the scripts.
    pub async fn connect(url: &str, prefix: &str, max_events: u64) -> Result<Store, StoreError> {
        let client = redis::Client::open(url)?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = client.get_connection_manager_with_config(cfg).await?;
        let store = Store {
            conn,
            raw: raw::RawReader::new(client.get_connection_info()).map(std::sync::Arc::new),
            prefix: prefix.to_string(),
            max_events,
            ingest: redis::Script::new(include_str!("ingest.lua")),
            offline: redis::Script::new(include_str!("offline.lua")),
            down: redis::Script::new(include_str!("down.lua")),
            ack: redis::Script::new(include_str!("ack.lua")),
        };
        store.load_scripts().await?;
        Ok(store)
    }

    /// The key prefix (`<prefix>:`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A fresh handle on the shared connection.
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}:{}", self.prefix, rest)
    }

    async fn load_scripts(&self) -> Result<(), StoreError> {
        let mut c = self.conn();
        for s in [&self.ingest, &self.offline, &self.down, &self.ack] {
            let _: String = s.prepare_invoke().load_async(&mut c).await?;
        }
        Ok(())
    }

    /// Adds `n` to the drop counter for `reason` (SPEC §6: every drop is counted by reason).
    pub async fn count_drops(&self, reasons: &[(String, u64)]) -> Result<(), StoreError> {
        if reasons.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (r, n) in reasons {
            pipe.hincr(self.key("drops"), r, *n).ignore();
        }
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Records the display name a device announced (an OwnTracks `card`) as `name` in its
    /// `<p>:dev:<id>` hash, where `outpost status` shows it.
    pub async fn set_device_names(&self, names: &[(String, String)]) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (dev, name) in names {
            pipe.hset(self.key(&format!("dev:{dev}")), "name", name)
                .ignore();
        }
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Replaces the recorded device-broker subscriptions with `now`; returns the previous set.
    pub async fn swap_subscriptions(&self, now: &[String]) -> Result<Vec<String>, StoreError> {
        let key = self.key("devices_mqtt:subscriptions");
        let mut pipe = redis::pipe();
        pipe.atomic().smembers(&key).del(&key).ignore();
        if !now.is_empty() {
            pipe.sadd(&key, now).ignore();
        }
        let (old,): (Vec<String>,) = pipe.query_async(&mut self.conn()).await?;
        Ok(old)
    }
}
