//! # Outpost
//!
//! Edge gateway for field devices: decode what GPS receivers, radios, phones and modems send,
//! keep it durably in a local Redis, forward it to the regional hub over MQTT.
//!
//! # Layout
//! - [`event`]: the event model every decoder produces and the uplink carries.
//! - [`decode`]: sans-I/O decoders (bytes/text in, events out).
//! - [`policy`]: which location fixes are worth reporting (interval, distance, turn, start/stop).

pub mod decode;
pub mod event;
pub mod policy;
