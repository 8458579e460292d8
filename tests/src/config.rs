//! Renders a `gateway.toml` (SPEC §3) for a test: only the keys the test sets, so the gateway's
//! own defaults are what gets tested otherwise.

use std::fmt::Write as _;
use std::path::PathBuf;

/// One `[[mqtt]]` source.
#[derive(Clone, Debug)]
pub struct MqttSource {
    /// Profile name.
    pub profile: String,
    /// Topic filter overriding the profile's.
    pub topic: Option<String>,
}

/// One `[[serial]]` source.
#[derive(Clone, Debug)]
pub struct SerialSource {
    /// Device id of what is on the port.
    pub device: String,
    /// Port path (e.g. a pseudo-terminal).
    pub path: PathBuf,
    /// Profile name.
    pub profile: String,
    /// Baud rate overriding the profile's.
    pub baud: Option<u32>,
}

/// A gateway configuration under construction; [`GatewayConfig::to_toml`] renders it.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// `[gateway] id`.
    pub id: String,
    /// `[gateway] profiles`; defaults to the workspace's `device-profiles/`.
    pub profiles: PathBuf,
    /// `[redis] url`.
    pub redis_url: String,
    /// `[redis] prefix`.
    pub redis_prefix: String,
    /// `[devices_mqtt] url`.
    pub devices_url: String,
    /// `[devices_mqtt] client_id`.
    pub devices_client_id: String,
    /// `[uplink] url`.
    pub uplink_url: String,
    /// `[uplink] topic_prefix`.
    pub topic_prefix: String,
    /// `[uplink] keep_alive` (human duration), gateway default if `None`.
    pub keep_alive: Option<String>,
    /// `[uplink] batch_max_events`.
    pub batch_max_events: Option<u32>,
    /// `[uplink] inflight`.
    pub inflight: Option<u32>,
    /// `[buffer] max_events`.
    pub buffer_max_events: Option<u64>,
    /// `[ops] listen`.
    pub ops_listen: Option<String>,
    /// `[[mqtt]]` sources.
    pub mqtt: Vec<MqttSource>,
    /// `[[serial]]` sources.
    pub serial: Vec<SerialSource>,
    /// Raw TOML appended as is, for keys this builder does not know yet.
    pub extra: String,
    /// Replaces the `[uplink]` header line (e.g. `[[uplink]]\nname = "a"`: the first of
    /// several regions, the others in `extra`).
    pub uplink_header: Option<String>,
}

impl GatewayConfig {
    /// A config for gateway `id` with the three required endpoints. Defaults: redis prefix
    /// `outpost`, device client id `outpost-<id>`, topic prefix `outpost/v1`, profiles from
    /// the workspace.
    pub fn new(id: &str, redis_url: &str, devices_url: &str, uplink_url: &str) -> Self {
        Self {
            id: id.to_string(),
            profiles: crate::workspace_root().join("device-profiles"),
            redis_url: redis_url.to_string(),
            redis_prefix: "outpost".to_string(),
            devices_url: devices_url.to_string(),
            devices_client_id: format!("outpost-{id}"),
            uplink_url: uplink_url.to_string(),
            topic_prefix: "outpost/v1".to_string(),
            keep_alive: None,
            batch_max_events: None,
            inflight: None,
            buffer_max_events: None,
            ops_listen: None,
            mqtt: Vec::new(),
            serial: Vec::new(),
            extra: String::new(),
            uplink_header: None,
        }
    }

    /// Sets `[gateway] profiles`.
    pub fn profiles(mut self, path: impl Into<PathBuf>) -> Self {
        self.profiles = path.into();
        self
    }

    /// Sets `[redis] prefix`.
    pub fn redis_prefix(mut self, prefix: &str) -> Self {
        self.redis_prefix = prefix.to_string();
        self
    }

    /// Sets `[devices_mqtt] client_id`.
    pub fn devices_client_id(mut self, id: &str) -> Self {
        self.devices_client_id = id.to_string();
        self
    }

    /// Sets `[uplink] topic_prefix`.
    pub fn topic_prefix(mut self, prefix: &str) -> Self {
        self.topic_prefix = prefix.to_string();
        self
    }

