//! `events/restSearch` and `attributes/restSearch`: MISP's search API, served so
//! that PyMISP's `search()` and SIEM connectors work unchanged.
//!
//! The body is MISP's filter object (optionally wrapped in `{"request": …}`); the
//! return format comes from `returnFormat` or a path segment
//! (`/attributes/restSearch/csv`). Answers are `json` (MISP's exact envelopes),
//! `csv` (MISP's columns and quoting) or `text` (one value per line), each with an
//! `X-Result-Count` header.
//!
//! How a search runs:
//!
//! 1. **Candidates** come from one index, the most selective one the filters
//!    allow (event id/uuid, value, tag, type, timestamps, published); only a
//!    query without any indexed filter walks every event.
//! 2. **Pass 1** loads each candidate, redacts it for the caller
//!    ([`crate::policy::redact_event`]), checks every filter and counts the matching rows
//!    (events, or attributes for `attributes/restSearch`). The total is MISP's
//!    `X-Result-Count`: every visible match, before `limit`/`page` (MISP counts
//!    the same way for its paginators). Only events that fall in the requested
//!    page are remembered (uuid, offset, row count), and the evaluated event
//!    itself while a small row budget lasts.
//! 3. **Pass 2** streams the page: remembered events are reloaded (unless cached)
//!    and written in 64 KiB chunks through a bounded channel, so memory stays flat
//!    however large the answer (a CSV of a million attributes).
//!
//! The header has to be sent before the body, which is why the count needs its own
//! pass; an event changed between the passes can make the body hold fewer rows than
//! the header announced, never more (MISP's separate count query has the same race).
//!
//! Invisible rows are absent: they are neither returned nor counted.

use super::auth::Caller;
use super::body::{NamedParams, RawBody};
use super::error::ApiError;
use super::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use filter::{Query, Scope};
use serde_json::{Map, Value};
use std::io::{self, Write};
use tokio::sync::{mpsc, oneshot};

/// Size of the chunks handed to the connection.
const CHUNK: usize = 64 * 1024;
/// Chunks buffered between the search thread and the connection.
const CHANNEL_DEPTH: usize = 4;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events/restSearch", post(events_search).get(events_search))
        .route(
            "/events/restSearch/{format}",
            post(events_search_as).get(events_search_as),
        )
        .route(
            "/attributes/restSearch",
            post(attributes_search).get(attributes_search),
        )
        .route(
            "/attributes/restSearch/{format}",
            post(attributes_search_as).get(attributes_search_as),
        )
}

async fn events_search(
    State(state): State<AppState>,
    caller: Caller,
    named: Option<Extension<NamedParams>>,
    body: RawBody,
) -> Result<Response, ApiError> {
    search(state, caller, Scope::Events, None, named, body).await
}

async fn events_search_as(
    State(state): State<AppState>,
    caller: Caller,
    Path(format): Path<String>,
    named: Option<Extension<NamedParams>>,
    body: RawBody,
) -> Result<Response, ApiError> {
    search(state, caller, Scope::Events, Some(format), named, body).await
}

async fn attributes_search(
    State(state): State<AppState>,
    caller: Caller,
    named: Option<Extension<NamedParams>>,
    body: RawBody,
) -> Result<Response, ApiError> {
    search(state, caller, Scope::Attributes, None, named, body).await
}

async fn attributes_search_as(
    State(state): State<AppState>,
    caller: Caller,
    Path(format): Path<String>,
    named: Option<Extension<NamedParams>>,
    body: RawBody,
) -> Result<Response, ApiError> {
    search(state, caller, Scope::Attributes, Some(format), named, body).await
}

/// The filter object: the body (unwrapped from `{"request": …}`), completed by
/// CakePHP named parameters from the path (`…/restSearch/type:ip-dst`); the body
/// wins where both give a filter.
fn request_filters(
    body: &RawBody,
    named: Option<&NamedParams>,
) -> Result<Map<String, Value>, ApiError> {
    let v = super::body::unwrap_key(body.json_value()?, "request");
    let mut filters = match v {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        _ => {
            return Err(ApiError::BadRequest(
                "The search filters must be a JSON object.".into(),
            ))
        }
    };
    if let Some(named) = named {
        for (k, v) in &named.0 {
            filters
                .entry(k.clone())
                .or_insert_with(|| Value::String(v.clone()));
        }
    }
    Ok(filters)
}

