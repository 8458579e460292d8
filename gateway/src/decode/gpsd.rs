//! gpsd's JSON protocol (`gpsd` decoder, SPEC §4): one report object per line, typed by `class`.
//!
//! Only `TPV` (position) makes events; `SKY` contributes the satellites-used count and HDOP,
//! which gpsd reports separately, so [`GpsdDecoder`] keeps the latest `SKY` and merges it into
//! the following `TPV`s while it is fresh. Everything else (`VERSION`, `DEVICES`, `WATCH`, `GST`,
//! `ATT`, …) is acknowledged and ignored. Field meanings: gpsd_json(5).

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::DecodeError;
use crate::event::{valid_position, Body, Event, Fix, Location, TsSrc};

/// What to send after connecting to gpsd (TCP 2947) to get JSON reports streamed.
pub const WATCH: &str = "?WATCH={\"enable\":true,\"json\":true}\n";

/// A `SKY` older than this (gateway time) is not merged: satellites change within seconds and a
/// stale count is worse than none.
const SKY_MAX_AGE: Duration = Duration::seconds(5);

/// Just the type tag, so a report of a class we ignore cannot fail on its other fields.
#[derive(Deserialize)]
struct Head {
    class: String,
}

/// The `TPV` fields we use; gpsd omits a field it does not know rather than sending null.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tpv {
    #[serde(default)]
    mode: u8,
    status: Option<u8>,
    time: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    #[serde(rename = "altMSL")]
    alt_msl: Option<f64>,
    /// Deprecated since gpsd 3.20 in favour of `altMSL`; older daemons send only this.
    alt: Option<f64>,
    speed: Option<f64>,
    track: Option<f64>,
    eph: Option<f64>,
    epx: Option<f64>,
    epy: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sky {
    u_sat: Option<u32>,
    hdop: Option<f64>,
    /// gpsd < 3.20 has no `uSat`: count the `used` entries instead.
    #[serde(default)]
    satellites: Vec<SkySat>,
}

