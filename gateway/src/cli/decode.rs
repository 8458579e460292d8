//! `outpost decode`: the technician's offline check of a profile against a capture (SPEC §2).
//! Events go to stdout as JSON lines (without `id`/`rx`), problems to stderr with line numbers.

use super::InvalidInput;
use crate::config::{profile::Profile, resolve_profile, DecoderKind};
use crate::decode::{at_modem, MqttDecoder};
use crate::event::Event;
use crate::ingest::topic::{matches, DeviceIdTemplate};
use anyhow::Context as _;
use chrono::Utc;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs `outpost decode -p PROFILE [-c CONFIG] [FILE]`.
pub fn decode(
    profile: &str,
    config: Option<&Path>,
    file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let path = find_profile(profile, config)?;
    let profile = Profile::load(&path).map_err(|p| InvalidInput(p.to_string()))?;
    let mut input = Vec::new();
    match file {
        Some(f) => {
            std::fs::File::open(f)
                .and_then(|mut h| h.read_to_end(&mut input))
                .map_err(|e| InvalidInput(format!("{}: {e}", f.display())))?;
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut input)
                .context("reading stdin")?;
        }
    }
    let mut out = Output::new();
    // Serial captures carry no device id: name the device after the file.
    let stem = file
        .and_then(|f| f.file_stem())
        .map(|s| s.to_string_lossy().into_owned());
    let dev = stem.as_deref().unwrap_or("stdin");
    match profile.decoder {
        k if k.is_mqtt() => decode_mqtt(&profile, &input, &mut out)?,
        DecoderKind::AtModem => {
            let text = String::from_utf8_lossy(&input);
            for (i, r) in at_modem::decode_transcript(dev, &text, Utc::now())
                .into_iter()
                .enumerate()
            {
                out.result(i + 1, r.map(Some));
            }
        }
        DecoderKind::Nmea | DecoderKind::Gpsd => {
            crate::ingest::lines::decode_capture(&profile, dev, &input, &mut |n, r| {
                out.decoded(n, r)
            })
        }
        DecoderKind::Cot => decode_cot(&input, &mut out),
        _ => unreachable!("every decoder kind is handled above"),
    }
    out.finish()
}

/// A CoT capture (e.g. a TAK server's stream saved to a file): each event is reported at the
/// line its `</event>` ends on; what a gateway would not take in is a problem with its reason.
fn decode_cot(input: &[u8], out: &mut Output) {
    use outpost_cot::{decode::decode, events::to_events, split::Splitter};
    let mut split = Splitter::new(outpost_cot::link::MAX_EVENT_BYTES);
    let mut docs = Vec::new();
    for (i, line) in input.split_inclusive(|b| *b == b'\n').enumerate() {
        split.push(line, &mut docs);
        for d in docs.drain(..) {
            let ev = d
                .map_err(|e| e.to_string())
                .and_then(|d| decode(&d).map_err(|e| e.to_string()));
            // No gateway here: only All Chat Rooms chats count as addressed to us.
            match ev.map(|ev| to_events(&ev, "")) {
                Ok(Ok((_, events))) => events.iter().for_each(|e| out.event(e)),
                Ok(Err(skip)) => out.problem(i + 1, &format!("not taken in [{}]", skip.reason())),
                Err(e) => out.problem(i + 1, &format!("{e} [malformed_cot]")),
            }
        }
    }
    if split.pending() > 0
        && !String::from_utf8_lossy(input)
            .trim_end()
            .ends_with("</event>")
    {
        out.problem(
            input.split(|b| *b == b'\n').count(),
            "unfinished event at end of input [malformed_cot]",
        );
    }
}

