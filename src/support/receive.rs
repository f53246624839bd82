//! Accepting a case record from a peer: it must verify under its author's key,
//! be addressed to this node's organisation, come from its author's own node
//! (records are never relayed), and obey the case rules; then it is stored once.

use super::case::Case;
use super::notify::Notice;
use super::record::{Body, CaseRecord};
use super::CaseStore;
use super::SupportError;
use crate::seal::TrustList;
use crate::store::Store;
use uuid::Uuid;

/// Verifies and stores `rec`, sent by the peer of organisation `from`, at this
/// node of organisation `own`. Returns what the operator should hear about, if
/// the record is new here.
pub fn receive(
    store: &Store,
    trust: &TrustList,
    own: Uuid,
    from: Uuid,
    rec: &CaseRecord,
    now: u64,
) -> Result<Option<Notice>, SupportError> {
    rec.verify(trust, now)?;
    if !rec.audience.contains(&own) {
        return Err(SupportError::Refused(format!(
            "case record {} is not addressed to this node's organisation",
            rec.uuid
        )));
    }
    if rec.author_org != from {
        return Err(SupportError::Refused(format!(
            "case record {} is by {}, sent by the peer of {}: records come only from their \
             author's node",
            rec.uuid, rec.author_org, from
        )));
    }
    if let Some(held) = store.case_record(&rec.uuid)? {
        if held == *rec {
            return Ok(None);
        }
        return Err(SupportError::Refused(format!(
            "case record {} is held with other content",
            rec.uuid
        )));
    }
    let notice = match &rec.body {
        Body::Request(r) => Notice::RequestReceived {
            case: rec.case,
            from: rec.author_org,
            from_name: rec.author_name.clone(),
            title: r.title.clone(),
            severity: r.severity.clone(),
            respond_by: r.respond_by,
            exercise: r.exercise,
        },
        body => {
            let case = Case::from_records(store.case_records(&rec.case)?).ok_or_else(|| {
                SupportError::Refused(format!("case {} is not known here", rec.case))
            })?;
            case.check_new(rec.author_org, body, own == case.requester())?;
            if body.is_response() {
                if rec.audience != [case.requester()] {
                    return Err(SupportError::Refused(
                        "a response is addressed to the requester only".into(),
                    ));
                }
                Notice::ResponseReceived {
                    case: rec.case,
                    from: rec.author_org,
                    from_name: rec.author_name.clone(),
                    kind: body.kind().to_owned(),
                    exercise: case.details().exercise,
                }
            } else {
                if rec
                    .audience
                    .iter()
                    .any(|o| !case.details().addressed.contains(o))
                {
                    return Err(SupportError::Refused(
                        "the requester's records go only to the CERTs addressed".into(),
                    ));
                }
                match body {
                    Body::Shared { original } => Notice::ResponseReceived {
                        case: rec.case,
                        from: original.author_org,
                        from_name: original.author_name.clone(),
                        kind: format!("shared {}", original.body.kind()),
                        exercise: case.details().exercise,
                    },
                    _ => Notice::StatusChanged {
                        case: rec.case,
                        status: match body {
                            Body::Status { status, .. } => status.as_str().to_owned(),
                            _ => String::new(),
                        },
                        exercise: case.details().exercise,
                    },
                }
            }
        }
    };
    Ok(store.put_case_record(rec)?.then_some(notice))
}
