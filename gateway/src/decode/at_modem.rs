//! Cellular signal quality from a modem's AT port (`at-modem` decoder, SPEC §4).
//!
//! The modem only talks when asked, so this is a poller as well as a decoder: [`AtPoller`] is a
//! sans-I/O state machine that says what to write ([`AtPoller::next_command`]), takes the lines
//! that come back ([`AtPoller::on_line`]) and the passage of time ([`AtPoller::on_tick`]), and
//! yields one status event per poll cycle. The serial task owns the port and the timers:
//!
//! ```text
//! loop {
//!     if let Some(cmd) = poller.next_command(now) { port.write_all(cmd) }
//!     select! { line = framer => poller.on_line(line, now, wall), _ = sleep_until(poller.wake_at()) => poller.on_tick(now, wall) }
//!     // each Some(event) goes to the store; poller.silent_for(now) drives presence
//! }
//! ```
//!
//! Value tables are 3GPP TS 27.007 (`+CSQ`, `+CESQ`), TS 45.008 §8.2.4 (RXQUAL → BER) and TS
//! 36.133/25.133 (RSRP/RSRQ/RSCP/Ec/No). A banded value is reported as the *lower* edge of its
//! band (`-141 + n ≤ RSRP < -140 + n` → `-141 + n`), so the open-ended bottom band reads one step
//! below the first closed one and the top band reads its threshold. "Unknown" (99/255) is absent.
//! `ber` is a percentage (the TS 45.008 "assumed value" of the RXQUAL class).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::DecodeError;
use crate::event::{Body, Event, Status, TsSrc};

/// TS 45.008 §8.2.4 assumed bit error rate (%) for RXQUAL classes 0..=7.
const RXQUAL_BER_PCT: [f64; 8] = [0.14, 0.28, 0.57, 1.13, 2.26, 4.53, 9.05, 18.10];

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

/// `+CSQ: <rssi>,<ber>` → (RSSI dBm, BER %); a bare `<rssi>,<ber>` is accepted too.
pub fn parse_csq(line: &str) -> Result<(Option<f64>, Option<f64>), DecodeError> {
    let [rssi, ber] = fields::<2>(strip(line, "+CSQ:"))?;
    let rssi = match rssi {
        0..=31 => Some(-113.0 + 2.0 * f64::from(rssi)),
        // TD-SCDMA extension of TS 27.007: 100 ≤ -116 dBm … 191 ≥ -25 dBm.
        100..=191 => Some(-216.0 + f64::from(rssi)),
        99 => None,
        n => {
            return Err(DecodeError::field(
                "rssi",
                format!("{n} is not a CSQ value"),
            ))
        }
    };
    Ok((rssi, rxqual(ber, "ber")?))
}

/// The six `+CESQ` values, converted to dB/dBm/%; `None` = not applicable or unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cesq {
    /// GSM received level, dBm.
    pub rxlev: Option<f64>,
    /// GSM bit error rate, %.
    pub ber: Option<f64>,
    /// UMTS received signal code power, dBm.
    pub rscp: Option<f64>,
    /// UMTS Ec/No, dB.
    pub ecno: Option<f64>,
    /// LTE reference signal received quality, dB.
    pub rsrq: Option<f64>,
    /// LTE reference signal received power, dBm.
    pub rsrp: Option<f64>,
}

/// `+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>` (or the bare values).
pub fn parse_cesq(line: &str) -> Result<Cesq, DecodeError> {
    let [rxlev, ber, rscp, ecno, rsrq, rsrp] = fields::<6>(strip(line, "+CESQ:"))?;
    Ok(Cesq {
        rxlev: band("rxlev", rxlev, 63, 99, -111.0, 1.0)?,
        ber: rxqual(ber, "ber")?,
        rscp: band("rscp", rscp, 96, 255, -121.0, 1.0)?,
        ecno: band("ecno", ecno, 49, 255, -24.5, 0.5)?,
        rsrq: band("rsrq", rsrq, 34, 255, -20.0, 0.5)?,
        rsrp: band("rsrp", rsrp, 97, 255, -141.0, 1.0)?,
    })
}

fn strip<'a>(line: &'a str, prefix: &str) -> &'a str {
    let line = line.trim();
    line.strip_prefix(prefix).unwrap_or(line)
}

