//! `[ops] listen` (SPEC §3, issue 6): `/metrics` in Prometheus text format and `/healthz`,
//! scraped from the real binary; and the log formats (journald-friendly text, JSON lines).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use outpost_system_tests::outpost::outpost_command;
use outpost_system_tests::{
    free_port, wait_until, Device, GatewayConfig, Hub, Mosquitto, Outpost, RedisServer,
};

const T: Duration = Duration::from_secs(15);

/// `GET path` → (status, body). Plain std I/O: the endpoint speaks HTTP/1.1 with
/// `Connection: close`.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// The value of the sample whose line starts with `series` (name plus labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

struct Rig {
    redis: RedisServer,
    devices: Mosquitto,
    hub_broker: Mosquitto,
    port: u16,
}

impl Rig {
    fn new() -> Self {
        Rig {
            redis: RedisServer::new().unwrap(),
            devices: Mosquitto::new().unwrap(),
            hub_broker: Mosquitto::new().unwrap(),
            port: free_port(),
        }
    }

    fn config(&self, uplink_url: &str) -> GatewayConfig {
        GatewayConfig::new(
            "veh-ops",
            &self.redis.url(),
            &self.devices.url(),
            uplink_url,
        )
        .mqtt("owntracks")
        .keep_alive("5s")
        .ops_listen(&format!("127.0.0.1:{}", self.port))
    }

    fn scrape(&self) -> String {
        let (status, body) = get(self.port, "/metrics").unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }

    fn healthz(&self) -> (u16, String) {
        get(self.port, "/healthz").unwrap_or((0, String::new()))
    }
}

