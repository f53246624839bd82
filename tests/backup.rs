//! `sluis backup` and `sluis restore`: a round trip that compares every record of
//! the database and verifies every seal; an online backup from a running node
//! under write load that restores to a consistent prefix of the writes; damaged
//! backups refused with the target untouched; `/admin/backup` for site admins only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::json;
use sluis::seal::{verify_event, SealedSighting, Tombstone, TrustList};
use sluis::store::Store;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Runs `sluis <args> --config <config>`.
fn sluis_at(config: &Path, args: &[&str]) -> Output {
    Command::new(sluis_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// A sled tree's name and its entries, in key order.
type Tree = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

/// Every tree of the sled database in `dir`, every key and value, read with sled
/// itself (not through sluis), so the comparison does not trust the code it tests.
fn raw_contents(dir: &Path) -> Vec<Tree> {
    let db = open_raw(dir);
    let mut names: Vec<Vec<u8>> = db.tree_names().iter().map(|n| n.to_vec()).collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let tree = db.open_tree(&name).unwrap();
            let entries = tree
                .iter()
                .map(|kv| {
                    let (k, v) = kv.unwrap();
                    (k.to_vec(), v.to_vec())
                })
                .collect();
            (name, entries)
        })
        .collect()
}

/// sled lets go of its file lock a moment after a database closes (a node that
/// just stopped, a command that just exited): retry briefly.
fn open_raw(dir: &Path) -> sled::Db {
    let start = Instant::now();
    loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => return db,
            Err(e) if start.elapsed() < Duration::from_secs(5) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot open {}: {e}", dir.display()),
        }
    }
}

/// Keys in the `data` tree whose keyspace prefix is `prefix` (see the keyspace
/// table in `src/store/mod.rs`; the prefixes never change for a database).
fn count_prefix(contents: &[Tree], prefix: u8) -> usize {
    contents
        .iter()
        .filter(|(name, _)| name == b"data")
        .flat_map(|(_, e)| e.iter())
        .filter(|(k, _)| k.first() == Some(&prefix))
        .count()
}
const KS_USERS: u8 = 19;
const KS_AUTHKEYS: u8 = 20;
const KS_SIGHTING_SEALS: u8 = 21;
const KS_TOMBSTONES: u8 = 22;

fn trust_of(node: &RunningNode) -> TrustList {
    let mut trust = TrustList::new();
    trust
        .add(
            node.state.node.org,
            &node.state.sealer.key().public_key_b64(),
            None,
            None,
        )
        .unwrap();
    trust
}

/// A node config in a fresh directory that shares nothing with `text`'s node
/// but its settings: its database directory is `<dir>/db`, absent.
fn fresh_config_from(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluis.toml");
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The one `error: …` line a failed command prints.
fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure: {}", stderr(o));
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_owned()
}

