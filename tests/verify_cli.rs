//! Sealed exports, end to end through the `sluis` binary (issue 4): `sluis export`
//! carries every event's seal, `sluis verify` checks them offline and names each
//! event that fails, and `sluis import` accepts a sealed export only when every
//! seal verifies against the node's trust list — its own key, `[[origin]]`s —
//! storing nothing of an event whose seal fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every sample file that holds an event.
fn sample_paths() -> Vec<PathBuf> {
    sample_events().into_iter().map(|(p, _)| p).collect()
}

/// `sluis <args>`, run in `cwd` with no `SLUIS_CONFIG` from the environment.
fn sluis_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(sluis_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("SLUIS_CONFIG")
        .output()
        .unwrap()
}

fn import(node: &TestNode, paths: &[PathBuf]) -> Output {
    let mut args = vec!["import"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    node.sluis(&args)
}

/// `sluis export --format misp --include-deleted -o <dir>/<name>`; the parsed file.
fn export(node: &TestNode, name: &str) -> (PathBuf, Value) {
    let file = node.dir.path().join(name);
    let out = node.sluis(&[
        "export",
        "--format",
        "misp",
        "--include-deleted",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "export: {}", stderr(&out));
    let doc = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    (file, doc)
}

fn events(doc: &Value) -> &Vec<Value> {
    doc["response"].as_array().expect("a response list")
}

/// A node holding every sample event, imported (and so sealed) by it.
fn node_with_samples() -> TestNode {
    let node = TestNode::new();
    let out = import(&node, &sample_paths());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    node
}

/// Everything observable about a store: its full export and last change number.
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

/// Changes the value of the first top-level attribute of the first event that
/// has one; returns that event's uuid.
fn edit_one_value(doc: &mut Value) -> String {
    for e in doc["response"].as_array_mut().unwrap() {
        let ev = &mut e["Event"];
        let uuid = ev["uuid"].as_str().unwrap().to_owned();
        if let Some(a) = ev["Attribute"].as_array_mut().and_then(|a| a.first_mut()) {
            let v = a["value"].as_str().unwrap().to_owned();
            a["value"] = Value::String(format!("{v}.evil"));
            return uuid;
        }
    }
    panic!("no event with a top-level attribute");
}

fn lines(o: &Output) -> Vec<String> {
    stdout(o).lines().map(str::to_owned).collect()
}

/// The export carries a seal on every event, by this node, and `sluis verify`
/// with the node's config checks every one: one `ok` line per event, exit 0.
/// Edit one attribute value in the file and exactly that event fails, named.
#[test]
fn export_then_verify_and_an_edited_value_fails() {
    let node = node_with_samples();
    let (file, doc) = export(&node, "export.json");
    let evs = events(&doc);
    assert!(evs.len() >= 14, "{}", evs.len());
    for e in evs {
        let seal = &e["Event"]["Seal"];
        assert_eq!(seal["version"], 1, "{e}");
        assert_eq!(seal["origin_org"], node.org_uuid.to_string());
        assert!(seal["signed_at"].as_u64().is_some(), "{seal}");
    }

    let conf = node.config.to_str().unwrap();
    let out = sluis_in(
        node.dir.path(),
        &["verify", file.to_str().unwrap(), "--config", conf],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let ls = lines(&out);
    assert_eq!(ls.len(), evs.len());
    for (l, e) in ls.iter().zip(evs) {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f[0], "ok", "{l}");
        assert_eq!(f[1], e["Event"]["uuid"].as_str().unwrap());
        assert_eq!(f[2], node.org_uuid.to_string());
        assert_eq!(f.len(), 4, "{l}");
    }

    let mut edited = doc.clone();
    let victim = edit_one_value(&mut edited);
    let bad = node.dir.path().join("edited.json");
    std::fs::write(&bad, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
    let out = sluis_in(
        node.dir.path(),
        &["verify", bad.to_str().unwrap(), "--config", conf],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let failed: Vec<String> = lines(&out)
        .into_iter()
        .filter(|l| l.starts_with("FAIL\t"))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].starts_with(&format!("FAIL\t{victim}\tAttribute ")),
        "{}",
        failed[0]
    );
    assert!(
        failed[0].contains("not among the signed elements"),
        "{}",
        failed[0]
    );
    assert!(stderr(&out).contains("1 failed"), "{}", stderr(&out));
}

/// Without a config (none given, no ./sluis-data) and without --key nothing is
/// trusted: every event fails as signed by an unknown key. `--key` with the
/// node's public key makes it pass, with the origin marked as not pinned.
#[test]
fn verify_without_trust_fails_and_key_makes_it_pass() {
    let node = node_with_samples();
    let (file, doc) = export(&node, "export.json");
    let elsewhere = tempfile::tempdir().unwrap();
    let f = file.to_str().unwrap();

    let out = sluis_in(elsewhere.path(), &["verify", f]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ls = lines(&out);
    assert_eq!(ls.len(), events(&doc).len());
    assert!(
        ls.iter()
            .all(|l| l.starts_with("FAIL\t") && l.contains("unknown signing key")),
        "{ls:?}"
    );
    assert!(
        stderr(&out).contains("no key is trusted"),
        "{}",
        stderr(&out)
    );

    let out = sluis_in(elsewhere.path(), &["verify", f, "--key", &node.public_key]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        lines(&out).iter().all(|l| l.starts_with("ok\t")
            && l.ends_with("origin org not pinned (key given with --key)")),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("check that the origin orgs"),
        "{}",
        stderr(&out)
    );

    // Another key does not help; a malformed one is an operational error.
    let other = TestNode::new();
    let out = sluis_in(elsewhere.path(), &["verify", f, "--key", &other.public_key]);
    assert_eq!(out.status.code(), Some(1));
    let out = sluis_in(elsewhere.path(), &["verify", f, "--key", "not-a-key"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: --key not-a-key"),
        "{}",
        stderr(&out)
    );
    // So is a file that is not a MISP export.
    let junk = elsewhere.path().join("junk.json");
    std::fs::write(&junk, "{\"nothing\": 1}").unwrap();
    let out = sluis_in(elsewhere.path(), &["verify", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

/// The node's own untouched export comes back "unchanged"; a tampered one is
/// rejected for the edited event, with the reason, and changes nothing.
#[test]
fn reimport_untouched_is_unchanged_and_tampered_is_rejected() {
    let node = node_with_samples();
    let (file, doc) = export(&node, "export.json");
    let before = snapshot(&node);

    let out = import(&node, std::slice::from_ref(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    let ls = lines(&out);
    assert_eq!(ls.len(), events(&doc).len());
    assert!(ls.iter().all(|l| l.starts_with("unchanged\t")), "{ls:?}");
    assert_eq!(snapshot(&node), before);

    let mut edited = doc.clone();
    let victim = edit_one_value(&mut edited);
    let bad = node.dir.path().join("tampered.json");
    std::fs::write(&bad, serde_json::to_vec(&edited).unwrap()).unwrap();
    let out = import(&node, &[bad]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let rejected: Vec<String> = lines(&out)
        .into_iter()
        .filter(|l| l.starts_with("rejected\t"))
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let f: Vec<&str> = rejected[0].split('\t').collect();
    assert_eq!(f[2], victim);
    assert!(
        f[3].starts_with("seal: Attribute ") && f[3].contains("not among the signed elements"),
        "{}",
        f[3]
    );
    assert!(
        stderr(&out).contains("1 rejected for their seal"),
        "{}",
        stderr(&out)
    );
    // The warning names the event and the reason.
    assert!(
        stderr(&out).contains("sealed event rejected"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&victim), "{}", stderr(&out));
    assert_eq!(snapshot(&node), before);
}

/// What `sluis keys` prints, as a map.
fn keys_of(config: &Path) -> std::collections::HashMap<String, String> {
    let out = sluis_in(
        config.parent().unwrap(),
        &["keys", "--config", config.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A node made by `sluis init` (as an operator would): returns its config path.
fn init_node(parent: &Path, name: &str, org: &str) -> PathBuf {
    let dir = parent.join(name);
    let out = sluis_in(
        parent,
        &[
            "init",
            "--dir",
            dir.to_str().unwrap(),
            "--name",
            name,
            "--org",
            org,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join("sluis.toml")
}

fn run(config: &Path, args: &[&str]) -> Output {
    let mut a = args.to_vec();
    a.extend(["--config", config.to_str().unwrap()]);
    sluis_in(config.parent().unwrap(), &a)
}

/// Node A's export imported into node B: rejected whole while B does not trust
/// A; accepted once B's config has an `[[origin]]` for A (org_uuid and
/// public_key from A's `sluis keys`). B then holds A's events under A's seal:
/// B's own export carries A's seals and verifies, against B's config or A's key.
/// Only A may change them: an unsealed newer version is refused by B.
#[test]
fn a_partners_export_needs_trust_and_keeps_its_seal() {
    let tmp = tempfile::tempdir().unwrap();
    let a = init_node(tmp.path(), "cert-a", "CERT-A");
    let b = init_node(tmp.path(), "cert-b", "CERT-B");
    let samples = sample_paths();
    let mut args = vec!["import"];
    args.extend(samples.iter().map(|p| p.to_str().unwrap()));
    let out = run(&a, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let a_export = tmp.path().join("a.json");
    let out = run(&a, &["export", "-o", a_export.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a_doc: Value = serde_json::from_slice(&std::fs::read(&a_export).unwrap()).unwrap();
    let n = events(&a_doc).len();
    let a_keys = keys_of(&a);

    // B does not trust A: every event rejected, nothing stored.
    let out = run(&b, &["import", a_export.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let ls = lines(&out);
    assert_eq!(ls.len(), n);
    assert!(
        ls.iter().all(|l| l.starts_with("rejected\t")
            && l.contains("seal: unknown signing key")
            && l.contains(&a_keys["key_id"])),
        "{ls:?}"
    );
    let b_db = b.parent().unwrap().join("db");
    {
        let store = sluis::store::Store::open(&b_db, Default::default()).unwrap();
        assert_eq!(store.event_count(), 0);
    }

    // B trusts A as an origin.
    let mut text = std::fs::read_to_string(&b).unwrap();
    text.push_str(&format!(
        "\n[[origin]]\norg_uuid = \"{}\"\npublic_key = \"{}\"\n",
        a_keys["org_uuid"], a_keys["public_key"]
    ));
    std::fs::write(&b, text).unwrap();
    let out = run(&b, &["import", a_export.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        lines(&out).iter().all(|l| l.starts_with("accepted\t")),
        "{}",
        stdout(&out)
    );

    // B's export still carries A's seals, unchanged, and verifies.
    let b_export = tmp.path().join("b.json");
    let out = run(&b, &["export", "-o", b_export.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let b_doc: Value = serde_json::from_slice(&std::fs::read(&b_export).unwrap()).unwrap();
    let a_seals: std::collections::HashMap<&str, &Value> = events(&a_doc)
        .iter()
        .map(|e| (e["Event"]["uuid"].as_str().unwrap(), &e["Event"]["Seal"]))
        .collect();
    assert_eq!(events(&b_doc).len(), n);
    for e in events(&b_doc) {
        let ev = &e["Event"];
        assert_eq!(
            &ev["Seal"],
            a_seals[ev["uuid"].as_str().unwrap()],
            "{}",
            ev["uuid"]
        );
        assert_eq!(ev["locked"], true, "remote-owned: {}", ev["uuid"]);
    }
    let out = run(&b, &["verify", b_export.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(lines(&out)
        .iter()
        .all(|l| l.starts_with("ok\t") && l.contains(&a_keys["org_uuid"])));
    let out = sluis_in(
        tmp.path(),
        &[
            "verify",
            b_export.to_str().unwrap(),
            "--key",
            &a_keys["public_key"],
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // A's untouched export again: unchanged.
    let out = run(&b, &["import", a_export.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(lines(&out).iter().all(|l| l.starts_with("unchanged\t")));

    // A newer version without A's seal: B would vouch for it itself, but only
    // A may change A's events.
    let mut v2 = events(&a_doc)[0]["Event"].clone();
    let uuid = v2["uuid"].as_str().unwrap().to_owned();
    v2.as_object_mut().unwrap().remove("Seal");
    let ts: u64 = v2["timestamp"].as_str().unwrap().parse().unwrap();
    v2["timestamp"] = Value::String((ts + 10).to_string());
    v2["info"] = Value::String("taken over".into());
    let f = tmp.path().join("v2.json");
    std::fs::write(&f, serde_json::json!({"Event": v2}).to_string()).unwrap();
    let out = run(&b, &["import", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let l = stdout(&out);
    assert!(
        l.starts_with(&format!(
            "rejected\t{}\t{uuid}\tseal: event {uuid} is held with origin org {}",
            f.display(),
            a_keys["org_uuid"]
        )),
        "{l}"
    );
}

/// `sluis import` seals what it stores, so it needs the node's signing key.
#[test]
fn import_requires_a_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluis.toml");
    std::fs::write(
        &config,
        "[node]\nname = \"t\"\norg = \"T\"\norg_uuid = \"5c1b0000-0000-4000-8000-00000000000a\"\ndata_dir = \".\"\n",
    )
    .unwrap();
    let sample = &sample_paths()[0];
    let out = run(&config, &["import", sample.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(e.starts_with("error: config "), "{e}");
    assert!(e.contains("signing: the [signing] section"), "{e}");
    assert!(!dir.path().join("db").exists(), "nothing opened or written");
}

/// Seals `event` (MISP JSON) as `node` would, with its key and org; returns the
/// file holding it.
fn sealed_by(node: &TestNode, event: &Value, name: &str) -> (PathBuf, sluis::model::Event) {
    let key = sluis::seal::NodeKey::load(&node.dir.path().join("signing.key")).unwrap();
    let now = sluis::model::time::now_secs();
    let mut e = sluis::model::parse::parse_event(event.to_string().as_bytes(), 1 << 26).unwrap();
    sluis::model::validate::validate_event(&mut e, now).unwrap();
    sluis::seal::seal_event(&mut e, &key, node.org_uuid).unwrap();
    let file = node.dir.path().join(name);
    let doc = serde_json::json!({"Event": &e});
    std::fs::write(&file, doc.to_string()).unwrap();
    (file, e)
}

/// A foreign seal is kept only if it covers the exact version stored. MISP's
/// merge keeps elements a newer version does not mention, so a newer version
/// from the origin that dropped an attribute would be stored with it — which
/// its seal does not list: rejected, nothing changed. A newer version that
/// keeps every element is stored under its own seal.
#[test]
fn a_foreign_seal_must_cover_the_stored_version() {
    let a = TestNode::new();
    let b = TestNode::with_trust(&a.as_origin());
    let v1 = generated_event(77, 4);
    let (f1, e1) = sealed_by(&a, &v1, "v1.json");
    let out = import(&b, &[f1]);
    assert!(stdout(&out).starts_with("accepted\t"), "{}", stdout(&out));
    let before = snapshot(&b);

    let ts: u64 = e1.timestamp + 10;
    let mut dropped = v1.clone();
    let ev = &mut dropped["Event"];
    ev["timestamp"] = Value::String(ts.to_string());
    ev["Attribute"].as_array_mut().unwrap().remove(0);
    let (f2, _) = sealed_by(&a, &dropped, "v2.json");
    let out = import(&b, &[f2]);
    assert_eq!(out.status.code(), Some(1));
    let l = stdout(&out);
    assert!(
        l.contains("seal: the stored version would not match the origin's seal: Attribute "),
        "{l}"
    );
    assert_eq!(snapshot(&b), before);

    let mut kept = v1.clone();
    let ev = &mut kept["Event"];
    ev["timestamp"] = Value::String(ts.to_string());
    ev["Attribute"][1]["comment"] = Value::String("revised".into());
    ev["Attribute"][1]["timestamp"] = Value::String(ts.to_string());
    let (f3, e3) = sealed_by(&a, &kept, "v3.json");
    let out = import(&b, &[f3]);
    assert!(stdout(&out).starts_with("updated\t"), "{}", stdout(&out));
    let stored = b.open().get_event(&e3.uuid).unwrap().unwrap();
    assert_eq!(stored.seal, e3.seal);
}
