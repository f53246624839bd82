//! Incident-support exchange on real nodes over mutual TLS. A–B, A–C and B–D
//! are peered; A asks B and C for help. The request reaches B and C and not D;
//! their responses reach A and not each other; only A may move the case on; a
//! forged response or status change is refused; overdue cases and arrivals
//! reach the operators' webhooks; exercise data stays out of indicator exports.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::{json, Value};
use sluis::support::record::Body;
use sluis::support::CaseStore;
use sluis::support::{CaseRecord, Status};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

const A: &str = "cert-a";
const B: &str = "cert-b";
const C: &str = "cert-c";
const D: &str = "cert-d";
const SETTLE: Duration = Duration::from_secs(60);

/// A webhook receiver on a local port: every JSON body posted to it.
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

fn hook() -> Hook {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    g.lock().unwrap().push(v);
                }
            }
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    Hook { url, got }
}

fn events_of(h: &Hook, kind: &str) -> Vec<Value> {
    h.got
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["event"] == kind)
        .cloned()
        .collect()
}

#[test]
fn a_case_between_certs_reaches_only_its_audience_and_is_tracked_to_closure() {
    let (hook_a, hook_b) = (hook(), hook());
    let (ua, ub) = (hook_a.url.clone(), hook_b.url.clone());
    let cl = Cluster::new(&[A, B, C, D], &[(A, B), (A, C), (B, D)], move |name, t| {
        let url = match name {
            A => &ua,
            B => &ub,
            _ => return,
        };
        t.push_str(&format!(
            "\n[support]\nwebhook = \"{url}\"\noverdue_check = \"1s\"\n"
        ));
    });
    let (a, b, c) = (cl.node(A), cl.node(B), cl.node(C));
    // A shared event (reaches everyone) and one A keeps to itself.
    let mk_event = |dist: &str, value: &str| -> String {
        let (s, v, _) = a.post(
            &a.admin_key,
            "/events/add",
            &json!({"info": format!("incident {value}"), "distribution": dist, "published": true,
                    "Attribute": [{"type": "domain", "value": value}]}),
        );
        assert_eq!(s, 200, "{v}");
        v["Event"]["uuid"].as_str().unwrap().to_owned()
    };
    let shared = mk_event("3", "c2.port-ransom.example");
    let private = mk_event("0", "internal.port-ransom.example");

    let respond_by = sluis::model::time::now_secs() + 6;
    let (s, v, _) = a.post(
        &a.admin_key,
        "/support/requests",
        &json!({
            "title": "Ransomware at a port operator in two countries",
            "description": "Terminal OS encrypted; lateral movement across the border link.",
            "category": "ransomware", "severity": "high", "tlp": "amber",
            "capabilities": ["malware-analysis", "forensics", "provider-contact"],
            "respond_by": respond_by,
            "addressed": [B, C],
            "linked_events": [shared, private],
        }),
    );
    assert_eq!(s, 200, "{v}");
    let case: Uuid = v["uuid"].as_str().unwrap().parse().unwrap();
    assert_eq!(v["status"], "open");
    assert_eq!(
        v["linked_events"].as_array().unwrap().len(),
        2,
        "A sees both"
    );
    cl.settle(SETTLE);

    // Reaches B and C, not D (a peer of B).
    for n in [B, C] {
        let r = cl.node(n).state.store.case_record(&case).unwrap();
        assert!(r.is_some(), "{n} must hold the request");
    }
    assert!(cl.node(D).state.store.case_record(&case).unwrap().is_none());
    assert!(cl
        .node(D)
        .state
        .store
        .case_records(&case)
        .unwrap()
        .is_empty());
    // B's view: the shared event only (it does not hold A's private one).
    let (s, v) = b.get(&b.admin_key, &format!("/support/requests/{case}"));
    assert_eq!(s, 200, "{v}");
    let linked: Vec<&str> = v["linked_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(linked, [shared.as_str()]);
    assert_eq!(v["mine"], false);
    // B's operator heard of it.
    assert!(eventually(Duration::from_secs(10), || !events_of(
        &hook_b,
        "request_received"
    )
    .is_empty()));
    assert_eq!(
        events_of(&hook_b, "request_received")[0]["case"],
        case.to_string()
    );

    // B acknowledges and offers; C (below) reports a finding.
    for body in [
        json!({"type": "acknowledge", "note": "on it"}),
        json!({"type": "offer", "capability": "malware-analysis", "contact": "duty@cert-b.example",
               "availability": "24/7 from now"}),
    ] {
        let (s, v, _) = b.post(
            &b.admin_key,
            &format!("/support/requests/{case}/respond"),
            &body,
        );
        assert_eq!(s, 200, "{v}");
    }
    // B may not move A's case on.
    let (s, v, _) = b.post(
        &b.admin_key,
        &format!("/support/requests/{case}/status"),
        &json!({"status": "closed"}),
    );
    assert_eq!(s, 403, "{v}");
    cl.settle(SETTLE);

    // Overdue: C has not answered by respond_by; A's operator is told, once.
    assert!(
        eventually(Duration::from_secs(20), || !events_of(&hook_a, "overdue")
            .is_empty()),
        "no overdue notice: {:?}",
        hook_a.got.lock().unwrap()
    );
    let od = &events_of(&hook_a, "overdue")[0];
    assert_eq!(od["case"], case.to_string());
    assert_eq!(od["waiting_for"], json!([cl.org(C).to_string()]));
    let (s, v) = a.get(&a.admin_key, "/support/requests?overdue=1");
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");

    let (s, v, _) = c.post(
        &c.admin_key,
        &format!("/support/requests/{case}/respond"),
        &json!({"type": "finding", "text": "Same loader as in our sector last month", "linked_events": [shared]}),
    );
    assert_eq!(s, 200, "{v}");
    cl.settle(SETTLE);

    // A holds every response; B and C never see each other's.
    let kinds = |n: &str| -> Vec<(Uuid, String)> {
        cl.node(n)
            .state
            .store
            .case_records(&case)
            .unwrap()
            .iter()
            .map(|r| (r.author_org, r.body.kind().to_owned()))
            .collect()
    };
    let at_a = kinds(A);
    assert!(at_a.contains(&(cl.org(B), "offer".into())), "{at_a:?}");
    assert!(at_a.contains(&(cl.org(C), "finding".into())), "{at_a:?}");
    assert!(
        !kinds(B).iter().any(|(o, _)| *o == cl.org(C)),
        "B saw C: {:?}",
        kinds(B)
    );
    assert!(
        !kinds(C).iter().any(|(o, _)| *o == cl.org(B)),
        "C saw B: {:?}",
        kinds(C)
    );
    assert!(eventually(Duration::from_secs(10), || events_of(
        &hook_a,
        "response_received"
    )
    .len()
        >= 3));

    // Unless A shares it: then B holds C's finding, still sealed by C.
    let finding = cl
        .node(A)
        .state
        .store
        .case_records(&case)
        .unwrap()
        .into_iter()
        .find(|r| matches!(r.body, Body::Finding { .. }))
        .unwrap()
        .uuid;
    let (s, v, _) = a.post(
        &a.admin_key,
        &format!("/support/requests/{case}/share"),
        &json!({"record": finding}),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = b.post(
        &b.admin_key,
        &format!("/support/requests/{case}/share"),
        &json!({"record": finding}),
    );
    assert_eq!(s, 403, "only the requester shares: {v}");
    cl.settle(SETTLE);
    let (s, v) = b.get(&b.admin_key, &format!("/support/requests/{case}"));
    assert_eq!(s, 200);
    let shared: Vec<&Value> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["record"]["type"] == "shared")
        .collect();
    assert_eq!(shared.len(), 1, "{v}");
    assert_eq!(
        shared[0]["record"]["original"]["author"]["org_uuid"],
        cl.org(C).to_string()
    );
    assert_eq!(
        shared[0]["record"]["original"]["record"]["text"],
        "Same loader as in our sector last month"
    );
    // C's finding was not shared back to C itself (its author).
    assert!(!cl
        .node(C)
        .state
        .store
        .case_records(&case)
        .unwrap()
        .iter()
        .any(|r| matches!(r.body, Body::Shared { .. })));

    // A accepts B's offer and moves the case on; B and C see the new status.
    let offer = cl
        .node(A)
        .state
        .store
        .case_records(&case)
        .unwrap()
        .into_iter()
        .find(|r| matches!(r.body, Body::Offer { .. }))
        .unwrap()
        .uuid;
    let (s, v, _) = a.post(
        &a.admin_key,
        &format!("/support/requests/{case}/status"),
        &json!({"status": "in_progress", "accepted_offer": offer, "note": "B analyses the loader"}),
    );
    assert_eq!(s, 200, "{v}");
    cl.settle(SETTLE);
    for n in [B, C] {
        let (s, v) = cl
            .node(n)
            .get(&cl.node(n).admin_key, &format!("/support/requests/{case}"));
        assert_eq!(s, 200);
        assert_eq!(v["status"], "in_progress", "{n}: {v}");
    }
    assert!(eventually(Duration::from_secs(10), || !events_of(
        &hook_b,
        "status_changed"
    )
    .is_empty()));

    // Every record verifies under its author's key, wherever it is held.
    let trust = cl.trust();
    let now = sluis::model::time::now_secs();
    for n in [A, B, C] {
        for r in cl.node(n).state.store.case_records(&case).unwrap() {
            r.verify(&trust, now).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
    }

    // A forged response claiming to come from C (signed with B's key) and a
    // status change by B are refused by the receive path, and not stored.
    let b_key = sluis::seal::NodeKey::load(&b.dir.path().join("signing.key")).unwrap();
    let forged = CaseRecord::seal(
        Uuid::new_v4(),
        case,
        cl.org(C),
        "CERT-C",
        now,
        vec![cl.org(A)],
        Body::Decline {
            reason: "we withdraw".into(),
        },
        &b_key,
    )
    .unwrap();
    let a_store = &cl.node(A).state.store;
    for from in [cl.org(B), cl.org(C)] {
        let e = sluis::support::receive::receive(a_store, &trust, cl.org(A), from, &forged, now)
            .unwrap_err();
        assert!(
            e.to_string().contains("seal") || e.to_string().contains("author"),
            "{e}"
        );
    }
    assert!(a_store.case_record(&forged.uuid).unwrap().is_none());
    let by_b = CaseRecord::seal(
        Uuid::new_v4(),
        case,
        cl.org(B),
        "CERT-B",
        now,
        vec![cl.org(C)],
        Body::Status {
            status: Status::Closed,
            accepted_offer: None,
            note: String::new(),
        },
        &b_key,
    )
    .unwrap();
    let c_store = &cl.node(C).state.store;
    let e = sluis::support::receive::receive(c_store, &trust, cl.org(C), cl.org(B), &by_b, now)
        .unwrap_err();
    assert!(e.to_string().contains("only the requester"), "{e}");

    // Operators see it with `sluis support` (asking the running node).
    let o = std::process::Command::new(sluis_bin())
        .args(["support", "show"])
        .arg(case.to_string())
        .arg("--config")
        .arg(&a.config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("Ransomware at a port operator") && text.contains("in_progress"),
        "{text}"
    );
    assert!(text.contains("finding") && text.contains("offer"), "{text}");
    let o = std::process::Command::new(sluis_bin())
        .args(["support", "list", "--config"])
        .arg(&b.config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&case.to_string()), "{}", stdout(&o));
}

#[test]
fn exercise_data_stays_out_of_indicator_exports_unless_asked_for() {
    let node = RunningNode::start("cert-x", "CERT-X");
    for (info, tags, value) in [
        ("real", json!([{"name": "tlp:green"}]), "real.example"),
        (
            "drill",
            json!([{"name": "exercise:cyber-europe=\"2026\""}]),
            "drill.example",
        ),
    ] {
        let (s, v, _) = node.post(
            &node.admin_key,
            "/events/add",
            &json!({"info": info, "distribution": "1", "published": true, "Tag": tags,
                    "Attribute": [{"type": "domain", "value": value}]}),
        );
        assert_eq!(s, 200, "{v}");
    }
    let search = |body: Value| -> String {
        let r = node
            .client()
            .post(format!("{}/attributes/restSearch", node.url))
            .header("Authorization", &node.admin_key)
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().unwrap()
    };
    for fmt in ["csv", "text"] {
        let out = search(json!({"returnFormat": fmt}));
        assert!(
            out.contains("real.example") && !out.contains("drill.example"),
            "{fmt}: {out}"
        );
        let out = search(json!({"returnFormat": fmt, "includeExercise": true}));
        assert!(out.contains("drill.example"), "{fmt} with the flag: {out}");
    }
    // JSON shows it, labelled by its exercise tag.
    let out = search(json!({"returnFormat": "json", "includeEventTags": true}));
    assert!(
        out.contains("drill.example") && out.contains("exercise:cyber-europe"),
        "{out}"
    );

    // The CLI export, likewise (node stopped).
    let config = node.config.clone();
    let stopped = node.stop();
    let export = |extra: &[&str]| -> String {
        let o = std::process::Command::new(sluis_bin())
            .args(["export", "--format", "csv", "--config"])
            .arg(&config)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let out = export(&[]);
    assert!(
        out.contains("real.example") && !out.contains("drill.example"),
        "{out}"
    );
    assert!(export(&["--include-exercise"]).contains("drill.example"));
    drop(stopped);
}
