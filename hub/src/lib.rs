//! # outpost-hub
//!
//! The regional hub (SPEC §7): receives the uplink protocol of every gateway in the region,
//! stores it in the region's Redis (or Redis Cluster), and serves dispatch consoles.
//!
//! # Layout
//! Data flows: `receive` → `handle` (check, dedup + store) → `store` ← `api` (query, stream).
//!
//! - [`config`]: `hub.toml`, parsed then validated (`file:line:col`).
//! - [`receive`]: the MQTT 5 session — shared subscription, manual acks after Redis stored.
//! - [`handle`]: one message — batch, gateway state or snapshot — stored or refused by reason.
//! - [`store`]: Redis layout, the per-batch history script, latest state, queries.
//! - [`api`]: HTTP API v1 (axum), `/metrics`, `/healthz`, bearer tokens.
//! - [`metrics`]: Prometheus counters and histograms.
//! - [`tak`]: `[[tak]]` outputs — the region's picture as CoT to TAK servers, TAK users in.
//! - [`sync`]: `outpost-hub sync`, anti-entropy between two regions' stores (SPEC §9).

pub mod api;
pub mod config;
pub mod handle;
pub mod metrics;
pub mod receive;
pub mod store;
pub mod sync;
pub mod tak;

use config::Settings;
use metrics::Metrics;
use outpost::util::backoff::Backoff;
use outpost::util::ratelimit::LogGate;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use store::Store;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What every component of one hub process shares (no global state: STYLE 9).
pub struct Ctx {
    pub settings: Settings,
    /// Set once Redis first answered; it reconnects by itself after that.
    pub store: OnceLock<Store>,
    pub metrics: Arc<Metrics>,
    pub token: CancellationToken,
    /// The receiver's client while its session is up: `POST /api/v1/messages` publishes
    /// down messages through it.
    pub downlink: Mutex<Option<rumqttc::v5::AsyncClient>>,
    /// The `[[tak]]` outputs' send queues, fed with what this receiver stores.
    pub tak: tak::Feed,
    gate: Mutex<LogGate>,
    /// Source of [`Ctx::attempt`] tokens: this process's start and a counter.
    attempts: (i64, std::sync::atomic::AtomicU64),
}

impl Ctx {
    pub fn new(settings: Settings, token: CancellationToken) -> Arc<Ctx> {
        Arc::new(Ctx {
            metrics: Metrics::new(&settings.id),
            settings,
            store: OnceLock::new(),
            token,
            downlink: Mutex::new(None),
            tak: tak::Feed::default(),
            gate: Mutex::new(LogGate::default()),
            attempts: (
                chrono::Utc::now().timestamp_millis(),
                std::sync::atomic::AtomicU64::new(0),
            ),
        })
    }

    /// A token naming one handling of one message (all its tries): the history script keeps
    /// its answer under it, so a try made again after a lost reply gets the first answer.
    pub fn attempt(&self) -> String {
        let n = self
            .attempts
            .1
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}:{}:{n}", self.settings.id, self.attempts.0)
    }

    /// Publishes a down message QoS 1 (SPEC §8); `false` while not connected to the broker.
    pub async fn publish_down(&self, m: &store::messages::Down) -> bool {
        let client = self.downlink.lock().ok().and_then(|c| c.clone());
        let Some(client) = client else { return false };
        let topic = outpost_proto::topic::Topics::new(&self.settings.topic_prefix).down(&m.gw);
        client
            .publish(
                topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                m.payload(),
            )
            .await
            .is_ok()
    }

    /// Rate-limits a repeated log line by `key` (counters are never rate-limited).
    pub fn log_gate(&self, key: &str) -> Option<u64> {
        self.gate.lock().ok()?.check(key)
    }
}

/// `outpost-hub run`: API, Redis, receiver, until SIGTERM/SIGINT.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    let ctx = Ctx::new(settings, token.clone());
    info!(hub = %ctx.settings.id, region = %ctx.settings.region, "outpost-hub starting");
    let api = match &ctx.settings.api {
        Some(a) => Some(api::serve(ctx.clone(), a.clone()).await?),
        None => None,
    };
    tokio::spawn(signals(token.clone()));
    let mut tak = None;
    if connect_store(&ctx).await {
        if let Some(store) = ctx.store.get() {
            tak = Some(tokio::spawn(tak::run_all(ctx.clone(), store.clone())));
        }
        receive::run(ctx.clone()).await?;
    }
    token.cancel();
    if let Some(t) = tak {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    if let Some(api) = api {
        let _ = tokio::time::timeout(Duration::from_secs(2), api).await;
    }
    info!("outpost-hub stopped");
    Ok(())
}

/// Connects to Redis, retrying with backoff; false on shutdown first.
async fn connect_store(ctx: &Ctx) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match Store::connect(&ctx.settings.redis).await {
            Ok(s) => {
                let _ = ctx.store.set(s);
                ctx.metrics.redis_up.set(1);
                info!("connected to Redis");
                return true;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                if let Some(s) = ctx.log_gate("redis-connect") {
                    warn!(error = %e, retry_in = ?delay, suppressed = s, "Redis not reachable; retrying");
                }
                tokio::select! {
                    _ = ctx.token.cancelled() => return false,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

async fn signals(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    info!("shutting down");
    token.cancel();
}
