//! A private `redis-server` for one test.
//!
//! Started with the durability settings Outpost ships (AOF, `appendfsync always`, no RDB
//! snapshots, `noeviction`), so "an accepted event survives `kill -9` of Redis" (SPEC §6) can be
//! tested literally: [`RedisServer::kill9`] then [`RedisServer::restart`] reloads the AOF from
//! the same directory on the same port.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tempfile::TempDir;

use crate::{free_port, process};

/// How long a start may take before we give up (AOF reload of a big test data set included).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A `redis-server` child on a free loopback port, in its own temp dir; killed on drop.
pub struct RedisServer {
    dir: TempDir,
    port: u16,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a fresh server in a new temp dir; retries on a new port if the chosen one was
    /// taken meanwhile.
    pub fn new() -> anyhow::Result<Self> {
        Self::with_args(&[])
    }

    /// As [`RedisServer::new`] with more `redis-server` arguments (e.g. cluster mode).
    pub fn with_args(extra: &[&str]) -> anyhow::Result<Self> {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let dir = tempfile::Builder::new()
            .prefix("outpost-redis-")
            .tempdir()
            .context("create redis temp dir")?;
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port();
            match spawn(dir.path(), port, &extra) {
                Ok(child) => {
                    return Ok(Self {
                        dir,
                        port,
                        extra,
                        child: Some(child),
                    })
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one attempt")).context("start redis-server")
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`, as the gateway config wants it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The Unix socket path (`<dir>/redis.sock`, mode 700).
    pub fn unix_socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// `redis+unix:///<dir>/redis.sock`, the Unix-socket form of [`RedisServer::url`].
    pub fn unix_url(&self) -> String {
        format!("redis+unix://{}", self.unix_socket().display())
    }

    /// The data directory (holds `appendonlydir/` and `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// A client for assertions (sync connections: `client().get_connection()`).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid redis url")
    }

    /// A fresh sync connection, for assertions in test bodies.
    pub fn conn(&self) -> anyhow::Result<redis::Connection> {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .context("connect to test redis")
    }

    /// `SIGKILL`: no shutdown work at all, like a power cut of Redis alone.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            process::kill9(&mut child)?;
        }
        Ok(())
    }

    /// Graceful stop (`SIGTERM`, wait).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            process::terminate(&mut child, Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// Starts again on the same port and directory, reloading the AOF; stops it first if
    /// it is still running.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.child = Some(spawn(self.dir.path(), self.port, &self.extra)?);
        Ok(())
    }

    /// The server's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = process::kill9(&mut child);
        }
    }
}

/// Spawns `redis-server` and waits until it answers `PING` (or fails to start).
fn spawn(dir: &Path, port: u16, extra: &[String]) -> anyhow::Result<Child> {
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join("redis.log"))
        .context("open redis.log")?;
    let sock = dir.join("redis.sock");
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--dir")
        .arg(dir)
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .args(["--save", ""])
        .args(["--maxmemory-policy", "noeviction"])
        .arg("--unixsocket")
        .arg(&sock)
        .args(["--unixsocketperm", "700"])
        .args(["--daemonize", "no"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("spawn redis-server (is it installed and on PATH?)")?;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("redis-server on port {port} exited at start: {status}");
        }
        if answers_as(&client, child.id()) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = process::kill9(&mut child);
            bail!("redis-server on port {port} did not answer PING within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True once *our* server (process `pid`) answers `PING`; it answers `LOADING` while replaying
/// the AOF. The pid check guards against the port race: if another process took the port, our
/// server exits and we must not mistake the other one for it.
fn answers_as(client: &redis::Client, pid: u32) -> bool {
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    if redis::cmd("PING").query::<String>(&mut conn).is_err() {
        return false;
    }
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut conn)
        .unwrap_or_default();
    info.lines()
        .any(|l| l.trim() == format!("process_id:{pid}"))
}
