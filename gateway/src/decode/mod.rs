//! Decoders: bytes or text in, [`Event`](crate::event::Event)s out. Sans-I/O (no tokio, no
//! sockets), so they can be fuzzed, benchmarked and run offline by `outpost decode`.

mod dispatch;
pub mod json;
pub mod meshtastic;
pub mod owntracks;

pub use dispatch::MqttDecoder;
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
}
