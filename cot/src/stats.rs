//! TAK figures on `/metrics`, the same families in the gateway and the hub: each `[[tak]]`
//! output's link ([`LinkStats`]) and send queue ([`QueueStats`]), by `tak` name.
//!
//! [`Links`] keeps them per name for the life of the process, so a reconfigured output (the
//! gateway's reload) keeps counting where it left off, and it is a `prometheus-client`
//! [`Collector`]: registered once (under the registry's prefix, `outpost` or `outpost_hub`),
//! it reads the atomics at every scrape.

use crate::link::{LinkStats, SentKind};
use crate::queue::{QueueStats, SendQueue};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

/// One output's figures.
#[derive(Debug, Default)]
pub struct TakStats {
    pub link: Arc<LinkStats>,
    pub queue: Arc<QueueStats>,
    /// The running queue, for its length.
    current: Mutex<Weak<SendQueue>>,
}

impl TakStats {
    /// A new send queue of `cap` counting into these figures (the one `queue_len` reads).
    pub fn new_queue(&self, cap: usize) -> Arc<SendQueue> {
        let q = Arc::new(SendQueue::with_stats(cap, self.queue.clone()));
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&q);
        q
    }

    fn queue_len(&self) -> usize {
        let w = self.current.lock().unwrap_or_else(|e| e.into_inner());
        w.upgrade().map_or(0, |q| q.len())
    }
}

/// Every output's figures, by name, in the order first seen.
#[derive(Debug, Default)]
pub struct Links {
    by_name: Mutex<Vec<(String, Arc<TakStats>)>>,
}

impl Links {
    /// The figures of output `name` (created on first use, then the same ones).
    pub fn get(&self, name: &str) -> Arc<TakStats> {
        let mut g = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, s)) = g.iter().find(|(n, _)| n == name) {
            return s.clone();
        }
        let s = Arc::new(TakStats::default());
        g.push((name.to_string(), s.clone()));
        s
    }

    fn all(&self) -> Vec<(String, Arc<TakStats>)> {
        self.by_name
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

type Labels = Vec<(&'static str, String)>;

fn tak(name: &str) -> Labels {
    vec![("tak", name.to_string())]
}

/// Which atomic of an output's figures a counter family reads.
type Field = fn(&TakStats) -> &AtomicU64;

/// Counters read from one atomic per output: name, help, field.
const COUNTERS: [(&str, &str, Field); 9] = [
    ("tak_connects", "Connections to the TAK server", |s| {
        &s.link.connects
    }),
    (
        "tak_disconnects",
        "Connections to the TAK server lost (retried with backoff)",
        |s| &s.link.disconnects,
    ),
    (
        "tak_picture_sent",
        "PLIs sent as the current picture on (re)connect (also in tak_sent)",
        |s| &s.link.picture_sent,
    ),
    (
        "tak_queue_replaced",
        "Unsent positions replaced by a newer one of the same unit",
        |s| &s.queue.replaced,
    ),
    (
        "tak_queue_dropped",
        "CoT events dropped because the send queue was full (never alerts)",
        |s| &s.queue.dropped_full,
    ),
    ("tak_received", "CoT events read from the TAK server", |s| {
        &s.link.received
    }),
    (
        "tak_malformed",
        "CoT events from the server skipped as malformed, oversize or not UTF-8",
        |s| &s.link.malformed,
    ),
    (
        "tak_echoes",
        "Our own CoT events echoed back by the server, recognised and skipped",
        |s| &s.link.echoes,
    ),
    (
        "tak_ignored",
        "CoT events not taken in (other types, or subscribe = false)",
        |s| &s.link.ignored,
    ),
];

fn encode<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    m: &M,
) -> Result<(), std::fmt::Error> {
    m.encode(enc.encode_descriptor(name, help, None, m.metric_type())?)
}

impl Collector for Links {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let links = self.all();
        if links.is_empty() {
            return Ok(());
        }
        let up = Family::<Labels, Gauge>::default();
        let len = Family::<Labels, Gauge>::default();
        let sent = Family::<Labels, Counter>::default();
        for (name, s) in &links {
            up.get_or_create(&tak(name))
                .set(i64::from(load_bool(&s.link.connected)));
            len.get_or_create(&tak(name))
                .set(i64::try_from(s.queue_len()).unwrap_or(i64::MAX));
            for k in SentKind::ALL {
                let mut l = tak(name);
                l.push(("kind", k.as_str().to_string()));
                sent.get_or_create(&l)
                    .inc_by(s.link.sent_kind[k as usize].load(Relaxed));
            }
        }
        encode(
            &mut enc,
            "tak_up",
            "1 while connected to the TAK server",
            &up,
        )?;
        encode(
            &mut enc,
            "tak_sent",
            "CoT events written to the TAK server, by kind (pli, alert, chat, other)",
            &sent,
        )?;
        encode(
            &mut enc,
            "tak_queue_len",
            "CoT events waiting in the send queue",
            &len,
        )?;
        for (metric, help, field) in COUNTERS {
            let f = Family::<Labels, Counter>::default();
            for (name, s) in &links {
                f.get_or_create(&tak(name)).inc_by(field(s).load(Relaxed));
            }
            encode(&mut enc, metric, help, &f)?;
        }
        Ok(())
    }
}

