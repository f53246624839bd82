//! The store's rules, through its public API on a real sled database on disk:
//! lookups, correlation, the strictly-newer merge, soft delete, the change log,
//! and the single-process lock.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::json;
use sluis::model::parse::parse_event;
use sluis::store::{Durability, Outcome, Store, StoreError};
use uuid::Uuid;

fn put(store: &Store, v: serde_json::Value) -> Result<Outcome, StoreError> {
    let e = parse_event(v.to_string().as_bytes(), 1 << 24).unwrap();
    store.put_event(e, Durability::Flush)
}

fn u(n: u32) -> String {
    format!("5c1b1cc1-0000-4000-8000-{n:012x}")
}

fn ev(n: u32, ts: u64, attrs: serde_json::Value) -> serde_json::Value {
    json!({"Event": {"uuid": u(n), "info": format!("event {n}"), "timestamp": ts.to_string(), "Attribute": attrs}})
}

fn attr(n: u32, t: &str, v: &str, ts: u64) -> serde_json::Value {
    json!({"uuid": u(n), "type": t, "value": v, "timestamp": ts.to_string()})
}

#[test]
fn exact_lookup_is_normalised_and_covers_composite_halves() {
    let node = TestNode::new();
    let s = node.open();
    put(
        &s,
        ev(
            1,
            100,
            json!([
                attr(101, "domain", "Evil.Example", 100),
                attr(
                    102,
                    "ip-dst",
                    "2001:0db8:0000:0000:0000:0000:0000:0001",
                    100
                ),
                attr(103, "domain|ip", "c2.example|192.0.2.10", 100),
                attr(
                    104,
                    "filename|md5",
                    "dropper.exe|D41D8CD98F00B204E9800998ECF8427E",
                    100
                ),
            ]),
        ),
    )
    .unwrap();
    let one = |q: &str| {
        s.lookup_value(q, false, 100)
            .unwrap()
            .iter()
            .map(|h| h.attribute)
            .collect::<Vec<_>>()
    };
    assert_eq!(one("evil.example"), vec![u(101).parse::<Uuid>().unwrap()]);
    assert_eq!(one("EVIL.EXAMPLE").len(), 1);
    assert_eq!(one("2001:db8::1").len(), 1);
    assert_eq!(one("2001:DB8:0:0::1").len(), 1);
    assert_eq!(one("192.0.2.10"), vec![u(103).parse::<Uuid>().unwrap()]);
    assert_eq!(one("c2.example").len(), 1);
    assert_eq!(one("d41d8cd98f00b204e9800998ecf8427e").len(), 1);
    assert_eq!(one("dropper.exe").len(), 1);
    assert!(one("nothing.example").is_empty());
}

#[test]
fn wildcards() {
    let node = TestNode::new();
    let s = node.open();
    put(
        &s,
        ev(
            1,
            100,
            json!([
                attr(101, "domain", "a.evil.example", 100),
                attr(102, "domain", "b.evil.example", 100),
                attr(103, "domain", "evil.example.org", 100),
                attr(104, "hostname", "mail.good.test", 100),
            ]),
        ),
    )
    .unwrap();
    let n = |q: &str| s.lookup_wildcard(q, false, 100).unwrap().len();
    assert_eq!(n("%.evil.example"), 2);
    assert_eq!(n("evil.%"), 1);
    assert_eq!(n("%evil%"), 3);
    assert_eq!(n("%good%"), 1);
    assert_eq!(n("a.evil.example"), 1);
}

