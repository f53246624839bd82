//! `objects/*`: add, view (GET and HEAD), edit, delete (soft or hard).
//!
//! Objects have no stored local id. The id shown and accepted here is derived: the
//! smallest local id among the object's attributes (soft-deleted ones included).
//! Attribute ids are `event id << 24 | n` and never reused, so the object id leads
//! to its event, is unique in the store, and stays the same for the object's life,
//! unless that first attribute is hard-deleted (then the next one's id is used).
//! An object with no attribute at all can only be named by uuid.
//!
//! Changes follow the same load, change, put-whole-event path as attributes (see
//! `attributes.rs`); the object's template is checked by the store's validator.

use super::attributes::{admit_tags, check_sharing_group, merge_attribute, parse_attribute};
use super::auth::Caller;
use super::body::{unwrap_key, NamedParams, RawBody};
use super::elements::{
    field_error, hard_flag, modify_event, named_refusal, save_fail, truthy, Edit, ElementId,
};
use super::error::{save_success, ApiError};
use super::events::{invalid_event, resolve};
use super::{blocking, AppState};
use crate::model::edit::{newer, soft_delete_object};
use crate::model::{value, Event, Object};
use crate::policy::{event_visible, may_modify, redact_event, Viewer};
use crate::store::{Durability, Store};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/objects/add/{event}", post(add))
        .route("/objects/view/{id}", get(view).head(exists))
        .route("/objects/edit/{id}", post(edit).put(edit))
        .route("/objects/delete/{id}", post(delete).delete(delete))
        .route(
            "/objects/delete/{id}/{hard}",
            post(delete_hard_path).delete(delete_hard_path),
        )
}

/// The object's derived local id (see the module comment). Must be computed on
/// the whole event, before redaction removes attributes.
pub(crate) fn object_id(o: &Object) -> Option<u64> {
    o.attributes.iter().filter_map(|a| a.id).min()
}

/// Fills in the derived ids of every object and of its attributes' `object_id`.
pub(crate) fn assign_object_ids(ev: &mut Event) {
    for o in &mut ev.objects {
        let id = object_id(o);
        o.id = id;
        for a in &mut o.attributes {
            a.object_id = id;
        }
    }
}

fn invalid_object() -> ApiError {
    ApiError::NotFound("Invalid object.".into())
}

/// The whole event (nothing redacted) holding object `id`, and the object's index.
fn load_object(store: &Store, id: ElementId) -> Result<Option<(Event, usize)>, ApiError> {
    let event = match id {
        ElementId::Uuid(u) => store.locate(&u)?,
        ElementId::Local(n) => store.event_uuid_by_id(n >> 24)?,
    };
    let Some(event) = event else { return Ok(None) };
    let Some(ev) = store.get_event(&event)? else {
        return Ok(None);
    };
    let pos = ev.objects.iter().position(|o| match id {
        ElementId::Uuid(u) => o.uuid == u,
        ElementId::Local(n) => object_id(o) == Some(n),
    });
    Ok(pos.map(|i| (ev, i)))
}

/// The object `uuid` as `viewer` may see it, MISP-shaped (`{"Object"}` content),
/// or `None` if it is invisible. Soft-deleted attributes of a live object are left
/// out, as MISP does.
fn object_view(viewer: &Viewer, ev: &Event, uuid: Uuid) -> Option<Value> {
    let mut e = ev.clone();
    assign_object_ids(&mut e);
    let e = redact_event(viewer, e)?;
    let event_id = e.id;
    let mut o = e.objects.into_iter().find(|o| o.uuid == uuid)?;
    if !o.deleted {
        o.attributes.retain(|a| !a.deleted);
    }
    o.event_id = event_id;
    for a in &mut o.attributes {
        a.sightings.clear();
        a.event_id = event_id;
    }
    serde_json::to_value(&o).ok()
}

fn object_visible(viewer: &Viewer, ev: &Event, uuid: Uuid) -> bool {
    event_visible(viewer, ev)
        && redact_event(viewer, ev.clone())
            .is_some_and(|e| e.objects.iter().any(|o| o.uuid == uuid))
}

