//! Hard deletion of single attributes and objects: the one kind of write that does
//! not go through [`Store::put_event`], because the merge rule can only add or
//! replace elements, never make one disappear.
//!
//! A hard delete removes the records, every index entry that can name them, their
//! uuid claims (`loc`), their sightings and (for objects) their references, then
//! stores the event header with a newer timestamp and an entry in the change log,
//! all in one atomic batch. It is local: like MISP, a hard delete does not travel
//! to peers (a peer still holding the element keeps it; soft delete is the way to
//! revoke something everywhere).

use super::index::attr_index_entries;
use super::keys;
use super::record::{ChangeKind, StoredAttr, StoredEvent};
use super::txn::Txn;
use super::write::{next_timestamp, Durability};
use super::{corrupt, Store, StoreError, T};
use crate::model::{Event, Object, Sighting};
use std::collections::HashSet;
use uuid::Uuid;

impl Store {
    /// Deletes for good the attributes `attrs` and the objects `objects` (with all
    /// their attributes and references) of event `event`, unpublishes the event and
    /// gives it a newer timestamp. Returns `false`, writing nothing, if the event is
    /// unknown or deleted, or if one of the uuids is not an attribute or object of it.
    pub fn hard_delete_children(
        &self,
        event: &Uuid,
        attrs: &[Uuid],
        objects: &[Uuid],
        reports: &[Uuid],
        durability: Durability,
    ) -> Result<bool, StoreError> {
        {
            let mut tx = Txn::begin(self)?;
            let Some(v) = self.t.events.get(event.as_bytes())? else {
                return Ok(false);
            };
            let mut rec: StoredEvent =
                postcard::from_bytes(&v).map_err(|e| corrupt("events", e.to_string()))?;
            if rec.deleted {
                return Ok(false);
            }
            // The whole event as it is now, to derive the digest of what remains.
            let Some(mut full) = self.get_event(event)? else {
                return Ok(false);
            };
            let mut head: Event = serde_json::from_slice(&rec.header)
                .map_err(|e| corrupt("events", e.to_string()))?;

            let mut stored: Vec<(Uuid, StoredAttr)> = Vec::new();
            for item in self.t.attrs.scan_prefix(event.as_bytes()) {
                let (k, v) = item?;
                let u = keys::uuid_at(&k, 16).ok_or_else(|| corrupt("attrs", "short key"))?;
                let a: StoredAttr =
                    postcard::from_bytes(&v).map_err(|e| corrupt("attrs", e.to_string()))?;
                stored.push((u, a));
            }
            let object_set: HashSet<Uuid> = objects.iter().copied().collect();
            let mut gone: HashSet<Uuid> = attrs.iter().copied().collect();
            if !gone.iter().all(|u| stored.iter().any(|(s, _)| s == u)) {
                return Ok(false);
            }
            for (u, a) in &stored {
                if a.object.is_some_and(|o| object_set.contains(&o)) {
                    gone.insert(*u);
                }
            }

            let b = &mut tx.w;
            for o in objects {
                let key = keys::pair(event, o);
                let Some(v) = self.t.objects.get(key)? else {
                    return Ok(false);
                };
                let obj: Object =
                    serde_json::from_slice(&v).map_err(|e| corrupt("objects", e.to_string()))?;
                for r in &obj.references {
                    b.del(T::Loc, r.uuid.as_bytes());
                }
                b.del(T::Objects, key);
                b.del(T::Loc, o.as_bytes());
            }
            for r in reports {
                let key = keys::pair(event, r);
                if self.t.reports.get(key)?.is_none() {
                    return Ok(false);
                }
                b.del(T::Reports, key);
                b.del(T::Loc, r.as_bytes());
            }
            let mut gone_types: HashSet<&str> = HashSet::new();
            for (u, a) in &stored {
                if gone.contains(u) {
                    // Exactly what the writer indexed for it.
                    for (t, k, _) in attr_index_entries(event, u, a, head.disable_correlation) {
                        b.del(t, k);
                    }
                    b.del(T::Attrs, keys::pair(event, u));
                    b.del(T::Loc, u.as_bytes());
                    gone_types.insert(a.attr_type.as_str());
                }
            }
            for item in self.t.sightings.scan_prefix(event.as_bytes()) {
                let (k, v) = item?;
                let s: Sighting =
                    serde_json::from_slice(&v).map_err(|e| corrupt("sightings", e.to_string()))?;
                if gone.contains(&s.attribute_uuid) {
                    b.del(T::Sightings, &k);
                    b.del(T::Loc, s.uuid.as_bytes());
                }
            }
            // The type index lists the event under every type it still holds.
            for t in gone_types {
                let still = stored
                    .iter()
                    .any(|(u, a)| !gone.contains(u) && a.attr_type == t);
                if !still {
                    b.del(T::IdxType, keys::value_key(t, event, &Uuid::nil()));
                }
            }

            // The header: newer, unpublished, counted again; its old position in the
            // timestamp indexes goes.
            b.del(T::IdxTs, keys::ts_key(head.timestamp, event));
            if head.published {
                b.del(T::IdxPts, keys::ts_key(head.publish_timestamp, event));
            }
            head.timestamp = next_timestamp(head.timestamp);
            head.published = false;
            head.seal = None;
            let live = stored
                .iter()
                .filter(|(u, a)| !gone.contains(u) && !a.deleted)
                .count();
            head.attribute_count = Some(live as u64);
            b.put(T::IdxTs, keys::ts_key(head.timestamp, event), []);

            full.attributes.retain(|a| !gone.contains(&a.uuid));
            full.objects.retain(|o| !object_set.contains(&o.uuid));
            full.reports.retain(|r| !reports.contains(&r.uuid));
            for o in &mut full.objects {
                o.attributes.retain(|a| !gone.contains(&a.uuid));
            }
            full.timestamp = head.timestamp;
            full.published = false;
            full.seal = None;
            full.attribute_count = head.attribute_count;
            // The node vouches for what remains (it seals it here).
            self.finish(&mut full)?;
            head.seal = full.seal.clone();
            rec.digest = super::write::content_digest(&full)?;
            tx.put_event_header(&mut rec, &head, ChangeKind::EventStored)?;
            tx.commit(durability)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::model::parse::parse_event;
    use crate::store::{Durability, Store, StoreOptions};
    use uuid::Uuid;

    const EV: &str = "5c1b1cc1-0000-4000-8000-0000000000e1";
    const GONE: &str = "5c1b1cc1-0000-4000-8000-0000000000a1";
    const KEPT: &str = "5c1b1cc1-0000-4000-8000-0000000000a2";
    const OBJ: &str = "5c1b1cc1-0000-4000-8000-0000000000b1";
    const OBJ_ATTR: &str = "5c1b1cc1-0000-4000-8000-0000000000b2";
    const REF: &str = "5c1b1cc1-0000-4000-8000-0000000000c1";
    const SIGHTING: &str = "5c1b1cc1-0000-4000-8000-0000000000d1";

    fn doc() -> String {
        format!(
            r#"{{"Event":{{"uuid":"{EV}","info":"hard","published":true,"publish_timestamp":"1700000000","timestamp":"1700000000",
            "Attribute":[
              {{"uuid":"{GONE}","type":"domain|ip","value":"gone.example|198.51.100.1","Tag":[{{"name":"tlp:green"}}],
                "Sighting":[{{"uuid":"{SIGHTING}","type":"0","date_sighting":"1700000000"}}]}},
              {{"uuid":"{KEPT}","type":"text","value":"kept"}}],
            "Object":[{{"uuid":"{OBJ}","name":"domain-ip",
              "Attribute":[{{"uuid":"{OBJ_ATTR}","type":"ip-dst","object_relation":"ip","value":"192.0.2.77"}}],
              "ObjectReference":[{{"uuid":"{REF}","referenced_uuid":"{KEPT}","relationship_type":"related-to"}}]}}]}}}}"#
        )
    }

    /// Whether any key or value of the store still holds these uuid bytes.
    fn mentions(store: &Store, u: &str) -> bool {
        let u: Uuid = u.parse().unwrap();
        let needle = u.as_bytes();
        store.t.data.iter().any(|item| {
            let (k, v) = item.unwrap();
            k.windows(16).any(|w| w == needle) || v.windows(16).any(|w| w == needle)
        })
    }

    #[test]
    fn hard_delete_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let ev = parse_event(doc().as_bytes(), 1 << 20).unwrap();
        store.put_event(ev, Durability::Deferred).unwrap();
        let event: Uuid = EV.parse().unwrap();
        let seq = store.last_sequence().unwrap();
        for u in [GONE, OBJ, OBJ_ATTR, REF, SIGHTING] {
            assert!(mentions(&store, u), "{u} stored");
        }

        // Unknown uuids: nothing happens.
        assert!(!store
            .hard_delete_children(&event, &[Uuid::new_v4()], &[], &[], Durability::Flush)
            .unwrap());
        assert!(!store
            .hard_delete_children(&Uuid::new_v4(), &[], &[], &[], Durability::Flush)
            .unwrap());

        assert!(store
            .hard_delete_children(
                &event,
                &[GONE.parse().unwrap()],
                &[OBJ.parse().unwrap()],
                &[],
                Durability::Flush
            )
            .unwrap());
        for u in [GONE, OBJ, OBJ_ATTR, REF, SIGHTING] {
            assert!(!mentions(&store, u), "{u} left behind");
        }
        assert!(store
            .lookup_value("gone.example", true, 10)
            .unwrap()
            .is_empty());
        assert!(store
            .lookup_value("198.51.100.1", true, 10)
            .unwrap()
            .is_empty());
        assert!(store
            .lookup_ip_or_cidr("198.51.100.0/24", true, 10)
            .unwrap()
            .is_empty());
        assert!(store.lookup_tag("tlp:green", 10).unwrap().is_empty());
        assert!(store.events_with_type("domain|ip").unwrap().is_empty());
        assert!(store.events_with_type("ip-dst").unwrap().is_empty());
        assert_eq!(store.events_with_type("text").unwrap(), vec![event]);

        let after = store.get_event(&event).unwrap().unwrap();
        assert_eq!(after.attributes.len(), 1);
        assert!(after.objects.is_empty());
        assert!(after.timestamp > 1_700_000_000 && !after.published);
        assert_eq!(after.attribute_count, Some(1));
        assert_eq!(store.last_sequence().unwrap(), seq + 1);
        assert_eq!(store.event_uuids_since(after.timestamp).count(), 1);
        assert_eq!(store.event_uuids_since(after.timestamp + 1).count(), 0);
        assert_eq!(store.event_uuids_published_since(0).count(), 0);

        // The digest is that of what remains: the same document again is "unchanged",
        // and the event still takes newer writes.
        assert_eq!(
            store
                .put_event(after.clone(), Durability::Flush)
                .unwrap()
                .label(),
            "unchanged"
        );
        let mut again = after;
        again.timestamp += 1;
        assert_eq!(
            store.put_event(again, Durability::Flush).unwrap().label(),
            "updated"
        );
    }
}
