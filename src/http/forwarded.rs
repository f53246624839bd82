//! Which client a request comes from: the TCP peer, unless that peer is one of
//! the reverse proxies listed in `[limits] trusted_proxies`, in which case the
//! address that proxy reports in `X-Forwarded-For`.
//!
//! Anyone can write `X-Forwarded-For`, so it is believed only from a configured
//! proxy, and only as far as the chain of configured proxies goes: walking the
//! header from the right (the hop nearest to us), trusted proxies are skipped and
//! the first address that is not one is the client. A hop that is not an
//! address stops the walk at the last trusted one, so garbage cannot pick the
//! client's address either. `Forwarded` (RFC 7239) and `X-Real-IP` are never read:
//! one header, set by every common proxy, is one less to get wrong.
//!
//! The answer, a [`ClientAddr`], is what the per-address limit counts against,
//! and what the audit log and the logs show.

use crate::config::TrustedProxies;
use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// Most `X-Forwarded-For` hops walked; no honest chain of proxies is longer.
const MAX_HOPS: usize = 32;

/// Where a request came from, as far as the node can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The TCP peer.
    pub tcp: SocketAddr,
    /// The client a trusted proxy reported, when the TCP peer is one.
    pub forwarded: Option<IpAddr>,
}

impl ClientAddr {
    /// The client's address: the forwarded one if believed, else the TCP peer's.
    pub fn ip(&self) -> IpAddr {
        self.forwarded.unwrap_or_else(|| self.tcp.ip())
    }
}

/// `192.0.2.1:50123`, or `203.0.113.9 via 10.0.0.1:50123` when forwarded by a
/// trusted proxy (the audit log keeps both: the proxy is what was seen).
impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.forwarded {
            Some(ip) => write!(f, "{ip} via {}", self.tcp),
            None => write!(f, "{}", self.tcp),
        }
    }
}

/// The client of a request that arrived from `tcp` with `headers` (see the
/// module documentation).
pub fn client(proxies: &TrustedProxies, tcp: SocketAddr, headers: &HeaderMap) -> ClientAddr {
    let mut client = ClientAddr {
        tcp,
        forwarded: None,
    };
    if !proxies.is_trusted(tcp.ip()) {
        return client;
    }
    // All the header's values in order, split into hops; a value that is not
    // text is one unreadable hop.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .collect();
    for hop in hops.iter().rev().take(MAX_HOPS) {
        let Some(ip) = parse_hop(hop) else { break };
        client.forwarded = Some(ip);
        if !proxies.is_trusted(ip) {
            break;
        }
    }
    client
}

/// A hop: an address, optionally with a port (`192.0.2.1:443`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .or_else(|_| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or("")
                .parse::<IpAddr>()
        })
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn from(p: &TrustedProxies, tcp: &str, xff: &[&str]) -> String {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        client(p, tcp.parse().unwrap(), &h).ip().to_string()
    }

    #[test]
    fn entries_and_blocks() {
        let p = proxies(&[
            "10.0.0.1",
            "192.168.0.0/16",
            "2001:db8::/32",
            " 172.16.0.0/12 ",
        ]);
        for yes in [
            "10.0.0.1",
            "192.168.4.5",
            "::ffff:192.168.0.1",
            "2001:db8:ff::1",
            "172.31.9.9",
        ] {
            assert!(p.is_trusted(yes.parse().unwrap()), "{yes}");
        }
        for no in ["10.0.0.2", "192.169.0.1", "2001:db9::1", "172.32.0.1"] {
            assert!(!p.is_trusted(no.parse().unwrap()), "{no}");
        }
        assert!(proxies(&["0.0.0.0/0"]).is_trusted("203.0.113.1".parse().unwrap()));
        assert!(!proxies(&[]).is_trusted("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_entries_are_named() {
        let bad = |s: &str| TrustedProxies::parse(&["10.0.0.1".into(), s.into()]).unwrap_err();
        assert_eq!(bad("10.0.0.0/33").0, 1);
        assert!(bad("10.0.0.0/33").1.contains("0 to 32"));
        assert!(bad("proxy.example").1.contains("not an IP address"));
        assert!(bad("10.0.0.0/x").1.contains("prefix"));
        assert!(bad("::1/129").1.contains("0 to 128"));
    }

    #[test]
    fn untrusted_peers_are_not_believed() {
        let p = proxies(&["10.0.0.1"]);
        assert_eq!(from(&p, "192.0.2.9:5000", &["203.0.113.7"]), "192.0.2.9");
        let none = proxies(&[]);
        assert_eq!(from(&none, "10.0.0.1:5000", &["203.0.113.7"]), "10.0.0.1");
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(from(&p, "10.0.0.1:1", &["203.0.113.7"]), "203.0.113.7");
        // A client-supplied (spoofed) left part is not believed: the hop our proxy
        // saw is the right-most untrusted one.
        assert_eq!(
            from(&p, "10.0.0.1:1", &["198.51.100.1, 203.0.113.7, 10.0.0.2"]),
            "203.0.113.7"
        );
        // Several header lines are one list, in order.
        assert_eq!(
            from(
                &p,
                "10.0.0.1:1",
                &["198.51.100.1", "203.0.113.7", "10.0.0.2"]
            ),
            "203.0.113.7"
        );
        // Every hop a proxy: the left-most.
        assert_eq!(from(&p, "10.0.0.1:1", &["10.1.1.1, 10.0.0.2"]), "10.1.1.1");
        // Ports and brackets.
        assert_eq!(from(&p, "10.0.0.1:1", &["203.0.113.7:4711"]), "203.0.113.7");
        assert_eq!(
            from(&p, "10.0.0.1:1", &["[2001:db8::7]:4711"]),
            "2001:db8::7"
        );
        assert_eq!(from(&p, "10.0.0.1:1", &["[2001:db8::7]"]), "2001:db8::7");
        // An IPv4-mapped IPv6 address, however spelt, is the IPv4 address it
        // maps (the input the forwarded_for fuzz target found).
        assert_eq!(from(&p, "10.0.0.1:1", &["::0:ffff:f:101"]), "0.15.1.1");
        assert_eq!(
            from(&p, "10.0.0.1:1", &["::ffff:203.0.113.7"]),
            "203.0.113.7"
        );
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(from(&p, "10.0.0.1:1", &["unknown"]), "10.0.0.1");
        assert_eq!(
            from(&p, "10.0.0.1:1", &["203.0.113.7, nonsense"]),
            "10.0.0.1"
        );
        assert_eq!(
            from(&p, "10.0.0.1:1", &["203.0.113.7, junk, 10.0.0.9"]),
            "10.0.0.9"
        );
        assert_eq!(from(&p, "10.0.0.1:1", &["203.0.113.7,,"]), "10.0.0.1");
        assert_eq!(from(&p, "10.0.0.1:1", &[]), "10.0.0.1");
    }

    #[test]
    fn shown_with_the_proxy() {
        let p = proxies(&["10.0.0.1"]);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
        let c = client(&p, "10.0.0.1:5000".parse().unwrap(), &h);
        assert_eq!(c.to_string(), "203.0.113.7 via 10.0.0.1:5000");
        let c = client(&p, "192.0.2.1:5000".parse().unwrap(), &h);
        assert_eq!(c.to_string(), "192.0.2.1:5000");
    }
}
