//! MISP's filter syntax: parsing the request into a [`Query`], and matching of
//! single values. Pure: no store, no I/O.

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
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
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
    /// `includeExercise`: exercise events (see [`crate::policy::is_exercise`])
    /// are left out of the indicator formats (csv, text) unless asked for.
    pub include_exercise: bool,
    /// `spreadsheetSafe` (a sluis extension): CSV cells safe to open in a
    /// spreadsheet (see `export::CsvStyle`); MISP's verbatim CSV otherwise.
    pub spreadsheet_safe: bool,
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
        // MISP's text export is restrictive (`TextExport` has no
        // `non_restrictive_export`): without a `to_ids` or `published` filter
        // it lists only to_ids attributes of published events; `ignore`
        // lifts both (MispAttribute.php 3192-3200, Event.php 7457-7465).
        let implied = format == Format::Text && !flag(get("ignore"));
        let restrictive = |v: Option<&Value>| match v {
            None if implied => Some(true),
            v => v.and_then(|v| tristate(Some(v))),
        };
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
            to_ids: restrictive(get("to_ids")),
            published: restrictive(get("published")),
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
            include_exercise: flag(get("includeExercise")),
            spreadsheet_safe: flag(get("spreadsheetSafe")),
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
