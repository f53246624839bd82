//! The per-peer pull loop: hello, then changes pages from the persisted cursor
//! until the peer has no more, then a long-poll for the next change (bounded by
//! the peer's `interval`), woken early by the peer's notification. Failures back
//! off exponentially with jitter (so a fleet does not hammer a peer that just
//! came back, all at once), cut short when the peer notifies us that it is back.
//!
//! A page streams in: the async side reads the body and splits it into lines;
//! a blocking worker verifies and stores each line as it arrives (bounded channel
//! between them), then flushes, and only then persists the cursor and reports
//! to the peer what it accepted and refused.

use super::apply::{ApplyError, PageApplier, PageReport};
use super::client::PeerClient;
use super::hub::Hub;
use super::receive::Receiver;
use super::SyncError;
use crate::config::{Config, PeerSection};
use crate::federation::feed::MAX_WAIT;
use crate::federation::wire::Report;
use crate::seal::{Sealer, TrustList};
use crate::store::Store;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Records asked for per page.
const PAGE: usize = 500;
/// Lines buffered between the reader and the applier.
const LINES_IN_FLIGHT: usize = 8;
/// First retry delay after a failure; doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Everything the sync tasks need, prepared with the rest of the node so a bad
/// certificate or trust entry fails at start rather than in a background task.
pub struct Syncer {
    pub(super) store: Arc<Store>,
    pub(super) sealer: Arc<Sealer>,
    pub(super) trust: Arc<TrustList>,
    pub(super) peers: Vec<PeerSection>,
    pub(super) tls: Arc<rustls::ClientConfig>,
    pub(super) max_bytes: usize,
    pub(super) hub: Arc<Hub>,
    pub(super) audit: Option<Arc<crate::audit::AuditLog>>,
}

impl Syncer {
    /// The sync tasks of `cfg`'s peers over `store`.
    pub fn new(
        cfg: &Config,
        store: Arc<Store>,
        sealer: Arc<Sealer>,
        trust: TrustList,
        tls: Arc<rustls::ClientConfig>,
        hub: Arc<Hub>,
        audit: Option<Arc<crate::audit::AuditLog>>,
    ) -> Self {
        Syncer {
            store,
            sealer,
            trust: Arc::new(trust),
            peers: cfg.peer.clone(),
            tls,
            max_bytes: cfg.max_document_bytes(),
            hub,
            audit,
        }
    }
}

/// Starts a puller per peer with `pull = true` and a notifier per peer with
/// `push = true`; all stop when the hub's stop signal is raised.
pub fn spawn(syncer: Syncer) -> Vec<JoinHandle<()>> {
    let syncer = Arc::new(syncer);
    let mut tasks = Vec::new();
    for p in &syncer.peers {
        let client = match PeerClient::new(p.clone(), &syncer.tls) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!(peer = %p.name, reason = %e, "cannot build the peer client; not syncing with it");
                continue;
            }
        };
        if p.pull {
            tasks.push(tokio::spawn(run_puller(
                syncer.clone(),
                p.clone(),
                client.clone(),
            )));
        }
        if p.push {
            tasks.push(tokio::spawn(super::push::run_notifier(
                syncer.store.clone(),
                syncer.hub.clone(),
                p.name.clone(),
                client,
            )));
        }
    }
    tasks
}

