//! The federation endpoints, `/fed/v1/…`, every one behind the [`Peer`] extractor.
//!
//! | route | what |
//! |---|---|
//! | `GET /fed/v1/hello` | the handshake the puller makes first: which node and org it reached, under which peer name it was recognised |
//! | `GET /fed/v1/changes` | the changes feed for the caller (`changes.rs`) |
//! | `POST /fed/v1/notify` | the caller has news: wake its puller (`notify.rs`) |
//! | `POST /fed/v1/report` | the caller's verdict on the records it pulled (`report.rs`) |

use super::Peer;
use crate::federation::PROTOCOL_VERSION;
use crate::http::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// The `/fed/v1/` routes, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fed/v1/hello", get(hello))
        .route("/fed/v1/changes", get(super::changes::changes))
        .route("/fed/v1/notify", post(super::notify::notify))
        .route("/fed/v1/report", post(super::report::report))
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
