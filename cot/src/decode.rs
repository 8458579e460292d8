//! One CoT event (XML text) → what it means to Outpost ([`Inbound`]), sans-I/O.
//!
//! What a TAK server relays from its users: PLIs (`a-…` with a point), emergencies
//! (`b-a-o-tbl` "911", and the other `b-a-o-…` kinds) and their cancel (`b-a-o-can`), GeoChat
//! (`b-t-f`) and delivery receipts (`b-t-f-d`). Anything else is [`Inbound::Other`], for the
//! caller to count and skip. Malformed input is a typed error, never a panic.

use crate::xml::{Element, XmlError};
use crate::{ALL_CHAT_ROOMS, UNKNOWN};
use chrono::{DateTime, Utc};
use outpost_proto::event::valid_position;
use thiserror::Error;

/// Why an event could not be read.
#[derive(Debug, Error, PartialEq)]
pub enum DecodeError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("root element is <{0}>, not <event>")]
    NotEvent(String),
    #[error("event without {0}")]
    Missing(&'static str),
    #[error("bad {0}: {1:?}")]
    Bad(&'static str, String),
}

/// A position read from `<point>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
    /// Height above the ellipsoid, `None` when 9999999 (unknown).
    pub hae: Option<f64>,
    /// Circular error (m), `None` when unknown.
    pub ce: Option<f64>,
}

/// What one event from the TAK server is.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A TAK user's position.
    Pli {
        uid: String,
        callsign: Option<String>,
        point: Point,
        speed: Option<f64>,
        course: Option<f64>,
        battery: Option<f64>,
        time: DateTime<Utc>,
    },
    /// An emergency raised (ATAK's 911 and the other alert kinds).
    Emergency {
        /// The uid of the user who raised it (the `link`, else the event uid without `-9-1-1`).
        sender: String,
        callsign: Option<String>,
        /// The `emergency@type` (`911 Alert`, `Ring The Bell`, …).
        kind: String,
        text: Option<String>,
        point: Option<Point>,
        time: DateTime<Utc>,
    },
    /// An emergency cancelled (`b-a-o-can`).
    Cancel {
        sender: String,
        callsign: Option<String>,
        time: DateTime<Utc>,
    },
    /// A GeoChat message.
    Chat {
        sender: String,
        sender_callsign: Option<String>,
        /// Room name (`All Chat Rooms`, a team, or the recipient's callsign).
        room: String,
        /// Room id: `All Chat Rooms` or the recipient's uid for a direct chat.
        room_id: String,
        text: String,
        msg_id: Option<String>,
        time: DateTime<Utc>,
    },
    /// A GeoChat delivery receipt (`b-t-f-d`): message `msg_id` reached `sender`.
    Delivered {
        msg_id: String,
        sender: Option<String>,
        time: DateTime<Utc>,
    },
    /// Any other CoT type (markers, routes, pings…).
    Other { uid: String, cot_type: String },
}

impl Inbound {
    /// The uid of whoever sent it (for echo detection); the event uid for [`Inbound::Other`].
    pub fn sender(&self) -> Option<&str> {
        match self {
            Inbound::Pli { uid, .. } | Inbound::Other { uid, .. } => Some(uid),
            Inbound::Emergency { sender, .. }
            | Inbound::Cancel { sender, .. }
            | Inbound::Chat { sender, .. } => Some(sender),
            Inbound::Delivered { sender, .. } => sender.as_deref(),
        }
    }
}

