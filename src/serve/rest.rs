//! TODO: REST API (stub).

use axum::Router;

use super::AppState;

/// The REST routes.
pub fn router(state: AppState) -> Router {
    Router::new().with_state(state)
}
