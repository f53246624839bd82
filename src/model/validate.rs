//! The one validator every way into the store goes through (CLI import, the API,
//! records from peers). MISP has had CVEs from sender and receiver validating
//! differently; here there is only this function.
//!
//! Validation also *completes* an event the way MISP does on save: missing UUIDs are
//! generated, missing timestamps and dates filled in, categories and `to_ids` defaulted
//! from the type, values normalised (lower-cased hashes and domains, punycode,
//! compressed IPv6), so that every stored value is in canonical form.

use super::attribute::{Attribute, INHERIT};
use super::event::Event;
use super::object::Object;
use super::{template, time, types, value};
use std::collections::HashSet;
use std::fmt;
use uuid::Uuid;

/// Longest accepted event `info`, attribute `comment` and tag name, as in MISP's schema.
const MAX_INFO: usize = 65_535;
const MAX_TAG: usize = 255;
const MAX_VALUE: usize = 131_072;
/// Cap on problems collected for one event, so a hostile document cannot make the
/// error report itself unbounded.
const MAX_PROBLEMS: usize = 50;

/// One reason an element was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which element: `Event <uuid>`, `Attribute <uuid> (ip-dst)`, `Object <uuid> (file)`…
    pub element: String,
    /// Which field of it.
    pub field: &'static str,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.element, self.field, self.reason)
    }
}

/// Why an event was refused; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.split_first() {
            Some((first, [])) => write!(f, "{first}"),
            Some((first, rest)) => write!(f, "{first} (and {} more)", rest.len()),
            None => f.write_str("invalid event"),
        }
    }
}

struct Ctx {
    problems: Vec<Problem>,
    now: u64,
}

impl Ctx {
    fn fail(&mut self, element: &str, field: &'static str, reason: impl Into<String>) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                element: element.to_owned(),
                field,
                reason: reason.into(),
            });
        }
    }
}

fn uuid_or_new(u: &mut Uuid) {
    if u.is_nil() {
        *u = Uuid::new_v4();
    }
}

/// Validates and completes `event` in place. `now` is the current time in seconds,
/// used for missing timestamps (passed in so tests are deterministic).
pub fn validate_event(event: &mut Event, now: u64) -> Result<(), ValidationError> {
    let mut cx = Ctx {
        problems: Vec::new(),
        now,
    };
    uuid_or_new(&mut event.uuid);
    let el = format!("Event {}", event.uuid);

    event.info = event.info.trim().to_owned();
    if event.info.is_empty() {
        cx.fail(&el, "info", "must not be empty");
    } else if event.info.len() > MAX_INFO {
        cx.fail(&el, "info", format!("longer than {MAX_INFO} bytes"));
    }
    if event.date.trim().is_empty() {
        event.date = time::today();
    } else {
        match time::normalise_date(&event.date) {
            Ok(d) => event.date = d,
            Err(e) => cx.fail(&el, "date", e),
        }
    }
    if !(1..=4).contains(&event.threat_level_id) {
        cx.fail(
            &el,
            "threat_level_id",
            format!("{} is not 1-4", event.threat_level_id),
        );
    }
    if event.analysis > 2 {
        cx.fail(&el, "analysis", format!("{} is not 0-2", event.analysis));
    }
    if event.distribution > 4 {
        cx.fail(
            &el,
            "distribution",
            format!("{} is not 0-4", event.distribution),
        );
    }
    check_sharing_group(
        &mut cx,
        &el,
        event.distribution,
        event.sharing_group_id,
        event.sharing_group.as_ref().map(|s| s.uuid),
    );
    if event.timestamp == 0 {
        event.timestamp = now;
    }
    if let Some(orgc) = &event.orgc {
        if orgc.uuid.is_nil() && orgc.name.trim().is_empty() {
            cx.fail(&el, "Orgc", "needs a uuid or a name");
        }
    }
    check_tags(&mut cx, &el, &mut event.tags);

    let mut seen_uuids: HashSet<Uuid> = HashSet::new();
    seen_uuids.insert(event.uuid);
    let mut triples: HashSet<(String, String, String)> = HashSet::new();
    let default_ts = event.timestamp;
    for attr in &mut event.attributes {
        check_attribute(&mut cx, attr, default_ts, None, &mut seen_uuids);
        if attr.object_relation.is_some() {
            attr.object_relation = None;
        }
        if !attr.deleted {
            let key = (
                attr.value.clone(),
                attr.attr_type.clone(),
                attr.category.clone(),
            );
            if !triples.insert(key) {
                let ael = attr_label(attr);
                cx.fail(
                    &ael,
                    "value",
                    format!(
                        "duplicate: the event already has a {} attribute \"{}\" in category {}",
                        attr.attr_type, attr.value, attr.category
                    ),
                );
            }
        }
    }
    for obj in &mut event.objects {
        check_object(&mut cx, obj, default_ts, &mut seen_uuids);
    }
    for report in &mut event.reports {
        uuid_or_new(&mut report.uuid);
        let rel = format!("EventReport {}", report.uuid);
        if !seen_uuids.insert(report.uuid) {
            cx.fail(&rel, "uuid", "used twice in this event");
        }
        if report.name.trim().is_empty() {
            cx.fail(&rel, "name", "must not be empty");
        }
        if report.distribution > 5 {
            cx.fail(
                &rel,
                "distribution",
                format!("{} is not 0-5", report.distribution),
            );
        }
        check_sharing_group(
            &mut cx,
            &rel,
            report.distribution,
            report.sharing_group_id,
            report.sharing_group.as_ref().map(|s| s.uuid),
        );
        if report.timestamp == 0 {
            report.timestamp = default_ts;
        }
    }
    let live = event.all_attributes().filter(|a| !a.deleted).count();
    event.attribute_count = Some(live as u64);

    if cx.problems.is_empty() {
        Ok(())
    } else {
        Err(ValidationError {
            problems: cx.problems,
        })
    }
}

