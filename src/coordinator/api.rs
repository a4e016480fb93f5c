//! The coordinator's REST API: `/api/system/metrics[?node_id=a,b][&view=headline]` (the agents'
//! elements, or their headlines, plus `status` and `dataAgeSeconds`, concatenated from the bytes
//! kept) and the same array pushed after each poll round on `/api/system/ws` (same query), `/api/cluster/info`,
//! `/api/system/history?node_id=` and `/api/cluster/history` ([`history`]),
//! `/api/system/info?node_id=` (fetched from the agent and kept a minute), `/api/health`,
//! `POST /api/cluster/register`, `/metrics`, `/api/openapi.json` (their description,
//! `openapi/coordinator.json`), and `/` (the dashboard). Reads the [`Registry`]; errors are JSON.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::cluster_history::cluster_resources;
use super::history;
use super::poller::AgentRequest;
use super::registry::{Agent, AgentUrl, Data, NodeView, Refusal, Registry, Role, Status};
use super::state::{ClusterState, LocalNode};
use crate::auth::{self, TokenKind};
use crate::collect::own_process;
use crate::model::wire::{
    ClusterInfo, ClusterNode, Info, RegisterAnswer, RegisterRequest, REGISTER_PATH,
};
use crate::model::{echo, InvalidNodeIdList, NodeId};
use crate::serve::http::{
    self, error, invalid_node_id, json_bytes, no_store, round3, unknown_node_id, JsonQuery,
    NodeQuery,
};
use crate::serve::prometheus::{self, Format};
use crate::serve::view::{MetricsRequest, View};
use crate::serve::ws;
use crate::serve::Guard;
use crate::serve::Health;
use crate::serve::{dashboard, openapi};

/// The largest registration body accepted.
pub const REGISTER_BODY_LIMIT: usize = 16 * 1024;

/// How long an agent's `/api/system/info` is served from the cache.
const INFO_MAX_AGE: Duration = Duration::from_secs(60);

/// The largest `/api/system/info` read from an agent.
const INFO_LIMIT: usize = 1024 * 1024;

/// Labels a registration may carry, and their value length.
const MAX_LABELS: usize = 64;
const MAX_LABEL_VALUE: usize = 253;
const MAX_VERSION: usize = 64;

/// The coordinator's REST routes, behind `guard`.
pub fn router(state: ClusterState, guard: &Guard) -> Router {
    let router = Router::new()
        .route("/api/health", get(health))
        .route("/api/system/metrics", get(metrics))
        .route("/api/system/ws", get(metrics_ws))
        .route("/api/system/info", get(info))
        .route("/api/system/history", get(history::system_history))
        .route("/api/cluster/info", get(cluster_info))
        .route("/api/cluster/history", get(history::cluster_history))
        .route(REGISTER_PATH, post(register))
        .route("/metrics", get(prometheus_metrics))
        .route(
            "/api/openapi.json",
            get(|| async { openapi::response(openapi::Api::Coordinator) }),
        )
        .merge(dashboard::routes())
        .method_not_allowed_fallback(http::method_not_allowed)
        .fallback(http::not_found);
    guard.apply(router.with_state(state))
}

// ---------------------------------------------------------------------------------------------
// /api/system/metrics

async fn metrics(
    State(state): State<ClusterState>,
    MetricsRequest { node_id, view }: MetricsRequest,
) -> Response {
    let now = Instant::now();
    let body = match selected_views(&state.registry, node_id.as_deref(), now) {
        Ok(views) => elements_json(&views, now, view),
        Err(refused) => return refused.response(),
    };
    (
        no_store(),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Why a `node_id` filter is not answered.
#[derive(Debug, thiserror::Error)]
enum NotServed<'a> {
    /// Not a node id list (400).
    #[error("{1}")]
    Invalid(&'a str, InvalidNodeIdList<'a>),
    /// A node registered but not heard from yet (404).
    #[error("no data from node {0} yet")]
    NoData(&'a str),
    /// No such node (404).
    #[error("unknown node {0}")]
    Unknown(&'a str),
}

impl NotServed<'_> {
    /// The JSON error answer.
    fn response(&self) -> Response {
        match self {
            NotServed::Invalid(requested, reason) => invalid_node_id(requested, reason),
            NotServed::NoData(id) => error(
                StatusCode::NOT_FOUND,
                json!({"error": "no data from node yet", "node_id": echo(id)}),
            ),
            NotServed::Unknown(id) => unknown_node_id(id),
        }
    }
}

/// The nodes `?node_id=` asks for (all of them without it), in the order asked; each one asked
/// for must have data.
fn selected_views<'a>(
    registry: &Registry,
    requested: Option<&'a str>,
    now: Instant,
) -> Result<Vec<NodeView>, NotServed<'a>> {
    let Some(requested) = requested else {
        return Ok(registry.nodes(now, false));
    };
    let ids = NodeId::parse_list(requested).map_err(|e| NotServed::Invalid(requested, e))?;
    let mut views = Vec::with_capacity(ids.len());
    for id in ids {
        match registry.node(id, now) {
            Some(view) if view.data.is_some() => views.push(view),
            Some(_) => return Err(NotServed::NoData(id)),
            None => return Err(NotServed::Unknown(id)),
        }
    }
    Ok(views)
}