fn phone_fix(d: &Device, user: &str) {
    let tst = chrono::Utc::now().timestamp();
    let p = format!(r#"{{"_type":"location","lat":52.52,"lon":13.405,"tst":{tst},"batt":80}}"#);
    d.publish_qos1(&format!("owntracks/{user}/phone"), p)
        .unwrap();
}

#[test]
fn metrics_and_healthz_report_a_working_gateway() {
    let rig = Rig::new();
    let hub = Hub::start(&rig.hub_broker.url()).unwrap();
    let gw = Outpost::start_with(&rig.config(&rig.hub_broker.url())).unwrap();
    assert!(
        wait_until(T, || rig.healthz() == (200, "ok\n".to_string())),
        "never healthy: {:?}\n{}",
        rig.healthz(),
        gw.log()
    );
    let d = Device::connect(&rig.devices.url(), "phone-anna").unwrap();
    // The gateway subscribes a moment after it connects: publish until one arrives.
    assert!(wait_until(T, || {
        phone_fix(&d, "anna");
        hub.wait_for_events("location", 1, Duration::from_millis(300))
    }));
    let m = rig.scrape();
    // Forwarded counts are bumped on PUBACK, just after the hub got the batch.
    assert!(wait_until(T, || sample(
        &rig.scrape(),
        "outpost_events_forwarded_total{class=\"location\"}"
    )
    .unwrap_or(0.0)
        >= 1.0));
    let m2 = rig.scrape();
    // OpenMetrics names a counter family without `_total` (its samples keep it).
    assert!(m.contains("# TYPE outpost_events_in counter"), "{m}");
    let series = "outpost_events_in_total{class=\"location\",source=\"owntracks\"}";
    assert!(sample(&m, series).unwrap_or(0.0) >= 1.0, "{m}");
    assert_eq!(sample(&m2, "outpost_uplink_up"), Some(1.0), "{m2}");
    assert_eq!(sample(&m2, "outpost_uplink_connects_total"), Some(1.0));
    assert_eq!(sample(&m2, "outpost_uplink_reconnects_total"), Some(0.0));
    assert!(
        sample(&m2, "outpost_uplink_puback_seconds_count").unwrap() >= 1.0,
        "{m2}"
    );
    assert!(sample(&m2, "outpost_uplink_puback_seconds_bucket{le=\"+Inf\"}").unwrap() >= 1.0);
    assert!(sample(&m2, "outpost_redis_ingest_seconds_count").unwrap() >= 1.0);
    assert_eq!(sample(&m2, "outpost_devices_online"), Some(1.0), "{m2}");
    assert_eq!(sample(&m2, "outpost_redis_up"), Some(1.0));
    assert_eq!(sample(&m2, "outpost_healthy"), Some(1.0));
    for c in [
        "alert", "message", "receipt", "presence", "status", "location",
    ] {
        assert!(
            sample(&m2, &format!("outpost_backlog_events{{class=\"{c}\"}}")).is_some(),
            "{c}: {m2}"
        );
    }
    let (status, body) = get(rig.port, "/nope").unwrap();
    assert_eq!(status, 404, "{body}");
}

/// Every family of the ops contract (docs/install.md §6), as OpenMetrics names it, and its type.
const FAMILIES: [(&str, &str); 25] = [
    ("outpost_build_info", "gauge"),
    ("outpost_events_in", "counter"),
    ("outpost_events_forwarded", "counter"),
    ("outpost_drops", "counter"),
    ("outpost_inputs_duplicate", "counter"),
    ("outpost_inputs_refused", "counter"),
    ("outpost_uplink_up", "gauge"),
    ("outpost_uplink_connects", "counter"),
    ("outpost_uplink_reconnects", "counter"),
    ("outpost_devices_broker_connects", "counter"),
    ("outpost_uplink_region_up", "gauge"),
    ("outpost_uplink_region_connects", "counter"),
    ("outpost_uplink_region_forwarded", "counter"),
    ("outpost_uplink_region_missed", "counter"),
    ("outpost_uplink_region_refused", "counter"),
    ("outpost_uplink_puback_seconds", "histogram"),
    ("outpost_redis_ingest_seconds", "histogram"),
    ("outpost_redis_up", "gauge"),
    ("outpost_backlog_events", "gauge"),
    ("outpost_backlog_oldest_age_seconds", "gauge"),
    ("outpost_devices_online", "gauge"),
    ("outpost_downlink_messages", "counter"),
    ("outpost_downlink_bad", "counter"),
    ("outpost_downlink_pending", "gauge"),
    ("outpost_healthy", "gauge"),
];

#[test]
fn metrics_parse_as_openmetrics_with_every_family() {
    use openmetrics_parser::{openmetrics::parse_openmetrics, OpenMetricsType, OpenMetricsValue};
    let rig = Rig::new();
    let hub = Hub::start(&rig.hub_broker.url()).unwrap();
    let gw = Outpost::start_with(&rig.config(&rig.hub_broker.url())).unwrap();
    let d = Device::connect(&rig.devices.url(), "phone-cleo").unwrap();
    assert!(
        wait_until(T, || {
            phone_fix(&d, "cleo");
            hub.wait_for_events("location", 1, Duration::from_millis(300))
        }),
        "{}",
        gw.log()
    );
    assert!(wait_until(T, || sample(
        &rig.scrape(),
        "outpost_uplink_puback_seconds_count"
    )
    .unwrap_or(0.0)
        >= 1.0));
    // One bad input too, so that every family has a series (a family without any is left out).
    d.publish_qos1("owntracks/cleo/phone", "not json").unwrap();
    assert!(
        wait_until(T, || rig.scrape().contains("outpost_drops_total{")),
        "{}\n{}",
        rig.scrape(),
        gw.log()
    );

    // The raw response: the content type says OpenMetrics.
    let mut s = TcpStream::connect(("127.0.0.1", rig.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );

    let exp = parse_openmetrics(body).unwrap_or_else(|e| panic!("not OpenMetrics: {e:?}\n{body}"));
    for name in exp.families.keys() {
        assert!(
            FAMILIES.iter().any(|f| f.0 == name),
            "unexpected family {name}"
        );
    }
    for (name, kind) in &FAMILIES {
        // Bad downlink messages are counted by reason: no refusal yet, no sample.
        if *name == "outpost_downlink_bad" && !exp.families.contains_key(*name) {
            continue;
        }
        let fam = exp
            .families
            .get(*name)
            .unwrap_or_else(|| panic!("{name} missing:\n{body}"));
        let ty = match fam.family_type {
            OpenMetricsType::Counter => "counter",
            OpenMetricsType::Gauge => "gauge",
            OpenMetricsType::Histogram => "histogram",
            _ => "other",
        };
        assert_eq!(ty, *kind, "{name}");
        assert!(!fam.help.is_empty(), "{name} has no HELP");
    }
    let events_in = &exp.families["outpost_events_in"];
    let owntracks = events_in.iter_samples().find(|smp| {
        let l = smp.get_labelset().unwrap();
        l.get_label_value("class") == Some("location")
            && l.get_label_value("source") == Some("owntracks")
    });
    match owntracks.map(|smp| &smp.value) {
        Some(OpenMetricsValue::Counter(c)) => assert!(c.value.as_f64() >= 1.0),
        other => panic!("events_in location/owntracks: {other:?}"),
    }
    for name in [
        "outpost_uplink_puback_seconds",
        "outpost_redis_ingest_seconds",
    ] {
        let smp = exp.families[name].iter_samples().next().unwrap();
        let OpenMetricsValue::Histogram(h) = &smp.value else {
            panic!("{name} is not a histogram");
        };
        let bounds: Vec<f64> = h.buckets.iter().map(|b| b.upper_bound).collect();
        assert_eq!(bounds.len(), 15, "{name}: {bounds:?}");
        assert_eq!(bounds[0], 0.001);
        assert_eq!(bounds[13], 30.0);
        assert!(bounds[14].is_infinite());
        let counts: Vec<f64> = h.buckets.iter().map(|b| b.count.as_f64()).collect();
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]),
            "{name}: {counts:?}"
        );
        assert_eq!(h.count, Some(counts[14] as u64), "{name}");
        assert!(counts[14] >= 1.0, "{name}: {counts:?}");
    }
}

