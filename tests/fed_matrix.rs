//! The distribution matrix (docs/design.md §5) on real nodes over mutual TLS, on a
//! chain A–B–C and on a triangle: events created on A at every level, under
//! sharing groups with different members, TLP:RED with and without a group,
//! local tags, and attributes of mixed levels inside one event. Once the cluster
//! settles, each node must hold exactly what an independent model of the rules
//! says — the same elements, shown at the downgraded effective levels (MISP's
//! pull rule, 1 → 0 and 2 → 1 per hop; the widest along several paths) — with
//! every seal verifying against A's key once the signed levels are restored
//! from it, and no local tag having left A. The model is written here, from the design text, not from
//! `policy::federation`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::{json, Value};
use sluis::policy::federation::LocalState;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use uuid::Uuid;

const A: &str = "cert-a";
const B: &str = "cert-b";
const C: &str = "cert-c";

/// An attribute of a test event: its level, its sharing group (by name), red.
#[derive(Clone, Copy)]
struct AttrCase {
    label: &'static str,
    dist: u8,
    sg: Option<&'static str>,
    red: bool,
    local_tag: bool,
}

struct EventCase {
    label: &'static str,
    published: bool,
    dist: u8,
    sg: Option<&'static str>,
    red: bool,
    local_tag: bool,
    attrs: Vec<AttrCase>,
}

fn attr(label: &'static str, dist: u8, sg: Option<&'static str>) -> AttrCase {
    AttrCase {
        label,
        dist,
        sg,
        red: false,
        local_tag: false,
    }
}

fn plain(label: &'static str, dist: u8, sg: Option<&'static str>) -> EventCase {
    EventCase {
        label,
        published: true,
        dist,
        sg,
        red: false,
        local_tag: false,
        attrs: vec![attr("inherit", 5, None)],
    }
}

fn cases() -> Vec<EventCase> {
    let mut v = vec![
        plain("org-only", 0, None),
        plain("community", 1, None),
        plain("connected", 2, None),
        plain("all", 3, None),
        plain("sg-ab", 4, Some("AB")),
        plain("sg-ac", 4, Some("AC")),
        plain("sg-abc", 4, Some("ABC")),
    ];
    let mut unpublished = plain("unpublished", 3, None);
    unpublished.published = false;
    v.push(unpublished);
    let mut red = plain("red-no-sg", 3, None);
    red.red = true;
    v.push(red);
    let mut red_sg = plain("red-sg-abc", 4, Some("ABC"));
    red_sg.red = true;
    v.push(red_sg);
    let mut local = plain("local-tags", 3, None);
    local.local_tag = true;
    local.attrs[0].local_tag = true;
    v.push(local);
    v.push(EventCase {
        label: "mixed",
        published: true,
        dist: 3,
        sg: None,
        red: false,
        local_tag: false,
        attrs: vec![
            attr("a0", 0, None),
            attr("a1", 1, None),
            attr("a2", 2, None),
            attr("a3", 3, None),
            attr("a4-ab", 4, Some("AB")),
            attr("a4-ac", 4, Some("AC")),
            attr("a5", 5, None),
            AttrCase {
                red: true,
                ..attr("a3-red", 3, None)
            },
            AttrCase {
                red: true,
                ..attr("a4-abc-red", 4, Some("ABC"))
            },
        ],
    });
    v.push(EventCase {
        label: "connected-mixed",
        published: true,
        dist: 2,
        sg: None,
        red: false,
        local_tag: false,
        attrs: vec![
            attr("c2", 2, None),
            attr("c3", 3, None),
            attr("c5", 5, None),
        ],
    });
    v
}

/// The model: `(event level here, {attribute label: level here})` per event
/// label a node holds.
type Holding = BTreeMap<&'static str, (u8, BTreeMap<&'static str, u8>)>;

/// Whether a level lets an element go from a node to `to` (an org name), and
/// what level it has there (MISP's pull downgrade: 1 → 0, 2 → 1). 5
/// (inherit) is decided by the parent.
fn gate(level: u8, sg: Option<&[&str]>, to: &str) -> Option<u8> {
    match level {
        1 => Some(0),
        2 => Some(1),
        3 => Some(3),
        4 => sg.filter(|m| m.contains(&to)).map(|_| 4),
        _ => None,
    }
}

