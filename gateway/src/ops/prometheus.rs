//! The body of `/metrics`, encoded by `prometheus-client` in the OpenMetrics text format
//! (which Prometheus scrapes natively). Metric names and labels are part of the ops contract
//! (docs/install.md).
//!
//! A registry is built per scrape: the live counters and histograms of [`Metrics`] are
//! registered by handle (they share the atomics), and the values known only at scrape time —
//! Redis gauges, health, uplink state — as constants. Redis gauges are left out when Redis did
//! not answer, rather than reported as zero.

use super::gauges::RedisGauges;
use super::metrics::{ClassLabel, ReasonLabel, RegionClassLabels, RegionLabel, StateLabel};
use super::Metrics;
use crate::event::Class;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The `Content-Type` of the body (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The body of `/metrics`. `redis` is `None` when Redis did not answer in time (its gauges are
/// then left out and `outpost_redis_up` is 0).
pub fn render(m: &Metrics, redis: Option<&RedisGauges>, healthy: bool) -> String {
    let registry = registry(m, redis, healthy);
    let mut out = String::with_capacity(8 * 1024);
    // Writing to a String cannot fail; an encoder error would be a bug in a label value type.
    if let Err(e) = encode(&mut out, &registry) {
        tracing::error!(error = %e, "metrics encoding failed");
    }
    out
}

/// Counters are registered without their `_total` suffix: the encoder adds it to the samples.
fn registry(m: &Metrics, redis: Option<&RedisGauges>, healthy: bool) -> Registry {
    let mut r = Registry::default();
    let build = Family::<Vec<(String, String)>, Gauge>::default();
    build
        .get_or_create(&vec![(
            "version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        )])
        .set(1);
    r.register(
        "outpost_build_info",
        "Version of the running gateway",
        build,
    );
    r.register(
        "outpost_events_in",
        "Events accepted into the outbox, by class and source (device profile, or gateway)",
        m.events_in.clone(),
    );
    r.register(
        "outpost_events_forwarded",
        "Events the hub acknowledged (PUBACK), by class",
        m.forwarded.clone(),
    );
    r.register(
        "outpost_drops",
        "Inputs dropped, by reason",
        m.drops.clone(),
    );
    r.register(
        "outpost_inputs_duplicate",
        "Inputs recognised as already stored (redelivery, relay, retry)",
        m.duplicates.clone(),
    );
    r.register(
        "outpost_inputs_refused",
        "Inputs refused because their class's outbox share was full (kept at the broker)",
        m.refused.clone(),
    );
    register_uplink(&mut r, m);
    r.register(
        "outpost_devices_broker_connects",
        "Successful connections to the device broker",
        m.devices_connects.clone(),
    );
    register_regions(&mut r, m);
    r.register(
        "outpost_uplink_puback_seconds",
        "Time from publishing a batch to its PUBACK",
        m.puback.clone(),
    );
    r.register(
        "outpost_redis_ingest_seconds",
        "Duration of one ingest pipeline to Redis",
        m.redis_ingest.clone(),
    );
    r.register(
        "outpost_redis_up",
        "1 when Redis answered the last probe and this scrape",
        ConstGauge::new(i64::from(redis.is_some() && m.live.redis_ok())),
    );
    if let Some(g) = redis {
        register_redis(&mut r, g);
    }
    r.register(
        "outpost_healthy",
        "1 when /healthz answers 200",
        ConstGauge::new(i64::from(healthy)),
    );
    // `outpost_tak_*` per [[tak]] output, read from the links' atomics at this scrape.
    r.sub_registry_with_prefix("outpost")
        .register_collector(Box::new(m.tak.clone()));
    r
}

fn register_uplink(r: &mut Registry, m: &Metrics) {
    r.register(
        "outpost_uplink_up",
        "1 while connected to the hub",
        ConstGauge::new(i64::from(m.uplink_is_up())),
    );
    r.register(
        "outpost_uplink_connects",
        "Successful connections to the hub",
        m.uplink_connects.clone(),
    );
    r.register(
        "outpost_uplink_reconnects",
        "Connections to the hub after the first",
        ConstCounter::new(m.uplink_connects.get().saturating_sub(1)),
    );
}

/// The gauges read from Redis at this scrape.
fn register_redis(r: &mut Registry, g: &RedisGauges) {
    let depth = Family::<ClassLabel, Gauge>::default();
    let age = Family::<ClassLabel, Gauge<f64, AtomicU64>>::default();
    for c in Class::ALL {
        let l = ClassLabel { class: c.as_str() };
        let b = g.backlog[c.index()];
        depth
            .get_or_create(&l)
            .set(i64::try_from(b.depth).unwrap_or(i64::MAX));
        age.get_or_create(&l).set(b.oldest_age_s);
    }
    r.register(
        "outpost_backlog_events",
        "Events in the outbox not yet acknowledged by the hub, by class",
        depth,
    );
    r.register(
        "outpost_backlog_oldest_age_seconds",
        "Age of the oldest unacknowledged event, by class (0 when empty)",
        age,
    );
    r.register(
        "outpost_devices_online",
        "Devices currently online (reported within their presence timeout)",
        ConstGauge::new(i64::try_from(g.devices_online).unwrap_or(i64::MAX)),
    );
    register_downlink(r, g);
}

/// Per-region families (SPEC §9), label `region`, from the figures of every region so far.
fn register_regions(r: &mut Registry, m: &Metrics) {
    let up = Family::<RegionLabel, Gauge>::default();
    let connects = Family::<RegionLabel, Counter>::default();
    let forwarded = Family::<RegionClassLabels, Counter>::default();
    let missed = Family::<RegionLabel, Counter>::default();
    let refused = Family::<RegionLabel, Counter>::default();
    for (name, s) in m.regions() {
        let l = RegionLabel {
            region: name.clone(),
        };
        up.get_or_create(&l).set(i64::from(s.up));
        connects.get_or_create(&l).inc_by(s.connects);
        missed.get_or_create(&l).inc_by(s.missed);
        refused.get_or_create(&l).inc_by(s.refused);
        for c in Class::ALL {
            forwarded
                .get_or_create(&RegionClassLabels {
                    region: name.clone(),
                    class: c.as_str(),
                })
                .inc_by(s.forwarded[c.index()]);
        }
    }
    r.register(
        "outpost_uplink_region_up",
        "1 while this region's hub is connected",
        up,
    );
    r.register(
        "outpost_uplink_region_connects",
        "Successful connections to this region's hub",
        connects,
    );
    r.register(
        "outpost_uplink_region_forwarded",
        "Events this region's hub acknowledged, by class",
        forwarded,
    );
    r.register(
        "outpost_uplink_region_missed",
        "Events trimmed before this region got them (it lagged past max_lag; outpost-hub sync fills them in)",
        missed,
    );
    r.register(
        "outpost_uplink_region_refused",
        "Batches this region's hub broker did not deliver (PUBACK reason code: 0x10 no receiver subscribed, 0x87 not authorized, ...); kept and sent again",
        refused,
    );
}

/// Downlink messages by state (SPEC §8), bad ones by reason, and what is waiting; read from
/// `<prefix>:down:stats` and `<prefix>:down:expiry` at this scrape.
fn register_downlink(r: &mut Registry, g: &RedisGauges) {
    let messages = Family::<StateLabel, Counter>::default();
    for st in crate::event::ReceiptState::ALL {
        let n = g
            .downlink
            .iter()
            .find(|(k, _)| k == st.as_str())
            .map_or(0, |(_, n)| *n);
        messages
            .get_or_create(&StateLabel { state: st.as_str() })
            .inc_by(n);
    }
    let bad = Family::<ReasonLabel, Counter>::default();
    for (k, n) in &g.downlink {
        if let Some(reason) = k.strip_prefix("bad:") {
            bad.get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(*n);
        }
    }
    r.register(
        "outpost_downlink_messages",
        "Messages to devices by receipt state reached (one per device and state)",
        messages,
    );
    r.register(
        "outpost_downlink_bad",
        "Down messages refused, by reason (duplicates are ignored, not refused)",
        bad,
    );
    r.register(
        "outpost_downlink_pending",
        "Messages waiting at the gateway for their device",
        ConstGauge::new(i64::try_from(g.downlink_pending).unwrap_or(i64::MAX)),
    );
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
        assert!(text.contains("outpost_events_forwarded_total{class=\"status\"} 0"));
        assert!(text.contains("outpost_build_info{version=\""));
        assert!(
            !text.contains("outpost_tak_"),
            "no [[tak]]: no TAK families"
        );
        m.tak
            .get("site")
            .link
            .connects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let text = render(&m, Some(&RedisGauges::default()), true);
        assert!(
            text.contains("outpost_tak_connects_total{tak=\"site\"} 1"),
            "{text}"
        );
        assert!(text.contains("outpost_tak_sent_total{tak=\"site\",kind=\"pli\"} 0"));
        assert!(text.ends_with("# EOF\n"), "{text}");
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

    #[test]
    fn reconnects_are_connects_after_the_first() {
        let m = Metrics::default();
        m.uplink_connected();
        m.uplink_connected();
        let text = render(&m, None, true);
        assert!(text.contains("outpost_uplink_connects_total 2"), "{text}");
        assert!(text.contains("outpost_uplink_reconnects_total 1"), "{text}");
        assert!(text.contains("outpost_uplink_up 1"), "{text}");
    }

    #[test]
    fn regions_have_their_own_series_and_uplink_up_is_any_region() {
        let m = Metrics::default();
        assert!(m.region_connected("eu"));
        assert!(m.region_connected("us"));
        m.region("us", |r| r.missed += 4);
        m.region("eu", |r| r.forwarded[Class::Alert.index()] += 2);
        assert!(m.region_lost("us"));
        assert!(!m.region_lost("us"));
        let text = render(&m, None, true);
        assert!(
            text.contains("outpost_uplink_region_up{region=\"eu\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("outpost_uplink_region_up{region=\"us\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("outpost_uplink_region_connects_total{region=\"us\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("outpost_uplink_region_missed_total{region=\"us\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("outpost_uplink_region_forwarded_total{region=\"eu\",class=\"alert\"} 2"),
            "{text}"
        );
        assert!(text.contains("outpost_uplink_up 1"), "{text}");
        assert!(text.contains("outpost_uplink_connects_total 2"), "{text}");
        assert!(m.region_lost("eu"));
        assert!(!m.uplink_is_up());
    }

    #[test]
    fn downlink_families_come_from_redis() {
        let g = RedisGauges {
            downlink: vec![("bad:too_long".into(), 3), ("delivered".into(), 2)],
            downlink_pending: 5,
            ..Default::default()
        };
        let text = render(&Metrics::default(), Some(&g), true);
        assert!(
            text.contains("outpost_downlink_messages_total{state=\"delivered\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("outpost_downlink_messages_total{state=\"queued\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("outpost_downlink_bad_total{reason=\"too_long\"} 3"),
            "{text}"
        );
        assert!(text.contains("outpost_downlink_pending 5"), "{text}");
    }
}
