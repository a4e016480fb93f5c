//! TODO: tracklab.monitor.v1.MonitorService (stub).

use std::pin::Pin;

use tonic::{Request, Response, Status};

use super::AppState;
use crate::pb::v1::monitor_service_server::{MonitorService, MonitorServiceServer};
use crate::pb::v1::*;

/// The v1 service over `state`.
pub fn service(state: AppState) -> MonitorServiceServer<V1Service> {
    MonitorServiceServer::new(V1Service { state })
}

pub struct V1Service {
    state: AppState,
}

type MetricsStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<NodeMetrics, Status>> + Send>>;

#[tonic::async_trait]
impl MonitorService for V1Service {
    type WatchMetricsStream = MetricsStream;
    async fn get_info(&self, _r: Request<GetInfoRequest>) -> Result<Response<SystemInfo>, Status> {
        Err(Status::unimplemented(self.state.latest().node_id.clone()))
    }
    async fn get_metrics(
        &self,
        _r: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn watch_metrics(
        &self,
        _r: Request<WatchMetricsRequest>,
    ) -> Result<Response<Self::WatchMetricsStream>, Status> {
        Err(Status::unimplemented(""))
    }
}
