//! The HTTP answers every REST server gives (agent and coordinator): JSON errors with the right
//! status (user input in them quoted cut short, [`echo`]), pre-encoded JSON bodies, `no-store`
//! on live data.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::model::echo;

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

/// A query string read as `T`; one that does not parse is answered with a JSON 400
/// before the handler runs (axum's own `Query` answers it in plain text).
#[derive(Debug)]
pub struct JsonQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for JsonQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(query)) => Ok(JsonQuery(query)),
            Err(rejection) => Err(invalid_query(&rejection)),
        }
    }
}

/// `?node_id=ID` or `?node_id=ID1,ID2` (`/api/system/info`, agent and coordinator).
#[derive(Debug, serde::Deserialize)]
pub struct NodeQuery {
    /// The node ids asked for, not yet checked.
    pub node_id: Option<String>,
}

/// 400 for a query string that does not parse.
fn invalid_query(rejection: &QueryRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid query", "detail": rejection.body_text()}),
    )
}

/// 400 for a `node_id` parameter that is not a list of node ids.
pub fn invalid_node_id(requested: &str, reason: impl std::fmt::Display) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid node_id", "detail": reason.to_string(), "node_id": echo(requested)}),
    )
}

/// 404 for a well-formed node id this server does not know.
pub fn unknown_node_id(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        json!({"error": "unknown node_id", "node_id": echo(id)}),
    )
}

/// The fallback route: 404 naming the path.
pub async fn not_found(uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        json!({"error": "not found", "path": echo(uri.path())}),
    )
}

/// A known path with another method: 405 naming both.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": "method not allowed", "method": echo(method.as_str()), "path": echo(uri.path())}),
    )
}

/// `v` rounded to milliseconds' precision, for ages and durations in seconds.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn echoed_input_is_cut_short() {
        let long = "a/".repeat(5_000);
        let response = invalid_node_id(&long, crate::model::NodeId::parse_list(&long).unwrap_err());
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let text = body(response).await.to_string();
        assert!(text.len() < 300, "{text}");

        let uri: Uri = format!("/{}", "p".repeat(1_000)).parse().unwrap();
        let json = body(not_found(uri.clone()).await).await;
        assert_eq!(json["path"].as_str().unwrap().chars().count(), 64);
        let json = body(method_not_allowed(Method::PUT, uri).await).await;
        assert_eq!(json["path"].as_str().unwrap().chars().count(), 64);
        assert_eq!(json["method"], "PUT");
        let json = body(unknown_node_id(&"n".repeat(253))).await;
        assert_eq!(json["node_id"].as_str().unwrap().chars().count(), 64);
    }
}
