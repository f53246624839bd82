//! `POST /fed/v1/report`: the calling peer tells this node what it made of the
//! records of a page it pulled — how many it stored, which it refused and why —
//! and where its cursor now stands. docs/design.md §4: a refused record is "reported back
//! to the sender", so the origin's operators learn that a partner refuses their
//! data (a key rotation the partner has not taken up, a clock far off, …) without
//! having to ask them.
//!
//! Each refusal is logged with the peer and the reason and kept (the last
//! [`KEPT`]) in the peer's `peer_out` state, which `sluis peers` and
//! `GET /admin/peers` show.

use super::Peer;
use crate::federation::wire::Report;
use crate::http::error::ApiError;
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::atomic::Ordering;

/// Refusals kept per peer for operators.
pub const KEPT: usize = 20;

pub async fn report(
    State(state): State<AppState>,
    peer: Peer,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let mut r: Report =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("report: {e}")))?;
    if r.rejected.len() > Report::MAX_REJECTIONS {
        return Err(ApiError::BadRequest(format!(
            "report: at most {} rejections may be listed",
            Report::MAX_REJECTIONS
        )));
    }
    let listed = r.rejected.len() as u64;
    r.rejected_total = r.rejected_total.max(listed);
    for x in &mut r.rejected {
        if x.reason.len() > Report::MAX_REASON {
            let mut cut = Report::MAX_REASON;
            while !x.reason.is_char_boundary(cut) {
                cut -= 1;
            }
            x.reason.truncate(cut);
        }
        tracing::warn!(
            peer = %peer.name(),
            seq = x.seq,
            kind = %x.kind,
            event = ?x.event,
            reason = %x.reason,
            "peer refused a record of our feed"
        );
    }
    if let Some(s) = state.hub.stats(peer.name()) {
        s.refused_by_peer
            .fetch_add(r.rejected_total, Ordering::Relaxed);
        s.peer_cursor.store(r.cursor, Ordering::Relaxed);
    }
    let store = state.store.clone();
    let name = peer.name().to_owned();
    crate::http::blocking(move || {
        let mut out = store.peer_out(&name)?;
        out.cursor = r.cursor;
        out.reported_at = Some(crate::model::time::now_secs());
        out.accepted = out.accepted.saturating_add(r.accepted);
        out.rejected = out.rejected.saturating_add(r.rejected_total);
        out.last_rejections.extend(r.rejected);
        let excess = out.last_rejections.len().saturating_sub(KEPT);
        out.last_rejections.drain(..excess);
        store.set_peer_out(&name, &out)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
