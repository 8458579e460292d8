//! Line-oriented device decoders (NMEA, gpsd JSON) with the profile's reporting policy:
//! shared by the live serial/gpsd sources and by `outpost decode`, so what a technician sees
//! offline is what the gateway would forward.

use crate::config::{DecoderKind, Profile};
use crate::decode::{gpsd::GpsdDecoder, nmea::NmeaDecoder, DecodeError, Decoded};
use crate::event::{Body, Event};
use crate::policy::PolicyState;
use chrono::{DateTime, NaiveDate, Utc};

/// Longest line accepted from a device (NMEA allows 82; gpsd's JSON reports run to a few KiB).
pub const MAX_LINE: usize = 4096;

/// One device's line decoder.
pub enum LineDecoder {
    Nmea(NmeaDecoder, PolicyState),
    Gpsd(GpsdDecoder, PolicyState, String),
}

impl LineDecoder {
    /// The line decoder of `profile` for device `dev`, if its decoder is line-oriented.
    /// `today` is the reference date for GPS week-rollover repair: a receiver whose date is
    /// more than 512 weeks before it has rolled over (old firmware counting 10-bit weeks) and
    /// is moved forward 1024 weeks, as gpsd does. `None`: no repair (the clock is unknown).
    pub fn for_profile(
        profile: &Profile,
        dev: &str,
        today: Option<NaiveDate>,
    ) -> Option<LineDecoder> {
        let policy = PolicyState::new(profile.report_policy());
        match profile.decoder {
            DecoderKind::Nmea => {
                let mut d = NmeaDecoder::new(dev.to_string());
                if let Some(floor) =
                    today.and_then(|t| t.checked_sub_days(chrono::Days::new(512 * 7)))
                {
                    d = d.with_rollover_floor(floor);
                }
                Some(LineDecoder::Nmea(d, policy))
            }
            DecoderKind::Gpsd => Some(LineDecoder::Gpsd(
                GpsdDecoder::new(),
                policy,
                dev.to_string(),
            )),
            _ => None,
        }
    }

    /// Decodes one line: one result per report on it (NMEA: one; gpsd: one per JSON object).
    /// A result's events are empty when it completes nothing or the policy holds the fix back.
    pub fn line(&mut self, line: &str, now: DateTime<Utc>) -> Vec<Result<Decoded, DecodeError>> {
        match self {
            LineDecoder::Nmea(d, p) => vec![d.push_line(line).map(|e| Decoded {
                events: e.and_then(|e| admit(p, e)).into_iter().collect(),
                ..Default::default()
            })],
            LineDecoder::Gpsd(d, p, dev) => {
                let mut out = d.push_line(dev, line, now);
                for d in out.iter_mut().flatten() {
                    d.events = std::mem::take(&mut d.events)
                        .into_iter()
                        .filter_map(|e| admit(p, e))
                        .collect();
                }
                out
            }
        }
    }

    /// End of input: the last epoch, if complete.
    pub fn finish(&mut self) -> Option<Event> {
        match self {
            LineDecoder::Nmea(d, p) => d.finish().and_then(|e| admit(p, e)),
            LineDecoder::Gpsd(..) => None,
        }
    }
}

fn admit(policy: &mut PolicyState, e: Event) -> Option<Event> {
    match &e.body {
        Body::Location(l) if !policy.admit(l, e.ts) => None,
        _ => Some(e),
    }
}

/// Decodes a whole capture (the raw byte stream of a serial device or gpsd's output),
/// calling `out(line number, result)` per line; for `outpost decode`.
pub fn decode_capture(
    profile: &Profile,
    dev: &str,
    bytes: &[u8],
    out: &mut dyn FnMut(usize, Result<Decoded, DecodeError>),
) {
    let today = capture_date(bytes).unwrap_or_else(|| Utc::now().date_naive());
    let Some(mut dec) = LineDecoder::for_profile(profile, dev, Some(today)) else {
        return;
    };
    // A file, not a live port: split it whole so problems carry the file's own line numbers.
    let now = Utc::now();
    let mut n = 0usize;
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        n = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // `#` lines are comments of capture files (gpsd's tools write a header), not device data.
        if raw.is_empty() || raw.starts_with(b"#") {
            continue;
        }
        match std::str::from_utf8(raw) {
            Ok(line) => dec.line(line, now).into_iter().for_each(|r| out(n, r)),
            Err(_) => out(n, Err(DecodeError::BadUtf8)),
        }
    }
    if let Some(e) = dec.finish() {
        out(
            n,
            Ok(Decoded {
                events: vec![e],
                ..Default::default()
            }),
        );
    }
}

/// The date a capture was recorded, from a `# Date: YYYY-MM-DD` comment line (the convention
/// of gpsd's capture tools): the reference for week-rollover repair when decoding it later.
fn capture_date(bytes: &[u8]) -> Option<NaiveDate> {
    bytes
        .split(|b| *b == b'\n')
        .take_while(|l| l.starts_with(b"#"))
        .filter_map(|l| std::str::from_utf8(l).ok())
        .find_map(|l| l.strip_prefix("# Date:"))
        .and_then(|d| NaiveDate::parse_from_str(d.trim().get(..10)?, "%Y-%m-%d").ok())
}
