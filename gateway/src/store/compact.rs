//! The compact stored form of an outbox entry (docs/redis-layout.md): what a buffered event
//! costs in Redis is mostly its JSON, so the stream keeps a shorter object and the uplink
//! expands it back to the §5 object, byte for byte what [`Event::to_stored_json`] gives.
//!
//! Compact: `{"d":<dev>,<class fields>,"t":<ts − rx in ms>[,"s":"g"|"w"][,"r":<rx ms>]}`
//! — no `class` (the stream names it), `rx` is the entry id's milliseconds unless `"r"` says
//! otherwise (the ingest script adds it when Redis had to pick the id), `ts_src` is omitted
//! when `device`, and the most common class fields have one-letter names ([`SHORT`]); the
//! others keep theirs, values are kept as they are, in order. Entries that start with `{"dev"` are the full form (older gateways, presence
//! and receipts) and pass through unchanged.
//!
//! [`Event::to_stored_json`]: crate::event::Event::to_stored_json

use crate::event::{format_ts, Class};
use chrono::{DateTime, TimeZone, Utc};

/// The keys the compact form uses for itself; an event whose class fields use one of these
/// (or a short name of [`SHORT`]) is stored in the full form instead.
const OWN: [&str; 4] = ["d", "t", "s", "r"];
/// Class fields and their names in the compact form.
const SHORT: [(&str, &str); 10] = [
    ("lat", "a"),
    ("lon", "o"),
    ("alt", "h"),
    ("speed", "v"),
    ("course", "c"),
    ("acc", "e"),
    ("hdop", "p"),
    ("sats", "n"),
    ("fix", "f"),
    ("battery", "b"),
];

fn short(k: &str) -> Option<&'static str> {
    SHORT.iter().find(|(l, _)| *l == k).map(|(_, s)| *s)
}

fn long(k: &str) -> Option<&'static str> {
    SHORT.iter().find(|(_, s)| *s == k).map(|(l, _)| *l)
}

/// The compact form of `json` (an [`crate::event::Event::to_json`] object) received at
/// `rx_ms`; `None` when it cannot be compacted (then store the full form).
pub fn compact(json: &str, rx_ms: i64) -> Option<String> {
    let (mut dev, mut ts, mut src) = (None, None, None);
    let mut out = String::with_capacity(json.len());
    let mut rest = String::with_capacity(json.len());
    for f in Members::new(json)? {
        let (k, v) = f?;
        match k {
            "dev" => dev = Some(v),
            "class" => {}
            "ts" => ts = Some(v),
            "ts_src" => src = Some(v),
            k if OWN.contains(&k) || long(k).is_some() => return None,
            k => {
                rest.push_str(",\"");
                rest.push_str(short(k).unwrap_or(k));
                rest.push_str("\":");
                rest.push_str(v);
            }
        }
    }
    let ts_text = ts?.strip_prefix('"')?.strip_suffix('"')?;
    let ts = DateTime::parse_from_rfc3339(ts_text).ok()?;
    // Only what formats back to the same text (millisecond precision, years 0..=9999).
    if format_ts(ts.with_timezone(&Utc)) != ts_text {
        return None;
    }
    let src = match src? {
        "\"device\"" => "",
        "\"gps\"" => ",\"s\":\"g\"",
        "\"gateway\"" => ",\"s\":\"w\"",
        _ => return None,
    };
    out.push_str("{\"d\":");
    out.push_str(dev?);
    out.push_str(&rest);
    out.push_str(",\"t\":");
    out.push_str(&(ts.timestamp_millis() - rx_ms).to_string());
    out.push_str(src);
    out.push('}');
    Some(out)
}

/// The full stored form of an entry of `class` with stream id milliseconds `id_ms`.
/// Full-form entries come back as they are; a compact entry that does not parse is passed on
/// unchanged too (the hub refuses and counts a bad event; the outbox never wedges on it).
/// One entry at a time (tests); the read path uses [`Expander`] across a page.
#[cfg(test)]
pub fn expand(json: String, class: Class, id_ms: u64) -> String {
    Expander::default().expand(json, class, id_ms)
}

/// Expands many entries: formatting times is most of the work, and neighbouring entries
/// mostly share their second, so the formatted second is kept for the next one.
#[derive(Default)]
pub struct Expander {
    ts: SecondCache,
    rx: SecondCache,
}

impl Expander {
    /// [`expand`], reusing what the entries before formatted.
    pub fn expand(&mut self, json: String, class: Class, id_ms: u64) -> String {
        self.full(&json, class, id_ms).unwrap_or(json)
    }

    /// [`Expander::expand`] of stored bytes read into a reused buffer: one allocation per
    /// entry, the one it is sent from.
    pub fn expand_bytes(&mut self, stored: &[u8], class: Class, id_ms: u64) -> String {
        let Ok(json) = std::str::from_utf8(stored) else {
            return String::from_utf8_lossy(stored).into_owned();
        };
        self.full(json, class, id_ms)
            .unwrap_or_else(|| json.to_string())
    }

