//! `GET /fed/v1/changes?after=<seq>&limit=<n>&wait=<s>`: the changes feed for
//! the calling peer ([`crate::federation::feed`]), streamed as NDJSON.
//!
//! The page is written record by record from a blocking thread through a bounded
//! channel, so a page of large events costs one event's memory. When nothing is
//! new the request waits up to `wait` seconds ([`MAX_WAIT`]) for the durable
//! sequence to move (woken by the store, not polling), or for the node to stop. A
//! peer may hold at most [`FEEDS_PER_PEER`] feeds open.

use super::Peer;
use crate::federation::feed::{write_page, DEFAULT_LIMIT, MAX_LIMIT, MAX_WAIT};
use crate::federation::hub::FEEDS_PER_PEER;
use crate::federation::wire;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::policy::federation;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// Lines buffered between the page writer and the connection.
const CHANNEL_DEPTH: usize = 4;

#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    #[serde(default)]
    wait: u64,
}

/// Streams one page: record lines, then the end line.
pub async fn changes(
    State(state): State<AppState>,
    peer: Peer,
    Query(q): Query<ChangesQuery>,
) -> Result<Response, ApiError> {
    let Some(permit) = state.hub.feed_permit(peer.name()) else {
        tracing::warn!(peer = %peer.name(), "too many open changes feeds; refusing another");
        return Err(ApiError::RateLimited {
            message: format!("at most {} changes feeds per peer at once", FEEDS_PER_PEER),
            retry_after: 1,
        });
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    if q.wait > 0 {
        let mut durable = state.store.watch_durable();
        let mut stopping = state.hub.stopping();
        let wait = tokio::time::sleep(Duration::from_secs(q.wait.min(MAX_WAIT)));
        tokio::pin!(wait);
        while *durable.borrow_and_update() <= q.after && !*stopping.borrow() {
            tokio::select! {
                r = durable.changed() => if r.is_err() { break },
                _ = stopping.changed() => break,
                () = &mut wait => break,
            }
        }
    }
    let store = state.store.clone();
    let hub = state.hub.clone();
    let to = federation::Peer {
        name: peer.config.name.clone(),
        org: peer.config.org_uuid,
    };
    let after = q.after;
    let own_org = state.node.org;
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut sent = 0u64;
        let result = write_page(&store, own_org, &to, after, limit, &mut |line| {
            sent += 1;
            tx.blocking_send(Ok(Bytes::from(line))).is_ok()
        });
        match result {
            Ok(end) => {
                let records = sent.saturating_sub(1);
                if let Some(s) = hub.stats(&to.name) {
                    s.served.fetch_add(records, Ordering::Relaxed);
                }
                tracing::debug!(peer = %to.name, after, last_seq = end.last_seq, more = end.more, records, "changes page served");
            }
            Err(e) => {
                tracing::error!(peer = %to.name, after, reason = %e, "changes page failed");
                // The peer sees a cut-off page (no end line) and keeps its cursor.
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, wire::CONTENT_TYPE)
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::Internal(format!("building the changes page: {e}")))
}
