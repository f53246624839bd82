//! The event seal: creating `Event.Seal` and checking it.
//!
//! The signature covers a domain-separated message of fixed-width fields (no
//! field can bleed into the next, so no two different seals share a message):
//!
//! ```text
//! b"sluis-seal-v1\0"          domain: an event-seal signature is never valid as
//!                             a sighting or tombstone signature, or vice versa
//! version         1 byte      Seal.version (1)
//! origin_org     16 bytes     the uuid of the org whose node vouches
//! key_id          8 bytes     the signing key's id
//! event uuid     16 bytes     binds the seal to this event …
//! timestamp       8 bytes BE  … and to this version of it
//! signed_at       8 bytes BE  when the origin sealed (Seal.signed_at)
//! header digest  32 bytes
//! n               8 bytes BE  number of element digests
//! n × digest     32 bytes     sorted ascending, no repeats
//! ```
//!
//! **Signed time.** Key validity windows are checked against `signed_at`, when
//! the origin sealed, not against the event `timestamp`: an event imported from
//! an old MISP feed keeps its old timestamp but is sealed with today's key, and
//! must verify under a key whose window starts today. `signed_at` may not lie
//! in the future (beyond [`MAX_CLOCK_SKEW_SECS`]), and may not lie more than
//! that skew *before* the version's `timestamp`: an origin seals a version when
//! it makes or introduces it, never long before, so a retired key (past its
//! `not_after`) cannot vouch for versions newer than its window by back-dating
//! `signed_at` — such versions would otherwise win the store's newer-timestamp
//! rule. (A key that is *compromised*, not merely retired, can still back-date
//! versions inside its window; revoke it.)
//!
//! Seal version 1 requires `signed_at`. It is optional in the wire type only so
//! that a seal lacking it is refused with a precise reason; no version-1 seal
//! without it was ever issued.
//!
//! **Replays.** An older version verifies as well as it ever did; the store
//! refuses it as "not newer" by comparing [`VerifiedEvent::timestamp`] with the
//! stored version's (docs/design.md §3). Verification proves *who* vouched for *which*
//! version; ordering versions is the store's job.

use super::canonical::Digest;
use super::keys::{KeyId, NodeKey};
use super::signed_form::{element_count, for_each_element, header_digest, ElementRef};
use super::trust::TrustList;
use super::{check_not_future, SealError, MAX_CLOCK_SKEW_SECS, SEAL_VERSION};
use crate::model::{Event, Seal};
use base64::Engine as _;
use ed25519_dalek::Signature;
use uuid::Uuid;

/// Domain string that starts every event-seal message.
pub const SEAL_DOMAIN: &[u8] = b"sluis-seal-v1\0";

/// What a verified seal establishes. The store needs `timestamp` (the signed
/// version time) for its not-newer check, and `origin_org`/`key_id` for logs and
/// for the rule that only the origin may change an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvent {
    pub event_uuid: Uuid,
    /// The event `timestamp` the origin signed.
    pub timestamp: u64,
    /// When the origin sealed (the time the key was checked at).
    pub signed_at: u64,
    pub origin_org: Uuid,
    pub key_id: KeyId,
    /// Elements present and verified.
    pub present: usize,
    /// Elements the origin signed (present + withheld by distribution filtering).
    pub signed: usize,
}

impl VerifiedEvent {
    /// Elements signed but not present: withheld by some hop's filtering.
    pub fn withheld(&self) -> usize {
        self.signed - self.present
    }
}

/// The fields of an event seal's signed message, in message order (see the
/// module docs for the layout).
struct Signed<'a> {
    version: u8,
    origin_org: &'a Uuid,
    key_id: &'a KeyId,
    event_uuid: &'a Uuid,
    timestamp: u64,
    signed_at: u64,
    header: &'a Digest,
    elements: &'a [Digest],
}