/// Checks object `uuid` of `ev` may be changed by `caller`: invisible, missing or
/// (unless `deleted_ok`) soft-deleted is "Invalid object.", visible but not the
/// caller's is 403. Returns its index.
fn check_object(
    caller: &Caller,
    ev: &Event,
    uuid: Uuid,
    deleted_ok: bool,
) -> Result<usize, ApiError> {
    let viewer = caller.viewer();
    let i = ev
        .objects
        .iter()
        .position(|o| o.uuid == uuid)
        .ok_or_else(invalid_object)?;
    if !object_visible(&viewer, ev, uuid) || (!deleted_ok && ev.objects[i].deleted) {
        return Err(invalid_object());
    }
    if !may_modify(&viewer, &caller.role, ev) {
        return Err(ApiError::Forbidden);
    }
    Ok(i)
}

fn load_for_change(
    store: &Store,
    caller: &Caller,
    id: &str,
    deleted_ok: bool,
) -> Result<(Event, Uuid), ApiError> {
    let id = ElementId::parse(id).ok_or_else(invalid_object)?;
    let (ev, i) = load_object(store, id)?.ok_or_else(invalid_object)?;
    let uuid = ev.objects[i].uuid;
    check_object(caller, &ev, uuid, deleted_ok)?;
    Ok((ev, uuid))
}

fn parse_error(e: serde_path_to_error::Error<serde_json::Error>) -> Map<String, Value> {
    let path = e.path().to_string();
    field_error(
        if path == "." { "Object" } else { &path },
        e.into_inner().to_string(),
    )
}

/// What makes two objects the same for `breakOnDuplicate`: the template name and
/// the live attributes' (relation, type, canonical value).
fn fingerprint(o: &Object) -> (String, Vec<(String, String, String)>) {
    let mut attrs: Vec<(String, String, String)> = o
        .attributes
        .iter()
        .filter(|a| !a.deleted)
        .map(|a| {
            let v = value::normalise(&a.attr_type, &a.value).unwrap_or_else(|_| a.value.clone());
            (
                a.object_relation.clone().unwrap_or_default(),
                a.attr_type.clone(),
                v,
            )
        })
        .collect();
    attrs.sort();
    (o.name.clone(), attrs)
}

/// Whether `uuid` already names something, here or anywhere in the store.
fn uuid_taken(store: &Store, ev: &Event, uuid: Uuid) -> Result<bool, ApiError> {
    let here = ev.objects.iter().any(|o| {
        o.uuid == uuid
            || o.attributes.iter().any(|a| a.uuid == uuid)
            || o.references.iter().any(|r| r.uuid == uuid)
    }) || ev.attributes.iter().any(|a| a.uuid == uuid)
        || ev.reports.iter().any(|r| r.uuid == uuid);
    Ok(here || store.locate(&uuid)?.is_some())
}

const ADD: &str = "Could not add Object";
const EDIT: &str = "Could not edit Object";

