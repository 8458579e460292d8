//! Several regions (SPEC §9, issue 11): one gateway with two `[[uplink]]` regions, each a real
//! mosquitto + redis-server + `outpost-hub`, the gateway reaching each through a `TcpProxy`
//! (a fault on one region only, and a stable address while a lost region is rebuilt).
//! Each test prints its tallies (accepted / at A / at B / after sync / lost).

use std::collections::BTreeMap;
use std::time::Duration;

use outpost_system_tests::{
    hub_sync, wait_until, Device, GatewayConfig, HubApi, HubConfig, HubProc, Mosquitto, Outpost,
    ProfileDir, RedisServer, TcpProxy,
};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);
const GW: &str = "veh-r";
const CLASSES: [&str; 6] = [
    "alert", "message", "receipt", "presence", "status", "location",
];

/// One region: its broker, store and receiver, behind a proxy the gateway's config points at.
struct Region {
    name: &'static str,
    redis: RedisServer,
    broker: Mosquitto,
    hub: HubProc,
    proxy: TcpProxy,
}

struct Servers {
    redis: RedisServer,
    broker: Mosquitto,
    hub: HubProc,
}

fn servers(name: &str) -> Servers {
    let redis = RedisServer::new().unwrap();
    let broker = Mosquitto::new().unwrap();
    let mut cfg = HubConfig::new(&format!("{name}-1"), &broker.url(), vec![redis.url()]);
    cfg.region = name.into();
    let hub = HubProc::start(&cfg).unwrap();
    Servers { redis, broker, hub }
}

impl Region {
    fn new(name: &'static str) -> Self {
        let s = servers(name);
        let proxy = TcpProxy::start(s.broker.addr()).unwrap();
        Region {
            name,
            redis: s.redis,
            broker: s.broker,
            hub: s.hub,
            proxy,
        }
    }

    fn api(&self) -> HubApi {
        self.hub.api()
    }

    /// Events of every class the hub stored for the gateway.
    fn events(&self) -> BTreeMap<&'static str, Vec<Value>> {
        let api = self.api();
        CLASSES
            .iter()
            .map(|c| (*c, api.all_events(GW, c, 500).unwrap_or_default()))
            .collect()
    }

    fn count(&self, class: &str) -> usize {
        self.api().all_events(GW, class, 500).map_or(0, |v| v.len())
    }

    /// `kill -9` of broker, receiver and Redis; their temp dirs are deleted; then new, empty
    /// ones behind the same proxy address.
    fn lose(&mut self) {
        self.hub.kill9().unwrap();
        self.broker.kill9().unwrap();
        self.redis.kill9().unwrap();
        self.proxy.cut();
    }

    fn rebuild(&mut self) {
        let s = servers(self.name);
        // Drops the old harness objects: their data directories go with them.
        (self.redis, self.broker, self.hub) = (s.redis, s.broker, s.hub);
        self.proxy.retarget(self.broker.addr());
        self.proxy.pass();
    }
}

/// The gateway side: its Redis and device broker, the profiles, and the config text.
struct Gateway {
    redis: RedisServer,
    devices: Mosquitto,
    _profiles: ProfileDir,
    cfg: GatewayConfig,
}

impl Gateway {
    fn new(regions: &[&Region], max_lag: &str) -> Self {
        let redis = RedisServer::new().unwrap();
        let devices = Mosquitto::new().unwrap();
        let profiles = ProfileDir::copy().unwrap();
        let mut cfg = GatewayConfig::new(GW, &redis.url(), &devices.url(), "mqtt://unused:1")
            .profiles(profiles.path())
            .keep_alive("5s")
            .mqtt("owntracks");
        let mut extra = String::new();
        for r in &regions[1..] {
            extra += &format!(
                "[[uplink]]\nname = \"{}\"\nurl = \"{}\"\nkeep_alive = \"5s\"\nmax_lag = \"{max_lag}\"\n\n",
                r.name,
                r.proxy.mqtt_url()
            );
        }
        cfg = cfg.extra_toml(&extra);
        cfg.uplink_url = regions[0].proxy.mqtt_url();
        let first = format!(
            "[[uplink]]\nname = \"{}\"\nmax_lag = \"{max_lag}\"\n",
            regions[0].name
        );
        cfg.uplink_header = Some(first);
        Gateway {
            redis,
            devices,
            _profiles: profiles,
            cfg,
        }
    }

