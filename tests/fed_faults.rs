//! Federation under faults, on real nodes over mutual TLS: a node stopped while
//! its partner writes, deletions and tag removals travelling two hops, and a
//! loop of three nodes that must settle with no duplicate and no ping-pong.
//! (SIGKILL in the middle of a page: `fed_kill.rs`; hostile peers:
//! `fed_hostile.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::json;
use sluis::seal::{verify_event, TombstoneKind};
use std::time::Duration;
use uuid::Uuid;

const A: &str = "cert-a";
const B: &str = "cert-b";
const C: &str = "cert-c";
const SETTLE: Duration = Duration::from_secs(60);

/// Creates a published distribution-3 event on `node` with `n` attributes;
/// returns its uuid and its attributes' uuids.
fn create(node: &RunningNode, label: &str, n: usize) -> (Uuid, Vec<String>) {
    let attrs: Vec<_> = (0..n)
        .map(|i| json!({"type": "domain", "value": format!("{label}-{i}.faults.example")}))
        .collect();
    let (s, v, _) = node.post(
        &node.admin_key,
        "/events/add",
        &json!({
            "info": label, "distribution": "3", "published": true,
            "Tag": [{"name": "tlp:green"}, {"name": "campaign:faults"}],
            "Attribute": attrs,
        }),
    );
    assert_eq!(s, 200, "{v}");
    let uuid = v["Event"]["uuid"].as_str().unwrap().parse().unwrap();
    let attrs = v["Event"]["Attribute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.get("uuid").unwrap().as_str().unwrap().to_owned())
        .collect();
    (uuid, attrs)
}

/// Publishes `event` on `node`: an edit unpublishes (MISP's rule), and only
/// published versions travel.
fn publish(node: &RunningNode, event: &Uuid) {
    let (s, v, _) = node.post(
        &node.admin_key,
        &format!("/events/publish/{event}"),
        &json!({}),
    );
    assert_eq!(s, 200, "{v}");
}

/// Every node in `nodes` holds exactly `origin`'s live events, each the very
/// version the origin holds (same seal), verifying, with the same sightings.
fn assert_same_events(cl: &Cluster, origin: &str, nodes: &[&str]) {
    let src = &cl.node(origin).state.store;
    let trust = cl.trust();
    let now = sluis::model::time::now_secs();
    let mut want: Vec<Uuid> = src.event_uuids().map(Result::unwrap).collect();
    want.sort();
    for n in nodes {
        let store = &cl.node(n).state.store;
        let mut got: Vec<Uuid> = store.event_uuids().map(Result::unwrap).collect();
        got.sort();
        assert_eq!(got, want, "{n} holds other events than {origin}");
        for u in &want {
            let a = src.get_event(u).unwrap().unwrap();
            let b = store.get_event(u).unwrap().unwrap();
            verify_event(&b, &trust, now).unwrap();
            assert_eq!(
                a.seal.as_ref().unwrap().signature,
                b.seal.as_ref().unwrap().signature,
                "{n} holds another version of {u}"
            );
            let ids = |s: &sluis::store::Store| {
                let mut v: Vec<Uuid> = s.sightings_of(u).unwrap().iter().map(|x| x.uuid).collect();
                v.sort();
                v
            };
            assert_eq!(ids(src), ids(store), "{n}: the sightings of {u}");
        }
    }
}

#[test]
fn a_stopped_node_catches_up_after_restart_and_forwards() {
    let mut cl = Cluster::new(&[A, B, C], &[(A, B), (B, C)], |_, _| {});
    let (first, first_attrs) = create(cl.node(A), "before", 3);
    cl.settle(SETTLE);
    assert!(cl.node(C).state.store.get_event(&first).unwrap().is_some());

    cl.stop(B);
    // A goes on: new events, a sighting and an edit of an old one, a deletion.
    let mut made = Vec::new();
    for i in 0..15 {
        made.push(create(cl.node(A), &format!("while-b-down-{i}"), 4).0);
    }
    let a = cl.node(A);
    let (s, v, _) = a.post(
        &a.admin_key,
        &format!("/sightings/add/{}", first_attrs[0]),
        &json!({"source": "sensor-1"}),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = a.post(
        &a.admin_key,
        &format!("/events/edit/{first}"),
        &json!({"info": "before, edited while B was down"}),
    );
    assert_eq!(s, 200, "{v}");
    publish(a, &first);
    let (s, v, _) = a.post(
        &a.admin_key,
        &format!("/events/delete/{}", made[3]),
        &json!({}),
    );
    assert_eq!(s, 200, "{v}");

    cl.restart(B);
    cl.settle(SETTLE);
    assert_same_events(&cl, A, &[B, C]);
    for n in [B, C] {
        let store = &cl.node(n).state.store;
        // Created and deleted while B was down: it never shows anywhere.
        assert!(
            store.get_event(&made[3]).unwrap().is_none(),
            "{n}: the deletion"
        );
        let ev = store.get_event(&first).unwrap().unwrap();
        assert_eq!(ev.info, "before, edited while B was down");
        let st = store.peer_state(if n == B { A } else { B }).unwrap();
        assert_eq!(st.rejected, 0, "{n}: {st:?}");
    }
    // A learnt from B's reports where B stands on A's feed; `sluis peers` asks
    // the running node (it holds the database) and shows both directions.
    let out = cl.node(A).state.store.peer_out(B).unwrap();
    assert_eq!(out.cursor, cl.node(A).state.store.durable_sequence());
    assert_eq!(out.rejected, 0);
    let a = cl.node(A);
    let o = std::process::Command::new(sluis_bin())
        .args(["peers", "--json", "--config"])
        .arg(&a.config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == B)
        .unwrap();
    assert_eq!(b["serving"]["lag"], 0, "{b}");
    assert_eq!(b["pulling"]["lag"], 0, "{b}");
    assert!(b["pulling"]["last_success"].as_u64().is_some(), "{b}");
    let o = std::process::Command::new(sluis_bin())
        .args(["peers", "--config"])
        .arg(&a.config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("cert-b (https://"), "{}", stdout(&o));
}

#[test]
fn deletions_and_tag_removals_reach_every_node() {
    let cl = Cluster::new(&[A, B, C], &[(A, B), (B, C)], |_, _| {});
    let (ev, attrs) = create(cl.node(A), "untag-and-delete", 2);
    let a = cl.node(A);
    let (s, v, _) = a.post(
        &a.admin_key,
        "/tags/attachTagToObject",
        &json!({"uuid": attrs[0], "tag": "ioc:verified"}),
    );
    assert_eq!(s, 200, "{v}");
    publish(a, &ev);
    cl.settle(SETTLE);
    let has = |node: &str, element: &str, tag: &str| -> bool {
        let e = cl.node(node).state.store.get_event(&ev).unwrap().unwrap();
        let tags = if element == "event" {
            e.tags.clone()
        } else {
            e.all_attributes()
                .find(|x| x.uuid.to_string() == element)
                .unwrap()
                .tags
                .clone()
        };
        tags.iter().any(|t| t.name == tag)
    };
    for n in [A, B, C] {
        assert!(has(n, "event", "campaign:faults"), "{n}");
        assert!(has(n, &attrs[0], "ioc:verified"), "{n}");
    }
    // Remove a tag from the event and one from an attribute on A.
    for (uuid, tag) in [
        (ev.to_string(), "campaign:faults"),
        (attrs[0].clone(), "ioc:verified"),
    ] {
        let (s, v, _) = a.post(
            &a.admin_key,
            "/tags/removeTagFromObject",
            &json!({"uuid": uuid, "tag": tag}),
        );
        assert_eq!(s, 200, "{v}");
    }
    publish(a, &ev);
    cl.settle(SETTLE);
    let trust = cl.trust();
    for n in [A, B, C] {
        assert!(
            !has(n, "event", "campaign:faults"),
            "{n} still has the event tag"
        );
        assert!(
            !has(n, &attrs[0], "ioc:verified"),
            "{n} still has the attribute tag"
        );
        assert!(has(n, "event", "tlp:green"), "{n}: other tags stay");
        let store = &cl.node(n).state.store;
        let e = store.get_event(&ev).unwrap().unwrap();
        verify_event(&e, &trust, sluis::model::time::now_secs()).unwrap();
        // The origin's signed word that the tags were withdrawn is held too.
        let removals: Vec<String> = store
            .tombstones_of(&ev)
            .unwrap()
            .iter()
            .map(|raw| serde_json::from_slice::<sluis::seal::Tombstone>(raw).unwrap())
            .filter_map(|t| match t.kind {
                TombstoneKind::TagRemoved { tag, .. } => Some(tag),
                _ => None,
            })
            .collect();
        assert!(
            removals.contains(&"campaign:faults".to_owned())
                && removals.contains(&"ioc:verified".to_owned()),
            "{n}: tag-removal tombstones {removals:?}"
        );
    }
    // Deleting on the origin deletes everywhere.
    let (s, v, _) = a.post(&a.admin_key, &format!("/events/delete/{ev}"), &json!({}));
    assert_eq!(s, 200, "{v}");
    cl.settle(SETTLE);
    for n in [A, B, C] {
        let store = &cl.node(n).state.store;
        assert!(
            store.get_event(&ev).unwrap().is_none(),
            "{n} still shows it"
        );
        assert!(store.is_deleted(&ev).unwrap(), "{n}");
        let st = store.peer_state(if n == C { B } else { A });
        if n != A {
            assert_eq!(st.unwrap().rejected, 0, "{n}");
        }
    }
}

#[test]
fn a_loop_settles_without_duplicates_or_ping_pong() {
    // A–B–C–A: every node both origin and relay.
    let cl = Cluster::new(&[A, B, C], &[(A, B), (B, C), (C, A)], |_, _| {});
    let mut all = Vec::new();
    for n in [A, B, C] {
        for i in 0..4 {
            all.push(create(cl.node(n), &format!("{n}-{i}"), 3).0);
        }
    }
    // An edit on a received event's origin travels round too.
    let (s, v, _) = cl.node(B).post(
        &cl.node(B).admin_key,
        &format!("/events/edit/{}", all[4]),
        &json!({"info": "edited by its origin"}),
    );
    assert_eq!(s, 200, "{v}");
    publish(cl.node(B), &all[4]);
    cl.settle(SETTLE);
    let seqs = |cl: &Cluster| -> Vec<u64> {
        [A, B, C]
            .iter()
            .map(|n| cl.node(n).state.store.last_sequence().unwrap())
            .collect()
    };
    let before = seqs(&cl);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(seqs(&cl), before, "the loop keeps writing: ping-pong");
    for n in [A, B, C] {
        let store = &cl.node(n).state.store;
        let mut held: Vec<Uuid> = store.event_uuids().map(Result::unwrap).collect();
        held.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(held, want, "{n}");
        assert_eq!(
            store.get_event(&all[4]).unwrap().unwrap().info,
            "edited by its origin"
        );
        // Each event was stored here at most once per version: its own creation
        // or receipt, plus the edit for the edited one. A loop that re-applied
        // copies would log more.
        let changes = store.changes_after(0, 10_000).unwrap();
        for u in &all {
            let stored = changes
                .iter()
                .filter(|(_, c)| {
                    c.event == *u && matches!(c.kind, sluis::store::record::ChangeKind::EventStored)
                })
                .count();
            // (the edit, then its publication)
            let versions = if *u == all[4] { 3 } else { 1 };
            assert!(
                stored <= versions,
                "{n}: event {u} logged {stored} times for {versions} version(s)"
            );
        }
        for (puller, source) in &cl.edges {
            if puller == n {
                let st = store.peer_state(source).unwrap();
                assert_eq!(st.rejected, 0, "{n} <- {source}: {st:?}");
            }
        }
    }
}
