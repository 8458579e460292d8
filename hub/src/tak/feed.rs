//! What this receiver stored → CoT on every `[[tak]]` output (SPEC §10).
//!
//! Fed after a batch is stored, with the store script's flags: only events stored for the
//! first time go out, so a redelivered or republished batch is not sent twice. With several
//! receivers in one share group, each batch reaches exactly one of them, so each receiver's
//! outputs send what that receiver stored; together they send everything once.
//!
//! Live state, not history: a location goes out only while it is the device's newest fix (a
//! gateway draining its backlog after an outage must not walk its units back through the
//! past on the map); a status with a battery level or name re-sends the latest fix (classes
//! arrive in separate batches, often through different receivers); an offline presence
//! re-sends the last fix stale now. Alerts and messages always go out. TAK users (`tak:`
//! devices) are not sent back to TAK.

use super::view::{unit, View};
use crate::store::Store;
use crate::Ctx;
use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use outpost_cot::encode::{self, ChatTo};
use outpost_cot::events::TAK_DEV_PREFIX;
use outpost_cot::queue::{Kind, Outgoing, SendQueue};
use outpost_proto::batch::{Parsed, Received};
use outpost_proto::event::Alert;
use outpost_proto::Class;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use tracing::warn;

/// The send queues of this process's `[[tak]]` outputs (in the [`Ctx`]).
#[derive(Default)]
pub struct Feed {
    queues: Mutex<Vec<Weak<SendQueue>>>,
}

impl Feed {
    /// Registers an output's queue; it is fed until the queue is dropped.
    pub fn register(&self, q: &Arc<SendQueue>) {
        let mut g = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        g.retain(|w| w.strong_count() > 0);
        g.push(Arc::downgrade(q));
    }

    fn live(&self) -> Vec<Arc<SendQueue>> {
        let g = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        g.iter().filter_map(Weak::upgrade).collect()
    }

    /// Feeds batch `b` after it was stored; `flags[i]`: event `i` was new. A store error here
    /// is logged, never retried: the batch is stored, and the next update or reconnect's
    /// picture puts the unit right.
    pub async fn stored(&self, ctx: &Ctx, store: &Store, b: &Parsed, flags: &[bool]) {
        let queues = self.live();
        if queues.is_empty() || b.class == Class::Receipt {
            return;
        }
        let new: Vec<&Received> = b
            .events
            .iter()
            .zip(flags)
            .filter(|(e, n)| **n && !e.dev.starts_with(TAK_DEV_PREFIX))
            .map(|(e, _)| e)
            .collect();
        if new.is_empty() {
            return;
        }
        let devs: BTreeSet<&str> = new.iter().map(|e| e.dev.as_str()).collect();
        let views = match try_join_all(devs.iter().map(|d| store.device_hash(d))).await {
            Ok(hs) => devs
                .iter()
                .zip(hs)
                .map(|(d, h)| (*d, View::of(&h)))
                .collect::<HashMap<_, _>>(),
            Err(e) => {
                if let Some(s) = ctx.log_gate("tak-feed") {
                    warn!(error = %e, suppressed = s, "cannot read latest state for TAK; batch not sent to TAK");
                }
                return;
            }
        };
        for e in new {
            let Some(v) = views.get(e.dev.as_str()) else {
                continue;
            };
            if let Some((kind, xml)) = cot_of(&b.gw, b.class, e, v) {
                for q in &queues {
                    q.push(Outgoing {
                        kind: kind.clone(),
                        xml: xml.clone(),
                    });
                }
            }
        }
    }
}

/// The CoT event newly stored event `e` of gateway `gw` makes, given its device's latest
/// state `v` (read after storing), and how the queue treats it.
pub fn cot_of(gw: &str, class: Class, e: &Received, v: &View) -> Option<(Kind, String)> {
    let o = &e.object();
    let dev = e.dev.as_str();
    let ts = ts_of(o)?;
    let position = |gw: &str| Kind::Position(outpost_cot::device_uid(gw, dev));
    match class {
        Class::Location => {
            if v.loc_ts_ms.is_some_and(|t| t > ts.timestamp_millis()) {
                return None;
            }
            let (l, ts) = outpost::tak::picture::location_of(&e.json)?;
            let u = unit(gw, dev, v.name.as_deref());
            let xml = encode::pli(&u, &l, v.battery, ts, ts + super::view::PLI_STALE);
            Some((position(gw), xml))
        }
        Class::Status => {
            let named = o
                .get("extra")
                .and_then(Value::as_object)
                .and_then(outpost::tak::picture::name_of)
                .is_some();
            if v.offline() || !(named || o.get("battery").is_some()) {
                return None;
            }
            let via = v.gw.as_deref()?;
            Some((position(via), v.pli(dev, None)?))
        }
        Class::Alert => {
            let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
            let f = |k: &str| o.get(k).and_then(Value::as_f64);
            let a = Alert {
                reason: s("reason").unwrap_or_else(|| "emergency".into()),
                text: s("text"),
                lat: f("lat"),
                lon: f("lon"),
            };
            let at = v.loc.as_ref().map(|(l, _)| (l.lat, l.lon));
            let u = unit(gw, dev, v.name.as_deref());
            Some((Kind::Alert, encode::emergency(&u, &a, at, ts)))
        }
        Class::Message => {
            let text = o.get("text").and_then(Value::as_str)?;
            let id = o
                .get("msg_id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{gw}.{dev}-{}", ts.timestamp_millis()));
            let u = unit(gw, dev, v.name.as_deref());
            let xml = encode::chat(&u, &ChatTo::AllChatRooms, text, &id, ts);
            Some((Kind::Other, xml))
        }
        Class::Presence => {
            let off = o.get("state").and_then(Value::as_str) == Some("offline");
            if !off || !v.offline() {
                return None;
            }
            let (l, _) = v.loc.as_ref()?;
            let via = v.gw.as_deref().unwrap_or(gw);
            let u = unit(via, dev, v.name.as_deref());
            Some((position(via), encode::offline(&u, l, Utc::now())))
        }
        Class::Receipt => None,
    }
}

fn ts_of(o: &Map<String, Value>) -> Option<DateTime<Utc>> {
    let s = o.get("ts").or_else(|| o.get("rx"))?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
#[path = "feed_tests.rs"]
mod tests;
