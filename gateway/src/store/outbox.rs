//! The uplink's side of the outbox: read entries after a cursor, record acknowledgements
//! (cursor + trim, in one round trip), and the device snapshot.

use super::{Store, StoreError};
use crate::event::{format_ts, Class};
use chrono::Utc;
use redis::Value;

/// One outbox entry: its stream id and the stored event JSON (without `id`/`replay`).
pub use outpost_proto::batch::Entry as OutboxEntry;
pub use outpost_proto::id::{next_id, parse_id};

/// One class as a drain pass read it ([`Store::read_pass`]).
pub struct ClassRead {
    pub class: Class,
    pub entries: Vec<OutboxEntry>,
    /// Read to its end: nothing after the last entry (at the time of the snapshot).
    pub exhausted: bool,
}

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

    /// `XRANGE` of up to `count` entries of `class` after `after`.
    fn xrange_after(&self, class: Class, after: &str, count: usize) -> redis::Cmd {
        let mut c = redis::cmd("XRANGE");
        c.arg(self.key(&format!("outbox:{class}")))
            .arg(next_id(after))
            .arg("+")
            .arg("COUNT")
            .arg(count);
        c
    }

    /// One drain pass's read, in one atomic snapshot (`read.lua`): the classes in `cursors`
    /// (highest priority first), each after its own cursor, until `slots` batches of
    /// `per_batch` entries are filled; one reply per class read, in order. A class read short
    /// is exhausted and the next is read in the same snapshot. One input's events are written
    /// by one script, so a lower class's event is never read without the higher-class events
    /// of the same input (drain order, SPEC §6). One round trip however many classes are
    /// looked at (a pass at a low rate used to take one per class).
    pub async fn read_pass(
        &self,
        cursors: &[(Class, &str)],
        slots: usize,
        per_batch: usize,
    ) -> Result<Vec<ClassRead>, StoreError> {
        let mut inv = self.read.prepare_invoke();
        for (c, _) in cursors {
            inv.key(self.key(&format!("outbox:{c}")));
        }
        for (_, cursor) in cursors {
            inv.arg(next_id(cursor));
        }
        inv.arg(slots).arg(per_batch);
        let replies: Vec<Value> = inv.invoke_async(&mut self.conn()).await?;
        if replies.len() > cursors.len() {
            return Err(StoreError::Reply(format!(
                "read pass: {} replies for {} classes",
                replies.len(),
                cursors.len()
            )));
        }
        let mut left = slots;
        let mut out = Vec::with_capacity(replies.len());
        for ((class, _), v) in cursors.iter().zip(replies) {
            let entries = parse_entries(v, *class)?;
            let want = left * per_batch;
            left = left.saturating_sub(entries.len().div_ceil(per_batch.max(1)));
            out.push(ClassRead {
                class: *class,
                exhausted: entries.len() < want,
                entries,
            });
        }
        Ok(out)
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

/// Stream rows as entries, each in the full stored form (compact ones expanded).
fn parse_entries(v: Value, class: Class) -> Result<Vec<OutboxEntry>, StoreError> {
    let bad = |v: &Value| StoreError::Reply(format!("stream entry: {v:?}"));
    let Value::Array(rows) = v else {
        return Err(bad(&v));
    };
    let mut out = Vec::with_capacity(rows.len());
    let mut expander = super::compact::Expander::default();
    for row in rows {
        let Value::Array(mut parts) = row else {
            return Err(bad(&row));
        };
        let (Some(Value::Array(fields)), Some(Value::BulkString(id))) = (parts.pop(), parts.pop())
        else {
            return Err(StoreError::Reply("stream entry shape".into()));
        };
        // Fields are [name, value, ...]; we write one field, `e`.
        let json = match fields.get(1) {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            other => return Err(StoreError::Reply(format!("stream field: {other:?}"))),
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        let ms = parse_id(&id).map_or(0, |(ms, _)| ms);
        out.push(OutboxEntry {
            json: expander.expand(json, class, ms),
            id,
        });
    }
    Ok(out)
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
