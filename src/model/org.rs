//! Organisations: the owner (`Org`) and creator (`Orgc`) of an event, and the org of a
//! sighting. Matched by UUID across nodes; the numeric `id` is local.

use super::wire::{de_bool, de_opt_u64, de_string, ser_opt_u64_str};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Org {
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<u64>,
    #[serde(default, deserialize_with = "de_string")]
    pub name: String,
    /// Nil when the sender gave none (old MISP instances); MISP then matches by name.
    #[serde(default)]
    pub uuid: Uuid,
    #[serde(default, deserialize_with = "de_bool", skip_serializing)]
    pub local: bool,
}
