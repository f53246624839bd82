//! Operator endpoints for site admins: `GET /admin/peers` (where each peer
//! stands, [`crate::federation::status`]) and `GET /admin/backup`, a consistent snapshot
//! of the whole store (see [`crate::store::backup`]) streamed as the body, so
//! `sluis backup` works while the node runs (sled lets one process open the
//! database).
//!
//! The snapshot is written on a blocking thread into a bounded channel. It holds
//! the store's writer lock until the walk ends, so a client that stops reading
//! would stall every write of the node: a chunk the connection has not taken
//! within [`STALL`] aborts the backup, releasing the lock, and the client sees a
//! cut-off transfer (which `sluis backup` detects and reports).

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use std::io::{self, Write};
use std::time::Duration;
use tokio::sync::mpsc;

/// Size of the chunks handed to the connection.
const CHUNK: usize = 256 * 1024;
/// Chunks buffered between the snapshot thread and the connection.
const CHANNEL_DEPTH: usize = 4;
/// Longest the snapshot waits for the connection to take a chunk.
const STALL: Duration = Duration::from_secs(30);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/backup", get(backup))
        .route("/admin/peers", get(peers))
}

/// `GET /admin/peers`: where each configured peer stands, both directions
/// ([`crate::federation::status`]).
async fn peers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Vec<crate::federation::status::PeerStatus>>, ApiError> {
    caller.require(caller.role.perm_site_admin)?;
    let store = state.store.clone();
    let peers = state.peers.clone();
    let status =
        super::blocking(move || Ok(crate::federation::status::peer_status(&store, &peers)?))
            .await?;
    Ok(axum::Json(status))
}

/// `GET /admin/backup`: the backup file as `application/octet-stream`.
async fn backup(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(caller.role.perm_site_admin)?;
    let store = state.store.clone();
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, io::Error>>(CHANNEL_DEPTH);
    let runtime = tokio::runtime::Handle::current();
    let user = caller.user.id;
    tracing::info!(user, "backup started");
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkSender::new(tx, runtime, STALL);
        match store.backup_to(&mut out, &mut |_| {}) {
            Ok(s) => tracing::info!(user, records = s.records, bytes = s.bytes, "backup sent"),
            Err(e) => out.fail(e),
        }
    });
    // Wait for the first chunk, so a failure at the start is an error status
    // rather than a cut-off body.
    let first = rx.recv().await;
    match &first {
        Some(Err(e)) => return Err(ApiError::Internal(format!("backup failed: {e}"))),
        None => return Err(ApiError::Internal("the backup worker stopped".into())),
        Some(Ok(_)) => {}
    }
    let head = futures_util::stream::iter(first);
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let name = format!(
        "attachment; filename=\"sluis-{}-{}.sbk\"",
        state
            .node
            .name
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
        crate::model::time::now_secs()
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_DISPOSITION, name)
        .body(Body::from_stream(futures_util::StreamExt::chain(
            head, rest,
        )))
        .map_err(|e| ApiError::Internal(format!("building the backup answer: {e}")))
}

/// Buffers the snapshot and hands it to the connection in [`CHUNK`]s through a
/// bounded channel, failing (which ends the snapshot) when the connection is gone
/// or has taken nothing for `stall`.
struct ChunkSender {
    buf: Vec<u8>,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    runtime: tokio::runtime::Handle,
    stall: Duration,
}

impl ChunkSender {
    fn new(
        tx: mpsc::Sender<Result<Bytes, io::Error>>,
        runtime: tokio::runtime::Handle,
        stall: Duration,
    ) -> Self {
        ChunkSender {
            buf: Vec::with_capacity(CHUNK),
            tx,
            runtime,
            stall,
        }
    }

    fn send_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        // On a blocking thread (never a runtime worker), so blocking on the
        // runtime's handle is allowed.
        match self
            .runtime
            .block_on(self.tx.send_timeout(Ok(chunk), self.stall))
        {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client took nothing for {} s; backup abandoned",
                    self.stall.as_secs()
                ),
            )),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
        }
    }

    /// Ends the body with an error, which aborts the response: the client sees a
    /// truncated transfer, never a well-formed partial backup.
    fn fail(self, e: crate::store::backup::BackupError) {
        tracing::error!(error = %e, "backup failed");
        let err = Err(io::Error::other(e.to_string()));
        let _ = self.runtime.block_on(self.tx.send_timeout(err, self.stall));
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_chunk()?;
        }
        Ok(data.len())
    }

    /// The snapshot flushes once, at its end: send what is left.
    fn flush(&mut self) -> io::Result<()> {
        self.send_chunk()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_stops_reading_ends_the_snapshot() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel(1);
        let handle = rt.handle().clone();
        let writer = std::thread::spawn(move || {
            let mut w = ChunkSender::new(tx, handle, Duration::from_millis(200));
            let data = vec![7u8; CHUNK];
            // The first chunk fills the channel; nobody takes it, so the second
            // times out instead of blocking forever.
            w.write_all(&data)?;
            w.write_all(&data)
        });
        let e = writer.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(rx);
    }

    #[test]
    fn a_client_that_went_away_ends_the_snapshot() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut w = ChunkSender::new(tx, rt.handle().clone(), Duration::from_secs(5));
        let e = w.write_all(&vec![0u8; CHUNK]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
