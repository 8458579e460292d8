//! TAK interoperability of the hub (SPEC §10): each `[[tak]]` output streams the region's
//! picture to a (regional) TAK server as CoT, and with `subscribe = true` takes its users in
//! as `tak:<uid>` devices. The CoT itself (encode, decode, split, queue, link) is the
//! `outpost-cot` crate the gateway uses too; this module wires it to the hub's store.
//!
//! - [`feed`]: what this receiver stored → every output's send queue.
//! - [`picture`]: the current picture from the store, first on every (re)connect.
//! - [`inbound`]: TAK users' PLIs, alerts, chats → stored under gateway `tak-<name>`.
//! - [`view`]: a device's latest state as CoT needs it.
//!
//! On the server the hub is `outpost.hub.<region>` (every receiver of the region the same
//! contact); every `outpost.…` uid the server echoes is ours, whichever gateway it came through.

pub mod feed;
pub mod inbound;
pub mod picture;
pub mod view;

pub use feed::Feed;

use crate::store::Store;
use crate::Ctx;
use outpost::config::TakOutput;
use outpost_cot::encode::Unit;
use outpost_cot::link::LinkConfig;
use std::sync::Arc;
use tracing::warn;

/// The hub's own uid on TAK servers.
pub fn self_uid(region: &str) -> String {
    format!("outpost.hub.{region}")
}

/// Runs every `[[tak]]` output until the hub stops.
pub async fn run_all(ctx: Arc<Ctx>, store: Store) {
    let outputs = ctx.settings.tak.clone();
    let runs = outputs
        .into_iter()
        .map(|o| run(ctx.clone(), store.clone(), o));
    futures_util::future::join_all(runs).await;
}

async fn run(ctx: Arc<Ctx>, store: Store, out: TakOutput) {
    let tls = if out.endpoint.tls {
        match outpost_cot::tls::client_config(
            out.ca_file.as_deref(),
            out.cert_file.as_deref(),
            out.key_file.as_deref(),
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                // Checked at start-up; a file changed since. The rest of the hub runs on.
                warn!(tak = %out.name, error = %e, "TAK output not started: TLS");
                return;
            }
        }
    } else {
        None
    };
    let figures = ctx.metrics.tak.get(&out.name);
    let queue = figures.new_queue(out.queue);
    ctx.tak.register(&queue);
    let uid = self_uid(&ctx.settings.region);
    let me = Unit {
        uid: uid.clone(),
        callsign: out.callsign.clone(),
        cot_type: "a-f-G-U-C-I".to_string(),
    };
    let cfg = LinkConfig::announcing(
        out.name.clone(),
        out.endpoint.clone(),
        tls,
        me,
        uid.clone(),
        outpost_cot::Own::AnyOutpost,
        out.subscribe,
    );
    let picture = Arc::new(picture::StorePicture {
        store: store.clone(),
    });
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let link = outpost_cot::link::run(
        cfg,
        queue,
        picture,
        tx,
        figures.link.clone(),
        ctx.token.clone(),
    );
    let gw = inbound::pseudo_gateway(&out.name);
    tokio::join!(link, inbound::run(ctx.clone(), store, gw, uid, rx));
}
