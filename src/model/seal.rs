//! The wire form of a seal (`Event.Seal`): the origin node's signature over the
//! digests of an event's header and elements. Creating and checking seals is the
//! `seal` module's business; the model carries them, and moves an event's levels
//! between the signed and the sent form ([`send_levels`],
//! [`restore_signed_levels`]), which policy, store and seal all need.

use super::Event;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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
    /// The level the origin signed, by element (or event) uuid, for each
    /// element a hop sent at a narrower level than signed. Distribution is
    /// downgraded hop by hop as in MISP (2 → 1 → 0), and a receiver shows and
    /// decides with the level it got, but the digests cover the origin's
    /// level: a verifier puts these back first (`seal::restore_signed_levels`).
    /// Not signed, and need not be: an entry that is not what the origin
    /// signed makes its digest fail, and a receiver refuses a sent level wider
    /// than the signed one. Empty (and absent) when nothing was narrowed.
    #[serde(
        default,
        deserialize_with = "super::wire::de_level_map",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub signed_distribution: std::collections::BTreeMap<Uuid, u8>,
}

/// Sends `event`'s elements at narrower levels than signed: `sent(uuid,
/// signed)` gives the level each element (and the event, by its uuid) goes
/// out at, and where it differs from the signed one, the signed level is
/// noted in the seal's `signed_distribution` so the receiver can put it back
/// before verifying ([`restore_signed_levels`]); an unsealed event just gets
/// the levels. What may be sent at which level is the caller's (policy's) call.
pub fn send_levels(event: &mut Event, sent: impl Fn(&Uuid, u8) -> u8) {
    let mut seal = event.seal.take();
    event.each_level_mut(|uuid, level| {
        let out = sent(uuid, *level);
        if out != *level {
            if let Some(seal) = seal.as_mut() {
                seal.signed_distribution.insert(*uuid, *level);
            }
            *level = out;
        }
    });
    event.seal = seal;
}

/// The other half of [`send_levels`]: puts the levels the origin signed back
/// into a received `event` (so `seal::verify_event` can check it) and returns the
/// levels it was sent at, by uuid, where they differ. An entry for a uuid the
/// event does not hold is ignored (its element was withheld on the way).
/// The caller must check that each sent level narrows the signed one: a hop
/// may downgrade, never widen.
pub fn restore_signed_levels(event: &mut Event) -> HashMap<Uuid, u8> {
    let mut sent = HashMap::new();
    let Some(seal) = event.seal.as_mut() else {
        return sent;
    };
    let signed = std::mem::take(&mut seal.signed_distribution);
    if signed.is_empty() {
        return sent;
    }
    event.each_level_mut(|uuid, level| {
        if let Some(s) = signed.get(uuid) {
            if *s != *level {
                sent.insert(*uuid, *level);
                *level = *s;
            }
        }
    });
    sent
}
