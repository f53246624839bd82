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

/// MISP's filter syntax: parsing the request into a [`Query`], and matching of
/// single values. Pure: no store, no I/O.
mod filter {
    use serde_json::{Map, Value};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Scope {
        Events,
        Attributes,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Format {
        Json,
        Csv,
        Text,
    }

    impl Format {
        pub fn parse(s: &str) -> Option<Self> {
            match s.trim().to_ascii_lowercase().as_str() {
                "" | "json" => Some(Format::Json),
                "csv" => Some(Format::Csv),
                "text" => Some(Format::Text),
                _ => None,
            }
        }

        pub fn content_type(self) -> &'static str {
            match self {
                Format::Json => "application/json",
                Format::Csv => "text/csv",
                Format::Text => "text/plain",
            }
        }
    }

    /// One filter's terms in MISP's three buckets: any of `or`, all of `and`,
    /// none of `not`. An empty bucket does not constrain.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Terms<T> {
        pub or: Vec<T>,
        pub and: Vec<T>,
        pub not: Vec<T>,
    }

    impl<T> Default for Terms<T> {
        fn default() -> Self {
            Terms {
                or: Vec::new(),
                and: Vec::new(),
                not: Vec::new(),
            }
        }
    }

    impl<T> Terms<T> {
        pub fn is_empty(&self) -> bool {
            self.or.is_empty() && self.and.is_empty() && self.not.is_empty()
        }

        /// Whether a match needs at least one term to hold (so an index on this
        /// filter can supply candidates).
        pub fn has_positive(&self) -> bool {
            !self.or.is_empty() || !self.and.is_empty()
        }

        /// The terms a candidate must match one of: all `or` terms, or else the
        /// first `and` term (every match has it).
        pub fn index_terms(&self) -> &[T] {
            if self.or.is_empty() {
                &self.and[..self.and.len().min(1)]
            } else {
                &self.or
            }
        }

        pub fn map<U>(&self, f: impl Fn(&T) -> U) -> Terms<U> {
            Terms {
                or: self.or.iter().map(&f).collect(),
                and: self.and.iter().map(&f).collect(),
                not: self.not.iter().map(&f).collect(),
            }
        }

        pub fn eval(&self, pred: impl Fn(&T) -> bool) -> bool {
            (self.or.is_empty() || self.or.iter().any(&pred))
                && self.and.iter().all(&pred)
                && !self.not.iter().any(&pred)
        }
    }

    impl Terms<String> {
        /// MISP's `convert_filters`/`dissectArgs`: a scalar (a string may join
        /// terms with `&&`), a list (OR), or `{"OR":[…],"AND":[…],"NOT":[…]}`;
        /// outside the explicit form a leading `!` negates. Blank terms are
        /// dropped, so `""`, `[]` and `null` mean "no filter".
        pub fn parse(v: &Value) -> Self {
            let mut t = Terms::default();
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        let bucket = match k.to_ascii_uppercase().as_str() {
                            "OR" => &mut t.or,
                            "AND" => &mut t.and,
                            "NOT" => &mut t.not,
                            _ => continue,
                        };
                        collect_literal(x, bucket);
                    }
                }
                other => t.push_negatable(other),
            }
            t
        }

        fn push_negatable(&mut self, v: &Value) {
            match v {
                Value::String(s) => {
                    for part in s.split("&&") {
                        let p = part.trim();
                        match p.strip_prefix('!') {
                            Some(n) if !n.trim().is_empty() => self.not.push(n.trim().to_owned()),
                            Some(_) => {}
                            None if !p.is_empty() => self.or.push(p.to_owned()),
                            None => {}
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|x| self.push_negatable(x)),
                other => self.or.extend(scalar(other)),
            }
        }

        pub fn folded(&self) -> Self {
            self.map(|s| s.to_lowercase())
        }

        /// Both filters must hold: the buckets are concatenated.
        pub fn merge(mut self, other: Terms<String>) -> Self {
            self.or.extend(other.or);
            self.and.extend(other.and);
            self.not.extend(other.not);
            self
        }

        /// `%…%` around every positive term (MISP's `searchall` flag).
        fn contains_form(&self) -> Self {
            let wrap = |s: &String| {
                let mut w = s.clone();
                if !w.starts_with('%') {
                    w.insert(0, '%');
                }
                if !w.ends_with('%') {
                    w.push('%');
                }
                w
            };
            Terms {
                or: self.or.iter().map(wrap).collect(),
                and: self.and.iter().map(wrap).collect(),
                not: self.not.clone(),
            }
        }
    }

    fn collect_literal(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Array(items) => items.iter().for_each(|x| collect_literal(x, out)),
            other => {
                if let Some(s) = scalar(other) {
                    let s = s.trim();
                    if !s.is_empty() {
                        out.push(s.to_owned());
                    }
                }
            }
        }
    }

    /// A JSON scalar as MISP's PHP sees it; booleans are 1/0.
    pub fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
            _ => None,
        }
    }

    fn is_blank(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::String(s) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// SQL `LIKE` with `%` as the only wildcard (MISP's value, tag and info
    /// filters); both sides already case-folded. Without `%` it is equality.
    pub fn like(pattern: &str, text: &str) -> bool {
        if !pattern.contains('%') {
            return pattern == text;
        }
        let parts: Vec<&str> = pattern.split('%').collect();
        let (first, last) = (parts[0], parts[parts.len() - 1]);
        if text.len() < first.len() + last.len()
            || !text.starts_with(first)
            || !text.ends_with(last)
        {
            return false;
        }
        let end = text.len() - last.len();
        let mut pos = first.len();
        for mid in &parts[1..parts.len() - 1] {
            if mid.is_empty() {
                continue;
            }
            match text.get(pos..end).and_then(|rest| rest.find(mid)) {
                Some(i) => pos += i + mid.len(),
                None => return false,
            }
        }
        true
    }

    /// A time filter (`timestamp`, `publish_timestamp`, …): a lower bound and an
    /// optional upper bound, both inclusive, or `Never` for a value MISP cannot
    /// resolve (`"5x"`), which matches nothing.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TimeFilter {
        Range { from: i64, to: Option<i64> },
        Never,
    }

    impl TimeFilter {
        /// A scalar is a lower bound; `[from, to]` a range (swapped if reversed,
        /// as MISP does; a blank end is open). `None` when the filter is absent.
        pub fn parse(v: &Value, now: i64) -> Option<Self> {
            let resolve = |x: &Value| resolve_time(x, now);
            match v {
                Value::Array(items) => match items.as_slice() {
                    [] => None,
                    [one] => Self::parse(one, now),
                    [a, b, ..] => {
                        if is_blank(a) && is_blank(b) {
                            return None;
                        }
                        let from = if is_blank(a) {
                            Some(i64::MIN)
                        } else {
                            resolve(a)
                        };
                        let to = if is_blank(b) {
                            Some(None)
                        } else {
                            resolve(b).map(Some)
                        };
                        Some(match (from, to) {
                            (Some(f), Some(Some(t))) => TimeFilter::Range {
                                from: f.min(t),
                                to: Some(f.max(t)),
                            },
                            (Some(f), Some(None)) => TimeFilter::Range { from: f, to: None },
                            _ => TimeFilter::Never,
                        })
                    }
                },
                x if is_blank(x) => None,
                x => Some(match resolve(x) {
                    Some(from) => TimeFilter::Range { from, to: None },
                    None => TimeFilter::Never,
                }),
            }
        }

        pub fn contains(&self, ts: u64) -> bool {
            match *self {
                TimeFilter::Never => false,
                TimeFilter::Range { from, to } => {
                    let ts = i64::try_from(ts).unwrap_or(i64::MAX);
                    ts >= from && to.is_none_or(|t| ts <= t)
                }
            }
        }

        /// The lower bound, for a range scan of a timestamp index.
        pub fn lower(&self) -> Option<u64> {
            match *self {
                TimeFilter::Never => None,
                TimeFilter::Range { from, .. } => Some(u64::try_from(from).unwrap_or(0)),
            }
        }
    }

    /// MISP's `resolveTimeDelta`: epoch seconds (ints, floats, numeric strings,
    /// truncated), `Nd`/`Nh`/`Nm`/`Ns` before now, or an ISO 8601 date or
    /// date-time (UTC unless an offset is given). `None` for anything else.
    pub fn resolve_time(v: &Value, now: i64) -> Option<i64> {
        match v {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    // `as` saturates: absurd floats become the extreme bounds.
                    .map(|f| f as i64)
            }),
            Value::String(s) => resolve_time_str(s, now),
            _ => None,
        }
    }

    fn resolve_time_str(s: &str, now: i64) -> Option<i64> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i64>() {
            return Some(n);
        }
        if let Ok(f) = t.parse::<f64>() {
            return f.is_finite().then_some(f as i64);
        }
        let last = t.chars().last()?;
        let unit = match last.to_ascii_lowercase() {
            'd' => Some(86_400.0),
            'h' => Some(3_600.0),
            'm' => Some(60.0),
            's' => Some(1.0),
            _ => None,
        };
        if let Some(unit) = unit {
            let n: f64 = t[..t.len() - last.len_utf8()].trim().parse().ok()?;
            if !n.is_finite() {
                return None;
            }
            return Some(now.saturating_sub((n * unit) as i64));
        }
        if let Ok(ts) = t.parse::<jiff::Timestamp>() {
            return Some(ts.as_second());
        }
        let utc = jiff::tz::TimeZone::UTC;
        if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
            return dt
                .to_zoned_datetime(utc)
                .ok()
                .map(|z| z.timestamp().as_second());
        }
        let d = t.parse::<jiff::civil::Date>().ok()?;
        d.to_zoned_datetime(utc)
            .ok()
            .map(|z| z.timestamp().as_second())
    }

    /// A bound on the event `date` (`from`/`to`): a `YYYY-MM-DD` date, or `Never`
    /// when the value cannot be read as a date.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum DateBound {
        Date(String),
        Never,
    }

    impl DateBound {
        /// Dates, or anything [`resolve_time`] reads (PyMISP sends `date` objects
        /// as epoch floats), taken as a UTC date.
        pub fn parse(v: &Value, now: i64) -> Option<Self> {
            if is_blank(v) {
                return None;
            }
            if let Value::String(s) = v {
                if let Ok(d) = crate::model::time::normalise_date(s) {
                    return Some(DateBound::Date(d));
                }
            }
            let date = resolve_time(v, now).and_then(|ts| {
                jiff::Timestamp::from_second(ts).ok().map(|t| {
                    t.to_zoned_datetime(jiff::tz::TimeZone::UTC)
                        .date()
                        .to_string()
                })
            });
            Some(date.map_or(DateBound::Never, DateBound::Date))
        }
    }

    /// Which soft-deletion states a search returns (`deleted`: 0 = live only, the
    /// default; 1 = deleted only; `[0,1]` = both).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Deleted {
        pub live: bool,
        pub deleted: bool,
    }

    impl Deleted {
        pub fn allows(&self, deleted: bool) -> bool {
            if deleted {
                self.deleted
            } else {
                self.live
            }
        }
    }

    /// Which booleans a filter value allows: `(false allowed, true allowed)`.
    fn bool_set(v: &Value) -> (bool, bool) {
        let t = Terms::parse(v);
        let (mut f, mut tr) = (false, false);
        for s in t.or.iter().chain(&t.and) {
            match s.to_ascii_lowercase().as_str() {
                "1" | "true" => tr = true,
                "0" | "false" | "exclude" => f = true,
                _ => {}
            }
        }
        (f, tr)
    }

    /// A boolean filter (`published`, `to_ids`): `None` when absent or when both
    /// values are allowed.
    fn tristate(v: Option<&Value>) -> Option<bool> {
        match bool_set(v?) {
            (true, false) => Some(false),
            (false, true) => Some(true),
            _ => None,
        }
    }

    /// A 0/1 option flag as PyMISP sends them (ints, bools or strings).
    pub fn flag(v: Option<&Value>) -> bool {
        match v {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            Some(Value::String(s)) => {
                matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true")
            }
            _ => false,
        }
    }

    fn number(v: Option<&Value>) -> Option<u64> {
        match v? {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            }),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// `requested_attributes`: a list, or one comma-separated string.
    fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
        let items: Vec<String> = match v? {
            Value::Array(a) => a.iter().filter_map(scalar).collect(),
            other => scalar(other)?.split(',').map(str::to_owned).collect(),
        };
        let items: Vec<String> = items
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        (!items.is_empty()).then_some(items)
    }

    /// A parsed search. Text filters are case-folded (MISP's collation is
    /// case-insensitive); ids, uuids and org references are kept as given.
    #[derive(Debug, Clone)]
    pub struct Query {
        pub scope: Scope,
        pub format: Format,
        pub value: Terms<String>,
        pub attr_type: Terms<String>,
        pub category: Terms<String>,
        pub comment: Terms<String>,
        pub object_name: Terms<String>,
        pub object_relation: Terms<String>,
        pub org: Terms<String>,
        pub tags: Terms<String>,
        pub event_tags: Terms<String>,
        pub eventid: Terms<String>,
        pub uuid: Terms<String>,
        pub eventinfo: Terms<String>,
        pub sharinggroup: Terms<String>,
        pub threat_level_id: Terms<String>,
        pub analysis: Terms<String>,
        pub distribution: Terms<String>,
        /// `quickFilter`: a substring of the value, comment, info or a tag.
        pub quick: Option<String>,
        /// Bounds on the event's `timestamp` (`event_timestamp`, and `timestamp`
        /// on `events/restSearch`).
        pub event_ts: Vec<TimeFilter>,
        /// Bounds on the attribute's `timestamp` (`attribute_timestamp`, and
        /// `timestamp` on `attributes/restSearch`).
        pub attr_ts: Vec<TimeFilter>,
        /// Bounds on `publish_timestamp` (`publish_timestamp`, `last`).
        pub publish_ts: Vec<TimeFilter>,
        pub date_from: Option<DateBound>,
        pub date_to: Option<DateBound>,
        pub to_ids: Option<bool>,
        pub published: Option<bool>,
        pub deleted: Deleted,
        pub limit: Option<u64>,
        pub page: u64,
        pub metadata: bool,
        pub include_event_tags: bool,
        pub include_event_uuid: bool,
        pub include_sightings: bool,
        pub with_attachments: bool,
        pub include_context: bool,
        pub headerless: bool,
        pub sg_reference_only: bool,
        pub requested_attributes: Option<Vec<String>>,
        pub requested_obj_attributes: Option<Vec<String>>,
    }

    impl Query {
        /// Reads MISP's filter object. Unknown keys are ignored; the only error is
        /// an unsupported return format.
        pub fn parse(
            scope: Scope,
            f: &Map<String, Value>,
            path_format: Option<&str>,
            now: u64,
        ) -> Result<Query, String> {
            let now = i64::try_from(now).unwrap_or(i64::MAX);
            let get = |k: &str| f.get(k).filter(|v| !v.is_null());
            let raw_format = get("returnFormat")
                .and_then(scalar)
                .filter(|s| !s.trim().is_empty())
                .or_else(|| path_format.map(str::to_owned))
                .unwrap_or_else(|| "json".into());
            let format = Format::parse(&raw_format).ok_or_else(|| {
                format!(
                    "Invalid return format \"{}\": this node answers restSearch in json, csv or text.",
                    raw_format.trim()
                )
            })?;
            let terms = |k: &str| get(k).map(Terms::parse).unwrap_or_default();
            let times = |keys: &[&str]| -> Vec<TimeFilter> {
                keys.iter()
                    .filter_map(|k| get(k).and_then(|v| TimeFilter::parse(v, now)))
                    .collect()
            };
            // `searchall` is a flag making value and info searches substring
            // searches, or (as a string) a quick filter of its own.
            let (searchall, searchall_text) = match get("searchall").and_then(scalar) {
                Some(s) if matches!(s.trim(), "1" | "true" | "True") => (true, None),
                Some(s) if matches!(s.trim(), "" | "0" | "false" | "False") => (false, None),
                Some(s) => (false, Some(s.trim().to_lowercase())),
                None => (false, None),
            };
            let mut value = terms("value").folded();
            let mut eventinfo = terms("eventinfo").folded();
            if searchall {
                value = value.contains_form();
                eventinfo = eventinfo.contains_form();
            }
            let quick = get("quickFilter")
                .and_then(scalar)
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .or(searchall_text);
            let (event_ts, attr_ts) = match scope {
                Scope::Events => (
                    times(&["timestamp", "event_timestamp"]),
                    times(&["attribute_timestamp"]),
                ),
                Scope::Attributes => (
                    times(&["event_timestamp"]),
                    times(&["timestamp", "attribute_timestamp"]),
                ),
            };
            let deleted = match get("deleted") {
                None => Deleted {
                    live: true,
                    deleted: false,
                },
                Some(v) => match bool_set(v) {
                    (false, false) => Deleted {
                        live: true,
                        deleted: false,
                    },
                    (live, deleted) => Deleted { live, deleted },
                },
            };
            Ok(Query {
                scope,
                format,
                value,
                attr_type: terms("type").folded(),
                category: terms("category").folded(),
                comment: terms("comment").folded(),
                object_name: terms("object_name").folded(),
                object_relation: terms("object_relation").folded(),
                org: terms("org"),
                tags: terms("tags").folded(),
                event_tags: terms("event_tags").folded(),
                eventid: terms("eventid").merge(terms("event_id")),
                uuid: terms("uuid"),
                eventinfo,
                sharinggroup: terms("sharinggroup"),
                threat_level_id: terms("threat_level_id"),
                analysis: terms("analysis"),
                distribution: terms("distribution"),
                quick,
                event_ts,
                attr_ts,
                publish_ts: times(&["publish_timestamp", "last"]),
                date_from: get("from").and_then(|v| DateBound::parse(v, now)),
                date_to: get("to").and_then(|v| DateBound::parse(v, now)),
                to_ids: tristate(get("to_ids")),
                published: tristate(get("published")),
                deleted,
                limit: number(get("limit")).filter(|l| *l > 0),
                page: number(get("page")).unwrap_or(1).max(1),
                metadata: flag(get("metadata")),
                include_event_tags: flag(get("includeEventTags")),
                include_event_uuid: flag(get("includeEventUuid")),
                include_sightings: flag(get("includeSightings")),
                with_attachments: flag(get("withAttachments")) || flag(get("includeAttachments")),
                include_context: flag(get("includeContext")),
                headerless: flag(get("headerless")),
                sg_reference_only: flag(get("sgReferenceOnly")),
                requested_attributes: string_list(get("requested_attributes")),
                requested_obj_attributes: string_list(get("requested_obj_attributes")),
            })
        }

        /// Whether some filter can never hold, so the answer is empty without
        /// looking at anything.
        pub fn impossible(&self) -> bool {
            self.event_ts
                .iter()
                .chain(&self.attr_ts)
                .chain(&self.publish_ts)
                .any(|t| *t == TimeFilter::Never)
                || matches!(self.date_from, Some(DateBound::Never))
                || matches!(self.date_to, Some(DateBound::Never))
        }

        /// Whether filters on attributes are present, which on `events/restSearch`
        /// trim each event to its matching attributes (and drop events left with
        /// none).
        pub fn has_attribute_filters(&self) -> bool {
            !self.value.is_empty()
                || !self.attr_type.is_empty()
                || !self.category.is_empty()
                || !self.comment.is_empty()
                || !self.object_name.is_empty()
                || !self.object_relation.is_empty()
                || self.to_ids.is_some()
                || !self.attr_ts.is_empty()
                || !self.deleted.live
        }

        /// The rows of page `page` of size `limit`, as `start..end` over all
        /// matching rows.
        pub fn window(&self) -> (u64, u64) {
            match self.limit {
                Some(l) => {
                    let start = (self.page - 1).saturating_mul(l);
                    (start, start.saturating_add(l))
                }
                None => (0, u64::MAX),
            }
        }
    }
}

