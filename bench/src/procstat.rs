//! Resident memory and CPU time of a process, from `/proc` (Linux).

use std::time::{Duration, Instant};

use anyhow::Context;

/// A reading of one process.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Instant,
    /// utime + stime.
    pub cpu: Duration,
    /// VmRSS, bytes.
    pub rss: u64,
    /// VmHWM (peak RSS), bytes.
    pub hwm: u64,
}

pub fn sample(pid: u32) -> anyhow::Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Sample {
        at: Instant::now(),
        cpu: Duration::from_micros(ticks * 1_000_000 / hz),
        rss: kib("VmRSS:"),
        hwm: kib("VmHWM:"),
    })
}

/// Share of one core used between two samples.
pub fn cpu_share(a: &Sample, b: &Sample) -> f64 {
    (b.cpu.as_secs_f64() - a.cpu.as_secs_f64()) / (b.at - a.at).as_secs_f64().max(1e-9)
}
