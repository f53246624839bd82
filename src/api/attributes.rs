//! `attributes/*`: add (one attribute or a list), view (GET and HEAD), edit,
//! delete (soft or hard) and restore.
//!
//! Every change except a hard delete is made the same way: load the whole event,
//! change the one element, give it (and its object, and the event) a timestamp
//! newer than what is stored, and put the whole event back through
//! [`Store::put_event`], the one validator. Unchanged elements keep their
//! timestamps, so the merge leaves them as stored. A concurrent write that wins the
//! race makes ours "not newer"; the change is then re-applied to a fresh copy.
//!
//! Like MISP, a change to an event's content unpublishes it, and an invisible
//! attribute answers exactly like a missing one. Attribute ids are the store's
//! derived ids (`event id << 24 | n`), so an id leads to its event directly.

use super::auth::Caller;
use super::body::{unwrap_key, NamedParams, RawBody};
use super::elements::{
    attr_visible, exception, field_error, hard_flag, load_attribute, may_use_group, modify_event,
    named_refusal, not_allowed, save_fail, Edit, ElementId,
};
use super::error::ApiError;
use super::events::{invalid_event, resolve};
use super::{blocking, AppState};
use crate::model::edit::{
    attr_at, attr_at_mut, find_attr, newer, set_attribute_deleted, touch, Slot,
};
use crate::model::validate::{validate_event, ValidationError};
use crate::model::{Attribute, Event, Tag};
use crate::policy::may_modify;
use crate::store::{Durability, Store, StoreError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/attributes/add/{event}", post(add))
        .route("/attributes/view/{id}", get(view).head(exists))
        .route("/attributes/edit/{id}", post(edit).put(edit))
        .route("/attributes/delete/{id}", post(delete).delete(delete))
        .route(
            "/attributes/delete/{id}/{hard}",
            post(delete_hard_path).delete(delete_hard_path),
        )
        .route("/attributes/restore/{id}", post(restore))
}

// ---------------------------------------------------------------------------
// Shared with objects.rs and tags.rs
// ---------------------------------------------------------------------------

/// MISP's duplicate-attribute refusal, word for word: scripts match on it.
pub(crate) const SIMILAR_EXISTS: &str = "A similar attribute already exists for this event.";

/// Validation problems as MISP's `{field: [reasons]}`.
fn problems_map(e: &ValidationError) -> Map<String, Value> {
    let mut m = Map::new();
    for p in &e.problems {
        if let Value::Array(list) = m.entry(p.field.to_owned()).or_insert_with(|| json!([])) {
            list.push(Value::String(p.reason.clone()));
        }
    }
    m
}

/// Validates and completes one attribute on its own, as the store will (default
/// category and `to_ids`, canonical value, a uuid if it had none), so that a list
/// can fail attribute by attribute with MISP's field errors instead of as a whole.
/// The timestamp and object relation are left as given.
pub(crate) fn probe_attribute(a: Attribute) -> Result<Attribute, Map<String, Value>> {
    let relation = a.object_relation.clone();
    let ts = a.timestamp;
    let mut probe = Event::new("probe");
    probe.attributes.push(a);
    validate_event(&mut probe, crate::model::time::now_secs()).map_err(|e| problems_map(&e))?;
    let mut a = probe.attributes.remove(0);
    a.object_relation = relation;
    a.timestamp = ts;
    Ok(a)
}

/// Parses one attribute of a request body; errors as `{field: [reason]}`.
pub(crate) fn parse_attribute(v: &Value) -> Result<Attribute, Map<String, Value>> {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        // Local ids and sightings are the node's, never the client's.
        for k in ["id", "event_id", "object_id", "Sighting", "ShadowAttribute"] {
            m.remove(k);
        }
    } else {
        return Err(field_error(
            "Attribute",
            "an attribute must be a JSON object",
        ));
    }
    let mut a: Attribute = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "Attribute".to_owned()
        } else {
            path
        };
        field_error(&field, e.into_inner().to_string())
    })?;
    for t in &mut a.tags {
        t.id = None;
    }
    Ok(a)
}

/// A distribution-4 element must name a sharing group the caller may use (MISP's
/// "Invalid Sharing Group or not authorised.", the same answer for an unknown
/// group): see [`may_use_group`].
pub(crate) fn check_sharing_group(
    store: &Store,
    caller: &Caller,
    dist: u8,
    sg_id: u64,
    inline: Option<&crate::model::SharingGroup>,
) -> Result<(), Map<String, Value>> {
    match may_use_group(store, &caller.viewer(), dist, sg_id, inline) {
        Ok(true) => Ok(()),
        _ => Err(field_error(
            "sharing_group_id",
            "Invalid Sharing Group or not authorised.",
        )),
    }
}