/// Reads one `<event>` document.
pub fn decode(xml: &str) -> Result<Inbound, DecodeError> {
    let ev = Element::parse(xml)?;
    if ev.name != "event" {
        return Err(DecodeError::NotEvent(ev.name));
    }
    let uid = ev
        .get("uid")
        .ok_or(DecodeError::Missing("uid"))?
        .to_string();
    let cot_type = ev
        .get("type")
        .ok_or(DecodeError::Missing("type"))?
        .to_string();
    let time = ts(&ev, "time")?;
    let empty = Element::new("detail");
    let detail = ev.find("detail").unwrap_or(&empty);
    let callsign = detail
        .find("contact")
        .and_then(|c| c.get("callsign"))
        .map(str::to_string);
    let link_uid = detail
        .find("link")
        .and_then(|l| l.get("uid"))
        .map(str::to_string);
    let t = cot_type.as_str();
    if t == "b-t-f-d" {
        let msg_id = detail
            .find("__chat")
            .and_then(|c| c.get("messageId"))
            .map(str::to_string)
            .unwrap_or_else(|| uid.clone());
        return Ok(Inbound::Delivered {
            msg_id,
            sender: link_uid,
            time,
        });
    }
    if t == "b-t-f" {
        return chat(detail, link_uid, time);
    }
    if t == "b-a-o-can" {
        return Ok(Inbound::Cancel {
            sender: link_uid.unwrap_or_else(|| strip_911(&uid)),
            callsign: emergency_name(detail).or(callsign),
            time,
        });
    }
    if t.starts_with("b-a-o-") {
        let em = detail.find("emergency");
        let kind = em
            .and_then(|e| e.get("type"))
            .unwrap_or("911 Alert")
            .to_string();
        let point = point(&ev)?.filter(|p| p.ce.is_some() || p.lat != 0.0 || p.lon != 0.0);
        let text = detail
            .find("remarks")
            .map(|r| r.text.trim().to_string())
            .filter(|s| !s.is_empty());
        return Ok(Inbound::Emergency {
            sender: link_uid.unwrap_or_else(|| strip_911(&uid)),
            callsign: emergency_name(detail).or(callsign),
            kind,
            text,
            point,
            time,
        });
    }
    if t.starts_with("a-") {
        if let Some(point) = point(&ev)? {
            let track = detail.find("track");
            return Ok(Inbound::Pli {
                uid,
                callsign,
                point,
                speed: opt_num(track, "speed")?,
                course: opt_num(track, "course")?,
                battery: opt_num(detail.find("status"), "battery")?,
                time,
            });
        }
    }
    Ok(Inbound::Other { uid, cot_type })
}

fn chat(
    detail: &Element,
    link_uid: Option<String>,
    time: DateTime<Utc>,
) -> Result<Inbound, DecodeError> {
    let c = detail
        .find("__chat")
        .ok_or(DecodeError::Missing("detail/__chat"))?;
    let remarks = detail
        .find("remarks")
        .ok_or(DecodeError::Missing("detail/remarks"))?;
    let sender = link_uid
        .or_else(|| {
            c.find("chatgrp")
                .and_then(|g| g.get("uid0"))
                .map(str::to_string)
        })
        .ok_or(DecodeError::Missing("detail/link@uid"))?;
    let room = c.get("chatroom").unwrap_or(ALL_CHAT_ROOMS).to_string();
    let room_id = c.get("id").unwrap_or(&room).to_string();
    Ok(Inbound::Chat {
        sender,
        sender_callsign: c.get("senderCallsign").map(str::to_string),
        room,
        room_id,
        text: remarks.text.clone(),
        msg_id: c.get("messageId").map(str::to_string),
        time,
    })
}

/// ATAK puts the user's own callsign as the `<emergency>` text (the contact is `<cs>-Alert`).
fn emergency_name(detail: &Element) -> Option<String> {
    detail
        .find("emergency")
        .map(|e| e.text.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn strip_911(uid: &str) -> String {
    uid.strip_suffix("-9-1-1").unwrap_or(uid).to_string()
}

fn ts(ev: &Element, k: &'static str) -> Result<DateTime<Utc>, DecodeError> {
    let s = ev.get(k).ok_or(DecodeError::Missing(k))?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| DecodeError::Bad(k, s.to_string()))
}

fn point(ev: &Element) -> Result<Option<Point>, DecodeError> {
    let Some(p) = ev.find("point") else {
        return Ok(None);
    };
    let lat = req_num(p, "lat")?;
    let lon = req_num(p, "lon")?;
    if !valid_position(lat, lon) {
        return Err(DecodeError::Bad("point", format!("{lat},{lon}")));
    }
    let known = |v: Option<f64>| v.filter(|x| x.is_finite() && *x < UNKNOWN && *x > -UNKNOWN);
    Ok(Some(Point {
        lat,
        lon,
        hae: known(opt_num(Some(p), "hae")?),
        ce: known(opt_num(Some(p), "ce")?).filter(|c| *c >= 0.0),
    }))
}

fn req_num(e: &Element, k: &'static str) -> Result<f64, DecodeError> {
    opt_num(Some(e), k)?.ok_or(DecodeError::Missing(k))
}

fn opt_num(e: Option<&Element>, k: &'static str) -> Result<Option<f64>, DecodeError> {
    let Some(v) = e.and_then(|e| e.get(k)) else {
        return Ok(None);
    };
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(Some(x)),
        _ => Err(DecodeError::Bad(k, v.to_string())),
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
