//! The TAK server client: one task owns one connection (STYLE 8).
//!
//! On every (re)connect it announces itself, sends the current picture (every online unit's
//! latest position, from [`Picture`]) and only then the live updates from its [`SendQueue`].
//! With `subscribe`, what the server sends is split, decoded, our own echoes dropped, and the
//! rest handed to the caller's channel. A lost connection is retried with backoff; an alert or
//! chat whose write failed goes back to the front of the queue.

use crate::decode::{decode, Inbound};
use crate::queue::{Kind, Outgoing, SendQueue};
use crate::split::Splitter;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Largest single event accepted from the server (ATAK events are a few KiB).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Alerts and chats written this shortly before a connection broke are sent again after the
/// reconnect: TCP accepts writes into a connection the server already left, and CoT has no
/// acknowledgement. A repeat is harmless (same uid or message id: the client replaces it).
pub const RESEND_WINDOW: Duration = Duration::from_secs(10);
/// A ping (`t-x-c-t`) this often keeps NAT state alive and finds a dead peer by a failed write.
pub const PING_EVERY: Duration = Duration::from_secs(30);

/// Where the current picture comes from (the gateway's Redis, the hub's store).
pub trait Picture: Send + Sync {
    /// Every online unit's latest position as CoT XML, oldest first.
    fn current(&self) -> Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send + '_>>;
}

pub use crate::link_config::LinkConfig;

/// What a link did, for metrics and tests.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub connected: AtomicBool,
    pub connects: AtomicU64,
    /// Connections lost (not counting our own shutdown).
    pub disconnects: AtomicU64,
    pub sent: AtomicU64,
    /// Sent, by what it was ([`SentKind`]; picture PLIs included).
    pub sent_kind: [AtomicU64; SentKind::COUNT],
    /// Events the picture contributed (over all connects).
    pub picture_sent: AtomicU64,
    pub received: AtomicU64,
    /// Events that were not well-formed CoT, oversize or not UTF-8: counted and skipped.
    pub malformed: AtomicU64,
    /// Our own events echoed back by the server: recognised, not taken in.
    pub echoes: AtomicU64,
    /// CoT types we do not take in (markers, pings…).
    pub ignored: AtomicU64,
}

/// What a sent CoT event was, for `sent` by kind on /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentKind {
    /// A unit's position (`a-…`), live, from the picture, or stale-now when it went offline.
    Pli,
    /// An emergency (`b-a-o-…`).
    Alert,
    /// A GeoChat (`b-t-f`).
    Chat,
    /// Anything else.
    Other,
}

impl SentKind {
    pub const COUNT: usize = 4;
    pub const ALL: [SentKind; SentKind::COUNT] = [
        SentKind::Pli,
        SentKind::Alert,
        SentKind::Chat,
        SentKind::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SentKind::Pli => "pli",
            SentKind::Alert => "alert",
            SentKind::Chat => "chat",
            SentKind::Other => "other",
        }
    }

    /// The kind of an event we wrote, by its root `type` attribute (read with the XML reader,
    /// so a uid that contains `type=` cannot mislead it).
    pub fn of(xml: &str) -> SentKind {
        let t = crate::xml::root_attr(xml, "type").unwrap_or_default();
        if t.starts_with("a-") {
            SentKind::Pli
        } else if t.starts_with("b-a-") {
            SentKind::Alert
        } else if t == "b-t-f" {
            SentKind::Chat
        } else {
            SentKind::Other
        }
    }
}

