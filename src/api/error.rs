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

fn current_path() -> String {
    REQUEST_PATH.try_with(|p| p.clone()).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
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
    /// A per-caller cap reached (open feeds, rate): retry later.
    #[error("{0}")]
    TooMany(String),
    /// The node cannot take the request now (e.g. the audit log cannot be
    /// written, so changes are refused): retry later.
    #[error("{0}")]
    Unavailable(String),
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
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

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
            S::Rejected(m) => ApiError::Refused {
                name: "Could not save the element".into(),
                errors: Map::new(),
                message: m,
                status: StatusCode::FORBIDDEN,
            },
            e @ S::NotNewer { .. } => ApiError::Refused {
                name:
                    "Event could not be saved: Event in the request not newer than the local copy."
                        .into(),
                message: e.to_string(),
                errors: Map::new(),
                status: StatusCode::FORBIDDEN,
            },
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
