//! The poller of `system_monitor top`: finds out whether the server is an agent or a
//! coordinator (`/api/cluster/info` answers only on a coordinator), then fetches
//! `/api/system/metrics` (and, on a coordinator, `/api/cluster/info`) every refresh — for a
//! coordinator's list, only its nodes' headlines (`?view=headline`) — back-fills
//! the sparklines from `/api/system/history` once per connection and node where the server
//! keeps history, and reports a server that went away with a growing backoff.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use axum::body::Bytes;
use reqwest::StatusCode;
use tokio::sync::watch;

use crate::auth::Token;
use crate::history::flatten::Number;
use crate::history::Answer;
use crate::http_client;
use crate::serve::history_query::answers_from_json;

use super::series::{self, element_in};

/// The largest answer read (a coordinator's metrics array of many nodes).
const BODY_LIMIT: usize = 256 * 1024 * 1024;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest wait between two tries at a server that does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The longest `fields=` list asked of `/api/system/history` (the servers refuse request
/// targets over 8 KiB).
const MAX_FIELDS_CHARS: usize = 6000;

/// What the server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One node: an agent (or a local monitor).
    Agent,
    /// A coordinator: many nodes.
    Coordinator,
}

/// What the poller tells the view.
#[derive(Debug)]
pub enum Update {
    /// One round's answers.
    Round(Round),
    /// Past samples for the sparklines of `node` (`None`: the agent's own).
    History {
        node: Option<String>,
        series: BTreeMap<String, Vec<(i64, f64)>>,
    },
    /// The server did not answer (or answered an error); the next try is in `retry_in`.
    Down { error: String, retry_in: Duration },
    /// SIGTERM, SIGHUP or SIGINT: quit as `q` does, giving the terminal back.
    Stop,
}

/// One round's answers.
#[derive(Debug, Clone)]
pub struct Round {
    pub mode: Mode,
    /// The `/api/system/metrics` array: on a coordinator, every node's headline
    /// (`?view=headline`), or only the drilled-into node's element (`?node_id=`; empty when the
    /// coordinator has no data for it).
    pub metrics: Bytes,
    /// The node drilled into when the round was fetched (coordinator).
    pub focus: Option<String>,
    /// `/api/cluster/info`, on a coordinator.
    pub cluster: Option<Bytes>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Request(String),
    #[error(
        "{path}: 401 unauthorized (the read token: --auth-token-file or SYSTEM_MONITOR_AUTH_TOKEN)"
    )]
    Unauthorized { path: String },
    #[error("{path}: HTTP {status}: {body}")]
    Status {
        path: String,
        status: StatusCode,
        body: String,
    },
    #[error(transparent)]
    Body(#[from] http_client::BodyError),
}

/// Asks one server.
pub struct Poller {
    client: reqwest::Client,
    /// The REST base URL, without a trailing `/`.
    base: String,
    token: Option<Token>,
    refresh: Duration,
}

impl Poller {
    pub fn new(
        client: reqwest::Client,
        base: String,
        token: Option<Token>,
        refresh: Duration,
    ) -> Self {
        Self {
            client,
            base,
            token,
            refresh,
        }
    }

    /// Polls until the view is gone (`updates` or `focus` closed). `focus` is the node the view
    /// drills into on a coordinator: its history is back-filled when it changes.
    pub async fn run(
        self,
        updates: mpsc::Sender<Update>,
        mut focus: watch::Receiver<Option<String>>,
    ) {
        let mut mode = None;
        // The node whose history was back-filled on this connection (`Some(None)`: the agent).
        let mut backfilled: Option<Option<String>> = None;
        let mut backoff = self.refresh;
        loop {
            let wanted = focus.borrow_and_update().clone();
            let wait = match self.round(&mut mode, wanted.as_deref()).await {
                Ok(round) => {
                    backoff = self.refresh;
                    let history_of = match round.mode {
                        Mode::Agent => Some(None),
                        Mode::Coordinator => wanted.map(Some),
                    };
                    let fields = match &history_of {
                        Some(node) if backfilled.as_ref() != Some(node) => {
                            history_fields(&round.metrics, node.as_deref())
                        }
                        _ => None,
                    };
                    if updates.send(Update::Round(round)).is_err() {
                        return;
                    }
                    if let (Some(fields), Some(node)) = (fields, history_of) {
                        if let Some(series) = self.history(node.as_deref(), &fields).await {
                            let update = Update::History {
                                node: node.clone(),
                                series,
                            };
                            if updates.send(update).is_err() {
                                return;
                            }
                        }
                        backfilled = Some(node);
                    }
                    self.refresh
                }
                Err(error) => {
                    mode = None;
                    backfilled = None;
                    let retry_in = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF.max(self.refresh));
                    let update = Update::Down {
                        error: error.to_string(),
                        retry_in,
                    };
                    if updates.send(update).is_err() {
                        return;
                    }
                    retry_in
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = focus.changed() => if changed.is_err() { return },
            }
        }
    }

