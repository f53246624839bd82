//! SIGKILL in the middle of a sync. B runs as a real `sluis serve` process
//! pulling A's feed over mutual TLS and is killed with SIGKILL at moments chosen
//! to land while it is applying pages, several times; restarted each time, it
//! must end up with exactly A's events — every one, each the version A holds,
//! with its sightings once — and nothing twice.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::json;
use sluis::store::{Durability, Store};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

const EVENTS: u64 = 240;
const ATTRS: usize = 50;

fn spawn(config: &std::path::Path) -> Child {
    Command::new(sluis_bin())
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `(events held, cursor on A's feed)` of B's store, opened while B is down.
fn progress(db: &std::path::Path) -> (u64, u64) {
    let s = Store::open(db, Default::default()).unwrap();
    let n = s.event_uuids().count() as u64;
    (n, s.peer_state("cert-a").unwrap().cursor)
}

/// Every event's uuid → (seal signature, attribute uuids, sighting uuids).
fn contents(s: &Store) -> BTreeMap<Uuid, (String, Vec<Uuid>, Vec<Uuid>)> {
    s.event_uuids()
        .map(|u| {
            let u = u.unwrap();
            let e = s.get_event(&u).unwrap().unwrap();
            let mut attrs: Vec<Uuid> = e.all_attributes().map(|a| a.uuid).collect();
            attrs.sort();
            let mut sightings: Vec<Uuid> =
                s.sightings_of(&u).unwrap().iter().map(|x| x.uuid).collect();
            sightings.sort();
            (u, (e.seal.unwrap().signature, attrs, sightings))
        })
        .collect()
}

#[test]
fn a_node_killed_mid_sync_resumes_without_loss_or_duplicates() {
    let ca = tempfile::tempdir().unwrap();
    // B's node directory first, so A can name it as a peer.
    let b_dir = tempfile::tempdir().unwrap();
    let b_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b_report = sluis::node::init(&sluis::node::InitOptions {
        dir: b_dir.path().to_owned(),
        name: "cert-b".into(),
        org: "CERT-B".into(),
        org_uuid: None,
        listen: format!("127.0.0.1:{b_port}"),
        ca_dir: Some(ca.path().to_owned()),
    })
    .unwrap();
    let b_cfg = sluis::config::Config::load(&b_report.config).unwrap();
    let b_org = b_cfg.node.org_uuid.unwrap();
    let b_pub = sluis::seal::NodeKey::load(&b_dir.path().join("signing.key"))
        .unwrap()
        .public_key_b64();
    let a = RunningNode::start_with_ca("cert-a", "CERT-A", Some(ca.path()), |t| {
        t.push_str(&peer_table(
            "cert-b",
            &format!("https://127.0.0.1:{b_port}"),
            b_org,
            &b_pub,
            None,
        ));
        t.push_str("pull = false\npush = false\n");
    });
    // A's events, sealed by A's store as the API would store them.
    let mut sighted = Vec::new();
    for seed in 0..EVENTS {
        let raw = serde_json::to_vec(&generated_event(seed, ATTRS)).unwrap();
        let mut ev = sluis::model::parse::parse_event(&raw, 1 << 24).unwrap();
        ev.published = true;
        ev.distribution = 3;
        ev.seal = None;
        let durability = if seed + 1 == EVENTS {
            Durability::Flush
        } else {
            Durability::Deferred
        };
        let out = a.state.store.put_event(ev, durability).unwrap();
        if seed % 40 == 0 {
            sighted.push(out.uuid());
        }
    }
    for u in &sighted {
        let ev = a.state.store.get_event(u).unwrap().unwrap();
        let attr = ev.attributes[0].uuid;
        let (s, v, _) = a.post(&a.admin_key, &format!("/sightings/add/{attr}"), &json!({}));
        assert_eq!(s, 200, "{v}");
    }
    let head = a.state.store.durable_sequence();

    let mut text = std::fs::read_to_string(&b_report.config).unwrap();
    text.push_str(&peer_table(
        "cert-a",
        &a.url,
        a.state.node.org,
        &a.state.sealer.key().public_key_b64(),
        None,
    ));
    text.push_str("push = false\ninterval = \"1s\"\n");
    std::fs::write(&b_report.config, text).unwrap();
    let db = b_dir.path().join("db");

    // Kill B at moments that land mid-sync: too early (nothing yet) waits
    // longer next time, too late (all done) starts over on a fresh copy is not
    // possible, so the delays grow slowly from short.
    let mut delay = Duration::from_millis(300);
    let mut mid_sync_kills = 0;
    let mut rounds = Vec::new();
    for _ in 0..8 {
        let mut child = spawn(&b_report.config);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (held, cursor) = progress(&db);
        rounds.push((delay, held, cursor));
        if held == EVENTS && cursor >= head {
            break;
        }
        if held > 0 || cursor > 0 {
            mid_sync_kills += 1;
        }
        if held == 0 {
            delay += Duration::from_millis(300);
        } else {
            delay += Duration::from_millis(100);
        }
        if mid_sync_kills >= 3 {
            break;
        }
    }
    assert!(
        mid_sync_kills >= 1,
        "no kill landed while B was syncing: {rounds:?}"
    );

    // Let B finish; it reports its cursor to A when a page is done.
    let mut child = spawn(&b_report.config);
    let done = eventually(Duration::from_secs(120), || {
        a.state.store.peer_out("cert-b").unwrap().cursor >= head
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(done, "B did not catch up after the kills: {rounds:?}");

    // With B stopped, `sluis peers` reads its database directly.
    let o = Command::new(sluis_bin())
        .args(["peers", "--config"])
        .arg(&b_report.config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("cursor {head} of {head} (lag 0)")),
        "{}",
        stdout(&o)
    );
    let b_store = Store::open(&db, Default::default()).unwrap();
    let got = contents(&b_store);
    let want = contents(&a.state.store);
    assert_eq!(got.len(), want.len(), "rounds {rounds:?}");
    for (u, w) in &want {
        assert_eq!(got.get(u), Some(w), "event {u} differs on B");
    }
    let st = b_store.peer_state("cert-a").unwrap();
    assert_eq!(st.cursor, head);
    assert_eq!(st.rejected, 0, "{st:?}");
    // Each of A's events was logged on B once: a record applied again after a
    // kill is recognised as held, not stored twice.
    let changes = b_store.changes_after(0, 1_000_000).unwrap();
    let stored = changes
        .iter()
        .filter(|(_, c)| matches!(c.kind, sluis::store::record::ChangeKind::EventStored))
        .count();
    assert_eq!(stored as u64, EVENTS, "rounds {rounds:?}");
    eprintln!("kill rounds (delay, events held, cursor): {rounds:?}; head {head}");
}
