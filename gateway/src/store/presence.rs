//! Presence expiry: devices whose deadline passed go offline, once, atomically.

use super::{Store, StoreError};
use crate::event::{Body, Event, Presence, PresenceState, TsSrc};
use chrono::{DateTime, TimeZone, Utc};

impl Store {
    /// Emits an offline presence event for every device whose deadline is at or before `now`.
    /// Returns the devices that went offline, each with its profile name.
    pub async fn expire_presence(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let due: Vec<(String, i64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key("presence:deadline"))
            .arg("-inf")
            .arg(now.timestamp_millis())
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(500)
            .query_async(&mut self.conn())
            .await?;
        let mut gone = Vec::new();
        for (dev, deadline) in due {
            let (last_seen, profile): (Option<i64>, Option<String>) = redis::cmd("HMGET")
                .arg(self.key(&format!("dev:{dev}")))
                .arg("last_seen")
                .arg("profile")
                .query_async(&mut self.conn())
                .await?;
            let last_seen = last_seen
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
                .unwrap_or(now);
            let at = Utc.timestamp_millis_opt(deadline).single().unwrap_or(now);
            let json = Event {
                dev: dev.clone(),
                body: Body::Presence(Presence {
                    state: PresenceState::Offline,
                    last_seen,
                }),
                ts: at,
                ts_src: TsSrc::Gateway,
            }
            .to_stored_json(now);
            let id: Option<String> = self
                .offline
                .arg(&self.prefix)
                .arg(&dev)
                .arg(deadline)
                .arg(json)
                .invoke_async(&mut self.conn())
                .await?;
            if id.is_some() {
                gone.push((dev, profile.unwrap_or_default()));
            }
        }
        Ok(gone)
    }
}
