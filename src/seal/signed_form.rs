//! The signed form of each part of an event, and its digest.
//!
//! A signed form is the element's MISP wire JSON (same field names, numbers as
//! decimal strings, booleans as booleans) **without what is local to one node**,
//! wrapped in an envelope that says what kind of element it is and where it sits:
//!
//! ```text
//! header:     {"Event":{…},"kind":"sluis-v1/event"}
//! attribute:  {"Attribute":{…},"event_uuid":"…","kind":"sluis-v1/attribute","object_uuid":"…"|null}
//! object:     {"Object":{…},"event_uuid":"…","kind":"sluis-v1/object"}
//! reference:  {"ObjectReference":{…},"event_uuid":"…","kind":"sluis-v1/object-reference","object_uuid":"…"}
//! report:     {"EventReport":{…},"event_uuid":"…","kind":"sluis-v1/event-report"}
//! ```
//!
//! and `digest = SHA-256(JCS(signed form))` (docs/design.md §4). The envelope is the
//! domain separation: `kind` differs for every element kind (and from the sealed
//! records' kinds, `sluis-v1/sighting` and `sluis-v1/tombstone`), so an attribute
//! digest can never equal an object or header digest; `event_uuid` binds every
//! element to its event, and `object_uuid` binds an attribute to the object that
//! holds it (`null` at the top level), so an element cannot be moved into another
//! event or object, or out of one, without changing its digest.
//!
//! What is left out, and why (the rule: nothing that a node legitimately sets or
//! changes for itself, everything the creator said):
//!
//! | left out | why |
//! |---|---|
//! | `id`, `event_id`, `object_id` | local numeric ids (MISP rule 1); identity is the uuid |
//! | `sharing_group_id` | the local id of the sharing group; the group is signed by its uuid |
//! | `SharingGroup` except `uuid` | name, members and servers are the group's own record, versioned by `modified` and re-captured (MISP adds the local org) at every hop; the seal fixes *which* group, policy decides membership |
//! | `Org` (owner) | the owner org on *this* instance: the pulling peer's org on a receiver |
//! | `Orgc.id` | local id; `Orgc` is signed as `{name, uuid}` |
//! | `locked` | "came from sync", set by each receiver |
//! | `attribute_count` | derived, and differs after filtering |
//! | `published`, `publish_timestamp` | per instance in MISP: a receiver publishes locally, and MISP does not take `publish_timestamp` from the sender. Publishing does not change `timestamp`, so signing them would make one version need two seals. Only published events travel anyway |
//! | `sighting_timestamp` | per instance; sightings are sealed records of their own |
//! | `Seal` | the seal itself |
//! | tags that do not travel (`local`, `local_only`, `exportable: false`) | never leave the node (MISP rule 9) |
//! | tag `id`, `colour`, `exportable`, `hide_tag`, `numerical_value`, `is_galaxy`, `local*` | properties of the *tag* in each instance's tag table, not of the attachment; a receiver shows its own colour. A tag is signed as `{name, relationship_type}`, tags sorted by name, because MISP reorders them by local tag id |
//! | `Sighting` (nested in attributes) | sightings are separate sealed records ([`super::SealedSighting`]) |
//! | `Attribute`/`ObjectReference` inside an object | separate elements with their own digests, so filtering may withhold some |
//!
//! Everything else is signed, notably `distribution` **as the origin set it**: each
//! node keeps the effective, downgraded distribution as local state (docs/design.md §4),
//! so a hop cannot widen (or narrow) what the origin allowed. `timestamp`,
//! `deleted` (soft deletion), `to_ids`, `first_seen`/`last_seen`, `data`
//! (attachments) and `disable_correlation` are the creator's statements and are
//! signed. Fields the model does not carry (`Galaxy`, `ShadowAttribute`,
//! `RelatedEvent`, …) are dropped on parse and cannot be signed.
//!
//! Seal events after `validate_event`: validation completes and normalises an event
//! (default categories, `to_ids`, lower-cased hashes, …) and is idempotent, so a
//! receiver that validates before verifying computes the same forms.

