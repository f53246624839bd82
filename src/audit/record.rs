//! What one audit line says, and the exact bytes the chain and the checkpoint
//! signatures are computed over.
//!
//! A line is one JSON object followed by `\n`. Its hash — SHA-256 over the line's
//! bytes without the newline — is the `prev` of the next line, so the chain is over
//! the bytes as written, never over a re-serialisation: a verifier needs no
//! canonical form, and a field this version does not know still counts.

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// The hash of one line, or the genesis value the first line chains from.
pub type LineHash = [u8; 32];

/// What happened. `Write`, `KeyChange`, `UserChange` and `PeerChange` carry an
/// action (`events.add`, `users.edit`, …), written as the line's `action` field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A request whose credentials were missing, unknown, expired, or not valid
    /// on that interface.
    AuthFailure,
    /// An authenticated caller refused by role or ownership (HTTP 403).
    Denied,
    /// A change to the node's records: events, attributes, objects, tags,
    /// sightings, sharing groups.
    Write {
        action: String,
    },
    /// A record received from a peer and stored.
    SyncAccepted,
    /// A record received from a peer and refused (bad seal, not newer, policy…).
    SyncRejected,
    /// API keys, signing keys, trust entries.
    KeyChange {
        action: String,
    },
    /// Users and organisations.
    UserChange {
        action: String,
    },
    /// Peer configuration and peer state an operator changes.
    PeerChange {
        action: String,
    },
    /// A signed checkpoint; written by the log itself, never by a caller.
    Checkpoint,
    NodeStart,
    NodeStop,
    /// A new log file started on purpose (`sluis audit rotate`), continuing
    /// the previous one: its first record after the opening checkpoint.
    Rotated,
    /// The last record of a log closed by `sluis audit rotate` (a signed
    /// checkpoint follows it); a later log continues the chain.
    LogClosed,
}

impl Kind {
    /// The `kind` field.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::AuthFailure => "auth_failure",
            Kind::Denied => "denied",
            Kind::Write { .. } => "write",
            Kind::SyncAccepted => "sync_accepted",
            Kind::SyncRejected => "sync_rejected",
            Kind::KeyChange { .. } => "key_change",
            Kind::UserChange { .. } => "user_change",
            Kind::PeerChange { .. } => "peer_change",
            Kind::Checkpoint => "checkpoint",
            Kind::NodeStart => "node_start",
            Kind::NodeStop => "node_stop",
            Kind::Rotated => "log_rotated",
            Kind::LogClosed => "log_closed",
        }
    }

    /// The `action` field, for the kinds that have one.
    pub fn action(&self) -> Option<&str> {
        match self {
            Kind::Write { action }
            | Kind::KeyChange { action }
            | Kind::UserChange { action }
            | Kind::PeerChange { action } => Some(action),
            _ => None,
        }
    }

    /// How durable a record of this kind is before `record` returns (see the
    /// module documentation of [`super`]): records of something the node then
    /// acknowledges or acts on are fsynced; records of refusals are written to
    /// the operating system and fsynced with the next sync, because nothing is
    /// acknowledged on their strength, and fsyncing each failed login would let
    /// anyone make the node fsync at will.
    pub fn default_durability(&self) -> super::Durability {
        match self {
            Kind::AuthFailure | Kind::Denied | Kind::SyncRejected | Kind::NodeStart => {
                super::Durability::Written
            }
            _ => super::Durability::Synced,
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// Refused on the merits (bad credentials, validation, not newer, bad seal).
    Refused,
    /// Refused by authorisation.
    Denied,
    /// Attempted and failed on the node's side (storage error, …).
    Failed,
}

/// One thing to record: what callers build and hand to
/// [`AuditLog::record`](super::AuditLog::record). The log adds `seq`, `time` and
/// `prev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Who: a user's e-mail, a peer's name, or `node`.
    pub actor: String,
    /// What: the uuid (or name) of the element concerned.
    pub subject: Option<String>,
    /// The event the subject belongs to, when the subject is part of one.
    pub event: Option<Uuid>,
    pub outcome: Outcome,
    /// Why, for anything but a plain success.
    pub reason: Option<String>,
    /// The client's address, for requests.
    pub remote: Option<String>,
    /// `METHOD /path` of the request, for requests.
    pub request: Option<String>,
}

impl Entry {
    /// A record with just a kind, an actor and an outcome; add the rest with the
    /// builder methods.
    pub fn new(kind: Kind, actor: impl Into<String>, outcome: Outcome) -> Entry {
        Entry {
            kind,
            actor: actor.into(),
            subject: None,
            event: None,
            outcome,
            reason: None,
            remote: None,
            request: None,
        }
    }

    /// Failed authentication; `actor` is whoever the credential claimed to be, or
    /// `unknown`.
    pub fn auth_failure(actor: impl Into<String>, reason: impl Into<String>) -> Entry {
        Entry::new(Kind::AuthFailure, actor, Outcome::Refused).reason(reason)
    }

