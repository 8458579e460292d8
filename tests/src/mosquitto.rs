//! A private `mosquitto` broker for one test: the device-side broker or the hub broker.
//!
//! Persistence is on and the queues are effectively unbounded, so a persistent session
//! (clean_session = false) keeps every QoS 1 message across [`Mosquitto::stop`] /
//! [`Mosquitto::start`] — the broker half of "messages wait in the broker while Outpost is down"
//! (SPEC §3 `[devices_mqtt]`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tempfile::TempDir;

use crate::{free_port, process};

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A second, TLS listener (the hub side of `mqtts://`); the plain listener stays for test
/// clients such as [`crate::Hub`].
#[derive(Clone, Debug)]
pub struct TlsListener {
    /// CA that signed the client certificates (mosquitto's `cafile`).
    pub cafile: PathBuf,
    /// Server certificate chain (PEM).
    pub certfile: PathBuf,
    /// Server private key (PEM).
    pub keyfile: PathBuf,
    /// Require and verify a client certificate (mutual TLS); its CN becomes the username.
    pub require_certificate: bool,
    /// Refuse clients without a valid username/password (`password_file` in mosquitto's format).
    pub password_file: Option<PathBuf>,
}

/// A `mosquitto` child on a free loopback port, in its own temp dir; killed on drop.
pub struct Mosquitto {
    dir: TempDir,
    port: u16,
    /// Auth lines for the plain listener instead of `allow_anonymous true`.
    auth: Option<String>,
    tls: Option<(TlsListener, u16)>,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts a fresh broker in a new temp dir; retries on a new port if the chosen one was
    /// taken meanwhile.
    pub fn new() -> anyhow::Result<Self> {
        Self::build(None, None)
    }

    /// A broker whose plain listener uses `auth` (e.g. `allow_anonymous false`,
    /// `password_file …`, `acl_file …`) instead of anonymous access.
    pub fn with_auth(auth: &str) -> anyhow::Result<Self> {
        Self::build(None, Some(auth.to_string()))
    }

    /// As [`Mosquitto::new`], plus a TLS listener on a second free port ([`Mosquitto::tls_url`]).
    pub fn with_tls(tls: TlsListener) -> anyhow::Result<Self> {
        Self::build(Some(tls), None)
    }

    fn build(tls: Option<TlsListener>, auth: Option<String>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("outpost-mosquitto-")
            .tempdir()
            .context("create mosquitto temp dir")?;
        let mut broker = Self {
            dir,
            port: 0,
            auth,
            tls: None,
            child: None,
        };
        let mut last_err = None;
        for _ in 0..5 {
            broker.port = free_port();
            broker.tls = tls.clone().map(|t| (t, free_port()));
            match broker.start() {
                Ok(()) => return Ok(broker),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one attempt")).context("start mosquitto")
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// `mqtts://localhost:<tls port>` (the name the test certificates carry), if TLS is on.
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|(_, port)| format!("mqtts://localhost:{port}"))
    }

    /// `127.0.0.1:<port>`, e.g. as a [`crate::TcpProxy`] target.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The broker's directory (config, persistence file, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The broker's process id while it runs (benchmarks read its CPU and memory).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the broker process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Starts the broker (again) on the same port and directory, restoring its persisted
    /// sessions; no-op if it is running.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let conf = write_config(
            self.dir.path(),
            self.port,
            self.tls.as_ref(),
            self.auth.as_deref(),
        )?;
        self.child = Some(spawn(self.dir.path(), &conf, self.port)?);
        Ok(())
    }

    /// Graceful stop (`SIGTERM`, wait): mosquitto writes its persistence file on the way out.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            process::terminate(&mut child, Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// `SIGKILL`: whatever changed since the last autosave (≤ 1 s) is lost.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            process::kill9(&mut child)?;
        }
        Ok(())
    }

    /// How many subscribe requests from `client_id` the broker logged so far (one line per
    /// topic filter; all starts). Compare with an earlier count to see a client subscribe.
    pub fn subscriptions_of(&self, client_id: &str) -> usize {
        // mosquitto logs a subscription as `<time>: <client id> <qos> <filter>`.
        let needle = format!(": {client_id} ");
        self.log()
            .lines()
            .filter(|l| {
                l.split_once(&needle).is_some_and(|(_, rest)| {
                    let mut parts = rest.splitn(2, ' ');
                    parts.next().is_some_and(|q| q.parse::<u8>().is_ok()) && parts.next().is_some()
                })
            })
            .count()
    }

    /// The broker's log (all starts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = process::kill9(&mut child);
        }
    }
}

/// Writes `<dir>/mosquitto.conf` and returns its path.
fn write_config(
    dir: &Path,
    port: u16,
    tls: Option<&(TlsListener, u16)>,
    auth: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let path = dir.join("mosquitto.conf");
    let d = dir.display();
    // Each listener has its own auth settings once a TLS one (maybe with passwords) is added.
    let mut text = String::from(if tls.is_some() {
        "per_listener_settings true\n"
    } else {
        ""
    });
    let auth = auth.unwrap_or("allow_anonymous true");
    text += &format!(
        "# generated by outpost-system-tests\n\
         listener {port} 127.0.0.1\n\
         {auth}\n\
         # stay root when run as root: the temp dir is ours (no effect as non-root)\n\
         user root\n\
         persistence true\n\
         persistence_location {d}/\n\
         autosave_interval 1\n\
         # persistent sessions keep everything while their client is away\n\
         max_queued_messages 10000000\n\
         max_queued_bytes 0\n\
         set_tcp_nodelay true\n\
         log_dest file {d}/mosquitto.log\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_type information\n\
         log_type subscribe\n\
         connection_messages true\n\
         log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
    );
    if let Some((t, tls_port)) = tls {
        text += &format!(
            "\nlistener {tls_port} 127.0.0.1\n\
             cafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate {}\n",
            t.cafile.display(),
            t.certfile.display(),
            t.keyfile.display(),
            t.require_certificate,
        );
        match &t.password_file {
            Some(p) => text += &format!("allow_anonymous false\npassword_file {}\n", p.display()),
            None => text += "allow_anonymous true\n",
        }
    }
    let mut f = File::create(&path).context("write mosquitto.conf")?;
    f.write_all(text.as_bytes())?;
    Ok(path)
}

/// Spawns mosquitto and waits until *this* start logged that it is running.
///
/// Checking our own log (not just that the port accepts) guards against the free-port race:
/// another process on the port would accept connections while our broker exits.
fn spawn(dir: &Path, conf: &Path, port: u16) -> anyhow::Result<Child> {
    let log_path = dir.join("mosquitto.log");
    let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    let out = File::options()
        .create(true)
        .append(true)
        .open(dir.join("mosquitto.stdout"))?;
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("spawn mosquitto (is it installed and on PATH?)")?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("mosquitto on port {port} exited at start: {status}");
        }
        let log = std::fs::read(&log_path).unwrap_or_default();
        let fresh = String::from_utf8_lossy(log.get(log_start as usize..).unwrap_or_default());
        if fresh.contains(" running") && accepts(port) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = process::kill9(&mut child);
            bail!("mosquitto on port {port} not up within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn accepts(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}
