//! The results table (Markdown): one row per figure, Outpost | bridge | ratio | goal.

use std::fmt::Write as _;

use crate::load::Sent;
use crate::measure::{drain::Drain, footprint::Footprint, latency::Latency, sustained::Sustained};
use crate::sut::Kind;

#[derive(Default)]
pub struct Results {
    pub header: String,
    pub generator: Option<Sent>,
    pub drain: Vec<Drain>,
    pub sustained: Vec<Sustained>,
    pub latency: Vec<Latency>,
    pub footprint: Vec<Footprint>,
    pub nmea: Option<String>,
}

fn of<T>(v: &[T], kind: Kind, k: impl Fn(&T) -> Kind) -> Option<&T> {
    v.iter().find(|x| k(x) == kind)
}

fn ms(d: std::time::Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

fn rate(r: f64) -> String {
    if r >= 10_000.0 {
        format!("{:.0}k/s", r / 1e3)
    } else {
        format!("{r:.0}/s")
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

impl Results {
    pub fn markdown(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "{}\n", self.header);
        let gateway = !(self.drain.is_empty()
            && self.sustained.is_empty()
            && self.latency.is_empty()
            && self.footprint.is_empty()
            && self.generator.is_none());
        if gateway {
            self.gateway_table(&mut t);
        }
        if let Some(n) = &self.nmea {
            let _ = writeln!(
                t,
                "\nNMEA decode (`cargo bench -p outpost --bench nmea`):\n\n```\n{n}\n```"
            );
        }
        t
    }

    /// The gateway measures' table (none when only the hub or NMEA measures ran).
    fn gateway_table(&self, t: &mut String) {
        let _ = writeln!(
            t,
            "| measure | Outpost | Mosquitto bridge | ratio | goal | |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|");
        self.drain_rows(t);
        self.sustained_rows(t);
        self.latency_rows(t);
        self.footprint_rows(t);
        if let Some(g) = &self.generator {
            let _ = writeln!(
                t,
                "| load generator alone (4 connections → bare broker, {} msgs) | | | | context: {} | |",
                g.published,
                rate(g.rate())
            );
        }
    }

    fn drain_rows(&self, t: &mut String) {
        let k = |d: &Drain| d.kind;
        let (Some(o), Some(b)) = (
            of(&self.drain, Kind::Outpost, k),
            of(&self.drain, Kind::Bridge, k),
        ) else {
            return;
        };
        let _ = writeln!(
            t,
            "| 1a. backlog of {}: hub back → first event | {} | {} | {:.2}× | ≤ 1 s | {} |",
            o.n,
            ms(o.first_after),
            ms(b.first_after),
            o.first_after.as_secs_f64() / b.first_after.as_secs_f64().max(1e-9),
            verdict(o.first_after.as_secs_f64() <= 1.0)
        );
        let ratio = o.rate / b.rate.max(1e-9);
        let _ = writeln!(
            t,
            "| 1b. drain rate, first → last event at hub | {} | {} | **{ratio:.1}×** | ≥ 250k/s, ≥ 10× | {} |",
            rate(o.rate),
            rate(b.rate),
            verdict(o.rate >= 250_000.0 && ratio >= 10.0)
        );
        let _ = writeln!(
            t,
            "| context: events at hub / backlog; backlog accepted in (publish rate) | {}/{}; {} ({}) | {}/{}; {} ({}) | | | |",
            o.delivered, o.n, ms(o.accept_time), rate(o.publish_rate),
            b.delivered, b.n, ms(b.accept_time), rate(b.publish_rate),
        );
    }

    fn sustained_rows(&self, t: &mut String) {
        let k = |s: &Sustained| s.kind;
        let v = &self.sustained;
        let (Some(o), Some(b), Some(bare)) = (
            of(v, Kind::Outpost, k),
            of(v, Kind::Bridge, k),
            of(v, Kind::Bare, k),
        ) else {
            return;
        };
        let cap = |s: &Sustained| match (s.saturated, s.generator_bound) {
            (Some(r), _) => format!("; saturated at {} events", rate(r)),
            (None, true) => "; generator-bound".into(),
            _ => String::new(),
        };
        let vs_bare = o.max_ok / bare.max_ok.max(1e-9);
        let vs_bridge = o.max_ok / b.max_ok.max(1e-9);
        let _ = writeln!(
            t,
            "| 2. sustained rate, hub up, no growing backlog (bare QoS 1 subscriber: {}{}) | {}{} | {}{} | **{:.0}% of bare**, {:.2}× bridge | ≥ 90% of bare, ≥ 1× bridge | {} |",
            rate(bare.max_ok), cap(bare),
            rate(o.max_ok), cap(o),
            rate(b.max_ok), cap(b),
            vs_bare * 100.0, vs_bridge,
            verdict(vs_bare >= 0.9 && vs_bridge >= 1.0)
        );
    }

    fn latency_rows(&self, t: &mut String) {
        let k = |l: &Latency| l.kind;
        let (Some(o), Some(b)) = (
            of(&self.latency, Kind::Outpost, k),
            of(&self.latency, Kind::Bridge, k),
        ) else {
            return;
        };
        let _ = writeln!(
            t,
            "| 3. latency at 1,000 msg/s, publish → hub, p50 | {} | {} | {:.2}× | | |",
            ms(o.p50),
            ms(b.p50),
            o.p50.as_secs_f64() / b.p50.as_secs_f64().max(1e-9)
        );
        let r = o.p99.as_secs_f64() / b.p99.as_secs_f64().max(1e-9);
        let _ = writeln!(
            t,
            "| 3. … p99 (max; matched/sent) | {} ({}; {}/{}) | {} ({}; {}/{}) | **{r:.2}×** | ≤ 1.2× bridge | {} |",
            ms(o.p99), ms(o.max), o.matched, o.sent,
            ms(b.p99), ms(b.max), b.matched, b.sent,
            verdict(r <= 1.2)
        );
        if !o.redis_stalls.is_empty() {
            let _ = writeln!(
                t,
                "| context: Outpost's Redis `LATENCY LATEST` (≥ 20 ms) during 3. | {} | | | | |",
                o.redis_stalls.join("; ")
            );
        }
    }

    fn footprint_rows(&self, t: &mut String) {
        let k = |f: &Footprint| f.kind;
        if let (Some(o), Some(b)) = (
            of(&self.footprint, Kind::Outpost, k),
            of(&self.footprint, Kind::Bridge, k),
        ) {
            let _ = writeln!(
                t,
                "| 4. RSS at {} devices × 1 Hz (peak) | {} ({}) | {} ({}) bridging mosquitto | | ≤ 12 MB at 100 | {} |",
                o.devices, mib(o.main.rss), mib(o.main.hwm), mib(b.main.rss), mib(b.main.hwm),
                goal_at_100(o.devices, o.main.hwm <= 12_000_000)
            );
            let _ = writeln!(
                t,
                "| 4. CPU at {} devices × 1 Hz | {:.2}% of a core | {:.2}% | | ≤ 1% at 100 | {} |",
                o.devices,
                o.main.cpu * 100.0,
                b.main.cpu * 100.0,
                goal_at_100(o.devices, o.main.cpu <= 0.01)
            );
            if let Some(r) = &o.redis {
                let _ = writeln!(
                    t,
                    "| context: Outpost's Redis (AOF, fsync always) at that load | {} RSS, {:.2}% CPU | | | | |",
                    mib(r.rss), r.cpu * 100.0
                );
            }
            // The raw OwnTracks message a device sends (what the bridge forwards as it is).
            let raw = crate::load::payload(7, crate::load::tst_base()).len();
            let topic = crate::load::topic(7).len();
            let _ = writeln!(
                t,
                "| 4. uplink bytes per location event (MQTT payload + topic; {} events); raw OwnTracks message {} B + topic {} B | {:.0} B | {:.0} B | {:.2}× | | |",
                o.events,
                raw,
                topic,
                o.uplink_bytes_per_event,
                b.uplink_bytes_per_event,
                o.uplink_bytes_per_event / b.uplink_bytes_per_event.max(1e-9)
            );
        }
        if let Some(d) = of(&self.drain, Kind::Outpost, |d: &Drain| d.kind) {
            if let Some(bpe) = d.redis_bytes_per_event {
                let _ = writeln!(
                    t,
                    "| 4. Redis bytes per buffered location (`used_memory` Δ / {}) | {bpe:.0} B | (RAM queue, not durable) | | ≤ 120 B | {} |",
                    d.n,
                    verdict(bpe <= 120.0)
                );
            }
        }
    }
}

/// The footprint goals are set at 100 devices; at other counts the figures are reported only.
fn goal_at_100(devices: u64, ok: bool) -> &'static str {
    if devices == 100 {
        verdict(ok)
    } else {
        "reported"
    }
}