/// The store-free front of a restSearch request, exactly as [`search`] runs it:
/// the body read as the handler reads it (blank = `{}`, `{"request": …}`
/// unwrapped, named parameters added), [`Query::parse`], then what the engine
/// derives from the query before touching the store (value patterns, CIDR and IP
/// forms, `LIKE` matching, the page window).
///
/// Public only for the fuzz target `fuzz/fuzz_targets/search_filter.rs` (the
/// fuzz crate is outside this crate and cannot reach the private parser); not
/// an API for anything else. `Err` is the 400 message a client would get; `Ok`
/// lists the engine invariants the query broke (see `engine::exercise_pure`),
/// none normally. The fuzzer checks that no input panics and none breaks one.
#[doc(hidden)]
pub fn fuzz_parse_request(
    attributes: bool,
    path_format: Option<&str>,
    named: Option<&NamedParams>,
    body: &[u8],
    now: u64,
) -> Result<Vec<String>, String> {
    let body = RawBody(Bytes::copy_from_slice(body));
    let filters = request_filters(&body, named).map_err(|e| e.to_string())?;
    let scope = if attributes {
        Scope::Attributes
    } else {
        Scope::Events
    };
    let query = Query::parse(scope, &filters, path_format, now)?;
    Ok(engine::exercise_pure(&query))
}

async fn search(
    state: AppState,
    caller: Caller,
    scope: Scope,
    path_format: Option<String>,
    named: Option<Extension<NamedParams>>,
    body: RawBody,
) -> Result<Response, ApiError> {
    let named = named.map(|Extension(n)| n);
    let filters = request_filters(&body, named.as_ref())?;
    let now = crate::model::time::now_secs();
    let query =
        Query::parse(scope, &filters, path_format.as_deref(), now).map_err(ApiError::BadRequest)?;
    let format = query.format;
    let store = state.store.clone();
    let viewer = caller.viewer();
    let (count_tx, count_rx) = oneshot::channel();
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, io::Error>>(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        engine::run(&store, &viewer, &query, count_tx, ChunkWriter::new(tx));
    });
    let count = count_rx
        .await
        .map_err(|_| ApiError::Internal("the search worker stopped".into()))??;
    tracing::info!(user = caller.user.id, ?scope, count, "search");
    // Wait for the first chunk before answering, so that a failure at the start
    // of pass 2 still becomes an error status rather than a cut-off body.
    let first = rx.recv().await;
    if let Some(Err(e)) = &first {
        return Err(ApiError::Internal(format!("search failed: {e}")));
    }
    let head = futures_util::stream::iter(first);
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let stream = futures_util::StreamExt::chain(head, rest);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, format.content_type())
        .header("X-Result-Count", count.to_string())
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::Internal(format!("building the search answer: {e}")))
}

/// Buffers output and sends it in [`CHUNK`]-sized pieces through a bounded
/// channel: the search thread blocks while the client is slow, and stops as soon
/// as the client goes away (the send fails).
struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
}

impl ChunkWriter {
    fn new(tx: mpsc::Sender<Result<Bytes, io::Error>>) -> Self {
        ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx,
        }
    }

    fn send_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Sends what is left; the channel closes when the writer is dropped.
    fn finish(mut self) {
        if let Err(e) = self.send_chunk() {
            tracing::debug!(error = %e, "search answer not delivered");
        }
    }

    /// Ends the body with an error, which aborts the response: the client sees a
    /// truncated transfer rather than a well-formed partial answer.
    fn fail(self, e: io::Error) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            tracing::debug!("search client went away");
        } else {
            tracing::error!(error = %e, "search failed while streaming");
        }
        let _ = self.tx.blocking_send(Err(e));
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_chunk()?;
        }
        Ok(data.len())
    }

    /// Chunk boundaries are the writer's own business; `flush` sends nothing early.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

mod filter;

mod engine;

#[cfg(test)]
mod tests {
    use super::filter::*;
    use serde_json::json;

    fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn terms_forms() {
        let t = Terms::parse(&json!("1.2.3.4"));
        assert_eq!(t.or, strings(&["1.2.3.4"]));
        let t = Terms::parse(&json!(["a", "!b", 5, true, "", "!"]));
        assert_eq!(t.or, strings(&["a", "5", "1"]));
        assert_eq!(t.not, strings(&["b"]));
        let t = Terms::parse(&json!("a&&!b&&c"));
        assert_eq!(t.or, strings(&["a", "c"]));
        assert_eq!(t.not, strings(&["b"]));
        let t = Terms::parse(&json!({"OR": ["x", "y"], "AND": "z", "NOT": ["w"], "other": 1}));
        assert_eq!(t.or, strings(&["x", "y"]));
        assert_eq!(t.and, strings(&["z"]));
        assert_eq!(t.not, strings(&["w"]));
        // The explicit form is literal: no `!` negation inside it.
        let t = Terms::parse(&json!({"OR": ["!x"]}));
        assert_eq!(t.or, strings(&["!x"]));
        assert!(Terms::parse(&json!(null)).is_empty());
        assert!(Terms::parse(&json!([])).is_empty());
        assert!(Terms::parse(&json!("")).is_empty());
    }

