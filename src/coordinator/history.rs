//! History on the coordinator. A node's `/api/system/history` (and gRPC `GetHistory`) is asked
//! of its agent, the question checked here first by the agent's own parser
//! ([`HistoryParams`]) and its window fixed, several nodes at once; the coordinator keeps no
//! node's history but its own host's (`--sample-self`). An offline node's is a 409 naming it.
//! The cluster's own history ([`super::cluster_history`]) is served at `/api/cluster/history`
//! in the same shape.

use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::poller::{agent_url, AgentRequest};
use super::registry::{Role, Status};
use super::state::ClusterState;
use crate::history::{Answer, HistoryError};
use crate::http_client::{self, BodyError};
use crate::model::{echo, unix_ms, NodeId};
use crate::serve::history_query::{
    answers_from_json, history_error, history_status, question_error, question_status,
    HistoryParams, QuestionError,
};
use crate::serve::http::{error, invalid_node_id, json_bytes, no_store, JsonQuery};

/// The agents' history path.
const HISTORY_PATH: &str = "api/system/history";

/// The largest history answer read from an agent: a week of every field of a large host at a
/// 10-minute step is about 10 MiB of JSON.
pub const ANSWER_LIMIT: usize = 32 * 1024 * 1024;

/// The most distinct nodes one question may name: each answer is held until all have come.
pub const MAX_NODES: usize = 32;

/// The least time an agent has to answer a history question (`--poll-timeout` when longer):
/// a long window of many fields costs an agent more than its latest sample does.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(10);

/// One node's history, as found.
pub enum NodeAnswer {
    /// The coordinator's own host's, from its own history.
    Kept(Answer),
    /// An agent's `/api/system/history` JSON: an array holding the node's one answer.
    Agent {
        /// The node asked for.
        node_id: String,
        /// The agent's answer as sent.
        body: Bytes,
    },
}

