//! Device profiles (`device-profiles/*.toml`, SPEC §4): one kind of device, its transport
//! defaults, its decoder and options, presence timeout and reporting policy.
//! The schema is documented in `docs/device-profiles.md`.

use super::diag::Problems;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Which decoder a profile uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecoderKind {
    Nmea,
    Owntracks,
    Meshtastic,
    Gpsd,
    AtModem,
    Json,
}

impl DecoderKind {
    /// True for decoders fed through the device MQTT broker.
    pub fn is_mqtt(self) -> bool {
        matches!(
            self,
            DecoderKind::Owntracks | DecoderKind::Meshtastic | DecoderKind::Json
        )
    }

    /// True for decoders fed by a serial line.
    pub fn is_serial(self) -> bool {
        matches!(self, DecoderKind::Nmea | DecoderKind::AtModem)
    }
}

/// A profile's `version`: a number or a string, kept as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Version {
    Int(i64),
    Text(String),
}

/// `[mqtt]` of a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileMqtt {
    /// MQTT topic filter the devices publish under.
    pub topic: Spanned<String>,
    /// Template of the device id from topic levels, `{0}` being the first level
    /// (default: the last level).
    pub device_id: Option<Spanned<String>>,
}

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Odd,
    Even,
}

/// Flow control of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    #[default]
    None,
    Software,
    Hardware,
}

/// `[serial]` of a profile: line settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileSerial {
    pub baud: Spanned<i64>,
    pub data_bits: Spanned<i64>,
    pub parity: Parity,
    pub stop_bits: Spanned<i64>,
    pub flow_control: FlowControl,
    /// A port silent this long is treated as unplugged: closed and reopened.
    #[serde(with = "humantime_serde")]
    pub no_data_timeout: Duration,
}

impl Default for ProfileSerial {
    fn default() -> Self {
        ProfileSerial {
            baud: Spanned::new(0..0, 9600),
            data_bits: Spanned::new(0..0, 8),
            parity: Parity::None,
            stop_bits: Spanned::new(0..0, 1),
            flow_control: FlowControl::None,
            no_data_timeout: Duration::from_secs(10),
        }
    }
}

/// `[gpsd]` of a profile: where the gpsd daemon listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileGpsd {
    pub host: String,
    pub port: u16,
}

impl Default for ProfileGpsd {
    fn default() -> Self {
        ProfileGpsd {
            host: "127.0.0.1".into(),
            port: 2947,
        }
    }
}

/// Which signal-quality queries an `at-modem` profile polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AtQueriesOpt {
    Csq,
    Cesq,
    #[default]
    Both,
}

/// `[at_modem]` of a profile: what to poll and how often.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AtModemOptions {
    pub queries: AtQueriesOpt,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for AtModemOptions {
    fn default() -> Self {
        AtModemOptions {
            queries: AtQueriesOpt::Both,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(3),
        }
    }
}

impl AtModemOptions {
    /// The poller settings these options describe.
    pub fn poller_config(&self) -> crate::decode::at_modem::AtPollerConfig {
        use crate::decode::at_modem::AtQueries;
        crate::decode::at_modem::AtPollerConfig {
            queries: match self.queries {
                AtQueriesOpt::Csq => AtQueries::Csq,
                AtQueriesOpt::Cesq => AtQueries::Cesq,
                AtQueriesOpt::Both => AtQueries::Both,
            },
            interval: self.interval,
            timeout: self.timeout,
        }
    }
}

/// A device profile as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub name: Spanned<String>,
    pub description: String,
    pub version: Version,
    pub decoder: Spanned<DecoderKind>,
    /// No report for this long → the device goes offline.
    #[serde(default = "default_presence_timeout", with = "humantime_serde")]
    pub presence_timeout: Duration,
    pub mqtt: Option<ProfileMqtt>,
    pub serial: Option<ProfileSerial>,
    pub gpsd: Option<ProfileGpsd>,
    /// Reporting policy (location thinning at the source).
    pub report: Option<Spanned<crate::policy::ReportPolicy>>,
    /// Options of the `json` decoder (JSON Pointer mapping).
    pub json: Option<Spanned<crate::decode::json::JsonMapping>>,
    /// Options of the `at-modem` decoder.
    pub at_modem: Option<Spanned<AtModemOptions>>,
}

fn default_presence_timeout() -> Duration {
    Duration::from_secs(15 * 60)
}

/// A validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub path: PathBuf,
    pub decoder: DecoderKind,
    pub presence_timeout: Duration,
    pub raw: RawProfile,
}

