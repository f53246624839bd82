//! The anchor: the last checkpoint (seq and line hash) this node wrote, kept in
//! the store's `meta` keyspace, outside the log file.
//!
//! A hash chain cannot show that its end was cut off: a log truncated just after
//! an earlier checkpoint is a perfectly valid, shorter log. The anchor is a
//! second witness. It lives in the sled database, so removing records from the
//! log unnoticed also takes a consistent edit of the database — not a defence
//! against someone who owns the machine (ship the log off the machine for that),
//! but it catches the careless and the accidental (a `copytruncate` log rotation,
//! a restored older file).
//!
//! The anchor is written only after its checkpoint is on disk, so it never runs
//! ahead of the log; after a crash it may lag behind it, which is harmless.

use super::record::LineHash;
use crate::store::{Store, StoreError};

/// The `meta` name the anchor is kept under.
const META_NAME: &str = "audit_anchor";

/// A checkpoint the log must still contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub seq: u64,
    pub hash: LineHash,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    seq: u64,
    hash: String,
}

/// The anchor `store` holds, if any.
pub fn load(store: &Store) -> Result<Option<Anchor>, StoreError> {
    let Some(bytes) = store.meta_value(META_NAME)? else {
        return Ok(None);
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        tree: "meta",
        reason: format!("{META_NAME}: {reason}"),
    };
    let s: Stored = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&s.hash, &mut hash).map_err(|e| corrupt(e.to_string()))?;
    Ok(Some(Anchor { seq: s.seq, hash }))
}

/// Remembers `anchor` in `store` (durable with the store's next flush).
pub fn save(store: &Store, anchor: &Anchor) -> Result<(), StoreError> {
    let s = Stored {
        seq: anchor.seq,
        hash: hex::encode(anchor.hash),
    };
    let bytes = serde_json::to_vec(&s).map_err(|e| StoreError::Corrupt {
        tree: "meta",
        reason: format!("{META_NAME}: {e}"),
    })?;
    store.set_meta_value(META_NAME, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Default::default()).unwrap();
        assert_eq!(load(&store).unwrap(), None);
        let a = Anchor {
            seq: 42,
            hash: [7; 32],
        };
        save(&store, &a).unwrap();
        assert_eq!(load(&store).unwrap(), Some(a));
    }
}
