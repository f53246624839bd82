//! The seal, end to end (issue 4): generated events keep verifying under any
//! distribution filtering and fail under any change to what was signed; the named
//! trust failures (unknown, revoked, out-of-window key, copied seal, forged origin);
//! replays are detectable by the store; every real MISP sample seals and verifies,
//! also after a trip through the wire format.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

use proptest::prelude::*;
use serde_json::json;
use sluis::model::event::Wrapped;
use sluis::model::parse::parse_event;
use sluis::model::validate::validate_event;
use sluis::model::{Event, Tag};
use sluis::seal::{
    seal_event, seal_event_at, verify_event, NodeKey, SealError, TrustList, VerifiedEvent,
};
use std::path::PathBuf;
use std::sync::OnceLock;
use uuid::Uuid;

const ORG_A: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_000a);
const ORG_B: Uuid = Uuid::from_u128(0x5c1b_0000_0000_4000_8000_0000_0000_000b);
/// "Now" for every check here: after every generated and sample timestamp.
const NOW: u64 = 1_800_000_000;
/// When the seals here are made (`Seal.signed_at`): a fixed clock, so the checks
/// do not depend on the day the tests run.
const SIGNED_AT: u64 = NOW - 60;

/// Seals as `org` with `key`, signed at [`SIGNED_AT`].
fn seal_with(e: &mut Event, key: &NodeKey, org: Uuid) {
    seal_event_at(e, key, org, SIGNED_AT).unwrap();
}

/// One key for org A, another for org B, both trusted (generated once: the
/// property tests run hundreds of cases).
fn keys() -> &'static (NodeKey, NodeKey, TrustList) {
    static K: OnceLock<(NodeKey, NodeKey, TrustList)> = OnceLock::new();
    K.get_or_init(|| {
        let a = NodeKey::generate().unwrap();
        let b = NodeKey::generate().unwrap();
        let mut t = TrustList::new();
        t.add(ORG_A, &a.public_key_b64(), None, None).unwrap();
        t.add(ORG_B, &b.public_key_b64(), None, None).unwrap();
        (a, b, t)
    })
}

fn uuid(seed: u64, kind: u64, i: u64) -> String {
    Uuid::from_u64_pair(
        0x5c1b_0000_0000_4000 | (kind << 16) | (seed & 0xffff),
        0x8000_0000_0000_0000 | (seed << 20) | i,
    )
    .to_string()
}

/// A validated event from the synthetic generator, plus `objects` domain-ip objects
/// (two attributes and a reference each) and `reports` reports, so every element
/// kind is present.
fn generated(seed: u64, attrs: usize, objects: usize, reports: usize) -> Event {
    let mut v = sluis::testdata::generated_event_json(seed, attrs);
    let ev = v.get_mut("Event").unwrap();
    let first_attr = ev["Attribute"].get(0).map(|a| a["uuid"].clone());
    let objs: Vec<_> = (0..objects as u64)
        .map(|i| {
            let target = first_attr.clone().unwrap_or_else(|| json!(uuid(seed, 1, i)));
            json!({"name": "domain-ip", "uuid": uuid(seed, 2, i), "distribution": (i % 6).to_string(),
                "sharing_group_id": if i % 6 == 4 { "7" } else { "0" },
                "comment": format!("object {i}"),
                "Attribute": [
                    {"uuid": uuid(seed, 3, i), "type": "domain", "object_relation": "domain",
                     "value": format!("obj{i}-{seed}.example"), "Tag": [{"name": "kill-chain:c2"}]},
                    {"uuid": uuid(seed, 4, i), "type": "ip-dst", "object_relation": "ip",
                     "value": format!("192.0.2.{}", i % 250), "first_seen": "2024-01-02T03:04:05.123456+00:00"}],
                "ObjectReference": [
                    {"uuid": uuid(seed, 5, i), "referenced_uuid": target, "referenced_type": "0",
                     "relationship_type": "resolves-to", "comment": "ref"}]})
        })
        .collect();
    ev["Object"] = json!(objs);
    let reps: Vec<_> = (0..reports as u64)
        .map(|i| {
            json!({"uuid": uuid(seed, 6, i), "name": format!("Report {i}"),
                   "content": format!("# Findings\n\n* \"{i}\" — ünïcödé 😀\u{0007}"), "distribution": "5"})
        })
        .collect();
    ev["EventReport"] = json!(reps);
    let bytes = serde_json::to_vec(&v).unwrap();
    let mut e = parse_event(&bytes, 1 << 26).unwrap();
    validate_event(&mut e, NOW).unwrap();
    e
}

