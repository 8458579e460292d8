//! Accepting inputs: the ingest script's arguments (stored forms, latest state) and its
//! per-input outcomes (`ingest.lua`, docs/redis-layout.md).

use super::{compact, Store, StoreError};
use crate::event::{Body, Class, Event, Presence, PresenceState, TsSrc};
use chrono::{DateTime, Utc};
use redis::{RedisError, Value};
use std::time::Duration;

/// How many recent input hashes are kept to recognise our own retries, and redeliveries of
/// inputs without a slot ([`IngestItem::slot`]).
pub const RECENT_CAP: usize = 8192;
/// How long a decoder dedup key (e.g. a Meshtastic packet id) is remembered.
pub const DEDUP_TTL_S: u64 = 3600;
/// Inputs per ingest script call.
const SCRIPT_CHUNK: usize = 128;

/// Where an ingest pipeline stands in its source's sequence (`ingest.lua`): its calls are
/// numbered `first`, `first + 1`, …, and the first runs only if call `prev` landed (0: no
/// condition, nothing is in flight before it). Pipelines may then overlap on the one
/// connection and still apply in the order they were sent, as the inputs arrived.
#[derive(Debug, Clone)]
pub struct Order {
    /// Names the sequence (one per source and process).
    pub key: String,
    pub prev: u64,
    pub first: u64,
}

/// One input's events, ready to be accepted for one device.
#[derive(Debug, Clone)]
pub struct IngestItem {
    pub dev: String,
    pub profile: String,
    pub presence_timeout: Duration,
    pub events: Vec<Event>,
    /// Decoder-level identity (e.g. Meshtastic packet id): dropped when seen recently.
    pub dedup_key: Option<String>,
    /// Identity of the raw input, to recognise a broker redelivery or our own retry.
    pub input_hash: Option<u64>,
    /// Check `input_hash` against the input last stored under `slot` and against recent
    /// inputs (MQTT DUP flag, or a retried write).
    pub maybe_duplicate: bool,
    /// Where the device broker's session keeps this input: its MQTT packet id (`<id>.<n>` for
    /// the n-th device item of one input, past the first); `None` off MQTT and at QoS 0.
    /// A broker redelivers an unacknowledged input under its original packet id and gives the
    /// id to another input only once our acknowledgement has reached it (MQTT 3.1.1 §2.3.1,
    /// §4.4), so the store's record of the input last stored under each id recognises a
    /// redelivery however many inputs came in between (`<p>:ingest:slots`).
    pub slot: Option<String>,
    pub rx: DateTime<Utc>,
    /// The MQTT topic the input came on (empty for serial): the downlink answers on it
    /// (e.g. the Meshtastic gateway node, the OwnTracks `<user>/<device>`).
    pub topic: String,
}

/// What became of an [`IngestItem`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Stored; the new outbox entries (presence transitions included).
    Stored(Vec<Added>),
    /// Already stored before (redelivery, relay or retry).
    Duplicate,
    /// Refused: the class's share of the outbox is full (not acknowledged, retried later).
    Full(Class),
}

/// An outbox entry an ingest call added.
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    pub class: Class,
    pub id: String,
    /// The id its stream generated last before it: the uplink hands it over without reading
    /// it back only when that is where it stands (`uplink::feed`).
    pub prev: String,
    /// The stored form (compact or full JSON), when it was stored as sent.
    pub form: Option<String>,
}

/// The stored forms of one input's possible entries: the online presence first, then one per
/// event, each with the class of the stream it goes to.
type Forms = Vec<(Class, String)>;

impl Store {
    /// Accepts a batch of inputs in one pipeline. Per-item results; a transport error fails the
    /// whole call (the caller retries with `maybe_duplicate` set, which makes the retry safe).
    pub async fn ingest(&self, items: &[IngestItem]) -> Result<Vec<Outcome>, StoreError> {
        self.ingest_ordered(items, None).await
    }

    /// Script calls a pipeline of `n` inputs takes (the numbers an [`Order`] uses up).
    pub fn calls(n: usize) -> u64 {
        n.div_ceil(SCRIPT_CHUNK) as u64
    }

    /// [`Store::ingest`] as part of an ordered sequence: `Err(StoreError::Later)` when the
    /// pipeline before it has not landed (nothing of this one was done then).
    pub async fn ingest_ordered(
        &self,
        items: &[IngestItem],
        order: Option<&Order>,
    ) -> Result<Vec<Outcome>, StoreError> {
        for attempt in 0..2 {
            let mut forms: Vec<Forms> = Vec::with_capacity(items.len());
            // One script call per chunk: the invocation and the budget reading are paid once
            // per chunk, not per input; chunks keep each script run short.
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for (i, chunk) in items.chunks(SCRIPT_CHUNK).enumerate() {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(self.ingest.get_hash())
                    .arg(0)
                    .arg(&self.prefix)
                    .arg(DEDUP_TTL_S)
                    .arg(RECENT_CAP)
                    .arg(self.max_events)
                    .arg(chunk.len());
                match order {
                    Some(o) => {
                        let n = o.first + i as u64;
                        let prev = if i == 0 { o.prev } else { n - 1 };
                        cmd.arg(&o.key).arg(prev).arg(n)
                    }
                    None => cmd.arg("").arg(0).arg(0),
                };
                for item in chunk {
                    forms.push(self.ingest_args(&mut cmd, item, attempt > 0));
                }
                pipe.add_command(cmd);
            }
            let replies: Vec<Result<Value, RedisError>> =
                pipe.query_async(&mut self.conn()).await?;
            if attempt == 0
                && replies
                    .iter()
                    .any(|r| matches!(r, Err(e) if e.code() == Some("NOSCRIPT")))
            {
                // Redis restarted and lost its script cache. Nothing ran for a NOSCRIPT chunk,
                // and chunks that did run are recognised as duplicates on the second pass (every
                // input is checked then).
                self.load_scripts().await?;
                continue;
            }
            let mut out = Vec::with_capacity(items.len());
            let mut forms = forms.into_iter();
            for r in replies {
                match r? {
                    Value::Array(per_item) => {
                        for v in per_item {
                            out.push(parse_outcome(v, forms.next().unwrap_or_default())?);
                        }
                    }
                    Value::SimpleString(s) if s == "later" => return Err(StoreError::Later),
                    Value::BulkString(b) if b == b"later" => return Err(StoreError::Later),
                    other => return Err(StoreError::Reply(format!("{other:?}"))),
                }
            }
            if out.len() != items.len() {
                return Err(StoreError::Reply(format!(
                    "{} outcomes for {} inputs",
                    out.len(),
                    items.len()
                )));
            }
            return Ok(out);
        }
        Err(StoreError::Reply(
            "script still missing after SCRIPT LOAD".into(),
        ))
    }

