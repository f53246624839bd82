//! `events/*`: add, view (GET/POST/HEAD), edit, delete, publish, unpublish, index.

use super::auth::Caller;
use super::body::{NamedParams, RawBody};
use super::elements::check_sharing_groups;
pub(crate) use super::elements::invalid_event;
use super::error::{save_success, ApiError};
use super::{blocking, AppState};
use crate::model::event::Wrapped;
use crate::model::parse::parse_event;
use crate::model::{Event, Org};
use crate::policy::{may_modify, redact_event, Viewer};
use crate::store::{next_timestamp, Durability, Store};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

/// An event named by local id or uuid.
pub(crate) fn resolve(store: &Store, id: &str) -> Result<Option<Uuid>, ApiError> {
    let id = id.trim();
    if let Ok(u) = id.parse::<Uuid>() {
        return Ok(Some(u));
    }
    match id.parse::<u64>() {
        Ok(n) => Ok(store.event_uuid_by_id(n)?),
        Err(_) => Ok(None),
    }
}

/// The event as the caller may see it; unknown and invisible answer alike.
pub(crate) fn load_visible(store: &Store, viewer: &Viewer, id: &str) -> Result<Event, ApiError> {
    let uuid = resolve(store, id)?.ok_or_else(invalid_event)?;
    let ev = store.get_event(&uuid)?.ok_or_else(invalid_event)?;
    redact_event(viewer, ev).ok_or_else(invalid_event)
}

/// Drops soft-deleted children unless asked for (MISP's `deleted` filter).
pub(crate) fn hide_deleted(mut ev: Event) -> Event {
    ev.attributes.retain(|a| !a.deleted);
    ev.objects.retain(|o| !o.deleted);
    for o in &mut ev.objects {
        o.attributes.retain(|a| !a.deleted);
    }
    ev.reports.retain(|r| !r.deleted);
    ev
}

fn org_of(caller: &Caller) -> Org {
    Org {
        id: Some(caller.org.id),
        name: caller.org.name.clone(),
        uuid: caller.org.uuid,
        local: true,
    }
}

