//! [`JsonMapping`]: the `[json]` table of a device profile, mapping JSON Pointers (RFC 6901) in
//! a device's payload onto event fields. Raw serde structs with `deny_unknown_fields` so a typo
//! in a profile is an error, plus [`JsonMapping::validate`] for what serde cannot check.

use std::collections::BTreeMap;

use serde::Deserialize;

/// How to read events out of one JSON payload. Every section is optional; a section yields an
/// event only when its required fields are present in the payload.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonMapping {
    /// Pointer to the device id (string or number); when unset, the id comes from the topic.
    #[serde(default)]
    pub device: Option<String>,
    /// Pointer to the event time: RFC 3339 string, or unix seconds / milliseconds (told apart by
    /// magnitude). When unset, absent or implausible, the gateway's receive time is used.
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default)]
    pub location: Option<LocationMap>,
    #[serde(default)]
    pub status: Option<StatusMap>,
    #[serde(default)]
    pub message: Option<MessageMap>,
    #[serde(default)]
    pub alert: Option<AlertMap>,
}

/// `[json.location]`: pointers to Location fields; `lat` and `lon` are required.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationMap {
    pub lat: String,
    pub lon: String,
    #[serde(default)]
    pub alt: Option<String>,
    /// m/s
    #[serde(default)]
    pub speed: Option<String>,
    /// degrees true
    #[serde(default)]
    pub course: Option<String>,
    #[serde(default)]
    pub hdop: Option<String>,
    /// metres
    #[serde(default)]
    pub acc: Option<String>,
    /// A §5 fix name (`"3d"` …) or the NMEA-style number 2 / 3.
    #[serde(default)]
    pub fix: Option<String>,
    #[serde(default)]
    pub sats: Option<String>,
}

/// `[json.status]`: pointers to Status fields, plus `extra` (name → pointer).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusMap {
    #[serde(default)]
    pub battery: Option<String>,
    #[serde(default)]
    pub voltage: Option<String>,
    /// A boolean, or a number (non-zero = charging).
    #[serde(default)]
    pub charging: Option<String>,
    #[serde(default)]
    pub rssi: Option<String>,
    #[serde(default)]
    pub snr: Option<String>,
    #[serde(default)]
    pub ber: Option<String>,
    /// A string or number, passed through.
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub temperature: Option<String>,
    /// Whole seconds.
    #[serde(default)]
    pub uptime: Option<String>,
    /// Other named values (strings, numbers, booleans); sorted, so output is stable.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// `[json.message]`: `text` is required; `to` and `msg_id` may be strings or numbers.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageMap {
    pub text: String,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub msg_id: Option<String>,
}

/// `[json.alert]`: an alert is emitted when the value at `when` is `true` or a non-zero number.
/// Its position comes from `[json.location]` when that decodes from the same payload.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertMap {
    pub when: String,
    /// Fixed reason (`emergency`, `man-down` …), not a pointer: devices signal alerts with a flag.
    #[serde(default = "default_reason")]
    pub reason: String,
    /// Pointer to an optional alert text.
    #[serde(default)]
    pub text: Option<String>,
}

fn default_reason() -> String {
    "emergency".into()
}

impl Default for AlertMap {
    fn default() -> Self {
        AlertMap {
            when: String::new(),
            reason: default_reason(),
            text: None,
        }
    }
}

/// Why `p` is not an RFC 6901 JSON Pointer, if it is not: it must be empty (the whole document)
/// or start with `/`, and `~` may only appear as `~0` or `~1`.
pub fn pointer_problem(p: &str) -> Option<String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Some(format!(
            "JSON Pointer {p:?} must be empty or start with '/'"
        ));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Some(format!(
                "JSON Pointer {p:?}: '~' must be followed by 0 or 1 (~0 = '~', ~1 = '/')"
            ));
        }
    }
    None
}

impl JsonMapping {
    /// Every problem serde could not catch, as `(key path, message)`, key paths relative to the
    /// `[json]` table (`"location.lat"`, `"status.extra.txpower"`), so the profile loader can
    /// prefix them and place each at its line:col. Empty means valid.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (key, p) in self.pointers() {
            if let Some(msg) = pointer_problem(p) {
                problems.push((key, msg));
            }
        }
        if let Some(st) = &self.status {
            if st.fields().next().is_none() {
                problems.push((
                    "status".into(),
                    "maps no field; remove the section or map one".into(),
                ));
            }
            if st.extra.contains_key("") {
                problems.push((
                    "status.extra".into(),
                    "extra names must not be empty".into(),
                ));
            }
        }
        if let Some(a) = &self.alert {
            if a.reason.trim().is_empty() {
                problems.push(("alert.reason".into(), "must not be empty".into()));
            }
        }
        if self.location.is_none()
            && self.status.is_none()
            && self.message.is_none()
            && self.alert.is_none()
        {
            problems.push((
                String::new(),
                "maps no event: add a location, status, message or alert section".into(),
            ));
        }
        problems
    }

    /// Every pointer with its key path.
    fn pointers<'a>(&'a self) -> Vec<(String, &'a str)> {
        let mut out: Vec<(String, &str)> = Vec::new();
        let mut add = |key: String, p: Option<&'a String>| {
            if let Some(p) = p {
                out.push((key, p.as_str()));
            }
        };
        add("device".into(), self.device.as_ref());
        add("ts".into(), self.ts.as_ref());
        if let Some(l) = &self.location {
            for (k, p) in l.fields() {
                add(format!("location.{k}"), Some(p));
            }
        }
        if let Some(s) = &self.status {
            for (k, p) in s.fields() {
                add(format!("status.{k}"), Some(p));
            }
        }
        if let Some(m) = &self.message {
            add("message.text".into(), Some(&m.text));
            add("message.to".into(), m.to.as_ref());
            add("message.msg_id".into(), m.msg_id.as_ref());
        }
        if let Some(a) = &self.alert {
            add("alert.when".into(), Some(&a.when));
            add("alert.text".into(), a.text.as_ref());
        }
        out
    }
}

impl LocationMap {
    fn fields(&self) -> impl Iterator<Item = (&'static str, &String)> {
        let opt = [
            ("alt", &self.alt),
            ("speed", &self.speed),
            ("course", &self.course),
            ("hdop", &self.hdop),
            ("acc", &self.acc),
            ("fix", &self.fix),
            ("sats", &self.sats),
        ];
        [("lat", &self.lat), ("lon", &self.lon)].into_iter().chain(
            opt.into_iter()
                .filter_map(|(k, p)| p.as_ref().map(|p| (k, p))),
        )
    }
}

impl StatusMap {
    /// Mapped fields with their key (extra entries as `extra.<name>`).
    fn fields(&self) -> impl Iterator<Item = (String, &String)> {
        let named = [
            ("battery", &self.battery),
            ("voltage", &self.voltage),
            ("charging", &self.charging),
            ("rssi", &self.rssi),
            ("snr", &self.snr),
            ("ber", &self.ber),
            ("channel", &self.channel),
            ("temperature", &self.temperature),
            ("uptime", &self.uptime),
        ];
        named
            .into_iter()
            .filter_map(|(k, p)| p.as_ref().map(|p| (k.to_string(), p)))
            .chain(self.extra.iter().map(|(k, p)| (format!("extra.{k}"), p)))
    }
}