fn sealed(seed: u64, attrs: usize, objects: usize, reports: usize) -> Event {
    let mut e = generated(seed, attrs, objects, reports);
    seal_with(&mut e, &keys().0, ORG_A);
    e
}

fn verify(e: &Event) -> Result<VerifiedEvent, SealError> {
    verify_event(e, &keys().2, NOW)
}

/// Serialises as MISP JSON and reads back through the one parser and validator,
/// as a receiving node does.
fn over_the_wire(e: &Event) -> Event {
    let bytes = serde_json::to_vec(&Wrapped { event: e }).unwrap();
    let mut back = parse_event(&bytes, 1 << 26).unwrap();
    validate_event(&mut back, NOW + 1000).unwrap();
    back
}

/// Removes elements where `keep` says false (cycling through it): top-level
/// attributes, whole objects, object attributes, references and reports — what
/// distribution filtering does. Returns how many elements remain.
fn filter(e: &mut Event, keep: &[bool]) -> usize {
    let mut it = keep.iter().copied().cycle();
    let mut next = || it.next().unwrap_or(true);
    e.attributes.retain(|_| next());
    e.objects.retain(|_| next());
    for o in &mut e.objects {
        o.attributes.retain(|_| next());
        o.references.retain(|_| next());
    }
    e.reports.retain(|_| next());
    sluis::seal::signed_form::element_count(e)
}

fn bump(s: &mut String) {
    s.push('x');
}

