//! The region's store (SPEC §7), layout in `docs/hub-redis-layout.md`:
//! - per (gateway, class) the history and its dedup, under the gateway's hash tag
//!   (`<p>:{gw:<gw>}:…`): one script call per batch ([`Store::store_batch`]);
//! - per device the latest state, track and geo position, under one of [`BUCKETS`] hash tags
//!   (`<p>:{dev:<n>}:…`): devices are global (a radio heard by two gateways is one device), so
//!   they cannot live under a gateway's tag; one script call per batch (per bucket on a
//!   cluster), idempotent ([`latest`]);
//! - gateways' liveness in their meta hash, and a set of every gateway.

mod conn;
mod form;
pub mod keys;
pub mod latest;
pub mod messages;
pub mod query;

pub use conn::Conn;
use conn::Conns;
pub use form::{stored_form, stored_json, stream_json_into, stream_line_into};

use crate::config::RedisSettings;
use chrono::{DateTime, Utc};
use keys::{member_into, Keys};
use outpost_proto::batch::Parsed;
use outpost_proto::fields::Head;
use outpost_proto::EventId;
use redis::Script;
use serde_json::{Map, Value};

/// Device state is spread over this many hash tags (Redis Cluster slots). Fixed: changing it
/// would move every device's keys.
pub const BUCKETS: u32 = 16;

/// A store operation failed; the batch is not acknowledged and is tried again.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct StoreError(#[from] pub redis::RedisError);

/// The hub's Redis.
#[derive(Clone)]
pub struct Store {
    conns: Conns,
    /// A Redis Cluster: a script call's keys must share one slot.
    cluster: bool,
    keys: Keys,
    retention_ms: i64,
    history: Script,
    latest: Script,
}

/// One update of a device's latest state, borrowed from the event it comes from.
#[derive(Debug, Clone)]
pub struct Latest<'a> {
    pub dev: &'a str,
    pub class: &'static str,
    pub gw: &'a str,
    /// The event's id; `None` for snapshot entries.
    pub id: Option<EventId>,
    pub ts_ms: i64,
    /// The stored form ([`stored_json`]).
    pub json: &'a str,
    /// The fields its position or presence state is read from (only if it wins).
    pub head: &'a Head,
}

impl Store {
    /// Connects (once; the caller retries).
    pub async fn connect(s: &RedisSettings) -> Result<Store, StoreError> {
        Ok(Store {
            conns: Conns::connect(s).await?,
            cluster: s.cluster,
            keys: Keys::new(&s.prefix),
            retention_ms: s.retention.as_millis() as i64,
            history: Script::new(include_str!("history.lua")),
            latest: Script::new(include_str!("latest.lua")),
        })
    }

    /// The key names.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A connection handle: the next of the store's connections ([`Conns`]).
    pub fn conn(&self) -> Conn {
        self.conns.next()
    }

    /// `EVALSHA` of `script` with `nkeys` keys, its keys and arguments still to be added: built
    /// straight into one command buffer (redis-rs' `ScriptInvocation` keeps every argument in
    /// an allocation of its own and copies them all once more into the command; a batch's
    /// calls carry thousands).
    pub(crate) fn evalsha(script: &Script, nkeys: usize) -> redis::Cmd {
        let mut c = redis::cmd("EVALSHA");
        c.arg(script.get_hash()).arg(nkeys);
        c
    }

