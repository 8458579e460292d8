//! NMEA 0183 decoder for GNSS receivers on serial lines: lines in, one location per fix epoch out.
//!
//! Sans-I/O: [`NmeaDecoder::push_line`] takes one line (CR/LF stripped by the framing layer)
//! and returns a finished epoch's [`Event`] when there is one. One decoder per serial port,
//! because an epoch is spread over several sentences and the date over several epochs.
//!
//! # Epochs
//! A receiver sends, once per fix, a burst of sentences sharing one UTC time of day (GGA, RMC,
//! GNS, GLL, ZDA, GST carry it; VTG and GSA do not and belong to the burst they arrive in).
//! The burst is merged ([`epoch`]) and reported once. An epoch is complete when
//! - a sentence with a different time of day arrives (a new epoch begins), or
//! - the sentence that ended the previous epoch arrives again: like gpsd's "cycle ender", the
//!   decoder learns which sentence (talker + type) closes a burst and reports as soon as it is
//!   seen, rather than one epoch late;
//! - or at [`NmeaDecoder::finish`].
//!
//! # Dates
//! Only RMC and ZDA carry a date. The decoder remembers the last one and moves it on at UTC
//! midnight; until a date is known, fixes are counted (`undated_epochs`) but not reported —
//! gpsd does the same (its TPV reports before the first RMC/ZDA have no `time`), and a
//! location with a made-up date would be worse than none. Receivers with the GPS week
//! rollover bug report dates 1024 weeks in the past; [`NmeaDecoder::with_rollover_floor`]
//! corrects those.
//!
//! # Parsing
//! Own parser ([`parse`]); the `nmea` crate is not used here (see `parse`'s header for why;
//! its stateful `Nmea::parse` can even panic). No input panics this module: it works on bytes,
//! slices only all-ASCII text, and unwraps nothing from the input.

mod epoch;
mod fields;
mod frame;
mod parse;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};

use crate::decode::DecodeError;
use crate::event::{Body, Event, TsSrc};

use epoch::{Addr, Epoch};
pub(crate) use fields::TimeOfDay;
use fields::DAY_MS;
pub use frame::MAX_SENTENCE;
use frame::{frame, FrameError};

/// 1024 GPS weeks, the span of the 10-bit week counter.
const GPS_ROLLOVER_DAYS: u64 = 1024 * 7;

/// Counters of what a decoder has seen, for the metrics registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NmeaStats {
    /// Lines pushed, including empty ones.
    pub lines: u64,
    /// Standard sentences decoded (GGA, RMC, GNS, GLL, VTG, GSA, ZDA, GST).
    pub sentences_ok: u64,
    /// Lines dropped because their `*hh` checksum did not match.
    pub bad_checksum: u64,
    /// `$P…` proprietary sentences, ignored.
    pub proprietary: u64,
    /// Valid sentences of a type the decoder does not use (GSV, TXT, HDT, …).
    pub unsupported: u64,
    /// Lines that are not a usable sentence: garbage, no checksum, too long, bad fields.
    pub malformed: u64,
    /// Epochs (distinct times of day) completed.
    pub epochs: u64,
    /// Epochs in which the receiver had no fix.
    pub no_fix_epochs: u64,
    /// Epochs with a fix but no date known yet, so not reported.
    pub undated_epochs: u64,
}

/// The last epoch reported early (at its cycle ender), so that stragglers with its time of day
/// are recognised and the ender can be re-learned.
#[derive(Clone, Copy, Debug)]
struct Closed {
    tod: TimeOfDay,
    last_timed: Option<Addr>,
}

/// Stateful NMEA decoder for one receiver (one serial port).
#[derive(Debug)]
pub struct NmeaDecoder {
    dev: String,
    epoch: Epoch,
    closed: Option<Closed>,
    /// The sentence that completes an epoch, learned from the previous one.
    ender: Option<Addr>,
    /// The last known date and the time of day it was valid at.
    date: Option<(NaiveDate, TimeOfDay)>,
    rollover_floor: Option<NaiveDate>,
    last_fix: Option<DateTime<Utc>>,
    has_fix: bool,
    stats: NmeaStats,
}

impl NmeaDecoder {
    /// A decoder whose events carry device id `dev`.
    pub fn new(dev: String) -> Self {
        NmeaDecoder {
            dev,
            epoch: Epoch::default(),
            closed: None,
            ender: None,
            date: None,
            rollover_floor: None,
            last_fix: None,
            has_fix: false,
            stats: NmeaStats::default(),
        }
    }

