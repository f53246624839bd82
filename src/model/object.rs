//! Objects: a template-shaped group of attributes (a `file` with its hashes, a
//! `domain-ip` pair, …) and the references that link objects and attributes.

use super::attribute::Attribute;
use super::sharing_group::SharingGroup;
use super::time::{de_opt_seen, ser_opt_seen};
use super::wire::{
    de_bool, de_opt_u64, de_string, de_u64, de_u8, de_vec, ser_opt_u64_str, ser_u64_str, ser_u8_str,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

fn inherit() -> u8 {
    super::attribute::INHERIT
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<u64>,
    #[serde(deserialize_with = "de_string")]
    pub name: String,
    #[serde(default, rename = "meta-category", deserialize_with = "de_string")]
    pub meta_category: String,
    #[serde(default, deserialize_with = "de_string")]
    pub description: String,
    #[serde(default, deserialize_with = "de_string")]
    pub template_uuid: String,
    #[serde(default, deserialize_with = "de_string")]
    pub template_version: String,
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub event_id: Option<u64>,
    #[serde(default)]
    pub uuid: Uuid,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub timestamp: u64,
    #[serde(
        default = "inherit",
        deserialize_with = "de_u8",
        serialize_with = "ser_u8_str"
    )]
    pub distribution: u8,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub sharing_group_id: u64,
    #[serde(default, deserialize_with = "de_string")]
    pub comment: String,
    #[serde(default, deserialize_with = "de_bool")]
    pub deleted: bool,
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
    #[serde(
        default,
        rename = "SharingGroup",
        skip_serializing_if = "Option::is_none"
    )]
    pub sharing_group: Option<SharingGroup>,
    #[serde(default, rename = "ObjectReference", deserialize_with = "de_vec")]
    pub references: Vec<ObjectReference>,
    #[serde(default, rename = "Attribute", deserialize_with = "de_vec")]
    pub attributes: Vec<Attribute>,
}

/// A typed link from an object to another object or attribute, by UUID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectReference {
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<u64>,
    #[serde(default)]
    pub uuid: Uuid,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub timestamp: u64,
    /// The source object; filled from the parent when absent.
    #[serde(default)]
    pub object_uuid: Uuid,
    #[serde(default)]
    pub referenced_uuid: Uuid,
    /// `0` attribute, `1` object.
    #[serde(default, deserialize_with = "de_u8", serialize_with = "ser_u8_str")]
    pub referenced_type: u8,
    #[serde(default, deserialize_with = "de_string")]
    pub relationship_type: String,
    #[serde(default, deserialize_with = "de_string")]
    pub comment: String,
    #[serde(default, deserialize_with = "de_bool")]
    pub deleted: bool,
}
