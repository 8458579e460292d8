//! What the hub benchmark reports: each system's result, the receivers' own tally from their
//! metrics and logs, Redis' CPU and command times, and the Markdown table.

use std::time::Duration;

use outpost_system_tests::HubProc;

/// One system's result.
#[derive(Debug, Clone)]
pub struct HubResult {
    pub name: String,
    pub events: u64,
    pub elapsed: Duration,
    /// CPU seconds of the receiver processes over the run.
    pub cpu_s: f64,
    /// CPU seconds of the Redis servers over the run (their `INFO cpu`); 0 where none.
    pub redis_cpu_s: f64,
    /// What the receivers saw (hubs only): batches received (redeliveries included) of the
    /// batches published, events they found already stored, broker sessions lost.
    pub receivers: Option<ReceiverTally>,
}

/// The receivers' own account of a run, from their `/metrics` and logs: a slow run with
/// redelivered batches or lost sessions is a different problem from a slow store.
#[derive(Debug, Clone, Default)]
pub struct ReceiverTally {
    pub batches_published: u64,
    pub batches_received: u64,
    pub duplicates: u64,
    pub sessions_lost: u64,
    /// Mean time a batch spent in Redis (`outpost_hub_store_seconds`), all receivers.
    pub store_mean: Duration,
}

impl ReceiverTally {
    pub(super) fn of(hubs: &[HubProc], published: usize) -> ReceiverTally {
        let mut t = ReceiverTally {
            batches_published: published as u64,
            ..ReceiverTally::default()
        };
        let (mut secs, mut n) = (0.0, 0.0);
        for h in hubs {
            let metrics = h.api().text("/metrics").unwrap_or_default();
            secs += float_of(&metrics, "outpost_hub_store_seconds_sum");
            n += float_of(&metrics, "outpost_hub_store_seconds_count");
            t.batches_received += sum_of(&metrics, "outpost_hub_batches_total");
            t.duplicates += sum_of(&metrics, "outpost_hub_duplicates_total");
            t.sessions_lost += h.log().matches("hub broker connection lost").count() as u64;
        }
        t.store_mean = Duration::from_secs_f64(if n > 0.0 { secs / n } else { 0.0 });
        t
    }
}

/// Sum of every sample of one metric family in a Prometheus text exposition.
pub(crate) fn sum_of(text: &str, name: &str) -> u64 {
    float_of(text, name) as u64
}

/// [`sum_of`] unrounded.
fn float_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
}

impl HubResult {
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// CPU-seconds per 100k events.
    pub fn cpu_per_100k(&self) -> f64 {
        self.cpu_s * 100_000.0 / self.events.max(1) as f64
    }
    /// Redis CPU-seconds per 100k events.
    pub fn redis_cpu_per_100k(&self) -> f64 {
        self.redis_cpu_s * 100_000.0 / self.events.max(1) as f64
    }
}

/// CPU seconds Redis servers have used (`used_cpu_user` + `used_cpu_sys` of `INFO cpu`),
/// summed over `urls`: with the elapsed time it says whether Redis was the busy part.
pub(super) fn redis_cpu(urls: &[String]) -> anyhow::Result<f64> {
    let mut sum = 0.0;
    for u in urls {
        let mut c = redis::Client::open(u.as_str())?.get_connection()?;
        let info: String = redis::cmd("INFO").arg("cpu").query(&mut c)?;
        sum += info
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| *k == "used_cpu_user" || *k == "used_cpu_sys")
            .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
            .sum::<f64>();
    }
    Ok(sum)
}

