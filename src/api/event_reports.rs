//! Event reports at MISP's paths (`EventReportsController`):
//! `event_reports/add/<event>`, `view/<id|uuid>`, `edit/<id|uuid>`,
//! `delete/<id|uuid>[/<hard>]`, `index[/event_id:<id>][/context:…]`
//! (`eventReports/…` is mapped here by `http::body::normalise_path`).
//!
//! A report is an element of its event like an attribute: stored with it,
//! sealed with its own digest, synced with it, visible under the same policy
//! (`policy::redact_event` filters reports by distribution and sharing
//! group), and written through the same strictly-newer merge (`modify_event`).
//! Rights as for attributes: adding, editing and deleting need the right to
//! modify the event.

use super::auth::Caller;
use super::body::{as_u64, field, set_strings, unwrap_key, NamedParams, RawBody};
use super::elements::{hard_flag, modify_event, not_allowed, save_fail, Edit, ElementId};
use super::error::{save_success, ApiError};
use super::events::{invalid_event, resolve};
use super::{blocking, AppState};
use crate::model::edit::newer;
use crate::model::{Event, EventReport};
use crate::policy::{may_modify, redact_event, Viewer};
use crate::store::{Durability, Store};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/event_reports/add/{event}", post(add))
        .route("/event_reports/view/{id}", get(view))
        .route("/event_reports/edit/{id}", post(edit).put(edit))
        .route("/event_reports/delete/{id}", post(delete).delete(delete))
        .route("/event_reports/delete/{id}/{hard}", post(delete_hard_path))
        .route("/event_reports/index", get(index).post(index))
}

const ADD: &str = "Could not add EventReport";
const EDIT: &str = "Could not edit EventReport";

fn invalid_report() -> ApiError {
    ApiError::NotFound("Invalid report".into())
}

/// The event holding report `id` and the report's uuid, as stored (not yet
/// redacted).
fn load(store: &Store, id: &str) -> Result<(Event, Uuid), ApiError> {
    let id = ElementId::parse(id).ok_or_else(invalid_report)?;
    let event = match id {
        ElementId::Uuid(u) => store.locate(&u)?,
        ElementId::Local(n) => store.event_uuid_by_id(n >> 24)?,
    };
    let ev = match event {
        Some(e) => store.get_event(&e)?.ok_or_else(invalid_report)?,
        None => return Err(invalid_report()),
    };
    let uuid = ev
        .reports
        .iter()
        .find(|r| match id {
            ElementId::Uuid(u) => r.uuid == u,
            ElementId::Local(n) => r.id == Some(n),
        })
        .map(|r| r.uuid)
        .ok_or_else(invalid_report)?;
    Ok((ev, uuid))
}

/// The report as `viewer` may see it, in MISP's single-report shape:
/// `{"EventReport", "SharingGroup", "Event"}`; `None` if invisible.
fn report_view(viewer: &Viewer, ev: Event, uuid: Uuid, deleted_ok: bool) -> Option<Value> {
    let ev = redact_event(viewer, ev)?;
    let r = ev.reports.iter().find(|r| r.uuid == uuid)?;
    if r.deleted && !deleted_ok {
        return None;
    }
    Some(report_json(&ev, r))
}

fn report_json(ev: &Event, r: &EventReport) -> Value {
    let mut row = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut row {
        m.remove("SharingGroup");
        m.insert("event_id".into(), json!(ev.id.map(|i| i.to_string())));
    }
    let sg = match &r.sharing_group {
        Some(sg) => json!({"id": sg.id.map(|i| i.to_string()), "name": sg.name, "uuid": sg.uuid}),
        None => json!({"id": null, "name": null, "uuid": null}),
    };
    let org = |o: &Option<crate::model::Org>| {
        o.as_ref()
            .map(|o| json!({"id": o.id.map(|i| i.to_string()), "name": o.name, "uuid": o.uuid}))
    };
    json!({
        "EventReport": row,
        "SharingGroup": sg,
        "Event": {
            "id": ev.id.map(|i| i.to_string()),
            "orgc_id": ev.orgc_id.map(|i| i.to_string()),
            "org_id": ev.org_id.map(|i| i.to_string()),
            "info": ev.info,
            "date": ev.date,
            "Orgc": org(&ev.orgc),
            "Org": org(&ev.org),
        },
    })
}