#[test]
fn backlog_grows_and_healthz_says_why_while_the_uplink_is_down() {
    let mut rig = Rig::new();
    // Nobody listens on the uplink port; a short grace makes the outage unhealthy at once.
    let dead = format!("mqtt://127.0.0.1:{}", free_port());
    let cfg = rig
        .config(&dead)
        .extra_toml("")
        .to_toml()
        .replace("[ops]\n", "[ops]\nuplink_down_grace = \"1s\"\n");
    let gw = Outpost::start(&cfg).unwrap();
    let d = Device::connect(&rig.devices.url(), "phone-ben").unwrap();
    assert!(
        wait_until(T, || {
            phone_fix(&d, "ben");
            let m = get(rig.port, "/metrics").map(|r| r.1).unwrap_or_default();
            sample(&m, "outpost_backlog_events{class=\"location\"}").unwrap_or(0.0) >= 1.0
        }),
        "{}",
        gw.log()
    );
    std::thread::sleep(Duration::from_millis(1100));
    let m = rig.scrape();
    let age = sample(&m, "outpost_backlog_oldest_age_seconds{class=\"location\"}").unwrap();
    assert!(age >= 1.0, "oldest unsent event age {age}\n{m}");
    assert_eq!(sample(&m, "outpost_uplink_up"), Some(0.0));
    assert_eq!(sample(&m, "outpost_healthy"), Some(0.0));
    let (status, body) = rig.healthz();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("uplink down for"), "{body}");
    assert!(!body.contains("redis"), "{body}");

    // Redis gone: the endpoint still answers, and says so.
    rig.redis.kill9().unwrap();
    assert!(
        wait_until(T, || rig.healthz().1.contains("redis unreachable")),
        "{:?}",
        rig.healthz()
    );
    let m = rig.scrape();
    assert_eq!(sample(&m, "outpost_redis_up"), Some(0.0), "{m}");
    assert!(
        !m.contains("outpost_backlog_events{"),
        "stale backlog reported: {m}"
    );
}

#[test]
fn healthz_answers_while_waiting_for_redis_at_start() {
    let rig = Rig::new();
    let no_redis = format!("redis://127.0.0.1:{}/0", free_port());
    let mut cfg = rig.config(&rig.hub_broker.url());
    cfg.redis_url = no_redis;
    let gw = Outpost::start_with(&cfg).unwrap();
    assert!(
        wait_until(T, || rig.healthz().0 == 503),
        "{:?}\n{}",
        rig.healthz(),
        gw.log()
    );
    assert!(rig.healthz().1.contains("redis unreachable"));
}

