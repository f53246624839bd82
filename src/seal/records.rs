//! Records sealed on their own: sightings, and tombstones for what MISP cannot
//! propagate (event deletion, tag removal).
//!
//! A sighting is not part of any event version (anyone holding the event may add
//! one, and it must not bump the event's timestamp), so it carries its own seal by
//! the node that introduced it. Tombstones make deletions travel as signed facts
//! instead of absences. Both follow the event seal's discipline with their own
//! domain strings, so no signature can be replayed as another kind of record:
//!
//! ```text
//! b"sluis-sighting-v1\0" | b"sluis-tombstone-v1\0"
//! version      1 byte
//! origin_org  16 bytes
//! key_id       8 bytes
//! digest      32 bytes   SHA-256(JCS(signed form)), the form naming the event
//! ```
//!
//! Records are few, so their forms go through the reference canonicaliser
//! directly. The signed time is the record's own: `date_sighting`, or the
//! tombstone's `timestamp`; key validity windows are checked against it.
//!
//! What verification does not decide: whether the origin may issue this record.
//! The store must accept an `EventDeleted` or `TagRemoved` tombstone only from the
//! event's own origin (the `origin_org` of its seal), and apply a `TagRemoved`
//! only against versions not newer than the tombstone.

use super::canonical::{to_jcs_vec, Digest};
use super::keys::{KeyId, NodeKey};
use super::seal::decode_signature;
use super::trust::TrustList;
use super::{check_not_future, SealError, SEAL_VERSION};
use crate::model::wire::{de_u64, ser_u64_str, ser_u8_str};
use crate::model::Sighting;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// Domain string of sighting signatures.
pub const SIGHTING_DOMAIN: &[u8] = b"sluis-sighting-v1\0";
/// Domain string of tombstone signatures.
pub const TOMBSTONE_DOMAIN: &[u8] = b"sluis-tombstone-v1\0";
/// `kind` of a sighting's signed form.
pub const KIND_SIGHTING: &str = "sluis-v1/sighting";
/// `kind` of a tombstone's signed form.
pub const KIND_TOMBSTONE: &str = "sluis-v1/tombstone";

/// What a verified record establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRecord {
    pub origin_org: Uuid,
    pub key_id: KeyId,
    /// The record's signed time (`date_sighting` or the tombstone `timestamp`).
    pub signed_at: u64,
}

fn record_message(
    domain: &[u8],
    version: u8,
    origin_org: &Uuid,
    key_id: &KeyId,
    digest: &Digest,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 1 + 16 + 8 + 32);
    m.extend_from_slice(domain);
    m.push(version);
    m.extend_from_slice(origin_org.as_bytes());
    m.extend_from_slice(&key_id.0);
    m.extend_from_slice(&digest.0);
    m
}

fn jcs_digest<T: Serialize>(form: &T) -> Result<Digest, SealError> {
    Ok(Digest(Sha256::digest(to_jcs_vec(form)?).into()))
}

#[allow(clippy::too_many_arguments)]
fn verify_record(
    domain: &[u8],
    what: String,
    version: u8,
    origin_org: &Uuid,
    key_id: &KeyId,
    signature: &str,
    digest: &Digest,
    signed_at: u64,
    trust: &TrustList,
    now: u64,
) -> Result<VerifiedRecord, SealError> {
    if version != SEAL_VERSION {
        return Err(SealError::UnsupportedVersion(version));
    }
    let signature = decode_signature(signature)?;
    check_not_future(signed_at, now)?;
    let vk = trust.lookup(origin_org, key_id, signed_at)?;
    let msg = record_message(domain, version, origin_org, key_id, digest);
    vk.verify_strict(&msg, &signature)
        .map_err(|_| SealError::BadSignature {
            key_id: *key_id,
            what,
        })?;
    Ok(VerifiedRecord {
        origin_org: *origin_org,
        key_id: *key_id,
        signed_at,
    })
}

fn sign_b64(key: &NodeKey, msg: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.sign(msg).to_bytes())
}

// --- sightings -------------------------------------------------------------

/// A sighting with the seal of the node that introduced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSighting {
    pub version: u8,
    /// The event holding the sighted attribute.
    pub event_uuid: Uuid,
    /// The sighting, without local ids; `attribute_uuid` names the attribute.
    #[serde(rename = "Sighting")]
    pub sighting: Sighting,
    pub origin_org: Uuid,
    pub key_id: KeyId,
    /// Base64 ed25519 signature.
    pub signature: String,
}

