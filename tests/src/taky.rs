//! A private `taky` TAK server (PyPI `taky==0.10`, from the virtualenv `.ci/run` creates) for
//! one test binary: plain TCP, or TLS with a client certificate required plus a plain
//! "monitor" port that sees everything (where the test's ATAK user listens). In-memory
//! persistence, so a restart forgets every event: what a client sees afterwards was resent.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tempfile::TempDir;

use crate::{free_port, process};

/// Where `.ci/run` puts the virtualenv (override with `OUTPOST_TAKY_VENV`).
pub fn venv_dir() -> PathBuf {
    if let Some(v) = std::env::var_os("OUTPOST_TAKY_VENV") {
        return PathBuf::from(v);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/outpost/taky-venv")
}

/// The `taky` executable, or a clear error saying how to get it.
pub fn taky_bin() -> anyhow::Result<PathBuf> {
    let bin = venv_dir().join("bin/taky");
    if bin.is_file() {
        return Ok(bin);
    }
    bail!(
        "taky not found at {}: run .ci/run (it creates the virtualenv with `pip install taky==0.10`)",
        bin.display()
    )
}

/// Server TLS material for [`Taky::with_tls`] (PEM files).
#[derive(Clone, Debug)]
pub struct TakyTls {
    /// CA that signed the clients' certificates.
    pub ca: PathBuf,
    /// Server certificate (for `localhost`).
    pub cert: PathBuf,
    /// Server key.
    pub key: PathBuf,
}

/// A `taky` child on free loopback ports, in its own temp dir; killed on drop.
pub struct Taky {
    dir: TempDir,
    port: u16,
    mon_port: Option<u16>,
    tls: Option<TakyTls>,
    child: Option<Child>,
}

impl Taky {
    /// A plain-TCP server.
    pub fn new() -> anyhow::Result<Self> {
        Self::build(None)
    }

    /// A TLS server requiring a client certificate, with a plain monitor port.
    pub fn with_tls(tls: TakyTls) -> anyhow::Result<Self> {
        Self::build(Some(tls))
    }

    fn build(tls: Option<TakyTls>) -> anyhow::Result<Self> {
        taky_bin()?;
        let dir = tempfile::Builder::new().prefix("outpost-taky-").tempdir()?;
        let mut t = Taky {
            dir,
            port: 0,
            mon_port: None,
            tls,
            child: None,
        };
        let mut last = None;
        for _ in 0..5 {
            t.port = free_port();
            t.mon_port = t.tls.as_ref().map(|_| free_port());
            match t.start() {
                Ok(()) => return Ok(t),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("one attempt")).context("start taky")
    }

    /// `tcp://127.0.0.1:<port>` or `ssl://localhost:<port>` (the name the test certificate has).
    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("ssl://localhost:{}", self.port),
            None => format!("tcp://127.0.0.1:{}", self.port),
        }
    }

    /// Where a plain-TCP test client connects: the CoT port, or the monitor port under TLS.
    pub fn plain_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.mon_port.unwrap_or(self.port)))
    }

    /// Starts (again) on the same ports; no-op when running.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None))) {
            return Ok(());
        }
        let conf = self.write_config()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("taky.log"))?;
        let mut cmd = Command::new(taky_bin()?);
        // SAFETY: prctl(2) is async-signal-safe and touches no memory of ours. Killed when the
        // thread that started it ends: a test's own server with its test, the shared one
        // (started on a thread that never ends) with the test binary.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .args(["-l", "debug", "-c"])
            .arg(&conf)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn taky")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(st) = child.try_wait()? {
                bail!("taky exited ({st}) before listening; log:\n{}", self.log());
            }
            if Instant::now() > deadline {
                let _ = process::kill9(&mut child);
                bail!(
                    "taky did not listen on {addr} within 20 s; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        Ok(())
    }

    /// Graceful stop (`SIGTERM`).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            process::terminate(&mut c, Duration::from_secs(10))?;
        }
        // The management socket must go for the next start to bind it.
        let _ = std::fs::remove_file(self.dir.path().join("taky-mgmt.sock"));
        Ok(())
    }

    /// The server's log (all starts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("taky.log")).unwrap_or_default()
    }

    fn write_config(&self) -> anyhow::Result<PathBuf> {
        let d = self.dir.path();
        let mon = match self.mon_port {
            Some(p) => format!("mon_ip = 127.0.0.1\nmon_port = {p}\n"),
            None => String::new(),
        };
        let ssl = match &self.tls {
            Some(t) => format!(
                "enabled = true\nclient_cert_required = true\nca = {}\ncert = {}\nkey = {}\ncert_db = {}\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display(),
                d.join("cert-db.txt").display()
            ),
            None => "enabled = false\n".to_string(),
        };
        let text = format!(
            "[taky]\nhostname = localhost\nnode_id = OUTPOST-TEST\nbind_ip = 127.0.0.1\n\
             redis = false\nroot_dir = {root}\n\n[cot_server]\nport = {port}\n{mon}\n\
             [dp_server]\nupload_path = {root}/dp\n\n[ssl]\n{ssl}",
            root = d.display(),
            port = self.port,
        );
        let path = d.join("taky.conf");
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// The server's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// One plain-TCP server shared by the tests of a binary that only need a server (not its
/// restart): started once, on a thread that lives as long as the test binary, so it is killed
/// when the binary exits. Tests sharing it use their own gateway ids and TAK uids.
pub fn shared() -> anyhow::Result<&'static Taky> {
    static SHARED: std::sync::OnceLock<Result<Taky, String>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(Taky::new().map_err(|e| format!("{e:#}")));
                loop {
                    std::thread::park();
                }
            });
            rx.recv()
                .unwrap_or_else(|_| Err("taky starter thread died".into()))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

impl Drop for Taky {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = process::kill9(&mut c);
        }
    }
}
