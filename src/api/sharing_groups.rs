//! `sharing_groups/*` (PyMISP also says `sharingGroups/*`; the path normaliser maps
//! one to the other): add, view, index, addOrg, removeOrg, delete.
//!
//! A user sees the groups their organisation belongs to (site admins see all);
//! only the creating organisation (or a member with `extend`) and site admins may
//! change a group.

use super::auth::Caller;
use super::body::{set_strings, unwrap_key, RawBody};
use super::elements::{not_allowed, truthy};
use super::error::{save_success, ApiError};
use super::{blocking, AppState};
use crate::model::sharing_group::SharingGroupOrg;
use crate::model::{Org, SharingGroup};
use crate::store::accounts::OrgRecord;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sharing_groups/add", post(add))
        .route("/sharing_groups/index", get(index))
        .route("/sharing_groups", get(index))
        .route("/sharing_groups/view/{id}", get(view).head(exists))
        .route("/sharing_groups/edit/{id}", post(edit).put(edit))
        .route("/sharing_groups/addOrg", post(add_org_body))
        .route("/sharing_groups/addOrg/{sg}/{org}", post(add_org_path))
        .route("/sharing_groups/removeOrg", post(remove_org_body))
        .route(
            "/sharing_groups/removeOrg/{sg}/{org}",
            post(remove_org_path),
        )
        .route("/sharing_groups/delete/{id}", post(delete).delete(delete))
}

fn visible(caller: &Caller, sg: &SharingGroup) -> bool {
    caller.role.perm_site_admin || sg.has_org(&caller.org.uuid)
}

fn editable(caller: &Caller, sg: &SharingGroup) -> bool {
    caller.role.may_write()
        && (caller.role.perm_site_admin
            || sg.organisation_uuid == caller.org.uuid
            || sg
                .orgs
                .iter()
                .any(|o| o.extend && o.org.uuid == caller.org.uuid))
}

fn org_wire(o: &OrgRecord) -> Org {
    Org {
        id: Some(o.id),
        name: o.name.clone(),
        uuid: o.uuid,
        local: o.local,
    }
}

/// MISP's answer shape: the group, its creator organisation and members.
/// Each `SharingGroupOrg` entry carries MISP's `sharing_group_id` and
/// `org_id` (this node's local ids) beside its `Organisation`.
fn sg_json(store: &crate::store::Store, sg: &SharingGroup, caller: &Caller) -> Value {
    let mut head = serde_json::to_value(sg).unwrap_or(Value::Null);
    let mut orgs = Value::Array(Vec::new());
    let mut servers = Value::Array(Vec::new());
    let mut organisation = Value::Null;
    if let Value::Object(m) = &mut head {
        orgs = m.remove("SharingGroupOrg").unwrap_or(orgs);
        if let Value::Array(entries) = &mut orgs {
            for (entry, member) in entries.iter_mut().zip(&sg.orgs) {
                let local = store.org(&member.org.uuid).ok().flatten().map(|o| o.id);
                entry["org_id"] = json!(local.map(|i| i.to_string()).unwrap_or_default());
                entry["sharing_group_id"] = json!(sg.id.map(|i| i.to_string()).unwrap_or_default());
                if let Some(id) = local {
                    entry["Organisation"]["id"] = json!(id.to_string());
                }
            }
        }
        servers = m.remove("SharingGroupServer").unwrap_or(servers);
        organisation = m.remove("Organisation").unwrap_or(organisation);
        m.insert("org_count".into(), Value::String(sg.orgs.len().to_string()));
    }
    json!({
        "SharingGroup": head,
        "Organisation": organisation,
        "SharingGroupOrg": orgs,
        "SharingGroupServer": servers,
        "editable": editable(caller, sg),
        "deletable": editable(caller, sg),
    })
}

fn not_found() -> ApiError {
    ApiError::NotFound("Invalid sharing group.".into())
}