/// The signed form: every field of the sighting but the local ids (`id`,
/// `attribute_id`, `event_id`, the org's `id`). Fields in JCS order.
#[derive(Serialize)]
struct SightingForm<'a> {
    #[serde(rename = "Organisation")]
    org: Option<OrgForm<'a>>,
    attribute_uuid: Uuid,
    #[serde(serialize_with = "ser_u64_str")]
    date_sighting: u64,
    source: &'a str,
    #[serde(rename = "type", serialize_with = "ser_u8_str")]
    kind: u8,
    uuid: Uuid,
}

#[derive(Serialize)]
struct OrgForm<'a> {
    name: &'a str,
    uuid: Uuid,
}

#[derive(Serialize)]
struct SightingEnvelope<'a> {
    #[serde(rename = "Sighting")]
    sighting: SightingForm<'a>,
    event_uuid: Uuid,
    kind: &'static str,
}

fn sighting_digest(event_uuid: Uuid, s: &Sighting) -> Result<Digest, SealError> {
    jcs_digest(&SightingEnvelope {
        sighting: SightingForm {
            org: s.org.as_ref().map(|o| OrgForm {
                name: &o.name,
                uuid: o.uuid,
            }),
            attribute_uuid: s.attribute_uuid,
            date_sighting: s.date_sighting,
            source: &s.source,
            kind: s.kind,
            uuid: s.uuid,
        },
        event_uuid,
        kind: KIND_SIGHTING,
    })
}

impl SealedSighting {
    /// Seals `sighting` (of an attribute of `event_uuid`) as introduced by this
    /// node. The sealed copy drops the local ids. Needs the sighting's uuid,
    /// `attribute_uuid` and `date_sighting` (validation fills them in).
    pub fn seal(
        sighting: &Sighting,
        event_uuid: Uuid,
        key: &NodeKey,
        origin_org: Uuid,
    ) -> Result<SealedSighting, SealError> {
        for (missing, what) in [
            (sighting.uuid.is_nil(), "a uuid"),
            (sighting.attribute_uuid.is_nil(), "an attribute_uuid"),
            (sighting.date_sighting == 0, "a date_sighting"),
            (event_uuid.is_nil(), "an event uuid"),
        ] {
            if missing {
                return Err(SealError::Unsealable(format!("the sighting has no {what}")));
            }
        }
        let mut s = sighting.clone();
        s.id = None;
        s.attribute_id = None;
        s.event_id = None;
        if let Some(o) = &mut s.org {
            o.id = None;
        }
        let key_id = key.key_id();
        let digest = sighting_digest(event_uuid, &s)?;
        let msg = record_message(SIGHTING_DOMAIN, SEAL_VERSION, &origin_org, &key_id, &digest);
        Ok(SealedSighting {
            version: SEAL_VERSION,
            event_uuid,
            sighting: s,
            origin_org,
            key_id,
            signature: sign_b64(key, &msg),
        })
    }

    /// Checks the seal: trusted key for the origin at `date_sighting`, not in the
    /// future, signature valid for exactly this sighting of this event.
    pub fn verify(&self, trust: &TrustList, now: u64) -> Result<VerifiedRecord, SealError> {
        let digest = sighting_digest(self.event_uuid, &self.sighting)?;
        verify_record(
            SIGHTING_DOMAIN,
            format!("sighting {}", self.sighting.uuid),
            self.version,
            &self.origin_org,
            &self.key_id,
            &self.signature,
            &digest,
            self.sighting.date_sighting,
            trust,
            now,
        )
    }
}

// --- tombstones ------------------------------------------------------------

/// What a tombstone removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TombstoneKind {
    /// The whole event is deleted (MISP hard-deletes locally and never tells peers).
    EventDeleted,
    /// `tag` is removed from the element `element_uuid` (the event itself, or one
    /// of its attributes). MISP tags carry no timestamp, so a removal cannot travel
    /// as a newer version; it travels as this record instead.
    TagRemoved { tag: String, element_uuid: Uuid },
}

/// A signed statement that something was deleted, by the event's origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tombstone {
    pub version: u8,
    pub kind: TombstoneKind,
    pub event_uuid: Uuid,
    /// When it was removed (epoch seconds): the signed time.
    #[serde(deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub timestamp: u64,
    pub origin_org: Uuid,
    pub key_id: KeyId,
    /// Base64 ed25519 signature.
    pub signature: String,
}