#[test]
fn ops_listen_on_a_taken_port_fails_at_start() {
    let rig = Rig::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = GatewayConfig::new(
        "veh-ops",
        &rig.redis.url(),
        &rig.devices.url(),
        &rig.hub_broker.url(),
    )
    .ops_listen(&format!("127.0.0.1:{port}"));
    let mut gw = Outpost::start_with(&cfg).unwrap();
    assert!(
        wait_until(T, || gw.try_wait().unwrap().is_some()),
        "{}",
        gw.log()
    );
    assert!(
        gw.log().contains("cannot listen on [ops] listen"),
        "{}",
        gw.log()
    );
}

#[test]
fn json_log_format_writes_one_json_object_a_line() {
    let rig = Rig::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, rig.config(&rig.hub_broker.url()).to_toml()).unwrap();
    let mut child = outpost_command()
        .unwrap()
        .env("OUTPOST_LOG_FORMAT", "json")
        .args(["run", "-c"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(T, || rig.healthz().0 == 200));
    outpost_system_tests::process::terminate(&mut child, Duration::from_secs(10)).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{err}");
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "redis connected"),
        "{err}"
    );
}

#[test]
fn text_logs_have_no_colour_codes_when_not_a_terminal() {
    let rig = Rig::new();
    let gw = Outpost::start_with(&rig.config(&rig.hub_broker.url())).unwrap();
    assert!(gw.wait_for_log("redis connected", T));
    assert!(!gw.log().contains('\u{1b}'), "ANSI escapes in the journal");
}

/// Issue 15: a malformed optional field is left out, counted as `bad_field:<name>` in
/// `<prefix>:drops` and `/metrics` like any drop reason, and logged; the event itself is kept.
/// Transitions on `…/event` and cards on `…/info` reach the shipped profile.
#[test]
fn a_malformed_optional_field_is_counted_and_its_event_kept() {
    let bench = outpost_system_tests::Rig::new().unwrap();
    let port = free_port();
    let cfg = bench
        .config()
        .mqtt("owntracks")
        .ops_listen(&format!("127.0.0.1:{port}"));
    let gw = bench.start(&cfg).unwrap();
    let d = bench.device("phone-anna").unwrap();
    let tst = chrono::Utc::now().timestamp();
    d.publish_many_qos1([
        (
            "owntracks/anna/phone".to_string(),
            format!(r#"{{"_type":"location","lat":52.52,"lon":13.405,"tst":{tst},"batt":true}}"#),
        ),
        (
            "owntracks/anna/phone/event".to_string(),
            format!(r#"{{"_type":"transition","lat":52.5,"lon":13.4,"tst":"{tst}","event":"enter","desc":"Depot"}}"#),
        ),
        (
            "owntracks/anna/phone/info".to_string(),
            r#"{"_type":"card","name":"Anna","tid":"AN"}"#.to_string(),
        ),
        // A card (often retained, published by others) names a device but is no sign of it.
        (
            "owntracks/carl/phone/info".to_string(),
            r#"{"_type":"card","name":"Carl","tid":"CA"}"#.to_string(),
        ),
    ])
    .unwrap();
    assert!(
        bench.hub.wait_for_events("location", 2, T),
        "both positions kept: {:?}\n{}",
        bench.hub.events_of("location"),
        gw.log()
    );
    assert!(bench.hub.wait_for_events("status", 1, T));
    assert_eq!(bench.hub.events_of("status")[0]["extra"]["region"], "Depot");
    let want = std::collections::HashMap::from([("bad_field:batt".to_string(), 1u64)]);
    assert!(
        wait_until(T, || bench.drops() == want),
        "drops: {:?}",
        bench.drops()
    );
    let m = get(port, "/metrics").unwrap().1;
    assert_eq!(
        sample(&m, "outpost_drops_total{reason=\"bad_field:batt\"}"),
        Some(1.0),
        "{m}"
    );
    assert!(gw.log().contains("malformed field dropped"), "{}", gw.log());
    assert!(
        wait_until(T, || bench
            .hget("outpost:dev:anna-phone", "name")
            .as_deref()
            == Some("Anna")),
        "card name recorded"
    );
    assert!(wait_until(T, || bench
        .hget("outpost:dev:carl-phone", "name")
        .is_some()));
    assert_eq!(bench.hget("outpost:dev:carl-phone", "presence"), None);
    assert!(bench
        .hub
        .events_of("presence")
        .iter()
        .all(|e| e["dev"] != "carl-phone"));
}