    fn start(&self) -> Outpost {
        let gw = Outpost::start(&self.cfg.to_toml()).unwrap();
        assert!(
            wait_until(T, || self
                .devices
                .subscriptions_of(&self.cfg.devices_client_id)
                > 0),
            "gateway did not subscribe: {}",
            gw.log()
        );
        gw
    }

    fn hash(&self, key: &str) -> BTreeMap<String, String> {
        let mut c = self.redis.conn().unwrap();
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut c)
            .unwrap_or_default()
    }

    fn region_state(&self, name: &str) -> Option<String> {
        self.hash(&format!("outpost:uplink:{name}")).remove("state")
    }

    fn accepted(&self) -> BTreeMap<String, u64> {
        self.hash("outpost:stats")
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("accepted:")?.to_string(), v.parse().ok()?)))
            .collect()
    }

    fn total_accepted(&self) -> u64 {
        self.accepted().values().sum()
    }

    fn outbox_len(&self) -> u64 {
        let mut c = self.redis.conn().unwrap();
        CLASSES
            .iter()
            .map(|cl| {
                redis::cmd("XLEN")
                    .arg(format!("outpost:outbox:{cl}"))
                    .query::<u64>(&mut c)
                    .unwrap_or(0)
            })
            .sum()
    }

    fn wait_up(&self, names: &[&str]) {
        assert!(
            wait_until(T, || names
                .iter()
                .all(|n| self.region_state(n).as_deref() == Some("up"))),
            "regions {names:?} not up"
        );
    }
}

/// One OwnTracks fix per call, each different (location + status, presence on first).
fn publish(phone: &Device, from: u64, n: u64) {
    for i in from..from + n {
        let fix = format!(
            r#"{{"_type":"location","tid":"AP","lat":{},"lon":13.6,"tst":{},"batt":80}}"#,
            51.0 + i as f64 * 1e-4,
            1_700_000_000 + i
        );
        phone.publish_qos1("owntracks/alice/phone", fix).unwrap();
    }
}

fn total(events: &BTreeMap<&str, Vec<Value>>) -> usize {
    events.values().map(Vec::len).sum()
}

