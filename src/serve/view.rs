//! `?view=` of `/api/system/metrics` and `/api/system/ws`, on the agent and the coordinator
//! alike: `full` (the default, the element as the contract defines it) or `headline` (what a
//! list of many nodes shows of each, [`crate::model::wire::Headline`]); and the agent's array
//! in either ([`metrics_json`]).

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::cache::EncodedCache;
use super::http::{error, JsonQuery};
use super::state::Selected;
use crate::model::wire::{headline_array_json, metrics_array_json_as};
use crate::model::{echo, Snapshot};

/// The query string of `/api/system/metrics` and `/api/system/ws`.
#[derive(Debug, Default, Deserialize)]
pub struct MetricsQuery {
    /// The node ids asked for (`ID[,ID…]`); every node without it.
    pub node_id: Option<String>,
    /// `full` or `headline`; `full` without it.
    pub view: Option<String>,
}

/// The checked query of `/api/system/metrics` and `/api/system/ws` (both modes): a handler that
/// takes it answers a malformed query or an unknown view with 400 JSON before it runs.
#[derive(Debug)]
pub struct MetricsRequest {
    /// The node ids asked for (`ID[,ID…]`), not yet checked against the nodes.
    pub node_id: Option<String>,
    /// The form of each node.
    pub view: View,
}

impl<S: Send + Sync> FromRequestParts<S> for MetricsRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let JsonQuery(query) = JsonQuery::<MetricsQuery>::from_request_parts(parts, state).await?;
        let view = View::parse(query.view.as_deref()).map_err(|refused| refused.response())?;
        Ok(MetricsRequest {
            node_id: query.node_id,
            view,
        })
    }
}

/// Which form of each node the array holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// The metrics element (the contract).
    #[default]
    Full,
    /// The element's headline figures ([`crate::model::wire::Headline`]).
    Headline,
}

impl View {
    /// The view `?view=` names (`full` without it).
    pub fn parse(text: Option<&str>) -> Result<View, InvalidView> {
        match text {
            None | Some("full") => Ok(View::Full),
            Some("headline") => Ok(View::Headline),
            Some(other) => Err(InvalidView(other.to_string())),
        }
    }
}

/// A `view` that is neither `full` nor `headline` (what was asked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("view is full (the default) or headline")]
pub struct InvalidView(String);

impl InvalidView {
    /// Its answer: 400 `{"error":"invalid view","detail":…,"view":…}`.
    pub fn response(&self) -> Response {
        error(
            StatusCode::BAD_REQUEST,
            json!({
                "error": "invalid view",
                "detail": self.to_string(),
                "view": echo(&self.0),
            }),
        )
    }
}

/// The agent's metrics array of `snapshot` for the ids `selected` in `view`: what its
/// `/api/system/metrics` answers and its `/api/system/ws` sends.
pub fn metrics_json(
    cache: &EncodedCache,
    snapshot: &Snapshot,
    selected: &Selected<'_>,
    view: View,
) -> Result<Bytes, serde_json::Error> {
    match (selected, view) {
        (Selected::Own, View::Full) => cache.metrics(snapshot),
        (Selected::Own, View::Headline) => cache.headline(snapshot),
        // Encoded for the request, not cached: only a monitor not named with --node-id answers
        // so, and its clients are few (TrackLab's SDK and UI on the same machine).
        (Selected::As(ids), View::Full) => metrics_array_json_as(snapshot, ids).map(Bytes::from),
        (Selected::As(ids), View::Headline) => {
            headline_array_json(&metrics_array_json_as(snapshot, ids)?).map(Bytes::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_full_or_headline() {
        assert_eq!(View::parse(None).ok(), Some(View::Full));
        assert_eq!(View::parse(Some("full")).ok(), Some(View::Full));
        assert_eq!(View::parse(Some("headline")).ok(), Some(View::Headline));
        for bad in ["", "Headline", "summary", "headline,full"] {
            let refused = View::parse(Some(bad)).err().map(|r| r.response().status());
            assert_eq!(refused, Some(StatusCode::BAD_REQUEST), "{bad:?}");
        }
    }
}
