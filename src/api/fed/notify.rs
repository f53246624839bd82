//! `POST /fed/v1/notify`: a peer saying it has news. The puller of that peer is
//! woken to pull at once instead of at the end of its interval or backoff (docs/design.md
//! §5, "optional push"). The body is ignored: a notification carries no data,
//! so a forged or replayed one costs at most one early pull of a feed the caller
//! is authorised for anyway.

use super::Peer;
use crate::http::AppState;
use axum::extract::State;
use axum::http::StatusCode;

pub async fn notify(State(state): State<AppState>, peer: Peer) -> StatusCode {
    tracing::debug!(peer = %peer.name(), "notified");
    state.hub.wake(peer.name());
    StatusCode::NO_CONTENT
}