/// Running a [`Query`] against the store: candidates, per-event evaluation,
/// counting and writing.
mod engine {
    use super::filter::{self, DateBound, Format, Query, Scope, Terms};
    use super::ChunkWriter;
    use crate::api::error::ApiError;
    use crate::export::{csv_field, CsvWriter};
    use crate::model::event::Wrapped;
    use crate::model::{value, Attribute, Event, Object, Org, SharingGroup, Tag};
    use crate::policy::{redact_event, Viewer};
    use crate::store::accounts::OrgRecord;
    use crate::store::{Store, StoreError};
    use serde::Serialize;
    use std::collections::{BTreeSet, HashMap, HashSet};
    use std::io::{self, Write};
    use std::net::IpAddr;
    use tokio::sync::oneshot;
    use uuid::Uuid;

    /// Rows (events or attributes) of the page kept in memory between the passes;
    /// beyond this, pass 2 reloads events instead. Tiny under test, so that the
    /// handler tests exercise the reload path too.
    const CACHE_ROWS: u64 = if cfg!(test) { 3 } else { 20_000 };

    /// Everything a search does, on the blocking pool: pass 1, the count handed
    /// to the async side, pass 2 into `out`.
    pub fn run(
        store: &Store,
        viewer: &Viewer,
        q: &Query,
        count_tx: oneshot::Sender<Result<u64, ApiError>>,
        out: ChunkWriter,
    ) {
        let counted = Plan::new(store, viewer, q).and_then(|plan| {
            let counted = plan.count()?;
            Ok((plan, counted))
        });
        let (plan, counted) = match counted {
            Ok(x) => x,
            Err(e) => {
                let _ = count_tx.send(Err(e));
                return;
            }
        };
        if count_tx.send(Ok(counted.total)).is_err() {
            return; // the request was dropped
        }
        let mut em = Emitter::new(&plan, out);
        let written = em
            .begin()
            .and_then(|()| plan.emit(&mut em, counted.matches))
            .and_then(|()| em.end());
        match written {
            Ok(()) => em.out.finish(),
            Err(e) => em.out.fail(e),
        }
    }

