//! Running a [`Query`] against the store: candidates, per-event evaluation,
//! counting and writing.

use super::filter::{self, DateBound, Format, Query, Scope, Terms};
use super::ChunkWriter;
use crate::export::{CsvStyle, CsvWriter};
use crate::http::error::ApiError;
use crate::model::event::Wrapped;
use crate::model::{value, Attribute, Event, Object, Org, SharingGroup, Tag};
use crate::policy::{redact_event, Viewer};
use crate::store::accounts::OrgRecord;
use crate::store::index::{ip_bearing, parse_net};
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

/// What [`Plan`] derives from a query before it touches the store, run on the
/// query's own terms, with the invariants the candidate search relies on: a
/// `LIKE` pattern matches its own text, a value term matches itself, and its
/// index pattern matches whatever the term matches. Returns the broken ones
/// (none, normally). For `super::fuzz_parse_request` only.
pub(super) fn exercise_pure(q: &Query) -> Vec<String> {
    let mut broken = Vec::new();
    let text_terms = [
        &q.value,
        &q.attr_type,
        &q.category,
        &q.comment,
        &q.object_name,
        &q.object_relation,
        &q.tags,
        &q.event_tags,
        &q.eventinfo,
    ];
    for t in text_terms
        .iter()
        .flat_map(|t| t.or.iter().chain(&t.and).chain(&t.not))
    {
        if !filter::like(t, t) {
            broken.push(format!("LIKE {t:?} does not match its own text"));
        }
    }
    let value = q.value.map(|p| ValuePat::compile(p));
    for (pat, term) in value.or.iter().zip(&q.value.or) {
        if !pat.matches("ip-dst", std::slice::from_ref(term)) {
            broken.push(format!("value term {term:?} does not match itself"));
        }
        if let Some(ip) = pat.index_pattern() {
            if !filter::like(&ip, term) {
                broken.push(format!("index pattern {ip:?} misses its term {term:?}"));
            }
        }
    }
    let orgs = q.org.map(|t| OrgRef::resolve(&[], t));
    let _ = orgs.eval(|o| o.matches(None));
    let (start, end) = q.window();
    if start > end {
        broken.push(format!("page window {start}..{end} is reversed"));
    }
    let _ = (q.impossible(), q.has_attribute_filters(), csv_columns(q));
    broken
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
        if q.attr_type.has_positive() && !q.attr_type.index_terms().iter().any(|t| t.contains('%'))
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
            && q.analysis.eval(|t| t.trim() == ev.analysis.to_string())
            // Exercise data never feeds an indicator export by accident.
            && (q.include_exercise
                || q.format == Format::Json
                || !crate::policy::is_exercise(ev));
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
    for entry in store.tag_entries(prefix)? {
        if filter::like(&folded, &entry.name) && (!event_only || entry.attribute.is_nil()) {
            out.insert(entry.event);
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
    /// How CSV cells are written (`spreadsheetSafe`).
    csv_style: CsvStyle,
    /// CSV columns (MISP names), or `None` for the default set written by
    /// [`CsvWriter`].
    columns: Option<Vec<String>>,
    org_ids: HashMap<Uuid, Option<u64>>,
    line: String,
    /// Text export: the values written so far (by 128-bit digest, so memory
    /// is 16 bytes a value whatever its length): MISP's `TextExport` lists
    /// each value once, in first-seen order.
    text_seen: std::collections::HashSet<[u8; 16]>,
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
        let csv_style = if q.spreadsheet_safe {
            CsvStyle::Spreadsheet
        } else {
            CsvStyle::Misp
        };
        Emitter {
            plan,
            out,
            first: true,
            csv: CsvWriter::with_style(csv_style),
            csv_style,
            columns,
            org_ids: HashMap::new(),
            line: String::new(),
            text_seen: std::collections::HashSet::new(),
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
            // `implode("\n", values) . "\n"`: an empty answer is one newline.
            (Format::Text, _) if self.text_seen.is_empty() => self.out.write_all(b"\n"),
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
                use sha2::Digest as _;
                let d = sha2::Sha256::digest(a.value.as_bytes());
                let mut key = [0u8; 16];
                key.copy_from_slice(&d[..16]);
                if !self.text_seen.insert(key) {
                    return Ok(());
                }
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
                            Some(v) => self.csv_style.field(line, &v),
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
    use crate::export::csv_field;

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
