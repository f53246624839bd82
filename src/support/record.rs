//! The sealed records of an incident-support case: a request, the responses of
//! the CERTs it addresses, and the requester's status changes. Each is signed
//! by its author's node ([`crate::seal::sign_case`], its own domain string), so
//! every node that holds one can tell who said what, when.

use super::SupportError;
use crate::seal::{sign_case, verify_case, KeyId, NodeKey, TrustList, VerifiedRecord};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The record format version.
pub const CASE_VERSION: u8 = 1;
/// `kind` of a case record's signed form.
pub const KIND_CASE: &str = "sluis-v1/case";

/// Severity of the incident a request is about.
pub const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
/// TLP levels a request may carry (FIRST TLP 2.0, plus MISP's `white`).
pub const TLPS: [&str; 6] = ["clear", "white", "green", "amber", "amber+strict", "red"];
/// Kinds of help a CERT may ask for or offer.
pub const CAPABILITIES: [&str; 9] = [
    "malware-analysis",
    "forensics",
    "takedown",
    "sinkholing",
    "provider-contact",
    "staff-on-site",
    "coordination",
    "threat-intelligence",
    "other",
];

/// A case's status, set only by the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    InProgress,
    Resolved,
    Closed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Whether the case still expects answers.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Open | Status::InProgress)
    }
}

/// A support request: what happened, what help is asked for, from whom, by when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Incident category, e.g. `ransomware`, `ddos`, `phishing`.
    pub category: String,
    pub severity: String,
    pub tlp: String,
    pub capabilities: Vec<String>,
    /// Epoch seconds by which the requester hopes for an answer.
    pub respond_by: u64,
    /// The organisations (CERTs) asked: the only nodes the case travels to.
    pub addressed: Vec<Uuid>,
    #[serde(default)]
    pub linked_events: Vec<Uuid>,
    /// Part of a coordinated exercise, not a real incident.
    #[serde(default)]
    pub exercise: bool,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    Request(Request),
    /// "We have it and are looking."
    Acknowledge {
        #[serde(default)]
        note: String,
    },
    /// Help offered.
    Offer {
        capability: String,
        contact: String,
        availability: String,
    },
    /// Something found.
    Finding {
        text: String,
        #[serde(default)]
        linked_events: Vec<Uuid>,
    },
    /// "We cannot help", and why.
    Decline {
        reason: String,
    },
    /// The requester passes a response on to other CERTs of the case: the
    /// original, sealed by its own author, inside.
    Shared {
        original: Box<CaseRecord>,
    },
    /// The requester moves the case on (and may accept an offer).
    Status {
        status: Status,
        #[serde(default)]
        accepted_offer: Option<Uuid>,
        #[serde(default)]
        note: String,
    },
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Request(_) => "request",
            Body::Acknowledge { .. } => "acknowledge",
            Body::Offer { .. } => "offer",
            Body::Finding { .. } => "finding",
            Body::Decline { .. } => "decline",
            Body::Shared { .. } => "shared",
            Body::Status { .. } => "status",
        }
    }

    /// A response by an addressed CERT (not the request, a status change, or a
    /// response shared on by the requester).
    pub fn is_response(&self) -> bool {
        !matches!(
            self,
            Body::Request(_) | Body::Status { .. } | Body::Shared { .. }
        )
    }
}

/// One sealed case record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRecord {
    pub version: u8,
    pub uuid: Uuid,
    /// The request's uuid (the request's own for the request).
    pub case: Uuid,
    /// The organisation whose node made and signed the record.
    pub author_org: Uuid,
    /// Its name, as the author gave it (signed, for display).
    pub author_name: String,
    /// Epoch seconds: the signed time.
    pub created: u64,
    /// The organisations the record is for: the only nodes it travels to.
    pub audience: Vec<Uuid>,
    pub body: Body,
    pub key_id: KeyId,
    /// Base64 ed25519 signature.
    pub signature: String,
}

/// What is signed: every field but the key id and signature, with the kind.
#[derive(Serialize)]
struct Form<'a> {
    kind: &'static str,
    version: u8,
    uuid: Uuid,
    case: Uuid,
    author_org: Uuid,
    author_name: &'a str,
    created: u64,
    audience: &'a [Uuid],
    body: &'a Body,
}

