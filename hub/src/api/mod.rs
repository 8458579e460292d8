//! HTTP API v1 (SPEC §7) with axum: routes in [`routes`], the live stream in [`stream`],
//! tokens in [`auth`]. Errors are `{"error": "..."}` with a 4xx/5xx status, mapped once in
//! [`ApiError`]. `/metrics` and `/healthz` need no token.

pub mod auth;
mod routes;
mod stream;

use crate::config::ApiSettings;
use crate::store::Store;
use crate::Ctx;
use auth::{Caller, Role, Tokens};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;
use tracing::{info, warn};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub ctx: Arc<Ctx>,
    tokens: Arc<RwLock<Option<Tokens>>>,
    live: broadcast::Sender<String>,
}

impl ApiState {
    fn store(&self) -> Result<&Store, ApiError> {
        self.ctx.store.get().ok_or_else(|| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "not connected to Redis yet".into(),
            )
        })
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, msg.into())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// Binds `listen` and serves until the hub's token is cancelled; returns the server task.
pub async fn serve(ctx: Arc<Ctx>, a: ApiSettings) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let tokens = match &a.token_file {
        Some(f) => Some(Tokens::load(f).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let (live, _) = broadcast::channel(4096);
    let state = ApiState {
        ctx: ctx.clone(),
        tokens: Arc::new(RwLock::new(tokens)),
        live: live.clone(),
    };
    tokio::spawn(stream::feed(ctx.clone(), live));
    if let Some(f) = a.token_file.clone() {
        tokio::spawn(reload_tokens_on_hup(state.tokens.clone(), f));
    }
    let app = Router::new()
        .nest(
            "/api/v1",
            routes::v1().layer(middleware::from_fn_with_state(state.clone(), authorize)),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(a.listen).await?;
    info!(listen = %listener.local_addr()?, "HTTP API listening");
    let token = ctx.token.clone();
    Ok(tokio::spawn(async move {
        let shutdown = async move { token.cancelled().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            warn!(error = %e, "HTTP API stopped");
        }
    }))
}

/// Bearer token check for `/api/v1/` (skipped when no token file is configured).
async fn authorize(
    State(s): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = {
        let tokens = s
            .tokens
            .read()
            .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "token lock".into()))?;
        match tokens.as_ref() {
            None => Caller {
                name: "local".into(),
                role: Role::Dispatch,
            },
            Some(t) => {
                let given = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                match given.and_then(|g| t.check(g.trim())) {
                    Some(c) => c,
                    None => {
                        return Err(ApiError(
                            StatusCode::UNAUTHORIZED,
                            "missing or unknown bearer token".into(),
                        ))
                    }
                }
            }
        }
    };
    if req.method() != Method::GET && caller.role != Role::Dispatch {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("{} has a read token", caller.name),
        ));
    }
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

async fn reload_tokens_on_hup(tokens: Arc<RwLock<Option<Tokens>>>, path: std::path::PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        match Tokens::load(&path) {
            Ok(t) => {
                if let Ok(mut g) = tokens.write() {
                    *g = Some(t);
                }
                info!(file = %path.display(), "API tokens reloaded");
            }
            Err(e) => warn!(error = %e, "API tokens not reloaded; keeping the old ones"),
        }
    }
}

async fn metrics(State(s): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.ctx.metrics.encode(),
    )
}

/// 200 when Redis answers and the broker session is up, else 503 with what is wrong.
async fn healthz(State(s): State<ApiState>) -> Response {
    let redis = match s.ctx.store.get() {
        Some(st) => st.ping().await.is_ok(),
        None => false,
    };
    let broker = s.ctx.metrics.broker_up.get() == 1;
    let body = serde_json::json!({"redis": redis, "broker": broker});
    let code = if redis && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
