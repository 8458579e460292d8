//! Builds and runs the real `outpost` binary (SPEC §2 `outpost run`).
//!
//! The binary is built once per test process (`cargo build -p outpost --bin outpost`, debug),
//! or taken from `OUTPOST_BIN` if set. Each [`Outpost`] runs in its own temp dir holding the
//! config and the captured log; it is killed on drop.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;

use crate::{config::GatewayConfig, process, workspace_root};

/// How long [`Outpost::terminate`] waits after SIGTERM: the spec's 5 s ack wait plus slack.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the `outpost` binary, building it on first use in this process.
pub fn outpost_bin() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| build("outpost", "outpost", "OUTPOST_BIN").map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Path of the `outpost-hub` binary, building it on first use in this process (or
/// `OUTPOST_HUB_BIN`).
pub fn hub_bin() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        build("outpost-hub", "outpost-hub", "OUTPOST_HUB_BIN").map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// `cargo build -p <package> --bin <bin>` (debug) unless `env` names a prebuilt binary.
fn build(package: &str, bin: &str, env: &str) -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os(env) {
        return Ok(PathBuf::from(bin));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let mut cmd = Command::new(cargo);
    // `cargo test` sets package variables (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, …) for the test
    // binary; ring's build script reruns when they change, so passing them on would rebuild
    // ring and everything above it on every other build.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        const PER_PACKAGE: [&str; 7] = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ];
        if PER_PACKAGE.iter().any(|p| k.starts_with(p)) {
            cmd.env_remove(k.as_ref());
        }
    }
    let out = cmd
        .args(["build", "-p", package, "--bin", bin])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .stdin(Stdio::null())
        .output()
        .context("run cargo build")?;
    if !out.status.success() {
        bail!(
            "cargo build -p {package} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Cargo names the executable it produced; trust that over guessing the target dir.
    let from_messages = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|m| m.get("executable")?.as_str().map(PathBuf::from))
        .next_back();
    let fallback = || {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("debug").join(bin)
    };
    Ok(from_messages.unwrap_or_else(fallback))
}

/// A `Command` for the `outpost` binary with the test environment (`RUST_LOG=info`, no color).
pub fn outpost_command() -> anyhow::Result<Command> {
    let mut cmd = Command::new(outpost_bin()?);
    cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
    Ok(cmd)
}

/// A running `outpost run -c <dir>/gateway.toml`; killed on drop.
pub struct Outpost {
    dir: TempDir,
    child: Option<Child>,
}

impl Outpost {
    /// Writes `config_toml` to a temp dir and starts the daemon on it.
    pub fn start(config_toml: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("outpost-run-")
            .tempdir()
            .context("create outpost temp dir")?;
        let mut me = Self { dir, child: None };
        me.write_config(config_toml)?;
        me.spawn()?;
        Ok(me)
    }

    /// [`Outpost::start`] with a rendered [`GatewayConfig`].
    pub fn start_with(config: &GatewayConfig) -> anyhow::Result<Self> {
        Self::start(&config.to_toml())
    }

    /// The config file (`<dir>/gateway.toml`), e.g. for `outpost status -c`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    /// The run directory (config and `outpost.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the config; takes effect at the next [`Outpost::restart`].
    pub fn write_config(&self, config_toml: &str) -> anyhow::Result<()> {
        std::fs::write(self.config_path(), config_toml).context("write gateway.toml")
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the daemon is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The exit status if it exited by itself (reaps it).
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => Ok(c.try_wait()?),
            None => Ok(None),
        }
    }

    /// `SIGKILL` and reap: a crash or power cut of the gateway process.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            process::kill9(&mut child)?;
        }
        Ok(())
    }

    /// `SIGTERM`, wait up to [`TERMINATE_TIMEOUT`]; returns the exit status (error and
    /// `SIGKILL` if it did not exit in time).
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        self.terminate_within(TERMINATE_TIMEOUT)
    }

    /// As [`Outpost::terminate`] with another timeout.
    pub fn terminate_within(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("outpost is not running")?;
        // Exited by itself already: its pid may be reused, so signal nothing.
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        process::terminate(&mut child, timeout)
    }

    /// Waits up to `timeout` for the daemon to exit by itself (e.g. after [`Outpost::signal`]);
    /// returns its status, or `None` if it is still running (it is left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = process::wait_timeout(child, timeout)?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// Sends a signal (`libc::SIGINT`, …) without waiting.
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("outpost is not running")?;
        process::signal(child, signal)
    }

    /// Starts the daemon again with the current config; terminates it first if running.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.terminate()?;
        }
        self.spawn()
    }

    /// Everything the daemon wrote to stdout and stderr, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.log().contains(needle))
    }

    /// Runs `outpost <args> -c <config>` to completion (e.g. `&["status", "--json"]`).
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<Output> {
        let out = outpost_command()?
            .args(args)
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .output()
            .context("run outpost cli")?;
        Ok(out)
    }

    /// `outpost send --to <to> <text>` (SPEC §8, queued locally): the message's msg_id.
    pub fn send_message(&self, to: &str, text: &str) -> anyhow::Result<String> {
        let out = self.cli(&["send", "--to", to, text])?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            anyhow::bail!(
                "outpost send failed: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("msg_id "))
            .map(str::to_string)
            .with_context(|| format!("no msg_id in {stdout:?}"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("outpost.log")
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("open outpost.log")?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        writeln!(log, "===== harness: outpost run started {now} =====")?;
        let child = outpost_command()?
            .arg("run")
            .arg("-c")
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn outpost run")?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for Outpost {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = process::kill9(&mut child);
        }
    }
}
