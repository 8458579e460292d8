//! The `/api/v1/` routes (SPEC §7). Query parameters are parsed here so every mistake gets a
//! `400 {"error": …}` that names the parameter.

use super::{ApiError, ApiState};
use crate::store::parse_ms;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use outpost_proto::{Class, EventId};
use serde_json::{json, Value};
use std::collections::HashMap;

type Params = Query<HashMap<String, String>>;
type Answer = Result<Json<Value>, ApiError>;

/// Default and largest `limit` of `/events`.
const EVENTS_DEFAULT: usize = 1000;
const EVENTS_MAX: usize = 10_000;

pub fn v1() -> Router<ApiState> {
    Router::new()
        .route("/devices", get(devices))
        .route("/devices/{dev}", get(device))
        .route("/devices/{dev}/track", get(track))
        .route("/near", get(near))
        .route("/events", get(events))
        .route("/alerts", get(alerts))
        .route("/gateways", get(gateways))
        .route("/stream", get(super::stream::sse))
        .route("/messages", axum::routing::post(post_message))
        .route("/messages/{msg_id}", get(get_message))
}

fn required<'a>(q: &'a HashMap<String, String>, k: &str) -> Result<&'a str, ApiError> {
    q.get(k)
        .map(String::as_str)
        .ok_or_else(|| ApiError::bad(format!("missing parameter {k}")))
}

fn number(q: &HashMap<String, String>, k: &str) -> Result<f64, ApiError> {
    let v = required(q, k)?;
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| ApiError::bad(format!("{k}: {v:?} is not a number")))
}

fn time(q: &HashMap<String, String>, k: &str) -> Result<Option<i64>, ApiError> {
    match q.get(k) {
        None => Ok(None),
        Some(v) => parse_ms(v)
            .map(Some)
            .ok_or_else(|| ApiError::bad(format!("{k}: {v:?} is not an RFC 3339 time"))),
    }
}

async fn devices(State(s): State<ApiState>) -> Answer {
    Ok(Json(Value::Array(s.store()?.devices().await?)))
}

async fn device(State(s): State<ApiState>, Path(dev): Path<String>) -> Answer {
    match s.store()?.device(&dev).await? {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError::not_found(format!("no device {dev:?}"))),
    }
}

async fn near(State(s): State<ApiState>, Query(q): Params) -> Answer {
    let (lat, lon, r) = (
        number(&q, "lat")?,
        number(&q, "lon")?,
        number(&q, "radius_m")?,
    );
    if !outpost_proto::event::valid_position(lat, lon) {
        return Err(ApiError::bad("lat/lon: not a WGS84 position"));
    }
    if !(0.0..=20_037_509.0).contains(&r) {
        return Err(ApiError::bad(
            "radius_m: must be between 0 and half the Earth's circumference",
        ));
    }
    Ok(Json(Value::Array(s.store()?.near(lat, lon, r).await?)))
}

async fn events(State(s): State<ApiState>, Query(q): Params) -> Answer {
    let gw = required(&q, "gw")?;
    if !outpost_proto::topic::valid_gateway_id(gw) {
        return Err(ApiError::bad(format!("gw: {gw:?} is not a gateway id")));
    }
    let class = required(&q, "class")?;
    let class = Class::parse(class)
        .ok_or_else(|| ApiError::bad(format!("class: {class:?} is not a class")))?;
    let after = match q.get("after") {
        None => EventId::ZERO,
        Some(a) => EventId::parse(a)
            .ok_or_else(|| ApiError::bad(format!("after: {a:?} is not an event id")))?,
    };
    let limit = match q.get("limit") {
        None => EVENTS_DEFAULT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=EVENTS_MAX).contains(n))
            .ok_or_else(|| ApiError::bad(format!("limit: must be 1..={EVENTS_MAX}")))?,
    };
    let page = s.store()?.events(gw, class, after, limit).await?;
    let next = page.last().map(|(id, _)| *id).unwrap_or(after);
    let events: Vec<Value> = page.into_iter().map(|(_, e)| e).collect();
    Ok(Json(json!({"events": events, "next": next.to_string()})))
}

