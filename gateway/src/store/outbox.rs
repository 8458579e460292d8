//! The uplink's side of the outbox: read entries after a cursor, record acknowledgements
//! (cursor + trim, in one round trip), and the device snapshot.

use super::{Store, StoreError};
use crate::event::{format_ts, Class};
use chrono::Utc;
use redis::Value;

/// One outbox entry: its stream id and the stored event JSON (without `id`/`replay`).
pub use outpost_proto::batch::Entry as OutboxEntry;
pub use outpost_proto::id::{next_id, parse_id};

/// What [`Store::read_after_unless`] found.
pub enum Read {
    Entries(Vec<OutboxEntry>),
    /// This higher-priority class has entries now: read it first.
    Higher(Class),
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

    /// As [`Store::read_after`], in one atomic snapshot with a look at each class in `higher`
    /// (each after its own cursor): [`Read::Higher`] when one of them is no longer empty. One input's events are written by one script, so a pass that read a
    /// higher class as empty and then finds this class's entries cannot send a lower class's
    /// event before a higher class's event of the same input (drain order, SPEC §6).
    pub async fn read_after_unless(
        &self,
        class: Class,
        after: &str,
        count: usize,
        higher: &[(Class, &str)],
    ) -> Result<Read, StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (h, cursor) in higher {
            pipe.add_command(self.xrange_after(*h, cursor, 1));
        }
        pipe.add_command(self.xrange_after(class, after, count));
        let mut replies: Vec<Value> = pipe.query_async(&mut self.conn()).await?;
        let Some(own) = replies.pop() else {
            return Err(StoreError::Reply("empty MULTI reply".into()));
        };
        for ((h, _), r) in higher.iter().zip(replies) {
            if matches!(&r, Value::Array(rows) if !rows.is_empty()) {
                return Ok(Read::Higher(*h));
            }
        }
        Ok(Read::Entries(parse_entries(own, class)?))
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
