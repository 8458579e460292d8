//! Reporting policy: which fixes of a device become location events, as vehicle trackers do it.
//!
//! A GNSS receiver gives a fix every second; the hub needs the track, not 86,400 copies of a
//! parked van. [`PolicyState::admit`] keeps a fix when
//! 1. it is the device's first, or the device starts or stops (speed crossing ~0.5 m/s), or it
//!    turned by `min_turn_deg` since the last kept fix — always, even inside `min_interval`,
//!    because a track without its corners or its stops is wrong, not just coarse;
//! 2. otherwise never sooner than `min_interval` after the last kept fix;
//! 3. and then when `max_interval` has passed (a heartbeat that says "still here"), or when it
//!    is `min_distance_m` or more from the last kept fix.
//!
//! The default policy (everything zero) keeps every fix. Sans-I/O: time comes from the fix,
//! not the clock, so a replayed log behaves like the live feed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::event::Location;

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A device is moving from this speed up (m/s, ~1.8 km/h).
const START_SPEED: f64 = 0.5;
/// …and stopped below this one. The gap is hysteresis: a parked receiver's speed jitters by a
/// few tenths of a m/s, and without it every jitter would be a "start" and a "stop".
const STOP_SPEED: f64 = 0.3;

/// The reporting policy of a device profile (`[policy]`); all zero = report every fix.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportPolicy {
    /// Never two fixes closer in time than this (turns, starts and stops excepted).
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Keep a fix at least this often, moving or not; zero: no heartbeat.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    /// Keep a fix once the device is this far from the last kept one; zero: any distance.
    pub min_distance_m: f64,
    /// Keep a fix when the course changed this much since the last kept one; zero: off.
    pub min_turn_deg: f64,
}

impl ReportPolicy {
    /// Every problem with the policy, as `field: message`; empty when it is usable.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if !self.max_interval.is_zero() && self.min_interval > self.max_interval {
            errs.push("min_interval: longer than max_interval".to_string());
        }
        if !(self.min_distance_m.is_finite() && self.min_distance_m >= 0.0) {
            errs.push("min_distance_m: must be a distance ≥ 0".to_string());
        }
        if !(0.0..=180.0).contains(&self.min_turn_deg) {
            errs.push("min_turn_deg: must be between 0 and 180".to_string());
        }
        errs
    }
}

/// The last kept fix of a device.
#[derive(Clone, Copy, Debug)]
struct Kept {
    ts: DateTime<Utc>,
    lat: f64,
    lon: f64,
    course: Option<f64>,
}

/// Per-device state of a [`ReportPolicy`].
#[derive(Clone, Debug)]
pub struct PolicyState {
    policy: ReportPolicy,
    kept: Option<Kept>,
    /// Whether the device was moving at the last fix seen (kept or not); `None` before any
    /// fix with a speed.
    moving: Option<bool>,
}

impl PolicyState {
    /// Fresh state for one device.
    pub fn new(policy: ReportPolicy) -> Self {
        PolicyState {
            policy,
            kept: None,
            moving: None,
        }
    }

    /// Whether the fix `loc` at `ts` is to be reported; updates the state either way.
    pub fn admit(&mut self, loc: &Location, ts: DateTime<Utc>) -> bool {
        let moving = self.update_motion(loc.speed);
        let keep = self.decide(loc, ts, moving);
        if keep {
            self.kept = Some(Kept {
                ts,
                lat: loc.lat,
                lon: loc.lon,
                course: loc.course,
            });
        }
        keep
    }

    /// Updates the moving/stopped state; returns `(now moving, changed)`.
    fn update_motion(&mut self, speed: Option<f64>) -> (Option<bool>, bool) {
        let Some(v) = speed else {
            return (self.moving, false);
        };
        let now = match self.moving {
            Some(true) => v >= STOP_SPEED,
            Some(false) | None => v >= START_SPEED,
        };
        let changed = self.moving.is_some_and(|was| was != now);
        self.moving = Some(now);
        (Some(now), changed)
    }

    fn decide(&self, loc: &Location, ts: DateTime<Utc>, moving: (Option<bool>, bool)) -> bool {
        let p = &self.policy;
        let Some(kept) = self.kept else {
            return true;
        };
        // Time going backwards (receiver reset, replayed log): start over from this fix.
        let Ok(elapsed) = (ts - kept.ts).to_std() else {
            return true;
        };
        let (is_moving, started_or_stopped) = moving;
        if started_or_stopped {
            return true;
        }
        if p.min_turn_deg > 0.0 && is_moving != Some(false) {
            if let (Some(a), Some(b)) = (kept.course, loc.course) {
                if angle_between(a, b) >= p.min_turn_deg {
                    return true;
                }
            }
        }
        if elapsed < p.min_interval {
            return false;
        }
        if !p.max_interval.is_zero() && elapsed >= p.max_interval {
            return true;
        }
        haversine_m(kept.lat, kept.lon, loc.lat, loc.lon) >= p.min_distance_m
    }
}

