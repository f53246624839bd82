//! Tags attached to events and attributes (taxonomies, TLP, galaxy clusters).
//!
//! Tags have no UUID and no timestamp; they are matched by name, case-insensitively.
//! `local` comes from the attachment (this instance only) and `exportable: false` from
//! the tag itself; neither kind ever leaves the node.

use super::wire::{de_bool, de_opt_string, de_opt_u64, de_string, ser_opt_u64_str};
use serde::{Deserialize, Serialize};

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(
        default,
        deserialize_with = "de_opt_u64",
        serialize_with = "ser_opt_u64_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<u64>,
    #[serde(deserialize_with = "de_string")]
    pub name: String,
    #[serde(default, deserialize_with = "de_string")]
    pub colour: String,
    #[serde(default = "default_true", deserialize_with = "de_bool")]
    pub exportable: bool,
    #[serde(default, deserialize_with = "de_bool")]
    pub hide_tag: bool,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub numerical_value: Option<String>,
    #[serde(default, deserialize_with = "de_bool")]
    pub is_galaxy: bool,
    #[serde(default, deserialize_with = "de_bool")]
    pub local_only: bool,
    #[serde(default, deserialize_with = "de_bool")]
    pub local: bool,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub relationship_type: Option<String>,
}

impl Tag {
    /// A plain, exportable, non-local tag with this name.
    pub fn named(name: impl Into<String>) -> Self {
        let name = name.into();
        Tag {
            id: None,
            is_galaxy: name.starts_with("misp-galaxy:"),
            name,
            colour: String::new(),
            exportable: true,
            hide_tag: false,
            numerical_value: None,
            local_only: false,
            local: false,
            relationship_type: None,
        }
    }

    /// Whether this tag may leave the node at all.
    pub fn travels(&self) -> bool {
        self.exportable && !self.local && !self.local_only
    }

    /// The key tags are matched and indexed by.
    pub fn key(&self) -> String {
        self.name.trim().to_lowercase()
    }
}
