//! The poll cycle of one modem as a sans-I/O state machine ([`AtPoller`]): what to write, the
//! lines that come back, the passage of time; one status event per cycle.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::responses::{classify, merge_cesq, merge_csq, parse_cesq, parse_csq, Reply};
use crate::event::{Body, Event, Status, TsSrc};

/// One query the poller can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtCommand {
    /// `AT+CSQ`: RSSI and BER; every modem has it, but on LTE many report RSSI only.
    Csq,
    /// `AT+CESQ`: per-technology values (RSRP/RSRQ on LTE); not on older modems.
    Cesq,
}

impl AtCommand {
    /// The bytes to write, terminated by `\r` as V.250 requires.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            AtCommand::Csq => b"AT+CSQ\r",
            AtCommand::Cesq => b"AT+CESQ\r",
        }
    }
}

/// Which queries make up one poll cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtQueries {
    /// `AT+CSQ` only.
    Csq,
    /// `AT+CESQ` only.
    Cesq,
    /// `AT+CSQ` then `AT+CESQ`, merged into one event.
    Both,
}

impl AtQueries {
    fn commands(self) -> &'static [AtCommand] {
        match self {
            AtQueries::Csq => &[AtCommand::Csq],
            AtQueries::Cesq => &[AtCommand::Cesq],
            AtQueries::Both => &[AtCommand::Csq, AtCommand::Cesq],
        }
    }
}

/// Runtime settings of an [`AtPoller`] (the profile layer validates and builds this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtPollerConfig {
    pub queries: AtQueries,
    /// From the start of one cycle to the start of the next.
    pub interval: Duration,
    /// How long to wait for the final `OK`/`ERROR` of one command before moving on.
    pub timeout: Duration,
}

/// Counters of an [`AtPoller`] (labels are the field names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AtStats {
    pub cycles: u64,
    pub events: u64,
    /// Commands that got no final result code in time.
    pub timeouts: u64,
    /// `ERROR`, `+CME ERROR: n`, `+CMS ERROR: n`.
    pub errors: u64,
    /// `+CSQ`/`+CESQ` answers that did not parse.
    pub malformed: u64,
    /// Well-formed lines nobody asked for (`RING`, `+CREG: 1`, a late answer, a stray `OK`).
    pub unsolicited: u64,
    /// Lines that are not AT syntax at all.
    pub garbage: u64,
}

pub(super) fn status_event(dev: &str, status: Status, now: DateTime<Utc>) -> Event {
    Event {
        dev: dev.to_string(),
        body: Body::Status(status),
        ts: now,
        ts_src: TsSrc::Gateway,
    }
}

/// Where the poller is in its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between cycles; the next starts at `due`.
    Idle { due: Instant },
    /// Command `idx` of the cycle that started at `started` is ready to be written.
    Ready {
        idx: usize,
        started: Instant,
        since: Instant,
    },
    /// Command `idx` was written at `sent`; waiting for its final result code.
    Awaiting {
        idx: usize,
        started: Instant,
        sent: Instant,
    },
}

/// The longest interval or timeout an [`AtPoller`] honours (a day: far beyond any sane poll).
pub const MAX_PERIOD: Duration = Duration::from_secs(86_400);

/// Sans-I/O poll loop for one modem; see the module docs for the caller's loop.
#[derive(Debug)]
pub struct AtPoller {
    dev: String,
    cfg: AtPollerConfig,
    state: State,
    /// What this cycle has gathered so far.
    acc: Status,
    last_heard: Instant,
    stats: AtStats,
}

impl AtPoller {
    /// A poller whose first cycle is due at once; silence is measured from `now`. Interval and
    /// timeout are capped at [`MAX_PERIOD`] so `Instant` arithmetic cannot overflow.
    pub fn new(dev: impl Into<String>, cfg: AtPollerConfig, now: Instant) -> Self {
        AtPoller {
            dev: dev.into(),
            cfg: AtPollerConfig {
                interval: cfg.interval.min(MAX_PERIOD),
                timeout: cfg.timeout.min(MAX_PERIOD),
                ..cfg
            },
            state: State::Idle { due: now },
            acc: Status::default(),
            last_heard: now,
            stats: AtStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> AtStats {
        self.stats
    }

    /// How long since the modem last sent any non-blank line (for presence: offline after N).
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heard)
    }