    /// An authenticated caller refused by authorisation.
    pub fn denied(actor: impl Into<String>, reason: impl Into<String>) -> Entry {
        Entry::new(Kind::Denied, actor, Outcome::Denied).reason(reason)
    }

    /// A successful change of records.
    pub fn write(actor: impl Into<String>, action: impl Into<String>) -> Entry {
        Entry::new(
            Kind::Write {
                action: action.into(),
            },
            actor,
            Outcome::Ok,
        )
    }

    /// A record from `peer` stored.
    pub fn sync_accepted(peer: impl Into<String>, subject: impl Into<String>) -> Entry {
        Entry::new(Kind::SyncAccepted, peer, Outcome::Ok).subject(subject)
    }

    /// A record from `peer` refused, and why.
    pub fn sync_rejected(
        peer: impl Into<String>,
        subject: impl Into<String>,
        reason: impl Into<String>,
    ) -> Entry {
        Entry::new(Kind::SyncRejected, peer, Outcome::Refused)
            .subject(subject)
            .reason(reason)
    }

    pub fn key_change(actor: impl Into<String>, action: impl Into<String>) -> Entry {
        Entry::new(
            Kind::KeyChange {
                action: action.into(),
            },
            actor,
            Outcome::Ok,
        )
    }

    pub fn user_change(actor: impl Into<String>, action: impl Into<String>) -> Entry {
        Entry::new(
            Kind::UserChange {
                action: action.into(),
            },
            actor,
            Outcome::Ok,
        )
    }

    pub fn peer_change(actor: impl Into<String>, action: impl Into<String>) -> Entry {
        Entry::new(
            Kind::PeerChange {
                action: action.into(),
            },
            actor,
            Outcome::Ok,
        )
    }

    pub fn subject(mut self, s: impl Into<String>) -> Entry {
        self.subject = Some(s.into());
        self
    }

    pub fn event(mut self, e: Uuid) -> Entry {
        self.event = Some(e);
        self
    }

    pub fn outcome(mut self, o: Outcome) -> Entry {
        self.outcome = o;
        self
    }

    pub fn reason(mut self, r: impl Into<String>) -> Entry {
        self.reason = Some(r.into());
        self
    }

    pub fn remote(mut self, r: impl Into<String>) -> Entry {
        self.remote = Some(r.into());
        self
    }

    pub fn request(mut self, r: impl Into<String>) -> Entry {
        self.request = Some(r.into());
        self
    }
}

/// Longest `reason` kept, in bytes; longer ones are cut (at a character
/// boundary) and marked, so one huge validation message cannot bloat the log.
pub const MAX_REASON: usize = 1024;
/// Longest `actor`, `subject`, `remote` or `request` kept, in bytes.
pub const MAX_FIELD: usize = 512;

fn capped(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…(cut, {} bytes)", &s[..end], s.len()).into()
}

/// The serialised line, field order as written. Strings are escaped by
/// serde_json, so no field can smuggle a newline and forge a line.
#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    time: &'a str,
    prev: String,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<std::borrow::Cow<'a, str>>,
    actor: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<Uuid>,
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'a str>,
}

/// The bytes of the line for `entry` (without the newline).
pub(crate) fn entry_line(entry: &Entry, seq: u64, time: &str, prev: &LineHash) -> Vec<u8> {
    let line = Line {
        seq,
        time,
        prev: hex::encode(prev),
        kind: entry.kind.name(),
        action: entry.kind.action().map(|a| capped(a, MAX_FIELD)),
        actor: capped(&entry.actor, MAX_FIELD),
        subject: entry.subject.as_deref().map(|s| capped(s, MAX_FIELD)),
        event: entry.event,
        outcome: entry.outcome,
        reason: entry.reason.as_deref().map(|s| capped(s, MAX_REASON)),
        remote: entry.remote.as_deref().map(|s| capped(s, MAX_FIELD)),
        request: entry.request.as_deref().map(|s| capped(s, MAX_FIELD)),
        key_id: None,
        signature: None,
    };
    to_bytes(&line)
}

/// The bytes of a checkpoint line. One function writes and (in the verifier)
/// rebuilds it, so any change to a checkpoint line — not only to the signed
/// fields — shows as a difference.
pub(crate) fn checkpoint_line(
    seq: u64,
    time: &str,
    prev: &LineHash,
    key_id: &str,
    signature_b64: &str,
) -> Vec<u8> {
    let line = Line {
        seq,
        time,
        prev: hex::encode(prev),
        kind: Kind::Checkpoint.name(),
        action: None,
        actor: "node".into(),
        subject: None,
        event: None,
        outcome: Outcome::Ok,
        reason: None,
        remote: None,
        request: None,
        key_id: Some(key_id),
        signature: Some(signature_b64),
    };
    to_bytes(&line)
}

