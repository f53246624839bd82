//! Stored forms of records.
//!
//! Attributes are the bulk of the data (millions), so they are stored in a compact
//! binary form (postcard) with the uuid only in the key and the sharing group by uuid.
//! Event headers, objects, reports and sightings are few by comparison and are stored
//! as their MISP JSON with children removed, which keeps them readable in a dump.
//! The wire format can change without a migration of either.

use crate::model::{Attribute, Tag};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Bumped when a stored form changes incompatibly; checked at open.
pub const FORMAT_VERSION: u64 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTag {
    pub name: String,
    pub colour: String,
    /// bit 0 exportable, bit 1 local, bit 2 local_only, bit 3 hide_tag
    pub flags: u8,
    pub numerical_value: Option<String>,
    pub relationship_type: Option<String>,
}

impl From<&Tag> for StoredTag {
    fn from(t: &Tag) -> Self {
        StoredTag {
            name: t.name.clone(),
            colour: t.colour.clone(),
            flags: u8::from(t.exportable)
                | u8::from(t.local) << 1
                | u8::from(t.local_only) << 2
                | u8::from(t.hide_tag) << 3,
            numerical_value: t.numerical_value.clone(),
            relationship_type: t.relationship_type.clone(),
        }
    }
}

impl StoredTag {
    pub fn to_tag(&self) -> Tag {
        let mut t = Tag::named(self.name.clone());
        t.colour = self.colour.clone();
        t.exportable = self.flags & 1 != 0;
        t.local = self.flags & 2 != 0;
        t.local_only = self.flags & 4 != 0;
        t.hide_tag = self.flags & 8 != 0;
        t.numerical_value = self.numerical_value.clone();
        t.relationship_type = self.relationship_type.clone();
        t
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAttr {
    pub id: u64,
    pub object: Option<Uuid>,
    pub object_relation: Option<String>,
    pub attr_type: String,
    pub category: String,
    pub to_ids: bool,
    pub distribution: u8,
    pub sharing_group: Option<Uuid>,
    pub timestamp: u64,
    pub comment: String,
    pub deleted: bool,
    pub disable_correlation: bool,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub value: String,
    pub data: Option<String>,
    pub tags: Vec<StoredTag>,
}

impl StoredAttr {
    pub fn from_model(a: &Attribute, id: u64, object: Option<Uuid>, sg: Option<Uuid>) -> Self {
        StoredAttr {
            id,
            object,
            object_relation: a.object_relation.clone(),
            attr_type: a.attr_type.clone(),
            category: a.category.clone(),
            to_ids: a.ids(),
            distribution: a.distribution,
            sharing_group: sg,
            timestamp: a.timestamp,
            comment: a.comment.clone(),
            deleted: a.deleted,
            disable_correlation: a.disable_correlation,
            first_seen: a.first_seen,
            last_seen: a.last_seen,
            value: a.value.clone(),
            data: a.data.clone(),
            tags: a.tags.iter().map(StoredTag::from).collect(),
        }
    }

    /// The wire attribute; sharing group ids and the event id are filled by the reader.
    pub fn to_model(&self, uuid: Uuid) -> Attribute {
        let mut a = Attribute::new(self.attr_type.clone(), self.value.clone());
        a.id = Some(self.id);
        a.uuid = uuid;
        a.category = self.category.clone();
        a.to_ids = Some(self.to_ids);
        a.distribution = self.distribution;
        a.timestamp = self.timestamp;
        a.comment = self.comment.clone();
        a.deleted = self.deleted;
        a.disable_correlation = self.disable_correlation;
        a.object_relation = self.object_relation.clone();
        a.first_seen = self.first_seen;
        a.last_seen = self.last_seen;
        a.data = self.data.clone();
        a.tags = self.tags.iter().map(StoredTag::to_tag).collect();
        a
    }

    pub fn index_flags(&self, event_no_correlation: bool) -> u8 {
        use super::keys::flag;
        let mut f = 0;
        if self.deleted {
            f |= flag::DELETED;
        }
        if self.disable_correlation || event_no_correlation {
            f |= flag::NO_CORRELATION;
        }
        if self.to_ids {
            f |= flag::TO_IDS;
        }
        if self.object.is_some() {
            f |= flag::IN_OBJECT;
        }
        f
    }
}

/// The `events` tree value: local state next to the event header's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub id: u64,
    /// Soft-deleted: kept for the record, hidden from reads and lookups.
    pub deleted: bool,
    /// SHA-256 of the validated incoming document, to tell "unchanged" from "not newer".
    pub digest: [u8; 32],
    pub sharing_group: Option<Uuid>,
    /// Number of the last attribute added (attribute ids derive from it).
    pub next_attr: u32,
    /// The event header (no children) as MISP JSON.
    pub header: Vec<u8>,
}

/// The `changes` tree value: one entry per stored change, numbered by a local,
/// monotonic sequence (the feed peers will pull).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub event: Uuid,
    pub timestamp: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    EventStored,
    EventDeleted,
    SightingAdded,
    TombstoneAdded,
    /// An incident-support case record ([`crate::support`]); the change's
    /// `event` field holds the record's uuid.
    CaseRecord,
}