impl Signed<'_> {
    fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(
            SEAL_DOMAIN.len() + 1 + 16 + 8 + 16 + 8 + 8 + 32 + 8 + 32 * self.elements.len(),
        );
        m.extend_from_slice(SEAL_DOMAIN);
        m.push(self.version);
        m.extend_from_slice(self.origin_org.as_bytes());
        m.extend_from_slice(&self.key_id.0);
        m.extend_from_slice(self.event_uuid.as_bytes());
        m.extend_from_slice(&self.timestamp.to_be_bytes());
        m.extend_from_slice(&self.signed_at.to_be_bytes());
        m.extend_from_slice(&self.header.0);
        m.extend_from_slice(&(self.elements.len() as u64).to_be_bytes());
        for d in self.elements {
            m.extend_from_slice(&d.0);
        }
        m
    }
}

/// Seals `event` with this node's key, signed now: sets `event.seal`, replacing
/// any seal it had. `origin_org` is the uuid of this node's org (the org that
/// vouches, which for an event imported from a MISP feed is the importing
/// node's, not `Orgc`).
///
/// Seal the event as it will be stored and sent: validated (see
/// [`super::signed_form`]) and with every element present; hops may then withhold
/// elements. Refuses an event without a uuid or timestamp, and one whose elements
/// repeat (validation refuses both).
pub fn seal_event(event: &mut Event, key: &NodeKey, origin_org: Uuid) -> Result<(), SealError> {
    seal_event_at(event, key, origin_org, crate::model::time::now_secs())
}

/// [`seal_event`] with an explicit `signed_at` (epoch seconds): for tests and
/// benchmarks that need a fixed clock. A node always seals at its current time.
pub fn seal_event_at(
    event: &mut Event,
    key: &NodeKey,
    origin_org: Uuid,
    signed_at: u64,
) -> Result<(), SealError> {
    if event.uuid.is_nil() {
        return Err(SealError::Unsealable(
            "the event has no uuid (validate it first)".into(),
        ));
    }
    if event.timestamp == 0 {
        return Err(SealError::Unsealable(
            "the event has no timestamp (validate it first)".into(),
        ));
    }
    let header = header_digest(event)?;
    // Each digest with the element it came from, which is only needed to name a
    // duplicate in the error.
    let mut digests: Vec<(Digest, ElementRef)> = Vec::with_capacity(element_count(event));
    for_each_element(event, |r, d| {
        digests.push((d, r));
        Ok(())
    })?;
    digests.sort_unstable_by_key(|x| x.0);
    if let Some(w) = digests.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SealError::DuplicateElement {
            element: w[1].1.to_string(),
        });
    }
    let elements: Vec<Digest> = digests.into_iter().map(|(d, _)| d).collect();
    let key_id = key.key_id();
    let msg = Signed {
        version: SEAL_VERSION,
        origin_org: &origin_org,
        key_id: &key_id,
        event_uuid: &event.uuid,
        timestamp: event.timestamp,
        signed_at,
        header: &header,
        elements: &elements,
    }
    .message();
    let signature = key.sign(&msg);
    event.seal = Some(Seal {
        version: SEAL_VERSION,
        origin_org,
        key_id: key_id.to_string(),
        header: header.to_string(),
        elements: elements.iter().map(Digest::to_string).collect(),
        signed_at: Some(signed_at),
        signature: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
        signed_distribution: Default::default(),
    });
    Ok(())
}

