//! Storing events: validation, the strictly-newer merge, indexes, the change log,
//! one atomic transaction, and the flush that makes an acknowledgement true.

use super::index::{self, attr_index_entries};
use super::keys::{self, idkind, kind};
use super::record::{Change, ChangeKind, StoredAttr, StoredEvent};
use super::txn::{self, Counters, Txn, WriteSet};
use super::{corrupt, Store, StoreError, T};
use crate::model::validate::validate_event;
use crate::model::{time, types, Attribute, Event, Object, SharingGroup};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Whether `put_event` flushes before returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync before returning: the outcome may be acknowledged at once.
    Flush,
    /// Return before the fsync; the caller must call [`Store::flush`] before it
    /// acknowledges anything (group commit for bulk imports).
    Deferred,
}

/// What happened to an event that was not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted { uuid: Uuid, id: u64 },
    Updated { uuid: Uuid, id: u64 },
    Unchanged { uuid: Uuid, id: u64 },
}

impl Outcome {
    pub fn uuid(&self) -> Uuid {
        match self {
            Outcome::Accepted { uuid, .. }
            | Outcome::Updated { uuid, .. }
            | Outcome::Unchanged { uuid, .. } => *uuid,
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Updated { .. } => "updated",
            Outcome::Unchanged { .. } => "unchanged",
        }
    }
}

struct Merge<'a> {
    store: &'a Store,
    w: WriteSet,
    c: Counters,
    event: Uuid,
    event_no_corr: bool,
    /// Sharing groups captured in this write: uuid → local id.
    sgs: HashMap<Uuid, u64>,
    /// The event's local id and the last attribute number used in it: attribute ids
    /// are `event id << 24 | number`, so an id leads to its event without an index.
    event_id: u64,
    next_attr: u32,
    /// Attribute types present in the event after this write.
    types: HashSet<String>,
    /// Organisations captured in this write.
    captured: HashSet<Uuid>,
}

