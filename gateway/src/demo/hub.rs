//! The demo's hub: the real `outpost-hub` (SPEC §7) with its own Redis, read through its
//! HTTP API. The binary is found as `OUTPOST_HUB_BIN`, beside this executable, or on PATH;
//! under `cargo run` it is built once with the same profile.

use super::procs::{self, Proc};
use anyhow::{bail, Context};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A running receiver and its API.
pub struct Hub {
    _redis: Proc,
    _hub: Proc,
    base: String,
    agent: ureq::Agent,
}

/// Where the `outpost-hub` binary is (building it under `cargo run` when needed).
fn hub_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("OUTPOST_HUB_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let sibling = exe.with_file_name("outpost-hub");
    if sibling.is_file() {
        return Ok(sibling);
    }
    if let Some(p) = procs::find_on_path("outpost-hub") {
        return Ok(p);
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        bail!(
            "outpost-hub not found beside {} nor on PATH (cargo build --release -p outpost-hub)",
            exe.display()
        );
    };
    let release = exe.components().any(|c| c.as_os_str() == "release");
    println!("Building outpost-hub for the demo (once) …");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "outpost-hub", "--bin", "outpost-hub"]);
    if release {
        cmd.arg("--release");
    }
    let st = cmd.status().context("run cargo build -p outpost-hub")?;
    if !st.success() || !sibling.is_file() {
        bail!("could not build outpost-hub ({st})");
    }
    Ok(sibling)
}

impl Hub {
    /// Starts a hub Redis and one receiver on the hub broker at `broker_port`.
    pub fn start(dir: &Path, broker_port: u16) -> anyhow::Result<Hub> {
        let bin = hub_binary()?;
        let rdir = dir.join("hub-redis");
        std::fs::create_dir_all(&rdir)?;
        let (redis, redis_port) = procs::redis(&rdir)?;
        let api_port = procs::free_port()?;
        let conf = dir.join("hub.toml");
        std::fs::write(
            &conf,
            format!(
                "[hub]\nid = \"demo-1\"\nregion = \"demo\"\n\n[broker]\nurl = \"mqtt://127.0.0.1:{broker_port}\"\nkeep_alive = \"5s\"\n\n\
                 [redis]\nurls = [\"redis://127.0.0.1:{redis_port}/0\"]\n\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n"
            ),
        )?;
        let hub = Proc::spawn(
            "outpost-hub",
            Command::new(bin)
                .arg("run")
                .arg("-c")
                .arg(&conf)
                .env("RUST_LOG", "info"),
            &dir.join("hub.log"),
        )?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let me = Hub {
            _redis: redis,
            _hub: hub,
            base: format!("http://127.0.0.1:{api_port}"),
            agent,
        };
        for _ in 0..300 {
            if me.get_text("/healthz").is_ok_and(|(s, _)| s == 200) {
                return Ok(me);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "outpost-hub did not become healthy; see {}",
            dir.join("hub.log").display()
        )
    }

    fn get_text(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let mut r = self.agent.get(format!("{}{path}", self.base)).call()?;
        Ok((r.status().as_u16(), r.body_mut().read_to_string()?))
    }

    /// `GET path` as JSON (Null on any error: the demo only shows it).
    pub fn get(&self, path: &str) -> Value {
        self.get_text(path)
            .ok()
            .and_then(|(_, t)| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    /// Events of (`gw`, `class`) stored at the hub, in id order (every page of
    /// `/api/v1/events`; empty when the hub does not answer: the demo only shows them).
    pub fn events(&self, gw: &str, class: &str) -> Vec<Value> {
        let get = |path: &str| -> anyhow::Result<Value> {
            let (status, text) = self.get_text(path)?;
            anyhow::ensure!(status == 200, "GET {path}: {status} {text}");
            Ok(serde_json::from_str(&text)?)
        };
        let page = outpost_proto::api::EVENTS_PAGE_MAX;
        outpost_proto::api::all_events(gw, class, page, get).unwrap_or_default()
    }

    /// How many events of (`gw`, `class`) the hub stored.
    pub fn count(&self, gw: &str, class: &str) -> u64 {
        self.events(gw, class).len() as u64
    }

    /// A counter summed over its labels from `/metrics` (e.g. `outpost_hub_duplicates_total`).
    pub fn metric(&self, name: &str) -> u64 {
        let text = self
            .get_text("/metrics")
            .map(|(_, t)| t)
            .unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Sends `text` to device `to` as a dispatcher does, through the hub's API (SPEC §8);
    /// the message id, or None when the hub refused it (the demo only shows it).
    pub fn send(&self, to: &str, text: &str) -> Option<String> {
        let body = serde_json::json!({"to": to, "text": text, "ttl": "10m"}).to_string();
        let mut r = self
            .agent
            .post(format!("{}/api/v1/messages", self.base))
            .header("content-type", "application/json")
            .send(body.as_str())
            .ok()?;
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?;
        v["msg_id"].as_str().map(str::to_string)
    }

    /// Receipt states per message (`msg_id to dev` → states in id order) from the stored
    /// `receipt` events of `gw`.
    pub fn receipts(&self, gw: &str) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for e in &self.events(gw, "receipt") {
            let key = format!(
                "{} to {}",
                e["msg_id"].as_str().unwrap_or("?"),
                e["dev"].as_str().unwrap_or("?")
            );
            let mut state = e["state"].as_str().unwrap_or("?").to_string();
            if let Some(r) = e["reason"].as_str() {
                state = format!("{state} ({r})");
            }
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some((_, states)) => states.push(state),
                None => out.push((key, vec![state])),
            }
        }
        out
    }
}
