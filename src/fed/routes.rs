//! The federation endpoints, `/fed/v1/…`, every one behind the [`Peer`] extractor.
//!
//! For now only the handshake, `GET /fed/v1/hello`, which the sync client calls
//! first: it proves the mTLS setup works in both directions and tells the caller
//! which node and organisation it reached and under which peer name it was
//! recognised. The changes feed (`after=<cursor>` pages of sealed records filtered
//! for the calling peer, DESIGN §5) comes next, in this file, behind the same
//! extractor (`changes.rs`).

use super::Peer;
use crate::api::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The federation protocol version this node speaks; a peer that sees another
/// number in `hello` must not sync.
pub const PROTOCOL_VERSION: u32 = 1;

/// The `/fed/v1/` routes, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fed/v1/hello", get(hello))
        .route("/fed/v1/changes", get(super::changes::changes))
}

/// `{"node", "org", "peer", "protocol"}`: who we are, who we think the caller is.
async fn hello(State(state): State<AppState>, peer: Peer) -> Json<Value> {
    Json(json!({
        "node": state.node.name,
        "org": state.node.org,
        "peer": peer.name(),
        "protocol": PROTOCOL_VERSION,
    }))
}
