//! Configuration in two phases (STYLE 5): [`raw`] is `gateway.toml` as written (serde,
//! `deny_unknown_fields`); [`Settings::load`] validates it into runtime settings, loads every
//! profile it names, and reports every problem as `file:line:col: message`.

pub mod diag;
pub mod profile;
pub mod raw;

pub use diag::Problems;
pub use profile::{DecoderKind, Profile};

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

/// Uplink settings (SPEC §5).
#[derive(Debug, Clone)]
pub struct Uplink {
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

/// Validated runtime settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub gateway_id: String,
    pub profiles_dir: PathBuf,
    pub redis_url: String,
    pub prefix: String,
    pub devices_mqtt: Option<Broker>,
    pub uplink: Uplink,
    pub max_events: u64,
    pub ops_listen: Option<SocketAddr>,
    /// `[ops] uplink_down_grace`: uplink down longer than this makes `/healthz` 503.
    pub ops_uplink_grace: Duration,
    pub serial: Vec<SerialDevice>,
    pub mqtt: Vec<MqttSource>,
}

impl Settings {
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
        let raw: RawConfig = match toml::from_str(src) {
            Ok(r) => r,
            Err(e) => {
                problems.push_toml(&e);
                return Err(ConfigError(vec![problems]));
            }
        };
        let mut profile_problems = Vec::new();
        let settings = validate(path, raw, &mut problems, &mut profile_problems);
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

/// True for a valid gateway id: `[A-Za-z0-9._-]{1,64}` (SPEC §3).
pub fn valid_gateway_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

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

fn validate(
    path: &Path,
    raw: RawConfig,
    p: &mut Problems,
    profile_problems: &mut Vec<Problems>,
) -> Option<Settings> {
    let base = path.parent().unwrap_or(Path::new("."));
    let id = raw.gateway.id.get_ref().clone();
    if !valid_gateway_id(&id) {
        p.push(
            Some(raw.gateway.id.span()),
            "gateway.id must match [A-Za-z0-9._-]{1,64}",
        );
    }
    let profiles_dir = base.join(raw.gateway.profiles.get_ref());
    let redis_url = raw.redis.url.get_ref().clone();
    if !["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|s| redis_url.starts_with(s))
    {
        p.push(
            Some(raw.redis.url.span()),
            "redis.url must start with redis:// or redis+unix://",
        );
    }
    let prefix = raw.redis.prefix.get_ref().clone();
    if prefix.is_empty() || prefix.contains(char::is_whitespace) {
        p.push(
            Some(raw.redis.prefix.span()),
            "redis.prefix must be non-empty without spaces",
        );
    }
    let devices_mqtt = raw.devices_mqtt.as_ref().and_then(|d| {
        let client_id = d
            .client_id
            .as_ref()
            .map(|c| c.get_ref().clone())
            .unwrap_or_else(|| format!("outpost-{id}"));
        broker(
            base,
            p,
            &d.url,
            client_id,
            d.username.clone(),
            d.password_file.as_ref(),
            d.keep_alive,
            [None, None, None],
        )
    });
    let u = &raw.uplink;
    let uplink_client = u
        .client_id
        .as_ref()
        .map(|c| c.get_ref().clone())
        .unwrap_or_else(|| format!("outpost-{id}-uplink"));
    let uplink_broker = broker(
        base,
        p,
        &u.url,
        uplink_client,
        u.username.clone(),
        u.password_file.as_ref(),
        u.keep_alive,
        [
            u.ca_file.as_ref(),
            u.cert_file.as_ref(),
            u.key_file.as_ref(),
        ],
    );
    let topic_prefix = u.topic_prefix.get_ref().trim_end_matches('/').to_string();
    if topic_prefix.is_empty() || topic_prefix.contains(['+', '#']) {
        p.push(
            Some(u.topic_prefix.span()),
            "uplink.topic_prefix must be non-empty, without + or #",
        );
    }
    let batch_max = int_in(p, &u.batch_max_events, 1, 10_000, "uplink.batch_max_events");
    let inflight = int_in(p, &u.inflight, 1, 1_000, "uplink.inflight");
    if u.keep_alive < Duration::from_secs(1) {
        p.push(Some(u.url.span()), "uplink.keep_alive must be at least 1s");
    }
    let max_events = int_in(
        p,
        &raw.buffer.max_events,
        100,
        i64::MAX,
        "buffer.max_events",
    );
    let ops_listen = raw
        .ops
        .listen
        .as_ref()
        .and_then(|l| match l.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                p.push(
                    Some(l.span()),
                    "ops.listen must be an address like 127.0.0.1:9108",
                );
                None
            }
        });

