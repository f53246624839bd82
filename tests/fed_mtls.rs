//! The mutual-TLS gate of the federation endpoints, with real nodes over real TLS
//! and certificates from the node's real CA: only a certificate that chains to the
//! federation CA, is not revoked, matches a pin if one is set, and maps to exactly
//! one `[[peer]]` gets through; peer certificates and analyst keys do not cross
//! over between `/fed/v1/` and the analyst API.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::Value;
use sluis::tls::{Ca, IssuedCert};

/// `GET /fed/v1/hello` on a fresh connection; `Err` when the TLS handshake (or the
/// connection) fails, else (status, JSON body).
fn hello(
    node: &RunningNode,
    cert: Option<&IssuedCert>,
    key: Option<&str>,
) -> Result<(u16, Value), reqwest::Error> {
    let client = mtls_client(
        &node.ca_pem,
        cert.map(|c| (c.cert_pem.as_str(), c.key_pem.as_str())),
    );
    let mut req = client.get(format!("{}/fed/v1/hello", node.url));
    if let Some(k) = key {
        req = req.header("Authorization", k);
    }
    let r = req.send()?;
    let status = r.status().as_u16();
    let text = r.text()?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Node `cert-a` with one peer, `cert-b` (pinned to `fingerprint` if given).
fn node_a(ca_dir: Option<&std::path::Path>, fingerprint: Option<&str>) -> RunningNode {
    let b_key = sluis::seal::NodeKey::generate().unwrap().public_key_b64();
    let b_org = uuid::Uuid::new_v4();
    RunningNode::start_with_ca("cert-a", "CERT-A", ca_dir, |t| {
        t.push_str(&peer_table(
            "cert-b",
            "https://127.0.0.1:8444",
            b_org,
            &b_key,
            fingerprint,
        ))
    })
}

fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_default()
}