fn model(
    cases: &[EventCase],
    sgs: &BTreeMap<&str, Vec<&str>>,
    edges: &[(String, String)],
) -> BTreeMap<String, Holding> {
    let mut held: BTreeMap<String, Holding> = BTreeMap::new();
    let origin: Holding = cases
        .iter()
        .map(|c| {
            (
                c.label,
                (c.dist, c.attrs.iter().map(|a| (a.label, a.dist)).collect()),
            )
        })
        .collect();
    held.insert(A.into(), origin);
    loop {
        let mut changed = false;
        for (to, from) in edges {
            let Some(src) = held.get(from).cloned() else {
                continue;
            };
            for c in cases {
                let Some((ev_level, attrs)) = src.get(c.label) else {
                    continue;
                };
                if !c.published {
                    continue;
                }
                let ev_sg = c.sg.map(|n| sgs[n].as_slice());
                let Some(ev_here) = gate(*ev_level, ev_sg, to) else {
                    continue;
                };
                if c.red && *ev_level != 4 {
                    continue;
                }
                let mut got = BTreeMap::new();
                for a in &c.attrs {
                    let Some(level) = attrs.get(a.label) else {
                        continue;
                    };
                    let a_here = if *level == 5 {
                        Some(5)
                    } else {
                        gate(*level, a.sg.map(|n| sgs[n].as_slice()), to)
                    };
                    let Some(a_here) = a_here else { continue };
                    let under_sg = *ev_level == 4 || *level == 4;
                    if (a.red || c.red) && !under_sg {
                        continue;
                    }
                    got.insert(a.label, a_here);
                }
                // Along several paths, a node holds the widest level any
                // path gave it (levels here are narrowings of one signed
                // level, so wider is larger).
                let entry = held
                    .entry(to.clone())
                    .or_default()
                    .entry(c.label)
                    .or_insert_with(|| {
                        changed = true;
                        (ev_here, BTreeMap::new())
                    });
                if ev_here > entry.0 {
                    entry.0 = ev_here;
                    changed = true;
                }
                for (k, v) in got {
                    let level = entry.1.entry(k).or_insert_with(|| {
                        changed = true;
                        v
                    });
                    if v > *level {
                        *level = v;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return held;
        }
    }
}

/// Creates the sharing groups and events on A; returns the sharing groups'
/// members (org names, owner included) and, per event label, its uuid and its
/// attributes' uuids by label.
/// Per event label: its uuid, and its attributes' labels by uuid.
type Made = BTreeMap<&'static str, (Uuid, BTreeMap<Uuid, &'static str>)>;

fn create_on_a(
    cl: &Cluster,
    cases: &[EventCase],
) -> (BTreeMap<&'static str, Vec<&'static str>>, Made) {
    let a = cl.node(A);
    let groups: [(&str, &[&str]); 3] = [("AB", &[B]), ("AC", &[C]), ("ABC", &[B, C])];
    let mut sg_ids = BTreeMap::new();
    let mut members = BTreeMap::new();
    for (name, others) in groups {
        let (s, v, _) = a.post(
            &a.admin_key,
            "/sharing_groups/add",
            &json!({"name": name, "releasability": "matrix test"}),
        );
        assert_eq!(s, 200, "{v}");
        let id: u64 = v["SharingGroup"]["id"].as_str().unwrap().parse().unwrap();
        for o in others {
            let (s, v, _) = a.post(
                &a.admin_key,
                "/sharing_groups/addOrg",
                &json!({"sg_id": id, "org_id": cl.org(o).to_string()}),
            );
            assert_eq!(s, 200, "{v}");
        }
        sg_ids.insert(name, id);
        let mut m = vec![A];
        m.extend_from_slice(others);
        members.insert(name, m);
    }
    let tags = |red: bool, local: bool| {
        let mut t = vec![json!({"name": "tlp:green"})];
        if red {
            t = vec![json!({"name": "tlp:red"})];
        }
        if local {
            t.push(json!({"name": "cert-a:internal-note", "local": 1}));
        }
        Value::Array(t)
    };
    let mut made = BTreeMap::new();
    for (i, c) in cases.iter().enumerate() {
        let attrs: Vec<Value> = c
            .attrs
            .iter()
            .enumerate()
            .map(|(j, x)| {
                let mut a = json!({
                    "type": "domain",
                    "value": format!("x{j}-{}.e{i}.matrix.example", x.label),
                    "distribution": x.dist.to_string(),
                    "Tag": tags(x.red, x.local_tag),
                });
                if let Some(sg) = x.sg {
                    a["sharing_group_id"] = json!(sg_ids[sg].to_string());
                }
                a
            })
            .collect();
        let mut body = json!({
            "info": format!("matrix: {}", c.label),
            "distribution": c.dist.to_string(),
            "published": c.published,
            "Tag": tags(c.red, c.local_tag),
            "Attribute": attrs,
        });
        if let Some(sg) = c.sg {
            body["sharing_group_id"] = json!(sg_ids[sg].to_string());
        }
        let (s, v, _) = a.post(&a.admin_key, "/events/add", &body);
        assert_eq!(s, 200, "{}: {v}", c.label);
        let uuid: Uuid = v["Event"]["uuid"].as_str().unwrap().parse().unwrap();
        let by_uuid = v["Event"]["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                let value = x["value"].as_str().unwrap();
                let j: usize = value[1..value.find('-').unwrap()].parse().unwrap();
                let label = c.attrs[j].label;
                (x["uuid"].as_str().unwrap().parse().unwrap(), label)
            })
            .collect();
        made.insert(c.label, (uuid, by_uuid));
    }
    (members, made)
}

fn check_matrix(links: &[(&str, &str)]) {
    let cl = Cluster::new(&[A, B, C], links, |_, _| {});
    let cases = cases();
    let (sgs, made) = create_on_a(&cl, &cases);
    let expected = model(&cases, &sgs, &cl.edges);
    cl.settle(Duration::from_secs(60));
    let trust = cl.trust();
    let now = sluis::model::time::now_secs();
    for node in [A, B, C] {
        let store = &cl.node(node).state.store;
        let want = expected.get(node).cloned().unwrap_or_default();
        for c in &cases {
            let (uuid, labels) = &made[c.label];
            let got = store.get_event(uuid).unwrap();
            let Some((ev_level, attrs)) = want.get(c.label) else {
                assert!(got.is_none(), "{node} must not hold {:?}", c.label);
                continue;
            };
            let mut ev = got.unwrap_or_else(|| panic!("{node} must hold {:?}", c.label));
            // Shown at the levels in effect here, as MISP shows them.
            assert_eq!(ev.distribution, *ev_level, "{node}: {:?} shown", c.label);
            let shown: BTreeMap<&str, u8> = ev
                .all_attributes()
                .map(|a| (labels[&a.uuid], a.distribution))
                .collect();
            assert_eq!(
                &shown, attrs,
                "{node}: the attributes of {:?} shown",
                c.label
            );
            // With the signed levels put back from the seal, it verifies.
            sluis::seal::restore_signed_levels(&mut ev);
            sluis::seal::verify_event(&ev, &trust, now)
                .unwrap_or_else(|e| panic!("{node}: {:?} does not verify: {e}", c.label));
            assert_eq!(ev.seal.as_ref().unwrap().origin_org, cl.org(A));
            assert_eq!(ev.distribution, c.dist, "{node}: the signed level stays");
            let local: LocalState = store.local_state(&ev).unwrap();
            assert_eq!(
                local.event_distribution, *ev_level,
                "{node}: effective level of {:?}",
                c.label
            );
            let held: BTreeMap<&str, u8> = ev
                .all_attributes()
                .map(|a| (labels[&a.uuid], local.effective(&a.uuid, a.distribution)))
                .collect();
            assert_eq!(&held, attrs, "{node}: the attributes of {:?}", c.label);
            if node != A {
                assert!(ev.locked, "received events are remote-owned");
                let local_tags = ev
                    .tags
                    .iter()
                    .chain(ev.all_attributes().flat_map(|a| a.tags.iter()))
                    .filter(|t| t.local)
                    .count();
                assert_eq!(local_tags, 0, "{node}: local tags never leave A");
            }
        }
        // Nothing else was sent or rejected along the way.
        for (puller, source) in &cl.edges {
            if puller == node {
                let st = store.peer_state(source).unwrap();
                assert_eq!(st.rejected, 0, "{node} refused records of {source}: {st:?}");
            }
        }
    }
    // The model itself is not vacuous: the chain and the triangle differ where
    // the design says they must.
    let b: BTreeSet<_> = expected[B].keys().collect();
    assert!(b.contains(&"connected") && !b.contains(&"sg-ac"));
    assert_eq!(expected[B]["community"].0, 0, "1 reaches B as 0");
    assert!(!expected[C].contains_key("community") || links.contains(&(A, C)));
    let connected_at_c = if links.contains(&(A, C)) { 1 } else { 0 };
    assert_eq!(expected[C]["connected"].0, connected_at_c, "2 at C");
    assert!(expected[C].contains_key("all"));
    assert!(!expected[C].contains_key("red-no-sg"));
}

#[test]
fn distribution_matrix_on_a_chain() {
    check_matrix(&[(A, B), (B, C)]);
}

#[test]
fn distribution_matrix_on_a_triangle() {
    check_matrix(&[(A, B), (B, C), (A, C)]);
}
