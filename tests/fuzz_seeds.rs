//! Writes the seed corpora of the fuzz targets (`fuzz/`, see docs/fuzzing.md):
//! not a test of its own, so it is ignored unless asked for. `scripts/fuzz` runs
//!
//! ```text
//! cargo test --test fuzz_seeds -- --ignored
//! ```
//!
//! which writes `fuzz/corpus/<target>/seed-*` (or under `$SLUIS_FUZZ_CORPUS`) from
//! the MISP samples in `tests/data/misp`, generated events and sealed records. Nothing of the
//! corpus is committed: it is rebuilt here, and the sealed seeds need the fuzz
//! targets' fixed key, which this file shares with them (`fuzz_targets/common`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

#[path = "../fuzz/fuzz_targets/common/mod.rs"]
mod fuzz_common;

use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
use fuzz_common::*;
use serde_json::{json, Value};
use sluis::federation::wire::{end_line, record_line, PageEnd, RecordKind, Rejection, Report};
use sluis::model::event::Wrapped;
use sluis::model::parse::parse_event;
use sluis::model::validate::validate_event;
use sluis::model::{Event, Org, Sighting};
use sluis::seal::{seal_event_at, verify_event, NodeKey, SealedSighting, Tombstone, TombstoneKind};
use sluis::support::{Body, CaseRecord, Request, Status};
use sluis::testdata::generated_event_json;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The node key with the fixed seed: written as PKCS#8 (0600) and loaded the
/// way a node loads its key, so this needs no test-only constructor.
fn node_key(seed: &[u8; 32], dir: &Path) -> NodeKey {
    let pem = ed25519_dalek::SigningKey::from_bytes(seed)
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
    let path = dir.join(format!("key-{}.pem", seed[11]));
    std::fs::write(&path, pem.as_bytes()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    NodeKey::load(&path).unwrap()
}

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        self.written += 1;
    }
}

fn wrapped(ev: &Event) -> Vec<u8> {
    serde_json::to_vec(&Wrapped { event: ev }).unwrap()
}

