//! Organisations, at MISP's paths: `admin/organisations/add|edit`,
//! `organisations/index`, `organisations/view/<id|uuid|name>`.

use super::auth::Caller;
use super::body::{field, set_strings, RawBody};
use super::elements::truthy;
use super::error::ApiError;
use super::{blocking, AppState};
use crate::store::accounts::OrgRecord;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use uuid::Uuid;

pub fn org_json(o: &OrgRecord) -> Value {
    json!({
        "id": o.id.to_string(), "name": o.name, "uuid": o.uuid, "local": o.local,
        "description": o.description, "nationality": o.nationality, "sector": o.sector,
        "date_created": o.created.to_string(), "type": "", "contacts": "",
    })
}

/// Resolves an organisation given as a local id, a uuid or a name.
pub(super) fn resolve_org(state: &AppState, v: &Value) -> Result<Option<OrgRecord>, ApiError> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Ok(None),
    };
    if let Ok(u) = s.parse::<Uuid>() {
        return Ok(state.store.org(&u)?);
    }
    if let Ok(id) = s.parse::<u64>() {
        return Ok(state.store.org_by_id(id)?);
    }
    Ok(state
        .store
        .orgs()?
        .into_iter()
        .find(|o| o.name.eq_ignore_ascii_case(&s)))
}

/// `admin/organisations/add` (site admins): an organisation of another CERT is
/// added with its own uuid, so data and sharing groups match it across nodes.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(caller.role.perm_site_admin)?;
    let v = super::body::unwrap_key(body.json_value()?, "Organisation");
    let name = field(&v, "name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::refused("Could not add Organisation", "name", "A name is required.")
        })?
        .to_owned();
    let uuid = match field(&v, "uuid").and_then(Value::as_str) {
        Some(u) => u.parse::<Uuid>().map_err(|_| {
            ApiError::refused("Could not add Organisation", "uuid", "Not a valid UUID.")
        })?,
        None => Uuid::new_v4(),
    };
    if state.store.org(&uuid)?.is_some() {
        return Err(ApiError::refused(
            "Could not add Organisation",
            "uuid",
            "An organisation with this UUID already exists.",
        ));
    }
    let local = field(&v, "local").map(|l| truthy(Some(l))).unwrap_or(true);
    let store = state.store.clone();
    let mut org = blocking(move || Ok(store.add_org(uuid, &name, local)?)).await?;
    for (k, slot) in [
        ("description", &mut org.description),
        ("nationality", &mut org.nationality),
        ("sector", &mut org.sector),
    ] {
        if let Some(s) = field(&v, k).and_then(Value::as_str) {
            *slot = s.to_owned();
        }
    }
    state.store.update_org(&org)?;
    super::audited::subject(org.uuid);
    tracing::info!(by = caller.user.id, org = %org.uuid, name = %org.name, "organisation added");
    Ok(Json(json!({"Organisation": org_json(&org)})))
}

pub async fn index(
    State(state): State<AppState>,
    _caller: Caller,
    axum::Extension(named): axum::Extension<super::body::NamedParams>,
) -> Result<Json<Value>, ApiError> {
    let scope = named.get("scope").unwrap_or("local").to_owned();
    // MISP's `searchall` (also `all`, `quickFilter`): a substring of the
    // name, description, nationality, sector or uuid, any case
    // (`OrganisationsController::index`); PyMISP's `organisations(search=)`.
    let search = named
        .get("searchall")
        .or_else(|| named.get("all"))
        .or_else(|| named.get("quickFilter"))
        .map(|s| s.trim_matches('%').to_lowercase());
    let orgs: Vec<Value> = state
        .store
        .orgs()?
        .iter()
        .filter(|o| scope == "all" || (scope == "external") != o.local)
        .filter(|o| {
            search.as_ref().is_none_or(|s| {
                [
                    &o.name,
                    &o.description,
                    &o.nationality,
                    &o.sector,
                    &o.uuid.to_string(),
                ]
                .iter()
                .any(|f| f.to_lowercase().contains(s.as_str()))
            })
        })
        .map(|o| json!({"Organisation": org_json(o)}))
        .collect();
    Ok(Json(Value::Array(orgs)))
}

pub async fn view(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let org = resolve_org(&state, &Value::String(id))?
        .ok_or_else(|| ApiError::NotFound("Invalid organisation".into()))?;
    Ok(Json(json!({"Organisation": org_json(&org)})))
}

/// `admin/organisations/edit/<id|uuid>` (site admins): MISP takes `name`,
/// `description`, `nationality`, `sector` and `local` from the body, keeps
/// the stored value of every field left out, and answers the organisation as
/// stored (`OrganisationsController::admin_edit`). The uuid identifies the
/// organisation across nodes, so a body naming another uuid is refused.
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(caller.role.perm_site_admin)?;
    let mut org = resolve_org(&state, &Value::String(id))?
        .ok_or_else(|| ApiError::NotFound("Invalid organisation".into()))?;
    super::audited::subject(org.uuid);
    let v = super::body::unwrap_key(body.json_value()?, "Organisation");
    if let Some(u) = field(&v, "uuid") {
        if u.as_str().and_then(|s| s.parse::<Uuid>().ok()) != Some(org.uuid) {
            return Err(ApiError::refused(
                "Could not edit Organisation",
                "uuid",
                "The uuid of an organisation cannot be changed.",
            ));
        }
    }
    set_strings(
        &v,
        &mut [
            ("name", &mut org.name),
            ("description", &mut org.description),
            ("nationality", &mut org.nationality),
            ("sector", &mut org.sector),
        ],
        |k| ApiError::refused("Could not edit Organisation", k, "Not a string."),
    )?;
    if let Some(l) = field(&v, "local") {
        org.local = truthy(Some(l));
    }
    let store = state.store.clone();
    let uuid = org.uuid;
    let stored = blocking(move || {
        store.update_org(&org)?;
        Ok(store.org(&uuid)?)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound("Invalid organisation".into()))?;
    tracing::info!(by = caller.user.id, org = %stored.uuid, name = %stored.name, "organisation edited");
    Ok(Json(json!({"Organisation": org_json(&stored)})))
}
