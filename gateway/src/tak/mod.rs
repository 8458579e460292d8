//! TAK interoperability (SPEC §10): each `[[tak]]` output streams the gateway's picture to a
//! TAK server as CoT, with or without the uplink, and with `subscribe = true` takes TAK users
//! in as `tak:<uid>` devices. The CoT itself (encode, decode, split, queue, link) is the
//! `outpost-cot` crate the hub uses too; this module wires it to the gateway's store.
//!
//! - [`feed`]: accepted events → every output's send queue (the downlink's chat API too).
//! - [`picture`]: the current picture from the store, first on every (re)connect.
//! - [`inbound`]: TAK users' PLIs, alerts, chats → the accept path.

pub mod feed;
pub mod inbound;
pub mod picture;

pub use feed::{Delivered, Feed};

use crate::config::TakOutput;
use crate::context::Context;
use anyhow::Context as _;
use outpost_cot::link::LinkConfig;
use std::sync::Arc;

/// Runs one `[[tak]]` output until the gateway stops or the output is reconfigured.
pub async fn run(ctx: Context, out: TakOutput) -> anyhow::Result<()> {
    let tls = if out.endpoint.tls {
        let c = outpost_cot::tls::client_config(
            out.ca_file.as_deref(),
            out.cert_file.as_deref(),
            out.key_file.as_deref(),
        )
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("tak {}", out.name))?;
        Some(c)
    } else {
        None
    };
    // Figures by output name, kept across reloads (`outpost_tak_*` on /metrics).
    let figures = ctx.metrics.tak.get(&out.name);
    let queue = figures.new_queue(out.queue);
    ctx.tak.register(&queue);
    let picture = Arc::new(picture::StorePicture {
        store: ctx.store.clone(),
        settings: ctx.settings.clone(),
    });
    let me = feed::self_unit(&ctx.settings, &out.callsign);
    let cfg = LinkConfig::announcing(
        out.name.clone(),
        out.endpoint.clone(),
        tls,
        me,
        outpost_cot::self_uid(&ctx.settings.gateway_id),
        outpost_cot::Own::Gateway(ctx.settings.gateway_id.clone()),
        out.subscribe,
    );
    let stats = figures.link.clone();
    ctx.tak.register_link(&stats);
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let link = outpost_cot::link::run(cfg, queue, picture, tx, stats, ctx.token.clone());
    tokio::join!(link, inbound::run(ctx.clone(), rx));
    Ok(())
}