fn load_bool(b: &AtomicBool) -> bool {
    b.load(Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Kind, Outgoing};
    use prometheus_client::registry::Registry;

    #[test]
    fn every_family_per_output_under_the_registry_prefix_and_counts_survive_a_new_queue() {
        let links = Arc::new(Links::default());
        let s = links.get("regional");
        let q = s.new_queue(16);
        let pos = |x: &str| Outgoing {
            kind: Kind::Position("r7".into()),
            xml: x.into(),
        };
        q.push(pos("a"));
        q.push(pos("b"));
        s.link.connects.fetch_add(2, Relaxed);
        s.link.sent_kind[SentKind::Alert as usize].fetch_add(1, Relaxed);
        drop(q);
        let q2 = links.get("regional").new_queue(16);
        q2.push(pos("c"));
        q2.push(pos("d"));
        let mut r = Registry::with_prefix("outpost");
        r.register_collector(Box::new(links.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        for want in [
            "outpost_tak_connects_total{tak=\"regional\"} 2",
            "outpost_tak_queue_replaced_total{tak=\"regional\"} 2",
            "outpost_tak_sent_total{tak=\"regional\",kind=\"alert\"} 1",
            "outpost_tak_sent_total{tak=\"regional\",kind=\"pli\"} 0",
            "outpost_tak_queue_len{tak=\"regional\"} 1",
            "outpost_tak_up{tak=\"regional\"} 0",
            "outpost_tak_malformed_total{tak=\"regional\"} 0",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }

    #[test]
    fn sent_kind_by_the_root_type() {
        let unit = crate::encode::Unit {
            uid: "x type=\"b-t-f\"".into(),
            callsign: "c".into(),
            cot_type: "a-f-G".into(),
        };
        let now = chrono::Utc::now();
        let loc = outpost_proto::event::Location::default();
        let pli = crate::encode::pli(&unit, &loc, None, now, now);
        assert_eq!(SentKind::of(&pli), SentKind::Pli);
        let chat = crate::encode::chat(&unit, &crate::encode::ChatTo::AllChatRooms, "t", "m", now);
        assert_eq!(SentKind::of(&chat), SentKind::Chat);
        let a = outpost_proto::event::Alert {
            reason: "emergency".into(),
            ..Default::default()
        };
        let e = crate::encode::emergency(&unit, &a, None, now);
        assert_eq!(SentKind::of(&e), SentKind::Alert);
        assert_eq!(SentKind::of("not xml"), SentKind::Other);
    }
}
