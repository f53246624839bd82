//! MISP object templates: check that an object's attributes fit the template it names.
//!
//! The templates are the public `misp-objects` definitions, vendored in compact form as
//! `data/object-templates.json` by `scripts/vendor-misp-objects.py` (attribution in
//! `data/NOTICE.md`). They are embedded in the binary so validation needs no files at run
//! time and gives the same answer on every node of a federation running the same build.
//!
//! # How this compares with MISP
//!
//! MISP itself is lax. `ObjectTemplate::checkTemplateConformity` (run when an object is
//! added through `objects/add`) checks only the template's `required` and `requiredOneOf`
//! lists and the `multiple` flag, and `MispObject::captureObject` (event import and sync)
//! runs no template check at all. [`validate_object`] is stricter on purpose, because a
//! relation name or type that is not in the template is almost always a producer bug
//! that breaks correlation and exports further down the line:
//!
//! * a relation must exist in the template, and its attribute type must be the
//!   template's `misp-attribute`;
//! * the `template_uuid`, when given, must be the template's uuid.
//!
//! It checks neither `multiple` nor the template *version*: objects created with an older
//! template version are accepted as long as they fit the current definition.
//!
//! Every object in the PyMISP sample events (`tests/data/misp`, objects made
//! with `file` template versions 4 to 17 while the vendored one is 25, `domain-ip` 5 of 11,
//! `pe` 3 of 11, …) passes all of these rules, so none of them had to be relaxed;
//! `tests::every_sample_object_validates` keeps it that way. Should real data from an
//! older template conflict with a rule, relax that rule here the way MISP does (it
//! enforces only the requirement lists and `multiple`) rather than rejecting the event.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::Deserialize;

/// Why an object does not fit its template. Every message names the template, and the
/// relation where there is one, so an operator can find the faulty object in a large
/// event without a debugger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The object's `name` is not a vendored template (typo, or a private template).
    #[error("unknown object template {name:?}")]
    UnknownTemplate { name: String },

    /// The object names a template but carries another template's uuid, so the
    /// producer and this node disagree about what the object is.
    #[error("template_uuid {got:?} does not match template {name:?} (expected {expected})")]
    UuidMismatch {
        name: String,
        got: String,
        expected: String,
    },

    /// Relations listed in the template's `required` list are absent (all are listed).
    #[error("object {name:?} is missing required relation(s): {}", .missing.join(", "))]
    MissingRequired { name: String, missing: Vec<String> },

    /// None of the relations of the template's `requiredOneOf` list is present.
    #[error("object {name:?} needs one of: {}", .one_of.join(", "))]
    MissingOneOf { name: String, one_of: Vec<String> },

    /// The object uses a relation the template does not define.
    #[error("relation {relation:?} is not part of template {name:?}")]
    UnknownRelation { name: String, relation: String },

    /// The relation exists but its attribute has another MISP type than the template's.
    #[error("relation {relation:?} of template {name:?} must have type {expected}, got {got}")]
    TypeMismatch {
        name: String,
        relation: String,
        expected: String,
        got: String,
    },
}

/// One MISP object template (the parts of `definition.json` that validation and
/// object creation need).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    pub uuid: String,
    /// Template version; objects carry the version they were built with as
    /// `template_version`, which may be older than this one.
    pub version: u32,
    #[serde(rename = "meta-category")]
    pub meta_category: String,
    pub description: String,
    /// Relations that must all be present, in template order.
    pub required: Vec<String>,
    /// At least one of these must be present; empty when the template has no such rule.
    #[serde(rename = "requiredOneOf")]
    pub required_one_of: Vec<String>,
    /// The template's relations, keyed by `object_relation`.
    #[serde(rename = "attributes")]
    pub relations: HashMap<String, Relation>,
}

/// One relation (attribute slot) of a template.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    /// The MISP attribute type a value in this slot must have.
    #[serde(rename = "misp-attribute")]
    pub misp_attribute: String,
    /// Categories allowed for the attribute; `None` means the type's usual categories.
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// May the object hold several attributes with this relation?
    #[serde(default)]
    pub multiple: bool,
    /// Should attributes in this slot be excluded from correlation by default?
    #[serde(default)]
    pub disable_correlation: bool,
    /// Default `to_ids` for this slot, when the template sets one.
    #[serde(default)]
    pub to_ids: Option<bool>,
}

