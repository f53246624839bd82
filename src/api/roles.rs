//! Roles at MISP's paths: `roles/index` and `admin/roles/set_default/<id>`
//! (`RolesController`). The roles are MISP's six defaults, fixed in
//! `policy::roles`; which of them new users get when `admin/users/add`
//! names none is a setting kept in the store (MISP's `default_role`).
//! Custom roles (`admin/roles/add|edit|delete`) are not served.

use super::auth::Caller;
use super::error::{save_success, ApiError};
use super::{blocking, AppState};
use crate::policy::roles::{self, Role};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/roles/index", get(index))
        .route("/roles", get(index))
        .route("/admin/roles/set_default/{id}", post(set_default))
        .route("/roles/set_default/{id}", post(set_default))
}

/// MISP's permission level of a role and its description (the virtual
/// `permission` field of `Role`).
fn permission(r: &Role) -> (&'static str, &'static str) {
    if r.perm_publish {
        ("3", "publish")
    } else if r.perm_modify_org {
        ("2", "manage_org")
    } else if r.perm_modify {
        ("1", "manage_own")
    } else {
        ("0", "read_only")
    }
}

/// A role as MISP's `roles` row shows it, with `default`.
pub(crate) fn role_json(r: &Role, default: Option<u64>) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    let (level, description) = permission(r);
    if let Value::Object(m) = &mut v {
        m.insert("permission".into(), json!(level));
        m.insert("permission_description".into(), json!(description));
        m.insert(
            "perm_sharing_group".into(),
            json!(r.perm_modify_org || r.perm_site_admin),
        );
        m.insert("default_role".into(), json!(default == Some(r.id)));
        m.insert("restricted_to_site_admin".into(), json!(false));
        m.insert("memory_limit".into(), json!(""));
        m.insert("max_execution_time".into(), json!(""));
    }
    v
}

/// `GET roles/index`: `[{"Role": {…, "default": bool}}]`.
pub async fn index(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let default = state.store.default_role()?;
    let rows: Vec<Value> = roles::ALL
        .iter()
        .map(|r| {
            let mut row = role_json(r, default);
            row["default"] = json!(default == Some(r.id));
            json!({ "Role": row })
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

/// `POST admin/roles/set_default/<id>` (site admins): the role new users get;
/// `0` or `false` unsets it. Answers MISP's "Default role set." (or
/// "Default role unset.").
pub async fn set_default(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(caller.role.perm_site_admin)?;
    let role = match id.trim() {
        "0" | "false" => None,
        other => Some(
            other
                .parse::<u64>()
                .ok()
                .filter(|n| roles::by_id(*n).is_some())
                .ok_or_else(|| {
                    ApiError::refused("Could not set the default role", "id", "Invalid Role.")
                })?,
        ),
    };
    super::audited::subject(format!("default role {}", role.unwrap_or(0)));
    let store = state.store.clone();
    blocking(move || Ok(store.set_default_role(role)?)).await?;
    tracing::info!(user = caller.user.id, role = ?role, "default role set");
    let msg = if role.is_some() {
        "Default role set."
    } else {
        "Default role unset."
    };
    let mut v = save_success(msg, None);
    v["id"] = json!(id);
    Ok(Json(v))
}
