//! The seal verifier, against a fixed trust list (keys from fixed seeds, one
//! trusted without bounds, one inside a window, one revoked: see `common`).
//!
//! Input: a sealed tombstone, a sealed sighting, an incident-support case record,
//! or a MISP event document. The
//! seeds are sealed by the fixed key, so mutations reach every step of
//! `verify_event` (seal decoding, clock checks, key lookup, the signature, the
//! header digest, each element's digest, repeats). Beyond "no panic", for an
//! event that verifies it checks what a receiving node relies on:
//! - `present <= signed` (nothing verified that was not signed);
//! - `strip_unsealed` keeps the seal valid (it removes only unsigned content);
//! - re-validation by the store keeps it valid too (validation does not change
//!   signed content of an event that was validated before it was sealed).
#![no_main]

mod common;

use common::{trust, MAX_BYTES, NOW};
use libfuzzer_sys::fuzz_target;
use sluis::model::parse::parse_event;
use sluis::model::validate::validate_event;
use sluis::seal::{strip_unsealed, verify_event, SealedSighting, Tombstone};
use sluis::support::CaseRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = serde_json::from_slice::<Tombstone>(data) {
        if let Ok(v) = t.verify(trust(), NOW) {
            assert_eq!(v.origin_org, t.origin_org);
            assert_eq!(v.signed_at, t.timestamp);
        }
        return;
    }
    if let Ok(s) = serde_json::from_slice::<SealedSighting>(data) {
        if let Ok(v) = s.verify(trust(), NOW) {
            assert_eq!(v.origin_org, s.origin_org);
            assert_eq!(v.signed_at, s.sighting.date_sighting);
        }
        return;
    }
    if let Ok(r) = serde_json::from_slice::<CaseRecord>(data) {
        if let Ok(v) = r.verify(trust(), NOW) {
            assert_eq!(v.origin_org, r.author_org);
            assert_eq!(v.signed_at, r.created);
        }
        return;
    }
    let Ok(mut ev) = parse_event(data, MAX_BYTES) else {
        return;
    };
    let Ok(v) = verify_event(&ev, trust(), NOW) else {
        return;
    };
    assert!(v.present <= v.signed, "{v:?}");
    assert_eq!(v.withheld(), v.signed - v.present);
    strip_unsealed(&mut ev);
    if let Err(e) = verify_event(&ev, trust(), NOW) {
        panic!("strip_unsealed broke a valid seal: {e}");
    }
    if validate_event(&mut ev, NOW).is_ok() {
        if let Err(e) = verify_event(&ev, trust(), NOW) {
            panic!("validation changed signed content of a verified event: {e}");
        }
    }
});