#[test]
fn cidr_both_ways() {
    let node = TestNode::new();
    let s = node.open();
    put(
        &s,
        ev(
            1,
            100,
            json!([
                attr(101, "ip-dst", "198.51.100.0/24", 100),
                attr(102, "ip-dst", "198.51.100.77", 100),
                attr(103, "ip-src", "203.0.113.5", 100),
                attr(104, "ip-dst|port", "198.51.100.200|443", 100),
                attr(105, "ip-dst", "2001:db8::/32", 100),
                attr(106, "ip-dst", "2001:db8:1::5", 100),
            ]),
        ),
    )
    .unwrap();
    let ids = |hits: Vec<sluis::store::Hit>| {
        let mut v: Vec<String> = hits.iter().map(|h| h.attribute.to_string()).collect();
        v.sort();
        v
    };
    // An IP finds the networks that contain it, and itself.
    assert_eq!(
        ids(s.lookup_ip_or_cidr("198.51.100.77", false, 100).unwrap()),
        vec![u(101), u(102)]
    );
    assert_eq!(
        ids(s.lookup_ip_or_cidr("198.51.100.1", false, 100).unwrap()),
        vec![u(101)]
    );
    assert_eq!(
        ids(s.lookup_ip_or_cidr("2001:db8:1::5", false, 100).unwrap()),
        vec![u(105), u(106)]
    );
    // A network finds what lies inside it.
    assert_eq!(
        ids(s.lookup_ip_or_cidr("198.51.100.0/25", false, 100).unwrap()),
        vec![u(102)]
    );
    assert_eq!(
        ids(s.lookup_ip_or_cidr("198.51.0.0/16", false, 100).unwrap()),
        vec![u(101), u(102), u(104)]
    );
    assert!(s
        .lookup_ip_or_cidr("192.0.2.0/24", false, 100)
        .unwrap()
        .is_empty());
    assert!(s.lookup_ip_or_cidr("not-an-ip", false, 100).is_err());
}

#[test]
fn correlation_excludes_own_event_non_correlating_types_and_over_correlation() {
    let node = TestNode::new();
    let s = sluis::store::Store::open(
        &node.db_dir(),
        sluis::store::StoreOptions {
            correlation_limit: 3,
            ..Default::default()
        },
    )
    .unwrap();
    put(
        &s,
        ev(
            1,
            100,
            json!([
                attr(101, "domain", "shared.example", 100),
                attr(111, "port", "443", 100),
                attr(121, "domain", "hot.example", 100)
            ]),
        ),
    )
    .unwrap();
    put(
        &s,
        ev(
            2,
            100,
            json!([
                attr(201, "hostname", "SHARED.example", 100),
                attr(211, "port", "443", 100),
                attr(221, "domain", "hot.example", 100)
            ]),
        ),
    )
    .unwrap();
    put(&s, ev(3, 100, json!([{"uuid": u(301), "type": "domain", "value": "shared.example", "disable_correlation": true}, attr(321, "domain", "hot.example", 100)]))).unwrap();
    put(
        &s,
        ev(4, 100, json!([attr(421, "domain", "hot.example", 100)])),
    )
    .unwrap();
    put(
        &s,
        ev(5, 100, json!([attr(521, "domain", "hot.example", 100)])),
    )
    .unwrap();
    let e1: Uuid = u(1).parse().unwrap();
    let a = s
        .get_attribute(&e1, &u(101).parse().unwrap())
        .unwrap()
        .unwrap();
    let c = s.correlate(&e1, &a).unwrap();
    assert_eq!(
        c.hits
            .iter()
            .map(|h| h.attribute.to_string())
            .collect::<Vec<_>>(),
        vec![u(201)]
    );
    let port = s
        .get_attribute(&e1, &u(111).parse().unwrap())
        .unwrap()
        .unwrap();
    assert!(
        s.correlate(&e1, &port).unwrap().hits.is_empty(),
        "port never correlates"
    );
    let hot = s
        .get_attribute(&e1, &u(121).parse().unwrap())
        .unwrap()
        .unwrap();
    let c = s.correlate(&e1, &hot).unwrap();
    assert!(c.hits.is_empty());
    assert_eq!(c.over_correlating, vec!["hot.example".to_string()]);
}

