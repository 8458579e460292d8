//! Phase two of a profile: what serde cannot check. Every problem is placed at the key it is
//! about (looked up in the parsed document), and all of them are reported at once.

use super::{DecoderKind, RawProfile};
use crate::config::de::span_of;
use crate::config::diag::Problems;
use crate::ingest::topic::{validate_filter, DeviceIdTemplate};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::de::DeTable;
use toml::Spanned;

/// What the checks need besides the profile: where keys are, and which sections serde already
/// rejected (their absence is not a second problem).
pub struct Ctx<'a, 'd> {
    pub path: &'a Path,
    pub doc: &'a Spanned<DeTable<'d>>,
    pub pruned: &'a [String],
}

impl Ctx<'_, '_> {
    /// The span of the key at `path` (dotted), if written.
    fn at(&self, dotted: &str) -> Option<Range<usize>> {
        let parts: Vec<&str> = dotted.split('.').collect();
        span_of(self.doc, &parts)
    }

    fn has(&self, section: &str) -> bool {
        self.at(section).is_some() || self.pruned.iter().any(|p| p == section)
    }
}

/// Checks `raw` as a whole and pushes every problem.
pub fn validate(raw: &RawProfile, cx: &Ctx, p: &mut Problems) {
    header(raw, cx, p);
    sections(raw, cx, p);
    mqtt(raw, p);
    serial(raw, cx, p);
    gpsd(raw, cx, p);
    json(raw, cx, p);
    owntracks(raw, cx, p);
    options(raw, cx, p);
    meshtastic(raw, cx, p);
    if let Some(d) = &raw.downlink {
        super::downlink::validate(d, *raw.decoder.get_ref(), &|k| cx.at(k), p);
    }
    tak_type(raw, p);
}

/// A CoT type is dash-separated atoms, starting with `a` (an atom: a unit on the map),
/// e.g. `a-f-G-U-C` (friendly ground unit, combat) or `a-f-G-E-V-A` (ambulance).
fn tak_type(raw: &RawProfile, p: &mut Problems) {
    let Some(t) = &raw.tak_type else { return };
    let s = t.get_ref();
    let ok = s.starts_with("a-")
        && s.len() <= 64
        && s.split('-')
            .all(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric()));
    if !ok {
        p.push(
            Some(t.span()),
            format!("tak_type: {s:?} is not a CoT unit type like \"a-f-G-U-C\""),
        );
    }
}

fn header(raw: &RawProfile, cx: &Ctx, p: &mut Problems) {
    let name = raw.name.get_ref();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        p.push(
            Some(raw.name.span()),
            "name: must be 1 or more of [A-Za-z0-9._-]",
        );
    } else if let Some(stem) = cx.path.file_stem().and_then(|s| s.to_str()) {
        // The config names a profile by its file; the store records its `name`.
        if stem != name {
            p.push(
                Some(raw.name.span()),
                format!("name: {name:?} differs from the file name {stem}.toml"),
            );
        }
    }
    if raw.description.get_ref().trim().is_empty() {
        p.push(
            Some(raw.description.span()),
            "description: must not be empty",
        );
    }
    if raw.version.0.trim().is_empty() {
        p.push(cx.at("version"), "version: must not be empty");
    }
    if raw.presence_timeout < Duration::from_secs(1) {
        p.push(
            cx.at("presence_timeout"),
            "presence_timeout: must be at least 1s",
        );
    }
}

/// How a decoder gets its input, for messages.
fn transport(kind: DecoderKind) -> &'static str {
    match kind {
        k if k.is_mqtt() => "takes MQTT messages",
        DecoderKind::Gpsd => "connects to a gpsd daemon",
        DecoderKind::Cot => "reads a TAK server ([[tak]] subscribe = true)",
        _ => "reads a serial line",
    }
}

