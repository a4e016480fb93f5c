//! The servers and what the agent and the coordinator build theirs from. Handlers only read the
//! latest [`Snapshot`](crate::model::Snapshot) from [`AppState`]; encoders are pure functions of
//! a snapshot.
//!
//! - [`rest`]: the agent's REST routes ([`history_rest`]: `/api/system/history`); [`stream`]: its SSE
//!   stream; [`ws`]: its WebSocket (and the push loop the coordinator's serves with too); [`cache`]: each encoding of
//!   the latest snapshot, made once.
//! - [`grpc_legacy`], [`grpc_v1`]: the agent's gRPC services.
//! - [`history_query`]: the history question and its refusals, one reading for REST and gRPC,
//!   agent and coordinator.
//! - [`prometheus`]: `/metrics` (text and OpenMetrics).
//! - Shared with the coordinator: [`listen`](mod@listen) (ports, portfile, serving with token and TLS),
//!   [`connections`] (the cap and timeouts on client connections), [`limits`] (the open-file
//!   limit and the cap it allows), [`tls_listener`] (REST over TLS), [`http`] (JSON errors and
//!   bodies), [`announce`] (the start's lines saying where each server listens), [`guard`] (the
//!   Host check against DNS rebinding, size limits answered in JSON, CORS for the allowed
//!   origins), [`openapi`] (`/api/openapi.json`, the REST API's OpenAPI document), [`dashboard`]
//!   (`GET /`, the embedded web dashboard).

pub mod announce;
pub mod cache;
pub mod connections;
pub mod dashboard;
pub mod grpc_legacy;
pub mod grpc_v1;
pub mod guard;
pub mod history_query;
pub mod history_rest;
pub mod http;
pub mod limits;
pub mod listen;
pub mod openapi;
pub mod prometheus;
pub mod rest;
mod state;
pub mod stream;
pub mod tls_listener;
pub mod view;
pub mod ws;

pub use connections::Connections;
pub use guard::Guard;
pub use listen::{
    grpc_serve, http_serve, listen, portfile_or_stop, write_portfile, ListenError, Portfile,
    PortfileError, Servers,
};
pub use state::{
    select_nodes, AppState, FailedCollector, Health, NotAnswered, Refused, RestState, Selected,
    MAX_ANSWERED_IDS, STALE_AFTER_INTERVALS,
};
