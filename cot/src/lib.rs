//! # outpost-cot
//!
//! Cursor on Target (CoT XML, TAK protocol v0) for Outpost (SPEC §10), shared by the gateway
//! (`outpost`) and the hub (`outpost-hub`), so the two never drift apart.
//!
//! # Layout
//! Sans-I/O first, transport last:
//! - [`xml`]: the CoT event shapes we write and read, with a maintained XML writer/reader
//!   (`quick-xml`): every text field is escaped by the writer, never pasted into markup.
//! - [`encode`]: Outpost events → CoT (PLI, emergency, GeoChat, offline-stale).
//! - [`decode`]: one CoT event → [`decode::Inbound`] (TAK users' PLIs, 911 alerts and their
//!   cancel, GeoChat, delivery receipts).
//! - [`events`]: what TAK users send → Outpost events (`tak:<uid>` devices).
//! - [`split`]: a TCP byte stream → whole `<event>…</event>` documents, bounded.
//! - [`queue`]: the bounded send queue: newest position per device replaces an unsent one,
//!   alerts never dropped.
//! - [`link`]: the TAK server client task (tokio): `tcp://` / `ssl://`, reconnect with backoff,
//!   the current picture first on every (re)connect, then live updates.
//! - [`stats`]: each output's link and queue figures, a `prometheus-client` collector.
//! - [`tls`]: rustls (ring provider) from CA, client certificate and key files.

pub mod decode;
pub mod encode;
pub mod events;
pub mod link;
mod link_config;
pub mod queue;
pub mod split;
pub mod stats;
pub mod tls;
pub mod xml;

/// CoT type of a PLI when the device's profile sets no `tak_type` (friendly ground unit, combat).
pub const DEFAULT_TYPE: &str = "a-f-G-U-C";
/// CoT's "unknown" for `hae`, `ce` and `le`.
pub const UNKNOWN: f64 = 9_999_999.0;
/// The GeoChat room every TAK user is in.
pub const ALL_CHAT_ROOMS: &str = "All Chat Rooms";

/// The CoT uid of Outpost device `dev` behind gateway `gw`: `outpost.<gw>.<dev>`.
pub fn device_uid(gw: &str, dev: &str) -> String {
    format!("outpost.{gw}.{dev}")
}

/// The CoT uid the gateway (or hub) itself goes by on the TAK server: `outpost.<gw>`.
pub fn self_uid(gw: &str) -> String {
    format!("outpost.{gw}")
}

/// True when `uid` is ours (`outpost.<gw>` or `outpost.<gw>.…`): an echo from the server that
/// must not be taken in again as a TAK user's report.
pub fn is_own_uid(gw: &str, uid: &str) -> bool {
    uid.strip_prefix("outpost.")
        .and_then(|r| r.strip_prefix(gw))
        .is_some_and(|r| r.is_empty() || r.starts_with('.'))
}

/// Which uids a link treats as its own echoes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Own {
    /// A gateway: `outpost.<gw>` and its devices `outpost.<gw>.…` (another gateway's units,
    /// seen through a shared server, are taken in like any TAK user's).
    Gateway(String),
    /// A hub: it sends every gateway's units, so every `outpost.…` uid is its own.
    AnyOutpost,
}

impl Own {
    /// True when `uid` is one of ours.
    pub fn is_own(&self, uid: &str) -> bool {
        match self {
            Own::Gateway(gw) => is_own_uid(gw, uid),
            Own::AnyOutpost => uid.starts_with("outpost."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_uids() {
        let gw = Own::Gateway("veh-1".into());
        assert!(gw.is_own("outpost.veh-1"));
        assert!(gw.is_own("outpost.veh-1.r7"));
        assert!(!gw.is_own("outpost.veh-10.r7"), "another gateway's unit");
        assert!(!gw.is_own("ANDROID-1"));
        assert!(Own::AnyOutpost.is_own("outpost.veh-10.r7"));
        assert!(!Own::AnyOutpost.is_own("outposts.x"));
    }
}
