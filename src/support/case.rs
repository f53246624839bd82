//! A case as its records make it: the request, the responses in time order, the
//! status the requester last set; who of the addressed has answered; whether it
//! is overdue. Plus the rules a new record must obey against its case.

use super::record::{Body, CaseRecord, Request, Status};
use super::SupportError;
use uuid::Uuid;

/// A case assembled from its records (the request first).
#[derive(Debug, Clone)]
pub struct Case {
    pub request: CaseRecord,
    details: Request,
    /// Everything after the request, oldest first.
    pub timeline: Vec<CaseRecord>,
}

impl Case {
    /// Assembles a case; `None` without its request.
    pub fn from_records(records: Vec<CaseRecord>) -> Option<Case> {
        let mut request = None;
        let mut timeline = Vec::new();
        for r in records {
            match &r.body {
                Body::Request(d) if r.uuid == r.case => request = Some((d.clone(), r)),
                _ => timeline.push(r),
            }
        }
        timeline.sort_by_key(|r| (r.created, r.uuid));
        let (details, request) = request?;
        Some(Case {
            request,
            details,
            timeline,
        })
    }

    pub fn uuid(&self) -> Uuid {
        self.request.uuid
    }

    pub fn requester(&self) -> Uuid {
        self.request.author_org
    }

    pub fn details(&self) -> &Request {
        &self.details
    }

    /// The status the requester last set (open until then).
    pub fn status(&self) -> Status {
        self.timeline
            .iter()
            .rev()
            .find_map(|r| match &r.body {
                Body::Status { status, .. } if r.author_org == self.requester() => Some(*status),
                _ => None,
            })
            .unwrap_or(Status::Open)
    }

