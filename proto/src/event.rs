//! The event model: what every decoder produces and what the uplink carries (SPEC §5).
//!
//! An [`Event`] serialises to the §5 event object without `id`, `rx` and `replay`; the store adds
//! `rx` when it accepts the event and the uplink adds `id` and `replay` when it sends it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// The uplink classes, in drain order (alert first; SPEC §6). `receipt` (downlink message
/// receipts, SPEC §8) drains right after `message`: a dispatcher waits on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Alert,
    Message,
    Receipt,
    Presence,
    Status,
    Location,
}

impl Class {
    /// How many classes there are (the length of per-class arrays).
    pub const COUNT: usize = 6;

    /// Every class in drain order.
    pub const ALL: [Class; Class::COUNT] = [
        Class::Alert,
        Class::Message,
        Class::Receipt,
        Class::Presence,
        Class::Status,
        Class::Location,
    ];

    /// The lowercase name used in topics, keys and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Alert => "alert",
            Class::Message => "message",
            Class::Receipt => "receipt",
            Class::Presence => "presence",
            Class::Status => "status",
            Class::Location => "location",
        }
    }

    /// The class named `s` (as in topics and JSON); `None` for an unknown name.
    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Position in [`Class::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose clock `ts` comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TsSrc {
    Device,
    Gps,
    Gateway,
}

/// GNSS fix kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Fix {
    #[serde(rename = "2d")]
    TwoD,
    #[serde(rename = "3d")]
    ThreeD,
    #[serde(rename = "dgps")]
    Dgps,
    #[serde(rename = "rtk")]
    Rtk,
    #[serde(rename = "rtk-float")]
    RtkFloat,
    #[serde(rename = "est")]
    Est,
}

/// Online or offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceState {
    Online,
    Offline,
}

/// A position report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub alt: Option<f64>,
    /// m/s
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub speed: Option<f64>,
    /// degrees true
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub course: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub hdop: Option<f64>,
    /// metres
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub acc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sats: Option<u32>,
}

/// A status report; every field optional, `extra` for other named values.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Status {
    /// percent
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub battery: Option<f64>,
    /// volts
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub voltage: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charging: Option<bool>,
    /// dBm
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub rssi: Option<f64>,
    /// dB
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub snr: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub ber: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<serde_json::Value>,
    /// °C
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub temperature: Option<f64>,
    /// seconds
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime: Option<u64>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Status {
    /// True when no field is set: such a status is not worth an event.
    pub fn is_empty(&self) -> bool {
        *self == Status::default()
    }
}

/// A text message from a device.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Message {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
}

/// The largest message text accepted (SPEC §5: at most 4 KiB).
pub const MAX_TEXT_BYTES: usize = 4096;

/// Where a downlink message (SPEC §8) stands for one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptState {
    /// In the gateway's queue, waiting for the device to be online and reachable.
    Queued,
    /// Handed to the device's transport (e.g. PUBACK from the device broker).
    Sent,
    /// The device acknowledged it.
    Delivered,
    /// Its expiry passed before it could go out.
    Expired,
    /// It cannot be delivered (`reason` says why).
    Failed,
}

impl ReceiptState {
    /// Every state, in the order a message normally moves through them.
    pub const ALL: [ReceiptState; 5] = [
        ReceiptState::Queued,
        ReceiptState::Sent,
        ReceiptState::Delivered,
        ReceiptState::Expired,
        ReceiptState::Failed,
    ];

    /// The lowercase name used in JSON, keys and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptState::Queued => "queued",
            ReceiptState::Sent => "sent",
            ReceiptState::Delivered => "delivered",
            ReceiptState::Expired => "expired",
            ReceiptState::Failed => "failed",
        }
    }

    /// The state named `s`; `None` for an unknown name.
    pub fn parse(s: &str) -> Option<ReceiptState> {
        ReceiptState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// True when nothing further will happen to the message on this device.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ReceiptState::Delivered | ReceiptState::Expired | ReceiptState::Failed
        )
    }
}

/// A receipt for a downlink message on one device (the event's `dev`), SPEC §5/§8.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Receipt {
    pub msg_id: String,
    pub state: ReceiptState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An alert (emergency button, man-down …).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Alert {
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub lat: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_num"
    )]
    pub lon: Option<f64>,
}

/// A device going online or offline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Presence {
    pub state: PresenceState,
    #[serde(serialize_with = "ser_ts")]
    pub last_seen: DateTime<Utc>,
}

/// The class-specific part of an event; serialised flat, with `class` as the tag.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "class", rename_all = "lowercase")]
pub enum Body {
    Alert(Alert),
    Message(Message),
    Receipt(Receipt),
    Presence(Presence),
    Status(Status),
    Location(Location),
}

impl Body {
    /// The uplink class of this body.
    pub fn class(&self) -> Class {
        match self {
            Body::Alert(_) => Class::Alert,
            Body::Message(_) => Class::Message,
            Body::Receipt(_) => Class::Receipt,
            Body::Presence(_) => Class::Presence,
            Body::Status(_) => Class::Status,
            Body::Location(_) => Class::Location,
        }
    }
}

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub dev: String,
    #[serde(flatten)]
    pub body: Body,
    #[serde(serialize_with = "ser_ts")]
    pub ts: DateTime<Utc>,
    pub ts_src: TsSrc,
}

impl Event {
    /// The uplink class of this event.
    pub fn class(&self) -> Class {
        self.body.class()
    }

    /// The §5 event object without `id`, `rx` and `replay`, as `outpost decode` prints it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("event serialisation cannot fail")
    }

    /// The §5 event object with `rx`, as the store keeps it (the uplink adds `id` and `replay`).
    pub fn to_stored_json(&self, rx: DateTime<Utc>) -> String {
        let mut s = self.to_json();
        // `to_json` always ends with `}`; append rx rather than building a second struct.
        s.pop();
        s.push_str(",\"rx\":\"");
        s.push_str(&format_ts(rx));
        s.push_str("\"}");
        s
    }
}

/// RFC 3339 UTC with milliseconds, `Z` suffix (SPEC §5).
pub fn format_ts(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whole numbers print without a fraction (`77`, not `77.0`): what devices sent, and smaller.
fn ser_opt_num<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => s.serialize_i64(*x as i64),
        Some(x) => s.serialize_f64(*x),
        None => s.serialize_none(),
    }
}

fn ser_ts<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_ts(*ts))
}

/// True when `lat`/`lon` are finite WGS84 degrees.
pub fn valid_position(lat: f64, lon: f64) -> bool {
    lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn location_serialises_flat_with_class_tag() {
        let e = Event {
            dev: "phone1".into(),
            body: Body::Location(Location {
                lat: 52.5,
                lon: 13.25,
                sats: Some(7),
                ..Default::default()
            }),
            ts: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
            ts_src: TsSrc::Device,
        };
        assert_eq!(
            e.to_json(),
            r#"{"dev":"phone1","class":"location","lat":52.5,"lon":13.25,"sats":7,"ts":"2023-11-14T22:13:20.123Z","ts_src":"device"}"#
        );
        let stored = e.to_stored_json(Utc.timestamp_millis_opt(1_700_000_001_000).unwrap());
        assert!(
            stored.ends_with(r#","rx":"2023-11-14T22:13:21.000Z"}"#),
            "{stored}"
        );
    }
}