/// `/api/system/ws[?node_id=…][&view=…]`: the query's rules of `/api/system/metrics` (400 or 404
/// before any upgrade), then its array after each poll round. The array of every node (no
/// `node_id`) is encoded once per round for all subscribers
/// ([`RoundFrames`](super::frames::RoundFrames)).
async fn metrics_ws(
    State(state): State<ClusterState>,
    MetricsRequest {
        node_id: requested,
        view,
    }: MetricsRequest,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(refused) = selected_views(&state.registry, requested.as_deref(), Instant::now()) {
        return refused.response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return ws::not_an_upgrade(&rejection),
    };
    let registry = Arc::clone(&state.registry);
    let frames = Arc::clone(&state.frames);
    let frame = move || {
        let encode = |views: Vec<NodeView>, now| elements_json(&views, now, view);
        match requested.as_deref() {
            None => Ok(frames.get(view, registry.round(), || {
                let now = Instant::now();
                encode(registry.nodes(now, false), now)
            })),
            Some(_) => {
                let now = Instant::now();
                selected_views(&registry, requested.as_deref(), now)
                    .map(|views| encode(views, now))
                    // A node asked for that was removed since (its registration expired).
                    .map_err(|refused| format!("no longer served: {refused}"))
            }
        }
    };
    ws::subscribe(
        upgrade,
        state.registry.rounds(),
        frame,
        state.websocket,
        state.shutdown.clone(),
    )
}

/// The metrics array of `views` (those with data) in `view`: each element's bytes as the agent
/// sent them (or the headline made of them), with `"status"` and `"dataAgeSeconds"` appended
/// before its closing brace.
pub fn elements_json(views: &[NodeView], now: Instant, view: View) -> Bytes {
    let object = |data: &Data| match view {
        View::Full => data.element.clone(),
        View::Headline => data.figures.headline.clone(),
    };
    let size: usize = views
        .iter()
        .filter_map(|v| v.data.as_ref())
        .map(|d| object(d).len() + 64)
        .sum();
    let mut out = Vec::with_capacity(size + 2);
    out.push(b'[');
    let mut first = true;
    for node in views {
        let (Some(data), Some(age)) = (&node.data, node.data_age(now)) else {
            continue;
        };
        let object = object(data);
        // An element is a JSON object with at least node_id (checked when it was stored), and
        // so is its headline.
        let Some(open) = object.strip_suffix(b"}") else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(open);
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(node.status.as_str().as_bytes());
        out.extend_from_slice(
            format!("\",\"dataAgeSeconds\":{}}}", round3(age.as_secs_f64())).as_bytes(),
        );
    }
    out.push(b']');
    Bytes::from(out)
}

// ---------------------------------------------------------------------------------------------
// /api/cluster/info

async fn cluster_info(State(state): State<ClusterState>) -> Response {
    let now = Instant::now();
    let views = state.registry.nodes(now, true);
    let (total, used) = cluster_resources(&views);
    let mut nodes = Vec::with_capacity(views.len());
    for view in &views {
        let figures = view.data.as_ref().map(|d| &d.figures);
        let agent = &view.agent;
        let ip = match (agent.role, &state.local) {
            (Role::Master, Some(local)) => local.snapshots.borrow().info.ip_address.clone(),
            _ => agent
                .url
                .ip
                .map_or_else(|| host_of(&agent.url.base), |ip| ip.to_string()),
        };
        let registration = view.registration.as_ref();
        nodes.push(ClusterNode {
            id: view.node_id.as_deref().map(Cow::Borrowed),
            name: Cow::Borrowed(view.node_id.as_deref().unwrap_or(&agent.url.key)),
            hostname: figures.map(|f| Cow::Borrowed(&*f.hostname)),
            ip: Cow::Owned(ip),
            role: Cow::Borrowed(agent.role.as_str()),
            status: Cow::Borrowed(view.status.as_str()),
            last_heartbeat: view.last_heartbeat_ms(),
            url: Cow::Borrowed(&agent.url.key),
            data_age_seconds: view.data_age(now).map(|a| round3(a.as_secs_f64())),
            labels: registration.map(|r| r.labels.clone()).unwrap_or_default(),
            version: registration.map(|r| r.version.clone()),
            error: view.last_error.clone(),
        });
    }
    let body = ClusterInfo {
        nodes,
        total_resources: total,
        used_resources: used,
    };
    json_bytes(serde_json::to_vec(&body).map(Bytes::from))
}

