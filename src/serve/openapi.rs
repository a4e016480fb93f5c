//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the REST API, agent's or coordinator's.
//!
//! The documents are written by hand in `openapi/` and embedded: `agent.json` and
//! `coordinator.json` hold each server's paths, and both point into `components.json` for the
//! schemas they share (the metrics element, the info object, the error bodies). Served, each is
//! made whole once: the shared components put in, their references made local. CI checks the
//! served documents against the running servers with schemathesis (tests/python/test_openapi.py),
//! and a unit test checks that every field the JSON encoders write is in a schema.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::http::{error, json_bytes};

/// The schemas, responses and parameters both documents use.
const COMPONENTS: &str = include_str!("../../openapi/components.json");
/// The agent's paths.
const AGENT: &str = include_str!("../../openapi/agent.json");
/// The coordinator's paths.
const COORDINATOR: &str = include_str!("../../openapi/coordinator.json");
/// How the documents point into `components.json`, and what that becomes in one document.
const EXTERNAL_REF: &str = "components.json#/";
const LOCAL_REF: &str = "#/";

/// Whose API a document describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Local and agent mode.
    Agent,
    /// `system_monitor coordinator`.
    Coordinator,
}

/// The `/api/openapi.json` answer for `api`.
pub fn response(api: Api) -> Response {
    match document(api) {
        Ok(bytes) => json_bytes(Ok(bytes.clone())),
        Err(e) => {
            tracing::error!("the embedded OpenAPI document is broken: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "encoding failed", "detail": e.to_string()}),
            )
        }
    }
}

/// `api`'s document as JSON bytes, made once. An error is a broken embedded file (a unit test
/// parses both); it is answered as the JSON 500 of any encoding failure.
pub fn document(api: Api) -> &'static Result<Bytes, std::sync::Arc<serde_json::Error>> {
    static AGENT_DOC: OnceLock<Result<Bytes, std::sync::Arc<serde_json::Error>>> = OnceLock::new();
    static COORDINATOR_DOC: OnceLock<Result<Bytes, std::sync::Arc<serde_json::Error>>> =
        OnceLock::new();
    let (cell, paths) = match api {
        Api::Agent => (&AGENT_DOC, AGENT),
        Api::Coordinator => (&COORDINATOR_DOC, COORDINATOR),
    };
    cell.get_or_init(|| {
        whole(paths)
            .and_then(|doc| serde_json::to_vec(&doc))
            .map(Bytes::from)
            .map_err(std::sync::Arc::new)
    })
}

/// The document of `paths` with the shared components in it.
fn whole(paths: &str) -> Result<serde_json::Value, serde_json::Error> {
    let mut doc: serde_json::Value = serde_json::from_str(paths)?;
    let mut components: serde_json::Value = serde_json::from_str(COMPONENTS)?;
    if let Some(object) = doc.as_object_mut() {
        object.insert("components".into(), components["components"].take());
    }
    localise(&mut doc);
    Ok(doc)
}

/// Makes every `$ref` into `components.json` a reference within the document.
fn localise(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match item {
                    serde_json::Value::String(target) if key == "$ref" => {
                        if let Some(rest) = target.strip_prefix(EXTERNAL_REF) {
                            *target = format!("{LOCAL_REF}{rest}");
                        }
                    }
                    other => localise(other),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(localise),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