fn fields<const K: usize>(s: &str) -> Result<[u16; K], DecodeError> {
    let mut out = [0u16; K];
    let mut it = s.split(',');
    for (i, slot) in out.iter_mut().enumerate() {
        let f = it.next().map(str::trim).unwrap_or("");
        *slot = f.parse().map_err(|_| {
            DecodeError::Malformed(format!("field {} {f:?} is not a small integer", i + 1))
        })?;
    }
    match it.next() {
        Some(_) => Err(DecodeError::Malformed(format!("more than {K} fields"))),
        None => Ok(out),
    }
}

/// `n` in `0..=max` → `base + step·n`; `unknown` → `None`; anything else is an error.
fn band(
    field: &str,
    n: u16,
    max: u16,
    unknown: u16,
    base: f64,
    step: f64,
) -> Result<Option<f64>, DecodeError> {
    match n {
        _ if n == unknown => Ok(None),
        _ if n <= max => Ok(Some(base + step * f64::from(n))),
        _ => Err(DecodeError::field(
            field,
            format!("{n} is out of range 0..={max}"),
        )),
    }
}

fn rxqual(n: u16, field: &str) -> Result<Option<f64>, DecodeError> {
    match n {
        99 => Ok(None),
        _ => RXQUAL_BER_PCT
            .get(usize::from(n))
            .map(|&b| Some(b))
            .ok_or_else(|| DecodeError::field(field, format!("{n} is not an RXQUAL class"))),
    }
}

/// What one line from the modem is.
#[derive(Debug, PartialEq)]
enum Reply<'a> {
    Blank,
    /// The modem echoing a command (`ATE1`, the default).
    Echo,
    Csq(&'a str),
    Cesq(&'a str),
    Ok,
    Error,
    Unsolicited,
    Garbage,
}

fn classify(line: &str) -> Reply<'_> {
    let l = line.trim();
    let upper = |p: &str| l.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    if l.is_empty() {
        Reply::Blank
    } else if upper("AT") {
        Reply::Echo
    } else if l.starts_with("+CSQ:") {
        Reply::Csq(l)
    } else if l.starts_with("+CESQ:") {
        Reply::Cesq(l)
    } else if l == "OK" {
        Reply::Ok
    } else if l == "ERROR" || l.starts_with("+CME ERROR") || l.starts_with("+CMS ERROR") {
        Reply::Error
    } else if looks_like_result_code(l) {
        Reply::Unsolicited
    } else {
        Reply::Garbage
    }
}

