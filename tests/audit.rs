//! The audit log end to end: a real node records failed logins, denials and
//! changes; `sluis audit verify` passes on the untouched log and names the line
//! of every kind of tampering; a cut log stops the node until rotated on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::{sluis_bin, stderr, stdout, RunningNode, StoppedNode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A node that checkpoints every 4 records, put through failed logins, a
/// denial and a range of changes, then stopped.
fn exercised() -> (StoppedNode, Activity) {
    let n = RunningNode::start_with("audit-a", "CERT-AUDIT", |cfg| {
        cfg.push_str("\n[audit]\ncheckpoint_records = 4\n");
    });
    let admin = n.admin_key.clone();
    // Authentication failures: a wrong key, and none at all.
    assert_eq!(n.get("not-a-key-at-all", "/events/index").0, 403);
    let r = n
        .client()
        .get(format!("{}/events/index", n.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // A denial: a read-only user tries to write.
    let (_, ro_key) = n.org_with_user("CERT-AUDIT", 6);
    let ro_email = n
        .state
        .store
        .users()
        .unwrap()
        .into_iter()
        .find(|u| u.role_id == 6)
        .unwrap()
        .email;
    let (st, _, _) = n.post(&ro_key, "/events/add", &json!({"info": "nope"}));
    assert_eq!(st, 403);
    // Changes.
    let (st, ev, _) = n.post(
        &admin,
        "/events/add",
        &json!({"info": "audited event", "distribution": "0",
                "Attribute": [{"type": "domain", "value": "audit.example"}]}),
    );
    assert_eq!(st, 200, "{ev}");
    let event = ev["Event"]["uuid"].as_str().unwrap().to_owned();
    let (st, a, _) = n.post(
        &admin,
        &format!("/attributes/add/{event}"),
        &json!({"type": "ip-dst", "value": "198.51.100.7"}),
    );
    assert_eq!(st, 200, "{a}");
    let attribute = a["Attribute"]["uuid"].as_str().unwrap().to_owned();
    let (st, v, _) = n.post(&admin, &format!("/events/publish/{event}"), &json!({}));
    assert_eq!(st, 200, "{v}");
    let (st, v, _) = n.post(
        &admin,
        "/tags/attachTagToObject",
        &json!({"uuid": event, "tag": "tlp:green"}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, u, _) = n.post(
        &admin,
        "/admin/users/add",
        &json!({"email": "new@cert-audit.example", "role_id": 3}),
    );
    assert_eq!(st, 200, "{u}");
    let user_id = u["User"]["id"].as_str().unwrap().to_owned();
    let (st, k, _) = n.post(&admin, &format!("/auth_keys/add/{user_id}"), &json!({}));
    assert_eq!(st, 200, "{k}");
    let new_key = k["AuthKey"]["authkey_raw"].as_str().unwrap().to_owned();
    let activity = Activity {
        admin_key: admin,
        ro_key,
        ro_email,
        new_key,
        event,
        attribute,
        user_id,
    };
    (n.stop(), activity)
}

struct Activity {
    admin_key: String,
    ro_key: String,
    ro_email: String,
    new_key: String,
    event: String,
    attribute: String,
    user_id: String,
}

fn log_path(node: &StoppedNode) -> PathBuf {
    node.dir.path().join("audit.log")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

fn audit(node: &StoppedNode, args: &[&str]) -> Output {
    std::process::Command::new(sluis_bin())
        .arg("audit")
        .args(args)
        .arg("--config")
        .arg(&node.config)
        .output()
        .unwrap()
}

/// `sluis audit verify` on `lines` written to a copy beside the log.
fn verify_copy(node: &StoppedNode, name: &str, lines: &[String], newline_at_end: bool) -> Output {
    let copy = node.dir.path().join(name);
    let mut text = lines.join("\n");
    if newline_at_end {
        text.push('\n');
    }
    std::fs::write(&copy, text).unwrap();
    audit(node, &["verify", "--file", copy.to_str().unwrap()])
}

/// Asserts the check failed (exit 1) naming `line`, and the reason contains `why`.
fn assert_fails_at(o: &Output, line: usize, why: &str) {
    let out = stdout(o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(o));
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("FAIL line {line}: ")),
        "expected a failure at line {line}, got: {first}"
    );
    assert!(first.contains(why), "expected \"{why}\" in: {first}");
}

fn kinds(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| parse(l)["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// 1-based line number of the first line after the first checkpoint whose kind
/// is `kind`, with a line after it that is not a checkpoint either.
fn middle(lines: &[String], kind: &str) -> usize {
    let k = kinds(lines);
    let first_cp = k.iter().position(|k| k == "checkpoint").unwrap();
    (first_cp + 1..k.len() - 1)
        .find(|&i| k[i] == kind && k[i + 1] != "checkpoint")
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no {kind} line in the middle: {k:?}"))
}

#[test]
fn the_untouched_log_verifies_and_records_what_happened() {
    let (node, act) = exercised();
    let o = audit(&node, &["verify"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.starts_with("ok: "), "{out}");
    assert!(out.contains("starts: at this node's genesis"), "{out}");
    assert!(out.contains("unprotected: 0 records"), "{out}");
    assert!(out.contains("anchor: the last checkpoint"), "{out}");

    let text = std::fs::read_to_string(log_path(&node)).unwrap();
    for secret in [&act.admin_key, &act.ro_key, &act.new_key] {
        assert!(
            !text.contains(secret.as_str()),
            "an API key is in the audit log"
        );
    }
    let lines = lines(&log_path(&node));
    let recs: Vec<Value> = lines.iter().map(|l| parse(l)).collect();
    let k = kinds(&lines);
    assert_eq!(k.first().map(String::as_str), Some("node_start"), "{k:?}");
    assert_eq!(&k[k.len() - 2..], ["node_stop", "checkpoint"], "{k:?}");
    assert!(
        k.iter().filter(|k| *k == "checkpoint").count() >= 3,
        "{k:?}"
    );
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1);
    }

    fn of<'a>(recs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
        recs.iter().filter(move |r| r["kind"] == kind)
    }
    let failures: Vec<_> = of(&recs, "auth_failure").collect();
    assert_eq!(failures.len(), 2, "{failures:#?}");
    for f in &failures {
        assert_eq!(f["actor"], "unknown");
        assert_eq!(f["request"], "GET /events/index");
        assert!(
            f["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{f}"
        );
    }
    assert_eq!(failures[1]["reason"], "no API key");
    let denied: Vec<_> = of(&recs, "denied").collect();
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0]["actor"], act.ro_email.as_str());
    assert_eq!(denied[0]["request"], "POST /events/add");

    let admin = "admin@audit-a";
    let write = |action: &str| {
        of(&recs, "write")
            .chain(of(&recs, "user_change"))
            .chain(of(&recs, "key_change"))
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} record"))
            .clone()
    };
    let added = write("events.add");
    assert_eq!(added["actor"], admin);
    assert_eq!(added["subject"], act.event.as_str());
    assert_eq!(added["outcome"], "ok");
    let attr = write("attributes.add");
    assert_eq!(attr["subject"], act.attribute.as_str());
    assert_eq!(attr["event"], act.event.as_str());
    assert_eq!(write("events.publish")["subject"], act.event.as_str());
    assert_eq!(
        write("tags.attachTagToObject")["subject"],
        act.event.as_str()
    );
    let user = write("users.add");
    assert_eq!(user["kind"], "user_change");
    assert!(
        user["subject"]
            .as_str()
            .unwrap()
            .starts_with(&format!("user {} ", act.user_id)),
        "{user}"
    );
    assert_eq!(write("auth_keys.add")["kind"], "key_change");
}

