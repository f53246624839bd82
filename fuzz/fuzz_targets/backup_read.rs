//! The backup reader (`sluis restore` and `sluis backup`'s final check read
//! every byte of a backup before anything is written). Input: a backup file.
//!
//! Beyond "no panic, no hang": a backup that checks out must count at least
//! the bytes it was read from, and reading the same bytes twice gives the same
//! verdict (the reader keeps no state between files).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluis::store::backup::verify;

fuzz_target!(|data: &[u8]| {
    let mut seen = 0u64;
    let first = verify(data, &mut |n| seen = n);
    assert!(seen <= data.len() as u64, "progress past the input");
    let again = verify(data, &mut |_| {});
    match (&first, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a.sha256, b.sha256),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("two readings of the same backup disagree"),
    }
});
