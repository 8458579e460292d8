//! Runs the real `outpost-hub` binary (SPEC §7): a receiver with its HTTP API on a free
//! loopback port, in its own temp dir with `hub.toml` and the captured log; killed on drop.
//! [`crate::hub_api::HubApi`] reads its API.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use tempfile::TempDir;

use crate::hub_api::HubApi;
use crate::outpost::hub_bin;
use crate::{free_port, process, wait_until};

/// What goes into `hub.toml`.
#[derive(Clone, Debug)]
pub struct HubConfig {
    pub id: String,
    pub region: String,
    pub broker_url: String,
    pub client_id: String,
    pub share_group: String,
    pub topic_prefix: String,
    pub redis_urls: Vec<String>,
    pub cluster: bool,
    pub prefix: String,
    /// Broker credentials, when the broker wants them.
    pub username: Option<String>,
    pub password: Option<String>,
    /// `<name> <role> <token>` lines; `None` = no token file.
    pub tokens: Option<String>,
    pub receive_maximum: u16,
    /// More `hub.toml` after everything else (e.g. `[[tak]]` tables).
    pub extra: String,
}

impl HubConfig {
    /// A receiver `id` of region "test" on `broker_url`, storing in `redis_urls`.
    pub fn new(id: &str, broker_url: &str, redis_urls: Vec<String>) -> Self {
        HubConfig {
            id: id.into(),
            region: "test".into(),
            broker_url: broker_url.into(),
            client_id: format!("outpost-hub-{id}"),
            share_group: "outpost-hub".into(),
            topic_prefix: "outpost/v1".into(),
            cluster: redis_urls.len() > 1,
            redis_urls,
            prefix: "hub".into(),
            username: None,
            password: None,
            tokens: None,
            receive_maximum: 64,
            extra: String::new(),
        }
    }

    fn to_toml(&self, api_port: u16) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("string");
        let urls: Vec<String> = self.redis_urls.iter().map(|u| q(u)).collect();
        let mut t = format!(
            "[hub]\nid = {}\nregion = {}\n\n[broker]\nurl = {}\nclient_id = {}\nshare_group = {}\ntopic_prefix = {}\nkeep_alive = \"5s\"\nreceive_maximum = {}\n",
            q(&self.id),
            q(&self.region),
            q(&self.broker_url),
            q(&self.client_id),
            q(&self.share_group),
            q(&self.topic_prefix),
            self.receive_maximum,
        );
        if let Some(u) = &self.username {
            t += &format!("username = {}\npassword_file = \"broker-password\"\n", q(u));
        }
        t += &format!(
            "\n[redis]\nurls = [{}]\ncluster = {}\nprefix = {}\nretention = \"30d\"\n\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n",
            urls.join(", "),
            self.cluster,
            q(&self.prefix)
        );
        if self.tokens.is_some() {
            t += "token_file = \"tokens\"\n";
        }
        if !self.extra.is_empty() {
            t += "\n";
            t += &self.extra;
        }
        t
    }
}

/// A running `outpost-hub run`.
pub struct HubProc {
    dir: TempDir,
    api_port: u16,
    child: Option<Child>,
}

impl HubProc {
    /// Writes the config and starts the receiver; returns once `/healthz` answers 200.
    pub fn start(cfg: &HubConfig) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("outpost-hub-").tempdir()?;
        let api_port = free_port();
        std::fs::write(dir.path().join("hub.toml"), cfg.to_toml(api_port))?;
        if let Some(t) = &cfg.tokens {
            std::fs::write(dir.path().join("tokens"), t)?;
        }
        if let Some(p) = &cfg.password {
            std::fs::write(dir.path().join("broker-password"), p)?;
        }
        let mut me = HubProc {
            dir,
            api_port,
            child: None,
        };
        me.spawn()?;
        me.wait_healthy(Duration::from_secs(30))?;
        Ok(me)
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hub.toml")
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The API.
    pub fn api(&self) -> HubApi {
        HubApi::new(&format!("http://127.0.0.1:{}", self.api_port))
    }

    /// Waits until `/healthz` answers 200.
    pub fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        let api = self.api();
        if wait_until(timeout, || api.get("/healthz").is_ok_and(|(s, _)| s == 200)) {
            return Ok(());
        }
        anyhow::bail!(
            "outpost-hub not healthy within {timeout:?}; log:\n{}",
            self.log()
        )
    }

    /// `SIGKILL`: a receiver crash.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            process::kill9(&mut c)?;
        }
        Ok(())
    }

    /// `SIGTERM` and wait.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let mut c = self.child.take().context("outpost-hub is not running")?;
        process::terminate(&mut c, Duration::from_secs(10))
    }

    /// Starts again with the same config and API port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.terminate()?;
        }
        self.spawn()?;
        self.wait_healthy(Duration::from_secs(30))
    }

    /// Starts again without waiting for health (e.g. while Redis is down).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("hub.log"))?;
        writeln!(log, "===== harness: outpost-hub run started =====")?;
        let child = Command::new(hub_bin()?)
            .arg("run")
            .arg("-c")
            .arg(self.config_path())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn outpost-hub run")?;
        self.child = Some(child);
        Ok(())
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Everything it logged, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hub.log")).unwrap_or_default()
    }
}

impl Drop for HubProc {
    fn drop(&mut self) {
        let exited = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if let Some(mut c) = self.child.take() {
            let _ = process::kill9(&mut c);
        }
        // The log goes with the temp dir: a failing test keeps the end of it, and whether the
        // hub had exited by itself.
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let state = exited.map_or_else(
                || "running until the test ended".to_string(),
                |s| format!("had exited by itself: {s}"),
            );
            eprintln!(
                "===== outpost-hub {state}; its last {} log lines =====",
                tail.len()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// `outpost-hub sync --from <from> --to <to>` (store URLs as the command takes them, e.g.
/// `redis://…#hub`); its stdout (the counts). Panics when it fails, with its stderr.
pub fn hub_sync(from: &str, to: &str) -> String {
    let out = Command::new(hub_bin().expect("outpost-hub binary"))
        .args(["sync", "--from", from, "--to", to])
        .output()
        .expect("run outpost-hub sync");
    assert!(
        out.status.success(),
        "outpost-hub sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}
