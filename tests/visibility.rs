//! Property: for generated events with random distributions and sharing groups,
//! created by random organisations, no endpoint ever returns or counts an element
//! the caller may not see; and read-only or sync keys never write.
//!
//! The expected visibility is computed here by an independent model of MISP's
//! rules (not by `sluis::policy`), so a bug in the policy module cannot hide
//! itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

#[derive(Debug, Clone)]
struct GenAttr {
    dist: u8,
    sg: usize,
}

#[derive(Debug, Clone)]
struct GenEvent {
    creator: usize,
    dist: u8,
    sg: usize,
    attrs: Vec<GenAttr>,
}

fn gen_event() -> impl Strategy<Value = GenEvent> {
    (
        0..3usize,
        0..=4u8,
        0..2usize,
        prop::collection::vec(
            (0..=5u8, 0..2usize).prop_map(|(dist, sg)| GenAttr { dist, sg }),
            1..5,
        ),
    )
        .prop_map(|(creator, dist, sg, attrs)| GenEvent {
            creator,
            dist,
            sg,
            attrs,
        })
}

struct Org {
    uuid: Uuid,
    writer: String,
    readers: Vec<String>,
}

/// A created event as the model sees it: owner org index, distribution, sharing
/// group index, and each attribute's (distribution, sharing group index).
type EventModel = (usize, u8, usize, HashMap<Uuid, (u8, usize)>);

