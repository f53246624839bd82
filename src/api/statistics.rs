//! `attributes/attributeStatistics/<type|category>[/<percentage>]` and
//! `tags/tagStatistics/<percentage>/<keysort>`, with MISP's answer shapes
//! (`AttributesController::attributeStatistics`,
//! `TagsController::tagStatistics`): counts as strings, or percentages
//! rounded to three places with a `%`.
//!
//! One deliberate difference: MISP counts every row of its tables, deleted
//! and invisible ones included, for any user. Here the counts are of what the
//! caller can see (live attributes of visible events, after redaction), so a
//! statistic cannot reveal what a view would not. Both walk the stored events
//! per request, as MISP's queries walk its tables; they are not indexes.

use super::auth::Caller;
use super::elements::not_allowed;
use super::error::ApiError;
use super::{blocking, AppState};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/attributes/attributeStatistics/{context}",
            get(attribute_statistics),
        )
        .route(
            "/attributes/attributeStatistics/{context}/{percentage}",
            get(attribute_statistics_percentage),
        )
        .route("/tags/tagStatistics", get(tag_statistics_plain))
        .route(
            "/tags/tagStatistics/{percentage}/{keysort}",
            get(tag_statistics),
        )
}

/// PHP's `round(100 * c / total, 3) . '%'`: "25%", "12.5%", "33.333%".
fn percent(count: u64, total: u64) -> String {
    let p = (100.0 * count as f64 / total.max(1) as f64 * 1000.0).round() / 1000.0;
    format!("{p}%")
}

fn counts_json(counts: BTreeMap<String, u64>, percentage: bool) -> Map<String, Value> {
    let total: u64 = counts.values().sum();
    counts
        .into_iter()
        .map(|(k, c)| {
            let v = if percentage {
                percent(c, total)
            } else {
                c.to_string()
            };
            (k, Value::String(v))
        })
        .collect()
}

async fn attribute_statistics(
    state: State<AppState>,
    caller: Caller,
    Path(context): Path<String>,
) -> Result<Json<Value>, ApiError> {
    attributes(state, caller, context, false).await
}

/// Any second segment asks for percentages (MISP tests only that it is set).
async fn attribute_statistics_percentage(
    state: State<AppState>,
    caller: Caller,
    Path((context, percentage)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let pct = !matches!(percentage.as_str(), "" | "0");
    attributes(state, caller, context, pct).await
}

async fn attributes(
    State(state): State<AppState>,
    caller: Caller,
    context: String,
    percentage: bool,
) -> Result<Json<Value>, ApiError> {
    let by_type = match context.as_str() {
        "type" => true,
        "category" => false,
        _ => return Err(not_allowed("Invalid type requested.")),
    };
    let store = state.store.clone();
    let viewer = caller.viewer();
    let counts = blocking(move || {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        super::elements::for_each_visible(&store, &viewer, |ev| {
            for a in ev.all_attributes().filter(|a| !a.deleted) {
                let key = if by_type { &a.attr_type } else { &a.category };
                *counts.entry(key.clone()).or_default() += 1;
            }
        })?;
        Ok(counts)
    })
    .await?;
    Ok(Json(Value::Object(counts_json(counts, percentage))))
}

async fn tag_statistics_plain(
    state: State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    tags(state, caller, false, false).await
}

async fn tag_statistics(
    state: State<AppState>,
    caller: Caller,
    Path((percentage, keysort)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    tags(state, caller, percentage == "true", keysort == "true").await
}

/// Event tags (MISP counts `EventTag` rows: attribute tags are not counted)
/// by name; `taxonomies` is `[]`, MISP's answer with no taxonomy enabled
/// (taxonomies are issue 15).
async fn tags(
    State(state): State<AppState>,
    caller: Caller,
    percentage: bool,
    keysort: bool,
) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let viewer = caller.viewer();
    let counts = blocking(move || {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        super::elements::for_each_visible(&store, &viewer, |ev| {
            for t in &ev.tags {
                *counts.entry(t.name.clone()).or_default() += 1;
            }
        })?;
        Ok(counts)
    })
    .await?;
    // JSON objects carry no order (this node's are sorted by key), so MISP's
    // sort by count or by name (`keysort`) has nothing to change here.
    let _ = keysort;
    let tags = counts_json(counts, percentage);
    let mut out = Map::new();
    out.insert("tags".into(), Value::Object(tags));
    out.insert("taxonomies".into(), Value::Array(Vec::new()));
    Ok(Json(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn php_percentages() {
        assert_eq!(percent(1, 4), "25%");
        assert_eq!(percent(1, 8), "12.5%");
        assert_eq!(percent(1, 3), "33.333%");
        assert_eq!(percent(3, 3), "100%");
        assert_eq!(percent(5, 8), "62.5%");
    }
}
