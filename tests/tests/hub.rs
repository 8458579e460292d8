//! The hub (`outpost-hub`, SPEC §7, issue 10) against real mosquitto, redis-server (single
//! and a 3-master cluster) and the real binaries: exactly once through reordering,
//! redelivery, receiver kill and broker restart; latest state; `near`; bad input; auth.

use std::collections::HashSet;
use std::time::Duration;

use outpost_system_tests::{
    wait_until, Device, HubApi, HubConfig, HubProc, Mosquitto, RedisCluster, RedisServer,
};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

/// A batch payload as a gateway would send it.
fn batch(gw: &str, class: &str, events: &[Value]) -> String {
    json!({"gw": gw, "class": class, "events": events}).to_string()
}

/// A location event with id `ms-0`.
fn loc(ms: u64, dev: &str, lat: f64, lon: f64, ts: &str) -> Value {
    json!({"id": format!("{ms}-0"), "replay": false, "dev": dev, "class": "location",
           "lat": lat, "lon": lon, "ts": ts, "ts_src": "device", "rx": ts})
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn up(gw: &str, class: &str) -> String {
    format!("outpost/v1/{gw}/up/{class}")
}

/// A hub on a single Redis and its own broker, plus a publisher on that broker.
struct Bench {
    redis: RedisServer,
    broker: Mosquitto,
    hub: HubProc,
    gw: Device,
}

impl Bench {
    fn new() -> Self {
        let redis = RedisServer::new().unwrap();
        let broker = Mosquitto::new().unwrap();
        let hub = HubProc::start(&HubConfig::new("h1", &broker.url(), vec![redis.url()])).unwrap();
        let gw = Device::connect(&broker.url(), "hand-made-gateway").unwrap();
        Bench {
            redis,
            broker,
            hub,
            gw,
        }
    }

    fn api(&self) -> HubApi {
        self.hub.api()
    }
}

#[test]
fn reordered_and_duplicated_batches_are_stored_exactly_once_in_id_order() {
    let b = Bench::new();
    let ts = "2026-11-30T10:00:00.000Z";
    let e = |ms| loc(ms, "r7", 52.5, 13.4, ts);
    // What two receivers on one share group and a republishing gateway can produce: a later
    // batch first, then the earlier one, the later one again (after a reconnect), an
    // overlapping one, and a late batch entirely below ids already stored.
    let sequence = [
        vec![e(30), e(40)],
        vec![e(10), e(20)],
        vec![e(30), e(40)],
        vec![e(40), e(50)],
        vec![e(5)],
        vec![e(10), e(20), e(30), e(40), e(50)],
    ];
    for evs in &sequence {
        b.gw.publish_qos1(&up("veh-1", "location"), batch("veh-1", "location", evs))
            .unwrap();
    }
    let api = b.api();
    let want = ["5-0", "10-0", "20-0", "30-0", "40-0", "50-0"];
    let got = || api.all_events("veh-1", "location", 2).unwrap();
    assert!(
        wait_until(T, || ids(&got()).len() >= want.len()),
        "{:?}",
        got()
    );
    // Everything is in: one more batch behind it shows the hub is done with the sequence.
    b.gw.publish_qos1(
        &up("veh-1", "location"),
        batch("veh-1", "location", &[e(60)]),
    )
    .unwrap();
    assert!(wait_until(T, || ids(&got()).len() == want.len() + 1));
    let events = got();
    assert_eq!(ids(&events)[..6], want, "each id once, in id order");
    assert!(
        events.iter().all(|e| e.get("replay").is_none()),
        "replay is not part of the stored event"
    );
    assert_eq!(events[0]["lat"], 52.5);
    // SIGTERM: stop taking batches, finish writes, exit 0.
    let mut b = b;
    assert!(b.hub.terminate().unwrap().success(), "{}", b.hub.log());
}

/// The gateway's own count of accepted events of `class` (`<prefix>:stats`).
fn accepted(redis: &RedisServer, prefix: &str, class: &str) -> u64 {
    let mut c = redis.conn().unwrap();
    let v: Option<u64> = redis::cmd("HGET")
        .arg(format!("{prefix}:stats"))
        .arg(format!("accepted:{class}"))
        .query(&mut c)
        .unwrap();
    v.unwrap_or(0)
}

fn owntracks(tst: u64, i: u64) -> String {
    let lat = 51.0 + (i % 1000) as f64 * 1e-4;
    format!(
        r#"{{"_type":"location","tid":"AP","lat":{lat},"lon":13.6,"tst":{tst},"acc":10,"batt":{}}}"#,
        50 + i % 40
    )
}

#[test]
fn two_receivers_on_a_cluster_store_every_event_once_through_receiver_kill_and_broker_restart() {
    let cluster = RedisCluster::new().unwrap();
    let mut rig = outpost_system_tests::Rig::new().unwrap();
    let hub_cfg = |id: &str| HubConfig::new(id, &rig.hub_broker.url(), cluster.urls());
    let mut h1 = HubProc::start(&hub_cfg("h1")).unwrap();
    let mut h2 = HubProc::start(&hub_cfg("h2")).unwrap();
    // Two gateways hearing the same phones (as vehicles parked side by side do), inflight 8.
    let gw1 = rig
        .start(&rig.config().mqtt("owntracks").inflight(8))
        .unwrap();
    let mut cfg2 = rig
        .config()
        .mqtt("owntracks")
        .inflight(8)
        .redis_prefix("gw2")
        .devices_client_id("outpost-veh-0043");
    cfg2.id = "veh-0043".into();
    let gw2 = rig.start(&cfg2).unwrap();
    let phone = rig.device("phones").unwrap();
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    let mut send = |n: u64| {
        let msgs: Vec<(String, String)> = (0..n)
            .map(|k| {
                let i = sent + k;
                (
                    format!("owntracks/u{}/phone", i % 5),
                    owntracks(1_700_000_000 + i, i),
                )
            })
            .collect();
        sent += n;
        phone.publish_many_qos1(msgs).unwrap();
    };
    send(600);
    h1.kill9().unwrap();
    send(600);
    h1.restart().unwrap();
    send(300);
    // The hub broker restarts (persistence on: sessions and queued batches survive).
    rig.hub_broker.stop().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    rig.hub_broker.start().unwrap();
    send(600);
    h2.kill9().unwrap();
    send(300);
    h2.restart().unwrap();
    send(600);

    eprintln!("published {sent} fixes in {:?}", started.elapsed());
    let api = h1.api();
    for (gw, prefix, redis) in [
        ("veh-0042", "outpost", &rig.redis),
        ("veh-0043", "gw2", &rig.redis),
    ] {
        for class in ["presence", "status", "location"] {
            let want = || accepted(redis, prefix, class);
            // Polled slowly: each look reads thousands of events through the API.
            let ok = (0..240).any(|_| {
                let a = want();
                let done = a > 0
                    && api
                        .all_events(gw, class, 10_000)
                        .map(|e| e.len() as u64)
                        .unwrap_or(0)
                        >= a;
                if !done {
                    std::thread::sleep(Duration::from_millis(250));
                }
                done
            });
            eprintln!("{gw} {class}: settled after {:?}", started.elapsed());
            let events = api.all_events(gw, class, 10_000).unwrap();
            assert!(
                ok,
                "{gw} {class}: hub has {} of {} accepted",
                events.len(),
                want()
            );
            let got = ids(&events);
            let unique: HashSet<&String> = got.iter().collect();
            assert_eq!(unique.len(), got.len(), "{gw} {class}: an id stored twice");
            assert_eq!(got.len() as u64, want(), "{gw} {class}: hub = accepted");
            let parsed: Vec<(u64, u64)> = got
                .iter()
                .map(|i| {
                    let (a, b) = i.split_once('-').unwrap();
                    (a.parse().unwrap(), b.parse().unwrap())
                })
                .collect();
            assert!(
                parsed.windows(2).all(|w| w[0] < w[1]),
                "{gw} {class}: not in id order"
            );
        }
        let locs = api.all_events(gw, "location", 10_000).unwrap();
        let tsts: HashSet<String> = locs
            .iter()
            .map(|e| e["ts"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            tsts.len() as u64,
            sent,
            "{gw}: every phone fix at the hub once"
        );
    }
    drop((gw1, gw2));
}

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
    assert!(wait_until(T, || api
        .all_events("veh-b", "location", 100)
        .unwrap()
        .len()
        == 1));
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
    assert!(wait_until(T, || api
        .all_events("veh-a", "location", 100)
        .unwrap()
        .len()
        == 2));
    assert_eq!(
        api.json("/api/v1/devices/r8").unwrap()["location"]["lat"],
        1.0
    );
    let (status, body) = api.get("/api/v1/devices/nobody").unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string());
    // The track is by ts, whichever gateway heard it.
    let track = api
        .json("/api/v1/devices/r7/track?from=2026-11-30T10:00:00Z&to=2026-11-30T10:00:02.500Z")
        .unwrap();
    let lats: Vec<f64> = track
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["lat"].as_f64().unwrap())
        .collect();
    assert_eq!(lats, [53.0, 52.0]);
    let devices = api.json("/api/v1/devices").unwrap();
    let names: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dev"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["r7", "r8"]);
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

