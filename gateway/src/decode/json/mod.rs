//! The generic JSON decoder, the technician's escape hatch (SPEC §4): a device profile's
//! [`JsonMapping`] names, with JSON Pointers (RFC 6901), where each event field sits in the
//! device's payload, so a new JSON device needs a profile, not a gateway release.
//!
//! Per class, an event is produced when its required fields are in the payload (location:
//! `lat` and `lon`; status: any field; message: `text`; alert: `when` truthy) and silently
//! skipped when they are absent, because devices often send partial reports. A value that is
//! present with the wrong type is an error naming its pointer: the mapping or the device is
//! wrong, and guessing would hide it.

mod mapping;
pub(crate) mod read;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use mapping::{pointer_problem, AlertMap, JsonMapping, LocationMap, MessageMap, StatusMap};
pub use read::MAX_PAYLOAD_BYTES;

use super::{DecodeError, Decoded};
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
    let location = match &mapping.location {
        Some(m) => location(&root, m)?,
        None => None,
    };
    let mut bodies = Vec::new();
    if let Some(m) = &mapping.alert {
        if read::flag_at(root.pointer(&m.when), &m.when)? == Some(true) {
            bodies.push(Body::Alert(Alert {
                reason: m.reason.clone(),
                text: text(at(&m.text), m.text.as_deref())?,
                lat: location.as_ref().map(|l| l.lat),
                lon: location.as_ref().map(|l| l.lon),
            }));
        }
    }
    if let Some(m) = &mapping.message {
        if let Some(t) = read::text_at(root.pointer(&m.text), &m.text)? {
            bodies.push(Body::Message(Message {
                text: t,
                to: read::id_at(at(&m.to), m.to.as_deref().unwrap_or_default())?,
                msg_id: read::id_at(at(&m.msg_id), m.msg_id.as_deref().unwrap_or_default())?,
            }));
        }
    }
    if let Some(m) = &mapping.status {
        let st = status(&root, m)?;
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
        dedup_key: None,
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

fn location(root: &Value, m: &LocationMap) -> Result<Option<Location>, DecodeError> {
    let num = |p: &Option<String>| match p {
        Some(p) => read::f64_at(root.pointer(p), p),
        None => Ok(None),
    };
    let lat = read::f64_at(root.pointer(&m.lat), &m.lat)?;
    let lon = read::f64_at(root.pointer(&m.lon), &m.lon)?;
    let (Some(lat), Some(lon)) = (lat, lon) else {
        return Ok(None);
    };
    let fix = match &m.fix {
        Some(p) => match fix(root.pointer(p), p)? {
            // The device says it has no fix: its lat/lon are stale or zero.
            FixValue::None => return Ok(None),
            FixValue::Fix(f) => Some(f),
            FixValue::Absent => None,
        },
        None => None,
    };
    check_position(lat, lon)?;
    let sats = match &m.sats {
        Some(p) => read::u64_at(root.pointer(p), p)?.map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
        None => None,
    };
    Ok(Some(Location {
        lat,
        lon,
        alt: num(&m.alt)?,
        speed: num(&m.speed)?,
        course: num(&m.course)?,
        hdop: num(&m.hdop)?,
        acc: num(&m.acc)?,
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

fn status<'a>(root: &'a Value, m: &'a StatusMap) -> Result<Status, DecodeError> {
    let get = |p: &'a Option<String>| p.as_deref().map(|p| (root.pointer(p), p));
    let num = |p: &'a Option<String>| match get(p) {
        Some((v, p)) => read::f64_at(v, p),
        None => Ok(None),
    };
    let mut st = Status {
        battery: num(&m.battery)?,
        voltage: num(&m.voltage)?,
        rssi: num(&m.rssi)?,
        snr: num(&m.snr)?,
        ber: num(&m.ber)?,
        temperature: num(&m.temperature)?,
        ..Default::default()
    };
    if let Some((v, p)) = get(&m.charging) {
        st.charging = read::flag_at(v, p)?;
    }
    if let Some((v, p)) = get(&m.uptime) {
        st.uptime = read::u64_at(v, p)?;
    }
    if let Some((v, p)) = get(&m.channel) {
        st.channel = scalar(v, p)?;
    }
    for (name, p) in &m.extra {
        if let Some(v) = scalar(root.pointer(p), p)? {
            st.extra.insert(name.clone(), v);
        }
    }
    Ok(st)
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
