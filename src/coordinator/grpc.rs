//! `tracklab.monitor.v1.MonitorService` for the cluster: GetMetrics (all nodes, or `node_id`,
//! also a comma list), GetInfo (a node's info, fetched like REST's) and WatchMetrics (each
//! node's new data after every poll round), GetHistory (REST's `/api/system/history?node_id=`:
//! the same question, asked of the agents by [`history::node_histories`]). Agents' JSON
//! elements are read into the v1 messages by [`element::node_metrics`], the same mapping the
//! agent makes from its snapshot; their history answers by the agent's own
//! [`node_history`](crate::serve::grpc_v1::node_history).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::api::{node_info, InfoError};
use super::element;
use super::history;
use super::registry::NodeView;
use super::state::ClusterState;
use crate::pb::v1::monitor_service_server::{MonitorService, MonitorServiceServer};
use crate::pb::v1::{
    GetHistoryRequest, GetHistoryResponse, GetInfoRequest, GetMetricsRequest, GetMetricsResponse,
    NodeMetrics, SystemInfo, WatchMetricsRequest,
};
use crate::serve::history_query::HistoryParams;

/// Messages a WatchMetrics stream may hold for a slow client.
const WATCH_BUFFER: usize = 64;

/// The cluster's v1 service.
pub fn service(state: ClusterState) -> MonitorServiceServer<ClusterService> {
    MonitorServiceServer::new(ClusterService { state })
}

/// `MonitorService` over the registry.
pub struct ClusterService {
    /// The registry and the coordinator's settings.
    state: ClusterState,
}

type MetricsStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<NodeMetrics, Status>> + Send>>;

/// The requested ids (empty = all), each checked; an unknown one is NOT_FOUND.
fn requested_ids(text: &str) -> Result<Vec<String>, Status> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    crate::model::NodeId::parse_list(text)
        .map(|ids| ids.into_iter().map(str::to_string).collect())
        .map_err(|why| Status::invalid_argument(format!("invalid node_id: {why}")))
}

/// The views of `ids` (all nodes with data when empty).
fn views(state: &ClusterState, ids: &[String]) -> Result<Vec<NodeView>, Status> {
    let now = Instant::now();
    if ids.is_empty() {
        return Ok(state
            .registry
            .nodes(now, false)
            .into_iter()
            .filter(|v| v.data.is_some())
            .collect());
    }
    ids.iter()
        .map(|id| {
            state
                .registry
                .node(id, now)
                .filter(|v| v.data.is_some())
                .ok_or_else(|| Status::not_found(format!("unknown node_id {id:?}")))
        })
        .collect()
}

fn to_v1(view: &NodeView) -> Option<NodeMetrics> {
    let data = view.data.as_ref()?;
    match element::node_metrics(&data.element) {
        Ok(metrics) => Some(metrics),
        Err(e) => {
            // Stored elements were parsed once already; this is a bug, not a peer's fault.
            let node = view.node_id.as_deref().unwrap_or(&view.agent.url.key);
            tracing::error!("cannot map the stored element of node {node} to v1: {e}");
            None
        }
    }
}

#[tonic::async_trait]
impl MonitorService for ClusterService {
    type WatchMetricsStream = MetricsStream;

    async fn get_info(
        &self,
        request: Request<GetInfoRequest>,
    ) -> Result<Response<SystemInfo>, Status> {
        let requested = &request.get_ref().node_id;
        let id = if requested.is_empty() {
            match &self.state.local {
                Some(_) => self.state.node_id.to_string(),
                None => {
                    return Err(Status::invalid_argument(
                        "node_id required: a coordinator serves many nodes",
                    ))
                }
            }
        } else {
            crate::model::NodeId::parse(requested)
                .map_err(|why| Status::invalid_argument(format!("invalid node_id: {why}")))?
                .to_string()
        };
        let body = node_info(&self.state, &id).await.map_err(|e| match e {
            InfoError::Unknown => Status::not_found(format!("unknown node_id {id:?}")),
            InfoError::Unreachable(why) => {
                Status::unavailable(format!("node {id:?} did not answer: {why}"))
            }
        })?;
        element::system_info(&body)
            .map(Response::new)
            .map_err(|e| Status::internal(format!("node {id:?} sent unreadable info: {e}")))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let ids = requested_ids(&request.get_ref().node_id)?;
        let nodes = views(&self.state, &ids)?.iter().filter_map(to_v1).collect();
        Ok(Response::new(GetMetricsResponse { nodes }))
    }

    /// As REST's `/api/system/history?node_id=`: an offline node is FAILED_PRECONDITION naming
    /// it, the agent's refusal of the question INVALID_ARGUMENT.
    async fn get_history(
        &self,
        request: Request<GetHistoryRequest>,
    ) -> Result<Response<GetHistoryResponse>, Status> {
        let params = HistoryParams::from_grpc(request.get_ref());
        let answers = history::node_histories(&self.state, &params)
            .await
            .map_err(|f| f.status())?;
        let nodes = history::answers_v1(&answers).map_err(|f| f.status())?;
        Ok(Response::new(GetHistoryResponse { nodes }))
    }

    /// Every node's current data first, then each node's new data after every poll round.
    async fn watch_metrics(
        &self,
        request: Request<WatchMetricsRequest>,
    ) -> Result<Response<Self::WatchMetricsStream>, Status> {
        let ids = requested_ids(&request.get_ref().node_id)?;
        // Fail at once for an unknown node, as GetMetrics does.
        views(&self.state, &ids)?;
        let state = self.state.clone();
        let mut rounds = state.registry.rounds();
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            let mut sent: HashMap<Arc<str>, u64> = HashMap::new();
            loop {
                rounds.borrow_and_update();
                let Ok(current) = views(&state, &ids) else {
                    // A watched node was forgotten: the stream ends.
                    let _ = sender
                        .send(Err(Status::not_found("a watched node is gone")))
                        .await;
                    return;
                };
                for view in current {
                    let (Some(id), Some(data)) = (&view.node_id, &view.data) else {
                        continue;
                    };
                    if sent.get(id) == Some(&data.sequence) {
                        continue;
                    }
                    sent.insert(Arc::clone(id), data.sequence);
                    if let Some(metrics) = to_v1(&view) {
                        if sender.send(Ok(metrics)).await.is_err() {
                            return;
                        }
                    }
                }
                tokio::select! {
                    () = state.shutdown.cancelled() => return,
                    () = sender.closed() => return,
                    changed = rounds.changed() => if changed.is_err() { return },
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