    /// Appends `item`'s arguments to the script call; returns the stored forms it passed.
    /// `retry`: the call repeats one that may have stored part of it (checked as a redelivery).
    fn ingest_args(&self, cmd: &mut redis::Cmd, item: &IngestItem, retry: bool) -> Forms {
        let now = item.rx.timestamp_millis();
        let deadline = now + item.presence_timeout.as_millis() as i64;
        let online = Event {
            dev: item.dev.clone(),
            body: Body::Presence(Presence {
                state: PresenceState::Online,
                last_seen: item.rx,
            }),
            ts: item.rx,
            ts_src: TsSrc::Gateway,
        }
        .to_stored_json(item.rx);
        let check = item.maybe_duplicate || retry;
        cmd.arg(&item.dev)
            .arg(now)
            .arg(deadline)
            .arg(&item.profile)
            .arg(item.dedup_key.as_deref().unwrap_or(""))
            .arg(
                item.input_hash
                    .map(|h| format!("{h:016x}"))
                    .unwrap_or_default(),
            )
            .arg(if check { "1" } else { "0" })
            .arg(&online)
            .arg(&item.topic)
            .arg(item.slot.as_deref().unwrap_or(""))
            .arg(item.events.len());
        let mut forms = Vec::with_capacity(item.events.len() + 1);
        forms.push((Class::Presence, online));
        for e in &item.events {
            let class = match &e.body {
                Body::Presence(p) if p.state == PresenceState::Offline => "presence-off",
                b => b.class().as_str(),
            };
            // The stream gets the compact form (presence stays full: rare, and its readers are
            // not only the uplink); the device's latest state the full one (TAK, status read it).
            let json = e.to_json();
            let full = with_rx(&json, item.rx);
            let stored = match &e.body {
                Body::Presence(_) => None,
                _ => compact::compact(&json, now),
            };
            let stored = stored.unwrap_or_else(|| full.clone());
            cmd.arg(class).arg(&stored).arg(&full);
            match &e.body {
                Body::Location(l) => cmd.arg(l.lon).arg(l.lat),
                _ => cmd.arg("").arg(""),
            };
            forms.push((e.body.class(), stored));
        }
        forms
    }
}

/// `Event::to_stored_json` from an already serialised event.
fn with_rx(json: &str, rx: DateTime<Utc>) -> String {
    let mut s = String::with_capacity(json.len() + 32);
    s.push_str(&json[..json.len() - 1]);
    s.push_str(",\"rx\":\"");
    s.push_str(&crate::event::format_ts(rx));
    s.push_str("\"}");
    s
}

/// One input's reply; `forms` are the stored forms its call passed ([`Store::ingest_args`]).
fn parse_outcome(v: Value, mut forms: Forms) -> Result<Outcome, StoreError> {
    let Value::Array(items) = v else {
        return Err(StoreError::Reply(format!("{v:?}")));
    };
    let s = |v: &Value| -> String {
        match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            other => format!("{other:?}"),
        }
    };
    let tag = items.first().map(s).unwrap_or_default();
    match tag.as_str() {
        "ok" => {
            let added = items[1..].chunks(3).map(|t| {
                let [id, prev, k] = t else {
                    return Err(StoreError::Reply(format!("ingest reply: {t:?}")));
                };
                let (class, form) = match k {
                    Value::Int(k) if *k >= 0 && (*k as usize) < forms.len() => {
                        let (class, form) = &mut forms[*k as usize];
                        (*class, Some(std::mem::take(form)))
                    }
                    // Stored with "r" added (the stream was past the receive time).
                    Value::Int(k) if *k < 0 && ((-*k - 1) as usize) < forms.len() => {
                        (forms[(-*k - 1) as usize].0, None)
                    }
                    other => return Err(StoreError::Reply(format!("ingest reply: {other:?}"))),
                };
                Ok(Added {
                    class,
                    id: s(id),
                    prev: s(prev),
                    form,
                })
            });
            Ok(Outcome::Stored(added.collect::<Result<_, _>>()?))
        }
        "dup" => Ok(Outcome::Duplicate),
        "full" => {
            let c = items.get(1).map(s).unwrap_or_default();
            let class = Class::ALL
                .into_iter()
                .find(|k| k.as_str() == c)
                .unwrap_or(Class::Location);
            Ok(Outcome::Full(class))
        }
        _ => Err(StoreError::Reply(tag)),
    }
}