#[test]
#[ignore = "writes the fuzz seed corpora; run by scripts/fuzz"]
fn write_fuzz_seeds() {
    let root = std::env::var_os("SLUIS_FUZZ_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"));
    let mut c = Corpus { root, written: 0 };
    let keys = tempfile::tempdir().unwrap();
    let key = node_key(&KEY_SEED, keys.path());
    let windowed = node_key(&WINDOWED_KEY_SEED, keys.path());
    let revoked = node_key(&REVOKED_KEY_SEED, keys.path());

    // --- the documents: every MISP sample, generated events, the other shapes.
    let mut docs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(sluis::testdata::misp_samples_dir())
        .expect("the MISP samples in tests/data/misp")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        docs.push((name, std::fs::read(f).unwrap()));
    }
    for (seed, n) in [(1u64, 0usize), (2, 1), (3, 3), (4, 12)] {
        let v = generated_event_json(seed, n);
        docs.push((
            format!("generated-{seed}-{n}"),
            serde_json::to_vec(&v).unwrap(),
        ));
    }
    let small = json!({"info": "x", "uuid": "5c1b1cc1-0000-4000-8000-000000000001",
        "date": "2024-02-29", "threat_level_id": "2", "analysis": "1", "distribution": "1",
        "Attribute": [{"type": "ip-dst|port", "value": "2001:DB8::1|443", "category": "Network activity",
            "to_ids": "1", "first_seen": "2024-02-29T10:00:00.123456+01:00",
            "Tag": [{"name": "tlp:green"}]}],
        "Object": [{"name": "domain-ip", "meta-category": "network", "uuid": "5c1b1cc1-0000-4000-8000-0000000000a1",
            "Attribute": [{"type": "domain", "object_relation": "domain", "value": "Example.COM."}],
            "ObjectReference": [{"referenced_uuid": "5c1b1cc1-0000-4000-8000-000000000001",
                "relationship_type": "related-to"}]}],
        "EventReport": [{"name": "r", "content": "# note"}],
        "Tag": [{"name": "misp-galaxy:threat-actor=\"X\"", "local": false}]});
    for (name, v) in [
        ("shape-bare", small.clone()),
        ("shape-wrapped", json!({"Event": small})),
        ("shape-request", json!({"request": {"Event": small}})),
        (
            "shape-response",
            json!({"response": [{"Event": small}, {"Event": {"info": "y"}}]}),
        ),
        ("shape-list", json!([{"Event": small}])),
        (
            "shape-index",
            json!([{"id": "1", "info": "row", "uuid": "5c1b1cc1-0000-4000-8000-000000000001"}]),
        ),
    ] {
        docs.push((name.into(), serde_json::to_vec(&v).unwrap()));
    }
    for (name, bytes) in &docs {
        c.put("misp_event", name, bytes);
    }
    // The value mode (`#type\nvalue`): one real value of every type the samples
    // hold, and the time formats.
    let mut seen_types = std::collections::BTreeMap::new();
    for (_, bytes) in &docs {
        if let Ok(ev) = parse_event(bytes, MAX_BYTES) {
            for a in ev.all_attributes() {
                seen_types
                    .entry(a.attr_type.clone())
                    .or_insert_with(|| a.value.clone());
            }
        }
    }
    for (t, v) in &seen_types {
        c.put(
            "misp_event",
            &format!("value-{}", t.replace('|', "+")),
            format!("#{t}\n{v}").as_bytes(),
        );
    }
    for (i, v) in [
        "#first_seen\n2019-06-13T13:46:19.123456+02:00",
        "#date\n2024-02-29",
        "#ip-dst|port\n[2001:db8::1]:443",
        "#url\nhxxps://evil[.]example/a?b=c",
        "#AS\nAS64496",
    ]
    .iter()
    .enumerate()
    {
        c.put("misp_event", &format!("value-extra-{i}"), v.as_bytes());
    }
    // A libFuzzer dictionary: the type and category names, the format's keys.
    let mut dict = String::new();
    let keys = [
        "Event",
        "Attribute",
        "Object",
        "ObjectReference",
        "EventReport",
        "Tag",
        "Galaxy",
        "GalaxyCluster",
        "Sighting",
        "Org",
        "Orgc",
        "SharingGroup",
        "Seal",
        "response",
        "request",
        "uuid",
        "info",
        "date",
        "timestamp",
        "publish_timestamp",
        "published",
        "distribution",
        "sharing_group_id",
        "threat_level_id",
        "analysis",
        "type",
        "category",
        "value",
        "to_ids",
        "comment",
        "deleted",
        "disable_correlation",
        "first_seen",
        "last_seen",
        "object_relation",
        "meta-category",
        "template_uuid",
        "template_version",
        "referenced_uuid",
        "relationship_type",
        "local",
        "exportable",
        "colour",
        "version",
        "origin_org",
        "key_id",
        "header",
        "elements",
        "signed_at",
        "signature",
        "seq",
        "kind",
        "record",
        "end",
        "last_seq",
        "more",
        "head",
        "event_uuid",
        "date_sighting",
        "source",
        "attribute_uuid",
        "event_deleted",
        "tag_removed",
        "element_uuid",
    ];
    let words = sluis::model::types::types()
        .iter()
        .chain(sluis::model::types::categories())
        .map(String::as_str)
        .chain(keys);
    for w in words {
        dict.push('"');
        for b in w.bytes() {
            match b {
                b'"' | b'\\' => dict.push_str(&format!("\\x{b:02x}")),
                0x20..=0x7e => dict.push(b as char),
                _ => dict.push_str(&format!("\\x{b:02x}")),
            }
        }
        dict.push_str("\"\n");
    }
    std::fs::create_dir_all(&c.root).unwrap();
    std::fs::write(c.root.join("misp.dict"), dict).unwrap();

    // --- sealed records: the events as their origin seals them.
    let mut sealed: Vec<(String, Event)> = Vec::new();
    for (name, bytes) in &docs {
        let Ok(mut ev) = parse_event(bytes, MAX_BYTES) else {
            continue;
        };
        if validate_event(&mut ev, SIGNED_AT).is_err() {
            continue;
        }
        seal_event_at(&mut ev, &key, ORG, SIGNED_AT).unwrap();
        verify_event(&ev, trust(), NOW).unwrap();
        sealed.push((name.clone(), ev));
    }
    assert!(sealed.len() >= 15, "only {} documents sealed", sealed.len());
    for (name, ev) in &sealed {
        c.put("seal_verify", &format!("event-{name}"), &wrapped(ev));
    }
    // Distribution filtering withheld some elements: still verifies.
    let (_, big) = sealed.iter().find(|(_, e)| e.attributes.len() > 3).unwrap();
    let mut part = big.clone();
    part.attributes.truncate(2);
    part.objects.truncate(1);
    verify_event(&part, trust(), NOW).unwrap();
    c.put("seal_verify", "event-withheld", &wrapped(&part));
    // The other keys: out of window, revoked; and an unsealed event.
    let (_, base) = sealed.iter().find(|(n, _)| n == "shape-wrapped").unwrap();
    for (name, k, org) in [
        ("windowed", &windowed, WINDOWED_ORG),
        ("revoked", &revoked, REVOKED_ORG),
    ] {
        let mut e = base.clone();
        seal_event_at(&mut e, k, org, SIGNED_AT).unwrap();
        assert!(verify_event(&e, trust(), NOW).is_err());
        c.put("seal_verify", &format!("event-{name}"), &wrapped(&e));
        let mut e = base.clone();
        seal_event_at(&mut e, k, org, WINDOW.0 + 10).unwrap();
        c.put("seal_verify", &format!("event-{name}-early"), &wrapped(&e));
    }
    let mut unsealed = base.clone();
    unsealed.seal = None;
    c.put("seal_verify", "event-unsealed", &wrapped(&unsealed));

    let ev_uuid = base.uuid;
    let tombstones = [
        Tombstone::seal(TombstoneKind::EventDeleted, ev_uuid, SIGNED_AT, &key, ORG).unwrap(),
        Tombstone::seal(
            TombstoneKind::TagRemoved {
                tag: "tlp:green".into(),
                element_uuid: base.attributes[0].uuid,
            },
            ev_uuid,
            SIGNED_AT,
            &key,
            ORG,
        )
        .unwrap(),
        Tombstone::seal(
            TombstoneKind::EventDeleted,
            ev_uuid,
            SIGNED_AT,
            &revoked,
            REVOKED_ORG,
        )
        .unwrap(),
    ];
    let sighting = Sighting {
        id: Some(7),
        attribute_id: Some(8),
        event_id: Some(9),
        date_sighting: SIGNED_AT,
        uuid: Uuid::from_u128(0x5c1b_f022_0000_4000_8000_0000_0000_5151),
        source: "sensor-1".into(),
        kind: 0,
        org: Some(Org {
            id: Some(2),
            name: "CERT-B".into(),
            uuid: Uuid::from_u128(0xb),
            local: false,
        }),
        attribute_uuid: base.attributes[0].uuid,
    };
    let sightings = [
        SealedSighting::seal(&sighting, ev_uuid, &key, ORG).unwrap(),
        SealedSighting::seal(
            &Sighting {
                org: None,
                kind: 1,
                ..sighting.clone()
            },
            ev_uuid,
            &windowed,
            WINDOWED_ORG,
        )
        .unwrap(),
    ];
    let case_id = Uuid::from_u128(0x5c1b_f022_0000_4000_8000_0000_0000_ca5e);
    let peer_cert = Uuid::from_u128(0x5c1b_f022_0000_4000_8000_0000_0000_0ce7);
    let case = |n: u128, body: Body| {
        let uuid = if n == 0 {
            case_id
        } else {
            Uuid::from_u128(0x5c1b_f022_0000_4000_8000_0000_0000_ca00 + n)
        };
        CaseRecord::seal(
            uuid,
            case_id,
            ORG,
            "CERT-A",
            SIGNED_AT,
            vec![peer_cert],
            body,
            &key,
        )
        .unwrap()
    };
    let offer = case(
        2,
        Body::Offer {
            capability: "malware-analysis".into(),
            contact: "soc@example.org".into(),
            availability: "24/7".into(),
        },
    );
    let cases = [
        case(
            0,
            Body::Request(Request {
                title: "Ransomware at a hospital".into(),
                description: "Encrypted file servers.".into(),
                category: "ransomware".into(),
                severity: "high".into(),
                tlp: "amber".into(),
                capabilities: vec!["malware-analysis".into(), "forensics".into()],
                respond_by: SIGNED_AT + 3600,
                addressed: vec![peer_cert],
                linked_events: vec![ev_uuid],
                exercise: false,
            }),
        ),
        case(
            1,
            Body::Acknowledge {
                note: "on it".into(),
            },
        ),
        offer.clone(),
        case(
            3,
            Body::Finding {
                text: "C2 at 192.0.2.1".into(),
                linked_events: vec![ev_uuid],
            },
        ),
        case(
            4,
            Body::Decline {
                reason: "no staff".into(),
            },
        ),
        case(
            5,
            Body::Status {
                status: Status::InProgress,
                accepted_offer: Some(offer.uuid),
                note: String::new(),
            },
        ),
        case(
            6,
            Body::Shared {
                original: Box::new(offer.clone()),
            },
        ),
    ];
    for (i, r) in cases.iter().enumerate() {
        r.verify(trust(), NOW).unwrap();
        c.put(
            "seal_verify",
            &format!("case-{i}"),
            &serde_json::to_vec(r).unwrap(),
        );
    }
    for (i, t) in tombstones.iter().enumerate() {
        c.put(
            "seal_verify",
            &format!("tombstone-{i}"),
            &serde_json::to_vec(t).unwrap(),
        );
    }
    for (i, s) in sightings.iter().enumerate() {
        c.put(
            "seal_verify",
            &format!("sighting-{i}"),
            &serde_json::to_vec(s).unwrap(),
        );
    }

    // --- federation pages: records of each kind, an end line; reports.
    let mut page = Vec::new();
    let mut seq = 40u64;
    let mut line = |kind: RecordKind, json: &[u8], page: &mut Vec<u8>| {
        seq += 1;
        page.extend_from_slice(&record_line(seq, kind, json));
    };
    for (_, ev) in sealed.iter().filter(|(_, e)| wrapped(e).len() < 4 * 1024) {
        line(RecordKind::Event, &wrapped(ev), &mut page);
    }
    line(RecordKind::Event, &wrapped(&part), &mut page);
    for t in &tombstones {
        line(
            RecordKind::Tombstone,
            &serde_json::to_vec(t).unwrap(),
            &mut page,
        );
    }
    for s in &sightings {
        line(
            RecordKind::Sighting,
            &serde_json::to_vec(s).unwrap(),
            &mut page,
        );
    }
    for r in &cases {
        line(RecordKind::Case, &serde_json::to_vec(r).unwrap(), &mut page);
    }
    page.extend_from_slice(br#"{"seq":99,"kind":"casefile","record":{"x":1}}"#);
    page.push(b'\n');
    page.extend_from_slice(&end_line(PageEnd {
        last_seq: 99,
        more: false,
        head: 120,
    }));
    c.put("fed_page", "page", &page);
    // Each line alone too: small inputs mutate faster.
    for (i, l) in page
        .split(|&b| b == b'\n')
        .filter(|l| l.len() < 4096)
        .enumerate()
    {
        c.put("fed_page", &format!("line-{i}"), l);
    }
    let report = Report {
        after: 40,
        cursor: 99,
        accepted: 7,
        rejected: vec![
            Rejection {
                seq: 44,
                kind: "event".into(),
                event: Some(ev_uuid),
                reason: "seal: signing key 0123456789abcdef is revoked".into(),
            },
            Rejection {
                seq: 0,
                kind: "unknown".into(),
                event: None,
                reason: "undecodable line: malformed line: EOF".into(),
            },
        ],
        rejected_total: 2,
    };
    c.put("fed_page", "report", &serde_json::to_vec(&report).unwrap());
    c.put(
        "fed_page",
        "report-empty",
        br#"{"after":0,"cursor":0,"accepted":0}"#,
    );

    // --- restSearch requests: path line, body.
    let searches: &[(&str, Value)] = &[
        ("/events/restSearch", json!({})),
        (
            "/events/restSearch",
            json!({"returnFormat": "json", "value": "8.8.8.8", "limit": 10, "page": 2}),
        ),
        (
            "/attributes/restSearch",
            json!({"request": {"type": ["ip-dst", "ip-src"], "to_ids": 1}}),
        ),
        (
            "/attributes/restSearch/csv",
            json!({"value": "%.example.com", "requested_attributes": ["value", "type"], "includeContext": true, "headerless": "1"}),
        ),
        (
            "/attributes/restSearch/text",
            json!({"value": {"OR": ["10.0.0.0/8", "2001:DB8:0::1"], "NOT": ["10.1.0.0/16"]}}),
        ),
        (
            "/events/restSearch",
            json!({"tags": "tlp:green&&!tlp:red", "event_tags": ["%apt%"], "org": ["CIRCL", "1", "5c1b1cc1-0000-4000-8000-000000000001"]}),
        ),
        (
            "/events/restSearch",
            json!({"timestamp": ["30d", ""], "publish_timestamp": "1h", "last": "5m", "event_timestamp": [1700000000, "2024-01-01T00:00:00+02:00"]}),
        ),
        (
            "/attributes/restSearch",
            json!({"from": "2024-02-29", "to": 1709164800.5, "attribute_timestamp": "2023-12-31", "deleted": [0, 1]}),
        ),
        (
            "/events/restSearch",
            json!({"searchall": "ransom", "quickFilter": "Emotet", "published": [true, false], "metadata": "true"}),
        ),
        (
            "/events/restSearch",
            json!({"searchall": 1, "value": "evil", "eventinfo": "%phish%", "threat_level_id": [1, 2], "analysis": "2", "distribution": {"NOT": [0]}}),
        ),
        (
            "/attributes/restSearch",
            json!({"category": "Network activity", "comment": "%c2%", "object_name": "file", "object_relation": "sha256", "uuid": "5c1b1cc1-0000-4000-8000-000000000001"}),
        ),
        (
            "/events/restSearch",
            json!({"eventid": ["1", "2"], "event_id": "!3", "sharinggroup": "1", "includeEventTags": 1, "includeEventUuid": "1", "includeSightings": true, "withAttachments": 0, "sgReferenceOnly": 1}),
        ),
        (
            "/attributes/restSearch",
            json!({"requested_attributes": "value,type,,uuid", "requested_obj_attributes": ["name"], "returnFormat": "csv"}),
        ),
        ("/attributes/restSearch/type:ip-dst/to_ids:1", json!(null)),
        (
            "/events/restSearch.json/limit:5/page:3",
            json!({"value": "a%b%c"}),
        ),
        ("/events/restSearch", json!({"returnFormat": "stix2"})),
        (
            "/events/restSearch",
            json!({"timestamp": "5x", "from": "someday", "limit": -1, "page": 1e300}),
        ),
        (
            "/attributes/restSearch",
            json!({"value": ["%", "%%", "!%", "&&", "!"], "tags": {"AND": ["a", ["b", ["c"]]], "or": 1.5}}),
        ),
    ];
    for (i, (path, body)) in searches.iter().enumerate() {
        let mut bytes = format!("{path}\n").into_bytes();
        if !body.is_null() {
            bytes.extend_from_slice(&serde_json::to_vec(body).unwrap());
        }
        c.put("search_filter", &format!("{i:02}"), &bytes);
    }
    // --- backup_read: a real backup of a small store, and its truncations.
    let db = tempfile::tempdir().unwrap();
    let store = sluis::store::Store::open(db.path(), Default::default()).unwrap();
    let key_dir = tempfile::tempdir().unwrap();
    let sealer = std::sync::Arc::new(sluis::seal::Sealer::new(
        node_key(&KEY_SEED, key_dir.path()),
        ORG,
    ));
    store.install_sealer(&sealer);
    for seed in 0..3 {
        let raw = serde_json::to_vec(&generated_event_json(seed, 4)).unwrap();
        let ev = parse_event(&raw, MAX_BYTES).unwrap();
        store
            .put_event(ev, sluis::store::Durability::Flush)
            .unwrap();
    }
    let mut backup = Vec::new();
    store.backup_to(&mut backup, &mut |_| {}).unwrap();
    c.put("backup_read", "whole", &backup);
    c.put("backup_read", "cut", &backup[..backup.len() / 2]);

    // --- audit_log: a real log with checkpoints, sealed by the fuzz key.
    let log_path = db.path().join("fuzz-audit.log");
    {
        let log = sluis::audit::AuditLog::open(
            &log_path,
            sealer.clone(),
            sluis::audit::AuditOptions {
                checkpoint_records: 2,
                ..Default::default()
            },
        )
        .unwrap();
        log.node_start("fuzz", "127.0.0.1:0").unwrap();
        for i in 0..4 {
            log.record(sluis::audit::Entry::write(
                "analyst@example",
                format!("edit {i}"),
            ))
            .unwrap();
        }
        log.checkpoint().unwrap();
    }
    c.put("audit_log", "log", &std::fs::read(&log_path).unwrap());

    // --- forwarded_for: header values, one per line.
    for (i, h) in [
        "203.0.113.9",
        "198.51.100.1, 10.0.0.2",
        "[2001:db8::1]:443, 10.9.9.9\n192.0.2.1:80",
        "unknown, 10.0.0.1",
        "2001:db8::7, ::ffff:10.0.0.1",
    ]
    .iter()
    .enumerate()
    {
        c.put("forwarded_for", &format!("{i:02}"), h.as_bytes());
    }
    eprintln!("{} seeds written under {}", c.written, c.root.display());
}
