//! Configuration in two phases (STYLE 5): [`raw`] is `gateway.toml` as written (serde,
//! `deny_unknown_fields`); [`Settings::load`] validates it into runtime settings, loads every
//! profile it names, and reports every problem as `file:line:col: message`.

pub mod de;
pub mod diag;
mod loader;
pub mod profile;
pub mod raw;
pub mod tak;
mod validate;

pub use diag::Problems;
pub use loader::resolve_profile;
pub use profile::{DecoderKind, Profile};
pub use tak::TAK_PROFILE;

use raw::RawConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Default config location (SPEC §2).
pub const DEFAULT_CONFIG: &str = "/etc/outpost/gateway.toml";

/// Every problem in the config and the profiles it uses, grouped by file.
#[derive(Debug, Error)]
#[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<Problems>);

impl ConfigError {
    /// All problems, one `file:line:col: message` line each.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().flat_map(|p| p.lines()).collect()
    }
}

/// Where an MQTT broker is and how to reach it.
#[derive(Debug, Clone)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Duration,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl<'a> From<&'a Broker> for crate::tls::TlsFiles<'a> {
    fn from(b: &'a Broker) -> Self {
        crate::tls::TlsFiles {
            ca_file: b.ca_file.as_deref(),
            cert_file: b.cert_file.as_deref(),
            key_file: b.key_file.as_deref(),
        }
    }
}

/// Uplink settings (SPEC §5).
#[derive(Debug, Clone)]
pub struct Uplink {
    /// The region (SPEC §9): its cursor, metrics label and `status` line.
    pub name: String,
    /// A region lagging longer than this no longer holds back the outbox trim.
    pub max_lag: Duration,
    pub broker: Broker,
    pub topic_prefix: String,
    pub batch_max_events: usize,
    pub inflight: usize,
}

/// One `[[mqtt]]` source: a profile and the topic filter it subscribes to.
#[derive(Debug, Clone)]
pub struct MqttSource {
    pub profile: Arc<Profile>,
    pub topic: String,
}

/// One `[[serial]]` device.
#[derive(Debug, Clone)]
pub struct SerialDevice {
    pub device: String,
    pub path: PathBuf,
    pub profile: Arc<Profile>,
    pub baud: u32,
}

/// One `[[tak]]` output (SPEC §10).
#[derive(Debug, Clone)]
pub struct TakOutput {
    pub name: String,
    pub endpoint: outpost_cot::tls::Endpoint,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub subscribe: bool,
    pub callsign: String,
    pub queue: usize,
}

/// Validated runtime settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub gateway_id: String,
    pub profiles_dir: PathBuf,
    pub redis_url: String,
    pub prefix: String,
    pub devices_mqtt: Option<Broker>,
    /// The first region (the downlink's hub session uses it).
    pub uplink: Uplink,
    /// Every region, in file order (one for a single `[uplink]` table).
    pub uplinks: Vec<Uplink>,
    pub max_events: u64,
    pub ops_listen: Option<SocketAddr>,
    /// `[ops] uplink_down_grace`: uplink down longer than this makes `/healthz` 503.
    pub ops_uplink_grace: Duration,
    pub serial: Vec<SerialDevice>,
    pub mqtt: Vec<MqttSource>,
    pub tak: Vec<TakOutput>,
    /// The `tak` profile (TAK users' presence timeout), loaded when a `[[tak]]` subscribes.
    pub tak_profile: Option<Arc<Profile>>,
}

impl Settings {
    /// The profile named `name` among those the config uses.
    pub fn profile(&self, name: &str) -> Option<&Arc<Profile>> {
        self.mqtt
            .iter()
            .map(|m| &m.profile)
            .chain(self.serial.iter().map(|s| &s.profile))
            .chain(self.tak_profile.iter())
            .find(|p| p.name == name)
    }

    /// Reads `path`, validates it and every profile it uses.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            let mut p = Problems::new(path, "");
            p.push(None, format!("cannot read config: {e}"));
            ConfigError(vec![p])
        })?;
        Self::parse(path, &src)
    }

    /// Parses and validates config text `src` (named `path` in messages).
    pub fn parse(path: &Path, src: &str) -> Result<Settings, ConfigError> {
        let mut problems = Problems::new(path, src);
        let parsed = de::deserialize_all::<RawConfig>(src, &mut problems);
        if parsed.value.is_none() {
            de::missing_top_keys(&parsed, &["gateway", "uplink"], &mut problems);
        }
        let Some(raw) = parsed.value else {
            return Err(ConfigError(vec![problems]));
        };
        let mut profile_problems = Vec::new();
        let settings =
            validate::validate(path, &parsed.doc, raw, &mut problems, &mut profile_problems);
        let mut all = Vec::new();
        if !problems.is_empty() {
            all.push(problems);
        }
        all.extend(profile_problems);
        match settings {
            Some(s) if all.is_empty() => Ok(s),
            _ => Err(ConfigError(all)),
        }
    }
}

pub use outpost_proto::topic::valid_gateway_id;

/// Splits `mqtt://host:port` / `mqtts://host:port` into (tls, host, port).
pub fn parse_mqtt_url(url: &str) -> Result<(bool, String, u16), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(format!("{url:?}: scheme must be mqtt:// or mqtts://"));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("{url:?}: bad port {p:?}"))?;
            (h, port)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(format!("{url:?}: missing or bad host"));
    }
    Ok((tls, host.to_string(), port))
}

/// Shortest `keep_alive` of an MQTT 5 connection (the uplink, the hub's receiver): rumqttc's
/// v5 client refuses (panics on) anything shorter.
pub const MQTT5_MIN_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Records a problem at `path` of `doc` unless `d` is a keep-alive an MQTT 5 client can use
/// (5 s to 65535 s).
pub fn check_mqtt5_keep_alive(
    doc: &toml::Spanned<toml::de::DeTable<'_>>,
    path: &[&str],
    d: Duration,
    p: &mut Problems,
) {
    if d < MQTT5_MIN_KEEP_ALIVE || d > Duration::from_secs(65_535) {
        p.push(
            de::span_of(doc, path),
            format!(
                "{}: must be between 5s and 18h12m15s (65535s)",
                path.join(".")
            ),
        );
    }
}
