//! `outpost status`: the gateway's state at a glance, read from local Redis only (SPEC §2), so
//! it works while the daemon is down. Key layout: `docs/redis-layout.md`.
//!
//! [`gather`] reads everything into a [`Report`]; [`table`] renders it for people, `--json`
//! prints it as is for scripts.

mod read;
mod table;

use crate::event::Class;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub use read::gather;
pub use table::table;

/// How long to wait for Redis before saying it is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything `outpost status` shows.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `[gateway] id` of the config, if it has one.
    pub gateway: Option<String>,
    pub redis: String,
    pub prefix: String,
    /// When this report was read (RFC 3339).
    pub at: String,
    pub uplink: Uplink,
    /// Per region (SPEC §9), by name; empty for a gateway with a single `[uplink]`.
    pub regions: Vec<RegionState>,
    /// Per class, in drain order.
    pub classes: Vec<ClassState>,
    pub devices: Vec<Device>,
    /// Inputs dropped, by reason.
    pub drops: Vec<(String, u64)>,
    /// Messages to devices waiting at the gateway, per device in delivery order (SPEC §8).
    pub pending_messages: Vec<PendingMessage>,
    /// Downlink counters: messages by receipt state, bad ones as `bad:<reason>`.
    pub downlink: Vec<(String, u64)>,
}

/// One message waiting for its device.
#[derive(Debug, Serialize)]
pub struct PendingMessage {
    pub dev: String,
    pub msg_id: String,
    /// `queued`, or `sending` while its transport has it.
    pub state: String,
    pub text: String,
    /// Seconds until it expires (negative: due to expire).
    pub expires_in_s: i64,
}

/// `<p>:uplink`.
#[derive(Debug, Serialize)]
pub struct Uplink {
    /// `up`, `down`, or `unknown` (never connected).
    pub state: String,
    pub since: Option<String>,
    /// Seconds since `since`.
    pub for_s: Option<i64>,
}

/// One region's uplink (`<p>:uplink:<name>`).
#[derive(Debug, Serialize)]
pub struct RegionState {
    pub name: String,
    pub uplink: Uplink,
    /// Events not yet acknowledged by this region's hub.
    pub backlog: u64,
    /// Age of the oldest of them (seconds).
    pub oldest_age_s: Option<i64>,
    /// Events trimmed before this region got them (it lagged past max_lag).
    pub missed: u64,
    /// Lagging past max_lag now: it no longer holds back the outbox trim.
    pub lagging: bool,
}

/// One class: outbox backlog and counters.
#[derive(Debug, Serialize)]
pub struct ClassState {
    pub class: &'static str,
    /// Events waiting for the hub's acknowledgement.
    pub backlog: u64,
    /// Age in seconds of the oldest waiting event.
    pub oldest_age_s: Option<i64>,
    pub accepted: u64,
    pub delivered: u64,
    /// Id of the last event the hub acknowledged.
    pub acked: Option<String>,
}

/// One device's latest state (`<p>:dev:<id>`).
#[derive(Debug, Serialize)]
pub struct Device {
    pub id: String,
    /// The display name the device announced (OwnTracks card), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub state: String,
    pub last_seen: Option<String>,
    pub last_seen_age_s: Option<i64>,
    pub profile: Option<String>,
    pub position: Option<Position>,
}

/// The latest position of a device.
#[derive(Debug, Serialize)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    pub ts: Option<String>,
}

/// The part of `gateway.toml` status needs; lenient, so that a problem elsewhere in the config
/// (or in a profile) does not hide the gateway's state.
#[derive(Deserialize, Default)]
struct Partial {
    #[serde(default)]
    gateway: Option<PartialGateway>,
    #[serde(default)]
    redis: PartialRedis,
}

#[derive(Deserialize)]
struct PartialGateway {
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(default)]
struct PartialRedis {
    url: String,
    prefix: String,
}

impl Default for PartialRedis {
    fn default() -> Self {
        let d = crate::config::raw::RawRedis::default();
        PartialRedis {
            url: d.url.into_inner(),
            prefix: d.prefix.into_inner(),
        }
    }
}

/// Runs `outpost status [-c FILE] [--json]`.
pub fn status(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let src = std::fs::read_to_string(config).map_err(|e| {
        super::InvalidInput(format!("{}: cannot read config: {e}", config.display()))
    })?;
    let cfg: Partial = toml::from_str(&src).map_err(|e| {
        super::InvalidInput(format!(
            "{}: {} (run `outpost check -c {}`)",
            config.display(),
            e.message().trim(),
            config.display()
        ))
    })?;
    let url = &cfg.redis.url;
    let mut conn = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(CONNECT_TIMEOUT))
        .map_err(|e| anyhow::anyhow!("cannot reach Redis at {url}: {e}"))?;
    let gateway = cfg.gateway.and_then(|g| g.id);
    let report = gather(&mut conn, gateway, url, &cfg.redis.prefix, Utc::now())
        .with_context(|| format!("reading status from Redis at {url}"))?;
    if json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        super::print_stdout(&table(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Seconds from `then` to `now` (0 if in the future).
fn age_s(now: DateTime<Utc>, then: DateTime<Utc>) -> i64 {
    (now - then).num_seconds().max(0)
}

/// Class names in drain order.
fn classes() -> impl Iterator<Item = &'static str> {
    Class::ALL.into_iter().map(Class::as_str)
}