/// `{"Event": …}`, serialised straight from the model so fields keep MISP's order.
pub(crate) fn event_response(ev: &Event) -> Response {
    match serde_json::to_vec(&Wrapped { event: ev }) {
        Ok(bytes) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

fn parse_body(state: &AppState, body: &RawBody) -> Result<Event, ApiError> {
    parse_event(&body.0, state.limits.max_body)
        .map_err(|e| ApiError::BadRequest(format!("Could not parse the event: {e}")))
}

/// Stores `ev` (validated by the store) and answers with the stored event as the
/// caller sees it.
async fn store_and_answer(
    state: &AppState,
    caller: &Caller,
    ev: Event,
    metadata: bool,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let viewer = caller.viewer();
    let st = state.clone();
    let v2 = viewer.clone();
    let stored = blocking(move || {
        // Every group the event names must be one the caller may use; refused
        // before anything is stored, and alike for unknown and forbidden groups.
        check_sharing_groups(&st.store, &v2, &ev)?;
        let outcome = st.store_event(ev)?;
        let ev = store
            .get_event(&outcome.uuid())?
            .ok_or_else(invalid_event)?;
        Ok(ev)
    })
    .await?;
    super::audited::subject(stored.uuid);
    tracing::info!(user = caller.user.id, event = %stored.uuid, "event stored");
    let mut ev = redact_event(&viewer, hide_deleted(stored)).ok_or_else(invalid_event)?;
    if metadata {
        // `metadata:1`: the event without its content, as MISP's
        // `fetchEvent(…, metadata)` answers it (no attributes, objects or
        // reports; tags and organisations stay).
        ev.attributes.clear();
        ev.objects.clear();
        ev.reports.clear();
    }
    Ok(event_response(&ev))
}

pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Extension(named): Extension<NamedParams>,
    body: RawBody,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let mut ev = parse_body(&state, &body)?;
    if !ev.uuid.is_nil() && state.store.get_event_header(&ev.uuid)?.is_some() {
        return Err(ApiError::NotFound("Event already exists, if you would like to edit it, use the url in the location header.".into()));
    }
    // Provenance is not the client's to claim: the creator org is the caller's,
    // except for site admins importing on another organisation's behalf.
    ev.org = Some(org_of(&caller));
    if !(caller.role.perm_site_admin && ev.orgc.as_ref().is_some_and(|o| !o.uuid.is_nil())) {
        ev.orgc = Some(org_of(&caller));
    }
    ev.locked = false;
    ev.seal = None;
    if ev.published && !caller.role.perm_publish {
        ev.published = false;
    }
    if ev.published {
        ev.publish_timestamp = crate::model::time::now_secs();
    }
    store_and_answer(&state, &caller, ev, named.flag("metadata")).await
}

/// `GET|POST events/view/<id|uuid>`; a POST body `{"deleted": …}` includes
/// soft-deleted children.
pub async fn view(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Extension(named): Extension<NamedParams>,
    body: RawBody,
) -> Result<Response, ApiError> {
    let filters = body.json_value().unwrap_or(Value::Null);
    let deleted = match filters.get("deleted") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        Some(Value::String(s)) => s == "1" || s == "true",
        Some(Value::Array(a)) => !a.is_empty(),
        _ => named.flag("deleted"),
    };
    let extended = match filters.get("extended") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        Some(Value::String(s)) => s == "1" || s == "true",
        _ => named.flag("extended"),
    };
    let store = state.store.clone();
    let viewer = caller.viewer();
    let (mut ev, extensions) = blocking(move || {
        let mut ev = load_visible(&store, &viewer, &id)?;
        if !deleted {
            ev = hide_deleted(ev);
        }
        let extensions = if extended {
            Some(merge_extensions(&store, &viewer, &mut ev, deleted)?)
        } else {
            None
        };
        ev.related = related_events(&store, &viewer, &ev)?;
        Ok((ev, extensions))
    })
    .await?;
    if named.flag("noSightings") {
        for a in ev
            .attributes
            .iter_mut()
            .chain(ev.objects.iter_mut().flat_map(|o| o.attributes.iter_mut()))
        {
            a.sightings.clear();
        }
    }
    if let Some(ext) = extensions {
        let mut v = serde_json::to_value(Wrapped { event: &ev })
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        v["Event"]["extensionEvents"] = Value::Object(ext);
        return Ok(Json(v).into_response());
    }
    Ok(event_response(&ev))
}

/// `extended`: the events that extend `ev` and that `viewer` can see, merged
/// in as MISP's `Event::__mergeExtensions` does — their attributes, objects
/// and reports appended, their event tags added where missing — and listed
/// in `extensionEvents`, keyed by id. The extended event's own fields stay.
fn merge_extensions(
    store: &Store,
    viewer: &Viewer,
    ev: &mut Event,
    deleted: bool,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mut listed = serde_json::Map::new();
    for u in store.extensions_of(&ev.uuid)? {
        let Some(x) = store.get_event(&u)?.and_then(|e| redact_event(viewer, e)) else {
            continue;
        };
        let x = if deleted { x } else { hide_deleted(x) };
        let Some(id) = x.id else { continue };
        let orgc = x.orgc.as_ref().map(|o| {
            serde_json::json!({"id": o.id.map(|i| i.to_string()), "name": o.name, "uuid": o.uuid})
        });
        listed.insert(
            id.to_string(),
            serde_json::json!({
                "id": id.to_string(),
                "info": x.info,
                "orgc_id": x.orgc_id.map(|i| i.to_string()),
                "Orgc": orgc,
            }),
        );
        ev.attributes.extend(x.attributes);
        ev.objects.extend(x.objects);
        ev.reports.extend(x.reports);
        for t in x.tags {
            if !ev.tags.iter().any(|e| e.key() == t.key()) {
                ev.tags.push(t);
            }
        }
    }
    Ok(listed)
}

