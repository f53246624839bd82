//! Every real MISP sample that holds an event imports through `sluis import`, and
//! `sluis export --format misp` gives it back: same uuids, values, types,
//! categories, tags, objects, references and sightings, compared field by field
//! against the original JSON (not against our own parser's idea of it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

fn s(v: &Value, k: &str) -> Option<String> {
    match v.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

fn b(v: &Value, k: &str) -> Option<bool> {
    match v.get(k)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(s == "1" || s == "true"),
        Value::Number(n) => Some(n.as_u64() == Some(1)),
        _ => None,
    }
}

fn list<'a>(v: &'a Value, k: &str) -> Vec<&'a Value> {
    v.get(k)
        .and_then(|x| x.as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn tag_names(v: &Value) -> BTreeSet<String> {
    list(v, "Tag").iter().filter_map(|t| s(t, "name")).collect()
}

/// Checks `field` of `got` equals the original's, when the original has it.
fn same(ctx: &str, orig: &Value, got: &Value, field: &str, problems: &mut Vec<String>) {
    if let Some(o) = s(orig, field) {
        let g = s(got, field);
        if g.as_deref() != Some(o.as_str()) {
            problems.push(format!("{ctx}: {field}: expected {o:?}, got {g:?}"));
        }
    }
}

fn compare_attribute(ctx: &str, o: &Value, g: &Value, problems: &mut Vec<String>) {
    // Values come back in MISP's normalised form: MISP itself rewrites a `datetime`
    // to ISO 8601 and strips line breaks from an `ssdeep` on save. Anything else
    // must be byte-identical.
    if let (Some(t), Some(ov), Some(gv)) = (s(o, "type"), s(o, "value"), s(g, "value")) {
        if ov != gv {
            let normalised = sluis::model::value::normalise(&t, &ov).ok();
            let allowed = matches!(t.as_str(), "datetime" | "ssdeep")
                && normalised.as_deref() == Some(gv.as_str());
            if !allowed {
                problems.push(format!("{ctx}: value: expected {ov:?}, got {gv:?}"));
            }
        }
    }
    for f in [
        "uuid",
        "type",
        "category",
        "comment",
        "distribution",
        "object_relation",
        "timestamp",
        "first_seen",
        "last_seen",
    ] {
        same(ctx, o, g, f, problems);
    }
    for f in ["to_ids", "deleted", "disable_correlation"] {
        if let Some(ov) = b(o, f) {
            if b(g, f) != Some(ov) {
                problems.push(format!("{ctx}: {f}: expected {ov}, got {:?}", b(g, f)));
            }
        }
    }
    if tag_names(o) != tag_names(g) {
        problems.push(format!(
            "{ctx}: tags: expected {:?}, got {:?}",
            tag_names(o),
            tag_names(g)
        ));
    }
    let got_s: HashMap<String, &Value> = list(g, "Sighting")
        .into_iter()
        .filter_map(|x| Some((s(x, "uuid")?, x)))
        .collect();
    let orig_s = list(o, "Sighting");
    if orig_s.len() != got_s.len() {
        problems.push(format!(
            "{ctx}: {} sightings expected, got {}",
            orig_s.len(),
            got_s.len()
        ));
    }
    for os in orig_s {
        let u = s(os, "uuid").unwrap_or_default();
        match got_s.get(&u) {
            None => problems.push(format!("{ctx}: sighting {u} missing")),
            Some(gs) => {
                let sctx = format!("{ctx} › Sighting {u}");
                for f in ["date_sighting", "type", "source"] {
                    same(&sctx, os, gs, f, problems);
                }
                if let (Some(oo), Some(go)) = (os.get("Organisation"), gs.get("Organisation")) {
                    same(&sctx, oo, go, "uuid", problems);
                    same(&sctx, oo, go, "name", problems);
                }
            }
        }
    }
}

/// Matches attributes by uuid, or by (type, value) when the original has no uuid.
fn compare_attributes(ctx: &str, orig: Vec<&Value>, got: Vec<&Value>, problems: &mut Vec<String>) {
    if orig.len() != got.len() {
        problems.push(format!(
            "{ctx}: {} attributes expected, got {}",
            orig.len(),
            got.len()
        ));
    }
    for oa in orig {
        let found = got.iter().find(|ga| match s(oa, "uuid") {
            Some(u) => s(ga, "uuid").as_deref() == Some(u.as_str()),
            None => s(ga, "type") == s(oa, "type") && s(ga, "value") == s(oa, "value"),
        });
        let actx = format!(
            "{ctx} › Attribute {}",
            s(oa, "uuid").unwrap_or_else(|| s(oa, "value").unwrap_or_default())
        );
        match found {
            Some(ga) => compare_attribute(&actx, oa, ga, problems),
            None => problems.push(format!("{actx}: missing from export")),
        }
    }
}

fn compare_event(file: &str, o: &Value, g: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let ctx = format!("{file}: Event");
    for f in [
        "uuid",
        "info",
        "date",
        "threat_level_id",
        "analysis",
        "distribution",
        "timestamp",
        "publish_timestamp",
        "extends_uuid",
    ] {
        same(&ctx, o, g, f, &mut p);
    }
    if let Some(pb) = b(o, "published") {
        if b(g, "published") != Some(pb) {
            p.push(format!("{ctx}: published differs"));
        }
    }
    if let (Some(oo), Some(go)) = (o.get("Orgc"), g.get("Orgc")) {
        same(&format!("{ctx} › Orgc"), oo, go, "uuid", &mut p);
        same(&format!("{ctx} › Orgc"), oo, go, "name", &mut p);
    }
    if tag_names(o) != tag_names(g) {
        p.push(format!(
            "{ctx}: tags: expected {:?}, got {:?}",
            tag_names(o),
            tag_names(g)
        ));
    }
    compare_attributes(&ctx, list(o, "Attribute"), list(g, "Attribute"), &mut p);
    let orig_objs = list(o, "Object");
    let got_objs = list(g, "Object");
    if orig_objs.len() != got_objs.len() {
        p.push(format!(
            "{ctx}: {} objects expected, got {}",
            orig_objs.len(),
            got_objs.len()
        ));
    }
    for oo in orig_objs {
        let u = s(oo, "uuid").unwrap_or_default();
        let octx = format!("{ctx} › Object {u}");
        let Some(go) = got_objs
            .iter()
            .find(|x| s(x, "uuid").as_deref() == Some(u.as_str()))
        else {
            p.push(format!("{octx}: missing"));
            continue;
        };
        for f in [
            "name",
            "meta-category",
            "template_uuid",
            "template_version",
            "distribution",
            "timestamp",
            "comment",
        ] {
            same(&octx, oo, go, f, &mut p);
        }
        compare_attributes(&octx, list(oo, "Attribute"), list(go, "Attribute"), &mut p);
        let orefs = list(oo, "ObjectReference");
        let grefs = list(go, "ObjectReference");
        if orefs.len() != grefs.len() {
            p.push(format!(
                "{octx}: {} references expected, got {}",
                orefs.len(),
                grefs.len()
            ));
        }
        for or in orefs {
            let ru = s(or, "uuid").unwrap_or_default();
            let rctx = format!("{octx} › ObjectReference {ru}");
            match grefs
                .iter()
                .find(|x| s(x, "uuid").as_deref() == Some(ru.as_str()))
            {
                None => p.push(format!("{rctx}: missing")),
                Some(gr) => {
                    for f in [
                        "referenced_uuid",
                        "relationship_type",
                        "object_uuid",
                        "comment",
                        "timestamp",
                    ] {
                        same(&rctx, or, gr, f, &mut p);
                    }
                }
            }
        }
    }
    p
}

#[test]
fn every_sample_event_round_trips_field_by_field() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for (path, orig) in sample_events() {
        let node = TestNode::new();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let out = node.sluis(&["import", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{name}: import failed:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).starts_with("accepted\t"),
            "{name}: {}",
            stdout(&out)
        );
        let out = node.sluis(&["export", "--format", "misp", "--include-deleted"]);
        assert!(
            out.status.success(),
            "{name}: export failed: {}",
            stderr(&out)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).expect("export is JSON");
        let events = doc["response"].as_array().expect("response list");
        assert_eq!(events.len(), 1, "{name}");
        problems.extend(compare_event(&name, &orig, &events[0]["Event"]));
        checked += 1;
    }
    assert!(checked >= 15);
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn re_import_of_own_export_is_unchanged() {
    let node = TestNode::new();
    let out = node.sluis(&[
        "import",
        samples_dir().join("long_event.json").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let out = node.sluis(&["export", "--format", "misp", "--include-deleted"]);
    let file = node.dir.path().join("export.json");
    std::fs::write(&file, &out.stdout).unwrap();
    let out = node.sluis(&["import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("unchanged\t"), "{}", stdout(&out));
}