use super::canonical::{digest_form, to_jcs_vec, Digest};
use super::SealError;
use crate::model::time::ser_opt_seen;
use crate::model::wire::{ser_u64_str, ser_u8_str};
use crate::model::{
    Attribute, Event, EventReport, Object, ObjectReference, Org, SharingGroup, Tag,
};
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};
use std::fmt;
use uuid::Uuid;

/// `kind` of the event header's signed form.
pub const KIND_EVENT: &str = "sluis-v1/event";
/// `kind` of an attribute's signed form.
pub const KIND_ATTRIBUTE: &str = "sluis-v1/attribute";
/// `kind` of an object's signed form (without its attributes and references).
pub const KIND_OBJECT: &str = "sluis-v1/object";
/// `kind` of an object reference's signed form.
pub const KIND_OBJECT_REFERENCE: &str = "sluis-v1/object-reference";
/// `kind` of an event report's signed form.
pub const KIND_EVENT_REPORT: &str = "sluis-v1/event-report";

/// The kinds of element an event seal lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementKind {
    Attribute,
    Object,
    ObjectReference,
    EventReport,
}

impl ElementKind {
    /// The `kind` string in the signed form.
    pub fn tag(self) -> &'static str {
        match self {
            ElementKind::Attribute => KIND_ATTRIBUTE,
            ElementKind::Object => KIND_OBJECT,
            ElementKind::ObjectReference => KIND_OBJECT_REFERENCE,
            ElementKind::EventReport => KIND_EVENT_REPORT,
        }
    }

    /// MISP's name for the element, as in the wire JSON.
    pub fn name(self) -> &'static str {
        match self {
            ElementKind::Attribute => "Attribute",
            ElementKind::Object => "Object",
            ElementKind::ObjectReference => "ObjectReference",
            ElementKind::EventReport => "EventReport",
        }
    }
}

/// Which element a digest belongs to, for error messages (`Attribute <uuid>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElementRef {
    pub kind: ElementKind,
    pub uuid: Uuid,
}

impl fmt::Display for ElementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.uuid)
    }
}

// ---------------------------------------------------------------------------
// The forms. Field declaration order IS the JCS order (keys sorted by UTF-16
// code units; all keys are ASCII, so byte order, capitals first): see
// `canonical::digest_form`, which checks this in debug builds.
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct OrgForm<'a> {
    name: &'a str,
    uuid: Uuid,
}

impl<'a> OrgForm<'a> {
    fn of(o: &'a Org) -> Self {
        OrgForm {
            name: &o.name,
            uuid: o.uuid,
        }
    }
}

#[derive(Serialize)]
struct SharingGroupForm {
    uuid: Uuid,
}

fn sg(s: &Option<SharingGroup>) -> Option<SharingGroupForm> {
    s.as_ref().map(|s| SharingGroupForm { uuid: s.uuid })
}

#[derive(Serialize)]
struct TagForm<'a> {
    name: &'a str,
    relationship_type: Option<&'a str>,
}

/// The travelling tags of an element, sorted by name (then relationship type).
struct TagsForm<'a>(&'a [Tag]);

