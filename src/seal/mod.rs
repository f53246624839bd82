//! Node identity and sealed records: every event version, sighting and tombstone a
//! node creates or introduces carries the ed25519 signature of that node (its
//! *origin*), and every node checks every seal it receives (docs/design.md §4).
//!
//! | file | owns |
//! |---|---|
//! | [`keys`] | [`NodeKey`], the node's signing key: generation from OS randomness, the 0600 PKCS#8 file, the [`KeyId`] |
//! | [`canonical`] | RFC 8785 canonical JSON (JCS) and [`Digest`], SHA-256 over it |
//! | [`signed_form`] | what of each element is signed, and the element digests |
//! | `seal.rs` | [`seal_event`] and [`verify_event`]: the event seal (`Event.Seal`) |
//! | `records.rs` | [`SealedSighting`] and [`Tombstone`]: records sealed on their own |
//! | `trust.rs` | [`TrustList`]: which keys may vouch for which origin org, when, and revocations |
//!
//! How an event seal works, in short: each element (attribute, object, object
//! reference, event report) is reduced to its *signed form* — its wire JSON without
//! what is local to one node — and hashed; the header (the event's own fields and
//! tags) likewise. The origin signs the header digest and the sorted list of all
//! element digests. A receiver recomputes the digest of every element it got and
//! finds it in the signed list, so the seal still verifies after distribution
//! filtering has withheld elements, across any number of hops, while a withheld
//! element reveals nothing but an opaque digest.
//!
//! The signed time of an event seal is `Seal.signed_at`, when the origin sealed;
//! key validity windows are checked against it (see `seal.rs`). Sightings and
//! tombstones use their own dates (`date_sighting`, the tombstone `timestamp`).
//!
//! What the seal does *not* decide: whether a version is newer than the stored one
//! (the store does that with [`VerifiedEvent::timestamp`], the signed timestamp), and
//! who may receive what (policy). What it does not cover: local state (ids, owner
//! org, `locked`, `published`, effective distribution) and anything stripped by
//! [`strip_unsealed`], which a receiver must drop from peer records.
//!
//! Nothing here does I/O except [`NodeKey::save`] and [`NodeKey::load`].

pub mod canonical;
pub mod keys;
mod records;
// The file is called `seal.rs` like the module it sits in, because it holds the
// seal proper; the re-exports below are the API, so the inner name never shows.
#[allow(clippy::module_inception)]
mod seal;
pub mod signed_form;
mod trust;

pub use crate::model::seal::{restore_signed_levels, send_levels};
pub use canonical::Digest;
pub use keys::{parse_public_key, KeyError, KeyId, NodeKey};
pub use records::{
    sign_case, verify_case, SealedSighting, Tombstone, TombstoneKind, VerifiedRecord,
};
pub use seal::{seal_event, seal_event_at, strip_unsealed, verify_event, VerifiedEvent};
pub use trust::{TrustError, TrustList, TrustedKey};

use uuid::Uuid;

/// This node's signing identity: its key and the organisation it seals for.
/// Everything the node creates, edits or introduces is sealed through it.
pub struct Sealer {
    key: NodeKey,
    org: Uuid,
}

impl Sealer {
    pub fn new(key: NodeKey, org: Uuid) -> Self {
        Sealer { key, org }
    }

    /// Seals `event` as this node (replacing any previous seal).
    pub fn seal(&self, event: &mut crate::model::Event) -> Result<(), SealError> {
        seal_event(event, &self.key, self.org)
    }

    pub fn key(&self) -> &NodeKey {
        &self.key
    }

    pub fn org(&self) -> Uuid {
        self.org
    }
}

/// The seal format this node writes and reads (`Seal.version`, and the first byte
/// after the domain string of every signed message).
pub const SEAL_VERSION: u8 = 1;

/// How far ahead of this node's clock a signed time may be. A version dated in the
/// future would make every honest later version "not newer" until then, so such
/// records are refused; the margin allows for clock skew between nodes (NTP is a
/// stated dependency).
pub const MAX_CLOCK_SKEW_SECS: u64 = 3600;