    let mut loader = ProfileLoader::new(profiles_dir.clone(), base);
    let mut mqtt = Vec::new();
    for m in &raw.mqtt {
        let Some(profile) = loader.get(m.profile.get_ref(), profile_problems) else {
            p.push(
                Some(m.profile.span()),
                format!(
                    "profile {:?} not usable (see above/below)",
                    m.profile.get_ref()
                ),
            );
            continue;
        };
        if !profile.decoder.is_mqtt() {
            p.push(
                Some(m.profile.span()),
                format!("profile {:?} is not an MQTT profile", profile.name),
            );
            continue;
        }
        let topic = match &m.topic {
            Some(t) => {
                if let Err(e) = crate::ingest::topic::validate_filter(t.get_ref()) {
                    p.push(Some(t.span()), format!("topic: {e}"));
                }
                t.get_ref().clone()
            }
            None => profile.topic().unwrap_or_default().to_string(),
        };
        mqtt.push(MqttSource { profile, topic });
    }
    if !mqtt.is_empty() && devices_mqtt.is_none() && raw.devices_mqtt.is_none() {
        p.push(None, "[[mqtt]] devices need a [devices_mqtt] broker");
    }
    let mut serial = Vec::new();
    for s in &raw.serial {
        let dev = s.device.get_ref();
        if dev.is_empty() {
            p.push(Some(s.device.span()), "serial.device must not be empty");
        }
        let Some(profile) = loader.get(s.profile.get_ref(), profile_problems) else {
            p.push(
                Some(s.profile.span()),
                format!("profile {:?} not usable", s.profile.get_ref()),
            );
            continue;
        };
        if profile.decoder.is_mqtt() {
            p.push(
                Some(s.profile.span()),
                format!("profile {:?} is not a serial profile", profile.name),
            );
            continue;
        }
        let default_baud = profile
            .raw
            .serial
            .as_ref()
            .map_or(9600, |s| *s.baud.get_ref());
        let baud = s.baud.as_ref().map_or(default_baud, |b| {
            if !(50..=4_000_000).contains(b.get_ref()) {
                p.push(Some(b.span()), "baud must be 50..=4000000");
            }
            *b.get_ref()
        });
        serial.push(SerialDevice {
            device: dev.clone(),
            path: PathBuf::from(s.path.get_ref()),
            profile,
            baud: baud.clamp(50, 4_000_000) as u32,
        });
    }
    Some(Settings {
        path: path.to_path_buf(),
        gateway_id: id,
        profiles_dir,
        redis_url,
        prefix,
        devices_mqtt,
        uplink: Uplink {
            broker: uplink_broker?,
            topic_prefix,
            batch_max_events: batch_max as usize,
            inflight: inflight as usize,
        },
        max_events: max_events as u64,
        ops_listen,
        ops_uplink_grace: raw.ops.uplink_down_grace,
        serial,
        mqtt,
    })
}

fn int_in(p: &mut Problems, v: &toml::Spanned<i64>, lo: i64, hi: i64, name: &str) -> i64 {
    let x = *v.get_ref();
    if x < lo || x > hi {
        p.push(
            Some(v.span()),
            format!("{name} must be between {lo} and {hi}"),
        );
        return lo;
    }
    x
}

#[allow(clippy::too_many_arguments)]
fn broker(
    base: &Path,
    p: &mut Problems,
    url: &toml::Spanned<String>,
    client_id: String,
    username: Option<String>,
    password_file: Option<&toml::Spanned<String>>,
    keep_alive: Duration,
    tls_files: [Option<&toml::Spanned<String>>; 3],
) -> Option<Broker> {
    let (tls, host, port) = match parse_mqtt_url(url.get_ref()) {
        Ok(x) => x,
        Err(e) => {
            p.push(Some(url.span()), e);
            return None;
        }
    };
    let password =
        password_file.and_then(|f| match std::fs::read_to_string(base.join(f.get_ref())) {
            Ok(s) => Some(s.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => {
                p.push(Some(f.span()), format!("cannot read password_file: {e}"));
                None
            }
        });
    let [ca, cert, key] = tls_files.map(|f| f.map(|f| base.join(f.get_ref())));
    let b = Broker {
        host,
        port,
        tls,
        client_id,
        username,
        password,
        keep_alive,
        ca_file: ca,
        cert_file: cert,
        key_file: key,
    };
    check_tls(p, url, &b, &tls_files);
    Some(b)
}

/// TLS material is checked now, so an unreadable key or a certificate that does not match its
/// key stops `outpost run` (and fails `outpost check`) at start-up, not at the first connect.
fn check_tls(
    p: &mut Problems,
    url: &toml::Spanned<String>,
    b: &Broker,
    files: &[Option<&toml::Spanned<String>>; 3],
) {
    let first_set = files.iter().flatten().next();
    if !b.tls {
        if let Some(f) = first_set {
            p.push(
                Some(f.span()),
                "ca_file, cert_file and key_file need an mqtts:// url",
            );
        }
        return;
    }
    if let Err(e) = crate::tls::client_config(b) {
        // Point at the file the message names (paths only: never key material).
        let msg = format!("{e:#}");
        let span = files
            .iter()
            .flatten()
            .zip(
                [&b.ca_file, &b.cert_file, &b.key_file]
                    .into_iter()
                    .flatten(),
            )
            .find(|(_, path)| msg.contains(&path.display().to_string()))
            .map(|(f, _)| f.span())
            .or_else(|| files[2].map(|f| f.span()))
            .unwrap_or(url.span());
        p.push(Some(span), format!("TLS: {msg}"));
    }
}

/// Finds profiles by name (`<dir>/<name>.toml`) or path, loading each once.
struct ProfileLoader {
    dir: PathBuf,
    base: PathBuf,
    loaded: Vec<(String, Option<Arc<Profile>>)>,
}

impl ProfileLoader {
    fn new(dir: PathBuf, base: &Path) -> Self {
        ProfileLoader {
            dir,
            base: base.to_path_buf(),
            loaded: Vec::new(),
        }
    }

    fn get(&mut self, name: &str, problems: &mut Vec<Problems>) -> Option<Arc<Profile>> {
        if let Some((_, p)) = self.loaded.iter().find(|(n, _)| n == name) {
            return p.clone();
        }
        let path = resolve_profile(name, &self.dir, &self.base);
        let result = match Profile::load(&path) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                problems.push(e);
                None
            }
        };
        self.loaded.push((name.to_string(), result.clone()));
        result
    }
}

/// A profile argument is a path when it has a `/` or ends in `.toml`, else a name in `dir`.
pub fn resolve_profile(name: &str, dir: &Path, base: &Path) -> PathBuf {
    if name.contains('/') || name.ends_with(".toml") {
        base.join(name)
    } else {
        dir.join(format!("{name}.toml"))
    }
}
