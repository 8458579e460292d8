//! Per-region uplink state (SPEC §9): each region's cursors in its own hash (`<p>:uplink` for
//! the single `default` region, so a one-hub gateway keeps its keys; `<p>:uplink:<name>`
//! otherwise), and the acknowledgement that trims behind the slowest region still within its
//! `max_lag`.

use super::{Store, StoreError};
use crate::config::raw::DEFAULT_REGION;
use crate::event::{format_ts, Class};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What the acknowledgement script needs to know about one region.
#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    pub max_lag: Duration,
}

/// The hash (under the prefix) holding region `name`'s cursors and state.
pub fn region_key(name: &str) -> String {
    if name == DEFAULT_REGION {
        "uplink".into()
    } else {
        format!("uplink:{name}")
    }
}

impl Store {
    /// Records that these regions exist (for `outpost status`), replacing the old set.
    pub async fn set_regions(&self, names: &[String]) -> Result<(), StoreError> {
        let key = self.key("regions");
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore().sadd(&key, names).ignore();
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// The acknowledged cursor of every class for `region` (`"0-0"` when none yet).
    pub async fn acked_cursors(&self, region: &str) -> Result<[String; Class::COUNT], StoreError> {
        let fields: Vec<String> = Class::ALL.iter().map(|c| format!("acked:{c}")).collect();
        let v: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key(&region_key(region)))
            .arg(&fields)
            .query_async(&mut self.conn())
            .await?;
        let mut out: [String; Class::COUNT] = Default::default();
        for (i, c) in v.into_iter().enumerate().take(Class::COUNT) {
            out[i] = c.unwrap_or_else(|| "0-0".into());
        }
        Ok(out)
    }

    /// Region `regions[me]`'s hub acknowledged up to these ids (`n` events each): move its
    /// cursors, trim behind the slowest region within its max_lag; returns, per lagging
    /// region, (name, events it missed with this call, whether it started lagging now).
    pub async fn ack_region(
        &self,
        regions: &[Region],
        me: usize,
        moves: &[(Class, String, u64)],
    ) -> Result<Vec<(String, u64, bool)>, StoreError> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.ack.get_hash())
            .arg(0)
            .arg(&self.prefix)
            .arg(self.key(&region_key(&regions[me].name)))
            .arg(Utc::now().timestamp_millis())
            .arg(if me == 0 { "1" } else { "0" })
            .arg(regions.len());
        for r in regions {
            cmd.arg(self.key(&region_key(&r.name)))
                .arg(r.max_lag.as_millis() as u64)
                .arg(&r.name);
        }
        cmd.arg(moves.len());
        for (class, id, n) in moves {
            cmd.arg(class.as_str()).arg(id).arg(*n);
        }
        let rows: Vec<(String, u64, u8)> = match cmd.query_async(&mut self.conn()).await {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                self.load_scripts().await?;
                cmd.query_async(&mut self.conn()).await?
            }
            r => r?,
        };
        Ok(rows.into_iter().map(|(n, k, s)| (n, k, s == 1)).collect())
    }

    /// Records region `region`'s uplink state (`up`/`down`) and since when, for `status`;
    /// a region coming up is no longer lagging.
    pub async fn set_uplink_state(
        &self,
        region: &str,
        state: &str,
        since: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let key = self.key(&region_key(region));
        let mut pipe = redis::pipe();
        pipe.hset_multiple(&key, &[("state", state), ("since", &format_ts(since))])
            .ignore();
        if state == "up" {
            // Back: it holds the trim again from its cursor (ack.lua sets the flag anew if it
            // still lags past max_lag).
            pipe.hdel(&key, "lagging").ignore();
        }
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }
}
