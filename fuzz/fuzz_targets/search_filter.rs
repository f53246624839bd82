//! The restSearch filter parser (`events/restSearch`, `attributes/restSearch`).
//!
//! Input: the request path on the first line, the body after it, e.g.
//!
//! ```text
//! /attributes/restSearch/csv/type:ip-dst/to_ids:1
//! {"value":["%.example.com","!10.0.0.0/8"],"timestamp":["30d",""]}
//! ```
//!
//! The path goes through the router's rewriting (CakePHP named parameters, the
//! `.json` suffix) and picks the scope and the format segment; the body and the
//! parameters then go through exactly what the handler runs before it touches
//! the store (`sluis::api::fuzz_parse_request`): the body reader, the
//! `{"request": …}` unwrapping, `Query::parse` (terms, `&&`/`!`/OR/AND/NOT,
//! time deltas, ISO dates, flags, limits) and the engine's compiled value
//! patterns. No input may panic, and none may break the engine's invariants.
#![no_main]

mod common;

use common::NOW;
use libfuzzer_sys::fuzz_target;
use sluis::http::body::normalise_path;

fuzz_target!(|data: &[u8]| {
    let (first, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let path = String::from_utf8_lossy(first);
    let (path, named) = normalise_path(&path);
    let attributes = path.starts_with("/attributes/");
    let format = path
        .split_once("/restSearch/")
        .map(|(_, f)| f)
        .filter(|f| !f.is_empty() && !f.contains('/'));
    let named = (!named.0.is_empty()).then_some(&named);
    if let Ok(broken) = sluis::api::fuzz_parse_request(attributes, format, named, body, NOW) {
        assert!(broken.is_empty(), "engine invariants broken: {broken:#?}");
    }
});
