//! Ingest and dedup: reordered, duplicated and republished batches stored exactly once in id
//! order; two receivers on a Redis Cluster through a receiver kill and a broker restart; a
//! gateway's batches refused (no subscriber) by a restarted broker sent again.

use std::collections::HashSet;
use std::time::Duration;

use outpost_system_tests::{
    wait_until, Device, HubApi, HubConfig, HubProc, RedisCluster, RedisServer,
};

use crate::{batch, ids, loc, up, Bench, T};

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
    // `/gateways` counts what was stored, duplicates not included.
    let gateways = api.gateways().unwrap();
    assert_eq!(gateways[0]["stored"]["location"], 7, "{gateways:?}");
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

/// Five phones' OwnTracks fixes on the device broker, each fix with its own `tst`.
struct Phones {
    dev: Device,
    /// Fixes published so far.
    sent: u64,
}

impl Phones {
    fn new(dev: Device) -> Self {
        Phones { dev, sent: 0 }
    }

    /// Publishes the next `n` fixes (QoS 1, acknowledged).
    fn send(&mut self, n: u64) {
        let msgs: Vec<(String, String)> = (self.sent..self.sent + n)
            .map(|i| {
                (
                    format!("owntracks/u{}/phone", i % 5),
                    owntracks(1_700_000_000 + i, i),
                )
            })
            .collect();
        self.sent += n;
        self.dev.publish_many_qos1(msgs).unwrap();
    }
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
    // Only these two receivers (a share group of their own) on the broker: the rig's hub, a
    // second group, would be a subscriber the restarted broker routes batches to before
    // these two are back (the gateway sees 0x00, not 0x10, and this group misses them).
    rig.hub.process().kill9().unwrap();
    let hub_cfg = |id: &str| HubConfig {
        share_group: "cluster-hub".into(),
        ..HubConfig::new(id, &rig.hub_broker.url(), cluster.urls())
    };
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
    let mut phones = Phones::new(phone);
    let mut send = |n| phones.send(n);
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

    let sent = phones.sent;
    eprintln!("published {sent} fixes in {:?}", started.elapsed());
    let api = h1.api();
    for (gw, prefix) in [("veh-0042", "outpost"), ("veh-0043", "gw2")] {
        for class in ["presence", "status", "location"] {
            assert_stored_once(&api, gw, &rig.redis, prefix, class);
        }
        assert_each_fix_once(&api, gw, sent);
    }
    drop((gw1, gw2));
}

#[test]
fn batches_refused_by_a_restarted_hub_broker_before_its_receiver_is_back_are_sent_again() {
    let mut rig = outpost_system_tests::Rig::new().unwrap();
    let gw = rig.start(&rig.config().mqtt("owntracks")).unwrap();
    let phone = rig.device("phones").unwrap();
    let mut phones = Phones::new(phone);
    let mut send = |n| phones.send(n);
    send(200);
    assert!(
        rig.hub.wait_for_events("location", 200, T),
        "{}\n{}",
        rig.hub.log(),
        gw.log()
    );
    // The receiver dies; its session (with the shared subscription) stays in the broker. The
    // broker restarts: the session comes back, the shared subscription does not.
    rig.hub.process().kill9().unwrap();
    rig.hub_broker.stop().unwrap();
    rig.hub_broker.start().unwrap();
    send(300);
    assert!(
        gw.wait_for_log("no receiver is subscribed on the hub broker", T),
        "the gateway never saw a batch refused: {}",
        gw.log()
    );
    // Refused for a while (probed every 0.25–5 s), then the receiver is back.
    std::thread::sleep(Duration::from_secs(2));
    send(100);
    rig.hub.process().restart().unwrap();
    rig.hub.wait_subscribed(T).unwrap();
    send(100);
    let api = rig.hub.api();
    for class in ["presence", "status", "location"] {
        assert_stored_once(api, outpost_system_tests::GW, &rig.redis, "outpost", class);
    }
    assert_each_fix_once(api, outpost_system_tests::GW, phones.sent);
}

/// Waits until the hub stored as many `class` events of `gw` as the gateway accepted, then
/// asserts each id once, in id order.
fn assert_stored_once(api: &HubApi, gw: &str, redis: &RedisServer, prefix: &str, class: &str) {
    let started = std::time::Instant::now();
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

/// Every one of the `sent` phone fixes (distinct `tst`) is at the hub once.
fn assert_each_fix_once(api: &HubApi, gw: &str, sent: u64) {
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
