//! The trust list: which ed25519 keys may vouch for which origin org, when.
//!
//! Built from the config (each `[[peer]]` and `[[origin]]` gives an org uuid and a
//! public key) plus this node's own key. An origin may have several keys, each
//! with an optional validity window (`not_before`/`not_after`, epoch seconds,
//! inclusive), so a key can be rotated with overlap; a revoked key id fails
//! whatever its window. A key belongs to exactly one org: a seal that names a
//! trusted key under another org's uuid is a forged origin and fails.

use super::keys::{parse_public_key, KeyId};
use super::SealError;
use ed25519_dalek::VerifyingKey;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// One trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub origin_org: Uuid,
    pub key: VerifyingKey,
    pub key_id: KeyId,
    /// Seals signed before this time (epoch seconds) fail.
    pub not_before: Option<u64>,
    /// Seals signed after this time (epoch seconds) fail.
    pub not_after: Option<u64>,
}

impl TrustedKey {
    /// Whether `at` lies inside the validity window (bounds inclusive).
    pub fn valid_at(&self, at: u64) -> bool {
        self.not_before.is_none_or(|nb| at >= nb) && self.not_after.is_none_or(|na| at <= na)
    }
}

/// Why a key could not be added to the trust list (a config problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("public key for origin org {origin_org}: {reason}")]
    BadPublicKey { origin_org: Uuid, reason: String },
    #[error("key {key_id} is listed for origin org {first} and for {second}; a key vouches for one org only")]
    KeyForTwoOrgs {
        key_id: KeyId,
        first: Uuid,
        second: Uuid,
    },
    #[error(
        "key {key_id} (origin org {origin_org}) is listed twice with different validity windows"
    )]
    ConflictingWindows { key_id: KeyId, origin_org: Uuid },
    #[error("validity window of key {key_id} ends ({not_after}) before it starts ({not_before})")]
    EmptyWindow {
        key_id: KeyId,
        not_before: u64,
        not_after: u64,
    },
    #[error("two different trusted keys share the key id {key_id}")]
    KeyIdCollision { key_id: KeyId },
    #[error("cannot revoke \"{0}\": not a key id (16 lowercase hex digits)")]
    BadKeyId(String),
}

/// Trusted keys by id, and revoked key ids.
#[derive(Debug, Clone, Default)]
pub struct TrustList {
    keys: HashMap<KeyId, TrustedKey>,
    revoked: HashSet<KeyId>,
}

impl TrustList {
    pub fn new() -> TrustList {
        TrustList::default()
    }

    /// Trusts `public_key_b64` (base64, as `sluis keys` prints it) to vouch for
    /// `origin_org` between `not_before` and `not_after` (epoch seconds, inclusive;
    /// `None` = unbounded). Returns the key's id.
    ///
    /// Adding the same key for the same org again with the same window is a no-op
    /// (a partner may be both a `[[peer]]` and an `[[origin]]`); any other repeat
    /// is a config error, never a silent merge.
    pub fn add(
        &mut self,
        origin_org: Uuid,
        public_key_b64: &str,
        not_before: Option<u64>,
        not_after: Option<u64>,
    ) -> Result<KeyId, TrustError> {
        let key = parse_public_key(public_key_b64)
            .map_err(|reason| TrustError::BadPublicKey { origin_org, reason })?;
        self.add_key(origin_org, key, not_before, not_after)
    }

    /// [`TrustList::add`] for an already parsed key (e.g. this node's own,
    /// `NodeKey::verifying_key`).
    pub fn add_key(
        &mut self,
        origin_org: Uuid,
        key: VerifyingKey,
        not_before: Option<u64>,
        not_after: Option<u64>,
    ) -> Result<KeyId, TrustError> {
        let key_id = KeyId::of(&key);
        if key.is_weak() {
            return Err(TrustError::BadPublicKey {
                origin_org,
                reason: "a weak (small-order) ed25519 key".into(),
            });
        }
        if let (Some(nb), Some(na)) = (not_before, not_after) {
            if na < nb {
                return Err(TrustError::EmptyWindow {
                    key_id,
                    not_before: nb,
                    not_after: na,
                });
            }
        }
        let new = TrustedKey {
            origin_org,
            key,
            key_id,
            not_before,
            not_after,
        };
        if let Some(old) = self.keys.get(&key_id) {
            return if old.key != key {
                Err(TrustError::KeyIdCollision { key_id })
            } else if old.origin_org != origin_org {
                Err(TrustError::KeyForTwoOrgs {
                    key_id,
                    first: old.origin_org,
                    second: origin_org,
                })
            } else if *old != new {
                Err(TrustError::ConflictingWindows { key_id, origin_org })
            } else {
                Ok(key_id)
            };
        }
        self.keys.insert(key_id, new);
        Ok(key_id)
    }

    /// Revokes a key id (`"0123456789abcdef"`): every seal by it fails from now
    /// on, whenever it was made. A key id not (yet) in the list may be revoked too,
    /// so a revocation can arrive before the key does.
    pub fn revoke(&mut self, key_id: &str) -> Result<KeyId, TrustError> {
        let id: KeyId = key_id
            .parse()
            .map_err(|_| TrustError::BadKeyId(key_id.to_owned()))?;
        self.revoked.insert(id);
        Ok(id)
    }

