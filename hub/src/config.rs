//! `hub.toml` in two phases (STYLE 5): [`Raw`] as written (serde, `deny_unknown_fields`), then
//! [`Settings::load`] validates it and reports every problem as `file:line:col: message`,
//! with the gateway's diagnostics machinery (`outpost::config::{de, diag}`).

use outpost::config::de::{deserialize_all, span_of};
use outpost::config::{parse_mqtt_url, Broker, Problems};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Default config location (SPEC §7).
pub const DEFAULT_CONFIG: &str = "/etc/outpost/hub.toml";

/// `hub.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    pub hub: RawHub,
    pub broker: RawBroker,
    #[serde(default)]
    pub redis: RawRedis,
    pub api: Option<RawApi>,
    /// TAK server outputs (SPEC §10): the gateway's `[[tak]]` table.
    #[serde(default)]
    pub tak: Vec<outpost::config::raw::RawTak>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHub {
    pub id: Spanned<String>,
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    #[serde(default = "default_broker_url")]
    pub url: Spanned<String>,
    pub client_id: Option<String>,
    #[serde(default = "default_share_group")]
    pub share_group: Spanned<String>,
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: Spanned<String>,
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    pub username: Option<String>,
    pub password_file: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    /// Batches handed to this receiver before it has acknowledged them (MQTT 5 receive maximum).
    #[serde(default = "default_receive_maximum")]
    pub receive_maximum: Spanned<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    #[serde(default = "default_redis_urls")]
    pub urls: Spanned<Vec<String>>,
    #[serde(default)]
    pub cluster: bool,
    #[serde(default = "default_prefix")]
    pub prefix: Spanned<String>,
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for RawRedis {
    fn default() -> Self {
        RawRedis {
            urls: Spanned::new(0..0, default_redis_urls().into_inner()),
            cluster: false,
            prefix: Spanned::new(0..0, "hub".into()),
            retention: default_retention(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub listen: Spanned<String>,
    pub token_file: Option<Spanned<String>>,
}

fn default_broker_url() -> Spanned<String> {
    Spanned::new(0..0, "mqtt://127.0.0.1:1883".into())
}
fn default_share_group() -> Spanned<String> {
    Spanned::new(0..0, "outpost-hub".into())
}
fn default_topic_prefix() -> Spanned<String> {
    Spanned::new(0..0, "outpost/v1".into())
}
fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}
fn default_receive_maximum() -> Spanned<u16> {
    Spanned::new(0..0, 64)
}
fn default_redis_urls() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["redis://127.0.0.1:6379/0".into()])
}
fn default_prefix() -> Spanned<String> {
    Spanned::new(0..0, "hub".into())
}
fn default_retention() -> Duration {
    Duration::from_secs(30 * 86_400)
}

/// The hub's callsign on a TAK server when its `[[tak]]` names none.
pub fn default_callsign(region: &str) -> String {
    format!("Outpost hub {region}")
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub id: String,
    pub region: String,
    pub broker: Broker,
    pub share_group: String,
    pub topic_prefix: String,
    pub receive_maximum: u16,
    pub redis: RedisSettings,
    pub api: Option<ApiSettings>,
    /// `[[tak]]` outputs, validated as the gateway's (TLS material read at check time).
    pub tak: Vec<outpost::config::TakOutput>,
}

/// Where the region's Redis is.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub urls: Vec<String>,
    pub cluster: bool,
    pub prefix: String,
    pub retention: Duration,
}

/// The HTTP API.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
}

impl Settings {
    /// Reads and validates `path`; `Err` carries every problem.
    pub fn load(path: &Path) -> Result<Settings, Problems> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            let mut p = Problems::new(path, "");
            p.push(None, format!("cannot read: {e}"));
            p
        })?;
        let mut p = Problems::new(path, &src);
        let parsed = deserialize_all::<Raw>(&src, &mut p);
        let settings = parsed
            .value
            .and_then(|raw| validate(path, &parsed.doc, raw, &mut p));
        match settings {
            Some(s) if p.is_empty() => Ok(s),
            _ => Err(p),
        }
    }
}