    /// The full form of a compact entry; `None` for one that is full already or does not
    /// parse (passed on as it is).
    fn full(&mut self, json: &str, class: Class, id_ms: u64) -> Option<String> {
        if json.starts_with("{\"dev\"") {
            return None;
        }
        let mut out = String::with_capacity(json.len() + 100);
        expand_compact(self, &mut out, json, class, id_ms)?;
        Some(out)
    }
}

/// `format_ts` of one second's times: its text up to the fraction.
#[derive(Default)]
struct SecondCache {
    sec: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:SS.`
    prefix: String,
}

impl SecondCache {
    fn push(&mut self, out: &mut String, ms: i64) -> Option<()> {
        let (sec, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
        if self.sec != Some(sec) {
            let full = format_ts(Utc.timestamp_millis_opt(sec * 1000).single()?);
            // `…SS.000Z`: keep up to the dot.
            self.prefix = full.get(..full.len().checked_sub(4)?)?.to_string();
            self.sec = Some(sec);
        }
        out.push_str(&self.prefix);
        out.push(char::from(b'0' + (frac / 100) as u8));
        out.push(char::from(b'0' + (frac / 10 % 10) as u8));
        out.push(char::from(b'0' + (frac % 10) as u8));
        out.push('Z');
        Some(())
    }
}

/// Writes the full form of compact `json` into `out` in one pass: `d` comes first in the
/// compact form ([`compact`] writes it so), the class fields follow in their order, and `t`,
/// `s`, `r` are only remembered for the end. `None` (with `out` half written) when it is not
/// a compact entry.
fn expand_compact(
    x: &mut Expander,
    out: &mut String,
    json: &str,
    class: Class,
    id_ms: u64,
) -> Option<()> {
    let mut fields = Members::new(json)?;
    let (k, dev) = fields.next()??;
    if k != "d" {
        return None;
    }
    let (mut t, mut src, mut rx) = (None, "device", id_ms as i64);
    out.push_str("{\"dev\":");
    out.push_str(dev);
    out.push_str(",\"class\":\"");
    out.push_str(class.as_str());
    out.push('"');
    for f in fields {
        let (k, v) = f?;
        match k {
            "d" => return None,
            "t" => t = Some(v.parse::<i64>().ok()?),
            "s" => {
                src = match v {
                    "\"g\"" => "gps",
                    "\"w\"" => "gateway",
                    _ => return None,
                }
            }
            "r" => rx = v.parse().ok()?,
            k => {
                out.push_str(",\"");
                out.push_str(long(k).unwrap_or(k));
                out.push_str("\":");
                out.push_str(v);
            }
        }
    }
    out.push_str(",\"ts\":\"");
    x.ts.push(out, rx.checked_add(t?)?)?;
    out.push_str("\",\"ts_src\":\"");
    out.push_str(src);
    out.push_str("\",\"rx\":\"");
    x.rx.push(out, rx)?;
    out.push_str("\"}");
    Some(())
}

/// The top-level members of a JSON object written by us, one at a time: (key, raw value
/// text), in order. Keys are taken as they are (ours never need escapes); values are skipped
/// over by their syntax (strings with escapes, nested objects and arrays), not parsed. An
/// item is `None` where the object's syntax breaks (and nothing follows it).
struct Members<'a> {
    json: &'a str,
    /// Where the next member's key starts; `None` once the object ended or broke.
    at: Option<usize>,
}

impl<'a> Members<'a> {
    fn new(json: &'a str) -> Option<Members<'a>> {
        let b = json.as_bytes();
        if b.first() != Some(&b'{') {
            return None;
        }
        if b.get(1) == Some(&b'}') {
            return (b.len() == 2).then_some(Members { json, at: None });
        }
        Some(Members { json, at: Some(1) })
    }

    fn member(&self, i: usize) -> Option<((&'a str, &'a str), Option<usize>)> {
        let (json, b) = (self.json, self.json.as_bytes());
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let k_end = i + 1 + b[i + 1..].iter().position(|&c| c == b'"')?;
        let key = &json[i + 1..k_end];
        if b.get(k_end + 1) != Some(&b':') {
            return None;
        }
        let v_start = k_end + 2;
        let v_end = skip_value(b, v_start)?;
        let next = match b.get(v_end) {
            Some(b',') => Some(v_end + 1),
            Some(b'}') if v_end + 1 == b.len() => None,
            _ => return None,
        };
        Some(((key, &json[v_start..v_end]), next))
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = Option<(&'a str, &'a str)>;

    fn next(&mut self) -> Option<Self::Item> {
        let i = self.at.take()?;
        Some(self.member(i).map(|(m, next)| {
            self.at = next;
            m
        }))
    }
}

/// The end (exclusive) of the JSON value starting at `i`.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let start = i;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while *b.get(i)? != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => depth -= 1,
            b',' | b'}' | b']' if depth == 0 => return (i > start).then_some(i),
            _ => {}
        }
        i += 1;
        if depth == 0 && i > start && matches!(b[start], b'"' | b'{' | b'[') {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;