fn attr_label(a: &Attribute) -> String {
    format!("Attribute {} ({})", a.uuid, a.attr_type)
}

fn check_sharing_group(cx: &mut Ctx, el: &str, dist: u8, sg_id: u64, sg_uuid: Option<Uuid>) {
    if dist == 4 && sg_id == 0 && sg_uuid.is_none_or(|u| u.is_nil()) {
        cx.fail(
            el,
            "sharing_group_id",
            "distribution 4 needs a sharing group",
        );
    }
}

fn check_tags(cx: &mut Ctx, el: &str, tags: &mut Vec<super::tag::Tag>) {
    let mut seen = HashSet::new();
    tags.retain_mut(|t| {
        // Normalised and checked here, on every way in, so a look-alike of a
        // policy tag never enters (see `tag_name`).
        t.name = match super::tag_name::normalise(&t.name) {
            Ok(n) => n,
            Err(e) => {
                cx.fail(el, "Tag", e.to_string());
                return false;
            }
        };
        if t.name.len() > MAX_TAG {
            cx.fail(el, "Tag", format!("tag name longer than {MAX_TAG} bytes"));
            return false;
        }
        t.is_galaxy = t.name.starts_with("misp-galaxy:");
        // The same tag twice is harmless: keep the first, as MISP does.
        seen.insert(t.key())
    });
}

