//! TrackLab System Monitor: a light node exporter. It samples CPU, memory, disks, filesystems,
//! network and accelerators every interval into an immutable snapshot, and serves that snapshot
//! over REST (the TrackLab JSON shapes), gRPC (the legacy `SystemMonitorService` and the typed
//! `tracklab.monitor.v1`) and Prometheus `/metrics` (node_exporter's and dcgm-exporter's names).
//!
//! # Layout
//!
//! - [`cli`], [`config`]: flags → [`config::Config`], the one place for defaults.
//! - [`model`]: plain data — [`model::Snapshot`], [`model::SystemInfo`]; no I/O.
//! - [`collect`]: the [`collect::Sampler`] and its collectors: `collect::linux` (procfs/sysfs
//!   through [`collect::HostPaths`]), [`collect::portable`] (sysinfo, for macOS and Windows),
//!   [`collect::process`] (pid trees for GetStats), [`collect::rates`] (derived values),
//!   [`collect::accel`] (NVIDIA through NVML and DCGM, AMD, Intel NPU, Google TPU, Apple
//!   Silicon; each absent where its hardware is).
//! - [`serve`]: REST ([`serve::rest`]), Prometheus ([`serve::prometheus`]), gRPC
//!   ([`serve::grpc_legacy`], [`serve::grpc_v1`]); handlers only read the latest snapshot.
//! - [`agent`]: wiring for local/agent mode — sampler, servers, portfile, shutdown;
//!   [`register`]: the agent's registration (heartbeat) with a coordinator.
//! - [`coordinator`]: cluster mode — discovery (registration, DNS, static), the poller, the
//!   registry of agents' latest elements, and the cluster REST/gRPC/`/metrics` surface.
//! - [`auth`]: the shared bearer token (REST middleware, gRPC interceptor);
//!   [`http_client`]: the one place outgoing HTTP clients are built.
//! - [`tls`]: PEM files → rustls configurations for the servers (REST, gRPC) and clients.
//! - [`pb`]: code generated from `proto/`.

#![deny(unsafe_code)]

pub mod agent;
pub mod auth;
pub mod cli;
pub mod collect;
pub mod config;
pub mod coordinator;
pub mod http_client;
pub mod model;
pub mod register;
pub mod serve;
pub mod tls;

/// Code generated from `proto/` by build.rs.
pub mod pb {
    /// `tracklab_internal`: the legacy messages and `SystemMonitorService`.
    #[allow(clippy::all, missing_docs)]
    pub mod legacy {
        tonic::include_proto!("tracklab_internal");
    }
    /// `tracklab.monitor.v1`: the typed API.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("tracklab.monitor.v1");
    }
}

/// This build's version, as `/metrics` (`system_monitor_build_info`) and the APIs report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
