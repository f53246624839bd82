//! Pulling partner nodes' changes feeds (DESIGN §5): per `[[peer]]` with
//! `pull = true`, a task that pages the peer's `/fed/v1/changes` from the
//! persisted cursor, verifies and stores every record through the same receive
//! path as `sluis import`, flushes, and only then advances the cursor.
//!
//! | file | owns |
//! |---|---|
//! | `receive.rs` | [`receive::Receiver`]: the one receive path for sealed events (import and puller) |
//! | `client.rs` | [`client::PeerClient`]: `hello` and `changes` over mutual TLS |
//! | `apply.rs` | applying one page: events, tombstones, sightings; per-record results |
//! | `puller.rs` | [`spawn`]: the per-peer loop, cursor, backoff with jitter |

mod apply;
pub mod client;
mod puller;
pub mod receive;

pub use apply::PageReport;
pub use puller::{spawn, Syncer};

/// Why a pull round failed. Every variant leaves the cursor where it was, so the
/// next round retries the same page.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot reach the peer: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the peer answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("protocol: {0}")]
    Protocol(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("worker failed: {0}")]
    Join(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}