/// The `local` keyspace value: what this node knows about an event beyond its
/// signed form (docs/design.md §4: the origin's levels stay as signed, the effective ones
/// are local state). Absent for events this node originated or imported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRecord {
    /// The event's effective distribution, when it differs from the signed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_distribution: Option<u8>,
    /// Effective distribution of elements (by uuid) whose level differs from
    /// the signed one.
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub element_distribution: std::collections::HashMap<Uuid, u8>,
    /// The peer this node received the event from (never sent back to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_from: Option<String>,
}

/// The `peer_state` keyspace value: how far this node has pulled a peer's
/// changes feed, and how the last attempts went (for operators).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    /// The sequence of the last change of the peer's feed applied here.
    pub cursor: u64,
    /// When a pull last completed (epoch seconds).
    #[serde(default)]
    pub last_success: Option<u64>,
    /// The last error, if the most recent attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Failed attempts and rejected records since the state was created.
    #[serde(default)]
    pub errors: u64,
    /// The peer's newest change when last asked: `head - cursor` is the lag.
    #[serde(default)]
    pub head: u64,
    /// Records of the peer's feed stored (or already held) here.
    #[serde(default)]
    pub accepted: u64,
    /// Records of the peer's feed refused here.
    #[serde(default)]
    pub rejected: u64,
}

/// The `peer_out` keyspace value: how a peer is doing with *this* node's feed,
/// as it last reported (`POST /fed/v1/report`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerOut {
    /// The peer's cursor on this node's feed.
    pub cursor: u64,
    /// When the peer last reported (epoch seconds).
    #[serde(default)]
    pub reported_at: Option<u64>,
    /// Records the peer reported as stored, in all.
    #[serde(default)]
    pub accepted: u64,
    /// Records the peer reported as refused, in all.
    #[serde(default)]
    pub rejected: u64,
    /// The most recent refusals, newest last (bounded).
    #[serde(default)]
    pub last_rejections: Vec<Rejection>,
}

/// One record a peer refused, as it reported it (`POST /fed/v1/report`; the
/// federation wire format uses this type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// The record's sequence in the sender's feed (0 when the line could not be
    /// decoded far enough to know it).
    pub seq: u64,
    pub kind: String,
    /// The event the record is about, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Uuid>,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_round_trip_is_compact() {
        let mut a = Attribute::new("ip-dst", "203.0.113.7");
        a.category = "Network activity".into();
        a.to_ids = Some(true);
        a.timestamp = 1_714_549_990;
        a.tags.push(Tag::named("tlp:green"));
        let u = Uuid::new_v4();
        let s = StoredAttr::from_model(&a, 7, None, None);
        let bytes = postcard::to_stdvec(&s).unwrap();
        assert!(bytes.len() < 80, "{} bytes", bytes.len());
        let back: StoredAttr = postcard::from_bytes(&bytes).unwrap();
        let m = back.to_model(u);
        assert_eq!(m.value, a.value);
        assert_eq!(m.tags, vec![Tag::named("tlp:green")]);
        assert_eq!(m.uuid, u);
    }
}