fn check_attribute(
    cx: &mut Ctx,
    attr: &mut Attribute,
    default_ts: u64,
    object: Option<&str>,
    seen_uuids: &mut HashSet<Uuid>,
) {
    uuid_or_new(&mut attr.uuid);
    let el = match object {
        Some(o) => format!("{o} › {}", attr_label(attr)),
        None => attr_label(attr),
    };
    if !seen_uuids.insert(attr.uuid) {
        cx.fail(&el, "uuid", "used twice in this event");
    }
    attr.attr_type = attr.attr_type.trim().to_owned();
    let info = types::type_info(&attr.attr_type);
    match info {
        None => cx.fail(
            &el,
            "type",
            format!("unknown attribute type \"{}\"", attr.attr_type),
        ),
        Some(info) => {
            attr.category = attr.category.trim().to_owned();
            if attr.category.is_empty() {
                attr.category = info.default_category.clone();
            }
            if !types::is_known_category(&attr.category) {
                cx.fail(
                    &el,
                    "category",
                    format!("unknown category \"{}\"", attr.category),
                );
            } else if !types::category_allows(&attr.category, &attr.attr_type) {
                cx.fail(
                    &el,
                    "category",
                    format!(
                        "type {} is not allowed in category \"{}\"",
                        attr.attr_type, attr.category
                    ),
                );
            }
            if attr.to_ids.is_none() {
                attr.to_ids = Some(info.to_ids);
            }
        }
    }
    if attr.value.len() > MAX_VALUE {
        cx.fail(&el, "value", format!("longer than {MAX_VALUE} bytes"));
    } else if attr.value.contains('\0') {
        cx.fail(&el, "value", "contains a NUL character");
    } else {
        match value::normalise(&attr.attr_type, &attr.value) {
            Ok(v) => attr.value = v,
            Err(e) => cx.fail(&el, "value", e.to_string()),
        }
    }
    if attr.distribution > 5 {
        cx.fail(
            &el,
            "distribution",
            format!("{} is not 0-5", attr.distribution),
        );
    }
    check_sharing_group(
        cx,
        &el,
        attr.distribution,
        attr.sharing_group_id,
        attr.sharing_group.as_ref().map(|s| s.uuid),
    );
    if attr.timestamp == 0 {
        attr.timestamp = default_ts;
    }
    if let (Some(f), Some(l)) = (attr.first_seen, attr.last_seen) {
        if l < f {
            cx.fail(&el, "last_seen", "must not be earlier than first_seen");
        }
    }
    if attr.comment.len() > MAX_INFO {
        cx.fail(&el, "comment", format!("longer than {MAX_INFO} bytes"));
    }
    // A file's content (attachments, malware samples): served decoded by
    // `attributes/download`, so it must decode.
    if let Some(d) = attr.data.as_deref().filter(|d| !d.is_empty()) {
        if !is_base64(d) {
            cx.fail(
                &el,
                "data",
                "is not base64 (standard alphabet, padded: RFC 4648 §4)",
            );
        }
    }
    check_tags(cx, &el, &mut attr.tags);
    let parent = attr.uuid;
    for s in &mut attr.sightings {
        uuid_or_new(&mut s.uuid);
        if s.attribute_uuid.is_nil() {
            s.attribute_uuid = parent;
        } else if s.attribute_uuid != parent {
            cx.fail(
                &el,
                "Sighting",
                format!("sighting {} points at another attribute", s.uuid),
            );
        }
        if s.kind > 2 {
            cx.fail(
                &el,
                "Sighting",
                format!("sighting type {} is not 0-2", s.kind),
            );
        }
        if s.date_sighting == 0 {
            s.date_sighting = cx.now;
        }
    }
}

/// Whether `s` is standard, padded base64, checked in 64 KiB pieces so a
/// large file is never decoded whole (this runs on every write of its event).
fn is_base64(s: &str) -> bool {
    use base64::Engine as _;
    const PIECE: usize = 64 * 1024; // a multiple of 4: pieces are whole quads
    let mut buf = vec![0u8; PIECE / 4 * 3];
    let bytes = s.as_bytes();
    let pieces = bytes.len().div_ceil(PIECE);
    bytes.chunks(PIECE).enumerate().all(|(i, piece)| {
        // Padding may only end the whole text.
        (i + 1 == pieces || !piece.contains(&b'='))
            && base64::engine::general_purpose::STANDARD
                .decode_slice(piece, &mut buf)
                .is_ok()
    })
}

