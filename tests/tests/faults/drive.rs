//! A generated drive for the thinning test: straight legs, turns of 45–120°, curves and stops,
//! one fix a second with a little GPS noise; and the distance from a fix to a track.

use outpost_system_tests::Rng;

/// One fix of a drive.
#[derive(Clone, Copy, Debug)]
pub struct Fix {
    pub lat: f64,
    pub lon: f64,
    /// m/s
    pub speed: f64,
    /// degrees true
    pub course: f64,
}

/// (initial course or `None` to keep the current one, turn rate deg/s, seconds, speed m/s).
const LEGS: [(Option<f64>, f64, u32, f64); 10] = [
    (Some(0.0), 0.0, 90, 14.0),
    (None, 0.0, 30, 0.0), // stop
    (Some(90.0), 0.0, 100, 12.0),
    (None, 3.0, 40, 10.0), // curve to 210°
    (None, 0.0, 80, 13.0),
    (Some(255.0), 0.0, 60, 13.0), // 45° turn
    (None, 0.0, 40, 0.0),         // stop
    (Some(330.0), 0.0, 120, 15.0),
    (None, -2.0, 45, 11.0), // curve to 240°
    (None, 0.0, 95, 14.0),
];

const M_PER_DEG: f64 = 111_320.0;

/// The drive of vehicle `k` (700 fixes), starting at a point of its own.
pub fn drive(k: u64, rng: &mut Rng) -> Vec<Fix> {
    let (mut lat, mut lon) = (52.40 + 0.02 * k as f64, 13.30 + 0.01 * k as f64);
    let mut course = 0.0_f64;
    let mut out = Vec::new();
    for (start, rate, secs, speed) in LEGS {
        if let Some(c) = start {
            course = c;
        }
        for _ in 0..secs {
            course = (course + rate).rem_euclid(360.0);
            lat += speed * course.to_radians().cos() / M_PER_DEG;
            lon += speed * course.to_radians().sin() / (M_PER_DEG * lat.to_radians().cos());
            // ±1.5 m of receiver noise on what is reported.
            let noise = 1.5 / M_PER_DEG;
            out.push(Fix {
                lat: lat + noise * rng.unit(),
                lon: lon + noise * rng.unit() / lat.to_radians().cos(),
                speed,
                course,
            });
        }
    }
    out
}

/// Distance (m) from `p` to the polyline through `track` (local plane; fine at km scale).
pub fn dist_to_track(p: (f64, f64), track: &[(f64, f64)]) -> f64 {
    let k = p.0.to_radians().cos();
    let xy = |q: (f64, f64)| ((q.1 - p.1) * k * M_PER_DEG, (q.0 - p.0) * M_PER_DEG);
    if track.len() == 1 {
        let (x, y) = xy(track[0]);
        return x.hypot(y);
    }
    track
        .windows(2)
        .map(|w| {
            let ((ax, ay), (bx, by)) = (xy(w[0]), xy(w[1]));
            let (dx, dy) = (bx - ax, by - ay);
            let len2 = dx * dx + dy * dy;
            let t = if len2 == 0.0 {
                0.0
            } else {
                (-(ax * dx + ay * dy) / len2).clamp(0.0, 1.0)
            };
            (ax + t * dx).hypot(ay + t * dy)
        })
        .fold(f64::INFINITY, f64::min)
}
