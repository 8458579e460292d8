//! Field parsers for NMEA 0183 values: time of day, dates, latitude/longitude, numbers.
//!
//! Every parser takes one comma-separated field and returns `Ok(None)` when the field is empty
//! (receivers leave fields empty when they have no value) and `Err(problem)` when it holds
//! something that is not a valid value. They work on bytes and never index into a `&str`, so no
//! input can panic them.

use chrono::NaiveDate;

/// A field parse failure: a short static description, turned into a `DecodeError` by the caller.
pub(crate) type FieldResult<T> = Result<Option<T>, &'static str>;

/// Milliseconds since 00:00:00 UTC. 86_400_000 and above only for a leap second (`23:59:60`).
pub(crate) type TimeOfDay = u32;

/// Milliseconds in a day.
pub(crate) const DAY_MS: u32 = 86_400_000;

/// `hhmmss` with an optional fraction (`hhmmss.s…`); digits past milliseconds are truncated.
pub(crate) fn time_of_day(f: &str) -> FieldResult<TimeOfDay> {
    if f.is_empty() {
        return Ok(None);
    }
    let b = f.as_bytes();
    if b.len() < 6 || !b[..6].iter().all(u8::is_ascii_digit) {
        return Err("time is not hhmmss");
    }
    let two = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    let (h, m, s) = (two(0), two(2), two(4));
    // Second 60 is a leap second; anything else out of range is garbage.
    if h > 23 || m > 59 || s > 60 {
        return Err("time out of range");
    }
    let mut ms = 0u32;
    match &b[6..] {
        [] => {}
        [b'.', frac @ ..] if frac.iter().all(u8::is_ascii_digit) => {
            let mut scale = 100;
            for d in frac.iter().take(3) {
                ms += u32::from(d - b'0') * scale;
                scale /= 10;
            }
        }
        _ => return Err("time has a bad fraction"),
    }
    Ok(Some(((h * 60 + m) * 60 + s) * 1000 + ms))
}

/// RMC's `ddmmyy`. Two-digit years pivot at 1980, the GPS epoch: `80`–`99` are 19xx.
pub(crate) fn date_ddmmyy(f: &str) -> FieldResult<NaiveDate> {
    if f.is_empty() {
        return Ok(None);
    }
    let b = f.as_bytes();
    if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
        return Err("date is not ddmmyy");
    }
    let two = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    let yy = two(4) as i32;
    let year = if yy >= 80 { 1900 + yy } else { 2000 + yy };
    NaiveDate::from_ymd_opt(year, two(2), two(0))
        .map(Some)
        .ok_or("date out of range")
}

/// ZDA's separate day, month and four-digit year fields.
pub(crate) fn date_dmy(d: &str, m: &str, y: &str) -> FieldResult<NaiveDate> {
    if d.is_empty() || m.is_empty() || y.is_empty() {
        return Ok(None);
    }
    let (Some(d), Some(m), Some(y)) = (uint(d), uint(m), uint(y)) else {
        return Err("date is not numeric");
    };
    if !(1980..=2200).contains(&y) {
        return Err("year out of range");
    }
    NaiveDate::from_ymd_opt(y as i32, m, d)
        .map(Some)
        .ok_or("date out of range")
}

/// A small unsigned decimal integer (only ASCII digits, at most 9 of them).
pub(crate) fn uint(f: &str) -> Option<u32> {
    let b = f.as_bytes();
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
}

/// A decimal number (`-12.5`, `007.0`); rejects NaN, infinities and exponents, which no receiver sends.
pub(crate) fn num(f: &str) -> FieldResult<f64> {
    if f.is_empty() {
        return Ok(None);
    }
    let ok = f
        .bytes()
        .all(|c| c.is_ascii_digit() || c == b'.' || c == b'-' || c == b'+');
    match f.parse::<f64>() {
        Ok(v) if ok && v.is_finite() => Ok(Some(v)),
        _ => Err("not a number"),
    }
}