impl Merge<'_> {
    /// MISP's `captureOrg`: organisations named by an event (owner and creator)
    /// become known to this node by uuid, so they get local ids and can be
    /// searched by; a captured organisation is not local (it has no users here).
    fn capture_orgs(&mut self, event: &Event) -> Result<(), StoreError> {
        for o in [&event.org, &event.orgc].into_iter().flatten() {
            if o.uuid.is_nil()
                || self.captured.contains(&o.uuid)
                || self.store.t.orgs.get(o.uuid.as_bytes())?.is_some()
            {
                continue;
            }
            let rec = super::accounts::OrgRecord {
                id: self.store.next_id("id:org")?,
                uuid: o.uuid,
                name: if o.name.trim().is_empty() {
                    o.uuid.to_string()
                } else {
                    o.name.trim().to_owned()
                },
                local: false,
                description: String::new(),
                nationality: String::new(),
                sector: String::new(),
                created: time::now_secs(),
            };
            self.w
                .put(T::Orgs, o.uuid.as_bytes(), txn::json(&rec, "record")?);
            self.captured.insert(o.uuid);
        }
        Ok(())
    }

    /// Captures a sharing group carried by an element (newer `modified` wins) or
    /// resolves a local `sharing_group_id`; returns the group's uuid when the element
    /// has distribution 4.
    fn sharing_group(
        &mut self,
        element: &str,
        dist: u8,
        sg: Option<&SharingGroup>,
        sg_id: u64,
    ) -> Result<Option<Uuid>, StoreError> {
        if dist != 4 {
            return Ok(None);
        }
        if let Some(sg) = sg.filter(|s| !s.uuid.is_nil()) {
            if self.sgs.contains_key(&sg.uuid) {
                return Ok(Some(sg.uuid));
            }
            let stored: Option<SharingGroup> =
                match self.store.t.sharing_groups.get(sg.uuid.as_bytes())? {
                    Some(v) => Some(
                        serde_json::from_slice(&v)
                            .map_err(|e| corrupt("sharing_groups", e.to_string()))?,
                    ),
                    None => None,
                };
            let id = match &stored {
                Some(s) => s.id.unwrap_or(0),
                None => {
                    self.c.sg += 1;
                    self.w.put(
                        T::Ids,
                        keys::id_key(idkind::SHARING_GROUP, self.c.sg),
                        sg.uuid.as_bytes(),
                    );
                    self.c.sg
                }
            };
            if stored.as_ref().is_none_or(|s| sg.modified > s.modified) {
                let mut copy = sg.clone();
                copy.id = Some(id);
                self.w.put(
                    T::SharingGroups,
                    sg.uuid.as_bytes(),
                    txn::json(&copy, "record")?,
                );
            }
            self.sgs.insert(sg.uuid, id);
            return Ok(Some(sg.uuid));
        }
        match self
            .store
            .t
            .ids
            .get(keys::id_key(idkind::SHARING_GROUP, sg_id))?
        {
            Some(v) => Ok(keys::uuid_at(&v, 0)),
            None => Err(StoreError::Refused {
                field: "event",
                reason: format!("{element}: sharing_group_id: unknown sharing group {sg_id}"),
            }),
        }
    }

    /// Fails if `uuid` already names an element of another event (MISP's
    /// "duplicate UUID" refusal), or an element of another kind.
    fn claim(&mut self, k: u8, uuid: &Uuid, label: &str) -> Result<(), StoreError> {
        if let Some(v) = self.store.t.loc.get(uuid.as_bytes())? {
            let other = keys::uuid_at(&v, 1).ok_or_else(|| corrupt("loc", "short value"))?;
            if other != self.event || v[0] != k {
                return Err(StoreError::Refused {
                    field: "event",
                    reason: format!(
                        "{label}: uuid: already used by {} in event {other}",
                        kind::name(v[0])
                    ),
                });
            }
            return Ok(());
        }
        self.w
            .put(T::Loc, uuid.as_bytes(), keys::loc_value(k, &self.event));
        Ok(())
    }

    fn put_attr(
        &mut self,
        a: &Attribute,
        object: Option<Uuid>,
        old: Option<&StoredAttr>,
    ) -> Result<(), StoreError> {
        let label = format!("Attribute {} ({})", a.uuid, a.attr_type);
        self.claim(kind::ATTRIBUTE, &a.uuid, &label)?;
        let sg = self.sharing_group(
            &label,
            a.distribution,
            a.sharing_group.as_ref(),
            a.sharing_group_id,
        )?;
        let id = match old {
            Some(o) => {
                for (t, k, _) in attr_index_entries(&self.event, &a.uuid, o, self.event_no_corr) {
                    self.w.del(t, k);
                }
                o.id
            }
            None => {
                self.next_attr += 1;
                attribute_id(self.event_id, self.next_attr)
            }
        };
        self.types.insert(a.attr_type.clone());
        let rec = StoredAttr::from_model(a, id, object, sg);
        for (t, k, v) in attr_index_entries(&self.event, &a.uuid, &rec, self.event_no_corr) {
            self.w.put(t, k, v);
        }
        let bytes = postcard::to_stdvec(&rec).map_err(|e| corrupt("attrs", e.to_string()))?;
        self.w
            .put(T::Attrs, keys::pair(&self.event, &a.uuid), bytes);
        for s in &a.sightings {
            if self.store.t.loc.get(s.uuid.as_bytes())?.is_some() {
                continue; // sightings are immutable: already have it
            }
            self.claim(kind::SIGHTING, &s.uuid, &format!("Sighting {}", s.uuid))?;
            let mut s = s.clone();
            s.id = None;
            s.attribute_id = None;
            s.event_id = None;
            self.w.put(
                T::Sightings,
                keys::pair(&self.event, &s.uuid),
                txn::json(&s, "record")?,
            );
        }
        Ok(())
    }

    fn put_object(&mut self, o: &Object) -> Result<(), StoreError> {
        let label = format!("Object {} ({})", o.uuid, o.name);
        self.claim(kind::OBJECT, &o.uuid, &label)?;
        self.sharing_group(
            &label,
            o.distribution,
            o.sharing_group.as_ref(),
            o.sharing_group_id,
        )?;
        for r in &o.references {
            self.claim(
                kind::REFERENCE,
                &r.uuid,
                &format!("ObjectReference {}", r.uuid),
            )?;
        }
        let mut head = o.clone();
        head.attributes.clear();
        head.id = None;
        head.event_id = None;
        self.w.put(
            T::Objects,
            keys::pair(&self.event, &o.uuid),
            txn::json(&head, "event header")?,
        );
        Ok(())
    }
}

impl Store {
    /// Validates `event` and stores it: a new event is accepted; a stored one is
    /// updated only by a strictly newer `timestamp`, element by element (an element
    /// replaces its stored version only if it is strictly newer itself; an object
    /// that is not newer keeps its attributes too, as MISP does). Equal timestamps
    /// with identical content are "unchanged"; anything else not newer is refused.
    /// On any error nothing is written.
    ///
    /// The installed finisher (see [`Store::set_finisher`]) is applied to the exact
    /// version stored.
    pub fn put_event(&self, event: Event, durability: Durability) -> Result<Outcome, StoreError> {
        self.put_event_with(event, durability, &|e| self.finish(e))
    }

