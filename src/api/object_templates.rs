//! `objectTemplates/index` and `objectTemplates/view/<id|uuid>`
//! (`ObjectTemplatesController`): the MISP object templates this node
//! validates objects against (vendored from MISP's misp-objects, see
//! `src/model/data/NOTICE.md`), in MISP's answer shapes.
//!
//! Differences: the templates are the vendored set, not a table an admin
//! updates (`objectTemplates/update` is not served); their numeric ids are
//! their positions in name order; and the vendored data keeps what
//! validation needs, so an element's `ui-priority`, `sane_default`,
//! `values_list` and `description` are MISP's empty defaults.

use super::auth::Caller;
use super::body::NamedParams;
use super::error::ApiError;
use super::AppState;
use crate::model::template::{templates, Template};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/object_templates/index", get(index))
        .route("/object_templates/index/{scope}", get(index_scope))
        .route("/object_templates/view/{id}", get(view))
}

/// MISP's templates are owned by no organisation of this node.
fn organisation() -> Value {
    json!({"id": "0", "name": "MISP", "uuid": ""})
}

fn template_json(id: usize, t: &Template) -> Value {
    json!({
        "id": id.to_string(),
        "user_id": "0",
        "org_id": "0",
        "uuid": t.uuid,
        "name": t.name,
        "meta-category": t.meta_category,
        "description": t.description,
        "version": t.version.to_string(),
        "requirements": {"required": t.required, "requiredOneOf": t.required_one_of},
        "fixed": true,
        "active": true,
    })
}

async fn index_scope(
    state: State<AppState>,
    caller: Caller,
    named: Extension<NamedParams>,
    Path(_scope): Path<String>,
) -> Json<Value> {
    index(state, caller, named).await
}

/// `GET objectTemplates/index[/all][/searchall:…]`: every template, as
/// `[{"ObjectTemplate", "Organisation"}]`; `searchall` matches the name,
/// meta-category or description.
pub async fn index(
    State(_state): State<AppState>,
    _caller: Caller,
    Extension(named): Extension<NamedParams>,
) -> Json<Value> {
    let search = named
        .get("searchall")
        .map(|s| s.trim_matches('%').to_lowercase());
    let rows: Vec<Value> = templates()
        .into_iter()
        .enumerate()
        .filter(|(_, t)| {
            search.as_ref().is_none_or(|s| {
                [&t.name, &t.meta_category, &t.description]
                    .iter()
                    .any(|f| f.to_lowercase().contains(s.as_str()))
            })
        })
        .map(|(i, t)| json!({"ObjectTemplate": template_json(i + 1, t), "Organisation": organisation()}))
        .collect();
    Json(Value::Array(rows))
}

/// `GET objectTemplates/view/<id|uuid>`: the template with its elements
/// (`ObjectTemplateElement`, one per relation, by relation name).
pub async fn view(
    State(_state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let all = templates();
    let pos = if let Ok(n) = id.trim().parse::<usize>() {
        n.checked_sub(1).filter(|i| *i < all.len())
    } else if id.trim().parse::<uuid::Uuid>().is_ok() {
        all.iter()
            .position(|t| t.uuid.eq_ignore_ascii_case(id.trim()))
    } else {
        return Err(ApiError::NotFound("Invalid object template id.".into()));
    };
    let Some(pos) = pos else {
        return Err(ApiError::NotFound("Invalid object template".into()));
    };
    let t = all[pos];
    // Element ids: a running count over the templates before this one.
    let first: usize = all[..pos].iter().map(|t| t.relations.len()).sum();
    let mut relations: Vec<_> = t.relations.iter().collect();
    relations.sort_by(|a, b| a.0.cmp(b.0));
    let elements: Vec<Value> = relations
        .into_iter()
        .enumerate()
        .map(|(i, (name, r))| {
            json!({
                "id": (first + i + 1).to_string(),
                "object_template_id": (pos + 1).to_string(),
                "object_relation": name,
                "type": r.misp_attribute,
                "ui-priority": "0",
                "categories": r.categories.clone().unwrap_or_default(),
                "sane_default": [],
                "values_list": [],
                "description": "",
                "disable_correlation": r.disable_correlation,
                "multiple": r.multiple,
            })
        })
        .collect();
    Ok(Json(json!({
        "ObjectTemplate": template_json(pos + 1, t),
        "Organisation": organisation(),
        "ObjectTemplateElement": elements,
    })))
}
