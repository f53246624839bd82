//! Event reports: Markdown write-ups attached to an event.

use super::sharing_group::SharingGroup;
use super::wire::{
    de_bool, de_opt_u64, de_string, de_u64, de_u8, ser_opt_u64_str, ser_u64_str, ser_u8_str,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

fn inherit() -> u8 {
    super::attribute::INHERIT
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventReport {
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<u64>,
    #[serde(default)]
    pub uuid: Uuid,
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub event_id: Option<u64>,
    #[serde(deserialize_with = "de_string")]
    pub name: String,
    #[serde(default, deserialize_with = "de_string")]
    pub content: String,
    #[serde(
        default = "inherit",
        deserialize_with = "de_u8",
        serialize_with = "ser_u8_str"
    )]
    pub distribution: u8,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub sharing_group_id: u64,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub timestamp: u64,
    #[serde(default, deserialize_with = "de_bool")]
    pub deleted: bool,
    #[serde(
        default,
        rename = "SharingGroup",
        skip_serializing_if = "Option::is_none"
    )]
    pub sharing_group: Option<SharingGroup>,
}