/// `POST objects/add/<event>`: a flat object (or `{"Object": …}`) with its
/// `Attribute` list. Answers `{"Object": O}` with its attributes.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(event): Path<String>,
    Extension(named): Extension<NamedParams>,
    body: RawBody,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let Value::Object(mut m) = unwrap_key(body.json_value()?, "Object") else {
        return Err(ApiError::BadRequest("The body must be an object.".into()));
    };
    let break_on_duplicate = named.flag("breakOnDuplicate") || truthy(m.get("breakOnDuplicate"));
    for k in ["id", "event_id", "breakOnDuplicate"] {
        m.remove(k);
    }
    let mut o: Object = serde_path_to_error::deserialize(Value::Object(m))
        .map_err(|e| save_fail(ADD, parse_error(e)))?;
    o.id = None;
    o.event_id = None;
    if o.uuid.is_nil() {
        o.uuid = Uuid::new_v4();
    }
    for a in &mut o.attributes {
        a.id = None;
        a.event_id = None;
        a.object_id = None;
        a.sightings.clear();
        admit_tags(&caller, &mut a.tags);
    }
    for r in &mut o.references {
        r.id = None;
    }
    let store = state.store.clone();
    check_sharing_group(
        &store,
        &caller,
        o.distribution,
        o.sharing_group_id,
        o.sharing_group.as_ref(),
    )
    .map_err(|e| save_fail(ADD, e))?;
    for a in &o.attributes {
        check_sharing_group(
            &store,
            &caller,
            a.distribution,
            a.sharing_group_id,
            a.sharing_group.as_ref(),
        )
        .map_err(|e| save_fail(ADD, e))?;
    }
    let c2 = caller.clone();
    let uuid = o.uuid;
    let stored = blocking(move || {
        let viewer = c2.viewer();
        let event = resolve(&store, &event)?.ok_or_else(invalid_event)?;
        let (stored, ()) = modify_event(&store, &event, true, |ev, ts| {
            if !event_visible(&viewer, ev) {
                return Err(invalid_event());
            }
            if !may_modify(&viewer, &c2.role, ev) {
                return Err(ApiError::Forbidden);
            }
            let claimed = std::iter::once(o.uuid)
                .chain(o.attributes.iter().map(|a| a.uuid))
                .chain(o.references.iter().map(|r| r.uuid))
                .filter(|u| !u.is_nil());
            for u in claimed {
                if uuid_taken(&store, ev, u)? {
                    return Err(save_fail(ADD, field_error("uuid", format!("{u} is already used by another element."))));
                }
            }
            if break_on_duplicate {
                let mine = fingerprint(&o);
                if ev.objects.iter().any(|x| !x.deleted && fingerprint(x) == mine) {
                    return Err(save_fail(
                        ADD,
                        field_error("Object", "Duplicate object found. Since breakOnDuplicate is set the object will not be added."),
                    ));
                }
            }
            let mut o = o.clone();
            if o.timestamp == 0 {
                o.timestamp = ts;
            }
            ev.objects.push(o);
            Ok(Edit::Write(()))
        })
        .map_err(|e| named_refusal(e, ADD))?;
        Ok(stored)
    })
    .await?;
    super::audited::subject(uuid);
    super::audited::event(stored.uuid);
    tracing::info!(user = caller.user.id, event = %stored.uuid, object = %uuid, "object added");
    let o = object_view(&caller.viewer(), &stored, uuid).ok_or_else(invalid_object)?;
    Ok(Json(json!({"Object": o})).into_response())
}

/// `GET objects/view/<id|uuid>`: `{"Object": O}` with its attributes.
pub async fn view(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let viewer = caller.viewer();
    let o = blocking(move || {
        let Some(id) = ElementId::parse(&id) else {
            return Ok(None);
        };
        Ok(load_object(&store, id)?
            .and_then(|(ev, i)| object_view(&viewer, &ev, ev.objects[i].uuid)))
    })
    .await?
    .ok_or_else(invalid_object)?;
    Ok(Json(json!({"Object": o})).into_response())
}

/// `HEAD objects/view/<id>`: 200 or 404.
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
        Ok(load_object(&store, id)?
            .is_some_and(|(ev, i)| object_visible(&viewer, &ev, ev.objects[i].uuid)))
    })
    .await;
    if matches!(found, Ok(true)) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

/// Object fields `objects/edit` changes (MISP's `deltaMerge`); name, template and
/// uuid are fixed.
const EDITABLE: [&str; 7] = [
    "comment",
    "distribution",
    "sharing_group_id",
    "SharingGroup",
    "first_seen",
    "last_seen",
    "template_version",
];

/// `stored`'s header with the editable fields present (not null) in `patch`.
fn merge_header(stored: &Object, patch: &Map<String, Value>) -> Result<Object, Map<String, Value>> {
    let mut plain = stored.clone();
    plain.attributes.clear();
    let Value::Object(mut base) = serde_json::to_value(&plain).unwrap_or(Value::Null) else {
        return Err(field_error("Object", "the stored object could not be read"));
    };
    if patch.get("sharing_group_id").is_some_and(|v| !v.is_null())
        && patch.get("SharingGroup").is_none_or(Value::is_null)
    {
        base.remove("SharingGroup");
    }
    for k in EDITABLE {
        if let Some(v) = patch.get(k).filter(|v| !v.is_null()) {
            base.insert(k.to_owned(), v.clone());
        }
    }
    let mut o: Object =
        serde_path_to_error::deserialize(Value::Object(base)).map_err(parse_error)?;
    if o.distribution != 4 {
        o.sharing_group = None;
        o.sharing_group_id = 0;
    }
    o.attributes = stored.attributes.clone();
    Ok(o)
}

