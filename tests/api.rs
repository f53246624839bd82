//! The HTTPS API with real nodes over real TLS: authentication, MISP-shaped errors
//! for bad input of every kind, limits, and that refused requests change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::json;

fn event_count(node: &RunningNode) -> (usize, u64) {
    (
        node.state.store.event_count(),
        node.state.store.last_sequence().unwrap(),
    )
}

#[test]
fn wrong_or_missing_key_is_refused_with_misp_shape() {
    let node = RunningNode::start("localhost", "CERT-A");
    for key in ["", "nope", &"A".repeat(40)] {
        let (status, body) = node.get(key, "/events/index");
        assert_eq!(status, 403, "{key:?}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Authentication failed"),
            "{body}"
        );
        assert_eq!(body["url"], "/events/index");
    }
    let (status, _) = node.get(&node.admin_key, "/events/index");
    assert_eq!(status, 200);
    // X-MISP-AUTH works too.
    let r = node
        .client()
        .get(format!("{}/users/view/me", node.url))
        .header("X-MISP-AUTH", &node.admin_key)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn bad_input_gets_misp_errors_and_changes_nothing() {
    let node = RunningNode::start_with("localhost", "CERT-A", |t| {
        t.push_str("\n[limits]\nmax_document_mib = 1\n")
    });
    let key = node.admin_key.clone();
    let (s, _, _) = node.post(
        &key,
        "/events/add",
        &json!({"info": "baseline", "Attribute": [{"type": "domain", "value": "base.example"}]}),
    );
    assert_eq!(s, 200);
    let before = event_count(&node);
    let client = node.client();
    let raw = |path: &str, body: Vec<u8>| {
        let r = client
            .post(format!("{}{path}", node.url))
            .header("Authorization", &key)
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let v: serde_json::Value =
            serde_json::from_str(&r.text().unwrap()).unwrap_or(serde_json::Value::Null);
        (status, v)
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/events/add",
            b"{\"info\": \"x\", \"Attribute\": [}".to_vec(),
            400,
            "malformed JSON",
        ),
        (
            "/events/add",
            br#"{"info": "x", "distribution": "nine"}"#.to_vec(),
            400,
            "distribution",
        ),
        (
            "/events/add",
            br#"{"info": "x", "Attribute": [{"type": "no-such-type", "value": "v"}]}"#.to_vec(),
            403,
            "unknown attribute type",
        ),
        (
            "/events/add",
            br#"{"info": "x", "Attribute": [{"type": "ip-dst", "value": "999.1.1.1"}]}"#.to_vec(),
            403,
            "value",
        ),
        (
            "/events/edit/5c1b1cc1-0000-4000-8000-00000000dead",
            br#"{"info": "x"}"#.to_vec(),
            404,
            "Invalid event",
        ),
        (
            "/events/delete/5c1b1cc1-0000-4000-8000-00000000dead",
            Vec::new(),
            403,
            "not deleted",
        ),
        (
            "/events/add",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            400,
            "recursion limit",
        ),
    ];
    for (path, body, status, needle) in cases {
        let (s, v) = raw(path, body);
        assert_eq!(s, status, "{path}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(needle)),
            "{path}: expected {needle:?} in {v}"
        );
        assert!(v["name"].is_string(), "{v}");
    }
    // Oversized body: refused before parsing.
    let big = vec![b' '; 2 * 1024 * 1024];
    let r = client
        .post(format!("{}/events/add", node.url))
        .header("Authorization", &key)
        .body(big)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let (s, v) = node.get(&key, "/events/view/5c1b1cc1-0000-4000-8000-00000000dead");
    assert_eq!(s, 404);
    assert_eq!(v["message"], "Invalid event.");
    assert_eq!(
        event_count(&node),
        before,
        "a refused request changed the store"
    );
}

