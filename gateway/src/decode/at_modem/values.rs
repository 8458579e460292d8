//! Value tables of the AT answers: 3GPP TS 27.007 (`+CSQ`, `+CESQ` bands), TS 45.008 §8.2.4
//! (RXQUAL → assumed BER) and TS 36.133/25.133 (RSRP/RSRQ/RSCP/Ec/No). A banded value is the
//! *lower* edge of its band; "unknown" (99/255) is `None`.

use serde_json::Value;

use crate::decode::DecodeError;

/// TS 45.008 §8.2.4 assumed bit error rate (%) for RXQUAL classes 0..=7.
const RXQUAL_BER_PCT: [f64; 8] = [0.14, 0.28, 0.57, 1.13, 2.26, 4.53, 9.05, 18.10];
/// `n` in `0..=max` → `base + step·n`; `unknown` → `None`; anything else is an error.
pub(super) fn band(
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

pub(super) fn rxqual(n: u16, field: &str) -> Result<Option<f64>, DecodeError> {
    match n {
        99 => Ok(None),
        _ => RXQUAL_BER_PCT
            .get(usize::from(n))
            .map(|&b| Some(b))
            .ok_or_else(|| DecodeError::field(field, format!("{n} is not an RXQUAL class"))),
    }
}

/// Whole numbers as JSON integers (`-79`, not `-79.0`).
pub(super) fn num(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}
