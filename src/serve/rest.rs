//! The agent's REST API on the REST port: `/api/health`, `/api/system/info`,
//! `/api/system/metrics` (the TrackLab JSON shapes of DESIGN.md, defined in
//! [`crate::model::wire`]), `/api/system/stream` (SSE), and Prometheus `/metrics`.
//!
//! Handlers read the latest snapshot and never collect; each representation is encoded once per
//! snapshot ([`EncodedCache`]). Every error is JSON `{"error": ..., ...}` with the right status.
//! The routes sit behind the [`Guard`] (Host check, size limits, CORS).

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::cache::EncodedCache;
use super::guard::Guard;
use super::http::{invalid_node_id, invalid_query, json_bytes, no_store, round3, unknown_node_id};
use super::prometheus::Format;
use super::state::{AppState, Health, RestState};
use super::{http, stream};
use crate::model::{unix_ms, NodeId};

/// The REST routes, behind `guard`.
pub fn router(state: AppState, guard: &Guard) -> Router {
    let state = RestState {
        app: state,
        cache: Arc::new(EncodedCache::default()),
    };
    let router = Router::new()
        .route("/api/health", get(health))
        .route("/api/system/info", get(info))
        .route("/api/system/metrics", get(metrics))
        .route("/api/system/stream", get(stream::metrics_stream))
        .route("/metrics", get(prometheus_metrics))
        .method_not_allowed_fallback(http::method_not_allowed)
        .fallback(http::not_found);
    guard.apply(router.with_state(state))
}

/// 200 while the sampler is live and every collector behind the contract's fields works (other
/// failed collectors listed as `degraded`); 503 naming the reason otherwise.
async fn health(State(state): State<RestState>) -> Response {
    let snapshot = state.app.latest();
    let now = SystemTime::now();
    let age_ms = unix_ms(now).saturating_sub(snapshot.timestamp_ms).max(0);
    let uptime = now
        .duration_since(state.app.started_at)
        .unwrap_or_default()
        .as_secs_f64();
    let health = Health::of(&snapshot, state.app.stale_reason(&snapshot));
    let reason = health.reason();
    let mut body = json!({
        "status": if reason.is_some() { "unhealthy" } else { "healthy" },
        "service": "system_monitor",
        "timestamp": humantime::format_rfc3339_millis(now).to_string(),
        "node_id": snapshot.node_id,
        "version": crate::VERSION,
        "uptime_seconds": round3(uptime),
        "last_sample_age_seconds": round3(age_ms as f64 / 1000.0),
        "interval_seconds": state.app.interval.as_secs_f64(),
        "failing": health.failing,
        "degraded": health.degraded,
    });
    let status = match reason {
        None => StatusCode::OK,
        Some(reason) => {
            body["reason"] = json!(reason);
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    (status, no_store(), axum::Json(body)).into_response()
}

/// `?node_id=ID` or `?node_id=ID1,ID2` on `/api/system/info` and `/api/system/metrics`.
#[derive(Debug, Deserialize)]
struct NodeQuery {
    node_id: Option<String>,
}

/// The node id rule of both endpoints: without `node_id`, this node; with it, every listed id
/// must be well-formed (else 400) and this node's (else 404: an agent knows one node). Returns
/// the refusal, if any.
fn check_node_query(
    query: Result<Query<NodeQuery>, QueryRejection>,
    own: &str,
) -> Option<Response> {
    let requested = match query {
        Ok(Query(NodeQuery {
            node_id: Some(requested),
        })) => requested,
        Ok(_) => return None,
        Err(rejection) => return Some(invalid_query(&rejection)),
    };
    match NodeId::parse_list(&requested) {
        Err(reason) => Some(invalid_node_id(&requested, reason)),
        Ok(ids) => ids.into_iter().find(|id| *id != own).map(unknown_node_id),
    }
}

async fn info(
    State(state): State<RestState>,
    query: Result<Query<NodeQuery>, QueryRejection>,
) -> Response {
    let snapshot = state.app.latest();
    if let Some(refusal) = check_node_query(query, &snapshot.node_id) {
        return refusal;
    }
    json_bytes(state.cache.info(&snapshot))
}

async fn metrics(
    State(state): State<RestState>,
    query: Result<Query<NodeQuery>, QueryRejection>,
) -> Response {
    let snapshot = state.app.latest();
    if let Some(refusal) = check_node_query(query, &snapshot.node_id) {
        return refusal;
    }
    json_bytes(state.cache.metrics(&snapshot))
}

async fn prometheus_metrics(State(state): State<RestState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let body = state.cache.prometheus(&state.app.latest(), format);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}
