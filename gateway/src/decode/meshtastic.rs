//! Meshtastic MQTT JSON: what the firmware publishes on `msh/…/json/…` when JSON output is on
//! (`MeshPacketSerializer::JsonSerialize` in meshtastic/firmware). Topics: `msh/2/json/…`
//! (firmware before 2.3, no region), `msh/<region>/2/json/…`, and `msh/<region>//2/json/…` when
//! the root topic was set with a trailing slash; the shipped profile lists all three.
//!
//! Several radios can relay the same mesh packet to the broker, and the topic names only the
//! relaying radio. So the device id is the *originating* node, `from` as `!%08x` (the caller's
//! `dev` is ignored), and [`Decoded::dedup_key`] is [`dedup_key`]`(from, id)` so relays of one
//! packet are stored once. Older firmware prints node numbers and ids as signed 32-bit
//! (`-1` broadcast): they are read as the same unsigned numbers, so both spellings of a node
//! are one device and one packet.
//!
//! - `position` → Location (`latitude_i`/`longitude_i` × 1e-7, `ground_track` × 1e-5 deg).
//! - `telemetry` → Status. One type carries device, environment, power or air-quality
//!   metrics, told apart by their keys (`extra.telemetry` says which).
//! - `text` → Message.
//! - anything else (nodeinfo, neighborinfo, traceroute, waypoint, detection, encrypted packets
//!   without `type` …) → no events.
//!
//! The firmware omits fields whose value is zero (proto3), so an absent number is read as 0
//! where 0 means something (a coordinate) and as unknown where it does not (a battery level).
//! A malformed optional field is dropped and counted (`bad_field:<name>`); a malformed `from`,
//! position or time refuses the packet.
//!
//! The envelope's `rssi`/`snr`/`hops_away` describe the last radio hop to the *relaying* radio,
//! not the originating device, and differ per relay of the same packet; they are not reported.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::json::read::{self, check_position, plausible_secs};
use super::{DecodeError, Decoded, Drops};
use crate::event::{Body, Event, Location, Message, Status, TsSrc};

/// The broadcast node number: a message to everyone has no `to`.
const BROADCAST: u32 = 0xffff_ffff;
/// `battery_level` above 100 (firmware sends 101): "powered" (telemetry.proto: "0-100 (>100
/// means powered)"). The level itself is then unknown, so `battery` is left out and the status
/// says `charging: true` with `extra.external_power: true`.
const POWERED_LEVEL: f64 = 100.0;

/// Keys that only device metrics carry (telemetry.proto `DeviceMetrics`).
const DEVICE_KEYS: [&str; 4] = [
    "battery_level",
    "channel_utilization",
    "air_util_tx",
    "uptime_seconds",
];
/// Keys of power metrics (`PowerMetrics`, INA sensors per channel).
const POWER_PREFIXES: [&str; 8] = [
    "ch1_", "ch2_", "ch3_", "ch4_", "ch5_", "ch6_", "ch7_", "ch8_",
];
/// Key prefixes of air-quality metrics (`AirQualityMetrics`).
const AIR_PREFIXES: [&str; 4] = ["pm10_", "pm25_", "pm100_", "particles_"];

/// The store's dedup key of mesh packet `id` from node `from`: the same for every relay of the
/// packet (and for the protobuf uplink of the same packet, which shares node and packet ids).
pub fn dedup_key(from: u32, id: u32) -> String {
    format!("mesh:{from:08x}:{id}")
}