    /// Runs an [`Store::evalsha`] command, loading the script first if Redis does not have it
    /// (a restarted or new server).
    pub(crate) async fn run_script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        match cmd.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                script.load_async(&mut conn).await?;
                Ok(cmd.query_async(&mut conn).await?)
            }
            r => Ok(r?),
        }
    }

    /// `PING`, for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Stores a checked batch: history and dedup in one atomic call, then the devices' latest
    /// state. Returns, per event, whether it was new. On `Err` nothing may be acknowledged;
    /// running it again is harmless (both steps are idempotent).
    /// `attempt` names this handling of the batch across its tries ([`crate::Ctx::attempt`]).
    pub async fn store_batch(&self, b: &Parsed, attempt: &str) -> Result<Vec<bool>, StoreError> {
        let stored: Vec<String> = b.events.iter().map(stored_form).collect();
        self.store_formed(b, &stored, attempt).await
    }

    /// [`Store::store_batch`] with each event's stored form ([`stored_form`]) made already.
    pub async fn store_formed(
        &self,
        b: &Parsed,
        stored: &[String],
        attempt: &str,
    ) -> Result<Vec<bool>, StoreError> {
        let items: Vec<(EventId, &str)> = b
            .events
            .iter()
            .zip(stored)
            .map(|(e, json)| (e.id, json.as_str()))
            .collect();
        let latest = b
            .events
            .iter()
            .zip(&items)
            .map(|(e, (id, json))| {
                latest_of(&b.gw, b.class.as_str(), Some(*id), &e.dev, &e.head, json)
            })
            .collect();
        // Concurrently: latest state is idempotent (newest `ts` wins, ties by gw|id), so it
        // need not wait for the history script; if either fails the batch is not acknowledged
        // and both run again. One fsync'd round trip per batch instead of two.
        let (flags, ()) = tokio::try_join!(
            self.store_history(&b.gw, b.class, &items, Some(attempt)),
            self.apply_latest(latest)
        )?;
        Ok(flags)
    }

    /// The history script for (gw, class) over events already in stored form. With an
    /// `attempt`, its answer is kept for 5 minutes under the batch's key and given again to a
    /// try of the same attempt (a reply lost to a timeout); sync passes `None`.
    pub async fn store_history(
        &self,
        gw: &str,
        class: outpost_proto::Class,
        items: &[(EventId, impl AsRef<str>)],
        attempt: Option<&str>,
    ) -> Result<Vec<bool>, StoreError> {
        let now = Utc::now().timestamp_millis();
        let (first, last) = match (items.first(), items.last()) {
            (Some(f), Some(l)) => (keys::pad(f.0), keys::pad(l.0)),
            _ => return Ok(Vec::new()),
        };
        let increasing = items.windows(2).all(|w| w[0].0 < w[1].0);
        let mut cmd = Self::evalsha(&self.history, 4);
        cmd.arg(self.keys.history(gw, class))
            .arg(self.keys.marks(gw, class))
            .arg(self.keys.gw_meta(gw))
            .arg(self.keys.applied(gw, class, &first, &last, items.len()))
            .arg(now)
            .arg(now - self.retention_ms)
            .arg(class.as_str())
            .arg(items.len())
            .arg(attempt.unwrap_or(""))
            .arg(if increasing { "1" } else { "0" });
        let mut member = String::new();
        for (id, json) in items {
            member.clear();
            member_into(&mut member, *id, json.as_ref());
            cmd.arg("0").arg(member.as_str());
        }
        let flags: String = self.run_script(&self.history, &cmd).await?;
        if flags.len() != items.len() {
            return Err(StoreError(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "history script answered",
                format!("{} flags for {} events", flags.len(), items.len()),
            ))));
        }
        Ok(flags.bytes().map(|f| f == b'1').collect())
    }

    /// A gateway's retained `state` message: recorded in its meta hash (and the gateway set).
    pub async fn gateway_state(&self, gw: &str, v: &Map<String, Value>) -> Result<(), StoreError> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut pipe = redis::pipe();
        pipe.cmd("HSET")
            .arg(self.keys.gw_meta(gw))
            .arg("state")
            .arg(s("state"))
            .arg("since")
            .arg(s("since"))
            .arg("version")
            .arg(s("version"))
            .arg("state_at")
            .arg(Utc::now().timestamp_millis())
            .ignore();
        pipe.query_async::<()>(&mut self.conn()).await?;
        self.add_gateway(gw).await
    }

    /// Adds `gw` to the set of gateways (its own slot: not part of the batch script).
    pub async fn add_gateway(&self, gw: &str) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("SADD")
            .arg(self.keys.gateways())
            .arg(gw)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Publishes newly stored events for `/api/v1/stream` on every receiver (one message per
    /// batch, one event JSON a line, each with its `gw`).
    pub async fn publish_stream(&self, lines: Vec<u8>) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let _: i64 = redis::cmd("PUBLISH")
            .arg(self.keys.stream_channel())
            .arg(lines)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }
}

/// The latest-state update an event makes (`json` its stored form).
pub fn latest_of<'a>(
    gw: &'a str,
    class: &'static str,
    id: Option<EventId>,
    dev: &'a str,
    head: &'a Head,
    json: &'a str,
) -> Latest<'a> {
    let ms = |t: &Option<String>| t.as_deref().and_then(parse_ms);
    Latest {
        dev,
        class,
        gw,
        id,
        ts_ms: ms(&head.ts).or_else(|| ms(&head.rx)).unwrap_or(0),
        json,
        head,
    }
}

impl Latest<'_> {
    /// What the latest-state script takes beside the JSON: location (lon, lat), presence
    /// (state, last_seen ms), else empty.
    pub fn detail(&self) -> (String, String) {
        let h = self.head;
        let num = |x: Option<f64>| x.map(|x| x.to_string()).unwrap_or_default();
        match self.class {
            "location" => (num(h.lon), num(h.lat)),
            "presence" => (
                h.state.clone().unwrap_or_default(),
                self.last_seen_ms()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            ),
            _ => (String::new(), String::new()),
        }
    }

    /// A presence event's `last_seen` (ms).
    pub fn last_seen_ms(&self) -> Option<i64> {
        self.head.last_seen.as_deref().and_then(parse_ms)
    }
}

/// RFC 3339 → ms since the epoch.
pub fn parse_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}
