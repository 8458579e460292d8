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
//!
//! # Layout
//! - [`responses`]: parsing the answers and classifying every line;
//! - [`values`]: the 3GPP value tables the answers are converted with;
//! - [`poller`]: the poll cycle ([`AtPoller`]).

mod poller;
mod responses;
mod values;

#[cfg(test)]
mod tests;

pub use poller::{AtCommand, AtPoller, AtPollerConfig, AtQueries, AtStats, MAX_PERIOD};
pub use responses::{parse_cesq, parse_csq, Cesq};

use chrono::{DateTime, Utc};

use super::DecodeError;
use crate::event::{Event, Status};
use poller::status_event;
use responses::{classify, merge_cesq, merge_csq, Reply};

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
