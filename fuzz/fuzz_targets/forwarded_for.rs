//! `X-Forwarded-For` parsing: which client a request comes from when it
//! arrives through the configured reverse proxies (the per-address limit and
//! the audit log count against the answer).
//!
//! Input: header values separated by `\n`. Beyond "no panic": the answer is
//! the TCP peer unless that peer is a trusted proxy, and a forwarded address
//! is only ever one that appears in the headers (IPv4 addresses given as such
//! verbatim; IPv6 and IPv4-mapped forms are not compared as text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluis::config::TrustedProxies;
use sluis::http::forwarded::client;
use std::net::SocketAddr;

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
            assert!(c.forwarded.is_none(), "believed a header from an untrusted peer");
        }
        if let Some(ip) = c.forwarded {
            // IPv6 text has many spellings, and an IPv4-mapped IPv6 address
            // (`::ffff:1fff:1`) counts as the IPv4 address it maps: only a
            // dotted IPv4 address given as such must appear verbatim.
            let shown = ip.to_string();
            let mapped = text.to_ascii_lowercase().contains("::ffff:");
            assert!(
                ip.is_ipv6() || mapped || text.contains(&shown),
                "{shown} is not in the headers"
            );
        }
    }
});
