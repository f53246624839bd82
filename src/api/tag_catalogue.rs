//! The tag catalogue at MISP's paths: `tags/index`, `tags/view/<id>`,
//! `tags/add`, `tags/edit/<id>`, `tags/delete/<id>`, `tags/search`
//! (`TagsController`). The catalogue itself is `store::tags`; attaching and
//! removing tags is `api::tags`.
//!
//! Who learns that a tag exists: MISP hides tags restricted to another
//! organisation or user; this node also hides a tag that is on stored data
//! none of which the caller can see, because a tag's name is derived data of
//! what it tags (a `victim:…` or `case:…` tag on another organisation's
//! private event must not show in `tags/index`). A tag on no data (made by
//! `tags/add`) is listed for everyone, as MISP lists its tag table. Hidden
//! and unknown answer alike.
//!
//! Rights as MISP's ACL gives them: everyone lists, views and searches;
//! `tags/add` needs `perm_tag_editor`; `tags/edit` and `tags/delete` are for
//! site admins. Unlike MISP, which links tags to data by id, stored events
//! carry tags by name under their origin's seal, so a tag that is on stored
//! data is neither renamed nor deleted here (refused, with the reason).

use super::auth::Caller;
use super::body::{as_u64, field, set_strings, unwrap_key, NamedParams, RawBody};
use super::elements::{not_allowed, truthy};
use super::error::ApiError;
use super::{blocking, AppState};
use crate::policy::Viewer;
use crate::store::tags::TagRecord;
use crate::store::Store;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::collections::HashMap;

/// A catalogue row as MISP's `tags` table answers it (ids as strings, flags
/// as booleans).
pub(crate) fn tag_json(t: &TagRecord) -> Value {
    json!({
        "id": t.id.to_string(),
        "name": t.name,
        "colour": t.colour,
        "exportable": t.exportable,
        "org_id": t.org_id.to_string(),
        "user_id": t.user_id.to_string(),
        "hide_tag": t.hide_tag,
        "numerical_value": t.numerical_value,
        "is_galaxy": t.name.to_ascii_lowercase().starts_with("misp-galaxy:"),
        "is_custom_galaxy": false,
        "local_only": t.local_only,
    })
}

/// How often `viewer` sees each tag (by folded name): on events, and on live
/// attributes. MISP computes these counts per request too.
fn visible_counts(store: &Store, viewer: &Viewer) -> Result<HashMap<String, (u64, u64)>, ApiError> {
    let mut out: HashMap<String, (u64, u64)> = HashMap::new();
    super::elements::for_each_visible(store, viewer, |ev| {
        for t in &ev.tags {
            out.entry(t.key()).or_default().0 += 1;
        }
        for a in ev.all_attributes().filter(|a| !a.deleted) {
            for t in &a.tags {
                out.entry(t.key()).or_default().1 += 1;
            }
        }
    })?;
    Ok(out)
}

/// Whether `caller` may learn that `t` exists (see the module docs), given
/// what the caller sees of each tag (`visible_counts`).
fn shown(
    store: &Store,
    caller: &Caller,
    t: &TagRecord,
    counts: &HashMap<String, (u64, u64)>,
) -> Result<bool, ApiError> {
    if caller.role.perm_site_admin {
        return Ok(true);
    }
    if (t.org_id != 0 && t.org_id != caller.org.id)
        || (t.user_id != 0 && t.user_id != caller.user.id)
    {
        return Ok(false);
    }
    let (events, attributes) = counts
        .get(&t.name.trim().to_lowercase())
        .copied()
        .unwrap_or((0, 0));
    Ok(events + attributes > 0 || !store.tag_in_use(&t.name)?)
}

/// Whether `caller` may learn that `t` exists (one walk of the visible
/// events): for a tag named by id in a request.
pub(crate) fn may_see(store: &Store, caller: &Caller, t: &TagRecord) -> Result<bool, ApiError> {
    if caller.role.perm_site_admin {
        return Ok(true);
    }
    let counts = visible_counts(store, &caller.viewer())?;
    shown(store, caller, t, &counts)
}

