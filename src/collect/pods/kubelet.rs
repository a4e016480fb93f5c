//! The kubelet's PodResources API (`v1.PodResourcesLister/List`) over its unix socket: which
//! container holds which device. Vendored in `proto/kubelet/podresources/v1/api.proto`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::model::PodRef;

/// Code generated from `proto/kubelet/podresources/v1/api.proto` (client and, for tests, server).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("v1");
}

use pb::pod_resources_lister_client::PodResourcesListerClient;

/// How long one `List` may take, connecting included. The kubelet answers from memory in about
/// a millisecond; this only bounds a kubelet that hangs (the call runs off the sampling thread).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One device id of one extended resource allocated to one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The extended resource, e.g. `nvidia.com/gpu`, `nvidia.com/mig-1g.10gb`, `amd.com/gpu`.
    pub resource: String,
    /// The device plugin's id for the device, e.g. `GPU-…`, `MIG-…`, `GPU-…::1`, `nvidia0`.
    pub device_id: String,
    /// Who holds it.
    pub pod: PodRef,
}

/// Why a `List` failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The socket path cannot be written as a URI (not UTF-8).
    #[error("{path}: the socket path is not valid UTF-8")]
    Path { path: PathBuf },
    /// Connecting to the socket failed (permission denied, nobody listening).
    #[error("cannot connect to the kubelet PodResources socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    /// The call failed or the kubelet refused it.
    #[error("kubelet PodResources List at {path}: {code:?}: {message}")]
    Call {
        path: PathBuf,
        code: tonic::Code,
        message: String,
    },
    /// No answer within the call timeout (5 s).
    #[error(
        "kubelet PodResources List at {path}: no answer within {}",
        humantime::format_duration(CALL_TIMEOUT)
    )]
    Timeout { path: PathBuf },
}

/// A client of one kubelet socket; the connection is made on the first call and kept (tonic
/// reconnects a channel whose connection dropped, e.g. across a kubelet restart).
pub struct Kubelet {
    /// The socket, for messages.
    path: PathBuf,
    /// `unix:<path>`.
    endpoint: Endpoint,
    /// The client once connected.
    client: Option<PodResourcesListerClient<Channel>>,
}

impl Kubelet {
    /// A client for the socket at `path`; nothing is contacted yet.
    pub fn new(path: &Path) -> Result<Self, KubeletError> {
        let invalid = || KubeletError::Path {
            path: path.to_path_buf(),
        };
        let text = path.to_str().ok_or_else(invalid)?;
        let endpoint = Endpoint::from_shared(format!("unix:{text}"))
            .map_err(|_| invalid())?
            .connect_timeout(CALL_TIMEOUT);
        Ok(Self {
            path: path.to_path_buf(),
            endpoint,
            client: None,
        })
    }

    /// Every device allocation the kubelet reports, in its order. Drops the connection on a
    /// failure, so that the next call connects again.
    pub async fn list(&mut self) -> Result<Vec<Allocation>, KubeletError> {
        let result = tokio::time::timeout(CALL_TIMEOUT, self.call()).await;
        let result = result.unwrap_or_else(|_| {
            Err(KubeletError::Timeout {
                path: self.path.clone(),
            })
        });
        if result.is_err() {
            self.client = None;
        }
        result
    }

    async fn call(&mut self) -> Result<Vec<Allocation>, KubeletError> {
        let mut client = match &self.client {
            Some(client) => client.clone(),
            None => {
                let channel =
                    self.endpoint
                        .connect()
                        .await
                        .map_err(|source| KubeletError::Connect {
                            path: self.path.clone(),
                            source,
                        })?;
                let client = PodResourcesListerClient::new(channel);
                self.client = Some(client.clone());
                client
            }
        };
        let response = client
            .list(pb::ListPodResourcesRequest {})
            .await
            .map_err(|status| KubeletError::Call {
                path: self.path.clone(),
                code: status.code(),
                message: status.message().to_string(),
            })?;
        Ok(allocations(response.into_inner()))
    }
}

/// The response flattened to one entry per device id.
pub fn allocations(response: pb::ListPodResourcesResponse) -> Vec<Allocation> {
    let mut out = Vec::new();
    for pod in response.pod_resources {
        for container in pod.containers {
            for devices in container.devices {
                for device_id in devices.device_ids {
                    out.push(Allocation {
                        resource: devices.resource_name.clone(),
                        device_id,
                        pod: PodRef {
                            namespace: pod.namespace.clone(),
                            name: pod.name.clone(),
                            container: container.name.clone(),
                        },
                    });
                }
            }
        }
    }
    out
}
