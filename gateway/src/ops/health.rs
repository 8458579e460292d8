//! Liveness of the long-lived components, for the systemd watchdog and `/healthz` (STYLE 11).
//!
//! Each component's task holds a [`Running`] guard while it runs (dropped = dead), and beats
//! from its main loop. A component is *wedged* when it runs but has not beaten for
//! [`Liveness::stale_after`]. A disconnected uplink or an unreachable Redis is not wedged:
//! their loops keep turning (reconnecting), so the watchdog keeps being fed and only
//! `/healthz` reports them.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The components the watchdog watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The device broker source (its event loop beats).
    Ingest,
    /// Serial and gpsd sources: checked for being alive only (their reads end in a no-data
    /// timeout of the profile's choosing, so they cannot hang unseen, and may legitimately be
    /// quiet for longer than any fixed beat interval).
    Serial,
    /// The Redis probe (a PING loop on the shared connection).
    Store,
    /// The uplink to the hub.
    Uplink,
    /// The presence sweeper.
    Presence,
    /// The outbox budget guard (thinning).
    Buffer,
    /// Messages to devices (SPEC §8): the hub subscription and the dispatcher.
    Downlink,
}

impl Component {
    /// Every component.
    pub const ALL: [Component; 7] = [
        Component::Ingest,
        Component::Serial,
        Component::Store,
        Component::Uplink,
        Component::Presence,
        Component::Buffer,
        Component::Downlink,
    ];

    /// Lowercase name, for `/healthz` reasons and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Ingest => "ingest",
            Component::Serial => "serial",
            Component::Store => "store",
            Component::Uplink => "uplink",
            Component::Presence => "presence",
            Component::Buffer => "buffer",
            Component::Downlink => "downlink",
        }
    }

    /// Whether its loop beats (the presence sweeper is only checked for being alive).
    fn beats(self) -> bool {
        // Only loops with a bounded period beat; the others are checked for being alive.
        matches!(
            self,
            Component::Ingest | Component::Store | Component::Uplink
        )
    }
}

/// Liveness state of every component (part of [`super::Metrics`]).
#[derive(Debug)]
pub struct Liveness {
    start: Instant,
    /// Tasks of the component currently running.
    running: [AtomicU32; 7],
    /// Set once a task of the component was started: only started components can be dead.
    started: [AtomicBool; 7],
    /// Last beat, ms since `start`.
    beat_ms: [AtomicU64; 7],
    /// Beats older than this mean wedged.
    stale_ms: AtomicU64,
    /// The uplink went down at this ms since `start` (`-1`: it is up).
    uplink_down_ms: AtomicI64,
    /// Result of the last Redis probe.
    redis_ok: AtomicBool,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            start: Instant::now(),
            running: Default::default(),
            started: Default::default(),
            beat_ms: Default::default(),
            stale_ms: AtomicU64::new(DEFAULT_STALE.as_millis() as u64),
            uplink_down_ms: AtomicI64::new(0),
            redis_ok: AtomicBool::new(false),
        }
    }
}

/// Default wedge threshold: longer than any loop's longest legitimate pause (uplink connect
/// timeout 10 s + reconnect backoff ≤ 30 s; device broker keep-alive pings every 30 s).
pub const DEFAULT_STALE: Duration = Duration::from_secs(120);

/// Marks a component's task as running until dropped.
#[must_use = "the task is considered dead once this is dropped"]
pub struct Running<'a>(&'a Liveness, Component);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running[self.1 as usize].fetch_sub(1, Relaxed);
    }
}

impl Liveness {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A task of `c` starts; it counts as running (and beats once) until the guard drops.
    pub fn running(&self, c: Component) -> Running<'_> {
        self.started[c as usize].store(true, Relaxed);
        self.running[c as usize].fetch_add(1, Relaxed);
        self.beat(c);
        Running(self, c)
    }

    /// `c`'s main loop turned.
    pub fn beat(&self, c: Component) {
        self.beat_ms[c as usize].store(self.now_ms(), Relaxed);
    }

    /// Sets the wedge threshold (at least [`DEFAULT_STALE`]).
    pub fn set_stale_after(&self, d: Duration) {
        self.stale_ms
            .store(d.max(DEFAULT_STALE).as_millis() as u64, Relaxed);
    }

    /// Records the uplink state as seen now (called from the supervisor loop).
    pub fn observe_uplink(&self, up: bool) {
        if up {
            self.uplink_down_ms.store(-1, Relaxed);
        } else {
            let now = self.now_ms() as i64;
            let _ = self
                .uplink_down_ms
                .compare_exchange(-1, now, Relaxed, Relaxed);
        }
    }

    /// How long the uplink has been down (`None` when up). Down since start counts.
    pub fn uplink_down_for(&self) -> Option<Duration> {
        let since = self.uplink_down_ms.load(Relaxed);
        (since >= 0).then(|| Duration::from_millis(self.now_ms().saturating_sub(since as u64)))
    }

    /// Records the outcome of a Redis probe.
    pub fn set_redis_ok(&self, ok: bool) {
        self.redis_ok.store(ok, Relaxed);
    }

    /// Whether the last Redis probe answered.
    pub fn redis_ok(&self) -> bool {
        self.redis_ok.load(Relaxed)
    }

    /// Components that are dead or wedged, with why. Empty = the watchdog may be fed.
    pub fn stuck(&self) -> Vec<String> {
        let now = self.now_ms();
        let stale = self.stale_ms.load(Relaxed);
        let mut out = Vec::new();
        for c in Component::ALL {
            let i = c as usize;
            if !self.started[i].load(Relaxed) {
                continue;
            }
            if self.running[i].load(Relaxed) == 0 {
                out.push(format!("{} task dead", c.as_str()));
            } else if c.beats() {
                let age = now.saturating_sub(self.beat_ms[i].load(Relaxed));
                if age > stale {
                    out.push(format!(
                        "{} task wedged (no progress for {} s)",
                        c.as_str(),
                        age / 1000
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_task_is_reported_and_unstarted_is_not() {
        let l = Liveness::default();
        assert!(l.stuck().is_empty());
        let g = l.running(Component::Ingest);
        assert!(l.stuck().is_empty());
        drop(g);
        assert_eq!(l.stuck(), vec!["ingest task dead".to_string()]);
    }

    #[test]
    fn uplink_down_since_first_seen_down() {
        let l = Liveness::default();
        assert!(l.uplink_down_for().is_some(), "down from start");
        l.observe_uplink(true);
        assert_eq!(l.uplink_down_for(), None);
        l.observe_uplink(false);
        let d = l.uplink_down_for().unwrap();
        assert!(d < Duration::from_secs(1));
    }
}
