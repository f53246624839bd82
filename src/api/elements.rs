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
use crate::model::edit::{attr_at, find_attr, max_timestamp, Slot};
use crate::model::{Event, SharingGroup};
use crate::policy::{attribute_visible, may_use_sharing_group, Viewer};
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

/// The refusal for a sharing group the caller may not use — the same whether
/// the group is unknown, inactive or someone else's, so nothing about it leaks.
pub(crate) fn sharing_group_refused() -> ApiError {
    const MSG: &str = "Invalid Sharing Group or not authorised.";
    save_fail(MSG, field_error("sharing_group_id", MSG))
}

/// Whether the caller may give an element distribution `dist` with the group
/// named by local id `sg_id` or given inline (`inline`): a stored group must be
/// one the caller may use ([`may_use_sharing_group`]); an inline group this
/// node does not hold yet (it is captured with the event) must list the
/// caller's organisation.
pub(crate) fn may_use_group(
    store: &Store,
    viewer: &Viewer,
    dist: u8,
    sg_id: u64,
    inline: Option<&SharingGroup>,
) -> Result<bool, ApiError> {
    if dist != 4 {
        return Ok(true);
    }
    let stored = match inline.filter(|g| !g.uuid.is_nil()) {
        Some(g) => match store.sharing_group(&g.uuid)? {
            Some(held) => Some(held),
            None => return Ok(viewer.site_admin || g.has_org(&viewer.org)),
        },
        None if sg_id == 0 => return Ok(true), // the validator refuses it
        None => store.find_sharing_group(&sg_id.to_string())?,
    };
    Ok(stored.is_some_and(|g| may_use_sharing_group(viewer, &g)))
}

/// Every sharing group an event written through the API names (the event's,
/// its attributes', objects' and reports'), checked with [`may_use_group`].
pub(crate) fn check_sharing_groups(
    store: &Store,
    viewer: &Viewer,
    ev: &Event,
) -> Result<(), ApiError> {
    let mut uses = vec![(
        ev.distribution,
        ev.sharing_group_id,
        ev.sharing_group.as_ref(),
    )];
    for a in &ev.attributes {
        uses.push((a.distribution, a.sharing_group_id, a.sharing_group.as_ref()));
    }
    for o in &ev.objects {
        uses.push((o.distribution, o.sharing_group_id, o.sharing_group.as_ref()));
        for a in &o.attributes {
            uses.push((a.distribution, a.sharing_group_id, a.sharing_group.as_ref()));
        }
    }
    for r in &ev.reports {
        uses.push((r.distribution, r.sharing_group_id, r.sharing_group.as_ref()));
    }
    // Each group named by id once, however many elements name it (a large
    // event names the same few groups thousands of times); inline groups are
    // rare and each is checked as given.
    let mut checked = std::collections::HashSet::new();
    for (dist, id, inline) in uses {
        if dist != 4 || (inline.is_none() && !checked.insert(id)) {
            continue;
        }
        if !may_use_group(store, viewer, dist, id, inline)? {
            return Err(sharing_group_refused());
        }
    }
    Ok(())
}

pub(crate) fn invalid_event() -> ApiError {
    ApiError::NotFound("Invalid event.".into())
}

/// Calls `f` with every event `viewer` can see, as they see it (redacted):
/// the walk behind the tag catalogue's counts and the statistics, which, like
/// MISP's queries, have no index of their own.
pub(crate) fn for_each_visible(
    store: &Store,
    viewer: &Viewer,
    mut f: impl FnMut(&Event),
) -> Result<(), ApiError> {
    for u in store.event_uuids() {
        let u = u?;
        let Some(head) = store.get_event_header(&u)? else {
            continue;
        };
        if !crate::policy::event_visible(viewer, &head) {
            continue;
        }
        if let Some(ev) = store
            .get_event(&u)?
            .and_then(|e| crate::policy::redact_event(viewer, e))
        {
            f(&ev);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::api::testkit::Kit;
    use axum::http::StatusCode;
    use serde_json::json;

    /// A caller may only name sharing groups it may use, on every path that
    /// takes one; an unknown group and another organisation's group answer
    /// alike, and nothing is stored.
    #[tokio::test]
    async fn sharing_groups_of_others_are_refused_everywhere() {
        let k = Kit::new();
        // A group of org A (the test node's own organisation) alone.
        let group: crate::model::SharingGroup = serde_json::from_value(json!({
            "name": "A only", "releasability": "A's secret partners",
            "uuid": uuid::Uuid::new_v4(), "organisation_uuid": k.state.node.org, "active": true
        }))
        .unwrap();
        let sg = k
            .state
            .store
            .add_sharing_group(group)
            .unwrap()
            .id
            .unwrap()
            .to_string();
        let before = k.state.store.event_count();
        let mut answers = Vec::new();
        for id in [sg.as_str(), "999"] {
            for body in [
                json!({"info": "x", "distribution": "4", "sharing_group_id": id}),
                json!({"info": "x", "distribution": "1",
                       "Attribute": [{"type": "text", "value": "v", "distribution": "4", "sharing_group_id": id}]}),
                json!({"info": "x", "distribution": "1",
                       "Object": [{"name": "domain-ip", "distribution": "4", "sharing_group_id": id,
                                   "Attribute": [{"type": "domain", "object_relation": "domain", "value": "a.example"}]}]}),
            ] {
                let (st, v) = k.call("POST", "/events/add", &k.b, Some(body)).await;
                assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
                assert!(!v.to_string().contains("secret partners"), "{v}");
                answers.push(v["message"].clone());
            }
        }
        assert!(answers.iter().all(|m| *m == answers[0]), "{answers:?}");
        assert_eq!(answers[0], "Invalid Sharing Group or not authorised.");
        assert_eq!(k.state.store.event_count(), before);

        // Editing one's own event into the group is refused the same way.
        let (eid, _) = k
            .event(&k.b, json!({"info": "mine", "distribution": "1"}))
            .await;
        let (st, v) = k
            .call(
                "POST",
                &format!("/events/edit/{eid}"),
                &k.b,
                Some(json!({"Event": {"distribution": "4", "sharing_group_id": sg}})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        let (st, v) = k
            .call(
                "POST",
                &format!("/attributes/add/{eid}"),
                &k.b,
                Some(json!({"type": "text", "value": "v", "distribution": "4", "sharing_group_id": sg})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        // The group's own organisation may use it.
        let (st, v) = k
            .call(
                "POST",
                "/events/add",
                &k.a,
                Some(json!({"info": "ok", "distribution": "4", "sharing_group_id": sg})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
}
