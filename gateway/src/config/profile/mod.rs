//! Device profiles (`device-profiles/*.toml`, SPEC §4): one kind of device, its transport
//! defaults, its decoder and options, presence timeout and reporting policy.
//! The schema is documented in `docs/device-profiles.md`.

pub mod downlink;
mod validate;

pub use downlink::{DownlinkKind, RawDownlink};

use super::de::deserialize_all;
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
    MeshtasticProto,
    MeshtasticSerial,
    /// TAK users read from a TAK server's CoT stream (`[[tak]] subscribe = true`, SPEC §10).
    Cot,
}

impl DecoderKind {
    /// True for decoders fed through the device MQTT broker.
    pub fn is_mqtt(self) -> bool {
        matches!(
            self,
            DecoderKind::Owntracks
                | DecoderKind::Meshtastic
                | DecoderKind::Json
                | DecoderKind::MeshtasticProto
        )
    }

    /// True for decoders fed by a serial line.
    pub fn is_serial(self) -> bool {
        matches!(
            self,
            DecoderKind::Nmea | DecoderKind::AtModem | DecoderKind::MeshtasticSerial
        )
    }

    /// The name profiles use (`decoder = "at-modem"`).
    pub fn name(self) -> &'static str {
        match self {
            DecoderKind::Nmea => "nmea",
            DecoderKind::Owntracks => "owntracks",
            DecoderKind::Meshtastic => "meshtastic",
            DecoderKind::Gpsd => "gpsd",
            DecoderKind::AtModem => "at-modem",
            DecoderKind::Json => "json",
            DecoderKind::MeshtasticProto => "meshtastic-proto",
            DecoderKind::MeshtasticSerial => "meshtastic-serial",
            DecoderKind::Cot => "cot",
        }
    }
}

