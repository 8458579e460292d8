//! Messages to devices (SPEC §8): the downlink.
//!
//! Data flow: [`hub`] (the hub's `<prefix>/<gw>/down` topic, persistent session, manual acks)
//! and `outpost send` → [`accept`] (checks, per-device targets, one Redis script with the
//! `queued`/`failed` receipts) → the queue in Redis (`store::down`) → [`dispatch`] (in order per
//! device, once the device is online; expiry) → a transport behind the [`deliver::Deliver`]
//! trait ([`mqtt`]: the device broker; [`radio`]: Meshtastic radios on USB; [`tak`]: TAK
//! contacts) → reports → receipts in the outbox (class `receipt`), drained to the hub like
//! every event.
//! Choices and guarantees: `docs/downlink.md`.

pub mod accept;
pub mod deliver;
pub mod dispatch;
pub mod hub;
pub mod mqtt;
pub mod radio;
pub mod render;
pub mod tak;

use crate::context::Context;
use deliver::{Deliver, Reporter};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Reports waiting for the dispatcher (one per message in flight; a full channel makes a
/// transport wait, it never drops a report).
const REPORTS: usize = 1024;

/// The transports this gateway has, each reporting on `reporter`.
pub fn transports(ctx: &Context, reporter: &Reporter) -> anyhow::Result<Vec<Arc<dyn Deliver>>> {
    let mut out: Vec<Arc<dyn Deliver>> = Vec::new();
    if let Some(broker) = &ctx.settings.devices_mqtt {
        let profiles: Vec<_> = ctx
            .settings
            .mqtt
            .iter()
            .map(|m| m.profile.clone())
            .collect();
        out.push(Arc::new(mqtt::MqttDeliver::start(
            broker,
            &profiles,
            reporter.clone(),
            ctx.token.clone(),
        )?));
    }
    if !ctx.settings.serial.is_empty() {
        out.push(Arc::new(radio::RadioDeliver::start(
            ctx.radios.clone(),
            reporter.clone(),
            ctx.token.clone(),
        )));
    }
    if !ctx.settings.tak.is_empty() {
        out.push(Arc::new(tak::TakDeliver::start(ctx, reporter.clone())));
    }
    Ok(out)
}

/// Runs the downlink until cancelled: the hub subscription and the dispatcher.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let profiles = Arc::new(accept::profiles(&ctx.settings));
    let (tx, rx) = mpsc::channel(REPORTS);
    let reporter = Reporter(tx);
    let transports = transports(&ctx, &reporter)?;
    let hub = tokio::spawn(hub::run(ctx.clone(), profiles.clone()));
    dispatch::Dispatcher::new(ctx.clone(), profiles, transports, rx)
        .run()
        .await;
    hub.await??;
    Ok(())
}