#[test]
fn each_kind_of_tampering_is_named_by_line() {
    let (node, _) = exercised();
    let orig = lines(&log_path(&node));
    let k = kinds(&orig);

    // An edited field of a middle line.
    let m = middle(&orig, "write");
    let mut t = orig.clone();
    assert!(t[m - 1].contains("\"outcome\":\"ok\""), "{}", t[m - 1]);
    t[m - 1] = t[m - 1].replace("\"outcome\":\"ok\"", "\"outcome\":\"refused\"");
    assert_fails_at(&verify_copy(&node, "edited.log", &t, true), m, "altered");

    // A deleted middle line.
    let mut t = orig.clone();
    t.remove(m - 1);
    assert_fails_at(&verify_copy(&node, "deleted.log", &t, true), m, "missing");

    // Two lines swapped.
    let mut t = orig.clone();
    t.swap(m - 1, m);
    assert_fails_at(&verify_copy(&node, "swapped.log", &t, true), m, "missing");

    // A forged checkpoint signature: a real signature over the right message,
    // by a key that is not the node's — under the node's key id, and under its own.
    let cfg = sluis::config::Config::load(&node.config).unwrap();
    let org = cfg.node.org_uuid.unwrap();
    let c = k.iter().position(|k| k == "checkpoint").unwrap() + 1;
    assert!(c < orig.len() - 1, "a checkpoint in the middle");
    let cp = parse(&orig[c - 1]);
    let mut prev = [0u8; 32];
    hex::decode_to_slice(cp["prev"].as_str().unwrap(), &mut prev).unwrap();
    let msg = sluis::audit::record::checkpoint_message(
        org,
        cp["seq"].as_u64().unwrap(),
        &prev,
        cp["time"].as_str().unwrap(),
    );
    let forger = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let forged = {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;
        base64::engine::general_purpose::STANDARD.encode(forger.sign(&msg).to_bytes())
    };
    let real = cp["signature"].as_str().unwrap();
    let mut t = orig.clone();
    t[c - 1] = t[c - 1].replace(real, &forged);
    assert_fails_at(
        &verify_copy(&node, "forged.log", &t, true),
        c,
        "signature does not verify",
    );
    let forger_id = sluis::seal::KeyId::of(&forger.verifying_key()).to_string();
    t[c - 1] = t[c - 1].replace(cp["key_id"].as_str().unwrap(), &forger_id);
    assert_fails_at(
        &verify_copy(&node, "forged2.log", &t, true),
        c,
        "not trusted",
    );

    // Cut off after an earlier checkpoint: a valid chain, but the store
    // remembers a later checkpoint.
    assert_fails_at(
        &verify_copy(&node, "cut.log", &orig[..c], true),
        c,
        "store remembers a checkpoint",
    );
    // A last line cut in the middle.
    let mut t = orig.clone();
    let last = t.len() - 1;
    t[last].truncate(20);
    assert_fails_at(
        &verify_copy(&node, "partial.log", &t, false),
        orig.len(),
        "incomplete",
    );

    // And the original still verifies.
    assert_eq!(audit(&node, &["verify"]).status.code(), Some(0));
}

