//! The generic JSON decoder, the technician's escape hatch (SPEC §4): a device profile's
//! [`JsonMapping`] names, with JSON Pointers (RFC 6901), where each event field sits in the
//! device's payload, so a new JSON device needs a profile, not a gateway release.
//!
//! Per class, an event is produced when its required fields are in the payload (location:
//! `lat` and `lon`; status: any field; message: `text`; alert: `when` truthy) and silently
//! skipped when they are absent, because devices often send partial reports. A value that is
//! present with the wrong type follows the malformed-field rule (docs/device-profiles.md): an
//! optional field is left out and counted as `bad_field:<pointer>` (the counter names the
//! pointer, so a wrong mapping shows in `outpost status`), and the rest is kept; a malformed
//! device id, time, `lat` or `lon` refuses the payload.

mod mapping;
pub(crate) mod read;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use mapping::{pointer_problem, AlertMap, JsonMapping, LocationMap, MessageMap, StatusMap};
pub use read::MAX_PAYLOAD_BYTES;

use super::{DecodeError, Decoded, Drops};
use crate::event::{Alert, Body, Event, Fix, Location, Message, Status, TsSrc};
use read::{check_position, device_or_gateway, plausible_ms};

/// The longest device id taken from a payload; longer is a mapping error, not an id.
const MAX_DEVICE_ID_BYTES: usize = 128;
/// A numeric time at or above this is milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
const MS_THRESHOLD: f64 = 1e11;

/// Decode one JSON payload from device `dev` (the id derived from the topic, unless
/// `mapping.device` is set), received at `now`.
pub fn decode(
    mapping: &JsonMapping,
    dev: &str,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<Decoded, DecodeError> {
    let root = read::parse(payload)?;
    let at = |p: &Option<String>| p.as_deref().and_then(|p| root.pointer(p));
    let dev = match &mapping.device {
        None => dev.to_string(),
        Some(p) => device_id(root.pointer(p), p)?,
    };
    let when = match &mapping.ts {
        None => (now, TsSrc::Gateway),
        Some(p) => device_or_gateway(timestamp(root.pointer(p), p, now)?, now),
    };
    let mut drops = Drops::default();
    let location = match &mapping.location {
        Some(m) => location(&root, m, &mut drops)?,
        None => None,
    };
    let mut bodies = Vec::new();
    if let Some(m) = &mapping.alert {
        if drops.keep(read::flag_at(root.pointer(&m.when), &m.when)) == Some(true) {
            bodies.push(Body::Alert(Alert {
                reason: m.reason.clone(),
                text: drops.keep(text(at(&m.text), m.text.as_deref())),
                lat: location.as_ref().map(|l| l.lat),
                lon: location.as_ref().map(|l| l.lon),
            }));
        }
    }
    if let Some(m) = &mapping.message {
        // A malformed (or too long) text leaves the message out, counted; the other events of
        // the payload are kept.
        if let Some(t) = drops.keep(read::text_at(root.pointer(&m.text), &m.text)) {
            let id = |p: &Option<String>, drops: &mut Drops| {
                drops.keep(read::id_at(at(p), p.as_deref().unwrap_or_default()))
            };
            bodies.push(Body::Message(Message {
                text: t,
                to: id(&m.to, &mut drops),
                msg_id: id(&m.msg_id, &mut drops),
            }));
        }
    }
    if let Some(m) = &mapping.status {
        let st = status(&root, m, &mut drops);
        if !st.is_empty() {
            bodies.push(Body::Status(st));
        }
    }
    bodies.extend(location.map(Body::Location));
    let events = bodies
        .into_iter()
        .map(|body| Event {
            dev: dev.clone(),
            body,
            ts: when.0,
            ts_src: when.1,
        })
        .collect();
    Ok(Decoded {
        events,
        dropped: drops.0,
        ..Default::default()
    })
}

fn text(v: Option<&Value>, name: Option<&str>) -> Result<Option<String>, DecodeError> {
    read::text_at(v, name.unwrap_or_default())
}

/// The device id from the payload. Absent is an error, not a fallback to the topic: a profile
/// that reads ids from payloads usually shares one topic among devices.
fn device_id(v: Option<&Value>, name: &str) -> Result<String, DecodeError> {
    let id = read::id_at(v, name)?.ok_or_else(|| DecodeError::Missing(name.to_string()))?;
    if id.is_empty() || id.len() > MAX_DEVICE_ID_BYTES || id.chars().any(char::is_control) {
        return Err(DecodeError::field(
            name,
            format!("device id must be 1..={MAX_DEVICE_ID_BYTES} printable bytes"),
        ));
    }
    Ok(id)
}

/// The device's time, if present and plausible. Unparseable is an error (the mapping points at
/// the wrong thing); implausible (clock unset) is `None`, as in the other decoders.
fn timestamp(
    v: Option<&Value>,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DecodeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let t = DateTime::parse_from_rfc3339(s)
                .map_err(|e| DecodeError::field(name, format!("not an RFC 3339 time: {e}")))?;
            Ok(plausible_ms(t.timestamp_millis() as f64, now))
        }
        Some(v @ Value::Number(_)) => {
            let x = read::req_f64(Some(v), name)?;
            let ms = if x.abs() >= MS_THRESHOLD {
                x
            } else {
                x * 1000.0
            };
            Ok(plausible_ms(ms, now))
        }
        Some(_) => Err(DecodeError::field(
            name,
            "expected an RFC 3339 string or unix time number",
        )),
    }
}

