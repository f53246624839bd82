//! Sharing groups and sightings managed directly (not as part of an event write).

use super::keys::{self, idkind, kind};
use super::record::{Change, ChangeKind};
use super::{corrupt, Store, StoreError, T};
use crate::model::{SharingGroup, Sighting};
use uuid::Uuid;

fn json<V: serde::Serialize>(v: &V) -> Vec<u8> {
    // Model types hold only strings, numbers, booleans and maps: always serialise.
    serde_json::to_vec(v).unwrap_or_default()
}

fn key(t: T, k: &[u8]) -> Vec<u8> {
    let mut v = vec![t as u8];
    v.extend_from_slice(k);
    v
}

impl Store {
    /// Every sharing group, by local id.
    pub fn sharing_groups(&self) -> Result<Vec<SharingGroup>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.sharing_groups.iter() {
            let (_, v) = item?;
            out.push(
                serde_json::from_slice::<SharingGroup>(&v)
                    .map_err(|e| corrupt("sharing_groups", e.to_string()))?,
            );
        }
        out.sort_by_key(|s| s.id);
        Ok(out)
    }

    /// A sharing group by local id or uuid.
    pub fn find_sharing_group(&self, id: &str) -> Result<Option<SharingGroup>, StoreError> {
        if let Ok(u) = id.trim().parse::<Uuid>() {
            return self.sharing_group(&u);
        }
        let Ok(n) = id.trim().parse::<u64>() else {
            return Ok(None);
        };
        match self.t.ids.get(keys::id_key(idkind::SHARING_GROUP, n))? {
            Some(v) => match keys::uuid_at(&v, 0) {
                Some(u) => self.sharing_group(&u),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// Creates a sharing group (a new local id; a nil uuid gets a fresh one).
    pub fn add_sharing_group(&self, mut sg: SharingGroup) -> Result<SharingGroup, StoreError> {
        if sg.name.trim().is_empty() {
            return Err(StoreError::Rejected(
                "SharingGroup: name: must not be empty".into(),
            ));
        }
        if sg.uuid.is_nil() {
            sg.uuid = Uuid::new_v4();
        }
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.t.sharing_groups.get(sg.uuid.as_bytes())?.is_some() {
            return Err(StoreError::Rejected(format!(
                "SharingGroup: uuid: {} already exists",
                sg.uuid
            )));
        }
        let mut ctr = vec![T::Meta as u8];
        ctr.extend_from_slice(b"id:sg");
        let id = self
            .t
            .meta
            .get("id:sg")?
            .and_then(|v| keys::be_u64(&v))
            .unwrap_or(0)
            + 1;
        sg.id = Some(id);
        let mut batch = sled::Batch::default();
        batch.insert(ctr, &id.to_be_bytes());
        batch.insert(
            key(T::Ids, &keys::id_key(idkind::SHARING_GROUP, id)),
            sg.uuid.as_bytes(),
        );
        batch.insert(key(T::SharingGroups, sg.uuid.as_bytes()), json(&sg));
        self.t.data.apply_batch(batch)?;
        self.flush()?;
        Ok(sg)
    }

    /// Replaces a stored sharing group (same uuid and local id).
    pub fn update_sharing_group(&self, sg: &SharingGroup) -> Result<(), StoreError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.t.sharing_groups.get(sg.uuid.as_bytes())?.is_none() {
            return Err(StoreError::Rejected("SharingGroup: unknown".into()));
        }
        self.t
            .data
            .insert(key(T::SharingGroups, sg.uuid.as_bytes()), json(sg))?;
        self.flush()
    }

    /// Removes a sharing group. Elements that named it stay distribution 4 and
    /// become visible to their owner only, which fails closed.
    pub fn delete_sharing_group(&self, sg: &SharingGroup) -> Result<(), StoreError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        batch.remove(key(T::SharingGroups, sg.uuid.as_bytes()));
        if let Some(id) = sg.id {
            batch.remove(key(T::Ids, &keys::id_key(idkind::SHARING_GROUP, id)));
        }
        self.t.data.apply_batch(batch)?;
        self.flush()
    }

    /// Stores a sighting on an attribute of `event` (immutable, deduplicated by
    /// uuid) with its sealed record, if any, in the same atomic batch, and logs it
    /// as a change. Answers `false` if that sighting was known.
    pub fn add_sighting(
        &self,
        event: &Uuid,
        mut s: Sighting,
        sealed: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        if s.uuid.is_nil() {
            s.uuid = Uuid::new_v4();
        }
        if s.kind > 2 {
            return Err(StoreError::Rejected(format!(
                "Sighting: type: {} is not 0-2",
                s.kind
            )));
        }
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.t.loc.get(s.uuid.as_bytes())?.is_some() {
            return Ok(false);
        }
        if self
            .t
            .attrs
            .get(keys::pair(event, &s.attribute_uuid))?
            .is_none()
        {
            return Err(StoreError::Rejected(
                "Sighting: attribute_uuid: unknown attribute".into(),
            ));
        }
        s.id = None;
        s.event_id = None;
        s.attribute_id = None;
        let seq = self
            .t
            .meta
            .get("seq")?
            .and_then(|v| keys::be_u64(&v))
            .unwrap_or(0)
            + 1;
        let change = Change {
            kind: ChangeKind::SightingAdded,
            event: *event,
            timestamp: s.date_sighting,
        };
        let mut batch = sled::Batch::default();
        batch.insert(
            key(T::Loc, s.uuid.as_bytes()),
            &keys::loc_value(kind::SIGHTING, event),
        );
        batch.insert(key(T::Sightings, &keys::pair(event, &s.uuid)), json(&s));
        if let Some(sealed) = sealed {
            batch.insert(key(T::SightingSeals, &keys::pair(event, &s.uuid)), sealed);
        }
        batch.insert(
            key(T::Changes, &seq.to_be_bytes()),
            postcard::to_stdvec(&change).map_err(|e| corrupt("changes", e.to_string()))?,
        );
        let mut seq_key = vec![T::Meta as u8];
        seq_key.extend_from_slice(b"seq");
        batch.insert(seq_key, &seq.to_be_bytes());
        self.t.data.apply_batch(batch)?;
        self.flush()?;
        Ok(true)
    }

    /// The sealed record of a sighting, if it has one.
    pub fn sighting_seal(
        &self,
        event: &Uuid,
        sighting: &Uuid,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .t
            .sighting_seals
            .get(keys::pair(event, sighting))?
            .map(|v| v.to_vec()))
    }

    /// Stores a sealed tombstone (tag removal, …) for `event` and logs it.
    pub fn add_tombstone(
        &self,
        event: &Uuid,
        timestamp: u64,
        sealed: Vec<u8>,
    ) -> Result<(), StoreError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let seq = self
            .t
            .meta
            .get("seq")?
            .and_then(|v| keys::be_u64(&v))
            .unwrap_or(0)
            + 1;
        let mut batch = sled::Batch::default();
        self.tombstone_into(&mut batch, event, timestamp, seq, sealed)?;
        self.t.data.apply_batch(batch)?;
        self.flush()
    }

    /// Adds a tombstone, its change log entry and the new sequence to `batch`.
    pub(crate) fn tombstone_into(
        &self,
        batch: &mut sled::Batch,
        event: &Uuid,
        timestamp: u64,
        seq: u64,
        sealed: Vec<u8>,
    ) -> Result<(), StoreError> {
        let mut k = event.as_bytes().to_vec();
        k.extend_from_slice(&timestamp.to_be_bytes());
        k.extend_from_slice(&seq.to_be_bytes());
        batch.insert(key(T::Tombstones, &k), sealed);
        let change = Change {
            kind: ChangeKind::TombstoneAdded,
            event: *event,
            timestamp,
        };
        batch.insert(
            key(T::Changes, &seq.to_be_bytes()),
            postcard::to_stdvec(&change).map_err(|e| corrupt("changes", e.to_string()))?,
        );
        let mut seq_key = vec![T::Meta as u8];
        seq_key.extend_from_slice(b"seq");
        batch.insert(seq_key, &seq.to_be_bytes());
        Ok(())
    }

    /// The sealed tombstones of an event, oldest first.
    pub fn tombstones_of(&self, event: &Uuid) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.tombstones.scan_prefix(event.as_bytes()) {
            let (_, v) = item?;
            out.push(v.to_vec());
        }
        Ok(out)
    }

    /// The sealed tombstone logged as change `seq` of `event`, if any. Matched by
    /// sequence, not timestamp: a tombstone received from a peer carries the
    /// origin's time, the change the time of the local deletion.
    pub fn tombstone_at(&self, event: &Uuid, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        for item in self.t.tombstones.scan_prefix(event.as_bytes()) {
            let (k, v) = item?;
            if k.len() >= 8 && keys::be_u64(&k[k.len() - 8..]) == Some(seq) {
                return Ok(Some(v.to_vec()));
            }
        }
        Ok(None)
    }

    /// Sightings of an event, oldest first.
    pub fn sightings_of(&self, event: &Uuid) -> Result<Vec<Sighting>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.sightings.scan_prefix(event.as_bytes()) {
            let (_, v) = item?;
            out.push(
                serde_json::from_slice::<Sighting>(&v)
                    .map_err(|e| corrupt("sightings", e.to_string()))?,
            );
        }
        out.sort_by_key(|s| (s.date_sighting, s.uuid));
        Ok(out)
    }
}
