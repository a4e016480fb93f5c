//! TODO: legacy tracklab_internal.SystemMonitorService (stub).

use tonic::{Request, Response, Status};

use super::AppState;
use crate::pb::legacy::system_monitor_service_server::{
    SystemMonitorService, SystemMonitorServiceServer,
};
use crate::pb::legacy::*;

/// The legacy service over `state`.
pub fn service(state: AppState) -> SystemMonitorServiceServer<LegacyService> {
    SystemMonitorServiceServer::new(LegacyService { state })
}

pub struct LegacyService {
    state: AppState,
}

#[tonic::async_trait]
impl SystemMonitorService for LegacyService {
    async fn get_stats(
        &self,
        _r: Request<GetStatsRequest>,
    ) -> Result<Response<GetStatsResponse>, Status> {
        Err(Status::unimplemented(self.state.latest().node_id.clone()))
    }
    async fn get_metadata(
        &self,
        _r: Request<GetMetadataRequest>,
    ) -> Result<Response<GetMetadataResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn tear_down(
        &self,
        _r: Request<TearDownRequest>,
    ) -> Result<Response<TearDownResponse>, Status> {
        Err(Status::unimplemented(""))
    }
}
