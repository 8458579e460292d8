//! # Outpost
//!
//! Edge gateway for field devices: decode what GPS receivers, radios, phones and modems send,
//! keep it durably in a local Redis, forward it to the regional hub over MQTT.
//!
//! # Layout
//! Data flows left to right:
//! `ingest` (sources) → `decode` → `store` (Redis outbox) → `uplink` (hub).
//!
//! - [`config`]: `gateway.toml` and device profiles, parsed then validated (`file:line:col`).
//! - [`ingest`]: sources — the device MQTT broker (manual acks after Redis accepted), serial
//!   lines — and [`ingest::accept`], the one path into the store.
//! - [`decode`]: sans-I/O decoders (bytes/text in, [`event::Event`]s out).
//! - [`event`]: the event model every decoder produces and the uplink carries (SPEC §5),
//!   from `outpost-proto`, the protocol crate the hub uses too.
//! - [`store`]: Redis — outbox streams per class, latest state, geo index, presence deadlines.
//! - [`uplink`]: drains the outbox to the hub in class order with an in-flight window.
//! - [`buffer`] and [`thin`]: the bounded outbox — thin the oldest location history first.
//! - [`downlink`]: messages to devices (SPEC §8) — the hub's `down` topic, a queue per device
//!   in Redis, delivery through the device's profile, receipts back through the outbox.
//! - [`presence`]: offline after the profile's timeout, online again on the next report.
//! - [`tak`]: `[[tak]]` outputs — the picture as CoT to TAK servers, TAK users in (SPEC §10),
//!   fed from what the store accepts, independent of the uplink.
//! - [`ops`]: metrics (and the `/metrics`, `/healthz` endpoint).
//! - [`daemon`]: `outpost run` — starts it all under one cancellation token.
//! - [`demo`]: `outpost demo`, the whole system on one machine.
//! - [`util`]: backoff, rate-limited logs, hashing.

pub mod buffer;
pub mod cli;
pub mod config;
pub mod context;
pub mod daemon;
pub mod decode;
pub mod demo;
pub mod downlink;
pub mod ingest;
pub mod mqtt_opts;
pub mod ops;
pub mod policy;
pub mod presence;
pub mod store;
pub mod tak;
pub mod thin;
pub mod tls;
pub mod uplink;
pub mod util;

/// The event model lives in the protocol crate both binaries share.
pub use outpost_proto::event;
