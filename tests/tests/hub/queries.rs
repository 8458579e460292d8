//! Reads: latest state across gateways by `ts`, `near` against a haversine reference, and the
//! SSE stream.

use std::collections::HashSet;
use std::time::Duration;

use outpost_system_tests::{
    wait_until, Device, HubApi, HubConfig, HubProc, Mosquitto, RedisServer,
};
use serde_json::Value;

use crate::{batch, loc, up, Bench, T};

#[test]
fn latest_state_across_two_gateways_is_the_newest_ts() {
    let b = Bench::new();
    let api = b.api();
    let pubb = |gw: &str, evs: &[Value]| {
        b.gw.publish_qos1(&up(gw, "location"), batch(gw, "location", evs))
            .unwrap();
    };
    // veh-a heard r7 at 10:00:02, veh-b at 10:00:01 but delivers later: veh-a's stays.
    pubb(
        "veh-a",
        &[loc(100, "r7", 52.0, 13.0, "2026-11-30T10:00:02.000Z")],
    );
    assert!(wait_until(T, || api
        .get("/api/v1/devices/r7")
        .is_ok_and(|(s, _)| s == 200)));
    pubb(
        "veh-b",
        &[loc(900, "r7", 53.0, 14.0, "2026-11-30T10:00:01.000Z")],
    );
    wait_locations(&api, "veh-b", 1);
    let d = api.json("/api/v1/devices/r7").unwrap();
    assert_eq!(
        (d["gw"].as_str(), d["location"]["lat"].as_f64()),
        (Some("veh-a"), Some(52.0)),
        "{d}"
    );
    // Newer from veh-b wins.
    pubb(
        "veh-b",
        &[loc(901, "r7", 54.0, 15.0, "2026-11-30T10:00:03.000Z")],
    );
    assert!(wait_until(T, || api.json("/api/v1/devices/r7").unwrap()
        ["location"]["lat"]
        == 54.0));
    assert_eq!(api.json("/api/v1/devices/r7").unwrap()["gw"], "veh-b");
    // A tie on ts goes to the higher (gateway, id): veh-b > veh-a.
    pubb(
        "veh-b",
        &[loc(902, "r8", 1.0, 1.0, "2026-11-30T10:00:05.000Z")],
    );
    pubb(
        "veh-a",
        &[loc(101, "r8", 2.0, 2.0, "2026-11-30T10:00:05.000Z")],
    );
    wait_locations(&api, "veh-a", 2);
    assert_eq!(
        api.json("/api/v1/devices/r8").unwrap()["location"]["lat"],
        1.0
    );
    let (status, body) = api.get("/api/v1/devices/nobody").unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string());
    // The track is by ts, whichever gateway heard it.
    let lats = track(&api, "r7", "10:00:00", "10:00:02.500", "lat");
    assert_eq!(lats, [53.0, 52.0]);
    // The same fix heard by both gateways is in each one's history under its own id, and the
    // track has both events (its points refer to the histories).
    pubb(
        "veh-a",
        &[loc(102, "r7", 55.0, 16.0, "2026-11-30T10:00:04.000Z")],
    );
    pubb(
        "veh-b",
        &[loc(903, "r7", 55.0, 16.0, "2026-11-30T10:00:04.000Z")],
    );
    wait_locations(&api, "veh-a", 3);
    wait_locations(&api, "veh-b", 4);
    let ids = track(&api, "r7", "10:00:00", "10:00:04.500", "id");
    assert_eq!(ids, ["900-0", "100-0", "901-0", "102-0", "903-0"]);
    let devices = api.json("/api/v1/devices").unwrap();
    let names: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dev"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["r7", "r8"]);
}

