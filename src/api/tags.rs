//! `tags/attachTagToObject` and `tags/removeTagFromObject`: a tag on an event
//! or an attribute. The tag catalogue (`tags/index|view|add|edit|delete|search`)
//! is `api::tag_catalogue`; a numeric `tag` in a request is a catalogue id.
//!
//! Rights: tagging needs `perm_tagger`. A global tag changes shared content, so it
//! needs the right to modify the event (MISP: only the creator organisation may
//! change global tags); a local tag never leaves this node but decides what this
//! node does with the event (a local `tlp:red` keeps it home), so only the host
//! organisation may attach or remove one ([`crate::policy::tagging`]). Attaching or removing a global tag unpublishes the
//! event, as MISP does; a local tag does not. Either way the target (and the event)
//! get a newer timestamp, because every change goes through the store's
//! strictly-newer merge.

use super::auth::Caller;
use super::body::{unwrap_key, RawBody};
use super::elements::{attr_visible, field_error, modify_event, not_allowed, truthy, Edit};
use super::error::{save_success, ApiError};
use super::{blocking, tag_catalogue, AppState};
use crate::model::edit::{attr_at, attr_at_mut, find_attr, touch, Slot};
use crate::model::{Event, Tag};
use crate::policy::{event_visible, tagging, Viewer};
use crate::store::tags::TagRecord;
use crate::store::Store;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tags/attachTagToObject", post(attach))
        .route("/tags/removeTagFromObject", post(remove))
        .route("/tags/index", get(tag_catalogue::index))
        .route("/tags", get(tag_catalogue::index))
        .route("/tags/view/{id}", get(tag_catalogue::view))
        .route("/tags/add", post(tag_catalogue::add))
        .route(
            "/tags/edit/{id}",
            post(tag_catalogue::edit).put(tag_catalogue::edit),
        )
        .route("/tags/delete/{id}", post(tag_catalogue::delete))
        .route("/tags/search", post(tag_catalogue::search))
}

/// What a tag request names: an event, or an attribute of one.
#[derive(Debug, Clone, Copy)]
enum Target {
    Event,
    Attribute(Uuid),
}

impl Target {
    fn kind(self) -> &'static str {
        match self {
            Target::Event => "Event",
            Target::Attribute(_) => "Attribute",
        }
    }
}

fn invalid_target() -> ApiError {
    ApiError::NotFound("Invalid Target.".into())
}

/// Finds what `uuid` names among what the caller can see: an event, or a live
/// attribute. Returns the event's uuid.
fn find_target(store: &Store, viewer: &Viewer, uuid: Uuid) -> Result<(Uuid, Target), ApiError> {
    if let Some(head) = store.get_event_header(&uuid)? {
        if event_visible(viewer, &head) {
            return Ok((uuid, Target::Event));
        }
        return Err(invalid_target());
    }
    let event = store.locate(&uuid)?.ok_or_else(invalid_target)?;
    let ev = store.get_event(&event)?.ok_or_else(invalid_target)?;
    match find_attr(&ev, |a| a.uuid == uuid) {
        Some(s) if attr_visible(viewer, &ev, s) && !attr_at(&ev, s).deleted => {
            Ok((event, Target::Attribute(uuid)))
        }
        _ => Err(invalid_target()),
    }
}

/// The tags of the target in a fresh copy of its event, after checking the caller
/// may still change them; `None` for a target that went away.
fn target_tags<'a>(
    ev: &'a mut Event,
    target: Target,
    viewer: &Viewer,
) -> Result<(&'a mut Vec<Tag>, Option<Slot>), ApiError> {
    match target {
        Target::Event => {
            if !event_visible(viewer, ev) {
                return Err(invalid_target());
            }
            Ok((&mut ev.tags, None))
        }
        Target::Attribute(u) => {
            let s = find_attr(ev, |a| a.uuid == u).ok_or_else(invalid_target)?;
            if !attr_visible(viewer, ev, s) || attr_at(ev, s).deleted {
                return Err(invalid_target());
            }
            Ok((&mut attr_at_mut(ev, s).tags, Some(s)))
        }
    }
}