/// `POST|PUT sharing_groups/edit/<id|uuid>` (the owner organisation or a
/// site admin): `name`, `releasability`, `description`, `active` and
/// `roaming` from the body, applied unless its `modified` is older than the
/// stored one (`SharingGroup::captureSGExisting`); answers the group as
/// `sharing_groups/view` does. MISP's own owner check reads the wrong field,
/// so there an owner's edit silently changes nothing; the intent, followed
/// here, is that the owner may edit. Members are changed with `addOrg` /
/// `removeOrg`.
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let mut sg = load(&state, &caller, &id)?;
    super::audited::subject(sg.uuid);
    if !editable(&caller, &sg) {
        return Err(not_allowed("Action not allowed."));
    }
    let v = unwrap_key(body.json_value()?, "SharingGroup");
    let older = text(v.get("modified")).is_some_and(|m| m < sg.modified);
    if !older {
        set_strings(
            &v,
            &mut [
                ("name", &mut sg.name),
                ("releasability", &mut sg.releasability),
                ("description", &mut sg.description),
            ],
            |f| ApiError::refused("Could not edit SharingGroup", f, "Not a string."),
        )?;
        if let Some(x) = v.get("active").filter(|x| !x.is_null()) {
            sg.active = truthy(Some(x));
        }
        if let Some(x) = v.get("roaming").filter(|x| !x.is_null()) {
            sg.roaming = truthy(Some(x));
        }
        if sg.name.trim().is_empty() {
            return Err(ApiError::refused(
                "Could not edit SharingGroup",
                "name",
                "A name is required.",
            ));
        }
        sg.modified = now_string();
        let store = state.store.clone();
        let saved = sg.clone();
        blocking(move || Ok(store.update_sharing_group(&saved)?)).await?;
        tracing::info!(user = caller.user.id, sg = %sg.uuid, "sharing group edited");
    }
    let sg = load(&state, &caller, &id)?;
    Ok(Json(sg_json(&state.store, &sg, &caller)))
}

fn load(state: &AppState, caller: &Caller, id: &str) -> Result<SharingGroup, ApiError> {
    let sg = state.store.find_sharing_group(id)?.ok_or_else(not_found)?;
    if visible(caller, &sg) {
        Ok(sg)
    } else {
        Err(not_found())
    }
}

fn now_string() -> String {
    let ts = jiff::Timestamp::now();
    ts.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require_write()?;
    let v = unwrap_key(body.json_value()?, "SharingGroup");
    let mut sg: SharingGroup = serde_json::from_value(v.clone())
        .map_err(|e| ApiError::BadRequest(format!("Invalid sharing group: {e}")))?;
    if sg.name.trim().is_empty() {
        return Err(ApiError::refused(
            "Could not add SharingGroup",
            "name",
            "A name is required.",
        ));
    }
    // The creator is the caller's organisation, whatever the body claims.
    sg.organisation_uuid = caller.org.uuid;
    sg.organisation = Some(org_wire(&caller.org));
    if !sg.orgs.iter().any(|o| o.org.uuid == caller.org.uuid) {
        sg.orgs.insert(
            0,
            SharingGroupOrg {
                extend: true,
                org: org_wire(&caller.org),
            },
        );
    }
    sg.created = now_string();
    sg.modified = sg.created.clone();
    let store = state.store.clone();
    let sg = blocking(move || Ok(store.add_sharing_group(sg)?)).await?;
    super::audited::subject(sg.uuid);
    tracing::info!(user = caller.user.id, sg = %sg.uuid, name = %sg.name, "sharing group added");
    Ok(Json(sg_json(&state.store, &sg, &caller)))
}

pub async fn index(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let rows: Vec<Value> = state
        .store
        .sharing_groups()?
        .iter()
        .filter(|sg| visible(&caller, sg))
        .map(|sg| sg_json(&state.store, sg, &caller))
        .collect();
    Ok(Json(json!({"response": rows})))
}

pub async fn view(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let sg = load(&state, &caller, &id)?;
    Ok(Json(sg_json(&state.store, &sg, &caller)))
}

