//! `outpost send`: queue a message for a device locally, without the hub (SPEC §8). It goes
//! through the same checks and Redis script as a message from the hub's `down` topic; the
//! running daemon delivers it and its receipts go up with the outbox.

use crate::config::Settings;
use crate::downlink::accept::{accept, profiles, Accepted};
use crate::store::down::Target;
use crate::store::Store;
use chrono::Utc;
use outpost_proto::down::{DownMessage, Kind};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// What to send.
pub struct SendArgs {
    pub to: String,
    pub ttl: Duration,
    pub text: String,
    /// Ask for a position (OwnTracks) instead of sending text.
    pub locate: bool,
}

/// Runs `outpost send`; exit 1 when the message was refused for every device.
pub fn send(config: &Path, args: SendArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(config)?;
    if args.text.len() > crate::event::MAX_TEXT_BYTES {
        return Err(super::InvalidInput(format!(
            "text is {} bytes, at most {} are allowed",
            args.text.len(),
            crate::event::MAX_TEXT_BYTES
        ))
        .into());
    }
    let now = Utc::now();
    let m = DownMessage {
        msg_id: format!(
            "{}-{}-{:04x}",
            settings.gateway_id,
            now.timestamp_millis(),
            rand::random::<u16>()
        ),
        to: args.to,
        text: args.text,
        expires: now + chrono::Duration::from_std(args.ttl)?,
        from: format!("outpost send@{}", settings.gateway_id),
        kind: if args.locate {
            Kind::Locate
        } else {
            Kind::Text
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(async {
        let store = tokio::time::timeout(
            Duration::from_secs(5),
            Store::connect(&settings.redis_url, &settings.prefix, settings.max_events),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!("cannot reach Redis at {}: timed out", settings.redis_url)
        })??;
        anyhow::Ok(accept(&store, &profiles(&settings), &m, now).await?)
    })?;
    let Accepted::Stored(targets) = outcome else {
        anyhow::bail!("unexpected: {outcome:?}");
    };
    let mut text = format!("msg_id {}\n", m.msg_id);
    let mut queued = 0;
    for t in &targets {
        match t {
            Target::Queue(d) => {
                queued += 1;
                text.push_str(&format!("  {d}: queued\n"));
            }
            Target::Fail(d, r) => text.push_str(&format!("  {d}: failed ({r})\n")),
        }
    }
    super::print_stdout(&text)?;
    Ok(if queued > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