/// `name`, `content`, `distribution` and `sharing_group_id` from a body.
fn apply(r: &mut EventReport, v: &Value, action: &str) -> Result<(), ApiError> {
    let bad = |f: &str, why: &str| {
        let mut m = Map::new();
        m.insert(f.into(), json!([why]));
        save_fail(action, m)
    };
    set_strings(
        v,
        &mut [("name", &mut r.name), ("content", &mut r.content)],
        |f| bad(f, "Not a string."),
    )?;
    if let Some(x) = field(v, "distribution") {
        r.distribution = as_u64(x)
            .and_then(|d| u8::try_from(d).ok())
            .filter(|d| *d <= 5)
            .ok_or_else(|| bad("distribution", "Options: 0, 1, 2, 3, 4, 5"))?;
    }
    if let Some(x) = field(v, "sharing_group_id") {
        r.sharing_group_id = as_u64(x).ok_or_else(|| bad("sharing_group_id", "Not an id."))?;
    }
    if r.name.trim().is_empty() {
        return Err(bad("name", "This field is required."));
    }
    Ok(())
}

/// The sharing group a report names must be one the caller may use (as for
/// every element: `policy::sharing`).
fn check_group(
    store: &Store,
    caller: &Caller,
    r: &EventReport,
    action: &str,
) -> Result<(), ApiError> {
    super::attributes::check_sharing_group(
        store,
        caller,
        r.distribution,
        r.sharing_group_id,
        r.sharing_group.as_ref(),
    )
    .map_err(|e| save_fail(action, e))
}

/// `POST event_reports/add/<event id|uuid>`: `{"EventReport": {…}}` or the bare
/// report (`name` required; a client uuid is kept; distribution defaults to
/// 5, inherit). Unpublishes the event, as MISP does.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(event): Path<String>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require_write()?;
    let v = unwrap_key(body.json_value()?, "EventReport");
    let mut r = EventReport {
        id: None,
        uuid: Uuid::new_v4(),
        event_id: None,
        name: String::new(),
        content: String::new(),
        distribution: 5,
        sharing_group_id: 0,
        timestamp: 0,
        deleted: false,
        sharing_group: None,
    };
    if let Some(u) = field(&v, "uuid").and_then(Value::as_str) {
        r.uuid = u.parse().map_err(|_| {
            let mut m = Map::new();
            m.insert("uuid".into(), json!(["Not a valid UUID."]));
            save_fail(ADD, m)
        })?;
    }
    apply(&mut r, &v, ADD)?;
    let store = state.store.clone();
    let c2 = caller.clone();
    let uuid = r.uuid;
    let view = blocking(move || {
        let viewer = c2.viewer();
        let ev_uuid = resolve(&store, &event)?.ok_or_else(invalid_event)?;
        if store.locate(&uuid)?.is_some() {
            let mut m = Map::new();
            m.insert(
                "uuid".into(),
                json!([format!("{uuid} is already used by another element.")]),
            );
            return Err(save_fail(ADD, m));
        }
        check_group(&store, &c2, &r, ADD)?;
        let (stored, ()) = modify_event(&store, &ev_uuid, true, |ev, ts| {
            if !crate::policy::event_visible(&viewer, ev) {
                return Err(invalid_event());
            }
            if !may_modify(&viewer, &c2.role, ev) {
                return Err(ApiError::Forbidden);
            }
            let mut r = r.clone();
            r.timestamp = ts;
            ev.reports.push(r);
            Ok(Edit::Write(()))
        })?;
        report_view(&viewer, stored, uuid, false).ok_or_else(invalid_report)
    })
    .await?;
    super::audited::subject(uuid);
    tracing::info!(user = caller.user.id, report = %uuid, "event report added");
    Ok(Json(view))
}

/// `GET event_reports/view/<id|uuid>`.
pub async fn view(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let viewer = caller.viewer();
    let view = blocking(move || {
        let (ev, uuid) = load(&store, &id)?;
        report_view(&viewer, ev, uuid, true).ok_or_else(invalid_report)
    })
    .await?;
    Ok(Json(view))
}

/// The report `id` loaded for a change by `caller`: visible, and the event
/// theirs to modify.
fn load_for_change(store: &Store, caller: &Caller, id: &str) -> Result<(Event, Uuid), ApiError> {
    let viewer = caller.viewer();
    let (ev, uuid) = load(store, id)?;
    let visible =
        redact_event(&viewer, ev.clone()).is_some_and(|e| e.reports.iter().any(|r| r.uuid == uuid));
    if !visible {
        return Err(invalid_report());
    }
    if !may_modify(&viewer, &caller.role, &ev) {
        return Err(ApiError::Forbidden);
    }
    Ok((ev, uuid))
}

