use super::*;

fn fix(i: usize, dev: &str, lat: f64, lon: f64, speed: f64, course: f64) -> Fix {
    Fix {
        id: format!("{i}-0"),
        dev: dev.into(),
        lat,
        lon,
        t_ms: i as i64 * 1000,
        speed: Some(speed),
        course: Some(course),
    }
}

/// A generated drive: east 2 km, a 90° turn north 1 km, a stop of 60 s, then a slow curve.
fn drive(dev: &str, offset: usize) -> Vec<Fix> {
    let mut v = Vec::new();
    let (mut lat, mut lon) = (52.5, 13.4);
    let m_lat = 1.0 / 111_320.0;
    let m_lon = 1.0 / (111_320.0 * 52.5f64.to_radians().cos());
    let mut i = offset;
    for _ in 0..200 {
        lon += 10.0 * m_lon;
        v.push(fix(i, dev, lat, lon, 10.0, 90.0));
        i += 1;
    }
    for _ in 0..100 {
        lat += 10.0 * m_lat;
        v.push(fix(i, dev, lat, lon, 10.0, 0.0));
        i += 1;
    }
    for _ in 0..60 {
        v.push(fix(
            i,
            dev,
            lat + 0.00001 * ((i % 3) as f64 - 1.0),
            lon,
            0.1,
            0.0,
        ));
        i += 1;
    }
    let mut heading: f64 = 0.0;
    for _ in 0..300 {
        heading += 0.6; // a long gentle curve: 180° in 300 s
        lat += 8.0 * m_lat * heading.to_radians().cos();
        lon += 8.0 * m_lon * heading.to_radians().sin();
        v.push(fix(i, dev, lat, lon, 8.0, heading));
        i += 1;
    }
    v
}

/// Largest distance of any dropped fix from the thinned track of its device.
fn max_deviation(all: &[Fix], dropped: &[String]) -> f64 {
    let mut worst: f64 = 0.0;
    let devs: std::collections::BTreeSet<&str> = all.iter().map(|f| f.dev.as_str()).collect();
    for d in devs {
        let track: Vec<&Fix> = all.iter().filter(|f| f.dev == d).collect();
        let kept: Vec<&Fix> = track
            .iter()
            .copied()
            .filter(|f| !dropped.contains(&f.id))
            .collect();
        for f in track.iter().filter(|f| dropped.contains(&f.id)) {
            let dmin = kept
                .windows(2)
                .map(|w| seg_dist_m(f, w[0], w[1]))
                .fold(f64::INFINITY, f64::min);
            worst = worst.max(dmin);
        }
    }
    worst
}

#[test]
fn thinned_drive_stays_within_25_m_and_keeps_turns_and_stops() {
    let mut all = drive("a", 0);
    // A second vehicle interleaved in the same outbox.
    let b = drive("b", 10_000);
    all = all.into_iter().zip(b).flat_map(|(x, y)| [x, y]).collect();
    let dropped = thin(&all, &Params::default());
    let dev = max_deviation(&all, &dropped);
    assert!(dev <= 25.0, "deviation {dev} m");
    assert!(
        dropped.len() > all.len() / 2,
        "thinned only {} of {}",
        dropped.len(),
        all.len()
    );
    // The turn (fix 200 heading north after east) and the stop and restart are kept.
    for keep in ["199-0", "200-0", "300-0", "359-0", "360-0"] {
        assert!(!dropped.contains(&keep.to_string()), "{keep} dropped");
    }
}

#[test]
fn lone_and_two_point_tracks_are_kept() {
    let one = vec![fix(1, "x", 1.0, 1.0, 3.0, 0.0)];
    assert!(thin(&one, &Params::default()).is_empty());
    let two = vec![
        fix(1, "x", 1.0, 1.0, 3.0, 0.0),
        fix(2, "x", 1.0, 1.1, 3.0, 0.0),
    ];
    assert!(thin(&two, &Params::default()).is_empty());
}

#[test]
fn real_gpsd_track_stays_within_25_m() {
    // A real receiver log (gpsd regression suite, BSD-2-Clause): decode, then thin.
    let text = include_str!("../../tests/fixtures/nmea-gpsd/ublox-lea-5h.log");
    let mut d = crate::decode::nmea::NmeaDecoder::new("gps".into());
    let mut fixes = Vec::new();
    for l in text.lines() {
        if let Ok(Some(e)) = d.push_line(l) {
            if let crate::event::Body::Location(loc) = &e.body {
                fixes.push(Fix {
                    id: format!("{}-0", fixes.len()),
                    dev: "gps".into(),
                    lat: loc.lat,
                    lon: loc.lon,
                    t_ms: e.ts.timestamp_millis(),
                    speed: loc.speed,
                    course: loc.course,
                });
            }
        }
    }
    assert!(fixes.len() > 10);
    let dropped = thin(&fixes, &Params::default());
    assert!(max_deviation(&fixes, &dropped) <= 25.0);
}