    #[test]
    fn terms_evaluate_or_and_not() {
        let t = Terms::parse(&json!({"OR": ["a", "b"], "AND": ["c"], "NOT": ["d"]}));
        let has = |set: &[&str]| t.eval(|x| set.contains(&x.as_str()));
        assert!(has(&["a", "c"]));
        assert!(!has(&["a"])); // AND term missing
        assert!(!has(&["c"])); // no OR term
        assert!(!has(&["b", "c", "d"])); // NOT term present
        let only_not = Terms::parse(&json!("!x"));
        assert!(only_not.eval(|x| x == "y"));
        assert!(!only_not.eval(|x| x == "x"));
        assert!(Terms::<String>::default().eval(|_| false));
    }

    #[test]
    fn like_wildcards() {
        assert!(like("tlp:%", "tlp:green"));
        assert!(like("%.example.com", "a.example.com"));
        assert!(!like("%.example.com", "example.com"));
        assert!(like("%evil%", "very-evil-domain"));
        assert!(like("a%c%e", "abcde"));
        assert!(!like("a%c%e", "abde"));
        assert!(!like("ab%ba", "aba")); // prefix and suffix may not overlap
        assert!(like("exact", "exact"));
        assert!(!like("exact", "exactly"));
        assert!(like("%", ""));
    }

    #[test]
    fn time_forms() {
        let now = 1_700_000_000;
        let t = |v: serde_json::Value| TimeFilter::parse(&v, now);
        assert_eq!(
            t(json!(1_600_000_000)),
            Some(TimeFilter::Range {
                from: 1_600_000_000,
                to: None
            })
        );
        assert_eq!(
            t(json!(1_600_000_000.7)),
            Some(TimeFilter::Range {
                from: 1_600_000_000,
                to: None
            })
        );
        assert_eq!(
            t(json!("1600000000")),
            Some(TimeFilter::Range {
                from: 1_600_000_000,
                to: None
            })
        );
        assert_eq!(
            t(json!("1600000000.5")),
            Some(TimeFilter::Range {
                from: 1_600_000_000,
                to: None
            })
        );
        assert_eq!(
            t(json!("1d")),
            Some(TimeFilter::Range {
                from: now - 86_400,
                to: None
            })
        );
        assert_eq!(
            t(json!("4m")),
            Some(TimeFilter::Range {
                from: now - 240,
                to: None
            })
        );
        assert_eq!(
            t(json!("5s")),
            Some(TimeFilter::Range {
                from: now - 5,
                to: None
            })
        );
        assert_eq!(
            t(json!("2H")),
            Some(TimeFilter::Range {
                from: now - 7_200,
                to: None
            })
        );
        assert_eq!(
            t(json!("1970-01-02")),
            Some(TimeFilter::Range {
                from: 86_400,
                to: None
            })
        );
        // An unreadable value matches nothing, it is not an error.
        assert_eq!(t(json!("5x")), Some(TimeFilter::Never));
        assert_eq!(t(json!("xd")), Some(TimeFilter::Never));
        assert_eq!(t(json!(["1d", "5x"])), Some(TimeFilter::Never));
        assert!(!TimeFilter::Never.contains(now as u64));
        // Ranges, reversed ranges and open ends.
        let r = t(json!([1_000, 2_000])).unwrap();
        assert_eq!(
            r,
            TimeFilter::Range {
                from: 1_000,
                to: Some(2_000)
            }
        );
        assert!(r.contains(1_000) && r.contains(2_000) && !r.contains(2_001) && !r.contains(999));
        assert_eq!(
            t(json!(["2000", 1_000])),
            Some(TimeFilter::Range {
                from: 1_000,
                to: Some(2_000)
            })
        );
        assert_eq!(
            t(json!(["1d", null])),
            Some(TimeFilter::Range {
                from: now - 86_400,
                to: None
            })
        );
        assert_eq!(
            t(json!([null, 5])),
            Some(TimeFilter::Range {
                from: i64::MIN,
                to: Some(5)
            })
        );
        assert_eq!(t(json!(null)), None);
        assert_eq!(t(json!("")), None);
        assert_eq!(t(json!([])), None);
    }

