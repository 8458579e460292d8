//! The few fields of a JSON object the hub reads, taken without building the object.
//!
//! The hub checks every event of every batch and reads a handful of its fields (`id`, `dev`,
//! `class`, `ts`, …); parsed into a `serde_json::Value` tree (a map of strings and values,
//! re-serialised, then dropped), that was about half of the receiver's CPU (perf of
//! `outpost-bench hub`: parse 24%, drop 9%, writing the stored and stream forms 14%). Here an
//! object is read as its members, each value left as the text it came as (serde_json's
//! `RawValue`: no allocation unless a key has escapes), and only the fields asked for are
//! decoded. serde_json has no "members of an object as text" reader, hence the visitor.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// An object's members in their order (a key twice: both, the last one counts), each value as
/// its JSON text.
pub type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// A key, borrowed from the text unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The members of `text` when it is one JSON object (whitespace around it allowed), else `None`.
pub fn members(text: &str) -> Option<Members<'_>> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Members<'de>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(16);
            while let Some((k, v)) = m.next_entry::<Key<'de>, &'de RawValue>()? {
                out.push((k.0, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let m = de.deserialize_map(V).ok()?;
    de.end().ok()?;
    Some(m)
}

/// The value of `key` (the last one, as a JSON object read into a map keeps it).
pub fn get<'a>(m: &Members<'a>, key: &str) -> Option<&'a RawValue> {
    m.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// A JSON string's value; `None` for any other JSON value.
pub fn str_of(v: &RawValue) -> Option<Cow<'_, str>> {
    let t = v.get().trim();
    let inner = t.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(t).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A JSON number's value as `f64`; `None` for any other JSON value.
pub fn num_of(v: &RawValue) -> Option<f64> {
    let t = v.get().trim();
    // A JSON number starts with '-' or a digit; Rust's f64 grammar takes every JSON number.
    match t.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => t.parse().ok(),
        _ => None,
    }
}

/// What the hub reads of every event beside `id`, `dev` and `class`: the latest-state
/// comparison (`ts`, else `rx`), the geo index (`lat`, `lon`), presence (`state`,
/// `last_seen`), the receive lag (`rx`). A field of another JSON type is absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Head {
    pub ts: Option<String>,
    pub rx: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub state: Option<String>,
    pub last_seen: Option<String>,
}

impl Head {
    pub fn of_members(m: &Members<'_>) -> Head {
        Head::read(
            |k| get(m, k).and_then(str_of).map(Cow::into_owned),
            |k| get(m, k).and_then(num_of),
        )
    }

    pub fn of_object(o: &Map<String, Value>) -> Head {
        Head::read(
            |k| o.get(k).and_then(Value::as_str).map(str::to_string),
            |k| o.get(k).and_then(Value::as_f64),
        )
    }

    /// The fields, from a reader of strings and one of numbers.
    fn read(s: impl Fn(&str) -> Option<String>, n: impl Fn(&str) -> Option<f64>) -> Head {
        Head {
            ts: s("ts"),
            rx: s("rx"),
            lat: n("lat"),
            lon: n("lon"),
            state: s("state"),
            last_seen: s("last_seen"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_as_a_value_tree_would() {
        let texts = [
            r#"{"dev":"r1","ts":"2026-01-01T00:00:00Z","lat":-1.5e1,"lon":2,"state":"online"}"#,
            r#" {"dev":"r\u00e9","ts":5,"lat":"1","lon":null,"last_seen":"a\"b","dev":"last"} "#,
            r#"{"rx":"x","lat":[1],"lon":{"a":1},"st\u0061te":"esc key"}"#,
            r#"{}"#,
        ];
        for t in texts {
            let m = members(t).unwrap();
            let Value::Object(o) = serde_json::from_str::<Value>(t).unwrap() else {
                panic!()
            };
            assert_eq!(Head::of_members(&m), Head::of_object(&o), "{t}");
            assert_eq!(
                get(&m, "dev").and_then(str_of).as_deref(),
                o.get("dev").and_then(Value::as_str),
                "{t}"
            );
        }
    }

    #[test]
    fn anything_but_one_object_is_not_members() {
        for t in ["[1]", "1", "\"a\"", "{\"a\":1} {}", "{\"a\":}", "", "null"] {
            assert!(members(t).is_none(), "{t}");
        }
    }
}
