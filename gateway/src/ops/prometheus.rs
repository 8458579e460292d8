//! Renders the registry in the Prometheus text exposition format (version 0.0.4): `# HELP`,
//! `# TYPE`, one sample a line. Metric names are part of the ops contract (README).

use super::gauges::RedisGauges;
use super::histogram::Histogram;
use super::Metrics;
use crate::event::Class;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

/// The body of `/metrics`. `redis` is `None` when Redis did not answer in time (its gauges are
/// then left out rather than reported as zero, and `outpost_redis_up` is 0).
pub fn render(m: &Metrics, redis: Option<&RedisGauges>, healthy: bool) -> String {
    let mut o = String::with_capacity(8 * 1024);
    head(
        &mut o,
        "outpost_build_info",
        "gauge",
        "Version of the running gateway.",
    );
    let _ = writeln!(
        o,
        "outpost_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    head(
        &mut o,
        "outpost_events_in_total",
        "counter",
        "Events accepted into the outbox, by class and source (device profile, or gateway).",
    );
    for ((class, source), n) in m.ingested() {
        let _ = writeln!(
            o,
            "outpost_events_in_total{{class=\"{class}\",source=\"{}\"}} {n}",
            esc(&source)
        );
    }
    head(
        &mut o,
        "outpost_events_forwarded_total",
        "counter",
        "Events the hub acknowledged (PUBACK), by class.",
    );
    for c in Class::ALL {
        let _ = writeln!(
            o,
            "outpost_events_forwarded_total{{class=\"{c}\"}} {}",
            m.forwarded[c.index()].load(Relaxed)
        );
    }
    head(
        &mut o,
        "outpost_drops_total",
        "counter",
        "Inputs dropped, by reason.",
    );
    for (reason, n) in m.drops() {
        let _ = writeln!(o, "outpost_drops_total{{reason=\"{}\"}} {n}", esc(&reason));
    }
    counter(
        &mut o,
        "outpost_inputs_duplicate_total",
        "Inputs recognised as already stored (redelivery, relay, retry).",
        m.duplicates.load(Relaxed),
    );
    counter(
        &mut o,
        "outpost_inputs_refused_total",
        "Inputs refused because their class's outbox share was full (kept at the broker).",
        m.refused.load(Relaxed),
    );
    gauge(
        &mut o,
        "outpost_uplink_up",
        "1 while connected to the hub.",
        u64::from(m.uplink_up.load(Relaxed)) as f64,
    );
    let connects = m.uplink_connects.load(Relaxed);
    counter(
        &mut o,
        "outpost_uplink_connects_total",
        "Successful connections to the hub.",
        connects,
    );
    counter(
        &mut o,
        "outpost_uplink_reconnects_total",
        "Connections to the hub after the first.",
        connects.saturating_sub(1),
    );
    counter(
        &mut o,
        "outpost_devices_broker_connects_total",
        "Successful connections to the device broker.",
        m.devices_connects.load(Relaxed),
    );
    regions(&mut o, m);
    histogram(
        &mut o,
        "outpost_uplink_puback_seconds",
        "Time from publishing a batch to its PUBACK.",
        &m.puback,
    );
    histogram(
        &mut o,
        "outpost_redis_ingest_seconds",
        "Duration of one ingest pipeline to Redis.",
        &m.redis_ingest,
    );
    gauge(
        &mut o,
        "outpost_redis_up",
        "1 when Redis answered the last probe and this scrape.",
        u64::from(redis.is_some() && m.live.redis_ok()) as f64,
    );
    if let Some(g) = redis {
        head(
            &mut o,
            "outpost_backlog_events",
            "gauge",
            "Events in the outbox not yet acknowledged by the hub, by class.",
        );
        for c in Class::ALL {
            let _ = writeln!(
                o,
                "outpost_backlog_events{{class=\"{c}\"}} {}",
                g.backlog[c.index()].depth
            );
        }
        head(
            &mut o,
            "outpost_backlog_oldest_age_seconds",
            "gauge",
            "Age of the oldest unacknowledged event, by class (0 when empty).",
        );
        for c in Class::ALL {
            let _ = writeln!(
                o,
                "outpost_backlog_oldest_age_seconds{{class=\"{c}\"}} {:.3}",
                g.backlog[c.index()].oldest_age_s
            );
        }
        gauge(
            &mut o,
            "outpost_devices_online",
            "Devices currently online (reported within their presence timeout).",
            g.devices_online as f64,
        );
        downlink(&mut o, g);
    }
    gauge(
        &mut o,
        "outpost_healthy",
        "1 when /healthz answers 200.",
        u64::from(healthy) as f64,
    );
    o
}

