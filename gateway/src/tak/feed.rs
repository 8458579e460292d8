//! What the gateway accepts → CoT for every `[[tak]]` output, independent of the uplink.
//!
//! [`crate::ingest::accept`] hands each stored input here, the presence sweeper each device that
//! went offline. The feed encodes once and pushes to every running output's bounded queue
//! (newest position per device replaces an unsent one; alerts never dropped). It keeps, per
//! device, the last fix and name, so an alert without a position is placed at the last fix and
//! an offline device is re-sent stale at its last position. TAK users (`tak:` devices) are not
//! sent back to the server they came from.

use super::picture::name_of;
use crate::config::Settings;
use crate::event::{Body, Event, Location, PresenceState};
use crate::store::{IngestItem, Outcome, Store};
use chrono::{DateTime, Utc};
use outpost_cot::encode::{self, ChatTo, Unit};
use outpost_cot::events::TAK_DEV_PREFIX;
use outpost_cot::link::LinkStats;
use outpost_cot::queue::{Kind, Outgoing, SendQueue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::broadcast;

/// A GeoChat delivery receipt (`b-t-f-d`) from a TAK contact: message `msg_id` arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    pub msg_id: String,
    /// The TAK uid of the contact that confirmed it, when the receipt names it.
    pub from: Option<String>,
    pub ts: DateTime<Utc>,
}

#[derive(Debug, Default, Clone)]
struct DevState {
    loc: Option<Location>,
    battery: Option<f64>,
    name: Option<String>,
}

