//! Meshtastic MQTT JSON: what the firmware publishes on `msh/…/json/…` when JSON output is on
//! (`MeshPacketSerializer::JsonSerialize` in meshtastic/firmware).
//!
//! Several radios can relay the same mesh packet to the broker, and the topic names only the
//! relaying radio. So the device id is the *originating* node, `from` as `!%08x` (the caller's
//! `dev` is ignored), and [`Decoded::dedup_key`] is `mesh:<from>:<id>` so relays of one packet
//! are stored once.
//!
//! - `position` → Location (`latitude_i`/`longitude_i` × 1e-7, `ground_track` × 1e-5 deg).
//! - `telemetry` → Status (device, environment, power or air-quality metrics; one kind a packet).
//! - `text` → Message.
//! - anything else (nodeinfo, neighborinfo, traceroute, waypoint, detection, encrypted packets
//!   without `type` …) → no events.
//!
//! The envelope's `rssi`/`snr`/`hops_away` describe the last radio hop to the *relaying* radio,
//! not the originating device, and differ per relay of the same packet; they are not reported.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::json::read::{self, check_position, plausible_secs};
use super::{DecodeError, Decoded};
use crate::event::{Body, Event, Location, Message, Status, TsSrc};

/// The broadcast node number: a message to everyone has no `to`.
const BROADCAST: u32 = 0xffff_ffff;
/// `battery_level` above 100 (firmware sends 101) means "on external power, level unknown".
const POWERED_LEVEL: f64 = 100.0;

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
    let id = node(obj.get("id"), "id")?.ok_or_else(|| DecodeError::Missing("id".into()))?;
    let dedup_key = Some(dedup_key(from, id));
    let rx_time =
        read::f64_at(obj.get("timestamp"), "timestamp")?.and_then(|t| plausible_secs(t, now));
    let received = (rx_time.unwrap_or(now), TsSrc::Gateway);
    let body = obj.get("payload");
    let bodies: Vec<(Body, Timed)> = match read::str_at(obj.get("type"), "type")? {
        Some("position") => position(object_at(body)?, now, received)?,
        Some("telemetry") => telemetry(object_at(body)?)?
            .map(|s| (Body::Status(s), received))
            .into_iter()
            .collect(),
        Some("text") => vec![(Body::Message(text(obj, body, id)?), received)],
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
    Ok(Decoded { events, dedup_key })
}

/// The identity of mesh packet `id` from node `from` across relaying radios and uplinks (JSON
/// and protobuf alike): `mesh:<from as %08x>:<id>`.
pub(crate) fn dedup_key(from: u32, id: u32) -> String {
    format!("mesh:{from:08x}:{id}")
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
) -> Result<Vec<(Body, Timed)>, DecodeError> {
    let lat_i = read::req_f64(p.get("latitude_i"), "payload.latitude_i")?;
    let lon_i = read::req_f64(p.get("longitude_i"), "payload.longitude_i")?;
    // The firmware sends 0/0 when it has no fix (proto3 default): no position, not Null Island.
    if lat_i == 0.0 && lon_i == 0.0 {
        return Ok(Vec::new());
    }
    // Dividing by an exact power of ten rounds correctly; multiplying by 1e-7 can be an ulp off.
    let (lat, lon) = (lat_i / 1e7, lon_i / 1e7);
    check_position(lat, lon)?;
    let time = read::f64_at(p.get("time"), "payload.time")?.and_then(|t| plausible_secs(t, now));
    let when = time.map_or(received, |t| (t, TsSrc::Device));
    let sats = read::u64_at(p.get("sats_in_view"), "payload.sats_in_view")?;
    let loc = Location {
        lat,
        lon,
        alt: read::f64_at(p.get("altitude"), "payload.altitude")?,
        // ground_speed is m/s; ground_track is in 1/100 millidegrees (mesh.proto).
        speed: read::f64_at(p.get("ground_speed"), "payload.ground_speed")?,
        course: read::f64_at(p.get("ground_track"), "payload.ground_track")?.map(|t| t / 1e5),
        // DOPs are sent in 1/100 units.
        hdop: read::f64_at(p.get("HDOP"), "payload.HDOP")?.map(|h| h / 100.0),
        acc: precision_m(read::u64_at(
            p.get("precision_bits"),
            "payload.precision_bits",
        )?),
        sats: sats.map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
        fix: None,
    };
    Ok(vec![(Body::Location(loc), when)])
}

/// Meshtastic channels can deliberately blur positions to `precision_bits` of the 32-bit
/// coordinate. A blurred position must not look exact, so report half the grid cell (at the
/// equator, 1e-7 deg ≈ 1.1132 cm) as its accuracy; 0 or 32 bits means full precision.
pub(crate) fn precision_m(bits: Option<u64>) -> Option<f64> {
    match bits {
        Some(b @ 1..=31) => Some((1u64 << (32 - b)) as f64 * 1e-7 * 111_320.0 / 2.0),
        _ => None,
    }
}