/// Checks `event.seal` against `trust` (`now` is this node's clock, in seconds).
///
/// In order, failing closed at the first problem:
/// 1. the seal is well-formed and of a known version ([`SealError::Malformed`],
///    [`SealError::UnsupportedVersion`]);
/// 2. neither the event timestamp nor `signed_at` is in the future
///    ([`SealError::FromTheFuture`]), and `signed_at` is not (beyond the clock
///    skew) before the event timestamp ([`SealError::SignedBeforeVersion`]);
/// 3. the key is trusted for the claimed origin org at `signed_at`
///    ([`SealError::UnknownKey`], [`SealError::KeyOriginMismatch`],
///    [`SealError::Revoked`], [`SealError::OutsideValidity`]);
/// 4. the signature verifies, with `verify_strict`, over this event's uuid and
///    timestamp and the seal's digests ([`SealError::BadSignature`]) — so the
///    digest list itself is authentic before anything is compared with it;
/// 5. the header recomputed from the event matches ([`SealError::HeaderMismatch`]);
/// 6. every element present hashes to a listed digest, each at most once
///    ([`SealError::DigestNotListed`], [`SealError::DuplicateElement`]).
///
/// Elements listed but absent are fine: that is distribution filtering.
pub fn verify_event(
    event: &Event,
    trust: &TrustList,
    now: u64,
) -> Result<VerifiedEvent, SealError> {
    let seal = event.seal.as_ref().ok_or(SealError::Unsealed)?;
    if seal.version != SEAL_VERSION {
        return Err(SealError::UnsupportedVersion(seal.version));
    }
    let key_id: KeyId = seal.key_id.parse().map_err(|reason| SealError::Malformed {
        field: "key_id",
        reason,
    })?;
    let header: Digest = seal.header.parse().map_err(|reason| SealError::Malformed {
        field: "header",
        reason,
    })?;
    let mut elements = Vec::with_capacity(seal.elements.len());
    for s in &seal.elements {
        let d: Digest = s.parse().map_err(|reason| SealError::Malformed {
            field: "elements",
            reason,
        })?;
        if elements.last().is_some_and(|prev| *prev >= d) {
            return Err(SealError::Malformed {
                field: "elements",
                reason: "digests are not sorted ascending without repeats".into(),
            });
        }
        elements.push(d);
    }
    let signature = decode_signature(&seal.signature)?;
    let signed_at = seal.signed_at.ok_or_else(|| SealError::Malformed {
        field: "signed_at",
        reason: format!("missing (seal version {SEAL_VERSION} requires it)"),
    })?;

    check_not_future(event.timestamp, now)?;
    check_not_future(signed_at, now)?;
    if signed_at.saturating_add(MAX_CLOCK_SKEW_SECS) < event.timestamp {
        return Err(SealError::SignedBeforeVersion {
            signed_at,
            timestamp: event.timestamp,
        });
    }
    let vk = trust.lookup(&seal.origin_org, &key_id, signed_at)?;
    let msg = Signed {
        version: seal.version,
        origin_org: &seal.origin_org,
        key_id: &key_id,
        event_uuid: &event.uuid,
        timestamp: event.timestamp,
        signed_at,
        header: &header,
        elements: &elements,
    }
    .message();
    vk.verify_strict(&msg, &signature)
        .map_err(|_| SealError::BadSignature {
            key_id,
            what: format!("event {} version {}", event.uuid, event.timestamp),
        })?;

    if header_digest(event)? != header {
        return Err(SealError::HeaderMismatch);
    }
    let mut used = vec![false; elements.len()];
    let mut present = 0usize;
    for_each_element(event, |r, d| {
        let i = elements
            .binary_search(&d)
            .map_err(|_| SealError::DigestNotListed {
                element: r.to_string(),
            })?;
        if std::mem::replace(&mut used[i], true) {
            return Err(SealError::DuplicateElement {
                element: r.to_string(),
            });
        }
        present += 1;
        Ok(())
    })?;
    Ok(VerifiedEvent {
        event_uuid: event.uuid,
        timestamp: event.timestamp,
        signed_at,
        origin_org: seal.origin_org,
        key_id,
        present,
        signed: elements.len(),
    })
}

/// Decodes a base64 ed25519 signature (standard alphabet, padded, 64 bytes).
pub(crate) fn decode_signature(b64: &str) -> Result<Signature, SealError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| SealError::Malformed {
            field: "signature",
            reason: format!("not base64: {e}"),
        })?;
    let arr: [u8; 64] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| SealError::Malformed {
            field: "signature",
            reason: format!("{} bytes, an ed25519 signature has 64", bytes.len()),
        })?;
    Ok(Signature::from_bytes(&arr))
}

