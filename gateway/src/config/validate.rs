//! Phase two of `gateway.toml`: from [`RawConfig`] to [`Settings`], every problem placed at
//! the key it is about, each profile loaded once.

use super::de::span_of;
use super::diag::Problems;
use super::loader::{ProfileLoader, Unusable};
use super::raw::{RawConfig, RawMqtt, RawSerial};
use super::*;
use toml::de::DeTable;
use toml::Spanned;

mod uplinks;

/// Where keys are in the parsed document.
struct Doc<'a, 'd>(&'a Spanned<DeTable<'d>>);

impl Doc<'_, '_> {
    fn at(&self, path: &[&str]) -> Option<std::ops::Range<usize>> {
        span_of(self.0, path)
    }
}

/// Validates `raw` (parsed from `path`, document `doc`) into settings; `None` when a part
/// needed to build them is unusable (its problem is recorded).
pub(super) fn validate(
    path: &Path,
    doc: &Spanned<DeTable<'_>>,
    raw: RawConfig,
    p: &mut Problems,
    profile_problems: &mut Vec<Problems>,
) -> Option<Settings> {
    let doc = Doc(doc);
    let base = path.parent().unwrap_or(Path::new("."));
    let id = raw.gateway.id.get_ref().clone();
    if !valid_gateway_id(&id) {
        p.push(
            Some(raw.gateway.id.span()),
            "gateway.id: must match [A-Za-z0-9._-]{1,64}",
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
            "redis.url: must start with redis://, rediss:// or redis+unix://",
        );
    }
    let prefix = raw.redis.prefix.get_ref().clone();
    if prefix.is_empty() || prefix.contains(char::is_whitespace) || prefix.contains(':') {
        p.push(
            Some(raw.redis.prefix.span()),
            "redis.prefix: must be non-empty, without spaces or ':'",
        );
    }
    let devices_mqtt = raw.devices_mqtt.as_ref().and_then(|d| {
        let client_id = d
            .client_id
            .as_ref()
            .map(|c| c.get_ref().clone())
            .unwrap_or_else(|| format!("outpost-{id}"));
        keep_alive(&doc, p, "devices_mqtt", d.keep_alive);
        broker(
            base,
            p,
            "devices_mqtt",
            &d.url,
            client_id,
            d.username.clone(),
            d.password_file.as_ref(),
            d.keep_alive,
            [None, None, None],
        )
    });
    let uplinks = uplinks::uplinks(base, &doc, p, &id, &raw.uplink);
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
                    "ops.listen: must be an address like 127.0.0.1:9108",
                );
                None
            }
        });
    let mut loader = ProfileLoader::new(profiles_dir.clone(), base);
    let mqtt = mqtt_sources(&raw.mqtt, &mut loader, p, profile_problems);
    if !raw.mqtt.is_empty() && raw.devices_mqtt.is_none() {
        p.push(
            doc.at(&["mqtt", "0"]),
            "[[mqtt]] devices need a [devices_mqtt] broker",
        );
    }
    let serial = serial_devices(&raw.serial, &mut loader, p, profile_problems);
    let tak = super::tak::outputs(base, &id, &raw.tak, p);
    let tak_profile =
        super::tak::users_profile(doc_tak(&doc), &raw.tak, &mut loader, p, profile_problems);
    Some(Settings {
        path: path.to_path_buf(),
        gateway_id: id,
        profiles_dir,
        redis_url,
        prefix,
        devices_mqtt,
        uplink: uplinks.as_ref()?.first()?.clone(),
        uplinks: uplinks?,
        max_events: max_events as u64,
        ops_listen,
        ops_uplink_grace: raw.ops.uplink_down_grace,
        serial,
        mqtt,
        tak,
        tak_profile,
    })
}

/// Where `[[tak]]` is in the document (for problems about the whole table array).
fn doc_tak(doc: &Doc) -> Option<std::ops::Range<usize>> {
    doc.at(&["tak", "0"])
}

const TAK_PROFILE_MISUSED: &str =
    "profile: a \"cot\" profile is for TAK users; [[tak]] subscribe = true uses it";

fn keep_alive(doc: &Doc, p: &mut Problems, section: &str, d: Duration) {
    if d < Duration::from_secs(1) || d > Duration::from_secs(65_535) {
        p.push(
            doc.at(&[section, "keep_alive"]),
            format!("{section}.keep_alive: must be between 1s and 18h12m15s (65535s)"),
        );
    }
}

/// The profile `name` (at `at`), or `None` with the reason recorded.
fn profile(
    section: &str,
    loader: &mut ProfileLoader,
    name: &Spanned<String>,
    p: &mut Problems,
    profile_problems: &mut Vec<Problems>,
) -> Option<Arc<Profile>> {
    match loader.get(name.get_ref(), profile_problems) {
        Ok(pr) => Some(pr),
        Err(Unusable::NotFound(msg)) => {
            p.push(Some(name.span()), format!("{section}.profile: {msg}"));
            None
        }
        Err(Unusable::Invalid(path)) => {
            p.push(
                Some(name.span()),
                format!(
                    "{section}.profile: {:?} is invalid (see {})",
                    name.get_ref(),
                    path.display()
                ),
            );
            None
        }
    }
}