/// Telemetry: the firmware flattens whichever metrics variant the packet carries into
/// `payload`. The §5 fields are mapped; every other numeric field (channel_utilization,
/// air_util_tx, relative_humidity, barometric_pressure, pm25 …) goes to `extra` under its own
/// name, so new firmware metrics pass through without a gateway release.
fn telemetry(p: &Map<String, Value>) -> Result<Option<Status>, DecodeError> {
    let mut st = Status::default();
    // Device metrics always carry `voltage` (0 when unmeasured), so 0 V means "unknown". A 0 %
    // battery next to 0 V is a node without battery monitoring, not an empty battery.
    let voltage = read::f64_at(p.get("voltage"), "payload.voltage")?.filter(|v| *v != 0.0);
    let battery = read::f64_at(p.get("battery_level"), "payload.battery_level")?
        .filter(|b| *b != 0.0 || voltage.is_some());
    match battery {
        Some(b) if b > POWERED_LEVEL => {
            st.charging = Some(true);
            st.extra.insert("external_power".into(), true.into());
        }
        b => st.battery = b,
    }
    st.voltage = voltage;
    st.temperature = read::f64_at(p.get("temperature"), "payload.temperature")?;
    st.uptime = read::u64_at(p.get("uptime_seconds"), "payload.uptime_seconds")?;
    for (k, v) in p {
        let mapped = ["voltage", "battery_level", "temperature", "uptime_seconds"];
        if v.is_number() && !mapped.contains(&k.as_str()) {
            st.extra.insert(k.clone(), v.clone());
        }
    }
    Ok((!st.is_empty()).then_some(st))
}

