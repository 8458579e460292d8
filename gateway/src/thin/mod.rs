//! Thinning the oldest location history under buffer pressure (SPEC §6), sans-I/O.
//!
//! Per device, keep the fixes that mark a stop, a start, a turn (course change of more than
//! `turn_deg`) or a long gap, plus whatever keeps the thinned track within `tolerance_m` of
//! the original; drop the in-between fixes. The geometric part is the "opening window"
//! line simplification: from the last kept fix, extend a segment fix by fix while every fix
//! in between stays within tolerance of it; when one would not, the previous fix is kept.

use crate::policy::haversine_m;
use std::collections::HashMap;

/// One location entry as the thinner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    pub id: String,
    pub dev: String,
    pub lat: f64,
    pub lon: f64,
    /// ms since the epoch (event time)
    pub t_ms: i64,
    pub speed: Option<f64>,
    pub course: Option<f64>,
}

/// Thinning thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Max distance of a dropped fix from the thinned track.
    pub tolerance_m: f64,
    /// A course change beyond this is a turn (always kept).
    pub turn_deg: f64,
    /// A gap longer than this between fixes is kept on both sides.
    pub gap_ms: i64,
    /// Longest run of fixes one segment may replace (bounds the work per fix).
    pub max_window: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            tolerance_m: 20.0,
            turn_deg: 30.0,
            gap_ms: 5 * 60 * 1000,
            max_window: 200,
        }
    }
}

const MOVING: f64 = 0.5;

/// Ids of the fixes to drop. `fixes` are in outbox order (all devices interleaved); the first
/// and last fix of each device are always kept.
pub fn thin(fixes: &[Fix], p: &Params) -> Vec<String> {
    let mut by_dev: HashMap<&str, Vec<&Fix>> = HashMap::new();
    for f in fixes {
        by_dev.entry(f.dev.as_str()).or_default().push(f);
    }
    let mut drop = Vec::new();
    for track in by_dev.values() {
        let keep = keep_mask(track, p);
        drop.extend(
            track
                .iter()
                .zip(keep)
                .filter(|(_, k)| !k)
                .map(|(f, _)| f.id.clone()),
        );
    }
    drop
}

/// Which fixes of one device's track to keep.
fn keep_mask(track: &[&Fix], p: &Params) -> Vec<bool> {
    let n = track.len();
    let mut keep = vec![false; n];
    if n == 0 {
        return keep;
    }
    keep[0] = true;
    keep[n - 1] = true;
    // Significant fixes: starts, stops, turns, gaps.
    for i in 1..n {
        let (a, b) = (track[i - 1], track[i]);
        let moving = |f: &Fix| f.speed.is_some_and(|s| s >= MOVING);
        if a.speed.is_some() && b.speed.is_some() && moving(a) != moving(b) {
            keep[i - 1] = true;
            keep[i] = true;
        }
        if b.t_ms - a.t_ms > p.gap_ms {
            keep[i - 1] = true;
            keep[i] = true;
        }
    }
    let mut last_course: Option<f64> = None;
    for (i, f) in track.iter().enumerate() {
        if let Some(c) = f.course.filter(|_| f.speed.is_none_or(|s| s >= MOVING)) {
            if let Some(lc) = last_course {
                if angle_diff(lc, c) > p.turn_deg {
                    // Both sides of the corner.
                    keep[i] = true;
                    keep[i.saturating_sub(1)] = true;
                    last_course = Some(c);
                }
            } else {
                last_course = Some(c);
            }
        }
        if keep[i] {
            if let Some(c) = f.course {
                last_course = Some(c);
            }
        }
    }
    // Geometry: opening window. A window [anchor, anchor + 1] has nothing between its ends, so
    // it always fits; when a wider one does not, its last fitting end is kept and becomes the
    // new anchor. Every dropped fix thus lies within tolerance of the segment joining the two
    // kept fixes around it.
    let mut anchor = 0;
    let mut i = 1;
    while i < n {
        if i - anchor > p.max_window.max(1) || !fits(track, anchor, i, p.tolerance_m) {
            keep[i - 1] = true;
            anchor = i - 1;
            continue;
        }
        if keep[i] {
            anchor = i;
        }
        i += 1;
    }
    keep
}

/// True when every fix strictly between `a` and `b` is within `tol` metres of segment a→b.
fn fits(track: &[&Fix], a: usize, b: usize, tol: f64) -> bool {
    (a + 1..b).all(|k| seg_dist_m(track[k], track[a], track[b]) <= tol)
}

/// Distance (m) from `p` to segment a→b, on a local equirectangular plane (fine at these
/// scales: segments of at most a few km).
pub fn seg_dist_m(p: &Fix, a: &Fix, b: &Fix) -> f64 {
    let k = (a.lat.to_radians()).cos();
    let (ax, ay) = (0.0, 0.0);
    let bx = (b.lon - a.lon) * k;
    let by = b.lat - a.lat;
    let px = (p.lon - a.lon) * k;
    let py = p.lat - a.lat;
    let len2 = bx * bx + by * by;
    let t = if len2 == 0.0 {
        0.0
    } else {
        ((px - ax) * bx + (py - ay) * by) / len2
    };
    let t = t.clamp(0.0, 1.0);
    let (cx, cy) = (ax + t * bx, ay + t * by);
    // Back to degrees of latitude/longitude for the great-circle distance.
    haversine_m(p.lat, p.lon, a.lat + cy, a.lon + cx / k.max(1e-9))
}

fn angle_diff(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

#[cfg(test)]
mod tests;
