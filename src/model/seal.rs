//! The wire form of a seal (`Event.Seal`): the origin node's signature over the
//! digests of an event's header and elements. Creating and checking seals is the
//! `seal` module's business; the model only carries them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    pub version: u8,
    /// The organisation of the node that vouches for this version.
    pub origin_org: Uuid,
    /// Identifies the origin's signing key (derived from the public key).
    pub key_id: String,
    /// Hex SHA-256 of the canonical event header.
    pub header: String,
    /// Hex SHA-256 digests of every element's signed form, sorted.
    pub elements: Vec<String>,
    /// Base64 ed25519 signature.
    pub signature: String,
}
