//! Gauges read from Redis at scrape time: backlog depth and age of the oldest unsent event per
//! class (`<prefix>:outbox:<class>`: entries are trimmed on PUBACK, so what is left is unsent or
//! unacknowledged), and devices online (`<prefix>:presence:deadline` holds online devices only).
//! Key layout: docs/redis-layout.md.

use crate::event::Class;
use crate::store::{parse_id, Store};
use redis::Value;
use std::time::Duration;

/// How long a scrape waits for Redis before answering without these gauges.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Backlog of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    pub depth: u64,
    /// Age of the oldest entry in seconds (0 when empty), by the entry id's timestamp.
    pub oldest_age_s: f64,
}

/// What one scrape read from Redis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedisGauges {
    pub backlog: [Backlog; Class::COUNT],
    pub devices_online: u64,
    /// `<prefix>:down:stats`: downlink messages by receipt state, bad ones as `bad:<reason>`.
    pub downlink: Vec<(String, u64)>,
    /// Messages waiting in device queues (`<prefix>:down:expiry` holds every queued one).
    pub downlink_pending: u64,
}

/// Reads every gauge in one pipelined round trip.
pub async fn read(store: &Store, now_ms: u64) -> anyhow::Result<RedisGauges> {
    let mut pipe = redis::pipe();
    for c in Class::ALL {
        let key = format!("{}:outbox:{c}", store.prefix());
        pipe.cmd("XLEN").arg(&key);
        pipe.cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
    }
    pipe.cmd("ZCARD")
        .arg(format!("{}:presence:deadline", store.prefix()));
    pipe.cmd("HGETALL")
        .arg(format!("{}:down:stats", store.prefix()));
    pipe.cmd("ZCARD")
        .arg(format!("{}:down:expiry", store.prefix()));
    let replies: Vec<Value> =
        tokio::time::timeout(TIMEOUT, pipe.query_async(&mut store.conn())).await??;
    let mut g = RedisGauges::default();
    for (i, pair) in replies.chunks(2).take(Class::COUNT).enumerate() {
        let depth = as_u64(&pair[0]);
        let oldest = pair.get(1).and_then(first_entry_ms);
        g.backlog[i] = Backlog {
            depth,
            oldest_age_s: match oldest {
                Some(ms) if depth > 0 => now_ms.saturating_sub(ms) as f64 / 1000.0,
                _ => 0.0,
            },
        };
    }
    g.devices_online = replies.get(2 * Class::COUNT).map_or(0, as_u64);
    if let Some(v) = replies.get(2 * Class::COUNT + 1) {
        let mut m: Vec<(String, u64)> = redis::from_redis_value_ref(v).unwrap_or_default();
        m.sort();
        g.downlink = m;
    }
    g.downlink_pending = replies.get(2 * Class::COUNT + 2).map_or(0, as_u64);
    Ok(g)
}

fn as_u64(v: &Value) -> u64 {
    match v {
        Value::Int(n) => (*n).max(0) as u64,
        _ => 0,
    }
}

/// The ms part of the first entry id of an XRANGE reply.
fn first_entry_ms(v: &Value) -> Option<u64> {
    let Value::Array(rows) = v else { return None };
    let Value::Array(entry) = rows.first()? else {
        return None;
    };
    let id = match entry.first()? {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    parse_id(&id).map(|(ms, _)| ms)
}
