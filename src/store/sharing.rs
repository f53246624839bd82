//! Sharing groups and sightings managed directly (not as part of an event write).

use super::keys::{self, idkind, kind};
use super::record::{Change, ChangeKind};
use super::txn::{self, Txn};
use super::write::Durability;
use super::{corrupt, Store, StoreError, T};
use crate::model::{SharingGroup, Sighting};
use uuid::Uuid;

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
            return Err(StoreError::Refused {
                field: "SharingGroup",
                reason: "SharingGroup: name: must not be empty".into(),
            });
        }
        if sg.uuid.is_nil() {
            sg.uuid = Uuid::new_v4();
        }
        let mut tx = Txn::begin(self)?;
        if self.t.sharing_groups.get(sg.uuid.as_bytes())?.is_some() {
            return Err(StoreError::Refused {
                field: "SharingGroup",
                reason: format!("SharingGroup: uuid: {} already exists", sg.uuid),
            });
        }
        let counters = tx.counters();
        counters.sg += 1;
        let id = counters.sg;
        sg.id = Some(id);
        tx.w.put(
            T::Ids,
            keys::id_key(idkind::SHARING_GROUP, id),
            sg.uuid.as_bytes(),
        );
        tx.w.put(
            T::SharingGroups,
            sg.uuid.as_bytes(),
            txn::json(&sg, "sharing group")?,
        );
        tx.commit(Durability::Flush)?;
        Ok(sg)
    }

    /// Replaces a stored sharing group (same uuid and local id).
    pub fn update_sharing_group(&self, sg: &SharingGroup) -> Result<(), StoreError> {
        let mut tx = Txn::begin(self)?;
        if self.t.sharing_groups.get(sg.uuid.as_bytes())?.is_none() {
            return Err(StoreError::Refused {
                field: "SharingGroup",
                reason: "SharingGroup: unknown".into(),
            });
        }
        tx.w.put(
            T::SharingGroups,
            sg.uuid.as_bytes(),
            txn::json(sg, "sharing group")?,
        );
        tx.commit(Durability::Flush)
    }

    /// Removes a sharing group. Elements that named it stay distribution 4 and
    /// become visible to their owner only, which fails closed.
    pub fn delete_sharing_group(&self, sg: &SharingGroup) -> Result<(), StoreError> {
        let mut tx = Txn::begin(self)?;
        tx.w.del(T::SharingGroups, sg.uuid.as_bytes());
        if let Some(id) = sg.id {
            tx.w.del(T::Ids, keys::id_key(idkind::SHARING_GROUP, id));
        }
        tx.commit(Durability::Flush)
    }

    /// Stores a sighting on an attribute of `event` (immutable, deduplicated by
    /// uuid) with its sealed record, if any, in the same atomic batch, and logs it
    /// as a change. Answers the sighting as stored, with its new local id (MISP
    /// answers `sightings/add` with it), or `None` if that sighting was known.
    pub fn add_sighting(
        &self,
        event: &Uuid,
        mut s: Sighting,
        sealed: Option<Vec<u8>>,
    ) -> Result<Option<Sighting>, StoreError> {
        if s.uuid.is_nil() {
            s.uuid = Uuid::new_v4();
        }
        if s.kind > 2 {
            return Err(StoreError::Refused {
                field: "Sighting",
                reason: format!("Sighting: type: {} is not 0-2", s.kind),
            });
        }
        let mut tx = Txn::begin(self)?;
        if self.t.loc.get(s.uuid.as_bytes())?.is_some() {
            return Ok(None);
        }
        if self
            .t
            .attrs
            .get(keys::pair(event, &s.attribute_uuid))?
            .is_none()
        {
            return Err(StoreError::Refused {
                field: "Sighting",
                reason: "Sighting: attribute_uuid: unknown attribute".into(),
            });
        }
        s.event_id = None;
        s.attribute_id = None;
        let counters = tx.counters();
        counters.sighting += 1;
        let id = counters.sighting;
        s.id = Some(id);
        tx.w.put(
            T::Ids,
            keys::id_key(idkind::SIGHTING, id),
            keys::pair(event, &s.uuid),
        );
        tx.w.put(
            T::Loc,
            s.uuid.as_bytes(),
            keys::loc_value(kind::SIGHTING, event),
        );
        tx.w.put(
            T::Sightings,
            keys::pair(event, &s.uuid),
            txn::json(&s, "sighting")?,
        );
        if let Some(sealed) = sealed {
            tx.w.put(T::SightingSeals, keys::pair(event, &s.uuid), sealed);
        }
        tx.log(Change {
            kind: ChangeKind::SightingAdded,
            event: *event,
            timestamp: s.date_sighting,
        })?;
        tx.commit(Durability::Flush)?;
        Ok(Some(s))
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
        let mut tx = Txn::begin(self)?;
        tx.tombstone(event, timestamp, sealed)?;
        tx.commit(Durability::Flush)
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
