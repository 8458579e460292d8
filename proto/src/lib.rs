//! # Outpost uplink protocol v1 (SPEC §5), sans-I/O
//!
//! What the gateway (`outpost`) sends and the hub (`outpost-hub`) receives, in one crate both
//! binaries use: no tokio, no sockets, no Redis.
//!
//! # Layout
//! - [`event`]: the event model every decoder produces and the uplink carries.
//! - [`id`]: event ids (Redis stream entry ids `"<ms>-<seq>"`) and their order.
//! - [`topic`]: `<topic_prefix>/<gateway>/{up/<class>,state,snapshot,down}` built and parsed.
//! - [`down`]: downlink messages to devices (SPEC §8), parsed with the `msg_id` kept for a
//!   `failed` receipt.
//! - [`api`]: the client side of the hub API's `/api/v1/events` paging.
//! - [`batch`]: batch payloads — built by the gateway from stored JSON, parsed and checked by
//!   the hub.
//! - [`fields`]: the few fields of a JSON object the hub reads, without building the object.

pub mod api;
pub mod batch;
pub mod down;
pub mod event;
pub mod fields;
pub mod id;
pub mod topic;

pub use event::Class;
pub use id::EventId;
