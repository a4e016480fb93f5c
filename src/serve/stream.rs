//! `GET /api/system/stream`: Server-Sent Events, one `data:` event per new snapshot carrying the
//! same JSON array as `/api/system/metrics` (event id = snapshot sequence). The latest snapshot is
//! sent at once; the stream ends on shutdown so that graceful shutdown is not held up by it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::state::RestState;

/// Events buffered per client: a slow client skips snapshots (it always gets the latest one
/// next) instead of queueing them.
const BUFFER: usize = 1;

/// The SSE response: the latest snapshot now, then each new one.
pub async fn metrics_stream(
    State(state): State<RestState>,
) -> Sse<KeepAliveStream<ReceiverStream<Result<Event, Infallible>>>> {
    let (events, receiver) = mpsc::channel(BUFFER);
    tokio::spawn(forward(state, events));
    Sse::new(ReceiverStream::new(receiver)).keep_alive(KeepAlive::default())
}

/// Sends each new snapshot to one client until the client leaves or the monitor shuts down.
async fn forward(state: RestState, events: mpsc::Sender<Result<Event, Infallible>>) {
    let mut snapshots = state.app.snapshots.clone();
    let shutdown = state.app.shutdown.clone();
    loop {
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        match state.cache.metrics(&snapshot) {
            Ok(json) => {
                // serde_json writes UTF-8 without raw newlines: one `data:` line.
                let data = String::from_utf8_lossy(&json);
                let event = Event::default()
                    .id(snapshot.sequence.to_string())
                    .data(data);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    sent = events.send(Ok(event)) => if sent.is_err() { return },
                }
            }
            Err(e) => tracing::error!("encoding a stream event failed: {e}"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = events.closed() => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
    }
}
