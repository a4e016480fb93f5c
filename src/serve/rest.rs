//! The agent's REST API on the REST port: `/api/health`, `/api/system/info`,
//! `/api/system/metrics` (the TrackLab JSON shapes of DESIGN.md, defined in
//! [`crate::model::wire`]), `/api/system/stream` (SSE), and Prometheus `/metrics`.
//!
//! Handlers read the latest snapshot and never collect; each representation is encoded once per
//! snapshot ([`EncodedCache`]). Every error is JSON `{"error": ..., ...}` with the right status.

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
use tower_http::cors::CorsLayer;

use super::cache::EncodedCache;
use super::http::{error, invalid_node_id, invalid_query, json_bytes, no_store, round3};
use super::prometheus::Format;
use super::state::{AppState, Health, RestState};
use super::{http, stream};
use crate::model::{unix_ms, NodeId};

/// The REST routes.
pub fn router(state: AppState) -> Router {
    let state = RestState {
        app: state,
        cache: Arc::new(EncodedCache::default()),
    };
    Router::new()
        .route("/api/health", get(health))
        .route("/api/system/info", get(info))
        .route("/api/system/metrics", get(metrics))
        .route("/api/system/stream", get(stream::metrics_stream))
        .route("/metrics", get(prometheus_metrics))
        .method_not_allowed_fallback(http::method_not_allowed)
        .fallback(http::not_found)
        .layer(CorsLayer::permissive())
        .with_state(state)
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

async fn info(State(state): State<RestState>) -> Response {
    json_bytes(state.cache.info(&state.app.latest()))
}

/// `?node_id=ID` or `?node_id=ID1,ID2`.
#[derive(Debug, Deserialize)]
struct MetricsQuery {
    node_id: Option<String>,
}

async fn metrics(
    State(state): State<RestState>,
    query: Result<Query<MetricsQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return invalid_query(&rejection),
    };
    let snapshot = state.app.latest();
    if let Some(requested) = &query.node_id {
        let ids = match NodeId::parse_list(requested) {
            Ok(ids) => ids,
            Err(reason) => return invalid_node_id(requested, &reason),
        };
        // An agent knows one node: every listed id must be it.
        if let Some(unknown) = ids.iter().find(|id| **id != snapshot.node_id) {
            return error(
                StatusCode::NOT_FOUND,
                json!({"error": "unknown node_id", "node_id": unknown}),
            );
        }
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