    #[test]
    fn query_parse() {
        let now = 1_700_000_000;
        let q = Query::parse(
            Scope::Attributes,
            &map(json!({
                "returnFormat": "csv", "type": "ip-dst", "timestamp": "1d", "event_id": "12",
                "eventid": ["13"], "last": "5x", "to_ids": "exclude", "deleted": [0, 1],
                "limit": "10", "page": 0, "includeEventTags": 1, "headerless": "1",
                "requested_attributes": "uuid, value", "withAttachments": 0, "unknownKey": {"x": 1}
            })),
            None,
            now,
        )
        .unwrap();
        assert_eq!(q.format, Format::Csv);
        assert_eq!(q.attr_type.or, strings(&["ip-dst"]));
        assert_eq!(
            q.attr_ts,
            vec![TimeFilter::Range {
                from: now as i64 - 86_400,
                to: None
            }]
        );
        assert!(q.event_ts.is_empty());
        assert_eq!(q.eventid.or, strings(&["13", "12"]));
        assert!(q.impossible()); // "last": "5x"
        assert_eq!(q.to_ids, Some(false));
        assert_eq!(
            q.deleted,
            Deleted {
                live: true,
                deleted: true
            }
        );
        assert_eq!((q.limit, q.page), (Some(10), 1));
        assert_eq!(q.window(), (0, 10));
        assert!(q.include_event_tags && q.headerless && !q.with_attachments);
        assert_eq!(q.requested_attributes, Some(strings(&["uuid", "value"])));

        let q = Query::parse(
            Scope::Events,
            &map(json!({"timestamp": 5, "deleted": 1, "page": 3, "limit": 2})),
            Some("text"),
            now,
        )
        .unwrap();
        assert_eq!(q.format, Format::Text);
        assert_eq!(q.event_ts, vec![TimeFilter::Range { from: 5, to: None }]);
        assert_eq!(
            q.deleted,
            Deleted {
                live: false,
                deleted: true
            }
        );
        assert!(q.has_attribute_filters());
        assert_eq!(q.window(), (4, 6));

        let q = Query::parse(
            Scope::Events,
            &map(json!({"deleted": false, "published": true, "value": "Evil.COM"})),
            None,
            now,
        )
        .unwrap();
        assert_eq!(
            q.deleted,
            Deleted {
                live: true,
                deleted: false
            }
        );
        assert_eq!(q.published, Some(true));
        assert_eq!(q.value.or, strings(&["evil.com"]));
        assert_eq!(q.format, Format::Json);

        let q = Query::parse(
            Scope::Events,
            &map(json!({"searchall": 1, "value": "evil"})),
            None,
            now,
        )
        .unwrap();
        assert_eq!(q.value.or, strings(&["%evil%"]));

        let err = Query::parse(
            Scope::Events,
            &map(json!({"returnFormat": "xml"})),
            None,
            now,
        )
        .unwrap_err();
        assert!(err.contains("\"xml\""), "{err}");
        assert!(Query::parse(Scope::Events, &map(json!({})), Some("stix2"), now).is_err());
    }

    #[test]
    fn date_bounds() {
        let now = 1_700_000_000;
        assert_eq!(
            DateBound::parse(&json!("2024-05-01"), now),
            Some(DateBound::Date("2024-05-01".into()))
        );
        assert_eq!(
            DateBound::parse(&json!(86_400), now),
            Some(DateBound::Date("1970-01-02".into()))
        );
        assert_eq!(
            DateBound::parse(&json!("1d"), now),
            Some(DateBound::Date("2023-11-13".into()))
        );
        assert_eq!(
            DateBound::parse(&json!("someday"), now),
            Some(DateBound::Never)
        );
        assert_eq!(DateBound::parse(&json!(""), now), None);
    }
}

/// The handlers, in-process over a temporary store: envelopes, filters and
/// visibility as PyMISP sees them.
#[cfg(test)]
mod api_tests {
    use crate::http::AppState;
    use crate::store::{Store, StoreOptions};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use std::sync::Arc;
    use uuid::Uuid;

    struct Fixture {
        _dir: tempfile::TempDir,
        state: AppState,
        key_a: String,
        key_b: String,
        /// Event ids: private to A, public by A, community by B.
        private_a: String,
        public_a: String,
        public_b: String,
    }

    struct Answer {
        status: StatusCode,
        count: Option<u64>,
        content_type: String,
        body: String,
    }

    impl Answer {
        fn json(&self) -> Value {
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
        }
    }

