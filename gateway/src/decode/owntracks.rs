//! OwnTracks JSON (phones running the OwnTracks app over MQTT), per the booklet
//! <https://owntracks.org/booklet/tech/json/>.
//!
//! - `location` → a Location, plus a Status (battery, charging) when `batt`/`bs` is present,
//!   both at the report's `tst`.
//! - `transition` (geofence enter/leave) → a Status with `extra {"transition", "region"}` and,
//!   when the payload has `lat`/`lon`, a Location. Status, because crossing a region boundary is
//!   a state change of the device (not a human message, not an emergency); the Location because
//!   it is where the device was at that moment, with its own accuracy, which a dispatcher wants
//!   on the map next to "left Staging area".
//! - `lwt` → Presence offline. The broker publishes it when the phone's connection drops, so
//!   `last_seen` is the gateway's receive time: the payload's `tst` is when the app *connected*
//!   (booklet), not when it was last heard.
//! - every other `_type` (waypoint, card, cmd, status, steps, beacon, encrypted …) → no events.
//!
//! `tid` (the two-letter tracker id) is not carried: the device id comes from the topic.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::json::read::{self, check_position, device_or_gateway, plausible_secs};
use super::{DecodeError, Decoded};
use crate::event::{Body, Event, Location, Presence, PresenceState, Status, TsSrc};

/// Decode one OwnTracks MQTT payload published by device `dev`, received at `now`.
///
/// A missing `tst` or one before 2000 / more than a day ahead falls back to `now` with
/// `ts_src: gateway` rather than dropping a valid position.
pub fn decode(dev: &str, payload: &[u8], now: DateTime<Utc>) -> Result<Decoded, DecodeError> {
    let root = read::parse(payload)?;
    let obj = read::object(&root, "payload")?;
    let kind = read::str_at(obj.get("_type"), "_type")?
        .ok_or_else(|| DecodeError::Missing("_type".into()))?;
    let events = match kind {
        "location" => location(dev, obj, now)?,
        "transition" => transition(dev, obj, now)?,
        "lwt" => lwt(dev, obj, now)?,
        _ => Vec::new(),
    };
    Ok(Decoded {
        events,
        dedup_key: None,
    })
}

fn event(dev: &str, body: Body, (ts, ts_src): (DateTime<Utc>, TsSrc)) -> Event {
    Event {
        dev: dev.to_string(),
        body,
        ts,
        ts_src,
    }
}

fn report_time(
    obj: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, TsSrc), DecodeError> {
    let tst = read::f64_at(obj.get("tst"), "tst")?;
    Ok(device_or_gateway(
        tst.and_then(|t| plausible_secs(t, now)),
        now,
    ))
}

/// The fix fields shared by `location` and `transition`. iOS reports -1 for an unknown speed
/// or course (CoreLocation's convention), so negative values are treated as absent.
fn position(obj: &Map<String, Value>) -> Result<Location, DecodeError> {
    let lat = read::req_f64(obj.get("lat"), "lat")?;
    let lon = read::req_f64(obj.get("lon"), "lon")?;
    check_position(lat, lon)?;
    let non_negative = |x: Option<f64>| x.filter(|x| *x >= 0.0);
    Ok(Location {
        lat,
        lon,
        alt: read::f64_at(obj.get("alt"), "alt")?,
        acc: non_negative(read::f64_at(obj.get("acc"), "acc")?),
        // `vel` is km/h; SPEC §5 speed is m/s.
        speed: non_negative(read::f64_at(obj.get("vel"), "vel")?).map(|v| v / 3.6),
        course: non_negative(read::f64_at(obj.get("cog"), "cog")?),
        ..Default::default()
    })
}