/// The local id shown in messages: `Event(12)`, `Attribute(201326593)`.
fn local_id(ev: &Event, target: Target) -> String {
    let id = match target {
        Target::Event => ev.id,
        Target::Attribute(u) => find_attr(ev, |a| a.uuid == u).and_then(|s| attr_at(ev, s).id),
    };
    id.map(|i| i.to_string()).unwrap_or_default()
}

fn string_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `uuid` of a tag request: missing is MISP's 405, malformed a 400.
fn request_uuid(body: &Value) -> Result<Uuid, ApiError> {
    let raw = body
        .get("uuid")
        .and_then(string_of)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| not_allowed("Invalid object uuid"))?;
    raw.parse::<Uuid>()
        .map_err(|_| ApiError::BadRequest("Invalid UUID".into()))
}

/// The requested tag names (MISP also takes a list); digits are tag ids.
fn request_tags(body: &Value) -> Result<Vec<String>, ApiError> {
    let names: Vec<String> = match body.get("tag") {
        Some(Value::Array(a)) => a.iter().filter_map(string_of).collect(),
        Some(v) => string_of(v).into_iter().collect(),
        None => Vec::new(),
    };
    let names: Vec<String> = names.into_iter().filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err(not_allowed("Invalid tag"));
    }
    // The stored form of each name (NFKC, checked): a look-alike of a policy
    // tag or a name with invisible characters is refused here, clearly.
    names
        .into_iter()
        .map(|n| {
            crate::model::tag_name::normalise(&n).map_err(|e| ApiError::Refused {
                name: "Invalid Tag.".into(),
                message: e.to_string(),
                errors: field_error("tag", e.to_string()),
                status: StatusCode::FORBIDDEN,
            })
        })
        .collect()
}

