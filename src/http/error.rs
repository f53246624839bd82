//! Errors in the shapes MISP answers with, because PyMISP reads them literally:
//! `{"name","message","url"}` for exceptions, and the "saveFail" shape
//! `{"saved":false,"name","message","url","errors":{field:[reasons]}}` (HTTP 403)
//! for refused writes. PyMISP reads `message` on a 403, so it is always present.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

tokio::task_local! {
    /// The request path, so error bodies can carry MISP's `url` field without
    /// threading it through every handler.
    pub static REQUEST_PATH: String;
}

/// The path of the request being answered (MISP's `url` in answers).
pub fn current_path() -> String {
    REQUEST_PATH.try_with(|p| p.clone()).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The key is missing, unknown, expired, or belongs to a disabled user or a peer.
    #[error("Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.")]
    Unauthenticated,
    /// Authenticated, but the role or ownership does not allow this.
    #[error("You do not have permission to do that.")]
    Forbidden,
    /// Unknown, or invisible to the caller: the two must be indistinguishable.
    #[error("{0}")]
    NotFound(String),
    /// A refused write (validation, not newer, duplicate…), with the field that failed.
    #[error("{message}")]
    Refused {
        name: String,
        message: String,
        errors: Map<String, Value>,
        status: StatusCode,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("This method is not allowed on this path.")]
    MethodNotAllowed,
    #[error("The request body is larger than the limit of {0} bytes.")]
    TooLarge(usize),
    /// A rate limit reached (per API key, or failed authentications from the
    /// client's address): answered 429 with `Retry-After: retry_after` seconds,
    /// so a well-behaved client knows when, not just that, to come back.
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    /// The node cannot take the request now (e.g. the audit log cannot be
    /// written, so changes are refused): retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The node's disk is full: writes are refused (507 Insufficient Storage,
    /// WebDAV's status for exactly this), reads still work.
    #[error("{0}")]
    InsufficientStorage(String),
    /// Too many large bodies in flight (`budget`): 503 with `Retry-After`.
    #[error("{0}")]
    Busy(super::budget::Busy),
    #[error("An Internal Error Has Occurred.")]
    Internal(String),
}

impl ApiError {
    /// A refused write with one field error.
    pub fn refused(name: &str, field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        let mut errors = Map::new();
        errors.insert(field.to_owned(), json!([reason.clone()]));
        ApiError::Refused {
            name: name.to_owned(),
            message: reason,
            errors,
            status: StatusCode::FORBIDDEN,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Refused { status, .. } => *status,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What a client is told when sled met a full disk (it takes no more writes
/// until reopened: see `store::health`).
pub const DISK_FULL: &str = "Insufficient storage: the node's disk is full, so changes are refused. The operator must free space and restart the node.";

/// What a client is told when the disk is below the store's free-space
/// reserve: nothing failed, and writes resume once space is freed.
pub const LOW_SPACE: &str = "Insufficient storage: the node's disk is nearly full, so changes are refused until space is freed (reads still work).";

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as S;
        match e {
            S::Invalid(v) => {
                let mut errors = Map::new();
                for p in &v.problems {
                    let entry = errors
                        .entry(p.field.to_owned())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(list) = entry {
                        list.push(Value::String(format!("{}: {}", p.element, p.reason)));
                    }
                }
                ApiError::Refused {
                    name: "Could not save the element".into(),
                    message: v.to_string(),
                    errors,
                    status: StatusCode::FORBIDDEN,
                }
            }
            S::Refused { field, reason } => {
                let mut errors = Map::new();
                errors.insert(
                    field.into(),
                    Value::Array(vec![Value::String(reason.clone())]),
                );
                ApiError::Refused {
                    name: "Could not save the element".into(),
                    errors,
                    message: reason,
                    status: StatusCode::FORBIDDEN,
                }
            }
            e @ S::NotNewer { .. } => ApiError::Refused {
                name:
                    "Event could not be saved: Event in the request not newer than the local copy."
                        .into(),
                message: e.to_string(),
                errors: Map::new(),
                status: StatusCode::FORBIDDEN,
            },
            e @ S::StorageFull(_) => {
                tracing::error!(error = %e, "write refused: the disk is full");
                ApiError::InsufficientStorage(DISK_FULL.into())
            }
            e @ S::LowSpace { .. } => {
                tracing::warn!(error = %e, "write refused: below the free-space reserve");
                ApiError::InsufficientStorage(LOW_SPACE.into())
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let url = current_path();
        let status = self.status();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            ApiError::Busy(_) => Some(5),
            _ => None,
        };
        let body = match &self {
            ApiError::Refused {
                name,
                message,
                errors,
                ..
            } => json!({
                "saved": false, "name": name, "message": message, "url": url, "errors": errors,
            }),
            ApiError::Internal(detail) => {
                tracing::error!(%detail, %url, "internal error");
                json!({"name": self.to_string(), "message": self.to_string(), "url": url})
            }
            other => json!({"name": other.to_string(), "message": other.to_string(), "url": url}),
        };
        // For the audit log (see `audited`): denials are recorded with the
        // caller, refused changes with their reason.
        let refusal = super::audited::Refusal {
            denied: matches!(self, ApiError::Forbidden),
            reason: match self {
                ApiError::Internal(detail) => detail,
                ApiError::Refused {
                    message, errors, ..
                } if !errors.is_empty() => format!("{message} {}", Value::Object(errors)),
                other => other.to_string(),
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(refusal);
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

/// MISP's "saveSuccess" answer.
pub fn save_success(message: &str, id: Option<u64>) -> Value {
    let mut v = json!({"saved": true, "success": true, "name": message, "message": message, "url": current_path()});
    if let Some(id) = id {
        v["id"] = Value::String(id.to_string());
    }
    v
}
