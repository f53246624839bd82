//! Users, organisations and API keys, at MISP's paths (`users/view/me`,
//! `admin/users/add`, `auth_keys/add/<user>`, `admin/organisations/add`, …).

use super::auth::Caller;
use super::body::RawBody;
use super::error::ApiError;
use super::{blocking, AppState};
use crate::policy::roles;
use crate::store::accounts::{OrgRecord, UserRecord};
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

fn user_json(u: &UserRecord, org: Option<&OrgRecord>) -> Value {
    json!({
        "id": u.id.to_string(),
        "org_id": org.map(|o| o.id.to_string()).unwrap_or_default(),
        "email": u.email,
        "role_id": u.role_id.to_string(),
        "disabled": u.disabled,
        "autoalert": false,
        "contactalert": false,
        "termsaccepted": true,
        "change_pw": false,
        "date_created": u.created.to_string(),
        "Organisation": org.map(org_json),
    })
}

fn role_json(r: &roles::Role) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// `users/view/me` or `users/view/<id>`.
pub async fn view(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = if id == "me" {
        caller.user.clone()
    } else {
        let id: u64 = id
            .parse()
            .map_err(|_| ApiError::NotFound("Invalid user".into()))?;
        let u = state
            .store
            .user(id)?
            .ok_or_else(|| ApiError::NotFound("Invalid user".into()))?;
        // Site admins see every user, org admins their org's, everyone else themselves.
        let allowed = caller.role.perm_site_admin
            || u.id == caller.user.id
            || (caller.role.perm_admin && u.org == caller.org.uuid);
        if !allowed {
            return Err(ApiError::NotFound("Invalid user".into()));
        }
        u
    };
    let org = state.store.org(&user.org)?;
    let role = roles::by_id(user.role_id).unwrap_or(roles::READ_ONLY);
    Ok(Json(json!({
        "User": user_json(&user, org.as_ref()),
        "Role": role_json(&role),
        "Organisation": org.as_ref().map(org_json),
        "UserSetting": [],
    })))
}

fn field<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.get(k).filter(|x| !x.is_null())
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Resolves an organisation given as a local id, a uuid or a name.
fn resolve_org(state: &AppState, v: &Value) -> Result<Option<OrgRecord>, ApiError> {
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

/// `admin/users/add`: site admins anywhere, org admins in their own organisation.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(caller.role.perm_admin)?;
    let v = super::body::unwrap_key(body.json_value()?, "User");
    let email = field(&v, "email").and_then(Value::as_str).ok_or_else(|| {
        ApiError::refused(
            "Could not add User",
            "email",
            "An e-mail address is required.",
        )
    })?;
    let org = match field(&v, "org_id") {
        Some(o) => resolve_org(&state, o)?.ok_or_else(|| {
            ApiError::refused("Could not add User", "org_id", "Unknown organisation.")
        })?,
        None => caller.org.clone(),
    };
    if !caller.role.perm_site_admin && org.uuid != caller.org.uuid {
        return Err(ApiError::Forbidden);
    }
    let role_id = field(&v, "role_id")
        .and_then(as_u64)
        .unwrap_or(roles::USER.id);
    let role = roles::by_id(role_id)
        .ok_or_else(|| ApiError::refused("Could not add User", "role_id", "Unknown role."))?;
    // An org admin cannot mint site admins or peer (sync) identities.
    if !caller.role.perm_site_admin && (role.perm_site_admin || role.perm_sync) {
        return Err(ApiError::Forbidden);
    }
    let store = state.store.clone();
    let email = email.to_owned();
    let (user, org) = blocking(move || {
        let u = store.add_user(&email, org.uuid, role_id)?;
        Ok((u, org))
    })
    .await?;
    super::audited::subject(format!("user {} {}", user.id, user.email));
    tracing::info!(by = caller.user.id, user = user.id, email = %user.email, "user added");
    Ok(Json(json!({"User": user_json(&user, Some(&org))})))
}

fn visible_users(state: &AppState, caller: &Caller) -> Result<Vec<UserRecord>, ApiError> {
    Ok(state
        .store
        .users()?
        .into_iter()
        .filter(|u| {
            caller.role.perm_site_admin
                || (caller.role.perm_admin && u.org == caller.org.uuid)
                || u.id == caller.user.id
        })
        .collect())
}

pub async fn index(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(caller.role.perm_admin)?;
    let mut out = Vec::new();
    for u in visible_users(&state, &caller)? {
        let org = state.store.org(&u.org)?;
        let role = roles::by_id(u.role_id).unwrap_or(roles::READ_ONLY);
        out.push(json!({"User": user_json(&u, org.as_ref()), "Role": role_json(&role), "Organisation": org.as_ref().map(org_json)}));
    }
    Ok(Json(Value::Array(out)))
}

pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    super::audited::subject(format!("user {id}"));
    caller.require(caller.role.perm_admin)?;
    let mut u = visible_users(&state, &caller)?
        .into_iter()
        .find(|u| u.id == id)
        .ok_or_else(|| ApiError::NotFound("Invalid user".into()))?;
    let v = super::body::unwrap_key(body.json_value()?, "User");
    if let Some(d) = field(&v, "disabled") {
        u.disabled = matches!(d, Value::Bool(true)) || as_u64(d) == Some(1);
    }
    if let Some(r) = field(&v, "role_id").and_then(as_u64) {
        let role = roles::by_id(r)
            .ok_or_else(|| ApiError::refused("Could not edit User", "role_id", "Unknown role."))?;
        if !caller.role.perm_site_admin && (role.perm_site_admin || role.perm_sync) {
            return Err(ApiError::Forbidden);
        }
        u.role_id = r;
    }
    state.store.update_user(&u)?;
    tracing::info!(by = caller.user.id, user = u.id, "user edited");
    let org = state.store.org(&u.org)?;
    Ok(Json(json!({"User": user_json(&u, org.as_ref())})))
}

/// Disables the user (their keys stop working); users are never erased, so the
/// audit trail keeps its referents.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    super::audited::subject(format!("user {id}"));
    caller.require(caller.role.perm_admin)?;
    let mut u = visible_users(&state, &caller)?
        .into_iter()
        .find(|u| u.id == id)
        .ok_or_else(|| ApiError::NotFound("Invalid user".into()))?;
    u.disabled = true;
    state.store.update_user(&u)?;
    tracing::info!(by = caller.user.id, user = u.id, "user disabled");
    Ok(Json(super::error::save_success(
        "User deleted.",
        Some(u.id),
    )))
}

/// `auth_keys/add/<user id>`: a new key, shown once as `authkey_raw`.
pub async fn add_auth_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let target = if user == "me" {
        caller.user.id
    } else {
        user.parse()
            .map_err(|_| ApiError::NotFound("Invalid user".into()))?
    };
    super::audited::subject(format!("user {target}"));
    let allowed = target == caller.user.id
        || caller.role.perm_site_admin
        || (caller.role.perm_admin
            && visible_users(&state, &caller)?
                .iter()
                .any(|u| u.id == target));
    if !allowed || caller.role.perm_sync {
        return Err(ApiError::Forbidden);
    }
    let v = super::body::unwrap_key(body.json_value()?, "AuthKey");
    // MISP can make a key read-only; here a key carries its user's role and
    // nothing narrower, so asking for a read-only key is refused rather than
    // answered with a key that can write (MISP's CVE-2026-94381: a "read-only"
    // key with its user's full rights). Anything but a plain "no" is a request.
    if let Some(ro) = field(&v, "read_only") {
        let no = matches!(ro, Value::Bool(false))
            || as_u64(ro) == Some(0)
            || ro
                .as_str()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case("false"));
        if !no {
            return Err(ApiError::refused(
                "Could not add the auth key",
                "read_only",
                "read-only API keys are not supported by this node (a key has its user's role); create a user with the read-only role instead",
            ));
        }
    }
    let comment = field(&v, "comment")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let expiration = field(&v, "expiration").and_then(as_u64).unwrap_or(0);
    let store = state.store.clone();
    let (key, rec) =
        blocking(move || Ok(store.add_auth_key(target, &comment, expiration)?)).await?;
    super::audited::subject(format!(
        "auth key {} ({}…{})",
        rec.id, rec.key_start, rec.key_end
    ));
    tracing::info!(
        by = caller.user.id,
        user = target,
        key = rec.id,
        "auth key created"
    );
    Ok(Json(json!({"AuthKey": {
        "id": rec.id.to_string(), "uuid": rec.uuid, "user_id": rec.user_id.to_string(),
        "authkey_start": rec.key_start, "authkey_end": rec.key_end,
        "created": rec.created.to_string(), "expiration": rec.expiration.to_string(),
        "comment": rec.comment, "authkey_raw": key,
    }})))
}

pub async fn auth_key_index(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let users: Vec<u64> = visible_users(&state, &caller)?
        .iter()
        .map(|u| u.id)
        .collect();
    let keys: Vec<Value> = state
        .store
        .auth_keys()?
        .into_iter()
        .filter(|k| users.contains(&k.user_id))
        .map(|k| json!({"AuthKey": {"id": k.id.to_string(), "uuid": k.uuid, "user_id": k.user_id.to_string(),
            "authkey_start": k.key_start, "authkey_end": k.key_end, "created": k.created.to_string(),
            "expiration": k.expiration.to_string(), "comment": k.comment}}))
        .collect();
    Ok(Json(Value::Array(keys)))
}

/// `admin/organisations/add` (site admins): an organisation of another CERT is
/// added with its own uuid, so data and sharing groups match it across nodes.
pub async fn add_org(
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
    let local = field(&v, "local")
        .map(|l| matches!(l, Value::Bool(true)) || as_u64(l) == Some(1))
        .unwrap_or(true);
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

pub async fn org_index(
    State(state): State<AppState>,
    _caller: Caller,
    axum::Extension(named): axum::Extension<super::body::NamedParams>,
) -> Result<Json<Value>, ApiError> {
    let scope = named.get("scope").unwrap_or("local").to_owned();
    let orgs: Vec<Value> = state
        .store
        .orgs()?
        .iter()
        .filter(|o| scope == "all" || (scope == "external") != o.local)
        .map(|o| json!({"Organisation": org_json(o)}))
        .collect();
    Ok(Json(Value::Array(orgs)))
}

pub async fn view_org(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let org = resolve_org(&state, &Value::String(id))?
        .ok_or_else(|| ApiError::NotFound("Invalid organisation".into()))?;
    Ok(Json(json!({"Organisation": org_json(&org)})))
}
