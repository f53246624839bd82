//! RFC 8785 JSON Canonicalization Scheme (JCS) and the digests taken over it.
//!
//! Signatures cover canonical JSON rather than the bytes that travelled, so a seal
//! survives re-serialisation by any node (MISP's protected events sign raw response
//! bodies instead and break on re-encoding). The reference is
//! `serde_json_canonicalizer` (not `serde_jcs`, which sorts keys by UTF-8 rather
//! than UTF-16 and formats numbers wrongly); the tests below carry the RFC's own
//! vectors and the cyberphone reference suite.
//!
//! Digests of signed forms take a faster road to the same bytes: the signed-form
//! types (see [`super::signed_form`]) hold only strings, booleans, `null`, arrays
//! and structs whose fields are declared in JCS order, and for such values
//! `serde_json`'s compact output *is* the JCS output — the same escapes (`\b \t \n
//! \f \r`, `\u00xx` in lowercase hex for the other controls, nothing else escaped),
//! no numbers to reformat, no keys to sort. Serialising straight into the hasher
//! avoids the reference canonicaliser's per-property buffers, which is what makes
//! ≥100 000 attributes/s per core possible. Debug builds check every digest input
//! against the reference canonicaliser, and the tests check adversarial strings.

use super::SealError;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// A SHA-256 digest of a canonical signed form; hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = String;
    /// Exactly 64 lowercase hex digits: one spelling per digest, so that a seal
    /// has one wire form and digests compare as strings too.
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("\"{s}\" is not a digest (64 lowercase hex digits)"));
        }
        let mut d = [0u8; 32];
        hex::decode_to_slice(s, &mut d).map_err(|e| format!("\"{s}\": {e}"))?;
        Ok(Digest(d))
    }
}

/// The RFC 8785 canonical form of `value`, by the reference canonicaliser.
pub fn to_jcs_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, SealError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| SealError::Canonical {
        what: "value",
        reason: e.to_string(),
    })
}

/// Canonicalises a JSON text (numbers reformatted, keys sorted by UTF-16 units).
pub fn canonicalize_str(json: &str) -> Result<String, SealError> {
    serde_json_canonicalizer::pipe(json).map_err(|e| SealError::Canonical {
        what: "JSON text",
        reason: e.to_string(),
    })
}

