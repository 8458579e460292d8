//! What the scale model reads off the running hub: CPU of the processes, Redis `INFO`, the
//! receivers' `/metrics` (stored events, the lag histogram).

use std::time::{Duration, Instant};

use anyhow::Context;
use outpost_system_tests::HubProc;

use crate::measure::hub::sum_of;
use crate::procstat;

/// CPU of the watched processes: (hubs, broker, redis, this process).
pub(super) struct Cpu {
    pub(super) hubs: Vec<u32>,
    pub(super) broker: u32,
    pub(super) redis: u32,
}

impl Cpu {
    pub(super) fn read(&self) -> [f64; 4] {
        let s = |p: u32| {
            procstat::sample(p)
                .map(|s| s.cpu.as_secs_f64())
                .unwrap_or(0.0)
        };
        [
            self.hubs.iter().map(|p| s(*p)).sum(),
            s(self.broker),
            s(self.redis),
            s(std::process::id()),
        ]
    }
}

pub(super) fn info_field(
    conn: &mut redis::Connection,
    section: &str,
    field: &str,
) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg(section).query(conn)?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("INFO {section} has no {field}"))
}

/// Events the receivers stored so far (their `/metrics`).
pub(super) fn stored(hubs: &[HubProc]) -> u64 {
    hubs.iter()
        .map(|h| {
            let m = h.api().text("/metrics").unwrap_or_default();
            sum_of(&m, "outpost_hub_events_stored_total")
        })
        .sum()
}

/// Waits until `target` events are stored or `limit` passes; when it was reached.
pub(super) fn wait_stored(hubs: &[HubProc], target: u64, limit: Duration) -> Option<Instant> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if stored(hubs) >= target {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Quantile `q` of the hub's rx → stored lag histogram (upper bucket bound, seconds).
pub(super) fn lag_quantile(hubs: &[HubProc], q: f64) -> f64 {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for h in hubs {
        let m = h.api().text("/metrics").unwrap_or_default();
        for l in m
            .lines()
            .filter(|l| l.starts_with("outpost_hub_lag_seconds_bucket"))
        {
            let le = l
                .split("le=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(|v| {
                    if v == "+Inf" {
                        f64::INFINITY
                    } else {
                        v.parse().unwrap_or(0.0)
                    }
                });
            let n = l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
            if let (Some(le), Some(n)) = (le, n) {
                match buckets.iter_mut().find(|b| b.0 == le) {
                    Some(b) => b.1 += n,
                    None => buckets.push((le, n)),
                }
            }
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
    buckets
        .iter()
        .find(|b| b.1 >= q * total)
        .map(|b| b.0)
        .unwrap_or(f64::NAN)
}
