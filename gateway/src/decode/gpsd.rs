//! gpsd's JSON protocol (`gpsd` decoder, SPEC §4): report objects typed by `class`, normally one
//! a line, though a line may hold several back to back (gpsd flushes its buffer that way under
//! load, and `gpspipe -w` captures keep them).
//!
//! Only `TPV` (position) makes events; `SKY` contributes the satellites-used count and HDOP,
//! which gpsd reports separately, so [`GpsdDecoder`] keeps the latest `SKY` and merges it into
//! the following `TPV`s while it is fresh. `VERSION` is checked for a JSON protocol (any
//! `proto_major` ≥ 3; gpsd 3.27 reports 16). Every other class (`DEVICES`, `WATCH`, `GST`,
//! `ATT`, classes of newer gpsd …) is acknowledged and ignored. Field meanings: gpsd_json(5).
//!
//! Per the malformed-field rule (docs/device-profiles.md) a malformed optional field (`speed`,
//! `eph`, `uSat` …) is dropped and counted; a malformed `lat`/`lon`/`time`/`mode` refuses the
//! report.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use super::json::read;
use super::{DecodeError, Decoded, Drops};
use crate::event::{valid_position, Body, Event, Fix, Location, TsSrc};

/// What to send after connecting to gpsd (TCP 2947) to get JSON reports streamed.
pub const WATCH: &str = "?WATCH={\"enable\":true,\"json\":true}\n";

/// A `SKY` older than this (gateway time) is not merged: satellites change within seconds and a
/// stale count is worse than none.
const SKY_MAX_AGE: Duration = Duration::seconds(5);
/// The first JSON protocol version (gpsd 2.x spoke a line protocol of its own).
const MIN_PROTO_MAJOR: f64 = 3.0;
/// Reports read from one line at most; more is not gpsd.
const MAX_OBJECTS_PER_LINE: usize = 64;

/// The latest `SKY`, with the gateway time it arrived.
#[derive(Clone, Copy, Debug)]
struct SkyState {
    sats: Option<u32>,
    hdop: Option<f64>,
    at: DateTime<Utc>,
}

/// Per-connection decoder state: the latest `SKY` and the last `TPV` turned into an event.
#[derive(Debug, Default)]
pub struct GpsdDecoder {
    sky: Option<SkyState>,
    /// gpsd re-sends an unchanged `TPV` for every sentence of an epoch (in the regression
    /// captures, for each `GSA`); an identical one is not a new position.
    last: Option<(DateTime<Utc>, Location)>,
}

impl GpsdDecoder {
    /// A decoder for a fresh connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decode one line: one result per report object on it, in order. A result with no events
    /// is a valid report that carries no new position (another class, no fix yet, a repeat).
    /// `now` is gateway time: `ts` when gpsd gives none, and the clock for `SKY` freshness.
    /// Objects after one that is not JSON are not reached (the error ends the line).
    pub fn push_line(
        &mut self,
        dev: &str,
        line: &str,
        now: DateTime<Utc>,
    ) -> Vec<Result<Decoded, DecodeError>> {
        let mut out = Vec::new();
        let mut objects = serde_json::Deserializer::from_str(line.trim()).into_iter::<Value>();
        loop {
            if out.len() == MAX_OBJECTS_PER_LINE {
                out.push(Err(DecodeError::Malformed(format!(
                    "more than {MAX_OBJECTS_PER_LINE} reports on one line"
                ))));
                break;
            }
            match objects.next() {
                None => break,
                Some(Ok(v)) => out.push(self.report(dev, &v, now)),
                Some(Err(e)) => {
                    out.push(Err(DecodeError::NotJson(e.to_string())));
                    break;
                }
            }
        }
        if out.is_empty() {
            out.push(Err(DecodeError::NotJson("empty line".into())));
        }
        out
    }

    fn report(&mut self, dev: &str, v: &Value, now: DateTime<Utc>) -> Result<Decoded, DecodeError> {
        let obj = read::object(v, "report")?;
        let class = read::str_at(obj.get("class"), "class")?
            .ok_or_else(|| DecodeError::Missing("class".into()))?;
        let mut drops = Drops::default();
        let event = match class {
            "TPV" => self.tpv(dev, obj, now, &mut drops)?,
            "SKY" => {
                self.sky(obj, now, &mut drops);
                None
            }
            "VERSION" => {
                version(obj, &mut drops)?;
                None
            }
            _ => None,
        };
        Ok(Decoded {
            events: event.into_iter().collect(),
            dropped: drops.0,
            ..Default::default()
        })
    }