/// Tags a caller may attach: MISP silently drops tags from users without
/// `perm_tagger`.
pub(crate) fn admit_tags(caller: &Caller, tags: &mut Vec<Tag>) {
    if !caller.role.perm_tagger {
        tags.clear();
    }
    for t in tags.iter_mut() {
        t.id = None;
        if t.colour.is_empty() {
            t.colour = crate::store::tags::default_colour(&t.name);
        }
    }
}

/// Fields a client may change with `attributes/edit` (MISP's `EDITABLE_FIELDS`:
/// the type, the uuid and the object link are fixed once created).
const EDITABLE: [&str; 11] = [
    "category",
    "value",
    "to_ids",
    "comment",
    "distribution",
    "sharing_group_id",
    "SharingGroup",
    "deleted",
    "disable_correlation",
    "first_seen",
    "last_seen",
];

/// `stored` with the editable fields present (and not null: MISP's `isset`) in
/// `patch` applied; new tags in `patch.Tag` are added (MISP never removes tags on
/// an edit: that is `tags/removeTagFromObject`).
pub(crate) fn merge_attribute(
    caller: &Caller,
    stored: &Attribute,
    patch: &Map<String, Value>,
) -> Result<Attribute, Map<String, Value>> {
    let mut plain = stored.clone();
    plain.sightings.clear();
    let Value::Object(mut base) = serde_json::to_value(&plain).unwrap_or(Value::Null) else {
        return Err(field_error(
            "Attribute",
            "the stored attribute could not be read",
        ));
    };
    if patch.get("sharing_group_id").is_some_and(|v| !v.is_null())
        && patch.get("SharingGroup").is_none_or(Value::is_null)
    {
        // A new group id replaces the group the stored attribute carries inline.
        base.remove("SharingGroup");
    }
    for k in EDITABLE {
        if let Some(v) = patch.get(k).filter(|v| !v.is_null()) {
            base.insert(k.to_owned(), v.clone());
        }
    }
    let mut a: Attribute = serde_path_to_error::deserialize(Value::Object(base)).map_err(|e| {
        let path = e.path().to_string();
        field_error(
            if path == "." { "Attribute" } else { &path },
            e.into_inner().to_string(),
        )
    })?;
    if a.distribution != 4 {
        a.sharing_group = None;
        a.sharing_group_id = 0;
    }
    a.sightings = stored.sightings.clone();
    if let Some(Value::Array(tags)) = patch.get("Tag") {
        let mut new: Vec<Tag> = tags
            .iter()
            .filter_map(|t| serde_json::from_value::<Tag>(t.clone()).ok())
            .filter(|t| !t.name.trim().is_empty() && !a.tags.iter().any(|x| x.key() == t.key()))
            .collect();
        admit_tags(caller, &mut new);
        a.tags.extend(new);
    }
    Ok(a)
}

/// An attribute as MISP's attribute endpoints show it: event and object ids
/// (`"0"` outside objects), tags with their ids, no sightings.
pub(crate) fn attribute_out(ev: &Event, s: Slot) -> Value {
    let mut a = attr_at(ev, s).clone();
    a.sightings.clear();
    a.event_id = ev.id;
    a.object_id = Some(match s {
        Slot::Top(_) => 0,
        Slot::InObject(o, _) => super::objects::object_id(&ev.objects[o]).unwrap_or(0),
    });
    let mut v = serde_json::to_value(&a).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.entry("Tag").or_insert_with(|| json!([]));
    }
    v
}

fn invalid_attribute() -> ApiError {
    ApiError::NotFound("Invalid attribute.".into())
}

/// Loads the attribute for a change: unknown, invisible and (unless `deleted_ok`)
/// soft-deleted answer "Invalid attribute."; visible but not the caller's to
/// change answers 403.
fn load_for_change(
    store: &Store,
    caller: &Caller,
    id: &str,
    deleted_ok: bool,
) -> Result<(Event, Slot), ApiError> {
    let id = ElementId::parse(id).ok_or_else(invalid_attribute)?;
    let viewer = caller.viewer();
    let (ev, s) = load_attribute(store, id)?.ok_or_else(invalid_attribute)?;
    if !attr_visible(&viewer, &ev, s) || (!deleted_ok && attr_at(&ev, s).deleted) {
        return Err(invalid_attribute());
    }
    if !may_modify(&viewer, &caller.role, &ev) {
        return Err(ApiError::Forbidden);
    }
    Ok((ev, s))
}

