//! Bounded parsing of MISP JSON documents into events.
//!
//! Accepts every shape MISP and its clients produce: `{"Event": …}`, a bare event,
//! `{"response": …}`/`{"request": …}` wrappers, and lists of either (MISP's
//! restSearch answer and our own export are `{"response": [{"Event": …}, …]}`).
//! Size is checked before parsing, and serde_json's recursion limit (128) refuses
//! deeply nested documents with an error instead of a stack overflow.

use super::event::Event;
use serde_json::Value;

/// Default upper bound on one document (one file, one request body).
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 100 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    #[error("document is {size} bytes, larger than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("no MISP event found: expected {{\"Event\": …}}, a bare event or a list of events")]
    NoEvent,
    #[error("{path}: {reason}")]
    Field { path: String, reason: String },
}

/// Parses one document holding one or more events.
pub fn parse_events(bytes: &[u8], max_bytes: usize) -> Result<Vec<Event>, ParseError> {
    if bytes.len() > max_bytes {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))?;
    let mut out = Vec::new();
    collect(doc, "", &mut out)?;
    if out.is_empty() {
        return Err(ParseError::NoEvent);
    }
    Ok(out)
}

fn collect(doc: Value, path: &str, out: &mut Vec<Event>) -> Result<(), ParseError> {
    match doc {
        Value::Array(items) => {
            // Inside a list only `{"Event": …}` elements count: a list of bare
            // objects is an index (`events/index` rows), not events.
            for (i, item) in items.into_iter().enumerate() {
                if let Value::Object(mut m) = item {
                    if let Some(inner) = m.remove("Event") {
                        out.push(event_from_value(inner, &format!("{path}[{i}].Event"))?);
                    }
                }
            }
            Ok(())
        }
        Value::Object(mut map) => {
            for wrapper in ["response", "request"] {
                if map.len() == 1 && map.contains_key(wrapper) {
                    let inner = map.remove(wrapper).unwrap_or(Value::Null);
                    return collect(inner, &format!("{path}{wrapper}"), out);
                }
            }
            if let Some(inner) = map.remove("Event") {
                let p = if path.is_empty() {
                    "Event".to_owned()
                } else {
                    format!("{path}.Event")
                };
                out.push(event_from_value(inner, &p)?);
                return Ok(());
            }
            // A bare event: it must at least look like one (an edit may send
            // one field only, `{"extends_uuid": …}` say, as PyMISP does).
            const EVENT_FIELDS: [&str; 13] = [
                "info",
                "Attribute",
                "uuid",
                "Object",
                "EventReport",
                "Tag",
                "extends_uuid",
                "distribution",
                "sharing_group_id",
                "date",
                "threat_level_id",
                "analysis",
                "published",
            ];
            if EVENT_FIELDS.iter().any(|k| map.contains_key(*k)) {
                let p = if path.is_empty() { "Event" } else { path };
                out.push(event_from_value(Value::Object(map), p)?);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn event_from_value(v: Value, path: &str) -> Result<Event, ParseError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let inner = e.path().to_string();
        ParseError::Field {
            path: if inner == "." {
                path.to_owned()
            } else {
                format!("{path}.{inner}")
            },
            reason: e.into_inner().to_string(),
        }
    })
}

/// `{"Event": {…}}`, read straight from the bytes.
#[derive(serde::Deserialize)]
struct Wrapped {
    #[serde(rename = "Event")]
    event: Event,
}

/// Why the `{"Event": …}` fast path failed.
enum FastPath {
    /// The answer for any path: malformed JSON, or an invalid field inside
    /// the event.
    Direct(ParseError),
    /// Not `{"Event": …}` (a bare event, a wrapper): the general path decides.
    TryGeneral,
}
use FastPath::{Direct, TryGeneral};

fn wrapped_from_str(text: &str) -> Result<Wrapped, FastPath> {
    let mut de = serde_json::Deserializer::from_str(text);
    let w: Wrapped = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Direct(ParseError::Json(inner.to_string()))
        } else if has_duplicate_keys(text) {
            // A `Value` keeps the last of duplicate keys where a struct refuses
            // them: only the general path can say what this document holds.
            TryGeneral
        } else if path == "Event" || path.starts_with("Event.") || path.starts_with("Event[") {
            Direct(ParseError::Field {
                path,
                reason: strip_position(&inner),
            })
        } else {
            TryGeneral
        }
    })?;
    de.end()
        .map_err(|e| Direct(ParseError::Json(e.to_string())))?;
    Ok(w)
}

