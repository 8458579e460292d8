//! Typed reads from a parsed JSON payload, shared by the JSON-based decoders (`owntracks`,
//! `meshtastic`, `json`), so all three agree on limits, error kinds and time handling.
//!
//! Getters take an `Option<&Value>` (from `Map::get` or `Value::pointer`) plus the name to
//! report; `None` and JSON `null` both mean "absent", because devices use either.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::decode::DecodeError;
use crate::event::{valid_position, TsSrc, MAX_TEXT_BYTES};

/// The largest payload parsed (64 KiB). Checked before parsing so a hostile or broken device
/// cannot make the gateway allocate a large tree; real payloads are well under 1 KiB.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// 2000-01-01T00:00:00Z in ms: a device clock before this has never been set.
const EARLIEST_MS: i64 = 946_684_800_000;
/// How far ahead of the gateway a device clock may run (1 day) before it is distrusted.
const MAX_AHEAD_MS: i64 = 86_400_000;

/// Size check, UTF-8 check and JSON parse, in that order (cheapest first).
pub(crate) fn parse(payload: &[u8]) -> Result<Value, DecodeError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(DecodeError::TooLarge(payload.len(), MAX_PAYLOAD_BYTES));
    }
    let text = std::str::from_utf8(payload).map_err(|_| DecodeError::BadUtf8)?;
    // serde_json caps nesting at 128 levels, so deep input is an error, not a stack overflow.
    serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))
}

/// The payload as a JSON object (every supported device sends one at the top level).
pub(crate) fn object<'a>(v: &'a Value, name: &str) -> Result<&'a Map<String, Value>, DecodeError> {
    v.as_object()
        .ok_or_else(|| DecodeError::field(name, "expected an object"))
}

fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn wrong(name: &str, expected: &str, got: &Value) -> DecodeError {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    DecodeError::field(name, format!("expected {expected}, got {kind}"))
}

/// A number, if present.
pub(crate) fn f64_at(v: Option<&Value>, name: &str) -> Result<Option<f64>, DecodeError> {
    match present(v) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(wrong(name, "a number", other)),
    }
}

/// A number, or a string holding one in decimal: the OwnTracks apps send some numbers as
/// strings (iOS `lwt`/waypoint `tst`, `rad`). An empty string is absent.
pub(crate) fn num_at(v: Option<&Value>, name: &str) -> Result<Option<f64>, DecodeError> {
    match present(v) {
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(DecodeError::field(
                name,
                format!("expected a number, got the string {:?}", truncate(s, 32)),
            )),
        },
        other => f64_at(other, name),
    }
}

/// At most `n` bytes of `s` (at a char boundary), for messages that quote device input.
pub(crate) fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A number that must be there.
pub(crate) fn req_f64(v: Option<&Value>, name: &str) -> Result<f64, DecodeError> {
    f64_at(v, name)?.ok_or_else(|| DecodeError::Missing(name.to_string()))
}

/// A non-negative integer (a float with no fraction is accepted, as some encoders emit `5.0`).
pub(crate) fn u64_at(v: Option<&Value>, name: &str) -> Result<Option<u64>, DecodeError> {
    let Some(x) = f64_at(v, name)? else {
        return Ok(None);
    };
    if x >= 0.0 && x.fract() == 0.0 && x <= u64::MAX as f64 {
        Ok(Some(x as u64))
    } else {
        Err(DecodeError::field(
            name,
            format!("expected a non-negative integer, got {x}"),
        ))
    }
}

/// A string, if present.
pub(crate) fn str_at<'a>(v: Option<&'a Value>, name: &str) -> Result<Option<&'a str>, DecodeError> {
    match present(v) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(name, "a string", other)),
    }
}

/// An identifier that devices send either as a string or as a number (`to`, `msg_id`).
pub(crate) fn id_at(v: Option<&Value>, name: &str) -> Result<Option<String>, DecodeError> {
    match present(v) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(wrong(name, "a string or number", other)),
    }
}

/// A boolean; a number counts as true when non-zero (many devices send 0/1 flags).
pub(crate) fn flag_at(v: Option<&Value>, name: &str) -> Result<Option<bool>, DecodeError> {
    match present(v) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) => Ok(Some(n.as_f64().is_some_and(|x| x != 0.0))),
        Some(other) => Err(wrong(name, "a boolean or number", other)),
    }
}

/// Message text: a string of at most [`MAX_TEXT_BYTES`] (SPEC §5); longer is refused, not cut,
/// because a truncated order can be worse than none.
pub(crate) fn text_at(v: Option<&Value>, name: &str) -> Result<Option<String>, DecodeError> {
    let Some(s) = str_at(v, name)? else {
        return Ok(None);
    };
    if s.len() > MAX_TEXT_BYTES {
        return Err(DecodeError::field(
            name,
            format!("text of {} bytes exceeds {MAX_TEXT_BYTES}", s.len()),
        ));
    }
    Ok(Some(s.to_string()))
}