impl Serialize for TagsForm<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut tags: Vec<&Tag> = self.0.iter().filter(|t| t.travels()).collect();
        tags.sort_by(|a, b| {
            (a.name.as_str(), a.relationship_type.as_deref())
                .cmp(&(b.name.as_str(), b.relationship_type.as_deref()))
        });
        let mut seq = s.serialize_seq(Some(tags.len()))?;
        for t in tags {
            seq.serialize_element(&TagForm {
                name: &t.name,
                relationship_type: t.relationship_type.as_deref(),
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct HeaderForm<'a> {
    #[serde(rename = "Orgc")]
    orgc: Option<OrgForm<'a>>,
    #[serde(rename = "SharingGroup")]
    sharing_group: Option<SharingGroupForm>,
    #[serde(rename = "Tag")]
    tags: TagsForm<'a>,
    #[serde(serialize_with = "ser_u8_str")]
    analysis: u8,
    date: &'a str,
    disable_correlation: bool,
    #[serde(serialize_with = "ser_u8_str")]
    distribution: u8,
    extends_uuid: &'a str,
    info: &'a str,
    protected: Option<bool>,
    #[serde(serialize_with = "ser_u8_str")]
    threat_level_id: u8,
    #[serde(serialize_with = "ser_u64_str")]
    timestamp: u64,
    uuid: Uuid,
}

#[derive(Serialize)]
struct HeaderEnvelope<'a> {
    #[serde(rename = "Event")]
    event: HeaderForm<'a>,
    kind: &'static str,
}

#[derive(Serialize)]
struct AttributeForm<'a> {
    #[serde(rename = "SharingGroup")]
    sharing_group: Option<SharingGroupForm>,
    #[serde(rename = "Tag")]
    tags: TagsForm<'a>,
    category: &'a str,
    comment: &'a str,
    data: Option<&'a str>,
    deleted: bool,
    disable_correlation: bool,
    #[serde(serialize_with = "ser_u8_str")]
    distribution: u8,
    #[serde(serialize_with = "ser_opt_seen")]
    first_seen: Option<i64>,
    #[serde(serialize_with = "ser_opt_seen")]
    last_seen: Option<i64>,
    object_relation: Option<&'a str>,
    #[serde(serialize_with = "ser_u64_str")]
    timestamp: u64,
    to_ids: Option<bool>,
    #[serde(rename = "type")]
    attr_type: &'a str,
    uuid: Uuid,
    value: &'a str,
}

#[derive(Serialize)]
struct AttributeEnvelope<'a> {
    #[serde(rename = "Attribute")]
    attribute: AttributeForm<'a>,
    event_uuid: Uuid,
    kind: &'static str,
    object_uuid: Option<Uuid>,
}

#[derive(Serialize)]
struct ObjectForm<'a> {
    #[serde(rename = "SharingGroup")]
    sharing_group: Option<SharingGroupForm>,
    comment: &'a str,
    deleted: bool,
    description: &'a str,
    #[serde(serialize_with = "ser_u8_str")]
    distribution: u8,
    #[serde(serialize_with = "ser_opt_seen")]
    first_seen: Option<i64>,
    #[serde(serialize_with = "ser_opt_seen")]
    last_seen: Option<i64>,
    #[serde(rename = "meta-category")]
    meta_category: &'a str,
    name: &'a str,
    template_uuid: &'a str,
    template_version: &'a str,
    #[serde(serialize_with = "ser_u64_str")]
    timestamp: u64,
    uuid: Uuid,
}

#[derive(Serialize)]
struct ObjectEnvelope<'a> {
    #[serde(rename = "Object")]
    object: ObjectForm<'a>,
    event_uuid: Uuid,
    kind: &'static str,
}

#[derive(Serialize)]
struct ReferenceForm<'a> {
    comment: &'a str,
    deleted: bool,
    object_uuid: Uuid,
    #[serde(serialize_with = "ser_u8_str")]
    referenced_type: u8,
    referenced_uuid: Uuid,
    relationship_type: &'a str,
    #[serde(serialize_with = "ser_u64_str")]
    timestamp: u64,
    uuid: Uuid,
}

#[derive(Serialize)]
struct ReferenceEnvelope<'a> {
    #[serde(rename = "ObjectReference")]
    reference: ReferenceForm<'a>,
    event_uuid: Uuid,
    kind: &'static str,
    object_uuid: Uuid,
}

#[derive(Serialize)]
struct ReportForm<'a> {
    #[serde(rename = "SharingGroup")]
    sharing_group: Option<SharingGroupForm>,
    content: &'a str,
    deleted: bool,
    #[serde(serialize_with = "ser_u8_str")]
    distribution: u8,
    name: &'a str,
    #[serde(serialize_with = "ser_u64_str")]
    timestamp: u64,
    uuid: Uuid,
}