impl Profile {
    /// Reads and validates a profile file; every problem is reported with its position.
    pub fn load(path: &Path) -> Result<Profile, Problems> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            let mut p = Problems::new(path, "");
            p.push(None, format!("cannot read profile: {e}"));
            p
        })?;
        Self::parse(path, &src)
    }

    /// Parses and validates profile text `src` (named `path` in messages).
    pub fn parse(path: &Path, src: &str) -> Result<Profile, Problems> {
        let mut problems = Problems::new(path, src);
        let raw: RawProfile = match toml::from_str(src) {
            Ok(r) => r,
            Err(e) => {
                problems.push_toml(&e);
                return Err(problems);
            }
        };
        validate(&raw, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Profile {
            name: raw.name.get_ref().clone(),
            path: path.to_path_buf(),
            decoder: *raw.decoder.get_ref(),
            presence_timeout: raw.presence_timeout,
            raw,
        })
    }

    /// The reporting policy (default: report every fix).
    pub fn report_policy(&self) -> crate::policy::ReportPolicy {
        self.raw
            .report
            .as_ref()
            .map(|r| r.get_ref().clone())
            .unwrap_or_default()
    }

    /// The MQTT topic filter, if this is an MQTT profile.
    pub fn topic(&self) -> Option<&str> {
        self.raw.mqtt.as_ref().map(|m| m.topic.get_ref().as_str())
    }

    /// The device id template (`{N}` = topic level N), if any.
    pub fn device_id_template(&self) -> Option<&str> {
        self.raw
            .mqtt
            .as_ref()
            .and_then(|m| m.device_id.as_ref())
            .map(|t| t.get_ref().as_str())
    }
}

fn validate(raw: &RawProfile, problems: &mut Problems) {
    let name = raw.name.get_ref();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        problems.push(
            Some(raw.name.span()),
            "name must be 1 or more of [A-Za-z0-9._-]",
        );
    }
    if raw.presence_timeout < Duration::from_secs(1) {
        problems.push(None, "presence_timeout must be at least 1s");
    }
    let kind = *raw.decoder.get_ref();
    if kind.is_mqtt() && raw.mqtt.is_none() {
        problems.push(
            Some(raw.decoder.span()),
            "an MQTT decoder needs an [mqtt] section with a topic filter",
        );
    }
    if let Some(m) = &raw.mqtt {
        if let Err(e) = crate::ingest::topic::validate_filter(m.topic.get_ref()) {
            problems.push(Some(m.topic.span()), format!("mqtt.topic: {e}"));
        }
        if let Some(t) = &m.device_id {
            if let Err(e) = crate::ingest::topic::DeviceIdTemplate::parse(t.get_ref()) {
                problems.push(Some(t.span()), format!("mqtt.device_id: {e}"));
            }
        }
    }
    match (&raw.json, kind) {
        (Some(j), DecoderKind::Json) => {
            for (key, msg) in j.get_ref().validate() {
                let key = if key.is_empty() {
                    "json".to_string()
                } else {
                    format!("json.{key}")
                };
                problems.push(Some(j.span()), format!("{key}: {msg}"));
            }
        }
        (None, DecoderKind::Json) => {
            problems.push(
                Some(raw.decoder.span()),
                "the json decoder needs a [json] mapping",
            );
        }
        (Some(j), _) => problems.push(Some(j.span()), "[json] is only for decoder = \"json\""),
        _ => {}
    }
    if let Some(r) = &raw.report {
        for msg in r.get_ref().validate() {
            problems.push(Some(r.span()), format!("report.{msg}"));
        }
    }
    if let Some(a) = &raw.at_modem {
        let o = a.get_ref();
        if o.interval < Duration::from_secs(1)
            || o.timeout < Duration::from_millis(100)
            || o.timeout > o.interval
        {
            problems.push(
                Some(a.span()),
                "at_modem: interval must be ≥ 1s and timeout between 100ms and interval",
            );
        }
        if kind != DecoderKind::AtModem {
            problems.push(
                Some(a.span()),
                "[at_modem] is only for decoder = \"at-modem\"",
            );
        }
    }
    if let Some(s) = &raw.serial {
        let baud = *s.baud.get_ref();
        if !(50..=4_000_000).contains(&baud) {
            problems.push(Some(s.baud.span()), "serial.baud must be 50..=4000000");
        }
        if !(5..=8).contains(s.data_bits.get_ref()) {
            problems.push(Some(s.data_bits.span()), "serial.data_bits must be 5..=8");
        }
        if !(1..=2).contains(s.stop_bits.get_ref()) {
            problems.push(Some(s.stop_bits.span()), "serial.stop_bits must be 1 or 2");
        }
    }
}
