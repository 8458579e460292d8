//! Outpost events → CoT XML (SPEC §10). Every string goes through the XML writer.
//!
//! - a device's latest position: a PLI (`type` from its profile, `how` `m-g`), its `stale` the
//!   fix time plus the device's presence timeout; a device going offline is re-sent stale now.
//! - an alert: an emergency `b-a-o-tbl` (ATAK's "911 Alert") with `detail/emergency`.
//! - a message: GeoChat `b-t-f`, to "All Chat Rooms" or to one TAK contact (downlink, §8).

use crate::xml::Element;
use crate::{ALL_CHAT_ROOMS, UNKNOWN};
use chrono::{DateTime, Duration, Utc};
use outpost_proto::event::{format_ts, Alert, Location};

/// Metres of horizontal error per unit of HDOP when a device reports no accuracy (a typical
/// user-equivalent range error of consumer GNSS).
pub const CE_PER_HDOP: f64 = 5.0;
/// How long an emergency stays on the map without a refresh.
pub const ALERT_STALE: Duration = Duration::hours(1);
/// How long a GeoChat event is kept by servers that persist it.
pub const CHAT_STALE: Duration = Duration::days(1);

/// Who a CoT event is about: its uid, callsign and CoT type.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub uid: String,
    pub callsign: String,
    pub cot_type: String,
}

/// Where a GeoChat goes.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatTo {
    /// Everyone: the "All Chat Rooms" room.
    AllChatRooms,
    /// One TAK contact (a direct chat), by uid and callsign.
    Contact { uid: String, callsign: String },
}

/// A PLI for `unit` at `loc` reported at `time`, stale at `stale`.
pub fn pli(
    unit: &Unit,
    loc: &Location,
    battery: Option<f64>,
    time: DateTime<Utc>,
    stale: DateTime<Utc>,
) -> String {
    let mut detail = Element::new("detail").child(contact(&unit.callsign));
    if loc.speed.is_some() || loc.course.is_some() {
        detail = detail.child(
            Element::new("track")
                .attr("speed", num(loc.speed.unwrap_or(0.0)))
                .attr("course", num(loc.course.unwrap_or(0.0))),
        );
    }
    if let Some(b) = battery {
        detail = detail.child(Element::new("status").attr("battery", num(b.round())));
    }
    event(&unit.uid, &unit.cot_type, "m-g", time, stale)
        .child(point(loc.lat, loc.lon, loc.alt, ce(loc)))
        .child(detail)
        .to_xml()
}

/// The PLI of a device that went offline: its last position, stale at `now`, so TAK shows it
/// as lost at once instead of waiting for the old stale time.
pub fn offline(unit: &Unit, loc: &Location, now: DateTime<Utc>) -> String {
    pli(unit, loc, None, now, now)
}

/// The horizontal error: the device's accuracy, else derived from HDOP, else unknown.
pub fn ce(loc: &Location) -> f64 {
    match (loc.acc, loc.hdop) {
        (Some(a), _) if a.is_finite() && a >= 0.0 => a,
        (_, Some(h)) if h.is_finite() && h > 0.0 => h * CE_PER_HDOP,
        _ => UNKNOWN,
    }
}

/// An emergency (`b-a-o-tbl`) raised by `unit`: at the alert's own position, else `fallback`
/// (the device's last fix), else at 0,0 with unknown error.
pub fn emergency(
    unit: &Unit,
    alert: &Alert,
    fallback: Option<(f64, f64)>,
    time: DateTime<Utc>,
) -> String {
    let (lat, lon, known) = match (alert.lat, alert.lon, fallback) {
        (Some(la), Some(lo), _) => (la, lo, true),
        (_, _, Some((la, lo))) => (la, lo, true),
        _ => (0.0, 0.0, false),
    };
    let ce = if known { 10.0 } else { UNKNOWN };
    let mut detail = Element::new("detail")
        .child(link(&unit.uid, &unit.cot_type))
        .child(contact(&format!("{}-Alert", unit.callsign)))
        .child(
            Element::new("emergency")
                .attr("type", emergency_type(&alert.reason))
                .with_text(unit.callsign.as_str()),
        );
    let remarks = match &alert.text {
        Some(t) => format!("{}: {t}", alert.reason),
        None => alert.reason.clone(),
    };
    detail = detail.child(Element::new("remarks").with_text(remarks));
    event(
        &format!("{}-9-1-1", unit.uid),
        "b-a-o-tbl",
        "m-g",
        time,
        time + ALERT_STALE,
    )
    .child(point(lat, lon, None, ce))
    .child(detail)
    .to_xml()
}

