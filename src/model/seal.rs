//! The wire form of a seal (`Event.Seal`): the origin node's signature over the
//! digests of an event's header and elements. Creating and checking seals is the
//! `seal` module's business; the model only carries them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Numbers are read leniently (PyMISP echoes a seal back with every integer turned
/// into a string) and written as numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    #[serde(deserialize_with = "super::wire::de_u8")]
    pub version: u8,
    /// The organisation of the node that vouches for this version.
    pub origin_org: Uuid,
    /// Identifies the origin's signing key (derived from the public key).
    pub key_id: String,
    /// Hex SHA-256 of the canonical event header.
    pub header: String,
    /// Hex SHA-256 digests of every element's signed form, sorted.
    pub elements: Vec<String>,
    /// When the origin sealed this version (epoch seconds): the time its key
    /// must have been valid at. Optional in the type only so that a seal without
    /// it parses and is then refused by name, rather than as an unreadable seal;
    /// version 1 requires it.
    #[serde(
        default,
        deserialize_with = "super::wire::de_opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub signed_at: Option<u64>,
    /// Base64 ed25519 signature.
    pub signature: String,
}