/// Applies mutation number `m` (of [`MUTATIONS`]) to a signed field of the event.
/// Each one changes something the origin signed; none may verify.
#[rustfmt::skip] // one mutation per line reads as the table it is
fn mutate(e: &mut Event, m: usize) -> &'static str {
    let other = Uuid::from_u128(0xdead_beef);
    let a = 0; // the first top-level attribute
    match m {
        // header
        0 => { bump(&mut e.info); "Event.info" }
        1 => { e.date = "2001-01-01".into(); "Event.date" }
        2 => { e.threat_level_id = e.threat_level_id % 4 + 1; "Event.threat_level_id" }
        3 => { e.analysis = (e.analysis + 1) % 3; "Event.analysis" }
        4 => { e.distribution = (e.distribution + 1) % 5; "Event.distribution" }
        5 => { e.timestamp -= 1; "Event.timestamp" }
        6 => { e.uuid = other; "Event.uuid" }
        7 => { e.orgc.as_mut().unwrap().name.push('x'); "Event.Orgc.name" }
        8 => { e.orgc.as_mut().unwrap().uuid = other; "Event.Orgc.uuid" }
        9 => { e.tags.push(Tag::named("tlp:clear")); "Event.Tag added" }
        10 => { e.tags.pop(); "Event.Tag removed" }
        11 => { e.tags[0].name = "tlp:red".into(); "Event.Tag renamed" }
        12 => { e.disable_correlation ^= true; "Event.disable_correlation" }
        13 => { e.extends_uuid = other.to_string(); "Event.extends_uuid" }
        14 => { e.protected = Some(true); "Event.protected" }
        15 => { e.sharing_group = Some(sg(other)); "Event.SharingGroup" }
        // top-level attribute
        16 => { bump(&mut e.attributes[a].value); "Attribute.value" }
        17 => { e.attributes[a].attr_type = "text".into(); "Attribute.type" }
        18 => { e.attributes[a].category = "Other".into(); "Attribute.category" }
        19 => { e.attributes[a].to_ids = Some(!e.attributes[a].ids()); "Attribute.to_ids" }
        20 => { e.attributes[a].distribution = (e.attributes[a].distribution + 1) % 6; "Attribute.distribution" }
        21 => { e.attributes[a].timestamp += 1; "Attribute.timestamp" }
        22 => { bump(&mut e.attributes[a].comment); "Attribute.comment" }
        23 => { e.attributes[a].deleted ^= true; "Attribute.deleted" }
        24 => { e.attributes[a].disable_correlation ^= true; "Attribute.disable_correlation" }
        25 => { e.attributes[a].first_seen = Some(1); "Attribute.first_seen" }
        26 => { e.attributes[a].last_seen = Some(2); "Attribute.last_seen" }
        27 => { e.attributes[a].data = Some("AAAA".into()); "Attribute.data" }
        28 => { e.attributes[a].uuid = other; "Attribute.uuid" }
        29 => { e.attributes[a].tags.push(Tag::named("x:y")); "Attribute.Tag" }
        30 => { e.attributes[a].sharing_group = Some(sg(other)); "Attribute.SharingGroup" }
        31 => { e.attributes[a].object_relation = Some("ip".into()); "Attribute.object_relation" }
        // object and its attributes
        32 => { bump(&mut e.objects[0].name); "Object.name" }
        33 => { bump(&mut e.objects[0].meta_category); "Object.meta-category" }
        34 => { bump(&mut e.objects[0].description); "Object.description" }
        35 => { bump(&mut e.objects[0].template_uuid); "Object.template_uuid" }
        36 => { bump(&mut e.objects[0].template_version); "Object.template_version" }
        37 => { e.objects[0].uuid = other; "Object.uuid" }
        38 => { e.objects[0].timestamp += 1; "Object.timestamp" }
        39 => { e.objects[0].distribution = (e.objects[0].distribution + 1) % 6; "Object.distribution" }
        40 => { bump(&mut e.objects[0].comment); "Object.comment" }
        41 => { e.objects[0].deleted ^= true; "Object.deleted" }
        42 => { e.objects[0].first_seen = Some(5); "Object.first_seen" }
        43 => { e.objects[0].last_seen = Some(6); "Object.last_seen" }
        44 => { bump(&mut e.objects[0].attributes[1].value); "Object.Attribute.value" }
        45 => { e.objects[0].attributes[0].tags.clear(); "Object.Attribute.Tag" }
        46 => {
            // An attribute moved out of its object to the top level.
            let mut moved = e.objects[0].attributes.remove(1);
            moved.object_relation = None;
            e.attributes.push(moved);
            "Object.Attribute moved to top level"
        }
        47 => {
            // An attribute moved from one object into another.
            let moved = e.objects[0].attributes.remove(0);
            e.objects[1].attributes.push(moved);
            "Object.Attribute moved to another object"
        }
        // reference
        48 => { e.objects[0].references[0].uuid = other; "ObjectReference.uuid" }
        49 => { e.objects[0].references[0].timestamp += 1; "ObjectReference.timestamp" }
        50 => { e.objects[0].references[0].object_uuid = other; "ObjectReference.object_uuid" }
        51 => { e.objects[0].references[0].referenced_uuid = other; "ObjectReference.referenced_uuid" }
        52 => { e.objects[0].references[0].referenced_type = 1; "ObjectReference.referenced_type" }
        53 => { bump(&mut e.objects[0].references[0].relationship_type); "ObjectReference.relationship_type" }
        54 => { bump(&mut e.objects[0].references[0].comment); "ObjectReference.comment" }
        55 => { e.objects[0].references[0].deleted ^= true; "ObjectReference.deleted" }
        56 => {
            let r = e.objects[0].references.remove(0);
            e.objects[1].references.push(r);
            "ObjectReference moved to another object"
        }
        // report
        57 => { e.reports[0].uuid = other; "EventReport.uuid" }
        58 => { bump(&mut e.reports[0].name); "EventReport.name" }
        59 => { bump(&mut e.reports[0].content); "EventReport.content" }
        60 => { e.reports[0].distribution = (e.reports[0].distribution + 1) % 6; "EventReport.distribution" }
        61 => { e.reports[0].timestamp += 1; "EventReport.timestamp" }
        62 => { e.reports[0].deleted ^= true; "EventReport.deleted" }
        63 => { e.reports[0].sharing_group = Some(sg(other)); "EventReport.SharingGroup" }
        // the seal itself
        64 => { e.seal.as_mut().unwrap().origin_org = ORG_B; "Seal.origin_org" }
        65 => { e.seal.as_mut().unwrap().key_id = keys().1.key_id().to_string(); "Seal.key_id (another trusted key)" }
        66 => { e.seal.as_mut().unwrap().key_id = "0123456789abcdef".into(); "Seal.key_id (unknown)" }
        67 => { flip_signature_byte(e, 17); "Seal.signature" }
        68 => { e.seal.as_mut().unwrap().header = e.seal.as_ref().unwrap().elements[0].clone(); "Seal.header" }
        69 => { e.seal.as_mut().unwrap().signed_at = Some(SIGNED_AT - 1); "Seal.signed_at" }
        _ => unreachable!(),
    }
}