/// Decode one Meshtastic JSON packet received at `now`. `_dev` (derived from the topic, i.e.
/// the relaying radio) is ignored; see the module docs.
///
/// Time: a position's own `time` (the originator's clock) is device time. Otherwise the
/// envelope `timestamp`, which is when the relaying radio received the packet, is used with
/// `ts_src: gateway` (it is a receive time, on the gateway's side); if that is 0 or implausible,
/// `now`.
pub fn decode(_dev: &str, payload: &[u8], now: DateTime<Utc>) -> Result<Decoded, DecodeError> {
    let root = read::parse(payload)?;
    let obj = read::object(&root, "payload")?;
    let from = node(obj.get("from"), "from")?.ok_or_else(|| DecodeError::Missing("from".into()))?;
    let mut drops = Drops::default();
    // A packet without an id (0 is omitted) cannot be matched to its relays, but its content
    // still counts.
    let id = drops.keep(node(obj.get("id"), "id"));
    let rx_time =
        read::f64_at(obj.get("timestamp"), "timestamp")?.and_then(|t| plausible_secs(t, now));
    let received = (rx_time.unwrap_or(now), TsSrc::Gateway);
    let body = obj.get("payload");
    let bodies: Vec<(Body, Timed)> = match read::str_at(obj.get("type"), "type")? {
        Some("position") => position(object_at(body)?, now, received, &mut drops)?,
        Some("telemetry") => telemetry(object_at(body)?, &mut drops)
            .map(|s| (Body::Status(s), received))
            .into_iter()
            .collect(),
        Some("text") => vec![(Body::Message(text(obj, body, id, &mut drops)?), received)],
        _ => Vec::new(),
    };
    let dev = format!("!{from:08x}");
    let events = bodies
        .into_iter()
        .map(|(body, (ts, ts_src))| Event {
            dev: dev.clone(),
            body,
            ts,
            ts_src,
        })
        .collect();
    Ok(Decoded {
        events,
        dedup_key: id.map(|id| dedup_key(from, id)),
        dropped: drops.0,
        ..Default::default()
    })
}

/// A node number or packet id: unsigned 32-bit, but older firmware printed them as signed
/// (`"to":-1` for broadcast), so negative 32-bit values are taken as their two's complement.
fn node(v: Option<&Value>, name: &str) -> Result<Option<u32>, DecodeError> {
    let Some(x) = read::f64_at(v, name)? else {
        return Ok(None);
    };
    if x.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&x) {
        Ok(Some(x as u32))
    } else if x.fract() == 0.0 && (i32::MIN as f64..0.0).contains(&x) {
        Ok(Some(x as i32 as u32))
    } else {
        Err(DecodeError::field(
            name,
            format!("expected a 32-bit node number, got {x}"),
        ))
    }
}

fn object_at(v: Option<&Value>) -> Result<&Map<String, Value>, DecodeError> {
    match v {
        None | Some(Value::Null) => Err(DecodeError::Missing("payload".into())),
        Some(v) => read::object(v, "payload"),
    }
}

type Timed = (DateTime<Utc>, TsSrc);

fn position(
    p: &Map<String, Value>,
    now: DateTime<Utc>,
    received: Timed,
    drops: &mut Drops,
) -> Result<Vec<(Body, Timed)>, DecodeError> {
    // An omitted coordinate is 0 (proto3); both 0 is the firmware's "no fix", not Null Island.
    let lat_i = read::f64_at(p.get("latitude_i"), "payload.latitude_i")?.unwrap_or(0.0);
    let lon_i = read::f64_at(p.get("longitude_i"), "payload.longitude_i")?.unwrap_or(0.0);
    if lat_i == 0.0 && lon_i == 0.0 {
        return Ok(Vec::new());
    }
    // Dividing by an exact power of ten rounds correctly; multiplying by 1e-7 can be an ulp off.
    let (lat, lon) = (lat_i / 1e7, lon_i / 1e7);
    check_position(lat, lon)?;
    let time = read::f64_at(p.get("time"), "payload.time")?.and_then(|t| plausible_secs(t, now));
    let when = time.map_or(received, |t| (t, TsSrc::Device));
    let mut num = |k: &str| drops.keep(read::f64_at(p.get(k), &format!("payload.{k}")));
    let alt = num("altitude");
    let loc = Location {
        lat,
        lon,
        alt,
        // ground_speed is m/s; ground_track is in 1/100 millidegrees (mesh.proto).
        speed: num("ground_speed"),
        course: num("ground_track").map(|t| t / 1e5),
        // DOPs are sent in 1/100 units.
        hdop: num("HDOP").map(|h| h / 100.0),
        acc: precision_m(drops.keep(read::u64_at(
            p.get("precision_bits"),
            "payload.precision_bits",
        ))),
        sats: drops
            .keep(read::u64_at(p.get("sats_in_view"), "payload.sats_in_view"))
            .map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
        fix: None,
    };
    Ok(vec![(Body::Location(loc), when)])
}
/// Meshtastic channels can deliberately blur positions to `precision_bits` of the 32-bit
/// coordinate. A blurred position must not look exact, so report half the grid cell (at the
/// equator, 1e-7 deg ≈ 1.1132 cm) as its accuracy; 0 or 32 bits means full precision.
fn precision_m(bits: Option<u64>) -> Option<f64> {
    match bits {
        Some(b @ 1..=31) => Some((1u64 << (32 - b)) as f64 * 1e-7 * 111_320.0 / 2.0),
        _ => None,
    }
}

