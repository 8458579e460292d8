//! Phase one of the configuration: `gateway.toml` as written, with serde defaults and
//! `deny_unknown_fields` so a misspelt key is an error with its position (SPEC §3).

use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

/// The whole `gateway.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub gateway: RawGateway,
    #[serde(default)]
    pub redis: RawRedis,
    pub devices_mqtt: Option<RawDevicesMqtt>,
    pub uplink: UplinkTables,
    #[serde(default)]
    pub buffer: RawBuffer,
    #[serde(default)]
    pub ops: RawOps,
    #[serde(default)]
    pub serial: Vec<RawSerial>,
    #[serde(default)]
    pub mqtt: Vec<RawMqtt>,
    #[serde(default)]
    pub tak: Vec<RawTak>,
}

/// `[gateway]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub id: Spanned<String>,
    #[serde(default = "default_profiles")]
    pub profiles: Spanned<String>,
}

pub fn default_profiles() -> Spanned<String> {
    Spanned::new(0..0, "/etc/outpost/device-profiles".to_string())
}

/// `[redis]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedis {
    pub url: Spanned<String>,
    pub prefix: Spanned<String>,
}

impl Default for RawRedis {
    fn default() -> Self {
        RawRedis {
            url: Spanned::new(0..0, "redis://127.0.0.1:6379/0".into()),
            prefix: Spanned::new(0..0, "outpost".into()),
        }
    }
}

/// `[devices_mqtt]`: the broker field devices publish to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevicesMqtt {
    #[serde(default = "default_devices_url")]
    pub url: Spanned<String>,
    pub client_id: Option<Spanned<String>>,
    pub username: Option<String>,
    pub password_file: Option<Spanned<String>>,
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
}

pub fn default_devices_url() -> Spanned<String> {
    Spanned::new(0..0, "mqtt://127.0.0.1:1883".into())
}

pub fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}

/// `[uplink]` (one hub) or `[[uplink]]` tables (one per region, SPEC §9).
#[derive(Debug)]
pub enum UplinkTables {
    /// Boxed: a table is large beside the list's pointer.
    One(Box<RawUplink>),
    Many(Vec<RawUplink>),
}

impl UplinkTables {
    /// The tables in file order.
    pub fn list(&self) -> Vec<&RawUplink> {
        match self {
            UplinkTables::One(u) => vec![u.as_ref()],
            UplinkTables::Many(v) => v.iter().collect(),
        }
    }
}

impl<'de> Deserialize<'de> for UplinkTables {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UplinkTables;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an [uplink] table or [[uplink]] tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<Self::Value, A::Error> {
                RawUplink::deserialize(MapAccessDeserializer::new(m))
                    .map(|u| UplinkTables::One(Box::new(u)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                s: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<RawUplink>::deserialize(SeqAccessDeserializer::new(s)).map(UplinkTables::Many)
            }
        }
        d.deserialize_any(V)
    }
}

/// One hub: `[uplink]`, or one region's `[[uplink]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUplink {
    /// The region (`[A-Za-z0-9_-]{1,32}`); `"default"` for a single table without one.
    pub name: Option<Spanned<String>>,
    pub url: Spanned<String>,
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: Spanned<String>,
    pub client_id: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub username: Option<String>,
    pub password_file: Option<Spanned<String>>,
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    #[serde(default = "default_batch_max")]
    pub batch_max_events: Spanned<i64>,
    #[serde(default = "default_inflight")]
    pub inflight: Spanned<i64>,
    /// SPEC §9: a region whose oldest unacknowledged event is older than this stops holding
    /// back the outbox trim (what it then misses is counted; `outpost-hub sync` fills it in).
    #[serde(default = "default_max_lag", with = "humantime_serde")]
    pub max_lag: Duration,
}

/// The region name of a single `[uplink]` table without `name`.
pub const DEFAULT_REGION: &str = "default";

pub fn default_max_lag() -> Duration {
    Duration::from_secs(6 * 3600)
}

pub fn default_topic_prefix() -> Spanned<String> {
    Spanned::new(0..0, "outpost/v1".into())
}

pub fn default_batch_max() -> Spanned<i64> {
    Spanned::new(0..0, 256)
}

pub fn default_inflight() -> Spanned<i64> {
    Spanned::new(0..0, 8)
}

/// `[buffer]`: the outbox budget (SPEC §6).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBuffer {
    pub max_events: Spanned<i64>,
}

impl Default for RawBuffer {
    fn default() -> Self {
        RawBuffer {
            max_events: Spanned::new(0..0, 2_000_000),
        }
    }
}

/// `[ops]`: metrics and health endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOps {
    pub listen: Option<Spanned<String>>,
    /// `/healthz` turns 503 once the uplink has been down this long (links drop routinely
    /// in the field; a short outage is not a fault).
    #[serde(with = "humantime_serde")]
    pub uplink_down_grace: Duration,
}

impl Default for RawOps {
    fn default() -> Self {
        RawOps {
            listen: None,
            uplink_down_grace: Duration::from_secs(15 * 60),
        }
    }
}

/// `[[serial]]`: one serial device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSerial {
    pub device: Spanned<String>,
    pub path: Spanned<String>,
    pub profile: Spanned<String>,
    pub baud: Option<Spanned<i64>>,
}

/// `[[mqtt]]`: devices reached through the device broker.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    pub profile: Spanned<String>,
    pub topic: Option<Spanned<String>>,
}

/// `[[tak]]`: a TAK server the gateway streams its picture to (SPEC §10).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTak {
    /// In logs and metrics (default: `tak`, then `tak2`, … in order).
    pub name: Option<Spanned<String>>,
    /// `tcp://host:8087` or `ssl://host:8089`.
    pub url: Spanned<String>,
    pub ca_file: Option<Spanned<String>>,
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    /// Also read the server's stream: TAK users become `tak:<uid>` devices.
    #[serde(default)]
    pub subscribe: bool,
    /// The gateway's own callsign on the server (default: the gateway id).
    pub callsign: Option<Spanned<String>>,
    /// Send-queue capacity; positions coalesce per device, alerts are never dropped.
    #[serde(default = "default_tak_queue")]
    pub queue: Spanned<i64>,
}

pub fn default_tak_queue() -> Spanned<i64> {
    Spanned::new(0..0, 4096)
}
