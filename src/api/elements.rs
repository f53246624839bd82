//! What the element route groups (`attributes`, `objects`, `tags`) share:
//! how a path names an element ([`ElementId`]), finding an attribute and
//! whether the caller sees it, the modify loop every in-place change goes
//! through ([`modify_event`]), MISP's refusal shapes, and request flags.
//!
//! The edits themselves are pure functions of the event (`model::edit`), so the
//! API, import and sync can share them; this module adds only what is HTTP:
//! loading, visibility, retrying on a concurrent writer, and the error shapes.

use super::body::{NamedParams, RawBody};
use super::error::{ApiError, REQUEST_PATH};
use super::events::invalid_event;
use crate::model::edit::{attr_at, find_attr, max_timestamp, Slot};
use crate::model::Event;
use crate::policy::{attribute_visible, Viewer};
use crate::store::{next_timestamp, Durability, Store, StoreError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// How an API path names an attribute or object: a uuid or a local numeric id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElementId {
    Uuid(Uuid),
    Local(u64),
}

impl ElementId {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(u) = s.parse::<Uuid>() {
            return Some(ElementId::Uuid(u));
        }
        s.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(ElementId::Local)
    }
}

pub(crate) fn attr_visible(v: &Viewer, ev: &Event, s: Slot) -> bool {
    let object = match s {
        Slot::Top(_) => None,
        Slot::InObject(o, _) => Some(&ev.objects[o]),
    };
    attribute_visible(v, ev, object, attr_at(ev, s))
}

/// The whole event (soft-deleted children included, nothing redacted) holding
/// the attribute `id`, and where it is; `None` if there is no such attribute.
pub(crate) fn load_attribute(
    store: &Store,
    id: ElementId,
) -> Result<Option<(Event, Slot)>, ApiError> {
    let event = match id {
        ElementId::Uuid(u) => store.locate(&u)?,
        ElementId::Local(n) => store.event_uuid_by_id(n >> 24)?,
    };
    let Some(event) = event else { return Ok(None) };
    let Some(ev) = store.get_event(&event)? else {
        return Ok(None);
    };
    let slot = match id {
        ElementId::Uuid(u) => find_attr(&ev, |a| a.uuid == u),
        ElementId::Local(n) => find_attr(&ev, |a| a.id == Some(n)),
    };
    Ok(slot.map(|s| (ev, s)))
}

/// What a change closure decided.
pub(crate) enum Edit<T> {
    /// Store the changed event.
    Write(T),
    /// Nothing to store (already so, or every item failed).
    Nothing(T),
}

/// Loads event `uuid`, lets `change` modify it (with `ts`, a timestamp newer than
/// anything in the event, for the elements it changes), and stores it through the
/// validator: the event gets a newer timestamp, loses its seal (it no longer
/// covers this version) and, if `unpublish`, is unpublished as MISP does on every
/// content change. A concurrent writer that got in first makes the put "not
/// newer"; the change is then re-applied to a fresh copy, up to three times.
/// Returns the event as stored afterwards, with what `change` returned.
pub(crate) fn modify_event<T>(
    store: &Store,
    uuid: &Uuid,
    unpublish: bool,
    mut change: impl FnMut(&mut Event, u64) -> Result<Edit<T>, ApiError>,
) -> Result<(Event, T), ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut ev = store.get_event(uuid)?.ok_or_else(invalid_event)?;
        let ts = next_timestamp(max_timestamp(&ev));
        let out = match change(&mut ev, ts)? {
            Edit::Write(out) => out,
            Edit::Nothing(out) => return Ok((ev, out)),
        };
        ev.timestamp = ts.max(max_timestamp(&ev));
        ev.seal = None;
        if unpublish {
            ev.published = false;
        }
        match store.put_event(ev, Durability::Flush) {
            Ok(o) => {
                let stored = store.get_event(&o.uuid())?.ok_or_else(invalid_event)?;
                return Ok((stored, out));
            }
            Err(StoreError::NotNewer { .. }) if attempt < 3 => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A refusal in MISP's "saveFail" shape (HTTP 403), with field errors.
pub(crate) fn save_fail(name: &str, errors: Map<String, Value>) -> ApiError {
    ApiError::Refused {
        name: name.to_owned(),
        message: name.to_owned(),
        errors,
        status: StatusCode::FORBIDDEN,
    }
}

/// One field error.
pub(crate) fn field_error(field: &str, reason: impl Into<String>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(field.to_owned(), json!([reason.into()]));
    m
}

/// MISP's `MethodNotAllowedException` (405), which it uses for "invalid input".
pub(crate) fn not_allowed(message: &str) -> ApiError {
    ApiError::Refused {
        name: message.to_owned(),
        message: message.to_owned(),
        errors: Map::new(),
        status: StatusCode::METHOD_NOT_ALLOWED,
    }
}

/// MISP's exception body `{"name","message","url"}` with any status.
pub(crate) fn exception(status: StatusCode, message: &str) -> Response {
    let url = REQUEST_PATH.try_with(|p| p.clone()).unwrap_or_default();
    (
        status,
        Json(json!({"name": message, "message": message, "url": url})),
    )
        .into_response()
}

/// Gives a store refusal the name of the action that failed (PyMISP shows it).
pub(crate) fn named_refusal(e: ApiError, action: &str) -> ApiError {
    match e {
        ApiError::Refused {
            message,
            errors,
            status,
            ..
        } => ApiError::Refused {
            name: action.to_owned(),
            message,
            errors,
            status,
        },
        other => other,
    }
}

/// A JSON flag as MISP clients send them: `true`, `1`, `"1"`, `"true"`.
pub(crate) fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => matches!(s.trim(), "1" | "true" | "True"),
        _ => false,
    }
}

/// Whether a delete is hard: `{"hard": 1}` in the body, `hard:1` named, or `/1`
/// after the id.
pub(crate) fn hard_flag(
    body: &RawBody,
    named: &NamedParams,
    path: Option<&str>,
) -> Result<bool, ApiError> {
    let v = body.json_value()?;
    Ok(truthy(v.get("hard"))
        || named.flag("hard")
        || path.is_some_and(|p| matches!(p, "1" | "true")))
}
