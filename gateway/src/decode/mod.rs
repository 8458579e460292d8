//! Decoders: bytes or text in, [`Event`](crate::event::Event)s out. Sans-I/O (no tokio, no
//! sockets), so they can be fuzzed, benchmarked and run offline by `outpost decode`.

mod dispatch;
mod dropped;
pub mod json;
pub mod meshtastic;
pub mod owntracks;

pub use dispatch::MqttDecoder;
pub use dropped::DroppedField;
pub(crate) use dropped::Drops;
use thiserror::Error;

pub mod at_modem;
pub mod framer;
pub mod gpsd;
pub mod nmea;

/// Why an input produced no event. `reason()` is the counter label.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DecodeError {
    #[error("payload is not valid UTF-8")]
    BadUtf8,
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload of {0} bytes exceeds the {1}-byte limit")]
    TooLarge(usize, usize),
    #[error("field {field}: {problem}")]
    BadField { field: String, problem: String },
    #[error("missing field {0}")]
    Missing(String),
    #[error("position out of range: lat {lat}, lon {lon}")]
    BadPosition { lat: f64, lon: f64 },
    #[error("bad checksum")]
    BadChecksum,
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("cannot decrypt: {0}")]
    DecryptFailed(String),
}

impl DecodeError {
    /// Short stable label for drop counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::BadUtf8 => "bad_utf8",
            DecodeError::NotJson(_) => "not_json",
            DecodeError::TooLarge(..) => "too_large",
            DecodeError::BadField { .. } => "bad_field",
            DecodeError::Missing(_) => "missing_field",
            DecodeError::BadPosition { .. } => "bad_position",
            DecodeError::BadChecksum => "bad_checksum",
            DecodeError::Unsupported(_) => "unsupported",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::DecryptFailed(_) => "decrypt_failed",
        }
    }

    pub(crate) fn field(field: &str, problem: impl Into<String>) -> Self {
        DecodeError::BadField {
            field: field.to_string(),
            problem: problem.into(),
        }
    }
}

/// What one input (an MQTT message, a serial line) decoded to.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    /// Events in the order they happened; may be empty (e.g. a packet type that carries nothing).
    pub events: Vec<crate::event::Event>,
    /// A key that identifies this input across relays and redeliveries (e.g. a Meshtastic packet
    /// id). The store drops an input whose key it has seen recently.
    pub dedup_key: Option<String>,
    /// Malformed optional fields that were left out while the rest of the input was kept
    /// (docs/device-profiles.md, "Malformed fields"); each is counted as `bad_field:<name>`.
    pub dropped: Vec<DroppedField>,
    /// A display name the device announced for itself (an OwnTracks `card`), if this input
    /// carried one.
    pub device_name: Option<String>,
    /// This input says nothing about whether the device is there (a command sent *to* it, a
    /// retained card another client published), so it must not mark the device online.
    /// Only meaningful with no events.
    pub silent: bool,
}

/// Helpers shared by the decoders' unit tests.
#[cfg(test)]
pub(crate) mod testkit {
    use chrono::{DateTime, TimeZone, Utc};

    /// The fixed "now" of decoder tests (2024-04-28T10:26:40Z).
    pub fn now() -> DateTime<Utc> {
        secs(1_714_300_000)
    }

    /// Unix seconds as a time.
    pub fn secs(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    /// Decodes every `TOPIC PAYLOAD` line of a fixture (blank and `#` lines skipped); a line
    /// that does not decode fails the test, naming the line.
    pub fn decode_fixture<T, E: std::fmt::Display>(
        fixture: &str,
        decode: impl Fn(&[u8]) -> Result<T, E>,
    ) -> Vec<T> {
        fixture
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (_topic, payload) = l.split_once(' ').expect("TOPIC PAYLOAD");
                decode(payload.as_bytes()).unwrap_or_else(|e| panic!("{l}: {e}"))
            })
            .collect()
    }
}