#[test]
fn strictly_newer_merge_element_by_element() {
    let node = TestNode::new();
    let s = node.open();
    put(
        &s,
        ev(
            1,
            100,
            json!([
                attr(101, "domain", "a.example", 100),
                attr(102, "domain", "b.example", 100)
            ]),
        ),
    )
    .unwrap();
    // Newer event: attribute 101 newer (applies), 102 older (ignored), 103 new.
    let o = put(
        &s,
        ev(
            1,
            200,
            json!([
                attr(101, "domain", "a2.example", 200),
                attr(102, "domain", "b-stale.example", 50),
                attr(103, "domain", "c.example", 200),
            ]),
        ),
    )
    .unwrap();
    assert!(matches!(o, Outcome::Updated { .. }));
    let e = s.get_event(&u(1).parse().unwrap()).unwrap().unwrap();
    let mut vals: Vec<&str> = e.attributes.iter().map(|a| a.value.as_str()).collect();
    vals.sort();
    assert_eq!(vals, vec!["a2.example", "b.example", "c.example"]);
    assert_eq!(e.timestamp, 200);
    assert!(
        s.lookup_value("a.example", false, 10).unwrap().is_empty(),
        "old value unindexed"
    );
    assert_eq!(s.lookup_value("a2.example", false, 10).unwrap().len(), 1);
    // The stored version again: unchanged; same timestamp with other content
    // (including the stale element the merge discarded): refused; older: refused.
    let stored_version = json!([
        attr(101, "domain", "a2.example", 200),
        attr(102, "domain", "b.example", 100),
        attr(103, "domain", "c.example", 200)
    ]);
    assert!(matches!(
        put(&s, ev(1, 200, stored_version)),
        Ok(Outcome::Unchanged { .. })
    ));
    assert!(matches!(
        put(
            &s,
            ev(
                1,
                200,
                json!([
                    attr(101, "domain", "a2.example", 200),
                    attr(102, "domain", "b-stale.example", 50),
                    attr(103, "domain", "c.example", 200)
                ])
            )
        ),
        Err(StoreError::NotNewer { .. })
    ));
    assert!(matches!(
        put(&s, ev(1, 200, json!([]))),
        Err(StoreError::NotNewer { .. })
    ));
    assert!(matches!(
        put(&s, ev(1, 150, json!([]))),
        Err(StoreError::NotNewer { .. })
    ));
}

#[test]
fn object_that_is_not_newer_keeps_its_attributes() {
    let node = TestNode::new();
    let s = node.open();
    let obj = |ts: u64, ip: &str| {
        json!({"uuid": u(50), "name": "domain-ip", "timestamp": ts.to_string(), "Attribute": [
        {"uuid": u(51), "type": "domain", "object_relation": "domain", "value": "o.example", "timestamp": ts.to_string()},
        {"uuid": u(52), "type": "ip-dst", "object_relation": "ip", "value": ip, "timestamp": ts.to_string()}]})
    };
    let mut e1 = ev(1, 100, json!([]));
    e1["Event"]["Object"] = json!([obj(100, "192.0.2.1")]);
    put(&s, e1).unwrap();
    let mut e2 = ev(1, 200, json!([]));
    let mut o = obj(100, "192.0.2.99");
    o["Attribute"][1]["timestamp"] = json!("200"); // attribute newer, object not
    e2["Event"]["Object"] = json!([o]);
    put(&s, e2).unwrap();
    assert_eq!(s.lookup_value("192.0.2.1", false, 10).unwrap().len(), 1);
    assert!(s.lookup_value("192.0.2.99", false, 10).unwrap().is_empty());
}

#[test]
fn soft_delete_hides_and_blocks_older_copies() {
    let node = TestNode::new();
    let s = node.open();
    put(
        &s,
        ev(1, 100, json!([attr(101, "domain", "gone.example", 100)])),
    )
    .unwrap();
    let id: Uuid = u(1).parse().unwrap();
    assert!(s.delete_event(&id, Durability::Flush).unwrap());
    assert!(s.get_event(&id).unwrap().is_none());
    assert!(s.lookup_value("gone.example", true, 10).unwrap().is_empty());
    assert!(matches!(
        put(&s, ev(1, 100, json!([]))),
        Err(StoreError::NotNewer { .. })
    ));
    assert_eq!(s.event_count(), 0);
}

