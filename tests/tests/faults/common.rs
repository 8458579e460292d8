//! What every fault test shares: the rig (Redis, both brokers, hub, optional proxies, the
//! `outpost` daemon), a tracked publisher, and the end checks of issue 3 — every event whose
//! source got a PUBACK is at the hub exactly once, in order per device and class, and ids are
//! stable and strictly increasing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use outpost_system_tests::{
    parse_event_id, wait_until, Device, EventId, GatewayConfig, Hub, Mosquitto, Outpost,
    RedisServer, TcpProxy,
};
use serde_json::{json, Value};

/// Gateway id of every fault test.
pub const GW: &str = "veh-fault";
/// Uplink topic prefix.
pub const PREFIX: &str = "outpost/v1";
/// Outbox classes, drain order.
pub const CLASSES: [&str; 5] = ["alert", "message", "presence", "status", "location"];

// ------------------------------------------------------------------------------- random

/// SplitMix64: a seeded, dependency-free RNG so a failing run can be replayed
/// (`OUTPOST_FAULT_SEED=<n>`).
pub struct Rng(u64);

impl Rng {
    /// Seeded from `OUTPOST_FAULT_SEED` if set, else `default`; prints the seed.
    pub fn from_env(test: &str, default: u64) -> Rng {
        let seed = std::env::var("OUTPOST_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default);
        eprintln!("[{test}] seed {seed} (replay with OUTPOST_FAULT_SEED={seed})");
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }

    /// Uniform in `[-1, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

// ------------------------------------------------------------------------------- rig

/// Which links go through a fault proxy.
#[derive(Default, Clone, Copy)]
pub struct RigOpts {
    /// Outpost → hub broker through a [`TcpProxy`].
    pub uplink_proxy: bool,
    /// Outpost → device broker through a [`TcpProxy`].
    pub devices_proxy: bool,
}

/// One gateway under test and everything around it. Outpost is the first field, so it is
/// killed first on drop.
pub struct Rig {
    pub outpost: Outpost,
    pub hub: Hub,
    pub uplink_proxy: Option<TcpProxy>,
    pub devices_proxy: Option<TcpProxy>,
    pub redis: RedisServer,
    pub devices: Mosquitto,
    pub hub_broker: Mosquitto,
}

impl Rig {
    /// Starts Redis, both brokers, the hub receiver (subscribed before Outpost starts) and
    /// Outpost with the `owntracks` source; `tweak` adjusts the config.
    pub fn start(opts: RigOpts, tweak: impl FnOnce(GatewayConfig) -> GatewayConfig) -> Rig {
        let redis = RedisServer::new().expect("redis");
        let devices = Mosquitto::new().expect("device broker");
        let hub_broker = Mosquitto::new().expect("hub broker");
        let hub = Hub::connect(&hub_broker.url(), PREFIX).expect("hub receiver");
        let proxy = |on: bool, target| on.then(|| TcpProxy::start(target).expect("proxy"));
        let uplink_proxy = proxy(opts.uplink_proxy, hub_broker.addr());
        let devices_proxy = proxy(opts.devices_proxy, devices.addr());
        let devices_url = devices_proxy
            .as_ref()
            .map_or_else(|| devices.url(), TcpProxy::mqtt_url);
        let uplink_url = uplink_proxy
            .as_ref()
            .map_or_else(|| hub_broker.url(), TcpProxy::mqtt_url);
        let config = tweak(
            GatewayConfig::new(GW, &redis.url(), &devices_url, &uplink_url)
                .topic_prefix(PREFIX)
                .mqtt("owntracks"),
        );
        let outpost = Outpost::start_with(&config).expect("outpost");
        Rig {
            outpost,
            hub,
            uplink_proxy,
            devices_proxy,
            redis,
            devices,
            hub_broker,
        }
    }

    /// The uplink proxy (panics if the rig has none).
    pub fn uplink(&self) -> &TcpProxy {
        self.uplink_proxy
            .as_ref()
            .expect("rig without uplink proxy")
    }

    /// Proves the whole path works before a test measures anything: publishes a probe fix
    /// every 300 ms until one reaches the hub (the gateway subscribes after it connected, so
    /// the first probes may go nowhere).
    pub fn warm_up(&self) {
        let mut probe = Feed::new(&self.devices.url(), "probe", 1);
        let ok = wait_until(Duration::from_secs(30), || {
            probe.publish(1);
            wait_until(Duration::from_millis(300), || {
                !self.hub.lock().events_of_dev("probe-d0").is_empty()
            })
        });
        assert!(
            ok,
            "warm-up: no probe reached the hub\n{}",
            self.outpost.log()
        );
    }

    /// A sync Redis connection (retries while Redis restarts).
    pub fn redis(&self) -> redis::Connection {
        let mut last = None;
        for _ in 0..50 {
            match self.redis.conn() {
                Ok(c) => return c,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis unreachable: {:?}", last);
    }

    /// `<prefix>:stats accepted:<class>`.
    pub fn accepted(&self, class: &str) -> u64 {
        self.hget("outpost:stats", &format!("accepted:{class}"))
    }

    /// A counter field of a hash (0 when absent).
    pub fn hget(&self, key: &str, field: &str) -> u64 {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query::<Option<u64>>(&mut self.redis())
            .expect("HGET")
            .unwrap_or(0)
    }

    /// Outbox length of one class.
    pub fn outbox_len(&self, class: &str) -> u64 {
        redis::cmd("XLEN")
            .arg(format!("outpost:outbox:{class}"))
            .query(&mut self.redis())
            .expect("XLEN")
    }

    /// Events in the outbox, all classes.
    pub fn outbox_total(&self) -> u64 {
        CLASSES.iter().map(|c| self.outbox_len(c)).sum()
    }

    /// The stream's last generated id (kept across trims and restarts), `0-0` if none.
    pub fn last_generated_id(&self, class: &str) -> EventId {
        let v: Value = match redis::cmd("XINFO")
            .arg("STREAM")
            .arg(format!("outpost:outbox:{class}"))
            .query::<redis::Value>(&mut self.redis())
        {
            Ok(v) => redis_to_json(v),
            Err(_) => return EventId { ms: 0, seq: 0 },
        };
        let id = match &v {
            Value::Array(kv) => kv
                .chunks(2)
                .find(|p| p[0] == "last-generated-id")
                .and_then(|p| p[1].as_str().map(str::to_string)),
            Value::Object(m) => m["last-generated-id"].as_str().map(str::to_string),
            _ => None,
        };
        id.and_then(|s| parse_event_id(&s))
            .unwrap_or(EventId { ms: 0, seq: 0 })
    }

    /// How often `needle` occurs in the gateway log.
    pub fn log_count(&self, needle: &str) -> usize {
        self.outpost.log().matches(needle).count()
    }

    /// Waits until every acknowledged event of `feeds` is at the hub, then until the outbox is
    /// empty (nothing more can arrive), then checks and prints the tally.
    pub fn finish(&self, test: &str, feeds: &[&Feed], timeout: Duration) -> Tally {
        let delivered_all = wait_until(timeout, || {
            let h = self.hub.lock();
            feeds
                .iter()
                .all(|f| f.missing(h.events_of("location")) == 0)
        });
        let drained = wait_until(Duration::from_secs(30), || self.outbox_total() == 0);
        std::thread::sleep(Duration::from_millis(500));
        let (tally, problems) = check(&self.hub, feeds);
        tally.print(test);
        if !(delivered_all && drained && problems.is_empty()) {
            let log = self.outpost.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            panic!(
                "{test}: delivered_all={delivered_all} outbox_drained={drained}\n{}\n--- outpost log tail ---\n{}",
                problems.join("\n"),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tally
    }
}

fn redis_to_json(v: redis::Value) -> Value {
    use redis::Value as R;
    match v {
        R::BulkString(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        R::SimpleString(s) => Value::String(s),
        R::Int(i) => json!(i),
        R::Array(a) | R::Set(a) => Value::Array(a.into_iter().map(redis_to_json).collect()),
        R::Map(m) => Value::Array(
            m.into_iter()
                .flat_map(|(k, v)| [redis_to_json(k), redis_to_json(v)])
                .collect(),
        ),
        _ => Value::Null,
    }
}

// ------------------------------------------------------------------------------- feed

/// OwnTracks phones publishing numbered fixes QoS 1, remembering which publishes the device
/// broker acknowledged. Fix number `seq` goes to device `<name>-d<seq % devices>` with
/// `tst = t0 + seq`, so the event time at the hub names the publish.
pub struct Feed {
    device: Device,
    name: String,
    devices: u64,
    t0: i64,
    next: u64,
    pub sent: BTreeSet<u64>,
    pub acked: BTreeSet<u64>,
    failures: usize,
}

impl Feed {
    /// A feed of `devices` phones named `<name>-d<i>` on the broker at `url`.
    pub fn new(url: &str, name: &str, devices: u64) -> Feed {
        let device = Device::connect(url, &format!("pub-{name}")).expect("device connect");
        Feed {
            device,
            name: name.to_string(),
            devices,
            // Two days back: a plausible device clock for `seq` up to a day and more.
            t0: chrono::Utc::now().timestamp() - 2 * 86_400,
            next: 0,
            sent: BTreeSet::new(),
            acked: BTreeSet::new(),
            failures: 0,
        }
    }

    /// Device id of publish `seq`.
    pub fn dev_of(&self, seq: u64) -> String {
        format!("{}-d{}", self.name, seq % self.devices)
    }

    /// Whether `dev` is one of this feed's devices.
    pub fn owns(&self, dev: &str) -> bool {
        dev.strip_prefix(&self.name)
            .and_then(|r| r.strip_prefix("-d"))
            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n < self.devices))
    }

    /// The publish number of a location event of this feed.
    pub fn seq_of(&self, event: &Value) -> Option<u64> {
        let ts = event.get("ts")?.as_str()?;
        let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?.timestamp();
        u64::try_from(t - self.t0).ok()
    }

    /// Publishes the next `n` fixes (pipelined) and waits for the broker's PUBACKs; returns
    /// whether all were acknowledged.
    pub fn publish(&mut self, n: u64) -> bool {
        let seqs: Vec<u64> = (self.next..self.next + n).collect();
        self.next += n;
        let msgs: Vec<(String, String)> = seqs
            .iter()
            .map(|&seq| {
                let d = seq % self.devices;
                let payload = json!({
                    "_type": "location",
                    "lat": 52.0 + (seq as f64) * 1e-6,
                    "lon": 13.0 + d as f64 * 0.01,
                    "acc": 5,
                    "tst": self.t0 + seq as i64,
                });
                (format!("owntracks/{}/d{d}", self.name), payload.to_string())
            })
            .collect();
        self.sent.extend(seqs.iter().copied());
        match self.device.publish_many_qos1(msgs) {
            Ok(()) => {
                self.acked.extend(seqs);
                true
            }
            Err(e) => {
                self.failures += 1;
                if self.failures <= 3 {
                    eprintln!("[feed {}] publish not acknowledged: {e:#}", self.name);
                }
                false
            }
        }
    }

    /// Acknowledged publishes not (yet) among `events`.
    pub fn missing(&self, events: &[Value]) -> usize {
        let got: BTreeSet<u64> = events
            .iter()
            .filter(|e| e["dev"].as_str().is_some_and(|d| self.owns(d)))
            .filter_map(|e| self.seq_of(e))
            .collect();
        self.acked.difference(&got).count()
    }
}

/// A [`Feed`] on its own thread: `chunk` fixes every `every`, until stopped.
pub struct Publisher {
    ctl: Arc<Ctl>,
    handle: Option<JoinHandle<Feed>>,
}

#[derive(Default)]
struct Ctl {
    stop: AtomicBool,
    paused: AtomicBool,
    busy: AtomicBool,
}

impl Publisher {
    /// Starts publishing.
    pub fn start(mut feed: Feed, chunk: u64, every: Duration) -> Publisher {
        let ctl = Arc::new(Ctl::default());
        let c = ctl.clone();
        let handle = std::thread::spawn(move || {
            loop {
                c.busy.store(true, SeqCst);
                if c.stop.load(SeqCst) {
                    break;
                }
                if c.paused.load(SeqCst) {
                    c.busy.store(false, SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                feed.publish(chunk);
                c.busy.store(false, SeqCst);
                std::thread::sleep(every);
            }
            c.busy.store(false, SeqCst);
            feed
        });
        Publisher {
            ctl,
            handle: Some(handle),
        }
    }

    /// Stops publishing; returns once no publish is in progress.
    pub fn pause(&self) {
        self.ctl.paused.store(true, SeqCst);
        while self.ctl.busy.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Publishes again.
    pub fn resume(&self) {
        self.ctl.paused.store(false, SeqCst);
    }

    /// Stops and hands back the feed with its record.
    pub fn stop(mut self) -> Feed {
        self.ctl.stop.store(true, SeqCst);
        self.handle
            .take()
            .expect("joined once")
            .join()
            .expect("publisher thread")
    }
}

// ------------------------------------------------------------------------------- checks

/// The per-test counts of issue 3.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub sent: usize,
    pub acked: usize,
    pub delivered: usize,
    pub hub_duplicates: u64,
    pub lost: usize,
}

impl Tally {
    /// One line, greppable: `TALLY <test>: sent=… …`.
    pub fn print(&self, test: &str) {
        eprintln!(
            "TALLY {test}: sent={} acknowledged_by_device_broker={} delivered={} duplicates_dropped_at_hub={} lost={}",
            self.sent, self.acked, self.delivered, self.hub_duplicates, self.lost
        );
    }
}

/// The end checks; returns the tally and every problem found.
pub fn check(hub: &Hub, feeds: &[&Feed]) -> (Tally, Vec<String>) {
    let h = hub.lock();
    let mut problems: Vec<String> = h.errors().iter().map(|e| format!("hub: {e}")).collect();
    let mut tally = Tally {
        hub_duplicates: h.duplicates_dropped(),
        ..Tally::default()
    };
    for feed in feeds {
        tally.sent += feed.sent.len();
        tally.acked += feed.acked.len();
        let (delivered, lost, p) = check_feed(feed, h.events_of("location"));
        tally.delivered += delivered;
        tally.lost += lost;
        problems.extend(p);
    }
    problems.extend(check_ids(h.batches()));
    (tally, problems)
}

/// Exactly once, in order per device, nothing unknown, nothing acknowledged missing.
fn check_feed(feed: &Feed, events: &[Value]) -> (usize, usize, Vec<String>) {
    let mut problems = Vec::new();
    let mut count: BTreeMap<u64, usize> = BTreeMap::new();
    let mut last: HashMap<String, u64> = HashMap::new();
    for e in events {
        let Some(dev) = e["dev"].as_str().filter(|d| feed.owns(d)) else {
            continue;
        };
        let Some(seq) = feed.seq_of(e) else {
            problems.push(format!("{}: event without a readable ts: {e}", feed.name));
            continue;
        };
        *count.entry(seq).or_default() += 1;
        if feed.dev_of(seq) != dev || !feed.sent.contains(&seq) {
            problems.push(format!("{}: event never sent: {e}", feed.name));
        }
        if let Some(prev) = last.insert(dev.to_string(), seq) {
            if seq <= prev {
                problems.push(format!("{dev}: fix {seq} arrived after fix {prev}"));
            }
        }
    }
    for (seq, n) in &count {
        if *n > 1 {
            problems.push(format!("{}: fix {seq} delivered {n} times", feed.name));
        }
    }
    let lost: Vec<u64> = feed
        .acked
        .iter()
        .filter(|s| !count.contains_key(s))
        .copied()
        .collect();
    if !lost.is_empty() {
        let head: Vec<u64> = lost.iter().take(20).copied().collect();
        problems.push(format!(
            "{}: {} acknowledged fixes lost, e.g. {head:?}",
            feed.name,
            lost.len()
        ));
    }
    (count.len(), lost.len(), problems)
}

/// Ids over every batch the hub received, duplicates included: an id always names the same
/// event (stable across restarts), ids rise within a batch, and the first sighting of each id
/// comes in id order per class (no event ever got an id below one already sent).
fn check_ids(batches: &[outpost_system_tests::dedup::RawBatch]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut named: HashMap<(String, EventId), String> = HashMap::new();
    let mut top: HashMap<String, EventId> = HashMap::new();
    for b in batches {
        let class = b.payload["class"].as_str().unwrap_or("?").to_string();
        let mut prev: Option<EventId> = None;
        for e in b.payload["events"].as_array().into_iter().flatten() {
            let Some(id) = e["id"].as_str().and_then(parse_event_id) else {
                continue;
            };
            if prev.is_some_and(|p| id <= p) {
                problems.push(format!("{class}: ids not rising within a batch at {id}"));
            }
            prev = Some(id);
            let mut body = e.clone();
            body.as_object_mut().map(|o| o.remove("replay"));
            let body = body.to_string();
            match named.get(&(class.clone(), id)) {
                Some(old) if *old != body => {
                    problems.push(format!("{class}: id {id} names two events: {old} / {body}"))
                }
                Some(_) => {}
                None => {
                    if top.get(&class).is_some_and(|t| id < *t) {
                        problems.push(format!(
                            "{class}: new event {id} below an id already sent ({})",
                            top[&class]
                        ));
                    }
                    top.insert(
                        class.clone(),
                        id.max(top.get(&class).copied().unwrap_or(id)),
                    );
                    named.insert((class.clone(), id), body);
                }
            }
        }
    }
    problems.truncate(20);
    problems
}

/// Batches whose ids the hub saw more than once (republished after a lost PUBACK).
pub fn republished_events(hub: &Hub) -> usize {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for b in hub.batches() {
        let class = b.payload["class"].as_str().unwrap_or("?").to_string();
        for e in b.payload["events"].as_array().into_iter().flatten() {
            let id = e["id"].as_str().unwrap_or("").to_string();
            *seen.entry((class.clone(), id)).or_default() += 1;
        }
    }
    seen.values().filter(|n| **n > 1).count()
}

/// Seconds since `t`, for progress lines.
pub fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
