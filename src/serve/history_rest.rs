//! `GET /api/system/history`: the node's history as a JSON array, one object per node asked
//! (`{node_id, from, to, step_ms, timestamps, series}`, see [`crate::history::query`]); the
//! node id rule of `/api/system/metrics`.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::http::{error, invalid_query, json_bytes};
use super::state::{RestState, Selected};
use crate::history::{self, HistoryError};
use crate::model::unix_ms;

/// The query string of `/api/system/history`.
#[derive(Debug, Deserialize)]
pub struct HistoryParams {
    /// One id or a comma list, as on `/api/system/metrics`.
    pub node_id: Option<String>,
    /// Unix ms; default `to` − 15 min.
    pub from: Option<i64>,
    /// Unix ms; default now.
    pub to: Option<i64>,
    /// `10s`, `5m`, `1h`, or seconds; default: native resolution up to 1,000 points.
    pub step: Option<String>,
    /// Comma-separated dotted paths (a trailing `*` takes every field under a prefix).
    pub fields: Option<String>,
    /// `mean` (default), `min` or `max`.
    pub agg: Option<String>,
}

impl HistoryParams {
    /// The checked question, defaults filled at `now_ms`.
    pub fn query(&self, now_ms: i64) -> Result<history::Query, history::QueryError> {
        history::Query::new(
            self.from,
            self.to,
            self.step.as_deref(),
            self.fields.as_deref(),
            self.agg.as_deref(),
            now_ms,
        )
    }
}

/// A history error as the JSON answer it gets: 400 for a bad question, 500 (a damaged block:
/// a bug, or memory gone bad) otherwise.
pub fn history_error(e: &HistoryError) -> Response {
    match e {
        HistoryError::Query(q) => error(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid history query", "detail": q.to_string()}),
        ),
        other => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "history unreadable", "detail": other.to_string()}),
        ),
    }
}

/// The handler.
pub async fn history(
    State(state): State<RestState>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => return invalid_query(&rejection),
    };
    let snapshot = state.app.latest();
    let requested = params.node_id.as_deref();
    let names: Vec<&str> = match super::state::check_node_query(
        requested,
        &snapshot.node_id,
        state.app.node_id_origin,
    ) {
        Err(refused) => return refused.response(),
        Ok(Selected::Own) => vec![&snapshot.node_id],
        Ok(Selected::As(ids)) => ids,
    };
    let query = match params.query(unix_ms(std::time::SystemTime::now())) {
        Ok(query) => query,
        Err(e) => return history_error(&HistoryError::Query(e)),
    };
    let mut answers = Vec::with_capacity(names.len());
    for name in names {
        match state.app.history.query(name, &query) {
            Ok(answer) => answers.push(answer),
            Err(e) => return history_error(&e),
        }
    }
    json_bytes(serde_json::to_vec(&answers).map(Bytes::from))
}
