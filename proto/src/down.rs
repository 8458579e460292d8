//! Downlink messages (SPEC §8): what the hub publishes to `<topic_prefix>/<gw>/down` and
//! `outpost send` queues locally: `{"msg_id","to","text","expires","from"}`.
//!
//! Optional `"kind": "locate"` asks for a position report instead of carrying text (OwnTracks
//! has no text downlink; SPEC §8); `text` may then be empty. [`parse`] keeps whatever `msg_id`
//! it could read even when the rest is bad, so the gateway can send a `failed` receipt for it.

use crate::event::{format_ts, MAX_TEXT_BYTES};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// `to` value that fans a message out to every text-capable device of the gateway.
pub const TO_ALL: &str = "*";

/// What a downlink message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Carry `text` to the device.
    Text,
    /// Ask the device where it is now (OwnTracks `reportLocation`).
    Locate,
}

/// One downlink message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DownMessage {
    pub msg_id: String,
    pub to: String,
    pub text: String,
    #[serde(serialize_with = "ser_ts")]
    pub expires: DateTime<Utc>,
    pub from: String,
    #[serde(skip_serializing_if = "is_text")]
    pub kind: Kind,
}

fn is_text(k: &Kind) -> bool {
    *k == Kind::Text
}

fn ser_ts<S: serde::Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_ts(*ts))
}

impl DownMessage {
    /// The §8 payload.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("down message serialisation cannot fail")
    }
}

/// Why a down payload was refused; `reason()` is the receipt's `reason` and the metric label.
#[derive(Debug, Error, PartialEq)]
pub enum DownError {
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("missing or empty field {0:?}")]
    Missing(&'static str),
    #[error("field {0:?}: {1}")]
    Bad(&'static str, String),
    #[error("text is {0} bytes, more than {MAX_TEXT_BYTES}")]
    TooLong(usize),
}

impl DownError {
    /// A short label: `not_json`, `missing_<field>`, `bad_<field>`, `too_long`.
    pub fn reason(&self) -> String {
        match self {
            DownError::NotJson(_) => "not_json".into(),
            DownError::Missing(f) => format!("missing_{f}"),
            DownError::Bad(f, _) => format!("bad_{f}"),
            DownError::TooLong(_) => "too_long".into(),
        }
    }
}

/// True for a usable message id: `[A-Za-z0-9._:-]{1,128}` (one Redis key part, no spaces).
pub fn valid_msg_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

/// Parses a down payload. On error, the second value is the `msg_id` when one was readable.
pub fn parse(payload: &[u8]) -> Result<DownMessage, (DownError, Option<String>)> {
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| (DownError::NotJson(e.to_string()), None))?;
    let Value::Object(o) = v else {
        return Err((DownError::NotJson("not an object".into()), None));
    };
    let msg_id = match o.get("msg_id").and_then(Value::as_str) {
        Some(id) if valid_msg_id(id) => id.to_string(),
        Some(id) if !id.is_empty() => {
            return Err((
                DownError::Bad("msg_id", "not [A-Za-z0-9._:-]{1,128}".into()),
                None,
            ))
        }
        _ => return Err((DownError::Missing("msg_id"), None)),
    };
    let fail = |e: DownError| (e, Some(msg_id.clone()));
    let field = |name: &'static str| -> Result<Option<&str>, (DownError, Option<String>)> {
        match o.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(fail(DownError::Bad(name, "not a string".into()))),
        }
    };
    let kind = match field("kind")? {
        None | Some("text") => Kind::Text,
        Some("locate") => Kind::Locate,
        Some(k) => return Err(fail(DownError::Bad("kind", format!("{k:?}")))),
    };
    let to = field("to")?.filter(|s| !s.is_empty());
    let to = to
        .ok_or_else(|| fail(DownError::Missing("to")))?
        .to_string();
    let text = field("text")?.unwrap_or_default().to_string();
    if text.is_empty() && kind == Kind::Text {
        return Err(fail(DownError::Missing("text")));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(fail(DownError::TooLong(text.len())));
    }
    let expires = field("expires")?.ok_or_else(|| fail(DownError::Missing("expires")))?;
    let expires = DateTime::parse_from_rfc3339(expires)
        .map_err(|e| fail(DownError::Bad("expires", e.to_string())))?
        .with_timezone(&Utc);
    let from = field("from")?.unwrap_or_default().to_string();
    Ok(DownMessage {
        msg_id,
        to,
        text,
        expires,
        from,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_spec_payload() {
        let p = br#"{"msg_id":"m-1","to":"r7","text":"Evacuate sector 4","expires":"2030-01-01T00:00:00.000Z","from":"alice"}"#;
        let m = parse(p).unwrap();
        assert_eq!(m.to, "r7");
        assert_eq!(m.kind, Kind::Text);
        assert_eq!(parse(m.to_json().as_bytes()).unwrap(), m);
    }

    #[test]
    fn keeps_the_msg_id_of_a_bad_message() {
        let (e, id) =
            parse(br#"{"msg_id":"m-2","to":"r7","expires":"2030-01-01T00:00:00Z"}"#).unwrap_err();
        assert_eq!(
            (e.reason(), id.as_deref()),
            ("missing_text".into(), Some("m-2"))
        );
        let (e, id) = parse(b"nope").unwrap_err();
        assert_eq!((e.reason(), id), ("not_json".into(), None));
        let (e, _) = parse(br#"{"msg_id":"a b","to":"r7"}"#).unwrap_err();
        assert_eq!(e.reason(), "bad_msg_id");
    }

    #[test]
    fn locate_needs_no_text() {
        let m =
            parse(br#"{"msg_id":"m","to":"p1","kind":"locate","expires":"2030-01-01T00:00:00Z"}"#)
                .unwrap();
        assert_eq!(m.kind, Kind::Locate);
    }
}