    /// [`Store::put_event`], with `finish` instead of the installed finisher,
    /// applied to the exact event about to be stored (the incoming one for a new
    /// event, the merged one for an update), under the writer lock: the node seals
    /// it there, so the seal covers what is stored. An error from `finish` refuses
    /// the write.
    pub fn put_event_with(
        &self,
        event: Event,
        durability: Durability,
        finish: &dyn Fn(&mut Event) -> Result<(), StoreError>,
    ) -> Result<Outcome, StoreError> {
        self.put_event_inner(event, durability, finish, None)
    }

    /// [`Store::put_event_with`] for an event received from a peer: `local` (its
    /// effective distribution and where it came from) is written in the same
    /// atomic batch as the version it describes, so the changes feed never offers
    /// a received event under the signed (wider) distribution, not even after a
    /// crash between two writes. An "unchanged" version keeps the stored state.
    pub fn put_event_received(
        &self,
        event: Event,
        durability: Durability,
        finish: &dyn Fn(&mut Event) -> Result<(), StoreError>,
        local: &super::record::LocalRecord,
    ) -> Result<Outcome, StoreError> {
        self.put_event_inner(event, durability, finish, Some(local))
    }

    fn put_event_inner(
        &self,
        mut event: Event,
        durability: Durability,
        finish: &dyn Fn(&mut Event) -> Result<(), StoreError>,
        local: Option<&super::record::LocalRecord>,
    ) -> Result<Outcome, StoreError> {
        validate_event(&mut event, time::now_secs())?;
        // A valid record on a nearly full disk: refused as a storage failure (a
        // peer's page stops and is pulled again later), before sled is asked.
        self.check_space()?;
        // Before the finisher: the seal names each group by its uuid, so a group
        // given only by its local id must be resolved first.
        self.attach_sharing_groups(&mut event)?;
        // Every tag name the event carries, for the catalogue (entered in the
        // same batch as the event).
        let tag_names = distinct_tags(&event);
        let mut tx = Txn::begin(self)?;
        let outcome = {
            let existing = match self.t.events.get(event.uuid.as_bytes())? {
                Some(v) => Some(
                    postcard::from_bytes::<StoredEvent>(&v)
                        .map_err(|e| corrupt("events", e.to_string()))?,
                ),
                None => None,
            };
            let (mut w, outcome) = match existing {
                None => {
                    finish(&mut event)?;
                    let digest = content_digest(&event)?;
                    self.plan_new(&event, digest)?
                }
                Some(old) => {
                    let old_head: Event = serde_json::from_slice(&old.header)
                        .map_err(|e| corrupt("events", e.to_string()))?;
                    let same_version = event.timestamp == old_head.timestamp;
                    if same_version && content_digest(&event)? == old.digest {
                        // The same copy along another path may still bring a
                        // wider level than the first path gave.
                        let known = event.element_levels().map(|(u, _)| u).collect();
                        self.widen_held(tx, &event, local, &known, durability)?;
                        return Ok(Outcome::Unchanged {
                            uuid: event.uuid,
                            id: old.id,
                        });
                    }
                    if same_version && old.deleted {
                        // Deleted here (its tombstone overtook this copy on
                        // another path): a copy of the same version must not
                        // bring it back.
                        return Ok(Outcome::Unchanged {
                            uuid: event.uuid,
                            id: old.id,
                        });
                    }
                    if same_version && same_seal(&event, &old_head) {
                        // The same signed version, filtered differently on
                        // another path: add what was withheld on the first.
                        let stored = self.assemble_any(&event.uuid, &old)?;
                        let mut filled = super::merge::fill_in(&stored, &event);
                        let known = stored.element_levels().map(|(u, _)| u).collect();
                        if content_digest(&filled)? == old.digest {
                            // Nothing new, but perhaps at wider levels.
                            self.widen_held(tx, &event, local, &known, durability)?;
                            return Ok(Outcome::Unchanged {
                                uuid: event.uuid,
                                id: old.id,
                            });
                        }
                        finish(&mut filled)?;
                        let digest = content_digest(&filled)?;
                        let local = match local {
                            Some(l) => Some(
                                self.widen_local(&event, l, &known)?
                                    .map_or_else(|| l.clone(), |(w, _)| w),
                            ),
                            None => None,
                        };
                        let (mut w, outcome) = self.plan_update(&filled, digest, old, &old_head)?;
                        if let Some(local) = local {
                            let bytes = serde_json::to_vec(&local)
                                .map_err(|e| corrupt("local", e.to_string()))?;
                            w.put(T::Local, event.uuid.as_bytes(), bytes);
                        }
                        tx.adopt(w);
                        tx.catalogue_tags(
                            self,
                            tag_names.iter().map(|(n, c)| (n.as_str(), c.as_str())),
                        )?;
                        tx.commit(durability)?;
                        return Ok(outcome);
                    }
                    if event.timestamp <= old_head.timestamp {
                        return Err(StoreError::NotNewer {
                            uuid: event.uuid,
                            stored: old_head.timestamp,
                            incoming: event.timestamp,
                        });
                    }
                    let stored = self.assemble_any(&event.uuid, &old)?;
                    let mut merged = super::merge::merge(&stored, &event);
                    finish(&mut merged)?;
                    let digest = content_digest(&merged)?;
                    self.plan_update(&merged, digest, old, &old_head)?
                }
            };
            if let Some(local) = local {
                let local = self.union_local(&event.uuid, local)?;
                let bytes =
                    serde_json::to_vec(&local).map_err(|e| corrupt("local", e.to_string()))?;
                w.put(T::Local, event.uuid.as_bytes(), bytes);
            }
            tx.adopt(w);
            outcome
        };
        tx.catalogue_tags(
            self,
            tag_names.iter().map(|(n, c)| (n.as_str(), c.as_str())),
        )?;
        tx.commit(durability)?;
        Ok(outcome)
    }

