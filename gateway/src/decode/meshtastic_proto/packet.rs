//! A decoded mesh packet (`MeshPacket` with its `Data`) → events: the same events the JSON
//! decoder ([`crate::decode::meshtastic`]) makes of the same packet, so a fleet moving from
//! JSON to protobuf uplink (firmware 2.8) looks the same upstream. Used by the MQTT decoder and
//! by the serial radio.

use super::messages::{self as pb, port, Metrics, User};
use crate::decode::json::read::{check_position, plausible_secs};
use crate::decode::meshtastic::precision_m;
use crate::decode::DecodeError;
use crate::event::{Body, Event, Location, Message, Status, TsSrc};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The broadcast node number: a message to everyone has no `to`.
const BROADCAST: u32 = 0xffff_ffff;
/// `battery_level` above 100 (firmware sends 101) means "on external power, level unknown".
const POWERED_LEVEL: u32 = 100;

/// The device id of a node: `!%08x`, as Meshtastic writes node ids.
pub fn node_id(num: u32) -> String {
    format!("!{num:08x}")
}

/// Events of packet `p` (from node `p.from`) whose payload is `data`, received at `now`.
///
/// Time as in the JSON decoder: a position's own `time` is device time; otherwise the packet's
/// `rx_time` (when the relaying radio heard it) with `ts_src: gateway`, else `now`.
pub fn events(
    p: &pb::MeshPacket,
    data: &pb::Data,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, DecodeError> {
    let rx = p.rx_time.and_then(|t| plausible_secs(f64::from(t), now));
    let received = (rx.unwrap_or(now), TsSrc::Gateway);
    let bodies: Vec<(Body, (DateTime<Utc>, TsSrc))> = match data.portnum {
        port::POSITION => position(&decode_as(&data.payload, "Position")?, now)?
            .map(|(loc, when)| (Body::Location(loc), when.unwrap_or(received)))
            .into_iter()
            .collect(),
        port::TELEMETRY => telemetry(&decode_as(&data.payload, "Telemetry")?)
            .map(|s| (Body::Status(s), received))
            .into_iter()
            .collect(),
        port::TEXT_MESSAGE => vec![(Body::Message(text(p, data)?), received)],
        port::NODEINFO => user_status(&decode_as(&data.payload, "User")?)
            .map(|s| (Body::Status(s), received))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    let dev = node_id(p.from);
    Ok(bodies
        .into_iter()
        .map(|(body, (ts, ts_src))| Event {
            dev: dev.clone(),
            body,
            ts,
            ts_src,
        })
        .collect())
}

/// An application payload as message `M`; a payload that is not one is `not_protobuf`.
pub(crate) fn decode_as<M: prost::Message + Default>(
    b: &[u8],
    what: &str,
) -> Result<M, DecodeError> {
    M::decode(b).map_err(|e| DecodeError::NotProtobuf(format!("{what}: {e}")))
}

type Timed = (DateTime<Utc>, TsSrc);

fn position(
    p: &pb::Position,
    now: DateTime<Utc>,
) -> Result<Option<(Location, Option<Timed>)>, DecodeError> {
    let (lat_i, lon_i) = (p.latitude_i.unwrap_or(0), p.longitude_i.unwrap_or(0));
    // 0/0 (or absent) is "no fix", not Null Island.
    if lat_i == 0 && lon_i == 0 {
        return Ok(None);
    }
    let (lat, lon) = (f64::from(lat_i) / 1e7, f64::from(lon_i) / 1e7);
    check_position(lat, lon)?;
    let when = plausible_secs(f64::from(p.time), now).map(|t| (t, TsSrc::Device));
    let loc = Location {
        lat,
        lon,
        alt: p.altitude.map(f64::from),
        // ground_speed m/s; ground_track in 1e-5 degrees; HDOP in 1/100 (mesh.proto).
        speed: p.ground_speed.map(f64::from),
        course: p.ground_track.map(|t| f64::from(t) / 1e5),
        hdop: (p.hdop != 0).then(|| f64::from(p.hdop) / 100.0),
        acc: precision_m(Some(u64::from(p.precision_bits))),
        sats: (p.sats_in_view != 0).then_some(p.sats_in_view),
        fix: None,
    };
    Ok(Some((loc, when)))
}

/// An `f32` as the decimal it was written as (4.02, not 4.019999980926514).
fn num(x: f32) -> f64 {
    format!("{x}").parse().unwrap_or(f64::from(x))
}

fn telemetry(t: &pb::Telemetry) -> Option<Status> {
    let mut st = Status::default();
    match &t.metrics {
        Some(Metrics::Device(d)) => {
            // 0 V is "unmeasured"; a 0 % battery beside it is no battery monitoring (as JSON).
            st.voltage = d.voltage.filter(|v| *v != 0.0).map(num);
            match d.battery_level.filter(|b| *b != 0 || st.voltage.is_some()) {
                Some(b) if b > POWERED_LEVEL => {
                    st.charging = Some(true);
                    st.extra.insert("external_power".into(), true.into());
                }
                b => st.battery = b.map(f64::from),
            }
            st.uptime = d.uptime_seconds.map(u64::from);
            extra(&mut st.extra, "channel_utilization", d.channel_utilization);
            extra(&mut st.extra, "air_util_tx", d.air_util_tx);
        }
        Some(Metrics::Environment(e)) => {
            st.temperature = e.temperature.map(num);
            st.voltage = e.voltage.map(num);
            extra(&mut st.extra, "relative_humidity", e.relative_humidity);
            extra(&mut st.extra, "barometric_pressure", e.barometric_pressure);
            extra(&mut st.extra, "gas_resistance", e.gas_resistance);
            extra(&mut st.extra, "current", e.current);
            extra(&mut st.extra, "iaq", e.iaq.map(|x| x as f32));
            extra(&mut st.extra, "lux", e.lux);
            extra(
                &mut st.extra,
                "wind_direction",
                e.wind_direction.map(|x| x as f32),
            );
            extra(&mut st.extra, "wind_speed", e.wind_speed);
        }
        None => {}
    }
    (!st.is_empty()).then_some(st)
}

fn extra(m: &mut Map<String, Value>, name: &str, v: Option<f32>) {
    if let Some(x) = v.filter(|x| x.is_finite()) {
        m.insert(name.into(), Value::from(num(x)));
    }
}

fn text(p: &pb::MeshPacket, data: &pb::Data) -> Result<Message, DecodeError> {
    let text = std::str::from_utf8(&data.payload).map_err(|_| DecodeError::BadUtf8)?;
    Ok(Message {
        text: text.to_string(),
        to: (p.to != BROADCAST).then(|| node_id(p.to)),
        msg_id: Some(p.id.to_string()),
    })
}

/// NODEINFO: the node's names, kept as a status (`extra.long_name`, `short_name`, `hw_model`)
/// so the device's latest status upstream holds its human name — the callsign TAK output
/// (SPEC §10) can show instead of `!a1b2c3d4`.
fn user_status(u: &User) -> Option<Status> {
    let mut st = Status::default();
    for (k, v) in [("long_name", &u.long_name), ("short_name", &u.short_name)] {
        let v = v.trim();
        if !v.is_empty() {
            st.extra.insert(k.into(), v.into());
        }
    }
    if u.hw_model != 0 {
        st.extra.insert("hw_model".into(), u.hw_model.into());
    }
    (!st.is_empty()).then_some(st)
}

/// A node's display name from its `User`: long name, else short name.
pub fn display_name(u: &User) -> Option<String> {
    [&u.long_name, &u.short_name]
        .into_iter()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
        .map(str::to_string)
}
