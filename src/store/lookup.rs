//! Indicator lookups: exact value, `%` wildcards, IP-in-CIDR both ways, and
//! correlation ("where else have we seen this value"), all from the indexes.
//!
//! Correlation is computed at query time from the value index, never stored as a
//! pair table: MISP's pair table grows with the square of a popular value's
//! frequency, which is why MISP needs an over-correlation guard at all.

use super::keys::{self, flag};
use super::write::correlating_type;
use super::{Store, StoreError};
use crate::model::{value, Attribute};
use std::net::IpAddr;
use uuid::Uuid;

/// One matching attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hit {
    pub event: Uuid,
    pub attribute: Uuid,
    pub flags: u8,
}

impl Hit {
    pub fn deleted(&self) -> bool {
        self.flags & flag::DELETED != 0
    }
    pub fn to_ids(&self) -> bool {
        self.flags & flag::TO_IDS != 0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupError {
    #[error("\"{0}\" is not an IP address or CIDR network")]
    NotAnIp(String),
    #[error("empty search value")]
    Empty,
}

/// How a `%` pattern is evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WildcardKind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
}

impl WildcardKind {
    /// MISP's `%` wildcard, at the start and/or end (SQL LIKE without `_`).
    pub fn parse(pattern: &str) -> Result<Self, LookupError> {
        let folded = keys::fold(pattern);
        let starts = folded.starts_with('%');
        let ends = folded.ends_with('%') && folded.len() > 1;
        let core = folded.trim_matches('%').to_owned();
        if core.is_empty() {
            return Err(LookupError::Empty);
        }
        Ok(match (starts, ends) {
            (false, false) => WildcardKind::Exact(core),
            (false, true) => WildcardKind::Prefix(core),
            (true, false) => WildcardKind::Suffix(core),
            (true, true) => WildcardKind::Contains(core),
        })
    }
}

/// Result of a correlation query for one attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Correlation {
    /// Attributes in other events sharing a value with the attribute.
    pub hits: Vec<Hit>,
    /// Values skipped because they occur on more attributes than the limit.
    pub over_correlating: Vec<String>,
}

fn hit_of(key: &[u8], val: &[u8]) -> Option<Hit> {
    let (event, attribute) = keys::tail_pair(key)?;
    Some(Hit {
        event,
        attribute,
        flags: val.first().copied().unwrap_or(0),
    })
}

/// The forms an exact search for `q` must match: the folded text, and for IP
/// addresses the canonical text (a compressed IPv6 address).
fn exact_forms(q: &str) -> Vec<String> {
    let folded = keys::fold(q);
    let mut out = vec![folded.clone()];
    if let Ok(ip) = folded.parse::<IpAddr>() {
        let c = ip.to_string();
        if c != folded {
            out.push(c);
        }
    }
    out
}