/// Latitude (`ddmm.mmmm`, `N`/`S`) or longitude (`dddmm.mmmm`, `E`/`W`) to signed degrees.
///
/// Also returns how many decimals of minutes the field carried: when sentences of one epoch
/// disagree in precision (some receivers print 4 decimals in RMC and 7 in GGA), the epoch keeps
/// the most precise position.
pub(crate) fn coord(value: &str, hemi: &str, is_lat: bool) -> FieldResult<(f64, u8)> {
    if value.is_empty() && hemi.is_empty() {
        return Ok(None);
    }
    let sign = match (hemi, is_lat) {
        ("N", true) | ("E", false) => 1.0,
        ("S", true) | ("W", false) => -1.0,
        _ => return Err("bad hemisphere"),
    };
    let b = value.as_bytes();
    if b.is_empty() || !b.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
        return Err("coordinate is not ddmm.mmmm");
    }
    let dot = b.iter().position(|c| *c == b'.').unwrap_or(b.len());
    let decimals = b.len().saturating_sub(dot + 1).min(u8::MAX as usize) as u8;
    let v: f64 = value.parse().map_err(|_| "coordinate is not a number")?;
    let deg = (v / 100.0).trunc();
    let min = v - deg * 100.0;
    let max = if is_lat { 90.0 } else { 180.0 };
    if min >= 60.0 || deg > max {
        return Err("coordinate out of range");
    }
    // Round to 1e-9 deg (0.1 mm), far below any receiver's resolution, so the ddmm.mmmm
    // conversion leaves no binary noise like `51.925886999999996`. Decoders that receive
    // decimal degrees pass the device's value through unchanged.
    let d = ((deg + min / 60.0) * 1e9).round() / 1e9;
    if d > max {
        return Err("coordinate out of range");
    }
    Ok(Some((sign * d, decimals)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_takes_milliseconds_and_leap_seconds() {
        assert_eq!(time_of_day("030719.000"), Ok(Some(11_239_000)));
        assert_eq!(time_of_day("194057.5"), Ok(Some(70_857_500)));
        assert_eq!(time_of_day("000000.1234"), Ok(Some(123)));
        assert_eq!(time_of_day("235960"), Ok(Some(DAY_MS)));
        assert_eq!(time_of_day(""), Ok(None));
        assert!(time_of_day("2400").is_err());
        assert!(time_of_day("246000").is_err());
        assert!(time_of_day("12345x").is_err());
        assert!(time_of_day("123456.é").is_err());
    }

    #[test]
    fn dates_pivot_two_digit_years_at_the_gps_epoch() {
        assert_eq!(
            date_ddmmyy("311214"),
            Ok(NaiveDate::from_ymd_opt(2014, 12, 31))
        );
        assert_eq!(
            date_ddmmyy("220899"),
            Ok(NaiveDate::from_ymd_opt(1999, 8, 22))
        );
        assert!(date_ddmmyy("310214").is_err());
        assert_eq!(
            date_dmy("12", "02", "2026"),
            Ok(NaiveDate::from_ymd_opt(2026, 2, 12))
        );
        assert_eq!(date_dmy("", "", ""), Ok(None));
        assert!(date_dmy("1", "13", "2026").is_err());
    }

    #[test]
    fn coordinates_convert_degrees_and_minutes() {
        let (lat, dec) = coord("3747.0873", "S", true).unwrap().unwrap();
        assert!((lat - -37.784788333).abs() < 1e-9, "{lat}");
        assert_eq!(dec, 4);
        let (lon, _) = coord("17518.8938", "E", false).unwrap().unwrap();
        assert!((lon - 175.314896667).abs() < 1e-9, "{lon}");
        assert_eq!(coord("", "", true), Ok(None));
        assert!(coord("4860.0", "N", true).is_err());
        assert!(coord("9100.0", "N", true).is_err());
        assert!(coord("4800.0", "E", true).is_err());
        assert!(coord("-4800.0", "N", true).is_err());
    }

    #[test]
    fn numbers_reject_specials() {
        assert_eq!(num("-16.5"), Ok(Some(-16.5)));
        assert_eq!(num(""), Ok(None));
        assert!(num("NaN").is_err());
        assert!(num("inf").is_err());
        assert!(num("1e5").is_err());
        assert_eq!(uint("08"), Some(8));
        assert_eq!(uint("1234567890"), None);
    }
}