impl LinkStats {
    fn count_sent(&self, xml: &str) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.sent_kind[SentKind::of(xml) as usize].fetch_add(1, Ordering::Relaxed);
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Runs the link until `token` is cancelled.
pub async fn run(
    cfg: LinkConfig,
    queue: Arc<SendQueue>,
    picture: Arc<dyn Picture>,
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<LinkStats>,
    token: CancellationToken,
) {
    let mut delay = cfg.backoff_min;
    let ep = &cfg.endpoint;
    loop {
        let conn = tokio::select! {
            _ = token.cancelled() => return,
            c = connect(&cfg) => c,
        };
        match conn {
            Ok(io) => {
                info!(tak = %cfg.name, host = %ep.host, port = ep.port, tls = ep.tls, "TAK server connected");
                stats.connects.fetch_add(1, Ordering::Relaxed);
                stats.connected.store(true, Ordering::Relaxed);
                delay = cfg.backoff_min;
                let mut recent = std::collections::VecDeque::new();
                let why = session(
                    &cfg,
                    io,
                    &queue,
                    &*picture,
                    &inbound,
                    &stats,
                    &token,
                    &mut recent,
                )
                .await;
                // Newest first to the front, so they go out again in their order.
                for (at, o) in recent.into_iter().rev() {
                    if at.elapsed() < cfg.resend_window {
                        queue.push_front(o);
                    }
                }
                stats.connected.store(false, Ordering::Relaxed);
                match why {
                    None => return,
                    Some(e) => {
                        stats.disconnects.fetch_add(1, Ordering::Relaxed);
                        warn!(tak = %cfg.name, error = %e, retry_in = ?delay, "TAK server connection lost")
                    }
                }
            }
            Err(e) => {
                warn!(tak = %cfg.name, host = %ep.host, port = ep.port, error = %e, retry_in = ?delay, "TAK server not reachable")
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(cfg.backoff_max);
    }
}

async fn connect(cfg: &LinkConfig) -> Result<Box<dyn Io>, String> {
    let ep = &cfg.endpoint;
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((ep.host.as_str(), ep.port)),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &cfg.tls else {
        return Ok(Box::new(tcp));
    };
    let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
        .map_err(|e| format!("bad TLS server name {:?}: {e}", ep.host))?;
    let s = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp),
    )
    .await
    .map_err(|_| "TLS handshake timed out".to_string())?
    .map_err(|e| format!("TLS: {e}"))?;
    Ok(Box::new(s))
}

/// One connection's life; `None` when cancelled, else why it ended. Alerts and chats written
/// within [`RESEND_WINDOW`] stay in `recent`.
#[allow(clippy::too_many_arguments)]
async fn session(
    cfg: &LinkConfig,
    mut io: Box<dyn Io>,
    queue: &SendQueue,
    picture: &dyn Picture,
    inbound: &mpsc::Sender<Inbound>,
    stats: &LinkStats,
    token: &CancellationToken,
    recent: &mut std::collections::VecDeque<(std::time::Instant, Outgoing)>,
) -> Option<String> {
    // Positions queued while down are in the picture we are about to read.
    queue.clear_positions();
    if let Some(a) = &cfg.announce {
        if let Err(e) = io.write_all(a().as_bytes()).await {
            return Some(e.to_string());
        }
    }
    match picture.current().await {
        Ok(events) => {
            let n = events.len();
            for x in events {
                if let Err(e) = io.write_all(x.as_bytes()).await {
                    return Some(e.to_string());
                }
                stats.count_sent(&x);
            }
            stats.picture_sent.fetch_add(n as u64, Ordering::Relaxed);
            debug!(tak = %cfg.name, events = n, "picture sent");
        }
        Err(e) => {
            warn!(tak = %cfg.name, error = %e, "cannot read the current picture; sending live updates only")
        }
    }
    let mut split = Splitter::new(MAX_EVENT_BYTES);
    let mut buf = vec![0u8; 16 * 1024];
    let mut docs = Vec::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        // Biased: a closed connection (read returns 0) is noticed before the next event is
        // written into it, so a queued alert is not lost in a socket the server already left.
        tokio::select! {
            biased;
            _ = token.cancelled() => {
                let _ = io.shutdown().await;
                return None;
            }
            r = io.read(&mut buf) => {
                let n = match r {
                    Ok(0) => return Some("server closed the connection".into()),
                    Ok(n) => n,
                    Err(e) => return Some(e.to_string()),
                };
                split.push(&buf[..n], &mut docs);
                for d in docs.drain(..) {
                    if let Some(item) = take_in(cfg, d, stats) {
                        if inbound.send(item).await.is_err() {
                            return None;
                        }
                    }
                }
            }
            o = queue.pop() => {
                if let Err(e) = io.write_all(o.xml.as_bytes()).await {
                    requeue(queue, o);
                    return Some(e.to_string());
                }
                stats.count_sent(&o.xml);
                let now = std::time::Instant::now();
                while recent.front().is_some_and(|(t, _)| now - *t >= cfg.resend_window) {
                    recent.pop_front();
                }
                if !matches!(o.kind, Kind::Position(_)) {
                    recent.push_back((now, o));
                }
            }
            _ = ping.tick() => {
                if let Err(e) = io.write_all(ping_xml(&cfg.self_uid).as_bytes()).await {
                    return Some(e.to_string());
                }
            }
        }
    }
}

/// An alert or chat whose write failed is sent again after the reconnect; a position need not
/// be (the picture carries it).
fn requeue(queue: &SendQueue, o: Outgoing) {
    if !matches!(o.kind, Kind::Position(_)) {
        queue.push_front(o);
    }
}

/// Decodes one document; `None` when malformed (counted), an echo, ignored or not subscribed.
fn take_in(
    cfg: &LinkConfig,
    doc: Result<String, crate::split::SplitError>,
    stats: &LinkStats,
) -> Option<Inbound> {
    stats.received.fetch_add(1, Ordering::Relaxed);
    let ev = match doc
        .map_err(|e| e.to_string())
        .and_then(|d| decode(&d).map_err(|e| e.to_string()))
    {
        Ok(ev) => ev,
        Err(e) => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            debug!(tak = %cfg.name, error = %e, "malformed CoT event skipped");
            return None;
        }
    };
    if ev.sender().is_some_and(|s| cfg.own.is_own(s)) {
        stats.echoes.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    if matches!(ev, Inbound::Other { .. }) || !cfg.subscribe {
        stats.ignored.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    Some(ev)
}

fn ping_xml(own: &str) -> String {
    let now = chrono::Utc::now();
    let t = outpost_proto::event::format_ts(now);
    let stale = outpost_proto::event::format_ts(now + chrono::Duration::seconds(20));
    crate::xml::Element::new("event")
        .attr("version", "2.0")
        .attr("uid", format!("{own}-ping"))
        .attr("type", "t-x-c-t")
        .attr("how", "h-g-i-g-o")
        .attr("time", t.as_str())
        .attr("start", t)
        .attr("stale", stale)
        .child(
            crate::xml::Element::new("point")
                .attr("lat", "0")
                .attr("lon", "0")
                .attr("hae", "9999999")
                .attr("ce", "9999999")
                .attr("le", "9999999"),
        )
        .to_xml()
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
