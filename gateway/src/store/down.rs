//! The downlink queue in Redis (SPEC §8): messages per device in arrival order, their state per
//! device, expiry, and the receipts each change causes — all through `down.lua`, so a state
//! and its receipt are written together or not at all. Layout: `docs/redis-layout.md`.

use super::{Store, StoreError};
use crate::event::{Body, Event, Receipt, ReceiptState, TsSrc};
use chrono::{DateTime, Utc};
use outpost_proto::down::DownMessage;
use redis::Value;

/// How long a message id is remembered after its expiry, to ignore a late duplicate.
const DEDUP_AFTER_EXPIRY_S: i64 = 7 * 24 * 3600;

/// What becomes of a message for one device when it is accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Queued for `dev`.
    Queue(String),
    /// Refused for `dev` (`failed` receipt with the reason).
    Fail(String, String),
}

/// What [`Store::down_turn`] read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DownTurn {
    /// Queued (msg_id, dev) pairs past their expiry.
    pub expired: Vec<(String, String)>,
    /// Devices with a queue.
    pub pending: Vec<String>,
    /// Receipts ever written, by any process.
    pub receipts: u64,
}

/// One message in a device's queue, as the dispatcher needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub msg_id: String,
    pub dev: String,
    pub text: String,
    pub kind: String,
    /// `queued` or `sending`.
    pub state: String,
    pub expires_ms: i64,
}

/// A receipt event for `dev`, as stored in the outbox.
pub fn receipt_json(
    msg_id: &str,
    dev: &str,
    state: ReceiptState,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> String {
    Event {
        dev: dev.to_string(),
        body: Body::Receipt(Receipt {
            msg_id: msg_id.to_string(),
            state,
            reason: reason.map(str::to_string),
        }),
        ts: now,
        ts_src: TsSrc::Gateway,
    }
    .to_stored_json(now)
}

impl Store {
    /// Accepts `m` with one target per device; `false` when its msg_id was seen before (then
    /// nothing is written and no receipt goes out again).
    pub async fn down_accept(
        &self,
        m: &DownMessage,
        targets: &[Target],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let fields = serde_json::json!({
            "to": m.to, "text": m.text, "from": m.from,
            "kind": if m.kind == outpost_proto::down::Kind::Locate { "locate" } else { "text" },
            "expires": m.expires.timestamp_millis().to_string(),
        });
        let expire_at = m.expires.timestamp().max(now.timestamp()) + DEDUP_AFTER_EXPIRY_S;
        let mut cmd = self.down_cmd("accept");
        cmd.arg(&m.msg_id)
            .arg(expire_at)
            .arg(fields.to_string())
            .arg(now.timestamp_millis())
            .arg(targets.len());
        for t in targets {
            let (dev, state, reason) = match t {
                Target::Queue(d) => (d, ReceiptState::Queued, None),
                Target::Fail(d, r) => (d, ReceiptState::Failed, Some(r.as_str())),
            };
            cmd.arg(dev)
                .arg(state.as_str())
                .arg(m.expires.timestamp_millis())
                .arg(receipt_json(&m.msg_id, dev, state, reason, now));
        }
        let r: String = self.run_down(cmd).await?;
        Ok(r == "ok")
    }

    /// Moves (msg_id, dev) to `new` if it is in one of `from`, writing `receipt` (if any)
    /// with it. Returns the state it was in (`""` when unknown); the move happened only if that
    /// is one of `from`.
    pub async fn down_move(
        &self,
        msg_id: &str,
        dev: &str,
        from: &[&str],
        new: &str,
        receipt: Option<String>,
    ) -> Result<String, StoreError> {
        let mut cmd = self.down_cmd("move");
        cmd.arg(msg_id)
            .arg(dev)
            .arg(from.join(","))
            .arg(new)
            .arg(receipt.unwrap_or_default());
        self.run_down(cmd).await
    }

    /// Counts a bad down message by reason (`<prefix>:down:stats`, field `bad:<reason>`).
    pub async fn down_count_bad(&self, reason: &str) -> Result<(), StoreError> {
        let () = redis::cmd("HINCRBY")
            .arg(self.key("down:stats"))
            .arg(format!("bad:{reason}"))
            .arg(1)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Devices with messages waiting.
    pub async fn down_pending_devices(&self) -> Result<Vec<String>, StoreError> {
        Ok(redis::cmd("SMEMBERS")
            .arg(self.key("down:pending"))
            .query_async(&mut self.conn())
            .await?)
    }

    /// The queue of `dev` in order (at most `limit`), with each message's state on `dev`.
    pub async fn down_queue(&self, dev: &str, limit: usize) -> Result<Vec<Queued>, StoreError> {
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(self.key(&format!("down:q:{dev}")))
            .arg(0)
            .arg(limit as i64 - 1)
            .query_async(&mut self.conn())
            .await?;
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(self.key(&format!("down:msg:{id}")))
                .arg("text")
                .arg("kind")
                .arg(format!("st:{dev}"))
                .arg("expires");
        }
        let rows: Vec<Vec<Option<String>>> = pipe.query_async(&mut self.conn()).await?;
        Ok(ids
            .into_iter()
            .zip(rows)
            .map(|(msg_id, r)| Queued {
                msg_id,
                dev: dev.to_string(),
                text: r[0].clone().unwrap_or_default(),
                kind: r[1].clone().unwrap_or_else(|| "text".into()),
                state: r[2].clone().unwrap_or_default(),
                expires_ms: r[3].as_deref().and_then(|s| s.parse().ok()).unwrap_or(0),
            })
            .collect())
    }

    /// What the dispatcher looks at every turn, in one round trip: the queued (msg_id, dev)
    /// pairs whose expiry is at or before `now_ms` (at most `limit`), the devices with a queue
    /// and how many receipts were ever written (`accepted:receipt` of `<p>:stats`) by any
    /// process: `outpost send` writes its `queued` receipts outside the daemon.
    pub async fn down_turn(&self, now_ms: i64, limit: usize) -> Result<DownTurn, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZRANGEBYSCORE")
            .arg(self.key("down:expiry"))
            .arg("-inf")
            .arg(now_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .cmd("SMEMBERS")
            .arg(self.key("down:pending"))
            .cmd("HGET")
            .arg(self.key("stats"))
            .arg("accepted:receipt");
        let (expired, pending, receipts): (Vec<String>, Vec<String>, Option<u64>) =
            pipe.query_async(&mut self.conn()).await?;
        Ok(DownTurn {
            expired: expired
                .into_iter()
                .filter_map(|m| {
                    let (id, dev) = m.split_once(' ')?;
                    Some((id.to_string(), dev.to_string()))
                })
                .collect(),
            pending,
            receipts: receipts.unwrap_or(0),
        })
    }

    /// The states (msg_id's `st:<dev>` fields) of a message, by device.
    pub async fn down_states(&self, msg_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.key(&format!("down:msg:{msg_id}")))
            .query_async(&mut self.conn())
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("st:")?.to_string(), v)))
            .collect())
    }

    /// Downlink counters: messages by state and bad ones by reason (`bad:<reason>`).
    pub async fn down_stats(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(redis::cmd("HGETALL")
            .arg(self.key("down:stats"))
            .query_async(&mut self.conn())
            .await?)
    }

    fn down_cmd(&self, op: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.down.get_hash())
            .arg(0)
            .arg(&self.prefix)
            .arg(op);
        cmd
    }

    /// Runs a down.lua call, loading the script again if Redis restarted and lost it.
    async fn run_down<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        match cmd.query_async::<Value>(&mut self.conn()).await {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                self.load_scripts().await?;
                Ok(cmd.query_async(&mut self.conn()).await?)
            }
            r => redis::from_redis_value(r?).map_err(|e| StoreError::Reply(e.to_string())),
        }
    }
}

