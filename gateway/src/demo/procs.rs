//! The demo's private servers: `redis-server` and `mosquitto` from PATH on free loopback
//! ports in a temp dir, killed on drop; and the `outpost` daemon itself as a child process.

use anyhow::{bail, Context as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) on drop unless stopped before.
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> anyhow::Result<Proc> {
        let out = std::fs::File::create(log)?;
        let child = cmd
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc { child })
    }

    /// SIGTERM, then wait up to `grace`; SIGKILL after that. True when it exited by itself
    /// with status 0.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound then released; the server binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// True when `prog` is on PATH.
pub fn on_path(prog: &str) -> bool {
    find_on_path(prog).is_some()
}

/// Where `prog` is on PATH.
pub fn find_on_path(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

fn wait_port(port: u16, what: &str) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not start listening on 127.0.0.1:{port}")
}

/// `redis-server` with the settings the outbox needs (AOF, fsync always, no eviction).
pub fn redis(dir: &Path) -> anyhow::Result<(Proc, u16)> {
    let port = free_port()?;
    let p = Proc::spawn(
        "redis-server",
        Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(dir),
        &dir.join("redis.log"),
    )?;
    wait_port(port, "redis-server")?;
    Ok((p, port))
}

/// `mosquitto` with persistence in `dir/<name>`.
pub fn mosquitto(dir: &Path, name: &'static str) -> anyhow::Result<(Proc, u16)> {
    let port = free_port()?;
    let d = dir.join(name);
    std::fs::create_dir_all(&d)?;
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 1000000\n",
            d.display()
        ),
    )?;
    let p = Proc::spawn(
        name,
        Command::new("mosquitto").arg("-c").arg(&conf),
        &d.join("mosquitto.log"),
    )?;
    wait_port(port, name)?;
    Ok((p, port))
}

/// This binary running `outpost run -c config`, logging to `log`.
pub fn outpost(config: &Path, log: &Path) -> anyhow::Result<Proc> {
    let exe: PathBuf = std::env::current_exe()?;
    Proc::spawn(
        "outpost",
        Command::new(exe)
            .arg("run")
            .arg("-c")
            .arg(config)
            .env("RUST_LOG", "info"),
        log,
    )
}
