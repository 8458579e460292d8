//! Runs the real `outpost-hub` binary (SPEC §7): a receiver with its HTTP API on a free
//! loopback port, in its own temp dir with `hub.toml` and the captured log; killed on drop.
//! [`HubApi`] reads the API with a plain HTTP client.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tempfile::TempDir;

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
        if let Some(mut c) = self.child.take() {
            let _ = process::kill9(&mut c);
        }
    }
}

/// A client of the hub's HTTP API.
#[derive(Clone)]
pub struct HubApi {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl HubApi {
    /// For `http://host:port`.
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        HubApi {
            base: base.into(),
            agent,
            token: None,
        }
    }

    /// The same API with a bearer token.
    pub fn with_token(&self, token: &str) -> Self {
        HubApi {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// `GET path` → (status, JSON body or Null).
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.call()?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string()?;
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// `GET path` → the body as text (200 only).
    pub fn text(&self, path: &str) -> anyhow::Result<String> {
        let mut resp = self.agent.get(format!("{}{path}", self.base)).call()?;
        anyhow::ensure!(
            resp.status().as_u16() == 200,
            "GET {path}: {}",
            resp.status()
        );
        Ok(resp.body_mut().read_to_string()?)
    }

    /// `POST path` with a JSON body → (status, JSON body or Null).
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let mut req = self.agent.post(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.send_json(body)?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// `GET path` expecting 200 JSON.
    pub fn json(&self, path: &str) -> anyhow::Result<Value> {
        let (s, v) = self.get(path)?;
        anyhow::ensure!(s == 200, "GET {path}: {s} {v}");
        Ok(v)
    }

    /// Every stored event of (gw, class), paging through `/events` (`limit` per page).
    pub fn all_events(&self, gw: &str, class: &str, limit: usize) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after = "0-0".to_string();
        loop {
            let v = self.json(&format!(
                "/api/v1/events?gw={gw}&class={class}&after={after}&limit={limit}"
            ))?;
            let page = v["events"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                return Ok(out);
            }
            after = v["next"].as_str().unwrap_or("0-0").to_string();
            out.extend(page);
        }
    }

    /// Opens `/api/v1/stream`; calls `f` with each `data:` line until it returns false or
    /// `timeout` passes without a line.
    pub fn stream(&self, timeout: Duration, mut f: impl FnMut(&str) -> bool) -> anyhow::Result<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_recv_body(Some(timeout))
            .build()
            .into();
        let mut req = agent.get(format!("{}/api/v1/stream", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.call()?;
        let reader = BufReader::new(resp.body_mut().as_reader());
        for line in reader.lines() {
            let line = line?;
            if let Some(data) = line.strip_prefix("data:") {
                if !f(data.trim_start()) {
                    break;
                }
            }
        }
        Ok(())
    }
}
