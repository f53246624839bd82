//! Attributes: one indicator or piece of context (a value with a type and category).

use super::sharing_group::SharingGroup;
use super::sighting::Sighting;
use super::tag::Tag;
use super::time::{de_opt_seen, ser_opt_seen};
use super::wire::{
    de_bool, de_opt_string, de_opt_u64, de_string, de_u64, de_u8, de_vec, ser_opt_u64_str,
    ser_u64_str, ser_u8_str,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Distribution 5: "inherit from the parent" (event or object).
pub const INHERIT: u8 = 5;

fn inherit() -> u8 {
    INHERIT
}

/// An attribute in MISP's wire form. Field order is MISP's output order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<u64>,
    #[serde(rename = "type", deserialize_with = "de_string")]
    pub attr_type: String,
    /// Empty on input means "the type's default category".
    #[serde(default, deserialize_with = "de_string")]
    pub category: String,
    /// `None` on input means "the type's default".
    #[serde(default, deserialize_with = "super::wire::de_opt_bool")]
    pub to_ids: Option<bool>,
    #[serde(default)]
    pub uuid: Uuid,
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub event_id: Option<u64>,
    #[serde(
        default = "inherit",
        deserialize_with = "de_u8",
        serialize_with = "ser_u8_str"
    )]
    pub distribution: u8,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub timestamp: u64,
    #[serde(default, deserialize_with = "de_string")]
    pub comment: String,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub sharing_group_id: u64,
    #[serde(default, deserialize_with = "de_bool")]
    pub deleted: bool,
    #[serde(default, deserialize_with = "de_bool")]
    pub disable_correlation: bool,
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub object_id: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub object_relation: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_opt_seen",
        serialize_with = "ser_opt_seen"
    )]
    pub first_seen: Option<i64>,
    #[serde(
        default,
        deserialize_with = "de_opt_seen",
        serialize_with = "ser_opt_seen"
    )]
    pub last_seen: Option<i64>,
    #[serde(deserialize_with = "de_string")]
    pub value: String,
    /// Base64 payload of `attachment` and `malware-sample` attributes.
    #[serde(
        default,
        deserialize_with = "de_opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<String>,
    #[serde(
        default,
        rename = "SharingGroup",
        skip_serializing_if = "Option::is_none"
    )]
    pub sharing_group: Option<SharingGroup>,
    #[serde(
        default,
        rename = "Tag",
        deserialize_with = "de_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<Tag>,
    #[serde(
        default,
        rename = "Sighting",
        deserialize_with = "de_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sightings: Vec<Sighting>,
}

impl Attribute {
    /// A new attribute with MISP's defaults for everything but type and value.
    pub fn new(attr_type: impl Into<String>, value: impl Into<String>) -> Self {
        Attribute {
            id: None,
            attr_type: attr_type.into(),
            category: String::new(),
            to_ids: None,
            uuid: Uuid::nil(),
            event_id: None,
            distribution: INHERIT,
            timestamp: 0,
            comment: String::new(),
            sharing_group_id: 0,
            deleted: false,
            disable_correlation: false,
            object_id: None,
            object_relation: None,
            first_seen: None,
            last_seen: None,
            value: value.into(),
            data: None,
            sharing_group: None,
            tags: Vec::new(),
            sightings: Vec::new(),
        }
    }

    /// `to_ids` after defaults were applied (validation always sets it).
    pub fn ids(&self) -> bool {
        self.to_ids.unwrap_or(false)
    }
}
