//! Federation between sluis nodes (docs/design.md §5): the protocol, both sides of it.
//! The HTTP endpoints partners call (`/fed/v1/…`) are `api::fed`; everything
//! they serve and everything this node does as a client is here.
//!
//! Syncing with partner nodes: per `[[peer]]` with `pull = true`, a
//! task that pages the peer's `/fed/v1/changes` from the persisted cursor,
//! verifies and stores every record through the same receive path as
//! `sluis import`, flushes, only then advances the cursor, and reports back what
//! it accepted and refused; per `[[peer]]` with `push = true`, a task that
//! notifies the peer when this node has news.
//!
//! | file | owns |
//! |---|---|
//! | `wire.rs` | the protocol's lines and reports, and their bounded decoder |
//! | `feed.rs` | the changes feed's content for one peer: change log → filtered, sealed lines |
//! | `receive.rs` | [`receive::Receiver`]: the one receive path for sealed events (import and puller) |
//! | `client.rs` | [`client::PeerClient`]: `hello`, `changes`, `report`, `notify` over mutual TLS |
//! | `apply.rs` | applying a page line by line: events, tombstones, sightings; per-record verdicts |
//! | `puller.rs` | [`spawn`]: the per-peer loop, streaming pages, cursor, long-poll, backoff with jitter |
//! | `push.rs` | the per-peer notifier |
//! | `hub.rs` | [`Hub`]: per-peer wake-ups, feed caps, counters, and the stop signal |
//! | `status.rs` | where each peer stands, both directions (`sluis peers`, `GET /admin/peers`) |

mod apply;
pub mod client;
pub mod feed;
pub mod hub;
mod puller;
mod push;
pub mod receive;
pub mod status;
pub mod wire;

pub use apply::{PageApplier, PageReport};
pub use hub::Hub;
pub use puller::{spawn, Syncer};

/// The federation protocol version this node speaks; a peer that sees another
/// number in `hello` must not sync.
pub const PROTOCOL_VERSION: u32 = 1;

/// Why a pull round failed. Every variant leaves the cursor where it was, so the
/// next round retries the same page.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error("cannot reach the peer: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the peer answered {status}: {body}")]
    Status { status: u16, body: String },
    /// 429 from the peer: come back after its `Retry-After`, not on our backoff.
    #[error("the peer asks us to slow down for {0:?}")]
    RateLimited(std::time::Duration),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("worker failed: {0}")]
    Join(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
}
