//! The `[ops] listen` endpoint: `GET /metrics` and `GET /healthz`, an `axum` router served by
//! `hyper` (the same stack as `outpost-hub`).
//!
//! The accept loop is ours so the endpoint stays bounded the way a field gateway needs: a
//! request head of at most [`MAX_HEAD`] bytes (hyper answers 431 past it), [`READ_TIMEOUT`] to
//! send it, one request per connection (`Connection: close`: scrapers reconnect every
//! interval anyway), and at most [`MAX_CONNECTIONS`] at once (further ones are closed at
//! once; a scraper retries).

use super::{gauges, prometheus, Ops};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Largest request head read (hyper's smallest buffer limit); longer is answered 431.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client gets to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time one whole connection may take (a scrape waits for Redis at most 2 s).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections served at once; when full, new ones are closed at once (a scraper retries).
const MAX_CONNECTIONS: usize = 16;

/// Binds the endpoint (an error here is a start-up failure: the address is taken or invalid).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on [ops] listen = {addr}: {e}"))?;
    info!(addr = %l.local_addr()?, "ops endpoint listening (/metrics, /healthz)");
    Ok(l)
}

/// The routes; anything else is 404, another method on a route 405.
pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(ops)
}

/// Serves until cancelled.
pub async fn serve(listener: TcpListener, ops: Arc<Ops>, token: CancellationToken) {
    let app = router(ops);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            _ = token.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "ops accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "ops endpoint busy; connection closed");
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            serve_connection(stream, app, peer).await;
            drop(permit);
        });
    }
}

async fn serve_connection(stream: TcpStream, app: Router, peer: SocketAddr) {
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(%peer, error = %e, "ops request failed"),
        Err(_) => debug!(%peer, "ops connection timed out"),
    }
}

async fn metrics(State(ops): State<Arc<Ops>>) -> Response {
    let redis = match ops.store() {
        Some(s) => gauges::read(s, super::now_ms()).await.ok(),
        None => None,
    };
    let healthy = ops.health().ok();
    let body = prometheus::render(&ops.metrics, redis.as_ref(), healthy);
    (
        [
            (header::CONTENT_TYPE, prometheus::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn healthz(State(ops): State<Arc<Ops>>) -> Response {
    let h = ops.health();
    let (status, body) = if h.ok() {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {}\n", h.reasons.join("; ")),
        )
    };
    (status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}

async fn not_found() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "not found (try /metrics or /healthz)\n",
    )
}