/// `POST event_reports/edit/<id|uuid>`: `name`, `content`, `distribution`,
/// `sharing_group_id`; the timestamp becomes the edit's (MISP resets it to
/// now). Unpublishes the event.
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require_write()?;
    let v = unwrap_key(body.json_value()?, "EventReport");
    let store = state.store.clone();
    let c2 = caller.clone();
    let (view, uuid) = blocking(move || {
        let (ev, uuid) = load_for_change(&store, &c2, &id)?;
        let (stored, ()) = modify_event(&store, &ev.uuid, true, |ev, ts| {
            let Some(r) = ev.reports.iter_mut().find(|r| r.uuid == uuid) else {
                return Err(invalid_report());
            };
            let mut edited = r.clone();
            apply(&mut edited, &v, EDIT)?;
            edited.sharing_group = None;
            check_group(&store, &c2, &edited, EDIT)?;
            edited.timestamp = newer(ts, r.timestamp);
            *r = edited;
            Ok(Edit::Write(()))
        })?;
        let view = report_view(&c2.viewer(), stored, uuid, true).ok_or_else(invalid_report)?;
        Ok((view, uuid))
    })
    .await?;
    super::audited::subject(uuid);
    tracing::info!(user = caller.user.id, report = %uuid, "event report edited");
    Ok(Json(view))
}

async fn delete_impl(
    state: AppState,
    caller: Caller,
    id: String,
    hard: bool,
) -> Result<Json<Value>, ApiError> {
    caller.require_write()?;
    let store = state.store.clone();
    let c2 = caller.clone();
    let given = id.clone();
    let uuid = blocking(move || {
        let (ev, uuid) = load_for_change(&store, &c2, &id)?;
        if hard {
            if !store.hard_delete_children(&ev.uuid, &[], &[], &[uuid], Durability::Flush)? {
                return Err(invalid_report());
            }
            return Ok(uuid);
        }
        modify_event(&store, &ev.uuid, true, |ev, ts| {
            let Some(r) = ev.reports.iter_mut().find(|r| r.uuid == uuid) else {
                return Err(invalid_report());
            };
            if r.deleted {
                return Ok(Edit::Nothing(()));
            }
            r.deleted = true;
            r.timestamp = newer(ts, r.timestamp);
            Ok(Edit::Write(()))
        })?;
        Ok(uuid)
    })
    .await?;
    super::audited::subject(uuid);
    tracing::info!(user = caller.user.id, report = %uuid, hard, "event report deleted");
    // MISP names the report as the caller gave it (PyMISP passes the uuid).
    let msg = format!(
        "Event Report {given} {} deleted",
        if hard { "hard" } else { "soft" }
    );
    let mut v = save_success(&msg, None);
    v["id"] = json!(given);
    Ok(Json(v))
}

/// `POST event_reports/delete/<id|uuid>`, body `{}` (soft) or `{"hard": 1}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Extension(named): Extension<NamedParams>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let hard = hard_flag(&body, &named, None)?;
    delete_impl(state, caller, id, hard).await
}

/// `POST event_reports/delete/<id>/<hard>`: MISP's positional form.
pub async fn delete_hard_path(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, hard)): Path<(String, String)>,
    Extension(named): Extension<NamedParams>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let hard = hard_flag(&body, &named, Some(&hard))?;
    delete_impl(state, caller, id, hard).await
}

/// `event_reports/index[/event_id:<id>][/context:default|deleted|all]`: the
/// reports the caller can see, in the single-report shape. Without
/// `event_id` every visible event is walked (MISP's query walks its table).
pub async fn index(
    State(state): State<AppState>,
    caller: Caller,
    Extension(named): Extension<NamedParams>,
) -> Result<Json<Value>, ApiError> {
    let context = named.get("context").unwrap_or("default").to_owned();
    if !matches!(context.as_str(), "default" | "deleted" | "all") {
        return Err(not_allowed("Invalid context."));
    }
    let event = named.get("event_id").map(str::to_owned);
    let store = state.store.clone();
    let viewer = caller.viewer();
    let rows = blocking(move || {
        let events: Vec<Uuid> = match &event {
            Some(e) => resolve(&store, e)?.into_iter().collect(),
            None => store.event_uuids().collect::<Result<Vec<_>, _>>()?,
        };
        let mut rows = Vec::new();
        for u in events {
            let Some(ev) = store.get_event(&u)?.and_then(|e| redact_event(&viewer, e)) else {
                continue;
            };
            for r in &ev.reports {
                let keep = match context.as_str() {
                    "deleted" => r.deleted,
                    "all" => true,
                    _ => !r.deleted,
                };
                if keep {
                    rows.push(report_json(&ev, r));
                }
            }
        }
        Ok(rows)
    })
    .await?;
    Ok(Json(Value::Array(rows)))
}
