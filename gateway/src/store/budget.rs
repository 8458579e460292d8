//! Keeping the outbox within `[buffer] max_events` (SPEC §6): thin the oldest location
//! history (see [`crate::thin`]), then the oldest status; never touch alerts or messages.
//! Also: check that Redis will not evict or lose the outbox.

use super::{Store, StoreError};
use crate::event::Class;
use crate::thin::{thin, Fix, Params};
use redis::Value;
use std::collections::HashMap;
use tracing::warn;

/// Entries read per thinning step.
const CHUNK: usize = 5000;
/// Most entries looked at in one pass (bounds a pass's time).
const PASS_LIMIT: usize = 200_000;

/// What one pass dropped, by reason.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Thinned {
    pub location: u64,
    pub location_overflow: u64,
    pub status: u64,
}

impl Store {
    /// Events in the outbox, by class.
    pub async fn outbox_lens(&self) -> Result<[u64; Class::COUNT], StoreError> {
        let mut pipe = redis::pipe();
        for c in Class::ALL {
            pipe.cmd("XLEN").arg(self.key(&format!("outbox:{c}")));
        }
        let v: Vec<u64> = pipe.query_async(&mut self.conn()).await?;
        let mut out = [0; Class::COUNT];
        out.copy_from_slice(&v[..Class::COUNT]);
        Ok(out)
    }

    /// Brings the outbox under `target` events if it is above: geometric thinning of the
    /// oldest location history first, then the oldest status (one per device per 5 minutes),
    /// then — only if that was not enough — the oldest location fixes outright.
    pub async fn enforce_budget(&self, target: u64) -> Result<Thinned, StoreError> {
        let mut report = Thinned::default();
        let total: u64 = self.outbox_lens().await?.iter().sum();
        if total <= target {
            return Ok(report);
        }
        let mut excess = total - target;
        report.location = self.thin_locations(excess).await?;
        excess = excess.saturating_sub(report.location);
        if excess > 0 {
            report.status = self.thin_status(excess).await?;
            excess = excess.saturating_sub(report.status);
        }
        if excess > 0 {
            report.location_overflow = self.drop_oldest(Class::Location, excess).await?;
        }
        let mut pipe = redis::pipe();
        for (reason, n) in [
            ("thinned_location", report.location),
            ("thinned_status", report.status),
            ("overflow_location", report.location_overflow),
        ] {
            if n > 0 {
                pipe.hincr(self.key("drops"), reason, n).ignore();
            }
        }
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(report)
    }

    async fn oldest(
        &self,
        class: Class,
        after: &str,
        count: usize,
    ) -> Result<Vec<super::OutboxEntry>, StoreError> {
        self.read_after(class, after, count).await
    }

    async fn xdel(&self, class: Class, ids: &[String]) -> Result<u64, StoreError> {
        let mut n = 0;
        for chunk in ids.chunks(1000) {
            let d: u64 = redis::cmd("XDEL")
                .arg(self.key(&format!("outbox:{class}")))
                .arg(chunk)
                .query_async(&mut self.conn())
                .await?;
            n += d;
        }
        Ok(n)
    }

    /// Thins location history once: each pass starts after `<p>:thin:location`, the last entry
    /// an earlier pass already thinned. Thinning a thinned stretch again would compound the
    /// error (each pass may move the track by up to the tolerance); the first and last fix of
    /// each device in a pass are kept, so the stretches join without a gap.
    async fn thin_locations(&self, want: u64) -> Result<u64, StoreError> {
        let mark = self.key("thin:location");
        let start: Option<String> = redis::cmd("GET")
            .arg(&mark)
            .query_async(&mut self.conn())
            .await?;
        let (mut after, mut seen, mut freed) =
            (start.unwrap_or_else(|| "0-0".into()), 0usize, 0u64);
        while freed < want && seen < PASS_LIMIT {
            let chunk = self.oldest(Class::Location, &after, CHUNK).await?;
            let Some(last) = chunk.last() else { break };
            after = last.id.clone();
            seen += chunk.len();
            let fixes: Vec<Fix> = chunk
                .iter()
                .filter_map(|e| to_fix(&e.id, &e.json))
                .collect();
            let drop = thin(&fixes, &Params::default());
            freed += self.xdel(Class::Location, &drop).await?;
            let () = redis::cmd("SET")
                .arg(&mark)
                .arg(&after)
                .query_async(&mut self.conn())
                .await?;
        }
        Ok(freed)
    }

    async fn thin_status(&self, want: u64) -> Result<u64, StoreError> {
        let (mut after, mut seen, mut freed) = ("0-0".to_string(), 0usize, 0u64);
        while freed < want && seen < PASS_LIMIT {
            let chunk = self.oldest(Class::Status, &after, CHUNK).await?;
            let Some(last) = chunk.last() else { break };
            after = last.id.clone();
            seen += chunk.len();
            // Keep the first status of each device in each 5-minute bucket.
            let mut kept: HashMap<(String, i64), ()> = HashMap::new();
            let mut drop = Vec::new();
            for e in &chunk {
                let v: serde_json::Value = serde_json::from_str(&e.json).unwrap_or_default();
                let dev = v["dev"].as_str().unwrap_or_default().to_string();
                let bucket = super::parse_id(&e.id).map_or(0, |(ms, _)| ms as i64 / 300_000);
                if kept.insert((dev, bucket), ()).is_some() {
                    drop.push(e.id.clone());
                }
            }
            freed += self.xdel(Class::Status, &drop).await?;
        }
        Ok(freed)
    }

    async fn drop_oldest(&self, class: Class, n: u64) -> Result<u64, StoreError> {
        let chunk = self
            .oldest(class, "0-0", n.min(PASS_LIMIT as u64) as usize)
            .await?;
        let ids: Vec<String> = chunk.into_iter().map(|e| e.id).collect();
        self.xdel(class, &ids).await
    }

    /// Warns when Redis is not set up to keep the outbox (SPEC §6, `docs/guarantees.md`).
    /// Returns the problems found (empty when the settings are right).
    pub async fn check_durability(&self) -> Vec<String> {
        let want = [
            ("appendonly", "yes"),
            ("appendfsync", "always"),
            ("maxmemory-policy", "noeviction"),
        ];
        let mut problems = Vec::new();
        for (k, expected) in want {
            let v: Result<Value, _> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(k)
                .query_async(&mut self.conn())
                .await;
            let got = match v {
                Ok(Value::Array(a)) if a.len() == 2 => match &a[1] {
                    Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    other => format!("{other:?}"),
                },
                Ok(Value::Map(m)) if !m.is_empty() => match &m[0].1 {
                    Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    other => format!("{other:?}"),
                },
                Ok(other) => format!("{other:?}"),
                Err(e) => {
                    problems.push(format!("cannot read redis setting {k}: {e}"));
                    continue;
                }
            };
            if got != expected {
                problems.push(format!(
                    "redis {k} is {got:?}, the outbox needs {expected:?}"
                ));
            }
        }
        for p in &problems {
            warn!(problem = %p, "redis is not configured for a durable outbox (see docs/guarantees.md; systemd/redis-outpost.conf)");
        }
        problems
    }
}

fn to_fix(id: &str, json: &str) -> Option<Fix> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let ts = chrono::DateTime::parse_from_rfc3339(v["ts"].as_str()?).ok()?;
    Some(Fix {
        id: id.to_string(),
        dev: v["dev"].as_str()?.to_string(),
        lat: v["lat"].as_f64()?,
        lon: v["lon"].as_f64()?,
        t_ms: ts.timestamp_millis(),
        speed: v["speed"].as_f64(),
        course: v["course"].as_f64(),
    })
}