    /// Fills in the `SharingGroup` of every level-4 element that names its group
    /// only by local id (`sharing_group_id`, as the API and PyMISP send it).
    /// Unknown ids are left for the write to refuse with the element's name.
    fn attach_sharing_groups(&self, event: &mut Event) -> Result<(), StoreError> {
        let resolve = |dist: u8, id: u64, sg: &mut Option<SharingGroup>| {
            if dist != 4 || id == 0 || sg.as_ref().is_some_and(|s| !s.uuid.is_nil()) {
                return Ok::<(), StoreError>(());
            }
            let Some(v) = self.t.ids.get(keys::id_key(idkind::SHARING_GROUP, id))? else {
                return Ok(());
            };
            if let Some(uuid) = keys::uuid_at(&v, 0) {
                *sg = self.sharing_group(&uuid)?;
            }
            Ok(())
        };
        resolve(
            event.distribution,
            event.sharing_group_id,
            &mut event.sharing_group,
        )?;
        for a in &mut event.attributes {
            resolve(a.distribution, a.sharing_group_id, &mut a.sharing_group)?;
        }
        for o in &mut event.objects {
            resolve(o.distribution, o.sharing_group_id, &mut o.sharing_group)?;
            for a in &mut o.attributes {
                resolve(a.distribution, a.sharing_group_id, &mut a.sharing_group)?;
            }
        }
        for r in &mut event.reports {
            resolve(r.distribution, r.sharing_group_id, &mut r.sharing_group)?;
        }
        Ok(())
    }

    /// The local record to store when `event`, held already, arrives again (a
    /// newer version, or the same one by another path): the event level and the
    /// element levels of the new arrival, and those of held elements it does
    /// not mention (merged versions keep them; they must keep their downgraded
    /// levels too, or they would travel a hop further than allowed); and the
    /// first sender, which echo suppression keeps naming.
    fn union_local(
        &self,
        event: &Uuid,
        new: &super::record::LocalRecord,
    ) -> Result<super::record::LocalRecord, StoreError> {
        let Some(v) = self.t.local.get(event.as_bytes())? else {
            return Ok(new.clone());
        };
        let mut held: super::record::LocalRecord =
            serde_json::from_slice(&v).map_err(|e| corrupt("local", e.to_string()))?;
        held.event_distribution = new.event_distribution;
        for (k, d) in &new.element_distribution {
            held.element_distribution.insert(*k, *d);
        }
        if held.received_from.is_none() {
            held.received_from.clone_from(&new.received_from);
        }
        Ok(held)
    }

    /// Stores, in `tx`, the wider levels a copy of a version already held
    /// brings ([`Store::widen_local`]), when it brings any; the event itself
    /// is unchanged.
    fn widen_held(
        &self,
        mut tx: Txn<'_>,
        event: &Event,
        local: Option<&super::record::LocalRecord>,
        known: &std::collections::HashSet<Uuid>,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let Some(local) = local else { return Ok(()) };
        if let Some((l, true)) = self.widen_local(event, local, known)? {
            let bytes = serde_json::to_vec(&l).map_err(|e| corrupt("local", e.to_string()))?;
            tx.w.put(T::Local, event.uuid.as_bytes(), bytes);
            tx.commit(durability)?;
        }
        Ok(())
    }