    /// An `org` filter term resolved against the organisations this node knows:
    /// local id, name (with `%`) or uuid.
    #[derive(Debug)]
    struct OrgRef {
        uuid: Option<Uuid>,
        name: Option<String>,
        id: Option<u64>,
    }

    impl OrgRef {
        fn resolve(known: &[OrgRecord], term: &str) -> Self {
            let term = term.trim();
            if let Ok(u) = Uuid::parse_str(term) {
                return OrgRef {
                    uuid: Some(u),
                    name: None,
                    id: None,
                };
            }
            if let Ok(id) = term.parse::<u64>() {
                let rec = known.iter().find(|o| o.id == id);
                return OrgRef {
                    uuid: rec.map(|o| o.uuid),
                    name: rec.map(|o| o.name.to_lowercase()),
                    id: Some(id),
                };
            }
            OrgRef {
                uuid: None,
                name: Some(term.to_lowercase()),
                id: None,
            }
        }

        fn matches(&self, org: Option<&Org>) -> bool {
            let Some(o) = org else { return false };
            self.uuid.is_some_and(|u| !o.uuid.is_nil() && u == o.uuid)
                || self.id.is_some_and(|i| o.id == Some(i))
                || self
                    .name
                    .as_deref()
                    .is_some_and(|n| filter::like(n, &o.name.to_lowercase()))
        }
    }