/// Inside a [`modify_event`] change: finds attribute `uuid` again in the fresh
/// copy and checks it may still be changed.
fn refind(caller: &Caller, ev: &Event, uuid: Uuid, deleted_ok: bool) -> Result<Slot, ApiError> {
    let viewer = caller.viewer();
    let s = find_attr(ev, |a| a.uuid == uuid).ok_or_else(invalid_attribute)?;
    if !attr_visible(&viewer, ev, s) || (!deleted_ok && attr_at(ev, s).deleted) {
        return Err(invalid_attribute());
    }
    if !may_modify(&viewer, &caller.role, ev) {
        return Err(ApiError::Forbidden);
    }
    Ok(s)
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

/// The live top-level attribute with the same (value, type, category), if any.
fn similar(ev: &Event, a: &Attribute, except: Uuid) -> Option<usize> {
    ev.attributes.iter().position(|x| {
        x.uuid != except
            && !x.deleted
            && x.value == a.value
            && x.attr_type == a.attr_type
            && x.category == a.category
    })
}

/// What happened to one attribute of an `attributes/add` request.
enum Added {
    New(Uuid),
    /// `breakOnDuplicate:0`: the existing one was updated instead.
    Existing(Uuid),
}

/// Prepares one requested attribute and adds it to `ev`.
fn add_one(
    store: &Store,
    caller: &Caller,
    ev: &mut Event,
    item: &Value,
    ts: u64,
    break_on_duplicate: bool,
) -> Result<Added, Map<String, Value>> {
    let mut a = parse_attribute(item)?;
    a.object_relation = None;
    a.deleted = false;
    admit_tags(caller, &mut a.tags);
    let a = probe_attribute(a)?;
    check_sharing_group(
        store,
        caller,
        a.distribution,
        a.sharing_group_id,
        a.sharing_group.as_ref(),
    )?;
    if let Some(i) = similar(ev, &a, a.uuid) {
        if break_on_duplicate {
            return Err(field_error("value", SIMILAR_EXISTS));
        }
        let Value::Object(patch) = item else {
            return Err(field_error("value", SIMILAR_EXISTS));
        };
        let existing = ev.attributes[i].clone();
        let mut merged = merge_attribute(caller, &existing, patch)?;
        merged.timestamp = newer(ts, existing.timestamp);
        let uuid = merged.uuid;
        ev.attributes[i] = merged;
        return Ok(Added::Existing(uuid));
    }
    let taken = find_attr(ev, |x| x.uuid == a.uuid).is_some()
        || ev.objects.iter().any(|o| o.uuid == a.uuid)
        || store
            .locate(&a.uuid)
            .map_err(|e| field_error("uuid", e.to_string()))?
            .is_some();
    if taken {
        return Err(field_error(
            "uuid",
            "An element with this uuid already exists.",
        ));
    }
    let mut a = a;
    if a.timestamp == 0 {
        a.timestamp = ts;
    }
    let uuid = a.uuid;
    ev.attributes.push(a);
    Ok(Added::New(uuid))
}

/// `POST attributes/add/<event>`: one attribute, a list, or MISP's batch form (one
/// attribute whose `value` is a list). Failures are per attribute, under
/// `errors.attribute_<i>`; if all fail the answer is a 403 saveFail (with the one
/// attribute's field errors when a single attribute was sent).
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(event): Path<String>,
    Extension(named): Extension<NamedParams>,
    body: RawBody,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let v = unwrap_key(body.json_value()?, "Attribute");
    let (items, list) = match v {
        Value::Array(items) => (items, true),
        Value::Object(m) => match m.get("value") {
            Some(Value::Array(values)) => {
                let items = values
                    .iter()
                    .map(|value| {
                        let mut one = m.clone();
                        one.insert("value".into(), value.clone());
                        one.remove("uuid");
                        Value::Object(one)
                    })
                    .collect();
                (items, true)
            }
            _ => (vec![Value::Object(m)], false),
        },
        _ => {
            return Err(ApiError::BadRequest(
                "The body must be an attribute or a list of attributes.".into(),
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::BadRequest("No attribute to add.".into()));
    }
    let break_on_duplicate = !matches!(named.get("breakOnDuplicate"), Some("0" | "false"));
    let store = state.store.clone();
    let c2 = caller.clone();
    let n = items.len();
    let (stored, (added, fails)) = blocking(move || {
        let viewer = c2.viewer();
        let uuid = resolve(&store, &event)?.ok_or_else(invalid_event)?;
        let (stored, out) = modify_event(&store, &uuid, true, |ev, ts| {
            if !crate::policy::event_visible(&viewer, ev) {
                return Err(invalid_event());
            }
            if !may_modify(&viewer, &c2.role, ev) {
                return Err(ApiError::Forbidden);
            }
            let mut added = Vec::new();
            let mut fails = Map::new();
            for (i, item) in items.iter().enumerate() {
                match add_one(&store, &c2, ev, item, ts, break_on_duplicate) {
                    Ok(Added::New(u) | Added::Existing(u)) => added.push(u),
                    Err(e) => {
                        fails.insert(format!("attribute_{i}"), Value::Object(e));
                    }
                }
            }
            Ok(if added.is_empty() {
                Edit::Nothing((added, fails))
            } else {
                Edit::Write((added, fails))
            })
        })
        .map_err(|e| named_refusal(e, "Could not add Attribute"))?;
        Ok((stored, out))
    })
    .await?;
    if added.is_empty() {
        let errors = if list {
            fails
        } else {
            match fails.get("attribute_0") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            }
        };
        return Err(save_fail("Could not add Attribute", errors));
    }
    super::audited::event(stored.uuid);
    for u in &added {
        super::audited::subject(u);
    }
    tracing::info!(user = caller.user.id, event = %stored.uuid, count = added.len(), "attributes added");
    let shown: Vec<Value> = added
        .iter()
        .filter_map(|u| find_attr(&stored, |a| a.uuid == *u).map(|s| attribute_out(&stored, s)))
        .collect();
    // PyMISP reads a one-element list's answer as a single attribute.
    let mut out = if list && n > 1 {
        json!({"Attribute": shown})
    } else {
        json!({"Attribute": shown.into_iter().next().unwrap_or(Value::Null)})
    };
    if !fails.is_empty() {
        out["errors"] = Value::Object(fails);
    }
    Ok(Json(out).into_response())
}

/// `GET attributes/view/<id|uuid>`: the attribute with its tags. MISP answers an
/// unknown attribute with 405 "Invalid attribute"; an invisible one answers the same.
pub async fn view(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let viewer = caller.viewer();
    let found = blocking(move || {
        let Some(id) = ElementId::parse(&id) else {
            return Ok(None);
        };
        Ok(load_attribute(&store, id)?
            .filter(|(ev, s)| attr_visible(&viewer, ev, *s))
            .map(|(ev, s)| attribute_out(&ev, s)))
    })
    .await?;
    Ok(match found {
        Some(a) => Json(json!({"Attribute": a})).into_response(),
        None => exception(StatusCode::METHOD_NOT_ALLOWED, "Invalid attribute"),
    })
}

/// `HEAD attributes/view/<id>`: 200 or 404.
pub async fn exists(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> StatusCode {
    let store = state.store.clone();
    let viewer = caller.viewer();
    let found = blocking(move || {
        let Some(id) = ElementId::parse(&id) else {
            return Ok(false);
        };
        Ok(load_attribute(&store, id)?.is_some_and(|(ev, s)| attr_visible(&viewer, &ev, s)))
    })
    .await;
    if matches!(found, Ok(true)) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

/// `POST attributes/edit/<id|uuid>`: the whole attribute or some fields of it;
/// fields left out (or null) keep their stored value. With a `timestamp` the
/// edit applies only if it is newer than the stored one (405 otherwise, as MISP);
/// without, it gets a new one.
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: RawBody,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let Value::Object(patch) = unwrap_key(body.json_value()?, "Attribute") else {
        return Err(ApiError::BadRequest(
            "The body must be an attribute.".into(),
        ));
    };
    let client_ts = match patch.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<Attribute>(
                json!({"type": "text", "value": "", "timestamp": v}),
            )
            .map(|a| a.timestamp)
            .map_err(|e| ApiError::BadRequest(format!("Invalid timestamp: {e}")))?,
        ),
    };
    let store = state.store.clone();
    let c2 = caller.clone();
    let (stored, uuid) = blocking(move || {
        let (ev, s) = load_for_change(&store, &c2, &id, false)?;
        let uuid = attr_at(&ev, s).uuid;
        modify_event(&store, &ev.uuid, true, |ev, ts| {
            let s = refind(&c2, ev, uuid, false)?;
            let current = attr_at(ev, s);
            if client_ts.is_some_and(|t| t <= current.timestamp) {
                return Err(not_allowed("Attribute could not be saved: Attribute in the request not newer than the local copy."));
            }
            let mut a = merge_attribute(&c2, current, &patch).map_err(|e| save_fail("Could not edit Attribute", e))?;
            check_sharing_group(&store, &c2, a.distribution, a.sharing_group_id, a.sharing_group.as_ref())
                .map_err(|e| save_fail("Could not edit Attribute", e))?;
            if let Slot::Top(_) = s {
                if let Ok(norm) = probe_attribute(a.clone()) {
                    if similar(ev, &norm, uuid).is_some() {
                        return Err(save_fail("Could not edit Attribute", field_error("value", SIMILAR_EXISTS)));
                    }
                }
            }
            a.timestamp = client_ts.unwrap_or(ts);
            *attr_at_mut(ev, s) = a;
            touch(ev, s, ts);
            Ok(Edit::Write(uuid))
        })
        .map_err(|e| named_refusal(e, "Could not edit Attribute"))
    })
    .await?;
    super::audited::subject(uuid);
    super::audited::event(stored.uuid);
    tracing::info!(user = caller.user.id, attribute = %uuid, "attribute edited");
    let s = find_attr(&stored, |a| a.uuid == uuid).ok_or_else(invalid_attribute)?;
    Ok(Json(json!({"Attribute": attribute_out(&stored, s)})).into_response())
}