impl Template {
    /// The template's definition of `relation`, if it has one.
    pub fn relation(&self, relation: &str) -> Option<&Relation> {
        self.relations.get(relation)
    }
}

/// Layout of `data/object-templates.json` as written by the vendoring script.
#[derive(Deserialize)]
struct Vendored {
    templates: Vec<Template>,
    relationships: Vec<String>,
    // `generated_by` and `relationships_version` are provenance for humans; serde skips them.
}

struct Registry {
    by_name: HashMap<String, Template>,
    relationships: HashSet<String>,
}

const VENDORED_JSON: &str = include_str!("data/object-templates.json");

/// The parsed templates. A process-wide `OnceLock` is fine here: the data is immutable,
/// compiled into the binary and identical for every caller, so there is nothing to
/// configure, invalidate or isolate between tests; parsing it once (about half a
/// megabyte) on first use keeps startup cheap for commands that never validate objects.
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        // Invariant: the JSON is generated by scripts/vendor-misp-objects.py, embedded at
        // compile time and fully parsed by `tests::vendored_data_is_consistent`, so a parse
        // failure can only come from a hand-edited, untested file; refusing to run is right.
        #[allow(
            clippy::expect_used,
            reason = "a compile-time constant, parsed by a unit test"
        )]
        let vendored: Vendored = serde_json::from_str(VENDORED_JSON)
            .expect("vendored data/object-templates.json must parse (see unit tests)");
        Registry {
            by_name: vendored
                .templates
                .into_iter()
                .map(|t| (t.name.clone(), t))
                .collect(),
            relationships: vendored.relationships.into_iter().collect(),
        }
    })
}

/// The vendored template called `name` (MISP looks templates up by object name).
pub fn template(name: &str) -> Option<&'static Template> {
    registry().by_name.get(name)
}

/// Every vendored template, by name: the order that gives `objectTemplates`
/// their numeric ids (1, 2, …), stable for a given vendored set.
pub fn templates() -> Vec<&'static Template> {
    let mut all: Vec<&'static Template> = registry().by_name.values().collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// Check one object: template known by name; if `template_uuid` is Some and non-empty it