/// Applies an `Attribute` list to object `o` the way MISP's `deltaMerge` does:
/// listed attributes that exist (by uuid) are updated where they differ, others are
/// added, and live attributes left out are soft-deleted.
fn merge_attributes(
    store: &Store,
    caller: &Caller,
    ev: &Event,
    o: &mut Object,
    items: &[Value],
) -> Result<(), ApiError> {
    let ts = o.timestamp;
    let mut mentioned: HashSet<Uuid> = HashSet::new();
    for item in items {
        let Value::Object(m) = item else {
            return Err(save_fail(
                EDIT,
                field_error("Attribute", "an attribute must be a JSON object"),
            ));
        };
        let given = m
            .get("uuid")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Uuid>().ok());
        if let Some(j) = given.and_then(|u| o.attributes.iter().position(|a| a.uuid == u)) {
            let current = o.attributes[j].clone();
            mentioned.insert(current.uuid);
            let mut merged =
                merge_attribute(caller, &current, m).map_err(|e| save_fail(EDIT, e))?;
            check_sharing_group(
                store,
                caller,
                merged.distribution,
                merged.sharing_group_id,
                merged.sharing_group.as_ref(),
            )
            .map_err(|e| save_fail(EDIT, e))?;
            merged.timestamp = current.timestamp;
            if merged != current {
                merged.timestamp = newer(ts, current.timestamp);
                o.attributes[j] = merged;
            }
            continue;
        }
        let mut a = parse_attribute(item).map_err(|e| save_fail(EDIT, e))?;
        admit_tags(caller, &mut a.tags);
        check_sharing_group(
            store,
            caller,
            a.distribution,
            a.sharing_group_id,
            a.sharing_group.as_ref(),
        )
        .map_err(|e| save_fail(EDIT, e))?;
        if a.uuid.is_nil() {
            a.uuid = Uuid::new_v4();
        } else if uuid_taken(store, ev, a.uuid)? || mentioned.contains(&a.uuid) {
            return Err(save_fail(
                EDIT,
                field_error(
                    "uuid",
                    format!("{} is already used by another element.", a.uuid),
                ),
            ));
        }
        a.timestamp = ts;
        mentioned.insert(a.uuid);
        o.attributes.push(a);
    }
    for a in &mut o.attributes {
        if !mentioned.contains(&a.uuid) && !a.deleted {
            a.deleted = true;
            a.timestamp = newer(ts, a.timestamp);
        }
    }
    Ok(())
}

