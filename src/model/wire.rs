//! Serde helpers for MISP's wire conventions.
//!
//! MISP sends nearly every scalar as a JSON string (`"distribution": "3"`,
//! `"timestamp": "1418217625"`) but is lenient on input, and PyMISP sometimes sends
//! integers. So every numeric field is *read* from a string, a number or `null`, and
//! *written* as a decimal string, exactly as MISP writes it. Booleans are read from
//! `true`/`false`, `0`/`1` and `"0"`/`"1"`, and written as booleans.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};
use std::fmt;

/// Reads an unsigned integer from a JSON number, a decimal string, `""` or `null`
/// (the last two mean 0, as MISP treats them).
pub fn de_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(U64Visitor)
}

/// Like [`de_u64`] for small enumerations (`distribution`, `analysis`, …).
pub fn de_u8<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let v = d.deserialize_any(U64Visitor)?;
    u8::try_from(v).map_err(|_| de::Error::custom(format!("{v} is out of range")))
}

/// Reads a map of uuid to level, each level as [`de_u8`] reads it (PyMISP
/// echoes a seal back with its integers as strings).
pub fn de_level_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<uuid::Uuid, u8>, D::Error> {
    #[derive(Deserialize)]
    struct Level(#[serde(deserialize_with = "de_u8")] u8);
    let m: std::collections::BTreeMap<uuid::Uuid, Level> = Deserialize::deserialize(d)?;
    Ok(m.into_iter().map(|(k, Level(v))| (k, v)).collect())
}

/// Reads an optional integer: `null` and `""` are `None`.
pub fn de_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(OptU64Visitor)
}

struct U64Visitor;

impl Visitor<'_> for U64Visitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer or a decimal string")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v.fract() == 0.0 && (0.0..1.8e19).contains(&v) {
            Ok(v as u64)
        } else {
            Err(E::custom(format!("{v} is not a non-negative integer")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        let t = v.trim();
        if t.is_empty() {
            return Ok(0);
        }
        t.parse::<u64>()
            .map_err(|_| E::custom(format!("\"{v}\" is not a non-negative integer")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }
}

struct OptU64Visitor;

impl Visitor<'_> for OptU64Visitor {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer, a decimal string or null")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        U64Visitor.visit_i64(v).map(Some)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        U64Visitor.visit_f64(v).map(Some)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v.trim().is_empty() {
            Ok(None)
        } else {
            U64Visitor.visit_str(v).map(Some)
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Reads a boolean from `true`/`false`, `0`/`1`, `"0"`/`"1"`/`"true"`/`"false"` or
/// `null` (false). MISP's PHP side produces all of these.
pub fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(BoolVisitor)
}

struct BoolVisitor;

impl Visitor<'_> for BoolVisitor {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean, 0/1 or \"0\"/\"1\"")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::custom(format!("{v} is not a boolean"))),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("{v} is not a boolean")))
            .and_then(|v| self.visit_u64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match v.trim() {
            "1" | "true" | "True" => Ok(true),
            "0" | "false" | "False" | "" => Ok(false),
            other => Err(E::custom(format!("\"{other}\" is not a boolean"))),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Reads an optional boolean; `null` stays `None` (MISP's `protected` is tri-state).
pub fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a boolean or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            de_bool(d).map(Some)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            BoolVisitor.visit_u64(v).map(Some)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            BoolVisitor.visit_i64(v).map(Some)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            BoolVisitor.visit_str(v).map(Some)
        }
    }
    d.deserialize_any(V)
}

/// Reads a string, accepting numbers (rendered in decimal) and `null` (empty string):
/// free-text fields such as `comment` or `template_version` arrive in both forms.
pub fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(if v { "1".into() } else { "0".into() })
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }
    d.deserialize_any(V)
}

/// Like [`de_string`] but keeps `null` apart from `""` (`object_relation` is `null`
/// outside objects).
pub fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            de_string(d).map(Some)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
    }
    d.deserialize_any(V)
}

