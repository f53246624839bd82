//! Who is calling: the API key (`Authorization: <key>` or `X-MISP-AUTH`), the user
//! and role it belongs to, and the TLS client certificate if one was presented.
//!
//! Sync keys belong to peer nodes and are refused here: peers use `/fed/v1/` with
//! their client certificate, and a peer credential grants nothing on the analyst API.
//!
//! Rate limits (`super::ratelimit`) apply here, where the caller becomes known:
//!
//! * a client address past `auth_failures_per_min` failed authentications is
//!   answered 429 *before its key is looked at*, a correct key included, until
//!   the allowance refills (one more try every `60 / auth_failures_per_min`
//!   seconds). Checking the key first would let a guesser carry on at full speed
//!   and learn from the answer when it guessed right; the price is that a user
//!   sharing an address with a misbehaving script waits out the same lockout,
//!   which `Retry-After` bounds and the audit log explains;
//! * an authenticated key past `api_rate_per_sec` is answered 429, keyed by the
//!   key's record id (never the key), so one user's runaway script does not
//!   slow the others.

use super::error::ApiError;
use super::forwarded::ClientAddr;
use super::ratelimit::{address_key, Verdict};
use super::AppState;
use crate::metrics::RateLimit;
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

/// The answer to a bad key from an address over its allowance of failed
/// authentications: 429, recorded as a rate-limit denial (once per lockout).
async fn over_limit(state: &AppState, parts: &Parts, verdict: Verdict) -> ApiError {
    let retry_after =
        super::audited::rate_limited(state, parts, "unknown", RateLimit::AuthFailures, verdict)
            .await;
    ApiError::RateLimited {
        message: format!(
            "Too many failed authentication attempts from this address. Retry in {retry_after} s."
        ),
        retry_after,
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let cert = parts
            .extensions
            .get::<crate::tls::ClientCert>()
            .and_then(|c| c.0.clone());
        let client = parts.extensions.get::<ClientAddr>().copied();
        let address = client.map(|c| address_key(c.ip()));
        // An address over its allowance of failed authentications has its bad
        // keys refused with 429 (not looked at further, not charged again), but
        // a valid key still works: keys are 40 random characters (238 bits),
        // so the limit slows nothing a guesser could win, and refusing valid
        // keys would let anyone lock out everyone behind a CERT's NAT or proxy.
        let locked = address.as_ref().and_then(|a| {
            let v = state
                .rates
                .auth_failures
                .check(a, std::time::Instant::now());
            (v != Verdict::Allowed).then_some(v)
        });
        // Every failure below counts against the client's address.
        let failed = || {
            state.metrics.auth_failure();
            if let Some(a) = &address {
                state
                    .rates
                    .auth_failures
                    .charge(a, std::time::Instant::now());
            }
        };
        let Some(key) = key_from(parts) else {
            if let Some(v) = locked {
                return Err(over_limit(state, parts, v).await);
            }
            failed();
            super::audited::auth_failure(state, parts, "unknown", "no API key").await;
            return Err(ApiError::Unauthenticated);
        };
        let store = state.store.clone();
        let found = tokio::task::spawn_blocking(move || {
            store.authenticate(&key, crate::model::time::now_secs())
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        let Some((user, key)) = found else {
            if let Some(v) = locked {
                return Err(over_limit(state, parts, v).await);
            }
            tracing::warn!(
                path = %parts.uri.path(),
                client = %client.map(|c| c.to_string()).unwrap_or_default(),
                "authentication failed"
            );
            failed();
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
            failed();
            super::audited::auth_failure(state, parts, &user.email, "the user's role is unknown")
                .await;
            return Err(ApiError::Unauthenticated);
        };
        if role.perm_sync {
            tracing::warn!(user = user.id, "a sync key was used on the analyst API");
            failed();
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
        let verdict = state.rates.api_key.take(&key.id, std::time::Instant::now());
        if verdict != Verdict::Allowed {
            // Before `set_actor`: a refused request is this denial, not also a
            // refused change in the audit log.
            let retry_after =
                super::audited::rate_limited(state, parts, &user.email, RateLimit::ApiKey, verdict)
                    .await;
            return Err(ApiError::RateLimited {
                message: format!("Rate limit exceeded for this API key. Retry in {retry_after} s."),
                retry_after,
            });
        }
        super::audited::set_actor(&user.email);
        Ok(Caller {
            user,
            role,
            org,
            cert,
        })
    }
}