impl Store {
    fn scan(
        &self,
        tree: &super::Ks,
        prefix: &[u8],
        deleted: bool,
        limit: usize,
        out: &mut Vec<Hit>,
    ) -> Result<(), StoreError> {
        for item in tree.scan_prefix(prefix) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if let Some(h) = hit_of(&k, &v) {
                if deleted || !h.deleted() {
                    out.push(h);
                }
            }
        }
        Ok(())
    }

    /// Attributes whose value (either half of a composite) equals `q`,
    /// case-insensitively, as MISP's value search. At most `limit` hits.
    pub fn lookup_value(
        &self,
        q: &str,
        include_deleted: bool,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let mut out = Vec::new();
        for form in exact_forms(q) {
            self.scan(
                &self.t.idx_value,
                &keys::value_prefix(&form),
                include_deleted,
                limit,
                &mut out,
            )?;
        }
        out.sort_unstable_by_key(|h| (h.event, h.attribute));
        out.dedup();
        Ok(out)
    }

    /// MISP `%` wildcard search. Prefix and suffix patterns are index range scans
    /// (the suffix one on the reversed-value index); `%x%` must scan every value.
    pub fn lookup_wildcard(
        &self,
        pattern: &str,
        include_deleted: bool,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let kind = WildcardKind::parse(pattern).map_err(|e| StoreError::Refused {
            field: "query",
            reason: e.to_string(),
        })?;
        let mut out = Vec::new();
        match kind {
            WildcardKind::Exact(v) => return self.lookup_value(&v, include_deleted, limit),
            WildcardKind::Prefix(p) => self.scan(
                &self.t.idx_value,
                p.as_bytes(),
                include_deleted,
                limit,
                &mut out,
            )?,
            WildcardKind::Suffix(s) => {
                let r = keys::reversed(&s);
                self.scan(
                    &self.t.idx_rvalue,
                    r.as_bytes(),
                    include_deleted,
                    limit,
                    &mut out,
                )?
            }
            WildcardKind::Contains(c) => {
                for item in self.t.idx_value.iter() {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, v) = item?;
                    let text = &k[..k.len().saturating_sub(33)];
                    if memfind(text, c.as_bytes()) {
                        if let Some(h) = hit_of(&k, &v) {
                            if include_deleted || !h.deleted() {
                                out.push(h);
                            }
                        }
                    }
                }
            }
        }
        out.sort_unstable_by_key(|h| (h.event, h.attribute));
        out.dedup();
        Ok(out)
    }

    /// IP-bearing attributes (addresses or CIDR networks) that contain `ip`: one
    /// point lookup per prefix length (33 for IPv4, 129 for IPv6).
    pub fn lookup_ip(
        &self,
        ip: IpAddr,
        include_deleted: bool,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let mut out = Vec::new();
        for len in 0..=max {
            let Ok(net) = ipnet::IpNet::new(ip, len) else {
                continue;
            };
            self.scan(
                &self.t.idx_ip,
                &keys::ip_net_prefix(&net.trunc()),
                include_deleted,
                limit,
                &mut out,
            )?;
        }
        Ok(out)
    }

    /// IP-bearing attributes inside the network `net` (addresses, or networks no
    /// wider than it): one range scan.
    pub fn lookup_cidr(
        &self,
        net: ipnet::IpNet,
        include_deleted: bool,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let net = net.trunc();
        let lo = keys::ip_addr_bytes(&net.network());
        let mut hi = keys::ip_addr_bytes(&net.broadcast());
        hi.push(0xff);
        let mut out = Vec::new();
        for item in self.t.idx_ip.range_incl(lo, hi) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let Some(stored) = keys::ip_from_key(&k) else {
                continue;
            };
            if stored.prefix_len() >= net.prefix_len() && net.contains(&stored) {
                if let Some(h) = hit_of(&k, &v) {
                    if include_deleted || !h.deleted() {
                        out.push(h);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Either lookup, depending on what `q` is: an address finds the networks that
    /// contain it (and itself); a network finds what lies inside it.
    pub fn lookup_ip_or_cidr(
        &self,
        q: &str,
        include_deleted: bool,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let q = q.trim();
        if let Ok(ip) = q.parse::<IpAddr>() {
            return self.lookup_ip(ip, include_deleted, limit);
        }
        match q.parse::<ipnet::IpNet>() {
            Ok(net) => self.lookup_cidr(net, include_deleted, limit),
            Err(_) => Err(StoreError::Refused {
                field: "query",
                reason: LookupError::NotAnIp(q.to_owned()).to_string(),
            }),
        }
    }

    /// Events holding at least one attribute of `attr_type`.
    pub fn events_with_type(&self, attr_type: &str) -> Result<Vec<Uuid>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.idx_type.scan_prefix(keys::value_prefix(attr_type)) {
            let (k, _) = item?;
            if let Some((e, _)) = keys::tail_pair(&k) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Events carrying `tag` on the event itself, or on any attribute (then the hit's
    /// attribute is that attribute; for event tags it is the nil uuid).
    pub fn lookup_tag(&self, tag: &str, limit: usize) -> Result<Vec<Hit>, StoreError> {
        let mut out = Vec::new();
        self.scan(
            &self.t.idx_tag,
            &keys::value_prefix(&keys::fold(tag)),
            true,
            limit,
            &mut out,
        )?;
        Ok(out)
    }

    /// Where else this attribute's value was seen: live, correlating attributes of
    /// *other* events that share either half of its value (only the first half for
    /// `*|port` types). A value found on more than the configured limit of
    /// attributes is reported as over-correlating and not listed, as MISP does.
    pub fn correlate(&self, event: &Uuid, a: &Attribute) -> Result<Correlation, StoreError> {
        let mut c = Correlation::default();
        if a.deleted || a.disable_correlation || !correlating_type(&a.attr_type) {
            return Ok(c);
        }
        let limit = self.options().correlation_limit;
        let (v1, v2) = value::split(&a.attr_type, &a.value);
        let v2 = v2.filter(|_| crate::model::types::correlates_second_half(&a.attr_type));
        for half in std::iter::once(v1).chain(v2) {
            let folded = keys::fold(half);
            if folded.is_empty() {
                continue;
            }
            let mut hits = Vec::new();
            // One more than the limit tells "over" from "exactly at".
            self.scan(
                &self.t.idx_value,
                &keys::value_prefix(&folded),
                false,
                limit + 2,
                &mut hits,
            )?;
            hits.retain(|h| h.flags & flag::NO_CORRELATION == 0);
            // The attribute itself is in the index too.
            if hits.len() > limit + 1 {
                c.over_correlating.push(folded);
                continue;
            }
            c.hits
                .extend(hits.into_iter().filter(|h| h.event != *event));
        }
        c.hits.sort_unstable_by_key(|h| (h.event, h.attribute));
        c.hits.dedup();
        Ok(c)
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_kinds() {
        assert_eq!(
            WildcardKind::parse("%.Example.com").unwrap(),
            WildcardKind::Suffix(".example.com".into())
        );
        assert_eq!(
            WildcardKind::parse("10.0.%").unwrap(),
            WildcardKind::Prefix("10.0.".into())
        );
        assert_eq!(
            WildcardKind::parse("%evil%").unwrap(),
            WildcardKind::Contains("evil".into())
        );
        assert_eq!(
            WildcardKind::parse("x").unwrap(),
            WildcardKind::Exact("x".into())
        );
        assert_eq!(WildcardKind::parse("%"), Err(LookupError::Empty));
    }
}