/// MISP's `RelatedEvent`: the other events whose attributes share a value with
/// this event's, from the value index (correlation is never stored), keeping only
/// correlations to attributes the viewer may see — a correlation must not reveal
/// that an invisible event holds the same indicator.
fn related_events(store: &Store, viewer: &Viewer, ev: &Event) -> Result<Vec<Value>, ApiError> {
    let mut hits: std::collections::BTreeMap<Uuid, Vec<Uuid>> = std::collections::BTreeMap::new();
    for a in ev.all_attributes() {
        for h in store.correlate(&ev.uuid, a)?.hits {
            hits.entry(h.event).or_default().push(h.attribute);
        }
    }
    let mut out = Vec::new();
    for (other, attrs) in hits {
        let Some(o) = store
            .get_event(&other)?
            .and_then(|e| redact_event(viewer, e))
        else {
            continue;
        };
        if !o.all_attributes().any(|a| attrs.contains(&a.uuid)) {
            continue;
        }
        out.push(json!({"Event": {
            "id": o.id.map(|i| i.to_string()), "date": o.date, "info": o.info, "uuid": o.uuid,
            "published": o.published, "analysis": o.analysis.to_string(),
            "threat_level_id": o.threat_level_id.to_string(), "timestamp": o.timestamp.to_string(),
            "distribution": o.distribution.to_string(),
            "org_id": o.org_id.map(|i| i.to_string()), "orgc_id": o.orgc_id.map(|i| i.to_string()),
            "Org": o.org, "Orgc": o.orgc,
        }}));
    }
    Ok(out)
}

/// `HEAD events/view/<id>`: 200 or 404, nothing else.
pub async fn exists(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> StatusCode {
    let store = state.store.clone();
    let viewer = caller.viewer();
    match blocking(move || load_visible(&store, &viewer, &id)).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::NOT_FOUND,
    }
}

/// Loads an event the caller may modify, or the matching error.
pub(crate) fn load_modifiable(
    store: &Arc<Store>,
    caller: &Caller,
    id: &str,
) -> Result<Event, ApiError> {
    let viewer = caller.viewer();
    let uuid = resolve(store, id)?.ok_or_else(invalid_event)?;
    let ev = store.get_event(&uuid)?.ok_or_else(invalid_event)?;
    if !crate::policy::event_visible(&viewer, &ev) {
        return Err(invalid_event());
    }
    if !may_modify(&viewer, &caller.role, &ev) {
        return Err(ApiError::Forbidden);
    }
    Ok(ev)
}

/// A partial edit (`{"info": "…"}` from a curl script) changes only what it
/// names: header fields absent from the body keep their stored values instead of
/// falling back to the defaults a new event would get (distribution 1 would
/// silently stop an event from travelling; a missing `Tag` would drop every tag).
/// `published` is the exception: MISP unpublishes on edit.
fn keep_absent_fields(body: &RawBody, incoming: &mut Event, stored: &Event) {
    // Names only: a `Value` of a large body would cost several times its size.
    let Ok(keys) = crate::model::parse::event_keys(&body.0) else {
        return; // parse_body accepted it, so this does not happen
    };
    let absent = |k: &str| !keys.contains(k);
    if absent("distribution") {
        incoming.distribution = stored.distribution;
    }
    if absent("sharing_group_id") && absent("SharingGroup") {
        incoming.sharing_group_id = stored.sharing_group_id;
        incoming.sharing_group = stored.sharing_group.clone();
    }
    if absent("threat_level_id") {
        incoming.threat_level_id = stored.threat_level_id;
    }
    if absent("analysis") {
        incoming.analysis = stored.analysis;
    }
    if absent("date") {
        incoming.date = stored.date.clone();
    }
    if absent("disable_correlation") {
        incoming.disable_correlation = stored.disable_correlation;
    }
    if absent("extends_uuid") {
        incoming.extends_uuid = stored.extends_uuid.clone();
    }
    if absent("Tag") {
        incoming.tags = stored.tags.clone();
    }
}