/// Reads a list that MISP sometimes sends as `null` or `{}` (PHP's empty array) instead
/// of `[]`. Elements are read in place, so errors keep their path (`Attribute[3]`).
pub fn de_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            // Cap the pre-allocation: the size hint comes from the input.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(x) = seq.next_element()? {
                out.push(x);
            }
            Ok(out)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Vec<T>, A::Error> {
            match map.next_key::<de::IgnoredAny>()? {
                None => Ok(Vec::new()),
                Some(_) => Err(de::Error::custom("expected a list, got an object")),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// Writes an integer as MISP does: a decimal string.
pub fn ser_u64_str<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = itoa_buf(*v);
    s.serialize_str(buf.as_str_mut())
}

/// Writes a small enumeration as a decimal string.
pub fn ser_u8_str<S: Serializer>(v: &u8, s: S) -> Result<S::Ok, S::Error> {
    ser_u64_str(&u64::from(*v), s)
}

/// Writes an optional integer as a decimal string, or `null`.
pub fn ser_opt_u64_str<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => ser_u64_str(v, s),
        None => s.serialize_none(),
    }
}

/// Small stack buffer for integer formatting without allocation.
struct ItoaBuf {
    bytes: [u8; 20],
    start: usize,
}

impl ItoaBuf {
    fn as_str_mut(&mut self) -> &str {
        // Only ASCII digits were written into `bytes[start..]`, so this never fails;
        // the empty fallback is unreachable.
        std::str::from_utf8(&self.bytes[self.start..]).unwrap_or("")
    }
}

fn itoa_buf(mut v: u64) -> ItoaBuf {
    let mut bytes = [0u8; 20];
    let mut i = 20;
    loop {
        i -= 1;
        bytes[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    ItoaBuf { bytes, start: i }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Deserialize, Serialize, Debug)]
    struct T {
        #[serde(deserialize_with = "de_u64", serialize_with = "ser_u64_str", default)]
        n: u64,
        #[serde(deserialize_with = "de_bool", default)]
        b: bool,
        #[serde(deserialize_with = "de_vec", default)]
        l: Vec<u32>,
    }

    #[test]
    fn lenient_numbers_and_bools() {
        for (src, n, b) in [
            (r#"{"n":"12","b":true}"#, 12, true),
            (r#"{"n":12,"b":1}"#, 12, true),
            (r#"{"n":null,"b":"0"}"#, 0, false),
            (r#"{"n":"","b":null}"#, 0, false),
            (r#"{}"#, 0, false),
        ] {
            let t: T = serde_json::from_str(src).unwrap();
            assert_eq!((t.n, t.b), (n, b), "{src}");
        }
        assert!(serde_json::from_str::<T>(r#"{"n":"x"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"n":-1}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"b":"maybe"}"#).is_err());
    }

    #[test]
    fn php_empty_arrays() {
        let t: T = serde_json::from_str(r#"{"l":{}}"#).unwrap();
        assert!(t.l.is_empty());
        let t: T = serde_json::from_str(r#"{"l":null}"#).unwrap();
        assert!(t.l.is_empty());
        let t: T = serde_json::from_str(r#"{"l":[1,2]}"#).unwrap();
        assert_eq!(t.l, vec![1, 2]);
        assert!(serde_json::from_str::<T>(r#"{"l":"x"}"#).is_err());
    }

    #[test]
    fn numbers_written_as_strings() {
        let t = T {
            n: 0,
            b: false,
            l: vec![],
        };
        assert!(serde_json::to_string(&t).unwrap().contains(r#""n":"0""#));
        let t = T {
            n: u64::MAX,
            b: false,
            l: vec![],
        };
        assert!(serde_json::to_string(&t)
            .unwrap()
            .contains(r#""n":"18446744073709551615""#));
    }
}
