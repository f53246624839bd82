//! Server information: version, describeTypes, health and metrics.

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The MISP API version sluis speaks. PyMISP parses every dotted part as an
/// integer, so this must stay purely numeric.
pub const MISP_VERSION: &str = "2.5.1";
pub const PYMISP_RECOMMENDED: &str = "2.5.34.4";

/// Longest `/healthz` waits for the store before calling the node unhealthy.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /healthz`, for orchestrators and monitoring:
///
/// * **503** `{"status":"error","error":…}` when the node needs a restart: the
///   database stopped taking writes after an I/O error (sled takes none until it
///   is reopened, see `store::health`) or a write to disk is stuck, or the audit
///   log stopped after a failed fsync, or the store cannot be read or does not
///   answer within [`HEALTH_TIMEOUT`];
/// * **200** `{"status":"degraded","error":…}` while the disk is below the
///   store's free-space reserve, or the audit log cannot be written for lack
///   of space: changes are refused, and the node recovers by itself once space
///   is freed, so a restart would not help;
/// * **200** `{"status":"ok","last_change":…}` otherwise.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let audit = state.audit.clone();
    // The check may wait on the disk (a flush); one that does not return in
    // time is an answer too (see `Store::write_stalled`).
    let checked = tokio::time::timeout(HEALTH_TIMEOUT, super::blocking(move || {
        let needs_restart = match store.check_writable() {
            Err(e) => Some(e.to_string()),
            Ok(()) if audit.needs_restart() => Some(
                "the audit log stopped after a failed write to disk; restart the node once the disk is healthy"
                    .to_owned(),
            ),
            Ok(()) => None,
        };
        let seq = store.last_sequence().map_err(|e| e.to_string());
        let low = match store.check_space() {
            Err(e) => Some(e.to_string()),
            Ok(()) if audit.disk_full() => Some(
                "the disk is full: the audit log cannot be written, so changes are refused until space is freed"
                    .to_owned(),
            ),
            Ok(()) => None,
        };
        Ok((needs_restart, seq, low))
    }))
    .await
    .unwrap_or_else(|_| {
        Err(ApiError::Unavailable(format!(
            "the health check did not complete within {} s: the database is not answering (a write to disk is stuck?); restart the node",
            HEALTH_TIMEOUT.as_secs()
        )))
    });
    let unhealthy = |error: String| {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "error": error})),
        )
            .into_response()
    };
    match checked {
        Ok((Some(problem), _, _)) | Ok((None, Err(problem), _)) => unhealthy(problem),
        Ok((None, Ok(seq), Some(low))) => {
            Json(json!({"status": "degraded", "error": low, "last_change": seq})).into_response()
        }
        Ok((None, Ok(seq), None)) => {
            Json(json!({"status": "ok", "last_change": seq})).into_response()
        }
        Err(e) => unhealthy(e.to_string()),
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let gauges = super::blocking(move || Ok((store.size_on_disk()?, store.event_count())))
        .await
        .unwrap_or((0, 0));
    let mut text = state.metrics.render(&[
        (
            "sluis_store_disk_bytes",
            "Bytes the database occupies on disk.",
            gauges.0 as f64,
        ),
        ("sluis_store_events", "Live events stored.", gauges.1 as f64),
        (
            "sluis_store_durable_sequence",
            "The newest change on disk (what peers may pull).",
            state.store.durable_sequence() as f64,
        ),
    ]);
    state.hub.render(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub async fn version(caller: Caller) -> Json<Value> {
    Json(json!({
        "version": MISP_VERSION,
        "pymisp_recommended_version": PYMISP_RECOMMENDED,
        "perm_sync": caller.role.perm_sync,
        "perm_sighting": caller.role.perm_sighting,
        "perm_galaxy_editor": false,
        "request_encoding": ["gzip"],
        "filter_sightings": true,
        "product": "sluis",
        "product_version": env!("CARGO_PKG_VERSION"),
    }))
}

pub async fn pymisp_version(_caller: Caller) -> Json<Value> {
    Json(json!({"version": PYMISP_RECOMMENDED}))
}

/// MISP's own describeTypes document (vendored), served whole: PyMISP crashes on
/// a 200 that lacks any of its four keys.
pub async fn describe_types(_caller: Caller) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::model::types::describe_types_json(),
    )
        .into_response()
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("Not Found".into())
}