/// `RING`, `NO CARRIER`, `+CREG: 1,"00C3"`, `^SYSSTART`: an optional sigil, then an upper-case
/// word, then printable ASCII.
fn looks_like_result_code(l: &str) -> bool {
    let word = l.trim_start_matches(['+', '^', '#', '$', '%']);
    word.starts_with(|c: char| c.is_ascii_uppercase())
        && l.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn merge_csq(s: &mut Status, (rssi, ber): (Option<f64>, Option<f64>)) {
    s.rssi = rssi.or(s.rssi);
    s.ber = ber.or(s.ber);
}

fn merge_cesq(s: &mut Status, c: Cesq) {
    s.ber = s.ber.or(c.ber);
    for (k, v) in [
        ("rxlev", c.rxlev),
        ("rscp", c.rscp),
        ("ecno", c.ecno),
        ("rsrq", c.rsrq),
        ("rsrp", c.rsrp),
    ] {
        if let Some(v) = v {
            s.extra.insert(k.to_string(), num(v));
        }
    }
}

/// Whole numbers as JSON integers (`-79`, not `-79.0`).
fn num(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

fn status_event(dev: &str, status: Status, now: DateTime<Utc>) -> Event {
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

/// Decode a captured modem transcript (commands and answers interleaved) for `outpost decode`:
/// one status event per `+CSQ`/`+CESQ` answer with any known value, one error per malformed
/// answer or `ERROR`; everything else is skipped. All events carry `now` (a capture has no clock).
pub fn decode_transcript(
    dev: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Vec<Result<Event, DecodeError>> {
    let mut out = Vec::new();
    let mut last_cmd = "";
    for line in text.lines() {
        let mut status = Status::default();
        let parsed = match classify(line) {
            Reply::Echo => {
                last_cmd = line.trim();
                continue;
            }
            Reply::Csq(l) => parse_csq(l).map(|v| merge_csq(&mut status, v)),
            Reply::Cesq(l) => parse_cesq(l).map(|v| merge_cesq(&mut status, v)),
            Reply::Error => Err(DecodeError::Unsupported(format!(
                "modem answered {:?} to {last_cmd:?}",
                line.trim()
            ))),
            _ => continue,
        };
        match parsed {
            Ok(()) if status.is_empty() => {}
            Ok(()) => out.push(Ok(status_event(dev, status, now))),
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const FIXTURE: &str = include_str!("../../tests/fixtures/serial/at-modem.txt");

    fn wall() -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap()
    }

    fn status(e: &Event) -> &Status {
        match &e.body {
            Body::Status(s) => s,
            other => panic!("not a status: {other:?}"),
        }
    }

    fn cfg(queries: AtQueries) -> AtPollerConfig {
        AtPollerConfig {
            queries,
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn csq_maps_rssi_to_dbm_and_ber_class_to_percent() {
        assert_eq!(parse_csq("+CSQ: 17,99"), Ok((Some(-79.0), None)));
        assert_eq!(parse_csq("+CSQ: 99,99"), Ok((None, None)));
        assert_eq!(parse_csq("+CSQ: 0,0"), Ok((Some(-113.0), Some(0.14))));
        assert_eq!(parse_csq("+CSQ: 1,7"), Ok((Some(-111.0), Some(18.10))));
        assert_eq!(parse_csq("+CSQ: 2,3"), Ok((Some(-109.0), Some(1.13))));
        assert_eq!(parse_csq("+CSQ: 30,99"), Ok((Some(-53.0), None)));
        assert_eq!(parse_csq("31,99"), Ok((Some(-51.0), None)));
        assert_eq!(parse_csq("+CSQ: 191,99"), Ok((Some(-25.0), None)));
    }

    #[test]
    fn csq_rejects_out_of_range_and_malformed_values() {
        for bad in [
            "+CSQ: 32,99",
            "+CSQ: 17,8",
            "+CSQ: 17",
            "+CSQ: 1,2,3",
            "+CSQ: x,1",
            "+CSQ: -1,0",
            "+CSQ: 99999999,0",
            "",
        ] {
            assert!(parse_csq(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cesq_maps_each_technology_per_its_table() {
        let lte = parse_cesq("+CESQ: 99,99,255,255,31,62").unwrap();
        assert_eq!(
            lte,
            Cesq {
                rsrq: Some(-4.5),
                rsrp: Some(-79.0),
                ..Cesq::default()
            }
        );
        let edges = parse_cesq("+CESQ: 0,0,0,0,0,0").unwrap();
        assert_eq!(
            edges,
            Cesq {
                rxlev: Some(-111.0),
                ber: Some(0.14),
                rscp: Some(-121.0),
                ecno: Some(-24.5),
                rsrq: Some(-20.0),
                rsrp: Some(-141.0)
            }
        );
        let top = parse_cesq("+CESQ: 63,7,96,49,34,97").unwrap();
        assert_eq!(
            top,
            Cesq {
                rxlev: Some(-48.0),
                ber: Some(18.10),
                rscp: Some(-25.0),
                ecno: Some(0.0),
                rsrq: Some(-3.0),
                rsrp: Some(-44.0)
            }
        );
        assert!(parse_cesq("+CESQ: 99,99,255,255,35,62").is_err());
        assert!(parse_cesq("+CESQ: 99,99,255,255,31").is_err());
    }

    #[test]
    fn fixture_transcript_decodes_every_answer() {
        let out = decode_transcript("modem0", FIXTURE, wall());
        assert_eq!(out.len(), 3, "{out:?}");
        let csq = out[0].as_ref().unwrap();
        assert_eq!(
            csq.to_json(),
            r#"{"dev":"modem0","class":"status","rssi":-79,"ts":"2023-11-14T22:13:20.000Z","ts_src":"gateway"}"#
        );
        let cesq = status(out[1].as_ref().unwrap());
        assert_eq!(cesq.extra.get("rsrq"), Some(&serde_json::json!(-4.5)));
        assert_eq!(cesq.extra.get("rsrp"), Some(&serde_json::json!(-79)));
        assert_eq!(cesq.extra.len(), 2);
        assert_eq!(out[2].as_ref().unwrap_err().reason(), "unsupported");
    }

    /// Feeds `reply` line by line, returning the events.
    fn feed(p: &mut AtPoller, reply: &str, now: Instant) -> Vec<Event> {
        reply
            .lines()
            .filter_map(|l| p.on_line(l, now, wall()))
            .collect()
    }

    #[test]
    fn poller_merges_csq_and_cesq_into_one_event_per_cycle() {
        let t0 = Instant::now();
        let mut p = AtPoller::new("modem0", cfg(AtQueries::Both), t0);
        assert_eq!(p.next_command(t0), Some(&b"AT+CSQ\r"[..]));
        assert_eq!(p.next_command(t0), None, "one command in flight");
        assert!(feed(&mut p, "AT+CSQ\r\n+CSQ: 17,3\r\n\r\nOK", t0).is_empty());
        assert_eq!(p.next_command(t0), Some(&b"AT+CESQ\r"[..]));
        let ev = feed(&mut p, "RING\n+CESQ: 99,99,255,255,31,62\n+CREG: 1\nOK", t0);
        assert_eq!(ev.len(), 1);
        let s = status(&ev[0]);
        assert_eq!((s.rssi, s.ber), (Some(-79.0), Some(1.13)));
        assert_eq!(s.extra.len(), 2);
        assert_eq!(p.stats().unsolicited, 2);
        assert_eq!(p.next_command(t0 + Duration::from_secs(59)), None);
        assert_eq!(p.wake_at(), t0 + Duration::from_secs(60));
        assert!(p.next_command(t0 + Duration::from_secs(60)).is_some());
        assert_eq!(p.stats().cycles, 2);
    }

    #[test]
    fn error_moves_on_and_keeps_what_the_cycle_has() {
        let t0 = Instant::now();
        let mut p = AtPoller::new("m", cfg(AtQueries::Both), t0);
        p.next_command(t0);
        feed(&mut p, "+CSQ: 20,99\nOK", t0);
        p.next_command(t0);
        let ev = feed(&mut p, "+CME ERROR: 4", t0);
        assert_eq!(status(&ev[0]).rssi, Some(-73.0));
        assert_eq!(p.stats().errors, 1);
        // A cycle with nothing known yields no event.
        let t1 = t0 + Duration::from_secs(60);
        p.next_command(t1);
        assert!(feed(&mut p, "+CSQ: 99,99\nOK\nERROR", t1).is_empty());
        assert_eq!(p.next_command(t1), Some(&b"AT+CESQ\r"[..]));
        assert!(feed(&mut p, "ERROR", t1).is_empty());
    }

    #[test]
    fn silence_times_out_and_is_measurable() {
        let t0 = Instant::now();
        let mut p = AtPoller::new("m", cfg(AtQueries::Csq), t0);
        p.next_command(t0);
        assert_eq!(p.on_tick(t0 + Duration::from_secs(1), wall()), None);
        assert_eq!(p.stats().timeouts, 0);
        assert_eq!(p.on_tick(t0 + Duration::from_secs(2), wall()), None);
        assert_eq!(p.stats().timeouts, 1);
        assert_eq!(
            p.silent_for(t0 + Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        // A late answer outside any cycle is counted, not used.
        assert!(feed(&mut p, "+CSQ: 5,0\nOK", t0 + Duration::from_secs(3)).is_empty());
        assert_eq!(p.stats().unsolicited, 2);
        assert_eq!(
            p.silent_for(t0 + Duration::from_secs(10)),
            Duration::from_secs(7)
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_lines_never_panic(lines in proptest::collection::vec(".{0,40}|[+]C(E)?SQ: [0-9,]{0,24}|OK|ERROR", 0..30)) {
            let t0 = Instant::now();
            let mut p = AtPoller::new("m", cfg(AtQueries::Both), t0);
            for (i, l) in lines.iter().enumerate() {
                let now = t0 + Duration::from_millis(700 * i as u64);
                p.next_command(now);
                p.on_line(l, now, wall());
                p.on_tick(now, wall());
            }
            decode_transcript("m", &lines.join("\n"), wall());
        }
    }

    #[test]
    fn garbage_and_malformed_answers_are_counted_not_fatal() {
        let t0 = Instant::now();
        let mut p = AtPoller::new("m", cfg(AtQueries::Csq), t0);
        p.next_command(t0);
        let ev = feed(&mut p, "~~~\n+CSQ: 40,1\n+CSQ: 10,99\nOK", t0);
        assert_eq!(status(&ev[0]).rssi, Some(-93.0));
        assert_eq!((p.stats().garbage, p.stats().malformed), (1, 1));
    }
}
