//! Sightings: "we saw this indicator" (type 0), "false positive" (1), "expiration" (2).
//! Immutable, identified by their own UUID, pointing at an attribute by UUID.

use super::org::Org;
use super::wire::{de_opt_u64, de_string, de_u64, de_u8, ser_opt_u64_str, ser_u64_str, ser_u8_str};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<u64>,
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub attribute_id: Option<u64>,
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub event_id: Option<u64>,
    #[serde(default, deserialize_with = "de_u64", serialize_with = "ser_u64_str")]
    pub date_sighting: u64,
    #[serde(default)]
    pub uuid: Uuid,
    #[serde(default, deserialize_with = "de_string")]
    pub source: String,
    #[serde(
        default,
        rename = "type",
        deserialize_with = "de_u8",
        serialize_with = "ser_u8_str"
    )]
    pub kind: u8,
    /// `None` means an anonymised sighting.
    #[serde(
        default,
        rename = "Organisation",
        skip_serializing_if = "Option::is_none"
    )]
    pub org: Option<Org>,
    /// Nil when the sighting is nested under its attribute (then the parent is meant).
    #[serde(default)]
    pub attribute_uuid: Uuid,
}