#[test]
fn only_a_configured_peer_certificate_gets_through() {
    let node = node_a(None, None);
    let ca = Ca::load(node.dir.path()).unwrap();

    // (c) a valid certificate named like the configured peer.
    let b = ca.issue_client_cert("cert-b").unwrap();
    let (s, v) = hello(&node, Some(&b), None).unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["peer"], "cert-b");
    assert_eq!(v["node"], "cert-a");
    assert_eq!(v["org"], node.state.node.org.to_string());
    assert_eq!(v["protocol"], 1);

    // (a) no client certificate.
    let (s, v) = hello(&node, None, None).unwrap();
    assert_eq!(s, 401, "{v}");
    assert_eq!(message(&v), "a client certificate is required");
    assert_eq!(v["url"], "/fed/v1/hello");

    // (b) a certificate from another CA, even with the right name: no handshake.
    let other = tempfile::tempdir().unwrap();
    let foreign = Ca::create(other.path(), "someone else")
        .unwrap()
        .issue_client_cert("cert-b")
        .unwrap();
    assert!(hello(&node, Some(&foreign), None).is_err());

    // (d) a valid certificate of a name no [[peer]] has.
    let x = ca.issue_client_cert("cert-x").unwrap();
    let (s, v) = hello(&node, Some(&x), None).unwrap();
    assert_eq!(s, 403, "{v}");
    assert_eq!(message(&v), "unknown peer cert-x");

    // The node's own certificate is not a peer either.
    let own = IssuedCert {
        cert_pem: std::fs::read_to_string(node.dir.path().join("node.crt")).unwrap(),
        key_pem: std::fs::read_to_string(node.dir.path().join("node.key")).unwrap(),
        serial_hex: String::new(),
        fingerprint: String::new(),
    };
    let (s, v) = hello(&node, Some(&own), None).unwrap();
    assert_eq!(s, 403, "{v}");

    // (g) an analyst key grants nothing on /fed/: without a certificate, and with
    // a certificate of an unknown name.
    let (s, v) = hello(&node, None, Some(&node.admin_key)).unwrap();
    assert_eq!(s, 401, "{v}");
    let (s, _) = hello(&node, Some(&x), Some(&node.admin_key)).unwrap();
    assert_eq!(s, 403);

    // (g) a peer certificate grants nothing on the analyst API.
    let c = mtls_client(&node.ca_pem, Some((&b.cert_pem, &b.key_pem)));
    let r = c
        .get(format!("{}/users/view/me", node.url))
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = c.get(format!("{}/events/index", node.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // The refusals at the federation gate are in the audit log, by certificate.
    let log = std::fs::read_to_string(node.dir.path().join("audit.log")).unwrap();
    let refused: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| {
            l["kind"] == "auth_failure"
                && l["actor"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("peer-cert:"))
        })
        .collect();
    assert!(
        refused
            .iter()
            .any(|l| l["actor"] == "peer-cert:-"
                && l["reason"] == "a client certificate is required"),
        "{log}"
    );
    assert!(
        refused.iter().any(|l| l["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("unknown peer"))),
        "{log}"
    );

    // Refusals are counted for operators.
    let metrics = node.state.metrics.render(&[]);
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluis_fed_auth_failures_total "))
        .unwrap();
    assert_eq!(refused, "5", "{metrics}");
}

#[test]
fn a_revoked_certificate_is_refused_after_reload() {
    let node = node_a(None, None);
    let ca = Ca::load(node.dir.path()).unwrap();
    let old = ca.issue_client_cert("cert-b").unwrap();
    assert_eq!(hello(&node, Some(&old), None).unwrap().0, 200);

    // (e) revoke it: CRL file, listed in the config, reloaded without a restart.
    let crl_path = node.dir.path().join("federation.crl");
    std::fs::write(&crl_path, ca.revoke(&[&old.serial_hex]).unwrap()).unwrap();
    let text = std::fs::read_to_string(&node.config).unwrap();
    assert!(text.contains("crl = []"), "{text}");
    let text = text.replace(
        "crl = []",
        &format!("crl = [{:?}]", crl_path.display().to_string()),
    );
    std::fs::write(&node.config, text).unwrap();
    let cfg = sluis::config::Config::load(&node.config).unwrap();
    sluis::node::reload_tls(&cfg, &node.acceptor).unwrap();
    assert!(hello(&node, Some(&old), None).is_err());

    // A new certificate for the same peer (another serial) still works.
    let new = ca.issue_client_cert("cert-b").unwrap();
    assert_ne!(new.serial_hex, old.serial_hex);
    let (s, v) = hello(&node, Some(&new), None).unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["peer"], "cert-b");

    // A broken CRL fails the reload and keeps the config in effect: the revoked
    // certificate stays refused, the new one keeps working.
    std::fs::write(&crl_path, "not a CRL").unwrap();
    assert!(sluis::node::reload_tls(&cfg, &node.acceptor).is_err());
    assert!(hello(&node, Some(&old), None).is_err());
    assert_eq!(hello(&node, Some(&new), None).unwrap().0, 200);
}

#[test]
fn a_pinned_fingerprint_refuses_other_certificates_of_the_name() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = Ca::create(ca_dir.path(), "federation CA").unwrap();
    let pinned = ca.issue_client_cert("cert-b").unwrap();
    let other = ca.issue_client_cert("cert-b").unwrap();
    let node = node_a(Some(ca_dir.path()), Some(&pinned.fingerprint));

    // (f) right CA, right name, wrong certificate.
    let (s, v) = hello(&node, Some(&other), None).unwrap();
    assert_eq!(s, 403, "{v}");
    assert_eq!(
        message(&v),
        "certificate fingerprint does not match the pin for cert-b"
    );
    let (s, v) = hello(&node, Some(&pinned), None).unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["peer"], "cert-b");
}

#[test]
fn two_nodes_sharing_a_ca_recognise_each_other() {
    let ca_dir = tempfile::tempdir().unwrap();
    let b = RunningNode::start_with_ca("cert-b", "CERT-B", Some(ca_dir.path()), |_| {});
    let b_key = sluis::seal::NodeKey::load(&b.dir.path().join("signing.key"))
        .unwrap()
        .public_key_b64();
    let a = RunningNode::start_with_ca("cert-a", "CERT-A", Some(ca_dir.path()), |t| {
        t.push_str(&peer_table(
            "cert-b",
            &b.url,
            b.state.node.org,
            &b_key,
            None,
        ))
    });
    // B calls A with its own node certificate, as its sync client will.
    let b_cert = IssuedCert {
        cert_pem: std::fs::read_to_string(b.dir.path().join("node.crt")).unwrap(),
        key_pem: std::fs::read_to_string(b.dir.path().join("node.key")).unwrap(),
        serial_hex: String::new(),
        fingerprint: String::new(),
    };
    let (s, v) = hello(&a, Some(&b_cert), None).unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["peer"], "cert-b");
    assert_eq!(v["org"], a.state.node.org.to_string());
    // A is no peer of B: B refuses A's certificate.
    let a_cert = IssuedCert {
        cert_pem: std::fs::read_to_string(a.dir.path().join("node.crt")).unwrap(),
        key_pem: std::fs::read_to_string(a.dir.path().join("node.key")).unwrap(),
        serial_hex: String::new(),
        fingerprint: String::new(),
    };
    let (s, v) = hello(&b, Some(&a_cert), None).unwrap();
    assert_eq!(s, 403, "{v}");
    assert_eq!(message(&v), "unknown peer cert-a");
}