/// The shared TAK feed of one gateway process (in the [`crate::context::Context`]).
pub struct Feed {
    queues: Mutex<Vec<Weak<SendQueue>>>,
    /// Each running output's link state (the downlink reaches TAK contacts while one is up).
    links: Mutex<Vec<Weak<LinkStats>>>,
    devices: Mutex<HashMap<String, DevState>>,
    receipts: broadcast::Sender<Delivered>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            queues: Mutex::new(Vec::new()),
            links: Mutex::new(Vec::new()),
            devices: Mutex::new(HashMap::new()),
            receipts: broadcast::channel(256).0,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Feed {
    /// Registers an output's queue; it is fed until the queue is dropped.
    pub fn register(&self, q: &Arc<SendQueue>) {
        let mut g = lock(&self.queues);
        g.retain(|w| w.strong_count() > 0);
        g.push(Arc::downgrade(q));
    }

    /// Registers an output's link state (once: the figures outlive a reload, and a stopped
    /// link is not connected).
    pub fn register_link(&self, l: &Arc<LinkStats>) {
        let mut g = lock(&self.links);
        g.retain(|w| w.strong_count() > 0);
        let w = Arc::downgrade(l);
        if !g.iter().any(|x| x.ptr_eq(&w)) {
            g.push(w);
        }
    }

    /// True while some output is connected to its TAK server.
    pub fn connected(&self) -> bool {
        lock(&self.links)
            .iter()
            .filter_map(Weak::upgrade)
            .any(|l| l.connected.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn live(&self) -> Vec<Arc<SendQueue>> {
        lock(&self.queues)
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    fn push(&self, queues: &[Arc<SendQueue>], kind: Kind, xml: String) {
        for q in queues {
            q.push(Outgoing {
                kind: kind.clone(),
                xml: xml.clone(),
            });
        }
    }

    /// Feeds what the store accepted (`Stored` outcomes only: a duplicate was sent before).
    pub fn accepted(&self, s: &Settings, items: &[IngestItem], outcomes: &[Outcome]) {
        let queues = self.live();
        if queues.is_empty() {
            return;
        }
        for (item, o) in items.iter().zip(outcomes) {
            if !matches!(o, Outcome::Stored(_)) || item.dev.starts_with(TAK_DEV_PREFIX) {
                continue;
            }
            for e in &item.events {
                self.event(s, &queues, item, e);
            }
        }
    }

    fn event(&self, s: &Settings, queues: &[Arc<SendQueue>], item: &IngestItem, e: &Event) {
        let now = Utc::now();
        let mut devs = lock(&self.devices);
        let st = devs.entry(item.dev.clone()).or_default();
        let unit = unit(s, &item.dev, &item.profile, st.name.as_deref());
        match &e.body {
            Body::Location(l) => {
                st.loc = Some(l.clone());
                let stale =
                    e.ts + chrono::Duration::from_std(item.presence_timeout).unwrap_or_default();
                let xml = encode::pli(&unit, l, st.battery, e.ts, stale);
                self.push(queues, Kind::Position(item.dev.clone()), xml);
            }
            Body::Status(st2) => {
                if st2.battery.is_some() {
                    st.battery = st2.battery;
                }
                if let Some(n) = name_of(&st2.extra) {
                    st.name = Some(n);
                }
            }
            Body::Alert(a) => {
                let at = st.loc.as_ref().map(|l| (l.lat, l.lon));
                self.push(queues, Kind::Alert, encode::emergency(&unit, a, at, e.ts));
            }
            Body::Message(m) => {
                let id = m
                    .msg_id
                    .clone()
                    .unwrap_or_else(|| format!("{}-{}", item.dev, e.ts.timestamp_millis()));
                let xml = encode::chat(&unit, &ChatTo::AllChatRooms, &m.text, &id, e.ts);
                self.push(queues, Kind::Other, xml);
            }
            Body::Presence(p) if p.state == PresenceState::Offline => {
                if let Some(l) = &st.loc {
                    let xml = encode::offline(&unit, l, now);
                    self.push(queues, Kind::Position(item.dev.clone()), xml);
                }
            }
            Body::Presence(_) => {}
            // Downlink receipts (SPEC §8) are for the hub, not the TAK picture.
            Body::Receipt(_) => {}
        }
    }

    /// Devices the presence sweeper marked offline: re-sent stale now at their last position
    /// (from memory, else from the store's latest state).
    pub async fn went_offline(&self, s: &Settings, store: &Store, devs: &[(String, String)]) {
        let queues = self.live();
        if queues.is_empty() {
            return;
        }
        for (dev, profile) in devs {
            if dev.starts_with(TAK_DEV_PREFIX) {
                continue;
            }
            let cached = lock(&self.devices).get(dev).cloned();
            let (loc, name) = match cached {
                Some(DevState {
                    loc: Some(l), name, ..
                }) => (l, name),
                _ => match super::picture::latest(store, dev).await {
                    Some((Some((l, _)), name)) => (l, name),
                    _ => continue,
                },
            };
            let u = unit(s, dev, profile, name.as_deref());
            self.push(
                &queues,
                Kind::Position(dev.clone()),
                encode::offline(&u, &loc, Utc::now()),
            );
        }
    }

    /// Downlink (SPEC §8) to a TAK contact: queues a GeoChat from the gateway to `uid`
    /// (`callsign`) on every output, identified by `msg_id` (which its `b-t-f-d` receipt will
    /// name, see [`Feed::receipts`]). Returns how many outputs took it (0: no `[[tak]]` runs).
    pub fn send_chat(
        &self,
        s: &Settings,
        uid: &str,
        callsign: &str,
        text: &str,
        msg_id: &str,
    ) -> usize {
        let queues = self.live();
        let from = self_unit(s, queues_callsign(s));
        let to = ChatTo::Contact {
            uid: uid.to_string(),
            callsign: callsign.to_string(),
        };
        let xml = encode::chat(&from, &to, text, msg_id, Utc::now());
        // A message to a person is not live state: never replaced, never dropped (like an alert).
        self.push(&queues, Kind::Alert, xml);
        queues.len()
    }

    /// Delivery receipts from TAK contacts, as they arrive (the downlink marks `delivered`).
    pub fn receipts(&self) -> broadcast::Receiver<Delivered> {
        self.receipts.subscribe()
    }

    pub(super) fn receipt(&self, d: Delivered) {
        // No subscriber (no downlink running) is fine: nothing waits for it.
        let _ = self.receipts.send(d);
    }
}

fn queues_callsign(s: &Settings) -> &str {
    s.tak
        .first()
        .map_or(s.gateway_id.as_str(), |t| t.callsign.as_str())
}

/// The gateway itself on the TAK server.
pub fn self_unit(s: &Settings, callsign: &str) -> Unit {
    Unit {
        uid: outpost_cot::self_uid(&s.gateway_id),
        callsign: callsign.to_string(),
        cot_type: "a-f-G-U-C-I".to_string(),
    }
}

/// Device `dev` of profile `profile` on the TAK server; its callsign is the device's own name
/// when it reported one, else the device id.
pub fn unit(s: &Settings, dev: &str, profile: &str, name: Option<&str>) -> Unit {
    Unit {
        uid: outpost_cot::device_uid(&s.gateway_id, dev),
        callsign: name.unwrap_or(dev).to_string(),
        cot_type: s
            .profile(profile)
            .map_or(outpost_cot::DEFAULT_TYPE, |p| p.tak_type())
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Alert, TsSrc};
    use outpost_cot::decode::{decode, Inbound};

    fn settings() -> Settings {
        let src = "[gateway]\nid = \"veh-1\"\n[uplink]\nurl = \"mqtt://127.0.0.1:1\"\n[[tak]]\nurl = \"tcp://127.0.0.1:1\"\ncallsign = \"Engine 1\"\n";
        Settings::parse(std::path::Path::new("gateway.toml"), src).unwrap()
    }

    fn item(dev: &str, body: Body) -> IngestItem {
        IngestItem {
            dev: dev.into(),
            profile: "nmea-gps".into(),
            presence_timeout: std::time::Duration::from_secs(60),
            events: vec![Event {
                dev: dev.into(),
                body,
                ts: Utc::now(),
                ts_src: TsSrc::Device,
            }],
            dedup_key: None,
            input_hash: None,
            maybe_duplicate: false,
            slot: None,
            rx: Utc::now(),
            topic: String::new(),
        }
    }

    #[test]
    fn downlink_chat_goes_to_the_contact_with_its_msg_id_and_receipts_are_broadcast() {
        let s = settings();
        let feed = Feed::default();
        assert_eq!(
            feed.send_chat(&s, "ANDROID-1", "VIPER", "hi", "m1"),
            0,
            "no output runs"
        );
        let q = Arc::new(SendQueue::new(16));
        feed.register(&q);
        assert_eq!(
            feed.send_chat(&s, "ANDROID-1", "VIPER", "Evacuate <4>", "m1"),
            1
        );
        let o = q.try_pop().unwrap();
        assert_eq!(o.kind, Kind::Alert, "never dropped from the queue");
        match decode(&o.xml).unwrap() {
            Inbound::Chat {
                sender,
                sender_callsign,
                room_id,
                text,
                msg_id,
                ..
            } => {
                assert_eq!(sender, "outpost.veh-1");
                assert_eq!(sender_callsign.as_deref(), Some("Engine 1"));
                assert_eq!(room_id, "ANDROID-1");
                assert_eq!(text, "Evacuate <4>");
                assert_eq!(msg_id.as_deref(), Some("m1"));
            }
            other => panic!("{other:?}"),
        }
        let mut rx = feed.receipts();
        feed.receipt(Delivered {
            msg_id: "m1".into(),
            from: None,
            ts: Utc::now(),
        });
        assert_eq!(rx.try_recv().unwrap().msg_id, "m1");
    }

    #[test]
    fn alert_without_position_is_placed_at_the_last_fix_and_tak_users_are_not_sent_back() {
        let s = settings();
        let feed = Feed::default();
        let q = Arc::new(SendQueue::new(16));
        feed.register(&q);
        let fix = Location {
            lat: 10.0,
            lon: 20.0,
            ..Default::default()
        };
        let alert = Alert {
            reason: "emergency".into(),
            ..Default::default()
        };
        let items = [
            item("gps0", Body::Location(fix.clone())),
            item("gps0", Body::Alert(alert)),
            item("tak:ANDROID-1", Body::Location(fix)),
        ];
        let stored = vec![Outcome::Stored(vec![]); 3];
        feed.accepted(&s, &items, &stored);
        let pli = q.try_pop().unwrap();
        assert_eq!(pli.kind, Kind::Position("gps0".into()));
        let a = q.try_pop().unwrap();
        assert!(
            matches!(decode(&a.xml).unwrap(), Inbound::Emergency { point: Some(p), .. } if p.lat == 10.0)
        );
        assert!(q.try_pop().is_none(), "a TAK user is not echoed to TAK");
        feed.accepted(&s, &items[..1], &[Outcome::Duplicate]);
        assert!(q.try_pop().is_none(), "a duplicate was sent before");
    }
}