fn is_id(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// A requested tag as its catalogue row (`None`: an id or a name the
/// catalogue does not have).
fn catalogue_row(store: &Store, requested: &str) -> Result<Option<TagRecord>, ApiError> {
    if is_id(requested) {
        return Ok(store.tag_by_id(requested.parse().unwrap_or(0))?);
    }
    Ok(store.tag_by_name(requested)?)
}

/// `POST tags/attachTagToObject` `{"uuid", "tag", "local"}`.
pub async fn attach(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Response, ApiError> {
    caller.require(caller.role.perm_tagger)?;
    let req = unwrap_key(body.json_value()?, "Tag");
    let uuid = request_uuid(&req)?;
    super::audited::subject(uuid);
    let requested = request_tags(&req)?;
    let local = truthy(req.get("local"));
    let store = state.store.clone();
    let host_org = state.node.org;
    let c2 = caller.clone();
    let (message, ok) = blocking(move || {
        let viewer = c2.viewer();
        let (event, target) = find_target(&store, &viewer, uuid)?;
        let mut fails: Vec<String> = Vec::new();
        let mut names: Vec<(String, String)> = Vec::new();
        for r in &requested {
            // MISP's rules (`TagsController::attachTagToObject`): an unknown
            // name becomes a tag only for a tag editor; a tag restricted to
            // an organisation, a user or local use is refused to others
            // (site admins excepted).
            // A name as the store will keep it (NFKC, trimmed), so a
            // full-width spelling finds its tag; look-alikes of policy tags
            // and invisible characters are refused here, with the reason.
            let r = if is_id(r) {
                r.clone()
            } else {
                match crate::model::tag_name::normalise(r) {
                    Ok(n) => n,
                    Err(e) => {
                        fails.push(e.to_string());
                        continue;
                    }
                }
            };
            let r = &r;
            // A tag named by id that the caller may not learn of is unknown.
            let row = match catalogue_row(&store, r)? {
                Some(row) if is_id(r) && !tag_catalogue::may_see(&store, &c2, &row)? => None,
                other => other,
            };
            match row {
                Some(row) => {
                    let admin = c2.role.perm_site_admin;
                    if !admin && row.org_id != 0 && row.org_id != c2.org.id {
                        fails.push("Invalid Tag. This tag can only be set by a fixed organisation.".into());
                    } else if !admin && row.user_id != 0 && row.user_id != c2.user.id {
                        fails.push("Invalid Tag. This tag can only be set by a fixed user.".into());
                    } else if row.local_only && !local {
                        fails.push("Invalid Tag. This tag can only be set as a local tag.".into());
                    } else {
                        names.push((row.name, row.colour));
                    }
                }
                None if is_id(r) => fails.push("Invalid Tag.".into()),
                None if r.len() > 255 => fails.push("Tag name longer than 255 characters.".into()),
                None if !c2.role.perm_tag_editor => {
                    fails.push("Tag not found and insufficient privileges to create it.".into())
                }
                None => names.push((r.trim().to_owned(), crate::store::tags::default_colour(r.trim()))),
            }
        }
        let (ev, (attached, present)) = modify_event(&store, &event, !local, |ev, ts| {
            if !tagging::may_attach(&viewer, &c2.role, ev, local, host_org) {
                return Err(ApiError::Forbidden);
            }
            let (tags, slot) = target_tags(ev, target, &viewer)?;
            let mut attached = Vec::new();
            let mut present = Vec::new();
            for (n, colour) in &names {
                let key = n.to_lowercase();
                if let Some(t) = tags.iter().find(|t| t.key() == key) {
                    present.push(t.name.clone());
                    continue;
                }
                let mut t = Tag::named(n.clone());
                t.local = local;
                t.colour.clone_from(colour);
                tags.push(t);
                attached.push(n.clone());
            }
            if attached.is_empty() {
                return Ok(Edit::Nothing((attached, present)));
            }
            if let Some(s) = slot {
                touch(ev, s, ts);
            }
            Ok(Edit::Write((attached, present)))
        })?;
        let kind = target.kind();
        let id = local_id(&ev, target);
        let successes = attached.len() + present.len();
        let mut message = match (attached.as_slice(), present.as_slice()) {
            ([one], []) => format!(
                "{} tag {one}({}) successfully attached to {kind}({id}).",
                if local { "Local" } else { "Global" },
                store.tag_by_name(one)?.map_or(0, |t| t.id)
            ),
            ([], [one]) => format!("{kind} already has the requested tag attached, no changes had to be made for tag {one}."),
            _ if successes > 0 => {
                let mut m = format!("Successfully attached {successes} tags to {kind} ({id})");
                if !present.is_empty() {
                    m.push_str(&format!(
                        ". {id} already has the requested tag attached, no changes had to be made for tags {}.",
                        json!(present)
                    ));
                }
                m
            }
            _ => String::new(),
        };
        let failed = if fails.is_empty() {
            None
        } else {
            let reasons: Map<String, Value> = fails.iter().enumerate().map(|(i, f)| (i.to_string(), json!(f))).collect();
            Some(format!("Failed to attach {} tags. Reasons: {}", fails.len(), Value::Object(reasons)))
        };
        if successes == 0 {
            return Ok((failed.unwrap_or_default(), false));
        }
        if let Some(f) = failed {
            message.push('\n');
            message.push_str(&f);
        }
        tracing::info!(user = c2.user.id, target = %uuid, local, tags = ?attached, "tags attached");
        Ok((message, true))
    })
    .await?;
    if !ok {
        return Err(ApiError::Refused {
            name: message.clone(),
            message: message.clone(),
            errors: field_error("tag", message),
            status: StatusCode::FORBIDDEN,
        });
    }
    Ok(Json(save_success(&message, None)).into_response())
}

/// `POST tags/removeTagFromObject` `{"uuid", "tag"}`.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Response, ApiError> {
    caller.require(caller.role.perm_tagger)?;
    let req = unwrap_key(body.json_value()?, "Tag");
    let uuid = request_uuid(&req)?;
    super::audited::subject(uuid);
    let requested = request_tags(&req)?.remove(0);
    let store = state.store.clone();
    let sealer = state.sealer.clone();
    let host_org = state.node.org;
    let c2 = caller.clone();
    let message = blocking(move || {
        let viewer = c2.viewer();
        let (event, target) = find_target(&store, &viewer, uuid)?;
        let kind = target.kind();
        let not_attached = || {
            ApiError::NotFound(format!(
                "Could not remove tag as it is not attached to the target {kind}"
            ))
        };
        // Views carry the catalogue's ids (`Store::get_event`).
        let matches = |t: &Tag| {
            if is_id(&requested) {
                t.id.is_some_and(|id| id.to_string() == requested)
            } else {
                t.key() == requested.to_lowercase()
            }
        };
        let (ev, removed) = modify_event(&store, &event, false, |ev, ts| {
            // Decided for both kinds before `tags` borrows the event mutably.
            let may_local = tagging::may_remove(&viewer, &c2.role, ev, true, host_org);
            let may_global = tagging::may_remove(&viewer, &c2.role, ev, false, host_org);
            let (tags, slot) = target_tags(ev, target, &viewer)?;
            let pos = tags.iter().position(matches).ok_or_else(not_attached)?;
            if !(if tags[pos].local {
                may_local
            } else {
                may_global
            }) {
                return Err(ApiError::Forbidden);
            }
            let removed = tags.remove(pos);
            if let Some(s) = slot {
                touch(ev, s, ts);
            }
            if !removed.local {
                // Shared content changed; a local tag is not shared, so the event
                // stays published.
                ev.published = false;
            }
            Ok(Edit::Write(removed))
        })?;
        if !removed.local {
            // Besides the newer sealed version without the tag, the removal itself
            // is a sealed tombstone, for peers that merge tags additively (MISP).
            let t = crate::seal::Tombstone::seal(
                crate::seal::TombstoneKind::TagRemoved {
                    tag: removed.name.clone(),
                    element_uuid: uuid,
                },
                ev.uuid,
                ev.timestamp,
                sealer.key(),
                sealer.org(),
            )
            .map_err(|e| ApiError::Internal(format!("cannot seal the tombstone: {e}")))?;
            let bytes = serde_json::to_vec(&t).map_err(|e| ApiError::Internal(e.to_string()))?;
            store.add_tombstone(&ev.uuid, ev.timestamp, bytes)?;
        }
        let message = format!(
            "{} tag {} ({}) successfully removed from {kind}({}).",
            if removed.local { "Local" } else { "Global" },
            removed.name,
            removed.id.unwrap_or(0),
            local_id(&ev, target)
        );
        tracing::info!(user = c2.user.id, target = %uuid, tag = %removed.name, "tag removed");
        Ok(message)
    })
    .await?;
    Ok(Json(save_success(&message, None)).into_response())
}

#[cfg(test)]
mod tests {
    use crate::api::testkit::{Kit, NO_PERMISSION};
    use crate::store::tags::TagRecord;
    use axum::http::StatusCode;
    use serde_json::{json, Value};

    fn names(tags: &Value) -> Vec<String> {
        tags.as_array()
            .map(|a| {
                a.iter()
                    .map(|t| t["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The catalogue id of `name`.
    fn tag_id(store: &crate::store::Store, name: &str) -> u64 {
        store.tag_by_name(name).unwrap().unwrap().id
    }

    #[tokio::test]
    async fn attach_and_remove_on_events_and_attributes() {
        let k = Kit::new();
        // A user (not a tag editor) attaches tags the catalogue has; an
        // unknown name is refused as MISP refuses it.
        for n in ["tlp:amber", "malware", "kept-home"] {
            k.state.store.add_tag(TagRecord::new(n)).unwrap();
        }
        let (eid, euuid) = k.event(&k.a, json!({"info": "tags", "distribution": "1", "Attribute": [{"type": "text", "value": "t"}]})).await;
        let ev = k.get_event(&eid).await;
        let auuid = ev["Attribute"][0]["uuid"].as_str().unwrap().to_owned();
        let aid = ev["Attribute"][0]["id"].as_str().unwrap().to_owned();
        let store = k.state.store.clone();

        let (st, v) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.a,
                Some(json!({"uuid": euuid, "tag": "tlp:amber", "local": false})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let msg = format!(
            "Global tag tlp:amber({}) successfully attached to Event({eid}).",
            tag_id(&store, "tlp:amber")
        );
        assert_eq!(v["message"], msg.as_str());
        assert_eq!(v["name"], msg.as_str());
        assert_eq!(v["saved"], true);
        assert_eq!(v["url"], "/tags/attachTagToObject");
        let ev2 = k.get_event(&eid).await;
        assert_eq!(names(&ev2["Tag"]), ["tlp:amber"]);
        assert!(ev2["timestamp"].as_str().unwrap() > ev["timestamp"].as_str().unwrap());
        assert_eq!(store.lookup_tag("TLP:AMBER", 10).unwrap().len(), 1);
        let (st, v) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.a,
                Some(json!({"uuid": euuid, "tag": "brand-new"})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert!(
            v["errors"]
                .to_string()
                .contains("insufficient privileges to create it"),
            "{v}"
        );
        assert!(store.tag_by_name("brand-new").unwrap().is_none());

        let (st, v) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.a,
                Some(json!({"uuid": euuid, "tag": "TLP:amber"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(v["message"]
            .as_str()
            .unwrap()
            .contains("already has the requested tag"));

        let (st, v) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.a,
                Some(json!({"uuid": auuid, "tag": "malware"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(v["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("attached to Attribute({aid}).")));
        let (_, v) = k
            .call("GET", &format!("/attributes/view/{auuid}"), &k.a, None)
            .await;
        assert_eq!(names(&v["Attribute"]["Tag"]), ["malware"]);
        assert_eq!(
            v["Attribute"]["Tag"][0]["id"],
            tag_id(&store, "malware").to_string()
        );
        assert_eq!(store.lookup_tag("malware", 10).unwrap().len(), 1);

        // Local tags belong to the host organisation (this node's, A): another
        // organisation may attach neither a local tag nor a global one.
        let (st, v) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.b,
                Some(json!({"uuid": euuid, "tag": "kept-home", "local": 1})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        let (st, v) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.a,
                Some(json!({"uuid": euuid, "tag": "kept-home", "local": 1})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(v["message"]
            .as_str()
            .unwrap()
            .starts_with("Local tag kept-home("));
        // Nor remove the host's local tag (it may be what keeps the event home).
        let (st, v) = k
            .call(
                "POST",
                "/tags/removeTagFromObject",
                &k.b,
                Some(json!({"uuid": euuid, "tag": "kept-home"})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        let (st, v) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.b,
                Some(json!({"uuid": euuid, "tag": "tlp:red"})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["message"], NO_PERMISSION);
        let (st, v) = k
            .call(
                "POST",
                "/tags/removeTagFromObject",
                &k.b,
                Some(json!({"uuid": euuid, "tag": "tlp:amber"})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");

        // The index: what the caller can see, with counts and stable ids.
        let (st, v) = k.call("GET", "/tags/index", &k.a, None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(names(&v["Tag"]), ["kept-home", "malware", "tlp:amber"]);
        let amber = &v["Tag"][2];
        assert_eq!(amber["id"], tag_id(&store, "tlp:amber").to_string());
        assert_eq!(amber["count"], 1);
        assert_eq!(amber["attribute_count"], 0);
        assert_eq!(v["Tag"][1]["attribute_count"], 1);
        let (_, v) = k.call("GET", "/tags/index/searchall:amb", &k.a, None).await;
        assert_eq!(names(&v["Tag"]), ["tlp:amber"]);
        // By id.
        let (st, v) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.a,
                Some(json!({"uuid": auuid, "tag": tag_id(&store, "tlp:amber").to_string()})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (st, v) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.a,
                Some(json!({"uuid": auuid, "tag": "99"})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");

        // Removal really removes: from the attribute, then the event.
        let (st, v) = k
            .call(
                "POST",
                "/tags/removeTagFromObject",
                &k.a,
                Some(json!({"uuid": auuid, "tag": "malware"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(
            v["message"],
            format!(
                "Global tag malware ({}) successfully removed from Attribute({aid}).",
                tag_id(&store, "malware")
            )
        );
        let (_, v) = k
            .call("GET", &format!("/attributes/view/{auuid}"), &k.a, None)
            .await;
        assert_eq!(names(&v["Attribute"]["Tag"]), ["tlp:amber"]);
        assert!(store.lookup_tag("malware", 10).unwrap().is_empty());
        let (st, v) = k
            .call(
                "POST",
                "/tags/removeTagFromObject",
                &k.a,
                Some(json!({"uuid": euuid, "tag": "tlp:amber"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(v["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("successfully removed from Event({eid}).")));
        let ev3 = k.get_event(&eid).await;
        assert_eq!(names(&ev3["Tag"]), ["kept-home"]);
        // Only the attribute's tlp:amber is left in the tag index.
        let hits = store.lookup_tag("tlp:amber", 10).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].attribute.to_string(), auuid);
        let (st, v) = k
            .call(
                "POST",
                "/tags/removeTagFromObject",
                &k.a,
                Some(json!({"uuid": euuid, "tag": "tlp:amber"})),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
        // The local tag: removable by the host organisation.
        let (st, v) = k
            .call(
                "POST",
                "/tags/removeTagFromObject",
                &k.a,
                Some(json!({"uuid": euuid, "tag": "kept-home"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(v["message"]
            .as_str()
            .unwrap()
            .starts_with("Local tag kept-home"));
    }

    #[tokio::test]
    async fn invisible_targets_and_bad_requests() {
        let k = Kit::new();
        let (_, hidden) = k
            .event(&k.a, json!({"info": "hidden", "distribution": "0"}))
            .await;
        let unknown = "5c1b1cc1-0000-4000-8000-000000000009";
        for target in [hidden.as_str(), unknown] {
            let (st, v) = k
                .call(
                    "POST",
                    "/tags/attachTagToObject",
                    &k.b,
                    Some(json!({"uuid": target, "tag": "x", "local": true})),
                )
                .await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
            assert_eq!(v["message"], "Invalid Target.");
        }
        let (st, _) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.a,
                Some(json!({"uuid": "nope", "tag": "x"})),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        let (st, _) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.a,
                Some(json!({"uuid": hidden})),
            )
            .await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
        let (_, v) = k.call("GET", "/tags/index", &k.b, None).await;
        assert_eq!(v["Tag"], json!([]));
    }

    /// A tag that looks like a policy tag must be one: look-alikes and names
    /// with invisible characters are refused on every way in (attach, event
    /// writes), and compatibility spellings are stored as the real tag.
    #[tokio::test]
    async fn look_alike_policy_tags_are_refused_and_full_width_folds() {
        let k = Kit::new();
        k.state.store.add_tag(TagRecord::new("tlp:red")).unwrap();
        let (eid, euuid) = k
            .event(&k.a, json!({"info": "tags", "distribution": "3"}))
            .await;
        for bad in ["tlp:r\u{435}d", "tlp:\u{200b}red", "tlp:red\u{0}"] {
            let (st, v) = k
                .call(
                    "POST",
                    "/tags/attachTagToObject",
                    &k.a,
                    Some(json!({"uuid": euuid, "tag": bad})),
                )
                .await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{bad:?}: {v}");
            assert!(
                !v.to_string().contains("insufficient privileges"),
                "{bad:?}: {v}"
            );
        }
        let (st, v) = k
            .call(
                "POST",
                "/events/add",
                &k.a,
                Some(json!({"info": "x", "Tag": [{"name": "tlp:r\u{435}d"}]})),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        assert!(v.to_string().contains("looks like the policy tag"), "{v}");
        let (st, v) = k
            .call(
                "POST",
                "/tags/attachTagToObject",
                &k.a,
                Some(json!({"uuid": euuid, "tag": "\u{ff54}\u{ff4c}\u{ff50}\u{ff1a}\u{ff52}\u{ff45}\u{ff44}"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let ev = k.get_event(&eid).await;
        assert_eq!(names(&ev["Tag"]), ["tlp:red"]);
    }
}