/// Why a history question is not answered.
#[derive(Debug)]
pub enum Failure {
    /// No `node_id`, and no own host to answer for (400).
    NodeIdRequired,
    /// Not a list of node ids, or too many (400).
    InvalidNodeId {
        /// The list as sent.
        requested: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such node (404).
    Unknown(String),
    /// A bad question (400).
    Question(QuestionError),
    /// Too many points (400), or the own host's history unreadable (500).
    History(HistoryError),
    /// The node is offline, or did not answer now (409): its history cannot be had.
    Offline {
        /// The node.
        node_id: String,
        /// Since when, and why.
        detail: String,
    },
    /// The agent refused the question: its status (4xx) and JSON body, relayed.
    Refused {
        /// The node.
        node_id: String,
        /// The agent's status.
        status: StatusCode,
        /// The agent's JSON error.
        body: Bytes,
    },
    /// The agent answered something unusable: an error status, a bad token, not an answer,
    /// too large (502).
    Failed {
        /// The node.
        node_id: String,
        /// What it answered.
        detail: String,
    },
}

impl Failure {
    /// The REST answer.
    pub fn response(self) -> Response {
        match self {
            Failure::NodeIdRequired => error(
                StatusCode::BAD_REQUEST,
                json!({"error": "node_id required", "detail": "a coordinator serves many nodes: ask /api/system/history?node_id=ID"}),
            ),
            Failure::InvalidNodeId { requested, reason } => invalid_node_id(&requested, reason),
            Failure::Unknown(id) => crate::serve::http::unknown_node_id(&id),
            Failure::Question(e) => question_error(&e),
            Failure::History(e) => history_error(&e),
            Failure::Offline { node_id, detail } => error(
                StatusCode::CONFLICT,
                json!({"error": "node offline", "node_id": node_id, "detail": detail}),
            ),
            Failure::Refused { status, body, .. } => (
                status,
                no_store(),
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Failure::Failed { node_id, detail } => error(
                StatusCode::BAD_GATEWAY,
                json!({"error": "the node did not answer", "node_id": node_id, "detail": detail}),
            ),
        }
    }

    /// The gRPC status of the same failure.
    pub fn status(&self) -> tonic::Status {
        use tonic::Status as S;
        match self {
            Failure::NodeIdRequired => {
                S::invalid_argument("node_id required: a coordinator serves many nodes")
            }
            Failure::InvalidNodeId { reason, .. } => {
                S::invalid_argument(format!("invalid node_id: {reason}"))
            }
            Failure::Unknown(id) => S::not_found(format!("unknown node_id {id:?}")),
            Failure::Question(e) => question_status(e),
            Failure::History(e) => history_status(e),
            Failure::Offline { node_id, detail } => {
                S::failed_precondition(format!("node {node_id:?} is offline: {detail}"))
            }
            Failure::Refused {
                node_id,
                status,
                body,
            } => {
                // The agent's JSON error, `"<error>: <detail>"` as the agent's gRPC says it.
                let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                let mut message = parsed["error"].as_str().unwrap_or("refused").to_string();
                if let Some(detail) = parsed["detail"].as_str() {
                    message = format!("{message}: {detail}");
                }
                if *status == StatusCode::NOT_FOUND {
                    S::not_found(format!("node {node_id:?}: {message}"))
                } else {
                    S::invalid_argument(message)
                }
            }
            Failure::Failed { node_id, detail } => {
                S::unavailable(format!("node {node_id:?} did not answer: {detail}"))
            }
        }
    }
}

/// The history of each node `params` names, in the order asked (each once): the own host's
/// from its history, every other asked of its agent, all at once. The question is checked
/// before any agent is asked, and its window fixed (`from`, `to` at the coordinator's clock),
/// so that every node answers the same window.
pub async fn node_histories(
    state: &ClusterState,
    params: &HistoryParams,
) -> Result<Vec<NodeAnswer>, Failure> {
    let ids: Vec<String> = match params.node_id.as_deref() {
        None => match &state.local {
            Some(_) => vec![state.node_id.to_string()],
            None => return Err(Failure::NodeIdRequired),
        },
        Some(requested) => {
            let invalid = |reason: String| Failure::InvalidNodeId {
                requested: requested.to_string(),
                reason,
            };
            let mut ids: Vec<String> = Vec::new();
            for id in NodeId::parse_list(requested).map_err(|e| invalid(e.to_string()))? {
                if !ids.iter().any(|known| known == id) {
                    if ids.len() == MAX_NODES {
                        return Err(invalid(format!(
                            "at most {MAX_NODES} different node ids at once"
                        )));
                    }
                    ids.push(id.to_string());
                }
            }
            ids
        }
    };
    let query = params
        .query(unix_ms(SystemTime::now()))
        .map_err(Failure::Question)?;
    let mut fixed = params.clone();
    fixed.from = Some(query.from);
    fixed.to = Some(query.to);

    // Who answers each id: known, and not offline, before anyone is asked.
    let now = Instant::now();
    let mut asks = Vec::with_capacity(ids.len());
    for id in &ids {
        let view = state
            .registry
            .node(id, now)
            .ok_or_else(|| Failure::Unknown(id.clone()))?;
        if let (Role::Master, Some(local)) = (view.agent.role, &state.local) {
            let answer = local.history.query(id, &query).map_err(Failure::History)?;
            asks.push(Ask::Kept(answer));
            continue;
        }
        if view.status == Status::Offline {
            let detail = match (view.data_age(now), &view.last_error) {
                (Some(age), Some(why)) => format!(
                    "no good answer for {:.1} s (last error: {why})",
                    age.as_secs_f64()
                ),
                (Some(age), None) => format!("no good answer for {:.1} s", age.as_secs_f64()),
                (None, _) => "never answered".to_string(),
            };
            return Err(Failure::Offline {
                node_id: id.clone(),
                detail,
            });
        }
        asks.push(Ask::Agent(view.agent));
    }

    let timeout = state.poll_timeout.max(MIN_TIMEOUT);
    let mut fetches = tokio::task::JoinSet::new();
    let mut answers: Vec<Option<Result<NodeAnswer, Failure>>> = Vec::with_capacity(asks.len());
    for (i, (ask, id)) in asks.into_iter().zip(&ids).enumerate() {
        match ask {
            Ask::Kept(answer) => answers.push(Some(Ok(NodeAnswer::Kept(answer)))),
            Ask::Agent(agent) => {
                answers.push(None);
                let (client, token) = (state.client.clone(), state.token.clone());
                let (id, fixed) = (id.clone(), fixed.clone());
                fetches.spawn(async move {
                    let request = AgentRequest {
                        client: &client,
                        token: token.as_ref(),
                        timeout,
                    };
                    (i, fetch(&request, &agent, &id, &fixed).await)
                });
            }
        }
    }
    while let Some(done) = fetches.join_next().await {
        match done {
            Ok((i, result)) => answers[i] = Some(result),
            // A panic in a fetch is a bug; its slot stays empty and is reported below.
            Err(e) => tracing::error!("a history fetch failed: {e}"),
        }
    }
    answers
        .into_iter()
        .zip(&ids)
        .map(|(answer, id)| {
            answer.unwrap_or_else(|| {
                Err(Failure::Failed {
                    node_id: id.clone(),
                    detail: "the request was lost".into(),
                })
            })
        })
        .collect()
}

/// Where a node's history comes from.
enum Ask {
    /// The own host's, already answered.
    Kept(Answer),
    /// Its agent's, to ask.
    Agent(std::sync::Arc<super::registry::Agent>),
}

/// Asks `agent` for node `id`'s history: its JSON array, its refusal relayed, or why not.
async fn fetch(
    request: &AgentRequest<'_>,
    agent: &super::registry::Agent,
    id: &str,
    params: &HistoryParams,
) -> Result<NodeAnswer, Failure> {
    let failed = |detail: String| Failure::Failed {
        node_id: id.to_string(),
        detail,
    };
    let offline = |detail: String| Failure::Offline {
        node_id: id.to_string(),
        detail,
    };
    let mut url = agent_url(agent, HISTORY_PATH).map_err(|(_, why)| failed(why))?;
    {
        let mut pairs = url.query_pairs_mut();
        pairs.append_pair("node_id", id);
        let text = [
            ("step", params.step.as_deref()),
            ("fields", params.fields.as_deref()),
            ("agg", params.agg.as_deref()),
        ];
        for (key, value) in text {
            if let Some(value) = value {
                pairs.append_pair(key, value);
            }
        }
        for (key, value) in [("from", params.from), ("to", params.to)] {
            if let Some(value) = value {
                pairs.append_pair(key, &value.to_string());
            }
        }
    }
    let response = request.send(url).await.map_err(|(_, why)| offline(why))?;
    let status = response.status();
    let body = match http_client::read_body(response, ANSWER_LIMIT).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { .. }) => {
            return Err(failed(format!(
            "its answer is over {} MiB: ask for fewer fields, a larger step or a shorter window",
            ANSWER_LIMIT >> 20
        )))
        }
        Err(BodyError::Read(e)) => return Err(offline(http_client::describe(&e))),
    };
    if status.is_success() {
        return Ok(NodeAnswer::Agent {
            node_id: id.to_string(),
            body,
        });
    }
    if status.is_client_error()
        && status != StatusCode::UNAUTHORIZED
        && status != StatusCode::FORBIDDEN
        && serde_json::from_slice::<&serde_json::value::RawValue>(&body).is_ok()
    {
        return Err(Failure::Refused {
            node_id: id.to_string(),
            status,
            body,
        });
    }
    Err(failed(format!("the agent answered {status}")))
}