/// Redis' `INFO commandstats` rows with the most time (µs in all), most first: "cmd calls
/// µs/call µs".
pub(super) fn redis_time(conn: &mut redis::Connection) -> anyhow::Result<Vec<String>> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn)?;
    let field = |l: &str, k: &str| -> f64 {
        l.split([':', ','])
            .find_map(|kv| kv.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let mut rows: Vec<(f64, String)> = info
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .map(|l| {
            let name = l.split(':').next().unwrap_or("?");
            let (calls, usec) = (field(l, "calls="), field(l, "usec="));
            let per = if calls > 0.0 { usec / calls } else { 0.0 };
            (
                usec,
                format!("{name:<18} {calls:>9} calls {per:>8.2} µs/call {usec:>12} µs"),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(rows.into_iter().take(10).map(|r| r.1).collect())
}

/// `per_100k` to two places, or `-` where no CPU was measured.
fn measured(cpu_s: f64, per_100k: f64) -> String {
    if cpu_s > 0.0 {
        format!("{per_100k:.2}")
    } else {
        "-".into()
    }
}

/// The Markdown table.
pub fn markdown(r: &[HubResult]) -> String {
    let bare = r
        .iter()
        .find(|x| x.name.starts_with("bare"))
        .map(HubResult::rate)
        .unwrap_or(1.0);
    let xadds: Vec<f64> = r
        .iter()
        .filter(|x| x.name.contains("XADD"))
        .map(HubResult::rate)
        .collect();
    let xadd = if xadds.is_empty() {
        1.0
    } else {
        xadds.iter().sum::<f64>() / xadds.len() as f64
    };
    let mut s = String::from("| system | events | time | events/s | vs bare mosquitto_sub | vs Redis XADD (mean of before and after) | CPU-s per 100k events | Redis CPU-s per 100k events | mean store time per batch | batches received / published | duplicates | sessions lost |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for x in r {
        let (store, recv, dups, lost) = match &x.receivers {
            Some(t) => (
                format!("{:.1} ms", t.store_mean.as_secs_f64() * 1e3),
                format!("{} / {}", t.batches_received, t.batches_published),
                t.duplicates.to_string(),
                t.sessions_lost.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        s += &format!(
            "| {} | {} | {:.2} s | {:.0} | {:.2}× | {:.2}× | {} | {} | {store} | {recv} | {dups} | {lost} |\n",
            x.name,
            x.events,
            x.elapsed.as_secs_f64(),
            x.rate(),
            x.rate() / bare,
            x.rate() / xadd,
            measured(x.cpu_s, x.cpu_per_100k()),
            measured(x.redis_cpu_s, x.redis_cpu_per_100k()),
        );
    }
    if let Some(q) = cluster_ratio(r) {
        s += &format!(
            "\n3-node cluster, 2 receivers against 1 (mean events/s of the runs in order {:?}): **{q:.2}×**\n",
            super::CLUSTER_ORDER
        );
    }
    s
}

/// The mean rate of the cluster runs with 2 receivers over that with 1, where both ran.
pub(crate) fn cluster_ratio(r: &[HubResult]) -> Option<f64> {
    let mean = |n: &str| {
        let rates: Vec<f64> = r
            .iter()
            .filter(|x| x.name.contains(n) && x.name.ends_with("3-node cluster"))
            .map(HubResult::rate)
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    };
    Some(mean(" 2 receiver")? / mean(" 1 receiver")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, secs: u64) -> HubResult {
        HubResult {
            name: name.into(),
            events: 100_000,
            elapsed: Duration::from_secs(secs),
            cpu_s: 1.0,
            redis_cpu_s: 1.0,
            receivers: None,
        }
    }

    #[test]
    fn cluster_ratio_is_the_mean_of_two_receivers_over_one() {
        let r = [
            run("outpost-hub, 1 receiver(s), one Redis", 1),
            run("outpost-hub, 1 receiver(s), 3-node cluster", 2),
            run("outpost-hub, 2 receiver(s), 3-node cluster", 4),
            run("outpost-hub, 2 receiver(s), 3-node cluster", 4),
            run("outpost-hub, 1 receiver(s), 3-node cluster", 2),
        ];
        // 25k/s against 50k/s; the one-Redis run is not counted.
        assert_eq!(cluster_ratio(&r), Some(0.5));
        assert_eq!(cluster_ratio(&r[..2]), None);
    }
}
