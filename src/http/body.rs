//! Request bodies and CakePHP-style named parameters.
//!
//! Bodies are read whole up to the configured limit (`http::handle` refuses
//! larger declared ones first), holding a share of the body budget while they
//! are large (`http::budget`), and parsed with serde_json, whose recursion limit (128)
//! refuses deeply nested input. Malformed JSON gets MISP's error shape, never a
//! plain-text 4xx that PyMISP would turn into an exception.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use bytes::BytesMut;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;

/// `/name:value` segments stripped from the end of the path before routing
/// (`events/view/12/noSightings:1`), and the request's query string.
#[derive(Debug, Clone, Default)]
pub struct NamedParams(pub HashMap<String, String>);

impl NamedParams {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true" | "True"))
    }
}

/// The raw body, limited in size and counted against the body budget.
pub struct RawBody(pub Bytes);

impl FromRequest<super::AppState> for RawBody {
    type Rejection = ApiError;
    /// Reads the body frame by frame into one buffer sized from the declared
    /// length (no doubling reallocations for a large body). A body that
    /// declared no length (chunked, or HTTP/2) and outgrows
    /// [`budget::SMALL_BODY`](super::budget::SMALL_BODY) takes a largest
    /// body's share of the budget before it is read further.
    async fn from_request(req: Request, state: &super::AppState) -> Result<Self, ApiError> {
        use http_body_util::BodyExt;
        let max = state.limits.max_body;
        let ticket = req
            .extensions()
            .get::<super::budget::Ticket>()
            .cloned()
            .unwrap_or_default();
        let mut body = req.into_body();
        let hint = usize::try_from(axum::body::HttpBody::size_hint(&body).lower()).unwrap_or(max);
        let mut buf = BytesMut::with_capacity(hint.min(max));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::BadRequest(format!("Could not read the request body: {e}"))
            })?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let len = buf.len().saturating_add(data.len());
            if len > max {
                return Err(ApiError::TooLarge(max));
            }
            if len > super::budget::SMALL_BODY && !ticket.holds() {
                let share = state.bodies.admit(max).await.map_err(ApiError::Busy)?;
                ticket.hold(share);
            }
            buf.extend_from_slice(&data);
        }
        Ok(RawBody(buf.freeze()))
    }
}

impl RawBody {
    /// The body as JSON; an empty body is `{}` (PyMISP posts no body on publish).
    pub fn json_value(&self) -> Result<Value, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.0)
            .map_err(|e| ApiError::BadRequest(format!("Malformed JSON in the request body: {e}")))
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let v = self.json_value()?;
        serde_path_to_error::deserialize(v).map_err(|e| {
            ApiError::BadRequest(format!("Invalid request body: {}: {}", e.path(), e.inner()))
        })
    }
}

/// A body field, absent when missing or `null`.
pub fn field<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.get(k).filter(|x| !x.is_null())
}

/// Sets each string field the body names (a non-null value) into its slot;
/// a value that is not a string is refused with `bad(field name)`, before any
/// later slot is touched (the caller stores nothing on an error anyway).
pub fn set_strings(
    v: &Value,
    slots: &mut [(&str, &mut String)],
    bad: impl Fn(&str) -> ApiError,
) -> Result<(), ApiError> {
    for (k, slot) in slots.iter_mut() {
        if let Some(x) = field(v, k) {
            **slot = x.as_str().ok_or_else(|| bad(k))?.to_owned();
        }
    }
    Ok(())
}

/// A number MISP clients send as a number or a numeric string (`"3"`).
pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Unwraps MISP's optional `{"Event": …}` / `{"request": …}` wrappers.
pub fn unwrap_key(mut v: Value, key: &str) -> Value {
    for k in ["request", key] {
        if let Value::Object(m) = &mut v {
            if m.len() == 1 {
                if let Some(inner) = m.remove(k) {
                    v = inner;
                }
            }
        }
    }
    v
}

/// Rewrites a path for routing: strips trailing `/name:value` segments into
/// [`NamedParams`], a `.json` suffix, and maps MISP's camel-case controller names
/// (`sharingGroups`, `authKeys`) to the snake-case ones.
pub fn normalise_path(path: &str) -> (String, NamedParams) {
    let mut params = HashMap::new();
    let mut segs: Vec<&str> = path.split('/').collect();
    while let Some(last) = segs.last() {
        if let Some((k, v)) = last.split_once(':') {
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                params.insert(k.to_owned(), v.to_owned());
                segs.pop();
                continue;
            }
        }
        if last.is_empty() && segs.len() > 1 {
            segs.pop();
            continue;
        }
        break;
    }
    let mut out = segs.join("/");
    if let Some(stripped) = out.strip_suffix(".json") {
        out = stripped.to_owned();
    }
    for (camel, snake) in [
        ("/sharingGroups/", "/sharing_groups/"),
        ("/authKeys/", "/auth_keys/"),
        ("/eventReports/", "/event_reports/"),
        ("/objectTemplates/", "/object_templates/"),
    ] {
        if out.starts_with(camel) {
            out = out.replacen(camel, snake, 1);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    (out, NamedParams(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_params_and_suffixes() {
        let (p, n) = normalise_path("/events/view/12/noSightings:1/extended:0");
        assert_eq!(p, "/events/view/12");
        assert_eq!(n.get("noSightings"), Some("1"));
        assert!(!n.flag("extended"));
        assert_eq!(
            normalise_path("/attributes/describeTypes.json").0,
            "/attributes/describeTypes"
        );
        assert_eq!(
            normalise_path("/sharingGroups/addOrg").0,
            "/sharing_groups/addOrg"
        );
        assert_eq!(
            normalise_path("/organisations/index/scope:local")
                .1
                .get("scope"),
            Some("local")
        );
        assert_eq!(
            normalise_path("/events/view/5c1b1cc1-0000-4000-8000-000000000001/").0,
            "/events/view/5c1b1cc1-0000-4000-8000-000000000001"
        );
    }
}