/// Device facts the downlink needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceFacts {
    pub online: bool,
    pub profile: String,
    pub topic: String,
}

impl Store {
    /// Every known device with its profile name.
    pub async fn devices_with_profiles(&self) -> Result<Vec<(String, String)>, StoreError> {
        let devs: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.key("devices"))
            .query_async(&mut self.conn())
            .await?;
        let mut pipe = redis::pipe();
        for d in &devs {
            pipe.hget(self.key(&format!("dev:{d}")), "profile");
        }
        let profiles: Vec<Option<String>> = pipe.query_async(&mut self.conn()).await?;
        let mut out: Vec<(String, String)> = devs
            .into_iter()
            .zip(profiles)
            .filter_map(|(d, p)| Some((d, p?)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The profile of a known device (`None`: never seen).
    pub async fn device_profile(&self, dev: &str) -> Result<Option<String>, StoreError> {
        Ok(self.device_facts(dev).await?.map(|f| f.profile))
    }

    /// Presence, profile and last topic of a device (`None`: never seen).
    pub async fn device_facts(&self, dev: &str) -> Result<Option<DeviceFacts>, StoreError> {
        let r: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key(&format!("dev:{dev}")))
            .arg("presence")
            .arg("profile")
            .arg("topic")
            .query_async(&mut self.conn())
            .await?;
        let Some(profile) = r[1].clone() else {
            return Ok(None);
        };
        Ok(Some(DeviceFacts {
            online: r[0].as_deref() == Some("online"),
            profile,
            topic: r[2].clone().unwrap_or_default(),
        }))
    }
}