fn validate(
    path: &Path,
    doc: &Spanned<toml::de::DeTable<'_>>,
    raw: Raw,
    p: &mut Problems,
) -> Option<Settings> {
    let base = path.parent().unwrap_or(Path::new("."));
    let file = |s: &Option<Spanned<String>>| s.as_ref().map(|f| base.join(f.get_ref()));
    let id = raw.hub.id.get_ref().clone();
    if !outpost_proto::topic::valid_gateway_id(&id) {
        p.push(
            Some(raw.hub.id.span()),
            "hub.id: must match [A-Za-z0-9._-]{1,64}",
        );
    }
    let b = &raw.broker;
    let parsed = parse_mqtt_url(b.url.get_ref());
    if let Err(e) = &parsed {
        p.push(Some(b.url.span()), format!("broker.url: {e}"));
    }
    let group = b.share_group.get_ref();
    if group.is_empty() || group.contains(['/', '+', '#']) {
        p.push(
            Some(b.share_group.span()),
            "broker.share_group: must be non-empty, without '/', '+' or '#'",
        );
    }
    let prefix = b.topic_prefix.get_ref().trim_end_matches('/').to_string();
    if prefix.is_empty() || prefix.contains(['+', '#']) {
        p.push(
            Some(b.topic_prefix.span()),
            "broker.topic_prefix: must be non-empty, without wildcards",
        );
    }
    outpost::config::check_mqtt5_keep_alive(doc, &["broker", "keep_alive"], b.keep_alive, p);
    if *b.receive_maximum.get_ref() == 0 {
        p.push(
            Some(b.receive_maximum.span()),
            "broker.receive_maximum: must be at least 1",
        );
    }
    let password = match &b.password_file {
        Some(f) => match std::fs::read_to_string(base.join(f.get_ref())) {
            Ok(s) => Some(s.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => {
                p.push(
                    Some(f.span()),
                    format!("broker.password_file: cannot read: {e}"),
                );
                None
            }
        },
        None => None,
    };
    for (name, f) in [
        ("ca_file", &b.ca_file),
        ("cert_file", &b.cert_file),
        ("key_file", &b.key_file),
    ] {
        if let Some(f) = f {
            if !base.join(f.get_ref()).is_file() {
                p.push(Some(f.span()), format!("broker.{name}: no such file"));
            }
        }
    }
    let r = &raw.redis;
    if r.urls.get_ref().is_empty() {
        p.push(
            span_of(doc, &["redis", "urls"]),
            "redis.urls: at least one url",
        );
    }
    for u in r.urls.get_ref() {
        if !["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|s| u.starts_with(s))
        {
            p.push(
                Some(r.urls.span()),
                format!("redis.urls: {u:?} must start with redis://, rediss:// or redis+unix://"),
            );
        }
    }
    if !r.cluster && r.urls.get_ref().len() > 1 {
        p.push(
            Some(r.urls.span()),
            "redis.urls: several urls need cluster = true",
        );
    }
    let rprefix = r.prefix.get_ref().clone();
    if rprefix.is_empty() || rprefix.contains([' ', ':', '{', '}']) {
        p.push(
            Some(r.prefix.span()),
            "redis.prefix: must be non-empty, without spaces, ':' or braces",
        );
    }
    if r.retention < Duration::from_secs(60) {
        p.push(
            span_of(doc, &["redis", "retention"]),
            "redis.retention: must be at least 1m",
        );
    }
    let api = raw.api.as_ref().and_then(|a| {
        let listen = match a.listen.get_ref().parse::<SocketAddr>() {
            Ok(l) => l,
            Err(e) => {
                p.push(Some(a.listen.span()), format!("api.listen: {e} (want host:port)"));
                return None;
            }
        };
        let token_file = file(&a.token_file);
        if let (Some(t), Some(f)) = (&token_file, &a.token_file) {
            if let Err(e) = crate::api::auth::Tokens::load(t) {
                p.push(Some(f.span()), format!("api.token_file: {e}"));
            }
        }
        if token_file.is_none() && !listen.ip().is_loopback() {
            p.push(
                Some(a.listen.span()),
                "api.listen: a non-loopback address needs api.token_file (positions of responders are sensitive)",
            );
        }
        Some(ApiSettings { listen, token_file })
    });
    let region = raw.hub.region.clone().unwrap_or_else(|| "default".into());
    let tak = outpost::config::tak::outputs(base, &default_callsign(&region), &raw.tak, p);
    let (tls, host, port) = parsed.ok()?;
    Some(Settings {
        region,
        tak,
        broker: Broker {
            host,
            port,
            tls,
            client_id: b
                .client_id
                .clone()
                .unwrap_or_else(|| format!("outpost-hub-{id}")),
            username: b.username.clone(),
            password,
            keep_alive: b.keep_alive,
            ca_file: file(&b.ca_file),
            cert_file: file(&b.cert_file),
            key_file: file(&b.key_file),
        },
        id,
        share_group: group.clone(),
        topic_prefix: prefix,
        receive_maximum: *b.receive_maximum.get_ref(),
        redis: RedisSettings {
            urls: r.urls.get_ref().clone(),
            cluster: r.cluster,
            prefix: rprefix,
            retention: r.retention,
        },
        api,
    })
}
