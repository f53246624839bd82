//! The audit-log checker (`sluis audit verify`): line splitting, the record
//! parser, the hash chain, the seqs and the checkpoint signatures, over a log
//! that may be any bytes. The trust is the fuzz key, so a mutated copy of a
//! real checkpoint reaches the signature check.
//!
//! Beyond "no panic, no hang": a log the checker calls intact has as many
//! lines as it read, and a verdict is the same on a second reading.
#![no_main]

mod common;

use common::{verifying_key, KEY_SEED, ORG};
use libfuzzer_sys::fuzz_target;
use sluis::audit::{verify::verify, Trust};

fuzz_target!(|data: &[u8]| {
    let trust = Trust {
        org: ORG,
        keys: vec![verifying_key(&KEY_SEED)],
    };
    let Ok(first) = verify(&mut &data[..], &trust, None) else {
        return;
    };
    let again = verify(&mut &data[..], &trust, None).expect("in-memory input");
    assert_eq!(first.problem.is_none(), again.problem.is_none());
    if first.problem.is_none() {
        let lines = data.iter().filter(|b| **b == b'\n').count() as u64;
        assert!(
            first.lines <= lines,
            "{} lines checked, {lines} in the input",
            first.lines
        );
    }
});