fn location(
    root: &Value,
    m: &LocationMap,
    drops: &mut Drops,
) -> Result<Option<Location>, DecodeError> {
    let mut num = |p: &Option<String>| match p {
        Some(p) => drops.keep(read::f64_at(root.pointer(p), p)),
        None => None,
    };
    let lat = read::f64_at(root.pointer(&m.lat), &m.lat)?;
    let lon = read::f64_at(root.pointer(&m.lon), &m.lon)?;
    let (Some(lat), Some(lon)) = (lat, lon) else {
        return Ok(None);
    };
    let (alt, speed, course, hdop, acc) = (
        num(&m.alt),
        num(&m.speed),
        num(&m.course),
        num(&m.hdop),
        num(&m.acc),
    );
    let fix = match &m.fix {
        Some(p) => match fix(root.pointer(p), p) {
            // The device says it has no fix: its lat/lon are stale or zero.
            Ok(FixValue::None) => return Ok(None),
            Ok(FixValue::Fix(f)) => Some(f),
            Ok(FixValue::Absent) => None,
            Err(e) => {
                drops.push(e);
                None
            }
        },
        None => None,
    };
    check_position(lat, lon)?;
    let sats = match &m.sats {
        Some(p) => drops
            .keep(read::u64_at(root.pointer(p), p))
            .map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
        None => None,
    };
    Ok(Some(Location {
        lat,
        lon,
        alt,
        speed,
        course,
        hdop,
        acc,
        fix,
        sats,
    }))
}

enum FixValue {
    Absent,
    None,
    Fix(Fix),
}

/// A §5 fix name, `"none"`, or the NMEA-style mode number (0/1 none, 2 = 2D, 3 = 3D).
fn fix(v: Option<&Value>, name: &str) -> Result<FixValue, DecodeError> {
    let bad = |what: String| DecodeError::field(name, format!("unknown fix {what}"));
    Ok(match v {
        None | Some(Value::Null) => FixValue::Absent,
        Some(Value::String(s)) => match s.as_str() {
            "none" => FixValue::None,
            "2d" => FixValue::Fix(Fix::TwoD),
            "3d" => FixValue::Fix(Fix::ThreeD),
            "dgps" => FixValue::Fix(Fix::Dgps),
            "rtk" => FixValue::Fix(Fix::Rtk),
            "rtk-float" => FixValue::Fix(Fix::RtkFloat),
            "est" => FixValue::Fix(Fix::Est),
            _ => return Err(bad(format!("{s:?}"))),
        },
        Some(v) => match read::u64_at(Some(v), name)? {
            Some(0 | 1) => FixValue::None,
            Some(2) => FixValue::Fix(Fix::TwoD),
            Some(3) => FixValue::Fix(Fix::ThreeD),
            other => return Err(bad(format!("{other:?}"))),
        },
    })
}

fn status(root: &Value, m: &StatusMap, drops: &mut Drops) -> Status {
    let get = |p: &Option<String>| p.clone().map(|p| (root.pointer(&p), p));
    let mut num = |p: &Option<String>| match get(p) {
        Some((v, p)) => drops.keep(read::f64_at(v, &p)),
        None => None,
    };
    let mut st = Status {
        battery: num(&m.battery),
        voltage: num(&m.voltage),
        rssi: num(&m.rssi),
        snr: num(&m.snr),
        ber: num(&m.ber),
        temperature: num(&m.temperature),
        ..Default::default()
    };
    if let Some((v, p)) = get(&m.charging) {
        st.charging = drops.keep(read::flag_at(v, &p));
    }
    if let Some((v, p)) = get(&m.uptime) {
        st.uptime = drops.keep(read::u64_at(v, &p));
    }
    if let Some((v, p)) = get(&m.channel) {
        st.channel = drops.keep(scalar(v, &p));
    }
    for (name, p) in &m.extra {
        if let Some(v) = drops.keep(scalar(root.pointer(p), p)) {
            st.extra.insert(name.clone(), v);
        }
    }
    st
}

/// A string, number or boolean, passed through; `extra` is for small named values, not trees.
fn scalar(v: Option<&Value>, name: &str) -> Result<Option<Value>, DecodeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => Ok(Some(v.clone())),
        Some(_) => Err(DecodeError::field(
            name,
            "expected a string, number or boolean",
        )),
    }
}

#[cfg(test)]
mod tests;