/// Removes from a received event what its seal does not cover but a receiver
/// might otherwise take as content from the sender: tags that do not travel
/// (`local`, `local_only`, `exportable: false` — a peer cannot legitimately send
/// them, and they are outside the signed form) and sightings nested in attributes
/// (they travel as [`super::SealedSighting`] records). Call it on every event
/// from a peer, after [`verify_event`]; it does not change any digest.
pub fn strip_unsealed(event: &mut Event) {
    event.tags.retain(|t| t.travels());
    let attrs = event.attributes.iter_mut().chain(
        event
            .objects
            .iter_mut()
            .flat_map(|o| o.attributes.iter_mut()),
    );
    for a in attrs {
        a.tags.retain(|t| t.travels());
        a.sightings.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse::parse_event;
    use crate::model::validate::validate_event;
    use crate::testdata::generated_event_json;

    const ORG: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_0a0a);
    const NOW: u64 = 1_800_000_000;
    /// When the tests' seals are made: after every generated timestamp.
    const SIGNED_AT: u64 = NOW - 60;

    fn event(seed: u64, n: usize) -> Event {
        let bytes = serde_json::to_vec(&generated_event_json(seed, n)).unwrap();
        let mut e = parse_event(&bytes, 1 << 26).unwrap();
        validate_event(&mut e, NOW).unwrap();
        e
    }

    fn setup() -> (NodeKey, TrustList) {
        let key = NodeKey::generate().unwrap();
        let mut trust = TrustList::new();
        trust.add(ORG, &key.public_key_b64(), None, None).unwrap();
        (key, trust)
    }

    #[test]
    fn seal_then_verify() {
        let (key, trust) = setup();
        let mut e = event(1, 20);
        seal_event_at(&mut e, &key, ORG, SIGNED_AT).unwrap();
        let seal = e.seal.clone().unwrap();
        assert_eq!(seal.version, 1);
        assert_eq!(seal.key_id, key.key_id().to_string());
        assert_eq!(seal.elements.len(), 20);
        assert!(seal.elements.windows(2).all(|w| w[0] < w[1]));
        let v = verify_event(&e, &trust, NOW).unwrap();
        assert_eq!((v.present, v.signed, v.withheld()), (20, 20, 0));
        assert_eq!(v.timestamp, e.timestamp);
        assert_eq!(v.origin_org, ORG);

        e.attributes.truncate(5);
        let v = verify_event(&e, &trust, NOW).unwrap();
        assert_eq!((v.present, v.withheld()), (5, 15));
    }

    #[test]
    fn failures_are_precise() {
        let (key, trust) = setup();
        let mut e = event(2, 5);
        assert_eq!(verify_event(&e, &trust, NOW), Err(SealError::Unsealed));
        seal_event_at(&mut e, &key, ORG, SIGNED_AT).unwrap();

        let mut x = e.clone();
        x.info.push('!');
        assert_eq!(
            verify_event(&x, &trust, NOW),
            Err(SealError::HeaderMismatch)
        );

        let mut x = e.clone();
        x.attributes[3].value = "198.51.100.1".into();
        let err = verify_event(&x, &trust, NOW).unwrap_err();
        assert_eq!(
            err,
            SealError::DigestNotListed {
                element: format!("Attribute {}", x.attributes[3].uuid)
            }
        );

        let mut x = e.clone();
        let dup = x.attributes[0].clone();
        x.attributes.push(dup);
        assert!(matches!(
            verify_event(&x, &trust, NOW),
            Err(SealError::DuplicateElement { .. })
        ));

        let mut x = e.clone();
        x.timestamp += 1;
        assert!(matches!(
            verify_event(&x, &trust, NOW),
            Err(SealError::BadSignature { .. })
        ));

        let mut x = e.clone();
        x.seal.as_mut().unwrap().elements.swap(0, 1);
        assert!(matches!(
            verify_event(&x, &trust, NOW),
            Err(SealError::Malformed {
                field: "elements",
                ..
            })
        ));

        let mut x = e.clone();
        x.seal.as_mut().unwrap().version = 2;
        assert_eq!(
            verify_event(&x, &trust, NOW),
            Err(SealError::UnsupportedVersion(2))
        );

        let mut x = e.clone();
        x.seal.as_mut().unwrap().signature = "AAAA".into();
        assert!(matches!(
            verify_event(&x, &trust, NOW),
            Err(SealError::Malformed {
                field: "signature",
                ..
            })
        ));

        assert!(matches!(
            verify_event(
                &e,
                &trust,
                e.timestamp - 2 * crate::seal::MAX_CLOCK_SKEW_SECS
            ),
            Err(SealError::FromTheFuture { .. })
        ));
    }

    #[test]
    fn seal_event_signs_now() {
        let (key, trust) = setup();
        let mut e = event(5, 3);
        let before = crate::model::time::now_secs();
        seal_event(&mut e, &key, ORG).unwrap();
        let at = e.seal.as_ref().unwrap().signed_at.unwrap();
        assert!(at >= before && at <= crate::model::time::now_secs());
        let v = verify_event(&e, &trust, crate::model::time::now_secs()).unwrap();
        assert_eq!(v.signed_at, at);
    }

    #[test]
    fn signed_at_is_signed_and_checked() {
        let (key, trust) = setup();
        let mut e = event(6, 3);
        seal_event_at(&mut e, &key, ORG, SIGNED_AT).unwrap();
        assert_eq!(verify_event(&e, &trust, NOW).unwrap().signed_at, SIGNED_AT);

        // Part of the signed message.
        let mut x = e.clone();
        x.seal.as_mut().unwrap().signed_at = Some(SIGNED_AT + 1);
        assert!(matches!(
            verify_event(&x, &trust, NOW),
            Err(SealError::BadSignature { .. })
        ));
        // Required by version 1.
        let mut x = e.clone();
        x.seal.as_mut().unwrap().signed_at = None;
        assert!(matches!(
            verify_event(&x, &trust, NOW),
            Err(SealError::Malformed {
                field: "signed_at",
                ..
            })
        ));
        // Not in the future: an event dated in the past, sealed far ahead.
        let mut x = e.clone();
        let ahead = NOW + crate::seal::MAX_CLOCK_SKEW_SECS + 1;
        seal_event_at(&mut x, &key, ORG, ahead).unwrap();
        assert_eq!(
            verify_event(&x, &trust, NOW),
            Err(SealError::FromTheFuture {
                at: ahead,
                now: NOW
            })
        );
        // Not back-dated before the version it seals (beyond the skew) …
        let mut x = e.clone();
        let early = x.timestamp - crate::seal::MAX_CLOCK_SKEW_SECS - 1;
        seal_event_at(&mut x, &key, ORG, early).unwrap();
        assert_eq!(
            verify_event(&x, &trust, NOW),
            Err(SealError::SignedBeforeVersion {
                signed_at: early,
                timestamp: x.timestamp
            })
        );
        // … but within the skew it is fine.
        seal_event_at(&mut x, &key, ORG, early + 1).unwrap();
        verify_event(&x, &trust, NOW).unwrap();
    }

    #[test]
    fn validity_is_judged_at_signed_at() {
        let key = NodeKey::generate().unwrap();
        let mut e = event(7, 3);
        // An old event (an old MISP feed) sealed by a key that is valid only
        // from long after the event's timestamp: fine, it was sealed then.
        let from = e.timestamp + 10 * crate::seal::MAX_CLOCK_SKEW_SECS;
        let mut trust = TrustList::new();
        trust
            .add(ORG, &key.public_key_b64(), Some(from), None)
            .unwrap();
        seal_event_at(&mut e, &key, ORG, from).unwrap();
        verify_event(&e, &trust, NOW).unwrap();
        seal_event_at(&mut e, &key, ORG, from - 1).unwrap();
        assert!(matches!(
            verify_event(&e, &trust, NOW),
            Err(SealError::OutsideValidity { at, .. }) if at == from - 1
        ));
    }

    #[test]
    fn unsealable_events() {
        let (key, _) = setup();
        let mut e = event(3, 2);
        e.uuid = Uuid::nil();
        assert!(matches!(
            seal_event_at(&mut e, &key, ORG, SIGNED_AT),
            Err(SealError::Unsealable(_))
        ));
        let mut e = event(3, 2);
        let dup = e.attributes[0].clone();
        e.attributes.push(dup);
        let err = seal_event_at(&mut e, &key, ORG, SIGNED_AT).unwrap_err();
        assert_eq!(
            err,
            SealError::DuplicateElement {
                element: format!("Attribute {}", e.attributes[0].uuid)
            }
        );
    }

    #[test]
    fn levels_sent_narrower_verify_once_restored_and_a_lie_does_not() {
        use crate::model::seal::{restore_signed_levels, send_levels};
        use std::collections::HashMap;
        let (key, trust) = setup();
        let mut e = event(5, 3);
        e.distribution = 2;
        for a in &mut e.attributes {
            a.distribution = 2;
        }
        seal_event_at(&mut e, &key, ORG, SIGNED_AT).unwrap();
        let first = e.attributes[0].uuid;
        let mut wire = e.clone();
        send_levels(&mut wire, |u, signed| if *u == first { 1 } else { signed });
        assert_eq!(wire.attributes[0].distribution, 1);
        assert!(verify_event(&wire, &trust, NOW).is_err());
        // Through JSON, as a peer gets it (levels as strings, as PyMISP echoes).
        let json = serde_json::to_string(&wire)
            .unwrap()
            .replace(&format!("\"{first}\":2"), &format!("\"{first}\":\"2\""));
        let mut got: Event = serde_json::from_str(&json).unwrap();
        let sent = restore_signed_levels(&mut got);
        assert_eq!(sent, HashMap::from([(first, 1)]));
        assert!(got.seal.as_ref().unwrap().signed_distribution.is_empty());
        verify_event(&got, &trust, NOW).unwrap();
        // A hop that claims the origin signed 3 is caught by the digest.
        let mut lie = wire.clone();
        lie.attributes[0].distribution = 3;
        lie.seal
            .as_mut()
            .unwrap()
            .signed_distribution
            .insert(first, 3);
        restore_signed_levels(&mut lie);
        assert!(matches!(
            verify_event(&lie, &trust, NOW),
            Err(SealError::DigestNotListed { .. })
        ));
    }

    #[test]
    fn strip_unsealed_keeps_the_seal_valid() {
        let (key, trust) = setup();
        let mut e = event(4, 3);
        seal_event_at(&mut e, &key, ORG, SIGNED_AT).unwrap();
        e.tags.push(crate::model::Tag {
            local: true,
            ..crate::model::Tag::named("smuggled")
        });
        let parent = e.attributes[0].uuid;
        e.attributes[0].sightings.push(crate::model::Sighting {
            id: None,
            attribute_id: None,
            event_id: None,
            date_sighting: 1,
            uuid: Uuid::from_u128(9),
            source: String::new(),
            kind: 0,
            org: None,
            attribute_uuid: parent,
        });
        verify_event(&e, &trust, NOW).unwrap();
        strip_unsealed(&mut e);
        assert!(e.tags.iter().all(|t| t.name != "smuggled"));
        assert!(e.attributes[0].sightings.is_empty());
        verify_event(&e, &trust, NOW).unwrap();
    }
}
