//! The incident-support API ([`crate::support`]), for the CERT's own analysts:
//!
//! | route | what |
//! |---|---|
//! | `POST /support/requests` | ask partner CERTs for help |
//! | `GET /support/requests[?status=&addressed_to_me=1&mine=1&overdue=1&exercise=0\|1]` | list cases |
//! | `GET /support/requests/{uuid}` | one case as a timeline |
//! | `POST /support/requests/{uuid}/respond` | acknowledge, offer, report a finding, decline |
//! | `POST /support/requests/{uuid}/status` | the requester moves the case on |
//! | `POST /support/requests/{uuid}/share` | the requester passes a response on to other CERTs of the case |
//!
//! Cases are between CERTs, i.e. between nodes: the callers are users of this
//! node's own organisation (and site admins); users of other organisations
//! hosted here get 403. Writes need a writing role. Linked events are shown
//! only as far as the caller may see them (an invisible one is left out, not
//! marked, so its existence does not leak).

use super::auth::Caller;
use super::body::RawBody;
use super::error::ApiError;
use super::{blocking, AppState};
use crate::support::record::Body;
use crate::support::CaseStore;
use crate::support::{Case, CaseRecord, Request, Status, SupportError};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/support/requests", post(create).get(list))
        .route("/support/requests/{uuid}", get(view))
        .route("/support/requests/{uuid}/respond", post(respond))
        .route("/support/requests/{uuid}/status", post(status))
        .route("/support/requests/{uuid}/share", post(share))
}

impl From<SupportError> for ApiError {
    fn from(e: SupportError) -> Self {
        match e {
            SupportError::Invalid { field, reason } => {
                ApiError::refused("Could not save the support record", &field, reason)
            }
            SupportError::Refused(m) => {
                ApiError::refused("Could not save the support record", "case", m)
            }
            SupportError::Seal(e) => ApiError::Internal(format!("cannot seal: {e}")),
            SupportError::Store(e) => e.into(),
        }
    }
}