fn location(
    dev: &str,
    obj: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, DecodeError> {
    let loc = position(obj)?;
    let when = report_time(obj, now)?;
    let battery = read::f64_at(obj.get("batt"), "batt")?;
    // bs: 0 unknown, 1 unplugged, 2 charging, 3 full (still on the charger).
    let charging = match read::u64_at(obj.get("bs"), "bs")? {
        None | Some(0) => None,
        Some(1) => Some(false),
        Some(2 | 3) => Some(true),
        Some(n) => {
            return Err(DecodeError::field(
                "bs",
                format!("unknown battery status {n}"),
            ))
        }
    };
    let status = Status {
        battery,
        charging,
        ..Default::default()
    };
    let mut events = vec![event(dev, Body::Location(loc), when)];
    if !status.is_empty() {
        events.push(event(dev, Body::Status(status), when));
    }
    Ok(events)
}

fn transition(
    dev: &str,
    obj: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, DecodeError> {
    let when = report_time(obj, now)?;
    let what = read::str_at(obj.get("event"), "event")?
        .ok_or_else(|| DecodeError::Missing("event".into()))?;
    if what != "enter" && what != "leave" {
        return Err(DecodeError::field(
            "event",
            format!("expected enter or leave, got {what:?}"),
        ));
    }
    let mut status = Status::default();
    status.extra.insert("transition".into(), what.into());
    if let Some(region) = read::str_at(obj.get("desc"), "desc")? {
        status.extra.insert("region".into(), region.into());
    }
    let mut events = vec![event(dev, Body::Status(status), when)];
    if obj.contains_key("lat") || obj.contains_key("lon") {
        events.push(event(dev, Body::Location(position(obj)?), when));
    }
    Ok(events)
}

fn lwt(dev: &str, obj: &Map<String, Value>, now: DateTime<Utc>) -> Result<Vec<Event>, DecodeError> {
    // Type-check `tst` even though it is not used, so a malformed will is reported as such.
    read::f64_at(obj.get("tst"), "tst")?;
    let body = Body::Presence(Presence {
        state: PresenceState::Offline,
        last_seen: now,
    });
    Ok(vec![event(dev, body, (now, TsSrc::Gateway))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testkit::{decode_fixture, now, secs};

    const FIXTURE: &str = include_str!("../../tests/fixtures/mqtt/owntracks.txt");

    fn fixture() -> Vec<Decoded> {
        decode_fixture(FIXTURE, |p| decode("phone", p, now()))
    }

    #[test]
    fn every_fixture_line_decodes_to_the_expected_classes() {
        let classes: Vec<Vec<&str>> = fixture()
            .iter()
            .map(|d| d.events.iter().map(|e| e.class().as_str()).collect())
            .collect();
        assert_eq!(
            classes,
            [
                vec!["location", "status"],
                vec!["location", "status"],
                vec!["location", "status"],
                vec!["status", "location"],
                vec!["presence"],
            ]
        );
    }

    #[test]
    fn location_converts_units_and_keeps_device_time() {
        let d = &fixture()[0];
        let loc = &d.events[0];
        assert_eq!(loc.ts, secs(1_440_405_601));
        assert_eq!(loc.ts_src, TsSrc::Device);
        assert_eq!(
            loc.body,
            Body::Location(Location {
                lat: 51.06263391678321,
                lon: 13.60279820860699,
                alt: Some(262.0),
                speed: Some(5.0),
                course: Some(82.0),
                acc: Some(10.0),
                ..Default::default()
            })
        );
        let Body::Status(st) = &d.events[1].body else {
            panic!()
        };
        assert_eq!((st.battery, st.charging), (Some(99.0), None));
        assert_eq!(d.events[1].ts, loc.ts);
    }

    #[test]
    fn battery_state_maps_to_charging() {
        let Body::Status(st) = &fixture()[1].events[1].body else {
            panic!()
        };
        assert_eq!((st.battery, st.charging), (Some(98.0), Some(false)));
        for (bs, charging) in [(0, None), (2, Some(true)), (3, Some(true))] {
            let p = format!(r#"{{"_type":"location","lat":1,"lon":2,"bs":{bs}}}"#);
            let d = decode("p", p.as_bytes(), now()).unwrap();
            let got = d.events.get(1).map(|e| match &e.body {
                Body::Status(s) => s.charging,
                _ => panic!(),
            });
            assert_eq!(got.flatten(), charging, "bs {bs}");
        }
    }

    #[test]
    fn transition_is_a_status_with_region_and_a_location() {
        let d = &fixture()[3];
        let Body::Status(st) = &d.events[0].body else {
            panic!()
        };
        assert_eq!(st.extra["transition"], "leave");
        assert_eq!(st.extra["region"], "Staging area");
        assert_eq!(d.events[0].ts, secs(1_497_476_460));
        let Body::Location(loc) = &d.events[1].body else {
            panic!()
        };
        assert_eq!((loc.lat, loc.lon, loc.acc), (48.85833, 2.29513, Some(17.0)));
    }

    #[test]
    fn lwt_is_presence_offline_at_gateway_time() {
        let e = &fixture()[4].events[0];
        assert_eq!(
            e.body,
            Body::Presence(Presence {
                state: PresenceState::Offline,
                last_seen: now()
            })
        );
        assert_eq!((e.ts, e.ts_src), (now(), TsSrc::Gateway));
    }

    #[test]
    fn other_types_carry_no_events() {
        for t in [
            "waypoint",
            "waypoints",
            "card",
            "cmd",
            "status",
            "steps",
            "beacon",
            "encrypted",
        ] {
            let p = format!(r#"{{"_type":"{t}","data":"x"}}"#);
            assert_eq!(
                decode("p", p.as_bytes(), now()),
                Ok(Decoded::default()),
                "{t}"
            );
        }
    }

    #[test]
    fn missing_or_absurd_tst_falls_back_to_gateway_time() {
        for p in [
            r#"{"_type":"location","lat":1,"lon":2}"#,
            r#"{"_type":"location","lat":1,"lon":2,"tst":0}"#,
            r#"{"_type":"location","lat":1,"lon":2,"tst":4102444800}"#,
        ] {
            let e = &decode("p", p.as_bytes(), now()).unwrap().events[0];
            assert_eq!((e.ts, e.ts_src), (now(), TsSrc::Gateway), "{p}");
        }
    }

    #[test]
    fn ios_minus_one_speed_and_course_are_absent() {
        let p = br#"{"_type":"location","lat":1,"lon":2,"vel":-1,"cog":-1}"#;
        let Body::Location(loc) = &decode("p", p, now()).unwrap().events[0].body else {
            panic!()
        };
        assert_eq!((loc.speed, loc.course), (None, None));
    }

    #[test]
    fn bad_input_yields_each_error_kind() {
        let cases: [(&[u8], &str); 10] = [
            (b"\xc3\x28", "bad_utf8"),
            (b"not json", "not_json"),
            (b"[1,2]", "bad_field"),
            (br#"{"lat":1}"#, "missing_field"),
            (br#"{"_type":5}"#, "bad_field"),
            (br#"{"_type":"location","lat":"1","lon":2}"#, "bad_field"),
            (br#"{"_type":"location","lon":2}"#, "missing_field"),
            (br#"{"_type":"location","lat":91,"lon":2}"#, "bad_position"),
            (
                br#"{"_type":"location","lat":1,"lon":2,"bs":7}"#,
                "bad_field",
            ),
            (br#"{"_type":"transition","event":"stay"}"#, "bad_field"),
        ];
        for (p, reason) in cases {
            let err = decode("p", p, now()).unwrap_err();
            assert_eq!(
                err.reason(),
                reason,
                "{}: {err}",
                String::from_utf8_lossy(p)
            );
        }
        let big = vec![b' '; read::MAX_PAYLOAD_BYTES + 1];
        assert_eq!(decode("p", &big, now()).unwrap_err().reason(), "too_large");
    }
}