async fn delete_impl(
    state: AppState,
    caller: Caller,
    id: String,
    hard: bool,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let store = state.store.clone();
    let c2 = caller.clone();
    let uuid = blocking(move || {
        let (ev, s) = load_for_change(&store, &c2, &id, hard)?;
        let uuid = attr_at(&ev, s).uuid;
        if hard {
            if let Slot::InObject(o, i) = s {
                // A hard delete bypasses the validator, so check here that the object
                // still fits its template without the attribute; otherwise every
                // later write of the event would be refused.
                let mut probe = ev.clone();
                probe.objects[o].attributes.remove(i);
                validate_event(&mut probe, crate::model::time::now_secs()).map_err(|e| {
                    named_refusal(StoreError::Invalid(e).into(), "Could not delete Attribute")
                })?;
            }
            if !store.hard_delete_children(&ev.uuid, &[uuid], &[], &[], Durability::Flush)? {
                return Err(invalid_attribute());
            }
        } else {
            modify_event(&store, &ev.uuid, true, |ev, ts| {
                let s = refind(&c2, ev, uuid, false)?;
                set_attribute_deleted(ev, s, true, ts);
                Ok(Edit::Write(()))
            })
            .map_err(|e| named_refusal(e, "Could not delete Attribute"))?;
        }
        Ok(uuid)
    })
    .await?;
    super::audited::subject(uuid);
    tracing::info!(user = caller.user.id, attribute = %uuid, hard, "attribute deleted");
    Ok(Json(json!({"message": "Attribute deleted."})).into_response())
}