/// Which sections go with which decoder: each section is only for some decoders, and some
/// decoders cannot work without theirs.
fn sections(raw: &RawProfile, cx: &Ctx, p: &mut Problems) {
    use DecoderKind::*;
    let kind = *raw.decoder.get_ref();
    let allowed: &[(&str, &[DecoderKind])] = &[
        ("mqtt", &[Owntracks, Meshtastic, Json, MeshtasticProto]),
        ("serial", &[Nmea, AtModem, MeshtasticSerial]),
        ("gpsd", &[Gpsd]),
        ("json", &[Json]),
        ("at_modem", &[AtModem]),
        ("meshtastic", &[MeshtasticProto, MeshtasticSerial]),
        ("owntracks", &[Owntracks]),
        (
            "report",
            &[
                Nmea,
                Owntracks,
                Meshtastic,
                Gpsd,
                Json,
                MeshtasticProto,
                MeshtasticSerial,
            ],
        ),
    ];
    for (section, kinds) in allowed {
        let Some(span) = cx.at(section) else { continue };
        if !kinds.contains(&kind) {
            let why = match *section {
                "json" | "at_modem" | "meshtastic" | "owntracks" => {
                    format!("it holds options of decoder {:?}", kinds[0].name())
                }
                "report" => "it thins locations and this decoder reports none".to_string(),
                _ => format!("decoder {:?} {}", kind.name(), transport(kind)),
            };
            p.push(
                Some(span),
                format!(
                    "[{section}] does not belong in a {:?} profile: {why}",
                    kind.name()
                ),
            );
        }
    }
    let needs = |section: &str, what: &str, p: &mut Problems| {
        if !cx.has(section) {
            p.push(
                Some(raw.decoder.span()),
                format!("decoder {:?} needs {what}", kind.name()),
            );
        }
    };
    match kind {
        k if k.is_mqtt() => needs("mqtt", "an [mqtt] section with a topic filter", p),
        Nmea | AtModem | MeshtasticSerial => {
            needs("serial", "a [serial] section with its baud rate", p)
        }
        _ => {}
    }
    if kind == Json {
        needs("json", "a [json] mapping", p);
    }
}

fn mqtt(raw: &RawProfile, p: &mut Problems) {
    let Some(m) = &raw.mqtt else { return };
    let mut valid = true;
    for filter in &m.topic.get_ref().0 {
        if let Err(e) = validate_filter(filter) {
            p.push(Some(m.topic.span()), format!("mqtt.topic: {e}"));
            valid = false;
        }
    }
    if !valid {
        return;
    }
    let Some(t) = &m.device_id else { return };
    if let Err(e) = DeviceIdTemplate::parse(t.get_ref()) {
        p.push(Some(t.span()), format!("mqtt.device_id: {e}"));
        return;
    }
    for filter in &m.topic.get_ref().0 {
        device_id_levels(filter, t, p);
    }
}

/// `{N}` of the device id template must name a level every topic matching `filter` has.
fn device_id_levels(filter: &str, t: &Spanned<String>, p: &mut Problems) {
    let levels: Vec<&str> = filter.split('/').collect();
    let open_ended = levels.last() == Some(&"#");
    let fixed = levels.len() - usize::from(open_ended);
    for n in template_levels(t.get_ref()) {
        if n >= fixed {
            p.push(
                Some(t.span()),
                format!(
                    "mqtt.device_id: {{{n}}} is past the levels of topic {filter:?} (0..={})",
                    fixed.saturating_sub(1)
                ),
            );
        }
    }
}

/// The level numbers `{N}` of a (valid) template.
fn template_levels(t: &str) -> Vec<usize> {
    t.split('{')
        .skip(1)
        .filter_map(|s| s.split('}').next()?.parse().ok())
        .collect()
}

fn serial(raw: &RawProfile, cx: &Ctx, p: &mut Problems) {
    let Some(s) = &raw.serial else { return };
    if cx.at("serial.baud").is_none() && raw.decoder.get_ref().is_serial() {
        p.push(
            cx.at("serial"),
            "serial.baud: missing; the device's baud rate is part of its profile",
        );
    }
    if !(50..=4_000_000).contains(s.baud.get_ref()) {
        p.push(cx.at("serial.baud"), "serial.baud: must be 50..=4000000");
    }
    if !(5..=8).contains(s.data_bits.get_ref()) {
        p.push(cx.at("serial.data_bits"), "serial.data_bits: must be 5..=8");
    }
    if !(1..=2).contains(s.stop_bits.get_ref()) {
        p.push(
            cx.at("serial.stop_bits"),
            "serial.stop_bits: must be 1 or 2",
        );
    }
    if s.no_data_timeout < Duration::from_secs(1) {
        p.push(
            cx.at("serial.no_data_timeout"),
            "serial.no_data_timeout: must be at least 1s (a device that pauses would be reopened over and over)",
        );
    }
}