fn check_object(cx: &mut Ctx, obj: &mut Object, default_ts: u64, seen_uuids: &mut HashSet<Uuid>) {
    uuid_or_new(&mut obj.uuid);
    let el = format!("Object {} ({})", obj.uuid, obj.name);
    if !seen_uuids.insert(obj.uuid) {
        cx.fail(&el, "uuid", "used twice in this event");
    }
    if obj.distribution > 5 {
        cx.fail(
            &el,
            "distribution",
            format!("{} is not 0-5", obj.distribution),
        );
    }
    check_sharing_group(
        cx,
        &el,
        obj.distribution,
        obj.sharing_group_id,
        obj.sharing_group.as_ref().map(|s| s.uuid),
    );
    if obj.timestamp == 0 {
        obj.timestamp = default_ts;
    }
    let ots = obj.timestamp;
    for attr in &mut obj.attributes {
        check_attribute(cx, attr, ots, Some(&el), seen_uuids);
        match attr.object_relation.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => attr.object_relation = Some(r.to_owned()),
            _ => cx.fail(
                &format!("{el} › {}", attr_label(attr)),
                "object_relation",
                "an object attribute needs its object_relation",
            ),
        }
    }
    if !obj.deleted {
        let live: Vec<(&str, &str)> = obj
            .attributes
            .iter()
            .filter(|a| !a.deleted)
            .filter_map(|a| Some((a.object_relation.as_deref()?, a.attr_type.as_str())))
            .collect();
        let tu = Some(obj.template_uuid.trim()).filter(|s| !s.is_empty());
        if let Err(e) = template::validate_object(&obj.name, tu, &live) {
            cx.fail(&el, "name", e.to_string());
        } else if let Some(t) = template::template(&obj.name) {
            if obj.meta_category.is_empty() {
                obj.meta_category = t.meta_category.clone();
            }
            if obj.description.is_empty() {
                obj.description = t.description.clone();
            }
            if obj.template_uuid.is_empty() {
                obj.template_uuid = t.uuid.clone();
            }
            if obj.template_version.is_empty() {
                obj.template_version = t.version.to_string();
            }
        }
    }
    let parent = obj.uuid;
    for r in &mut obj.references {
        uuid_or_new(&mut r.uuid);
        let rel = format!("{el} › ObjectReference {}", r.uuid);
        if !seen_uuids.insert(r.uuid) {
            cx.fail(&rel, "uuid", "used twice in this event");
        }
        if r.object_uuid.is_nil() {
            r.object_uuid = parent;
        } else if r.object_uuid != parent {
            cx.fail(
                &rel,
                "object_uuid",
                "does not name the object holding the reference",
            );
        }
        if r.referenced_uuid.is_nil() {
            cx.fail(&rel, "referenced_uuid", "missing");
        }
        if r.referenced_type > 1 {
            cx.fail(
                &rel,
                "referenced_type",
                "must be 0 (attribute) or 1 (object)",
            );
        }
        r.relationship_type = r.relationship_type.trim().to_owned();
        if r.relationship_type.is_empty() {
            cx.fail(&rel, "relationship_type", "must not be empty");
        }
        if r.timestamp == 0 {
            r.timestamp = ots;
        }
    }
}