#[test]
fn round_trip_keeps_every_record_and_every_seal() {
    let node = RunningNode::start("localhost", "CERT-A");
    let key = node.admin_key.clone();
    let trust = trust_of(&node);
    // Events through the API, each sealed by the node.
    let mut events = Vec::new();
    let mut attrs = Vec::new();
    for i in 0..4 {
        let (s, v, _) = node.post(
            &key,
            "/events/add",
            &json!({"info": format!("backup {i}"), "Tag": [{"name": "tlp:green"}],
            "Attribute": [
                {"type": "ip-dst", "value": format!("198.51.100.{i}")},
                {"type": "domain", "value": format!("c2-{i}.example")},
            ]}),
        );
        assert_eq!(s, 200, "{v}");
        events.push(
            v["Event"]["uuid"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap(),
        );
        attrs.push(
            v["Event"]["Attribute"][0]["uuid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Sealed sightings, a tag removal and a deletion (sealed tombstones).
    for a in &attrs[..2] {
        let (s, v, _) = node.post(
            &key,
            &format!("/sightings/add/{a}"),
            &json!({"source": "ids"}),
        );
        assert_eq!(s, 200, "{v}");
    }
    let (s, v, _) = node.post(
        &key,
        "/tags/removeTagFromObject",
        &json!({"uuid": events[1].to_string(), "tag": "tlp:green"}),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = node.post(&key, &format!("/events/delete/{}", events[3]), &json!({}));
    assert_eq!(s, 200, "{v}");
    // Another organisation with a user and an API key.
    let (_, user_key) = node.org_with_user("CERT-B", 3);

    // The node stopped, MISP's sample events imported with the import command.
    let stopped = node.stop();
    let samples: Vec<String> = sample_events()
        .into_iter()
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["import"];
    args.extend(samples.iter().map(String::as_str));
    let out = sluis_at(&stopped.config, &args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // Offline backup: the database is not in use.
    let file = stopped.dir.path().join("node.sbk");
    let out = sluis_at(
        &stopped.config,
        &["backup", "--out", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("(offline)"), "{}", stderr(&out));
    // Nothing is left beside the backup but the backup.
    assert!(!names_in(stopped.dir.path())
        .iter()
        .any(|n| n.contains("partial")));

    // Restore into a fresh node directory.
    let text = std::fs::read_to_string(&stopped.config).unwrap();
    let (fresh, fresh_config) = fresh_config_from(&text);
    let out = sluis_at(&fresh_config, &["restore", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names_in(fresh.path()), ["db", "sluis.toml"]);

    // Every tree, every key, every value: identical.
    let original = raw_contents(&stopped.dir.path().join("db"));
    let restored = raw_contents(&fresh.path().join("db"));
    assert_eq!(original.len(), restored.len(), "the same trees");
    for ((name_a, a), (name_b, b)) in original.iter().zip(&restored) {
        assert_eq!(name_a, name_b);
        assert_eq!(a.len(), b.len(), "tree {}", String::from_utf8_lossy(name_a));
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x, y, "tree {}", String::from_utf8_lossy(name_a));
        }
    }
    // …and the data exercised what it should.
    assert!(count_prefix(&original, KS_SIGHTING_SEALS) >= 2);
    assert!(count_prefix(&original, KS_TOMBSTONES) >= 2);
    assert!(count_prefix(&original, KS_USERS) >= 2);
    assert!(count_prefix(&original, KS_AUTHKEYS) >= 2);

    // Every seal of the restored database verifies: events (offline, with
    // `sluis verify` against the original node's trust), sightings, tombstones.
    let export = fresh.path().join("export.json");
    let out = sluis_at(
        &fresh_config,
        &[
            "export",
            "--include-deleted",
            "-o",
            export.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sluis_at(&stopped.config, &["verify", export.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let ok_lines = stdout(&out)
        .lines()
        .filter(|l| l.starts_with("ok\t"))
        .count();

    let store = Store::open(&fresh.path().join("db"), Default::default()).unwrap();
    let now = sluis::model::time::now_secs();
    let live: Vec<Uuid> = store.event_uuids().map(Result::unwrap).collect();
    assert_eq!(ok_lines, live.len());
    assert!(live.len() >= 15, "the API's events and the samples");
    for u in &live {
        let ev = store.get_event(u).unwrap().unwrap();
        verify_event(&ev, &trust, now).unwrap_or_else(|e| panic!("{u}: {e}"));
    }
    for (i, a) in attrs[..2].iter().enumerate() {
        let a: Uuid = a.parse().unwrap();
        let sightings = store.sightings_of(&events[i]).unwrap();
        let s = sightings
            .iter()
            .find(|s| s.attribute_uuid == a)
            .expect("the sighting was restored");
        let sealed: SealedSighting =
            serde_json::from_slice(&store.sighting_seal(&events[i], &s.uuid).unwrap().unwrap())
                .unwrap();
        sealed.verify(&trust, now).unwrap();
    }
    for u in [events[1], events[3]] {
        let stones = store.tombstones_of(&u).unwrap();
        assert!(!stones.is_empty());
        for b in stones {
            let t: Tombstone = serde_json::from_slice(&b).unwrap();
            t.verify(&trust, now).unwrap();
        }
    }
    assert!(store.is_deleted(&events[3]).unwrap());
    // The accounts came along: both keys still authenticate.
    assert!(store
        .authenticate(&stopped.admin_key, now)
        .unwrap()
        .is_some());
    assert!(store.authenticate(&user_key, now).unwrap().is_some());
}

#[test]
fn online_backup_under_writes_restores_a_consistent_prefix() {
    const ATTRS: usize = 6;
    let node = RunningNode::start("localhost", "CERT-A");
    // `sluis init` wrote the URL of port 0; point the config at the real port.
    let text = std::fs::read_to_string(&node.config).unwrap();
    let fixed = text.replace(
        "url = \"https://127.0.0.1:0\"",
        &format!("url = \"{}\"", node.url),
    );
    assert_ne!(text, fixed, "the config's [node] url line");
    std::fs::write(&node.config, fixed).unwrap();
    let trust = trust_of(&node);

    let posted: Mutex<Vec<Uuid>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let count = || posted.lock().unwrap().len();
    let wait_for = |n: usize| {
        let start = Instant::now();
        while count() < n {
            assert!(start.elapsed() < Duration::from_secs(60), "writes stalled");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let file = node.dir.path().join("online.sbk");
    let (before, after) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let client = node.client();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let attributes: Vec<_> = (0..ATTRS)
                    .map(|j| json!({"type": "domain", "value": format!("a{j}.w{i}.example")}))
                    .collect();
                let r = client
                    .post(format!("{}/events/add", node.url))
                    .header("Authorization", &node.admin_key)
                    .json(&json!({"info": format!("under load {i}"), "Attribute": attributes}))
                    .send()
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                let v: serde_json::Value = r.json().unwrap();
                let u: Uuid = v["Event"]["uuid"].as_str().unwrap().parse().unwrap();
                posted.lock().unwrap().push(u);
                i += 1;
            }
        });
        wait_for(5);
        let before = count();
        // The node holds the database: the command falls back to the node's API.
        let out = sluis_at(&node.config, &["backup", "--out", file.to_str().unwrap()]);
        let after = count();
        // Writes go on after the backup; none of these can be in it.
        wait_for(after + 3);
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("from the running node at {}", node.url)),
            "{}",
            stderr(&out)
        );
        (before, after)
    });
    let posted = posted.into_inner().unwrap();

    let text = std::fs::read_to_string(&node.config).unwrap();
    let (fresh, fresh_config) = fresh_config_from(&text);
    let out = sluis_at(&fresh_config, &["restore", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let store = Store::open(&fresh.path().join("db"), Default::default()).unwrap();

    // A prefix of the writes, in the order they were acknowledged.
    let present: Vec<bool> = posted
        .iter()
        .map(|u| store.get_event_header(u).unwrap().is_some())
        .collect();
    let k = present.iter().take_while(|p| **p).count();
    assert!(
        present[k..].iter().all(|p| !p),
        "the backup holds a later write without an earlier one: {present:?}"
    );
    assert!(k >= before, "the snapshot is older than the backup command");
    assert!(k <= after + 1, "the snapshot holds writes made after it");
    assert!(k < posted.len());
    // Every event in it is whole and sealed.
    let now = sluis::model::time::now_secs();
    for u in &posted[..k] {
        let ev = store.get_event(u).unwrap().unwrap();
        assert_eq!(ev.attributes.len(), ATTRS, "event {u}");
        verify_event(&ev, &trust, now).unwrap_or_else(|e| panic!("{u}: {e}"));
    }
    // The change log is contiguous from 1, and names only events that are there.
    let changes = store.changes_after(0, usize::MAX).unwrap();
    let seqs: Vec<u64> = changes.iter().map(|(s, _)| *s).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
    assert_eq!(store.last_sequence().unwrap(), seqs.len() as u64);
    assert!(seqs.len() >= k);
    for (seq, c) in &changes {
        assert!(
            store.get_event_header(&c.event).unwrap().is_some(),
            "change {seq} names event {} the backup lacks",
            c.event
        );
    }
    assert_eq!(store.event_count(), k);
}

/// A node with MISP's samples imported, and a backup of it.
fn node_and_backup() -> (TestNode, PathBuf, Vec<u8>) {
    let node = TestNode::new();
    let out = node.sluis(&[
        "import",
        samples_dir().join("long_event.json").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = node.dir.path().join("b.sbk");
    let out = node.sluis(&["backup", "--out", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&file).unwrap();
    (node, file, bytes)
}

#[test]
fn damaged_backups_are_refused_and_the_target_is_untouched() {
    let (node, file, bytes) = node_and_backup();
    let target = TestNode::new();
    let before = names_in(target.dir.path());
    let damaged = node.dir.path().join("damaged.sbk");
    let mid = bytes.len() / 2;
    let mut flipped = bytes.clone();
    flipped[mid] ^= 0x20;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "truncated"),
        ("header only", bytes[..28].to_vec(), "truncated"),
        ("half", bytes[..mid].to_vec(), "truncated"),
        (
            "all but the last byte",
            bytes[..bytes.len() - 1].to_vec(),
            "truncated",
        ),
        ("one flipped bit", flipped, "damaged"),
        (
            "not a backup",
            b"{\"Event\": {}}".to_vec(),
            "not a sluis backup",
        ),
    ];
    for (what, content, expect) in cases {
        std::fs::write(&damaged, &content).unwrap();
        let out = target.sluis(&["restore", damaged.to_str().unwrap()]);
        let line = error_line(&out);
        assert!(line.contains(expect), "{what}: {line}");
        assert!(
            line.contains("damaged.sbk"),
            "{what}: names the file: {line}"
        );
        assert_eq!(
            names_in(target.dir.path()),
            before,
            "{what}: nothing written"
        );
    }

    // An existing database is refused without --force, and left as it was.
    let out = node.sluis(&["restore", file.to_str().unwrap()]);
    assert!(error_line(&out).contains("not empty"));
    // With --force and a damaged file: still refused, nothing moved.
    std::fs::write(&damaged, &bytes[..mid]).unwrap();
    let listing = names_in(node.dir.path());
    let out = node.sluis(&["restore", "--force", damaged.to_str().unwrap()]);
    assert!(error_line(&out).contains("truncated"));
    assert_eq!(names_in(node.dir.path()), listing);
    let contents = raw_contents(&node.db_dir());
    // With --force and a good file: the old database is moved aside, not deleted.
    let out = node.sluis(&["restore", "--force", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let aside: Vec<String> = names_in(node.dir.path())
        .into_iter()
        .filter(|n| n.starts_with("db.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(&aside[0]));
    assert_eq!(raw_contents(&node.dir.path().join(&aside[0])), contents);
    assert_eq!(raw_contents(&node.db_dir()), contents);

    // A backup never overwrites a file.
    let out = node.sluis(&["backup", "--out", damaged.to_str().unwrap()]);
    assert!(error_line(&out).contains("already exists"));
    assert_eq!(std::fs::read(&damaged).unwrap(), &bytes[..mid]);
}

#[test]
fn admin_backup_is_for_site_admins_only() {
    let node = RunningNode::start("localhost", "CERT-A");
    let (_, user) = node.org_with_user("CERT-B", 3);
    let (_, org_admin) = node.org_with_user("CERT-A", 2);
    for key in [&user, &org_admin] {
        let (s, v) = node.get(key, "/admin/backup");
        assert_eq!(s, 403, "{v}");
    }
    let r = node
        .client()
        .get(format!("{}/admin/backup", node.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    let r = node
        .client()
        .get(format!("{}/admin/backup", node.url))
        .header("Authorization", &node.admin_key)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/octet-stream"
    );
    let body = r.bytes().unwrap();
    let summary = sluis::store::backup::verify(&body[..], &mut |_| {}).unwrap();
    assert_eq!(summary.bytes, body.len() as u64);
    assert!(summary.records > 0);

    // The command, given a key that is not an admin's, reports the refusal.
    std::fs::write(node.dir.path().join("admin.key"), format!("{user}\n")).unwrap();
    let file = node.dir.path().join("refused.sbk");
    let out = sluis_at(
        &node.config,
        &[
            "backup",
            "--out",
            file.to_str().unwrap(),
            "--url",
            &node.url,
        ],
    );
    let line = error_line(&out);
    assert!(line.contains("403"), "{line}");
    assert!(!file.exists());
    assert!(!names_in(node.dir.path())
        .iter()
        .any(|n| n.contains("refused")));
}