    fn sky(&mut self, obj: &Map<String, Value>, now: DateTime<Utc>, drops: &mut Drops) {
        let u_sat = drops.keep(read::u64_at(obj.get("uSat"), "uSat"));
        // gpsd < 3.20 has no `uSat`: count the `used` entries instead.
        let counted = match obj.get("satellites") {
            Some(Value::Array(sats)) if !sats.is_empty() => Some(
                sats.iter()
                    .filter(|s| s.get("used").and_then(Value::as_bool) == Some(true))
                    .count() as u64,
            ),
            None | Some(Value::Null) | Some(Value::Array(_)) => None,
            Some(_) => {
                drops.field("satellites", "expected an array");
                None
            }
        };
        self.sky = Some(SkyState {
            sats: u_sat
                .or(counted)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            hdop: drops.keep(read::f64_at(obj.get("hdop"), "hdop")),
            at: now,
        });
    }

    fn tpv(
        &mut self,
        dev: &str,
        obj: &Map<String, Value>,
        now: DateTime<Utc>,
        drops: &mut Drops,
    ) -> Result<Option<Event>, DecodeError> {
        let mode = match read::u64_at(obj.get("mode"), "mode")? {
            None => 0,
            Some(m @ 0..=3) => m,
            Some(m) => return Err(DecodeError::Malformed(format!("TPV mode {m}"))),
        };
        if mode < 2 {
            // No fix: the receiver is there but knows nothing; a later fix has new satellites.
            self.sky = None;
            return Ok(None);
        }
        let status = drops.keep(read::u64_at(obj.get("status"), "status"));
        let fix = fix_of(mode, status)?;
        let lat = read::req_f64(obj.get("lat"), "lat")?;
        let lon = read::req_f64(obj.get("lon"), "lon")?;
        if !valid_position(lat, lon) {
            return Err(DecodeError::BadPosition { lat, lon });
        }
        let (ts, ts_src) = match read::str_at(obj.get("time"), "time")? {
            Some(t) => (parse_time(t)?, TsSrc::Gps),
            None => (now, TsSrc::Gateway),
        };
        let mut num = |name: &str| drops.keep(read::f64_at(obj.get(name), name));
        let (eph, epx, epy) = (num("eph"), num("epx"), num("epy"));
        // `alt` is deprecated since gpsd 3.20 in favour of `altMSL`; older daemons send only it.
        let (alt_msl, alt) = (num("altMSL"), num("alt"));
        let loc = Location {
            lat,
            lon,
            alt: alt_msl.or(alt),
            speed: num("speed"),
            course: num("track"),
            acc: eph.or_else(|| Some(epx?.hypot(epy?))),
            fix: Some(fix),
            ..Location::default()
        };
        if self.last.as_ref() == Some(&(ts, loc.clone())) {
            return Ok(None);
        }
        self.last = Some((ts, loc.clone()));
        let mut loc = loc;
        if let Some(sky) = self
            .sky
            .filter(|s| now.signed_duration_since(s.at) <= SKY_MAX_AGE)
        {
            loc.sats = sky.sats;
            loc.hdop = sky.hdop;
        }
        Ok(Some(Event {
            dev: dev.to_string(),
            body: Body::Location(loc),
            ts,
            ts_src,
        }))
    }
}

/// A `VERSION` report: gpsd speaks JSON from protocol 3 on, and later majors (gpsd 3.27 says
/// 16) only add fields, so any major ≥ 3 is accepted.
fn version(obj: &Map<String, Value>, drops: &mut Drops) -> Result<(), DecodeError> {
    match drops.keep(read::f64_at(obj.get("proto_major"), "proto_major")) {
        Some(m) if m < MIN_PROTO_MAJOR => Err(DecodeError::Unsupported(format!(
            "gpsd protocol {m} (JSON needs 3 or later)"
        ))),
        _ => Ok(()),
    }
}

/// `mode` 2/3 qualified by `status` (gpsd_json(5): 0 unknown, 1 normal, 2 DGPS, 3 RTK fixed,
/// 4 RTK float, 5 dead reckoning, 6 GNSS + DR, 7 time/surveyed, 8 simulated, 9 P(Y)).
fn fix_of(mode: u64, status: Option<u64>) -> Result<Fix, DecodeError> {
    Ok(match status {
        Some(2) => Fix::Dgps,
        Some(3) => Fix::Rtk,
        Some(4) => Fix::RtkFloat,
        Some(5) => Fix::Est,
        // A receiver in simulator mode invents positions: never forward them as real.
        Some(8) => {
            return Err(DecodeError::Unsupported(
                "simulated fix (TPV status 8)".into(),
            ))
        }
        _ if mode >= 3 => Fix::ThreeD,
        _ => Fix::TwoD,
    })
}

fn parse_time(t: &str) -> Result<DateTime<Utc>, DecodeError> {
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| DecodeError::field("time", e.to_string()))
}

#[cfg(test)]
mod tests;