    /// Whether `key_id` is revoked.
    pub fn is_revoked(&self, key_id: &KeyId) -> bool {
        self.revoked.contains(key_id)
    }

    /// The key a seal by `key_id` for `origin_org`, signed at `at`, must verify
    /// under — or why there is none. Revocation is checked first: a revoked key
    /// fails as revoked even if it was also removed from the list.
    pub fn lookup(
        &self,
        origin_org: &Uuid,
        key_id: &KeyId,
        at: u64,
    ) -> Result<&VerifyingKey, SealError> {
        if self.revoked.contains(key_id) {
            return Err(SealError::Revoked { key_id: *key_id });
        }
        let k = self.keys.get(key_id).ok_or(SealError::UnknownKey {
            origin_org: *origin_org,
            key_id: *key_id,
        })?;
        if k.origin_org != *origin_org {
            return Err(SealError::KeyOriginMismatch {
                key_id: *key_id,
                claimed: *origin_org,
                registered: k.origin_org,
            });
        }
        if !k.valid_at(at) {
            return Err(SealError::OutsideValidity {
                key_id: *key_id,
                at,
                not_before: k.not_before,
                not_after: k.not_after,
            });
        }
        Ok(&k.key)
    }

    /// The trusted key with this id, if any (revoked or not).
    pub fn get(&self, key_id: &KeyId) -> Option<&TrustedKey> {
        self.keys.get(key_id)
    }

    /// Every key trusted for `origin_org`.
    pub fn keys_for<'a>(
        &'a self,
        origin_org: &'a Uuid,
    ) -> impl Iterator<Item = &'a TrustedKey> + 'a {
        self.keys
            .values()
            .filter(move |k| k.origin_org == *origin_org)
    }

    /// Every trusted key.
    pub fn iter(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.values()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::NodeKey;

    const A: Uuid = Uuid::from_u128(0xa);
    const B: Uuid = Uuid::from_u128(0xb);

    #[test]
    fn lookup_rules() {
        let k1 = NodeKey::generate().unwrap();
        let k2 = NodeKey::generate().unwrap();
        let mut t = TrustList::new();
        let id1 = t
            .add(A, &k1.public_key_b64(), Some(100), Some(200))
            .unwrap();
        let id2 = t.add(A, &k2.public_key_b64(), Some(150), None).unwrap();
        assert_eq!(t.keys_for(&A).count(), 2);
        assert!(t.lookup(&A, &id1, 100).is_ok());
        assert!(t.lookup(&A, &id1, 200).is_ok());
        assert!(matches!(
            t.lookup(&A, &id1, 99),
            Err(SealError::OutsideValidity { at: 99, .. })
        ));
        assert!(matches!(
            t.lookup(&A, &id1, 201),
            Err(SealError::OutsideValidity { .. })
        ));
        assert!(t.lookup(&A, &id2, 10_000).is_ok());
        assert!(matches!(
            t.lookup(&B, &id1, 150),
            Err(SealError::KeyOriginMismatch {
                claimed: B,
                registered: A,
                ..
            })
        ));
        let unknown = NodeKey::generate().unwrap().key_id();
        assert!(matches!(
            t.lookup(&A, &unknown, 150),
            Err(SealError::UnknownKey { .. })
        ));
        t.revoke(&id1.to_string()).unwrap();
        assert_eq!(
            t.lookup(&A, &id1, 150),
            Err(SealError::Revoked { key_id: id1 })
        );
        assert!(t.is_revoked(&id1));
        assert!(matches!(t.revoke("nope"), Err(TrustError::BadKeyId(_))));
        // Pre-emptive revocation of a key not in the list.
        t.revoke(&unknown.to_string()).unwrap();
        assert!(matches!(
            t.lookup(&A, &unknown, 150),
            Err(SealError::Revoked { .. })
        ));
    }

    #[test]
    fn config_errors() {
        let k = NodeKey::generate().unwrap();
        let mut t = TrustList::new();
        t.add(A, &k.public_key_b64(), None, None).unwrap();
        // Same key, same org, same window: fine.
        t.add(A, &k.public_key_b64(), None, None).unwrap();
        assert!(matches!(
            t.add(B, &k.public_key_b64(), None, None),
            Err(TrustError::KeyForTwoOrgs { .. })
        ));
        assert!(matches!(
            t.add(A, &k.public_key_b64(), Some(1), None),
            Err(TrustError::ConflictingWindows { .. })
        ));
        let k2 = NodeKey::generate().unwrap();
        assert!(matches!(
            t.add(A, &k2.public_key_b64(), Some(5), Some(4)),
            Err(TrustError::EmptyWindow { .. })
        ));
        assert!(matches!(
            t.add(A, "garbage", None, None),
            Err(TrustError::BadPublicKey { .. })
        ));
        assert_eq!(t.len(), 1);
    }
}
