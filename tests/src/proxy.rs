//! A TCP proxy that plays the bad link between gateway and hub.
//!
//! Modes switch at runtime, for every connection at once:
//! - [`TcpProxy::pass`]: forward both ways.
//! - [`TcpProxy::pause`]: black hole. Connections stay open but nothing moves in either direction
//!   and no FIN/RST is forwarded — a half-open link, as when a cellular bearer silently dies.
//!   Data already read is held and released on `pass()`, like TCP retransmission would.
//! - [`TcpProxy::cut`]: close every current connection and refuse new ones (accept, then drop at
//!   once) until `pass()`.
//! - [`TcpProxy::pause_upstream`]: black hole in the client → target direction only (target →
//!   client still flows), e.g. a subscriber whose PUBACKs never reach its broker. Cleared by
//!   `pass()`; `cut()` drops what was held.
//! - [`TcpProxy::set_delay`]: every chunk is released that long after it was read, in each
//!   direction. Chunks are timestamped and queued, not serialized, so throughput is kept — a
//!   satellite link, not a slow one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::rt::RuntimeThread;

/// What the proxy does with traffic right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Hold everything, keep connections open (black hole).
    Pause,
    /// Close all connections and refuse new ones.
    Cut,
}

#[derive(Clone, Copy, Debug)]
struct LinkState {
    mode: Mode,
    delay: Duration,
    /// Hold the client → target direction (see [`TcpProxy::pause_upstream`]).
    hold_up: bool,
    /// How many times `cut()` was called: a connection dies when this moves past its birth
    /// value, even if `pass()` followed so quickly that the `Cut` mode itself was never seen.
    cuts: u64,
}

impl LinkState {
    /// Whether traffic in one direction (`up`: client → target) may move now.
    fn flows(&self, up: bool) -> bool {
        self.mode != Mode::Pause && !(up && self.hold_up)
    }
}

/// Counters shared with the proxy tasks.
#[derive(Default)]
struct Stats {
    accepted: AtomicUsize,
    active: AtomicUsize,
}

/// The proxy: listens on a free loopback port, forwards to `target`; stops on drop.
pub struct TcpProxy {
    addr: SocketAddr,
    /// Where new connections go (`retarget` moves it, e.g. to a rebuilt server).
    target: Arc<std::sync::Mutex<SocketAddr>>,
    state: watch::Sender<LinkState>,
    stats: Arc<Stats>,
    // Last field: dropped last, after the handles above, which stops every task.
    _rt: RuntimeThread,
}