fn emergency_type(reason: &str) -> &'static str {
    match reason {
        "man-down" => "Ring The Bell",
        "in-contact" | "troops-in-contact" => "In Contact",
        _ => "911 Alert",
    }
}

/// A GeoChat (`b-t-f`) from `sender` with `text`, identified by `msg_id` (kept in
/// `__chat@messageId`, which delivery receipts refer to).
pub fn chat(sender: &Unit, to: &ChatTo, text: &str, msg_id: &str, time: DateTime<Utc>) -> String {
    let (room, room_id) = match to {
        ChatTo::AllChatRooms => (ALL_CHAT_ROOMS, ALL_CHAT_ROOMS),
        ChatTo::Contact { uid, callsign } => (callsign.as_str(), uid.as_str()),
    };
    let chat = Element::new("__chat")
        .attr("parent", "RootContactGroup")
        .attr("groupOwner", "false")
        .attr("messageId", msg_id)
        .attr("chatroom", room)
        .attr("id", room_id)
        .attr("senderCallsign", sender.callsign.as_str())
        .child(
            Element::new("chatgrp")
                .attr("uid0", sender.uid.as_str())
                .attr("uid1", room_id)
                .attr("id", room_id),
        );
    let remarks = Element::new("remarks")
        .attr("source", format!("BAO.F.ATAK.{}", sender.uid))
        .attr("to", room_id)
        .attr("time", format_ts(time))
        .with_text(text);
    let detail = Element::new("detail")
        .child(chat)
        .child(link(&sender.uid, &sender.cot_type))
        .child(remarks);
    event(
        &format!("GeoChat.{}.{}.{}", sender.uid, room_id, msg_id),
        "b-t-f",
        "h-g-i-g-o",
        time,
        time + CHAT_STALE,
    )
    .child(point(0.0, 0.0, None, UNKNOWN))
    .child(detail)
    .to_xml()
}

/// The gateway's (or hub's) own announcement: a contact the server routes direct chats to.
/// It carries no position of its own (0,0, unknown error) and is stale at once, so no marker
/// lingers on the map; servers still learn the uid and callsign from it.
pub fn announce(unit: &Unit, now: DateTime<Utc>) -> String {
    let detail = Element::new("detail")
        .child(
            Element::new("takv")
                .attr("platform", "Outpost")
                .attr("version", env!("CARGO_PKG_VERSION"))
                .attr("device", "gateway")
                .attr("os", "linux"),
        )
        .child(contact(&unit.callsign))
        .child(
            Element::new("__group")
                .attr("name", "Cyan")
                .attr("role", "HQ"),
        );
    event(&unit.uid, &unit.cot_type, "h-g-i-g-o", now, now)
        .child(point(0.0, 0.0, None, UNKNOWN))
        .child(detail)
        .to_xml()
}

/// A delivery receipt (`b-t-f-d`) for GeoChat `msg_id`, as a TAK client sends it.
pub fn delivered(from: &Unit, msg_id: &str, time: DateTime<Utc>) -> String {
    let detail = Element::new("detail")
        .child(
            Element::new("__chat")
                .attr("messageId", msg_id)
                .attr("senderCallsign", from.callsign.as_str()),
        )
        .child(link(&from.uid, &from.cot_type));
    event(
        msg_id,
        "b-t-f-d",
        "h-g-i-g-o",
        time,
        time + Duration::minutes(1),
    )
    .child(point(0.0, 0.0, None, UNKNOWN))
    .child(detail)
    .to_xml()
}

fn event(
    uid: &str,
    cot_type: &str,
    how: &str,
    time: DateTime<Utc>,
    stale: DateTime<Utc>,
) -> Element {
    let t = format_ts(time);
    Element::new("event")
        .attr("version", "2.0")
        .attr("uid", uid)
        .attr("type", cot_type)
        .attr("how", how)
        .attr("time", t.as_str())
        .attr("start", t)
        .attr("stale", format_ts(stale.max(time)))
}

fn point(lat: f64, lon: f64, hae: Option<f64>, ce: f64) -> Element {
    Element::new("point")
        .attr("lat", num(lat))
        .attr("lon", num(lon))
        .attr("hae", num(hae.filter(|h| h.is_finite()).unwrap_or(UNKNOWN)))
        .attr("ce", num(ce))
        .attr("le", num(UNKNOWN))
}

fn contact(callsign: &str) -> Element {
    Element::new("contact").attr("callsign", callsign)
}

fn link(uid: &str, cot_type: &str) -> Element {
    Element::new("link")
        .attr("uid", uid)
        .attr("type", cot_type)
        .attr("relation", "p-p")
}

/// Numbers as TAK clients write them: plain decimals, no exponent, no `NaN`.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return "0".into();
    }
    let s = format!("{x:.7}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
