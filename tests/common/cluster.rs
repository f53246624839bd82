//! Several real nodes sharing one federation CA, each with its own organisation
//! and signing key, peered along the links a test names (both directions, pull
//! and push), serving over mutual TLS on `127.0.0.1`. Nodes can be stopped and
//! restarted on the same address, so faults are tested on the real thing.

use super::{RunningNode, StoppedNode};
use sluis::seal::TrustList;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What the other nodes know of a member.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub org_name: String,
    pub org: Uuid,
    pub public_key: String,
    pub addr: SocketAddr,
}

enum Slot {
    Running(RunningNode),
    Stopped(StoppedNode),
    Taken,
}

pub struct Cluster {
    pub ca: tempfile::TempDir,
    pub members: Vec<Member>,
    slots: HashMap<String, Slot>,
    /// Who pulls from whom: `(puller, source)` for both directions of each link.
    pub edges: Vec<(String, String)>,
}

/// Polls `check` every 100 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

impl Cluster {
    /// Nodes `names` (`cert-a` → org `CERT-A`), peered along `links`. `tweak`
    /// may edit each node's config text (by node name) before it starts.
    pub fn new(names: &[&str], links: &[(&str, &str)], tweak: impl Fn(&str, &mut String)) -> Self {
        let ca = tempfile::tempdir().unwrap();
        let mut prepared = Vec::new();
        let mut members = Vec::new();
        for name in names {
            let dir = tempfile::tempdir().unwrap();
            let org_name = name.to_uppercase();
            let report = sluis::node::init(&sluis::node::InitOptions {
                dir: dir.path().to_owned(),
                name: (*name).into(),
                org: org_name.clone(),
                org_uuid: None,
                listen: "127.0.0.1:0".into(),
                ca_dir: Some(ca.path().to_owned()),
            })
            .unwrap();
            let cfg = sluis::config::Config::load(&report.config).unwrap();
            let key = sluis::seal::NodeKey::load(&dir.path().join("signing.key")).unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            members.push(Member {
                name: (*name).into(),
                org_name,
                org: cfg.node.org_uuid.unwrap(),
                public_key: key.public_key_b64(),
                addr: listener.local_addr().unwrap(),
            });
            prepared.push((dir, report, listener));
        }
        let mut edges = Vec::new();
        for (a, b) in links {
            edges.push(((*a).to_owned(), (*b).to_owned()));
            edges.push(((*b).to_owned(), (*a).to_owned()));
        }
        let mut slots = HashMap::new();
        for ((dir, report, listener), me) in prepared.into_iter().zip(&members) {
            let mut text = std::fs::read_to_string(&report.config).unwrap();
            text = text.replace(
                "url = \"https://127.0.0.1:0\"",
                &format!("url = \"https://{}\"", me.addr),
            );
            for (puller, source) in &edges {
                if *puller == me.name {
                    let peer = members.iter().find(|m| m.name == *source).unwrap();
                    text.push_str(&super::peer_table(
                        &peer.name,
                        &format!("https://{}", peer.addr),
                        peer.org,
                        &peer.public_key,
                        None,
                    ));
                    text.push_str("interval = \"5s\"\n");
                }
            }
            // Nodes further away are trusted as origins (their records arrive
            // over several hops, sealed by them).
            for m in &members {
                let peered = edges.iter().any(|(p, s)| *p == me.name && *s == m.name);
                if m.name != me.name && !peered {
                    text.push_str(&format!(
                        "\n[[origin]]\norg_uuid = \"{}\"\npublic_key = \"{}\"\n",
                        m.org, m.public_key
                    ));
                }
            }
            tweak(&me.name, &mut text);
            std::fs::write(&report.config, &text).unwrap();
            let node = RunningNode::serve(dir, report.config, report.admin_key, listener);
            // Every member's organisation is known everywhere, so sharing groups
            // can name them (an operator does this with /admin/organisations/add).
            for m in &members {
                node.state
                    .store
                    .add_org(m.org, &m.org_name, m.name == me.name)
                    .unwrap();
            }
            slots.insert(me.name.clone(), Slot::Running(node));
        }
        Cluster {
            ca,
            members,
            slots,
            edges,
        }
    }

    pub fn member(&self, name: &str) -> &Member {
        self.members.iter().find(|m| m.name == name).unwrap()
    }

    pub fn org(&self, name: &str) -> Uuid {
        self.member(name).org
    }

    /// The running node `name`.
    pub fn node(&self, name: &str) -> &RunningNode {
        match self.slots.get(name) {
            Some(Slot::Running(n)) => n,
            _ => panic!("{name} is not running"),
        }
    }

    pub fn is_running(&self, name: &str) -> bool {
        matches!(self.slots.get(name), Some(Slot::Running(_)))
    }

    /// Stops `name` (drained, store closed); its directory and address are kept.
    pub fn stop(&mut self, name: &str) {
        let slot = self.slots.insert(name.into(), Slot::Taken);
        match slot {
            Some(Slot::Running(n)) => {
                self.slots.insert(name.into(), Slot::Stopped(n.stop()));
            }
            _ => panic!("{name} is not running"),
        }
    }

    /// Serves `name` again on its address.
    pub fn restart(&mut self, name: &str) {
        let slot = self.slots.insert(name.into(), Slot::Taken);
        match slot {
            Some(Slot::Stopped(n)) => {
                self.slots.insert(name.into(), Slot::Running(n.restart()));
            }
            _ => panic!("{name} is not stopped"),
        }
    }

    /// Every member's key, as a node that trusts them all would hold them.
    pub fn trust(&self) -> TrustList {
        let mut t = TrustList::new();
        for m in &self.members {
            t.add(m.org, &m.public_key, None, None).unwrap();
        }
        t
    }

    /// Waits until every running puller has caught up with its running source
    /// and nothing has moved for a moment (no node's change log grew, every
    /// cursor at its source's durable head). Panics with the cursors after
    /// `limit`.
    pub fn settle(&self, limit: Duration) {
        let snapshot = || -> Vec<(String, u64, u64)> {
            let mut v = Vec::new();
            for (puller, source) in &self.edges {
                if !(self.is_running(puller) && self.is_running(source)) {
                    continue;
                }
                let head = self.node(source).state.store.durable_sequence();
                let cursor = self
                    .node(puller)
                    .state
                    .store
                    .peer_state(source)
                    .unwrap()
                    .cursor;
                v.push((format!("{puller}<-{source}"), cursor, head));
            }
            v
        };
        let mut last = Vec::new();
        let ok = eventually(limit, || {
            let now = snapshot();
            let caught_up = now.iter().all(|(_, c, h)| c >= h);
            let stable = now == last;
            last = now;
            caught_up && stable
        });
        assert!(ok, "the cluster did not settle: {last:?}");
    }
}
