//! `GET /api/system/ws[?node_id=…][&view=headline]`: a WebSocket that sends, as one text frame,
//! the same JSON array as `/api/system/metrics` (with the same `node_id` and `view`) at once and
//! then on every change (a new sample on the agent, a poll round on the coordinator). [`subscribe`] and [`push`] are the one loop both modes
//! serve a socket with; [`metrics_ws`] is the agent's handler.
//!
//! Bounded per client: what is pending is one watch value (the latest change), never a queue,
//! so a slow client skips ahead to the newest sample; a send that cannot complete within
//! [`Keepalive::send_timeout`] (a client that stopped reading, its socket buffers full) drops
//! the client. The server pings every [`Keepalive::ping_interval`]; a client that has sent
//! nothing (no pong) by the next ping is dropped. Both follow `--http.idle-timeout`
//! ([`Keepalive::for_idle_timeout`]). A subscriber keeps its connection, and so counts against
//! `--max-connections` like any other. The read token is the `Authorization` header's, or, for
//! browsers, a `bearer.<base64url>` subprotocol ([`crate::auth::WS_TOKEN_PROTOCOL_PREFIX`]).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{
    rejection::WebSocketUpgradeRejection, CloseFrame, Message, Utf8Bytes, WebSocket,
    WebSocketUpgrade,
};
use axum::extract::State;
use axum::response::Response;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::http::error;
use super::state::RestState;
pub use super::state::{Keepalive, PING_INTERVAL, SEND_TIMEOUT};
use super::view::{metrics_json, MetricsRequest};
use crate::auth::WS_PROTOCOL;

/// The largest message a client may send (they have nothing to say but pings and close).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// The read buffer each subscriber starts with (it grows for a larger message). tungstenite's
/// default, 128 KiB, is allocated per socket: 1,000 subscribers, who send nothing but pongs,
/// held 150 MiB of it (bench/RESULTS.md).
const CLIENT_READ_BUFFER: usize = 4 * 1024;

/// Close code 1011: the server cannot go on (a node that left, an encoding that failed).
const INTERNAL_ERROR: u16 = 1011;
/// Close code 1001: the server is going away (shutdown).
const GOING_AWAY: u16 = 1001;

/// The JSON answer to a request that is not a WebSocket upgrade (its status from axum: 400,
/// 405 or 426).
pub fn not_an_upgrade(rejection: &WebSocketUpgradeRejection) -> Response {
    error(
        rejection.status(),
        json!({
            "error": format!("{} (this endpoint speaks WebSocket)", rejection.body_text()),
        }),
    )
}

/// The agent's `/api/system/ws`: the node id rule and the `view` of `/api/system/metrics` (400
/// or 404 before any upgrade), then [`push`] of each new sample.
pub async fn metrics_ws(
    State(state): State<RestState>,
    MetricsRequest {
        node_id: requested,
        view,
    }: MetricsRequest,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let snapshot = state.app.latest();
    if let Err(refused) = super::state::check_node_query(
        requested.as_deref(),
        &snapshot.node_id,
        state.app.node_id_origin,
    ) {
        return refused.response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return not_an_upgrade(&rejection),
    };
    let shutdown = state.app.shutdown.clone();
    let snapshots = state.app.snapshots.clone();
    let keepalive = state.app.websocket;
    let frame = move || {
        let snapshot = state.app.latest();
        // Checked above; the node id rule does not change while the monitor runs.
        let selected = super::state::check_node_query(
            requested.as_deref(),
            &snapshot.node_id,
            state.app.node_id_origin,
        );
        match selected {
            // Its own id: the encoding every client of this sample shares.
            Ok(selected) => {
                metrics_json(&state.cache, &snapshot, &selected, view).map_err(|e| e.to_string())
            }
            Err(_) => Err("the node id asked for is no longer answered".into()),
        }
    };
    subscribe(upgrade, snapshots, frame, keepalive, shutdown)
}

/// Accepts `upgrade` (selecting [`WS_PROTOCOL`]) and serves the socket with [`push`]: what both
/// modes' handlers end with once the request has passed their checks.
pub fn subscribe<T, F>(
    upgrade: WebSocketUpgrade,
    changes: watch::Receiver<T>,
    frame: F,
    keepalive: Keepalive,
    shutdown: CancellationToken,
) -> Response
where
    T: Send + Sync + 'static,
    F: FnMut() -> Result<Bytes, String> + Send + 'static,
{
    upgrade
        .protocols([WS_PROTOCOL])
        .max_message_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(CLIENT_READ_BUFFER)
        .on_upgrade(move |socket| push(socket, changes, frame, keepalive, shutdown))
}

/// Serves one subscriber: `frame()` now and after each change of `changes`, pings, until the
/// client leaves, is too slow or silent, `changes` ends, or `shutdown`. `frame` gives the JSON
/// array, or why the subscription cannot go on (sent as the close reason).
pub async fn push<T, F>(
    mut socket: WebSocket,
    mut changes: watch::Receiver<T>,
    mut frame: F,
    keepalive: Keepalive,
    shutdown: CancellationToken,
) where
    F: FnMut() -> Result<Bytes, String> + Send,
{
    let every = keepalive.ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    // When the unanswered ping was sent; any message from the client answers it.
    let mut unanswered: Option<Instant> = None;
    changes.mark_changed();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                close(&mut socket, GOING_AWAY, "the monitor is stopping", keepalive).await;
                return;
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                changes.borrow_and_update();
                let text = frame().and_then(|bytes| {
                    Utf8Bytes::try_from(bytes).map_err(|_| "an encoding was not UTF-8".to_string())
                });
                let text = match text {
                    Ok(text) => text,
                    Err(reason) => {
                        close(&mut socket, INTERNAL_ERROR, &reason, keepalive).await;
                        return;
                    }
                };
                if !sent(&mut socket, Message::Text(text), keepalive.send_timeout).await {
                    tracing::debug!("a WebSocket client too slow to take a sample was dropped");
                    return;
                }
            }
            _ = ping.tick() => {
                if unanswered.is_some() {
                    tracing::debug!("a WebSocket client that did not answer a ping was dropped");
                    return;
                }
                if !sent(&mut socket, Message::Ping(Bytes::new()), keepalive.send_timeout).await {
                    return;
                }
                unanswered = Some(Instant::now());
            }
            message = socket.recv() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                // Anything proves the client alive; its pings are answered by the socket itself
                // on the next read, which this loop always comes back to.
                Some(Ok(_)) => unanswered = None,
            },
        }
    }
}

/// Sends `message` within `timeout`; whether it went.
async fn sent(socket: &mut WebSocket, message: Message, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, socket.send(message)).await,
        Ok(Ok(()))
    )
}

/// Sends a close frame (best effort: the client may be gone).
async fn close(socket: &mut WebSocket, code: u16, reason: &str, keepalive: Keepalive) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    let _ = sent(socket, Message::Close(Some(frame)), keepalive.send_timeout).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_fits_in_the_idle_timeout() {
        assert_eq!(
            Keepalive::for_idle_timeout(Duration::from_secs(120)),
            Keepalive::default()
        );
        let short = Keepalive::for_idle_timeout(Duration::from_secs(1));
        assert_eq!(short.ping_interval, Duration::from_millis(500));
        assert_eq!(short.send_timeout, Duration::from_millis(500));
        let floor = Keepalive::for_idle_timeout(Duration::ZERO);
        assert_eq!(floor.ping_interval, Duration::from_millis(10));
    }
}