#[test]
fn stalled_tls_handshake_is_dropped() {
    let node = RunningNode::start_with("localhost", "CERT-A", |t| {
        t.push_str("\n[limits]\nheader_timeout_secs = 1\n")
    });
    let addr = node.url.trim_start_matches("https://").to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    // Send nothing: the server must hang up after the handshake deadline.
    let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

#[test]
fn metrics_and_health() {
    let node = RunningNode::start("localhost", "CERT-A");
    node.get(&node.admin_key, "/events/index");
    let r = node
        .client()
        .get(format!("{}/metrics", node.url))
        .send()
        .unwrap();
    let text = r.text().unwrap();
    assert!(
        text.contains("sluis_http_requests_total{route=\"/events/index\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("sluis_store_disk_bytes"));
    let (s, v) = node.get("", "/healthz");
    assert_eq!(s, 200);
    assert_eq!(v["status"], "ok");
    // Every answer, success or error, forbids content sniffing.
    for path in ["/healthz", "/events/index", "/no/such/route"] {
        let r = node
            .client()
            .get(format!("{}{path}", node.url))
            .header("Authorization", &node.admin_key)
            .send()
            .unwrap();
        assert_eq!(
            r.headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path}"
        );
    }
}

#[test]
fn client_certificates_from_our_ca_only() {
    let node = RunningNode::start("localhost", "CERT-A");
    let ca = sluis::tls::Ca::load(node.dir.path()).unwrap();
    let issued = ca.issue_client_cert("analyst-1").unwrap();
    let id =
        reqwest::Identity::from_pem(format!("{}{}", issued.cert_pem, issued.key_pem).as_bytes())
            .unwrap();
    let root = reqwest::Certificate::from_pem(node.ca_pem.as_bytes()).unwrap();
    let c = reqwest::blocking::Client::builder()
        .tls_certs_only([root.clone()])
        .identity(id)
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/users/view/me", node.url))
        .header("Authorization", &node.admin_key)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A certificate from another CA fails the handshake.
    let other = tempfile::tempdir().unwrap();
    let foreign = sluis::tls::Ca::create(other.path(), "someone else")
        .unwrap()
        .issue_client_cert("mallory")
        .unwrap();
    let id =
        reqwest::Identity::from_pem(format!("{}{}", foreign.cert_pem, foreign.key_pem).as_bytes())
            .unwrap();
    let c = reqwest::blocking::Client::builder()
        .tls_certs_only([root])
        .identity(id)
        .build()
        .unwrap();
    assert!(c
        .get(format!("{}/users/view/me", node.url))
        .header("Authorization", &node.admin_key)
        .send()
        .is_err());
}

#[test]
fn api_writes_are_sealed_records() {
    use sluis::seal::{verify_event, SealedSighting, Tombstone, TombstoneKind, TrustList};
    let node = RunningNode::start("localhost", "CERT-A");
    let key = node.admin_key.clone();
    let (s, v, _) = node.post(
        &key,
        "/events/add",
        &json!({"info": "sealed", "Tag": [{"name": "tlp:green"}],
        "Attribute": [{"type": "ip-dst", "value": "198.51.100.23"}]}),
    );
    assert_eq!(s, 200, "{v}");
    let uuid: uuid::Uuid = v["Event"]["uuid"].as_str().unwrap().parse().unwrap();
    let attr = v["Event"]["Attribute"][0]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let sealer = node.state.sealer.clone();
    let mut trust = TrustList::new();
    trust
        .add_key(sealer.org(), sealer.key().verifying_key(), None, None)
        .unwrap();
    let now = sluis::model::time::now_secs();
    let store = &node.state.store;
    // The stored version carries the node's seal, and it verifies.
    let ev = store.get_event(&uuid).unwrap().unwrap();
    verify_event(&ev, &trust, now).unwrap();
    // A sighting is stored with its sealed record.
    let (s, v, _) = node.post(
        &key,
        &format!("/sightings/add/{attr}"),
        &json!({"source": "sensor"}),
    );
    assert_eq!(s, 200, "{v}");
    let sid: uuid::Uuid = v["Sighting"]["uuid"].as_str().unwrap().parse().unwrap();
    let sealed: SealedSighting =
        serde_json::from_slice(&store.sighting_seal(&uuid, &sid).unwrap().unwrap()).unwrap();
    sealed.verify(&trust, now).unwrap();
    // Removing a tag leaves a sealed tombstone and a newer sealed version.
    let (s, v, _) = node.post(
        &key,
        "/tags/removeTagFromObject",
        &json!({"uuid": uuid.to_string(), "tag": "tlp:green"}),
    );
    assert_eq!(s, 200, "{v}");
    let ev = store.get_event(&uuid).unwrap().unwrap();
    assert!(ev.tags.is_empty());
    verify_event(&ev, &trust, now).unwrap();
    // Deleting the event leaves a sealed EventDeleted tombstone.
    let (s, v, _) = node.post(&key, &format!("/events/delete/{uuid}"), &json!({}));
    assert_eq!(s, 200, "{v}");
    let stones: Vec<Tombstone> = store
        .tombstones_of(&uuid)
        .unwrap()
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    assert_eq!(stones.len(), 2);
    for t in &stones {
        t.verify(&trust, sluis::model::time::now_secs()).unwrap();
    }
    assert!(matches!(stones[0].kind, TombstoneKind::TagRemoved { .. }));
    assert!(matches!(stones[1].kind, TombstoneKind::EventDeleted));
}

#[test]
fn expired_key_and_expired_connection() {
    let node = RunningNode::start_with("localhost", "CERT-A", |t| {
        t.push_str("\n[limits]\nheader_timeout_secs = 1\n")
    });
    let store = &node.state.store;
    let org = store.orgs().unwrap()[0].uuid;
    let u = store.add_user("late@cert-a.example", org, 3).unwrap();
    let (expired, _) = store
        .add_auth_key(u.id, "expired", sluis::model::time::now_secs() - 1)
        .unwrap();
    let (s, v) = node.get(&expired, "/users/view/me");
    assert_eq!(s, 403, "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .starts_with("Authentication failed"));
    // A keep-alive connection left idle past the deadline is closed by the node;
    // the client's next request on the same pool still succeeds (on a new one).
    let client = node.client();
    let get = |c: &reqwest::blocking::Client| {
        c.get(format!("{}/users/view/me", node.url))
            .header("Authorization", &node.admin_key)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get(&client), 200);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(get(&client), 200);
}

/// A request for a read-only API key is refused, never answered with a key
/// that has its user's full rights (MISP's CVE-2026-94381 class); nothing is
/// created. A plain "no" is a normal key.
#[test]
fn a_read_only_key_is_refused_not_widened() {
    let node = RunningNode::start("localhost", "CERT-A");
    let (_, key) = node.org_with_user("CERT-A", 3);
    let before = node.state.store.auth_keys().unwrap().len();
    for ro in [json!(1), json!(true), json!("1"), json!("yes")] {
        let (s, v, _) = node.post(&key, "/auth_keys/add/me", &json!({"read_only": ro}));
        assert_eq!(s, 403, "read_only {ro}: {v}");
        assert_eq!(v["saved"], false, "{v}");
        assert!(v["errors"]["read_only"].is_array(), "{v}");
    }
    assert_eq!(node.state.store.auth_keys().unwrap().len(), before);
    let (s, v, _) = node.post(&key, "/auth_keys/add/me", &json!({"read_only": 0}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(node.state.store.auth_keys().unwrap().len(), before + 1);
}