/// Only the CERT's own people (and site admins) handle its cases.
fn require_own(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if caller.org.uuid == state.node.org || caller.role.perm_site_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &RawBody) -> Result<T, ApiError> {
    serde_json::from_slice(&body.0).map_err(|e| ApiError::BadRequest(format!("{e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRequest {
    title: String,
    #[serde(default)]
    description: String,
    category: String,
    severity: String,
    tlp: String,
    capabilities: Vec<String>,
    /// Epoch seconds; or `respond_within_hours`.
    #[serde(default)]
    respond_by: Option<u64>,
    #[serde(default)]
    respond_within_hours: Option<u64>,
    /// Configured peer names or organisation uuids.
    addressed: Vec<String>,
    #[serde(default)]
    linked_events: Vec<Uuid>,
    #[serde(default)]
    exercise: bool,
}

/// The organisation's name as this node knows it (what its records carry).
fn own_name(state: &AppState) -> Result<String, ApiError> {
    Ok(state
        .store
        .org(&state.node.org)?
        .map(|o| o.name)
        .unwrap_or_else(|| state.node.name.clone()))
}

async fn store_record(state: &AppState, rec: CaseRecord) -> Result<(), ApiError> {
    let store = state.store.clone();
    blocking(move || Ok(store.put_case_record(&rec).map(|_| ())?)).await
}

/// Seals `body` as this node's next record of `case` for `audience`, stores it,
/// and answers with the case as it now stands (respond, status, share).
async fn append(
    state: &AppState,
    caller: &Caller,
    case: &Case,
    audience: Vec<Uuid>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    case.check_new(state.node.org, &body, true)?;
    let rec = CaseRecord::seal(
        Uuid::new_v4(),
        case.uuid(),
        state.node.org,
        &own_name(state)?,
        next_time(case),
        audience,
        body,
        state.sealer.key(),
    )?;
    store_record(state, rec).await?;
    let case = load_case(state, case.uuid()).await?;
    Ok(Json(case_json(state, caller, &case, true).await?))
}

/// The organisation of the configured peer named `name` (or with that org
/// uuid): cases go only to peered CERTs.
fn peer_org(state: &AppState, name: &str) -> Option<Uuid> {
    state
        .peers
        .iter()
        .find(|p| p.name == name || p.org_uuid.to_string() == name)
        .map(|p| p.org_uuid)
}

async fn load_case(state: &AppState, uuid: Uuid) -> Result<Case, ApiError> {
    let store = state.store.clone();
    let records = blocking(move || Ok(store.case_records(&uuid)?)).await?;
    Case::from_records(records).ok_or_else(|| ApiError::NotFound("Invalid support request".into()))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    require_own(&state, &caller)?;
    caller.require_write()?;
    let n: NewRequest = parse(&body)?;
    let now = crate::model::time::now_secs();
    let respond_by = match (n.respond_by, n.respond_within_hours) {
        (Some(t), None) => t,
        (None, Some(h)) => now.saturating_add(h.saturating_mul(3600)),
        (None, None) => now + 24 * 3600,
        (Some(_), Some(_)) => {
            return Err(ApiError::refused(
                "Could not save the support record",
                "respond_by",
                "give respond_by or respond_within_hours, not both",
            ))
        }
    };
    // A case travels only to directly peered CERTs: each addressee must be one.
    let mut addressed = Vec::new();
    for a in &n.addressed {
        let org = peer_org(&state, a).ok_or_else(|| {
            ApiError::refused(
                "Could not save the support record",
                "addressed",
                format!("{a} is not a configured peer (a case goes only to peered CERTs)"),
            )
        })?;
        if !addressed.contains(&org) {
            addressed.push(org);
        }
    }
    // Linked events must be ones the caller can see.
    let store = state.store.clone();
    let viewer = caller.viewer();
    let linked = n.linked_events.clone();
    blocking(move || {
        for u in &linked {
            let visible = store
                .get_event(u)?
                .is_some_and(|e| crate::policy::event_visible(&viewer, &e));
            if !visible {
                return Err(ApiError::refused(
                    "Could not save the support record",
                    "linked_events",
                    format!("event {u} is unknown"),
                ));
            }
        }
        Ok(())
    })
    .await?;
    let uuid = Uuid::new_v4();
    let rec = CaseRecord::seal(
        uuid,
        uuid,
        state.node.org,
        &own_name(&state)?,
        now,
        addressed.clone(),
        Body::Request(Request {
            title: n.title,
            description: n.description,
            category: n.category,
            severity: n.severity,
            tlp: n.tlp,
            capabilities: n.capabilities,
            respond_by,
            addressed,
            linked_events: n.linked_events,
            exercise: n.exercise,
        }),
        state.sealer.key(),
    )?;
    store_record(&state, rec).await?;
    tracing::info!(user = caller.user.id, case = %uuid, "support request created");
    let case = load_case(&state, uuid).await?;
    Ok(Json(case_json(&state, &caller, &case, true).await?))
}

async fn respond(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<Uuid>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    require_own(&state, &caller)?;
    caller.require_write()?;
    let b: Body = parse(&body)?;
    if !b.is_response() {
        return Err(ApiError::BadRequest(
            "type must be acknowledge, offer, finding or decline".into(),
        ));
    }
    let case = load_case(&state, uuid).await?;
    let requester = case.requester();
    append(&state, &caller, &case, vec![requester], b).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: Status,
    #[serde(default)]
    accepted_offer: Option<Uuid>,
    #[serde(default)]
    note: String,
}

async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<Uuid>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    require_own(&state, &caller)?;
    caller.require_write()?;
    let s: StatusChange = parse(&body)?;
    let case = load_case(&state, uuid).await?;
    let b = Body::Status {
        status: s.status,
        accepted_offer: s.accepted_offer,
        note: s.note,
    };
    if case.requester() != state.node.org {
        return Err(ApiError::Forbidden);
    }
    let addressed = case.details().addressed.clone();
    append(&state, &caller, &case, addressed, b).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Share {
    /// The response to pass on.
    record: Uuid,
    /// Peer names or org uuids; by default every CERT of the case but the
    /// response's author.
    #[serde(default)]
    with: Vec<String>,
}

async fn share(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<Uuid>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    require_own(&state, &caller)?;
    caller.require_write()?;
    let s: Share = parse(&body)?;
    let case = load_case(&state, uuid).await?;
    if case.requester() != state.node.org {
        return Err(ApiError::Forbidden);
    }
    let original = case
        .timeline
        .iter()
        .find(|r| r.uuid == s.record && r.body.is_response())
        .cloned()
        .ok_or_else(|| ApiError::NotFound("Invalid response".into()))?;
    let addressed = &case.details().addressed;
    let audience: Vec<Uuid> = if s.with.is_empty() {
        addressed
            .iter()
            .filter(|o| **o != original.author_org)
            .copied()
            .collect()
    } else {
        let mut v = Vec::new();
        for w in &s.with {
            let org = peer_org(&state, w)
                .filter(|o| addressed.contains(o))
                .ok_or_else(|| {
                    ApiError::refused(
                        "Could not save the support record",
                        "with",
                        format!("{w} is not a CERT of this case"),
                    )
                })?;
            v.push(org);
        }
        v
    };
    let b = Body::Shared {
        original: Box::new(original),
    };
    append(&state, &caller, &case, audience, b).await
}

/// Now, or just after the case's last record: the timeline is ordered by the
/// signed time, and two records of one second must not swap.
fn next_time(case: &Case) -> u64 {
    let last = case
        .timeline
        .last()
        .map_or(case.request.created, |r| r.created);
    crate::model::time::now_secs().max(last)
}

async fn view(
    State(state): State<AppState>,
    caller: Caller,
    Path(uuid): Path<Uuid>,
) -> Result<Json<Value>, ApiError> {
    require_own(&state, &caller)?;
    let case = load_case(&state, uuid).await?;
    Ok(Json(case_json(&state, &caller, &case, true).await?))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    require_own(&state, &caller)?;
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "1" || v == "true");
    let store = state.store.clone();
    let cases = blocking(move || {
        let mut out = Vec::new();
        for u in store.case_uuids()? {
            if let Some(c) = Case::from_records(store.case_records(&u)?) {
                out.push(c);
            }
        }
        Ok(out)
    })
    .await?;
    let now = crate::model::time::now_secs();
    let own = state.node.org;
    let mut rows = Vec::new();
    for c in cases.iter().rev() {
        if let Some(s) = q.get("status") {
            if c.status().as_str() != s {
                continue;
            }
        }
        if flag("addressed_to_me") && !c.details().addressed.contains(&own) {
            continue;
        }
        if flag("mine") && c.requester() != own {
            continue;
        }
        if flag("overdue") && !c.overdue_for(own, now) {
            continue;
        }
        if let Some(x) = q.get("exercise") {
            if (x == "1" || x == "true") != c.details().exercise {
                continue;
            }
        }
        rows.push(case_json(&state, &caller, c, false).await?);
    }
    Ok(Json(json!(rows)))
}

/// A case as the API shows it; with `timeline`, every record in time order.
async fn case_json(
    state: &AppState,
    caller: &Caller,
    case: &Case,
    timeline: bool,
) -> Result<Value, ApiError> {
    let now = crate::model::time::now_secs();
    let own = state.node.org;
    let linked = case.linked_events();
    let store = state.store.clone();
    let viewer = caller.viewer();
    let visible: HashMap<Uuid, Value> = blocking(move || {
        let mut m = HashMap::new();
        for u in linked {
            if let Some(e) = store.get_event(&u)? {
                if crate::policy::event_visible(&viewer, &e) {
                    m.insert(u, json!({"uuid": u, "info": e.info, "date": e.date}));
                }
            }
        }
        Ok(m)
    })
    .await?;
    let show = |ids: &[Uuid]| -> Vec<Value> {
        ids.iter().filter_map(|u| visible.get(u).cloned()).collect()
    };
    let v = case.to_json(own, now, &show, timeline);
    Ok(v)
}