fn decode_mqtt(profile: &Profile, input: &[u8], out: &mut Output) -> anyhow::Result<()> {
    let decoder = MqttDecoder::from_profile(profile)?;
    let filters = match profile.topics() {
        t if t.is_empty() => vec!["#"],
        t => t,
    };
    let template = match profile.device_id_template() {
        Some(t) => DeviceIdTemplate::parse(t).map_err(InvalidInput)?,
        None => DeviceIdTemplate::last_level(),
    };
    for (i, line) in input.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let n = i + 1;
        let Some(sp) = line.iter().position(|b| *b == b' ') else {
            out.problem(n, "expected `TOPIC PAYLOAD`");
            continue;
        };
        let (topic, payload) = (String::from_utf8_lossy(&line[..sp]), &line[sp + 1..]);
        if !filters.iter().any(|f| matches(f, &topic)) {
            out.problem(
                n,
                &format!(
                    "topic {topic:?} does not match the profile's filter {}",
                    filters
                        .iter()
                        .map(|f| format!("{f:?}"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            );
            continue;
        }
        let Some(dev) = template.apply(&topic) else {
            out.problem(n, &format!("no device id in topic {topic:?}"));
            continue;
        };
        match decoder.decode(&dev, payload, Utc::now()) {
            Ok(d) => {
                d.dropped.iter().for_each(|f| out.dropped(n, f));
                if let Some(name) = &d.device_name {
                    eprintln!("line {n}: device {dev:?} is named {name:?}");
                }
                d.events.iter().for_each(|e| out.event(e));
            }
            Err(e) => out.problem(n, &format!("{e} [{}]", e.reason())),
        }
    }
    Ok(())
}

/// A profile argument: a path, or a name in the config's profiles folder, `./device-profiles`,
/// or `/etc/outpost/device-profiles` (SPEC §2).
fn find_profile(name: &str, config: Option<&Path>) -> anyhow::Result<PathBuf> {
    let cwd = Path::new(".");
    if name.contains('/') || name.ends_with(".toml") {
        return Ok(PathBuf::from(name));
    }
    let dirs: Vec<PathBuf> = match config {
        Some(c) => vec![profiles_dir_of(c)?],
        None => vec![
            PathBuf::from("device-profiles"),
            PathBuf::from("/etc/outpost/device-profiles"),
        ],
    };
    dirs.iter()
        .map(|d| resolve_profile(name, d, cwd))
        .find(|p| p.exists())
        .ok_or_else(|| {
            InvalidInput(format!(
                "profile {name:?} not found in {}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into()
        })
}

fn profiles_dir_of(config: &Path) -> anyhow::Result<PathBuf> {
    #[derive(serde::Deserialize)]
    struct Partial {
        gateway: Gw,
    }
    #[derive(serde::Deserialize)]
    struct Gw {
        profiles: Option<String>,
    }
    let src = std::fs::read_to_string(config)
        .map_err(|e| InvalidInput(format!("{}: {e}", config.display())))?;
    let p: Partial = toml::from_str(&src)
        .map_err(|e| InvalidInput(format!("{}: {}", config.display(), e.message())))?;
    let base = config.parent().unwrap_or(Path::new("."));
    Ok(base.join(
        p.gateway
            .profiles
            .unwrap_or_else(|| "/etc/outpost/device-profiles".into()),
    ))
}

/// Buffered stdout for events, stderr for problems, a closing count.
struct Output {
    w: BufWriter<std::io::Stdout>,
    events: usize,
    problems: usize,
    dropped: usize,
}

impl Output {
    fn new() -> Self {
        Output {
            w: BufWriter::new(std::io::stdout()),
            events: 0,
            problems: 0,
            dropped: 0,
        }
    }

    fn event(&mut self, e: &Event) {
        self.events += 1;
        let _ = writeln!(self.w, "{}", e.to_json());
    }

    fn problem(&mut self, line: usize, msg: &str) {
        self.problems += 1;
        eprintln!("line {line}: {msg}");
    }

    /// A malformed optional field left out of an event that was kept: reported, but not a
    /// problem (nothing was lost but that field).
    fn dropped(&mut self, line: usize, f: &crate::decode::DroppedField) {
        self.dropped += 1;
        eprintln!("line {line}: {f} [{}]", f.reason());
    }

    fn result(&mut self, line: usize, r: Result<Option<Event>, crate::decode::DecodeError>) {
        match r {
            Ok(Some(e)) => self.event(&e),
            Ok(None) => {}
            Err(e) => self.problem(line, &format!("{e} [{}]", e.reason())),
        }
    }

    fn decoded(
        &mut self,
        line: usize,
        r: Result<crate::decode::Decoded, crate::decode::DecodeError>,
    ) {
        match r {
            Ok(d) => {
                d.dropped.iter().for_each(|f| self.dropped(line, f));
                d.events.iter().for_each(|e| self.event(e));
            }
            Err(e) => self.problem(line, &format!("{e} [{}]", e.reason())),
        }
    }

    fn finish(mut self) -> anyhow::Result<ExitCode> {
        self.w.flush()?;
        let dropped = match self.dropped {
            0 => String::new(),
            n => format!(", {n} fields dropped"),
        };
        eprintln!(
            "{} events, {} problems{dropped}",
            self.events, self.problems
        );
        Ok(ExitCode::SUCCESS)
    }
}