    async fn call(state: &AppState, key: &str, path: &str, body: &str) -> Answer {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("Authorization", key)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = crate::http::handle(crate::api::router(state.clone()), state.clone(), req).await;
        let status = resp.status();
        let count = resp
            .headers()
            .get("X-Result-Count")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            count,
            content_type,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn search(state: &AppState, key: &str, path: &str, filters: Value) -> Answer {
        call(state, key, path, &filters.to_string()).await
    }

    async fn add_event(state: &AppState, key: &str, ev: Value) -> String {
        let a = call(state, key, "/events/add", &ev.to_string()).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        a.json()["Event"]["id"].as_str().unwrap().to_owned()
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), StoreOptions::default()).unwrap());
        let org_a = store.add_org(Uuid::new_v4(), "Org A", true).unwrap();
        let org_b = store.add_org(Uuid::new_v4(), "Org B", true).unwrap();
        let user_a = store.add_user("a@a.test", org_a.uuid, 3).unwrap();
        let user_b = store.add_user("b@b.test", org_b.uuid, 3).unwrap();
        let (key_a, _) = store.add_auth_key(user_a.id, "test", 0).unwrap();
        let (key_b, _) = store.add_auth_key(user_b.id, "test", 0).unwrap();
        let state = crate::http::test_state(store, org_a.uuid);
        let private_a = add_event(
            &state,
            &key_a,
            json!({"info": "Private A", "distribution": "0", "date": "2024-01-10",
                   "Tag": [{"name": "tlp:amber"}],
                   "Attribute": [
                       {"type": "ip-dst", "value": "10.1.2.3", "to_ids": true, "Tag": [{"name": "kill-chain:c2"}]},
                       {"type": "domain", "value": "evil.example.com", "to_ids": false}]}),
        )
        .await;
        let public_a = add_event(
            &state,
            &key_a,
            json!({"info": "Public A", "distribution": "3", "date": "2024-03-01",
                   "Tag": [{"name": "tlp:green"}],
                   "Attribute": [
                       {"type": "ip-dst", "value": "192.168.5.5", "to_ids": true, "comment": "c2 \"node\""},
                       {"type": "domain", "value": "good.example.org", "to_ids": false}],
                   "Object": [{"name": "domain-ip", "distribution": "5", "Attribute": [
                       {"type": "domain", "object_relation": "domain", "value": "obj.example.net", "to_ids": false},
                       {"type": "ip-dst", "object_relation": "ip", "value": "10.9.9.9", "to_ids": false}]}]}),
        )
        .await;
        let public_b = add_event(
            &state,
            &key_b,
            json!({"info": "Community B", "distribution": "1", "date": "2024-06-01",
                   "Attribute": [{"type": "ip-dst", "value": "10.1.2.3", "to_ids": true}]}),
        )
        .await;
        Fixture {
            _dir: dir,
            state,
            key_a,
            key_b,
            private_a,
            public_a,
            public_b,
        }
    }

    fn event_ids(a: &Answer) -> Vec<String> {
        let mut ids: Vec<String> = a.json()["response"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Event"]["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    fn attribute_values(a: &Answer) -> Vec<String> {
        let mut v: Vec<String> = a.json()["response"]["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["value"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[tokio::test]
    async fn private_events_are_invisible_to_other_orgs() {
        let f = fixture().await;
        let st = &f.state;
        // Org B sees the public and community events, never A's private one.
        let a = search(st, &f.key_b, "/events/restSearch", json!({})).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.count, Some(2));
        assert_eq!(
            event_ids(&a),
            sorted(vec![f.public_a.clone(), f.public_b.clone()])
        );
        // Org A sees all three.
        let a = search(st, &f.key_a, "/events/restSearch", json!({})).await;
        assert_eq!(a.count, Some(3));
        // Asking for the private event by id or value finds nothing for B…
        for filters in [
            json!({"eventid": f.private_a}),
            json!({"value": "evil.example.com"}),
            json!({"tags": "tlp:amber"}),
        ] {
            for path in [
                "/events/restSearch",
                "/attributes/restSearch",
                "/attributes/restSearch/csv",
                "/events/restSearch/text",
            ] {
                let a = search(st, &f.key_b, path, filters.clone()).await;
                assert_eq!(a.status, StatusCode::OK, "{path} {filters}");
                assert_eq!(a.count, Some(0), "{path} {filters}: {}", a.body);
                assert!(!a.body.contains("evil.example.com"), "{path}: {}", a.body);
            }
        }
        // …and everything for A.
        let a = search(
            st,
            &f.key_a,
            "/attributes/restSearch",
            json!({"value": "evil.example.com"}),
        )
        .await;
        assert_eq!(a.count, Some(1));
        assert_eq!(attribute_values(&a), vec!["evil.example.com"]);
        // A shared value is counted once per visible attribute.
        let a = search(
            st,
            &f.key_b,
            "/attributes/restSearch",
            json!({"value": "10.1.2.3"}),
        )
        .await;
        assert_eq!(a.count, Some(1));
        assert_eq!(
            a.json()["response"]["Attribute"][0]["event_id"],
            f.public_b.as_str()
        );
        let a = search(
            st,
            &f.key_a,
            "/attributes/restSearch",
            json!({"value": "10.1.2.3"}),
        )
        .await;
        assert_eq!(a.count, Some(2));
    }

    #[tokio::test]
    async fn envelopes_and_formats() {
        let f = fixture().await;
        let st = &f.state;
        let a = search(
            st,
            &f.key_b,
            "/events/restSearch",
            json!({"value": "no-such-value"}),
        )
        .await;
        assert_eq!(a.body, "{\"response\": []}\n");
        assert_eq!(a.content_type, "application/json");
        assert_eq!(a.count, Some(0));
        let a = search(
            st,
            &f.key_b,
            "/attributes/restSearch",
            json!({"value": "no-such-value"}),
        )
        .await;
        assert_eq!(a.body, "{\"response\": {\"Attribute\": []}}\n");

        // Attribute rows: fields, Event block, object attributes included.
        let a = search(
            st,
            &f.key_b,
            "/attributes/restSearch",
            json!({"request": {"eventid": f.public_a}}),
        )
        .await;
        assert_eq!(a.count, Some(4));
        assert!(
            a.body.starts_with("{\"response\": {\"Attribute\": [{"),
            "{}",
            a.body
        );
        let rows = a.json()["response"]["Attribute"]
            .as_array()
            .unwrap()
            .clone();
        let ip = rows.iter().find(|r| r["value"] == "192.168.5.5").unwrap();
        assert_eq!(ip["event_id"], f.public_a.as_str());
        assert_eq!(ip["object_id"], "0");
        assert_eq!(ip["to_ids"], true);
        assert_eq!(ip["Event"]["id"], f.public_a.as_str());
        assert_eq!(ip["Event"]["info"], "Public A");
        assert_eq!(ip["Event"]["distribution"], "3");
        assert!(ip["Event"]["org_id"].as_str().unwrap() != "0");
        assert!(ip.get("Tag").is_none());
        assert!(ip.get("event_uuid").is_none());
        let in_obj = rows.iter().find(|r| r["value"] == "10.9.9.9").unwrap();
        assert_eq!(in_obj["object_relation"], "ip");

        // includeEventTags / includeEventUuid.
        let a = search(st, &f.key_b, "/attributes/restSearch",
            json!({"eventid": f.public_a, "type": "domain", "includeEventTags": 1, "includeEventUuid": 1})).await;
        assert_eq!(a.count, Some(2));
        for r in a.json()["response"]["Attribute"].as_array().unwrap() {
            assert_eq!(r["Tag"][0]["name"], "tlp:green");
            assert_eq!(r["Tag"][0]["inherited"], 1);
            assert!(r["event_uuid"].is_string());
        }

        // CSV: MISP's header and quoting, headerless, requested columns, path form.
        let a = search(
            st,
            &f.key_b,
            "/attributes/restSearch",
            json!({"returnFormat": "csv", "eventid": f.public_a, "type": "ip-dst", "to_ids": 1}),
        )
        .await;
        assert_eq!(a.content_type, "text/csv");
        assert_eq!(a.count, Some(1));
        let mut lines = a.body.lines();
        assert_eq!(lines.next(), Some("uuid,event_id,category,type,value,comment,to_ids,date,object_relation,attribute_tag,object_uuid,object_name,object_meta_category"));
        let row = lines.next().unwrap();
        assert!(
            row.contains(",\"Network activity\",\"ip-dst\",\"192.168.5.5\",\"c2 \"\"node\"\"\",1,"),
            "{row}"
        );
        assert!(row.ends_with(",\"\",\"\",\"\",\"\",\"\""), "{row}");
        assert!(a.body.ends_with("\n\n"));
        let a = search(st, &f.key_b, "/attributes/restSearch/csv",
            json!({"eventid": f.public_a, "value": "10.9.9.9", "headerless": 1, "requested_attributes": ["value", "timestamp", "object_relation"]})).await;
        assert_eq!(a.count, Some(1));
        assert!(a.body.starts_with("\"10.9.9.9\","), "{}", a.body);
        assert!(a.body.contains(",\"ip\"\n"), "{}", a.body);
        let a = search(st, &f.key_b, "/attributes/restSearch/csv",
            json!({"eventid": f.public_a, "value": "10.9.9.9", "requested_attributes": "value,timestamp"})).await;
        assert!(
            a.body.starts_with("value,date\n\"10.9.9.9\","),
            "{}",
            a.body
        );

        // Spreadsheet-safe CSV (opt-in): formula prefixes neutralised, line
        // breaks flattened; MISP's verbatim CSV otherwise.
        let risky = add_event(
            st,
            &f.key_b,
            json!({"info": "csv", "distribution": "1", "Attribute": [
                {"type": "text", "value": "=HYPERLINK(\"http://x.example\")", "comment": "line one\nline two"}]}),
        )
        .await;
        let q = |safe: bool| json!({"returnFormat": "csv", "eventid": risky, "spreadsheetSafe": safe, "requested_attributes": ["value", "comment"], "headerless": 1});
        let plain = search(st, &f.key_b, "/attributes/restSearch", q(false)).await;
        assert_eq!(
            plain.body, "\"=HYPERLINK(\"\"http://x.example\"\")\",\"line one\nline two\"\n\n",
            "{}",
            plain.body
        );
        let safe = search(st, &f.key_b, "/attributes/restSearch", q(true)).await;
        assert_eq!(
            safe.body, "\"'=HYPERLINK(\"\"http://x.example\"\")\",\"line one line two\"\n\n",
            "{}",
            safe.body
        );

        // Text: one value per line (`ignore` lifts MISP's implied to_ids
        // and published filters).
        let a = search(
            st,
            &f.key_b,
            "/attributes/restSearch",
            json!({"returnFormat": "text", "eventid": f.public_a, "type": "domain", "ignore": 1}),
        )
        .await;
        assert_eq!(a.content_type, "text/plain");
        assert_eq!(
            sorted(a.body.lines().map(str::to_owned).collect()),
            vec!["good.example.org", "obj.example.net"]
        );
    }

    #[tokio::test]
    async fn filters() {
        let f = fixture().await;
        let st = &f.state;
        let key = &f.key_a;
        // Attribute-level filters trim events on events/restSearch.
        let a = search(
            st,
            key,
            "/events/restSearch",
            json!({"eventid": f.public_a, "to_ids": 1}),
        )
        .await;
        assert_eq!(a.count, Some(1));
        let ev = &a.json()["response"][0]["Event"];
        assert_eq!(ev["Attribute"].as_array().unwrap().len(), 1);
        assert_eq!(ev["Attribute"][0]["value"], "192.168.5.5");
        assert_eq!(ev["Object"].as_array().unwrap().len(), 0);
        // CIDR containment on IP attributes.
        let a = search(
            st,
            key,
            "/attributes/restSearch",
            json!({"value": "10.0.0.0/8"}),
        )
        .await;
        assert_eq!(
            attribute_values(&a),
            vec!["10.1.2.3", "10.1.2.3", "10.9.9.9"]
        );
        // Wildcards, case-insensitively, and negation.
        let a = search(
            st,
            key,
            "/attributes/restSearch",
            json!({"value": ["%.EXAMPLE.%", "!good.example.org"]}),
        )
        .await;
        assert_eq!(
            attribute_values(&a),
            vec!["evil.example.com", "obj.example.net"]
        );
        // Tags: an event tag selects its attributes; wildcards; NOT.
        let a = search(
            st,
            key,
            "/attributes/restSearch",
            json!({"tags": "tlp:green"}),
        )
        .await;
        assert_eq!(a.count, Some(4));
        let a = search(
            st,
            key,
            "/attributes/restSearch",
            json!({"tags": ["tlp:%", "!tlp:green"]}),
        )
        .await;
        assert_eq!(attribute_values(&a), vec!["10.1.2.3", "evil.example.com"]);
        let a = search(
            st,
            key,
            "/attributes/restSearch",
            json!({"tags": {"AND": ["tlp:amber", "kill-chain:c2"]}}),
        )
        .await;
        assert_eq!(attribute_values(&a), vec!["10.1.2.3"]);
        let a = search(
            st,
            key,
            "/events/restSearch",
            json!({"tags": "kill-chain:%"}),
        )
        .await;
        assert_eq!(event_ids(&a), vec![f.private_a.clone()]);
        let a = search(st, key, "/events/restSearch", json!({"tags": "!tlp:amber"})).await;
        assert_eq!(
            event_ids(&a),
            sorted(vec![f.public_a.clone(), f.public_b.clone()])
        );
        let a = search(
            st,
            key,
            "/events/restSearch",
            json!({"event_tags": "kill-chain:c2"}),
        )
        .await;
        assert_eq!(a.count, Some(0));
        // Org, info, dates.
        let a = search(st, key, "/events/restSearch", json!({"org": "Org B"})).await;
        assert_eq!(event_ids(&a), vec![f.public_b.clone()]);
        let a = search(st, key, "/events/restSearch", json!({"eventinfo": "%a"})).await;
        assert_eq!(
            event_ids(&a),
            sorted(vec![f.private_a.clone(), f.public_a.clone()])
        );
        let a = search(
            st,
            key,
            "/events/restSearch",
            json!({"from": "2024-02-01", "to": "2024-05-01"}),
        )
        .await;
        assert_eq!(event_ids(&a), vec![f.public_a.clone()]);
        // Time filters: relative, and an unreadable one matching nothing.
        let a = search(st, key, "/events/restSearch", json!({"timestamp": "1d"})).await;
        assert_eq!(a.count, Some(3));
        let a = search(
            st,
            key,
            "/attributes/restSearch",
            json!({"timestamp": "5x"}),
        )
        .await;
        assert_eq!((a.status, a.count), (StatusCode::OK, Some(0)));
        let a = search(
            st,
            key,
            "/events/restSearch",
            json!({"timestamp": ["1d", "2000000000"]}),
        )
        .await;
        assert_eq!(a.count, Some(3));
        // Published (nothing is) and metadata.
        let a = search(st, key, "/events/restSearch", json!({"published": 1})).await;
        assert_eq!(a.count, Some(0));
        let a = search(
            st,
            key,
            "/events/restSearch",
            json!({"eventid": f.public_a, "metadata": 1}),
        )
        .await;
        assert_eq!(
            a.json()["response"][0]["Event"]["Attribute"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        // Uuid of an attribute finds it; PyMISP's always-sent flags are accepted.
        let a = search(
            st,
            key,
            "/attributes/restSearch",
            json!({"value": "good.example.org"}),
        )
        .await;
        let uuid = a.json()["response"]["Attribute"][0]["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let a = search(st, key, "/attributes/restSearch", json!({
            "uuid": uuid, "withAttachments": 0, "metadata": 0, "enforceWarninglist": 0, "includeEventUuid": 0,
            "includeEventTags": 0, "sgReferenceOnly": 0, "includeContext": 0, "headerless": 0,
            "includeSightings": 0, "includeDecayScore": 0, "includeCorrelations": 0, "excludeDecayed": 0,
            "returnFormat": "json", "page": null, "limit": null})).await;
        assert_eq!(attribute_values(&a), vec!["good.example.org"]);
    }

    #[tokio::test]
    async fn paging_counts_everything() {
        let f = fixture().await;
        let st = &f.state;
        let all = search(st, &f.key_a, "/attributes/restSearch", json!({})).await;
        assert_eq!(all.count, Some(7));
        let every: Vec<Value> = all.json()["response"]["Attribute"]
            .as_array()
            .unwrap()
            .clone();
        let mut paged = Vec::new();
        for page in 1..=4 {
            let a = search(
                st,
                &f.key_a,
                "/attributes/restSearch",
                json!({"limit": 2, "page": page}),
            )
            .await;
            assert_eq!(
                a.count,
                Some(7),
                "X-Result-Count is the total, before paging"
            );
            let rows = a.json()["response"]["Attribute"]
                .as_array()
                .unwrap()
                .clone();
            assert_eq!(rows.len(), if page < 4 { 2 } else { 1 });
            paged.extend(rows);
        }
        assert_eq!(paged, every);
        let a = search(
            st,
            &f.key_b,
            "/events/restSearch",
            json!({"limit": 1, "page": 2}),
        )
        .await;
        assert_eq!(a.count, Some(2));
        assert_eq!(a.json()["response"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn large_answers_stream_in_chunks() {
        let f = fixture().await;
        let st = &f.state;
        let doc = serde_json::to_vec(&crate::testdata::generated_event_json(7, 3000)).unwrap();
        let ev = crate::model::parse::parse_event(&doc, 1 << 26).unwrap();
        st.store
            .put_event(ev, crate::store::Durability::Flush)
            .unwrap();
        let filters = json!({"eventinfo": "synthetic%"});
        let a = search(st, &f.key_b, "/attributes/restSearch", filters.clone()).await;
        assert_eq!(a.count, Some(3000));
        assert!(a.body.len() > 4 * super::CHUNK, "{} bytes", a.body.len());
        let rows = a.json()["response"]["Attribute"].as_array().unwrap().len();
        assert_eq!(rows, 3000);
        let a = search(st, &f.key_b, "/attributes/restSearch/csv", filters.clone()).await;
        assert_eq!(a.body.lines().count(), 1 + 3000 + 1);
        let a = search(
            st,
            &f.key_b,
            "/attributes/restSearch/text",
            json!({"eventinfo": "synthetic%", "limit": 1000, "page": 3}),
        )
        .await;
        assert_eq!(a.count, Some(3000));
        assert_eq!(a.body.lines().count(), 1000);
        let a = search(st, &f.key_b, "/events/restSearch", filters).await;
        assert_eq!(a.count, Some(1));
        assert_eq!(
            a.json()["response"][0]["Event"]["Attribute"]
                .as_array()
                .unwrap()
                .len(),
            3000
        );
    }

    #[tokio::test]
    async fn errors_in_misp_shapes() {
        let f = fixture().await;
        let st = &f.state;
        let a = search(
            st,
            &f.key_a,
            "/events/restSearch",
            json!({"returnFormat": "xml"}),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.json()["message"].as_str().unwrap().contains("xml"));
        let a = call(st, &f.key_a, "/attributes/restSearch", "{\"value\": ").await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.json()["message"].is_string());
        let a = search(st, &f.key_a, "/attributes/restSearch/stix2", json!({})).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        let a = call(st, "not-a-key", "/attributes/restSearch", "{}").await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(a.count, None);
    }
}