/// The objects of `answers` as one JSON array: an agent's answers as it wrote them (checked
/// to be an array of objects, not re-encoded), the own host's encoded here.
pub fn answers_json(answers: &[NodeAnswer]) -> Result<Bytes, Failure> {
    let size = answers
        .iter()
        .map(|a| match a {
            NodeAnswer::Agent { body, .. } => body.len(),
            NodeAnswer::Kept(_) => 1024,
        })
        .sum::<usize>();
    let mut out = Vec::with_capacity(size + 2);
    out.push(b'[');
    let mut push = |object: &[u8]| {
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(object);
    };
    for answer in answers {
        match answer {
            NodeAnswer::Agent { node_id, body } => {
                let unusable = |detail: String| Failure::Failed {
                    node_id: node_id.clone(),
                    detail: format!("not a history answer: {detail}"),
                };
                let objects: Vec<&serde_json::value::RawValue> =
                    serde_json::from_slice(body).map_err(|e| unusable(e.to_string()))?;
                for object in objects {
                    if !object.get().starts_with('{') {
                        return Err(unusable("an array item is not an object".into()));
                    }
                    push(object.get().as_bytes());
                }
            }
            NodeAnswer::Kept(answer) => {
                let encoded = serde_json::to_vec(answer).map_err(|e| Failure::Failed {
                    node_id: answer.node_id.clone(),
                    detail: e.to_string(),
                })?;
                push(&encoded);
            }
        }
    }
    out.push(b']');
    Ok(Bytes::from(out))
}

/// The answers in the v1 shape.
pub fn answers_v1(answers: &[NodeAnswer]) -> Result<Vec<crate::pb::v1::NodeHistory>, Failure> {
    let mut nodes = Vec::with_capacity(answers.len());
    for answer in answers {
        match answer {
            NodeAnswer::Kept(answer) => nodes.push(crate::serve::grpc_v1::node_history(answer)),
            NodeAnswer::Agent { node_id, body } => {
                let read = answers_from_json(body).map_err(|e| Failure::Failed {
                    node_id: node_id.clone(),
                    detail: format!("not a history answer: {e}"),
                })?;
                nodes.extend(read.iter().map(crate::serve::grpc_v1::node_history));
            }
        }
    }
    Ok(nodes)
}

/// `GET /api/system/history?node_id=…`: each node's history in one array.
pub async fn system_history(
    State(state): State<ClusterState>,
    JsonQuery(params): JsonQuery<HistoryParams>,
) -> Response {
    match node_histories(&state, &params)
        .await
        .and_then(|answers| answers_json(&answers))
    {
        Ok(body) => json_bytes(Ok(body)),
        Err(failure) => failure.response(),
    }
}

/// `GET /api/cluster/history`: the cluster's history as a one-element array, node id
/// [`CLUSTER_NODE_ID`](super::cluster_history::CLUSTER_NODE_ID).
pub async fn cluster_history(
    State(state): State<ClusterState>,
    JsonQuery(params): JsonQuery<HistoryParams>,
) -> Response {
    if let Some(id) = &params.node_id {
        return error(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid query", "detail": format!("node_id ({}) does not apply: this is the cluster's history", echo(id))}),
        );
    }
    match state
        .cluster_history
        .query(&params, unix_ms(SystemTime::now()))
    {
        Ok(answer) => json_bytes(serde_json::to_vec(&[answer]).map(Bytes::from)),
        Err(refusal) => refusal.response(),
    }
}