#[derive(Serialize)]
struct ReportEnvelope<'a> {
    #[serde(rename = "EventReport")]
    report: ReportForm<'a>,
    event_uuid: Uuid,
    kind: &'static str,
}

fn header_envelope(e: &Event) -> HeaderEnvelope<'_> {
    HeaderEnvelope {
        event: HeaderForm {
            orgc: e.orgc.as_ref().map(OrgForm::of),
            sharing_group: sg(&e.sharing_group),
            tags: TagsForm(&e.tags),
            analysis: e.analysis,
            date: &e.date,
            disable_correlation: e.disable_correlation,
            distribution: e.distribution,
            extends_uuid: &e.extends_uuid,
            info: &e.info,
            protected: e.protected,
            threat_level_id: e.threat_level_id,
            timestamp: e.timestamp,
            uuid: e.uuid,
        },
        kind: KIND_EVENT,
    }
}

fn attribute_envelope(
    event_uuid: Uuid,
    object_uuid: Option<Uuid>,
    a: &Attribute,
) -> AttributeEnvelope<'_> {
    AttributeEnvelope {
        attribute: AttributeForm {
            sharing_group: sg(&a.sharing_group),
            tags: TagsForm(&a.tags),
            category: &a.category,
            comment: &a.comment,
            data: a.data.as_deref(),
            deleted: a.deleted,
            disable_correlation: a.disable_correlation,
            distribution: a.distribution,
            first_seen: a.first_seen,
            last_seen: a.last_seen,
            object_relation: a.object_relation.as_deref(),
            timestamp: a.timestamp,
            to_ids: a.to_ids,
            attr_type: &a.attr_type,
            uuid: a.uuid,
            value: &a.value,
        },
        event_uuid,
        kind: KIND_ATTRIBUTE,
        object_uuid,
    }
}

fn object_envelope(event_uuid: Uuid, o: &Object) -> ObjectEnvelope<'_> {
    ObjectEnvelope {
        object: ObjectForm {
            sharing_group: sg(&o.sharing_group),
            comment: &o.comment,
            deleted: o.deleted,
            description: &o.description,
            distribution: o.distribution,
            first_seen: o.first_seen,
            last_seen: o.last_seen,
            meta_category: &o.meta_category,
            name: &o.name,
            template_uuid: &o.template_uuid,
            template_version: &o.template_version,
            timestamp: o.timestamp,
            uuid: o.uuid,
        },
        event_uuid,
        kind: KIND_OBJECT,
    }
}

fn reference_envelope(
    event_uuid: Uuid,
    object_uuid: Uuid,
    r: &ObjectReference,
) -> ReferenceEnvelope<'_> {
    ReferenceEnvelope {
        reference: ReferenceForm {
            comment: &r.comment,
            deleted: r.deleted,
            object_uuid: r.object_uuid,
            referenced_type: r.referenced_type,
            referenced_uuid: r.referenced_uuid,
            relationship_type: &r.relationship_type,
            timestamp: r.timestamp,
            uuid: r.uuid,
        },
        event_uuid,
        kind: KIND_OBJECT_REFERENCE,
        object_uuid,
    }
}

fn report_envelope(event_uuid: Uuid, r: &EventReport) -> ReportEnvelope<'_> {
    ReportEnvelope {
        report: ReportForm {
            sharing_group: sg(&r.sharing_group),
            content: &r.content,
            deleted: r.deleted,
            distribution: r.distribution,
            name: &r.name,
            timestamp: r.timestamp,
            uuid: r.uuid,
        },
        event_uuid,
        kind: KIND_EVENT_REPORT,
    }
}

/// Digest of the event header: the event's own fields and travelling tags.
pub fn header_digest(event: &Event) -> Result<Digest, SealError> {
    digest_form("the event header", &header_envelope(event))
}

