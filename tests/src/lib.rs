//! # Outpost system-test harness
//!
//! Everything a system test of the real `outpost` binary needs, as plain synchronous values that
//! clean up on drop (SPEC §2, §5, §6; STYLE rule 15: real servers, free loopback ports, temp dirs,
//! never the machine's own services).
//!
//! # Layout
//! - [`redis_server`]: a private `redis-server` with AOF + `appendfsync always`, `kill9`/`restart`.
//! - [`mosquitto`]: a private `mosquitto` with persistence, `stop`/`start`/`kill9`.
//! - [`proxy`]: a TCP proxy that can pass, black-hole, cut or delay a link at runtime.
//! - [`hub`]: the regional hub of a test — the real `outpost-hub` with its own Redis, read through
//!   its API; delivery is asserted there.
//! - [`hub_proc`]: runs the `outpost-hub` binary on a config; [`hub_api`]: a client of its HTTP API.
//! - [`wire_tap`]: a subscriber on the hub broker for what only the wire shows (raw batches, the
//!   `replay` flag, retained state, snapshot order); [`dedup`] holds its sans-I/O bookkeeping.
//! - [`redis_cluster`]: a real 3-master Redis Cluster.
//! - [`device`]: a field device publishing QoS 1 to the device broker.
//! - [`outpost`]: builds and runs the `outpost` binary; [`config`] renders its `gateway.toml`.
//! - [`sniffer`]: a listener on a broker topic (what the gateway sends to devices).
//! - [`rig`]: a whole bench (Redis, device broker, hub broker, proxy, the real hub) and profile copies.
//! - [`mesh_radio`]: a scripted Meshtastic radio (serial API) on a pty.
//! - [`pty`]: a serial device on a pseudo-terminal pair (socat), unplugged and replugged.
//! - [`feed`]: tracked device feeds (every publish and its broker ack); [`tally`]: the end
//!   checks over them (exactly once, in order, nothing acknowledged lost).
//! - [`taky`]: a private `taky` TAK server (TCP, or TLS with a client certificate);
//!   [`tak_user`]: a CoT client acting as the ATAK user.
//! - [`rt`], [`process`]: the runtime-thread and child-process plumbing the above share.
//!
//! Helpers that need async I/O own a tokio runtime on their own thread and are driven through
//! channels, so test bodies can be plain `#[test]` functions (or `#[tokio::test]`: nothing here
//! calls `block_on` on the caller's thread).

pub mod burst;
pub mod config;
pub mod dedup;
pub mod device;
pub mod feed;
pub mod hub;
pub mod hub_api;
pub mod hub_proc;
pub mod mesh_radio;
pub mod mosquitto;
pub mod outpost;
pub mod process;
pub mod proxy;
pub mod pty;
pub mod redis_cluster;
pub mod redis_server;
pub mod rig;
pub mod rng;
pub mod rt;
pub mod sniffer;
pub mod tak_user;
pub mod taky;
pub mod tally;
pub mod wire_tap;

use std::net::TcpListener;
use std::time::{Duration, Instant};

pub use config::GatewayConfig;
pub use dedup::{parse_event_id, DedupStore, EventId};
pub use device::Device;
pub use hub::Hub;
pub use hub_api::HubApi;
pub use hub_proc::{hub_sync, HubConfig, HubProc};
pub use mosquitto::{Mosquitto, TlsListener};
pub use outpost::{hub_bin, outpost_bin, Outpost};
pub use proxy::TcpProxy;
pub use redis_cluster::RedisCluster;
pub use redis_server::RedisServer;
pub use rig::{rfc3339, ProfileDir, Rig, GW};
pub use rng::Rng;
pub use sniffer::Sniffer;
pub use tak_user::TakUser;
pub use taky::{Taky, TakyTls};
pub use wire_tap::WireTap;

/// A loopback port that was free a moment ago.
///
/// The port is released before returning, so another process may grab it first; the server
/// helpers therefore retry their start on a fresh port when binding fails.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct loopback ports that were free a moment ago: all are held until all are
/// chosen, so (unlike `N` calls of [`free_port`]) no two are the same.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("local_addr").port())
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
///
/// The condition is checked once more at the deadline, so a zero timeout still checks once.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parses `mqtt://host:port` (port defaults to 1883).
pub fn parse_mqtt_url(url: &str) -> anyhow::Result<(String, u16)> {
    let Some(rest) = url.strip_prefix("mqtt://") else {
        anyhow::bail!("only mqtt:// URLs are supported here, got {url}");
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_string(),
            port.parse()
                .map_err(|e| anyhow::anyhow!("mqtt url port: {e}"))?,
        )),
        None => Ok((rest.to_string(), 1883)),
    }
}

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> std::path::PathBuf {
    let here = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    here.canonicalize().unwrap_or_else(|_| here.to_path_buf())
}