fn tombstone_digest(
    kind: &TombstoneKind,
    event_uuid: Uuid,
    timestamp: u64,
) -> Result<Digest, SealError> {
    #[derive(Serialize)]
    struct Form<'a> {
        event_uuid: Uuid,
        kind: &'static str,
        #[serde(serialize_with = "ser_u64_str")]
        timestamp: u64,
        what: &'a TombstoneKind,
    }
    jcs_digest(&Form {
        event_uuid,
        kind: KIND_TOMBSTONE,
        timestamp,
        what: kind,
    })
}

impl Tombstone {
    /// Seals a tombstone for `event_uuid` at `timestamp` (epoch seconds).
    pub fn seal(
        kind: TombstoneKind,
        event_uuid: Uuid,
        timestamp: u64,
        key: &NodeKey,
        origin_org: Uuid,
    ) -> Result<Tombstone, SealError> {
        if event_uuid.is_nil() || timestamp == 0 {
            return Err(SealError::Unsealable(
                "a tombstone needs an event uuid and a timestamp".into(),
            ));
        }
        if let TombstoneKind::TagRemoved { tag, element_uuid } = &kind {
            if tag.trim().is_empty() || element_uuid.is_nil() {
                return Err(SealError::Unsealable(
                    "a tag removal needs a tag name and an element uuid".into(),
                ));
            }
        }
        let key_id = key.key_id();
        let digest = tombstone_digest(&kind, event_uuid, timestamp)?;
        let msg = record_message(
            TOMBSTONE_DOMAIN,
            SEAL_VERSION,
            &origin_org,
            &key_id,
            &digest,
        );
        Ok(Tombstone {
            version: SEAL_VERSION,
            kind,
            event_uuid,
            timestamp,
            origin_org,
            key_id,
            signature: sign_b64(key, &msg),
        })
    }

    /// Checks the seal: trusted key for the origin at `timestamp`, not in the
    /// future, signature valid for exactly this removal.
    pub fn verify(&self, trust: &TrustList, now: u64) -> Result<VerifiedRecord, SealError> {
        let digest = tombstone_digest(&self.kind, self.event_uuid, self.timestamp)?;
        verify_record(
            TOMBSTONE_DOMAIN,
            format!("tombstone for event {}", self.event_uuid),
            self.version,
            &self.origin_org,
            &self.key_id,
            &self.signature,
            &digest,
            self.timestamp,
            trust,
            now,
        )
    }
}

// --- incident-support case records ---------------------------------------------

/// Domain string of incident-support case record signatures.
pub const CASE_DOMAIN: &[u8] = b"sluis-case-v1\0";

/// Signs `form` (a case record's signed form, naming its kind) as `origin_org`:
/// the key id and the base64 signature to carry beside it.
pub fn sign_case<T: Serialize>(
    form: &T,
    key: &NodeKey,
    origin_org: Uuid,
) -> Result<(KeyId, String), SealError> {
    let key_id = key.key_id();
    let digest = jcs_digest(form)?;
    let msg = record_message(CASE_DOMAIN, SEAL_VERSION, &origin_org, &key_id, &digest);
    Ok((key_id, sign_b64(key, &msg)))
}