/// No event twice (by id) in any class.
fn assert_exactly_once(events: &BTreeMap<&str, Vec<Value>>, what: &str) {
    for (class, evs) in events {
        let mut ids: Vec<&str> = evs.iter().filter_map(|e| e["id"].as_str()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{what}: duplicate {class} ids");
    }
}

fn sync(from: &Region, to: &Region) -> String {
    let url = |r: &Region| format!("{}#hub", r.redis.url());
    hub_sync(&url(from), &url(to))
}

/// Every class of A and B identical and as many as the gateway accepted.
fn assert_converged(gw: &Gateway, a: &Region, b: &Region) -> usize {
    let (ea, eb) = (a.events(), b.events());
    for c in CLASSES {
        assert_eq!(ea[c], eb[c], "class {c} differs between regions");
        let acc = gw.accepted().get(c).copied().unwrap_or(0) as usize;
        assert_eq!(ea[c].len(), acc, "class {c}: accepted {acc}");
    }
    assert_exactly_once(&ea, "A");
    total(&ea)
}

fn wait_drained(gw: &Gateway, out: &Outpost) {
    assert!(
        wait_until(T, || gw.outbox_len() == 0),
        "outbox not drained to every region: {} left\n{}",
        gw.outbox_len(),
        out.log()
    );
}

#[test]
fn a_lost_region_is_rebuilt_and_synced_from_the_other() {
    let (mut a, b) = (Region::new("a"), Region::new("b"));
    let gw = Gateway::new(&[&a, &b], "6h");
    let out = gw.start();
    gw.wait_up(&["a", "b"]);
    let phone = Device::connect(&gw.devices.url(), "alice-phone").unwrap();
    publish(&phone, 0, 20);
    assert!(wait_until(T, || a.count("location") == 20 && b.count("location") == 20));
    a.lose();
    publish(&phone, 20, 30);
    assert!(
        wait_until(T, || b.count("location") == 50),
        "B missed live traffic while A was lost"
    );
    let at_b = total(&b.events());
    assert_exactly_once(&b.events(), "B");
    assert_eq!(
        at_b as u64,
        gw.total_accepted(),
        "B has every accepted event"
    );
    a.rebuild();
    publish(&phone, 50, 10);
    wait_drained(&gw, &out);
    let at_a = total(&a.events());
    let report = sync(&b, &a);
    let after = assert_converged(&gw, &a, &b);
    let accepted = gw.total_accepted();
    eprintln!(
        "tallies (lost region): accepted {accepted} / at A {at_a} (rebuilt, before sync) / at B {} / after sync {after} / lost {}; sync: {}",
        total(&b.events()),
        accepted as usize - after,
        report.trim()
    );
    assert!(at_a < after, "A was rebuilt empty: sync had to copy");
    assert!(
        sync(&b, &a).contains(" 0 copied"),
        "second sync copies nothing"
    );
}

#[test]
fn a_region_down_past_max_lag_stops_holding_the_outbox() {
    let (a, b) = (Region::new("a"), Region::new("b"));
    let mut gw = Gateway::new(&[&a, &b], "2s");
    let port = outpost_system_tests::free_port();
    gw.cfg = gw.cfg.clone().ops_listen(&format!("127.0.0.1:{port}"));
    let out = gw.start();
    gw.wait_up(&["a", "b"]);
    let phone = Device::connect(&gw.devices.url(), "alice-phone").unwrap();
    publish(&phone, 0, 5);
    assert!(wait_until(T, || a.count("location") == 5 && b.count("location") == 5));
    a.proxy.cut();
    assert!(wait_until(T, || gw.region_state("a").as_deref() == Some("down")));
    publish(&phone, 5, 10);
    assert!(wait_until(T, || b.count("location") == 15));
    // Once A's oldest unacknowledged event is older than max_lag (2 s), B's next
    // acknowledgements trim past it: the outbox empties although A has nothing.
    std::thread::sleep(Duration::from_millis(2500));
    publish(&phone, 15, 5);
    assert!(
        wait_until(T, || gw.hash("outpost:uplink:a").contains_key("lagging")
            && gw.outbox_len() == 0),
        "outbox still held for A: {} entries; {:?}",
        gw.outbox_len(),
        gw.hash("outpost:uplink:a")
    );
    assert_eq!(b.count("location"), 20);
    // And it does not grow for A any more: more traffic is trimmed as B takes it.
    publish(&phone, 20, 5);
    assert!(wait_until(T, || b.count("location") == 25 && gw.outbox_len() == 0));
    let i = 25;
    let missed: u64 = gw.hash("outpost:stats")["missed:a"].parse().unwrap();
    assert!(missed > 0);
    assert!(out.wait_for_log("region lags longer than max_lag", T));
    let status = out.cli(&["status"]).unwrap();
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        status.contains("region a: down") && status.contains("LAGGING"),
        "{status}"
    );
    let metrics_missed = gw.hash("outpost:uplink:a")["missed"].clone();
    let m = HubApi::new(&format!("http://{}", gw.cfg.ops_listen.as_deref().unwrap()))
        .text("/metrics")
        .unwrap();
    assert!(
        m.contains(&format!(
            "outpost_uplink_region_missed_total{{region=\"a\"}} {metrics_missed}"
        )),
        "{m}"
    );
    assert!(
        m.contains("outpost_uplink_region_up{region=\"b\"} 1"),
        "{m}"
    );
    a.proxy.pass();
    assert!(
        wait_until(T, || gw.region_state("a").as_deref() == Some("up")
            && !gw.hash("outpost:uplink:a").contains_key("lagging")),
        "A back, not lagging"
    );
    publish(&phone, i, 3);
    assert!(
        wait_until(T, || a.count("location") == 5 + 3),
        "A gets live traffic again"
    );
    wait_drained(&gw, &out);
    let (at_a, at_b) = (total(&a.events()), total(&b.events()));
    sync(&b, &a);
    let after = assert_converged(&gw, &a, &b);
    let accepted = gw.total_accepted();
    eprintln!(
        "tallies (max_lag): accepted {accepted} / at A {at_a} (missed {metrics_missed}) / at B {at_b} / after sync {after} / lost {}",
        accepted as usize - after
    );
}

