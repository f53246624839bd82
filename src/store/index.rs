//! Every index the store keeps, built and decoded here only: which entries an
//! attribute and an event header make (so a hard delete removes exactly what
//! the writer indexed), which values are IP-bearing and how they parse, and how
//! the tag index is read back. Key layouts are in [`super::keys`].
//!
//! | keyspace | entries per | key |
//! |---|---|---|
//! | `idx_value` | attribute value half | folded value ‖ 0 ‖ event ‖ attribute |
//! | `idx_rvalue` | name-like value half | reversed folded value ‖ 0 ‖ event ‖ attribute |
//! | `idx_ip` | IP-bearing value half | family ‖ network ‖ prefix ‖ event ‖ attribute |
//! | `idx_tag` | attribute or event tag | folded tag ‖ 0 ‖ event ‖ attribute (nil for the event) |
//! | `idx_ts`, `idx_pts` | event | timestamp ‖ event |

use super::keys;
use super::record::StoredAttr;
use super::{Store, StoreError, T};
use crate::model::{value, Event};
use uuid::Uuid;

/// Types whose halves may hold an IP address or network, indexed for CIDR lookups.
pub fn ip_bearing(attr_type: &str) -> bool {
    matches!(
        attr_type,
        "ip-src" | "ip-dst" | "ip-src|port" | "ip-dst|port" | "domain|ip"
    )
}

/// An IP-bearing value half as a network: a CIDR block (truncated to its
/// network) or a single address; the same parse for indexing, removing and
/// searching.
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    if let Ok(n) = s.parse::<ipnet::IpNet>() {
        return Some(n.trunc());
    }
    s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from)
}

/// Types whose values are names read right to left (`%.example.com`), the only
/// ones worth a reversed-value index for suffix searches.
fn suffix_searchable(attr_type: &str) -> bool {
    matches!(
        attr_type,
        "domain"
            | "hostname"
            | "domain|ip"
            | "hostname|port"
            | "url"
            | "uri"
            | "link"
            | "email"
            | "email-src"
            | "email-dst"
            | "target-email"
            | "whois-registrant-email"
            | "filename"
            | "email-attachment"
            | "onion-address"
    ) || attr_type.starts_with("filename|")
}

/// Index entries of one attribute: (tree, key, value).
pub(crate) fn attr_index_entries(
    event: &Uuid,
    attr: &Uuid,
    a: &StoredAttr,
    event_no_correlation: bool,
) -> Vec<(T, Vec<u8>, Vec<u8>)> {
    let flags = vec![a.index_flags(event_no_correlation)];
    let mut out = Vec::with_capacity(6);
    let (v1, v2) = value::split(&a.attr_type, &a.value);
    for half in std::iter::once(v1).chain(v2) {
        let folded = keys::fold(half);
        if folded.is_empty() {
            continue;
        }
        out.push((
            T::IdxValue,
            keys::value_key(&folded, event, attr),
            flags.clone(),
        ));
        if suffix_searchable(&a.attr_type) {
            out.push((
                T::IdxRvalue,
                keys::value_key(&keys::reversed(&folded), event, attr),
                flags.clone(),
            ));
        }
        if ip_bearing(&a.attr_type) {
            if let Some(net) = parse_net(half) {
                out.push((T::IdxIp, keys::ip_key(&net, event, attr), flags.clone()));
            }
        }
    }
    for tag in &a.tags {
        out.push((
            T::IdxTag,
            keys::value_key(&keys::fold(&tag.name), event, attr),
            Vec::new(),
        ));
    }
    out
}

/// Index entries of an event header (tree, key): its timestamps and its tags.
pub(crate) fn event_entries(event: &Event) -> Vec<(T, Vec<u8>)> {
    let mut out = Vec::with_capacity(2 + event.tags.len());
    out.push((
        T::IdxTs,
        keys::ts_key(event.timestamp, &event.uuid).to_vec(),
    ));
    if event.published {
        out.push((
            T::IdxPts,
            keys::ts_key(event.publish_timestamp, &event.uuid).to_vec(),
        ));
    }
    for t in &event.tags {
        out.push((
            T::IdxTag,
            keys::value_key(&keys::fold(&t.name), &event.uuid, &Uuid::nil()),
        ));
    }
    if let Ok(extended) = event.extends_uuid.trim().parse::<Uuid>() {
        out.push((T::IdxExtends, keys::pair(&extended, &event.uuid).to_vec()));
    }
    out
}

impl Store {
    /// The live events whose `extends_uuid` names `event` (MISP's extension
    /// events), from the index: a prefix scan, not a walk of every event.
    pub fn extensions_of(&self, event: &Uuid) -> Result<Vec<Uuid>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.idx_extends.scan_prefix(event.as_bytes()) {
            let (k, _) = item?;
            if let Some(u) = keys::uuid_at(&k, 16) {
                out.push(u);
            }
        }
        Ok(out)
    }
}

/// One entry of the tag index: a folded tag name on an event (`attribute` is
/// nil) or on one of its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEntry {
    pub name: String,
    pub event: Uuid,
    pub attribute: Uuid,
}

/// `folded tag ‖ 0 ‖ event ‖ attribute` back into its parts.
fn decode_tag_key(k: &[u8]) -> Option<TagEntry> {
    let n = k.len();
    if n < 33 {
        return None;
    }
    let name = std::str::from_utf8(&k[..n - 33]).ok()?.to_owned();
    let (event, attribute) = keys::tail_pair(k)?;
    Some(TagEntry {
        name,
        event,
        attribute,
    })
}

impl Store {
    /// Every tag-index entry whose folded name starts with `prefix` (already
    /// folded), in key order: what `%` tag patterns are matched against.
    pub fn tag_entries(&self, prefix: &str) -> Result<Vec<TagEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.idx_tag.scan_prefix(prefix.as_bytes()) {
            let (k, _) = item?;
            if let Some(e) = decode_tag_key(&k) {
                out.push(e);
            }
        }
        Ok(out)
    }
}