    /// Sets `[uplink] keep_alive`, e.g. `"5s"`.
    pub fn keep_alive(mut self, duration: &str) -> Self {
        self.keep_alive = Some(duration.to_string());
        self
    }

    /// Sets `[uplink] batch_max_events`.
    pub fn batch_max_events(mut self, n: u32) -> Self {
        self.batch_max_events = Some(n);
        self
    }

    /// Sets `[uplink] inflight`.
    pub fn inflight(mut self, n: u32) -> Self {
        self.inflight = Some(n);
        self
    }

    /// Sets `[buffer] max_events`.
    pub fn buffer_max_events(mut self, n: u64) -> Self {
        self.buffer_max_events = Some(n);
        self
    }

    /// Sets `[ops] listen`.
    pub fn ops_listen(mut self, addr: &str) -> Self {
        self.ops_listen = Some(addr.to_string());
        self
    }

    /// Adds `[[mqtt]] profile = ...`.
    pub fn mqtt(mut self, profile: &str) -> Self {
        self.mqtt.push(MqttSource {
            profile: profile.to_string(),
            topic: None,
        });
        self
    }

    /// Adds `[[mqtt]]` with a topic filter override.
    pub fn mqtt_topic(mut self, profile: &str, topic: &str) -> Self {
        self.mqtt.push(MqttSource {
            profile: profile.to_string(),
            topic: Some(topic.to_string()),
        });
        self
    }

    /// Adds `[[serial]]`.
    pub fn serial(mut self, device: &str, path: impl Into<PathBuf>, profile: &str) -> Self {
        self.serial.push(SerialSource {
            device: device.to_string(),
            path: path.into(),
            profile: profile.to_string(),
            baud: None,
        });
        self
    }

    /// Appends raw TOML.
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// Renders the TOML.
    pub fn to_toml(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "[gateway]\nid = {}", q(&self.id));
        let _ = writeln!(t, "profiles = {}\n", q(&self.profiles.to_string_lossy()));
        let _ = writeln!(t, "[redis]\nurl = {}", q(&self.redis_url));
        let _ = writeln!(t, "prefix = {}\n", q(&self.redis_prefix));
        let _ = writeln!(t, "[devices_mqtt]\nurl = {}", q(&self.devices_url));
        let _ = writeln!(t, "client_id = {}\n", q(&self.devices_client_id));
        let header = self.uplink_header.as_deref().unwrap_or("[uplink]\n");
        let _ = writeln!(t, "{header}url = {}", q(&self.uplink_url));
        let _ = writeln!(t, "topic_prefix = {}", q(&self.topic_prefix));
        if let Some(k) = &self.keep_alive {
            let _ = writeln!(t, "keep_alive = {}", q(k));
        }
        if let Some(n) = self.batch_max_events {
            let _ = writeln!(t, "batch_max_events = {n}");
        }
        if let Some(n) = self.inflight {
            let _ = writeln!(t, "inflight = {n}");
        }
        if let Some(n) = self.buffer_max_events {
            let _ = writeln!(t, "\n[buffer]\nmax_events = {n}");
        }
        if let Some(listen) = &self.ops_listen {
            let _ = writeln!(t, "\n[ops]\nlisten = {}", q(listen));
        }
        for s in &self.serial {
            let _ = writeln!(t, "\n[[serial]]\ndevice = {}", q(&s.device));
            let _ = writeln!(t, "path = {}", q(&s.path.to_string_lossy()));
            let _ = writeln!(t, "profile = {}", q(&s.profile));
            if let Some(b) = s.baud {
                let _ = writeln!(t, "baud = {b}");
            }
        }
        for m in &self.mqtt {
            let _ = writeln!(t, "\n[[mqtt]]\nprofile = {}", q(&m.profile));
            if let Some(topic) = &m.topic {
                let _ = writeln!(t, "topic = {}", q(topic));
            }
        }
        if !self.extra.is_empty() {
            let _ = write!(t, "\n{}", self.extra);
        }
        t
    }
}

/// A TOML basic string. JSON string escapes are a subset of TOML's, so serde_json quotes it.
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}