/// Digest of an attribute; `object_uuid` is the object holding it, if any.
pub fn attribute_digest(
    event_uuid: Uuid,
    object_uuid: Option<Uuid>,
    a: &Attribute,
) -> Result<Digest, SealError> {
    digest_form(
        "an attribute",
        &attribute_envelope(event_uuid, object_uuid, a),
    )
}

/// Digest of an object without its attributes and references.
pub fn object_digest(event_uuid: Uuid, o: &Object) -> Result<Digest, SealError> {
    digest_form("an object", &object_envelope(event_uuid, o))
}

/// Digest of a reference held by the object `object_uuid`.
pub fn reference_digest(
    event_uuid: Uuid,
    object_uuid: Uuid,
    r: &ObjectReference,
) -> Result<Digest, SealError> {
    digest_form(
        "an object reference",
        &reference_envelope(event_uuid, object_uuid, r),
    )
}

/// Digest of an event report.
pub fn report_digest(event_uuid: Uuid, r: &EventReport) -> Result<Digest, SealError> {
    digest_form("an event report", &report_envelope(event_uuid, r))
}

/// Calls `f` with every element of `event` and its digest: top-level attributes,
/// objects, their attributes and references, reports. Stops at the first error.
pub fn for_each_element(
    event: &Event,
    mut f: impl FnMut(ElementRef, Digest) -> Result<(), SealError>,
) -> Result<(), SealError> {
    let eu = event.uuid;
    let el = |kind, uuid| ElementRef { kind, uuid };
    for a in &event.attributes {
        f(
            el(ElementKind::Attribute, a.uuid),
            attribute_digest(eu, None, a)?,
        )?;
    }
    for o in &event.objects {
        f(el(ElementKind::Object, o.uuid), object_digest(eu, o)?)?;
        for a in &o.attributes {
            f(
                el(ElementKind::Attribute, a.uuid),
                attribute_digest(eu, Some(o.uuid), a)?,
            )?;
        }
        for r in &o.references {
            f(
                el(ElementKind::ObjectReference, r.uuid),
                reference_digest(eu, o.uuid, r)?,
            )?;
        }
    }
    for r in &event.reports {
        f(el(ElementKind::EventReport, r.uuid), report_digest(eu, r)?)?;
    }
    Ok(())
}

/// Every element of `event` with its digest, in event order.
pub fn element_digests(event: &Event) -> Result<Vec<(ElementRef, Digest)>, SealError> {
    let mut out = Vec::with_capacity(element_count(event));
    for_each_element(event, |r, d| {
        out.push((r, d));
        Ok(())
    })?;
    Ok(out)
}

/// How many elements `event` holds (what a seal over it lists).
pub fn element_count(event: &Event) -> usize {
    event.attributes.len()
        + event.reports.len()
        + event
            .objects
            .iter()
            .map(|o| 1 + o.attributes.len() + o.references.len())
            .sum::<usize>()
}

