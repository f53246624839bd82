//! Pure edits of an event, shared by every path that changes one (the API,
//! and anything else that edits an event in place): where an attribute sits,
//! timestamps that order strictly after what is stored, and soft delete and
//! restore of attributes and objects.
//!
//! Why timestamps matter here: the store keeps an element only if it is newer
//! than the stored one (MISP's merge rule), so every edit must give what it
//! changes — and the object around a changed attribute, which the merge would
//! otherwise skip whole — a timestamp newer than before.

use super::{Attribute, Event};
use uuid::Uuid;

/// Where an attribute sits in its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Top(usize),
    /// Object index, attribute index inside the object.
    InObject(usize, usize),
}

/// The attribute at `s`.
pub fn attr_at(ev: &Event, s: Slot) -> &Attribute {
    match s {
        Slot::Top(i) => &ev.attributes[i],
        Slot::InObject(o, i) => &ev.objects[o].attributes[i],
    }
}

/// The attribute at `s`, to change.
pub fn attr_at_mut(ev: &mut Event, s: Slot) -> &mut Attribute {
    match s {
        Slot::Top(i) => &mut ev.attributes[i],
        Slot::InObject(o, i) => &mut ev.objects[o].attributes[i],
    }
}

/// The first attribute (top-level or in an object) matching `pred`.
pub fn find_attr(ev: &Event, pred: impl Fn(&Attribute) -> bool) -> Option<Slot> {
    if let Some(i) = ev.attributes.iter().position(&pred) {
        return Some(Slot::Top(i));
    }
    ev.objects.iter().enumerate().find_map(|(o, obj)| {
        obj.attributes
            .iter()
            .position(&pred)
            .map(|i| Slot::InObject(o, i))
    })
}

/// The newest timestamp anywhere in the event.
pub fn max_timestamp(ev: &Event) -> u64 {
    let objects = ev.objects.iter().flat_map(|o| {
        std::iter::once(o.timestamp)
            .chain(o.references.iter().map(|r| r.timestamp))
            .chain(o.attributes.iter().map(|a| a.timestamp))
    });
    std::iter::once(ev.timestamp)
        .chain(ev.attributes.iter().map(|a| a.timestamp))
        .chain(ev.reports.iter().map(|r| r.timestamp))
        .chain(objects)
        .max()
        .unwrap_or(0)
}

/// A timestamp for an element last changed at `old` that is at least `ts`.
pub fn newer(ts: u64, old: u64) -> u64 {
    ts.max(old.saturating_add(1))
}

/// Gives attribute `s` timestamp `ts` (at least) and, if it is in an object, the
/// object too: the merge skips an object that is not newer, attributes included.
pub fn touch(ev: &mut Event, s: Slot, ts: u64) {
    let a = attr_at_mut(ev, s);
    a.timestamp = newer(ts, a.timestamp);
    let t = a.timestamp;
    if let Slot::InObject(o, _) = s {
        ev.objects[o].timestamp = newer(t, ev.objects[o].timestamp);
    }
}

/// Soft-deletes (`deleted = true`) or restores the attribute at `s`, touched
/// with `ts`. `false` if it already was so (nothing changed).
pub fn set_attribute_deleted(ev: &mut Event, s: Slot, deleted: bool, ts: u64) -> bool {
    if attr_at(ev, s).deleted == deleted {
        return false;
    }
    attr_at_mut(ev, s).deleted = deleted;
    touch(ev, s, ts);
    true
}

/// Soft-deletes object `i` with every attribute in it, and every live
/// reference to it from the event's other objects (MISP does the same), all
/// touched with `ts`.
pub fn soft_delete_object(ev: &mut Event, i: usize, ts: u64) {
    let o = &mut ev.objects[i];
    let uuid: Uuid = o.uuid;
    o.deleted = true;
    o.timestamp = newer(ts, o.timestamp);
    let t = o.timestamp;
    for a in &mut o.attributes {
        a.deleted = true;
        a.timestamp = newer(t, a.timestamp);
    }
    for other in ev.objects.iter_mut().filter(|x| x.uuid != uuid) {
        let mut touched = false;
        for r in other
            .references
            .iter_mut()
            .filter(|r| r.referenced_uuid == uuid && !r.deleted)
        {
            r.deleted = true;
            r.timestamp = newer(ts, r.timestamp);
            touched = true;
        }
        if touched {
            other.timestamp = newer(ts, other.timestamp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        let doc = serde_json::json!({"Event": {
            "info": "edits", "timestamp": "10",
            "Attribute": [{"uuid": Uuid::from_u128(1), "type": "text", "value": "a", "timestamp": "10"}],
            "Object": [
                {"uuid": Uuid::from_u128(2), "name": "x", "timestamp": "10",
                 "Attribute": [{"uuid": Uuid::from_u128(3), "type": "text", "value": "b", "timestamp": "10"}]},
                {"uuid": Uuid::from_u128(4), "name": "y", "timestamp": "10",
                 "ObjectReference": [{"uuid": Uuid::from_u128(5), "referenced_uuid": Uuid::from_u128(2),
                                      "relationship_type": "related-to", "timestamp": "10"}]}
            ]
        }});
        crate::model::parse::parse_event(&serde_json::to_vec(&doc).unwrap(), 1 << 20).unwrap()
    }

    #[test]
    fn an_edit_in_an_object_touches_the_object() {
        let mut ev = event();
        let s = find_attr(&ev, |a| a.uuid == Uuid::from_u128(3)).unwrap();
        assert_eq!(s, Slot::InObject(0, 0));
        assert!(set_attribute_deleted(&mut ev, s, true, 5));
        // Newer than before even with an older clock.
        assert_eq!(ev.objects[0].attributes[0].timestamp, 11);
        assert!(ev.objects[0].timestamp >= 11);
        assert!(!set_attribute_deleted(&mut ev, s, true, 20));
        assert_eq!(max_timestamp(&ev), 11);
    }

    #[test]
    fn deleting_an_object_takes_its_attributes_and_references() {
        let mut ev = event();
        soft_delete_object(&mut ev, 0, 50);
        assert!(ev.objects[0].deleted);
        assert!(ev.objects[0].attributes.iter().all(|a| a.deleted));
        assert!(ev.objects[1].references[0].deleted);
        assert_eq!(ev.objects[1].timestamp, 50);
        assert!(!ev.attributes[0].deleted);
    }
}
