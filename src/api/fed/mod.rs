//! Federation between sluis nodes (docs/design.md §5): the HTTP endpoints under `/fed/v1/` that
//! partner nodes call with their client certificate.
//!
//! Authentication is mutual TLS only. rustls has already verified the chain to the
//! federation CA and the CRLs before a request reaches this module; here the
//! verified [`crate::tls::PeerIdentity`] is mapped to exactly one configured
//! `[[peer]]` (and its pinned fingerprint, if any), or the request is refused. API
//! keys play no part: an analyst key grants nothing here, and a peer certificate
//! grants nothing on the analyst API (`api::auth` requires a key).
//!
//! | file | owns |
//! |---|---|
//! | `auth.rs` | the [`Peer`] extractor and [`FedAuthError`], the refusals |
//! | `routes.rs` | [`routes`]: the table of `/fed/v1/` endpoints, and `hello` |
//! | `changes.rs` | the changes feed ([`crate::federation::feed`]) for the calling peer, streamed |
//! | `notify.rs` | `POST /fed/v1/notify`: wake the caller's puller |
//! | `report.rs` | `POST /fed/v1/report`: what the caller accepted and refused |
//!
//! The protocol itself (wire format, feed content, pulling, pushing) is
//! [`crate::federation`]; this module is only its HTTP face.

mod auth;
mod changes;
mod notify;
mod report;
mod routes;

pub use auth::{FedAuthError, Peer};
pub use routes::routes;
