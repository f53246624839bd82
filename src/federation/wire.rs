//! The federation protocol on the wire: what `GET /fed/v1/changes` streams and
//! what `POST /fed/v1/report` carries back.
//!
//! A changes page is **newline-delimited JSON** (`application/x-ndjson`), one
//! line per record, ended by one `end` line:
//!
//! ```text
//! {"seq":41,"kind":"event","record":{"Event":{…,"Seal":{…}}}}
//! {"seq":42,"kind":"sighting","record":{…sealed sighting…}}
//! {"end":{"last_seq":57,"more":false,"head":57}}
//! ```
//!
//! Why lines rather than one JSON document: the sender writes each record as it
//! reads it from its store and the receiver verifies and stores each record as it
//! arrives, so neither side holds a page (which may carry events of 50 000+
//! attributes) in memory, and a page cut short still leaves every complete record
//! before the cut usable. Records come in sequence order, so after applying the
//! record with sequence `s` a receiver may move its cursor to `s` even without the
//! `end` line: every change up to `s` was either sent before it or withheld from
//! this peer.
//!
//! Parsing is bounded: a line longer than the receiver's limit is refused before
//! it is parsed ([`parse_line`] is the federation page decoder the fuzzer drives).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The media type of a changes page.
pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// The largest line, in bytes, above the record itself: `seq`, `kind` and the
/// JSON punctuation around the record.
pub const LINE_OVERHEAD: usize = 256;

/// What a record line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// `{"Event":{…}}`, sealed by its origin, filtered for the receiving peer.
    Event,
    /// A sealed [`crate::seal::Tombstone`] (event deletion, tag removal).
    Tombstone,
    /// A sealed [`crate::seal::SealedSighting`].
    Sighting,
    /// An incident-support [`crate::support::CaseRecord`], for the audience only.
    Case,
    /// A kind this node does not know (a newer peer): rejected as a record, so the
    /// rest of the page still applies.
    #[serde(other)]
    Unknown,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Event => "event",
            RecordKind::Tombstone => "tombstone",
            RecordKind::Sighting => "sighting",
            RecordKind::Case => "case",
            RecordKind::Unknown => "unknown",
        }
    }
}

/// The last line of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageEnd {
    /// The cursor after this page: every change up to it was sent or withheld.
    pub last_seq: u64,
    /// More changes follow (ask again at once).
    pub more: bool,
    /// The sender's newest durable change: `head - cursor` is how far behind the
    /// receiver is, in changes.
    pub head: u64,
}

/// One decoded line.
#[derive(Debug)]
pub enum Line<'a> {
    Record {
        seq: u64,
        kind: RecordKind,
        /// The record's JSON, unparsed: each kind has its own bounded parser.
        record: &'a RawValue,
    },
    End(PageEnd),
}

/// Why a line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("line of {len} bytes exceeds the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("malformed line: {0}")]
    Malformed(String),
    #[error("a line must be a record (seq, kind, record) or an end marker")]
    Shape,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine<'a> {
    seq: Option<u64>,
    kind: Option<RecordKind>,
    #[serde(borrow)]
    record: Option<&'a RawValue>,
    end: Option<PageEnd>,
}

/// Decodes one line (without its newline) of at most `max` bytes.
pub fn parse_line(line: &[u8], max: usize) -> Result<Line<'_>, WireError> {
    if line.len() > max {
        return Err(WireError::TooLong {
            len: line.len(),
            max,
        });
    }
    let raw: RawLine<'_> =
        serde_json::from_slice(line).map_err(|e| WireError::Malformed(e.to_string()))?;
    match raw {
        RawLine {
            seq: Some(seq),
            kind: Some(kind),
            record: Some(record),
            end: None,
        } => Ok(Line::Record { seq, kind, record }),
        RawLine {
            seq: None,
            kind: None,
            record: None,
            end: Some(end),
        } => Ok(Line::End(end)),
        _ => Err(WireError::Shape),
    }
}

/// Writes a record line (with its newline) for `record`'s JSON.
pub fn record_line(seq: u64, kind: RecordKind, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len() + 64);
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"record\":");
    out.extend_from_slice(record);
    out.extend_from_slice(b"}\n");
    out
}

/// Writes the end line (with its newline).
pub fn end_line(end: PageEnd) -> Vec<u8> {
    let mut v = serde_json::json!({ "end": end }).to_string().into_bytes();
    v.push(b'\n');
    v
}

/// `POST /fed/v1/report`: what the receiver made of the records of a page, so the
/// sender's operators see what their partners refuse, and why (docs/design.md §4: a
/// rejected record is "reported back to the sender").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The receiver's cursor before the page.
    pub after: u64,
    /// The receiver's cursor after the page (persisted).
    pub cursor: u64,
    /// Records stored or already held.
    pub accepted: u64,
    /// Records refused, at most [`Report::MAX_REJECTIONS`] of them listed.
    #[serde(default)]
    pub rejected: Vec<Rejection>,
    /// Records refused in all (may exceed the list).
    #[serde(default)]
    pub rejected_total: u64,
}

impl Report {
    /// Rejections listed in one report; the rest are only counted.
    pub const MAX_REJECTIONS: usize = 100;
    /// The longest reason kept.
    pub const MAX_REASON: usize = 500;
}

/// One refused record: the store keeps the last ones a peer reported
/// ([`crate::store::record::PeerState`]), so the type is the store's.
pub use crate::store::record::Rejection;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let l = record_line(7, RecordKind::Event, br#"{"Event":{"uuid":"x"}}"#);
        assert_eq!(l.last(), Some(&b'\n'));
        match parse_line(&l[..l.len() - 1], 1 << 20).unwrap() {
            Line::Record { seq, kind, record } => {
                assert_eq!((seq, kind), (7, RecordKind::Event));
                assert_eq!(record.get(), r#"{"Event":{"uuid":"x"}}"#);
            }
            other => panic!("{other:?}"),
        }
        let end = PageEnd {
            last_seq: 9,
            more: true,
            head: 12,
        };
        let l = end_line(end);
        match parse_line(&l[..l.len() - 1], 1 << 20).unwrap() {
            Line::End(e) => assert_eq!(e, end),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        assert!(matches!(
            parse_line(&[b' '; 100], 10),
            Err(WireError::TooLong { len: 100, max: 10 })
        ));
        assert!(matches!(
            parse_line(b"{\"seq\":1", 100),
            Err(WireError::Malformed(_))
        ));
        // Half a record, a record with an end, an unknown field.
        for l in [
            &br#"{"seq":1,"kind":"event"}"#[..],
            br#"{"seq":1,"kind":"event","record":{},"end":{"last_seq":1,"more":false,"head":1}}"#,
            br#"{"seq":1,"kind":"event","record":{},"extra":1}"#,
        ] {
            assert!(
                parse_line(l, 1000).is_err(),
                "{}",
                String::from_utf8_lossy(l)
            );
        }
        // A kind from a newer protocol decodes, as Unknown.
        match parse_line(br#"{"seq":3,"kind":"casefile","record":{}}"#, 1000).unwrap() {
            Line::Record { kind, .. } => assert_eq!(kind, RecordKind::Unknown),
            other => panic!("{other:?}"),
        }
    }
}
