//! The few Meshtastic protobuf messages Outpost reads and writes, as `prost` structs.
//!
//! Written by hand for this project from the field numbers and types published in the
//! Meshtastic protobuf definitions (`meshtastic/protobufs`: `mesh.proto`, `mqtt.proto`,
//! `telemetry.proto`, `portnums.proto`). Those files are GPL-3.0; nothing of them is copied
//! here: no comments, no generated code, only the wire facts (tag, type) needed to interoperate,
//! and only the fields Outpost uses. Unknown fields are skipped by `prost`, so newer firmware that
//! adds fields still decodes. No build script or `protoc` is needed.
//!
//! Enums (port numbers, routing errors) are kept as raw `i32` with named constants, so a value
//! newer than this file is still carried (and reported by number) instead of failing the packet.

use prost::{Message, Oneof};

/// `portnums.proto` `PortNum` values this gateway acts on.
pub mod port {
    pub const TEXT_MESSAGE: i32 = 1;
    pub const POSITION: i32 = 3;
    pub const NODEINFO: i32 = 4;
    pub const ROUTING: i32 = 5;
    pub const TELEMETRY: i32 = 67;
}

/// `mqtt.proto` `ServiceEnvelope`: what a radio publishes on `msh/<region>/2/e/<channel>/<gw>`.
#[derive(Clone, PartialEq, Message)]
pub struct ServiceEnvelope {
    #[prost(message, optional, tag = "1")]
    pub packet: Option<MeshPacket>,
    /// The channel name (e.g. `LongFast`); it enters the channel hash.
    #[prost(string, tag = "2")]
    pub channel_id: String,
    /// The relaying radio, `!%08x`.
    #[prost(string, tag = "3")]
    pub gateway_id: String,
}

/// `mesh.proto` `MeshPacket`.
#[derive(Clone, PartialEq, Message)]
pub struct MeshPacket {
    #[prost(fixed32, tag = "1")]
    pub from: u32,
    #[prost(fixed32, tag = "2")]
    pub to: u32,
    /// On the air: the channel hash of an encrypted packet; from the radio: the channel index.
    #[prost(uint32, tag = "3")]
    pub channel: u32,
    #[prost(oneof = "Payload", tags = "4, 5")]
    pub payload: Option<Payload>,
    #[prost(fixed32, tag = "6")]
    pub id: u32,
    #[prost(fixed32, optional, tag = "7")]
    pub rx_time: Option<u32>,
    #[prost(float, tag = "8")]
    pub rx_snr: f32,
    #[prost(uint32, tag = "9")]
    pub hop_limit: u32,
    #[prost(bool, tag = "10")]
    pub want_ack: bool,
    #[prost(int32, optional, tag = "12")]
    pub rx_rssi: Option<i32>,
}

/// `MeshPacket.payload_variant`.
#[derive(Clone, PartialEq, Oneof)]
pub enum Payload {
    #[prost(message, tag = "4")]
    Decoded(Data),
    #[prost(bytes, tag = "5")]
    Encrypted(Vec<u8>),
}

/// `mesh.proto` `Data`: the (decrypted) application payload of a packet.
#[derive(Clone, PartialEq, Message)]
pub struct Data {
    #[prost(int32, tag = "1")]
    pub portnum: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
    #[prost(bool, tag = "3")]
    pub want_response: bool,
    #[prost(fixed32, tag = "6")]
    pub request_id: u32,
}

/// `mesh.proto` `Position`.
#[derive(Clone, PartialEq, Message)]
pub struct Position {
    #[prost(sfixed32, optional, tag = "1")]
    pub latitude_i: Option<i32>,
    #[prost(sfixed32, optional, tag = "2")]
    pub longitude_i: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub altitude: Option<i32>,
    #[prost(fixed32, tag = "4")]
    pub time: u32,
    #[prost(uint32, tag = "12")]
    pub hdop: u32,
    #[prost(uint32, optional, tag = "15")]
    pub ground_speed: Option<u32>,
    #[prost(uint32, optional, tag = "16")]
    pub ground_track: Option<u32>,
    #[prost(uint32, tag = "19")]
    pub sats_in_view: u32,
    #[prost(uint32, tag = "23")]
    pub precision_bits: u32,
}

/// `mesh.proto` `User` (NODEINFO_APP payload).
#[derive(Clone, PartialEq, Message)]
pub struct User {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub long_name: String,
    #[prost(string, tag = "3")]
    pub short_name: String,
    #[prost(int32, tag = "5")]
    pub hw_model: i32,
}

/// `telemetry.proto` `Telemetry` (TELEMETRY_APP payload).
#[derive(Clone, PartialEq, Message)]
pub struct Telemetry {
    #[prost(fixed32, tag = "1")]
    pub time: u32,
    #[prost(oneof = "Metrics", tags = "2, 3")]
    pub metrics: Option<Metrics>,
}

/// `Telemetry.variant`, the two kinds mapped to status (others are skipped).
#[derive(Clone, PartialEq, Oneof)]
pub enum Metrics {
    #[prost(message, tag = "2")]
    Device(DeviceMetrics),
    #[prost(message, tag = "3")]
    Environment(EnvironmentMetrics),
}

