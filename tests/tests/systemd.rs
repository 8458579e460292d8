//! The shipped systemd unit (issue 6, STYLE 11): `systemd-analyze verify` clean, exposure
//! ≤ 2.5; and the daemon's sd_notify protocol (READY=1 only once Redis answers, WATCHDOG=1
//! while alive, STOPPING=1 on shutdown), checked against a fake `NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use outpost_system_tests::outpost::outpost_command;
use outpost_system_tests::{
    outpost_bin, process, wait_until, workspace_root, GatewayConfig, Mosquitto, RedisServer,
};

const MAX_EXPOSURE: f64 = 2.5;

fn unit_path() -> std::path::PathBuf {
    workspace_root().join("systemd/outpost.service")
}

/// `systemd-analyze` is installed by .ci/run; on a developer box without it, say so and skip.
fn have_systemd_analyze() -> bool {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!(
            "SKIPPED: systemd-analyze not found (apt-get install systemd); .ci/run installs it"
        );
    }
    ok
}

/// `systemd-analyze verify` of `unit` (in systemd/) with its ExecStart pointed at `bin`.
fn verify_unit(unit_name: &str, exec: &str, bin: &Path) {
    // verify insists that ExecStart= exists: point a copy at the binary we just built.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(workspace_root().join("systemd").join(unit_name)).unwrap();
    assert!(unit.contains(&format!("ExecStart={exec} run")), "{unit}");
    let copy = unit.replace(
        &format!("ExecStart={exec}"),
        &format!("ExecStart={}", bin.display()),
    );
    let path = dir.path().join(unit_name);
    std::fs::write(&path, copy).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed:\n{stderr}");
    let own: Vec<&str> = stderr.lines().filter(|l| l.contains(unit_name)).collect();
    assert!(own.is_empty(), "verify complains:\n{stderr}");
}

/// `systemd-analyze security --offline=true` score of systemd/`unit_name`.
fn exposure(unit: &Path) -> f64 {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no score:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    println!("{}: {line}", unit.display());
    line.split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"))
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    if !have_systemd_analyze() {
        return;
    }
    verify_unit(
        "outpost.service",
        "/usr/bin/outpost",
        &outpost_bin().unwrap(),
    );
}

#[test]
fn hub_unit_passes_systemd_analyze_verify() {
    if !have_systemd_analyze() {
        return;
    }
    verify_unit(
        "outpost-hub.service",
        "/usr/bin/outpost-hub",
        &outpost_system_tests::hub_bin().unwrap(),
    );
}

#[test]
fn unit_exposure_is_at_most_2_5() {
    if !have_systemd_analyze() {
        return;
    }
    let score = exposure(&unit_path());
    assert!(score <= MAX_EXPOSURE, "{score}");
}

#[test]
fn hub_unit_exposure_is_at_most_2_5() {
    if !have_systemd_analyze() {
        return;
    }
    let score = exposure(&workspace_root().join("systemd/outpost-hub.service"));
    assert!(score <= MAX_EXPOSURE, "{score}");
}

#[test]
fn unit_has_the_service_contract() {
    let unit = std::fs::read_to_string(unit_path()).unwrap();
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=always",
        "StartLimitBurst=",
        "After=network-online.target redis-server.service mosquitto.service",
        "SupplementaryGroups=dialout",
        "DeviceAllow=char-ttyUSB rw",
        "DeviceAllow=char-ttyACM rw",
        "LoadCredential=hub-password:",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(key), "missing {key:?}");
    }
}

/// Collects sd_notify datagrams sent to a private socket.
struct NotifySocket {
    sock: UnixDatagram,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    got: Vec<String>,
}

impl NotifySocket {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        NotifySocket {
            sock,
            _dir: dir,
            path,
            got: Vec::new(),
        }
    }

    /// Reads until a message containing `needle` arrived (true) or `timeout` passed.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = msg.lines().any(|l| l == needle);
                self.got.push(msg);
                if hit {
                    return true;
                }
            }
        }
        false
    }

    fn count(&self, line: &str) -> usize {
        self.got
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

fn write_config(dir: &Path, redis: &RedisServer, broker: &Mosquitto) -> std::path::PathBuf {
    let cfg = GatewayConfig::new("veh-sd", &redis.url(), &broker.url(), &broker.url()).to_toml();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

#[test]
fn sd_notify_ready_after_redis_then_watchdog_then_stopping() {
    let mut redis = RedisServer::new().unwrap();
    let broker = Mosquitto::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &redis, &broker);
    redis.stop().unwrap(); // Redis down at start: not ready yet
    let mut notify = NotifySocket::new();
    let mut child = outpost_command()
        .unwrap()
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "300000")
        .env_remove("WATCHDOG_PID")
        .args(["run", "-c"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        notify.wait_for("STATUS=waiting for redis", Duration::from_secs(10)),
        "{:?}",
        notify.got
    );
    assert!(
        !notify.wait_for("READY=1", Duration::from_millis(700)),
        "READY=1 before Redis answered: {:?}",
        notify.got
    );
    redis.restart().unwrap();
    assert!(
        notify.wait_for("READY=1", Duration::from_secs(15)),
        "{:?}",
        notify.got
    );
    // Pinged every WATCHDOG_USEC/3 = 100 ms while alive.
    let start = notify.count("WATCHDOG=1");
    assert!(wait_until(Duration::from_secs(5), || {
        notify.wait_for("WATCHDOG=1", Duration::from_millis(200));
        notify.count("WATCHDOG=1") >= start + 3
    }));
    process::sigterm(&child).unwrap();
    assert!(
        notify.wait_for("STOPPING=1", Duration::from_secs(10)),
        "{:?}",
        notify.got
    );
    let status = process::wait_timeout(&mut child, Duration::from_secs(10))
        .unwrap()
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
}