/// Whether any object of the document repeats a key (one pass, values
/// skipped, the keys of one object held at a time per level of nesting).
fn has_duplicate_keys(text: &str) -> bool {
    struct Dup(bool);
    impl<'de> serde::de::DeserializeSeed<'de> for &mut Dup {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> serde::de::Visitor<'de> for &mut Dup {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
            let mut keys = std::collections::HashSet::new();
            while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                if !keys.insert(k) {
                    self.0 = true;
                }
                m.next_value_seed(&mut *self)?;
            }
            Ok(())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
            while s.next_element_seed(&mut *self)?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let mut dup = Dup(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = serde::de::DeserializeSeed::deserialize(&mut dup, &mut de);
    dup.0
}

/// An error's message without serde_json's ` at line L column C` (the
/// general path, reading a `Value`, has no positions: both say the same).
fn strip_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    }
}

/// Parses exactly one event (a request body for `events/add`, say).
///
/// The common shape, `{"Event": {…}}`, is read straight from the bytes: going
/// through a `serde_json::Value` first costs several times the event's size in
/// memory, which matters for events of 50 000+ attributes. Anything else (a bare
/// event, a `response` wrapper, an error to report with its path) takes the
/// general path, which gives the same result.
pub fn parse_event(bytes: &[u8], max_bytes: usize) -> Result<Event, ParseError> {
    if bytes.len() > max_bytes {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    // Only for an object (serde also reads a struct from an array, which would
    // take `[{…}]`, index rows, as `{"Event": {…}}`), and only for UTF-8 text
    // (reading bytes, serde_json skips the strings of ignored fields unchecked,
    // where the general path refuses invalid UTF-8).
    if let Ok(text) = std::str::from_utf8(bytes) {
        if text.trim_ascii_start().starts_with('{') {
            match wrapped_from_str(text) {
                Ok(w) => return Ok(w.event),
                // Broken JSON is broken on every path; an error inside the
                // event is the same error the general path would find. Both
                // are reported from here: building a `Value` of a large body
                // only to find the same error costs several times its size.
                Err(Direct(e)) => return Err(e),
                Err(TryGeneral) => {}
            }
        }
    }
    let mut v = parse_events(bytes, max_bytes)?;
    match v.len() {
        1 => Ok(v.remove(0)),
        _ => Err(ParseError::NoEvent),
    }
}

/// The field names present in the event of a `{"Event": {…}}` or bare-event
/// document, read without building the document (values are skipped): an
/// edit keeps stored values for the fields its body leaves out.
pub fn event_keys(bytes: &[u8]) -> Result<std::collections::HashSet<String>, ParseError> {
    let doc: TopKeys =
        serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))?;
    Ok(doc.event.unwrap_or(doc.top))
}

#[derive(Default)]
struct TopKeys {
    top: std::collections::HashSet<String>,
    event: Option<std::collections::HashSet<String>>,
}