async fn run_puller(ctx: Arc<Syncer>, peer: PeerSection, client: Arc<PeerClient>) {
    let mut failures = 0u32;
    let mut stopping = ctx.hub.stopping();
    // The first round pulls at once; later idle rounds long-poll.
    let mut wait = 0;
    loop {
        if *stopping.borrow() {
            return;
        }
        // A round is cut short by shutdown: what was applied is flushed with its
        // cursor inside one blocking step, which runs to its end regardless.
        let result = tokio::select! {
            r = round(&ctx, &client, &peer, wait) => r,
            _ = stopping.changed() => return,
        };
        let delay = match result {
            Ok(()) => {
                failures = 0;
                wait = peer.interval().as_secs().clamp(1, MAX_WAIT);
                continue;
            }
            Err(SyncError::RateLimited(after)) => {
                // Not a failure of the peer: it asked us to wait, so wait that long.
                wait = 0;
                tracing::info!(peer = %peer.name, ?after, "rate limited by the peer");
                after
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                wait = 0;
                tracing::warn!(peer = %peer.name, reason = %e, failures, "pull failed");
                if let Some(s) = ctx.hub.stats(&peer.name) {
                    s.pull_failures.fetch_add(1, Ordering::Relaxed);
                }
                record_failure(&ctx.store, &peer.name, &e.to_string());
                backoff(failures)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = ctx.hub.woken(&peer.name) => {
                tracing::debug!(peer = %peer.name, "notified; retrying at once");
            }
            _ = stopping.changed() => return,
        }
    }
}

/// One pull: hello, then pages until the peer says there are no more; the first
/// page waits up to `wait` seconds for news. Each page is applied as it streams,
/// flushed, and only then is the cursor persisted.
async fn round(
    ctx: &Arc<Syncer>,
    client: &PeerClient,
    peer: &PeerSection,
    mut wait: u64,
) -> Result<(), SyncError> {
    client.hello().await?;
    let store = ctx.store.clone();
    let name = peer.name.clone();
    let mut cursor = blocking(move || Ok(store.peer_state(&name)?.cursor)).await?;
    loop {
        let (next, more, report) = page(ctx, client, peer, cursor, wait).await?;
        wait = 0;
        if !report.rejected.is_empty() || report.accepted > 0 || next != cursor {
            let r = Report {
                after: cursor,
                cursor: next,
                accepted: report.accepted,
                rejected_total: report.rejected_total,
                rejected: report.rejected,
            };
            // The report is for the peer's operators; our cursor is already safe.
            if let Err(e) = client.report(&r).await {
                tracing::warn!(peer = %peer.name, reason = %e, "cannot report the page to the peer");
            }
        }
        cursor = next;
        if !more {
            return Ok(());
        }
    }
}

/// Pulls, applies and commits one page; returns the new cursor, whether more
/// follows, and what became of the records.
async fn page(
    ctx: &Arc<Syncer>,
    client: &PeerClient,
    peer: &PeerSection,
    after: u64,
    wait: u64,
) -> Result<(u64, bool, PageReport), SyncError> {
    let mut response = client.changes(after, PAGE, wait).await?;
    let (tx, mut rx) = mpsc::channel::<Chunk>(LINES_IN_FLIGHT);
    let c = ctx.clone();
    let name = peer.name.clone();
    let peer_org = peer.org_uuid;
    let worker = tokio::task::spawn_blocking(move || {
        let receiver = Receiver {
            sealer: &c.sealer,
            trust: &c.trust,
        };
        let mut applier = PageApplier::new(&c.store, &receiver, &name, after, c.max_bytes);
        if let Some(a) = &c.audit {
            applier = applier.audited(a);
        }
        applier = applier.support(c.sealer.org(), peer_org, &c.hub.notifier);
        let mut failure = None;
        while let Some(chunk) = rx.blocking_recv() {
            let r = match chunk {
                Chunk::Line(l) => applier.line(&l),
                Chunk::TooLong(n) => applier.oversized(n),
            };
            if let Err(e) = r {
                failure = Some(e);
                break;
            }
        }
        drop(rx);
        commit(&c, &name, &applier)?;
        let end = applier.end();
        match failure {
            Some(ApplyError::Store(e)) => Err(SyncError::Store(e)),
            Some(ApplyError::Protocol(p)) => Err(SyncError::Protocol(p)),
            Some(ApplyError::Audit(e)) => Err(SyncError::Audit(e)),
            None => Ok((applier.cursor(), end, applier.report)),
        }
    });
    let max_line = ctx
        .max_bytes
        .saturating_add(crate::federation::wire::LINE_OVERHEAD);
    let read = read_lines(&mut response, max_line, &tx).await;
    drop(tx);
    let (cursor, end, report) = worker.await.map_err(|e| SyncError::Join(e.to_string()))??;
    read?;
    match end {
        Some(end) => Ok((cursor, end.more, report)),
        None => Err(SyncError::Protocol(format!(
            "the page ended without its end line (applied up to {cursor})"
        ))),
    }
}

/// Flushes what a page stored, then persists the cursor and the peer's health:
/// the records first, then the cursor that says they are here.
fn commit(ctx: &Syncer, peer: &str, applier: &PageApplier<'_>) -> Result<(), SyncError> {
    ctx.store.flush()?;
    // The verdicts are on disk before the cursor says the records are here.
    if let Some(a) = &ctx.audit {
        a.sync()?;
    }
    let mut state = ctx.store.peer_state(peer)?;
    let cursor = applier.cursor();
    let report = &applier.report;
    state.cursor = cursor;
    state.accepted += report.accepted;
    state.rejected += report.rejected_total;
    state.errors += report.rejected_total;
    if let Some(end) = applier.end() {
        state.head = end.head;
        state.last_success = Some(crate::model::time::now_secs());
        state.last_error = None;
    }
    if let Some(r) = report.rejected.last() {
        state.last_error = Some(format!("record {}: {}", r.seq, r.reason));
    }
    ctx.store.set_peer_state(peer, &state)?;
    if let Some(s) = ctx.hub.stats(peer) {
        s.accepted.fetch_add(report.accepted, Ordering::Relaxed);
        s.rejected
            .fetch_add(report.rejected_total, Ordering::Relaxed);
        s.cursor.store(state.cursor, Ordering::Relaxed);
        s.head.store(state.head, Ordering::Relaxed);
        if let Some(t) = state.last_success {
            s.last_success.store(t, Ordering::Relaxed);
        }
    }
    if report.accepted > 0 || report.rejected_total > 0 {
        tracing::info!(
            peer,
            cursor,
            head = state.head,
            accepted = report.accepted,
            rejected = report.rejected_total,
            "changes applied"
        );
    }
    Ok(())
}

/// What the reader hands the applier.
enum Chunk {
    Line(Vec<u8>),
    /// A line longer than the limit, skipped unread (its length so far).
    TooLong(usize),
}

/// Reads the body, splitting it into lines of at most `max` bytes, and sends
/// them on. Stops early (without error) when the applier has stopped.
async fn read_lines(
    response: &mut reqwest::Response,
    max: usize,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), SyncError> {
    let mut splitter = Splitter::new(max);
    while let Some(bytes) = response.chunk().await? {
        for chunk in splitter.push(&bytes) {
            if tx.send(chunk).await.is_err() {
                return Ok(());
            }
        }
    }
    if let Some(chunk) = splitter.finish() {
        let _ = tx.send(chunk).await;
    }
    Ok(())
}

/// Splits a byte stream into lines, never holding more than `max` bytes of one:
/// a longer line is dropped as it streams and reported once by its length.
struct Splitter {
    max: usize,
    buf: Vec<u8>,
    skipping: Option<usize>,
}

impl Splitter {
    fn new(max: usize) -> Self {
        Splitter {
            max,
            buf: Vec::new(),
            skipping: None,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) -> Vec<Chunk> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let nl = bytes.iter().position(|b| *b == b'\n');
            let (part, rest, ended) = match nl {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            match &mut self.skipping {
                Some(n) => *n += part.len(),
                None if self.buf.len() + part.len() > self.max => {
                    self.skipping = Some(self.buf.len() + part.len());
                    self.buf = Vec::new();
                }
                None => self.buf.extend_from_slice(part),
            }
            if ended {
                match self.skipping.take() {
                    Some(n) => out.push(Chunk::TooLong(n)),
                    None if self.buf.is_empty() => {}
                    None => out.push(Chunk::Line(std::mem::take(&mut self.buf))),
                }
            }
            bytes = rest;
        }
        out
    }

    /// What is left when the body ends: a last line without its newline.
    fn finish(&mut self) -> Option<Chunk> {
        match self.skipping.take() {
            Some(n) => Some(Chunk::TooLong(n)),
            None if self.buf.is_empty() => None,
            None => Some(Chunk::Line(std::mem::take(&mut self.buf))),
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

    fn lines(chunks: Vec<Chunk>) -> Vec<String> {
        chunks
            .into_iter()
            .map(|c| match c {
                Chunk::Line(l) => String::from_utf8(l).unwrap(),
                Chunk::TooLong(n) => format!("<{n} skipped>"),
            })
            .collect()
    }

    #[test]
    fn splitter_bounds_lines_across_chunk_boundaries() {
        let mut s = Splitter::new(5);
        let mut got = lines(s.push(b"ab\ncd"));
        got.extend(lines(s.push(b"e\n0123456789")));
        got.extend(lines(s.push(b"abc\n\nxy")));
        got.extend(lines(s.finish().into_iter().collect()));
        assert_eq!(got, ["ab", "cde", "<13 skipped>", "xy"]);
        // Exactly the limit is fine; one more is not.
        let mut s = Splitter::new(3);
        assert_eq!(lines(s.push(b"abc\nabcd\n")), ["abc", "<4 skipped>"]);
    }
}