/// `outpost_hub_drops_total{…,reason="<reason>"}` from `/metrics`.
fn drops(api: &HubApi, reason: &str) -> u64 {
    let text = api_text(api, "/metrics");
    text.lines()
        .filter(|l| {
            l.starts_with("outpost_hub_drops_total{") && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn api_text(api: &HubApi, path: &str) -> String {
    api.text(path).unwrap_or_default()
}

#[test]
fn each_bad_input_is_counted_acknowledged_and_never_blocks_a_good_batch() {
    let b = Bench::new();
    let good = |ms| loc(ms, "r1", 1.0, 2.0, "2026-11-30T10:00:00.000Z");
    let t = up("veh-1", "location");
    let big = format!("{{\"gw\":\"veh-1\",\"pad\":\"{}\"}}", "x".repeat(1 << 20));
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        ("not_json", t.clone(), b"{not json".to_vec()),
        ("not_utf8", t.clone(), b"{\"gw\":\"veh-1\xff\"}".to_vec()),
        (
            "gw_mismatch",
            t.clone(),
            batch("veh-2", "location", &[good(1)]).into_bytes(),
        ),
        (
            "class_mismatch",
            t.clone(),
            batch("veh-1", "status", &[good(2)]).into_bytes(),
        ),
        (
            "ids_not_increasing",
            t.clone(),
            batch("veh-1", "location", &[good(5), good(4)]).into_bytes(),
        ),
        ("oversize", t.clone(), big.into_bytes()),
        (
            "not_batch",
            up("veh-1", "weather"),
            batch("veh-1", "weather", &[]).into_bytes(),
        ),
        ("bad_state", "outpost/v1/veh-1/state".into(), b"[]".to_vec()),
    ];
    for (_, topic, payload) in &cases {
        b.gw.publish_qos1(topic, payload.clone()).unwrap();
    }
    b.gw.publish_qos1(&t, batch("veh-1", "location", &[good(10)]))
        .unwrap();
    let api = b.api();
    assert!(wait_until(T, || api
        .all_events("veh-1", "location", 10)
        .unwrap()
        .len()
        == 1));
    assert_eq!(
        ids(&api.all_events("veh-1", "location", 10).unwrap()),
        ["10-0"],
        "only the good batch"
    );
    for (reason, ..) in &cases {
        assert!(
            wait_until(T, || drops(&api, reason) == 1),
            "{reason}: {}",
            api_text(&api, "/metrics")
        );
    }
    assert!(api.all_events("veh-2", "location", 10).unwrap().is_empty());
    // Nothing refused is redelivered: the broker has no unacknowledged message for the hub.
    std::thread::sleep(Duration::from_millis(300));
    for (reason, ..) in &cases {
        assert_eq!(drops(&api, reason), 1, "{reason} counted once");
    }
    let _ = &b.broker;
}

#[test]
fn redis_down_means_not_acknowledged_then_stored_when_it_returns() {
    let mut redis = RedisServer::new().unwrap();
    let broker = Mosquitto::new().unwrap();
    let hub = HubProc::start(&HubConfig::new("h1", &broker.url(), vec![redis.url()])).unwrap();
    let gw = Device::connect(&broker.url(), "hand-made-gateway").unwrap();
    let api = hub.api();
    let e = |ms| loc(ms, "r1", 1.0, 2.0, "2026-11-30T10:00:00.000Z");
    gw.publish_qos1(
        &up("veh-1", "location"),
        batch("veh-1", "location", &[e(1)]),
    )
    .unwrap();
    assert!(wait_until(T, || api
        .all_events("veh-1", "location", 10)
        .map(|v| v.len())
        .unwrap_or(0)
        == 1));
    redis.kill9().unwrap();
    for ms in 2..=20 {
        gw.publish_qos1(
            &up("veh-1", "location"),
            batch("veh-1", "location", &[e(ms)]),
        )
        .unwrap();
    }
    assert!(
        wait_until(T, || api.get("/healthz").is_ok_and(|(s, _)| s == 503)),
        "healthz must say 503"
    );
    assert!(
        wait_until(T, || hub.log().contains("not acknowledged, retrying")),
        "{}",
        hub.log()
    );
    redis.restart().unwrap();
    assert!(wait_until(T, || api
        .get("/healthz")
        .is_ok_and(|(s, _)| s == 200)));
    assert!(wait_until(T, || api
        .all_events("veh-1", "location", 100)
        .map(|v| v.len())
        .unwrap_or(0)
        == 20));
    let want: Vec<String> = (1..=20).map(|ms| format!("{ms}-0")).collect();
    assert_eq!(
        ids(&api.all_events("veh-1", "location", 100).unwrap()),
        want
    );
}

#[test]
fn api_tokens_read_and_dispatch() {
    let redis = RedisServer::new().unwrap();
    let broker = Mosquitto::new().unwrap();
    let mut cfg = HubConfig::new("h1", &broker.url(), vec![redis.url()]);
    cfg.tokens = Some(
        "# consoles\nconsole-7 read r3ad-0123456789abcdef\nchief dispatch d15p-0123456789abcdef\n"
            .into(),
    );
    let hub = HubProc::start(&cfg).unwrap();
    let api = hub.api();
    assert_eq!(api.get("/api/v1/devices").unwrap().0, 401);
    assert_eq!(
        api.with_token("wrong-0123456789abcdef")
            .get("/api/v1/devices")
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        api.with_token("r3ad-0123456789abcdef")
            .get("/api/v1/devices")
            .unwrap()
            .0,
        200
    );
    let msg = json!({"gw": "veh-1", "to": "r7", "text": "hello"});
    assert_eq!(
        api.with_token("r3ad-0123456789abcdef")
            .post("/api/v1/messages", &msg)
            .unwrap()
            .0,
        403
    );
    assert_ne!(
        api.with_token("d15p-0123456789abcdef")
            .post("/api/v1/messages", &msg)
            .unwrap()
            .0,
        403
    );
    assert_eq!(api.get("/metrics").unwrap().0, 200, "metrics need no token");
    assert_eq!(
        api.get("/healthz").unwrap().0,
        200,
        "healthz needs no token"
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

#[test]
fn post_message_is_validated_published_down_and_kept_with_its_state() {
    let b = Bench::new();
    let api = b.api();
    b.gw.publish_qos1(
        &up("veh-1", "location"),
        batch(
            "veh-1",
            "location",
            &[loc(1, "r7", 1.0, 2.0, "2026-11-30T10:00:00.000Z")],
        ),
    )
    .unwrap();
    assert!(wait_until(T, || api
        .get("/api/v1/devices/r7")
        .is_ok_and(|(s, _)| s == 200)));
    let post = |v: Value| api.post("/api/v1/messages", &v).unwrap();
    let (s, e) = post(json!({"gw": "veh-9", "to": "r7", "text": "x"}));
    assert_eq!(s, 404, "{e}");
    assert!(e["error"].as_str().unwrap().contains("unknown gateway"));
    let (s, e) = post(json!({"gw": "veh-1", "to": "nobody", "text": "x"}));
    assert_eq!(s, 404, "{e}");
    assert!(e["error"].as_str().unwrap().contains("unknown device"));
    assert_eq!(post(json!({"gw": "veh-1", "to": "r7", "text": ""})).0, 400);
    assert_eq!(
        post(json!({"gw": "veh-1", "to": "r7", "text": "x".repeat(4097)})).0,
        400
    );
    assert_eq!(post(json!({"to": "r7"})).0, 400);
    // A subscriber on the gateway's down topic, as the gateway would be.
    let port = b.broker.port().to_string();
    let sub = std::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "outpost/v1/veh-1/down",
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "20",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub (mosquitto-clients) on PATH");
    std::thread::sleep(Duration::from_millis(500));
    // `gw` may be left out: the hub knows r7's gateway.
    let (s, created) =
        post(json!({"to": "r7", "text": "Evacuate sector 4 <now> & \"fast\"", "ttl": "1h"}));
    assert_eq!(s, 201, "{created}");
    let id = created["msg_id"].as_str().unwrap().to_string();
    let out = sub.wait_with_output().unwrap();
    let down: Value = serde_json::from_slice(&out.stdout).expect("one down message");
    assert_eq!(down["msg_id"], id.as_str());
    assert_eq!(down["to"], "r7");
    assert_eq!(down["text"], "Evacuate sector 4 <now> & \"fast\"");
    assert_eq!(down["from"], "local");
    assert!(down["expires"].as_str().unwrap().ends_with('Z'));
    let m = api.json(&format!("/api/v1/messages/{id}")).unwrap();
    assert_eq!(
        (m["gw"].as_str(), m["to"].as_str(), m["state"].as_str()),
        (Some("veh-1"), Some("r7"), Some("accepted"))
    );
    assert_eq!(m["history"], json!([]));
    assert_eq!(api.get("/api/v1/messages/nope").unwrap().0, 404);
}

/// `mosquitto_pub` as `user`: one QoS 1 message.
fn mosquitto_pub(port: u16, user: &str, topic: &str, payload: &str) {
    let st = std::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            user,
            "-P",
            &format!("pw-{user}"),
        ])
        .args([
            "-i",
            &format!("pub-{user}"),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            payload,
        ])
        .status()
        .expect("mosquitto_pub on PATH");
    assert!(st.success(), "mosquitto_pub as {user}");
}

#[test]
fn shipped_hub_broker_acl_lets_a_gateway_publish_only_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("passwords");
    std::fs::write(&pw, "").unwrap();
    for user in ["veh-a", "veh-b", "outpost-hub"] {
        let st = std::process::Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&pw)
            .args([user, &format!("pw-{user}")])
            .status()
            .expect("mosquitto_passwd on PATH");
        assert!(st.success());
    }
    // The ACL exactly as shipped.
    let acl = outpost_system_tests::workspace_root().join("hub/broker/acl");
    let auth = format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}",
        pw.display(),
        acl.display()
    );
    let broker = Mosquitto::with_auth(&auth).unwrap();
    let redis = RedisServer::new().unwrap();
    let mut cfg = HubConfig::new("h1", &broker.url(), vec![redis.url()]);
    cfg.username = Some("outpost-hub".into());
    cfg.password = Some("pw-outpost-hub".into());
    let hub = HubProc::start(&cfg).unwrap();
    let api = hub.api();
    let ev = |ms| loc(ms, "r1", 1.0, 2.0, "2026-11-30T10:00:00.000Z");
    // veh-a writes as veh-b: the broker drops it. veh-a as itself: stored.
    mosquitto_pub(
        broker.port(),
        "veh-a",
        &up("veh-b", "location"),
        &batch("veh-b", "location", &[ev(1)]),
    );
    mosquitto_pub(
        broker.port(),
        "veh-a",
        &up("veh-a", "location"),
        &batch("veh-a", "location", &[ev(2)]),
    );
    assert!(wait_until(T, || api
        .all_events("veh-a", "location", 10)
        .unwrap()
        .len()
        == 1));
    // veh-b as itself gets through: the refusal above was about who, not what.
    mosquitto_pub(
        broker.port(),
        "veh-b",
        &up("veh-b", "location"),
        &batch("veh-b", "location", &[ev(3)]),
    );
    assert!(wait_until(T, || api
        .all_events("veh-b", "location", 10)
        .unwrap()
        .len()
        == 1));
    assert_eq!(
        ids(&api.all_events("veh-b", "location", 10).unwrap()),
        ["3-0"],
        "veh-a's forgery never stored"
    );
}

