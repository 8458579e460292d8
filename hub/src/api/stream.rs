//! `GET /api/v1/stream`: Server-Sent Events, one `data:` line per stored event as it is
//! stored — by any receiver of the region: receivers publish what they stored on a Redis
//! pub/sub channel (in a Redis Cluster pub/sub reaches every node), and each API process
//! subscribes once and fans out to its clients through a bounded broadcast channel. A client
//! too slow to keep up is told how many events it missed (`event: lagged`), never blocks others.

use super::ApiState;
use crate::Ctx;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use outpost::util::backoff::Backoff;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tracing::{debug, warn};

pub async fn sse(State(s): State<ApiState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = BroadcastStream::new(s.live.subscribe());
    let events = rx.map(|m| {
        Ok(match m {
            Ok(line) => Event::default().data(line),
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                Event::default().event("lagged").data(n.to_string())
            }
        })
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Subscribes to the stored-events channel and forwards every line; reconnects with backoff.
pub async fn feed(ctx: Arc<Ctx>, live: broadcast::Sender<String>) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let channel = crate::store::keys::Keys::new(&ctx.settings.redis.prefix).stream_channel();
    loop {
        match subscribe(&ctx, &channel, &live, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                if let Some(s) = ctx.log_gate("stream") {
                    warn!(error = %e, suppressed = s, "live stream subscription lost; retrying");
                }
            }
        }
        tokio::select! {
            _ = ctx.token.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

async fn subscribe(
    ctx: &Ctx,
    channel: &str,
    live: &broadcast::Sender<String>,
    backoff: &mut Backoff,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(ctx.settings.redis.urls[0].as_str())?;
    let mut ps = client.get_async_pubsub().await?;
    ps.subscribe(channel).await?;
    backoff.reset();
    debug!(channel, "live stream subscribed");
    let mut msgs = ps.on_message();
    loop {
        tokio::select! {
            _ = ctx.token.cancelled() => return Ok(()),
            m = msgs.next() => {
                let Some(m) = m else {
                    return Err(redis::RedisError::from((redis::ErrorKind::Io, "pub/sub connection closed")));
                };
                let payload: String = m.get_payload()?;
                for line in payload.lines() {
                    // No receivers is fine: nobody is watching.
                    let _ = live.send(line.to_string());
                }
            }
        }
    }
}