struct World {
    node: RunningNode,
    orgs: Vec<Org>,
    /// Sharing groups: local id and member orgs (indexes).
    sgs: Vec<(u64, HashSet<usize>)>,
    sync_key: String,
    /// Every created event: uuid → (owner org index, dist, sg, attribute uuid → (dist, sg)).
    events: HashMap<Uuid, EventModel>,
    /// Each event's first attribute carries a value shared with other events (a
    /// correlation): event → (value group, attribute uuid).
    shared: HashMap<Uuid, (u64, Uuid)>,
    /// Each event's own tag, and each attribute's: a tag's name is derived
    /// data of what it tags, so `tags/index` and `tags/tagStatistics` may show
    /// it only to a viewer who can see one thing it tags.
    tags: HashMap<Uuid, (String, HashMap<Uuid, String>)>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl World {
    fn new() -> Self {
        // The property sends many refused keys on purpose: no address lockout.
        let node = RunningNode::start_with("localhost", "CERT-A", |t| {
            t.push_str("\n[limits]\nauth_failures_per_min = 0\n");
        });
        let mut orgs = Vec::new();
        for name in ["CERT-A", "CERT-B", "CERT-C"] {
            let (uuid, writer) = node.org_with_user(name, 4);
            let (_, user) = node.org_with_user(name, 3);
            let (_, ro) = node.org_with_user(name, 6);
            orgs.push(Org {
                uuid,
                writer,
                readers: vec![user, ro],
            });
        }
        let (_, sync_key) = node.org_with_user("CERT-B", 5);
        // sg0 = {A, B}, sg1 = {A, C}, both created by A.
        let mut sgs = Vec::new();
        for (name, other) in [("A+B", 1usize), ("A+C", 2usize)] {
            let (s, v, _) = node.post(
                &orgs[0].writer,
                "/sharing_groups/add",
                &json!({"name": name, "releasability": "test"}),
            );
            assert_eq!(s, 200, "{v}");
            let id: u64 = v["SharingGroup"]["id"].as_str().unwrap().parse().unwrap();
            let (s, v, _) = node.post(
                &orgs[0].writer,
                "/sharing_groups/addOrg",
                &json!({"sg_id": id, "org_id": orgs[other].uuid.to_string()}),
            );
            assert_eq!(s, 200, "{v}");
            sgs.push((id, HashSet::from([0, other])));
        }
        World {
            node,
            orgs,
            sgs,
            sync_key,
            events: HashMap::new(),
            shared: HashMap::new(),
            tags: HashMap::new(),
        }
    }

    fn in_sg(&self, viewer: usize, sg: usize) -> bool {
        self.sgs[sg].1.contains(&viewer)
    }

    /// The independent model of MISP's read rules.
    fn event_visible(&self, viewer: usize, ev: &Uuid) -> bool {
        let (owner, dist, sg, _) = &self.events[ev];
        *owner == viewer || (1..=3).contains(dist) || (*dist == 4 && self.in_sg(viewer, *sg))
    }

    fn attr_visible(&self, viewer: usize, ev: &Uuid, attr: &Uuid) -> bool {
        let (owner, _, _, attrs) = &self.events[ev];
        let (dist, sg) = attrs[attr];
        self.event_visible(viewer, ev)
            && (*owner == viewer
                || matches!(dist, 1..=3 | 5)
                || (dist == 4 && self.in_sg(viewer, sg)))
    }

    /// The group `creator` gives an element when the generator chose `sg`: the
    /// node refuses groups the creator is not in (checked by [`Self::create`]),
    /// so the model uses the first group it is in instead.
    fn usable_sg(&self, creator: usize, sg: usize) -> usize {
        if self.in_sg(creator, sg) {
            return sg;
        }
        (0..self.sgs.len())
            .find(|s| self.in_sg(creator, *s))
            .expect("every org is in some group")
    }

    fn create(&mut self, g: &GenEvent) -> Uuid {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        // A group the creator is not in is refused, whatever else the event
        // holds, and nothing is stored (the model: groups are for members).
        if !self.in_sg(g.creator, g.sg) {
            let before = self.node.state.store.event_count();
            let (s, v, _) = self.node.post(
                &self.orgs[g.creator].writer,
                "/events/add",
                &json!({"info": format!("refused {n}"), "distribution": "4",
                        "sharing_group_id": self.sgs[g.sg].0.to_string()}),
            );
            assert_eq!(s, 403, "{v}");
            assert_eq!(v["message"], "Invalid Sharing Group or not authorised.");
            assert_eq!(self.node.state.store.event_count(), before);
        }
        let g = &GenEvent {
            sg: self.usable_sg(g.creator, g.sg),
            attrs: g
                .attrs
                .iter()
                .map(|a| GenAttr {
                    sg: self.usable_sg(g.creator, a.sg),
                    ..a.clone()
                })
                .collect(),
            ..g.clone()
        };
        let mut attrs = Vec::new();
        let mut model = HashMap::new();
        let mut attr_tags = HashMap::new();
        for (i, a) in g.attrs.iter().enumerate() {
            let u = Uuid::new_v4();
            let value = if i == 0 {
                format!("common-{}.vis.example", n % 5)
            } else {
                format!("v{n}-{i}.vis.example")
            };
            let tag = format!("vis:attr-{n}-{i}");
            let mut j = json!({"uuid": u.to_string(), "type": "domain", "value": value, "distribution": a.dist.to_string(), "Tag": [{"name": tag}]});
            attr_tags.insert(u, tag);
            if a.dist == 4 {
                j["sharing_group_id"] = json!(self.sgs[a.sg].0.to_string());
            }
            attrs.push(j);
            model.insert(u, (a.dist, a.sg));
        }
        let event_tag = format!("vis:event-{n}");
        let mut body = json!({"info": format!("generated {n}"), "distribution": g.dist.to_string(), "Attribute": attrs, "published": true, "Tag": [{"name": event_tag}]});
        if g.dist == 4 {
            body["sharing_group_id"] = json!(self.sgs[g.sg].0.to_string());
        }
        let (s, v, _) = self
            .node
            .post(&self.orgs[g.creator].writer, "/events/add", &body);
        assert_eq!(s, 200, "{v}");
        let uuid: Uuid = v["Event"]["uuid"].as_str().unwrap().parse().unwrap();
        let first: Uuid = attrs[0]["uuid"].as_str().unwrap().parse().unwrap();
        self.shared.insert(uuid, (n % 5, first));
        self.tags.insert(uuid, (event_tag, attr_tags));
        self.events.insert(uuid, (g.creator, g.dist, g.sg, model));
        uuid
    }

    fn attr_uuids(v: &Value) -> Vec<Uuid> {
        let mut out = Vec::new();
        for a in v["Attribute"].as_array().into_iter().flatten() {
            out.push(a["uuid"].as_str().unwrap().parse().unwrap());
        }
        for o in v["Object"].as_array().into_iter().flatten() {
            for a in o["Attribute"].as_array().into_iter().flatten() {
                out.push(a["uuid"].as_str().unwrap().parse().unwrap());
            }
        }
        out
    }

    /// Asks every endpoint that shows events or attributes, as `viewer`, and checks
    /// each answer against the model.
    fn check_viewer(
        &self,
        viewer: usize,
        key: &str,
        created: &[Uuid],
    ) -> Result<(), TestCaseError> {
        let node = &self.node;
        for ev in created {
            let (s, v) = node.get(key, &format!("/events/view/{ev}"));
            if self.event_visible(viewer, ev) {
                prop_assert_eq!(s, 200, "{}", v);
                let got: HashSet<Uuid> = Self::attr_uuids(&v["Event"]).into_iter().collect();
                let want: HashSet<Uuid> = self.events[ev]
                    .3
                    .keys()
                    .filter(|a| self.attr_visible(viewer, ev, a))
                    .copied()
                    .collect();
                prop_assert_eq!(&got, &want, "event view of {} for org {}", ev, viewer);
                prop_assert_eq!(
                    v["Event"]["attribute_count"].as_str().map(str::to_owned),
                    Some(want.len().to_string())
                );
                // Correlations (MISP's RelatedEvent) name only events the viewer
                // may see, through attributes it may see on both sides
                // (CVE-2020-14969): exactly those while the value correlates at
                // all (its group stays within the correlation limit, 20).
                let (group, first) = self.shared[ev];
                let related: HashSet<Uuid> = v["Event"]["RelatedEvent"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| r["Event"]["uuid"].as_str().unwrap().parse().unwrap())
                    .collect();
                let want: HashSet<Uuid> = if self.attr_visible(viewer, ev, &first) {
                    self.shared
                        .iter()
                        .filter(|(u, (g, a))| {
                            *u != ev && *g == group && self.attr_visible(viewer, u, a)
                        })
                        .map(|(u, _)| *u)
                        .collect()
                } else {
                    HashSet::new()
                };
                let group_size = self.shared.values().filter(|(g, _)| *g == group).count();
                if group_size <= 20 {
                    prop_assert_eq!(&related, &want, "RelatedEvent of {} for org {}", ev, viewer);
                } else {
                    prop_assert!(
                        related.is_subset(&want),
                        "RelatedEvent of {} for org {}",
                        ev,
                        viewer
                    );
                }
            } else {
                prop_assert_eq!(s, 404, "invisible event {} answered {}", ev, v);
                prop_assert_eq!(&v["message"], "Invalid event.");
            }
            // Attribute by uuid.
            for a in self.events[ev].3.keys() {
                let (s, _) = node.get(key, &format!("/attributes/view/{a}"));
                if self.attr_visible(viewer, ev, a) {
                    prop_assert_eq!(s, 200);
                } else {
                    prop_assert!(
                        s == 404 || s == 405,
                        "invisible attribute {} answered {}",
                        a,
                        s
                    );
                }
            }
        }
        // Index rows and their counts.
        let (s, v, _) = node.post(key, "/events/index", &json!({}));
        prop_assert_eq!(s, 200);
        for row in v.as_array().unwrap() {
            let u: Uuid = row["uuid"].as_str().unwrap().parse().unwrap();
            if let Some(ev) = self.events.get(&u) {
                prop_assert!(
                    self.event_visible(viewer, &u),
                    "index lists invisible {}",
                    u
                );
                let visible =
                    ev.3.keys()
                        .filter(|a| self.attr_visible(viewer, &u, a))
                        .count();
                prop_assert_eq!(
                    row["attribute_count"].as_str().map(str::to_owned),
                    Some(visible.to_string())
                );
            }
        }
        // Searches: json, csv, text; counts in X-Result-Count.
        let (s, v, h) = node.post(
            key,
            "/attributes/restSearch",
            &json!({"value": "%.vis.example"}),
        );
        prop_assert_eq!(s, 200, "{}", v);
        let rows = v["response"]["Attribute"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for r in &rows {
            let a: Uuid = r["uuid"].as_str().unwrap().parse().unwrap();
            let e: Uuid = r["Event"]["uuid"].as_str().unwrap().parse().unwrap();
            prop_assert!(
                self.attr_visible(viewer, &e, &a),
                "search returned invisible {}",
                a
            );
        }
        let expected: usize = self
            .events
            .iter()
            .map(|(e, m)| {
                m.3.keys()
                    .filter(|a| self.attr_visible(viewer, e, a))
                    .count()
            })
            .sum();
        prop_assert_eq!(rows.len(), expected);
        prop_assert_eq!(
            h.get("x-result-count")
                .and_then(|x| x.to_str().ok())
                .map(str::to_owned),
            Some(expected.to_string())
        );
        let (s, v, _) = node.post(
            key,
            "/attributes/restSearch",
            &json!({"value": "%.vis.example", "returnFormat": "csv"}),
        );
        prop_assert_eq!(s, 200);
        let csv = v.as_str().unwrap_or_default().to_owned();
        let csv_rows = csv.lines().skip(1).filter(|l| !l.is_empty()).count();
        prop_assert_eq!(csv_rows, expected, "csv rows");
        let (s, v, _) = node.post(
            key,
            "/events/restSearch",
            &json!({"value": "%.vis.example"}),
        );
        prop_assert_eq!(s, 200);
        for e in v["response"].as_array().unwrap() {
            let u: Uuid = e["Event"]["uuid"].as_str().unwrap().parse().unwrap();
            prop_assert!(self.event_visible(viewer, &u));
            for a in Self::attr_uuids(&e["Event"]) {
                prop_assert!(self.attr_visible(viewer, &u, &a));
            }
        }
        // Tags: exactly those on something the viewer can see, in the tag
        // catalogue's listing and in the tag statistics (event tags).
        let mut want_tags = HashSet::new();
        let mut want_event_tags = HashSet::new();
        for (ev, (event_tag, attr_tags)) in &self.tags {
            if self.event_visible(viewer, ev) {
                want_tags.insert(event_tag.clone());
                want_event_tags.insert(event_tag.clone());
            }
            for (a, t) in attr_tags {
                if self.attr_visible(viewer, ev, a) {
                    want_tags.insert(t.clone());
                }
            }
        }
        let (s, v) = node.get(key, "/tags/index");
        prop_assert_eq!(s, 200);
        let listed: HashSet<String> = v["Tag"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str())
            .filter(|n| n.starts_with("vis:"))
            .map(str::to_owned)
            .collect();
        prop_assert_eq!(&listed, &want_tags, "tags/index for org {}", viewer);
        let (s, v) = node.get(key, "/tags/tagStatistics/false/true");
        prop_assert_eq!(s, 200);
        let counted: HashSet<String> = v["tags"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .filter(|n| n.starts_with("vis:"))
            .collect();
        prop_assert_eq!(
            &counted,
            &want_event_tags,
            "tagStatistics for org {}",
            viewer
        );
        Ok(())
    }

    fn check_no_write(&self, key: &str, target: &Uuid) -> Result<(), TestCaseError> {
        let before = self.node.state.store.last_sequence().unwrap();
        let attempts = [
            ("/events/add", json!({"info": "forbidden"})),
            (
                &*format!("/events/edit/{target}"),
                json!({"info": "forbidden edit"}),
            ),
            (&*format!("/events/delete/{target}"), json!({})),
            (&*format!("/events/publish/{target}"), json!({})),
            (
                &*format!("/attributes/add/{target}"),
                json!({"type": "domain", "value": "forbidden.example"}),
            ),
            (
                "/tags/attachTagToObject",
                json!({"uuid": target.to_string(), "tag": "tlp:red"}),
            ),
            ("/sharing_groups/add", json!({"name": "forbidden"})),
            ("/admin/organisations/add", json!({"name": "forbidden org"})),
        ];
        for (path, body) in attempts {
            let (s, v, _) = self.node.post(key, path, &body);
            prop_assert!(
                s == 403 || s == 404 || s == 405,
                "{} answered {} {}",
                path,
                s,
                v
            );
        }
        prop_assert_eq!(
            self.node.state.store.last_sequence().unwrap(),
            before,
            "a refused write changed the store"
        );
        Ok(())
    }
}

#[test]
fn no_endpoint_leaks_and_read_only_keys_never_write() {
    let mut world = World::new();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 16,
        ..ProptestConfig::default()
    });
    let world_ref = std::cell::RefCell::new(&mut world);
    runner
        .run(&prop::collection::vec(gen_event(), 1..4), |events| {
            let mut w = world_ref.borrow_mut();
            let created: Vec<Uuid> = events.iter().map(|g| w.create(g)).collect();
            for viewer in 0..3 {
                let keys: Vec<String> = w.orgs[viewer].readers.clone();
                for key in &keys {
                    w.check_viewer(viewer, key, &created)?;
                }
            }
            // Read-only (and sync) keys of every org never write.
            for viewer in 0..3 {
                let ro = w.orgs[viewer].readers[1].clone();
                w.check_no_write(&ro, &created[0])?;
            }
            let sync = w.sync_key.clone();
            w.check_no_write(&sync, &created[0])?;
            let _ = w.orgs[0].uuid;
            Ok(())
        })
        .unwrap();
}