/// Whether an attribute's distribution, after inheritance, is `d`.
pub fn effective_distribution(own: u8, parent: u8) -> u8 {
    if own == INHERIT {
        parent
    } else {
        own
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_checked_piece_by_piece_as_a_whole_would_be() {
        use base64::Engine as _;
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for n in [0, 1, 2, 3, 49_151, 49_152, 49_153, big.len()] {
            let text = base64::engine::general_purpose::STANDARD.encode(&big[..n]);
            assert!(super::is_base64(&text), "{n} bytes");
        }
        let text = base64::engine::general_purpose::STANDARD.encode(&big[..49_150]);
        // Padding inside (a first piece ending "=="), a bad character, a
        // missing pad: all refused, as a whole decode refuses them.
        let inner = format!("{text}{text}");
        assert!(inner.len() > 64 * 1024 && text.ends_with('='));
        assert!(!super::is_base64(&inner));
        assert!(!super::is_base64("not base64 !"));
        assert!(!super::is_base64("QUJD\nRA=="));
        assert!(!super::is_base64("QUI"));
    }

    use super::*;
    use crate::model::parse::parse_event;

    fn ev(json: &str) -> Result<Event, ValidationError> {
        let mut e = parse_event(json.as_bytes(), 1 << 20).unwrap();
        validate_event(&mut e, 1_700_000_000).map(|_| e)
    }

    #[test]
    fn completes_defaults() {
        let e = ev(r#"{"info":" x ","Attribute":[{"type":"MD5x","value":"a"}]}"#);
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("unknown attribute type"));
        let e = ev(r#"{"info":"x","Attribute":[{"type":"md5","value":"D41D8CD98F00B204E9800998ECF8427E"}]}"#)
            .unwrap();
        assert!(!e.uuid.is_nil());
        assert_eq!(e.info, "x");
        assert_eq!(e.timestamp, 1_700_000_000);
        let a = &e.attributes[0];
        assert_eq!(a.category, "Payload delivery");
        assert_eq!(a.to_ids, Some(true));
        assert_eq!(a.value, "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(a.timestamp, 1_700_000_000);
        assert_eq!(e.attribute_count, Some(1));
    }

    #[test]
    fn rejections_name_element_field_reason() {
        let err = ev(r#"{"info":"x","Attribute":[{"uuid":"5c1b1cc1-0000-4000-8000-000000000001","type":"ip-dst","category":"Payload type","value":"1.2.3.4"}]}"#)
            .unwrap_err();
        let p = &err.problems[0];
        assert_eq!(
            p.element,
            "Attribute 5c1b1cc1-0000-4000-8000-000000000001 (ip-dst)"
        );
        assert_eq!(p.field, "category");
        assert!(p.reason.contains("not allowed"), "{}", p.reason);

        let err =
            ev(r#"{"info":"x","Attribute":[{"type":"ip-dst","value":"300.1.1.1"}]}"#).unwrap_err();
        assert_eq!(err.problems[0].field, "value");
        let err = ev(r#"{"info":"x","Attribute":[{"type":"sha256","value":"abc"}]}"#).unwrap_err();
        assert_eq!(err.problems[0].field, "value");
        let err = ev(r#"{"info":""}"#).unwrap_err();
        assert_eq!(err.problems[0].field, "info");
        let err = ev(r#"{"info":"x","distribution":4}"#).unwrap_err();
        assert_eq!(err.problems[0].field, "sharing_group_id");
    }

    #[test]
    fn duplicate_attribute_refused_but_not_in_objects_or_deleted() {
        let err = ev(r#"{"info":"x","Attribute":[{"type":"domain","value":"a.example"},{"type":"domain","value":"A.example"}]}"#)
            .unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
        ev(r#"{"info":"x","Attribute":[{"type":"domain","value":"a.example"},{"type":"domain","value":"a.example","deleted":true}]}"#)
            .unwrap();
    }

    #[test]
    fn uuid_reuse_inside_event_refused() {
        let err = ev(r#"{"info":"x","Attribute":[
            {"uuid":"5c1b1cc1-0000-4000-8000-000000000001","type":"domain","value":"a.example"},
            {"uuid":"5c1b1cc1-0000-4000-8000-000000000001","type":"domain","value":"b.example"}]}"#)
        .unwrap_err();
        assert_eq!(err.problems[0].field, "uuid");
    }

    #[test]
    fn objects_checked_against_template() {
        let err = ev(r#"{"info":"x","Object":[{"name":"fiel","Attribute":[]}]}"#).unwrap_err();
        assert!(err.to_string().contains("fiel"), "{err}");
        let e = ev(r#"{"info":"x","Object":[{"name":"domain-ip","Attribute":[
            {"type":"domain","object_relation":"domain","value":"a.example"},
            {"type":"ip-dst","object_relation":"ip","value":"192.0.2.1"}]}]}"#)
        .unwrap();
        assert!(!e.objects[0].template_uuid.is_empty());
        let err = ev(r#"{"info":"x","Object":[{"name":"domain-ip","Attribute":[
            {"type":"domain","value":"a.example"}]}]}"#)
        .unwrap_err();
        assert!(
            err.problems.iter().any(|p| p.field == "object_relation"),
            "{err}"
        );
    }

    #[test]
    fn problems_are_capped() {
        let attrs: Vec<String> = (0..500)
            .map(|_| r#"{"type":"ip-dst","value":"nope"}"#.to_owned())
            .collect();
        let err = ev(&format!(
            r#"{{"info":"x","Attribute":[{}]}}"#,
            attrs.join(",")
        ))
        .unwrap_err();
        assert_eq!(err.problems.len(), MAX_PROBLEMS);
    }
}
