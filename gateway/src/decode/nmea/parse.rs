//! Per-sentence decoding: GGA, RMC, GNS, GLL, VTG, GSA, ZDA and GST into one [`Report`] shape.
//!
//! Own field parsing rather than the `nmea` crate: that crate rejects sentences real receivers
//! send (GNS with more than two mode characters, ZDA with a `+00` zone, GSA with empty DOPs,
//! lines over 102 characters), and what an epoch needs from each sentence is a handful of
//! fields. The framing has already checked the checksum, so this is field picking.
//!
//! Strictness: the fields that make a fix (time, date, position, status) must parse or the
//! sentence is malformed and dropped whole — a half-read position is worse than none. Auxiliary
//! values (HDOP, altitude, satellites, speed, course) that do not parse are left out.

use chrono::NaiveDate;

use super::fields::{coord, date_ddmmyy, date_dmy, num, time_of_day, uint, FieldResult, TimeOfDay};
use super::frame::Frame;

/// One knot in m/s.
const KNOT: f64 = 0.514_444;

/// How the receiver says it got its position, best last (the order is used to combine).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Quality {
    Estimated,
    Autonomous,
    Differential,
    RtkFloat,
    RtkFixed,
}

/// A position with the number of decimals of minutes it was written with (its precision).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Pos {
    pub lat: f64,
    pub lon: f64,
    pub decimals: u8,
}

/// What one sentence says about its epoch. Every field optional: each sentence type fills the
/// few it carries, the epoch merges them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Report {
    /// UTC time of day; `None` for untimed sentences (VTG, GSA) and empty time fields.
    pub tod: Option<TimeOfDay>,
    pub date: Option<NaiveDate>,
    pub pos: Option<Pos>,
    /// `Some(false)`: the receiver says it has no fix; `Some(true)`: it says it has one.
    pub valid: Option<bool>,
    pub quality: Option<Quality>,
    /// How much `quality` is to be trusted: GGA's number (3) over GNS's letters (2) over the
    /// RMC/GLL mode letter (1), which cannot tell, e.g., an RTK fix from a DGPS one.
    pub quality_rank: u8,
    /// GSA's 1 (no fix), 2 (2D) or 3 (3D).
    pub dim: Option<u8>,
    pub sats: Option<u32>,
    pub hdop: Option<f64>,
    /// Whether `hdop` comes from a fix sentence (GGA/GNS) rather than GSA.
    pub hdop_from_fix: bool,
    /// Metres above mean sea level (what gpsd calls `altMSL`).
    pub alt: Option<f64>,
    /// m/s
    pub speed: Option<f64>,
    /// Degrees true.
    pub course: Option<f64>,
    /// Horizontal 1-sigma error from GST, metres.
    pub acc: Option<f64>,
}

/// Decodes a framed sentence of type `kind`. `Ok(None)`: a type this decoder does not use.
pub(crate) fn report(kind: &str, f: &Frame<'_>) -> FieldResult<Report> {
    let r = match kind {
        "GGA" => gga(f)?,
        "RMC" => rmc(f)?,
        "GNS" => gns(f)?,
        "GLL" => gll(f)?,
        "VTG" => vtg(f)?,
        "GSA" => gsa(f)?,
        "ZDA" => zda(f)?,
        "GST" => gst(f)?,
        _ => return Ok(None),
    };
    Ok(Some(r))
}

