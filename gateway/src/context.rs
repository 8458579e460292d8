//! What every long-lived component receives (STYLE 9: no global mutable state).

use crate::config::Settings;
use crate::ops::Metrics;
use crate::store::Store;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Shared handles of one running gateway.
#[derive(Clone)]
pub struct Context {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Told whenever new entries are in the outbox (the uplink drains on it).
    pub outbox: Arc<crate::uplink::feed::Feed>,
    /// What is accepted, for the `[[tak]]` outputs (one feed per process, across reloads).
    pub tak: Arc<crate::tak::Feed>,
    /// The Meshtastic radios on USB, for the downlink (one registry per process, across reloads).
    pub radios: Arc<crate::downlink::radio::Radios>,
    /// Cancelled on shutdown; every task selects on it.
    pub token: CancellationToken,
}
