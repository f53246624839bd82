//! Key layouts of the sled trees.
//!
//! Children are keyed `event uuid ‖ child uuid` so an event is one contiguous prefix
//! scan; index keys end in `event ‖ attribute` so a hit leads straight to the record.
//! Values are separated from the uuids by a 0x00 byte, which validation keeps out of
//! values, so `prefix ‖ 0x00` scans exactly one value.

use std::net::IpAddr;
use uuid::Uuid;

pub const SEP: u8 = 0;

/// Flags stored as the value of index entries, so lookups can filter without
/// loading the attribute.
pub mod flag {
    pub const DELETED: u8 = 1;
    pub const NO_CORRELATION: u8 = 2;
    pub const TO_IDS: u8 = 4;
    pub const IN_OBJECT: u8 = 8;
}

pub fn pair(a: &Uuid, b: &Uuid) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(a.as_bytes());
    k[16..].copy_from_slice(b.as_bytes());
    k
}

/// Splits the trailing `event ‖ element` uuids off an index key.
pub fn tail_pair(key: &[u8]) -> Option<(Uuid, Uuid)> {
    let n = key.len();
    if n < 32 {
        return None;
    }
    let e = Uuid::from_slice(&key[n - 32..n - 16]).ok()?;
    let a = Uuid::from_slice(&key[n - 16..]).ok()?;
    Some((e, a))
}

pub fn uuid_at(key: &[u8], at: usize) -> Option<Uuid> {
    Uuid::from_slice(key.get(at..at + 16)?).ok()
}

/// The text an indexed value is matched on: MISP's value search is case-insensitive
/// (its MySQL collation is), so the index holds the lower-cased value.
pub fn fold(v: &str) -> String {
    v.trim().to_lowercase()
}

pub fn value_key(folded: &str, event: &Uuid, attr: &Uuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(folded.len() + 33);
    k.extend_from_slice(folded.as_bytes());
    k.push(SEP);
    k.extend_from_slice(&pair(event, attr));
    k
}

pub fn value_prefix(folded: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(folded.len() + 1);
    k.extend_from_slice(folded.as_bytes());
    k.push(SEP);
    k
}

/// Reversed (by character) folded value, for `%suffix` searches.
pub fn reversed(folded: &str) -> String {
    folded.chars().rev().collect()
}

/// `family ‖ network address ‖ prefix length ‖ event ‖ attr`.
pub fn ip_key(net: &ipnet::IpNet, event: &Uuid, attr: &Uuid) -> Vec<u8> {
    let mut k = ip_net_prefix(net);
    k.extend_from_slice(&pair(event, attr));
    k
}

/// `family ‖ network address ‖ prefix length`: the scan prefix of one exact network.
pub fn ip_net_prefix(net: &ipnet::IpNet) -> Vec<u8> {
    let mut k = ip_addr_bytes(&net.network());
    k.push(net.prefix_len());
    k
}

pub fn ip_addr_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => {
            let mut k = vec![4u8];
            k.extend_from_slice(&a.octets());
            k
        }
        IpAddr::V6(a) => {
            let mut k = vec![6u8];
            k.extend_from_slice(&a.octets());
            k
        }
    }
}

/// Parses a key written by [`ip_key`] back into its network.
pub fn ip_from_key(key: &[u8]) -> Option<ipnet::IpNet> {
    match key.first()? {
        4 => {
            let o: [u8; 4] = key.get(1..5)?.try_into().ok()?;
            ipnet::IpNet::new(IpAddr::from(o), *key.get(5)?).ok()
        }
        6 => {
            let o: [u8; 16] = key.get(1..17)?.try_into().ok()?;
            ipnet::IpNet::new(IpAddr::from(o), *key.get(17)?).ok()
        }
        _ => None,
    }
}

pub fn ts_key(ts: u64, event: &Uuid) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&ts.to_be_bytes());
    k[8..].copy_from_slice(event.as_bytes());
    k
}

/// Kinds of element in the `loc` tree (uuid → kind ‖ event), which makes every uuid
/// unique across the whole store.
pub mod kind {
    pub const ATTRIBUTE: u8 = 1;
    pub const OBJECT: u8 = 2;
    pub const REFERENCE: u8 = 3;
    pub const REPORT: u8 = 4;
    pub const SIGHTING: u8 = 5;

    pub fn name(k: u8) -> &'static str {
        match k {
            ATTRIBUTE => "attribute",
            OBJECT => "object",
            REFERENCE => "object reference",
            REPORT => "event report",
            SIGHTING => "sighting",
            _ => "element",
        }
    }
}

pub fn loc_value(kind: u8, event: &Uuid) -> [u8; 17] {
    let mut v = [0u8; 17];
    v[0] = kind;
    v[1..].copy_from_slice(event.as_bytes());
    v
}

/// Local numeric ids: `ids` tree keys are `kind ‖ id (BE)`.
pub mod idkind {
    pub const EVENT: u8 = 1;
    pub const SHARING_GROUP: u8 = 3;
    /// → event uuid ‖ sighting uuid.
    pub const SIGHTING: u8 = 4;
    /// → folded tag name.
    pub const TAG: u8 = 5;
}

pub fn id_key(kind: u8, id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = kind;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

pub fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_keys_round_trip_and_order() {
        let e = Uuid::new_v4();
        let a = Uuid::new_v4();
        let net: ipnet::IpNet = "198.51.100.0/24".parse().unwrap();
        let k = ip_key(&net, &e, &a);
        assert_eq!(ip_from_key(&k), Some(net));
        assert_eq!(tail_pair(&k), Some((e, a)));
        let lo = ip_addr_bytes(&"198.51.100.0".parse().unwrap());
        let hi = ip_addr_bytes(&"198.51.100.255".parse().unwrap());
        assert!(lo.as_slice() <= k.as_slice() && k[..5].to_vec() <= hi);
        let v6: ipnet::IpNet = "2001:db8::/32".parse().unwrap();
        assert_eq!(ip_from_key(&ip_key(&v6, &e, &a)), Some(v6));
    }

    #[test]
    fn reversed_is_by_char() {
        assert_eq!(reversed("ab.é"), "é.ba");
    }
}
