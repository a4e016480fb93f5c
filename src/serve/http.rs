//! The HTTP answers every REST server gives (agent and coordinator): JSON errors with the right
//! status, pre-encoded JSON bodies, `no-store` on live data.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A JSON error: `body` is `{"error": ..., ...}`.
pub fn error(status: StatusCode, body: serde_json::Value) -> Response {
    (status, no_store(), axum::Json(body)).into_response()
}

/// Live data must not be cached by browsers or proxies.
pub fn no_store() -> [(header::HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

/// A 200 JSON response from pre-encoded bytes, or a JSON 500 when encoding failed (a bug: the
/// wire types have no maps with non-string keys and no non-finite floats).
pub fn json_bytes(encoded: Result<Bytes, serde_json::Error>) -> Response {
    match encoded {
        Ok(body) => (
            no_store(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("encoding a REST response failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "encoding failed", "detail": e.to_string()}),
            )
        }
    }
}

/// 400 for a query string that does not parse.
pub fn invalid_query(rejection: &QueryRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid query", "detail": rejection.body_text()}),
    )
}

/// 400 for a `node_id` parameter that is not a list of node ids.
pub fn invalid_node_id(requested: &str, reason: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid node_id", "detail": reason, "node_id": requested}),
    )
}

/// The fallback route: 404 naming the path.
pub async fn not_found(uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        json!({"error": "not found", "path": uri.path()}),
    )
}

/// A known path with another method: 405 naming both.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": "method not allowed", "method": method.as_str(), "path": uri.path()}),
    )
}

/// `v` rounded to milliseconds' precision, for ages and durations in seconds.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