fn mqtt_sources(
    raw: &[RawMqtt],
    loader: &mut ProfileLoader,
    p: &mut Problems,
    profile_problems: &mut Vec<Problems>,
) -> Vec<MqttSource> {
    let mut out = Vec::new();
    for m in raw {
        let Some(profile) = profile("mqtt", loader, &m.profile, p, profile_problems) else {
            continue;
        };
        if profile.decoder == DecoderKind::Cot {
            p.push(
                Some(m.profile.span()),
                format!("mqtt.{TAK_PROFILE_MISUSED}"),
            );
            continue;
        }
        if !profile.decoder.is_mqtt() {
            p.push(
                Some(m.profile.span()),
                format!(
                    "mqtt.profile: {:?} (decoder {:?}) is not an MQTT profile; use [[serial]]",
                    profile.name,
                    profile.decoder.name()
                ),
            );
            continue;
        }
        // One source per filter: a profile may list several (e.g. Meshtastic with and
        // without a region level); an override in the config is one filter.
        let topics: Vec<String> = match &m.topic {
            Some(t) => {
                if let Err(e) = crate::ingest::topic::validate_filter(t.get_ref()) {
                    p.push(Some(t.span()), format!("mqtt.topic: {e}"));
                }
                vec![t.get_ref().clone()]
            }
            None => profile.topics().into_iter().map(str::to_string).collect(),
        };
        for topic in topics {
            out.push(MqttSource {
                profile: profile.clone(),
                topic,
            });
        }
    }
    out
}

fn serial_devices(
    raw: &[RawSerial],
    loader: &mut ProfileLoader,
    p: &mut Problems,
    profile_problems: &mut Vec<Problems>,
) -> Vec<SerialDevice> {
    let mut out: Vec<SerialDevice> = Vec::new();
    for s in raw {
        let dev = s.device.get_ref();
        if dev.is_empty() || dev.len() > 128 {
            p.push(
                Some(s.device.span()),
                "serial.device: must be 1 to 128 characters",
            );
        } else if out.iter().any(|o| o.device == *dev) {
            p.push(
                Some(s.device.span()),
                format!("serial.device: {dev:?} is named twice"),
            );
        }
        let Some(profile) = profile("serial", loader, &s.profile, p, profile_problems) else {
            continue;
        };
        if profile.decoder == DecoderKind::Cot {
            p.push(
                Some(s.profile.span()),
                format!("serial.{TAK_PROFILE_MISUSED}"),
            );
            continue;
        }
        if profile.decoder.is_mqtt() {
            p.push(
                Some(s.profile.span()),
                format!(
                    "serial.profile: {:?} (decoder {:?}) is not a serial profile; use [[mqtt]]",
                    profile.name,
                    profile.decoder.name()
                ),
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
                p.push(Some(b.span()), "serial.baud: must be 50..=4000000");
            }
            *b.get_ref()
        });
        out.push(SerialDevice {
            device: dev.clone(),
            path: PathBuf::from(s.path.get_ref()),
            profile,
            baud: baud.clamp(50, 4_000_000) as u32,
        });
    }
    out
}

fn int_in(p: &mut Problems, v: &Spanned<i64>, lo: i64, hi: i64, name: &str) -> i64 {
    let x = *v.get_ref();
    if x < lo || x > hi {
        p.push(
            Some(v.span()),
            format!("{name}: must be between {lo} and {hi}"),
        );
        return lo;
    }
    x
}

#[allow(clippy::too_many_arguments)]
fn broker(
    base: &Path,
    p: &mut Problems,
    section: &str,
    url: &Spanned<String>,
    client_id: String,
    username: Option<String>,
    password_file: Option<&Spanned<String>>,
    keep_alive: Duration,
    tls_files: [Option<&Spanned<String>>; 3],
) -> Option<Broker> {
    let (tls, host, port) = match parse_mqtt_url(url.get_ref()) {
        Ok(x) => x,
        Err(e) => {
            p.push(Some(url.span()), format!("{section}.url: {e}"));
            return None;
        }
    };
    let password =
        password_file.and_then(|f| match std::fs::read_to_string(base.join(f.get_ref())) {
            Ok(s) => Some(s.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => {
                p.push(
                    Some(f.span()),
                    format!("{section}.password_file: cannot read: {e}"),
                );
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
    check_tls(p, section, url, &b, &tls_files);
    Some(b)
}

/// TLS material is checked now, so an unreadable key or a certificate that does not match its
/// key stops `outpost run` (and fails `outpost check`) at start-up, not at the first connect.
fn check_tls(
    p: &mut Problems,
    section: &str,
    url: &Spanned<String>,
    b: &Broker,
    files: &[Option<&Spanned<String>>; 3],
) {
    let first_set = files.iter().flatten().next();
    if !b.tls {
        if let Some(f) = first_set {
            p.push(
                Some(f.span()),
                format!("{section}: ca_file, cert_file and key_file need an mqtts:// url"),
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
        p.push(Some(span), format!("{section}: TLS: {msg}"));
    }
}