    /// A compiled `value` term.
    #[derive(Debug)]
    enum ValuePat {
        /// `%` pattern or exact value; `ip` is the canonical form of an exact IP
        /// address, so `2001:DB8:0::1` finds `2001:db8::1`.
        Like { pat: String, ip: Option<String> },
        /// A CIDR network: finds addresses and narrower networks inside it in
        /// IP-bearing attributes (MISP's `cidrSearch`), and the literal text.
        Cidr { net: ipnet::IpNet, literal: String },
    }

    impl ValuePat {
        fn compile(p: &str) -> Self {
            if !p.contains('%') && p.contains('/') {
                if let Ok(net) = p.parse::<ipnet::IpNet>() {
                    return ValuePat::Cidr {
                        net: net.trunc(),
                        literal: p.to_owned(),
                    };
                }
            }
            let ip = if p.contains('%') {
                None
            } else {
                p.parse::<IpAddr>().ok().map(|ip| ip.to_string())
            };
            ValuePat::Like {
                pat: p.to_owned(),
                ip,
            }
        }

        fn matches(&self, attr_type: &str, halves: &[String]) -> bool {
            match self {
                ValuePat::Like { pat, ip } => halves.iter().any(|h| {
                    filter::like(pat, h)
                        || ip
                            .as_ref()
                            .is_some_and(|c| h.parse::<IpAddr>().is_ok_and(|x| x.to_string() == *c))
                }),
                ValuePat::Cidr { net, literal } => halves.iter().any(|h| {
                    h == literal
                        || (ip_bearing(attr_type) && parse_net(h).is_some_and(|n| net.contains(&n)))
                }),
            }
        }

        /// The pattern an index lookup can take: a superset of what the term
        /// matches, or `None` when only a full walk would do (`%`).
        fn index_pattern(&self) -> Option<String> {
            let p = match self {
                ValuePat::Like { pat, .. } => pat,
                ValuePat::Cidr { literal, .. } => return Some(literal.clone()),
            };
            if !p.contains('%') {
                return Some(p.clone());
            }
            let segs: Vec<&str> = p.split('%').collect();
            let (first, last) = (segs[0], segs[segs.len() - 1]);
            if !first.is_empty() {
                Some(format!("{first}%"))
            } else if !last.is_empty() {
                Some(format!("%{last}"))
            } else {
                let longest = segs.iter().max_by_key(|s| s.len()).copied().unwrap_or("");
                (!longest.is_empty()).then(|| format!("%{longest}%"))
            }
        }
    }

    /// Types whose halves hold IP addresses or networks (the store's IP index).
    fn ip_bearing(attr_type: &str) -> bool {
        matches!(
            attr_type,
            "ip-src" | "ip-dst" | "ip-src|port" | "ip-dst|port" | "domain|ip"
        )
    }

    fn parse_net(s: &str) -> Option<ipnet::IpNet> {
        if let Ok(n) = s.parse::<ipnet::IpNet>() {
            return Some(n.trunc());
        }
        s.parse::<IpAddr>().ok().map(ipnet::IpNet::from)
    }

    /// A term naming something by local id or uuid.
    fn id_or_uuid(term: &str, id: Option<u64>, uuid: &Uuid) -> bool {
        let term = term.trim();
        match Uuid::parse_str(term) {
            Ok(u) => u == *uuid,
            Err(_) => term.parse::<u64>().is_ok_and(|n| Some(n) == id),
        }
    }

    fn sg_matches(term: &str, sg: Option<&SharingGroup>, sg_id: u64) -> bool {
        let term = term.trim();
        match Uuid::parse_str(term) {
            Ok(u) => sg.is_some_and(|s| s.uuid == u),
            Err(_) => term
                .parse::<u64>()
                .is_ok_and(|n| n != 0 && (n == sg_id || sg.and_then(|s| s.id) == Some(n))),
        }
    }

