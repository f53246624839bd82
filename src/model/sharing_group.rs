//! Sharing groups: a named list of organisations (and instances) that may receive an
//! element with distribution 4. Captured by UUID; `modified` orders versions.

use super::org::Org;
use super::wire::{de_bool, de_opt_u64, de_string, de_vec, ser_opt_u64_str};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharingGroup {
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<u64>,
    #[serde(default)]
    pub uuid: Uuid,
    #[serde(default, deserialize_with = "de_string")]
    pub name: String,
    #[serde(default, deserialize_with = "de_string")]
    pub releasability: String,
    #[serde(default, deserialize_with = "de_string")]
    pub description: String,
    #[serde(default)]
    pub organisation_uuid: Uuid,
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub active: bool,
    #[serde(default, deserialize_with = "de_bool")]
    pub roaming: bool,
    #[serde(default, deserialize_with = "de_string")]
    pub created: String,
    #[serde(default, deserialize_with = "de_string")]
    pub modified: String,
    #[serde(
        default,
        rename = "Organisation",
        skip_serializing_if = "Option::is_none"
    )]
    pub organisation: Option<Org>,
    #[serde(default, rename = "SharingGroupOrg", deserialize_with = "de_vec")]
    pub orgs: Vec<SharingGroupOrg>,
    #[serde(default, rename = "SharingGroupServer", deserialize_with = "de_vec")]
    pub servers: Vec<SharingGroupServer>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharingGroupOrg {
    #[serde(default, deserialize_with = "de_bool")]
    pub extend: bool,
    #[serde(rename = "Organisation")]
    pub org: Org,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharingGroupServer {
    #[serde(default, deserialize_with = "de_bool")]
    pub all_orgs: bool,
    #[serde(rename = "Server", default)]
    pub server: SgServer,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SgServer {
    #[serde(default, deserialize_with = "de_string")]
    pub url: String,
    #[serde(default, deserialize_with = "de_string")]
    pub name: String,
}

impl SharingGroup {
    /// Whether `org` is a member (the creator org always is).
    pub fn has_org(&self, org: &Uuid) -> bool {
        self.organisation_uuid == *org || self.orgs.iter().any(|o| o.org.uuid == *org)
    }
}
