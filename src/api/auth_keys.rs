//! API keys, at MISP's paths: `auth_keys/add/<user|me>`, `auth_keys/index`.

use super::auth::Caller;
use super::body::{as_u64, field, RawBody};
use super::error::ApiError;
use super::{blocking, AppState};
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

/// `auth_keys/add/<user id>`: a new key, shown once as `authkey_raw`.
pub async fn add(
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
            && super::users::visible_users(&state, &caller)?
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

pub async fn index(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let users: Vec<u64> = super::users::visible_users(&state, &caller)?
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