    /// The addressed organisations that have responded (any response).
    pub fn responded(&self) -> Vec<Uuid> {
        let mut v: Vec<Uuid> = self
            .timeline
            .iter()
            .filter(|r| r.body.is_response())
            .map(|r| r.author_org)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The addressed organisations that have not responded.
    pub fn silent(&self) -> Vec<Uuid> {
        let answered = self.responded();
        self.details()
            .addressed
            .iter()
            .filter(|o| !answered.contains(o))
            .copied()
            .collect()
    }

    /// Past its respond-by time, still active, and someone has not answered:
    /// as seen by `org` — the requester waits for anyone; an addressee is
    /// overdue if it has not answered itself.
    pub fn overdue_for(&self, org: Uuid, now: u64) -> bool {
        if !self.status().is_active() || now <= self.details().respond_by {
            return false;
        }
        if org == self.requester() {
            !self.silent().is_empty()
        } else {
            self.silent().contains(&org)
        }
    }

    /// Every event the case links to (the request's and the findings').
    pub fn linked_events(&self) -> Vec<Uuid> {
        let mut v = self.details.linked_events.clone();
        for r in &self.timeline {
            let body = match &r.body {
                Body::Shared { original } => &original.body,
                b => b,
            };
            if let Body::Finding { linked_events, .. } = body {
                v.extend(linked_events);
            }
        }
        v.sort();
        v.dedup();
        v
    }

    /// The case as the API and `sluis support` show it, seen from the node of
    /// `own` at `now`. `show` turns linked event uuids into what the viewer may
    /// see of them (leaving out what it may not); with `timeline`, every record
    /// follows in time order, with its signature.
    pub fn to_json(
        &self,
        own: Uuid,
        now: u64,
        show: &dyn Fn(&[Uuid]) -> Vec<serde_json::Value>,
        timeline: bool,
    ) -> serde_json::Value {
        use serde_json::{json, Value};
        let d = &self.details;
        let mut v = json!({
            "uuid": self.uuid(),
            "title": d.title,
            "description": d.description,
            "category": d.category,
            "severity": d.severity,
            "tlp": d.tlp,
            "capabilities": d.capabilities,
            "exercise": d.exercise,
            "label": if d.exercise { "EXERCISE" } else { "" },
            "requester": {"org_uuid": self.requester(), "name": self.request.author_name},
            "addressed": d.addressed,
            "created": self.request.created,
            "respond_by": d.respond_by,
            "status": self.status().as_str(),
            "responded": self.responded(),
            "waiting_for": self.silent(),
            "overdue": self.overdue_for(own, now),
            "mine": self.requester() == own,
            "linked_events": show(&d.linked_events),
        });
        if timeline {
            let items: Vec<Value> = self
                .timeline
                .iter()
                .map(|r| {
                    let mut body = serde_json::to_value(&r.body).unwrap_or(Value::Null);
                    match &r.body {
                        Body::Finding { linked_events, .. } => {
                            body["linked_events"] = json!(show(linked_events));
                        }
                        Body::Shared { original } => {
                            let mut inner =
                                serde_json::to_value(&original.body).unwrap_or(Value::Null);
                            if let Body::Finding { linked_events, .. } = &original.body {
                                inner["linked_events"] = json!(show(linked_events));
                            }
                            body = json!({
                                "type": "shared",
                                "original": {
                                    "uuid": original.uuid,
                                    "author": {"org_uuid": original.author_org, "name": original.author_name},
                                    "created": original.created,
                                    "record": inner,
                                    "key_id": original.key_id,
                                    "signature": original.signature,
                                },
                            });
                        }
                        _ => {}
                    }
                    json!({
                        "uuid": r.uuid,
                        "author": {"org_uuid": r.author_org, "name": r.author_name},
                        "created": r.created,
                        "record": body,
                        "key_id": r.key_id,
                        "signature": r.signature,
                    })
                })
                .collect();
            v["timeline"] = json!(items);
            v["request_seal"] =
                json!({"key_id": self.request.key_id, "signature": self.request.signature});
        }
        v
    }

    /// Whether `author` may add `body` to this case (the case rules).
    /// `offers_known`: this node holds every offer of the case (it is the
    /// requester's), so an accepted offer must be one of them; an addressee
    /// holds only its own offers and takes the requester's word for the rest.
    pub fn check_new(
        &self,
        author: Uuid,
        body: &Body,
        offers_known: bool,
    ) -> Result<(), SupportError> {
        match body {
            Body::Request(_) => Err(SupportError::Refused("a case has one request".into())),
            Body::Shared { original } => {
                if author != self.requester() {
                    return Err(SupportError::Refused(format!(
                        "only the requester ({}) may share responses of case {}",
                        self.requester(),
                        self.uuid()
                    )));
                }
                if !self.details.addressed.contains(&original.author_org) {
                    return Err(SupportError::Refused(
                        "the shared response is not by a CERT of this case".into(),
                    ));
                }
                Ok(())
            }
            Body::Status { accepted_offer, .. } => {
                if author != self.requester() {
                    return Err(SupportError::Refused(format!(
                        "only the requester ({}) may change the status of case {}",
                        self.requester(),
                        self.uuid()
                    )));
                }
                if let Some(offer) = accepted_offer.filter(|_| offers_known) {
                    if !self
                        .timeline
                        .iter()
                        .any(|r| r.uuid == offer && matches!(r.body, Body::Offer { .. }))
                    {
                        return Err(SupportError::Invalid {
                            field: "accepted_offer".into(),
                            reason: format!("{offer} is not an offer in this case"),
                        });
                    }
                }
                Ok(())
            }
            _ => {
                if !self.details().addressed.contains(&author) {
                    return Err(SupportError::Refused(format!(
                        "{author} is not one of the CERTs case {} is addressed to",
                        self.uuid()
                    )));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::NodeKey;

    #[test]
    fn status_responses_and_overdue() {
        let (ka, kb) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let now = 1_800_000_000;
        let u = Uuid::new_v4();
        let req = CaseRecord::seal(
            u,
            u,
            a,
            "CERT-A",
            now,
            vec![b, c],
            Body::Request(Request {
                title: "t".into(),
                description: String::new(),
                category: "ransomware".into(),
                severity: "high".into(),
                tlp: "amber".into(),
                capabilities: vec!["forensics".into()],
                respond_by: now + 100,
                addressed: vec![b, c],
                linked_events: vec![],
                exercise: false,
            }),
            &ka,
        )
        .unwrap();
        let ack = CaseRecord::seal(
            Uuid::new_v4(),
            u,
            b,
            "CERT-B",
            now + 10,
            vec![a],
            Body::Acknowledge {
                note: String::new(),
            },
            &kb,
        )
        .unwrap();
        let case = Case::from_records(vec![ack.clone(), req.clone()]).unwrap();
        assert_eq!(case.status(), Status::Open);
        assert_eq!(case.silent(), vec![c]);
        assert!(!case.overdue_for(a, now + 50));
        assert!(case.overdue_for(a, now + 101), "C has not answered");
        assert!(!case.overdue_for(b, now + 101), "B has");
        assert!(case.overdue_for(c, now + 101));
        let status = Body::Status {
            status: Status::Closed,
            accepted_offer: None,
            note: String::new(),
        };
        assert!(
            case.check_new(b, &status, true).is_err(),
            "only the requester"
        );
        assert!(case.check_new(a, &status, true).is_ok());
        assert!(case
            .check_new(Uuid::new_v4(), &Body::Decline { reason: "x".into() }, true)
            .is_err());
        let closed = CaseRecord::seal(
            Uuid::new_v4(),
            u,
            a,
            "CERT-A",
            now + 20,
            vec![b, c],
            status,
            &ka,
        )
        .unwrap();
        let case = Case::from_records(vec![req, ack, closed]).unwrap();
        assert_eq!(case.status(), Status::Closed);
        assert!(
            !case.overdue_for(a, now + 1000),
            "a closed case is never overdue"
        );
    }
}