    /// When the caller should next call [`next_command`](Self::next_command) / [`on_tick`](Self::on_tick)
    /// if no line arrives first (may be in the past: call at once).
    pub fn wake_at(&self) -> Instant {
        match self.state {
            State::Idle { due } => due,
            State::Ready { since, .. } => since,
            State::Awaiting { sent, .. } => sent + self.cfg.timeout,
        }
    }

    /// The bytes to write now, if a command is due; the caller must write them before the next call.
    pub fn next_command(&mut self, now: Instant) -> Option<&'static [u8]> {
        let (idx, started) = match self.state {
            State::Idle { due } if now >= due => {
                self.stats.cycles += 1;
                self.acc = Status::default();
                (0, now)
            }
            State::Ready { idx, started, .. } => (idx, started),
            _ => return None,
        };
        let cmd = self.cfg.queries.commands().get(idx)?;
        self.state = State::Awaiting {
            idx,
            started,
            sent: now,
        };
        Some(cmd.bytes())
    }

    /// One line from the modem; returns the cycle's event when this line completed it.
    pub fn on_line(&mut self, line: &str, now: Instant, wall: DateTime<Utc>) -> Option<Event> {
        let reply = classify(line);
        if reply != Reply::Blank {
            self.last_heard = now;
        }
        let in_cycle = !matches!(self.state, State::Idle { .. });
        match reply {
            Reply::Blank | Reply::Echo => None,
            // An answer is used whichever command of this cycle it comes under, so a late one
            // (after a timeout) still counts.
            Reply::Csq(l) if in_cycle => {
                match parse_csq(l) {
                    Ok(v) => merge_csq(&mut self.acc, v),
                    Err(_) => self.stats.malformed += 1,
                }
                None
            }
            Reply::Cesq(l) if in_cycle => {
                match parse_cesq(l) {
                    Ok(v) => merge_cesq(&mut self.acc, v),
                    Err(_) => self.stats.malformed += 1,
                }
                None
            }
            Reply::Ok if self.awaiting() => self.complete(now, wall),
            Reply::Error if self.awaiting() => {
                self.stats.errors += 1;
                self.complete(now, wall)
            }
            Reply::Garbage => {
                self.stats.garbage += 1;
                None
            }
            _ => {
                self.stats.unsolicited += 1;
                None
            }
        }
    }

    /// Time passing: a command that got no final result code in time is given up on.
    pub fn on_tick(&mut self, now: Instant, wall: DateTime<Utc>) -> Option<Event> {
        match self.state {
            State::Awaiting { sent, .. }
                if now.saturating_duration_since(sent) >= self.cfg.timeout =>
            {
                self.stats.timeouts += 1;
                self.complete(now, wall)
            }
            _ => None,
        }
    }

    fn awaiting(&self) -> bool {
        matches!(self.state, State::Awaiting { .. })
    }

    /// The awaited command is finished (OK, ERROR or timeout): next command, or end of cycle.
    fn complete(&mut self, now: Instant, wall: DateTime<Utc>) -> Option<Event> {
        let State::Awaiting { idx, started, .. } = self.state else {
            return None;
        };
        if idx + 1 < self.cfg.queries.commands().len() {
            self.state = State::Ready {
                idx: idx + 1,
                started,
                since: now,
            };
            return None;
        }
        // Fixed rate from cycle start; an overrun cycle is followed by the next at once.
        self.state = State::Idle {
            due: (started + self.cfg.interval).max(now),
        };
        let status = std::mem::take(&mut self.acc);
        if status.is_empty() {
            return None;
        }
        self.stats.events += 1;
        Some(status_event(&self.dev, status, wall))
    }
}