/// `POST attributes/delete/<id|uuid>`, body `{}` (soft) or `{"hard": 1}`. A soft
/// delete of an already soft-deleted attribute is a 404, as in MISP.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Extension(named): Extension<NamedParams>,
    body: RawBody,
) -> Result<Response, ApiError> {
    let hard = hard_flag(&body, &named, None)?;
    delete_impl(state, caller, id, hard).await
}

/// `POST attributes/delete/<id>/<hard>`: MISP's positional form.
pub async fn delete_hard_path(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, hard)): Path<(String, String)>,
    Extension(named): Extension<NamedParams>,
    body: RawBody,
) -> Result<Response, ApiError> {
    let hard = hard_flag(&body, &named, Some(&hard))?;
    delete_impl(state, caller, id, hard).await
}

/// `POST attributes/restore/<id|uuid>`: undoes a soft delete (a live attribute is
/// answered as is). Refused if the attribute's object is deleted, or if a live
/// attribute with the same value, type and category now exists.
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let store = state.store.clone();
    let c2 = caller.clone();
    let (ev, uuid) = blocking(move || {
        let (ev, s) = load_for_change(&store, &c2, &id, true)?;
        let uuid = attr_at(&ev, s).uuid;
        if !attr_at(&ev, s).deleted {
            return Ok((ev, uuid));
        }
        let (ev, ()) = modify_event(&store, &ev.uuid, true, |ev, ts| {
            let s = refind(&c2, ev, uuid, true)?;
            match s {
                Slot::InObject(o, _) if ev.objects[o].deleted => {
                    return Err(save_fail(
                        "Could not restore Attribute",
                        field_error("object_id", "The object holding this attribute is deleted."),
                    ));
                }
                Slot::Top(_) => {
                    if similar(ev, attr_at(ev, s), uuid).is_some() {
                        return Err(save_fail(
                            "Could not restore Attribute",
                            field_error("value", SIMILAR_EXISTS),
                        ));
                    }
                }
                Slot::InObject(..) => {}
            }
            if set_attribute_deleted(ev, s, false, ts) {
                Ok(Edit::Write(()))
            } else {
                Ok(Edit::Nothing(()))
            }
        })
        .map_err(|e| named_refusal(e, "Could not restore Attribute"))?;
        Ok((ev, uuid))
    })
    .await?;
    super::audited::subject(uuid);
    super::audited::event(ev.uuid);
    tracing::info!(user = caller.user.id, attribute = %uuid, "attribute restored");
    let s = find_attr(&ev, |a| a.uuid == uuid).ok_or_else(invalid_attribute)?;
    Ok(Json(json!({"Attribute": attribute_out(&ev, s)})).into_response())
}

#[cfg(test)]
mod tests {
    use super::SIMILAR_EXISTS;
    use crate::api::testkit::{Kit, NO_PERMISSION};
    use axum::http::StatusCode;
    use serde_json::{json, Value};