fn pos(f: &Frame<'_>, i: usize) -> Result<Option<Pos>, &'static str> {
    let lat = coord(f.f(i), f.f(i + 1), true)?;
    let lon = coord(f.f(i + 2), f.f(i + 3), false)?;
    Ok(match (lat, lon) {
        (Some((lat, a)), Some((lon, b))) => Some(Pos {
            lat,
            lon,
            decimals: a.min(b),
        }),
        (None, None) => None,
        _ => return Err("latitude without longitude"),
    })
}

/// Lenient auxiliary number: garbage is treated as absent.
fn aux(f: &str) -> Option<f64> {
    num(f).ok().flatten()
}

/// An NMEA 2.3+ mode indicator character (RMC, GLL, VTG, one per system in GNS).
fn mode_char(c: u8) -> Option<Option<Quality>> {
    Some(match c {
        b'A' | b'P' => Some(Quality::Autonomous),
        b'D' => Some(Quality::Differential),
        b'R' => Some(Quality::RtkFixed),
        b'F' => Some(Quality::RtkFloat),
        b'E' => Some(Quality::Estimated),
        // N: no fix; M: manual input; S: simulator. None of them is a measured position.
        b'N' | b'M' | b'S' => None,
        _ => return None,
    })
}

/// Applies a mode indicator field to `r`: validity and quality. Unknown letters say nothing.
fn apply_mode(r: &mut Report, field: &str, rank: u8) {
    let mut any = false;
    let mut best: Option<Quality> = None;
    for c in field.bytes() {
        if let Some(q) = mode_char(c) {
            any = true;
            best = best.max(q);
        }
    }
    if any {
        r.valid = Some(best.is_some());
        r.quality = best;
        r.quality_rank = rank;
    }
}

/// The fields GGA and GNS share: time, position, satellites, HDOP, altitude (MSL).
fn fix_fields(f: &Frame<'_>) -> Result<Report, &'static str> {
    Ok(Report {
        tod: time_of_day(f.f(0))?,
        pos: pos(f, 1)?,
        sats: uint(f.f(6)),
        hdop: aux(f.f(7)),
        hdop_from_fix: true,
        alt: aux(f.f(8)),
        ..Default::default()
    })
}

fn gga(f: &Frame<'_>) -> Result<Report, &'static str> {
    let mut r = fix_fields(f)?;
    if let Some(q) = uint(f.f(5)) {
        r.quality_rank = 3;
        r.quality = match q {
            1 | 3 => Some(Quality::Autonomous),
            2 => Some(Quality::Differential),
            4 => Some(Quality::RtkFixed),
            5 => Some(Quality::RtkFloat),
            6 => Some(Quality::Estimated),
            // 0: invalid; 7: manual input; 8: simulator — not a measured position.
            _ => None,
        };
        r.valid = match (r.quality, r.sats) {
            (None, _) => Some(false),
            // Quality > 0 from zero satellites vouches for nothing: Hemisphere receivers send
            // it while coasting on a stale position (gpsd: no fix), Furuno with a good DGPS
            // fix that RMC and GNS confirm (gpsd: fix). Let the other sentences decide.
            (Some(_), Some(0)) => None,
            (Some(_), _) => Some(true),
        };
    }
    Ok(r)
}

fn rmc(f: &Frame<'_>) -> Result<Report, &'static str> {
    let mut r = Report {
        tod: time_of_day(f.f(0))?,
        pos: pos(f, 2)?,
        speed: aux(f.f(6)).map(|kn| kn * KNOT),
        course: aux(f.f(7)),
        date: date_ddmmyy(f.f(8))?,
        ..Default::default()
    };
    // Field 12 (NMEA 4.1 navigational status) is deliberately ignored: receivers set it to
    // `V` ("not for navigation") while their fix is fine, and gpsd ignores it too.
    apply_status(&mut r, f.f(1), f.f(11));
    Ok(r)
}

/// RMC/GLL status `A` (valid) / `V` (void); the mode indicator counts only on a valid fix.
fn apply_status(r: &mut Report, status: &str, mode: &str) {
    match status {
        "A" => r.valid = Some(true),
        "V" => r.valid = Some(false),
        _ => {}
    }
    if r.valid == Some(true) {
        apply_mode(r, mode, 1);
    }
}

fn gns(f: &Frame<'_>) -> Result<Report, &'static str> {
    let mut r = fix_fields(f)?;
    apply_mode(&mut r, f.f(5), 2);
    Ok(r)
}

fn gll(f: &Frame<'_>) -> Result<Report, &'static str> {
    let mut r = Report {
        pos: pos(f, 0)?,
        tod: time_of_day(f.f(4))?,
        ..Default::default()
    };
    apply_status(&mut r, f.f(5), f.f(6));
    Ok(r)
}

fn vtg(f: &Frame<'_>) -> Result<Report, &'static str> {
    // Mode N: "data not valid". VTG says nothing about the fix itself, so it only withholds
    // its speed and course.
    if f.f(8) == "N" {
        return Ok(Report::default());
    }
    let speed = aux(f.f(4))
        .map(|kn| kn * KNOT)
        .or_else(|| aux(f.f(6)).map(|kmh| kmh / 3.6));
    Ok(Report {
        course: aux(f.f(0)),
        speed,
        ..Default::default()
    })
}

fn gsa(f: &Frame<'_>) -> Result<Report, &'static str> {
    let dim = uint(f.f(1))
        .filter(|d| (1..=3).contains(d))
        .map(|d| d as u8);
    Ok(Report {
        dim,
        valid: (dim == Some(1)).then_some(false),
        hdop: aux(f.f(15)),
        ..Default::default()
    })
}

fn zda(f: &Frame<'_>) -> Result<Report, &'static str> {
    Ok(Report {
        tod: time_of_day(f.f(0))?,
        date: date_dmy(f.f(1), f.f(2), f.f(3))?,
        ..Default::default()
    })
}

fn gst(f: &Frame<'_>) -> Result<Report, &'static str> {
    let acc = match (aux(f.f(5)), aux(f.f(6))) {
        (Some(a), Some(b)) if a >= 0.0 && b >= 0.0 => Some(a.hypot(b)),
        _ => None,
    };
    Ok(Report {
        tod: time_of_day(f.f(0))?,
        acc,
        ..Default::default()
    })
}