const MUTATIONS: usize = 70;

fn sg(uuid: Uuid) -> sluis::model::SharingGroup {
    serde_json::from_value(json!({"uuid": uuid, "name": "sg"})).unwrap()
}

fn flip_signature_byte(e: &mut Event, i: usize) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let seal = e.seal.as_mut().unwrap();
    let mut sig = b64.decode(&seal.signature).unwrap();
    sig[i % 64] ^= 0x01;
    seal.signature = b64.encode(sig);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Distribution filtering: any subset of the elements still verifies, and
    /// the verifier counts what it saw and what was withheld.
    #[test]
    fn any_subset_of_elements_verifies(
        seed in 0u64..1_000_000,
        attrs in 1usize..25,
        objects in 0usize..4,
        reports in 0usize..3,
        keep in proptest::collection::vec(any::<bool>(), 1..40),
    ) {
        let mut e = sealed(seed, attrs, objects, reports);
        let signed = e.seal.as_ref().unwrap().elements.len();
        let left = filter(&mut e, &keep);
        let v = verify(&e).unwrap();
        prop_assert_eq!((v.present, v.signed), (left, signed));
        // The same after the trip a receiver sees (top-level filtering keeps
        // objects intact, so they still satisfy their templates).
        let mut e = sealed(seed, attrs, objects, reports);
        e.attributes.retain(|_| keep[0]);
        e.reports.retain(|_| keep[keep.len() - 1]);
        prop_assert!(verify(&over_the_wire(&e)).is_ok());
    }

    /// Any change to any signed field, of any element kind or of the seal, fails —
    /// also when the changed element is the only one left after filtering.
    #[test]
    fn any_change_to_a_signed_field_fails(
        seed in 0u64..1_000_000,
        attrs in 1usize..10,
        m in 0usize..MUTATIONS,
        filtered in any::<bool>(),
    ) {
        let mut e = sealed(seed, attrs, 2, 1);
        if filtered {
            e.attributes.truncate(1);
        }
        let what = mutate(&mut e, m);
        let res = verify(&e);
        prop_assert!(res.is_err(), "{} changed, yet the seal verified: {:?}", what, res);
    }

    /// An element the origin did not sign fails, wherever it is added.
    #[test]
    fn an_added_element_fails(seed in 0u64..1_000_000, attrs in 1usize..10, where_ in 0usize..4) {
        let mut e = sealed(seed, attrs, 1, 1);
        let fresh = Uuid::from_u128(u128::from(seed) << 8 | 0xff);
        match where_ {
            0 => { let mut a = e.attributes[0].clone(); a.uuid = fresh; a.value = "203.0.113.250".into(); e.attributes.push(a); }
            1 => { let mut a = e.objects[0].attributes[0].clone(); a.uuid = fresh; e.objects[0].attributes.push(a); }
            2 => { let mut r = e.reports[0].clone(); r.uuid = fresh; e.reports.push(r); }
            _ => { let mut r = e.objects[0].references[0].clone(); r.uuid = fresh; e.objects[0].references.push(r); }
        }
        let err = verify(&e).unwrap_err();
        prop_assert!(matches!(err, SealError::DigestNotListed { .. }), "{:?}", err);
    }

    /// The digest list is signed: replacing a digest (re-sorted, so the list still
    /// looks well-formed), dropping one, or reordering fails.
    #[test]
    fn a_swapped_digest_fails(seed in 0u64..1_000_000, attrs in 2usize..10, i in 0usize..100, how in 0usize..3) {
        let mut e = sealed(seed, attrs, 0, 0);
        let other = sealed(seed + 1, attrs, 0, 0);
        let seal = e.seal.as_mut().unwrap();
        let i = i % seal.elements.len();
        match how {
            0 => {
                seal.elements[i] = other.seal.as_ref().unwrap().elements[0].clone();
                seal.elements.sort();
            }
            1 => { seal.elements.remove(i); }
            _ => { let j = (i + 1) % seal.elements.len(); seal.elements.swap(i, j); }
        }
        prop_assert!(verify(&e).is_err());
    }

    /// Any single flipped bit of the signature fails.
    #[test]
    fn a_flipped_signature_byte_fails(seed in 0u64..1_000, byte in 0usize..64) {
        let mut e = sealed(seed, 3, 0, 0);
        flip_signature_byte(&mut e, byte);
        let err = verify(&e).unwrap_err();
        prop_assert!(matches!(err, SealError::BadSignature { .. }), "{:?}", err);
    }
}