/// Feeds everything written to it into SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `SHA-256(JCS(form))` for a signed form (see the module documentation for why
/// this may serialise with `serde_json` directly). `what` names the form in errors.
pub(crate) fn digest_form<T: Serialize>(what: &'static str, form: &T) -> Result<Digest, SealError> {
    let err = |e: serde_json::Error| SealError::Canonical {
        what,
        reason: e.to_string(),
    };
    #[cfg(debug_assertions)]
    {
        let fast = serde_json::to_vec(form).map_err(err)?;
        let reference = to_jcs_vec(form)?;
        assert_eq!(
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&reference),
            "the signed form of {what} is not in JCS order: fix the field order in signed_form.rs"
        );
    }
    let mut w = HashWriter(Sha256::new());
    serde_json::to_writer(&mut w, form).map_err(err)?;
    Ok(Digest(w.0.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn jcs(json: &str) -> String {
        canonicalize_str(json).unwrap()
    }

    /// RFC 8785 Appendix B: IEEE 754 doubles (as bit patterns) and their JCS form.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let vectors: [(u64, &str); 24] = [
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, want) in vectors {
            let got = to_jcs_vec(&f64::from_bits(bits)).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), want, "{bits:016x}");
        }
        // NaN and the infinities have no JSON form.
        for bits in [
            0x7fffffffffffffffu64,
            0x7ff0000000000000,
            0xfff0000000000000,
        ] {
            assert!(to_jcs_vec(&f64::from_bits(bits)).is_err(), "{bits:016x}");
        }
    }

    /// RFC 8785 §3.2.2: the example of the whole transformation, and its UTF-8 bytes.
    #[test]
    fn rfc8785_section_3_2_2_example() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50,
                      2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let want = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;
        assert_eq!(jcs(input), want);
        let bytes = "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72 \
            75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a \
            5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31 \
            65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37 \
            5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30 \
            30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d";
        let want_bytes: Vec<u8> = bytes
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        assert_eq!(jcs(input).into_bytes(), want_bytes);
    }

    /// RFC 8785 §3.2.3: property sorting by UTF-16 code units, not code points or
    /// UTF-8 bytes — the emoji (a surrogate pair, 0xD83D…) sorts *before* U+FB33.
    #[test]
    fn rfc8785_section_3_2_3_sorting() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
            \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
            \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(jcs(input), want);
    }

    /// The reference implementation's test suite (cyberphone/json-canonicalization,
    /// `testdata/input` → `testdata/output`).
    #[test]
    fn cyberphone_testdata() {
        let cases: [(&str, &str, &str); 5] = [
            (
                "arrays",
                r#"[56, {"d": true, "10": null, "1": [ ]}]"#,
                r#"[56,{"1":[],"10":null,"d":true}]"#,
            ),
            (
                "french",
                r#"{"peach": "This sorting order", "péché": "is wrong according to French",
                    "pêche": "but canonicalization MUST", "sin": "ignore locale"}"#,
                r#"{"peach":"This sorting order","péché":"is wrong according to French","pêche":"but canonicalization MUST","sin":"ignore locale"}"#,
            ),
            (
                "structures",
                r#"{"1": {"f": {"f": "hi","F": 5} ,"\n": 56.0}, "10": { }, "": "empty",
                    "a": { }, "111": [ {"e": "yes","E": "no" } ], "A": { }}"#,
                r#"{"":"empty","1":{"\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{"E":"no","e":"yes"}],"A":{},"a":{}}"#,
            ),
            (
                "unicode (no normalisation)",
                r#"{"Unnormalized Unicode":"A\u030a"}"#,
                "{\"Unnormalized Unicode\":\"A\u{30a}\"}",
            ),
            (
                "weird",
                r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\u000a": "Newline",
                    "1": "One", "\u0080": "Control\u007f", "\ud83d\ude02": "Smiley",
                    "\u00f6": "Latin Small Letter O With Diaeresis",
                    "\ufb33": "Hebrew Letter Dalet With Dagesh", "</script>": "Browser Challenge"}"#,
                "{\"\\n\":\"Newline\",\"\\r\":\"Carriage Return\",\"1\":\"One\",\
                 \"</script>\":\"Browser Challenge\",\"\u{80}\":\"Control\u{7f}\",\
                 \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
                 \"\u{1f602}\":\"Smiley\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(jcs(input), want, "{name}");
        }
    }

    #[test]
    fn digest_spelling_is_strict() {
        let d = Digest([0xab; 32]);
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!(d.to_string().to_uppercase().parse::<Digest>().is_err());
        assert!("ab".parse::<Digest>().is_err());
    }

    #[derive(Serialize)]
    struct Sample<'a> {
        #[serde(rename = "Z")]
        upper: Vec<&'a str>,
        a: &'a str,
        b: Option<&'a str>,
        c: bool,
    }

    proptest! {
        /// The fast digest path writes exactly the reference JCS bytes for the
        /// value shapes signed forms use, whatever the strings hold (controls,
        /// quotes, backslashes, DEL, non-BMP characters, lone `/`).
        #[test]
        fn serde_json_compact_equals_jcs_for_signed_shapes(
            a in "\\PC*|[\\x00-\\x1f\"\\\\/\\x7f]*",
            b in proptest::option::of(any::<String>()),
            list in proptest::collection::vec(any::<String>(), 0..4),
            c in any::<bool>(),
        ) {
            let s = Sample { upper: list.iter().map(String::as_str).collect(), a: &a, b: b.as_deref(), c };
            let fast = serde_json::to_vec(&s).unwrap();
            prop_assert_eq!(&fast, &to_jcs_vec(&s).unwrap());
            let d = digest_form("sample", &s).unwrap();
            prop_assert_eq!(d.0, <[u8; 32]>::from(Sha256::digest(&fast)));
        }
    }
}