/// `events/edit/<id|uuid>`: the body is the whole event or part of it; elements
/// without a timestamp are the edited ones and get a new one, the rest apply only
/// if newer (MISP's rule).
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Extension(named): Extension<NamedParams>,
    body: RawBody,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let mut incoming = parse_body(&state, &body)?;
    let store = state.store.clone();
    let c2 = caller.clone();
    let stored = blocking(move || load_modifiable(&store, &c2, &id)).await?;
    incoming.uuid = stored.uuid;
    incoming.org = stored.org.clone();
    incoming.orgc = stored.orgc.clone();
    incoming.locked = stored.locked;
    incoming.seal = None;
    if incoming.timestamp == 0 {
        incoming.timestamp = next_timestamp(stored.timestamp);
    }
    if incoming.info.trim().is_empty() {
        incoming.info = stored.info.clone();
    }
    keep_absent_fields(&body, &mut incoming, &stored);
    if incoming.published && !caller.role.perm_publish {
        incoming.published = stored.published;
    }
    if incoming.published && !stored.published {
        incoming.publish_timestamp = crate::model::time::now_secs();
    } else if incoming.publish_timestamp == 0 {
        incoming.publish_timestamp = stored.publish_timestamp;
    }
    store_and_answer(&state, &caller, incoming, named.flag("metadata")).await
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let store = state.store.clone();
    let sealer = state.sealer.clone();
    let c2 = caller.clone();
    let result = blocking(move || {
        let ev = load_modifiable(&store, &c2, &id)?;
        // The deletion travels as a tombstone sealed by this node, stored with it.
        let tombstone = |ts: u64| {
            let t = crate::seal::Tombstone::seal(
                crate::seal::TombstoneKind::EventDeleted,
                ev.uuid,
                ts,
                sealer.key(),
                sealer.org(),
            )
            .map_err(|e| crate::store::StoreError::Seal {
                what: "tombstone",
                reason: e.to_string(),
            })?;
            serde_json::to_vec(&t)
                .map(Some)
                .map_err(|e| crate::store::StoreError::Encode {
                    what: "tombstone",
                    reason: e.to_string(),
                })
        };
        store.delete_event_with(&ev.uuid, Durability::Flush, &tombstone)?;
        Ok(ev)
    })
    .await;
    match result {
        Ok(ev) => {
            super::audited::subject(ev.uuid);
            tracing::info!(user = caller.user.id, event = %ev.uuid, "event deleted");
            Ok(Json(save_success("Event deleted.", ev.id)).into_response())
        }
        Err(ApiError::NotFound(_)) => Err(ApiError::Refused {
            name: "Event was not deleted.".into(),
            message: "Event was not deleted.".into(),
            errors: Default::default(),
            status: StatusCode::FORBIDDEN,
        }),
        Err(e) => Err(e),
    }
}

async fn set_published(
    state: AppState,
    caller: Caller,
    id: String,
    published: bool,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    // MISP's ACL: publishing needs perm_publish, unpublishing only the right
    // to modify (`ACLComponent`: 'unpublish' => perm_modify).
    caller.require(if published {
        caller.role.perm_publish
    } else {
        caller.role.perm_modify
    })?;
    let store = state.store.clone();
    let c2 = caller.clone();
    let ev = blocking(move || {
        let ev = load_modifiable(&store, &c2, &id)?;
        store.set_published(&ev.uuid, published, Durability::Flush)?;
        Ok(ev)
    })
    .await?;
    super::audited::subject(ev.uuid);
    tracing::info!(user = caller.user.id, event = %ev.uuid, published, "publication changed");
    let msg = if published {
        "Event published without alerts"
    } else {
        "Event unpublished."
    };
    Ok(Json(save_success(msg, ev.id)).into_response())
}

pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_published(state, caller, id, true).await
}

pub async fn unpublish(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_published(state, caller, id, false).await
}

fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(s).collect(),
        Some(v) => s(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// One `events/index` row: the event header, `Org`, `Orgc`, `EventTag`.
pub(crate) fn index_row(ev: &Event) -> Value {
    let mut v = serde_json::to_value(ev).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for k in ["Attribute", "Object", "EventReport", "Tag", "Seal"] {
            m.remove(k);
        }
        let tags: Vec<Value> = ev
            .tags
            .iter()
            .map(|t| json!({"event_id": ev.id.map(|i| i.to_string()), "local": t.local, "Tag": t}))
            .collect();
        m.insert("EventTag".into(), Value::Array(tags));
    }
    v
}

