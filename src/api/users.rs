//! Users, at MISP's paths: `users/view/<id|me>`, `admin/users/add|index|view|edit|delete`.

use super::auth::Caller;
use super::body::{as_u64, field, RawBody};
use super::error::ApiError;
use super::organisations::{org_json, resolve_org};
use super::{blocking, AppState};
use crate::policy::roles;
use crate::store::accounts::{OrgRecord, UserRecord};
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

fn user_json(u: &UserRecord, org: Option<&OrgRecord>) -> Value {
    // MISP's `users` row (ids and counters as strings, flags as booleans);
    // the fields this node does not keep have MISP's defaults.
    json!({
        "id": u.id.to_string(),
        "org_id": org.map(|o| o.id.to_string()).unwrap_or_default(),
        "server_id": "0",
        "email": u.email,
        "autoalert": false,
        "invited_by": "0",
        "gpgkey": "",
        "certif_public": "",
        "nids_sid": "0",
        "termsaccepted": true,
        "newsread": "0",
        "role_id": u.role_id.to_string(),
        "change_pw": false,
        "contactalert": false,
        "disabled": u.disabled,
        "expiration": null,
        "current_login": "0",
        "last_login": "0",
        "force_logout": false,
        "date_created": u.created.to_string(),
        "date_modified": u.created.to_string(),
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
    // No role given: the default role a site admin set (MISP's
    // `default_role`), else User.
    let role_id = match field(&v, "role_id").and_then(as_u64) {
        Some(r) => r,
        None => state.store.default_role()?.unwrap_or(roles::USER.id),
    };
    let role = roles::by_id(role_id)
        .ok_or_else(|| ApiError::refused("Could not add User", "role_id", "Unknown role."))?;
    // An org admin cannot mint site admins or peer (sync) identities.
    if !caller.role.perm_site_admin && (role.perm_site_admin || role.perm_sync) {
        return Err(ApiError::Forbidden);
    }
    let store = state.store.clone();
    let email = email.to_owned();
    // MISP (advanced auth keys) creates the user's first key with the user
    // and answers it, in clear, as `User.authkey`: provisioning scripts log in
    // with it (`UsersController::admin_add`, `AuthKey::createnewkey`).
    let (user, org, key) = blocking(move || {
        let u = store.add_user(&email, org.uuid, role_id)?;
        let (key, _) = store.add_auth_key(u.id, "created with the user", 0)?;
        Ok((u, org, key))
    })
    .await?;
    super::audited::subject(format!("user {} {}", user.id, user.email));
    tracing::info!(by = caller.user.id, user = user.id, email = %user.email, "user added");
    let mut u = user_json(&user, Some(&org));
    u["authkey"] = Value::String(key);
    u["password"] = Value::String("******".into());
    Ok(Json(json!({ "User": u })))
}

pub(super) fn visible_users(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<UserRecord>, ApiError> {
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

/// One `admin/users/index` filter term (MISP's `searchemail:` etc.): terms
/// separated by `|`, a leading `!` negates one; a row passes if it matches
/// any positive term (or there is none) and no negated one.
fn matches_terms(filter: &str, candidates: &[String]) -> bool {
    let mut positive = false;
    let mut hit = false;
    for term in filter.split('|').map(str::trim).filter(|t| !t.is_empty()) {
        let (neg, t) = match term.strip_prefix('!') {
            Some(t) => (true, t.to_lowercase()),
            None => (false, term.to_lowercase()),
        };
        let found = candidates.iter().any(|c| c.to_lowercase().contains(&t));
        if neg && found {
            return false;
        }
        if !neg {
            positive = true;
            hit |= found;
        }
    }
    !positive || hit
}

/// `admin/users/index`: the users the caller administers, as
/// `[{"User", "Role", "Organisation"}]`, filtered by MISP's named parameters
/// (`UsersController::admin_index`): `value` (or `searchall`, `all`) in the
/// e-mail, organisation name or role name; `searchemail`, `searchorg` (id,
/// uuid or name), `searchrole` (id or name), each with `|` and `!`; and
/// `searchdisabled:0|1`. PyMISP's `users(search=…, organisation=…)` sends
/// `value:` and `searchorg:`.
pub async fn index(
    State(state): State<AppState>,
    caller: Caller,
    axum::Extension(named): axum::Extension<super::body::NamedParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(caller.role.perm_admin)?;
    let all = named
        .get("value")
        .or_else(|| named.get("searchall"))
        .or_else(|| named.get("all"))
        .map(str::to_owned);
    let mut out = Vec::new();
    for u in visible_users(&state, &caller)? {
        let org = state.store.org(&u.org)?;
        let role = roles::by_id(u.role_id).unwrap_or(roles::READ_ONLY);
        let org_name = org.as_ref().map(|o| o.name.clone()).unwrap_or_default();
        if let Some(a) = &all {
            let a = a.trim_matches('%');
            if !matches_terms(
                a,
                &[u.email.clone(), org_name.clone(), role.name.to_owned()],
            ) {
                continue;
            }
        }
        if let Some(f) = named.get("searchemail") {
            if !matches_terms(f, std::slice::from_ref(&u.email)) {
                continue;
            }
        }
        if let Some(f) = named.get("searchorg") {
            let ids = org
                .as_ref()
                .map(|o| vec![o.id.to_string(), o.uuid.to_string(), o.name.clone()])
                .unwrap_or_default();
            // Ids and uuids match whole; names by substring.
            let exact = f
                .split('|')
                .any(|t| ids[..ids.len().min(2)].iter().any(|i| i == t.trim()));
            let negated = f.split('|').any(|t| {
                t.trim()
                    .strip_prefix('!')
                    .is_some_and(|t| ids.iter().any(|i| i.eq_ignore_ascii_case(t)))
            });
            if negated || !(exact || matches_terms(f, &ids[ids.len().min(2)..])) {
                continue;
            }
        }
        if let Some(f) = named.get("searchrole") {
            if !matches_terms(f, &[u.role_id.to_string(), role.name.to_owned()]) {
                continue;
            }
        }
        if let Some(f) = named.get("searchdisabled") {
            if (f == "1") != u.disabled {
                continue;
            }
        }
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
    if let Some(e) = field(&v, "email") {
        let e = e.as_str().ok_or_else(|| {
            ApiError::refused("Could not edit User", "email", "Not an e-mail address.")
        })?;
        u.email = e.to_owned();
    }
    if let Some(o) = field(&v, "org_id") {
        let org = resolve_org(&state, o)?.ok_or_else(|| {
            ApiError::refused("Could not edit User", "org_id", "Invalid organisation")
        })?;
        // Only site admins move users between organisations (MISP drops
        // `org_id` from an org admin's edit; moving is refused here instead
        // of silently ignored).
        if org.uuid != u.org {
            if !caller.role.perm_site_admin {
                return Err(ApiError::Forbidden);
            }
            u.org = org.uuid;
        }
    }
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
    // Answered as stored (the e-mail normalised), as MISP re-reads the row.
    let u = state
        .store
        .user(u.id)?
        .ok_or_else(|| ApiError::NotFound("Invalid user".into()))?;
    let org = state.store.org(&u.org)?;
    let mut u = user_json(&u, org.as_ref());
    u["password"] = Value::String("******".into());
    Ok(Json(json!({ "User": u })))
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
