//! The `[ops] listen` endpoint: `GET /metrics` and `GET /healthz`.
//!
//! Hand-written minimal HTTP/1.1 on a tokio `TcpListener` rather than a web framework: two
//! fixed GET routes, one request per connection (`Connection: close`), no bodies to parse.
//! That keeps the binary small for the ARM gateways (hyper/axum would add ~1 MiB) and the
//! attack surface tiny. Requests are bounded in size and time, connections in number.

use super::{gauges, prometheus, Ops};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Largest request head read; anything longer is answered 431.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client gets to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
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

/// Serves until cancelled.
pub async fn serve(listener: TcpListener, ops: Arc<Ops>, token: CancellationToken) {
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
        let ops = ops.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &ops).await {
                debug!(%peer, error = %e, "ops request failed");
            }
            drop(permit);
        });
    }
}

async fn handle(mut stream: TcpStream, ops: &Ops) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => {
            return respond(&mut stream, 431, "text/plain", "request too large\n").await
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return respond(&mut stream, 408, "text/plain", "request timeout\n").await,
    };
    let (status, ctype, body) = route(&head, ops).await;
    respond(&mut stream, status, ctype, &body).await
}

/// Reads up to the blank line ending the request head; `None` when it exceeds [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// (status, content type, body) for a request head.
async fn route(head: &str, ops: &Ops) -> (u16, &'static str, String) {
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" {
        return (405, "text/plain", "only GET\n".into());
    }
    match path {
        "/metrics" => {
            let redis = match ops.store() {
                Some(s) => gauges::read(s, super::now_ms()).await.ok(),
                None => None,
            };
            let healthy = ops.health().ok();
            let body = prometheus::render(&ops.metrics, redis.as_ref(), healthy);
            (200, "text/plain; version=0.0.4; charset=utf-8", body)
        }
        "/healthz" => {
            let h = ops.health();
            if h.ok() {
                (200, "text/plain", "ok\n".into())
            } else {
                (
                    503,
                    "text/plain",
                    format!("unhealthy: {}\n", h.reasons.join("; ")),
                )
            }
        }
        _ => (
            404,
            "text/plain",
            "not found (try /metrics or /healthz)\n".into(),
        ),
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    ctype: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
