//! MISP's merge rule as a pure function: what an event becomes when a strictly
//! newer version arrives. Every element (attribute, object, reference, report)
//! replaces its stored version only if its own timestamp is strictly newer; an
//! object that is not newer keeps its attributes too; elements the incoming
//! version does not mention stay; sightings accumulate.
//!
//! `put_event_with` uses it to know the exact event it is about to store, so the
//! node can seal that event (and not merely the incoming document).

use crate::model::{Attribute, Event, Object};
use std::collections::HashMap;
use uuid::Uuid;

fn merge_attrs(stored: &[Attribute], incoming: &[Attribute]) -> Vec<Attribute> {
    let mut by_uuid: HashMap<Uuid, usize> = HashMap::new();
    let mut out: Vec<Attribute> = stored.to_vec();
    for (i, a) in out.iter().enumerate() {
        by_uuid.insert(a.uuid, i);
    }
    for a in incoming {
        match by_uuid.get(&a.uuid) {
            Some(&i) => {
                if a.timestamp > out[i].timestamp {
                    let mut sightings = std::mem::take(&mut out[i].sightings);
                    let mut new = a.clone();
                    for s in new.sightings.drain(..) {
                        if !sightings.iter().any(|x| x.uuid == s.uuid) {
                            sightings.push(s);
                        }
                    }
                    new.sightings = sightings;
                    new.id = out[i].id;
                    out[i] = new;
                } else {
                    for s in &a.sightings {
                        if !out[i].sightings.iter().any(|x| x.uuid == s.uuid) {
                            out[i].sightings.push(s.clone());
                        }
                    }
                }
            }
            None => {
                by_uuid.insert(a.uuid, out.len());
                out.push(a.clone());
            }
        }
    }
    out
}

fn merge_object(stored: &Object, incoming: &Object) -> Object {
    if incoming.timestamp <= stored.timestamp {
        return stored.clone();
    }
    let mut o = incoming.clone();
    o.id = stored.id;
    o.attributes = merge_attrs(&stored.attributes, &incoming.attributes);
    if o.deleted {
        o.attributes.iter_mut().for_each(|a| a.deleted = true);
    }
    o
}

/// `stored` updated by a strictly newer `incoming` (the caller checked the event
/// timestamps). The header (fields, tags, seal) is the incoming one.
pub fn merge(stored: &Event, incoming: &Event) -> Event {
    let mut e = incoming.clone();
    e.id = stored.id;
    e.attributes = merge_attrs(&stored.attributes, &incoming.attributes);
    let mut objects: Vec<Object> = stored.objects.clone();
    let pos: HashMap<Uuid, usize> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (o.uuid, i))
        .collect();
    for o in &incoming.objects {
        match pos.get(&o.uuid) {
            Some(&i) => objects[i] = merge_object(&objects[i], o),
            None => objects.push(o.clone()),
        }
    }
    e.objects = objects;
    let mut reports = stored.reports.clone();
    for r in &incoming.reports {
        match reports.iter_mut().find(|x| x.uuid == r.uuid) {
            Some(x) if r.timestamp > x.timestamp => *x = r.clone(),
            Some(_) => {}
            None => reports.push(r.clone()),
        }
    }
    e.reports = reports;
    e.attribute_count = Some(e.all_attributes().filter(|a| !a.deleted).count() as u64);
    e
}

/// `stored` completed by `incoming`, **the same signed version** (equal
/// timestamp, equal seal) filtered differently: a node that got an event from
/// two peers may get a different subset of its elements from each (one peer
/// withholds what the other may send). Everything stored stays as it is (the
/// header with its local tags, every held element); elements of `incoming`
/// not held are added. The seal covers both subsets, so it covers the union.
pub fn fill_in(stored: &Event, incoming: &Event) -> Event {
    let mut e = stored.clone();
    let add_attrs = |held: &mut Vec<Attribute>, from: &[Attribute]| {
        for a in from {
            if !held.iter().any(|x| x.uuid == a.uuid) {
                held.push(a.clone());
            }
        }
    };
    add_attrs(&mut e.attributes, &incoming.attributes);
    for o in &incoming.objects {
        match e.objects.iter_mut().find(|x| x.uuid == o.uuid) {
            Some(held) => {
                add_attrs(&mut held.attributes, &o.attributes);
                for r in &o.references {
                    if !held.references.iter().any(|x| x.uuid == r.uuid) {
                        held.references.push(r.clone());
                    }
                }
            }
            None => e.objects.push(o.clone()),
        }
    }
    for r in &incoming.reports {
        if !e.reports.iter().any(|x| x.uuid == r.uuid) {
            e.reports.push(r.clone());
        }
    }
    e.attribute_count = Some(e.all_attributes().filter(|a| !a.deleted).count() as u64);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_in_adds_only_what_is_missing() {
        let mut s = Event::new("s");
        s.timestamp = 100;
        s.tags.push(crate::model::Tag::named("local-note"));
        s.attributes = vec![attr(1, "a", 100), attr(2, "b", 100)];
        let mut i = Event::new("i");
        i.timestamp = 100;
        i.attributes = vec![attr(2, "b-other", 100), attr(3, "c", 100)];
        let m = fill_in(&s, &i);
        let vals: Vec<&str> = m.attributes.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(vals, vec!["a", "b", "c"], "held elements stay as held");
        assert_eq!(m.info, "s", "the header stays");
        assert_eq!(m.tags, s.tags);
        assert_eq!(fill_in(&m, &s).attributes, m.attributes, "idempotent");
    }

    fn attr(u: u128, v: &str, ts: u64) -> Attribute {
        let mut a = Attribute::new("domain", v);
        a.uuid = Uuid::from_u128(u);
        a.timestamp = ts;
        a
    }

    #[test]
    fn newer_elements_win_others_stay() {
        let mut s = Event::new("s");
        s.timestamp = 100;
        s.attributes = vec![attr(1, "a", 100), attr(2, "b", 100)];
        let mut i = Event::new("i");
        i.timestamp = 200;
        i.attributes = vec![attr(1, "a2", 200), attr(2, "stale", 50), attr(3, "c", 200)];
        let m = merge(&s, &i);
        let vals: Vec<&str> = m.attributes.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(vals, vec!["a2", "b", "c"]);
        assert_eq!(m.info, "i");
        assert_eq!(m.attribute_count, Some(3));
    }
}