    /// One round: the mode (found out first), the metrics, and on a coordinator its nodes.
    async fn round(
        &self,
        mode: &mut Option<Mode>,
        focus: Option<&str>,
    ) -> Result<Round, FetchError> {
        let cluster = match mode {
            Some(Mode::Agent) => None,
            _ => self.get("/api/cluster/info").await?,
        };
        let found = if cluster.is_some() {
            Mode::Coordinator
        } else {
            Mode::Agent
        };
        *mode = Some(found);
        let focus = focus.filter(|_| found == Mode::Coordinator);
        let metrics = match focus {
            // A node the coordinator no longer has (or has no data from yet): none.
            Some(node) => self
                .get(&format!("/api/system/metrics?node_id={node}"))
                .await?
                .unwrap_or_else(|| Bytes::from_static(b"[]")),
            None => {
                let path = match found {
                    Mode::Agent => "/api/system/metrics",
                    // The list shows a few figures of each node: not every node's element.
                    Mode::Coordinator => "/api/system/metrics?view=headline",
                };
                self.get(path).await?.ok_or_else(|| FetchError::Status {
                    path: "/api/system/metrics".into(),
                    status: StatusCode::NOT_FOUND,
                    body: "not a system_monitor".into(),
                })?
            }
        };
        Ok(Round {
            mode: found,
            metrics,
            cluster,
            focus: focus.map(str::to_string),
        })
    }

    /// The body of `GET path`; `None` on 404.
    async fn get(&self, path: &str) -> Result<Option<Bytes>, FetchError> {
        let mut request = self
            .client
            .get(format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT);
        if let Some(token) = &self.token {
            request = request.header(reqwest::header::AUTHORIZATION, token.header_value());
        }
        let response = request
            .send()
            .await
            .map_err(|e| FetchError::Request(http_client::describe(&e)))?;
        let status = response.status();
        let path = path.split('?').next().unwrap_or(path).to_string();
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED => Err(FetchError::Unauthorized { path }),
            s if s.is_success() => Ok(Some(http_client::read_body(response, BODY_LIMIT).await?)),
            _ => {
                let body = http_client::read_body(response, 4096)
                    .await
                    .unwrap_or_default();
                let body = String::from_utf8_lossy(&body).chars().take(200).collect();
                Err(FetchError::Status { path, status, body })
            }
        }
    }

    /// `node`'s past samples of `fields`, where the server keeps history; `None` where it does
    /// not (404, an error, an answer that is not history).
    async fn history(
        &self,
        node: Option<&str>,
        fields: &str,
    ) -> Option<BTreeMap<String, Vec<(i64, f64)>>> {
        let mut path = format!("/api/system/history?fields={fields}");
        if let Some(node) = node {
            path.push_str("&node_id=");
            path.push_str(node);
        }
        let body = self.get(&path).await.ok()??;
        let answer = answers_from_json(&body).ok()?.into_iter().next()?;
        Some(sparkline_points(answer))
    }
}

/// Each series of a history answer as (time, value) points, nulls and non-finite values left
/// out.
fn sparkline_points(answer: Answer) -> BTreeMap<String, Vec<(i64, f64)>> {
    let timestamps = answer.timestamps;
    answer
        .series
        .into_iter()
        .map(|(field, values)| {
            let points = timestamps
                .iter()
                .zip(values)
                .filter_map(|(&t, v)| {
                    v.map(Number::as_f64)
                        .filter(|v| v.is_finite())
                        .map(|v| (t, v))
                })
                .collect();
            (field, points)
        })
        .collect()
}

/// The `fields=` of the history request for `node` of `metrics` (the sparklines' series), or
/// `None` when the node is not in it.
fn history_fields(metrics: &[u8], node: Option<&str>) -> Option<String> {
    let element = element_in(metrics, node)?;
    let mut fields = String::new();
    for (path, _) in series::values(&element) {
        if fields.len() + path.len() + 1 > MAX_FIELDS_CHARS {
            break;
        }
        if !fields.is_empty() {
            fields.push(',');
        }
        fields.push_str(&path);
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_answers_become_sparkline_points() {
        let body = br#"[{"node_id":"n","from":0,"to":3000,"step_ms":1000,
            "timestamps":[1000,2000,3000],
            "series":{"cpu.overall":[1.5,null,2.5],"memory.used":[10,20,30]}}]"#;
        let answer = answers_from_json(body).unwrap().remove(0);
        let points = sparkline_points(answer);
        assert_eq!(points["cpu.overall"], [(1000, 1.5), (3000, 2.5)]);
        assert_eq!(
            points["memory.used"],
            [(1000, 10.0), (2000, 20.0), (3000, 30.0)]
        );
        assert!(answers_from_json(b"[{\"series\":{}}]").is_err());
    }
}
