//! The one place where outgoing HTTP clients are built (the coordinator's poller, the agents'
//! registration), and the bounded body reader they share. https peers are verified against the
//! roots in [`ClientOptions::roots`] (the `--tls-ca` bundle) or the system's (see
//! [`crate::tls`]).

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Bytes;

/// How idle connections are kept: longer than any poll interval, so each agent's connection is
/// reused round after round instead of a TCP handshake per poll.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What a client needs to know.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Source address of outgoing connections. The agent sets its bind address, so that the
    /// coordinator sees the registration come from the host it advertises.
    pub local_address: Option<IpAddr>,
    /// How long a TCP connect may take (a dead host that drops SYNs must not hold a slot long).
    pub connect_timeout: Duration,
    /// Idle connections kept per host: one is enough for one request at a time per agent.
    pub max_idle_per_host: usize,
    /// What https peers are verified against: these roots (the `--tls-ca` bundle, or the
    /// system's read at start by a caller that knew it would need them); `None`: the system's
    /// roots, read at the first https handshake (a plain-http client never reads them).
    pub roots: Option<crate::tls::TrustRoots>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            local_address: None,
            connect_timeout: Duration::from_secs(2),
            max_idle_per_host: 1,
            roots: None,
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
    #[error("cannot build the HTTP client's TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// An HTTP/1 client with connection reuse and no proxy: the peers are cluster-internal, and an
/// environment's `HTTP_PROXY` must not reroute (or observe) the coordinator's polls.
pub fn build(options: &ClientOptions) -> Result<reqwest::Client, ClientError> {
    let builder = match &options.roots {
        Some(roots) => roots.http_client_builder()?,
        None => crate::tls::http_client_builder_system_roots_on_demand()?,
    };
    let mut builder = builder
        .no_proxy()
        .connect_timeout(options.connect_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(options.max_idle_per_host)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("system_monitor/", env!("CARGO_PKG_VERSION")));
    if let Some(address) = options.local_address {
        builder = builder.local_address(address);
    }
    Ok(builder.build()?)
}

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("response body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("reading the response body: {0}")]
    Read(#[from] reqwest::Error),
}

/// Reads `response`'s body, refusing more than `limit` bytes (a peer that streams forever must
/// not grow our memory).
pub async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// Whether a request failed in the TLS handshake (an untrusted or misnamed certificate, a peer
/// that does not speak TLS): the poller counts these apart from plain connection failures.
pub fn is_tls(error: &reqwest::Error) -> bool {
    crate::tls::is_handshake_error(error)
}

/// A request error with its causes ("error sending request: connection refused"): reqwest's
/// own text leaves the cause out.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
