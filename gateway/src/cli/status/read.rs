//! Reads the status keys (docs/redis-layout.md) with plain synchronous commands; nothing here
//! writes.

use super::{
    age_s, classes, ClassState, Device, PendingMessage, Position, RegionState, Report, Uplink,
};
use crate::event::format_ts;
use chrono::{DateTime, TimeZone, Utc};
use redis::{Commands, Connection, RedisResult};
use std::collections::HashMap;

/// Reads the whole report under `prefix`.
pub fn gather(
    conn: &mut Connection,
    gateway: Option<String>,
    url: &str,
    prefix: &str,
    now: DateTime<Utc>,
) -> RedisResult<Report> {
    let key = |k: &str| format!("{prefix}:{k}");
    let regions = regions(conn, prefix, now)?;
    let mut uplink: HashMap<String, String> = conn.hgetall(key("uplink"))?;
    if !regions.is_empty() {
        // Several regions: the classes show what some region still lacks (behind the trim).
        uplink = slowest(conn, prefix, &regions)?;
    }
    let stats: HashMap<String, u64> = conn.hgetall(key("stats"))?;
    let mut class_states = Vec::new();
    for class in classes() {
        let acked = uplink.get(&format!("acked:{class}")).cloned();
        let (backlog, oldest) = backlog(conn, &key(&format!("outbox:{class}")), acked.as_deref())?;
        class_states.push(ClassState {
            class,
            backlog,
            oldest_age_s: oldest.map(|ms| age_s(now, from_ms(ms))),
            accepted: stats
                .get(&format!("accepted:{class}"))
                .copied()
                .unwrap_or(0),
            delivered: stats
                .get(&format!("delivered:{class}"))
                .copied()
                .unwrap_or(0),
            acked,
        });
    }
    let since = uplink.get("since").cloned();
    let since_age = since
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| age_s(now, t.with_timezone(&Utc)));
    let mut ids: Vec<String> = conn.smembers(key("devices"))?;
    ids.sort();
    let mut devices = Vec::new();
    for id in ids {
        let h: HashMap<String, String> = conn.hgetall(key(&format!("dev:{id}")))?;
        devices.push(device(id, &h, now));
    }
    let mut drops: Vec<(String, u64)> = conn
        .hgetall::<_, HashMap<String, u64>>(key("drops"))?
        .into_iter()
        .collect();
    drops.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let pending_messages = pending(conn, prefix, now)?;
    let mut downlink: Vec<(String, u64)> = conn
        .hgetall::<_, HashMap<String, u64>>(key("down:stats"))?
        .into_iter()
        .collect();
    downlink.sort();
    Ok(Report {
        gateway,
        redis: url.to_string(),
        prefix: prefix.to_string(),
        at: format_ts(now),
        uplink: Uplink {
            state: uplink
                .get("state")
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            since,
            for_s: since_age,
        },
        regions,
        classes: class_states,
        devices,
        drops,
        pending_messages,
        downlink,
    })
}

/// Every device's message queue (`<p>:down:pending`, `<p>:down:q:<dev>`), oldest first.
fn pending(
    conn: &mut Connection,
    prefix: &str,
    now: DateTime<Utc>,
) -> RedisResult<Vec<PendingMessage>> {
    let mut devs: Vec<String> = conn.smembers(format!("{prefix}:down:pending"))?;
    devs.sort();
    let mut out = Vec::new();
    for dev in devs {
        let ids: Vec<String> = conn.lrange(format!("{prefix}:down:q:{dev}"), 0, 999)?;
        for msg_id in ids {
            let key = format!("{prefix}:down:msg:{msg_id}");
            let (text, state, expires): (Option<String>, Option<String>, Option<i64>) =
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("text")
                    .arg(format!("st:{dev}"))
                    .arg("expires")
                    .query(conn)?;
            out.push(PendingMessage {
                dev: dev.clone(),
                msg_id,
                state: state.unwrap_or_default(),
                text: text.unwrap_or_default(),
                expires_in_s: expires.map_or(0, |e| (e - now.timestamp_millis()) / 1000),
            });
        }
    }
    Ok(out)
}