/// `POST objects/edit/<id|uuid>`: header fields (comment, distribution, sharing
/// group, first/last seen, template version) and, when an `Attribute` list is
/// given, the attributes as MISP's `deltaMerge`. Answers `{"Object": O}`.
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: RawBody,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let Value::Object(patch) = unwrap_key(body.json_value()?, "Object") else {
        return Err(ApiError::BadRequest("The body must be an object.".into()));
    };
    let items: Option<Vec<Value>> = match patch.get("Attribute") {
        Some(Value::Array(a)) if !a.is_empty() => Some(a.clone()),
        _ => None,
    };
    // `"deleted": true` deletes the object (soft, with its attributes), as
    // MISP's `MispObject::editObject` does: PyMISP's `update_object` of an
    // object marked `deleted` sends exactly that.
    let delete = truthy(patch.get("deleted"));
    let store = state.store.clone();
    let c2 = caller.clone();
    let (stored, uuid) = blocking(move || {
        let (ev, uuid) = load_for_change(&store, &c2, &id, false)?;
        let (stored, ()) = modify_event(&store, &ev.uuid, true, |ev, ts| {
            let i = check_object(&c2, ev, uuid, false)?;
            if delete {
                if ev.objects[i].deleted {
                    return Ok(Edit::Nothing(()));
                }
                soft_delete_object(ev, i, ts);
                return Ok(Edit::Write(()));
            }
            let current = ev.objects[i].clone();
            let mut o = merge_header(&current, &patch).map_err(|e| save_fail(EDIT, e))?;
            check_sharing_group(
                &store,
                &c2,
                o.distribution,
                o.sharing_group_id,
                o.sharing_group.as_ref(),
            )
            .map_err(|e| save_fail(EDIT, e))?;
            o.timestamp = newer(ts, current.timestamp);
            if let Some(items) = &items {
                merge_attributes(&store, &c2, ev, &mut o, items)?;
            }
            ev.objects[i] = o;
            Ok(Edit::Write(()))
        })
        .map_err(|e| named_refusal(e, EDIT))?;
        Ok((stored, uuid))
    })
    .await?;
    super::audited::subject(uuid);
    super::audited::event(stored.uuid);
    tracing::info!(user = caller.user.id, object = %uuid, "object edited");
    let o = object_view(&caller.viewer(), &stored, uuid).ok_or_else(invalid_object)?;
    Ok(Json(json!({"Object": o})).into_response())
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
        let (ev, uuid) = load_for_change(&store, &c2, &id, hard)?;
        if hard {
            if !store.hard_delete_children(&ev.uuid, &[], &[uuid], &[], Durability::Flush)? {
                return Err(invalid_object());
            }
            return Ok(uuid);
        }
        modify_event(&store, &ev.uuid, true, |ev, ts| {
            let i = check_object(&c2, ev, uuid, false)?;
            // With its attributes and the references to it (MISP does the same).
            soft_delete_object(ev, i, ts);
            Ok(Edit::Write(()))
        })?;
        Ok(uuid)
    })
    .await?;
    super::audited::subject(uuid);
    tracing::info!(user = caller.user.id, object = %uuid, hard, "object deleted");
    Ok(Json(save_success("Object deleted", None)).into_response())
}

/// `POST objects/delete/<id|uuid>`, body `{}` (soft) or `{"hard": 1}`: MISP's
/// saveSuccess with message "Object deleted".
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

/// `POST objects/delete/<id>/<hard>`: MISP's positional form.
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

#[cfg(test)]
mod tests {
    use crate::api::testkit::{Kit, NO_PERMISSION};
    use axum::http::StatusCode;
    use serde_json::{json, Value};

    fn domain_ip(domain: &str, ip: &str) -> Value {
        json!({
            "name": "domain-ip", "meta-category": "network", "description": "A domain and IP address seen as a tuple",
            "template_uuid": "43b3b146-77eb-4931-b4cc-b66c60f28734", "template_version": "11",
            "distribution": "5", "sharing_group_id": "0", "comment": "pair",
            "Attribute": [
                {"type": "domain", "object_relation": "domain", "value": domain, "category": "Network activity", "to_ids": true, "disable_correlation": false},
                {"type": "ip-dst", "object_relation": "ip", "value": ip, "distribution": "5"}
            ]
        })
    }

