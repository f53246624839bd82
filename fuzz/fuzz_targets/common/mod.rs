//! What the fuzz targets and their seed generator (`tests/fuzz_seeds.rs` in the
//! main crate, which includes this file by path) must agree on: the fixed clock,
//! the fixed signing key and the trust list built from it. A seed sealed by
//! [`KEY_SEED`] verifies in the targets, so the fuzzer starts from inputs that
//! reach past the signature check (header and element digests, stripping,
//! re-validation) instead of failing at it.
#![allow(dead_code)]

use sluis::seal::TrustList;
use std::sync::OnceLock;
use uuid::Uuid;

/// The targets' clock (2030-03-17): after every timestamp in the seeds, so the
/// not-from-the-future checks pass for them. Fixed, so a crash reproduces.
pub const NOW: u64 = 1_900_000_000;

/// When the seeds are sealed: a day before [`NOW`].
pub const SIGNED_AT: u64 = NOW - 86_400;

/// The seed of the ed25519 key that seals the seeds. Public on purpose: it
/// protects nothing, it only has to be the same on both sides.
pub const KEY_SEED: [u8; 32] = *b"sluis fuzz seal key: not secret!";

/// The origin org the seeds are sealed for.
pub const ORG: Uuid = Uuid::from_u128(0x5c1b_f022_0000_4000_8000_0000_0000_0001);

/// A second origin whose key is trusted only inside a window, and a third whose
/// key is revoked: seeds sealed by them reach those checks.
pub const WINDOWED_ORG: Uuid = Uuid::from_u128(0x5c1b_f022_0000_4000_8000_0000_0000_0002);
pub const WINDOWED_KEY_SEED: [u8; 32] = *b"sluis fuzz windowed key: public!";
pub const REVOKED_ORG: Uuid = Uuid::from_u128(0x5c1b_f022_0000_4000_8000_0000_0000_0003);
pub const REVOKED_KEY_SEED: [u8; 32] = *b"sluis fuzz revoked key: public!!";

/// The window of [`WINDOWED_KEY_SEED`]: it ends before [`SIGNED_AT`].
pub const WINDOW: (u64, u64) = (1_500_000_000, 1_800_000_000);

/// Upper bound on one document or record, as a node configures it (smaller than
/// the default so that the fuzzer's inputs are never refused for size alone).
pub const MAX_BYTES: usize = 1 << 22;

/// Upper bound on one federation line.
pub const MAX_LINE: usize = MAX_BYTES + sluis::federation::wire::LINE_OVERHEAD;

pub fn verifying_key(seed: &[u8; 32]) -> ed25519_dalek::VerifyingKey {
    ed25519_dalek::SigningKey::from_bytes(seed).verifying_key()
}

/// The trust list every target verifies against (built once).
pub fn trust() -> &'static TrustList {
    static TRUST: OnceLock<TrustList> = OnceLock::new();
    TRUST.get_or_init(|| {
        let mut t = TrustList::new();
        // These keys are fixed and valid (not weak, windows not empty): adding
        // them cannot fail, and a target that could not build its trust list
        // must stop at once rather than fuzz against an empty one.
        t.add_key(ORG, verifying_key(&KEY_SEED), None, None)
            .expect("the fixed fuzz key is a valid ed25519 key");
        t.add_key(
            WINDOWED_ORG,
            verifying_key(&WINDOWED_KEY_SEED),
            Some(WINDOW.0),
            Some(WINDOW.1),
        )
        .expect("the windowed fuzz key is a valid ed25519 key");
        let revoked = t
            .add_key(REVOKED_ORG, verifying_key(&REVOKED_KEY_SEED), None, None)
            .expect("the revoked fuzz key is a valid ed25519 key");
        t.revoke(&revoked.to_string())
            .expect("a key id printed by KeyId parses back");
        t
    })
}