/// Smallest angle between two courses, degrees (0–180).
fn angle_between(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

/// Great-circle distance between two WGS84 points in metres (haversine on a sphere of the
/// mean Earth radius: within 0.5% of the ellipsoid, plenty for "has it moved 50 m").
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn at(s: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(s)
    }

    fn fix(lat: f64, lon: f64, speed: f64, course: f64) -> Location {
        Location {
            lat,
            lon,
            speed: Some(speed),
            course: Some(course),
            ..Default::default()
        }
    }

    fn tracker() -> ReportPolicy {
        ReportPolicy {
            min_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(300),
            min_distance_m: 50.0,
            min_turn_deg: 30.0,
        }
    }

    /// Deterministic jitter in [-1, 1) without a RNG dependency in the test.
    fn jitter(i: i64, salt: i64) -> f64 {
        let x = (i * 7919 + salt * 104_729).rem_euclid(2000) as f64;
        x / 1000.0 - 1.0
    }

    #[test]
    fn default_policy_reports_every_fix() {
        let mut st = PolicyState::new(ReportPolicy::default());
        let l = fix(48.0, 11.0, 0.0, 0.0);
        assert!((0..100).all(|i| st.admit(&l, at(i))));
    }

    #[test]
    fn parked_vehicle_reports_only_its_heartbeat() {
        let p = tracker();
        let max = p.max_interval.as_secs() as i64;
        let mut st = PolicyState::new(p);
        let mut kept = 0;
        for i in 0..86_400 {
            // A parked receiver: ±3 m of position noise, speed noise below 0.3 m/s, course
            // all over the place.
            let l = fix(
                48.0 + jitter(i, 1) * 3e-5,
                11.0 + jitter(i, 2) * 4e-5,
                (jitter(i, 3) + 1.0) * 0.14,
                (jitter(i, 4) + 1.0) * 180.0,
            );
            kept += usize::from(st.admit(&l, at(i)));
        }
        assert_eq!(kept as i64, 86_400 / max, "one fix per max_interval");
    }

    #[test]
    fn moving_vehicle_reports_by_distance_not_more_often_than_min_interval() {
        let mut st = PolicyState::new(tracker());
        // 20 m/s due north: 50 m every 2.5 s, but min_interval is 5 s.
        let kept: Vec<i64> = (0..60)
            .filter(|&i| {
                let l = fix(48.0 + i as f64 * 20.0 / 111_195.0, 11.0, 20.0, 0.0);
                st.admit(&l, at(i))
            })
            .collect();
        assert_eq!(kept[..4], [0, 5, 10, 15]);
        assert_eq!(kept.len(), 12);
    }

    #[test]
    fn a_turn_is_reported_even_inside_min_interval() {
        let mut st = PolicyState::new(tracker());
        assert!(st.admit(&fix(48.0, 11.0, 10.0, 0.0), at(0)));
        assert!(!st.admit(&fix(48.0001, 11.0, 10.0, 10.0), at(1)));
        assert!(
            st.admit(&fix(48.0002, 11.0, 10.0, 45.0), at(2)),
            "45° since last kept"
        );
        // Course wraps: 350° → 20° is a 30° turn.
        let mut st = PolicyState::new(tracker());
        assert!(st.admit(&fix(48.0, 11.0, 10.0, 350.0), at(0)));
        assert!(st.admit(&fix(48.0, 11.0, 10.0, 20.0), at(1)));
    }

    #[test]
    fn starts_and_stops_are_always_reported() {
        let mut st = PolicyState::new(tracker());
        assert!(st.admit(&fix(48.0, 11.0, 0.0, 0.0), at(0)));
        assert!(!st.admit(&fix(48.0, 11.0, 0.2, 0.0), at(1)));
        assert!(st.admit(&fix(48.0, 11.0, 0.8, 0.0), at(2)), "start");
        assert!(
            !st.admit(&fix(48.0, 11.0, 0.4, 0.0), at(3)),
            "hysteresis: still moving"
        );
        assert!(st.admit(&fix(48.0, 11.0, 0.1, 0.0), at(4)), "stop");
    }

    #[test]
    fn time_going_backwards_restarts() {
        let mut st = PolicyState::new(tracker());
        assert!(st.admit(&fix(48.0, 11.0, 0.0, 0.0), at(100)));
        assert!(st.admit(&fix(48.0, 11.0, 0.0, 0.0), at(50)));
        assert!(!st.admit(&fix(48.0, 11.0, 0.0, 0.0), at(51)));
    }

    #[test]
    fn haversine_matches_known_distances() {
        let one_degree = haversine_m(0.0, 0.0, 1.0, 0.0);
        assert!((one_degree - 111_195.08).abs() < 0.1, "{one_degree}");
        // Paris – London, about 343.5 km.
        let d = haversine_m(48.8566, 2.3522, 51.5074, -0.1278);
        assert!((d - 343_500.0).abs() < 1_500.0, "{d}");
        assert_eq!(haversine_m(10.0, 20.0, 10.0, 20.0), 0.0);
        assert!(
            (haversine_m(0.0, 0.0, 0.0, 180.0) - std::f64::consts::PI * EARTH_RADIUS_M).abs()
                < 1e-6
        );
    }

    #[test]
    fn policy_reads_human_durations_and_rejects_unknown_keys() {
        let p: ReportPolicy = toml::from_str(
            "min_interval = \"5s\"\nmax_interval = \"10m\"\nmin_distance_m = 50\nmin_turn_deg = 30",
        )
        .unwrap();
        assert_eq!(p.min_interval, Duration::from_secs(5));
        assert_eq!(p.max_interval, Duration::from_secs(600));
        assert!(p.validate().is_empty());
        assert_eq!(
            toml::from_str::<ReportPolicy>("").unwrap(),
            ReportPolicy::default()
        );
        assert!(toml::from_str::<ReportPolicy>("min_distance = 5").is_err());
        let bad = ReportPolicy {
            min_interval: Duration::from_secs(60),
            max_interval: Duration::from_secs(10),
            min_distance_m: -1.0,
            min_turn_deg: 200.0,
        };
        assert_eq!(bad.validate().len(), 3);
    }
}
