//! The current picture from the store: every online device's latest position as a PLI, sent
//! first on every (re)connect of a `[[tak]]` output (SPEC §10). Read from the latest state in
//! Redis (`<p>:dev:<id>`, docs/redis-layout.md), so it is right after a gateway restart too.

use super::feed::unit;
use crate::config::Settings;
use crate::event::Location;
use crate::store::Store;
use chrono::{DateTime, Utc};
use outpost_cot::events::TAK_DEV_PREFIX;
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Presence timeout of a device whose profile the config no longer names.
const FALLBACK_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The picture source of one output.
pub struct StorePicture {
    pub store: Store,
    pub settings: Arc<Settings>,
}

impl outpost_cot::link::Picture for StorePicture {
    fn current(&self) -> Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send + '_>> {
        Box::pin(async move { self.read().await.map_err(|e| e.to_string()) })
    }
}

type Row = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl StorePicture {
    async fn read(&self) -> Result<Vec<String>, redis::RedisError> {
        let mut c = self.store.conn();
        let devs: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}:devices", self.store.prefix()))
            .query_async(&mut c)
            .await?;
        let devs: Vec<String> = devs
            .into_iter()
            .filter(|d| !d.starts_with(TAK_DEV_PREFIX))
            .collect();
        let mut out = Vec::new();
        for chunk in devs.chunks(256) {
            let mut pipe = redis::pipe();
            for d in chunk {
                pipe.cmd("HMGET")
                    .arg(format!("{}:dev:{d}", self.store.prefix()))
                    .arg(&["presence", "location", "status", "profile"][..]);
            }
            let rows: Vec<Row> = pipe.query_async(&mut c).await?;
            for (dev, (presence, loc, status, profile)) in chunk.iter().zip(rows) {
                if presence.as_deref() != Some("online") {
                    continue;
                }
                let Some((l, ts)) = loc.as_deref().and_then(location_of) else {
                    continue;
                };
                let status = status
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok());
                let battery = status
                    .as_ref()
                    .and_then(|s| s.get("battery"))
                    .and_then(Value::as_f64);
                let name = status
                    .as_ref()
                    .and_then(|s| s.get("extra"))
                    .and_then(Value::as_object)
                    .and_then(name_of);
                let profile = profile.unwrap_or_default();
                let timeout = self
                    .settings
                    .profile(&profile)
                    .map_or(FALLBACK_TIMEOUT, |p| p.presence_timeout);
                let u = unit(&self.settings, dev, &profile, name.as_deref());
                let stale = ts + chrono::Duration::from_std(timeout).unwrap_or_default();
                out.push((ts, outpost_cot::encode::pli(&u, &l, battery, ts, stale)));
            }
        }
        out.sort_by_key(|(ts, _)| *ts);
        Ok(out.into_iter().map(|(_, x)| x).collect())
    }
}

/// Device `dev`'s latest fix (and its time) and name, from the store.
pub async fn latest(
    store: &Store,
    dev: &str,
) -> Option<(Option<(Location, DateTime<Utc>)>, Option<String>)> {
    let (loc, status): (Option<String>, Option<String>) = redis::cmd("HMGET")
        .arg(format!("{}:dev:{dev}", store.prefix()))
        .arg(&["location", "status"][..])
        .query_async(&mut store.conn())
        .await
        .ok()?;
    let name = status
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| v.get("extra").and_then(Value::as_object).and_then(name_of));
    Some((loc.as_deref().and_then(location_of), name))
}

/// A stored location event (§5 JSON) back into a [`Location`] and its `ts`.
pub fn location_of(json: &str) -> Option<(Location, DateTime<Utc>)> {
    let v: Value = serde_json::from_str(json).ok()?;
    let f = |k: &str| v.get(k).and_then(Value::as_f64);
    let ts = DateTime::parse_from_rfc3339(v.get("ts")?.as_str()?)
        .ok()?
        .with_timezone(&Utc);
    let l = Location {
        lat: f("lat")?,
        lon: f("lon")?,
        alt: f("alt"),
        speed: f("speed"),
        course: f("course"),
        hdop: f("hdop"),
        acc: f("acc"),
        ..Default::default()
    };
    Some((l, ts))
}

/// A device's own name in a status `extra` (Meshtastic `long_name`, a JSON device's `name`).
pub fn name_of(extra: &Map<String, Value>) -> Option<String> {
    ["callsign", "long_name", "name"]
        .iter()
        .find_map(|k| extra.get(*k).and_then(Value::as_str))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