/// Downlink messages by state (SPEC §8), bad ones by reason, and what is waiting.
fn downlink(o: &mut String, g: &RedisGauges) {
    head(
        o,
        "outpost_downlink_messages_total",
        "counter",
        "Messages to devices by receipt state reached (one per device and state).",
    );
    for st in crate::event::ReceiptState::ALL {
        let n = g
            .downlink
            .iter()
            .find(|(k, _)| k == st.as_str())
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            o,
            "outpost_downlink_messages_total{{state=\"{}\"}} {n}",
            st.as_str()
        );
    }
    head(
        o,
        "outpost_downlink_bad_total",
        "counter",
        "Down messages refused, by reason (duplicates are ignored, not refused).",
    );
    for (k, n) in &g.downlink {
        if let Some(reason) = k.strip_prefix("bad:") {
            let _ = writeln!(
                o,
                "outpost_downlink_bad_total{{reason=\"{}\"}} {n}",
                esc(reason)
            );
        }
    }
    gauge(
        o,
        "outpost_downlink_pending",
        "Messages waiting at the gateway for their device.",
        g.downlink_pending as f64,
    );
}

/// Per-region families (SPEC §9), label `region`.
fn regions(o: &mut String, m: &Metrics) {
    let r = m.regions();
    head(
        o,
        "outpost_uplink_region_up",
        "gauge",
        "1 while this region's hub is connected.",
    );
    for (name, s) in &r {
        let _ = writeln!(
            o,
            "outpost_uplink_region_up{{region=\"{}\"}} {}",
            esc(name),
            u8::from(s.up)
        );
    }
    head(
        o,
        "outpost_uplink_region_connects_total",
        "counter",
        "Successful connections to this region's hub.",
    );
    for (name, s) in &r {
        let _ = writeln!(
            o,
            "outpost_uplink_region_connects_total{{region=\"{}\"}} {}",
            esc(name),
            s.connects
        );
    }
    head(
        o,
        "outpost_uplink_region_forwarded_total",
        "counter",
        "Events this region's hub acknowledged, by class.",
    );
    for (name, s) in &r {
        for c in Class::ALL {
            let _ = writeln!(
                o,
                "outpost_uplink_region_forwarded_total{{region=\"{}\",class=\"{c}\"}} {}",
                esc(name),
                s.forwarded[c.index()]
            );
        }
    }
    head(o, "outpost_uplink_region_missed_total", "counter", "Events trimmed before this region got them (it lagged past max_lag; outpost-hub sync fills them in).");
    for (name, s) in &r {
        let _ = writeln!(
            o,
            "outpost_uplink_region_missed_total{{region=\"{}\"}} {}",
            esc(name),
            s.missed
        );
    }
}

fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(o: &mut String, name: &str, help: &str, v: u64) {
    head(o, name, "counter", help);
    let _ = writeln!(o, "{name} {v}");
}

fn gauge(o: &mut String, name: &str, help: &str, v: f64) {
    head(o, name, "gauge", help);
    let _ = writeln!(o, "{name} {v}");
}

fn histogram(o: &mut String, name: &str, help: &str, h: &Histogram) {
    head(o, name, "histogram", help);
    let s = h.snapshot();
    for (le, n) in &s.cumulative {
        let _ = writeln!(o, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {}", s.count);
    let _ = writeln!(o, "{name}_sum {}", s.sum_seconds);
    let _ = writeln!(o, "{name}_count {}", s.count);
}

/// Escapes a label value (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_every_family_once_with_labels() {
        let m = Metrics::default();
        m.add_ingested(Class::Location, "nmea-gps", 3);
        m.add_accepted(Class::Presence, 1);
        m.add_drop("not\"json", 2);
        m.observe_puback(Duration::from_millis(30));
        let text = render(&m, Some(&RedisGauges::default()), true);
        assert!(text.contains("outpost_events_in_total{class=\"location\",source=\"nmea-gps\"} 3"));
        assert!(text.contains("outpost_events_in_total{class=\"presence\",source=\"gateway\"} 1"));
        assert!(text.contains("outpost_drops_total{reason=\"not\\\"json\"} 2"));
        assert!(text.contains("outpost_uplink_puback_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("outpost_uplink_puback_seconds_count 1"));
        assert!(text.contains("outpost_backlog_events{class=\"alert\"} 0"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split(' ').nth(2).unwrap();
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
        }
    }

    #[test]
    fn redis_gauges_are_left_out_when_redis_did_not_answer() {
        let text = render(&Metrics::default(), None, false);
        assert!(!text.contains("outpost_backlog_events"));
        assert!(text.contains("outpost_redis_up 0"));
        assert!(text.contains("outpost_healthy 0"));
    }
}