impl TcpProxy {
    /// Starts a proxy in [`Mode::Pass`] with no delay.
    pub fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let rt = RuntimeThread::start("tcp-proxy")?;
        let listener = rt
            .call(Duration::from_secs(5), TcpListener::bind("127.0.0.1:0"))?
            .context("bind proxy listener")?;
        let addr = listener.local_addr()?;
        let (state, state_rx) = watch::channel(LinkState {
            mode: Mode::Pass,
            delay: Duration::ZERO,
            hold_up: false,
            cuts: 0,
        });
        let stats = Arc::new(Stats::default());
        let target = Arc::new(std::sync::Mutex::new(target));
        rt.handle().spawn(accept_loop(
            listener,
            target.clone(),
            state_rx,
            stats.clone(),
        ));
        Ok(Self {
            addr,
            target,
            state,
            stats,
            _rt: rt,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where traffic goes.
    pub fn target(&self) -> SocketAddr {
        *self.target.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends new connections to `target` from now on (existing ones keep theirs): a client's
    /// configured address stays valid while the server behind it is rebuilt elsewhere.
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }

    /// `mqtt://127.0.0.1:<port>`: the proxy as an MQTT broker URL.
    pub fn mqtt_url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Forward both ways (releases whatever `pause` or `pause_upstream` held).
    pub fn pass(&self) {
        self.state.send_modify(|s| {
            s.mode = Mode::Pass;
            s.hold_up = false;
        });
    }

    /// Black-hole only the client → target direction, keeping connections open; target →
    /// client still flows. Held data is released on [`TcpProxy::pass`], dropped on
    /// [`TcpProxy::cut`].
    pub fn pause_upstream(&self) {
        self.state.send_modify(|s| s.hold_up = true);
    }

    /// Black-hole the link, keeping connections open.
    pub fn pause(&self) {
        self.state.send_modify(|s| s.mode = Mode::Pause);
    }

    /// Close all connections and refuse new ones until [`TcpProxy::pass`].
    pub fn cut(&self) {
        self.state.send_modify(|s| {
            s.mode = Mode::Cut;
            s.cuts += 1;
        });
    }

    /// Delay each chunk read from now on by `delay`, in each direction (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        self.state.send_modify(|s| s.delay = delay);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.state.borrow().mode
    }

    /// Connections accepted and forwarded so far (refused ones not counted).
    pub fn connections_accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn connections_active(&self) -> usize {
        self.stats.active.load(Ordering::SeqCst)
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: Arc<std::sync::Mutex<SocketAddr>>,
    state: watch::Receiver<LinkState>,
    stats: Arc<Stats>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let born = {
            let s = state.borrow();
            if s.mode == Mode::Cut {
                drop(client);
                continue;
            }
            s.cuts
        };
        let _ = client.set_nodelay(true);
        stats.accepted.fetch_add(1, Ordering::SeqCst);
        stats.active.fetch_add(1, Ordering::SeqCst);
        let (state, stats) = (state.clone(), stats.clone());
        let target = *target.lock().unwrap_or_else(|e| e.into_inner());
        tokio::spawn(async move {
            let mut cut_watch = state.clone();
            tokio::select! {
                _ = wait_for_state(&mut cut_watch, |s| s.cuts != born) => {}
                _ = connection(client, target, state) => {}
            }
            stats.active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Forwards one connection until both directions ended or an error; the caller drops it on cut.
async fn connection(client: TcpStream, target: SocketAddr, mut state: watch::Receiver<LinkState>) {
    if state.borrow().mode == Mode::Pause {
        // Born in a black hole: in reality the SYN never arrived. The client's kernel completed
        // the handshake with our listener, though, so if the client gave up meanwhile, forward
        // nothing (a stale MQTT CONNECT would take over a live session).
        wait_for_mode(&mut state, |m| m != Mode::Pause).await;
        if client_gave_up(&client) {
            return;
        }
    }
    let Ok(upstream) = TcpStream::connect(target).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::join!(
        direction(cr, uw, state.clone(), true),
        direction(ur, cw, state.clone(), false)
    );
}

/// True if the client already closed its side (or errored); consumes nothing.
fn client_gave_up(client: &TcpStream) -> bool {
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(client),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd on a socket we own, zero timeout. POLLRDHUP also reports a FIN
    // queued behind unread data, which a peek cannot see.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    rc > 0 && (pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR)) != 0
}

/// One chunk of the stream, or its end, stamped with when it may go out.
enum Chunk {
    Data(Vec<u8>),
    Eof,
}

/// Pumps `from` → `to` (`up`: client → target): a reader that stamps chunks, a writer that
/// releases them on time.
async fn direction(
    from: OwnedReadHalf,
    to: OwnedWriteHalf,
    state: watch::Receiver<LinkState>,
    up: bool,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::join!(
        read_side(from, tx, state.clone(), up),
        write_side(rx, to, state, up)
    );
}

async fn read_side(
    mut from: OwnedReadHalf,
    tx: mpsc::UnboundedSender<(Instant, Chunk)>,
    mut state: watch::Receiver<LinkState>,
    up: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // A black hole reads nothing: the sender's kernel buffers fill as on a dead link.
        wait_for_state(&mut state, |s| s.flows(up)).await;
        let read = tokio::select! {
            r = from.read(&mut buf) => r,
            _ = state.changed() => continue,
        };
        let due = Instant::now() + state.borrow().delay;
        match read {
            Ok(0) | Err(_) => {
                let _ = tx.send((due, Chunk::Eof));
                return;
            }
            Ok(n) => {
                if tx.send((due, Chunk::Data(buf[..n].to_vec()))).is_err() {
                    return;
                }
            }
        }
    }
}

async fn write_side(
    mut rx: mpsc::UnboundedReceiver<(Instant, Chunk)>,
    mut to: OwnedWriteHalf,
    mut state: watch::Receiver<LinkState>,
    up: bool,
) {
    while let Some((due, chunk)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        wait_for_state(&mut state, |s| s.flows(up)).await;
        match chunk {
            Chunk::Data(bytes) => {
                if to.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Chunk::Eof => {
                let _ = to.shutdown().await;
                return;
            }
        }
    }
}

/// Waits until the mode satisfies `pred` (returns at once if it already does).
async fn wait_for_mode(state: &mut watch::Receiver<LinkState>, pred: impl Fn(Mode) -> bool) {
    wait_for_state(state, |s| pred(s.mode)).await;
}

/// Waits until the link state satisfies `pred` (returns at once if it already does).
async fn wait_for_state(state: &mut watch::Receiver<LinkState>, pred: impl Fn(&LinkState) -> bool) {
    loop {
        if pred(&state.borrow_and_update()) {
            return;
        }
        if state.changed().await.is_err() {
            // The proxy is gone; park until the runtime drops this task.
            std::future::pending::<()>().await;
        }
    }
}
