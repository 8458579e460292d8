//! Private `mosquitto` brokers for the benchmark: the device broker (optionally with a bridge to
//! the hub: the peer under test) and the hub broker.
//!
//! The system-test harness's broker autosaves its persistence file every second, which at a
//! 100,000-message backlog would make the broker itself the thing measured; here persistence is
//! off and the same template is used for every broker, so both systems see identical brokers.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tempfile::TempDir;

/// Broker settings shared by every broker in a run.
#[derive(Clone, Copy, Debug)]
pub struct BrokerTuning {
    /// `max_inflight_messages`: QoS 1 messages a broker has unacknowledged towards one client
    /// (mosquitto's default is 20). Applies to Outpost's device session, the bridge and the
    /// bare subscriber alike.
    pub inflight: u32,
    /// Outpost's `[uplink] inflight` (the floor of its adaptive window; its default is 8);
    /// `None` leaves Outpost's default.
    pub uplink_inflight: Option<u32>,
}

/// Where a bridge forwards to (the [`Broker::bridged`] configuration).
pub struct BridgeTo {
    pub port: u16,
}

/// A `mosquitto` child on a free loopback port in its own temp dir; killed on drop.
pub struct Broker {
    _dir: TempDir,
    port: u16,
    child: Child,
}

impl Broker {
    /// A plain broker (device side or hub).
    pub fn start(name: &str, tuning: BrokerTuning) -> anyhow::Result<Self> {
        Self::start_with(name, tuning, None)
    }

    /// A device broker bridging `owntracks/#` out to the hub at QoS 1 with a persistent
    /// session: the everyday alternative to Outpost.
    pub fn bridged(tuning: BrokerTuning, to: BridgeTo) -> anyhow::Result<Self> {
        Self::start_with("bridge", tuning, Some(to))
    }

    fn start_with(name: &str, t: BrokerTuning, bridge: Option<BridgeTo>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("outpost-bench-{name}-"))
            .tempdir()?;
        let mut last = None;
        for _ in 0..5 {
            let port = outpost_system_tests::free_port();
            let conf = config(dir.path(), port, t, bridge.as_ref());
            let path = dir.path().join("mosquitto.conf");
            std::fs::File::create(&path)?.write_all(conf.as_bytes())?;
            match spawn(dir.path(), &path, port) {
                Ok(child) => {
                    return Ok(Self {
                        _dir: dir,
                        port,
                        child,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("one attempt")).context("start mosquitto")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The process id (for /proc sampling).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, port: u16, t: BrokerTuning, bridge: Option<&BridgeTo>) -> String {
    let d = dir.display();
    let mut c = format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         user root\n\
         persistence false\n\
         max_inflight_messages {}\n\
         max_queued_messages 10000000\n\
         max_queued_bytes 0\n\
         queue_qos0_messages true\n\
         set_tcp_nodelay true\n\
         log_dest file {d}/mosquitto.log\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_type information\n",
        t.inflight
    );
    if let Some(b) = bridge {
        // Defaults everywhere else (restart_timeout: jitter from 5 s up to 30 s), as a user
        // would write it; the hub sees one MQTT message per device message.
        c.push_str(&format!(
            "\nconnection hub\n\
             address 127.0.0.1:{}\n\
             clientid bench-bridge\n\
             topic owntracks/# out 1\n\
             cleansession false\n\
             bridge_protocol_version mqttv311\n\
             try_private true\n\
             notifications false\n\
             start_type automatic\n",
            b.port
        ));
    }
    c
}

fn spawn(dir: &Path, conf: &Path, port: u16) -> anyhow::Result<Child> {
    let out = std::fs::File::create(dir.join("mosquitto.stdout"))?;
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("spawn mosquitto (is it on PATH?)")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if let Some(st) = child.try_wait()? {
            bail!("mosquitto on port {port} exited at start: {st}");
        }
        let log = std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default();
        if log.contains(" running")
            && std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("mosquitto on port {port} not up within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