#[test]
fn hub_check_reports_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("hub.toml");
    std::fs::write(
        &bad,
        "[hub]\nid = \"boston 1\"\n\n[broker]\nurl = \"http://x\"\nshare_group = \"a/b\"\n\n[redis]\nurls = [\"redis://a:1\", \"redis://b:2\"]\nretention = \"10s\"\n\n[api]\nlisten = \"0.0.0.0:8080\"\n",
    )
    .unwrap();
    let check = |path: &std::path::Path| {
        std::process::Command::new(outpost_system_tests::hub_bin().unwrap())
            .args(["check", "-c"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = check(&bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = bad.display().to_string();
    for want in [
        format!("{f}:2:6: hub.id: must match"),
        format!("{f}:5:7: broker.url:"),
        format!("{f}:6:15: broker.share_group:"),
        format!("{f}:9:8: redis.urls: several urls need cluster = true"),
        format!("{f}:10:13: redis.retention: must be at least 1m"),
        format!("{f}:13:10: api.listen: a non-loopback address needs api.token_file"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[hub]\nid = \"boston-1\"\nregion = \"boston\"\n\n[broker]\n\n[redis]\n",
    )
    .unwrap();
    let out = check(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (hub boston-1, region boston)"));
}

#[test]
fn sync_fills_a_rebuilt_region_and_copies_nothing_the_second_time() {
    let a = Bench::new();
    let b_redis = RedisCluster::new().unwrap();
    let b_broker = Mosquitto::new().unwrap();
    let b_hub = HubProc::start(&HubConfig::new("b1", &b_broker.url(), b_redis.urls())).unwrap();
    let b_gw = Device::connect(&b_broker.url(), "gw-to-b").unwrap();
    let ts = |s: u64| format!("2026-11-30T10:00:{s:02}.000Z");
    // Region B got everything; region A (rebuilt) only the live tail.
    for ms in 1..=30u64 {
        let evs = [loc(
            ms,
            &format!("d{}", ms % 3),
            50.0 + ms as f64 * 1e-3,
            8.0,
            &ts(ms),
        )];
        let p = batch("veh-1", "location", &evs);
        b_gw.publish_qos1(&up("veh-1", "location"), p.clone())
            .unwrap();
        if ms > 25 {
            a.gw.publish_qos1(&up("veh-1", "location"), p).unwrap();
        }
    }
    let alert = json!({"id": "7-0", "replay": true, "dev": "d1", "class": "alert", "reason": "emergency", "ts": ts(7), "ts_src": "device", "rx": ts(7)});
    b_gw.publish_qos1(&up("veh-2", "alert"), batch("veh-2", "alert", &[alert]))
        .unwrap();
    let (api_a, api_b) = (a.api(), b_hub.api());
    assert!(wait_until(T, || api_b
        .all_events("veh-1", "location", 100)
        .unwrap()
        .len()
        == 30));
    assert!(wait_until(T, || api_b
        .all_events("veh-2", "alert", 100)
        .unwrap()
        .len()
        == 1));
    assert!(wait_until(T, || api_a
        .all_events("veh-1", "location", 100)
        .unwrap()
        .len()
        == 5));
    let from = format!("{}#hub", b_redis.urls().join(","));
    let to = format!("{}#hub", a.redis.url());
    let sync = || {
        let out = std::process::Command::new(outpost_system_tests::hub_bin().unwrap())
            .args(["sync", "--from", &from, "--to", &to])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(sync().contains("2 gateways, 31 events seen, 26 copied"));
    for (gw, class) in [("veh-1", "location"), ("veh-2", "alert")] {
        assert_eq!(
            api_a.all_events(gw, class, 7).unwrap(),
            api_b.all_events(gw, class, 7).unwrap(),
            "{gw} {class}"
        );
    }
    assert!(sync().contains("31 events seen, 0 copied"), "idempotent");
    // Latest state followed: d0's newest fix (ms 30) is the same in both regions.
    assert_eq!(
        api_a.json("/api/v1/devices/d0").unwrap()["location"],
        api_b.json("/api/v1/devices/d0").unwrap()["location"]
    );
    assert_eq!(
        api_a.json("/api/v1/alerts").unwrap(),
        api_b.json("/api/v1/alerts").unwrap()
    );
}