fn to_bytes(line: &Line<'_>) -> Vec<u8> {
    // Serialising a struct of strings, integers and a uuid into a Vec cannot
    // fail; should a future field make it fail, the line still says so rather
    // than vanishing, and the chain stays intact.
    serde_json::to_vec(line).unwrap_or_else(|e| {
        format!(
            "{{\"seq\":{},\"prev\":\"{}\",\"kind\":\"unserialisable\",\"reason\":\"{}\"}}",
            line.seq,
            line.prev,
            e.to_string().replace(['"', '\\'], "'")
        )
        .into_bytes()
    })
}

/// SHA-256 of a line's bytes (without the newline).
pub fn line_hash(line: &[u8]) -> LineHash {
    Sha256::digest(line).into()
}

const GENESIS_DOMAIN: &[u8] = b"sluis audit genesis\0";
const CHECKPOINT_DOMAIN: &[u8] = b"sluis audit checkpoint\0";
/// The format of the log: the byte after each domain string.
pub const AUDIT_FORMAT: u8 = 1;

/// What the first line of a log chains from: bound to the node's organisation
/// and public key, so a log cannot be passed off as another node's, and a log
/// rewritten from scratch needs that node's genesis — which the checkpoint
/// signatures then pin to its key.
pub fn genesis(org: Uuid, public_key: &ed25519_dalek::VerifyingKey) -> LineHash {
    let mut h = Sha256::new();
    h.update(GENESIS_DOMAIN);
    h.update([AUDIT_FORMAT]);
    h.update(org.as_bytes());
    h.update(public_key.as_bytes());
    h.finalize().into()
}

/// The message a checkpoint signs: domain, format, the node's org, the
/// checkpoint's seq, the hash of the line before it (which chains every earlier
/// line), and its time (length-prefixed).
pub fn checkpoint_message(org: Uuid, seq: u64, prev: &LineHash, time: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + 1 + 16 + 8 + 32 + 2 + time.len());
    m.extend_from_slice(CHECKPOINT_DOMAIN);
    m.push(AUDIT_FORMAT);
    m.extend_from_slice(org.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(prev);
    // A time string longer than u16::MAX is not one this node writes; the
    // length is saturated, and the verifier rejects such a line as malformed.
    let len = u16::try_from(time.len()).unwrap_or(u16::MAX);
    m.extend_from_slice(&len.to_be_bytes());
    m.extend_from_slice(time.as_bytes());
    m
}

/// The current time as written in `time`: RFC 3339, UTC, milliseconds.
pub fn now_rfc3339() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_escape_newlines_and_keep_field_order() {
        let e = Entry::write("a@b.example", "events.add")
            .subject("x\n{\"seq\":99}")
            .reason("r");
        let line = entry_line(&e, 7, "2024-01-01T00:00:00.000Z", &[0u8; 32]);
        let text = String::from_utf8(line).unwrap();
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.starts_with(&format!(
                "{{\"seq\":7,\"time\":\"2024-01-01T00:00:00.000Z\",\"prev\":\"{}\",\"kind\":\"write\",\"action\":\"events.add\",\"actor\":\"a@b.example\"",
                "0".repeat(64)
            )),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["subject"], "x\n{\"seq\":99}");
        assert_eq!(v["outcome"], "ok");
        assert!(v.get("key_id").is_none());
    }

    #[test]
    fn long_fields_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_REASON); // 2 bytes each
        let e = Entry::denied("u", long.clone());
        let line = entry_line(&e, 1, "t", &[0u8; 32]);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let reason = v["reason"].as_str().unwrap();
        assert!(reason.len() < MAX_REASON + 40, "{}", reason.len());
        assert!(reason.ends_with(&format!("…(cut, {} bytes)", long.len())));
    }

    #[test]
    fn genesis_binds_org_and_key() {
        let k1 = crate::seal::NodeKey::generate().unwrap().verifying_key();
        let k2 = crate::seal::NodeKey::generate().unwrap().verifying_key();
        let o1 = Uuid::new_v4();
        let o2 = Uuid::new_v4();
        assert_eq!(genesis(o1, &k1), genesis(o1, &k1));
        assert_ne!(genesis(o1, &k1), genesis(o2, &k1));
        assert_ne!(genesis(o1, &k1), genesis(o1, &k2));
    }

    #[test]
    fn checkpoint_message_covers_every_input() {
        let o = Uuid::new_v4();
        let base = checkpoint_message(o, 5, &[1u8; 32], "t1");
        assert_ne!(
            base,
            checkpoint_message(Uuid::new_v4(), 5, &[1u8; 32], "t1")
        );
        assert_ne!(base, checkpoint_message(o, 6, &[1u8; 32], "t1"));
        assert_ne!(base, checkpoint_message(o, 5, &[2u8; 32], "t1"));
        assert_ne!(base, checkpoint_message(o, 5, &[1u8; 32], "t2"));
    }

    #[test]
    fn time_is_rfc3339_utc_with_milliseconds() {
        let t = now_rfc3339();
        assert!(t.ends_with('Z'), "{t}");
        assert_eq!(t.len(), "2024-01-01T00:00:00.000Z".len(), "{t}");
        t.parse::<jiff::Timestamp>().unwrap();
    }
}