#[test]
fn a_killed_gateway_resumes_each_region_at_its_own_cursor() {
    let (a, b) = (Region::new("a"), Region::new("b"));
    let gw = Gateway::new(&[&a, &b], "6h");
    let mut out = gw.start();
    gw.wait_up(&["a", "b"]);
    let phone = Device::connect(&gw.devices.url(), "alice-phone").unwrap();
    publish(&phone, 0, 10);
    assert!(wait_until(T, || a.count("location") == 10 && b.count("location") == 10));
    a.proxy.pause(); // black hole: A's session hangs with batches unacknowledged
    publish(&phone, 10, 20);
    assert!(wait_until(T, || b.count("location") == 30));
    let cur = |n: &str| {
        gw.hash(&format!("outpost:uplink:{n}"))
            .remove("acked:location")
    };
    assert!(wait_until(T, || cur("b") != cur("a")), "cursors equal");
    let (ca, cb) = (cur("a"), cur("b"));
    out.kill9().unwrap();
    assert_eq!(
        (cur("a"), cur("b")),
        (ca.clone(), cb.clone()),
        "cursors survive kill -9"
    );
    publish(&phone, 30, 5); // kept by the device broker's session meanwhile
    a.proxy.pass();
    out.restart().unwrap();
    // The last 5 come from the device broker after the restart (and may wait for company,
    // ingest's linger): the outbox may look drained before they are in it.
    assert!(wait_until(T, || gw
        .hash("outpost:stats")
        .get("accepted:location")
        .map(String::as_str)
        == Some("35")));
    wait_drained(&gw, &out);
    let accepted = gw.total_accepted();
    // The outbox drains on the hub broker's PUBACK; each receiver stores right after.
    wait_until(T, || {
        total(&a.events()) as u64 >= accepted && total(&b.events()) as u64 >= accepted
    });
    let (at_a, at_b) = (total(&a.events()), total(&b.events()));
    assert_exactly_once(&a.events(), "A");
    assert_exactly_once(&b.events(), "B");
    for c in CLASSES {
        assert_eq!(
            a.events()[c],
            b.events()[c],
            "{c}: both regions complete without sync"
        );
    }
    eprintln!(
        "tallies (gateway kill -9, cursors a={ca:?} b={cb:?}): accepted {accepted} / at A {at_a} / at B {at_b} / after sync (none needed) {at_a} / lost {}",
        accepted as usize - at_a.min(at_b)
    );
    assert_eq!(at_a as u64, accepted);
    assert_eq!(at_b as u64, accepted);
}

#[test]
fn a_slow_region_does_not_slow_the_other() {
    let (a, b) = (Region::new("a"), Region::new("b"));
    let gw = Gateway::new(&[&a, &b], "6h");
    // One batch in flight each: the slow link's round trips pace its drain.
    let mut cfg = gw.cfg.clone();
    cfg = cfg.inflight(1).batch_max_events(1);
    let gw = Gateway { cfg, ..gw };
    let out = gw.start();
    gw.wait_up(&["a", "b"]);
    a.proxy.set_delay(Duration::from_millis(600));
    let phone = Device::connect(&gw.devices.url(), "alice-phone").unwrap();
    publish(&phone, 0, 40);
    assert!(
        wait_until(T, || b.count("location") == 40),
        "fast region B lacks the burst"
    );
    let at_a = a.count("location");
    let at_b = b.count("location");
    eprintln!(
        "tallies (600 ms on A): burst of 40 fixes: B has {at_b} locations while A has {at_a}"
    );
    assert!(
        at_a < 40,
        "A should still have a backlog at that point (600 ms per batch)"
    );
    a.proxy.set_delay(Duration::ZERO);
    wait_drained(&gw, &out);
    let after = assert_converged(&gw, &a, &b);
    eprintln!(
        "tallies (600 ms on A): accepted {} / at A {at_a}→{after} / at B {} / after sync (none) {after} / lost 0",
        gw.total_accepted(),
        total(&b.events())
    );
}