impl CaseRecord {
    fn form(&self) -> Form<'_> {
        Form {
            kind: KIND_CASE,
            version: self.version,
            uuid: self.uuid,
            case: self.case,
            author_org: self.author_org,
            author_name: &self.author_name,
            created: self.created,
            audience: &self.audience,
            body: &self.body,
        }
    }

    /// Makes and signs a record by `author_org` (this node) after checking its
    /// shape.
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        uuid: Uuid,
        case: Uuid,
        author_org: Uuid,
        author_name: &str,
        created: u64,
        audience: Vec<Uuid>,
        body: Body,
        key: &NodeKey,
    ) -> Result<CaseRecord, SupportError> {
        let mut r = CaseRecord {
            version: CASE_VERSION,
            uuid,
            case,
            author_org,
            author_name: author_name.to_owned(),
            created,
            audience,
            body,
            key_id: key.key_id(),
            signature: String::new(),
        };
        r.check_shape()?;
        let (key_id, signature) = sign_case(&r.form(), key, author_org)?;
        r.key_id = key_id;
        r.signature = signature;
        Ok(r)
    }

    /// Checks the signature against `trust` (a key trusted for `author_org` at
    /// `created`) and the record's shape.
    pub fn verify(&self, trust: &TrustList, now: u64) -> Result<VerifiedRecord, SupportError> {
        self.check_shape()?;
        // A shared response must still be its author's own words.
        if let Body::Shared { original } = &self.body {
            original.verify(trust, now)?;
        }
        Ok(verify_case(
            &self.form(),
            format!("case record {}", self.uuid),
            self.version,
            &self.author_org,
            &self.key_id,
            &self.signature,
            self.created,
            trust,
            now,
        )?)
    }

    /// The rules every record obeys on its own (those that need the case are in
    /// [`super::case`]).
    pub fn check_shape(&self) -> Result<(), SupportError> {
        let bad = |field: &str, why: &str| {
            Err(SupportError::Invalid {
                field: field.to_owned(),
                reason: why.to_owned(),
            })
        };
        let text = |field: &str, v: &str, max: usize, required: bool| {
            if required && v.trim().is_empty() {
                return bad(field, "must not be empty");
            }
            if v.len() > max {
                return bad(field, &format!("longer than {max} bytes"));
            }
            Ok(())
        };
        if self.version != CASE_VERSION {
            return bad("version", "unsupported");
        }
        if self.uuid.is_nil() || self.case.is_nil() || self.author_org.is_nil() {
            return bad("uuid", "record, case and author must be non-nil uuids");
        }
        if self.created == 0 {
            return bad("created", "must be set");
        }
        if self.audience.is_empty() || self.audience.len() > 64 {
            return bad("audience", "between 1 and 64 organisations");
        }
        if self.audience.contains(&self.author_org) {
            return bad("audience", "a record is not addressed to its own author");
        }
        text("author_name", &self.author_name, 200, true)?;
        match &self.body {
            Body::Request(r) => {
                if self.uuid != self.case {
                    return bad("case", "a request is its own case");
                }
                text("title", &r.title, 200, true)?;
                text("description", &r.description, 20_000, false)?;
                text("category", &r.category, 100, true)?;
                if !SEVERITIES.contains(&r.severity.as_str()) {
                    return bad("severity", &format!("one of {}", SEVERITIES.join(", ")));
                }
                if !TLPS.contains(&r.tlp.as_str()) {
                    return bad("tlp", &format!("one of {}", TLPS.join(", ")));
                }
                if r.capabilities.is_empty() {
                    return bad("capabilities", "ask for at least one");
                }
                if let Some(c) = r
                    .capabilities
                    .iter()
                    .find(|c| !CAPABILITIES.contains(&c.as_str()))
                {
                    return bad(
                        "capabilities",
                        &format!("unknown {c:?}; one of {}", CAPABILITIES.join(", ")),
                    );
                }
                if r.respond_by <= self.created {
                    return bad("respond_by", "must be after the request is made");
                }
                let mut addressed = r.addressed.clone();
                addressed.sort();
                let mut audience = self.audience.clone();
                audience.sort();
                if addressed != audience {
                    return bad(
                        "addressed",
                        "the request's audience is exactly the CERTs addressed",
                    );
                }
                if r.linked_events.len() > 1000 {
                    return bad("linked_events", "at most 1000");
                }
            }
            Body::Acknowledge { note } => text("note", note, 5_000, false)?,
            Body::Offer {
                capability,
                contact,
                availability,
            } => {
                if !CAPABILITIES.contains(&capability.as_str()) {
                    return bad("capability", &format!("one of {}", CAPABILITIES.join(", ")));
                }
                text("contact", contact, 1_000, true)?;
                text("availability", availability, 1_000, true)?;
            }
            Body::Finding {
                text: t,
                linked_events,
            } => {
                text("text", t, 20_000, true)?;
                if linked_events.len() > 1000 {
                    return bad("linked_events", "at most 1000");
                }
            }
            Body::Decline { reason } => text("reason", reason, 5_000, true)?,
            Body::Shared { original } => {
                if original.case != self.case || !original.body.is_response() {
                    return bad("original", "a response of this case");
                }
                original.check_shape()?;
            }
            Body::Status { note, .. } => text("note", note, 5_000, false)?,
        }
        if self.uuid == self.case && !matches!(self.body, Body::Request(_)) {
            return bad("case", "only a request is its own case");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn request(key: &NodeKey, org: Uuid, to: Vec<Uuid>, now: u64) -> CaseRecord {
        let u = Uuid::new_v4();
        CaseRecord::seal(
            u,
            u,
            org,
            "CERT-A",
            now,
            to.clone(),
            Body::Request(Request {
                title: "Ransomware at a port operator".into(),
                description: "Encrypted terminal systems in two countries".into(),
                category: "ransomware".into(),
                severity: "high".into(),
                tlp: "amber".into(),
                capabilities: vec!["malware-analysis".into(), "forensics".into()],
                respond_by: now + 3600,
                addressed: to,
                linked_events: vec![],
                exercise: false,
            }),
            key,
        )
        .unwrap()
    }

    #[test]
    fn sealed_records_verify_and_any_change_breaks_them() {
        let key = NodeKey::generate().unwrap();
        let org = Uuid::new_v4();
        let mut trust = TrustList::new();
        trust.add(org, &key.public_key_b64(), None, None).unwrap();
        let now = crate::model::time::now_secs();
        let r = request(&key, org, vec![Uuid::new_v4()], now);
        r.verify(&trust, now).unwrap();
        let mut changed = r.clone();
        if let Body::Request(q) = &mut changed.body {
            q.severity = "critical".into();
        }
        assert!(changed.verify(&trust, now).is_err());
        let mut widened = r.clone();
        widened.audience.push(Uuid::new_v4());
        assert!(widened.verify(&trust, now).is_err());
        // Claiming another author with this key fails: the key is not theirs.
        let mut other = r.clone();
        other.author_org = Uuid::new_v4();
        assert!(other.verify(&trust, now).is_err());
    }

    #[test]
    fn shapes_are_checked_before_signing() {
        let key = NodeKey::generate().unwrap();
        let org = Uuid::new_v4();
        let u = Uuid::new_v4();
        let to = Uuid::new_v4();
        let mk = |body: Body, audience: Vec<Uuid>| {
            CaseRecord::seal(Uuid::new_v4(), u, org, "CERT-A", 100, audience, body, &key)
        };
        assert!(mk(Body::Decline { reason: " ".into() }, vec![to]).is_err());
        assert!(mk(
            Body::Decline {
                reason: "busy".into()
            },
            vec![]
        )
        .is_err());
        assert!(mk(
            Body::Decline {
                reason: "busy".into()
            },
            vec![org]
        )
        .is_err());
        assert!(mk(
            Body::Offer {
                capability: "hacking-back".into(),
                contact: "x".into(),
                availability: "y".into()
            },
            vec![to]
        )
        .is_err());
        assert!(mk(
            Body::Decline {
                reason: "busy".into()
            },
            vec![to]
        )
        .is_ok());
    }
}