    /// The local record once another copy of the **same** signed version
    /// (`incoming`, with the signed levels; `new`, the state it brings) has
    /// arrived along another path: for each of its elements that was held
    /// already (`known`), the wider of the two effective levels (each path's
    /// peer was entitled to give what it gave, so which copy came first must
    /// not decide); for an element it brings new, its own. Levels here are all
    /// narrowings of one signed level, so wider is larger. With whether that
    /// changes the held record; `None` when there is no held record.
    fn widen_local(
        &self,
        incoming: &Event,
        new: &super::record::LocalRecord,
        known: &std::collections::HashSet<Uuid>,
    ) -> Result<Option<(super::record::LocalRecord, bool)>, StoreError> {
        let Some(v) = self.t.local.get(incoming.uuid.as_bytes())? else {
            return Ok(None);
        };
        let held: super::record::LocalRecord =
            serde_json::from_slice(&v).map_err(|e| corrupt("local", e.to_string()))?;
        let mut out = held.clone();
        let signed = incoming.distribution;
        let ev = new
            .event_distribution
            .unwrap_or(signed)
            .max(held.event_distribution.unwrap_or(signed));
        out.event_distribution = Some(ev).filter(|d| *d != signed);
        for (uuid, signed) in incoming.element_levels() {
            let brought = new
                .element_distribution
                .get(&uuid)
                .copied()
                .unwrap_or(signed);
            let level = if known.contains(&uuid) {
                let had = held
                    .element_distribution
                    .get(&uuid)
                    .copied()
                    .unwrap_or(signed);
                had.max(brought)
            } else {
                brought
            };
            if level == signed {
                out.element_distribution.remove(&uuid);
            } else {
                out.element_distribution.insert(uuid, level);
            }
        }
        if out.received_from.is_none() {
            out.received_from.clone_from(&new.received_from);
        }
        let changed = out != held;
        Ok(Some((out, changed)))
    }

    fn header_of(event: &Event) -> Event {
        let mut head = event.clone();
        head.attributes.clear();
        head.objects.clear();
        head.reports.clear();
        head.sharing_group = None;
        head.id = None;
        // Local ids of another instance mean nothing here; ours are filled on read.
        head.org_id = None;
        head.orgc_id = None;
        head
    }

    fn event_index(w: &mut WriteSet, event: &Event, add: bool) {
        for (t, k) in index::event_entries(event) {
            if add {
                w.put(t, k, []);
            } else {
                w.del(t, k);
            }
        }
    }

    fn plan_new(&self, event: &Event, digest: [u8; 32]) -> Result<(WriteSet, Outcome), StoreError> {
        let mut c = Counters::load(self)?;
        c.event += 1;
        c.live += 1;
        let id = c.event;
        let mut m = Merge {
            store: self,
            w: WriteSet::new(),
            c,
            event: event.uuid,
            event_no_corr: event.disable_correlation,
            sgs: HashMap::new(),
            event_id: id,
            next_attr: 0,
            types: HashSet::new(),
            captured: HashSet::new(),
        };
        m.capture_orgs(event)?;
        let el = format!("Event {}", event.uuid);
        let sg = m.sharing_group(
            &el,
            event.distribution,
            event.sharing_group.as_ref(),
            event.sharing_group_id,
        )?;
        m.w.put(
            T::Ids,
            keys::id_key(idkind::EVENT, id),
            event.uuid.as_bytes(),
        );
        for a in &event.attributes {
            m.put_attr(a, None, None)?;
        }
        for o in &event.objects {
            m.put_object(o)?;
            for a in &o.attributes {
                let mut a = a.clone();
                a.deleted |= o.deleted;
                m.put_attr(&a, Some(o.uuid), None)?;
            }
        }
        for r in &event.reports {
            let label = format!("EventReport {}", r.uuid);
            m.claim(kind::REPORT, &r.uuid, &label)?;
            m.sharing_group(
                &label,
                r.distribution,
                r.sharing_group.as_ref(),
                r.sharing_group_id,
            )?;
            // A local id from the event's element numbers, as attributes get
            // theirs, so `event_reports/view/<id>` leads to the event.
            let mut r = r.clone();
            m.next_attr += 1;
            r.id = Some(attribute_id(m.event_id, m.next_attr));
            m.w.put(
                T::Reports,
                keys::pair(&event.uuid, &r.uuid),
                txn::json(&r, "report")?,
            );
        }
        for t in &m.types {
            m.w.put(
                T::IdxType,
                keys::value_key(t, &event.uuid, &Uuid::nil()),
                [],
            );
        }
        let rec = StoredEvent {
            id,
            deleted: false,
            digest,
            sharing_group: sg,
            next_attr: m.next_attr,
            header: txn::json(&Self::header_of(event), "record")?,
        };
        let rec = txn::postcard(&rec, "event record")?;
        m.w.put(T::Events, event.uuid.as_bytes(), rec);
        Self::event_index(&mut m.w, event, true);
        m.c.log(
            &mut m.w,
            Change {
                kind: ChangeKind::EventStored,
                event: event.uuid,
                timestamp: event.timestamp,
            },
        )?;
        m.c.save(&mut m.w);
        Ok((
            m.w,
            Outcome::Accepted {
                uuid: event.uuid,
                id,
            },
        ))
    }

