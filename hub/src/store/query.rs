//! Reads for the HTTP API: devices, nearby devices, history, tracks, alerts, gateways. Each
//! read touches one slot per command (commands are concurrent, never cross-slot pipelines),
//! so the same code serves a single Redis and a Redis Cluster.

use super::keys::{pad, unpad};
use super::{Store, StoreError, BUCKETS};
use chrono::{TimeZone, Utc};
use futures_util::future::try_join_all;
use outpost_proto::{Class, EventId};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Mean Earth radius (IUGG), metres: the `distance_m` the API reports.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

fn rfc3339_ms(ms: i64) -> Value {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => Value::String(outpost_proto::event::format_ts(t)),
        None => Value::Null,
    }
}

/// The API object of one device from its latest-state hash.
fn device_object(dev: &str, h: HashMap<String, String>) -> Value {
    let parse = |k: &str| h.get(k).and_then(|s| serde_json::from_str::<Value>(s).ok());
    let mut o = Map::new();
    o.insert("dev".into(), dev.into());
    o.insert(
        "gw".into(),
        h.get("gw")
            .cloned()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    o.insert(
        "presence".into(),
        h.get("presence")
            .cloned()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    o.insert(
        "last_seen".into(),
        h.get("last_seen")
            .and_then(|s| s.parse().ok())
            .map(rfc3339_ms)
            .unwrap_or(Value::Null),
    );
    for class in Class::ALL {
        if let Some(v) = parse(class.as_str()) {
            o.insert(class.as_str().into(), v);
        }
    }
    Value::Object(o)
}

impl Store {
    async fn hgetall(&self, key: String) -> Result<HashMap<String, String>, StoreError> {
        Ok(redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.conn())
            .await?)
    }

    /// One device, `None` when unknown.
    pub async fn device(&self, dev: &str) -> Result<Option<Value>, StoreError> {
        let b = super::keys::bucket(dev);
        let h = self.hgetall(self.keys.dev(b, dev)).await?;
        Ok((!h.is_empty()).then(|| device_object(dev, h)))
    }

    /// One device's latest-state hash as stored (empty when unknown); the TAK feed reads
    /// `tie:location` and `ts:location` from it, which the API object leaves out.
    pub async fn device_hash(&self, dev: &str) -> Result<HashMap<String, String>, StoreError> {
        self.hgetall(self.keys.dev(super::keys::bucket(dev), dev))
            .await
    }

    /// Every device, sorted by id.
    pub async fn devices(&self) -> Result<Vec<Value>, StoreError> {
        let devs = self.device_ids().await?;
        let objects = try_join_all(devs.iter().map(|d| self.device(d))).await?;
        Ok(objects.into_iter().flatten().collect())
    }

    /// Every device id, sorted.
    pub async fn device_ids(&self) -> Result<Vec<String>, StoreError> {
        let sets = try_join_all((0..BUCKETS).map(|b| {
            let mut c = self.conn();
            let key = self.keys.devices(b);
            async move {
                redis::cmd("SMEMBERS")
                    .arg(key)
                    .query_async::<Vec<String>>(&mut c)
                    .await
            }
        }))
        .await?;
        let mut devs: Vec<String> = sets.into_iter().flatten().collect();
        devs.sort();
        Ok(devs)
    }

    /// Devices within `radius_m` of a point, nearest first, each with `distance_m` computed
    /// from its stored position (the geo index only selects candidates).
    pub async fn near(&self, lat: f64, lon: f64, radius_m: f64) -> Result<Vec<Value>, StoreError> {
        // Redis' own radius and its 52-bit geohash cells differ slightly from ours: ask a
        // little wider, then keep what is within the radius by our distance.
        let wide = radius_m * 1.001 + 5.0;
        let found = try_join_all((0..BUCKETS).map(|b| {
            let mut c = self.conn();
            let key = self.keys.geo(b);
            async move {
                redis::cmd("GEOSEARCH")
                    .arg(key)
                    .arg("FROMLONLAT")
                    .arg(lon)
                    .arg(lat)
                    .arg("BYRADIUS")
                    .arg(wide)
                    .arg("m")
                    .query_async::<Vec<String>>(&mut c)
                    .await
            }
        }))
        .await?;
        let mut out = Vec::new();
        for dev in found.into_iter().flatten() {
            let Some(mut o) = self.device(&dev).await? else {
                continue;
            };
            let pos = o
                .get("location")
                .and_then(|l| Some((l.get("lat")?.as_f64()?, l.get("lon")?.as_f64()?)));
            let Some((dlat, dlon)) = pos else { continue };
            let d = haversine_m(lat, lon, dlat, dlon);
            if d <= radius_m {
                o["distance_m"] = json!((d * 10.0).round() / 10.0);
                out.push((d, o));
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(out.into_iter().map(|(_, o)| o).collect())
    }

    /// As [`Store::events`], the stored JSON text unparsed.
    pub async fn events_raw(
        &self,
        gw: &str,
        class: Class,
        after: EventId,
        limit: usize,
    ) -> Result<Vec<(EventId, String)>, StoreError> {
        let members: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(self.keys.history(gw, class))
            .arg(format!("({}!", pad(after)))
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn())
            .await?;
        Ok(members
            .into_iter()
            .filter_map(|m| {
                let id = unpad(&m)?;
                let (_, json) = m.split_once(' ')?;
                Some((id, json.to_string()))
            })
            .collect())
    }

    /// Stored events of one (gateway, class) after `after`, in id order, at most `limit`.
    pub async fn events(
        &self,
        gw: &str,
        class: Class,
        after: EventId,
        limit: usize,
    ) -> Result<Vec<(EventId, Value)>, StoreError> {
        let raw = self.events_raw(gw, class, after, limit).await?;
        Ok(raw
            .into_iter()
            .filter_map(|(id, json)| Some((id, serde_json::from_str(&json).ok()?)))
            .collect())
    }

    /// A device's location events with `ts` in `[from_ms, to_ms]`, by `ts` (then id).
    ///
    /// The track holds references (one or more padded ids and a gateway, see
    /// [`segment_ref`](super::latest::segment_ref)), scored by their earliest point: the
    /// members from `from_ms - TRACK_SPAN_MS` are read, each point looked up in its gateway's
    /// history, one pipeline per gateway (one cluster slot each), and kept when its own `ts`
    /// is in the range. A point whose event was trimmed by retention meanwhile is left out.
    /// Equal event JSON is one point, as when the track was a set of the JSON itself (a point
    /// stored that way is still read).
    pub async fn track(
        &self,
        dev: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Value>, StoreError> {
        let b = super::keys::bucket(dev);
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.track(b, dev))
            .arg(from_ms.saturating_sub(super::latest::TRACK_SPAN_MS))
            .arg(to_ms)
            .query_async(&mut self.conn())
            .await?;
        // Per gateway: the padded ids to look up.
        let mut by_gw: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        // (ts, padded id or "", JSON) of every point found.
        let mut points: Vec<(i64, String, String)> = Vec::new();
        for m in &members {
            match super::latest::parse_track_ref(m) {
                Some((pids, gw)) => by_gw.entry(gw).or_default().extend(pids),
                None => points.push((0, String::new(), m.clone())),
            }
        }
        let lookups = by_gw.iter().map(|(gw, pids)| {
            let mut pipe = redis::pipe();
            for pid in pids {
                pipe.cmd("ZRANGEBYLEX")
                    .arg(self.keys.history(gw, Class::Location))
                    .arg(format!("[{pid} "))
                    .arg(format!("({pid}!"))
                    .arg("LIMIT")
                    .arg(0)
                    .arg(1);
            }
            let mut conn = self.conn();
            async move { pipe.query_async::<Vec<Vec<String>>>(&mut conn).await }
        });
        for found in try_join_all(lookups).await? {
            for m in found.into_iter().flatten() {
                if let Some((pid, json)) = m.split_once(' ') {
                    points.push((0, pid.to_string(), json.to_string()));
                }
            }
        }
        let mut parsed: Vec<(i64, String, String, Value)> = points
            .into_iter()
            .filter_map(|(_, pid, json)| {
                let v: Value = serde_json::from_str(&json).ok()?;
                let ms = |k: &str| v.get(k).and_then(Value::as_str).and_then(super::parse_ms);
                let ts = ms("ts").or_else(|| ms("rx")).unwrap_or(0);
                Some((ts, pid, json, v))
            })
            .filter(|(ts, ..)| (from_ms..=to_ms).contains(ts))
            .collect();
        parsed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut seen = HashSet::new();
        Ok(parsed
            .into_iter()
            .filter(|(_, _, json, _)| seen.insert(json.clone()))
            .map(|(.., v)| v)
            .collect())
    }

    /// Every gateway ever seen, sorted.
    pub async fn gateway_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut g: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.gateways())
            .query_async(&mut self.conn())
            .await?;
        g.sort();
        Ok(g)
    }

    /// Alerts with `ts` at or after `since_ms`, newest first, each with its `gw`.
    pub async fn alerts(&self, since_ms: i64) -> Result<Vec<Value>, StoreError> {
        let mut out = Vec::new();
        for gw in self.gateway_ids().await? {
            let mut after = EventId::ZERO;
            loop {
                let page = self.events(&gw, Class::Alert, after, 10_000).await?;
                let Some((last, _)) = page.last() else { break };
                after = *last;
                let full = page.len() == 10_000;
                for (_, mut e) in page {
                    let ts = e
                        .get("ts")
                        .and_then(Value::as_str)
                        .and_then(super::parse_ms)
                        .unwrap_or(0);
                    if ts >= since_ms {
                        e["gw"] = gw.clone().into();
                        out.push((ts, e));
                    }
                }
                if !full {
                    break;
                }
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.0));
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }

    /// Each gateway's liveness, last batch time and events stored per class.
    pub async fn gateways(&self) -> Result<Vec<Value>, StoreError> {
        let ids = self.gateway_ids().await?;
        let metas = try_join_all(ids.iter().map(|g| self.hgetall(self.keys.gw_meta(g)))).await?;
        Ok(ids
            .into_iter()
            .zip(metas)
            .map(|(gw, m)| {
                let s = |k: &str| m.get(k).filter(|v| !v.is_empty()).cloned().map(Value::String).unwrap_or(Value::Null);
                // Events stored per class over the gateway's life (the history script's count):
                // lets a reader tell whether the history it paged is complete.
                let stored: Map<String, Value> = Class::ALL
                    .iter()
                    .filter_map(|c| {
                        let n: u64 = m.get(&format!("stored:{}", c.as_str()))?.parse().ok()?;
                        Some((c.as_str().to_string(), n.into()))
                    })
                    .collect();
                json!({
                    "gw": gw,
                    "state": s("state"),
                    "since": s("since"),
                    "version": s("version"),
                    "last_batch": m.get("last_batch").and_then(|v| v.parse().ok()).map(rfc3339_ms).unwrap_or(Value::Null),
                    "stored": stored,
                })
            })
            .collect())
    }

    /// Whether `gw` is a known gateway.
    pub async fn has_gateway(&self, gw: &str) -> Result<bool, StoreError> {
        let n: i64 = redis::cmd("SISMEMBER")
            .arg(self.keys.gateways())
            .arg(gw)
            .query_async(&mut self.conn())
            .await?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_of_a_known_pair() {
        // Berlin TV tower to Brandenburg Gate, about 2.1 km.
        let d = haversine_m(52.520815, 13.409419, 52.516275, 13.377704);
        assert!((2150.0..2210.0).contains(&d), "{d}");
        assert_eq!(haversine_m(1.0, 2.0, 1.0, 2.0), 0.0);
    }
}