/// Checks a case record's signature over `form`: a key trusted for
/// `origin_org` at `signed_at`, not in the future, valid for exactly this form.
#[allow(clippy::too_many_arguments)]
pub fn verify_case<T: Serialize>(
    form: &T,
    what: String,
    version: u8,
    origin_org: &Uuid,
    key_id: &KeyId,
    signature: &str,
    signed_at: u64,
    trust: &TrustList,
    now: u64,
) -> Result<VerifiedRecord, SealError> {
    let digest = jcs_digest(form)?;
    verify_record(
        CASE_DOMAIN,
        what,
        version,
        origin_org,
        key_id,
        signature,
        &digest,
        signed_at,
        trust,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Org;

    const ORG: Uuid = Uuid::from_u128(0x0a);
    const EV: Uuid = Uuid::from_u128(0xe1);
    const NOW: u64 = 1_800_000_000;

    fn setup() -> (NodeKey, TrustList) {
        let key = NodeKey::generate().unwrap();
        let mut t = TrustList::new();
        t.add(ORG, &key.public_key_b64(), None, None).unwrap();
        (key, t)
    }

    fn sighting() -> Sighting {
        Sighting {
            id: Some(4),
            attribute_id: Some(5),
            event_id: Some(6),
            date_sighting: 1_700_000_000,
            uuid: Uuid::from_u128(0x51),
            source: "sensor-1".into(),
            kind: 0,
            org: Some(Org {
                id: Some(2),
                name: "CERT-B".into(),
                uuid: Uuid::from_u128(0xb),
                local: false,
            }),
            attribute_uuid: Uuid::from_u128(0xa1),
        }
    }

    #[test]
    fn sighting_round_trip_and_tampering() {
        let (key, trust) = setup();
        let s = SealedSighting::seal(&sighting(), EV, &key, ORG).unwrap();
        assert_eq!(s.sighting.id, None);
        assert_eq!(s.sighting.org.as_ref().unwrap().id, None);
        let json = serde_json::to_string(&s).unwrap();
        let back: SealedSighting = serde_json::from_str(&json).unwrap();
        let v = back.verify(&trust, NOW).unwrap();
        assert_eq!(
            (v.origin_org, v.key_id, v.signed_at),
            (ORG, key.key_id(), 1_700_000_000)
        );

        let mut x = s.clone();
        x.sighting.kind = 1;
        assert!(matches!(
            x.verify(&trust, NOW),
            Err(SealError::BadSignature { .. })
        ));
        let mut x = s.clone();
        x.event_uuid = Uuid::from_u128(0xe2);
        assert!(matches!(
            x.verify(&trust, NOW),
            Err(SealError::BadSignature { .. })
        ));
        let mut x = s.clone();
        x.sighting.attribute_uuid = Uuid::from_u128(0xa2);
        assert!(x.verify(&trust, NOW).is_err());
        let mut x = s.clone();
        x.sighting.org = None;
        assert!(x.verify(&trust, NOW).is_err());
        let mut x = s.clone();
        x.origin_org = Uuid::from_u128(0x0b);
        assert!(matches!(
            x.verify(&trust, NOW),
            Err(SealError::KeyOriginMismatch { .. })
        ));
        // Local ids are not signed.
        let mut x = s.clone();
        x.sighting.id = Some(99);
        x.verify(&trust, NOW).unwrap();
        assert!(serde_json::from_str::<SealedSighting>(
            &json.replace("\"version\"", "\"extra\":1,\"version\"")
        )
        .is_err());
    }

    #[test]
    fn tombstones() {
        let (key, trust) = setup();
        let del =
            Tombstone::seal(TombstoneKind::EventDeleted, EV, 1_700_000_500, &key, ORG).unwrap();
        let tag = Tombstone::seal(
            TombstoneKind::TagRemoved {
                tag: "tlp:amber".into(),
                element_uuid: Uuid::from_u128(0xa1),
            },
            EV,
            1_700_000_500,
            &key,
            ORG,
        )
        .unwrap();
        for t in [&del, &tag] {
            let json = serde_json::to_string(t).unwrap();
            let back: Tombstone = serde_json::from_str(&json).unwrap();
            assert_eq!(back.verify(&trust, NOW).unwrap().signed_at, 1_700_000_500);
        }
        let json = serde_json::to_string(&tag).unwrap();
        assert!(
            json.contains(r#""kind":{"type":"tag_removed","tag":"tlp:amber""#),
            "{json}"
        );
        assert!(json.contains(r#""timestamp":"1700000500""#), "{json}");

        // A signature is bound to its kind, event and time.
        let mut x = tag.clone();
        x.kind = TombstoneKind::EventDeleted;
        assert!(matches!(
            x.verify(&trust, NOW),
            Err(SealError::BadSignature { .. })
        ));
        let mut x = del.clone();
        x.timestamp += 1;
        assert!(x.verify(&trust, NOW).is_err());
        let mut x = del.clone();
        x.event_uuid = Uuid::from_u128(0xe2);
        assert!(x.verify(&trust, NOW).is_err());
        // Domains separate record kinds: a tombstone signature is not a sighting's.
        let s = SealedSighting::seal(&sighting(), EV, &key, ORG).unwrap();
        let mut x = s.clone();
        x.signature = del.signature.clone();
        assert!(x.verify(&trust, NOW).is_err());
        assert!(matches!(
            Tombstone::seal(TombstoneKind::EventDeleted, EV, 2 * NOW, &key, ORG)
                .unwrap()
                .verify(&trust, NOW),
            Err(SealError::FromTheFuture { .. })
        ));
    }
}