/// `GET|POST events/index`: event rows without attributes, as `search_index`.
pub async fn index(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let f = body.json_value()?;
    let viewer = caller.viewer();
    let store = state.store.clone();
    let rows = blocking(move || {
        let info: Vec<String> = strings(f.get("eventinfo"))
            .iter()
            .map(|s| s.to_lowercase().replace('%', ""))
            .collect();
        let ids = strings(f.get("eventid").or_else(|| f.get("uuid")));
        let tags = strings(f.get("tags"));
        let orgs = strings(f.get("org"));
        let published = f.get("published").and_then(s);
        let since = f
            .get("timestamp")
            .and_then(s)
            .and_then(|t| crate::export::parse_since(&t, crate::model::time::now_secs()).ok());
        let from = f.get("datefrom").and_then(s);
        let until = f.get("dateuntil").and_then(s);
        let limit = f
            .get("limit")
            .and_then(s)
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        let page = f
            .get("page")
            .and_then(s)
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let (want_tags, not_tags): (Vec<String>, Vec<String>) = tags
            .iter()
            .map(|t| t.trim().to_owned())
            .partition(|t| !t.starts_with('!'));
        let not_tags: Vec<String> = not_tags
            .iter()
            .map(|t| t.trim_start_matches('!').to_owned())
            .collect();
        let has_tag =
            |head: &Event, t: &str| head.tags.iter().any(|x| x.name.eq_ignore_ascii_case(t));
        let mut matched: Vec<Event> = Vec::new();
        for u in store.event_uuids() {
            let u = u?;
            let Some(head) = store.get_event_header(&u)? else {
                continue;
            };
            if !crate::policy::event_visible(&viewer, &head) {
                continue;
            }
            if !info.is_empty() && !info.iter().any(|i| head.info.to_lowercase().contains(i)) {
                continue;
            }
            if !ids.is_empty()
                && !ids.iter().any(|i| {
                    *i == head.uuid.to_string()
                        || Some(i.as_str()) == head.id.map(|x| x.to_string()).as_deref()
                })
            {
                continue;
            }
            if !want_tags.is_empty() && !want_tags.iter().any(|t| has_tag(&head, t)) {
                continue;
            }
            if not_tags.iter().any(|t| has_tag(&head, t)) {
                continue;
            }
            if !orgs.is_empty()
                && !orgs.iter().any(|o| {
                    head.orgc.as_ref().is_some_and(|c| {
                        c.name.eq_ignore_ascii_case(o)
                            || c.uuid.to_string() == *o
                            || c.id.map(|i| i.to_string()).as_deref() == Some(o.as_str())
                    })
                })
            {
                continue;
            }
            if published
                .as_deref()
                .is_some_and(|p| (p == "1" || p == "true") != head.published)
            {
                continue;
            }
            if since.is_some_and(|t| head.timestamp < t) {
                continue;
            }
            if from.as_deref().is_some_and(|d| head.date.as_str() < d)
                || until.as_deref().is_some_and(|d| head.date.as_str() > d)
            {
                continue;
            }
            matched.push(head);
        }
        // MISP's `sort` / `direction` (default: by id, ascending).
        let sort = f.get("sort").and_then(s).unwrap_or_else(|| "id".into());
        let desc = f
            .get("direction")
            .and_then(s)
            .is_some_and(|d| d.eq_ignore_ascii_case("desc"));
        match sort.trim_start_matches("Event.") {
            "date" => matched.sort_by(|a, b| a.date.cmp(&b.date).then(a.id.cmp(&b.id))),
            "timestamp" => matched.sort_by_key(|e| (e.timestamp, e.id)),
            "publish_timestamp" => matched.sort_by_key(|e| (e.publish_timestamp, e.id)),
            "info" => matched.sort_by(|a, b| {
                a.info
                    .to_lowercase()
                    .cmp(&b.info.to_lowercase())
                    .then(a.id.cmp(&b.id))
            }),
            "attribute_count" => matched.sort_by_key(|e| (e.attribute_count, e.id)),
            _ => matched.sort_by_key(|e| e.id),
        }
        if desc {
            matched.reverse();
        }
        let mut out = Vec::new();
        for head in matched
            .into_iter()
            .skip((page - 1).saturating_mul(limit))
            .take(limit)
        {
            let u = head.uuid;
            // Non-owners are shown the count of what they may see.
            let row_event = if viewer.site_admin
                || crate::policy::visibility::owner(&head) == Some(viewer.org)
            {
                head
            } else {
                let full = store.get_event(&u)?.and_then(|e| redact_event(&viewer, e));
                match full {
                    Some(mut e) => {
                        e.attributes.clear();
                        e.objects.clear();
                        e.reports.clear();
                        e
                    }
                    None => continue,
                }
            };
            out.push(index_row(&row_event));
        }
        Ok(out)
    })
    .await?;
    Ok(Json(Value::Array(rows)))
}