fn gpsd(raw: &RawProfile, cx: &Ctx, p: &mut Problems) {
    let Some(g) = &raw.gpsd else { return };
    if g.host.is_empty() || g.host.contains(char::is_whitespace) {
        p.push(
            cx.at("gpsd.host"),
            "gpsd.host: must be a host name or address",
        );
    }
    if g.port == 0 {
        p.push(cx.at("gpsd.port"), "gpsd.port: must be 1..=65535");
    }
}

fn json(raw: &RawProfile, cx: &Ctx, p: &mut Problems) {
    let Some(j) = &raw.json else { return };
    for (key, msg) in j.get_ref().validate() {
        let key = if key.is_empty() {
            "json".to_string()
        } else {
            format!("json.{key}")
        };
        let span = cx.at(&key).or_else(|| Some(j.span()));
        p.push(span, format!("{key}: {msg}"));
    }
}

/// The OwnTracks key file must be readable and hold a secret (checked here so `outpost check`
/// reports it at its key, not the daemon at start).
fn owntracks(raw: &RawProfile, cx: &Ctx, p: &mut Problems) {
    let Some(f) = raw
        .owntracks
        .as_ref()
        .and_then(|o| o.get_ref().key_file.clone())
    else {
        return;
    };
    let path = cx.path.parent().unwrap_or(Path::new(".")).join(f.get_ref());
    match std::fs::read_to_string(&path) {
        Err(e) => p.push(
            Some(f.span()),
            format!("owntracks.key_file: cannot read {}: {e}", path.display()),
        ),
        Ok(s) if s.trim_end_matches(['\r', '\n']).is_empty() => p.push(
            Some(f.span()),
            format!("owntracks.key_file: {} is empty", path.display()),
        ),
        Ok(_) => {}
    }
}

fn options(raw: &RawProfile, cx: &Ctx, p: &mut Problems) {
    if let Some(r) = &raw.report {
        for msg in r.get_ref().validate() {
            let key = msg.split(':').next().unwrap_or_default();
            let span = cx.at(&format!("report.{key}")).or_else(|| Some(r.span()));
            p.push(span, format!("report.{msg}"));
        }
    }
    if let Some(a) = &raw.at_modem {
        let o = a.get_ref();
        if o.interval < Duration::from_secs(1) {
            p.push(
                cx.at("at_modem.interval"),
                "at_modem.interval: must be at least 1s",
            );
        }
        if o.timeout < Duration::from_millis(100) {
            p.push(
                cx.at("at_modem.timeout"),
                "at_modem.timeout: must be at least 100ms",
            );
        } else if o.timeout > o.interval {
            p.push(
                cx.at("at_modem.timeout"),
                "at_modem.timeout: must not be longer than at_modem.interval",
            );
        }
    }
}

fn meshtastic(raw: &RawProfile, cx: &Ctx, p: &mut Problems) {
    let Some(m) = &raw.meshtastic else { return };
    let o = m.get_ref();
    if o.keys.is_empty() {
        p.push(
            cx.at("meshtastic.keys"),
            "meshtastic.keys: needs at least one key (\"AQ==\" is the default channel's)",
        );
    }
    for k in &o.keys {
        if let Err(e) = crate::decode::meshtastic_proto::crypto::ChannelKey::parse(k.get_ref()) {
            p.push(Some(k.span()), format!("meshtastic.keys: {e}"));
        }
    }
    for (key, d, min) in [
        ("heartbeat", o.heartbeat, Duration::from_secs(1)),
        ("ack_timeout", o.ack_timeout, Duration::from_secs(1)),
    ] {
        if d < min {
            p.push(
                cx.at(&format!("meshtastic.{key}")),
                format!("meshtastic.{key}: must be at least 1s"),
            );
        }
    }
}