    fn plan_update(
        &self,
        event: &Event,
        digest: [u8; 32],
        old: StoredEvent,
        old_head: &Event,
    ) -> Result<(WriteSet, Outcome), StoreError> {
        let mut m = Merge {
            store: self,
            w: WriteSet::new(),
            c: Counters::load(self)?,
            event: event.uuid,
            event_no_corr: event.disable_correlation,
            sgs: HashMap::new(),
            event_id: old.id,
            next_attr: old.next_attr,
            types: HashSet::new(),
            captured: HashSet::new(),
        };
        m.capture_orgs(event)?;
        let el = format!("Event {}", event.uuid);
        let sg = m.sharing_group(
            &el,
            event.distribution,
            event.sharing_group.as_ref(),
            event.sharing_group_id,
        )?;
        let mut stored_attrs: HashMap<Uuid, StoredAttr> = HashMap::new();
        for item in self.t.attrs.scan_prefix(event.uuid.as_bytes()) {
            let (k, v) = item?;
            let u = keys::uuid_at(&k, 16).ok_or_else(|| corrupt("attrs", "short key"))?;
            let a: StoredAttr =
                postcard::from_bytes(&v).map_err(|e| corrupt("attrs", e.to_string()))?;
            stored_attrs.insert(u, a);
        }
        let mut stored_objects: HashMap<Uuid, Object> = HashMap::new();
        for item in self.t.objects.scan_prefix(event.uuid.as_bytes()) {
            let (_, v) = item?;
            let o: Object =
                serde_json::from_slice(&v).map_err(|e| corrupt("objects", e.to_string()))?;
            stored_objects.insert(o.uuid, o);
        }
        let mut replaced: HashSet<Uuid> = HashSet::new();
        // Top-level (value, type, category) of live attributes after the merge.
        let mut triples: HashMap<(String, String, String), Uuid> = HashMap::new();

        for a in &event.attributes {
            match stored_attrs.get(&a.uuid) {
                Some(old_a) if old_a.object.is_some() => {
                    return Err(StoreError::Refused {
                        field: "Attribute",
                        reason: format!(
                            "Attribute {}: uuid: already used by an object attribute of this event",
                            a.uuid
                        ),
                    });
                }
                Some(old_a) if a.timestamp <= old_a.timestamp => {}
                old_a => {
                    let old_a = old_a.cloned();
                    m.put_attr(a, None, old_a.as_ref())?;
                    replaced.insert(a.uuid);
                    if !a.deleted {
                        triples.insert(
                            (a.value.clone(), a.attr_type.clone(), a.category.clone()),
                            a.uuid,
                        );
                    }
                }
            }
        }
        for (u, a) in &stored_attrs {
            if a.object.is_none() && !a.deleted && !replaced.contains(u) {
                let key = (a.value.clone(), a.attr_type.clone(), a.category.clone());
                if let Some(other) = triples.insert(key, *u) {
                    return Err(StoreError::Refused { field: "Attribute", reason: format!(
                        "Attribute {other} ({}): value: duplicate: the event already has a {} attribute \"{}\" in category {} ({u})",
                        a.attr_type, a.attr_type, a.value, a.category
                    ) });
                }
            }
        }
        for o in &event.objects {
            if let Some(old_o) = stored_objects.get(&o.uuid) {
                if o.timestamp <= old_o.timestamp {
                    continue; // not newer: the object and its attributes stay as stored
                }
            }
            m.put_object(o)?;
            for a in &o.attributes {
                let old_a = stored_attrs.get(&a.uuid);
                if let Some(old_a) = old_a {
                    if old_a.object != Some(o.uuid) {
                        return Err(StoreError::Refused {
                            field: "Attribute",
                            reason: format!(
                                "Attribute {}: uuid: already used elsewhere in this event",
                                a.uuid
                            ),
                        });
                    }
                    if a.timestamp <= old_a.timestamp && !o.deleted {
                        continue;
                    }
                }
                let mut a = a.clone();
                a.deleted |= o.deleted;
                m.put_attr(&a, Some(o.uuid), old_a)?;
                replaced.insert(a.uuid);
            }
        }
        if event.disable_correlation != old_head.disable_correlation {
            // The event-wide flag lives in every attribute's index flags.
            for (u, a) in &stored_attrs {
                if !replaced.contains(u) {
                    for (t, k, _) in
                        attr_index_entries(&event.uuid, u, a, old_head.disable_correlation)
                    {
                        m.w.del(t, k);
                    }
                    for (t, k, v) in
                        attr_index_entries(&event.uuid, u, a, event.disable_correlation)
                    {
                        m.w.put(t, k, v);
                    }
                }
            }
        }
        for r in &event.reports {
            let key = keys::pair(&event.uuid, &r.uuid);
            let mut r = r.clone();
            if let Some(v) = self.t.reports.get(key)? {
                let old_r: crate::model::EventReport =
                    serde_json::from_slice(&v).map_err(|e| corrupt("reports", e.to_string()))?;
                if r.timestamp <= old_r.timestamp {
                    continue;
                }
                r.id = old_r.id;
            }
            if r.id.is_none() {
                m.next_attr += 1;
                r.id = Some(attribute_id(m.event_id, m.next_attr));
            }
            let label = format!("EventReport {}", r.uuid);
            m.claim(kind::REPORT, &r.uuid, &label)?;
            m.sharing_group(
                &label,
                r.distribution,
                r.sharing_group.as_ref(),
                r.sharing_group_id,
            )?;
            m.w.put(T::Reports, key, txn::json(&r, "report")?);
        }

        // The type index lists the event under every type it holds after the merge.
        let old_types: HashSet<&str> = stored_attrs
            .values()
            .map(|a| a.attr_type.as_str())
            .collect();
        for (u, a) in &stored_attrs {
            if !replaced.contains(u) {
                m.types.insert(a.attr_type.clone());
            }
        }
        for t in old_types {
            m.w.del(T::IdxType, keys::value_key(t, &event.uuid, &Uuid::nil()));
        }
        for t in &m.types {
            m.w.put(
                T::IdxType,
                keys::value_key(t, &event.uuid, &Uuid::nil()),
                [],
            );
        }
        // The stored header is replaced; the attribute count reflects the merge.
        let mut head = Self::header_of(event);
        let live = stored_attrs
            .iter()
            .filter(|(u, a)| !replaced.contains(*u) && !a.deleted)
            .count()
            + event
                .all_attributes()
                .filter(|a| replaced.contains(&a.uuid) && !a.deleted)
                .count();
        head.attribute_count = Some(live as u64);
        Self::event_index(&mut m.w, old_head, false);
        Self::event_index(&mut m.w, event, true);
        if old.deleted {
            m.c.live += 1; // a newer version brings a deleted event back
        }
        let rec = StoredEvent {
            id: old.id,
            deleted: false,
            digest,
            sharing_group: sg,
            next_attr: m.next_attr,
            header: txn::json(&head, "event header")?,
        };
        let rec = txn::postcard(&rec, "event record")?;
        m.w.put(T::Events, event.uuid.as_bytes(), rec);
        m.c.log(
            &mut m.w,
            Change {
                kind: ChangeKind::EventStored,
                event: event.uuid,
                timestamp: event.timestamp,
            },
        )?;
        m.c.save(&mut m.w);
        Ok((
            m.w,
            Outcome::Updated {
                uuid: event.uuid,
                id: old.id,
            },
        ))
    }