    #[tokio::test]
    async fn add_view_edit_delete() {
        let k = Kit::new();
        let (eid, _) = k
            .event(&k.a, json!({"info": "objects", "distribution": "1"}))
            .await;
        let (st, v) = k
            .call(
                "POST",
                &format!("/objects/add/{eid}"),
                &k.a,
                Some(domain_ip("A.example", "192.0.2.1")),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let o = v["Object"].clone();
        let (oid, ouuid) = (
            o["id"].as_str().unwrap().to_owned(),
            o["uuid"].as_str().unwrap().to_owned(),
        );
        assert_eq!(o["event_id"], eid.as_str());
        assert_eq!(o["Attribute"].as_array().unwrap().len(), 2);
        assert_eq!(o["Attribute"][0]["value"], "a.example");
        assert_eq!(o["Attribute"][0]["object_id"], oid.as_str());
        assert_eq!(
            oid,
            o["Attribute"][0]["id"].as_str().unwrap(),
            "object id = its first attribute's id"
        );

        for key in [&oid, &ouuid] {
            let (st, v) = k
                .call("GET", &format!("/objects/view/{key}"), &k.a, None)
                .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            assert_eq!(v["Object"]["uuid"], ouuid.as_str());
            let (st, _) = k
                .call("HEAD", &format!("/objects/view/{key}"), &k.a, None)
                .await;
            assert_eq!(st, StatusCode::OK);
        }
        let (st, v) = k.call("GET", "/objects/view/77", &k.a, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
        let (st, _) = k.call("HEAD", "/objects/view/77", &k.a, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);

        // breakOnDuplicate refuses the same object again.
        let (st, v) = k
            .call(
                "POST",
                &format!("/objects/add/{eid}/breakOnDuplicate:1"),
                &k.a,
                Some(domain_ip("a.example", "192.0.2.1")),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");

        // Edit: header field, one attribute changed, one kept, one added.
        let dom = o["Attribute"][0].clone();
        let ip = o["Attribute"][1].clone();
        let body = json!({"comment": "edited", "Attribute": [
            {"uuid": dom["uuid"], "type": "domain", "object_relation": "domain", "value": "b.example"},
            ip.clone(),
            {"type": "port", "object_relation": "port", "value": "443"}
        ]});
        let (st, v) = k
            .call("POST", &format!("/objects/edit/{ouuid}"), &k.a, Some(body))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let e = &v["Object"];
        assert_eq!(e["comment"], "edited");
        assert_eq!(e["id"], oid.as_str());
        let vals: Vec<&str> = e["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["value"].as_str().unwrap())
            .collect();
        assert_eq!(vals, ["b.example", "192.0.2.1", "443"]);
        assert_eq!(
            e["Attribute"][1]["timestamp"], ip["timestamp"],
            "unchanged attribute keeps its timestamp"
        );
        assert!(
            k.state
                .store
                .lookup_value("b.example", false, 5)
                .unwrap()
                .len()
                == 1
        );
        assert!(k
            .state
            .store
            .lookup_value("a.example", true, 5)
            .unwrap()
            .is_empty());

        // Leaving the port out soft-deletes it.
        let keep: Vec<Value> = e["Attribute"].as_array().unwrap()[..2].to_vec();
        let (st, v) = k
            .call(
                "POST",
                &format!("/objects/edit/{oid}"),
                &k.a,
                Some(json!({"Attribute": keep})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["Object"]["Attribute"].as_array().unwrap().len(), 2);

        // An object attribute can go (soft or hard) only while the object still fits
        // its template: domain-ip needs one of ip, domain, hostname.
        let obj_attrs = v["Object"]["Attribute"].clone();
        let (dom_uuid, ip_uuid) = (
            obj_attrs[0]["uuid"].as_str().unwrap(),
            obj_attrs[1]["uuid"].as_str().unwrap(),
        );
        let (st, v) = k
            .call(
                "POST",
                &format!("/attributes/delete/{ip_uuid}"),
                &k.a,
                Some(json!({"hard": 1})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        for body in [json!({}), json!({"hard": 1})] {
            let (st, v) = k
                .call(
                    "POST",
                    &format!("/attributes/delete/{dom_uuid}"),
                    &k.a,
                    Some(body),
                )
                .await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
            assert!(v["message"].as_str().unwrap().contains("domain-ip"), "{v}");
        }
        let (st, v) = k
            .call("GET", &format!("/objects/view/{oid}"), &k.a, None)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["Object"]["Attribute"].as_array().unwrap().len(), 1);

        // Soft delete, then again (404), then hard.
        let (st, v) = k
            .call(
                "POST",
                &format!("/objects/delete/{oid}"),
                &k.a,
                Some(json!({})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["message"], "Object deleted");
        assert_eq!(v["saved"], true);
        assert!(k
            .state
            .store
            .lookup_value("b.example", false, 5)
            .unwrap()
            .is_empty());
        let ev = k.get_event(&eid).await;
        assert_eq!(ev["Object"][0]["deleted"], true);
        assert!(ev["Object"][0]["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["deleted"] == true));
        let (st, _) = k
            .call(
                "POST",
                &format!("/objects/delete/{oid}"),
                &k.a,
                Some(json!({})),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let (st, v) = k
            .call(
                "POST",
                &format!("/objects/delete/{ouuid}"),
                &k.a,
                Some(json!({"hard": 1})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (st, _) = k
            .call("GET", &format!("/objects/view/{ouuid}"), &k.a, None)
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert!(k
            .state
            .store
            .lookup_value("b.example", true, 5)
            .unwrap()
            .is_empty());
        assert!(k
            .state
            .store
            .locate(&ouuid.parse().unwrap())
            .unwrap()
            .is_none());
        assert_eq!(k.get_event(&eid).await["Object"], json!([]));
    }

    #[tokio::test]
    async fn template_violations_and_rights() {
        let k = Kit::new();
        let (eid, _) = k
            .event(&k.a, json!({"info": "objects", "distribution": "1"}))
            .await;
        let before = k.get_event(&eid).await;
        for bad in [
            json!({"name": "fiel", "Attribute": [{"type": "md5", "object_relation": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e"}]}),
            json!({"name": "domain-ip", "Attribute": [{"type": "md5", "object_relation": "domain", "value": "d41d8cd98f00b204e9800998ecf8427e"}]}),
            json!({"name": "domain-ip", "Attribute": [{"type": "text", "object_relation": "text", "value": "no ip, no domain"}]}),
            json!({"name": "domain-ip", "Attribute": [{"type": "domain", "value": "no.relation.example"}]}),
        ] {
            let (st, v) = k
                .call("POST", &format!("/objects/add/{eid}"), &k.a, Some(bad))
                .await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
            assert_eq!(v["name"], "Could not add Object");
            assert!(v["message"].is_string());
        }
        assert_eq!(k.get_event(&eid).await, before);

        let (st, v) = k
            .call(
                "POST",
                &format!("/objects/add/{eid}"),
                &k.a,
                Some(domain_ip("c.example", "192.0.2.3")),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let ouuid = v["Object"]["uuid"].as_str().unwrap().to_owned();
        // An edit breaking the template is refused too.
        let (st, v) = k
            .call("POST", &format!("/objects/edit/{ouuid}"), &k.a, Some(json!({"Attribute": [{"type": "md5", "object_relation": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e"}]})))
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");

        // Other org: visible but not its own → 403; read-only → 403.
        for key in [&k.b, &k.a_ro] {
            for (p, b) in [
                (
                    format!("/objects/add/{eid}"),
                    domain_ip("d.example", "192.0.2.4"),
                ),
                (format!("/objects/edit/{ouuid}"), json!({"comment": "x"})),
                (format!("/objects/delete/{ouuid}"), json!({"hard": 1})),
            ] {
                let (st, v) = k.call("POST", &p, key, Some(b)).await;
                assert_eq!(st, StatusCode::FORBIDDEN, "{p}: {v}");
                assert_eq!(v["message"], NO_PERMISSION);
            }
        }
        // Invisible (distribution 0 event of another org) → like unknown.
        let (hid, _) = k
            .event(&k.a, json!({"info": "hidden", "distribution": "0"}))
            .await;
        let (_, v) = k
            .call(
                "POST",
                &format!("/objects/add/{hid}"),
                &k.a,
                Some(domain_ip("e.example", "192.0.2.5")),
            )
            .await;
        let hidden = v["Object"]["uuid"].as_str().unwrap().to_owned();
        for (m, p) in [
            ("GET", format!("/objects/view/{hidden}")),
            ("POST", format!("/objects/delete/{hidden}")),
        ] {
            let (st, v) = k.call(m, &p, &k.b, Some(json!({}))).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
            assert_eq!(v["message"], "Invalid object.");
        }
        let (st, _) = k
            .call(
                "POST",
                &format!("/objects/add/{hid}"),
                &k.b,
                Some(domain_ip("f.example", "192.0.2.6")),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }
}
