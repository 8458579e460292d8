//! What the modem says: the `+CSQ`/`+CESQ` answers parsed into values (tables in
//! [`super::values`]), and every line classified (echo, answer, final result code, unsolicited
//! result code, garbage).

use super::values::{band, num, rxqual};
use crate::decode::DecodeError;
use crate::event::Status;

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

/// What one line from the modem is.
#[derive(Debug, PartialEq)]
pub(super) enum Reply<'a> {
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

pub(super) fn classify(line: &str) -> Reply<'_> {
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

pub(super) fn merge_csq(s: &mut Status, (rssi, ber): (Option<f64>, Option<f64>)) {
    s.rssi = rssi.or(s.rssi);
    s.ber = ber.or(s.ber);
}

pub(super) fn merge_cesq(s: &mut Status, c: Cesq) {
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