    /// Soft-deletes an event: it stays on disk (with a newer timestamp, so an older
    /// copy cannot resurrect it) but disappears from reads and lookups.
    pub fn delete_event(&self, uuid: &Uuid, durability: Durability) -> Result<bool, StoreError> {
        self.delete_event_with(uuid, durability, &|_| Ok(None))
    }

    /// [`Store::delete_event`], storing in the same atomic batch the tombstone
    /// `tombstone` makes for the deletion's timestamp (the node seals it), so a
    /// deletion never exists without its signed record.
    pub fn delete_event_with(
        &self,
        uuid: &Uuid,
        durability: Durability,
        tombstone: &dyn Fn(u64) -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<bool, StoreError> {
        {
            let mut tx = Txn::begin(self)?;
            let Some((mut rec, mut head)) = self.live_record(uuid)? else {
                return Ok(false);
            };
            for item in self.t.attrs.scan_prefix(uuid.as_bytes()) {
                let (k, v) = item?;
                let au = keys::uuid_at(&k, 16).ok_or_else(|| corrupt("attrs", "short key"))?;
                let a: StoredAttr =
                    postcard::from_bytes(&v).map_err(|e| corrupt("attrs", e.to_string()))?;
                for (t, k, _) in attr_index_entries(uuid, &au, &a, head.disable_correlation) {
                    tx.w.del(t, k);
                }
                tx.w.del(
                    T::IdxType,
                    keys::value_key(&a.attr_type, uuid, &Uuid::nil()),
                );
            }
            Self::event_index(&mut tx.w, &head, false);
            let live = &mut tx.counters().live;
            *live = live.saturating_sub(1);
            head.timestamp = time::now_secs().max(head.timestamp + 1);
            rec.deleted = true;
            tx.put_event_header(&mut rec, &head, ChangeKind::EventDeleted)?;
            if let Some(sealed) = tombstone(head.timestamp)? {
                tx.tombstone(uuid, head.timestamp, sealed)?;
            }
            tx.commit(durability)?;
        }
        Ok(true)
    }
}

impl Store {
    /// The stored record and header of a live (not soft-deleted) event.
    fn live_record(&self, uuid: &Uuid) -> Result<Option<(StoredEvent, Event)>, StoreError> {
        let Some(v) = self.t.events.get(uuid.as_bytes())? else {
            return Ok(None);
        };
        let rec: StoredEvent =
            postcard::from_bytes(&v).map_err(|e| corrupt("events", e.to_string()))?;
        if rec.deleted {
            return Ok(None);
        }
        let head: Event =
            serde_json::from_slice(&rec.header).map_err(|e| corrupt("events", e.to_string()))?;
        Ok(Some((rec, head)))
    }