pub async fn exists(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> StatusCode {
    match load(&state, &caller, &id) {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::NOT_FOUND,
    }
}

/// An organisation given as local id, uuid or name.
fn find_org(state: &AppState, id: &str) -> Result<Option<OrgRecord>, ApiError> {
    if let Ok(u) = id.parse::<Uuid>() {
        return Ok(state.store.org(&u)?);
    }
    if let Ok(n) = id.parse::<u64>() {
        return Ok(state.store.org_by_id(n)?);
    }
    Ok(state.store.orgs()?.into_iter().find(|o| o.name == id))
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn change_member(
    state: AppState,
    caller: Caller,
    sg_id: String,
    org_id: String,
    extend: bool,
    add: bool,
) -> Result<Json<Value>, ApiError> {
    let mut sg = load(&state, &caller, &sg_id)?;
    super::audited::subject(sg.uuid);
    if !editable(&caller, &sg) {
        return Err(ApiError::Forbidden);
    }
    let org = find_org(&state, &org_id)?
        .ok_or_else(|| ApiError::NotFound("Invalid organisation.".into()))?;
    if add {
        match sg.orgs.iter_mut().find(|o| o.org.uuid == org.uuid) {
            Some(o) => o.extend = extend,
            None => sg.orgs.push(SharingGroupOrg {
                extend,
                org: org_wire(&org),
            }),
        }
    } else {
        if org.uuid == sg.organisation_uuid {
            return Err(ApiError::refused(
                "Could not remove the organisation",
                "org_id",
                "The creator organisation cannot leave its sharing group.",
            ));
        }
        let before = sg.orgs.len();
        sg.orgs.retain(|o| o.org.uuid != org.uuid);
        if sg.orgs.len() == before {
            return Err(ApiError::NotFound(
                "The organisation is not in this sharing group.".into(),
            ));
        }
    }
    sg.modified = now_string();
    let store = state.store.clone();
    let saved = sg.clone();
    blocking(move || Ok(store.update_sharing_group(&saved)?)).await?;
    super::audited::subject(org.uuid);
    tracing::info!(user = caller.user.id, sg = %sg.uuid, org = %org.uuid, add, "sharing group membership changed");
    let msg = if add {
        "Organisation added to the sharing group."
    } else {
        "Organisation removed from the sharing group."
    };
    Ok(Json(save_success(msg, sg.id)))
}

pub async fn add_org_body(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let v = body.json_value()?;
    let sg =
        text(v.get("sg_id")).ok_or_else(|| ApiError::BadRequest("sg_id is required".into()))?;
    let org =
        text(v.get("org_id")).ok_or_else(|| ApiError::BadRequest("org_id is required".into()))?;
    let extend = matches!(v.get("extend"), Some(Value::Bool(true)))
        || text(v.get("extend")).as_deref() == Some("1");
    change_member(state, caller, sg, org, extend, true).await
}

pub async fn add_org_path(
    State(state): State<AppState>,
    caller: Caller,
    Path((sg, org)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    change_member(state, caller, sg, org, false, true).await
}

pub async fn remove_org_body(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let v = body.json_value()?;
    let sg =
        text(v.get("sg_id")).ok_or_else(|| ApiError::BadRequest("sg_id is required".into()))?;
    let org =
        text(v.get("org_id")).ok_or_else(|| ApiError::BadRequest("org_id is required".into()))?;
    change_member(state, caller, sg, org, false, false).await
}

pub async fn remove_org_path(
    State(state): State<AppState>,
    caller: Caller,
    Path((sg, org)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    change_member(state, caller, sg, org, false, false).await
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let sg = load(&state, &caller, &id)?;
    super::audited::subject(sg.uuid);
    if !editable(&caller, &sg) {
        return Err(ApiError::Forbidden);
    }
    let store = state.store.clone();
    let gone = sg.clone();
    blocking(move || Ok(store.delete_sharing_group(&gone)?)).await?;
    tracing::info!(user = caller.user.id, sg = %sg.uuid, "sharing group deleted");
    // MISP's default saveSuccess message ("<Singular> <action>d"), which
    // PyMISP's live test_sharing_group checks.
    Ok(Json(save_success("SharingGroup deleted", sg.id)))
}