/// A text message. If the text itself was valid JSON, the firmware inlines it as `payload`
/// instead of `{"text": …}`; it is turned back into text so the message is not lost.
fn text(obj: &Map<String, Value>, body: Option<&Value>, id: u32) -> Result<Message, DecodeError> {
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
    let to = node(obj.get("to"), "to")?.filter(|t| *t != BROADCAST);
    Ok(Message {
        text,
        to: to.map(|t| format!("!{t:08x}")),
        msg_id: Some(id.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testkit::{decode_fixture, now, secs};

    const FIXTURE: &str = include_str!("../../tests/fixtures/mqtt/meshtastic.txt");

    fn fixture() -> Vec<Decoded> {
        decode_fixture(FIXTURE, |p| decode("relay", p, now()))
    }

    #[test]
    fn every_fixture_line_decodes_with_a_dedup_key() {
        let got: Vec<(Option<String>, Vec<&str>)> = fixture()
            .iter()
            .map(|d| {
                (
                    d.dedup_key.clone(),
                    d.events.iter().map(|e| e.class().as_str()).collect(),
                )
            })
            .collect();
        let key = |s: &str| Some(s.to_string());
        assert_eq!(
            got,
            [
                (key("mesh:7efeee00:452664778"), vec![]),
                (key("mesh:da65ade0:1186871389"), vec!["location"]),
                (key("mesh:7efeb2c8:1576523471"), vec!["status"]),
                (key("mesh:da65ade0:1186871390"), vec!["status"]),
                (key("mesh:da65ade0:1186871391"), vec!["message"]),
            ]
        );
    }

    #[test]
    fn position_scales_integers_and_uses_the_originators_clock() {
        let e = &fixture()[1].events[0];
        assert_eq!(
            e.dev, "!da65ade0",
            "the originator, not the relaying sender !da656a30"
        );
        assert_eq!((e.ts, e.ts_src), (secs(1_714_295_445), TsSrc::Device));
        let Body::Location(loc) = &e.body else {
            panic!()
        };
        assert_eq!((loc.lat, loc.lon), (51.772, 0.0395));
        assert_eq!((loc.alt, loc.acc), (Some(85.0), None));
    }

    #[test]
    fn position_optional_fields_and_precision() {
        let p = br#"{"from":1,"id":2,"type":"position","payload":{"latitude_i":-337000000,"longitude_i":1512000000,
            "ground_speed":3,"ground_track":9000000,"sats_in_view":9,"HDOP":120,"precision_bits":13}}"#;
        let e = &decode("x", p, now()).unwrap().events[0];
        assert_eq!((e.ts, e.ts_src), (now(), TsSrc::Gateway));
        let Body::Location(loc) = &e.body else {
            panic!()
        };
        assert_eq!(
            (loc.speed, loc.course, loc.sats, loc.hdop),
            (Some(3.0), Some(90.0), Some(9), Some(1.2))
        );
        assert_eq!(loc.acc.map(f64::round), Some(2918.0));
    }

    #[test]
    fn position_without_fix_is_no_event() {
        let p =
            br#"{"from":1,"id":2,"type":"position","payload":{"latitude_i":0,"longitude_i":0}}"#;
        assert!(decode("x", p, now()).unwrap().events.is_empty());
    }

    #[test]
    fn telemetry_maps_device_metrics() {
        let e = &fixture()[3].events[0];
        assert_eq!((e.ts, e.ts_src), (secs(1_714_295_500), TsSrc::Gateway));
        let Body::Status(st) = &e.body else { panic!() };
        assert_eq!(
            (st.battery, st.voltage, st.uptime),
            (Some(87.0), Some(4.02), Some(5210))
        );
        assert_eq!((st.rssi, st.snr), (None, None));
        assert_eq!(st.extra["channel_utilization"], 3.5);
        assert_eq!(st.extra["air_util_tx"], 0.8);
    }

    #[test]
    fn telemetry_without_battery_monitoring_reports_no_battery() {
        let e = &fixture()[2].events[0];
        assert_eq!(e.dev, "!7efeb2c8");
        assert_eq!(
            (e.ts, e.ts_src),
            (now(), TsSrc::Gateway),
            "timestamp 0 is no time"
        );
        let Body::Status(st) = &e.body else { panic!() };
        assert_eq!((st.battery, st.voltage), (None, None));
    }

    #[test]
    fn battery_level_101_means_external_power() {
        let p = br#"{"from":1,"id":2,"type":"telemetry","payload":{"battery_level":101,"voltage":4.2}}"#;
        let Body::Status(st) = &decode("x", p, now()).unwrap().events[0].body else {
            panic!()
        };
        assert_eq!((st.battery, st.charging), (None, Some(true)));
        assert_eq!(st.extra["external_power"], true);
    }

    #[test]
    fn environment_metrics_map_temperature_and_pass_the_rest() {
        let p = br#"{"from":1,"id":2,"type":"telemetry","payload":{"temperature":21.5,"relative_humidity":40}}"#;
        let Body::Status(st) = &decode("x", p, now()).unwrap().events[0].body else {
            panic!()
        };
        assert_eq!(st.temperature, Some(21.5));
        assert_eq!(st.extra["relative_humidity"], 40);
    }

    #[test]
    fn text_message_addressing() {
        let e = &fixture()[4].events[0];
        let want = Message {
            text: "Engine 7 on scene, staging north lot".into(),
            to: None,
            msg_id: Some("1186871391".into()),
        };
        assert_eq!(e.body, Body::Message(want));
        let p = br#"{"from":1,"id":2,"to":-1,"type":"text","payload":{"text":"hi"}}"#;
        let Body::Message(m) = &decode("x", p, now()).unwrap().events[0].body else {
            panic!()
        };
        assert_eq!(m.to, None);
        let p = br#"{"from":1,"id":2,"to":3735928559,"type":"text","payload":{"text":"hi"}}"#;
        let Body::Message(m) = &decode("x", p, now()).unwrap().events[0].body else {
            panic!()
        };
        assert_eq!(m.to.as_deref(), Some("!deadbeef"));
    }

    #[test]
    fn text_that_was_json_is_kept_as_text() {
        let p = br#"{"from":1,"id":2,"type":"text","payload":{"a":[1,2]}}"#;
        let Body::Message(m) = &decode("x", p, now()).unwrap().events[0].body else {
            panic!()
        };
        assert_eq!(m.text, r#"{"a":[1,2]}"#);
        let p = br#"{"from":1,"id":2,"type":"text","payload":"quoted"}"#;
        let Body::Message(m) = &decode("x", p, now()).unwrap().events[0].body else {
            panic!()
        };
        assert_eq!(m.text, "quoted");
    }

    #[test]
    fn negative_from_is_two_complement() {
        let p = br#"{"from":-2,"id":7,"type":"nodeinfo"}"#;
        assert_eq!(
            decode("x", p, now()).unwrap().dedup_key.as_deref(),
            Some("mesh:fffffffe:7")
        );
    }

    #[test]
    fn bad_input_yields_each_error_kind() {
        let long = format!(
            r#"{{"from":1,"id":2,"type":"text","payload":{{"text":"{}"}}}}"#,
            "x".repeat(4097)
        );
        let cases: Vec<(&[u8], &str)> = vec![
            (b"\xff", "bad_utf8"),
            (b"{\"from\":", "not_json"),
            (b"\"str\"", "bad_field"),
            (br#"{"id":2}"#, "missing_field"),
            (br#"{"from":1}"#, "missing_field"),
            (br#"{"from":1.5,"id":2}"#, "bad_field"),
            (br#"{"from":4294967296,"id":2}"#, "bad_field"),
            (br#"{"from":1,"id":2,"type":"position"}"#, "missing_field"),
            (br#"{"from":1,"id":2,"type":"position","payload":{"latitude_i":1}}"#, "missing_field"),
            (br#"{"from":1,"id":2,"type":"position","payload":{"latitude_i":910000000,"longitude_i":1}}"#, "bad_position"),
            (br#"{"from":1,"id":2,"type":"telemetry","payload":{"voltage":"4"}}"#, "bad_field"),
            (br#"{"from":1,"id":2,"type":"text","payload":{"text":5}}"#, "bad_field"),
            (long.as_bytes(), "bad_field"),
        ];
        for (p, reason) in cases {
            let err = decode("x", p, now()).unwrap_err();
            assert_eq!(
                err.reason(),
                reason,
                "{}: {err}",
                String::from_utf8_lossy(p)
            );
        }
        let big = vec![b' '; read::MAX_PAYLOAD_BYTES + 1];
        assert_eq!(decode("x", &big, now()).unwrap_err().reason(), "too_large");
    }
}