/// One batch with several fixes of a device, out of `ts` order (a gateway draining a backlog
/// heard through two radios): latest and the geo index take the newest `ts`, not the last in
/// the batch; the track keeps every fix; a later batch with an older fix changes nothing.
#[test]
fn several_fixes_of_a_device_in_one_batch_keep_the_newest_and_the_whole_track() {
    let b = Bench::new();
    let api = b.api();
    let evs = [
        loc(200, "u1", 10.0, 20.0, "2026-11-30T11:00:01.000Z"),
        loc(201, "u1", 10.3, 20.3, "2026-11-30T11:00:03.000Z"),
        loc(202, "u2", 40.0, 50.0, "2026-11-30T11:00:01.000Z"),
        loc(203, "u1", 10.2, 20.2, "2026-11-30T11:00:02.000Z"),
    ];
    b.gw.publish_qos1(&up("veh-c", "location"), batch("veh-c", "location", &evs))
        .unwrap();
    wait_locations(&api, "veh-c", 4);
    let d = api.json("/api/v1/devices/u1").unwrap();
    assert_eq!(d["location"]["lat"], 10.3, "{d}");
    assert_eq!(d["location"]["ts"], "2026-11-30T11:00:03.000Z", "{d}");
    let near = api
        .json("/api/v1/near?lat=10.3&lon=20.3&radius_m=1000")
        .unwrap();
    let found: Vec<&str> = near
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["dev"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["u1"], "{near}");
    let lats = track(&api, "u1", "11:00:00", "11:00:04", "lat");
    assert_eq!(lats, [10.0, 10.2, 10.3]);
    // Older than what is stored: history and track take it, latest does not.
    b.gw.publish_qos1(
        &up("veh-c", "location"),
        batch(
            "veh-c",
            "location",
            &[loc(300, "u1", 11.0, 21.0, "2026-11-30T11:00:02.500Z")],
        ),
    )
    .unwrap();
    wait_locations(&api, "veh-c", 5);
    assert_eq!(
        api.json("/api/v1/devices/u1").unwrap()["location"]["lat"],
        10.3
    );
    assert_eq!(
        api.json("/api/v1/devices/u2").unwrap()["location"]["lat"],
        40.0
    );
}

/// `field` of each point of `dev`'s track between two times of 2026-11-30 (`hh:mm:ss`).
fn track(api: &HubApi, dev: &str, from: &str, to: &str, field: &str) -> Vec<Value> {
    let t = api
        .json(&format!(
            "/api/v1/devices/{dev}/track?from=2026-11-30T{from}Z&to=2026-11-30T{to}Z"
        ))
        .unwrap();
    t.as_array()
        .unwrap_or_else(|| panic!("{t}"))
        .iter()
        .map(|e| e[field].clone())
        .collect()
}

/// Waits until the hub holds `n` location events of `gw` (fails the test after `T`).
fn wait_locations(api: &HubApi, gw: &str, n: usize) {
    assert!(
        wait_until(T, || api.all_events(gw, "location", 100).unwrap().len()
            == n),
        "{gw}: not {n} locations stored"
    );
}