/// Refuse positions outside WGS84 ranges (and NaN, which cannot come from JSON anyway).
pub(crate) fn check_position(lat: f64, lon: f64) -> Result<(), DecodeError> {
    if valid_position(lat, lon) {
        Ok(())
    } else {
        Err(DecodeError::BadPosition { lat, lon })
    }
}

/// Milliseconds since the epoch → a timestamp, if it is plausible: not before 2000 and not more
/// than a day ahead of the gateway. Anything else is a clock that was never set (Meshtastic
/// nodes without GPS send 0) or is wildly off.
pub(crate) fn plausible_ms(ms: f64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let latest = now.timestamp_millis().saturating_add(MAX_AHEAD_MS);
    if !ms.is_finite() || ms < EARLIEST_MS as f64 || ms > latest as f64 {
        return None;
    }
    Utc.timestamp_millis_opt(ms.round() as i64).single()
}

/// Unix seconds (possibly fractional) → a plausible timestamp with millisecond precision.
pub(crate) fn plausible_secs(secs: f64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    plausible_ms(secs * 1000.0, now)
}

/// The event time: the device's own clock when it gave a plausible one, else the gateway's
/// receive time. An implausible device time is not an error: the report itself (a position, a
/// battery level) is still true, and `ts_src: gateway` tells the hub where the time came from.
pub(crate) fn device_or_gateway(
    device: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, TsSrc) {
    match device {
        Some(ts) => (ts, TsSrc::Device),
        None => (now, TsSrc::Gateway),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn parse_checks_size_before_anything_else() {
        let big = vec![0xff; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(
            parse(&big),
            Err(DecodeError::TooLarge(
                MAX_PAYLOAD_BYTES + 1,
                MAX_PAYLOAD_BYTES
            ))
        );
        assert_eq!(parse(b"\xff{}"), Err(DecodeError::BadUtf8));
        assert_eq!(parse(b"{").unwrap_err().reason(), "not_json");
        assert_eq!(parse(b"NaN").unwrap_err().reason(), "not_json");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(10_000);
        assert_eq!(parse(deep.as_bytes()).unwrap_err().reason(), "not_json");
    }

    #[test]
    fn getters_treat_null_as_absent_and_wrong_types_as_bad_field() {
        let v = json!({"n": null, "s": "x", "f": 1.5, "i": 3.0, "neg": -1});
        assert_eq!(f64_at(v.get("n"), "n"), Ok(None));
        assert_eq!(f64_at(v.get("f"), "f"), Ok(Some(1.5)));
        assert_eq!(f64_at(v.get("s"), "s").unwrap_err().reason(), "bad_field");
        assert_eq!(
            req_f64(v.get("zz"), "zz"),
            Err(DecodeError::Missing("zz".into()))
        );
        assert_eq!(u64_at(v.get("i"), "i"), Ok(Some(3)));
        assert!(u64_at(v.get("f"), "f").is_err());
        assert!(u64_at(v.get("neg"), "neg").is_err());
        assert_eq!(flag_at(v.get("i"), "i"), Ok(Some(true)));
        assert_eq!(id_at(v.get("i"), "i"), Ok(Some("3.0".into())));
    }

    #[test]
    fn num_at_takes_numbers_in_strings() {
        let v = json!({"s": " 1600000000 ", "e": "", "x": "12a", "inf": "inf", "n": 2});
        assert_eq!(num_at(v.get("s"), "s"), Ok(Some(1_600_000_000.0)));
        assert_eq!(num_at(v.get("e"), "e"), Ok(None));
        assert_eq!(num_at(v.get("n"), "n"), Ok(Some(2.0)));
        assert_eq!(num_at(v.get("x"), "x").unwrap_err().reason(), "bad_field");
        assert_eq!(
            num_at(v.get("inf"), "inf").unwrap_err().reason(),
            "bad_field"
        );
        assert_eq!(truncate("aé", 2), "a");
    }

    #[test]
    fn times_before_2000_or_a_day_ahead_are_implausible() {
        assert_eq!(plausible_secs(0.0, now()), None);
        assert_eq!(plausible_secs(946_684_799.0, now()), None);
        assert_eq!(plausible_secs(1_700_086_401.0, now()), None);
        assert_eq!(plausible_secs(f64::MAX, now()), None);
        let ts = plausible_secs(1_699_999_999.123_4, now()).unwrap();
        assert_eq!(ts.timestamp_millis(), 1_699_999_999_123);
    }
}
