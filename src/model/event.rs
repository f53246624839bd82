//! The event: the unit MISP shares, holding attributes, objects, reports and tags.

use super::attribute::Attribute;
use super::object::Object;
use super::org::Org;
use super::report::EventReport;
use super::sharing_group::SharingGroup;
use super::tag::Tag;
use super::wire::{
    de_bool, de_opt_bool, de_opt_u64, de_string, de_u64, de_u8, de_vec, ser_opt_u64_str,
    ser_u64_str, ser_u8_str,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

fn four() -> u8 {
    4
}
fn one() -> u8 {
    1
}

/// An event in MISP's wire form. Field order is MISP's output order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<u64>,
    /// Local id of the owner organisation (`Org`), filled when read from the store.
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub org_id: Option<u64>,
    /// Local id of the creator organisation (`Orgc`).
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub orgc_id: Option<u64>,
    #[serde(default, deserialize_with = "de_string")]
    pub date: String,
    #[serde(
        default = "four",
        deserialize_with = "de_u8",
        serialize_with = "ser_u8_str"
    )]
    pub threat_level_id: u8,
    #[serde(default, deserialize_with = "de_string")]
    pub info: String,
    #[serde(default, deserialize_with = "de_bool")]
    pub published: bool,
    #[serde(default)]
    pub uuid: Uuid,
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub attribute_count: Option<u64>,
    #[serde(default, deserialize_with = "de_u8", serialize_with = "ser_u8_str")]
    pub analysis: u8,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub timestamp: u64,
    /// MISP's default event distribution is 1 (this community).
    #[serde(
        default = "one",
        deserialize_with = "de_u8",
        serialize_with = "ser_u8_str"
    )]
    pub distribution: u8,
    #[serde(default, deserialize_with = "de_bool")]
    pub locked: bool,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub publish_timestamp: u64,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub sighting_timestamp: u64,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub sharing_group_id: u64,
    #[serde(default, deserialize_with = "de_bool")]
    pub disable_correlation: bool,
    #[serde(default, deserialize_with = "de_string")]
    pub extends_uuid: String,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub protected: Option<bool>,
    #[serde(default, rename = "Org", skip_serializing_if = "Option::is_none")]
    pub org: Option<Org>,
    #[serde(default, rename = "Orgc", skip_serializing_if = "Option::is_none")]
    pub orgc: Option<Org>,
    #[serde(
        default,
        rename = "SharingGroup",
        skip_serializing_if = "Option::is_none"
    )]
    pub sharing_group: Option<SharingGroup>,
    #[serde(default, rename = "Attribute", deserialize_with = "de_vec")]
    pub attributes: Vec<Attribute>,
    #[serde(default, rename = "Object", deserialize_with = "de_vec")]
    pub objects: Vec<Object>,
    #[serde(default, rename = "EventReport", deserialize_with = "de_vec")]
    pub reports: Vec<EventReport>,
    #[serde(default, rename = "Tag", deserialize_with = "de_vec")]
    pub tags: Vec<Tag>,
    /// Other events sharing indicator values with this one, as the reader may see
    /// them (MISP's `RelatedEvent`): computed per request, never stored or sent on.
    #[serde(
        default,
        rename = "RelatedEvent",
        skip_deserializing,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub related: Vec<serde_json::Value>,
    /// The origin node's seal over this version (see the `seal` module).
    #[serde(default, rename = "Seal", skip_serializing_if = "Option::is_none")]
    pub seal: Option<super::Seal>,
}

impl Event {
    /// A new, empty, unpublished event with MISP's defaults.
    pub fn new(info: impl Into<String>) -> Self {
        Event {
            id: None,
            org_id: None,
            orgc_id: None,
            date: String::new(),
            threat_level_id: 4,
            info: info.into(),
            published: false,
            uuid: Uuid::nil(),
            attribute_count: None,
            analysis: 0,
            timestamp: 0,
            distribution: 1,
            locked: false,
            publish_timestamp: 0,
            sighting_timestamp: 0,
            sharing_group_id: 0,
            disable_correlation: false,
            extends_uuid: String::new(),
            protected: None,
            org: None,
            orgc: None,
            sharing_group: None,
            attributes: Vec::new(),
            objects: Vec::new(),
            reports: Vec::new(),
            tags: Vec::new(),
            related: Vec::new(),
            seal: None,
        }
    }