    /// Publishes or unpublishes an event: local state (MISP's `publish_timestamp`
    /// is "when this instance published it"), so it is written without the
    /// strictly-newer rule, and logged as a change so federation sees it.
    pub fn set_published(
        &self,
        uuid: &Uuid,
        published: bool,
        durability: Durability,
    ) -> Result<bool, StoreError> {
        {
            let mut tx = Txn::begin(self)?;
            let Some((mut rec, mut head)) = self.live_record(uuid)? else {
                return Ok(false);
            };
            Self::event_index(&mut tx.w, &head, false);
            head.published = published;
            if published {
                head.publish_timestamp = time::now_secs();
            }
            Self::event_index(&mut tx.w, &head, true);
            tx.put_event_header(&mut rec, &head, ChangeKind::EventStored)?;
            tx.commit(durability)?;
        }
        Ok(true)
    }
}

/// The timestamp for a local edit of something last changed at `stored`: now,
/// or one second later if it already changed within this second, so that two
/// quick edits still order strictly (timestamps are whole seconds).
pub fn next_timestamp(stored: u64) -> u64 {
    time::now_secs().max(stored.saturating_add(1))
}

/// Each tag name `event` carries (event, attributes, object attributes) once,
/// case-insensitively, with the colour it came with.
fn distinct_tags(event: &Event) -> Vec<(String, String)> {
    let mut seen: HashMap<String, (String, String)> = HashMap::new();
    let all = event
        .tags
        .iter()
        .chain(event.all_attributes().flat_map(|a| a.tags.iter()));
    for t in all {
        seen.entry(crate::store::keys::fold(&t.name))
            .or_insert_with(|| (t.name.clone(), t.colour.clone()));
    }
    seen.into_values().collect()
}

/// What "the same content" means for an event: its portable form (no local ids)
/// without the seal and nested sightings, so a re-import of a MISP file the node
/// has since sealed, or of the node's own sealed export, is recognised as
/// unchanged. Tag colours are left out too: a view fills an empty one in from
/// the tag catalogue, and a client sending back what it read sends that.
pub(crate) fn content_digest(event: &Event) -> Result<[u8; 32], StoreError> {
    let mut p = event.portable();
    p.seal = None;
    p.tags.iter_mut().for_each(|t| t.colour.clear());
    for a in p
        .attributes
        .iter_mut()
        .chain(p.objects.iter_mut().flat_map(|o| o.attributes.iter_mut()))
    {
        a.sightings.clear();
        a.tags.iter_mut().for_each(|t| t.colour.clear());
    }
    Ok(Sha256::digest(txn::json(&p, "event digest")?).into())
}

/// The local id of the `n`-th attribute of event `event_id`.
pub(crate) fn attribute_id(event_id: u64, n: u32) -> u64 {
    event_id << 24 | u64::from(n & 0x00ff_ffff)
}

/// Whether MISP would correlate values of this type at all.
pub(crate) fn correlating_type(t: &str) -> bool {
    !types::is_non_correlating(t)
}

/// Whether two versions carry the same seal (the same signature over the same
/// signed version): then they differ only in what was withheld on the way.
fn same_seal(a: &Event, b: &Event) -> bool {
    match (&a.seal, &b.seal) {
        (Some(x), Some(y)) => x.signature == y.signature && x.origin_org == y.origin_org,
        _ => false,
    }
}
