//! The commands behind `main`: each returns an exit code or an error that
//! [`exit_code`] maps (1 invalid input or config, 2 runtime failure).

mod decode;
mod print_config;
mod send;
mod status;

pub use decode::decode;
pub use print_config::print_config;
pub use send::{send, SendArgs};
pub use status::status;

use crate::config::{ConfigError, Settings};
use std::path::Path;
use std::process::ExitCode;

/// Invalid input: exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// Writes `text` to stdout; a closed pipe (`outpost status | head`) is not an error, and
/// never a panic as `println!` would make it.
pub(crate) fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// 1 for invalid config or input, 2 for everything else.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<ConfigError>().is_some() || e.downcast_ref::<InvalidInput>().is_some() {
        1
    } else {
        2
    }
}

/// Logs to stderr, without colours when not a terminal (journald-friendly); `RUST_LOG`
/// filters, `OUTPOST_LOG_FORMAT=json` switches to JSON lines.
pub fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("OUTPOST_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The daemon's runtime: one thread. A gateway's load at the edge is many small wake-ups (a
/// device message, its store call, its uplink batch and their acknowledgements), and on two
/// worker threads each was a hand-over between threads (issue 16 goal 5, `outpost-bench
/// footprint`, 100 devices × 1 Hz, alternating: 0.82–0.93% of a core on one thread against
/// 0.90–1.12% on two). Redis and the brokers do the heavy part: sustained ingest kept up to the
/// same step (30k/s) and p99 latency at 1,000 msg/s was the same (12.4–12.9 ms against
/// 12.3–12.4 ms); the drain, where the expansion of stored entries is Outpost's own CPU, fell
/// by about a fifth (473–664k/s against 691–770k/s, still 14–18× the bridge). README,
/// "Benchmarks", round 9.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `outpost run`.
pub fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(config)?;
    runtime()?.block_on(crate::daemon::run(settings))?;
    Ok(ExitCode::SUCCESS)
}

/// `outpost check`: every problem as `file:line:col: message`; exit 1 when any.
pub fn check(config: &Path) -> anyhow::Result<ExitCode> {
    match Settings::load(config) {
        Ok(s) => {
            let profiles: std::collections::BTreeSet<&str> = s
                .mqtt
                .iter()
                .map(|m| m.profile.name.as_str())
                .chain(s.serial.iter().map(|d| d.profile.name.as_str()))
                .chain(s.tak_profile.iter().map(|p| p.name.as_str()))
                .collect();
            let names: Vec<&str> = profiles.into_iter().collect();
            let used = match names.len() {
                0 => "no profiles".to_string(),
                1 => format!("1 profile: {}", names[0]),
                n => format!("{n} profiles: {}", names.join(", ")),
            };
            print_stdout(&format!(
                "{}: ok (gateway {}, {used})\n",
                config.display(),
                s.gateway_id
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let mut text = e.lines().join("\n");
            text.push('\n');
            print_stdout(&text)?;
            Ok(ExitCode::from(1))
        }
    }
}
