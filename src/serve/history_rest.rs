//! `GET /api/system/history`: the node's history as a JSON array, one object per node asked
//! (`{node_id, from, to, step_ms, timestamps, series}`, see [`crate::history::query`]); the
//! node id rule of `/api/system/metrics`. The question is read and answered as gRPC's
//! `GetHistory` reads and answers it ([`super::history_query`]).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use super::history_query::{self, HistoryParams};
use super::http::{json_bytes, JsonQuery};
use super::state::RestState;
use crate::model::unix_ms;

/// The handler.
pub async fn history(
    State(state): State<RestState>,
    JsonQuery(params): JsonQuery<HistoryParams>,
) -> Response {
    let now_ms = unix_ms(std::time::SystemTime::now());
    match history_query::answer(&state.app, &params, now_ms) {
        Ok(answers) => json_bytes(serde_json::to_vec(&answers).map(Bytes::from)),
        Err(refusal) => refusal.response(),
    }
}
