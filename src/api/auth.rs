//! Who is calling: the API key (`Authorization: <key>` or `X-MISP-AUTH`), the user
//! and role it belongs to, and the TLS client certificate if one was presented.
//!
//! Sync keys belong to peer nodes and are refused here: peers use `/fed/v1/` with
//! their client certificate, and a peer credential grants nothing on the analyst API.

use super::error::ApiError;
use super::AppState;
use crate::policy::{roles, Role, Viewer};
use crate::store::accounts::{OrgRecord, UserRecord};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserRecord,
    pub role: Role,
    pub org: OrgRecord,
    /// The verified client certificate's identity, if the client presented one.
    pub cert: Option<crate::tls::PeerIdentity>,
}

impl Caller {
    pub fn viewer(&self) -> Viewer {
        Viewer {
            org: self.org.uuid,
            site_admin: self.role.perm_site_admin,
        }
    }

    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.role.may_write() {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    pub fn require(&self, ok: bool) -> Result<(), ApiError> {
        if ok && !self.role.perm_sync {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

fn key_from(parts: &Parts) -> Option<String> {
    for h in ["authorization", "x-misp-auth"] {
        if let Some(v) = parts.headers.get(h).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            if !v.is_empty() {
                return Some(v.to_owned());
            }
        }
    }
    None
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let cert = parts
            .extensions
            .get::<crate::tls::ClientCert>()
            .and_then(|c| c.0.clone());
        let Some(key) = key_from(parts) else {
            state.metrics.auth_failure();
            super::audited::auth_failure(state, parts, "unknown", "no API key").await;
            return Err(ApiError::Unauthenticated);
        };
        let store = state.store.clone();
        let found = tokio::task::spawn_blocking(move || {
            store.authenticate(&key, crate::model::time::now_secs())
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        let Some((user, _key)) = found else {
            tracing::warn!(path = %parts.uri.path(), "authentication failed");
            state.metrics.auth_failure();
            super::audited::auth_failure(
                state,
                parts,
                "unknown",
                "unknown or expired API key, or a disabled user",
            )
            .await;
            return Err(ApiError::Unauthenticated);
        };
        let Some(role) = roles::by_id(user.role_id) else {
            super::audited::auth_failure(state, parts, &user.email, "the user's role is unknown")
                .await;
            return Err(ApiError::Unauthenticated);
        };
        if role.perm_sync {
            tracing::warn!(user = user.id, "a sync key was used on the analyst API");
            state.metrics.auth_failure();
            super::audited::auth_failure(
                state,
                parts,
                &user.email,
                "a peer's sync key used on the analyst API",
            )
            .await;
            return Err(ApiError::Unauthenticated);
        }
        let org = state
            .store
            .org(&user.org)?
            .ok_or_else(|| ApiError::Internal(format!("user {} has no organisation", user.id)))?;
        super::audited::set_actor(&user.email);
        Ok(Caller {
            user,
            role,
            org,
            cert,
        })
    }
}
