//! The store's write bookkeeping, written once: how a keyspace key is made,
//! how records are encoded, the counters a write advances (the change-log
//! sequence among them), and [`Txn`], the write transaction every writer uses.
//!
//! A write holds the writer lock, collects everything it changes — records,
//! index entries, change-log entries, counters — in one sled batch, and applies
//! it atomically, so a crash leaves either all of it or none. Durability is the
//! caller's choice ([`Durability`]): `Flush` returns only once the batch is on
//! disk, which is what the API and the federation's page commits acknowledge.
//!
//! The change-log sequence is allocated here only ([`Counters::log`]): one
//! number per change, in commit order, which the federation feed serves and
//! peers keep as their cursor.

use super::record::{Change, ChangeKind, StoredEvent};
use super::write::Durability;
use super::{Store, StoreError, T};
use crate::model::Event;
use std::sync::MutexGuard;
use uuid::Uuid;

/// The full key of `k` in keyspace `t` (the one-byte prefix, then `k`).
pub(crate) fn key(t: T, k: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(k.len() + 1);
    v.push(t as u8);
    v.extend_from_slice(k);
    v
}

/// JSON for a stored record. Encoding our own types cannot fail in practice,
/// but if it ever did, the write fails: an empty record is never stored.
pub(crate) fn json<V: serde::Serialize>(v: &V, what: &'static str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// postcard for a stored record, with the same rule as [`json`].
pub(crate) fn postcard<V: serde::Serialize>(
    v: &V,
    what: &'static str,
) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(v).map_err(|e| StoreError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// Everything one write changes, applied as one atomic sled batch.
pub(crate) struct WriteSet {
    batch: sled::Batch,
}

impl WriteSet {
    pub(crate) fn new() -> Self {
        WriteSet {
            batch: sled::Batch::default(),
        }
    }

    pub(crate) fn put(&mut self, t: T, k: impl AsRef<[u8]>, v: impl AsRef<[u8]>) {
        self.batch.insert(key(t, k.as_ref()), v.as_ref());
    }

    pub(crate) fn del(&mut self, t: T, k: impl AsRef<[u8]>) {
        self.batch.remove(key(t, k.as_ref()));
    }

    /// Applies the batch, atomically.
    pub(crate) fn apply(self, store: &Store) -> Result<(), StoreError> {
        store.t.data.apply_batch(self.batch)?;
        Ok(())
    }
}

/// The counters a write advances, read once under the writer lock.
#[derive(Debug, Clone)]
pub(crate) struct Counters {
    /// The last change-log sequence allocated.
    pub(crate) seq: u64,
    /// The last local event id.
    pub(crate) event: u64,
    /// The last local sharing-group id.
    pub(crate) sg: u64,
    /// The last local sighting id.
    pub(crate) sighting: u64,
    /// Live (not deleted) events.
    pub(crate) live: u64,
}

impl Counters {
    pub(crate) fn load(store: &Store) -> Result<Self, StoreError> {
        let get = |name: &str| -> Result<u64, StoreError> {
            Ok(store
                .t
                .meta
                .get(name)?
                .and_then(|v| super::keys::be_u64(&v))
                .unwrap_or(0))
        };
        Ok(Counters {
            seq: get("seq")?,
            event: get("id:event")?,
            sg: get("id:sg")?,
            sighting: get("id:sighting")?,
            live: get("live")?,
        })
    }

    pub(crate) fn save(&self, w: &mut WriteSet) {
        w.put(T::Meta, "seq", self.seq.to_be_bytes());
        w.put(T::Meta, "id:event", self.event.to_be_bytes());
        w.put(T::Meta, "id:sg", self.sg.to_be_bytes());
        w.put(T::Meta, "id:sighting", self.sighting.to_be_bytes());
        w.put(T::Meta, "live", self.live.to_be_bytes());
    }

    /// Logs `change` under the next sequence number (the only place one is
    /// allocated) and returns it.
    pub(crate) fn log(&mut self, w: &mut WriteSet, change: Change) -> Result<u64, StoreError> {
        self.seq += 1;
        w.put(
            T::Changes,
            self.seq.to_be_bytes(),
            postcard(&change, "change")?,
        );
        Ok(self.seq)
    }

    /// Stores a sealed tombstone for `event` at `timestamp` and logs it.
    pub(crate) fn tombstone(
        &mut self,
        w: &mut WriteSet,
        event: &Uuid,
        timestamp: u64,
        sealed: Vec<u8>,
    ) -> Result<u64, StoreError> {
        let seq = self.log(
            w,
            Change {
                kind: ChangeKind::TombstoneAdded,
                event: *event,
                timestamp,
            },
        )?;
        w.put(T::Tombstones, tombstone_key(event, timestamp, seq), sealed);
        Ok(seq)
    }
}

/// `event ‖ timestamp ‖ seq`: an event's tombstones in time order.
pub(crate) fn tombstone_key(event: &Uuid, timestamp: u64, seq: u64) -> Vec<u8> {
    let mut k = event.as_bytes().to_vec();
    k.extend_from_slice(&timestamp.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// One write transaction: the writer lock, the batch, the counters. Made by
/// [`Txn::begin`], ended by [`Txn::commit`] (or dropped: nothing is written).
pub(crate) struct Txn<'s> {
    store: &'s Store,
    _guard: MutexGuard<'s, ()>,
    pub(crate) w: WriteSet,
    c: Counters,
    /// Whether `c` changed, so the commit must save it.
    counted: bool,
}

impl<'s> Txn<'s> {
    /// Takes the writer lock and reads the counters.
    pub(crate) fn begin(store: &'s Store) -> Result<Self, StoreError> {
        // A poisoned lock only means another writer panicked mid-way; a sled
        // batch either applied whole or not at all, so carrying on is safe.
        let guard = store.writer.lock().unwrap_or_else(|p| p.into_inner());
        let c = Counters::load(store)?;
        Ok(Txn {
            store,
            _guard: guard,
            w: WriteSet::new(),
            c,
            counted: false,
        })
    }

    /// The counters, to advance (the commit saves them).
    pub(crate) fn counters(&mut self) -> &mut Counters {
        self.counted = true;
        &mut self.c
    }

    /// Logs `change` in this transaction; returns its sequence number.
    pub(crate) fn log(&mut self, change: Change) -> Result<u64, StoreError> {
        self.counted = true;
        self.c.log(&mut self.w, change)
    }

    /// Stores and logs a sealed tombstone in this transaction.
    pub(crate) fn tombstone(
        &mut self,
        event: &Uuid,
        timestamp: u64,
        sealed: Vec<u8>,
    ) -> Result<u64, StoreError> {
        self.counted = true;
        self.c.tombstone(&mut self.w, event, timestamp, sealed)
    }

    /// Stores event `rec` with `head` as its header and logs the change as
    /// `kind`: how every in-place header write (delete, publish, hard delete of
    /// children) ends.
    pub(crate) fn put_event_header(
        &mut self,
        rec: &mut StoredEvent,
        head: &Event,
        kind: ChangeKind,
    ) -> Result<u64, StoreError> {
        rec.header = json(head, "event header")?;
        self.w.put(
            T::Events,
            head.uuid.as_bytes(),
            postcard(&*rec, "event record")?,
        );
        self.log(Change {
            kind,
            event: head.uuid,
            timestamp: head.timestamp,
        })
    }

    /// Replaces the batch with `w`, a complete plan made under this
    /// transaction's lock that saved its own counters.
    pub(crate) fn adopt(&mut self, w: WriteSet) {
        self.w = w;
        self.counted = false;
    }

    /// Applies the batch atomically, releases the lock, then makes it durable
    /// as asked: with [`Durability::Flush`] this returns only once the write is
    /// on disk.
    pub(crate) fn commit(self, durability: Durability) -> Result<(), StoreError> {
        let Txn {
            store,
            _guard,
            mut w,
            c,
            counted,
        } = self;
        if counted {
            c.save(&mut w);
        }
        w.apply(store)?;
        drop(_guard);
        if durability == Durability::Flush {
            store.flush()?;
        }
        Ok(())
    }
}