    /// Treats dates before `floor` as GPS week-rollover errors and moves them forward by 1024
    /// weeks (as often as needed). Receivers with old firmware report dates ~19.6 years in the
    /// past after a rollover (1999-08-22, 2019-04-07); a gateway knows no fix can predate its
    /// own release, so the caller passes a date it is sure of (e.g. the build date).
    pub fn with_rollover_floor(mut self, floor: NaiveDate) -> Self {
        self.rollover_floor = Some(floor);
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> &NmeaStats {
        &self.stats
    }

    /// Whether the last completed epoch had a fix.
    pub fn has_fix(&self) -> bool {
        self.has_fix
    }

    /// Time of the last reported fix.
    pub fn last_fix(&self) -> Option<DateTime<Utc>> {
        self.last_fix
    }

    /// Decodes one line (without CR/LF). Returns the location of an epoch this line completed,
    /// `Ok(None)` when it completed none (or was a proprietary/unused sentence, or empty), and
    /// an error for a line that is not a usable sentence (counted in [`NmeaStats`] as well).
    pub fn push_line(&mut self, line: &str) -> Result<Option<Event>, DecodeError> {
        self.stats.lines += 1;
        if line.trim().is_empty() {
            return Ok(None);
        }
        let fr = match frame(line) {
            Ok(fr) => fr,
            Err(FrameError::BadChecksum) => {
                self.stats.bad_checksum += 1;
                return Err(DecodeError::BadChecksum);
            }
            Err(FrameError::TooLong(n)) => {
                self.stats.malformed += 1;
                return Err(DecodeError::TooLarge(n, MAX_SENTENCE));
            }
            Err(FrameError::NotNmea(why)) => {
                self.stats.malformed += 1;
                return Err(DecodeError::Malformed(why.to_string()));
            }
        };
        if fr.is_proprietary() {
            self.stats.proprietary += 1;
            return Ok(None);
        }
        // Non-standard addresses ($SNRSTAT, $GYOACC) and unused types end up here.
        let Some(kind) = fr.kind() else {
            self.stats.unsupported += 1;
            return Ok(None);
        };
        let report = match parse::report(kind, &fr) {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.stats.unsupported += 1;
                return Ok(None);
            }
            Err(problem) => {
                self.stats.malformed += 1;
                return Err(DecodeError::field(fr.addr, problem));
            }
        };
        self.stats.sentences_ok += 1;
        let mut addr: Addr = [0; 5];
        addr.copy_from_slice(fr.addr.as_bytes());
        Ok(match report.tod {
            Some(tod) => self.timed(tod, addr, &report),
            None => {
                self.epoch.merge(&report);
                None
            }
        })
    }

    /// End of input: completes the open epoch, if it has a time and was not reported yet.
    pub fn finish(&mut self) -> Option<Event> {
        self.close()
    }

    /// A sentence with a time of day: start, extend or complete an epoch.
    fn timed(&mut self, tod: TimeOfDay, addr: Addr, report: &parse::Report) -> Option<Event> {
        if let Some(c) = self.closed.as_mut() {
            if c.tod == tod {
                // A straggler of the epoch already reported: too late to change it, but it
                // tells which sentence really ends a burst.
                c.last_timed = Some(addr);
                return None;
            }
        }
        let mut out = None;
        if self.epoch.tod.is_some_and(|t| t != tod) {
            out = self.close();
        }
        if let Some(c) = self.closed.take() {
            // A new epoch begins: the last timed sentence of the previous one is the ender.
            self.ender = c.last_timed;
        }
        self.epoch.tod = Some(tod);
        self.epoch.last_timed = Some(addr);
        self.epoch.merge(report);
        // Complete at the ender — unless this line already completed the previous epoch, in
        // which case this one waits for its successor (one event per line).
        if out.is_none() && self.ender == Some(addr) {
            out = self.close();
        }
        out
    }

    /// Completes the open epoch: updates date and counters, returns its event if it had a fix.
    fn close(&mut self) -> Option<Event> {
        let epoch = std::mem::take(&mut self.epoch);
        let tod = epoch.tod?;
        self.closed = Some(Closed {
            tod,
            last_timed: epoch.last_timed,
        });
        self.stats.epochs += 1;
        let date = self.epoch_date(&epoch, tod);
        let Some(loc) = epoch.location() else {
            self.stats.no_fix_epochs += 1;
            self.has_fix = false;
            return None;
        };
        self.has_fix = true;
        let Some(ts) = date.and_then(|d| timestamp(d, tod)) else {
            self.stats.undated_epochs += 1;
            return None;
        };
        self.last_fix = Some(ts);
        Some(Event {
            dev: self.dev.clone(),
            body: Body::Location(loc),
            ts,
            ts_src: TsSrc::Gps,
        })
    }

    /// The date of an epoch at `tod`: its own RMC/ZDA date, else the remembered one, moved to
    /// the next day when the time of day has wrapped past midnight since.
    fn epoch_date(&mut self, epoch: &Epoch, tod: TimeOfDay) -> Option<NaiveDate> {
        if let Some(d) = epoch.date() {
            let d = self.unroll(d);
            self.date = Some((d, tod));
            return Some(d);
        }
        let (d, at) = self.date?;
        // More than 12 h "back" is a wrap past midnight, not a receiver going back in time.
        if at > tod && at - tod > DAY_MS / 2 {
            let next = d.checked_add_days(Days::new(1))?;
            self.date = Some((next, tod));
            return Some(next);
        }
        self.date = Some((d, tod));
        Some(d)
    }

    /// Applies the rollover floor to a reported date.
    fn unroll(&self, mut d: NaiveDate) -> NaiveDate {
        if let Some(floor) = self.rollover_floor {
            // Bounded: 4 rollovers span 78 years, far beyond any receiver's error.
            for _ in 0..4 {
                if d >= floor {
                    break;
                }
                match d.checked_add_days(Days::new(GPS_ROLLOVER_DAYS)) {
                    Some(n) => d = n,
                    None => break,
                }
            }
        }
        d
    }
}

/// UTC timestamp of a date and a time of day (a leap second maps to chrono's `:59.1xxx`).
fn timestamp(d: NaiveDate, tod: TimeOfDay) -> Option<DateTime<Utc>> {
    let secs = tod / 1000;
    let ms = tod % 1000;
    let t = if secs >= 86_400 {
        NaiveTime::from_hms_milli_opt(23, 59, 59, 1000 + ms)?
    } else {
        NaiveTime::from_hms_milli_opt(secs / 3600, secs / 60 % 60, secs % 60, ms)?
    };
    Some(d.and_time(t).and_utc())
}
