//! Bad input of every kind is refused with a clear message and changes nothing:
//! the store's full export and its change log are identical before and after.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::json;

/// Everything observable about a store: its full export and its last change number.
fn snapshot(node: &TestNode) -> (Vec<u8>, u64) {
    let store = node.open();
    let mut out = Vec::new();
    sluis::export::export(
        &store,
        &sluis::export::Filter {
            include_deleted: true,
            ..Default::default()
        },
        sluis::export::Format::Misp,
        &mut out,
        &mut |_| {},
    )
    .unwrap();
    (out, store.last_sequence().unwrap())
}

const BASE: &str = "5c1b1cc1-0000-4000-8000-0000000000e1";

fn base_event() -> serde_json::Value {
    json!({"Event": {"uuid": BASE, "info": "baseline", "timestamp": "1700000000", "date": "2024-05-01",
        "Attribute": [{"uuid": "5c1b1cc1-0000-4000-8000-0000000000a1", "type": "ip-dst", "value": "198.51.100.7",
                       "category": "Network activity", "timestamp": "1700000000"}]}})
}

fn node_with_baseline() -> TestNode {
    let node = TestNode::new();
    let f = node.dir.path().join("base.json");
    std::fs::write(&f, base_event().to_string()).unwrap();
    let out = node.sluis(&["import", f.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    node
}

/// Imports `bytes` as a file; asserts it is rejected with `expect` in the report and
/// that nothing changed.
fn assert_rejected(name: &str, bytes: &[u8], expect: &str) {
    let node = node_with_baseline();
    let before = snapshot(&node);
    let f = node.dir.path().join(format!("{name}.json"));
    std::fs::write(&f, bytes).unwrap();
    let out = node.sluis(&["import", f.to_str().unwrap()]);
    let report = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{name}: exit status; report: {report}"
    );
    assert!(report.starts_with("rejected\t"), "{name}: {report}");
    assert!(
        report.contains(expect),
        "{name}: expected {expect:?} in: {report}"
    );
    assert_eq!(snapshot(&node), before, "{name}: the store changed");
}

fn with_attr(attr: serde_json::Value) -> Vec<u8> {
    json!({"Event": {"uuid": "5c1b1cc1-0000-4000-8000-0000000000e2", "info": "bad",
        "Attribute": [{"type": "domain", "value": "good.example"}, attr]}})
    .to_string()
    .into_bytes()
}

#[test]
fn wrong_type_category_pair() {
    assert_rejected(
        "pair",
        &with_attr(json!({"uuid": "5c1b1cc1-0000-4000-8000-0000000000a9", "type": "ip-dst", "category": "Payload type", "value": "192.0.2.1"})),
        "Attribute 5c1b1cc1-0000-4000-8000-0000000000a9 (ip-dst): category: type ip-dst is not allowed in category \"Payload type\"",
    );
}

#[test]
fn bad_ip() {
    assert_rejected(
        "ip",
        &with_attr(json!({"type": "ip-src", "value": "300.1.1.1"})),
        "(ip-src): value:",
    );
}

#[test]
fn bad_hash_length() {
    assert_rejected(
        "hash",
        &with_attr(json!({"type": "sha256", "value": "ab".repeat(31) + "a"})),
        "(sha256): value:",
    );
}

#[test]
fn unknown_object_template() {
    let doc = json!({"Event": {"info": "bad", "Object": [{"name": "not-a-template", "Attribute": [
        {"type": "text", "object_relation": "x", "value": "y"}]}]}});
    assert_rejected(
        "template",
        doc.to_string().as_bytes(),
        "unknown object template \"not-a-template\"",
    );
}

#[test]
fn malformed_json() {
    assert_rejected(
        "malformed",
        br#"{"Event": {"info": "x", "Attribute": [}"#,
        "malformed JSON",
    );
}

#[test]
fn wrong_json_type() {
    let doc = json!({"Event": {"info": "x", "Attribute": [{"type": "domain", "value": "a.example", "to_ids": "perhaps"}]}});
    assert_rejected(
        "types",
        doc.to_string().as_bytes(),
        "Event.Attribute[0].to_ids",
    );
}

#[test]
fn file_of_200_mb() {
    let node = node_with_baseline();
    let before = snapshot(&node);
    let f = node.dir.path().join("huge.json");
    // A sparse file: the size check must refuse it before reading a byte.
    let file = std::fs::File::create(&f).unwrap();
    file.set_len(200 * 1024 * 1024).unwrap();
    let out = node.sluis(&["import", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("larger than the limit"),
        "{}",
        stdout(&out)
    );
    assert_eq!(snapshot(&node), before);
}

#[test]
fn json_nested_100000_deep() {
    let mut doc = String::from(r#"{"Event":{"info":"deep","Attribute":"#);
    doc.push_str(&"[".repeat(100_000));
    doc.push_str(&"]".repeat(100_000));
    doc.push_str("}}");
    assert_rejected("deep", doc.as_bytes(), "recursion limit exceeded");
}

#[test]
fn duplicate_attribute() {
    let doc = json!({"Event": {"info": "dup", "Attribute": [
        {"type": "domain", "value": "evil.example"}, {"type": "domain", "value": "EVIL.example"}]}});
    assert_rejected("dup", doc.to_string().as_bytes(), "duplicate");
}

#[test]
fn duplicate_attribute_against_stored_version() {
    // The update adds a second attribute with the stored one's (value, type, category).
    let mut doc = base_event();
    doc["Event"]["timestamp"] = json!("1700000100");
    doc["Event"]["Attribute"].as_array_mut().unwrap().push(json!(
        {"type": "ip-dst", "value": "198.51.100.7", "category": "Network activity", "timestamp": "1700000100"}));
    doc["Event"]["Attribute"][0]["uuid"] = json!("5c1b1cc1-0000-4000-8000-0000000000b1");
    doc["Event"]["Attribute"].as_array_mut().unwrap().remove(0);
    assert_rejected("dup-stored", doc.to_string().as_bytes(), "duplicate");
}

#[test]
fn update_that_is_not_newer() {
    let mut doc = base_event();
    doc["Event"]["info"] = json!("changed, same timestamp");
    assert_rejected("same-ts", doc.to_string().as_bytes(), "not newer");
    let mut doc = base_event();
    doc["Event"]["timestamp"] = json!("1600000000");
    doc["Event"]["info"] = json!("older");
    assert_rejected("older", doc.to_string().as_bytes(), "not newer");
}

#[test]
fn attribute_uuid_of_another_event() {
    let doc = json!({"Event": {"info": "thief", "Attribute": [
        {"uuid": "5c1b1cc1-0000-4000-8000-0000000000a1", "type": "domain", "value": "x.example"}]}});
    assert_rejected(
        "stolen-uuid",
        doc.to_string().as_bytes(),
        "already used by attribute in event 5c1b1cc1-0000-4000-8000-0000000000e1",
    );
}

#[test]
fn every_problem_names_element_field_and_reason() {
    let node = TestNode::new();
    let f = node.dir.path().join("two.json");
    std::fs::write(&f, with_attr(json!({"type": "md5", "value": "xyz"}))).unwrap();
    let out = node.sluis(&["import", f.to_str().unwrap()]);
    let line = stdout(&out);
    let fields: Vec<&str> = line.trim_end().split('\t').collect();
    assert_eq!(fields[0], "rejected");
    assert_eq!(fields[2], "5c1b1cc1-0000-4000-8000-0000000000e2");
    // "<element>: <field>: <reason>"
    let parts: Vec<&str> = fields[3].splitn(3, ": ").collect();
    assert!(
        parts[0].starts_with("Attribute ") && parts[0].ends_with("(md5)"),
        "{line}"
    );
    assert_eq!(parts[1], "value");
    assert!(!parts[2].is_empty());
}
