//! The federation page decoder: what a receiving node does with the bytes of a
//! `GET /fed/v1/changes` page before anything reaches its store, and with the
//! body of a `POST /fed/v1/report`.
//!
//! Input: a page, newline-delimited. Each line goes through
//! `sluis::federation::wire::parse_line` (the bound on its length included); each
//! record through the parser of its kind, as `sync::apply` does: events through
//! `parse_event`, tombstones, sightings and incident-support case records through
//! their serde types, then the seal check against the fixed trust list. The whole input is also tried as a
//! `Report`. Beyond "no panic", it checks that what decodes re-encodes to the
//! same thing (`record_line`, `end_line`, the report's JSON).
#![no_main]

mod common;

use common::{trust, MAX_BYTES, MAX_LINE, NOW};
use libfuzzer_sys::fuzz_target;
use sluis::federation::wire::{end_line, parse_line, record_line, Line, RecordKind, Report};
use sluis::model::parse::parse_event;
use sluis::seal::{verify_event, SealedSighting, Tombstone};
use sluis::support::CaseRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = serde_json::from_slice::<Report>(data) {
        let json = serde_json::to_vec(&report).expect("a report serialises");
        let back: Report = serde_json::from_slice(&json).expect("a serialised report parses");
        assert_eq!(back, report, "a report changes through its JSON");
    }
    // A small limit now and then, so the length check is on the path too.
    let max = if data.first() == Some(&b' ') {
        64
    } else {
        MAX_LINE
    };
    for line in data.split(|&b| b == b'\n') {
        match parse_line(line, max) {
            Ok(Line::Record { seq, kind, record }) => {
                let again = record_line(seq, kind, record.get().as_bytes());
                match parse_line(&again[..again.len() - 1], usize::MAX) {
                    Ok(Line::Record {
                        seq: s,
                        kind: k,
                        record: r,
                    }) => {
                        assert_eq!((s, k), (seq, kind), "a record line re-encodes differently");
                        assert_eq!(r.get(), record.get(), "a record changes when re-encoded");
                    }
                    other => panic!("a re-encoded record line decodes as {other:?}"),
                }
                decode_record(kind, record.get());
            }
            Ok(Line::End(end)) => {
                let again = end_line(end);
                match parse_line(&again[..again.len() - 1], usize::MAX) {
                    Ok(Line::End(e)) => assert_eq!(e, end, "an end line re-encodes differently"),
                    other => panic!("a re-encoded end line decodes as {other:?}"),
                }
            }
            Err(_) => {}
        }
    }
});

/// What `sync::apply` does with a record before the store: parse, verify.
fn decode_record(kind: RecordKind, record: &str) {
    let now = NOW;
    match kind {
        RecordKind::Event => {
            if let Ok(ev) = parse_event(record.as_bytes(), MAX_BYTES) {
                let _ = verify_event(&ev, trust(), now);
            }
        }
        RecordKind::Tombstone => {
            if let Ok(t) = serde_json::from_str::<Tombstone>(record) {
                let _ = t.verify(trust(), now);
            }
        }
        RecordKind::Sighting => {
            if let Ok(s) = serde_json::from_str::<SealedSighting>(record) {
                let _ = s.verify(trust(), now);
            }
        }
        RecordKind::Case => {
            if let Ok(r) = serde_json::from_str::<CaseRecord>(record) {
                let _ = r.check_shape();
                let _ = r.verify(trust(), now);
            }
        }
        RecordKind::Unknown => {}
    }
}