#[test]
fn without_the_anchor_a_cut_log_is_only_reported_as_shorter() {
    // Honest limit: checked on another machine (no store), a log cut back to an
    // earlier checkpoint is a valid shorter log. The report says what was not
    // compared, so an auditor knows to compare with the SIEM's copy.
    let (node, _) = exercised();
    let orig = lines(&log_path(&node));
    let c = kinds(&orig).iter().position(|k| k == "checkpoint").unwrap() + 1;
    let copy = node.dir.path().join("cut.log");
    std::fs::write(&copy, orig[..c].join("\n") + "\n").unwrap();
    let cfg = sluis::config::Config::load(&node.config).unwrap();
    let key = sluis::seal::NodeKey::load(&cfg.signing.unwrap().key)
        .unwrap()
        .public_key_b64();
    let o = std::process::Command::new(sluis_bin())
        .current_dir(node.dir.path())
        .args(["audit", "verify", "--file", copy.to_str().unwrap()])
        .args([
            "--key",
            &key,
            "--org",
            &cfg.node.org_uuid.unwrap().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!("seqs: 1 to {c}")),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("not compared with this node's anchor"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_cut_log_stops_the_node_until_a_new_log_is_started_on_purpose() {
    let (node, _) = exercised();
    let path = log_path(&node);
    let orig = lines(&path);
    let c = kinds(&orig).iter().position(|k| k == "checkpoint").unwrap() + 1;
    std::fs::write(&path, orig[..c].join("\n") + "\n").unwrap();
    let cfg = sluis::config::Config::load(&node.config).unwrap();
    let err = sluis::node::Node::start(&cfg)
        .err()
        .expect("the node must not start");
    assert!(err.to_string().contains("does not check out"), "{err}");
    assert!(
        err.to_string().contains("store remembers a checkpoint"),
        "{err}"
    );

    // Rotation refuses a damaged log unless forced, and keeps it as evidence.
    let o = audit(&node, &["rotate"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = audit(&node, &["rotate", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let kept: Vec<_> = std::fs::read_dir(node.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("audit.log.damaged-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        lines(&node.dir.path().join(&kept[0])),
        orig[..c].to_vec(),
        "the damaged log is kept as it was"
    );
    let new = lines(&path);
    assert_eq!(kinds(&new)[..2], ["checkpoint", "log_rotated"]);
    assert!(new[1].contains("did not check out"), "{}", new[1]);
    let o = audit(&node, &["verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("continuing an earlier log"),
        "{}",
        stdout(&o)
    );

    // The node starts again and goes on appending.
    let n = node.restart();
    let (st, _, _) = n.post(&n.admin_key, "/events/add", &json!({"info": "after"}));
    assert_eq!(st, 200);
    let node = n.stop();
    assert_eq!(audit(&node, &["verify"]).status.code(), Some(0));
}

#[test]
fn rotation_continues_the_chain_across_files() {
    let (node, _) = exercised();
    let path = log_path(&node);
    let before = lines(&path);
    let o = audit(&node, &["rotate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let old = PathBuf::from(
        stdout(&o)
            .lines()
            .find_map(|l| l.strip_prefix("previous log: "))
            .unwrap(),
    );
    // The old log was closed: a log_closed record and a checkpoint after what it held.
    let closed = lines(&old);
    assert_eq!(closed[..before.len()], before[..]);
    assert_eq!(kinds(&closed)[before.len()..], ["log_closed", "checkpoint"]);
    let last_seq = parse(closed.last().unwrap())["seq"].as_u64().unwrap();
    assert_eq!(old, node.dir.path().join(format!("audit.log.{last_seq}")));
    let o_old = audit(&node, &["verify", "--file", old.to_str().unwrap()]);
    assert_eq!(o_old.status.code(), Some(0), "{}", stdout(&o_old));
    let o_new = audit(&node, &["verify"]);
    assert_eq!(o_new.status.code(), Some(0), "{}", stdout(&o_new));
    let hash = stdout(&o_old)
        .lines()
        .find_map(|l| l.strip_prefix("last_line_hash: ").map(str::to_owned))
        .unwrap();
    assert!(
        stdout(&o_new).contains(&format!(
            "continuing an earlier log that ended at seq {last_seq} with a line of hash {hash}"
        )),
        "{}",
        stdout(&o_new)
    );
    // The closed log verifies on its own, and says it was closed…
    assert!(
        stdout(&o_old).contains("closed: by `sluis audit rotate`"),
        "{}",
        stdout(&o_old)
    );
    // …but cut before its close it is caught by the anchor…
    let cut = node.dir.path().join("cut.log");
    std::fs::write(&cut, closed[..closed.len() - 2].join("\n") + "\n").unwrap();
    let o = audit(&node, &["verify", "--file", cut.to_str().unwrap()]);
    assert_fails_at(&o, closed.len() - 2, "store remembers a checkpoint");
    // …and put back in place of the current log, the node will not append to it.
    std::fs::copy(&old, &path).unwrap();
    let cfg = sluis::config::Config::load(&node.config).unwrap();
    let err = sluis::node::Node::start(&cfg)
        .err()
        .expect("the node must not start");
    assert!(
        err.to_string()
            .contains("was closed by `sluis audit rotate`"),
        "{err}"
    );
}
