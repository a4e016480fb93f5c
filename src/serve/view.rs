//! `?view=` of `/api/system/metrics` and `/api/system/ws`, on the agent and the coordinator
//! alike: `full` (the default, the element as the contract defines it) or `headline` (what a
//! list of many nodes shows of each, [`crate::model::wire::Headline`]).

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::http::error;
use crate::model::echo;

/// The query string of `/api/system/metrics` and `/api/system/ws`.
#[derive(Debug, Default, Deserialize)]
pub struct MetricsQuery {
    /// The node ids asked for (`ID[,ID…]`); every node without it.
    pub node_id: Option<String>,
    /// `full` or `headline`; `full` without it.
    pub view: Option<String>,
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
