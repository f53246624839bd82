//! The per-peer pull loop: hello, then changes pages from the persisted cursor
//! until the peer has no more, then sleep the peer's `interval`. Failures back off
//! exponentially with jitter (so a fleet does not hammer a peer that just came
//! back, all at once) and are recorded in the peer's state for operators.

use super::apply::apply_page;
use super::client::PeerClient;
use super::receive::Receiver;
use super::SyncError;
use crate::config::{Config, PeerSection};
use crate::seal::{Sealer, TrustList};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Records asked for per page.
const PAGE: usize = 500;
/// First retry delay after a failure; doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Everything the pullers need, prepared with the rest of the node so a bad
/// certificate or trust entry fails at start rather than in a background task.
pub struct Syncer {
    store: Arc<Store>,
    sealer: Arc<Sealer>,
    trust: Arc<TrustList>,
    peers: Vec<PeerSection>,
    tls: Arc<rustls::ClientConfig>,
    max_bytes: usize,
}

impl Syncer {
    /// The pullers of `cfg`'s peers (those with `pull = true`) over `store`.
    pub fn new(
        cfg: &Config,
        store: Arc<Store>,
        sealer: Arc<Sealer>,
        trust: TrustList,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Syncer {
            store,
            sealer,
            trust: Arc::new(trust),
            peers: cfg.peer.iter().filter(|p| p.pull).cloned().collect(),
            tls,
            max_bytes: cfg.max_document_bytes(),
        }
    }
}

/// Starts one task per pulling peer; each stops when `shutdown` turns true (or
/// its sender is dropped).
pub fn spawn(syncer: Syncer, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let syncer = Arc::new(syncer);
    syncer
        .peers
        .iter()
        .map(|p| {
            let ctx = syncer.clone();
            let peer = p.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(run_peer(ctx, peer, shutdown))
        })
        .collect()
}

async fn run_peer(ctx: Arc<Syncer>, peer: PeerSection, mut shutdown: watch::Receiver<bool>) {
    let client = match PeerClient::new(peer.clone(), &ctx.tls) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(peer = %peer.name, reason = %e, "cannot build the peer client; not pulling");
            return;
        }
    };
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        // A round is cut short by shutdown: what was applied is flushed with its
        // cursor inside one blocking step, which runs to its end regardless.
        let result = tokio::select! {
            r = round(&ctx, &client, &peer) => r,
            _ = shutdown.changed() => return,
        };
        let delay = match result {
            Ok(()) => {
                failures = 0;
                peer.interval()
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(peer = %peer.name, reason = %e, failures, "pull failed");
                record_failure(&ctx.store, &peer.name, &e.to_string());
                backoff(failures)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
        }
    }
}

/// One pull: hello, then pages until the peer says there are no more. Each page
/// is applied, flushed, and only then is the cursor persisted.
async fn round(
    ctx: &Arc<Syncer>,
    client: &PeerClient,
    peer: &PeerSection,
) -> Result<(), SyncError> {
    client.hello().await?;
    let store = ctx.store.clone();
    let name = peer.name.clone();
    let mut state = blocking(move || Ok(store.peer_state(&name)?)).await?;
    loop {
        let page = client.changes(state.cursor, PAGE).await?;
        if page.last_seq < state.cursor {
            return Err(SyncError::Protocol(format!(
                "the feed went backwards: asked after {}, got up to {}",
                state.cursor, page.last_seq
            )));
        }
        let more = page.more && page.last_seq > state.cursor;
        let c = ctx.clone();
        let name = peer.name.clone();
        let mut next = state.clone();
        state = blocking(move || {
            let receiver = Receiver {
                sealer: &c.sealer,
                trust: &c.trust,
            };
            let report = apply_page(&c.store, &receiver, &name, &page, c.max_bytes)?;
            // The records first, then the cursor that says they are here.
            c.store.flush()?;
            next.cursor = page.last_seq;
            next.last_success = Some(crate::model::time::now_secs());
            next.errors += report.rejected.len() as u64;
            next.last_error = report
                .rejected
                .last()
                .map(|(seq, why)| format!("record {seq}: {why}"));
            c.store.set_peer_state(&name, &next)?;
            if report.accepted > 0 || !report.rejected.is_empty() {
                tracing::info!(
                    peer = %name,
                    cursor = next.cursor,
                    accepted = report.accepted,
                    rejected = report.rejected.len(),
                    "changes applied"
                );
            }
            Ok(next)
        })
        .await?;
        if !more {
            return Ok(());
        }
    }
}

fn record_failure(store: &Store, peer: &str, reason: &str) {
    let updated = store.peer_state(peer).and_then(|mut s| {
        s.errors += 1;
        s.last_error = Some(reason.to_owned());
        store.set_peer_state(peer, &s)
    });
    if let Err(e) = updated {
        tracing::warn!(peer, reason = %e, "cannot record the pull failure");
    }
}

/// `BACKOFF_BASE · 2^(failures-1)`, capped at `BACKOFF_MAX`, plus up to half
/// again of random jitter.
fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let base = exp.min(BACKOFF_MAX);
    let mut b = [0u8; 8];
    // Without randomness the delay is merely unjittered, which is still correct.
    let r = getrandom::fill(&mut b).map_or(0, |()| u64::from_le_bytes(b));
    let half = base.as_millis() as u64 / 2;
    base + Duration::from_millis(if half == 0 { 0 } else { r % half })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SyncError> + Send + 'static,
) -> Result<T, SyncError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SyncError::Join(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= BACKOFF_BASE && backoff(1) < BACKOFF_BASE * 2);
        assert!(backoff(3) >= BACKOFF_BASE * 4);
        assert!(backoff(40) <= BACKOFF_MAX + BACKOFF_MAX / 2);
    }
}