/// Why sealing or verification failed. Every variant names what the operator needs
/// to find the cause; verification fails closed on the first problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The event carries no `Seal` at all.
    #[error("the event carries no seal")]
    Unsealed,
    /// A seal or record in a format version this node does not know.
    #[error("seal format version {0} is not supported (this node reads version {SEAL_VERSION})")]
    UnsupportedVersion(u8),
    /// A field of the seal or record cannot be decoded (bad hex, bad base64, wrong
    /// length, unsorted or repeated digests, …).
    #[error("malformed seal: {field}: {reason}")]
    Malformed { field: &'static str, reason: String },
    /// The record cannot be sealed as it is (validate it first).
    #[error("cannot seal: {0}")]
    Unsealable(String),
    /// No key with this id is trusted (not configured, or a typo in the config).
    #[error("unknown signing key {key_id} (origin org {origin_org})")]
    UnknownKey { origin_org: Uuid, key_id: KeyId },
    /// The key is trusted, but for another origin org: a seal copied under a forged
    /// `origin_org`.
    #[error("signing key {key_id} belongs to origin org {registered}, not to {claimed}")]
    KeyOriginMismatch {
        key_id: KeyId,
        claimed: Uuid,
        registered: Uuid,
    },
    /// The key id is on the revocation list.
    #[error("signing key {key_id} is revoked")]
    Revoked { key_id: KeyId },
    /// The signed time lies outside the key's validity window.
    #[error("signing key {key_id} is not valid at {at} (valid from {} until {})",
        fmt_bound(*not_before), fmt_bound(*not_after))]
    OutsideValidity {
        key_id: KeyId,
        at: u64,
        not_before: Option<u64>,
        not_after: Option<u64>,
    },
    /// The signed time is further in the future than [`MAX_CLOCK_SKEW_SECS`].
    #[error(
        "signed time {at} is more than {MAX_CLOCK_SKEW_SECS} s ahead of this node's clock ({now})"
    )]
    FromTheFuture { at: u64, now: u64 },
    /// The seal's `signed_at` lies more than [`MAX_CLOCK_SKEW_SECS`] before the
    /// version's `timestamp`: an origin seals a version when it makes it, so this
    /// is a back-dated seal (a retired key reaching past its validity window).
    #[error(
        "sealed at {signed_at}, more than {MAX_CLOCK_SKEW_SECS} s before the version's timestamp {timestamp}"
    )]
    SignedBeforeVersion { signed_at: u64, timestamp: u64 },
    /// The signature does not verify (with `verify_strict`). For an event seal this
    /// is also what a seal copied onto another event, or onto another version of
    /// the same event, gives: the event uuid and timestamp are part of the signed
    /// message, and the wire seal does not name its event, so "made for something
    /// else" and "altered" cannot be told apart.
    #[error(
        "bad signature by key {key_id} on {what}: made for another record or version, or altered"
    )]
    BadSignature { key_id: KeyId, what: String },
    /// The event's own fields (or event-level tags) differ from what was signed.
    #[error("the event header differs from what the origin signed")]
    HeaderMismatch,
    /// An element whose digest is not in the signed list: changed, added, or taken
    /// from another version.
    #[error(
        "{element} is not among the signed elements (changed, added, or from another version)"
    )]
    DigestNotListed { element: String },
    /// The same signed element twice (when sealing: two elements with the same
    /// signed form; when verifying: an element repeated by a sender).
    #[error("{element} appears more than once")]
    DuplicateElement { element: String },
    /// Canonicalisation failed (cannot happen for the model's types; kept so a
    /// future field type that JCS refuses surfaces as an error, not a panic).
    #[error("cannot canonicalise {what}: {reason}")]
    Canonical { what: &'static str, reason: String },
}

fn fmt_bound(t: Option<u64>) -> String {
    t.map_or_else(|| "any time".to_owned(), |t| t.to_string())
}

/// Checks a signed time against this node's clock (see [`MAX_CLOCK_SKEW_SECS`]).
fn check_not_future(at: u64, now: u64) -> Result<(), SealError> {
    if at > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        Err(SealError::FromTheFuture { at, now })
    } else {
        Ok(())
    }
}