#[test]
fn change_log_is_monotonic_and_complete() {
    let node = TestNode::new();
    let s = node.open();
    for n in 1..=5 {
        put(&s, ev(n, 100, json!([]))).unwrap();
    }
    put(&s, ev(3, 200, json!([]))).unwrap();
    s.delete_event(&u(2).parse().unwrap(), Durability::Flush)
        .unwrap();
    let changes = s.changes_after(0, 100).unwrap();
    let seqs: Vec<u64> = changes.iter().map(|(q, _)| *q).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    assert_eq!(changes[5].1.event.to_string(), u(3));
    assert_eq!(
        changes[6].1.kind,
        sluis::store::record::ChangeKind::EventDeleted
    );
    assert_eq!(s.changes_after(5, 100).unwrap().len(), 2);
    assert_eq!(s.last_sequence().unwrap(), 7);
    assert_eq!(s.event_count(), 4);
    assert_eq!(s.event_uuids_since(150).count(), 1);
}

#[test]
fn rejected_write_changes_nothing() {
    let node = TestNode::new();
    let s = node.open();
    put(
        &s,
        ev(1, 100, json!([attr(101, "domain", "a.example", 100)])),
    )
    .unwrap();
    let seq = s.last_sequence().unwrap();
    // Second event: first attribute fine, second steals event 1's attribute uuid.
    let r = put(
        &s,
        ev(
            2,
            100,
            json!([
                attr(201, "domain", "new.example", 100),
                attr(101, "domain", "b.example", 100)
            ]),
        ),
    );
    assert!(matches!(r, Err(StoreError::Refused { .. })), "{r:?}");
    assert!(s.get_event(&u(2).parse().unwrap()).unwrap().is_none());
    assert!(s.lookup_value("new.example", true, 10).unwrap().is_empty());
    assert_eq!(s.last_sequence().unwrap(), seq);
}

#[test]
fn a_second_process_gets_a_clear_error() {
    let node = TestNode::new();
    let _held = node.open();
    let out = node.sluis(&["export"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("already open in another process"), "{err}");
}

#[test]
fn reopen_after_clean_close_keeps_everything() {
    let node = TestNode::new();
    {
        let s = node.open();
        put(&s, generated_event(7, 300)).unwrap();
    }
    let s = node.open();
    let e = s
        .get_event(
            &generated_event(7, 300)["Event"]["uuid"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(e.attributes.len(), 300);
    assert_eq!(s.events_with_type("ip-dst").unwrap(), vec![e.uuid]);
    assert!(s.events_with_type("btc").unwrap().is_empty());
}

/// An acknowledged write is on stable storage: sled's flush is not an fsync on
/// Linux, so every `Durability::Flush` write (what the API, import, sync pages
/// and audit anchors acknowledge) returns only after an OS-level sync that
/// began after the write was made — shared by concurrent writers, never
/// skipped. A deferred write syncs nothing until the next flush.
#[test]
fn every_acknowledged_write_follows_an_os_sync() {
    let node = TestNode::new();
    let s = std::sync::Arc::new(node.open());
    let before = s.os_syncs();
    let e = parse_event(ev(1, 100, json!([])).to_string().as_bytes(), 1 << 24).unwrap();
    s.put_event(e, Durability::Deferred).unwrap();
    assert_eq!(s.os_syncs(), before, "a deferred write does not sync");
    s.flush().unwrap();
    assert!(s.os_syncs() > before, "a flush syncs");

    let writers: Vec<_> = (0..8u32)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..10u32 {
                    let n = 100 + t * 100 + i;
                    let started = s.os_syncs();
                    put(&s, ev(n, 100, json!([attr(n + 50_000, "text", "x", 100)]))).unwrap();
                    assert!(
                        s.os_syncs() > started,
                        "write {n} was acknowledged without a sync after it"
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let syncs = s.os_syncs() - before;
    assert!(syncs >= 2, "{syncs} syncs");
    eprintln!("80 concurrent acknowledged writes took {syncs} OS syncs");
}