    /// What the attribute checks need to know about the event, computed once.
    struct EventFacts<'e> {
        uuid: Uuid,
        info: String,
        tags: Vec<String>,
        distribution: u8,
        sg: Option<&'e SharingGroup>,
        sg_id: u64,
    }

    /// Where candidate events come from.
    enum Candidates {
        List(Vec<Uuid>),
        Since(u64),
        PublishedSince(u64),
        All,
    }

    /// An event of the requested page, found by pass 1.
    struct Match {
        uuid: Uuid,
        /// Matching rows before this event's.
        before: u64,
        rows: u64,
        cached: Option<Event>,
    }

    struct Counted {
        total: u64,
        matches: Vec<Match>,
    }

    pub struct Plan<'a> {
        store: &'a Store,
        viewer: &'a Viewer,
        q: &'a Query,
        orgs: Terms<OrgRef>,
        value: Terms<ValuePat>,
    }

    impl<'a> Plan<'a> {
        pub fn new(store: &'a Store, viewer: &'a Viewer, q: &'a Query) -> Result<Self, ApiError> {
            let orgs = if q.org.is_empty() {
                Terms::default()
            } else {
                let known = store.orgs()?;
                q.org.map(|t| OrgRef::resolve(&known, t))
            };
            Ok(Plan {
                store,
                viewer,
                q,
                orgs,
                value: q.value.map(|p| ValuePat::compile(p)),
            })
        }

        // ---- candidates -------------------------------------------------------

        fn candidates(&self) -> Result<Candidates, ApiError> {
            let q = self.q;
            let store = self.store;
            if q.impossible() {
                return Ok(Candidates::List(Vec::new()));
            }
            if q.eventid.has_positive() {
                let mut set = BTreeSet::new();
                for t in q.eventid.index_terms() {
                    set.extend(crate::api::events::resolve(store, t)?);
                }
                return Ok(Candidates::List(set.into_iter().collect()));
            }
            if q.uuid.has_positive() {
                let mut set = BTreeSet::new();
                for t in q.uuid.index_terms() {
                    let Ok(u) = Uuid::parse_str(t.trim()) else {
                        continue;
                    };
                    if store.get_event_header(&u)?.is_some() {
                        set.insert(u);
                    } else if let Some(e) = store.locate(&u)? {
                        set.insert(e);
                    }
                }
                return Ok(Candidates::List(set.into_iter().collect()));
            }
            if let Some(list) = self.value_candidates()? {
                return Ok(Candidates::List(list));
            }
            for (terms, event_only) in [(&q.event_tags, true), (&q.tags, false)] {
                if terms.has_positive() {
                    let mut set = BTreeSet::new();
                    for t in terms.index_terms() {
                        tag_events(store, t, event_only, &mut set)?;
                    }
                    return Ok(Candidates::List(set.into_iter().collect()));
                }
            }
            if q.attr_type.has_positive()
                && !q.attr_type.index_terms().iter().any(|t| t.contains('%'))
            {
                let mut set = BTreeSet::new();
                for t in q.attr_type.index_terms() {
                    // The index holds types as spelled in describeTypes ("AS").
                    let known = crate::model::types::types()
                        .iter()
                        .find(|k| k.eq_ignore_ascii_case(t));
                    if let Some(k) = known {
                        set.extend(store.events_with_type(k)?);
                    }
                }
                return Ok(Candidates::List(set.into_iter().collect()));
            }
            if let Some(lo) = q.publish_ts.iter().filter_map(|t| t.lower()).max() {
                return Ok(Candidates::PublishedSince(lo));
            }
            if let Some(lo) = q.event_ts.iter().filter_map(|t| t.lower()).max() {
                return Ok(Candidates::Since(lo));
            }
            if q.published == Some(true) {
                return Ok(Candidates::PublishedSince(0));
            }
            Ok(Candidates::All)
        }

        /// Events holding an attribute some `value` term can match, from the value
        /// and IP indexes; `None` if a term needs a full walk.
        fn value_candidates(&self) -> Result<Option<Vec<Uuid>>, ApiError> {
            if !self.value.has_positive() {
                return Ok(None);
            }
            let include_deleted = self.q.deleted.deleted;
            let all = usize::MAX;
            let mut set = BTreeSet::new();
            for pat in self.value.index_terms() {
                let Some(ip) = pat.index_pattern() else {
                    return Ok(None);
                };
                if let ValuePat::Cidr { literal, .. } = pat {
                    for h in self
                        .store
                        .lookup_ip_or_cidr(literal, include_deleted, all)?
                    {
                        set.insert(h.event);
                    }
                }
                for h in self.store.lookup_wildcard(&ip, include_deleted, all)? {
                    set.insert(h.event);
                }
            }
            Ok(Some(set.into_iter().collect()))
        }

        fn candidate_iter(
            &self,
            c: Candidates,
        ) -> Box<dyn Iterator<Item = Result<Uuid, StoreError>> + 'a> {
            let store = self.store;
            match c {
                Candidates::List(v) => Box::new(v.into_iter().map(Ok)),
                Candidates::Since(t) => Box::new(store.event_uuids_since(t)),
                Candidates::PublishedSince(t) => Box::new(store.event_uuids_published_since(t)),
                Candidates::All => Box::new(store.event_uuids()),
            }
        }

        // ---- evaluation -------------------------------------------------------

        /// The stored event as the caller may see it, trimmed to what the query
        /// selects; `None` if it is unknown, invisible or does not match.
        fn load(&self, uuid: &Uuid) -> Result<Option<Event>, StoreError> {
            Ok(self.store.get_event(uuid)?.and_then(|ev| self.apply(ev)))
        }

        fn apply(&self, ev: Event) -> Option<Event> {
            let q = self.q;
            let mut ev = redact_event(self.viewer, ev)?;
            if !self.event_ok(&ev) {
                return None;
            }
            let d = q.deleted;
            ev.attributes.retain(|a| d.allows(a.deleted));
            for o in &mut ev.objects {
                o.attributes.retain(|a| d.allows(a.deleted));
            }
            ev.objects
                .retain(|o| d.allows(o.deleted) || !o.attributes.is_empty());
            ev.reports.retain(|r| d.allows(r.deleted));
            let facts = EventFacts {
                uuid: ev.uuid,
                info: ev.info.to_lowercase(),
                tags: ev.tags.iter().map(Tag::key).collect(),
                distribution: ev.distribution,
                sg: ev.sharing_group.as_ref(),
                sg_id: ev.sharing_group_id,
            };
            let trim = match q.scope {
                Scope::Events => {
                    if !self.event_children_ok(&ev, &facts) {
                        return None;
                    }
                    q.has_attribute_filters()
                }
                Scope::Attributes => true,
            };
            if trim {
                let keep_top: Vec<bool> = ev
                    .attributes
                    .iter()
                    .map(|a| self.attr_ok(&facts, None, a))
                    .collect();
                let keep_obj: Vec<Vec<bool>> = ev
                    .objects
                    .iter()
                    .map(|o| {
                        let name = o.name.to_lowercase();
                        o.attributes
                            .iter()
                            .map(|a| self.attr_ok(&facts, Some(&name), a))
                            .collect()
                    })
                    .collect();
                retain_by(&mut ev.attributes, &keep_top);
                for (o, keep) in ev.objects.iter_mut().zip(&keep_obj) {
                    retain_by(&mut o.attributes, keep);
                }
                ev.objects.retain(|o| !o.attributes.is_empty());
                if ev.count_attributes() == 0 {
                    return None;
                }
            }
            if q.scope == Scope::Events && q.metadata {
                ev.attributes.clear();
                ev.objects.clear();
                ev.reports.clear();
            }
            Some(ev)
        }

        /// Filters on the event itself.
        fn event_ok(&self, ev: &Event) -> bool {
            let q = self.q;
            let creator = ev.orgc.as_ref().or(ev.org.as_ref());
            let date_ok = |b: &Option<DateBound>, after: bool| match b {
                None => true,
                Some(DateBound::Never) => false,
                Some(DateBound::Date(d)) => {
                    if after {
                        ev.date.as_str() >= d.as_str()
                    } else {
                        ev.date.as_str() <= d.as_str()
                    }
                }
            };
            let base = q.eventid.eval(|t| id_or_uuid(t, ev.id, &ev.uuid))
                && q.eventinfo
                    .eval(|p| filter::like(p, &ev.info.to_lowercase()))
                && self.orgs.eval(|r| r.matches(creator))
                && q.published.is_none_or(|p| p == ev.published)
                && date_ok(&q.date_from, true)
                && date_ok(&q.date_to, false)
                && q.event_ts.iter().all(|t| t.contains(ev.timestamp))
                && q.publish_ts
                    .iter()
                    .all(|t| t.contains(ev.publish_timestamp))
                && q.event_tags
                    .eval(|p| ev.tags.iter().any(|t| filter::like(p, &t.key())))
                && q.threat_level_id
                    .eval(|t| t.trim() == ev.threat_level_id.to_string())
                && q.analysis.eval(|t| t.trim() == ev.analysis.to_string());
            base && match q.scope {
                Scope::Events => {
                    q.distribution
                        .eval(|t| t.trim() == ev.distribution.to_string())
                        && q.sharinggroup.eval(|t| {
                            ev.distribution == 4
                                && sg_matches(t, ev.sharing_group.as_ref(), ev.sharing_group_id)
                        })
                }
                Scope::Attributes => true,
            }
        }

        /// `events/restSearch` filters that look into the event's (visible)
        /// attributes without trimming them: `tags` (on the event or any
        /// attribute; a negated tag excludes events tagged with it, as MISP),
        /// `uuid` (the event's or an attribute's) and `quickFilter`.
        fn event_children_ok(&self, ev: &Event, facts: &EventFacts) -> bool {
            let q = self.q;
            if !q.tags.is_empty() {
                let all: Vec<String> = facts
                    .tags
                    .iter()
                    .cloned()
                    .chain(
                        ev.all_attributes()
                            .flat_map(|a| a.tags.iter().map(Tag::key)),
                    )
                    .collect();
                let any = |p: &String, set: &[String]| set.iter().any(|t| filter::like(p, t));
                let ok = (q.tags.or.is_empty() || q.tags.or.iter().any(|p| any(p, &all)))
                    && q.tags.and.iter().all(|p| any(p, &all))
                    && !q.tags.not.iter().any(|p| any(p, &facts.tags));
                if !ok {
                    return false;
                }
            }
            if !q.uuid.is_empty()
                && !q.uuid.eval(|t| {
                    Uuid::parse_str(t.trim())
                        .is_ok_and(|u| u == ev.uuid || ev.all_attributes().any(|a| a.uuid == u))
                })
            {
                return false;
            }
            if let Some(s) = &q.quick {
                let hit = facts.info.contains(s.as_str())
                    || facts.tags.iter().any(|t| t.contains(s.as_str()))
                    || ev.all_attributes().any(|a| quick_hit(s, a));
                if !hit {
                    return false;
                }
            }
            true
        }

        /// Filters on one attribute (`object` is its object's folded name). On
        /// `attributes/restSearch` the event-wide filters apply per row here:
        /// `tags` match the attribute's or its event's tags (a negated tag on
        /// either excludes the row, stricter than MISP, so that `!tlp:red` never
        /// lets a red event's indicators through), `uuid` the attribute's or the
        /// event's uuid.
        fn attr_ok(&self, ev: &EventFacts, object: Option<&String>, a: &Attribute) -> bool {
            let q = self.q;
            let lower = |s: &str| s.to_lowercase();
            let ok = q.deleted.allows(a.deleted)
                && q.to_ids.is_none_or(|t| a.ids() == t)
                && q.attr_ts.iter().all(|t| t.contains(a.timestamp))
                && q.attr_type.eval(|p| filter::like(p, &lower(&a.attr_type)))
                && q.category.eval(|p| filter::like(p, &lower(&a.category)))
                && q.comment.eval(|p| filter::like(p, &lower(&a.comment)))
                && q.object_relation.eval(|p| {
                    a.object_relation
                        .as_deref()
                        .is_some_and(|r| filter::like(p, &lower(r)))
                })
                && q.object_name
                    .eval(|p| object.is_some_and(|n| filter::like(p, n)));
            if !ok {
                return false;
            }
            if !self.value.is_empty() {
                let (v1, v2) = value::split(&a.attr_type, &a.value);
                let halves: Vec<String> = std::iter::once(v1)
                    .chain(v2)
                    .map(|h| h.trim().to_lowercase())
                    .collect();
                if !self.value.eval(|p| p.matches(&a.attr_type, &halves)) {
                    return false;
                }
            }
            if q.scope == Scope::Events {
                return true;
            }
            let tagged = |p: &String| {
                a.tags.iter().any(|t| filter::like(p, &t.key()))
                    || ev.tags.iter().any(|t| filter::like(p, t))
            };
            let (sg, sg_id) = match a.distribution {
                4 => (a.sharing_group.as_ref(), a.sharing_group_id),
                5 if ev.distribution == 4 => (ev.sg, ev.sg_id),
                _ => (None, 0),
            };
            q.tags.eval(tagged)
                && q.uuid
                    .eval(|t| Uuid::parse_str(t.trim()).is_ok_and(|u| u == a.uuid || u == ev.uuid))
                && q.distribution
                    .eval(|t| t.trim() == a.distribution.to_string())
                && q.sharinggroup
                    .eval(|t| sg.is_some() && sg_matches(t, sg, sg_id))
                && q.quick.as_ref().is_none_or(|s| {
                    quick_hit(s, a)
                        || ev.info.contains(s.as_str())
                        || ev.tags.iter().any(|t| t.contains(s.as_str()))
                })
        }

        /// Rows an evaluated event contributes.
        fn rows(&self, ev: &Event) -> u64 {
            match self.q.scope {
                Scope::Events => 1,
                Scope::Attributes => ev.count_attributes() as u64,
            }
        }

        // ---- the two passes ---------------------------------------------------

        fn count(&self) -> Result<Counted, ApiError> {
            let (start, end) = self.q.window();
            let candidates = self.candidates()?;
            // A timestamp index can list an event twice if it changes during the
            // walk (old and new key); uuid-ordered sources cannot.
            let mut seen = match candidates {
                Candidates::Since(_) | Candidates::PublishedSince(_) => Some(HashSet::new()),
                Candidates::List(_) | Candidates::All => None,
            };
            let mut total = 0u64;
            let mut cached_rows = 0u64;
            let mut matches = Vec::new();
            for u in self.candidate_iter(candidates) {
                let u = u?;
                if let Some(seen) = &mut seen {
                    if !seen.insert(u) {
                        continue;
                    }
                }
                let Some(ev) = self.load(&u)? else { continue };
                let rows = self.rows(&ev);
                if rows == 0 {
                    continue;
                }
                let before = total;
                total += rows;
                if before < end && before + rows > start {
                    let cached = (cached_rows + rows <= CACHE_ROWS).then(|| {
                        cached_rows += rows;
                        ev
                    });
                    matches.push(Match {
                        uuid: u,
                        before,
                        rows,
                        cached,
                    });
                }
            }
            Ok(Counted { total, matches })
        }

        fn emit(&self, em: &mut Emitter<'_>, matches: Vec<Match>) -> io::Result<()> {
            let (start, end) = self.q.window();
            for m in matches {
                let ev = match m.cached {
                    Some(ev) => ev,
                    None => match self.load(&m.uuid).map_err(io::Error::other)? {
                        Some(ev) => ev,
                        None => continue, // gone or changed since pass 1
                    },
                };
                let from = start.saturating_sub(m.before);
                let to = end.saturating_sub(m.before).min(m.rows);
                em.event(ev, from, to)?;
            }
            Ok(())
        }
    }

    fn retain_by<T>(v: &mut Vec<T>, keep: &[bool]) {
        let mut i = 0;
        v.retain(|_| {
            let k = keep.get(i).copied().unwrap_or(false);
            i += 1;
            k
        });
    }

    fn quick_hit(s: &str, a: &Attribute) -> bool {
        a.value.to_lowercase().contains(s)
            || a.comment.to_lowercase().contains(s)
            || a.tags.iter().any(|t| t.key().contains(s))
    }

    /// Events carrying a tag matching `pattern` (on the event, or on an attribute
    /// unless `event_only`), from the tag index. A `%` pattern scans the index
    /// from its literal prefix (the whole index when it starts with `%`).
    fn tag_events(
        store: &Store,
        pattern: &str,
        event_only: bool,
        out: &mut BTreeSet<Uuid>,
    ) -> Result<(), StoreError> {
        let folded = pattern.trim().to_lowercase();
        if !folded.contains('%') {
            for h in store.lookup_tag(&folded, usize::MAX)? {
                if !event_only || h.attribute.is_nil() {
                    out.insert(h.event);
                }
            }
            return Ok(());
        }
        let prefix = folded.split('%').next().unwrap_or_default();
        // Index keys are `folded tag ‖ 0 ‖ event ‖ attribute` (see store::keys).
        for item in store.t.idx_tag.scan_prefix(prefix.as_bytes()) {
            let (k, _) = item?;
            let n = k.len();
            if n < 33 {
                continue;
            }
            let Ok(name) = std::str::from_utf8(&k[..n - 33]) else {
                continue;
            };
            if !filter::like(&folded, name) {
                continue;
            }
            let (Ok(e), Ok(a)) = (
                Uuid::from_slice(&k[n - 32..n - 16]),
                Uuid::from_slice(&k[n - 16..]),
            ) else {
                continue;
            };
            if !event_only || a.is_nil() {
                out.insert(e);
            }
        }
        Ok(())
    }

    // ---- output ---------------------------------------------------------------

    /// The `Event` block MISP attaches to each attribute row.
    #[derive(Serialize)]
    struct EventBrief {
        org_id: String,
        distribution: String,
        id: String,
        info: String,
        orgc_id: String,
        uuid: Uuid,
    }

    #[derive(Serialize)]
    struct TagOut<'t> {
        #[serde(flatten)]
        tag: &'t Tag,
        #[serde(skip_serializing_if = "Option::is_none")]
        inherited: Option<u8>,
    }

    fn threat_level_name(id: u8) -> &'static str {
        match id {
            1 => "High",
            2 => "Medium",
            3 => "Low",
            _ => "Undefined",
        }
    }

    pub struct Emitter<'p> {
        plan: &'p Plan<'p>,
        out: ChunkWriter,
        first: bool,
        csv: CsvWriter,
        /// CSV columns (MISP names), or `None` for the default set written by
        /// [`CsvWriter`].
        columns: Option<Vec<String>>,
        org_ids: HashMap<Uuid, Option<u64>>,
        line: String,
    }

    impl<'p> Emitter<'p> {
        fn new(plan: &'p Plan<'p>, out: ChunkWriter) -> Self {
            let q = plan.q;
            let columns = if q.requested_attributes.is_none()
                && q.requested_obj_attributes.is_none()
                && !q.include_context
            {
                None
            } else {
                Some(csv_columns(q))
            };
            Emitter {
                plan,
                out,
                first: true,
                csv: CsvWriter::new(),
                columns,
                org_ids: HashMap::new(),
                line: String::new(),
            }
        }

        fn begin(&mut self) -> io::Result<()> {
            let q = self.plan.q;
            match (q.format, q.scope) {
                (Format::Json, Scope::Events) => self.out.write_all(b"{\"response\": ["),
                (Format::Json, Scope::Attributes) => {
                    self.out.write_all(b"{\"response\": {\"Attribute\": [")
                }
                (Format::Csv, _) if q.headerless => Ok(()),
                (Format::Csv, _) => match &self.columns {
                    None => self.csv.header(&mut self.out),
                    Some(cols) => {
                        let names: Vec<String> = cols
                            .iter()
                            .map(|c| {
                                if c == "timestamp" {
                                    "date".to_owned()
                                } else {
                                    c.replace('-', "_")
                                }
                            })
                            .collect();
                        writeln!(self.out, "{}", names.join(","))
                    }
                },
                (Format::Text, _) => Ok(()),
            }
        }

        fn end(&mut self) -> io::Result<()> {
            let q = self.plan.q;
            match (q.format, q.scope) {
                (Format::Json, Scope::Events) => self.out.write_all(b"]}\n"),
                (Format::Json, Scope::Attributes) => self.out.write_all(b"]}}\n"),
                (Format::Csv, _) => self.csv.footer(&mut self.out),
                (Format::Text, _) => Ok(()),
            }
        }

        fn separator(&mut self) -> io::Result<()> {
            if !self.first {
                self.out.write_all(b",")?;
            }
            self.first = false;
            Ok(())
        }

        /// Removes what the query did not ask for: attachments, sightings, full
        /// sharing groups.
        fn prepare(&self, ev: &mut Event) {
            let q = self.plan.q;
            let event_id = ev.id;
            let attrs = ev
                .attributes
                .iter_mut()
                .chain(ev.objects.iter_mut().flat_map(|o| o.attributes.iter_mut()));
            for a in attrs {
                if !q.with_attachments {
                    a.data = None;
                }
                if !q.include_sightings {
                    a.sightings.clear();
                }
                if q.sg_reference_only {
                    a.sharing_group = None;
                }
                a.event_id = event_id;
            }
            for a in &mut ev.attributes {
                a.object_id = Some(0);
            }
            if q.sg_reference_only {
                ev.sharing_group = None;
                ev.objects.iter_mut().for_each(|o| o.sharing_group = None);
                ev.reports.iter_mut().for_each(|r| r.sharing_group = None);
            }
        }

        /// Local id of an organisation, looked up by uuid when the event does
        /// not carry it (events received by sync).
        fn org_id(&mut self, org: Option<&Org>) -> String {
            let Some(o) = org else { return "0".into() };
            if let Some(id) = o.id {
                return id.to_string();
            }
            let store = self.plan.store;
            let id = *self.org_ids.entry(o.uuid).or_insert_with(|| {
                // A display field: an unreadable org record shows as "0" rather
                // than failing the whole answer.
                store.org(&o.uuid).ok().flatten().map(|r| r.id)
            });
            id.unwrap_or(0).to_string()
        }

        /// Writes rows `from..to` of the evaluated event `ev`.
        fn event(&mut self, mut ev: Event, from: u64, to: u64) -> io::Result<()> {
            if from >= to {
                return Ok(());
            }
            self.prepare(&mut ev);
            let q = self.plan.q;
            if q.scope == Scope::Events {
                return match q.format {
                    Format::Json => {
                        self.separator()?;
                        serde_json::to_writer(&mut self.out, &Wrapped { event: &ev })
                            .map_err(io::Error::other)
                    }
                    Format::Csv | Format::Text => {
                        for (oi, ai) in row_indexes(&ev) {
                            self.flat_row(&ev, oi, ai)?;
                        }
                        Ok(())
                    }
                };
            }
            let brief = EventBrief {
                org_id: self.org_id(ev.org.as_ref()),
                distribution: ev.distribution.to_string(),
                id: ev.id.unwrap_or(0).to_string(),
                info: ev.info.clone(),
                orgc_id: self.org_id(ev.orgc.as_ref()),
                uuid: ev.uuid,
            };
            for (j, (oi, ai)) in row_indexes(&ev).into_iter().enumerate() {
                let j = j as u64;
                if j < from {
                    continue;
                }
                if j >= to {
                    break;
                }
                match q.format {
                    Format::Json => {
                        let own = std::mem::take(&mut attr_mut(&mut ev, oi, ai).tags);
                        let a = attr(&ev, oi, ai);
                        let mut tags: Vec<TagOut> = own
                            .iter()
                            .map(|t| TagOut {
                                tag: t,
                                inherited: None,
                            })
                            .collect();
                        if q.include_event_tags {
                            for t in &ev.tags {
                                if !own.iter().any(|o| o.key() == t.key()) {
                                    tags.push(TagOut {
                                        tag: t,
                                        inherited: Some(1),
                                    });
                                }
                            }
                        }
                        let row = AttrRow {
                            attribute: a,
                            event_uuid: q.include_event_uuid.then_some(ev.uuid),
                            event: &brief,
                            tags,
                        };
                        self.separator()?;
                        serde_json::to_writer(&mut self.out, &row).map_err(io::Error::other)?;
                    }
                    Format::Csv | Format::Text => self.flat_row(&ev, oi, ai)?,
                }
            }
            Ok(())
        }

        /// One CSV line or one text line.
        fn flat_row(&mut self, ev: &Event, oi: Option<usize>, ai: usize) -> io::Result<()> {
            let a = attr(ev, oi, ai);
            let obj = oi.and_then(|i| ev.objects.get(i));
            match self.plan.q.format {
                Format::Text => {
                    if a.value.contains(['\n', '\r']) {
                        self.out
                            .write_all(a.value.replace(['\n', '\r'], " ").as_bytes())?;
                    } else {
                        self.out.write_all(a.value.as_bytes())?;
                    }
                    self.out.write_all(b"\n")
                }
                Format::Csv => match &self.columns {
                    None => self.csv.attribute(&mut self.out, ev, a, obj),
                    Some(cols) => {
                        let line = &mut self.line;
                        line.clear();
                        for (i, c) in cols.iter().enumerate() {
                            if i > 0 {
                                line.push(',');
                            }
                            match csv_value(c, ev, obj, a, self.plan.q.scope) {
                                Some(v) => csv_field(line, &v),
                                None => line.push_str("\"\""),
                            }
                        }
                        line.push('\n');
                        self.out.write_all(line.as_bytes())
                    }
                },
                Format::Json => Ok(()),
            }
        }
    }

    /// One `attributes/restSearch` JSON row: the attribute's fields, then
    /// `event_uuid` (with `includeEventUuid`), `Event` and `Tag`.
    #[derive(Serialize)]
    struct AttrRow<'r> {
        #[serde(flatten)]
        attribute: &'r Attribute,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_uuid: Option<Uuid>,
        #[serde(rename = "Event")]
        event: &'r EventBrief,
        #[serde(rename = "Tag", skip_serializing_if = "Vec::is_empty")]
        tags: Vec<TagOut<'r>>,
    }

    /// Row order: the event's own attributes, then each object's.
    fn row_indexes(ev: &Event) -> Vec<(Option<usize>, usize)> {
        let mut out: Vec<(Option<usize>, usize)> =
            (0..ev.attributes.len()).map(|i| (None, i)).collect();
        for (oi, o) in ev.objects.iter().enumerate() {
            out.extend((0..o.attributes.len()).map(|ai| (Some(oi), ai)));
        }
        out
    }

    // Indexing cannot fail in the next two: the indexes come from `row_indexes`
    // of the same event, whose children are not added or removed in between.
    fn attr(ev: &Event, oi: Option<usize>, ai: usize) -> &Attribute {
        match oi {
            Some(o) => &ev.objects[o].attributes[ai],
            None => &ev.attributes[ai],
        }
    }

    fn attr_mut(ev: &mut Event, oi: Option<usize>, ai: usize) -> &mut Attribute {
        match oi {
            Some(o) => &mut ev.objects[o].attributes[ai],
            None => &mut ev.attributes[ai],
        }
    }

    /// MISP's CSV column list (`CsvExport::header`): the requested attribute
    /// fields (or the defaults), object fields (the defaults only when no
    /// attribute fields were requested), then the event context fields with
    /// `includeContext`.
    fn csv_columns(q: &Query) -> Vec<String> {
        const DEFAULT: [&str; 10] = [
            "uuid",
            "event_id",
            "category",
            "type",
            "value",
            "comment",
            "to_ids",
            "timestamp",
            "object_relation",
            "attribute_tag",
        ];
        const OBJECT: [&str; 3] = ["object_uuid", "object_name", "object_meta-category"];
        const CONTEXT: [&str; 9] = [
            "event_info",
            "event_member_org",
            "event_source_org",
            "event_distribution",
            "event_threat_level_id",
            "event_analysis",
            "event_date",
            "event_tag",
            "event_timestamp",
        ];
        let mut cols: Vec<String> = match &q.requested_attributes {
            Some(r) => r.clone(),
            None => DEFAULT.iter().map(|s| (*s).to_owned()).collect(),
        };
        match (&q.requested_obj_attributes, &q.requested_attributes) {
            (Some(o), _) => cols.extend(o.iter().map(|c| format!("object_{c}"))),
            (None, None) => cols.extend(OBJECT.iter().map(|s| (*s).to_owned())),
            (None, Some(_)) => {}
        }
        if q.include_context {
            cols.extend(CONTEXT.iter().map(|s| (*s).to_owned()));
        }
        cols
    }

    fn bool01(b: bool) -> String {
        if b { "1" } else { "0" }.to_owned()
    }

    fn join_tags(tags: &[Tag]) -> Option<String> {
        (!tags.is_empty()).then(|| {
            tags.iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// One CSV field by MISP name; `None` is MISP's unset field (`""`).
    fn csv_value(
        col: &str,
        ev: &Event,
        obj: Option<&Object>,
        a: &Attribute,
        scope: Scope,
    ) -> Option<String> {
        let seen = |v: Option<i64>| v.map(crate::model::time::format_seen);
        Some(match col {
            "id" => a.id?.to_string(),
            "uuid" => a.uuid.to_string(),
            "event_id" => ev.id.or(a.event_id).unwrap_or(0).to_string(),
            "object_id" => match obj {
                Some(o) => o.id?.to_string(),
                None => "0".into(),
            },
            "category" => a.category.clone(),
            "type" => a.attr_type.clone(),
            "value" => a.value.clone(),
            "value1" => value::split(&a.attr_type, &a.value).0.to_owned(),
            "value2" => value::split(&a.attr_type, &a.value)
                .1
                .unwrap_or("")
                .to_owned(),
            "comment" => a.comment.clone(),
            "to_ids" => bool01(a.ids()),
            "timestamp" => a.timestamp.to_string(),
            "distribution" => a.distribution.to_string(),
            "sharing_group_id" => a.sharing_group_id.to_string(),
            "deleted" => bool01(a.deleted),
            "disable_correlation" => bool01(a.disable_correlation),
            "object_relation" => a.object_relation.clone()?,
            "first_seen" => seen(a.first_seen)?,
            "last_seen" => seen(a.last_seen)?,
            "attribute_tag" => join_tags(&a.tags)?,
            "object_uuid" => obj?.uuid.to_string(),
            "object_name" => obj?.name.clone(),
            "object_meta-category" | "object_meta_category" => obj?.meta_category.clone(),
            "event_info" => ev.info.clone(),
            "event_member_org" => ev.org.as_ref()?.name.clone(),
            "event_source_org" => ev.orgc.as_ref()?.name.clone(),
            "event_distribution" => ev.distribution.to_string(),
            "event_threat_level_id" => match scope {
                Scope::Events => threat_level_name(ev.threat_level_id).to_owned(),
                Scope::Attributes => ev.threat_level_id.to_string(),
            },
            "event_analysis" => ev.analysis.to_string(),
            "event_date" => ev.date.clone(),
            "event_tag" => join_tags(&ev.tags)?,
            "event_timestamp" => ev.timestamp.to_string(),
            "event_uuid" => ev.uuid.to_string(),
            _ => return None,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn value_patterns() {
            let halves = |v: &str| vec![v.to_owned()];
            let p = ValuePat::compile("10.0.0.0/8");
            assert!(p.matches("ip-dst", &halves("10.1.2.3")));
            assert!(p.matches("ip-src", &halves("10.2.0.0/16")));
            assert!(!p.matches("ip-src", &halves("11.0.0.1")));
            assert!(!p.matches("text", &halves("10.1.2.3")));
            assert!(p.matches("text", &halves("10.0.0.0/8")));
            let p = ValuePat::compile("2001:db8:0::1");
            assert!(p.matches("ip-dst", &halves("2001:db8::1")));
            let p = ValuePat::compile("%.example.com");
            assert!(p.matches("domain", &halves("a.example.com")));
            assert_eq!(p.index_pattern().as_deref(), Some("%.example.com"));
            assert_eq!(
                ValuePat::compile("a%b%c").index_pattern().as_deref(),
                Some("a%")
            );
            assert_eq!(
                ValuePat::compile("%ab%c").index_pattern().as_deref(),
                Some("%c")
            );
            assert_eq!(
                ValuePat::compile("%ab%c%").index_pattern().as_deref(),
                Some("%ab%")
            );
            assert_eq!(ValuePat::compile("%").index_pattern(), None);
        }

        #[test]
        fn default_csv_columns_match_the_csv_writer() {
            let mut ev = Event::new("x");
            ev.id = Some(7);
            let mut a = Attribute::new("ip-dst", "10.0.0.1");
            a.category = "Network activity".into();
            a.to_ids = Some(true);
            a.timestamp = 1_700_000_000;
            a.comment = "say \"hi\"".into();
            a.tags = vec![Tag::named("tlp:green"), Tag::named("x")];
            let mut o = Object {
                id: None,
                name: "domain-ip".into(),
                meta_category: "network".into(),
                description: String::new(),
                template_uuid: String::new(),
                template_version: String::new(),
                event_id: None,
                uuid: Uuid::new_v4(),
                timestamp: 0,
                distribution: 5,
                sharing_group_id: 0,
                comment: String::new(),
                deleted: false,
                first_seen: None,
                last_seen: None,
                sharing_group: None,
                references: Vec::new(),
                attributes: Vec::new(),
            };
            o.attributes.push(a.clone());
            let q = Query::parse(
                Scope::Attributes,
                &serde_json::json!({"includeContext": 0})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                None,
                0,
            )
            .unwrap();
            let cols = csv_columns(&q);
            for obj in [None, Some(&o)] {
                let mut expected = Vec::new();
                CsvWriter::new()
                    .attribute(&mut expected, &ev, &a, obj)
                    .unwrap();
                let mut line = String::new();
                for (i, c) in cols.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    match csv_value(c, &ev, obj, &a, Scope::Attributes) {
                        Some(v) => csv_field(&mut line, &v),
                        None => line.push_str("\"\""),
                    }
                }
                line.push('\n');
                assert_eq!(line, String::from_utf8(expected).unwrap());
            }
        }
    }
}

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
    use crate::api::AppState;
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
        let resp = crate::api::handle(crate::api::router(state.clone()), state.clone(), req).await;
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
        let state = crate::api::test_state(store, org_a.uuid);
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

        // Text: one value per line.
        let a = search(
            st,
            &f.key_b,
            "/attributes/restSearch",
            json!({"returnFormat": "text", "eventid": f.public_a, "type": "domain"}),
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
