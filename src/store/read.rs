//! Reading events back in MISP's wire form.

use super::keys::{self, idkind};
use super::record::{StoredAttr, StoredEvent};
use super::{corrupt, Store, StoreError};
use crate::model::{Attribute, Event, EventReport, Object, SharingGroup, Sighting};
use std::collections::HashMap;
use uuid::Uuid;

impl Store {
    pub(crate) fn stored_event(&self, uuid: &Uuid) -> Result<Option<StoredEvent>, StoreError> {
        match self.t.events.get(uuid.as_bytes())? {
            Some(v) => Ok(Some(
                postcard::from_bytes(&v).map_err(|e| corrupt("events", e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    /// The full event (attributes, objects, references, reports, tags, sightings)
    /// as this node shows it, or `None` if unknown or soft-deleted: every level
    /// is the one in effect here (a received 2 shows as 1, as in MISP), with
    /// the signed levels noted in the seal so the answer still verifies
    /// ([`crate::model::seal::send_levels`]). Users' visibility is decided on it.
    pub fn get_event(&self, uuid: &Uuid) -> Result<Option<Event>, StoreError> {
        match self.get_event_signed(uuid)? {
            Some(mut ev) => {
                self.show_effective_levels(&mut ev)?;
                Ok(Some(ev))
            }
            None => Ok(None),
        }
    }

    /// The full event with the levels its origin signed: what the federation
    /// decides with, next to [`Store::local_state`].
    pub fn get_event_signed(&self, uuid: &Uuid) -> Result<Option<Event>, StoreError> {
        match self.stored_event(uuid)? {
            Some(rec) if !rec.deleted => self.assemble(uuid, &rec, true).map(Some),
            _ => Ok(None),
        }
    }

    /// The event header only (no children): cheap, for indexes and listings.
    /// Its level is the one in effect here, as in [`Store::get_event`].
    pub fn get_event_header(&self, uuid: &Uuid) -> Result<Option<Event>, StoreError> {
        match self.stored_event(uuid)? {
            Some(rec) if !rec.deleted => {
                let mut ev = self.assemble(uuid, &rec, false)?;
                self.show_effective_levels(&mut ev)?;
                Ok(Some(ev))
            }
            _ => Ok(None),
        }
    }

    /// Replaces the signed levels of `ev` by those in effect on this node,
    /// where its local record says they differ (received events only).
    fn show_effective_levels(&self, ev: &mut Event) -> Result<(), StoreError> {
        let Some(rec) = self.local_record(&ev.uuid)? else {
            return Ok(());
        };
        if rec.event_distribution.is_none() && rec.element_distribution.is_empty() {
            return Ok(());
        }
        let event_uuid = ev.uuid;
        crate::model::seal::send_levels(ev, |uuid, signed| {
            if *uuid == event_uuid {
                rec.event_distribution.unwrap_or(signed)
            } else {
                rec.element_distribution
                    .get(uuid)
                    .copied()
                    .unwrap_or(signed)
            }
        });
        Ok(())
    }

    /// Looks an event up by its local numeric id.
    pub fn event_uuid_by_id(&self, id: u64) -> Result<Option<Uuid>, StoreError> {
        Ok(self
            .t
            .ids
            .get(keys::id_key(idkind::EVENT, id))?
            .and_then(|v| keys::uuid_at(&v, 0)))
    }

    /// Whether the event exists and is soft-deleted.
    pub fn is_deleted(&self, uuid: &Uuid) -> Result<bool, StoreError> {
        Ok(self.stored_event(uuid)?.is_some_and(|r| r.deleted))
    }

    /// One attribute and the uuid of its event.
    pub fn get_attribute(
        &self,
        event: &Uuid,
        attr: &Uuid,
    ) -> Result<Option<Attribute>, StoreError> {
        let Some(v) = self.t.attrs.get(keys::pair(event, attr))? else {
            return Ok(None);
        };
        let rec: StoredAttr =
            postcard::from_bytes(&v).map_err(|e| corrupt("attrs", e.to_string()))?;
        let mut a = rec.to_model(*attr);
        let event_id = self.stored_event(event)?.map(|e| e.id);
        a.event_id = event_id;
        if let Some(sg) = rec.sharing_group {
            a.sharing_group = self.sharing_group(&sg)?;
            a.sharing_group_id = a.sharing_group.as_ref().and_then(|s| s.id).unwrap_or(0);
        }
        Ok(Some(a))
    }

    /// The event an element (attribute, object, …) belongs to.
    pub fn locate(&self, element: &Uuid) -> Result<Option<Uuid>, StoreError> {
        Ok(self
            .t
            .loc
            .get(element.as_bytes())?
            .and_then(|v| keys::uuid_at(&v, 1)))
    }

    pub fn sharing_group(&self, uuid: &Uuid) -> Result<Option<SharingGroup>, StoreError> {
        match self.t.sharing_groups.get(uuid.as_bytes())? {
            Some(v) => Ok(Some(
                serde_json::from_slice(&v).map_err(|e| corrupt("sharing_groups", e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    /// Uuids of live events, in uuid order.
    pub fn event_uuids(&self) -> impl Iterator<Item = Result<Uuid, StoreError>> + '_ {
        self.t.events.iter().filter_map(|item| match item {
            Err(e) => Some(Err(e.into())),
            Ok((k, v)) => {
                let deleted = postcard::from_bytes::<StoredEvent>(&v)
                    .map(|r| r.deleted)
                    .unwrap_or(false);
                if deleted {
                    None
                } else {
                    keys::uuid_at(&k, 0).map(Ok)
                }
            }
        })
    }

    /// Uuids of live events whose timestamp is at least `since`, oldest first.
    pub fn event_uuids_since(
        &self,
        since: u64,
    ) -> impl Iterator<Item = Result<Uuid, StoreError>> + '_ {
        self.t.idx_ts.range_from(since.to_be_bytes()).map(|item| {
            let (k, _) = item?;
            keys::uuid_at(&k, 8).ok_or_else(|| corrupt("idx_ts", "short key"))
        })
    }

    /// Uuids of live, published events whose publish_timestamp is at least `since`.
    pub fn event_uuids_published_since(
        &self,
        since: u64,
    ) -> impl Iterator<Item = Result<Uuid, StoreError>> + '_ {
        self.t.idx_pts.range_from(since.to_be_bytes()).map(|item| {
            let (k, _) = item?;
            keys::uuid_at(&k, 8).ok_or_else(|| corrupt("idx_pts", "short key"))
        })
    }

    /// Number of live events.
    pub fn event_count(&self) -> usize {
        self.t
            .meta
            .get("live")
            .ok()
            .flatten()
            .and_then(|v| keys::be_u64(&v))
            .unwrap_or(0) as usize
    }

    /// The full stored event whatever its state (a soft-deleted one too).
    pub(crate) fn assemble_any(&self, uuid: &Uuid, rec: &StoredEvent) -> Result<Event, StoreError> {
        self.assemble(uuid, rec, true)
    }

    /// The stored header whatever its state (a soft-deleted one too).
    pub(crate) fn assemble_header_any(
        &self,
        uuid: &Uuid,
        rec: &StoredEvent,
    ) -> Result<Event, StoreError> {
        self.assemble(uuid, rec, false)
    }

    fn assemble(
        &self,
        uuid: &Uuid,
        rec: &StoredEvent,
        children: bool,
    ) -> Result<Event, StoreError> {
        let mut event: Event =
            serde_json::from_slice(&rec.header).map_err(|e| corrupt("events", e.to_string()))?;
        event.id = Some(rec.id);
        // Local organisation ids, as MISP shows them (`org_id`, `orgc_id`, `Org.id`).
        if let Some(o) = &mut event.org {
            o.id = self.org(&o.uuid)?.map(|r| r.id);
            event.org_id = o.id;
        }
        if let Some(o) = &mut event.orgc {
            o.id = self.org(&o.uuid)?.map(|r| r.id);
            event.orgc_id = o.id;
        }
        let mut sgs: HashMap<Uuid, Option<SharingGroup>> = HashMap::new();
        let mut sg_of = |u: &Uuid| -> Result<Option<SharingGroup>, StoreError> {
            if let Some(s) = sgs.get(u) {
                return Ok(s.clone());
            }
            let s = self.sharing_group(u)?;
            sgs.insert(*u, s.clone());
            Ok(s)
        };
        if let Some(sg) = &rec.sharing_group {
            event.sharing_group = sg_of(sg)?;
            event.sharing_group_id = event.sharing_group.as_ref().and_then(|s| s.id).unwrap_or(0);
        }
        // Tags as MISP shows them: the catalogue's local id, and its colour
        // where the tag came without one (neither is signed: `signed_form`).
        let mut catalogue: HashMap<String, Option<(u64, String)>> = HashMap::new();
        let mut decorate = |tags: &mut [crate::model::Tag]| -> Result<(), StoreError> {
            for t in tags {
                let key = keys::fold(&t.name);
                let row = match catalogue.get(&key) {
                    Some(r) => r.clone(),
                    None => {
                        let r = self.tag_by_name(&t.name)?.map(|r| (r.id, r.colour));
                        catalogue.insert(key, r.clone());
                        r
                    }
                };
                if let Some((id, colour)) = row {
                    t.id = Some(id);
                    if t.colour.is_empty() {
                        t.colour = colour;
                    }
                }
            }
            Ok(())
        };
        decorate(&mut event.tags)?;
        if !children {
            return Ok(event);
        }
        let mut sightings: HashMap<Uuid, Vec<Sighting>> = HashMap::new();
        for item in self.t.sightings.scan_prefix(uuid.as_bytes()) {
            let (_, v) = item?;
            let mut s: Sighting =
                serde_json::from_slice(&v).map_err(|e| corrupt("sightings", e.to_string()))?;
            s.event_id = Some(rec.id);
            sightings.entry(s.attribute_uuid).or_default().push(s);
        }
        let mut objects: Vec<Object> = Vec::new();
        let mut object_pos: HashMap<Uuid, usize> = HashMap::new();
        for item in self.t.objects.scan_prefix(uuid.as_bytes()) {
            let (_, v) = item?;
            let mut o: Object =
                serde_json::from_slice(&v).map_err(|e| corrupt("objects", e.to_string()))?;
            o.event_id = Some(rec.id);
            object_pos.insert(o.uuid, objects.len());
            objects.push(o);
        }
        for item in self.t.attrs.scan_prefix(uuid.as_bytes()) {
            let (k, v) = item?;
            let au = keys::uuid_at(&k, 16).ok_or_else(|| corrupt("attrs", "short key"))?;
            let r: StoredAttr =
                postcard::from_bytes(&v).map_err(|e| corrupt("attrs", e.to_string()))?;
            let mut a = r.to_model(au);
            a.event_id = Some(rec.id);
            decorate(&mut a.tags)?;
            if let Some(sg) = &r.sharing_group {
                a.sharing_group = sg_of(sg)?;
                a.sharing_group_id = a.sharing_group.as_ref().and_then(|s| s.id).unwrap_or(0);
            }
            if let Some(mut s) = sightings.remove(&au) {
                for x in &mut s {
                    x.attribute_id = a.id;
                }
                s.sort_by_key(|x| (x.date_sighting, x.uuid));
                a.sightings = s;
            }
            match r.object.and_then(|o| object_pos.get(&o)) {
                Some(&pos) => {
                    a.object_id = objects[pos].id;
                    objects[pos].attributes.push(a);
                }
                None => event.attributes.push(a),
            }
        }
        for item in self.t.reports.scan_prefix(uuid.as_bytes()) {
            let (_, v) = item?;
            let mut r: EventReport =
                serde_json::from_slice(&v).map_err(|e| corrupt("reports", e.to_string()))?;
            r.event_id = Some(rec.id);
            event.reports.push(r);
        }
        // Stored order is uuid order; MISP lists children by id, i.e. by insertion.
        event.attributes.sort_by_key(|a| a.id);
        for o in &mut objects {
            o.attributes.sort_by_key(|a| a.id);
        }
        objects.sort_by_key(|o| o.attributes.first().and_then(|a| a.id));
        // An object's local id is the smallest id among its attributes: unique, it
        // leads to the event (attribute ids embed the event id) and needs no index.
        for o in &mut objects {
            o.id = o.attributes.iter().filter_map(|a| a.id).min();
            for a in &mut o.attributes {
                a.object_id = o.id;
            }
        }
        for a in &mut event.attributes {
            a.object_id = Some(0);
        }
        event.objects = objects;
        Ok(event)
    }
}