/// `GET tags/index`: `{"Tag": [...]}`, every catalogue row by name, with
/// `count` (visible events carrying it) and `attribute_count` unless
/// `exclude_statistics`. Named parameters `searchall` (substring), `name` /
/// `filter` / `search` (exact, case-insensitive) and `favouritesOnly` (there
/// are no favourites here) filter as in MISP.
pub async fn index(
    State(state): State<AppState>,
    caller: Caller,
    Extension(named): Extension<NamedParams>,
) -> Result<Json<Value>, ApiError> {
    if named.flag("favouritesOnly") {
        return Ok(Json(json!({"Tag": []})));
    }
    let searchall = named
        .get("searchall")
        .map(|s| s.trim_matches('%').to_lowercase());
    let exact: Vec<String> = ["name", "filter", "search"]
        .iter()
        .filter_map(|k| named.get(k))
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let stats = !named.flag("exclude_statistics");
    let store = state.store.clone();
    let viewer = caller.viewer();
    let rows = blocking(move || {
        let catalogue = store.tag_catalogue()?;
        let counts = visible_counts(&store, &viewer)?;
        let mut rows = Vec::new();
        for (k, t) in catalogue {
            if !searchall.as_ref().is_none_or(|s| k.contains(s.as_str()))
                || !exact.iter().all(|e| *e == k)
                || !shown(&store, &caller, &t, &counts)?
            {
                continue;
            }
            let mut row = tag_json(&t);
            row["favourite"] = json!(false);
            if stats {
                let (events, attributes) = counts.get(&k).copied().unwrap_or((0, 0));
                row["count"] = json!(events);
                row["attribute_count"] = json!(attributes);
            }
            rows.push(row);
        }
        Ok(rows)
    })
    .await?;
    Ok(Json(json!({ "Tag": rows })))
}

fn invalid_tag() -> ApiError {
    // MISP answers an unknown id with a MethodNotAllowedException.
    not_allowed("Invalid Tag")
}

/// `GET tags/view/<id>`: the bare row (not wrapped), with `count` and
/// `attribute_count` as the caller sees them (`TagsController::view`).
pub async fn view(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: u64 = id.trim().parse().map_err(|_| invalid_tag())?;
    let store = state.store.clone();
    let viewer = caller.viewer();
    let row = blocking(move || {
        let Some(t) = store.tag_by_id(id)? else {
            return Err(invalid_tag());
        };
        let counts = visible_counts(&store, &viewer)?;
        if !shown(&store, &caller, &t, &counts)? {
            return Err(invalid_tag());
        }
        let (events, attributes) = counts
            .get(&t.name.to_lowercase())
            .copied()
            .unwrap_or((0, 0));
        let mut row = tag_json(&t);
        row["count"] = json!(events);
        row["attribute_count"] = json!(attributes);
        Ok(row)
    })
    .await?;
    Ok(Json(row))
}

/// The catalogue fields a `tags/add` or `tags/edit` body sets on `rec`.
fn apply_body(rec: &mut TagRecord, v: &Value, action: &str) -> Result<(), ApiError> {
    let bad = |field: &str, why: &str| {
        ApiError::refused(&format!("Could not {action} the Tag"), field, why)
    };
    set_strings(
        v,
        &mut [("name", &mut rec.name), ("colour", &mut rec.colour)],
        |f| bad(f, "Not a string."),
    )?;
    if let Some(x) = field(v, "exportable") {
        rec.exportable = truthy(Some(x));
    }
    if let Some(x) = field(v, "hide_tag") {
        rec.hide_tag = truthy(Some(x));
    }
    if let Some(x) = field(v, "local_only") {
        rec.local_only = truthy(Some(x));
    }
    if let Some(x) = field(v, "org_id") {
        rec.org_id = as_u64(x).ok_or_else(|| bad("org_id", "Not an organisation id."))?;
    }
    if let Some(x) = field(v, "user_id") {
        rec.user_id = as_u64(x).ok_or_else(|| bad("user_id", "Not a user id."))?;
    }
    if let Some(x) = v.get("numerical_value") {
        rec.numerical_value = match x {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            other => Some(
                as_u64(other)
                    .ok_or_else(|| bad("numerical_value", "Not a number."))?
                    .to_string(),
            ),
        };
    }
    Ok(())
}

/// `POST tags/add` (perm_tag_editor): `{"Tag": {…}}` or the bare row. A name
/// the catalogue has (any case) answers that row unchanged, as MISP's REST
/// shortcut does; a missing colour gets MISP's default (MD5 of the name).
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(caller.role.perm_tag_editor)?;
    let v = unwrap_key(body.json_value()?, "Tag");
    if field(&v, "name").is_none() {
        return Err(ApiError::refused(
            "Could not add the Tag",
            "name",
            "This field is required.",
        ));
    }
    let mut rec = TagRecord::new("");
    rec.colour.clear();
    apply_body(&mut rec, &v, "add")?;
    let store = state.store.clone();
    let stored = blocking(move || Ok(store.add_tag(rec)?)).await?;
    super::audited::subject(format!("tag {} {}", stored.id, stored.name));
    tracing::info!(user = caller.user.id, tag = %stored.name, id = stored.id, "tag added");
    Ok(Json(json!({"Tag": tag_json(&stored)})))
}

