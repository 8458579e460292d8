//! What TAK users send → Outpost events (SPEC §10, `subscribe = true`): a PLI becomes a
//! location (and, with a battery level, a status) of device `tak:<uid>`, an emergency an
//! alert, its cancel a status with a note, a GeoChat to us or to All Chat Rooms a message.
//! Sans-I/O; the caller stores the events like any device's.

use crate::decode::Inbound;
use crate::ALL_CHAT_ROOMS;
use outpost_proto::event::{Alert, Body, Event, Location, Message, Status, TsSrc, MAX_TEXT_BYTES};
use serde_json::Value;

/// The device-id prefix of TAK users.
pub const TAK_DEV_PREFIX: &str = "tak:";

/// The Outpost device id of TAK user `uid`.
pub fn tak_dev(uid: &str) -> String {
    format!("{TAK_DEV_PREFIX}{uid}")
}

/// Why an inbound CoT event is not taken in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// A chat to someone else (another user, a team room).
    NotForUs,
    /// Chat text over the 4 KiB event limit.
    TooLong,
    /// Receipts and other types carry no event.
    NoEvent,
}

impl Skip {
    /// The reason as counted in metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Skip::NotForUs => "tak_chat_not_for_us",
            Skip::TooLong => "tak_chat_too_long",
            Skip::NoEvent => "tak_no_event",
        }
    }
}

/// What makes `ib` the same event when a server replays it (TAK servers resend what they keep
/// to every client that connects): its kind, sender, own time and, for a chat, message id.
pub fn identity(ib: &Inbound) -> String {
    let ms = |t: &chrono::DateTime<chrono::Utc>| t.timestamp_millis();
    match ib {
        Inbound::Pli { uid, time, .. } => format!("pli:{uid}:{}", ms(time)),
        Inbound::Emergency { sender, time, .. } => format!("911:{sender}:{}", ms(time)),
        Inbound::Cancel { sender, time, .. } => format!("can:{sender}:{}", ms(time)),
        Inbound::Chat {
            sender,
            msg_id,
            time,
            ..
        } => format!(
            "chat:{sender}:{}:{}",
            msg_id.as_deref().unwrap_or(""),
            ms(time)
        ),
        Inbound::Delivered { msg_id, time, .. } => format!("rcpt:{msg_id}:{}", ms(time)),
        Inbound::Other { uid, cot_type } => format!("other:{uid}:{cot_type}"),
    }
}

/// The events of `ib`, for a gateway (or hub) whose own TAK uid is `self_uid`.
pub fn to_events(ib: &Inbound, self_uid: &str) -> Result<(String, Vec<Event>), Skip> {
    let ev = |dev: &str, body: Body, ts| Event {
        dev: dev.to_string(),
        body,
        ts,
        ts_src: TsSrc::Device,
    };
    match ib {
        Inbound::Pli {
            uid,
            callsign,
            point,
            speed,
            course,
            battery,
            time,
        } => {
            let dev = tak_dev(uid);
            let loc = Location {
                lat: point.lat,
                lon: point.lon,
                alt: point.hae,
                acc: point.ce,
                speed: *speed,
                course: *course,
                ..Default::default()
            };
            let mut out = vec![ev(&dev, Body::Location(loc), *time)];
            if battery.is_some() {
                let mut st = Status {
                    battery: *battery,
                    ..Default::default()
                };
                if let Some(cs) = callsign {
                    st.extra
                        .insert("callsign".into(), Value::String(cs.clone()));
                }
                out.push(ev(&dev, Body::Status(st), *time));
            }
            Ok((dev, out))
        }
        Inbound::Emergency {
            sender,
            callsign,
            kind,
            text,
            point,
            time,
        } => {
            let dev = tak_dev(sender);
            let reason = match kind.as_str() {
                "Ring The Bell" => "ring-the-bell",
                "In Contact" => "in-contact",
                "Geo-fence Breached" => "geofence",
                _ => "emergency",
            };
            let who = callsign.as_deref().unwrap_or(sender);
            let text = match text {
                Some(t) => format!("{kind} from {who}: {t}"),
                None => format!("{kind} from {who}"),
            };
            let a = Alert {
                reason: reason.into(),
                text: Some(text),
                lat: point.as_ref().map(|p| p.lat),
                lon: point.as_ref().map(|p| p.lon),
            };
            Ok((dev.clone(), vec![ev(&dev, Body::Alert(a), *time)]))
        }
        Inbound::Cancel {
            sender,
            callsign,
            time,
        } => {
            let dev = tak_dev(sender);
            let who = callsign.as_deref().unwrap_or(sender);
            let mut st = Status::default();
            st.extra.insert(
                "note".into(),
                Value::String(format!("emergency cancelled by {who}")),
            );
            Ok((dev.clone(), vec![ev(&dev, Body::Status(st), *time)]))
        }
        Inbound::Chat {
            sender,
            room,
            room_id,
            text,
            msg_id,
            time,
            ..
        } => {
            let to_all = room == ALL_CHAT_ROOMS || room_id == ALL_CHAT_ROOMS;
            if !to_all && room_id != self_uid {
                return Err(Skip::NotForUs);
            }
            if text.len() > MAX_TEXT_BYTES {
                return Err(Skip::TooLong);
            }
            let dev = tak_dev(sender);
            let m = Message {
                text: text.clone(),
                to: to_all.then(|| ALL_CHAT_ROOMS.to_string()),
                msg_id: msg_id.clone(),
            };
            Ok((dev.clone(), vec![ev(&dev, Body::Message(m), *time)]))
        }
        Inbound::Delivered { .. } | Inbound::Other { .. } => Err(Skip::NoEvent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::encode::{chat, ChatTo, Unit};
    use chrono::Utc;

    fn viper() -> Unit {
        Unit {
            uid: "ANDROID-1".into(),
            callsign: "VIPER".into(),
            cot_type: "a-f-G-U-C".into(),
        }
    }

    #[test]
    fn chat_to_us_or_everyone_is_a_message_others_are_skipped() {
        let now = Utc::now();
        let all = decode(&chat(&viper(), &ChatTo::AllChatRooms, "a & b", "m1", now)).unwrap();
        let (dev, evs) = to_events(&all, "outpost.gw1").unwrap();
        assert_eq!(dev, "tak:ANDROID-1");
        match &evs[0].body {
            Body::Message(m) => {
                assert_eq!(m.text, "a & b");
                assert_eq!(m.to.as_deref(), Some(ALL_CHAT_ROOMS));
                assert_eq!(m.msg_id.as_deref(), Some("m1"));
            }
            b => panic!("{b:?}"),
        }
        let to = |uid: &str| ChatTo::Contact {
            uid: uid.into(),
            callsign: "GW".into(),
        };
        let direct = decode(&chat(&viper(), &to("outpost.gw1"), "hi", "m2", now)).unwrap();
        let (_, evs) = to_events(&direct, "outpost.gw1").unwrap();
        assert!(matches!(&evs[0].body, Body::Message(m) if m.to.is_none()));
        let other = decode(&chat(&viper(), &to("ANDROID-2"), "psst", "m3", now)).unwrap();
        assert_eq!(to_events(&other, "outpost.gw1"), Err(Skip::NotForUs));
    }
}
