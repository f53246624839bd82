//! Push notification (docs/design.md §5): whenever this node's durable change sequence
//! moves, tell each peer with `push = true` (`POST /fed/v1/notify`) so it pulls
//! at once rather than at the end of its long-poll or backoff. Also once at
//! start, so peers that backed off while this node was down come back now.
//!
//! A notification is a hint, never data: a failed one is logged at debug level
//! and not retried, because the peer's own periodic pull is the fallback.
//! Notifications coalesce: changes that land while one is in flight cause one
//! more, not one each.

use super::client::PeerClient;
use super::hub::Hub;
use crate::store::Store;
use std::sync::Arc;

pub(super) async fn run_notifier(
    store: Arc<Store>,
    hub: Arc<Hub>,
    peer: String,
    client: Arc<PeerClient>,
) {
    let mut durable = store.watch_durable();
    let mut stopping = hub.stopping();
    loop {
        durable.borrow_and_update();
        match client.notify().await {
            Ok(()) => tracing::trace!(peer = %peer, "peer notified"),
            Err(e) => tracing::debug!(peer = %peer, reason = %e, "cannot notify the peer"),
        }
        tokio::select! {
            r = durable.changed() => if r.is_err() { return },
            _ = stopping.changed() => return,
        }
    }
}
