//! The agent's REST API on the REST port: `/api/health`, `/api/system/info`,
//! `/api/system/metrics` (the TrackLab JSON shapes of DESIGN.md, defined in
//! [`crate::model::wire`]), `/api/system/stream` (SSE), `/api/system/history`, Prometheus
//! `/metrics`, `/api/openapi.json` (their description, `openapi/agent.json`), and `/` (the
//! dashboard, [`dashboard`]).
//!
//! Handlers read the latest snapshot and never collect; each representation is encoded once per
//! snapshot ([`EncodedCache`]). Every error is JSON `{"error": ..., ...}` with the right status.
//! The routes sit behind the [`Guard`] (Host check, size limits, CORS).

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::cache::EncodedCache;
use super::guard::Guard;
use super::http::{invalid_node_id, json_bytes, no_store, round3, JsonQuery, NodeQuery};
use super::prometheus::Format;
use super::state::{check_node_query, AppState, Health, RestState, Selected};
use super::view::{metrics_json, MetricsRequest};
use super::{dashboard, history_rest, http, openapi, stream, ws};
use crate::model::unix_ms;
use crate::model::wire::Info;

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
        .route("/api/system/history", get(history_rest::history))
        .route("/api/system/ws", get(ws::metrics_ws))
        .route("/metrics", get(prometheus_metrics))
        .route(
            "/api/openapi.json",
            get(|| async { openapi::response(openapi::Api::Agent) }),
        )
        .merge(dashboard::routes())
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

async fn info(State(state): State<RestState>, JsonQuery(query): JsonQuery<NodeQuery>) -> Response {
    let snapshot = state.app.latest();
    let requested = query.node_id.as_deref();
    match check_node_query(requested, &snapshot.node_id, state.app.node_id_origin) {
        Err(refused) => refused.response(),
        Ok(Selected::Own) => json_bytes(state.cache.info(&snapshot)),
        Ok(Selected::As(ids)) => match ids.as_slice() {
            [id] => {
                let info = Info {
                    node_id: (*id).into(),
                    ..Info::of(&snapshot)
                };
                json_bytes(serde_json::to_vec(&info).map(Bytes::from))
            }
            // The info is one object: it cannot hold several nodes.
            _ => invalid_node_id(
                requested.unwrap_or_default(),
                "/api/system/info describes one node: ask for one id",
            ),
        },
    }
}

async fn metrics(
    State(state): State<RestState>,
    MetricsRequest { node_id, view }: MetricsRequest,
) -> Response {
    let snapshot = state.app.latest();
    let requested = node_id.as_deref();
    match check_node_query(requested, &snapshot.node_id, state.app.node_id_origin) {
        Err(refused) => refused.response(),
        Ok(selected) => json_bytes(metrics_json(&state.cache, &snapshot, &selected, view)),
    }
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
