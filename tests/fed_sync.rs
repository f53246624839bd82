//! Two real nodes sharing a federation CA: B pulls A's changes feed over mutual
//! TLS and ends up with exactly what the distribution rules let A send it —
//! sealed by A, verifiable with A's key, downgraded where the rules say — and a
//! deletion on A reaches B as A's signed tombstone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::json;
use sluis::seal::{verify_event, NodeKey, TrustList};
use std::time::Duration;
use uuid::Uuid;

/// Replaces the value of every `key = …` line of a config text.
fn set_line(text: &mut String, key: &str, value: &str) {
    let prefix = format!("{key} = ");
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{prefix}{value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    *text = lines.join("\n") + "\n";
}

#[test]
fn b_pulls_what_a_may_send_and_deletions_follow() {
    let ca = tempfile::tempdir().unwrap();
    // B's identity is made first so A can list it as a peer before B exists.
    let keys = tempfile::tempdir().unwrap();
    let b_key = NodeKey::generate().unwrap();
    let b_key_path = keys.path().join("b-signing.key");
    b_key.save(&b_key_path).unwrap();
    let b_org = Uuid::new_v4();

    let a = RunningNode::start_with_ca("cert-a", "CERT-A", Some(ca.path()), |t| {
        t.push_str(&peer_table(
            "cert-b",
            "https://127.0.0.1:9",
            b_org,
            &b_key.public_key_b64(),
            None,
        ));
        t.push_str("pull = false\n");
    });
    let a_org = a.state.node.org;
    let a_pub = a.state.sealer.key().public_key_b64();

    // A's events: distribution 3, 2, 1, 0, and 3 with TLP:RED (no sharing group).
    let mut uuids = Vec::new();
    let mut attrs = Vec::new();
    for (dist, tags) in [
        (3, json!([])),
        (2, json!([])),
        (1, json!([])),
        (0, json!([])),
        (3, json!([{"name": "tlp:red"}])),
    ] {
        let (s, v, _) = a.post(
            &a.admin_key,
            "/events/add",
            &json!({
                "info": format!("distribution {dist}"),
                "distribution": dist.to_string(),
                "published": true,
                "Tag": tags,
                "Attribute": [{"type": "domain", "value": format!("d{dist}-{}.example", uuids.len())}],
            }),
        );
        assert_eq!(s, 200, "{v}");
        let u: Uuid = v["Event"]["uuid"].as_str().unwrap().parse().unwrap();
        uuids.push(u);
        attrs.push(
            v["Event"]["Attribute"][0]["uuid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    let a_url = a.url.clone();
    let b = RunningNode::start_with_ca("cert-b", "CERT-B", Some(ca.path()), |t| {
        // The node's organisation is B's pre-made one (init made another, with
        // the name taken).
        set_line(t, "org_uuid", &format!("\"{b_org}\""));
        set_line(t, "org", "\"CERT-B federation\"");
        *t = t.replace(
            "key = \"signing.key\"",
            &format!("key = \"{}\"", b_key_path.display()),
        );
        t.push_str(&peer_table("cert-a", &a_url, a_org, &a_pub, None));
        t.push_str("interval = \"1s\"\n");
    });

    let mut trust = TrustList::new();
    trust.add(a_org, &a_pub, None, None).unwrap();
    let store_b = b.state.store.clone();
    let held = |u: &Uuid| store_b.get_event(u).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || held(&uuids[0]).is_some()
            && held(&uuids[1]).is_some()
            && held(&uuids[2]).is_some()),
        "B did not receive A's distribution 3, 2 and 1 events; peer state {:?}",
        store_b.peer_state("cert-a").unwrap()
    );
    // Let B catch up with the whole feed before looking for what must be absent.
    let a_last = a.state.store.last_sequence().unwrap();
    assert!(eventually(Duration::from_secs(20), || {
        store_b.peer_state("cert-a").unwrap().cursor >= a_last
    }));
    for (i, u) in uuids.iter().enumerate() {
        let got = held(u);
        match i {
            0..=2 => {
                let mut ev = got.unwrap_or_else(|| panic!("event {i} missing on B"));
                // MISP's pull rule: 3 stays 3, 2 arrives as 1, 1 as 0; shown so.
                let (signed, effective) = [(3, 3), (2, 1), (1, 0)][i];
                assert_eq!(ev.distribution, effective, "event {i} shown");
                sluis::seal::restore_signed_levels(&mut ev);
                assert_eq!(ev.distribution, signed);
                verify_event(&ev, &trust, sluis::model::time::now_secs())
                    .unwrap_or_else(|e| panic!("event {i} does not verify with A's key: {e}"));
                assert_eq!(ev.seal.as_ref().unwrap().origin_org, a_org);
                assert!(ev.locked, "a received event is remote-owned");
                let local = store_b.local_state(&ev).unwrap();
                assert_eq!(local.received_from.as_deref(), Some("cert-a"));
                assert_eq!(local.event_distribution, effective);
            }
            _ => assert!(got.is_none(), "event {i} must not reach B"),
        }
    }
    let state = store_b.peer_state("cert-a").unwrap();
    assert_eq!(state.errors, 0, "{state:?}");

    // A sighting on A reaches B as A's sealed record.
    let (s, v, _) = a.post(
        &a.admin_key,
        &format!("/sightings/add/{}", attrs[1]),
        &json!({"source": "sensor"}),
    );
    assert_eq!(s, 200, "{v}");
    let sid: Uuid = v["Sighting"]["uuid"].as_str().unwrap().parse().unwrap();
    assert!(
        eventually(Duration::from_secs(20), || store_b
            .sighting_seal(&uuids[1], &sid)
            .unwrap()
            .is_some()),
        "the sighting did not reach B; peer state {:?}",
        store_b.peer_state("cert-a").unwrap()
    );
    let sealed: sluis::seal::SealedSighting =
        serde_json::from_slice(&store_b.sighting_seal(&uuids[1], &sid).unwrap().unwrap()).unwrap();
    sealed
        .verify(&trust, sluis::model::time::now_secs())
        .unwrap();
    assert_eq!(sealed.origin_org, a_org);
    assert!(store_b
        .sightings_of(&uuids[1])
        .unwrap()
        .iter()
        .any(|x| x.uuid == sid));

    // Deleting the distribution-3 event on A deletes it on B.
    let (s, v, _) = a.post(
        &a.admin_key,
        &format!("/events/delete/{}", uuids[0]),
        &json!({}),
    );
    assert_eq!(s, 200, "{v}");
    assert!(
        eventually(Duration::from_secs(20), || held(&uuids[0]).is_none()),
        "the deletion did not reach B; peer state {:?}",
        store_b.peer_state("cert-a").unwrap()
    );
    assert!(store_b.is_deleted(&uuids[0]).unwrap());
    assert!(held(&uuids[1]).is_some());
}
