//! TrackLab System Monitor: a light node exporter. It samples CPU, memory, disks, filesystems,
//! network and accelerators every interval into an immutable snapshot, and serves that snapshot
//! over REST (the TrackLab JSON shapes), gRPC (the legacy `SystemMonitorService` and the typed
//! `tracklab.monitor.v1`) and Prometheus `/metrics` (node_exporter's and dcgm-exporter's names).
//!
//! # Layout
//!
//! Dependencies point down only (`tests/layers.rs` checks it); `docs/layout.md` says where a new
//! field, collector or endpoint goes.
//!
//! - [`model`]: plain data — [`model::Snapshot`], [`model::SystemInfo`], [`model::NodeId`], time
//!   helpers, [`model::echo`], [`model::exposition`] (the Prometheus text format read back); no
//!   I/O. [`model::wire`]: the JSON on the wire, defined once (the metrics element,
//!   the info object, registration) with its one mapping to gRPC v1. [`pb`]: code generated from
//!   `proto/`.
//! - [`config`]: every default in one place, [`config::HostPaths`]; [`auth`] (the read and
//!   cluster tokens), [`tls`] (PEM → rustls configurations), [`http_client`] (outgoing HTTP
//!   clients).
//! - [`collect`]: the [`collect::Sampler`] and its collectors: `collect::linux` (procfs/sysfs),
//!   [`collect::portable`] (sysinfo, for macOS and Windows), [`collect::process`] (pid trees for
//!   GetStats), [`collect::rates`], [`collect::accel`] (NVIDIA, AMD, Intel NPU, Google TPU,
//!   Apple Silicon; each absent where its hardware is), [`collect::pods`] (which Kubernetes pod
//!   holds each accelerator, from the kubelet's PodResources API), [`collect::own_process`] (the
//!   monitor's own `process_*`) and [`collect::textfile`] (`*.prom` files), for every backend.
//! - [`serve`]: the agent's REST ([`serve::rest`], [`serve::stream`]), Prometheus
//!   ([`serve::prometheus`]) and gRPC ([`serve::grpc_legacy`], [`serve::grpc_v1`]); handlers only
//!   read the latest snapshot. Shared with the coordinator: [`serve::listen`](mod@serve::listen) (ports, portfile,
//!   serving with token and TLS), [`serve::connections`] and [`serve::limits`] (the connection
//!   cap and timeouts, the open-file limit), [`serve::tls_listener`], [`serve::http`] (JSON
//!   errors), [`serve::announce`] (the start's lines saying where each server listens),
//!   [`serve::guard`] (the Host check, size limits and CORS in front of every route),
//!   [`serve::dashboard`] (`GET /`, the web dashboard embedded from `web/`).
//! - [`history`]: every number of the metrics element over time — a raw tier and a per-minute
//!   tier, compressed with pco, optionally on disk; read by the servers (REST and gRPC alike,
//!   through [`serve::history_query`]), fed by the agent.
//! - [`agent`]: local/agent mode — sampler, servers, portfile, shutdown, registration;
//!   [`coordinator`]: cluster mode — discovery, poller, registry, the cluster REST/gRPC/`/metrics`,
//!   nodes' history asked of their agents and the cluster's own.
//! - [`top`]: `system_monitor top`, the terminal view of an agent or a coordinator (a client of
//!   their REST API, drawn with ratatui).
//! - [`cli`]: flags → [`config::Config`]; `main.rs` parses and calls [`agent`] or [`coordinator`].

#![deny(unsafe_code)]

pub mod agent;
pub mod auth;
pub mod cli;
pub mod collect;
pub mod config;
pub mod coordinator;
pub mod history;
pub mod http_client;
pub mod model;
pub mod serve;
pub mod tls;
pub mod top;

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