/// The canonical signed forms themselves, as text, labelled (`Event <uuid>`,
/// `Attribute <uuid>`, …): for diagnostics (what exactly was signed?) and tests.
pub fn signed_forms_jcs(event: &Event) -> Result<Vec<(String, String)>, SealError> {
    fn text<T: Serialize>(label: String, form: &T) -> Result<(String, String), SealError> {
        let bytes = to_jcs_vec(form)?;
        Ok((label, String::from_utf8_lossy(&bytes).into_owned()))
    }
    let eu = event.uuid;
    let mut out = vec![text(format!("Event {eu}"), &header_envelope(event))?];
    for a in &event.attributes {
        out.push(text(
            format!("Attribute {}", a.uuid),
            &attribute_envelope(eu, None, a),
        )?);
    }
    for o in &event.objects {
        out.push(text(format!("Object {}", o.uuid), &object_envelope(eu, o))?);
        for a in &o.attributes {
            out.push(text(
                format!("Attribute {}", a.uuid),
                &attribute_envelope(eu, Some(o.uuid), a),
            )?);
        }
        for r in &o.references {
            out.push(text(
                format!("ObjectReference {}", r.uuid),
                &reference_envelope(eu, o.uuid, r),
            )?);
        }
    }
    for r in &event.reports {
        out.push(text(
            format!("EventReport {}", r.uuid),
            &report_envelope(eu, r),
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse::parse_event;
    use crate::model::validate::validate_event;

    fn event() -> Event {
        let json = r##"{"Event":{"id":"12","uuid":"5c1b1cc1-0000-4000-8000-0000000000e1","info":"Phish",
            "date":"2024-05-01","threat_level_id":"2","analysis":"1","distribution":"3",
            "published":true,"timestamp":"1714550000","publish_timestamp":"1714550100",
            "locked":true,"org_id":"3","orgc_id":"4","attribute_count":"3","sharing_group_id":"0",
            "Org":{"id":"3","name":"LOCAL","uuid":"5c1b1cc1-0000-4000-8000-00000000000a"},
            "Orgc":{"id":"4","name":"CERT-A","uuid":"5c1b1cc1-0000-4000-8000-00000000000b"},
            "Tag":[{"id":"9","name":"tlp:green","colour":"#339900"},
                   {"name":"mine","local":true},{"name":"internal","exportable":false}],
            "Attribute":[{"id":"100","event_id":"12","uuid":"5c1b1cc1-0000-4000-8000-000000000a01",
               "type":"ip-dst","value":"203.0.113.7","timestamp":"1714549990","comment":"c2 \"quoted\"\n",
               "Tag":[{"name":"b"},{"name":"a"}],
               "Sighting":[{"uuid":"5c1b1cc1-0000-4000-8000-000000005101","date_sighting":"1714550000"}]}],
            "Object":[{"id":"7","event_id":"12","name":"domain-ip","uuid":"5c1b1cc1-0000-4000-8000-000000000b01",
               "Attribute":[{"uuid":"5c1b1cc1-0000-4000-8000-000000000a02","type":"domain",
                  "object_relation":"domain","value":"evil.example"}],
               "ObjectReference":[{"id":"55","uuid":"5c1b1cc1-0000-4000-8000-000000000c01",
                  "referenced_uuid":"5c1b1cc1-0000-4000-8000-000000000a01","referenced_type":"0",
                  "relationship_type":"related-to"}]}],
            "EventReport":[{"uuid":"5c1b1cc1-0000-4000-8000-000000000d01","name":"Summary","content":"é 😀"}]}}"##;
        let mut e = parse_event(json.as_bytes(), 1 << 20).unwrap();
        validate_event(&mut e, 1_714_550_000).unwrap();
        e
    }

    #[test]
    fn forms_leave_out_local_fields() {
        let e = event();
        let forms = signed_forms_jcs(&e).unwrap();
        let header = &forms[0].1;
        for local in [
            "\"id\"",
            "org_id",
            "\"Org\"",
            "locked",
            "attribute_count",
            "published",
            "publish_timestamp",
            "sighting_timestamp",
            "sharing_group_id",
            "colour",
            "mine",
            "internal",
            "Seal",
        ] {
            assert!(!header.contains(local), "{local} in {header}");
        }
        assert!(
            header.contains(
                r#""Orgc":{"name":"CERT-A","uuid":"5c1b1cc1-0000-4000-8000-00000000000b"}"#
            ),
            "{header}"
        );
        assert!(
            header.contains(r#""Tag":[{"name":"tlp:green","relationship_type":null}]"#),
            "{header}"
        );
        assert!(header.ends_with(r#","kind":"sluis-v1/event"}"#), "{header}");

        let attr = &forms[1].1;
        assert!(
            attr.starts_with(r#"{"Attribute":{"SharingGroup":null,"Tag":[{"name":"a","#),
            "{attr}"
        );
        for local in [
            "\"id\"",
            "event_id",
            "object_id",
            "sharing_group_id",
            "Sighting",
        ] {
            assert!(!attr.contains(local), "{local} in {attr}");
        }
        assert!(attr.contains(r#""comment":"c2 \"quoted\"\n""#), "{attr}");
        assert!(attr.contains(r#""distribution":"5""#), "{attr}");
        assert!(attr.ends_with(r#""event_uuid":"5c1b1cc1-0000-4000-8000-0000000000e1","kind":"sluis-v1/attribute","object_uuid":null}"#), "{attr}");

        assert!(forms[2].1.contains(r#""kind":"sluis-v1/object""#));
        assert!(
            !forms[2].1.contains("evil.example"),
            "object form holds no attributes"
        );
        assert!(forms[3]
            .1
            .contains(r#""object_uuid":"5c1b1cc1-0000-4000-8000-000000000b01"}"#));
        assert!(forms[4]
            .1
            .contains(r#""ObjectReference":{"comment":"","deleted":false,"object_uuid""#));
        assert!(forms[5].1.contains("é 😀"));
        assert_eq!(forms.len(), 1 + element_count(&e));
    }

    #[test]
    fn local_changes_keep_every_digest() {
        let e = event();
        let before = (header_digest(&e).unwrap(), element_digests(&e).unwrap());
        let mut l = e.clone();
        l.id = Some(999);
        l.locked = false;
        l.published = false;
        l.publish_timestamp = 1;
        l.sighting_timestamp = 2;
        l.attribute_count = Some(1);
        l.org = None;
        if let Some(o) = &mut l.orgc {
            o.id = Some(77);
        }
        l.tags.reverse();
        l.tags[0].colour = "#000000".into();
        l.tags.push(crate::model::Tag {
            local: true,
            ..crate::model::Tag::named("x")
        });
        l.attributes[0].id = Some(5);
        l.attributes[0].event_id = Some(6);
        l.attributes[0].sightings.clear();
        l.attributes[0].tags.reverse();
        l.objects[0].id = Some(1);
        l.objects[0].references[0].id = None;
        l.reports[0].event_id = Some(3);
        assert_eq!(
            (header_digest(&l).unwrap(), element_digests(&l).unwrap()),
            before
        );
        // The portable form (what the store compares) has the same digests too.
        let p = e.portable();
        assert_eq!(header_digest(&p).unwrap(), before.0);
        let mut a: Vec<Digest> = element_digests(&p)
            .unwrap()
            .into_iter()
            .map(|x| x.1)
            .collect();
        let mut b: Vec<Digest> = before.1.iter().map(|x| x.1).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn kinds_and_places_separate_digests() {
        let e = event();
        let a = &e.attributes[0];
        let top = attribute_digest(e.uuid, None, a).unwrap();
        assert_ne!(
            top,
            attribute_digest(e.uuid, Some(e.objects[0].uuid), a).unwrap()
        );
        assert_ne!(top, attribute_digest(Uuid::from_u128(1), None, a).unwrap());
        let kinds = [
            KIND_EVENT,
            KIND_ATTRIBUTE,
            KIND_OBJECT,
            KIND_OBJECT_REFERENCE,
            KIND_EVENT_REPORT,
        ];
        let set: std::collections::HashSet<_> = kinds.iter().collect();
        assert_eq!(set.len(), kinds.len());
    }

    #[test]
    fn wire_round_trip_and_revalidation_keep_digests() {
        let e = event();
        let before = element_digests(&e).unwrap();
        let json = serde_json::to_vec(&crate::model::event::Wrapped { event: &e }).unwrap();
        let mut back = parse_event(&json, 1 << 20).unwrap();
        validate_event(&mut back, 1_800_000_000).unwrap();
        assert_eq!(header_digest(&back).unwrap(), header_digest(&e).unwrap());
        assert_eq!(element_digests(&back).unwrap(), before);
    }
}