/// Events after `acked` in the stream, and the ms time of the oldest of them. The uplink trims
/// up to the acknowledged entry, which may itself remain; it is not backlog.
fn backlog(
    conn: &mut Connection,
    stream: &str,
    acked: Option<&str>,
) -> RedisResult<(u64, Option<u64>)> {
    let len: u64 = conn.xlen(stream)?;
    let start = acked.map_or_else(|| "-".to_string(), |a| format!("({a}"));
    let first: redis::streams::StreamRangeReply = conn.xrange_count(stream, &start, "+", 1)?;
    let Some(first) = first.ids.first() else {
        return Ok((0, None));
    };
    let done = match acked {
        Some(a) => {
            let behind: redis::streams::StreamRangeReply =
                conn.xrange_count(stream, "-", a, 10_000)?;
            behind.ids.len() as u64
        }
        None => 0,
    };
    let ms = first.id.split('-').next().and_then(|m| m.parse().ok());
    Ok((len.saturating_sub(done), ms))
}

fn device(id: String, h: &HashMap<String, String>, now: DateTime<Utc>) -> Device {
    let last_seen = h
        .get("last_seen")
        .and_then(|s| s.parse::<i64>().ok())
        .map(|ms| from_ms(ms.max(0) as u64));
    let position = h.get("location").and_then(|j| {
        let v: serde_json::Value = serde_json::from_str(j).ok()?;
        Some(Position {
            lat: v.get("lat")?.as_f64()?,
            lon: v.get("lon")?.as_f64()?,
            ts: v.get("ts").and_then(|t| t.as_str()).map(String::from),
        })
    });
    Device {
        id,
        name: h.get("name").cloned(),
        state: h
            .get("presence")
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        last_seen: last_seen.map(format_ts),
        last_seen_age_s: last_seen.map(|t| age_s(now, t)),
        profile: h.get("profile").cloned(),
        position,
    }
}

fn from_ms(ms: u64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms.min(i64::MAX as u64) as i64)
        .single()
        .unwrap_or_default()
}

/// The regions of a gateway with `[[uplink]]` tables (empty for the single `default` one).
fn regions(
    conn: &mut Connection,
    prefix: &str,
    now: DateTime<Utc>,
) -> RedisResult<Vec<RegionState>> {
    let mut names: Vec<String> = conn.smembers(format!("{prefix}:regions"))?;
    names.sort();
    if names
        .iter()
        .all(|n| n == crate::config::raw::DEFAULT_REGION)
    {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in names {
        let h: HashMap<String, String> =
            conn.hgetall(format!("{prefix}:{}", crate::store::region_key(&name)))?;
        let (mut total, mut oldest) = (0, None::<u64>);
        for class in classes() {
            let acked = h.get(&format!("acked:{class}")).map(String::as_str);
            let (n, o) = backlog(conn, &format!("{prefix}:outbox:{class}"), acked)?;
            total += n;
            oldest = match (oldest, o) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let since = h.get("since").cloned();
        let for_s = since
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| age_s(now, t.with_timezone(&Utc)));
        out.push(RegionState {
            uplink: Uplink {
                state: h.get("state").cloned().unwrap_or_else(|| "unknown".into()),
                since,
                for_s,
            },
            backlog: total,
            oldest_age_s: oldest.map(|ms| age_s(now, from_ms(ms))),
            missed: h.get("missed").and_then(|m| m.parse().ok()).unwrap_or(0),
            lagging: h.contains_key("lagging"),
            name,
        });
    }
    Ok(out)
}

/// Per class the lowest cursor over the regions, and "up" when any region is up: the
/// gateway-wide view of several regions.
fn slowest(
    conn: &mut Connection,
    prefix: &str,
    regions: &[RegionState],
) -> RedisResult<HashMap<String, String>> {
    let mut out = HashMap::new();
    let any_up = regions.iter().any(|r| r.uplink.state == "up");
    out.insert(
        "state".into(),
        if any_up { "up" } else { "down" }.to_string(),
    );
    for class in classes() {
        let field = format!("acked:{class}");
        let mut low: Option<(u64, u64)> = None;
        for r in regions {
            let key = format!("{prefix}:{}", crate::store::region_key(&r.name));
            let c: Option<String> = conn.hget(&key, &field)?;
            let id = c
                .as_deref()
                .and_then(crate::store::parse_id)
                .unwrap_or((0, 0));
            low = Some(low.map_or(id, |l| l.min(id)));
        }
        if let Some((ms, seq)) = low.filter(|l| *l != (0, 0)) {
            out.insert(field, format!("{ms}-{seq}"));
        }
    }
    Ok(out)
}