    fn ts(v: &Value) -> u64 {
        v["timestamp"].as_str().unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn add_single_list_batch_and_duplicates() {
        let k = Kit::new();
        let (eid, _) = k
            .event(&k.a, json!({"info": "attrs", "distribution": "1"}))
            .await;
        let path = format!("/attributes/add/{eid}");

        let (st, v) = k
            .call(
                "POST",
                &path,
                &k.a,
                Some(json!({"type": "ip-dst", "value": "198.51.100.7", "comment": "c"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let a = &v["Attribute"];
        assert_eq!(a["category"], "Network activity");
        assert_eq!(a["to_ids"], true);
        assert_eq!(a["event_id"], eid.as_str());
        assert_eq!(a["object_id"], "0");
        assert!(
            a["id"].as_str().unwrap().parse::<u64>().unwrap() >> 24 == eid.parse::<u64>().unwrap()
        );
        assert!(v.get("errors").is_none());

        // A list: one bad value fails alone, under errors.attribute_<i>.
        let list = json!([{"type": "domain", "value": "A.example"}, {"type": "md5", "value": "nothex"}, {"type": "url", "value": "http://x.example/"}]);
        let (st, v) = k.call("POST", &path, &k.a, Some(list)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["Attribute"].as_array().unwrap().len(), 2);
        assert_eq!(v["Attribute"][0]["value"], "a.example");
        assert!(v["errors"]["attribute_1"]["value"].is_array(), "{v}");

        // A list of one answers a single attribute (what PyMISP expects).
        let (st, v) = k
            .call(
                "POST",
                &path,
                &k.a,
                Some(json!([{"type": "comment", "value": "one"}])),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["Attribute"]["value"], "one");

        // MISP's batch form.
        let (st, v) = k
            .call(
                "POST",
                &path,
                &k.a,
                Some(json!({"type": "hostname", "value": ["h1.example", "h2.example"]})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["Attribute"].as_array().unwrap().len(), 2);

        let before = k.get_event(&eid).await;
        // Duplicates, also after normalisation: 403 with MISP's message, nothing stored.
        for dup in [
            json!({"type": "ip-dst", "value": "198.51.100.7"}),
            json!({"type": "domain", "value": "a.EXAMPLE"}),
        ] {
            let (st, v) = k.call("POST", &path, &k.a, Some(dup)).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
            assert_eq!(v["errors"]["value"], json!([SIMILAR_EXISTS]));
            assert_eq!(v["saved"], false);
            assert!(v["message"].is_string());
        }
        let (st, v) = k.call("POST", &path, &k.a, Some(json!([{"type": "ip-dst", "value": "198.51.100.7"}, {"type": "ip-src", "value": "nope"}]))).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["errors"]["attribute_0"]["value"], json!([SIMILAR_EXISTS]));
        let after = k.get_event(&eid).await;
        assert_eq!(before, after, "a refused add changes nothing");

        // breakOnDuplicate:0 updates the existing attribute instead.
        let (st, v) = k
            .call(
                "POST",
                &format!("{path}/breakOnDuplicate:0"),
                &k.a,
                Some(json!({"type": "ip-dst", "value": "198.51.100.7", "comment": "again"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["Attribute"]["comment"], "again");
        let ev = k.get_event(&eid).await;
        assert_eq!(ev["Attribute"].as_array().unwrap().len(), 6);
        assert_eq!(ev["published"], false);

        // A uuid already used elsewhere is refused.
        let used = ev["Attribute"][0]["uuid"].as_str().unwrap().to_owned();
        let (st, v) = k
            .call(
                "POST",
                &path,
                &k.a,
                Some(json!({"uuid": used, "type": "text", "value": "x"})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert!(v["errors"]["uuid"].is_array());
        // Unknown event.
        let (st, _) = k
            .call(
                "POST",
                "/attributes/add/999",
                &k.a,
                Some(json!({"type": "text", "value": "x"})),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn view_head_and_partial_edit() {
        let k = Kit::new();
        let (eid, _) = k.event(&k.a, json!({"info": "edit", "Attribute": [{"type": "domain", "value": "a.example", "comment": "first"}, {"type": "domain", "value": "b.example"}]})).await;
        let ev = k.get_event(&eid).await;
        let a = ev["Attribute"][0].clone();
        let (id, uuid) = (
            a["id"].as_str().unwrap().to_owned(),
            a["uuid"].as_str().unwrap().to_owned(),
        );

        for key in [&id, &uuid] {
            let (st, v) = k
                .call("GET", &format!("/attributes/view/{key}"), &k.a, None)
                .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            assert_eq!(v["Attribute"]["uuid"], uuid.as_str());
            assert!(v["Attribute"]["Tag"].is_array());
            let (st, _) = k
                .call("HEAD", &format!("/attributes/view/{key}"), &k.a, None)
                .await;
            assert_eq!(st, StatusCode::OK);
        }
        let (st, v) = k.call("GET", "/attributes/view/12345", &k.a, None).await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(v["message"], "Invalid attribute");
        let (st, _) = k
            .call(
                "HEAD",
                "/attributes/view/5c1b1cc1-0000-4000-8000-000000000001",
                &k.a,
                None,
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND);

        // Partial edit: what is left out keeps its value.
        let (st, v) = k
            .call(
                "POST",
                &format!("/attributes/edit/{uuid}"),
                &k.a,
                Some(json!({"comment": "changed", "to_ids": "1"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let e = &v["Attribute"];
        assert_eq!(e["comment"], "changed");
        assert_eq!(e["to_ids"], true);
        assert_eq!(e["value"], "a.example");
        assert_eq!(e["id"], id.as_str());
        assert!(ts(e) > ts(&a));
        let ev2 = k.get_event(&eid).await;
        assert!(ts(&ev2) > ts(&ev));
        assert_eq!(
            ev2["Attribute"][1], ev["Attribute"][1],
            "the other attribute is untouched"
        );

        // A timestamp not newer than the stored one: 405, as MISP.
        let (st, v) = k
            .call(
                "POST",
                &format!("/attributes/edit/{id}"),
                &k.a,
                Some(json!({"comment": "old", "timestamp": a["timestamp"]})),
            )
            .await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED, "{v}");
        // Editing into a duplicate.
        let (st, v) = k
            .call(
                "POST",
                &format!("/attributes/edit/{id}"),
                &k.a,
                Some(json!({"Attribute": {"value": "B.example"}})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["errors"]["value"], json!([SIMILAR_EXISTS]));
        // An invalid value names the field.
        let (st, v) = k
            .call(
                "POST",
                &format!("/attributes/edit/{id}"),
                &k.a,
                Some(json!({"value": "not a domain"})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert!(v["errors"]["value"].is_array(), "{v}");
        // Unknown id.
        let (st, _) = k
            .call(
                "POST",
                "/attributes/edit/5c1b1cc1-0000-4000-8000-000000000001",
                &k.a,
                Some(json!({"comment": "x"})),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn soft_delete_restore_and_hard_delete() {
        let k = Kit::new();
        let (eid, euuid) = k.event(&k.a, json!({"info": "del", "Attribute": [{"type": "ip-dst", "value": "203.0.113.9"}, {"type": "text", "value": "keep"}]})).await;
        let ev = k.get_event(&eid).await;
        let uuid = ev["Attribute"][0]["uuid"].as_str().unwrap().to_owned();
        let store = k.state.store.clone();
        let hits = |deleted: bool| {
            store
                .lookup_value("203.0.113.9", deleted, 10)
                .unwrap()
                .len()
        };
        assert_eq!(hits(false), 1);

        let (st, v) = k
            .call(
                "POST",
                &format!("/attributes/delete/{uuid}"),
                &k.a,
                Some(json!({})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v, json!({"message": "Attribute deleted."}));
        assert_eq!(hits(false), 0);
        assert_eq!(hits(true), 1);
        let (_, v) = k
            .call("GET", &format!("/events/view/{eid}"), &k.a, None)
            .await;
        assert_eq!(
            v["Event"]["Attribute"].as_array().unwrap().len(),
            1,
            "soft-deleted hidden from the event view"
        );
        let (st, v) = k
            .call("GET", &format!("/attributes/view/{uuid}"), &k.a, None)
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["Attribute"]["deleted"], true);
        let (st, _) = k
            .call(
                "POST",
                &format!("/attributes/delete/{uuid}"),
                &k.a,
                Some(json!({})),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "already soft-deleted");

        let (st, v) = k
            .call("POST", &format!("/attributes/restore/{uuid}"), &k.a, None)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["Attribute"]["deleted"], false);
        assert_eq!(hits(false), 1);

        // Hard: gone from reads, lookups and the uuid registry; the event lives on.
        let (st, v) = k
            .call(
                "POST",
                &format!("/attributes/delete/{uuid}"),
                &k.a,
                Some(json!({"hard": 1})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(hits(true), 0);
        assert!(store.locate(&uuid.parse().unwrap()).unwrap().is_none());
        let (st, _) = k
            .call("GET", &format!("/attributes/view/{uuid}"), &k.a, None)
            .await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
        let after = k.get_event(&eid).await;
        assert_eq!(after["Attribute"].as_array().unwrap().len(), 1);
        assert_eq!(after["attribute_count"], "1");
        assert!(ts(&after) > ts(&ev));
        assert!(store.events_with_type("ip-dst").unwrap().is_empty());
        assert!(store.last_sequence().unwrap() > 0);
        // The value can be added again, and the event still takes edits.
        let (st, v) = k
            .call(
                "POST",
                &format!("/attributes/add/{euuid}"),
                &k.a,
                Some(json!({"type": "ip-dst", "value": "203.0.113.9"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(hits(false), 1);
        // Hard delete of a soft-deleted attribute works too.
        let id2 = v["Attribute"]["id"].as_str().unwrap().to_owned();
        let (st, _) = k
            .call("POST", &format!("/attributes/delete/{id2}"), &k.a, None)
            .await;
        assert_eq!(st, StatusCode::OK);
        let (st, _) = k
            .call("POST", &format!("/attributes/delete/{id2}/1"), &k.a, None)
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(hits(true), 0);
    }

    #[tokio::test]
    async fn rights_read_only_and_other_orgs() {
        let k = Kit::new();
        let (eid, _) = k.event(&k.a, json!({"info": "shared", "distribution": "1", "Attribute": [{"type": "text", "value": "visible"}]})).await;
        let (hid, _) = k.event(&k.a, json!({"info": "hidden", "distribution": "0", "Attribute": [{"type": "text", "value": "secret"}]})).await;
        let shared = k.get_event(&eid).await["Attribute"][0]["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let hidden_ev = k.get_event(&hid).await;
        let hidden = hidden_ev["Attribute"][0]["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let hidden_id = hidden_ev["Attribute"][0]["id"].as_str().unwrap().to_owned();
        let before = (k.get_event(&eid).await, hidden_ev.clone());

        // Read-only: 403 with the message PyMISP knows, on every write.
        let writes = [
            (
                "POST",
                format!("/attributes/add/{eid}"),
                Some(json!({"type": "text", "value": "x"})),
            ),
            (
                "POST",
                format!("/attributes/edit/{shared}"),
                Some(json!({"comment": "x"})),
            ),
            (
                "POST",
                format!("/attributes/delete/{shared}"),
                Some(json!({})),
            ),
            (
                "POST",
                format!("/attributes/delete/{shared}"),
                Some(json!({"hard": 1})),
            ),
            ("POST", format!("/attributes/restore/{shared}"), None),
            (
                "POST",
                format!("/objects/add/{eid}"),
                Some(
                    json!({"name": "domain-ip", "Attribute": [{"type": "domain", "object_relation": "domain", "value": "r.example"}]}),
                ),
            ),
            (
                "POST",
                "/tags/attachTagToObject".to_owned(),
                Some(json!({"uuid": shared, "tag": "tlp:red"})),
            ),
            (
                "POST",
                "/tags/attachTagToObject".to_owned(),
                Some(json!({"uuid": shared, "tag": "mine", "local": true})),
            ),
            (
                "POST",
                "/tags/removeTagFromObject".to_owned(),
                Some(json!({"uuid": shared, "tag": "tlp:red"})),
            ),
        ];
        for (m, p, b) in &writes {
            let (st, v) = k.call(m, p, &k.a_ro, b.clone()).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{p}: {v}");
            assert_eq!(v["message"], NO_PERMISSION, "{p}");
        }
        // Reading is fine.
        let (st, _) = k
            .call("GET", &format!("/attributes/view/{shared}"), &k.a_ro, None)
            .await;
        assert_eq!(st, StatusCode::OK);

        // Another org: an invisible attribute answers like an unknown one…
        let unknown = "5c1b1cc1-0000-4000-8000-000000000009";
        for p in [hidden.as_str(), hidden_id.as_str()] {
            let (st1, v1) = k
                .call("GET", &format!("/attributes/view/{p}"), &k.b, None)
                .await;
            let (st2, v2) = k
                .call("GET", &format!("/attributes/view/{unknown}"), &k.b, None)
                .await;
            assert_eq!((st1, &v1["message"]), (st2, &v2["message"]));
            let (st, _) = k
                .call("HEAD", &format!("/attributes/view/{p}"), &k.b, None)
                .await;
            assert_eq!(st, StatusCode::NOT_FOUND);
            let (st1, v1) = k
                .call(
                    "POST",
                    &format!("/attributes/edit/{p}"),
                    &k.b,
                    Some(json!({"comment": "x"})),
                )
                .await;
            let (st2, v2) = k
                .call(
                    "POST",
                    &format!("/attributes/edit/{unknown}"),
                    &k.b,
                    Some(json!({"comment": "x"})),
                )
                .await;
            assert_eq!((st1, &v1["message"]), (st2, &v2["message"]));
            assert_eq!(st1, StatusCode::NOT_FOUND);
            let (st, _) = k
                .call(
                    "POST",
                    &format!("/attributes/delete/{p}"),
                    &k.b,
                    Some(json!({"hard": 1})),
                )
                .await;
            assert_eq!(st, StatusCode::NOT_FOUND);
        }
        let (st, _) = k
            .call(
                "POST",
                &format!("/attributes/add/{hid}"),
                &k.b,
                Some(json!({"type": "text", "value": "x"})),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        // …and a visible one it does not own is a 403 with PyMISP's message.
        for (m, p, b) in &writes[..5] {
            let (st, v) = k.call(m, p, &k.b, b.clone()).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{p}: {v}");
            assert_eq!(v["message"], NO_PERMISSION, "{p}");
        }
        let (st, _) = k
            .call("GET", &format!("/attributes/view/{shared}"), &k.b, None)
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(
            (k.get_event(&eid).await, k.get_event(&hid).await),
            before,
            "nothing changed"
        );
    }
}
