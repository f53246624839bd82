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
    #[serde(default, deserialize_with = "de_string")]
    pub date: String,
    #[serde(default = "four", deserialize_with = "de_u8", serialize_with = "ser_u8_str")]
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
    #[serde(default = "one", deserialize_with = "de_u8", serialize_with = "ser_u8_str")]
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
    #[serde(default, rename = "SharingGroup", skip_serializing_if = "Option::is_none")]
    pub sharing_group: Option<SharingGroup>,
    #[serde(default, rename = "Attribute", deserialize_with = "de_vec")]
    pub attributes: Vec<Attribute>,
    #[serde(default, rename = "Object", deserialize_with = "de_vec")]
    pub objects: Vec<Object>,
    #[serde(default, rename = "EventReport", deserialize_with = "de_vec")]
    pub reports: Vec<EventReport>,
    #[serde(default, rename = "Tag", deserialize_with = "de_vec")]
    pub tags: Vec<Tag>,
}

impl Event {
    /// A new, empty, unpublished event with MISP's defaults.
    pub fn new(info: impl Into<String>) -> Self {
        Event {
            id: None,
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
        }
    }

    /// Every attribute, top-level and inside objects.
    pub fn all_attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.attributes
            .iter()
            .chain(self.objects.iter().flat_map(|o| o.attributes.iter()))
    }

    /// Number of attributes, including those inside objects.
    pub fn count_attributes(&self) -> usize {
        self.attributes.len() + self.objects.iter().map(|o| o.attributes.len()).sum::<usize>()
    }
}

/// `{"Event": …}`, the wrapper MISP puts around one event.
#[derive(Debug, Serialize)]
pub struct Wrapped<'a> {
    #[serde(rename = "Event")]
    pub event: &'a Event,
}
