//! The MISP JSON parser, and what every imported or posted event goes through
//! next: the one validator, the seal's signed forms, and the export writers.
//!
//! Input: any bytes, read as one MISP JSON document (`{"Event":…}`, a bare event,
//! `{"response":[…]}`, a list, an index). Beyond "no panic", it checks:
//! - an event the parser returns serialises, and that serialisation parses back
//!   to the same event (the wire form is stable);
//! - validation is idempotent: a validated event validates again unchanged (a
//!   receiver re-validates sealed events; a second pass that changed anything
//!   would break their seals);
//! - a validated event exported as MISP JSON imports back as the same event.
//!
//! An input starting with `#` is `#<attribute type>\n<value>` instead: the value
//! normaliser alone (refanging, per-type rules, composite halves), much faster
//! than through whole documents, and the date and first/last-seen parsers. A
//! normalised value normalises to itself, and formatted times parse back.
#![no_main]

mod common;

use common::{MAX_BYTES, NOW};
use libfuzzer_sys::fuzz_target;
use sluis::export::{CsvWriter, MispWriter, TextWriter};
use sluis::model::event::Wrapped;
use sluis::model::parse::{parse_event, parse_events};
use sluis::model::validate::validate_event;
use sluis::model::{time, value, Event};
use sluis::seal::signed_form;

fuzz_target!(|data: &[u8]| {
    if let Some(rest) = data.strip_prefix(b"#") {
        value_mode(rest);
        return;
    }
    let single = parse_event(data, MAX_BYTES);
    let events = match parse_events(data, MAX_BYTES) {
        Ok(v) => v,
        Err(_) => {
            assert!(
                single.is_err(),
                "parse_event accepts what parse_events refuses"
            );
            return;
        }
    };
    assert!(!events.is_empty(), "parse_events returned Ok with no event");
    if events.len() == 1 {
        assert_eq!(
            single.as_ref().ok(),
            events.first(),
            "parse_event and parse_events disagree"
        );
    }
    for ev in events.into_iter().take(8) {
        round_trip(&ev);
        let mut ev = ev;
        if validate_event(&mut ev, NOW).is_err() {
            continue;
        }
        let once = ev.clone();
        if let Err(e) = validate_event(&mut ev, NOW) {
            panic!("a validated event fails validation again: {e}");
        }
        assert_eq!(once, ev, "validating a validated event changed it");
        // The seal's view of the event: signed forms and digests of every element.
        let _ = signed_form::header_digest(&ev);
        let _ = signed_form::element_digests(&ev);
        export_round_trip(&ev);
    }
});

/// Serialise as the wire form, parse back: the same event.
fn round_trip(ev: &Event) {
    let json = serde_json::to_vec(&Wrapped { event: ev }).expect("a parsed event serialises");
    let back = match parse_event(&json, usize::MAX) {
        Ok(e) => e,
        Err(e) => panic!(
            "the serialised form of a parsed event does not parse: {e}\n{}",
            String::from_utf8_lossy(&json)
        ),
    };
    assert_eq!(&back, ev, "a parsed event changes through its wire form");
    let again = serde_json::to_vec(&Wrapped { event: &back }).expect("a parsed event serialises");
    assert_eq!(
        String::from_utf8_lossy(&json),
        String::from_utf8_lossy(&again),
        "the wire form changes on a second round trip"
    );
}

/// Every export format writes; MISP JSON imports back to the same event.
fn export_round_trip(ev: &Event) {
    let mut out = Vec::new();
    let mut w = MispWriter::new();
    w.begin(&mut out).expect("writing to a Vec");
    w.event(&mut out, ev).expect("writing to a Vec");
    w.end(&mut out).expect("writing to a Vec");
    let mut back = match parse_events(&out, usize::MAX) {
        Ok(mut v) if v.len() == 1 => v.remove(0),
        other => panic!("a validated event does not import back from its export: {other:?}"),
    };
    if let Err(e) = validate_event(&mut back, NOW) {
        panic!("an exported event fails validation on import: {e}");
    }
    assert_eq!(&back, ev, "export then import changed a validated event");

    let mut csv = CsvWriter::new();
    let mut sink = Vec::new();
    csv.header(&mut sink).expect("writing to a Vec");
    csv.event(&mut sink, ev).expect("writing to a Vec");
    TextWriter::event(&mut sink, ev).expect("writing to a Vec");
}

/// `#type\nvalue`: the per-type value rules, and the time formats.
fn value_mode(rest: &[u8]) {
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    let (attr_type, v) = s.split_once('\n').unwrap_or(("text", s));
    let _ = value::split(attr_type, v);
    if let Ok(n) = value::normalise(attr_type, v) {
        match value::normalise(attr_type, &n) {
            Ok(again) => assert_eq!(again, n, "normalising {attr_type} {v:?} twice differs"),
            Err(e) => panic!("{attr_type}: the normalised {n:?} (from {v:?}) is refused: {e}"),
        }
        let _ = value::split(attr_type, &n);
    }
    if let Ok(us) = time::parse_seen(v) {
        let f = time::format_seen(us);
        assert_eq!(
            time::parse_seen(&f),
            Ok(us),
            "{v:?} formats as {f:?}, which reads differently"
        );
    }
    if let Ok(d) = time::normalise_date(v) {
        assert_eq!(
            time::normalise_date(&d),
            Ok(d.clone()),
            "date {v:?} → {d:?} is not stable"
        );
    }
}