fn host_of(url: &reqwest::Url) -> String {
    url.host_str().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------------
// /api/system/info

async fn info(
    State(state): State<ClusterState>,
    JsonQuery(query): JsonQuery<NodeQuery>,
) -> Response {
    let Some(id) = query.node_id else {
        return match &state.local {
            Some(local) => local_info(local),
            None => error(
                StatusCode::BAD_REQUEST,
                json!({"error": "node_id required", "detail": "a coordinator serves many nodes: ask /api/system/info?node_id=ID"}),
            ),
        };
    };
    if let Err(reason) = NodeId::check(&id) {
        return invalid_node_id(&id, reason);
    }
    match node_info(&state, &id).await {
        Ok(body) => json_bytes(Ok(body)),
        Err(InfoError::Unknown) => unknown_node_id(&id),
        Err(InfoError::Unreachable(detail)) => error(
            StatusCode::BAD_GATEWAY,
            json!({"error": "the node did not answer", "node_id": echo(&id), "detail": detail}),
        ),
    }
}

fn local_info(local: &LocalNode) -> Response {
    let snapshot = Arc::clone(&local.snapshots.borrow());
    json_bytes(serde_json::to_vec(&Info::of(&snapshot)).map(Bytes::from))
}

/// Why a node's info is not available.
pub enum InfoError {
    /// No such node.
    Unknown,
    /// The agent did not answer (and nothing is cached).
    Unreachable(String),
}

/// A node's `/api/system/info` JSON: the coordinator's own, the cache (a minute), or the agent's
/// answer; a stale cached copy when the agent does not answer.
pub async fn node_info(state: &ClusterState, id: &str) -> Result<Bytes, InfoError> {
    let now = Instant::now();
    let view = state.registry.node(id, now).ok_or(InfoError::Unknown)?;
    if view.agent.role == Role::Master {
        if let Some(local) = &state.local {
            let snapshot = Arc::clone(&local.snapshots.borrow());
            return serde_json::to_vec(&Info::of(&snapshot))
                .map(Bytes::from)
                .map_err(|e| InfoError::Unreachable(e.to_string()));
        }
    }
    let agent = &view.agent;
    if let Some(body) = state.registry.cached_info(agent, Some(INFO_MAX_AGE), now) {
        return Ok(body);
    }
    match fetch_info(state, agent).await {
        Ok(body) => {
            state
                .registry
                .store_info(agent, body.clone(), Instant::now());
            Ok(body)
        }
        Err(why) => state
            .registry
            .cached_info(agent, None, now)
            .ok_or(InfoError::Unreachable(why)),
    }
}

async fn fetch_info(state: &ClusterState, agent: &Agent) -> Result<Bytes, String> {
    let request = AgentRequest {
        client: &state.client,
        token: state.token.as_ref(),
        timeout: state.poll_timeout,
    };
    let body = request
        .get(agent, "api/system/info", INFO_LIMIT)
        .await
        .map_err(|(_, why)| why)?;
    let object: &serde_json::value::RawValue =
        serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    if !object.get().starts_with('{') {
        return Err("not a JSON object".into());
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// /api/health and /metrics

async fn health(State(state): State<ClusterState>) -> Response {
    let now = SystemTime::now();
    let counts = state.registry.counts(Instant::now());
    let uptime = now
        .duration_since(state.started_at)
        .unwrap_or_default()
        .as_secs_f64();
    let mut body = json!({
        "status": "healthy",
        "service": "system_monitor",
        "role": "coordinator",
        "timestamp": humantime::format_rfc3339_millis(now).to_string(),
        "node_id": &*state.node_id,
        "version": crate::VERSION,
        "uptime_seconds": round3(uptime),
        "poll_interval_seconds": state.poll_interval.as_secs_f64(),
        "rounds": state.metrics.rounds(),
        "last_round_seconds": state.metrics.last_round().map(|d| round3(d.as_secs_f64())),
        "agents": {
            "total": counts.iter().sum::<usize>(),
            "online": counts[Status::Online as usize],
            "degraded": counts[Status::Degraded as usize],
            "offline": counts[Status::Offline as usize],
        },
    });
    // Its own host (`--sample-self`) is one node among many: a failed collector there is listed,
    // but does not make the coordinator unavailable.
    if let Some(local) = &state.local {
        let snapshot = Arc::clone(&local.snapshots.borrow());
        let own = Health::of(&snapshot, None);
        let degraded: Vec<_> = own.failing.into_iter().chain(own.degraded).collect();
        body["degraded"] = json!(degraded);
    }
    (StatusCode::OK, no_store(), axum::Json(body)).into_response()
}

/// The coordinator's families, then, with `--sample-self`, its host's, in one exposition of the
/// format `Accept` asks for (as the agent's `/metrics` negotiates it).
async fn prometheus_metrics(State(state): State<ClusterState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let counts = state.registry.counts(Instant::now());
    let mut w = prometheus::Writer::new(&state.node_id, format);
    state.metrics.write(&mut w, counts);
    if let Some(local) = &state.local {
        // Its sampler's snapshot carries the process's own `process_*` families too.
        let snapshot = Arc::clone(&local.snapshots.borrow());
        prometheus::write_snapshot(&mut w, &snapshot);
    } else {
        // Nothing samples the coordinator: its `process_*` are read now (/proc/self, a few
        // small reads that never wait on a disk).
        match own_process::read_families() {
            Ok(families) => prometheus::write_kernel_families(&mut w, &families),
            Err(e) => tracing::debug!("cannot read the coordinator's own process: {e}"),
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        w.finish(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// POST /api/cluster/register

fn invalid_field(field: &str, detail: impl Into<String>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid registration", "field": field, "detail": detail.into()}),
    )
}

/// The refusal of every registration by a coordinator without a cluster token, with the fix.
fn registration_disabled() -> Response {
    let hint = format!(
        "start the coordinator with {} PATH or {}, and give its agents the same token",
        TokenKind::Cluster.flag(),
        TokenKind::Cluster.env()
    );
    error(
        StatusCode::FORBIDDEN,
        json!({"error": "registration is disabled", "detail": "this coordinator has no cluster token", "hint": hint}),
    )
}

async fn register(
    State(state): State<ClusterState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The read token's middleware lets this path through: registration is its own right, the
    // cluster token's (compared in constant time), and the read token does not grant it.
    let Some(cluster_token) = &state.cluster_token else {
        return registration_disabled();
    };
    if !cluster_token.accepts(auth::authorization(&headers)) {
        return auth::unauthorized();
    }
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": "request body too large", "limit_bytes": REGISTER_BODY_LIMIT}),
        )
    };
    let Ok(body) = axum::body::to_bytes(body, REGISTER_BODY_LIMIT).await else {
        return too_large();
    };
    let request: RegisterRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid registration", "detail": json_error(&e)}),
            )
        }
    };
    if let Err(reason) = NodeId::check(&request.node_id) {
        return invalid_field("node_id", reason.to_string());
    }
    let url = match AgentUrl::parse(&request.url) {
        Ok(url) => url,
        Err(reason) => return invalid_field("url", reason),
    };
    let peer = peer.ip().to_canonical();
    if let Err(reason) = check_host(&url, peer, &state.allow_cidrs) {
        return invalid_field("url", reason);
    }
    if request.labels.len() > MAX_LABELS {
        return invalid_field("labels", format!("at most {MAX_LABELS} labels"));
    }
    for (key, value) in &request.labels {
        if NodeId::check(key).is_err()
            || value.len() > MAX_LABEL_VALUE
            || value.chars().any(char::is_control)
        {
            return invalid_field(
                "labels",
                format!("keys as node ids, values at most {MAX_LABEL_VALUE} printable characters"),
            );
        }
    }
    if request.version.len() > MAX_VERSION || request.version.chars().any(char::is_control) {
        return invalid_field(
            "version",
            format!("at most {MAX_VERSION} printable characters"),
        );
    }
    let registered = state.registry.register(
        &request.node_id,
        url,
        peer,
        request.labels,
        request.version,
        Instant::now(),
    );
    match registered {
        Ok(()) => (
            no_store(),
            axum::Json(RegisterAnswer {
                registered: true,
                node_id: request.node_id,
                heartbeat_interval_seconds: Some(state.registry.settings().heartbeat.as_secs_f64()),
            }),
        )
            .into_response(),
        Err(Refusal::Conflict) => error(
            StatusCode::CONFLICT,
            json!({"error": "node_id is held by another live host", "field": "node_id", "node_id": echo(&request.node_id)}),
        ),
        Err(Refusal::Full) => error(
            StatusCode::INSUFFICIENT_STORAGE,
            json!({"error": "node limit reached", "max_nodes": state.registry.settings().max_nodes}),
        ),
    }
}

/// serde_json's message for a body that is not a registration, which may quote the body (`invalid
/// type: string "…"`): the message cut short ([`echo`]), then where it went wrong.
fn json_error(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match message.strip_suffix(&position) {
        Some(what) => format!("{}{position}", echo(what)),
        None => echo(&message).into_owned(),
    }
}

/// The URL's host must be an IP address: the peer's own, or one in an allowed network. This
/// is what keeps a registration from making the coordinator fetch arbitrary URLs.
fn check_host(url: &AgentUrl, peer: IpAddr, allowed: &[ipnet::IpNet]) -> Result<(), String> {
    let Some(host) = url.ip else {
        return Err("the host must be an IP address".into());
    };
    if host == peer || allowed.iter().any(|net| net.contains(&host)) {
        return Ok(());
    }
    Err(format!(
        "host {host} is not the registering peer's address ({peer}) nor in an allowed network (--allow-register-cidr)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::element::Figures;
    use crate::coordinator::registry::RegistrySettings;

    #[test]
    fn elements_are_concatenated_with_status() {
        let registry = Registry::new(RegistrySettings {
            offline_after: Duration::from_secs(3),
            max_nodes: 10,
            heartbeat: Duration::from_secs(10),
        });
        registry.add_static([AgentUrl::parse("http://10.0.0.1:1").unwrap()]);
        let agent = registry.workers().pop().unwrap();
        let now = Instant::now();
        let element = br#"{"node_id":"a","timestamp":5}"#;
        let figures = Figures {
            node_id: "a".into(),
            timestamp_ms: 5,
            hostname: "h".into(),
            cpus: 1,
            cpu_busy_cores: 0.0,
            memory_total_bytes: 0,
            memory_used_bytes: 0,
            accelerators: 0,
            accelerators_busy: 0,
            headline: Bytes::from_static(br#"{"node_id":"a"}"#),
        };
        registry
            .record_data(&agent, Bytes::from_static(element), figures, now)
            .unwrap();
        let later = now + Duration::from_millis(1500);
        let nodes = registry.nodes(later, true);
        let body = elements_json(&nodes, later, View::Full);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"[{"node_id":"a","timestamp":5,"status":"online","dataAgeSeconds":1.5}]"#
        );
        let body = elements_json(&nodes, later, View::Headline);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"[{"node_id":"a","status":"online","dataAgeSeconds":1.5}]"#
        );
        assert_eq!(&elements_json(&[], now, View::Full)[..], b"[]");
    }

    #[test]
    fn json_errors_quote_the_body_cut_short() {
        let long = format!(r#"{{"node_id": "n", "labels": "{}"}}"#, "x".repeat(10_000));
        let e = serde_json::from_slice::<RegisterRequest>(long.as_bytes()).unwrap_err();
        assert!(e.to_string().len() > 10_000, "serde quotes the body");
        let detail = json_error(&e);
        assert!(detail.len() < 120, "{detail}");
        assert!(detail.starts_with("invalid type: string \"xxx"), "{detail}");
        assert!(detail.ends_with("… at line 1 column 10029"), "{detail}");
        let e = serde_json::from_str::<u8>(&format!(r#""{}""#, "y".repeat(5_000))).unwrap_err();
        let detail = json_error(&e);
        assert!(
            detail.contains('…') && detail.contains("column 5002"),
            "{detail}"
        );
        let e = serde_json::from_str::<u8>("").unwrap_err();
        assert_eq!(
            json_error(&e),
            "EOF while parsing a value at line 1 column 0"
        );
    }

    #[test]
    fn registered_hosts_are_checked() {
        let url = AgentUrl::parse("http://10.0.0.5:8080").unwrap();
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        let other: IpAddr = "10.0.0.6".parse().unwrap();
        assert!(check_host(&url, peer, &[]).is_ok());
        assert!(check_host(&url, other, &[]).is_err());
        assert!(check_host(&url, other, &["10.0.0.0/24".parse().unwrap()]).is_ok());
        assert!(check_host(&url, other, &["10.0.1.0/24".parse().unwrap()]).is_err());
        let named = AgentUrl::parse("http://metadata.internal:80").unwrap();
        assert!(check_host(&named, peer, &["0.0.0.0/0".parse().unwrap()]).is_err());
    }
}