#[test]
fn every_mutation_fails_with_a_fitting_reason() {
    for m in 0..MUTATIONS {
        let mut e = sealed(42, 5, 2, 1);
        let what = mutate(&mut e, m);
        let err = verify(&e).unwrap_err();
        let fitting = match what.split('.').next().unwrap() {
            "Event" if what == "Event.uuid" || what == "Event.timestamp" => {
                matches!(err, SealError::BadSignature { .. })
            }
            "Event" => err == SealError::HeaderMismatch,
            "Seal" => matches!(
                err,
                SealError::BadSignature { .. }
                    | SealError::KeyOriginMismatch { .. }
                    | SealError::UnknownKey { .. }
            ),
            _ => matches!(err, SealError::DigestNotListed { .. }),
        };
        assert!(fitting, "{what}: {err}");
    }
}

#[test]
fn unknown_key_fails() {
    let mut e = generated(1, 5, 1, 1);
    let stranger = NodeKey::generate().unwrap();
    seal_with(&mut e, &stranger, ORG_A);
    let err = verify(&e).unwrap_err();
    assert_eq!(
        err,
        SealError::UnknownKey {
            origin_org: ORG_A,
            key_id: stranger.key_id()
        }
    );
    assert!(
        err.to_string().contains(&stranger.key_id().to_string()),
        "{err}"
    );
}

#[test]
fn revoked_key_fails() {
    let key = NodeKey::generate().unwrap();
    let mut trust = TrustList::new();
    trust.add(ORG_A, &key.public_key_b64(), None, None).unwrap();
    let mut e = generated(2, 5, 1, 1);
    seal_with(&mut e, &key, ORG_A);
    verify_event(&e, &trust, NOW).unwrap();
    trust.revoke(&key.key_id().to_string()).unwrap();
    assert_eq!(
        verify_event(&e, &trust, NOW),
        Err(SealError::Revoked {
            key_id: key.key_id()
        })
    );
}

