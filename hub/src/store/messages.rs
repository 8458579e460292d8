//! Messages to devices at the hub (SPEC §8): what dispatch sent, its receipts as the gateway
//! reports them (class `receipt`), and what a gateway has not confirmed yet, offered again
//! when it comes online (the gateway recognises a `msg_id` it already has).

use super::{Store, StoreError};
use chrono::Utc;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// A message as published on `<prefix>/<gw>/down`.
#[derive(Debug, Clone)]
pub struct Down {
    pub msg_id: String,
    pub gw: String,
    pub to: String,
    pub text: String,
    /// RFC 3339.
    pub expires: String,
    pub from: String,
}

impl Down {
    /// The §8 down payload.
    pub fn payload(&self) -> String {
        json!({"msg_id": self.msg_id, "to": self.to, "text": self.text, "expires": self.expires, "from": self.from})
            .to_string()
    }
}

impl Store {
    /// Records a new message (state `accepted` until the gateway's first receipt).
    pub async fn put_message(&self, m: &Down) -> Result<(), StoreError> {
        let now = outpost_proto::event::format_ts(Utc::now());
        let _: () = redis::cmd("HSET")
            .arg(self.keys.msg(&m.gw, &m.msg_id))
            .arg(&[
                ("gw", m.gw.as_str()),
                ("to", &m.to),
                ("text", &m.text),
                ("expires", &m.expires),
                ("from", &m.from),
                ("state", "accepted"),
                ("created", &now),
            ])
            .query_async(&mut self.conn())
            .await?;
        let _: () = redis::cmd("SADD")
            .arg(self.keys.msg_pending(&m.gw))
            .arg(&m.msg_id)
            .query_async(&mut self.conn())
            .await?;
        let _: () = redis::cmd("HSET")
            .arg(self.keys.msg_index())
            .arg(&m.msg_id)
            .arg(&m.gw)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Messages `gw` has not confirmed yet.
    pub async fn pending_messages(&self, gw: &str) -> Result<Vec<Down>, StoreError> {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.msg_pending(gw))
            .query_async(&mut self.conn())
            .await?;
        let mut out = Vec::new();
        for id in ids {
            let h: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(self.keys.msg(gw, &id))
                .query_async(&mut self.conn())
                .await?;
            let f = |k: &str| h.get(k).cloned().unwrap_or_default();
            out.push(Down {
                msg_id: id,
                gw: gw.into(),
                to: f("to"),
                text: f("text"),
                expires: f("expires"),
                from: f("from"),
            });
        }
        Ok(out)
    }

    /// Applies newly stored receipt events of `gw`: history, state, no longer pending.
    pub async fn apply_receipts(
        &self,
        gw: &str,
        receipts: &[Map<String, Value>],
    ) -> Result<(), StoreError> {
        for r in receipts {
            let Some(id) = r.get("msg_id").and_then(Value::as_str) else {
                continue;
            };
            let state = r.get("state").and_then(Value::as_str).unwrap_or("");
            let entry = json!({"state": state, "ts": r.get("ts"), "reason": r.get("reason"), "dev": r.get("dev")});
            let mut pipe = redis::pipe();
            pipe.cmd("RPUSH")
                .arg(self.keys.msg_history(gw, id))
                .arg(entry.to_string())
                .ignore();
            pipe.cmd("HSET")
                .arg(self.keys.msg(gw, id))
                .arg("state")
                .arg(state)
                .ignore();
            pipe.cmd("SREM")
                .arg(self.keys.msg_pending(gw))
                .arg(id)
                .ignore();
            pipe.query_async::<()>(&mut self.conn()).await?;
        }
        Ok(())
    }

    /// `GET /api/v1/messages/{msg_id}`; `None` when unknown.
    pub async fn message(&self, id: &str) -> Result<Option<Value>, StoreError> {
        let gw: Option<String> = redis::cmd("HGET")
            .arg(self.keys.msg_index())
            .arg(id)
            .query_async(&mut self.conn())
            .await?;
        let Some(gw) = gw else { return Ok(None) };
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.msg(&gw, id))
            .query_async(&mut self.conn())
            .await?;
        let history: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.msg_history(&gw, id))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await?;
        let history: Vec<Value> = history
            .iter()
            .filter_map(|s| serde_json::from_str(s).ok())
            .collect();
        let f = |k: &str| h.get(k).cloned().map(Value::String).unwrap_or(Value::Null);
        Ok(Some(json!({
            "msg_id": id, "gw": gw, "to": f("to"), "text": f("text"), "from": f("from"),
            "expires": f("expires"), "state": f("state"), "history": history,
        })))
    }
}
