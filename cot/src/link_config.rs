//! A TAK link's settings ([`crate::link::run`]), and the ones the gateway and the hub run with.

use crate::link::RESEND_WINDOW;
use crate::tls::Endpoint;
use std::sync::Arc;
use std::time::Duration;

/// One link's settings.
#[derive(Clone)]
pub struct LinkConfig {
    /// The `[[tak]] name`, in logs and metrics.
    pub name: String,
    pub endpoint: Endpoint,
    /// Present for `ssl://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Our own announcement ([`crate::encode::announce`]), sent first on every connect.
    pub announce: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// Our own uid on the server (in pings).
    pub self_uid: String,
    /// Which uids are our own echoes, never taken in.
    pub own: crate::Own,
    /// Hand what the server sends to the caller (`subscribe = true`).
    pub subscribe: bool,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Alerts and chats written this shortly before a connection broke are sent again
    /// ([`RESEND_WINDOW`] in production).
    pub resend_window: Duration,
}

impl LinkConfig {
    /// A link as the gateway and the hub run it: `me` announced first on every connect,
    /// reconnects backing off 250 ms … 30 s, alerts and chats of the last [`RESEND_WINDOW`]
    /// sent again after a break.
    pub fn announcing(
        name: String,
        endpoint: Endpoint,
        tls: Option<Arc<rustls::ClientConfig>>,
        me: crate::encode::Unit,
        self_uid: String,
        own: crate::Own,
        subscribe: bool,
    ) -> LinkConfig {
        LinkConfig {
            name,
            endpoint,
            tls,
            announce: Some(Arc::new(move || {
                crate::encode::announce(&me, chrono::Utc::now())
            })),
            self_uid,
            own,
            subscribe,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            resend_window: RESEND_WINDOW,
        }
    }
}