/// `telemetry.proto` `DeviceMetrics`.
#[derive(Clone, PartialEq, Message)]
pub struct DeviceMetrics {
    #[prost(uint32, optional, tag = "1")]
    pub battery_level: Option<u32>,
    #[prost(float, optional, tag = "2")]
    pub voltage: Option<f32>,
    #[prost(float, optional, tag = "3")]
    pub channel_utilization: Option<f32>,
    #[prost(float, optional, tag = "4")]
    pub air_util_tx: Option<f32>,
    #[prost(uint32, optional, tag = "5")]
    pub uptime_seconds: Option<u32>,
}

/// `telemetry.proto` `EnvironmentMetrics`, the commonly fitted sensors.
#[derive(Clone, PartialEq, Message)]
pub struct EnvironmentMetrics {
    #[prost(float, optional, tag = "1")]
    pub temperature: Option<f32>,
    #[prost(float, optional, tag = "2")]
    pub relative_humidity: Option<f32>,
    #[prost(float, optional, tag = "3")]
    pub barometric_pressure: Option<f32>,
    #[prost(float, optional, tag = "4")]
    pub gas_resistance: Option<f32>,
    #[prost(float, optional, tag = "5")]
    pub voltage: Option<f32>,
    #[prost(float, optional, tag = "6")]
    pub current: Option<f32>,
    #[prost(uint32, optional, tag = "7")]
    pub iaq: Option<u32>,
    #[prost(float, optional, tag = "9")]
    pub lux: Option<f32>,
    #[prost(uint32, optional, tag = "13")]
    pub wind_direction: Option<u32>,
    #[prost(float, optional, tag = "14")]
    pub wind_speed: Option<f32>,
}

/// `mesh.proto` `Routing` (ROUTING_APP payload): only the error variant matters for acks.
#[derive(Clone, PartialEq, Message)]
pub struct Routing {
    #[prost(oneof = "RoutingVariant", tags = "3")]
    pub variant: Option<RoutingVariant>,
}

/// `Routing.variant`; route request/reply (tags 1, 2) are skipped.
#[derive(Clone, PartialEq, Oneof)]
pub enum RoutingVariant {
    #[prost(int32, tag = "3")]
    ErrorReason(i32),
}

/// `mesh.proto` `MyNodeInfo`: the radio's own node number.
#[derive(Clone, PartialEq, Message)]
pub struct MyNodeInfo {
    #[prost(uint32, tag = "1")]
    pub my_node_num: u32,
}

/// `mesh.proto` `NodeInfo`: one entry of the radio's node database, sent during the handshake.
#[derive(Clone, PartialEq, Message)]
pub struct NodeInfo {
    #[prost(uint32, tag = "1")]
    pub num: u32,
    #[prost(message, optional, tag = "2")]
    pub user: Option<User>,
}

/// `mesh.proto` `FromRadio`: one frame of the serial API, radio → host.
#[derive(Clone, PartialEq, Message)]
pub struct FromRadio {
    #[prost(uint32, tag = "1")]
    pub id: u32,
    #[prost(oneof = "FromRadioVariant", tags = "2, 3, 4, 7, 8")]
    pub variant: Option<FromRadioVariant>,
}

/// `FromRadio.payload_variant`, the variants the gateway acts on (config, channels, log
/// records … are skipped).
#[derive(Clone, PartialEq, Oneof)]
pub enum FromRadioVariant {
    #[prost(message, tag = "2")]
    Packet(MeshPacket),
    #[prost(message, tag = "3")]
    MyInfo(MyNodeInfo),
    #[prost(message, tag = "4")]
    NodeInfo(NodeInfo),
    #[prost(uint32, tag = "7")]
    ConfigCompleteId(u32),
    #[prost(bool, tag = "8")]
    Rebooted(bool),
}

/// `mesh.proto` `ToRadio`: one frame of the serial API, host → radio.
#[derive(Clone, PartialEq, Message)]
pub struct ToRadio {
    #[prost(oneof = "ToRadioVariant", tags = "1, 3, 7")]
    pub variant: Option<ToRadioVariant>,
}

/// `ToRadio.payload_variant`.
#[derive(Clone, PartialEq, Oneof)]
pub enum ToRadioVariant {
    #[prost(message, tag = "1")]
    Packet(MeshPacket),
    #[prost(uint32, tag = "3")]
    WantConfigId(u32),
    #[prost(message, tag = "7")]
    Heartbeat(Heartbeat),
}

/// `mesh.proto` `Heartbeat`: keeps the serial API session alive.
#[derive(Clone, PartialEq, Message)]
pub struct Heartbeat {
    #[prost(uint32, tag = "1")]
    pub nonce: u32,
}

/// `mesh.proto` `Routing.Error` names, for receipts (`failed` with the mesh's reason).
pub fn routing_error_name(code: i32) -> String {
    let name = match code {
        0 => "NONE",
        1 => "NO_ROUTE",
        2 => "GOT_NAK",
        3 => "TIMEOUT",
        4 => "NO_INTERFACE",
        5 => "MAX_RETRANSMIT",
        6 => "NO_CHANNEL",
        7 => "TOO_LARGE",
        8 => "NO_RESPONSE",
        9 => "DUTY_CYCLE_LIMIT",
        32 => "BAD_REQUEST",
        33 => "NOT_AUTHORIZED",
        34 => "PKI_FAILED",
        35 => "PKI_UNKNOWN_PUBKEY",
        36 => "ADMIN_BAD_SESSION_KEY",
        37 => "ADMIN_PUBLIC_KEY_UNAUTHORIZED",
        38 => "RATE_LIMIT_EXCEEDED",
        39 => "PKI_SEND_FAIL_PUBLIC_KEY",
        n => return format!("ERROR_{n}"),
    };
    name.to_string()
}