struct Keys(std::collections::HashSet<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
                let mut keys = std::collections::HashSet::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<serde::de::IgnoredAny>()?;
                    keys.insert(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> serde::Deserialize<'de> for TopKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TopKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<TopKeys, A::Error> {
                let mut out = TopKeys::default();
                while let Some(k) = m.next_key::<String>()? {
                    if k == "Event" {
                        out.event = Some(m.next_value::<Keys>()?.0);
                    } else {
                        m.next_value::<serde::de::IgnoredAny>()?;
                    }
                    out.top.insert(k);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let e = br#"{"Event":{"info":"x","uuid":"5c1b1cc1-0000-4000-8000-000000000001"}}"#;
        assert_eq!(parse_events(e, 1 << 20).unwrap().len(), 1);
        let bare = br#"{"info":"x","distribution":"3"}"#;
        assert_eq!(parse_events(bare, 1 << 20).unwrap()[0].distribution, 3);
        let list = br#"{"response":[{"Event":{"info":"a"}},{"Event":{"info":"b"}}]}"#;
        assert_eq!(parse_events(list, 1 << 20).unwrap().len(), 2);
        let index = br#"[{"id":"1","info":"row","uuid":"5c1b1cc1-0000-4000-8000-000000000001"}]"#;
        assert_eq!(parse_events(index, 1 << 20), Err(ParseError::NoEvent));
    }

    /// Found by the `misp_event` fuzz target: the `{"Event": …}` fast path read
    /// arrays too (a struct from a sequence), so `parse_event` took index rows
    /// and `[[]]` as events where `parse_events` finds none; and it let invalid
    /// UTF-8 through in fields it ignores, which `parse_events` refuses.
    #[test]
    fn parse_event_agrees_with_parse_events() {
        for doc in [
            &b"[[]]"[..],
            br#"[{"id":"1","info":"row","uuid":"5c1b1cc1-0000-4000-8000-000000000001"}]"#,
            br#" [{"info":"x"}]"#,
        ] {
            assert_eq!(parse_events(doc, 1 << 20), Err(ParseError::NoEvent));
            assert_eq!(parse_event(doc, 1 << 20), Err(ParseError::NoEvent));
        }
        let bad_utf8 = b"{\"Event\":{\"info\":\"x\",\"Galaxy\":[{\"source\":\"g\x8e\"}]}}";
        assert!(matches!(
            parse_events(bad_utf8, 1 << 20),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse_event(bad_utf8, 1 << 20),
            Err(ParseError::Json(_))
        ));
        let e = br#" {"Event":{"info":"x"}}"#;
        assert_eq!(
            parse_event(e, 1 << 20).unwrap(),
            parse_events(e, 1 << 20).unwrap().remove(0)
        );
    }

    /// The fast path reports errors itself (no `Value` of a large body), and
    /// says what the general path says.
    #[test]
    fn parse_event_errors_match_the_general_path() {
        for doc in [
            &br#"{"Event":{"info":"x","Attribute":[{"type":"ip-dst","value":"1.2.3.4","timestamp":"soon"}]}}"#[..],
            br#"{"Event":{"info":"x","Attribute":[{"type":"ip-dst","value":"1.2.3.4"}"#,
            br#"{"Event":{"info":"x"}} trailing"#,
            br#"{"Event":"not an event"}"#,
            br#"{"Event":{"info":"x","distribution":"9x"}}"#,
            // Duplicate keys: a `Value` keeps the last, a struct refuses them.
            br#"{"Event":{"info":5},"Event":{"info":"x"}}"#,
            br#"{"Event":{"info":5,"info":"x"}}"#,
            br#"{"Event":{"info":"x","Attribute":[{"type":"ip-dst","value":"1.2.3.4","timestamp":"soon","timestamp":"1"}]}}"#,
        ] {
            assert_eq!(
                parse_event(doc, 1 << 20),
                parse_events(doc, 1 << 20).map(|mut v| v.remove(0)),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn event_keys_reads_names_only() {
        let k = event_keys(br#"{"Event":{"info":"x","Tag":[{"name":"a"}],"distribution":"1"}}"#)
            .unwrap();
        assert!(k.contains("Tag") && k.contains("distribution") && k.contains("info"));
        assert!(!k.contains("Event") && !k.contains("name"));
        let bare = event_keys(br#"{"info":"x","analysis":"2"}"#).unwrap();
        assert!(bare.contains("analysis"));
        assert!(event_keys(b"[1]").is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let e = br#"{"Event":{"info":"x","Attribute":[{"type":"ip-dst","value":"1.2.3.4","timestamp":"soon"}]}}"#;
        match parse_events(e, 1 << 20) {
            Err(ParseError::Field { path, reason }) => {
                assert_eq!(path, "Event.Attribute[0].timestamp");
                assert!(reason.contains("soon"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits() {
        assert!(matches!(
            parse_events(&[b' '; 100], 10),
            Err(ParseError::TooLarge { .. })
        ));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse_events(deep.as_bytes(), 1 << 20),
            Err(ParseError::Json(m)) if m.contains("recursion limit")
        ));
        assert_eq!(parse_events(b"{\"a\":1}", 100), Err(ParseError::NoEvent));
        assert!(matches!(
            parse_events(b"{\"Event\":", 100),
            Err(ParseError::Json(_))
        ));
    }
}