async fn track(State(s): State<ApiState>, Path(dev): Path<String>, Query(q): Params) -> Answer {
    let from = time(&q, "from")?.unwrap_or(i64::MIN);
    let to = time(&q, "to")?.unwrap_or(i64::MAX);
    Ok(Json(Value::Array(s.store()?.track(&dev, from, to).await?)))
}

async fn alerts(State(s): State<ApiState>, Query(q): Params) -> Answer {
    let since = time(&q, "since")?.unwrap_or(i64::MIN);
    Ok(Json(Value::Array(s.store()?.alerts(since).await?)))
}

async fn gateways(State(s): State<ApiState>) -> Answer {
    Ok(Json(Value::Array(s.store()?.gateways().await?)))
}

/// Longest text (SPEC §5: at most 4 KiB) and the default and largest `ttl`.
const TEXT_MAX: usize = 4096;
const TTL_DEFAULT: std::time::Duration = std::time::Duration::from_secs(3600);
const TTL_MAX: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// `POST /api/v1/messages` (SPEC §8): `{"gw"?, "to", "text", "ttl"?}` → 201 `{"msg_id"}`.
pub async fn post_message(
    State(s): State<ApiState>,
    axum::Extension(caller): axum::Extension<super::auth::Caller>,
    body: axum::body::Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("body is not JSON: {e}")))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str);
    let to = field("to")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad("to: missing (a device id or \"*\")"))?;
    let text = field("text").ok_or_else(|| ApiError::bad("text: missing"))?;
    if text.is_empty() || text.len() > TEXT_MAX {
        return Err(ApiError::bad(format!(
            "text: must be 1 to {TEXT_MAX} bytes, is {}",
            text.len()
        )));
    }
    let ttl = match field("ttl") {
        None => TTL_DEFAULT,
        Some(t) => humantime::parse_duration(t)
            .ok()
            .filter(|d| !d.is_zero() && *d <= TTL_MAX)
            .ok_or_else(|| ApiError::bad(format!("ttl: {t:?} is not a duration up to 7d")))?,
    };
    let store = s.store()?;
    let gw = match (field("gw"), to) {
        (Some(gw), _) => gw.to_string(),
        (None, "*") => return Err(ApiError::bad("gw: required when to is \"*\"")),
        (None, dev) => match store.device(dev).await? {
            Some(d) => d["gw"].as_str().unwrap_or_default().to_string(),
            None => return Err(ApiError::not_found(format!("unknown device {dev:?}"))),
        },
    };
    if !outpost_proto::topic::valid_gateway_id(&gw) || !store.has_gateway(&gw).await? {
        return Err(ApiError::not_found(format!("unknown gateway {gw:?}")));
    }
    if to != "*" && store.device(to).await?.is_none() {
        return Err(ApiError::not_found(format!("unknown device {to:?}")));
    }
    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
    let m = crate::store::messages::Down {
        msg_id: new_msg_id(&s.ctx.settings.id),
        gw,
        to: to.to_string(),
        text: text.to_string(),
        expires: outpost_proto::event::format_ts(expires),
        from: caller.name.clone(),
    };
    store.put_message(&m).await?;
    // Kept as pending either way: offered again when the gateway next comes online.
    let published = s.ctx.publish_down(&m).await;
    tracing::info!(msg_id = %m.msg_id, gw = %m.gw, to = %m.to, from = %caller.name, published, "message accepted");
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({"msg_id": m.msg_id})),
    ))
}

/// `GET /api/v1/messages/{msg_id}`.
pub async fn get_message(State(s): State<ApiState>, Path(id): Path<String>) -> Answer {
    match s.store()?.message(&id).await? {
        Some(m) => Ok(Json(m)),
        None => Err(ApiError::not_found(format!("no message {id:?}"))),
    }
}

/// `<hub id>-<ms>-<n>`: unique per receiver (ms since the epoch, then a process counter).
fn new_msg_id(hub: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{hub}-{}-{n}", chrono::Utc::now().timestamp_millis())
}
