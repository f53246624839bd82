//! Incident-support exchange between CERTs: a CERT facing an incident asks named
//! partner CERTs for help; they acknowledge, offer, share findings or decline;
//! the requester moves the case to closure — every step a record sealed by its
//! author's node, so the case is a verifiable record of who said what, when.
//!
//! **Who sees what.** A record travels only from its author's node, directly,
//! to the nodes of the organisations in its `audience`, and never further (no
//! forwarding): a request to the CERTs it addresses; a response to the
//! requester only (so B never sees C's answer); a status change to the CERTs
//! addressed. Only the requester may change a case's status. A receiver checks
//! the signature (the author's key), that it is in the audience, that the peer
//! that sent the record is its author, and the case rules ([`case`]).
//!
//! | file | owns |
//! |---|---|
//! | `record.rs` | [`CaseRecord`] and its bodies; sealing and verification; shape rules |
//! | `case.rs` | a case assembled from its records: status, who answered, overdue; the case rules |
//! | `receive.rs` | accepting a record from a peer |
//! | `notify.rs` | the operator webhook: arrivals and overdue cases, retried with backoff |
//! | `stored.rs` | [`CaseStore`]: typed case-record calls on the store |
//!
//! Storage: the store keeps records as opaque sealed JSON (by uuid, indexed by
//! case, in the change log). Transport: the federation changes feed
//! (`federation::feed`, kind `case`).
//! Analyst API: `api::support`. CLI: `sluis support list|show`.

pub mod case;
pub mod notify;
pub mod receive;
pub mod record;
mod stored;

pub use case::Case;
pub use notify::{Notice, Notifier};
pub use record::{Body, CaseRecord, Request, Status};
pub use stored::CaseStore;

/// Why a case record was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupportError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("seal: {0}")]
    Seal(#[from] crate::seal::SealError),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Whether `rec`, held by the node of `own_org`, may go to a peer of `peer_org`:
/// only its author's node sends it, only to its audience.
pub fn may_send(rec: &CaseRecord, own_org: uuid::Uuid, peer_org: uuid::Uuid) -> bool {
    rec.author_org == own_org && rec.audience.contains(&peer_org)
}
