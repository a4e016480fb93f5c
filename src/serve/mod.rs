//! The servers and what the agent and the coordinator build theirs from. Handlers only read the
//! latest [`Snapshot`](crate::model::Snapshot) from [`AppState`]; encoders are pure functions of
//! a snapshot.
//!
//! - [`rest`]: the agent's REST routes; [`stream`]: its SSE stream; [`cache`]: each encoding of
//!   the latest snapshot, made once.
//! - [`grpc_legacy`], [`grpc_v1`]: the agent's gRPC services.
//! - [`prometheus`]: `/metrics` (text and OpenMetrics).
//! - Shared with the coordinator: [`listen`](mod@listen) (ports, portfile, serving with token and TLS),
//!   [`tls_listener`] (REST over TLS), [`http`] (JSON errors and bodies), [`guard`] (the Host
//!   check against DNS rebinding, size limits answered in JSON, CORS for the allowed origins).

pub mod cache;
pub mod grpc_legacy;
pub mod grpc_v1;
pub mod guard;
pub mod http;
pub mod listen;
pub mod prometheus;
pub mod rest;
mod state;
pub mod stream;
pub mod tls_listener;

pub use guard::Guard;
pub use listen::{
    grpc_serve, http_serve, listen, write_portfile, ListenError, Portfile, PortfileError,
};
pub use state::{AppState, RestState, STALE_AFTER_INTERVALS};