/// Great-circle distance, written out here independently of the hub's.
fn haversine(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let r = 6_371_008.8_f64;
    let (a, b) = (lat1.to_radians(), lat2.to_radians());
    let h = ((b - a) / 2.0).sin().powi(2)
        + a.cos() * b.cos() * ((lon2 - lon1).to_radians() / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().asin()
}

#[test]
fn near_matches_a_haversine_reference() {
    let b = Bench::new();
    let (clat, clon) = (42.3601, -71.0589);
    // 60 units on a spiral out to ~9 km, some far away, one near a pole.
    let mut evs = Vec::new();
    for i in 0..60u64 {
        let r = 150.0 * i as f64;
        let a = i as f64 * 0.7;
        let lat = clat + r * a.cos() / 111_195.0;
        let lon = clon + r * a.sin() / (111_195.0 * clat.to_radians().cos());
        evs.push(loc(
            1000 + i,
            &format!("u{i:02}"),
            lat,
            lon,
            "2026-11-30T10:00:00.000Z",
        ));
    }
    evs.push(loc(
        2000,
        "far",
        40.7128,
        -74.006,
        "2026-11-30T10:00:00.000Z",
    ));
    evs.push(loc(2001, "polar", 89.9, 0.0, "2026-11-30T10:00:00.000Z"));
    b.gw.publish_qos1(&up("veh-1", "location"), batch("veh-1", "location", &evs))
        .unwrap();
    let api = b.api();
    assert!(wait_until(T, || api
        .json("/api/v1/devices")
        .unwrap()
        .as_array()
        .unwrap()
        .len()
        == 62));
    for radius in [0.0, 1000.0, 4321.0, 20_000.0] {
        let mut want: Vec<(f64, String)> = evs
            .iter()
            .map(|e| {
                (
                    haversine(
                        clat,
                        clon,
                        e["lat"].as_f64().unwrap(),
                        e["lon"].as_f64().unwrap(),
                    ),
                    e["dev"].as_str().unwrap().to_string(),
                )
            })
            .filter(|(d, _)| *d <= radius)
            .collect();
        want.sort_by(|x, y| x.0.total_cmp(&y.0));
        let got = api
            .json(&format!(
                "/api/v1/near?lat={clat}&lon={clon}&radius_m={radius}"
            ))
            .unwrap();
        let got = got.as_array().unwrap();
        let names: Vec<&str> = got.iter().map(|d| d["dev"].as_str().unwrap()).collect();
        let want_names: Vec<&str> = want.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, want_names, "radius {radius}");
        for (g, (d, _)) in got.iter().zip(&want) {
            assert!(
                (g["distance_m"].as_f64().unwrap() - d).abs() < 0.5,
                "{g} vs {d}"
            );
        }
    }
    let (s, _) = api.get("/api/v1/near?lat=95&lon=0&radius_m=10").unwrap();
    assert_eq!(s, 400);
    let (s, _) = api.get("/api/v1/near?lat=1&lon=0").unwrap();
    assert_eq!(s, 400);
    // The polar unit is outside Redis' geo range but still a device with its position.
    assert_eq!(
        api.json("/api/v1/devices/polar").unwrap()["location"]["lat"],
        89.9
    );
}

#[test]
fn stream_shows_each_stored_event_once_from_any_receiver() {
    let redis = RedisServer::new().unwrap();
    let broker = Mosquitto::new().unwrap();
    let h1 = HubProc::start(&HubConfig::new("h1", &broker.url(), vec![redis.url()])).unwrap();
    let _h2 = HubProc::start(&HubConfig::new("h2", &broker.url(), vec![redis.url()])).unwrap();
    let gw = Device::connect(&broker.url(), "hand-made-gateway").unwrap();
    let api = h1.api();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let reader = {
        let (api, seen) = (api.clone(), seen.clone());
        std::thread::spawn(move || {
            api.stream(T, |line| {
                let v: Value = serde_json::from_str(line).unwrap();
                let mut s = seen.lock().unwrap();
                s.push(v);
                s.len() < 40
            })
        })
    };
    // The stream is subscribed once a first event shows up; send until then.
    let e = |ms| loc(ms, "r1", 1.0, 2.0, "2026-11-30T10:00:00.000Z");
    let mut ms = 1;
    while seen.lock().unwrap().is_empty() && ms < 200 {
        gw.publish_qos1(
            &up("veh-1", "location"),
            batch("veh-1", "location", &[e(ms)]),
        )
        .unwrap();
        ms += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = seen.lock().unwrap().len();
    // Each batch twice (a republish): streamed once. Both receivers take turns.
    for k in 0..(40 - first as u64) {
        let b = batch("veh-1", "location", &[e(1000 + k)]);
        gw.publish_qos1(&up("veh-1", "location"), b.clone())
            .unwrap();
        gw.publish_qos1(&up("veh-1", "location"), b).unwrap();
    }
    reader.join().unwrap().unwrap();
    let seen = seen.lock().unwrap();
    let got: Vec<&str> = seen.iter().map(|v| v["id"].as_str().unwrap()).collect();
    let unique: HashSet<&&str> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "each stored event once: {got:?}");
    assert!(seen
        .iter()
        .all(|v| v["gw"] == "veh-1" && v["class"] == "location"));
}
