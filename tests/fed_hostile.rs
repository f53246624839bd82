//! A partner node gone rogue. `cert-m` holds a genuine certificate from the
//! federation CA and is a configured peer of B, so everything it sends gets past
//! the mTLS gate — and its changes page mixes genuine records with a tampered
//! one, a replayed older version, a misattributed one, a forged deletion and a
//! line of garbage. B must apply the genuine records, refuse each bad one with
//! its reason, move its cursor past the page, and report the refusals back to
//! the sender (the hostile server here records what B reports).
//!
//! The hostile node is a plain TLS server written here, not a sluis node: a
//! sluis node would refuse to send such records.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::routing::{get, post};
use axum::Router;
use common::*;
use serde_json::json;
use sluis::federation::wire::{self, PageEnd, RecordKind, Report};
use sluis::model::event::Wrapped;
use sluis::model::{Attribute, Event};
use sluis::seal::{NodeKey, Sealer, Tombstone, TombstoneKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

#[derive(Clone)]
struct Hostile {
    node: String,
    org: Uuid,
    page: Arc<Vec<u8>>,
    reports: Arc<Mutex<Vec<Report>>>,
}

async fn hello(State(h): State<Hostile>) -> axum::Json<serde_json::Value> {
    axum::Json(json!({"node": h.node, "org": h.org, "peer": "cert-b", "protocol": 1}))
}

async fn changes(
    State(h): State<Hostile>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    // The page once; after it, an empty page at the cursor.
    let after: u64 = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let body = if after == 0 {
        h.page.as_ref().clone()
    } else {
        wire::end_line(PageEnd {
            last_seq: after,
            more: false,
            head: after,
        })
    };
    ([(header::CONTENT_TYPE, wire::CONTENT_TYPE)], body).into_response()
}

async fn report(State(h): State<Hostile>, body: Bytes) -> axum::http::StatusCode {
    let r: Report = serde_json::from_slice(&body).unwrap();
    h.reports.lock().unwrap().push(r);
    axum::http::StatusCode::NO_CONTENT
}

use axum::response::IntoResponse;

fn event(org: Uuid, info: &str, ts: u64, values: &[&str]) -> Event {
    let mut e = Event::new(info);
    e.uuid = Uuid::new_v4();
    e.timestamp = ts;
    e.date = "2026-11-01".into();
    e.published = true;
    e.publish_timestamp = ts;
    e.distribution = 3;
    e.orgc = Some(sluis::model::Org {
        uuid: org,
        name: "CERT-M".into(),
        ..Default::default()
    });
    for v in values {
        let mut a = Attribute::new("domain", *v);
        a.uuid = Uuid::new_v4();
        a.timestamp = ts;
        a.distribution = 5;
        e.attributes.push(a);
    }
    e
}

fn line(seq: u64, kind: RecordKind, record: &impl serde::Serialize) -> Vec<u8> {
    wire::record_line(seq, kind, &serde_json::to_vec(record).unwrap())
}

#[test]
fn a_rogue_peers_bad_records_are_refused_and_reported_the_rest_applied() {
    let ca = tempfile::tempdir().unwrap();
    // The rogue node's identity: a real certificate from the CA, a real key.
    let m_dir = tempfile::tempdir().unwrap();
    sluis::node::init(&sluis::node::InitOptions {
        dir: m_dir.path().to_owned(),
        name: "cert-m".into(),
        org: "CERT-M".into(),
        org_uuid: None,
        listen: "127.0.0.1:0".into(),
        ca_dir: Some(ca.path().to_owned()),
    })
    .unwrap();
    let m_cfg = sluis::config::Config::load(&m_dir.path().join("sluis.toml")).unwrap();
    let m_org = m_cfg.node.org_uuid.unwrap();
    let m_key = NodeKey::load(&m_dir.path().join("signing.key")).unwrap();
    let m_pub = m_key.public_key_b64();
    let sealer = Sealer::new(
        NodeKey::load(&m_dir.path().join("signing.key")).unwrap(),
        m_org,
    );
    // A third organisation B trusts as an origin, whose name M will borrow.
    let x_org = Uuid::new_v4();
    let x_key = NodeKey::generate().unwrap();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let m_addr = listener.local_addr().unwrap();
    let b = RunningNode::start_with_ca("cert-b", "CERT-B", Some(ca.path()), |t| {
        t.push_str(&peer_table(
            "cert-m",
            &format!("https://{m_addr}"),
            m_org,
            &m_pub,
            None,
        ));
        t.push_str("push = false\ninterval = \"1s\"\n");
        t.push_str(&format!(
            "\n[[origin]]\norg_uuid = \"{x_org}\"\npublic_key = \"{}\"\n",
            x_key.public_key_b64()
        ));
    });
    // B's own event, which M will try to delete.
    let (s, v, _) = b.post(
        &b.admin_key,
        "/events/add",
        &json!({"info": "B's own", "distribution": "3", "published": true,
                "Attribute": [{"type": "domain", "value": "own.b.example"}]}),
    );
    assert_eq!(s, 200, "{v}");
    let b_event: Uuid = v["Event"]["uuid"].as_str().unwrap().parse().unwrap();

    let now = sluis::model::time::now_secs();
    // Sealed as a node seals: over the validated (normalised) version.
    let seal = |mut e: Event| {
        sluis::model::validate::validate_event(&mut e, now).unwrap();
        sealer.seal(&mut e).unwrap();
        e
    };
    // 1, 2: a genuine event and its genuine newer version.
    let v1 = seal(event(m_org, "genuine", now - 100, &["one.m.example"]));
    let mut v2 = v1.clone();
    v2.timestamp = now - 50;
    v2.info = "genuine, updated".into();
    v2.seal = None;
    let v2 = seal(v2);
    // 4: tampered after sealing.
    let mut tampered = seal(event(m_org, "tampered", now - 40, &["two.m.example"]));
    tampered.attributes[0].value = "evil.m.example".into();
    // 5: sealed by M, claiming X's name as origin.
    let mut misattributed = seal(event(
        m_org,
        "misattributed",
        now - 30,
        &["three.m.example"],
    ));
    misattributed.seal.as_mut().unwrap().origin_org = x_org;
    // 6: a deletion of B's own event, signed by M.
    let forged = Tombstone::seal(
        TombstoneKind::EventDeleted,
        b_event,
        now - 20,
        &m_key,
        m_org,
    )
    .unwrap();
    // 7: another genuine event after all the bad ones.
    let last = seal(event(
        m_org,
        "genuine, after",
        now - 10,
        &["four.m.example"],
    ));

    let mut page = Vec::new();
    page.extend(line(1, RecordKind::Event, &Wrapped { event: &v1 }));
    page.extend(line(2, RecordKind::Event, &Wrapped { event: &v2 }));
    page.extend(line(3, RecordKind::Event, &Wrapped { event: &v1 })); // replayed
    page.extend(line(4, RecordKind::Event, &Wrapped { event: &tampered }));
    page.extend(line(
        5,
        RecordKind::Event,
        &Wrapped {
            event: &misattributed,
        },
    ));
    page.extend(line(6, RecordKind::Tombstone, &forged));
    page.extend(line(7, RecordKind::Event, &Wrapped { event: &last }));
    page.extend(b"{\"seq\":8,\"kind\":\"event\",\"record\":{\"Event\":\n".to_vec());
    page.extend(wire::end_line(PageEnd {
        last_seq: 8,
        more: false,
        head: 8,
    }));

    let hostile = Hostile {
        node: "cert-m".into(),
        org: m_org,
        page: Arc::new(page),
        reports: Arc::new(Mutex::new(Vec::new())),
    };
    let reports = hostile.reports.clone();
    let tls = sluis::tls::server_config(
        &m_dir.path().join("node.crt"),
        &m_dir.path().join("node.key"),
        &m_dir.path().join("ca.crt"),
        &[],
        sluis::tls::ClientAuth::Required,
    )
    .unwrap();
    let app = Router::new()
        .route("/fed/v1/hello", get(hello))
        .route("/fed/v1/changes", get(changes))
        .route("/fed/v1/report", post(report))
        .with_state(hostile);
    let rt = tokio::runtime::Runtime::new().unwrap();
    listener.set_nonblocking(true).unwrap();
    rt.spawn(async move {
        let l = tokio::net::TcpListener::from_std(listener).unwrap();
        serve_tls(l, tls, app).await;
    });

    let store = b.state.store.clone();
    assert!(
        eventually(Duration::from_secs(30), || !reports
            .lock()
            .unwrap()
            .is_empty()),
        "B reported nothing; peer state {:?}",
        store.peer_state("cert-m").unwrap()
    );
    // The genuine records are applied, the newer version wins, the bad ones left
    // no trace, and B's own event is still there.
    let r0 = reports.lock().unwrap()[0].clone();
    let held = store
        .get_event(&v1.uuid)
        .unwrap()
        .unwrap_or_else(|| panic!("the genuine event is missing; report {r0:#?}"));
    assert_eq!(held.info, "genuine, updated");
    assert!(store.get_event(&last.uuid).unwrap().is_some());
    assert!(store.get_event(&tampered.uuid).unwrap().is_none());
    assert!(store.get_event(&misattributed.uuid).unwrap().is_none());
    assert!(store.get_event(&b_event).unwrap().is_some());
    assert!(!store.is_deleted(&b_event).unwrap());

    let state = store.peer_state("cert-m").unwrap();
    assert_eq!(state.cursor, 8, "the cursor moves past the page: {state:?}");
    assert_eq!((state.accepted, state.rejected), (3, 5), "{state:?}");

    // What B told the sender: each refusal by sequence, with its reason.
    let r = reports.lock().unwrap()[0].clone();
    assert_eq!(
        (r.after, r.cursor, r.accepted, r.rejected_total),
        (0, 8, 3, 5)
    );
    let why = |seq: u64| -> String {
        r.rejected
            .iter()
            .find(|x| x.seq == seq)
            .unwrap_or_else(|| panic!("record {seq} not reported: {:?}", r.rejected))
            .reason
            .clone()
    };
    assert!(why(3).contains("not newer"), "replay: {}", why(3));
    assert!(why(4).contains("seal"), "tampered: {}", why(4));
    assert!(why(5).contains("seal"), "misattributed: {}", why(5));
    assert!(
        why(6).contains("held with origin"),
        "forged deletion: {}",
        why(6)
    );
    assert!(
        r.rejected
            .iter()
            .any(|x| x.seq == 0 && x.reason.contains("undecodable")),
        "garbage line: {:?}",
        r.rejected
    );
    assert_eq!(
        r.rejected.iter().find(|x| x.seq == 4).unwrap().event,
        Some(tampered.uuid)
    );

    // Every verdict is in B's audit log, with the peer and the reason.
    let log = std::fs::read_to_string(b.dir.path().join("audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str| {
        lines
            .iter()
            .filter(|l| l["kind"] == kind && l["actor"] == "cert-m")
            .count()
    };
    assert_eq!((of("sync_accepted"), of("sync_rejected")), (3, 5), "{log}");
    assert!(lines.iter().any(|l| l["kind"] == "sync_rejected"
        && l["event"] == tampered.uuid.to_string()
        && l["reason"].as_str().is_some_and(|r| r.contains("seal"))));
    drop(b);
    drop(rt);
}
