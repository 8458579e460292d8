//! The uplink's side of the outbox: read entries after a cursor, record acknowledgements
//! (cursor + trim, in one round trip), and the device snapshot.

use super::{Store, StoreError};
use crate::event::{format_ts, Class};
use chrono::Utc;
use redis::Value;

/// One outbox entry: its stream id and the stored event JSON (without `id`/`replay`).
pub use outpost_proto::batch::Entry as OutboxEntry;
pub use outpost_proto::id::{next_id, parse_id};

impl Store {
    /// Up to `count` entries of `class` with ids after `after` (`"0-0"` = from the start).
    pub async fn read_after(
        &self,
        class: Class,
        after: &str,
        count: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let v: Value = self
            .xrange_after(class, after, count)
            .query_async(&mut self.conn())
            .await?;
        parse_entries(v, class)
    }

    /// What an `XRANGE` of up to `count` entries of `class` after `after` reads: the stream,
    /// the first id (inclusive), the count.
    fn xrange_args(&self, class: Class, after: &str, count: usize) -> super::raw::Read {
        (self.key(&format!("outbox:{class}")), next_id(after), count)
    }

    /// `XRANGE` of up to `count` entries of `class` after `after`.
    fn xrange_after(&self, class: Class, after: &str, count: usize) -> redis::Cmd {
        let (key, start, count) = self.xrange_args(class, after, count);
        let mut c = redis::cmd("XRANGE");
        c.arg(key).arg(start).arg("+").arg("COUNT").arg(count);
        c
    }

    /// One drain pass's read: for each (class, cursor, count) up to `count` entries after the
    /// cursor, all in one atomic snapshot (`MULTI`) and one round trip. One input's events are
    /// written by one script, so a pass that finds a class empty and reads the next one in the
    /// same snapshot never sends a lower class's event before a higher class's event of the
    /// same input (drain order, SPEC §6). Plain `XRANGE`s: a Lua script returning the same
    /// rows cost Redis 20× the time (its replies are converted to Lua tables and back). On the
    /// pass's own connection, its reply parsed by hand (`raw`), except over TLS.
    pub async fn read_pass(
        &self,
        reads: &[(Class, &str, usize)],
    ) -> Result<Vec<Vec<OutboxEntry>>, StoreError> {
        if let Some(raw) = &self.raw {
            let xr: Vec<super::raw::Read> = reads
                .iter()
                .map(|(class, cursor, count)| self.xrange_args(*class, cursor, *count))
                .collect();
            // Expanded as they are read: one allocation per entry (its full form).
            let mut x = super::compact::Expander::default();
            return raw
                .xranges(&xr, |i, id, stored| {
                    let ms = parse_id(&id).map_or(0, |(ms, _)| ms);
                    OutboxEntry {
                        json: x.expand_bytes(stored, reads[i].0, ms),
                        id,
                    }
                })
                .await;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (class, cursor, count) in reads {
            pipe.add_command(self.xrange_after(*class, cursor, *count));
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.conn()).await?;
        if replies.len() != reads.len() {
            return Err(StoreError::Reply(format!(
                "read pass: {} replies for {} reads",
                replies.len(),
                reads.len()
            )));
        }
        reads
            .iter()
            .zip(replies)
            .map(|((class, _, _), v)| parse_entries(v, *class))
            .collect()
    }

    /// The id of the newest entry of `class`, or `"0-0"`.
    pub async fn last_id(&self, class: Class) -> Result<String, StoreError> {
        let v: Value = redis::cmd("XREVRANGE")
            .arg(self.key(&format!("outbox:{class}")))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn())
            .await?;
        Ok(parse_entries(v, class)?
            .pop()
            .map(|e| e.id)
            .unwrap_or_else(|| "0-0".into()))
    }

    /// The retained snapshot of every device's latest state (SPEC §5).
    pub async fn snapshot(&self, gw: &str) -> Result<String, StoreError> {
        let devs: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.key("devices"))
            .query_async(&mut self.conn())
            .await?;
        let mut pipe = redis::pipe();
        if devs.is_empty() {
            return Ok(
                serde_json::json!({"gw": gw, "ts": format_ts(Utc::now()), "devices": {}})
                    .to_string(),
            );
        }
        for d in &devs {
            pipe.cmd("HMGET").arg(self.key(&format!("dev:{d}"))).arg(&[
                "presence_json",
                "location",
                "status",
                "last_seen",
                "profile",
            ]);
        }
        let rows: Vec<Vec<Option<String>>> = pipe.query_async(&mut self.conn()).await?;
        let mut devices = serde_json::Map::new();
        for (d, row) in devs.iter().zip(rows) {
            let mut obj = serde_json::Map::new();
            for (name, v) in ["presence", "location", "status"].iter().zip(&row) {
                if let Some(v) = v.as_ref().and_then(|s| serde_json::from_str(s).ok()) {
                    obj.insert(name.to_string(), v);
                }
            }
            if let Some(p) = row.get(4).cloned().flatten() {
                obj.insert("profile".into(), p.into());
            }
            devices.insert(d.clone(), obj.into());
        }
        Ok(
            serde_json::json!({"gw": gw, "ts": format_ts(Utc::now()), "devices": devices})
                .to_string(),
        )
    }
}

/// The bytes as text, without a copy when they are UTF-8 (ours always are).
pub(super) fn utf8(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Stream rows as entries, each in the full stored form (compact ones expanded).
fn parse_entries(v: Value, class: Class) -> Result<Vec<OutboxEntry>, StoreError> {
    let bad = |v: &Value| StoreError::Reply(format!("stream entry: {v:?}"));
    let Value::Array(rows) = v else {
        return Err(bad(&v));
    };
    let mut stored = Vec::with_capacity(rows.len());
    for row in rows {
        let Value::Array(mut parts) = row else {
            return Err(bad(&row));
        };
        let (Some(Value::Array(fields)), Some(Value::BulkString(id))) = (parts.pop(), parts.pop())
        else {
            return Err(StoreError::Reply("stream entry shape".into()));
        };
        // Fields are [name, value, ...]; we write one field, `e`. Taken, not copied.
        let json = match fields.into_iter().nth(1) {
            Some(Value::BulkString(b)) => utf8(b),
            other => return Err(StoreError::Reply(format!("stream field: {other:?}"))),
        };
        stored.push((utf8(id), json));
    }
    Ok(expand_entries(stored, class))
}

/// Entries of `class` as the uplink sends them, from their ids and stored forms (compact
/// ones expanded, docs/redis-layout.md): what a read returns and what ingest hands over.
pub fn expand_entries(
    stored: impl IntoIterator<Item = (String, String)>,
    class: Class,
) -> Vec<OutboxEntry> {
    let mut expander = super::compact::Expander::default();
    stored
        .into_iter()
        .map(|(id, json)| {
            let ms = parse_id(&id).map_or(0, |(ms, _)| ms);
            OutboxEntry {
                json: expander.expand(json, class, ms),
                id,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_id_is_exclusive_successor() {
        assert_eq!(next_id("0-0"), "0-1");
        assert_eq!(next_id("1700000000000-5"), "1700000000000-6");
        assert_eq!(parse_id("12-3"), Some((12, 3)));
        assert_eq!(parse_id("x"), None);
    }
}
