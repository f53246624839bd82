//! `X-Forwarded-For` parsing: which client a request comes from when it
//! arrives through the configured reverse proxies (the per-address limit and
//! the audit log count against the answer).
//!
//! Input: header values separated by `\n`. Beyond "no panic": the answer is
//! the TCP peer unless that peer is a trusted proxy, and a forwarded address
//! is only ever one that appears in the headers (compared as addresses, not
//! text: IPv6 has many spellings, and an IPv4-mapped one is the IPv4 address).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluis::config::TrustedProxies;
use sluis::http::forwarded::client;
use std::net::{IpAddr, SocketAddr};

fuzz_target!(|data: &[u8]| {
    let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "2001:db8::/32".into()])
        .expect("valid proxy list");
    let mut headers = axum::http::HeaderMap::new();
    for part in data.split(|b| *b == b'\n') {
        if let Ok(v) = axum::http::HeaderValue::from_bytes(part) {
            headers.append("x-forwarded-for", v);
        }
    }
    let text = String::from_utf8_lossy(data);
    for tcp in ["10.1.2.3:4000", "192.0.2.7:5000"] {
        let tcp: SocketAddr = tcp.parse().expect("address");
        let c = client(&proxies, tcp, &headers);
        assert_eq!(c.tcp, tcp);
        if !proxies.is_trusted(tcp.ip()) {
            assert!(
                c.forwarded.is_none(),
                "believed a header from an untrusted peer"
            );
        }
        if let Some(ip) = c.forwarded {
            // IPv6 text has many spellings (`::ffff:f:101`, `::0:ffff:f:101`
            // and `0.15.1.1` are one address), so the answer is compared with
            // every hop read independently here, not as text.
            assert!(hops(&text).any(|h| h == ip), "{ip} is not in the headers");
        }
    }
});

/// Every address the headers spell, each in its canonical form (an
/// IPv4-mapped IPv6 address as the IPv4 address it maps), with or without a
/// port, bracketed or not.
fn hops(text: &str) -> impl Iterator<Item = IpAddr> + '_ {
    text.split([',', '\n']).filter_map(|hop| {
        let hop = hop.trim();
        let bare = hop
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(hop);
        bare.parse::<IpAddr>()
            .ok()
            .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
            .map(|ip| ip.to_canonical())
    })
}