#[derive(Deserialize)]
struct SkySat {
    #[serde(default)]
    used: bool,
}

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

    /// Decode one report line. `Ok(None)`: a valid line that carries no new position (another
    /// class, no fix yet, a repeat). `now` is gateway time: `ts` when gpsd gives none, and the
    /// clock for `SKY` freshness.
    pub fn push_line(
        &mut self,
        dev: &str,
        line: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Event>, DecodeError> {
        let line = line.trim();
        let head: Head =
            serde_json::from_str(line).map_err(|e| DecodeError::NotJson(e.to_string()))?;
        match head.class.as_str() {
            "TPV" => {
                let tpv: Tpv = from_line(line)?;
                self.tpv(dev, tpv, now)
            }
            "SKY" => {
                let sky: Sky = from_line(line)?;
                let used = sky.satellites.iter().filter(|s| s.used).count();
                let counted = (!sky.satellites.is_empty()).then_some(used);
                let sats = sky
                    .u_sat
                    .or_else(|| counted.and_then(|n| u32::try_from(n).ok()));
                self.sky = Some(SkyState {
                    sats,
                    hdop: sky.hdop,
                    at: now,
                });
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn tpv(
        &mut self,
        dev: &str,
        tpv: Tpv,
        now: DateTime<Utc>,
    ) -> Result<Option<Event>, DecodeError> {
        if tpv.mode < 2 {
            // No fix: the receiver is there but knows nothing; a later fix has new satellites.
            self.sky = None;
            return Ok(None);
        }
        let fix = fix_of(tpv.mode, tpv.status)?;
        let lat = tpv.lat.ok_or_else(|| DecodeError::Missing("lat".into()))?;
        let lon = tpv.lon.ok_or_else(|| DecodeError::Missing("lon".into()))?;
        if !valid_position(lat, lon) {
            return Err(DecodeError::BadPosition { lat, lon });
        }
        let (ts, ts_src) = match &tpv.time {
            Some(t) => (parse_time(t)?, TsSrc::Gps),
            None => (now, TsSrc::Gateway),
        };
        let acc = tpv.eph.or_else(|| Some(tpv.epx?.hypot(tpv.epy?)));
        let loc = Location {
            lat,
            lon,
            alt: tpv.alt_msl.or(tpv.alt),
            speed: tpv.speed,
            course: tpv.track,
            acc,
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

fn from_line<'a, T: Deserialize<'a>>(line: &'a str) -> Result<T, DecodeError> {
    serde_json::from_str(line).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// `mode` 2/3 qualified by `status` (gpsd_json(5): 0 unknown, 1 normal, 2 DGPS, 3 RTK fixed,
/// 4 RTK float, 5 dead reckoning, 6 GNSS + DR, 7 time/surveyed, 8 simulated, 9 P(Y)).
fn fix_of(mode: u8, status: Option<u8>) -> Result<Fix, DecodeError> {
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
mod tests {
    use super::*;
    use chrono::TimeZone;

    const REPORTS: &str = include_str!("../../tests/fixtures/serial/gpsd-reports.jsonl");

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap()
    }

    fn loc(e: &Event) -> &Location {
        match &e.body {
            Body::Location(l) => l,
            other => panic!("not a location: {other:?}"),
        }
    }

    /// Every fixture line through one decoder, in order.
    fn decode_fixture() -> Vec<Result<Option<Event>, DecodeError>> {
        let mut d = GpsdDecoder::new();
        REPORTS
            .lines()
            .map(|l| d.push_line("gps0", l, now()))
            .collect()
    }

    #[test]
    fn tpv_2d_then_3d_then_repeat() {
        let out = decode_fixture();
        let first = out[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(
            first.to_json(),
            r#"{"dev":"gps0","class":"location","lat":-45.877567167,"lon":170.500111333,"speed":0.013,"fix":"2d","ts":"2019-04-12T00:39:56.000Z","ts_src":"gps"}"#
        );
        let second = out[1].as_ref().unwrap().as_ref().unwrap();
        let l = loc(second);
        assert_eq!(
            (l.alt, l.acc, l.fix),
            (Some(14.2), Some(12.16), Some(Fix::ThreeD))
        );
        assert_eq!(out[2], Ok(None), "unchanged TPV is not a new position");
        assert_eq!(out[3], Ok(None), "SKY yields no event");
    }

    #[test]
    fn sky_is_merged_into_the_next_tpv_and_status_sets_the_fix() {
        let out = decode_fixture();
        let dgps = out[4].as_ref().unwrap().as_ref().unwrap();
        let l = loc(dgps);
        assert_eq!(
            (l.sats, l.hdop, l.fix),
            (Some(12), Some(0.64), Some(Fix::Dgps))
        );
        assert_eq!(dgps.ts_src, TsSrc::Gateway, "TPV without time");
        let rtk = out[5].as_ref().unwrap().as_ref().unwrap();
        assert_eq!((loc(rtk).fix, loc(rtk).course), (Some(Fix::Rtk), Some(0.0)));
        assert_eq!(out[6], Ok(None), "mode 1: no fix");
        let float = out[7].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(
            (loc(float).fix, loc(float).sats),
            (Some(Fix::RtkFloat), None),
            "SKY dropped at fix loss"
        );
        assert_eq!(
            out[8].as_ref().unwrap_err().reason(),
            "unsupported",
            "simulated"
        );
        assert_eq!(
            loc(out[9].as_ref().unwrap().as_ref().unwrap()).acc,
            Some(10.59)
        );
        assert_eq!(out[10], Ok(None), "GST ignored");
        assert_eq!(out.len(), 11);
    }

    #[test]
    fn stale_sky_is_not_merged_and_old_sky_counts_used_satellites() {
        let mut d = GpsdDecoder::new();
        let sky = r#"{"class":"SKY","satellites":[{"PRN":5,"used":true},{"PRN":7,"used":false},{"PRN":9,"used":true}]}"#;
        let tpv = r#"{"class":"TPV","mode":3,"lat":1.0,"lon":2.0,"epx":3.0,"epy":4.0}"#;
        assert_eq!(d.push_line("g", sky, now()), Ok(None));
        let e = d.push_line("g", tpv, now()).unwrap().unwrap();
        assert_eq!((loc(&e).sats, loc(&e).acc), (Some(2), Some(5.0)));
        let later = now() + Duration::seconds(6);
        let tpv2 = r#"{"class":"TPV","mode":3,"lat":1.5,"lon":2.0,"altMSL":7,"alt":9}"#;
        let e = d.push_line("g", tpv2, later).unwrap().unwrap();
        assert_eq!((loc(&e).sats, loc(&e).alt, e.ts), (None, Some(7.0), later));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_lines_never_panic(
            line in r#"\{"class":"(TPV|SKY)"(,"[a-zA-Z]{1,6}":(-?[0-9]{1,4}(\.[0-9]{1,3})?|"[^"]{0,8}"|\[\]|null))*\}|.{0,60}"#,
        ) {
            let _ = GpsdDecoder::new().push_line("g", &line, now());
        }
    }

    #[test]
    fn control_reports_are_ignored_and_bad_input_is_typed() {
        let mut d = GpsdDecoder::new();
        for ok in [
            r#"{"class":"VERSION","release":"3.25","rev":"3.25","proto_major":3,"proto_minor":15}"#,
            r#"{"class":"DEVICES","devices":[{"class":"DEVICE","path":"/dev/ttyACM0"}]}"#,
            r#"{"class":"WATCH","enable":true,"json":true}"#,
            r#"{"class":"TPV","mode":1}"#,
        ] {
            assert_eq!(d.push_line("g", ok, now()), Ok(None), "{ok}");
        }
        let reason = |l: &str| {
            GpsdDecoder::new()
                .push_line("g", l, now())
                .unwrap_err()
                .reason()
        };
        assert_eq!(reason("not json"), "not_json");
        assert_eq!(reason(r#"{"mode":3}"#), "not_json");
        assert_eq!(
            reason(r#"{"class":"TPV","mode":3,"lat":"x","lon":1}"#),
            "malformed"
        );
        assert_eq!(
            reason(r#"{"class":"TPV","mode":3,"lon":1}"#),
            "missing_field"
        );
        assert_eq!(
            reason(r#"{"class":"TPV","mode":3,"lat":91,"lon":1}"#),
            "bad_position"
        );
        assert_eq!(
            reason(r#"{"class":"TPV","mode":2,"lat":1,"lon":1,"time":"yesterday"}"#),
            "bad_field"
        );
        assert_eq!(
            reason(r#"{"class":"TPV","mode":300,"lat":1,"lon":1}"#),
            "malformed"
        );
        assert!(WATCH.starts_with("?WATCH=") && WATCH.ends_with('\n'));
    }
}
