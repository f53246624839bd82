//! `sightings/*`: add (to one attribute, or to every visible attribute with a
//! value), listSightings for an event or attribute, index.
//!
//! Visibility follows MISP's default sightings policy: the event's owner
//! organisation sees every sighting of it; other organisations see only their
//! own. Sightings of invisible attributes do not exist for the caller.

use super::auth::Caller;
use super::body::RawBody;
use super::error::ApiError;
use super::events::{invalid_event, resolve};
use super::{blocking, AppState};
use crate::model::{Event, Org, Sighting};
use crate::policy::{redact_event, Viewer};
use crate::store::Store;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sightings/add", post(add))
        .route("/sightings/add/{id}", post(add_to))
        .route("/sightings/listSightings", post(list))
        .route("/sightings/index", post(index).get(index))
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The attribute named by a local id or uuid, with its event, if visible.
fn find_attribute(
    store: &Store,
    viewer: &Viewer,
    id: &str,
) -> Result<Option<(Event, Uuid)>, ApiError> {
    let (event_uuid, attr) = if let Ok(u) = id.parse::<Uuid>() {
        match store.locate(&u)? {
            Some(e) => (e, Some(u)),
            None => return Ok(None),
        }
    } else if let Ok(n) = id.parse::<u64>() {
        match store.event_uuid_by_id(n >> 24)? {
            Some(e) => (e, None),
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    let Some(ev) = store
        .get_event(&event_uuid)?
        .and_then(|e| redact_event(viewer, e))
    else {
        return Ok(None);
    };
    let found = ev
        .all_attributes()
        .find(|a| {
            !a.deleted
                && (Some(a.uuid) == attr
                    || (attr.is_none() && a.id.map(|i| i.to_string()).as_deref() == Some(id)))
        })
        .map(|a| a.uuid);
    Ok(found.map(|a| (ev, a)))
}

fn sighting_json(s: &Sighting, event_id: Option<u64>, attr_id: Option<u64>) -> Value {
    json!({
        "id": s.id.map(|i| i.to_string()),
        "uuid": s.uuid,
        "attribute_id": attr_id.map(|i| i.to_string()),
        "attribute_uuid": s.attribute_uuid,
        "event_id": event_id.map(|i| i.to_string()),
        "org_id": s.org.as_ref().and_then(|o| o.id).map(|i| i.to_string()).unwrap_or_else(|| "0".into()),
        "date_sighting": s.date_sighting.to_string(),
        "source": s.source,
        "type": s.kind.to_string(),
        "Organisation": s.org.as_ref().map(|o| json!({"id": o.id.map(|i| i.to_string()), "uuid": o.uuid, "name": o.name})),
    })
}

fn new_sighting(caller: &Caller, body: &Value, attribute: Uuid) -> Result<Sighting, ApiError> {
    let kind = match text(body.get("type")).as_deref() {
        None | Some("") => 0,
        Some(t) => t.parse::<u8>().ok().filter(|k| *k <= 2).ok_or_else(|| {
            ApiError::refused(
                "Could not add Sighting",
                "type",
                "Sighting type must be 0, 1 or 2.",
            )
        })?,
    };
    let now = crate::model::time::now_secs();
    let date = match text(body.get("timestamp").or_else(|| body.get("date_sighting"))) {
        Some(t) => t
            .split('.')
            .next()
            .unwrap_or("")
            .parse::<u64>()
            .map_err(|_| {
                ApiError::refused(
                    "Could not add Sighting",
                    "timestamp",
                    "Not a Unix timestamp.",
                )
            })?,
        None => now,
    };
    Ok(Sighting {
        id: None,
        attribute_id: None,
        event_id: None,
        date_sighting: date,
        uuid: Uuid::new_v4(),
        source: text(body.get("source")).unwrap_or_default(),
        kind,
        org: Some(Org {
            id: Some(caller.org.id),
            name: caller.org.name.clone(),
            uuid: caller.org.uuid,
            local: true,
        }),
        attribute_uuid: attribute,
    })
}

async fn add_for(
    state: AppState,
    caller: Caller,
    target: Option<String>,
    body: Value,
) -> Result<Json<Value>, ApiError> {
    caller.require(caller.role.perm_sighting)?;
    let store = state.store.clone();
    let sealer = state.sealer.clone();
    let viewer = caller.viewer();
    let saved = blocking(move || {
        // Targets: one attribute, or every visible attribute with a given value.
        let mut targets: Vec<(Event, Uuid)> = Vec::new();
        if let Some(t) = target.or_else(|| text(body.get("uuid"))).or_else(|| text(body.get("id"))) {
            if let Some(found) = find_attribute(&store, &viewer, &t)? {
                targets.push(found);
            }
        } else {
            let values: Vec<String> = match body.get("values").or_else(|| body.get("value")) {
                Some(Value::Array(a)) => a.iter().filter_map(|v| text(Some(v))).collect(),
                other => text(other).into_iter().collect(),
            };
            for v in values {
                for hit in store.lookup_value(&v, false, 10_000)? {
                    if let Some(found) = find_attribute(&store, &viewer, &hit.attribute.to_string())? {
                        targets.push(found);
                    }
                }
            }
        }
        if targets.is_empty() {
            return Err(ApiError::NotFound("Invalid attribute.".into()));
        }
        let mut last = None;
        for (ev, attr) in targets {
            let s = new_sighting(&caller, &body, attr)?;
            // A sighting is a sealed record of this node's organisation.
            let sealed = crate::seal::SealedSighting::seal(&s, ev.uuid, sealer.key(), sealer.org())
                .map_err(|e| ApiError::Internal(format!("cannot seal the sighting: {e}")))?;
            let sealed = serde_json::to_vec(&sealed).map_err(|e| ApiError::Internal(e.to_string()))?;
            // Answered as stored, with its local id (MISP re-reads the row).
            let stored = store
                .add_sighting(&ev.uuid, s.clone(), Some(sealed))?
                .unwrap_or(s);
            let attr_id = ev.all_attributes().find(|a| a.uuid == attr).and_then(|a| a.id);
            tracing::info!(user = caller.user.id, event = %ev.uuid, attribute = %attr, "sighting added");
            last = Some(sighting_json(&stored, ev.id, attr_id));
        }
        Ok(last.unwrap_or(Value::Null))
    })
    .await?;
    if let Some(u) = saved.get("uuid").and_then(Value::as_str) {
        super::audited::subject(u);
    }
    Ok(Json(json!({"Sighting": saved})))
}

pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let v = super::body::unwrap_key(body.json_value()?, "Sighting");
    add_for(state, caller, None, v).await
}

pub async fn add_to(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let v = super::body::unwrap_key(body.json_value()?, "Sighting");
    add_for(state, caller, Some(id), v).await
}

/// Sightings of a visible event the caller may see, as `[{"Sighting", "Organisation"}]`.
fn visible_sightings(
    store: &Store,
    viewer: &Viewer,
    ev: &Event,
    attr: Option<Uuid>,
    org: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let owner = viewer.site_admin || crate::policy::visibility::owner(ev) == Some(viewer.org);
    let live: std::collections::HashMap<Uuid, Option<u64>> =
        ev.all_attributes().map(|a| (a.uuid, a.id)).collect();
    let mut out = Vec::new();
    // Newest first, as MISP lists them (`Sighting::listSightings`: ORDER BY
    // date_sighting DESC); each sighting is its own row.
    for s in store.sightings_of(&ev.uuid)?.into_iter().rev() {
        let Some(attr_id) = live.get(&s.attribute_uuid) else {
            continue;
        };
        if attr.is_some_and(|a| a != s.attribute_uuid) {
            continue;
        }
        let by_viewer = s.org.as_ref().is_some_and(|o| o.uuid == viewer.org);
        if !owner && !by_viewer {
            continue;
        }
        if let Some(org) = org {
            if !s.org.as_ref().is_some_and(|o| {
                o.uuid.to_string() == org
                    || o.id.map(|i| i.to_string()).as_deref() == Some(org)
                    || o.name == org
            }) {
                continue;
            }
        }
        let j = sighting_json(&s, ev.id, *attr_id);
        let org = j["Organisation"].clone();
        out.push(json!({"Sighting": j, "Organisation": org}));
    }
    Ok(out)
}

/// `sightings/listSightings {"context": "event"|"attribute", "id": …, "org_id"?}`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let body = body.json_value()?;
    let context = text(body.get("context")).unwrap_or_else(|| "event".into());
    let id = text(body.get("id"))
        .ok_or_else(|| ApiError::BadRequest("listSightings needs an id".into()))?;
    let org = text(body.get("org_id"));
    let store = state.store.clone();
    let viewer = caller.viewer();
    let rows = blocking(move || match context.as_str() {
        "attribute" => {
            let (ev, attr) = find_attribute(&store, &viewer, &id)?
                .ok_or_else(|| ApiError::NotFound("Invalid attribute.".into()))?;
            visible_sightings(&store, &viewer, &ev, Some(attr), org.as_deref())
        }
        _ => {
            let uuid = resolve(&store, &id)?.ok_or_else(invalid_event)?;
            let ev = store
                .get_event(&uuid)?
                .and_then(|e| redact_event(&viewer, e))
                .ok_or_else(invalid_event)?;
            visible_sightings(&store, &viewer, &ev, None, org.as_deref())
        }
    })
    .await?;
    Ok(Json(Value::Array(rows)))
}

/// `sightings/index`: every sighting the caller may see.
pub async fn index(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let viewer = caller.viewer();
    let rows = blocking(move || {
        let mut out = Vec::new();
        for u in store.event_uuids() {
            let u = u?;
            if let Some(ev) = store.get_event(&u)?.and_then(|e| redact_event(&viewer, e)) {
                out.extend(visible_sightings(&store, &viewer, &ev, None, None)?);
            }
        }
        Ok(out)
    })
    .await?;
    Ok(Json(Value::Array(rows)))
}