/// must equal the template's uuid; `attrs` are the object's non-deleted attributes as
/// (object_relation, attribute type); required relations present; at least one of
/// requiredOneOf present (when the template has it); every relation exists in the
/// template and its type matches the template's misp-attribute.
///
/// Relations and types are checked before the requirement lists, so that a misspelt
/// relation is reported as such instead of as the missing relation it was meant to be.
/// Only the first problem is returned; it is enough to reject the object.
///
/// The uuid is compared case-insensitively, since UUIDs are case-insensitive (RFC 9562)
/// and some producers upper-case them. An empty `template_uuid` counts as absent: it
/// makes no claim about the template, and the object is still checked against its name.
pub fn validate_object(
    name: &str,
    template_uuid: Option<&str>,
    attrs: &[(&str, &str)],
) -> Result<(), TemplateError> {
    let tpl = template(name).ok_or_else(|| TemplateError::UnknownTemplate {
        name: name.to_owned(),
    })?;

    if let Some(got) = template_uuid.filter(|u| !u.is_empty()) {
        if !got.eq_ignore_ascii_case(&tpl.uuid) {
            return Err(TemplateError::UuidMismatch {
                name: tpl.name.clone(),
                got: got.to_owned(),
                expected: tpl.uuid.clone(),
            });
        }
    }

    for &(relation, attr_type) in attrs {
        let spec = tpl
            .relation(relation)
            .ok_or_else(|| TemplateError::UnknownRelation {
                name: tpl.name.clone(),
                relation: relation.to_owned(),
            })?;
        if spec.misp_attribute != attr_type {
            return Err(TemplateError::TypeMismatch {
                name: tpl.name.clone(),
                relation: relation.to_owned(),
                expected: spec.misp_attribute.clone(),
                got: attr_type.to_owned(),
            });
        }
    }

    let present: HashSet<&str> = attrs.iter().map(|&(relation, _)| relation).collect();

    let missing: Vec<String> = tpl
        .required
        .iter()
        .filter(|r| !present.contains(r.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(TemplateError::MissingRequired {
            name: tpl.name.clone(),
            missing,
        });
    }

    if !tpl.required_one_of.is_empty()
        && !tpl
            .required_one_of
            .iter()
            .any(|r| present.contains(r.as_str()))
    {
        return Err(TemplateError::MissingOneOf {
            name: tpl.name.clone(),
            one_of: tpl.required_one_of.clone(),
        });
    }

    Ok(())
}

/// Is this a relationship type of the misp-objects vocabulary (object references)?
///
/// Advisory only: MISP accepts any free-text `relationship_type` on an object reference,
/// and real data uses names outside the vocabulary (the PyMISP sample `mainly_objects_1`
/// links `pe` to `file` objects with `header-of`), so callers should warn, not reject.
pub fn is_known_relationship(rel: &str) -> bool {
    registry().relationships.contains(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    #[test]
    fn vendored_data_is_consistent() {
        #[allow(
            clippy::expect_used,
            reason = "a compile-time constant, parsed by a unit test"
        )]
        let vendored: Vendored = serde_json::from_str(VENDORED_JSON).unwrap();
        assert!(vendored.templates.len() > 400, "too few templates vendored");
        assert_eq!(
            registry().by_name.len(),
            vendored.templates.len(),
            "duplicate template names"
        );
        for t in &vendored.templates {
            assert!(!t.relations.is_empty(), "{} has no relations", t.name);
            for r in t.required.iter().chain(&t.required_one_of) {
                assert!(
                    t.relations.contains_key(r),
                    "{} requires undefined relation {r}",
                    t.name
                );
            }
        }
        let file = template("file").unwrap();
        assert_eq!(file.uuid, "688c46fb-5edb-40a3-8273-1af7923e2215");
        assert_eq!(file.meta_category, "file");
        assert!(file.relation("filename").unwrap().multiple);
        assert_eq!(file.relation("md5").unwrap().misp_attribute, "md5");
        assert!(is_known_relationship("communicates-with"));
        assert!(is_known_relationship("included-in"));
        assert!(!is_known_relationship("not-a-relationship"));
    }

    /// Sample events, either `{"Event": …}` or a bare event; lists (index results) are
    /// not events and are skipped.
    fn sample_events() -> Vec<(String, Value)> {
        let dir = crate::testdata::misp_samples_dir();
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "MISP sample events not found at {} ({e}); they are vendored in \
                 tests/data/misp",
                dir.display()
            )
        });
        let mut paths: Vec<_> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut events = Vec::new();
        for p in paths {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            if v.is_array() {
                continue;
            }
            let ev = v.get("Event").cloned().unwrap_or(v);
            events.push((p.file_name().unwrap().to_string_lossy().into_owned(), ev));
        }
        assert!(!events.is_empty(), "no sample events in {}", dir.display());
        events
    }

    fn objects(ev: &Value) -> &[Value] {
        ev.get("Object")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    #[test]
    fn every_sample_object_validates() {
        let mut checked = 0;
        for (file, ev) in sample_events() {
            for obj in objects(&ev) {
                let name = obj["name"].as_str().unwrap();
                let uuid = obj.get("template_uuid").and_then(Value::as_str);
                let attrs: Vec<(&str, &str)> = obj
                    .get("Attribute")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .filter(|a| !a.get("deleted").and_then(Value::as_bool).unwrap_or(false))
                    .map(|a| {
                        (
                            a["object_relation"].as_str().unwrap(),
                            a["type"].as_str().unwrap(),
                        )
                    })
                    .collect();
                if let Err(e) = validate_object(name, uuid, &attrs) {
                    panic!("{file}: object {}: {e}", obj["uuid"]);
                }
                checked += 1;
            }
        }
        // 49 + 49 (existing_event[_edited]) + 2 (galaxy_1) + 17 (mainly_objects_1) + 5 (to_delete2).
        assert_eq!(checked, 122, "sample set changed");
    }

    /// Pins what the samples taught us: references use relationship types outside the
    /// vocabulary (`header-of`), which is why `is_known_relationship` is advisory only.
    #[test]
    fn sample_reference_relationships() {
        let mut unknown = BTreeSet::new();
        let mut total = 0;
        for (_, ev) in sample_events() {
            for obj in objects(&ev) {
                for r in obj
                    .get("ObjectReference")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice)
                {
                    let rel = r["relationship_type"].as_str().unwrap();
                    total += 1;
                    if !is_known_relationship(rel) {
                        unknown.insert(rel.to_owned());
                    }
                }
            }
        }
        assert_eq!(total, 51);
        assert_eq!(unknown, BTreeSet::from(["header-of".to_owned()]));
    }

    #[test]
    fn unknown_template() {
        let err = validate_object("fiel", None, &[("md5", "md5")]).unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnknownTemplate {
                name: "fiel".into()
            }
        );
        assert_eq!(err.to_string(), "unknown object template \"fiel\"");
    }

    #[test]
    fn missing_required_relation() {
        // av-signature requires both `software` and `signature`.
        let err = validate_object("av-signature", None, &[("datetime", "datetime")]).unwrap_err();
        assert_eq!(
            err,
            TemplateError::MissingRequired {
                name: "av-signature".into(),
                missing: vec!["software".into(), "signature".into()],
            }
        );
        assert_eq!(
            err.to_string(),
            "object \"av-signature\" is missing required relation(s): software, signature"
        );
        let err = validate_object("av-signature", None, &[("software", "text")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "object \"av-signature\" is missing required relation(s): signature"
        );
        assert_eq!(
            validate_object(
                "av-signature",
                None,
                &[("software", "text"), ("signature", "text")]
            ),
            Ok(())
        );
    }

    #[test]
    fn missing_required_one_of() {
        // `entropy` is a file relation outside file's requiredOneOf (which lists filename,
        // size-in-bytes and the hashes, in template order).
        let err = validate_object("file", None, &[("entropy", "float")]).unwrap_err();
        let one_of = template("file").unwrap().required_one_of.clone();
        assert!(one_of.iter().any(|r| r == "md5"));
        assert!(matches!(&err, TemplateError::MissingOneOf { name, .. } if name == "file"));
        assert!(err
            .to_string()
            .starts_with("object \"file\" needs one of: filename, size-in-bytes, authentihash"));
        // No attributes at all fails the same way.
        assert!(matches!(
            validate_object("file", None, &[]),
            Err(TemplateError::MissingOneOf { .. })
        ));
    }

    #[test]
    fn unknown_relation() {
        let err = validate_object("file", None, &[("md5", "md5"), ("foo", "text")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "relation \"foo\" is not part of template \"file\""
        );
        // Reported before the requirement lists, so a typo is named as such.
        let err = validate_object("file", None, &[("filenme", "filename")]).unwrap_err();
        assert!(
            matches!(err, TemplateError::UnknownRelation { relation, .. } if relation == "filenme")
        );
    }

    #[test]
    fn wrong_type() {
        let err = validate_object("file", None, &[("md5", "sha1")]).unwrap_err();
        assert_eq!(
            err,
            TemplateError::TypeMismatch {
                name: "file".into(),
                relation: "md5".into(),
                expected: "md5".into(),
                got: "sha1".into(),
            }
        );
        assert_eq!(
            err.to_string(),
            "relation \"md5\" of template \"file\" must have type md5, got sha1"
        );
    }

    #[test]
    fn template_uuid() {
        let attrs = [("md5", "md5")];
        let uuid = "688c46fb-5edb-40a3-8273-1af7923e2215";
        assert_eq!(validate_object("file", Some(uuid), &attrs), Ok(()));
        assert_eq!(
            validate_object("file", Some(&uuid.to_uppercase()), &attrs),
            Ok(())
        );
        assert_eq!(validate_object("file", Some(""), &attrs), Ok(()));
        assert_eq!(validate_object("file", None, &attrs), Ok(()));

        let other = template("domain-ip").unwrap().uuid.clone();
        let err = validate_object("file", Some(&other), &attrs).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("template_uuid {other:?} does not match template \"file\" (expected {uuid})")
        );
    }
}
