//! Which events and attributes an export (or a search) returns.
//!
//! Candidate events come from the most selective index available (value, then
//! type, then tag, then timestamp); each candidate is then checked against every
//! filter, and attribute filters trim the event to the matching attributes.

use crate::model::{types::is_known_type, value, Attribute, Event};
use crate::store::{Store, StoreError, WildcardKind};
use std::collections::BTreeSet;
use uuid::Uuid;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Attribute types (any of).
    pub types: Vec<String>,
    /// Values, with MISP's `%` wildcards (any of).
    pub values: Vec<String>,
    /// Tags on the event or the attribute (any of), case-insensitive.
    pub tags: Vec<String>,
    /// Only events whose timestamp is at least this (epoch seconds).
    pub since: Option<u64>,
    /// Include soft-deleted attributes (MISP's `deleted: [0,1]`).
    pub include_deleted: bool,
    /// Include exercise events ([`crate::policy::is_exercise`]) in the
    /// indicator formats (csv, text); the misp format always carries them,
    /// labelled by their tag.
    pub include_exercise: bool,
    /// How CSV cells are written: MISP's way (the default), or safe to open in
    /// a spreadsheet (formula prefixes neutralised, see [`super::CsvStyle`]).
    pub csv_style: super::CsvStyle,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterError {
    #[error(
        "--since: \"{0}\" is not an epoch, a YYYY-MM-DD date or a relative time like 7d, 12h, 30m"
    )]
    Since(String),
    #[error("--type: unknown attribute type \"{0}\"")]
    Type(String),
    #[error("--value: empty pattern")]
    Value,
}

/// MISP's time filter forms: epoch seconds, `Nd`/`Nh`/`Nm`/`Ns` before now,
/// or a `YYYY-MM-DD` date (midnight UTC).
pub fn parse_since(s: &str, now: u64) -> Result<u64, FilterError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    let err = || FilterError::Since(s.to_owned());
    if let Some(unit) = t.chars().last().filter(|c| "dhms".contains(*c)) {
        let n: u64 = t[..t.len() - 1].parse().map_err(|_| err())?;
        let secs = match unit {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            _ => 1,
        };
        return Ok(now.saturating_sub(n.saturating_mul(secs)));
    }
    let d: jiff::civil::Date = t.parse().map_err(|_| err())?;
    let ts = d
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .map_err(|_| err())?
        .timestamp()
        .as_second();
    u64::try_from(ts).map_err(|_| err())
}

impl Filter {
    /// Checks the filter's own consistency (unknown types, empty patterns).
    pub fn check(&self) -> Result<(), FilterError> {
        if let Some(t) = self.types.iter().find(|t| !is_known_type(t)) {
            return Err(FilterError::Type(t.clone()));
        }
        for v in &self.values {
            WildcardKind::parse(v).map_err(|_| FilterError::Value)?;
        }
        Ok(())
    }

    fn has_attribute_filters(&self) -> bool {
        !self.types.is_empty() || !self.values.is_empty()
    }

    fn value_matches(&self, a: &Attribute) -> bool {
        if self.values.is_empty() {
            return true;
        }
        let (v1, v2) = value::split(&a.attr_type, &a.value);
        let halves: Vec<String> = std::iter::once(v1)
            .chain(v2)
            .map(|h| h.trim().to_lowercase())
            .collect();
        self.values.iter().any(|p| match WildcardKind::parse(p) {
            Ok(WildcardKind::Exact(x)) => halves
                .iter()
                .any(|h| *h == x || canonical_ip(&x) == Some(h.clone())),
            Ok(WildcardKind::Prefix(x)) => halves.iter().any(|h| h.starts_with(&x)),
            Ok(WildcardKind::Suffix(x)) => halves.iter().any(|h| h.ends_with(&x)),
            Ok(WildcardKind::Contains(x)) => halves.iter().any(|h| h.contains(&x)),
            Err(_) => false,
        })
    }

    fn attribute_matches(&self, event_tagged: bool, a: &Attribute) -> bool {
        (self.include_deleted || !a.deleted)
            && (self.types.is_empty() || self.types.contains(&a.attr_type))
            && self.value_matches(a)
            && (self.tags.is_empty() || event_tagged || self.tagged(&a.tags))
    }

    fn tagged(&self, tags: &[crate::model::Tag]) -> bool {
        tags.iter().any(|t| {
            self.tags
                .iter()
                .any(|f| f.trim().eq_ignore_ascii_case(t.name.trim()))
        })
    }

    /// Trims `event` to what the filter selects; `None` if nothing is left.
    pub fn apply(&self, mut event: Event) -> Option<Event> {
        if self.since.is_some_and(|s| event.timestamp < s) {
            return None;
        }
        let event_tagged = !self.tags.is_empty() && self.tagged(&event.tags);
        event
            .attributes
            .retain(|a| self.attribute_matches(event_tagged, a));
        for o in &mut event.objects {
            o.attributes
                .retain(|a| self.attribute_matches(event_tagged, a));
        }
        if self.has_attribute_filters() || (!self.tags.is_empty() && !event_tagged) {
            event.objects.retain(|o| !o.attributes.is_empty());
            if event.count_attributes() == 0 {
                return None;
            }
        } else if !self.include_deleted {
            event.objects.retain(|o| !o.deleted);
        }
        Some(event)
    }
}

fn canonical_ip(s: &str) -> Option<String> {
    s.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

/// Candidate events for `filter`, from the most selective index.
fn candidates(store: &Store, f: &Filter) -> Result<Vec<Uuid>, StoreError> {
    let all = usize::MAX;
    let mut set = BTreeSet::new();
    if !f.values.is_empty() {
        for v in &f.values {
            for h in store.lookup_wildcard(v, f.include_deleted, all)? {
                set.insert(h.event);
            }
        }
    } else if !f.types.is_empty() {
        for t in &f.types {
            set.extend(store.events_with_type(t)?);
        }
    } else if !f.tags.is_empty() {
        for t in &f.tags {
            for h in store.lookup_tag(t, all)? {
                set.insert(h.event);
            }
        }
    } else {
        let since = f.since.unwrap_or(0);
        let mut out = Vec::new();
        for u in store.event_uuids_since(since) {
            out.push(u?);
        }
        return Ok(out);
    }
    Ok(set.into_iter().collect())
}

/// The selected events, loaded one at a time.
pub fn events<'a>(
    store: &'a Store,
    filter: &'a Filter,
) -> Result<impl Iterator<Item = Result<Event, StoreError>> + 'a, StoreError> {
    let uuids = candidates(store, filter)?;
    Ok(uuids
        .into_iter()
        .filter_map(move |u| match store.get_event(&u) {
            Err(e) => Some(Err(e)),
            Ok(None) => None,
            Ok(Some(ev)) => filter.apply(ev).map(Ok),
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        let now = 1_700_000_000;
        assert_eq!(parse_since("1600000000", now).unwrap(), 1_600_000_000);
        assert_eq!(parse_since("7d", now).unwrap(), now - 7 * 86_400);
        assert_eq!(parse_since("2h", now).unwrap(), now - 7_200);
        assert_eq!(parse_since("1970-01-02", now).unwrap(), 86_400);
        assert!(parse_since("last tuesday", now).is_err());
    }
}