/// A profile's `version`: a number (`3`) or a string (`"2024.1"`), kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub String);

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Version;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a version number or string, e.g. 1 or \"1.2\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Version, E> {
                Ok(Version(s.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Version, E> {
                Ok(Version(n.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Version, E> {
                Ok(Version(n.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Version, E> {
                Ok(Version(n.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[mqtt]` of a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileMqtt {
    /// MQTT topic filter(s) the devices publish under: one string, or a list when one filter
    /// cannot cover every topic form (Meshtastic with and without a region level).
    pub topic: Spanned<TopicFilters>,
    /// Template of the device id from topic levels, `{0}` being the first level
    /// (default: the last level).
    pub device_id: Option<Spanned<String>>,
}

/// One or more MQTT topic filters.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicFilters(pub Vec<String>);

impl<'de> Deserialize<'de> for TopicFilters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TopicFilters;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a topic filter, or a list of topic filters")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TopicFilters, E> {
                Ok(TopicFilters(vec![s.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TopicFilters, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                if v.is_empty() {
                    return Err(serde::de::Error::invalid_length(0, &self));
                }
                Ok(TopicFilters(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[owntracks]` of a profile: options of the `owntracks` decoder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwntracksOptions {
    /// File holding the secret the apps encrypt with (booklet "Payload encryption"), relative
    /// to the profile's folder. Without it, `_type: encrypted` messages count as
    /// `decrypt_failed`.
    pub key_file: Option<Spanned<String>>,
    /// Whether a geofence transition also yields a Status with the region and enter/leave (the
    /// Location is always produced).
    pub transition_status: bool,
}

impl Default for OwntracksOptions {
    fn default() -> Self {
        OwntracksOptions {
            key_file: None,
            transition_status: true,
        }
    }
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

/// `[meshtastic]` of a `meshtastic-proto` or `meshtastic-serial` profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeshtasticOptions {
    /// Channel keys (PSKs), standard base64 of 1, 16 or 32 bytes; `"AQ=="` is the default key.
    pub keys: Vec<Spanned<String>>,
    /// Serial only: how often a `ToRadio` heartbeat keeps the radio's API session alive.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Serial only: how long a sent text waits for the mesh's ack before it counts as `sent`.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
}

impl Default for MeshtasticOptions {
    fn default() -> Self {
        MeshtasticOptions {
            keys: crate::decode::meshtastic_proto::DEFAULT_KEYS
                .iter()
                .map(|k| Spanned::new(0..0, k.to_string()))
                .collect(),
            // The official Python client beats every 300 s; a minute keeps a dead link short.
            heartbeat: Duration::from_secs(60),
            // Three hops with retransmissions take tens of seconds on a busy LongFast mesh.
            ack_timeout: Duration::from_secs(120),
        }
    }
}

impl MeshtasticOptions {
    /// The decoder these keys make (validation has checked every key).
    pub fn decoder(&self) -> anyhow::Result<crate::decode::meshtastic_proto::ProtoDecoder> {
        let keys: Vec<&str> = self.keys.iter().map(|k| k.get_ref().as_str()).collect();
        crate::decode::meshtastic_proto::ProtoDecoder::new(&keys).map_err(anyhow::Error::msg)
    }
}

/// A device profile as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub name: Spanned<String>,
    pub description: Spanned<String>,
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
    /// Options of the `meshtastic-proto` and `meshtastic-serial` decoders.
    pub meshtastic: Option<Spanned<MeshtasticOptions>>,
    /// How messages reach these devices (SPEC §8); absent = no downlink.
    pub downlink: Option<RawDownlink>,
    /// Options of the `owntracks` decoder.
    pub owntracks: Option<Spanned<OwntracksOptions>>,
    /// CoT type of this kind of device's PLI on a TAK server (SPEC §10), e.g. `a-f-G-U-C`.
    pub tak_type: Option<Spanned<String>>,
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
        let parsed = deserialize_all::<RawProfile>(src, &mut problems);
        if parsed.value.is_none() {
            let required = ["name", "description", "version", "decoder"];
            super::de::missing_top_keys(&parsed, &required, &mut problems);
        }
        let Some(raw) = parsed.value else {
            return Err(problems);
        };
        let ctx = validate::Ctx {
            path,
            doc: &parsed.doc,
            pruned: &parsed.pruned,
        };
        validate::validate(&raw, &ctx, &mut problems);
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

    /// The `[meshtastic]` options (defaults when absent).
    pub fn meshtastic(&self) -> MeshtasticOptions {
        self.raw
            .meshtastic
            .as_ref()
            .map(|m| m.get_ref().clone())
            .unwrap_or_default()
    }

    /// The MQTT topic filters (empty unless this is an MQTT profile).
    pub fn topics(&self) -> Vec<&str> {
        self.raw
            .mqtt
            .as_ref()
            .map(|m| m.topic.get_ref().0.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The `[owntracks]` options (defaults when the section is absent).
    pub fn owntracks(&self) -> OwntracksOptions {
        self.raw
            .owntracks
            .as_ref()
            .map(|o| o.get_ref().clone())
            .unwrap_or_default()
    }

    /// The path of the OwnTracks key file, relative paths taken from the profile's folder.
    pub fn owntracks_key_path(&self) -> Option<PathBuf> {
        let o = self.raw.owntracks.as_ref()?.get_ref();
        let f = o.key_file.as_ref()?;
        let base = self.path.parent().unwrap_or(Path::new("."));
        Some(base.join(f.get_ref()))
    }

    /// The downlink of this profile, if it has one.
    pub fn downlink(&self) -> Option<&RawDownlink> {
        self.raw.downlink.as_ref()
    }

    /// The CoT type of this profile's devices on a TAK server (default `a-f-G-U-C`).
    pub fn tak_type(&self) -> &str {
        self.raw
            .tak_type
            .as_ref()
            .map_or(outpost_cot::DEFAULT_TYPE, |t| t.get_ref().as_str())
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