/// Keys only environment metrics carry (`EnvironmentMetrics`; it also has `voltage` and
/// `current`, of an external INA sensor, which are not the node's battery).
const ENVIRONMENT_KEYS: [&str; 12] = [
    "temperature",
    "relative_humidity",
    "barometric_pressure",
    "gas_resistance",
    "current",
    "iaq",
    "lux",
    "white_lux",
    "wind_speed",
    "wind_direction",
    "soil_moisture",
    "radiation",
];

/// Which metrics variant a telemetry payload carries, from its keys. Device metrics are the
/// default: with every field zero they arrive nearly empty.
fn telemetry_kind(p: &Map<String, Value>) -> &'static str {
    let has = |keys: &[&str]| keys.iter().any(|k| p.contains_key(*k));
    let prefixed = |pre: &[&str]| p.keys().any(|k| pre.iter().any(|x| k.starts_with(x)));
    if has(&DEVICE_KEYS) {
        "device"
    } else if prefixed(&POWER_PREFIXES) {
        "power"
    } else if prefixed(&AIR_PREFIXES) {
        "air_quality"
    } else if has(&ENVIRONMENT_KEYS) {
        "environment"
    } else {
        "device"
    }
}

/// Telemetry: the firmware flattens whichever metrics variant the packet carries into
/// `payload`. The §5 fields are mapped (battery, voltage and uptime from device metrics only;
/// temperature from environment metrics); every other numeric field (channel_utilization,
/// relative_humidity, ch1_voltage, pm25_standard …) goes to `extra` under its own name, so new
/// firmware metrics pass through without a gateway release. `extra.telemetry` names the kind.
fn telemetry(p: &Map<String, Value>, drops: &mut Drops) -> Option<Status> {
    let kind = telemetry_kind(p);
    let mut st = Status::default();
    let mut num = |k: &str| drops.keep(read::f64_at(p.get(k), &format!("payload.{k}")));
    let mut mapped: Vec<&str> = Vec::new();
    if kind == "device" {
        // Device metrics carry `voltage` 0 when unmeasured, so 0 V means "unknown". A 0 %
        // (or omitted) battery next to 0 V is a node without battery monitoring, not an empty
        // battery.
        let voltage = num("voltage").filter(|v| *v != 0.0);
        let battery = num("battery_level").filter(|b| *b != 0.0 || voltage.is_some());
        match battery {
            Some(b) if b > POWERED_LEVEL => {
                st.charging = Some(true);
                st.extra.insert("external_power".into(), true.into());
            }
            b => st.battery = b,
        }
        st.voltage = voltage;
        st.uptime = drops.keep(read::u64_at(
            p.get("uptime_seconds"),
            "payload.uptime_seconds",
        ));
        mapped.extend(["voltage", "battery_level", "uptime_seconds"]);
    } else if kind == "environment" {
        st.temperature = num("temperature");
        mapped.push("temperature");
    }
    for (k, v) in p {
        if v.is_number() && !mapped.contains(&k.as_str()) {
            st.extra.insert(k.clone(), v.clone());
        }
    }
    if st.is_empty() {
        return None;
    }
    st.extra.insert("telemetry".into(), kind.into());
    Some(st)
}

/// A text message. If the text itself was valid JSON, the firmware inlines it as `payload`
/// instead of `{"text": …}`; it is turned back into text so the message is not lost.
fn text(
    obj: &Map<String, Value>,
    body: Option<&Value>,
    id: Option<u32>,
    drops: &mut Drops,
) -> Result<Message, DecodeError> {
    let text = match body {
        None | Some(Value::Null) => return Err(DecodeError::Missing("payload".into())),
        Some(Value::Object(p)) if p.contains_key("text") => {
            read::text_at(p.get("text"), "payload.text")?
                .ok_or_else(|| DecodeError::Missing("payload.text".into()))?
        }
        Some(other) => {
            let raw = match other {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            read::text_at(Some(&Value::String(raw)), "payload")?.unwrap_or_default()
        }
    };
    let to = drops
        .keep(node(obj.get("to"), "to"))
        .filter(|t| *t != BROADCAST);
    Ok(Message {
        text,
        to: to.map(|t| format!("!{t:08x}")),
        msg_id: id.map(|i| i.to_string()),
    })
}

#[cfg(test)]
mod tests;