/// `POST|PUT tags/edit/<id>` (site admins): every field the body names;
/// answers `{"Tag": …}` as stored.
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(caller.role.perm_site_admin)?;
    let not_found = || ApiError::NotFound("Invalid tag".into());
    let id: u64 = id.trim().parse().map_err(|_| not_found())?;
    super::audited::subject(format!("tag {id}"));
    let v = unwrap_key(body.json_value()?, "Tag");
    let store = state.store.clone();
    let stored = blocking(move || {
        let Some(mut rec) = store.tag_by_id(id)? else {
            return Err(not_found());
        };
        apply_body(&mut rec, &v, "edit")?;
        store.update_tag(rec)?.ok_or_else(not_found)
    })
    .await?;
    tracing::info!(user = caller.user.id, tag = %stored.name, id, "tag edited");
    Ok(Json(json!({"Tag": tag_json(&stored)})))
}

/// `POST tags/delete/<id>` (site admins): `{"name": "Tag deleted.", …}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(caller.role.perm_site_admin)?;
    let not_found = || ApiError::NotFound("Invalid tag".into());
    let id: u64 = id.trim().parse().map_err(|_| not_found())?;
    super::audited::subject(format!("tag {id}"));
    let store = state.store.clone();
    let old = blocking(move || store.delete_tag(id)?.ok_or_else(not_found)).await?;
    tracing::info!(user = caller.user.id, tag = %old.name, id, "tag deleted");
    let url = super::error::current_path();
    Ok(Json(json!({
        "name": "Tag deleted.", "message": "Tag deleted.", "url": url,
    })))
}

/// `POST tags/search` `{"tag": …}` (or `tagname`, or the body's values):
/// catalogue rows whose name matches a term, case-insensitively, with `%` as
/// MISP's LIKE wildcard; answers a list of `{"Tag": …}` (no match: `[]`).
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<Json<Value>, ApiError> {
    let v = body.json_value()?;
    let mut terms: Vec<String> = Vec::new();
    let picked = v
        .get("tag")
        .or_else(|| v.get("tagname"))
        .or_else(|| v.get("Tag").and_then(|t| t.get("name")));
    let mut push = |x: &Value| {
        if let Some(s) = x.as_str() {
            terms.push(s.trim().to_lowercase());
        }
    };
    match picked {
        Some(Value::Array(a)) => a.iter().for_each(&mut push),
        Some(x) => push(x),
        None => {
            if let Value::Object(m) = &v {
                m.values().for_each(&mut push);
            }
        }
    }
    terms.retain(|t| !t.is_empty());
    let store = state.store.clone();
    let rows = blocking(move || {
        let counts = visible_counts(&store, &caller.viewer())?;
        let mut rows = Vec::new();
        for (k, t) in store.tag_catalogue()? {
            if terms.iter().any(|term| like(&k, term)) && shown(&store, &caller, &t, &counts)? {
                rows.push(json!({"Tag": tag_json(&t)}));
            }
        }
        Ok(rows)
    })
    .await?;
    Ok(Json(Value::Array(rows)))
}

/// SQL LIKE with `%` (any run) and `_` (any one character), on folded text.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Iterative match with backtracking to the last `%`.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < t.len() {
        if j < p.len() && (p[j] == '_' || p[j] == t[i]) {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '%' {
            star = Some((j, i));
            j += 1;
        } else if let Some((sj, si)) = star {
            j = sj + 1;
            i = si + 1;
            star = Some((sj, si + 1));
        } else {
            return false;
        }
    }
    while j < p.len() && p[j] == '%' {
        j += 1;
    }
    j == p.len()
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_as_sql() {
        assert!(like("this is a test tag", "this %"));
        assert!(like("tlp:red", "tlp:red"));
        assert!(like("tlp:red", "%red"));
        assert!(like("tlp:red", "t_p:%"));
        assert!(!like("tlp:red", "tlp"));
        assert!(!like("not a tag", "this %"));
        assert!(like("a%b", "a%b"));
    }
}