/// Rotation: the old key is valid until R, the new one from R - overlap. A seal
/// is judged at its signed time (`Seal.signed_at`, when the origin sealed), so
/// versions sealed by the old key keep verifying after rotation, the old key
/// cannot vouch for anything sealed after its window, and old content sealed
/// today (an event from an old MISP feed) verifies under today's key.
#[test]
fn key_outside_its_validity_window_fails() {
    let old = NodeKey::generate().unwrap();
    let new = NodeKey::generate().unwrap();
    let e0 = generated(3, 5, 1, 1);
    let t = e0.timestamp;
    let rotation = t + 100_000;
    let overlap = 3_600;
    let mut trust = TrustList::new();
    trust
        .add(ORG_A, &old.public_key_b64(), None, Some(rotation))
        .unwrap();
    trust
        .add(ORG_A, &new.public_key_b64(), Some(rotation - overlap), None)
        .unwrap();

    let mut e = e0.clone();
    seal_event_at(&mut e, &old, ORG_A, rotation - 10).unwrap();
    verify_event(&e, &trust, NOW).unwrap();

    seal_event_at(&mut e, &old, ORG_A, rotation + 1).unwrap();
    let err = verify_event(&e, &trust, NOW).unwrap_err();
    assert_eq!(
        err,
        SealError::OutsideValidity {
            key_id: old.key_id(),
            at: rotation + 1,
            not_before: None,
            not_after: Some(rotation)
        }
    );
    seal_event_at(&mut e, &new, ORG_A, rotation + 1).unwrap();
    verify_event(&e, &trust, NOW).unwrap();
    // The old content (timestamp t, long before the new key's window) sealed
    // by the new key today.
    seal_with(&mut e, &new, ORG_A);
    assert!(e.timestamp < rotation - overlap);
    verify_event(&e, &trust, NOW).unwrap();

    seal_event_at(&mut e, &new, ORG_A, rotation - overlap - 1).unwrap();
    assert!(matches!(
        verify_event(&e, &trust, NOW),
        Err(SealError::OutsideValidity { .. })
    ));

    // The retired key cannot vouch for a version made after its window by
    // back-dating the seal into it.
    let mut later = e0.clone();
    later.timestamp = rotation + 2 * sluis::seal::MAX_CLOCK_SKEW_SECS;
    seal_event_at(&mut later, &old, ORG_A, rotation).unwrap();
    assert!(matches!(
        verify_event(&later, &trust, NOW),
        Err(SealError::SignedBeforeVersion { .. })
    ));
}

/// `seal_event` signs at the node's clock, and what it seals verifies now.
#[test]
fn seal_event_uses_the_clock() {
    let mut e = generated(9, 3, 1, 1);
    seal_event(&mut e, &keys().0, ORG_A).unwrap();
    let now = sluis::model::time::now_secs();
    let at = e.seal.as_ref().unwrap().signed_at.unwrap();
    assert!(at <= now && at + 60 > now, "{at} vs {now}");
    verify_event(&e, &keys().2, now).unwrap();
}

#[test]
fn seal_copied_onto_another_event_fails() {
    let a = sealed(4, 5, 1, 1);
    // Another event with the very same elements and header fields but its own uuid.
    let mut b = generated(4, 5, 1, 1);
    b.uuid = Uuid::from_u128(0xb0b);
    b.seal = a.seal.clone();
    assert!(matches!(verify(&b), Err(SealError::BadSignature { .. })));
    // And an unrelated event.
    let mut c = generated(5, 5, 1, 1);
    c.seal = a.seal.clone();
    assert!(matches!(verify(&c), Err(SealError::BadSignature { .. })));
    // Elements of another event carry its uuid in their signed form: even with
    // its own seal, event c cannot carry a's elements.
    let mut c = sealed(5, 5, 1, 1);
    c.attributes.push(a.attributes[0].clone());
    assert!(matches!(verify(&c), Err(SealError::DigestNotListed { .. })));
}

