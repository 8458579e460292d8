//! Framing of one NMEA 0183 line: find the sentence, check its checksum, split its fields.
//!
//! Real serial lines are dirty: a receiver booting prints garbage before the first `$`, a
//! dropped byte merges two sentences into one line (`$GPGGA,12$GPRMC,…`), ST Teseo receivers
//! prefix every sentence with `$$`. `$` is reserved by NMEA 0183 and never appears inside a
//! sentence, so the sentence is whatever follows the *last* `$` on the line; that one rule
//! handles all three cases, as gpsd's packet lexer does by resynchronising on `$`.

use heapless::Vec;

/// Longest sentence accepted, `$` to checksum. NMEA 0183 says 82 characters, but gpsd accepts
/// longer ones and real receivers send them (Unicore, u-blox high-precision mode, NMEA 4.11 GSV).
pub const MAX_SENTENCE: usize = 200;

/// Fields kept per sentence; later ones are ignored (no sentence we decode has more than 20).
const MAX_FIELDS: usize = 32;

/// Why a line is not a usable sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// No `$`, no `*hh`, or bytes outside printable ASCII.
    NotNmea(&'static str),
    /// Longer than [`MAX_SENTENCE`].
    TooLong(usize),
    /// The `*hh` checksum does not match.
    BadChecksum,
}

/// One checksummed sentence, split. Borrowed from the input line.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    /// The address field: talker + type (`GPGGA`), or `P` + maker + type for proprietary ones.
    pub addr: &'a str,
    /// The data fields after the address (without the checksum).
    pub fields: Vec<&'a str, MAX_FIELDS>,
}

impl<'a> Frame<'a> {
    /// `true` for a proprietary (`$P…`) sentence.
    pub fn is_proprietary(&self) -> bool {
        self.addr.starts_with('P')
    }

    /// The sentence type (`GGA`) of a standard two-letter-talker address, if it is one.
    pub fn kind(&self) -> Option<&'a str> {
        let b = self.addr.as_bytes();
        if b.len() == 5 && b.iter().all(u8::is_ascii_uppercase) {
            // All ASCII, so byte 2 is a char boundary.
            self.addr.get(2..)
        } else {
            None
        }
    }

    /// Field `i` after the address, `""` when the sentence is shorter.
    pub fn f(&self, i: usize) -> &'a str {
        self.fields.get(i).copied().unwrap_or("")
    }
}

/// Frames one line (CR/LF already stripped).
pub(crate) fn frame(line: &str) -> Result<Frame<'_>, FrameError> {
    let start = line
        .rfind('$')
        .ok_or(FrameError::NotNmea("no '$' in line"))?;
    // `$` is one byte, so `start + 1` is a char boundary; `get` keeps that a non-panicking fact.
    let s = line.get(start + 1..).unwrap_or("").trim_end();
    if s.len() + 1 > MAX_SENTENCE {
        return Err(FrameError::TooLong(s.len() + 1));
    }
    let b = s.as_bytes();
    if !b.iter().all(|c| (0x20..0x7f).contains(c)) {
        return Err(FrameError::NotNmea("non-printable or non-ASCII byte"));
    }
    // Everything below slices an all-ASCII string, where every index is a char boundary.
    let star = b
        .iter()
        .rposition(|c| *c == b'*')
        .ok_or(FrameError::NotNmea("no checksum"))?;
    let (body, ck) = (&s[..star], &s[star + 1..]);
    let want = match ck.as_bytes() {
        [h, l] => (hex(*h), hex(*l)),
        _ => return Err(FrameError::NotNmea("checksum is not two hex digits")),
    };
    let (Some(h), Some(l)) = want else {
        return Err(FrameError::NotNmea("checksum is not two hex digits"));
    };
    let sum = body.bytes().fold(0u8, |x, c| x ^ c);
    if sum != (h << 4 | l) {
        return Err(FrameError::BadChecksum);
    }
    let mut parts = body.split(',');
    let addr = parts.next().unwrap_or("");
    if addr.is_empty() || !addr.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(FrameError::NotNmea("bad address field"));
    }
    let mut fields = Vec::new();
    for p in parts {
        if fields.push(p).is_err() {
            break;
        }
    }
    Ok(Frame { addr, fields })
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_a_plain_sentence() {
        let f = frame("$GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000*7D")
            .unwrap();
        assert_eq!(f.addr, "GPGGA");
        assert_eq!(f.kind(), Some("GGA"));
        assert_eq!(f.f(0), "030719.000");
        assert_eq!(f.f(13), "0000");
        assert_eq!(f.f(14), "");
    }

    #[test]
    fn double_dollar_and_leading_garbage_are_skipped() {
        let good = "$GPZDA,000427.00,22,08,1999,,*67";
        assert_eq!(frame(good).unwrap().addr, "GPZDA");
        assert_eq!(frame(&format!("$${}", &good[1..])).unwrap().addr, "GPZDA");
        assert_eq!(
            frame(&format!("\u{fffd}x$GPGGA,12{good}")).unwrap().addr,
            "GPZDA"
        );
    }

    #[test]
    fn rejects_bad_checksums_and_non_nmea() {
        assert_eq!(
            frame("$GPZDA,000427.00,22,08,1999,,*68").unwrap_err(),
            FrameError::BadChecksum
        );
        assert!(matches!(frame("hello"), Err(FrameError::NotNmea(_))));
        assert!(matches!(frame("$GPZDA,1,2"), Err(FrameError::NotNmea(_))));
        assert!(matches!(frame("$GPZDA*6"), Err(FrameError::NotNmea(_))));
        assert!(matches!(frame("$GPZDA,é*00"), Err(FrameError::NotNmea(_))));
        let long = format!("$GPTXT,{}*00", "A".repeat(250));
        assert!(matches!(frame(&long), Err(FrameError::TooLong(_))));
    }

    #[test]
    fn proprietary_is_recognised() {
        let f = frame("$PGRMZ,246,f,3*1B").unwrap();
        assert!(f.is_proprietary());
    }
}