    /// Every attribute, top-level and inside objects.
    pub fn all_attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.attributes
            .iter()
            .chain(self.objects.iter().flat_map(|o| o.attributes.iter()))
    }

    /// The uuid and distribution of every element that has a level of its
    /// own: attributes (object attributes too), objects and reports.
    pub fn element_levels(&self) -> impl Iterator<Item = (Uuid, u8)> + '_ {
        self.all_attributes()
            .map(|a| (a.uuid, a.distribution))
            .chain(self.objects.iter().map(|o| (o.uuid, o.distribution)))
            .chain(self.reports.iter().map(|r| (r.uuid, r.distribution)))
    }

    /// Calls `f` with the uuid and the level of the event and of every element
    /// of [`Event::element_levels`], to change them.
    pub fn each_level_mut(&mut self, mut f: impl FnMut(&Uuid, &mut u8)) {
        f(&self.uuid, &mut self.distribution);
        for a in &mut self.attributes {
            f(&a.uuid, &mut a.distribution);
        }
        for o in &mut self.objects {
            f(&o.uuid, &mut o.distribution);
            for a in &mut o.attributes {
                f(&a.uuid, &mut a.distribution);
            }
        }
        for r in &mut self.reports {
            f(&r.uuid, &mut r.distribution);
        }
    }

    /// The event without what is local to one node (numeric ids, the owner org,
    /// `locked`, the attribute count, local tags), children in uuid order: the form
    /// two nodes can compare, digest or sign.
    pub fn portable(&self) -> Event {
        let mut e = self.clone();
        e.id = None;
        e.org_id = None;
        e.orgc_id = None;
        e.org = None;
        e.related.clear();
        e.locked = false;
        e.attribute_count = None;
        e.sharing_group_id = 0;
        if let Some(sg) = &mut e.sharing_group {
            sg.id = None;
        }
        e.tags.retain(|t| !t.local);
        e.tags.iter_mut().for_each(|t| t.id = None);
        e.tags.sort_by(|a, b| a.name.cmp(&b.name));
        let attr = |a: &mut Attribute| {
            a.id = None;
            a.event_id = None;
            a.object_id = None;
            a.sharing_group_id = 0;
            if let Some(sg) = &mut a.sharing_group {
                sg.id = None;
            }
            a.tags.retain(|t| !t.local);
            a.tags.iter_mut().for_each(|t| t.id = None);
            a.tags.sort_by(|x, y| x.name.cmp(&y.name));
            for s in &mut a.sightings {
                s.id = None;
                s.event_id = None;
                s.attribute_id = None;
                if let Some(o) = &mut s.org {
                    o.id = None;
                }
            }
            a.sightings.sort_by_key(|s| s.uuid);
        };
        e.attributes.iter_mut().for_each(attr);
        e.attributes.sort_by_key(|a| a.uuid);
        for o in &mut e.objects {
            o.id = None;
            o.event_id = None;
            o.sharing_group_id = 0;
            if let Some(sg) = &mut o.sharing_group {
                sg.id = None;
            }
            o.attributes.iter_mut().for_each(attr);
            o.attributes.sort_by_key(|a| a.uuid);
            o.references.iter_mut().for_each(|r| r.id = None);
            o.references.sort_by_key(|r| r.uuid);
        }
        e.objects.sort_by_key(|o| o.uuid);
        for r in &mut e.reports {
            r.id = None;
            r.event_id = None;
            r.sharing_group_id = 0;
            if let Some(sg) = &mut r.sharing_group {
                sg.id = None;
            }
        }
        e.reports.sort_by_key(|r| r.uuid);
        if let Some(o) = &mut e.orgc {
            o.id = None;
        }
        e
    }

    /// Number of attributes, including those inside objects.
    pub fn count_attributes(&self) -> usize {
        self.attributes.len()
            + self
                .objects
                .iter()
                .map(|o| o.attributes.len())
                .sum::<usize>()
    }
}

/// `{"Event": …}`, the wrapper MISP puts around one event.
#[derive(Debug, Serialize)]
pub struct Wrapped<'a> {
    #[serde(rename = "Event")]
    pub event: &'a Event,
}