#[test]
fn forged_origin_fails() {
    let mut e = sealed(6, 3, 0, 0);
    e.seal.as_mut().unwrap().origin_org = ORG_B;
    assert!(matches!(
        verify(&e),
        Err(SealError::KeyOriginMismatch {
            claimed: ORG_B,
            registered: ORG_A,
            ..
        })
    ));
    // Org B's key cannot vouch for org A either.
    let mut e = generated(6, 3, 0, 0);
    seal_with(&mut e, &keys().1, ORG_A);
    assert!(matches!(
        verify(&e),
        Err(SealError::KeyOriginMismatch { .. })
    ));
}

/// A replayed older version still carries a valid seal — what the origin said
/// then is still what it said — so verification alone accepts it; the store
/// refuses it as "not newer" by comparing the *signed* timestamps. This test is
/// that split: both verify, the replay's signed timestamp is older, and it cannot
/// be made to look newer without breaking its seal.
#[test]
fn replayed_older_version_is_detectable() {
    let v1 = sealed(7, 5, 1, 1);
    let mut v2 = v1.clone();
    v2.timestamp += 60;
    v2.attributes[0].timestamp = v2.timestamp;
    v2.attributes[0].comment = "updated".into();
    seal_with(&mut v2, &keys().0, ORG_A);

    let stored = verify(&v2).unwrap();
    let replay = verify(&v1).unwrap();
    assert_eq!(replay.event_uuid, stored.event_uuid);
    assert!(
        replay.timestamp < stored.timestamp,
        "the store's not-newer check refuses this"
    );

    let mut forged = v1.clone();
    forged.timestamp = v2.timestamp + 1;
    assert!(matches!(
        verify(&forged),
        Err(SealError::BadSignature { .. })
    ));
    // Mixing versions: v1's attribute inside v2 is not what v2 signed.
    let mut mixed = v2.clone();
    mixed.attributes[0] = v1.attributes[0].clone();
    assert!(matches!(
        verify(&mixed),
        Err(SealError::DigestNotListed { .. })
    ));
}

fn samples_dir() -> PathBuf {
    sluis::testdata::misp_samples_dir()
}

#[test]
fn real_misp_samples_seal_and_verify() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples_dir())
        .expect("the MISP samples in tests/data/misp")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| !p.ends_with("search_index_result.json")) // a list of index rows
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    let mut elements = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        let mut e = parse_event(&std::fs::read(f).unwrap(), 1 << 26)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        validate_event(&mut e, NOW).unwrap_or_else(|err| panic!("{name}: {err}"));
        seal_event_at(&mut e, &keys().0, ORG_A, SIGNED_AT)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let v = verify(&e).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(
            v.present,
            sluis::seal::signed_form::element_count(&e),
            "{name}"
        );
        elements += v.present;
        let back = over_the_wire(&e);
        verify(&back).unwrap_or_else(|err| panic!("{name} after the wire: {err}"));
        // The store's portable form (local ids dropped, children sorted) too.
        verify(&e.portable()).unwrap_or_else(|err| panic!("{name} portable: {err}"));
        let mut changed = back.clone();
        changed.info.push('!');
        assert_eq!(verify(&changed), Err(SealError::HeaderMismatch), "{name}");
    }
    assert!(elements > 500, "{elements}");
}

#[test]
fn seal_wire_form_is_as_designed() {
    let e = sealed(8, 2, 0, 0);
    let v = serde_json::to_value(Wrapped { event: &e }).unwrap();
    let seal = &v["Event"]["Seal"];
    assert_eq!(seal["version"], 1);
    assert_eq!(seal["origin_org"], ORG_A.to_string());
    assert_eq!(seal["key_id"].as_str().unwrap().len(), 16);
    assert_eq!(seal["header"].as_str().unwrap().len(), 64);
    assert_eq!(seal["elements"].as_array().unwrap().len(), 2);
    assert_eq!(seal["signed_at"], SIGNED_AT);
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(seal["signature"].as_str().unwrap())
        .unwrap();
    assert_eq!(sig.len(), 64);
}
