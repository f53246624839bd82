//! Abuse limits on a real node over real TLS (issue 6, item 3): slow and
//! never-finishing clients, the connection cap, per-key, per-peer and
//! per-address rate limits, and which client address the node believes.
//!
//! Covered elsewhere, not repeated here: an oversized body (413, nothing
//! stored) and JSON nested 100 000 deep (400, no crash) in
//! `tests/api.rs::bad_input_gets_misp_errors_and_changes_nothing`; a client that
//! sends nothing at all after connecting in `tests/api.rs::stalled_tls_handshake_is_dropped`;
//! an idle keep-alive connection in `tests/api.rs::expired_key_and_expired_connection`.
//!
//! Timing: deadlines here are 1 s and every bound checked is several times
//! that, so a slow or loaded machine does not fail them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Held by the 2 000-connection flood and by the tests whose deadlines a
/// loaded machine could miss: on two cores the flood's accept-and-close storm
/// would otherwise starve them (the feed test's long-polls, say).
static HEAVY: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// For the flood: no timing-sensitive test runs beside it.
fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    HEAVY.write().unwrap_or_else(|p| p.into_inner())
}

/// For a timing-sensitive test: it may run beside others, not the flood.
fn quiet() -> std::sync::RwLockReadGuard<'static, ()> {
    HEAVY.read().unwrap_or_else(|p| p.into_inner())
}

/// A node whose handshake, header and idle deadlines are one second.
fn impatient(extra: &str) -> RunningNode {
    let extra = extra.to_owned();
    RunningNode::start_with("localhost", "CERT-A", move |t| {
        t.push_str("\n[limits]\nheader_timeout_secs = 1\n");
        t.push_str(&extra);
    })
}

fn addr(node: &RunningNode) -> String {
    node.url.trim_start_matches("https://").to_owned()
}

/// A TLS client config trusting the node's CA, offering `alpn`.
fn tls_config(node: &RunningNode, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let d = node.dir.path();
    let base =
        sluis::tls::client_config(&d.join("node.crt"), &d.join("node.key"), &d.join("ca.crt"))
            .unwrap();
    let mut c = (*base).clone();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A completed TLS connection to the node (blocking), reads timing out after 10 s.
fn connect(node: &RunningNode, alpn: &[&[u8]]) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr(node))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(tls_config(node, alpn), name)
        .map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Reads until the server closes the connection (EOF or reset), or the read
/// timeout; returns how long that took and whether the server closed it.
fn wait_for_close(s: &mut impl Read) -> (Duration, bool) {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (started.elapsed(), true),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (started.elapsed(), false)
            }
            Err(_) => return (started.elapsed(), true),
        }
    }
}

/// Sends `bytes` one at a time, `gap` apart, until they are all sent or the
/// server closes the connection; returns how many went out and when it stopped.
fn drip(s: &mut impl Write, bytes: &[u8], gap: Duration) -> (usize, Duration) {
    let started = Instant::now();
    for (i, b) in bytes.iter().enumerate() {
        if s.write_all(&[*b]).and_then(|()| s.flush()).is_err() {
            return (i, started.elapsed());
        }
        std::thread::sleep(gap);
    }
    (bytes.len(), started.elapsed())
}

fn healthy(node: &RunningNode) {
    let (s, _) = node.get(&node.admin_key, "/users/view/me");
    assert_eq!(s, 200, "the node stopped serving others");
}

#[test]
fn slow_headers_are_cut_off_and_others_still_served() {
    let _quiet = quiet();
    let node = impatient("");
    // HTTP/1.1 headers one byte every 200 ms: 5 bytes per deadline, and the
    // head below needs far more than the 1 s deadline allows.
    let head = format!(
        "GET /users/view/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nX-Padding: {}\r\n\r\n",
        node.admin_key,
        "p".repeat(64)
    );
    let mut s = connect(&node, &[b"http/1.1"]).unwrap();
    let handle = std::thread::spawn(move || {
        let (sent, took) = drip(&mut s, head.as_bytes(), Duration::from_millis(200));
        let closed = wait_for_close(&mut s).1;
        (sent, took, head.len(), closed)
    });
    // Meanwhile the node serves others.
    healthy(&node);
    let (sent, took, total, closed) = handle.join().unwrap();
    assert!(
        sent < total && closed,
        "a slow client kept its connection: {sent}/{total} bytes in {took:?}"
    );
    assert!(took < Duration::from_secs(6), "cut off only after {took:?}");
    healthy(&node);
}

#[test]
fn a_dripped_http2_preface_is_cut_off() {
    let _quiet = quiet();
    let node = impatient("");
    // The HTTP/2 preface one byte every 200 ms: the server cannot tell HTTP/1
    // from HTTP/2 until it has it all, and must not wait for ever meanwhile.
    let mut s = connect(&node, &[b"h2"]).unwrap();
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let (sent, took) = drip(&mut s, &preface[..20], Duration::from_millis(400));
    let (more, closed) = if sent < 20 {
        (Duration::ZERO, true)
    } else {
        wait_for_close(&mut s)
    };
    assert!(
        closed,
        "still open {:?} after a partial preface",
        took + more
    );
    assert!(
        took + more < Duration::from_secs(6),
        "cut off only after {:?}",
        took + more
    );
    healthy(&node);
}

#[test]
fn an_idle_http2_connection_is_closed() {
    let _quiet = quiet();
    let node = impatient("");
    // A client that negotiates HTTP/2, sends its preface and then nothing: it
    // holds a connection slot, so it is closed like an idle HTTP/1 one.
    let mut s = connect(&node, &[b"h2"]).unwrap();
    assert_eq!(s.conn.alpn_protocol(), Some(&b"h2"[..]));
    // The preface and an empty SETTINGS frame.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    s.flush().unwrap();
    let (took, closed) = wait_for_close(&mut s);
    assert!(closed, "an idle HTTP/2 connection stayed open {took:?}");
    assert!(took < Duration::from_secs(6), "closed only after {took:?}");
}

#[test]
fn a_dripped_tls_handshake_is_dropped() {
    let _quiet = quiet();
    let node = impatient("");
    // A ClientHello's record header, then its body one byte every 200 ms: the
    // handshake deadline is for the whole handshake, not per byte.
    let mut tcp = TcpStream::connect(addr(&node)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.extend(std::iter::repeat_n(0u8, 200));
    let (sent, took) = drip(&mut tcp, &hello, Duration::from_millis(200));
    let (more, closed) = if sent < hello.len() {
        (Duration::ZERO, true)
    } else {
        wait_for_close(&mut tcp)
    };
    assert!(
        closed && sent < hello.len(),
        "a dripped handshake kept its connection ({sent} bytes)"
    );
    assert!(
        took + more < Duration::from_secs(6),
        "dropped only after {:?}",
        took + more
    );
    healthy(&node);
}

// ---------------------------------------------------------------------------
// The connection cap.

/// Sends one request with `key` on an open connection and reads the answer's
/// status line (`Connection: close`, so the answer ends with the connection).
fn request_on(s: &mut Tls, key: &str) -> String {
    write!(
        s,
        "GET /users/view/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s.flush().unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn connections_over_the_cap_are_refused_and_existing_ones_still_work() {
    let _quiet = quiet();
    let node = RunningNode::start_with("localhost", "CERT-A", |t| {
        t.push_str("\n[limits]\nmax_connections = 2\nheader_timeout_secs = 30\n")
    });
    let mut first = connect(&node, &[b"http/1.1"]).unwrap();
    let mut second = connect(&node, &[b"http/1.1"]).unwrap();
    // A third is closed at accept: its handshake never completes.
    for _ in 0..3 {
        assert!(
            connect(&node, &[b"http/1.1"]).is_err(),
            "a connection over max_connections was served"
        );
    }
    // The two admitted ones are served.
    assert_eq!(request_on(&mut first, &node.admin_key), "HTTP/1.1 200 OK");
    assert_eq!(request_on(&mut second, &node.admin_key), "HTTP/1.1 200 OK");
    drop((first, second));
    // Their slots free up once the node sees them closed.
    assert!(
        eventually(Duration::from_secs(10), || connect(&node, &[b"http/1.1"])
            .is_ok()),
        "no slot came free after the connections closed"
    );
    healthy(&node);
}

// ---------------------------------------------------------------------------
// Rate limits.

/// The node's audit records, parsed.
fn audit_records(node: &RunningNode) -> Vec<serde_json::Value> {
    std::fs::read_to_string(node.state.audit.path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn denials<'a>(recs: &'a [serde_json::Value], reason: &str) -> Vec<&'a serde_json::Value> {
    recs.iter()
        .filter(|r| r["kind"] == "denied" && r["reason"] == reason)
        .collect()
}

/// The value of `name` (with labels) in the node's metrics.
fn metric(node: &RunningNode, name: &str) -> u64 {
    let text = node.state.metrics.render(&[]);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

/// GET `path` with `key` on `client`: (status, Retry-After, body).
fn get_with(
    client: &reqwest::blocking::Client,
    node: &RunningNode,
    key: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<u64>, serde_json::Value) {
    let mut req = client.get(format!("{}{path}", node.url));
    if !key.is_empty() {
        req = req.header("Authorization", key);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = serde_json::from_str(&r.text().unwrap()).unwrap_or(serde_json::Value::Null);
    (status, retry, body)
}

/// Sends `send()` until it answers 429 (at most `max` times); returns the
/// statuses seen before, and the 429's Retry-After and body.
fn until_limited(
    max: usize,
    mut send: impl FnMut() -> (u16, Option<u64>, serde_json::Value),
) -> (Vec<u16>, Option<u64>, serde_json::Value) {
    let mut before = Vec::new();
    for _ in 0..max {
        let (s, retry, body) = send();
        if s == 429 {
            return (before, retry, body);
        }
        before.push(s);
    }
    panic!("never limited in {max} requests: {before:?}");
}

#[test]
fn a_key_over_its_rate_gets_429_and_another_key_does_not() {
    let node = RunningNode::start_with("localhost", "CERT-A", |t| {
        t.push_str("\n[limits]\napi_rate_per_sec = 1\napi_rate_burst = 3\n")
    });
    let (_, other) = node.org_with_user("CERT-A", 3);
    let client = node.client();
    let admin = node.admin_key.clone();
    let (before, retry, body) = until_limited(50, || {
        get_with(&client, &node, &admin, "/users/view/me", &[])
    });
    assert!(
        before.len() >= 3 && before.iter().all(|s| *s == 200),
        "{before:?}"
    );
    let retry = retry.expect("a 429 without Retry-After");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert!(
        body["message"].as_str().unwrap().contains("Rate limit"),
        "{body}"
    );
    assert_eq!(body["url"], "/users/view/me");
    assert!(body["name"].is_string(), "{body}");
    // Another key is unaffected.
    let (s, _, _) = get_with(&client, &node, &other, "/users/view/me", &[]);
    assert_eq!(s, 200);
    // Hammering on: each refusal is counted, but the audit log records the
    // episode, not every refused request.
    let mut refused = 1;
    for _ in 0..20 {
        if get_with(&client, &node, &admin, "/users/view/me", &[]).0 == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 10, "{refused}");
    assert!(metric(&node, "sluis_rate_limited_total{limit=\"api_key\"}") >= refused);
    let recs = audit_records(&node);
    let denied = denials(&recs, "rate limit (api_key)");
    assert!(!denied.is_empty(), "no denial recorded");
    assert!(
        denied.len() * 3 < refused as usize,
        "{} records for {refused} refusals",
        denied.len()
    );
    let admin_email = node.state.store.users().unwrap()[0].email.clone();
    assert_eq!(denied[0]["actor"], admin_email.as_str());
    assert_eq!(denied[0]["request"], "GET /users/view/me");
    assert!(denied[0]["remote"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    // A refused write is that denial only, not also a refused change.
    let (written, _, _) = until_limited(50, || {
        let r = client
            .post(format!("{}/events/add", node.url))
            .header("Authorization", &admin)
            .json(&serde_json::json!({"info": "rate", "distribution": "0"}))
            .send()
            .unwrap();
        (r.status().as_u16(), None, serde_json::Value::Null)
    });
    let recs = audit_records(&node);
    let writes: Vec<_> = recs.iter().filter(|r| r["kind"] == "write").collect();
    assert_eq!(writes.len(), written.len(), "{writes:#?}");
    assert!(writes.iter().all(|w| w["outcome"] == "ok"), "{writes:#?}");
}

#[test]
fn failed_authentications_lock_the_address_out_until_the_allowance_refills() {
    // 60 a minute: one more try every second once the 60 are spent.
    let node = RunningNode::start_with("localhost", "CERT-A", |t| {
        t.push_str("\n[limits]\nauth_failures_per_min = 60\n")
    });
    let client = node.client();
    let (before, retry, body) = until_limited(400, || {
        get_with(&client, &node, "not-a-key", "/events/index", &[])
    });
    assert!(
        before.len() >= 60 && before.iter().all(|s| *s == 403),
        "{}",
        before.len()
    );
    assert_eq!(retry, Some(1));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("failed authentication"),
        "{body}"
    );
    // Locked: bad keys get 429, but the right key still works from the same
    // address (keys are 238-bit random secrets: nothing to guess, and an
    // attacker must not be able to lock out everyone behind a shared address).
    let (s, retry, _) = get_with(&client, &node, "still-not-a-key", "/events/index", &[]);
    assert_eq!((s, retry), (429, Some(1)));
    for _ in 0..3 {
        let (s, _, _) = get_with(&client, &node, &node.admin_key, "/users/view/me", &[]);
        assert_eq!(s, 200);
        let (s, _, _) = get_with(&client, &node, "still-not-a-key", "/events/index", &[]);
        assert_eq!(s, 429);
    }
    // Once the allowance refills, a bad key is refused as unauthenticated again.
    std::thread::sleep(Duration::from_millis(1500));
    let (s, _, _) = get_with(&client, &node, "not-a-key", "/events/index", &[]);
    assert_eq!(s, 403);
    // Each failure was recorded; the lockout once, not once per refused request.
    let recs = audit_records(&node);
    let failures = recs.iter().filter(|r| r["kind"] == "auth_failure").count();
    assert_eq!(failures, before.len() + 1);
    let locked = denials(&recs, "rate limit (auth_failures)");
    assert!(!locked.is_empty() && locked.len() <= 2, "{locked:#?}");
    assert_eq!(locked[0]["actor"], "unknown");
    assert_eq!(
        metric(&node, "sluis_auth_failures_total"),
        before.len() as u64 + 1
    );
    assert!(metric(&node, "sluis_rate_limited_total{limit=\"auth_failures\"}") >= 2);
}

#[test]
fn forwarded_for_is_ignored_from_an_untrusted_peer() {
    let node = RunningNode::start_with("localhost", "CERT-A", |t| {
        t.push_str("\n[limits]\nauth_failures_per_min = 2\n")
    });
    let client = node.client();
    // A new X-Forwarded-For per try buys nothing: the limit is on the TCP peer.
    let mut statuses = Vec::new();
    for fake in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        statuses.push(
            get_with(
                &client,
                &node,
                "bad",
                "/events/index",
                &[("X-Forwarded-For", fake)],
            )
            .0,
        );
    }
    assert_eq!(statuses, [403, 403, 429]);
    let recs = audit_records(&node);
    let failures: Vec<_> = recs
        .iter()
        .filter(|r| r["kind"] == "auth_failure")
        .collect();
    assert_eq!(failures.len(), 2);
    for f in failures {
        let remote = f["remote"].as_str().unwrap();
        assert!(
            remote.starts_with("127.0.0.1:") && !remote.contains("203.0.113"),
            "{remote}"
        );
    }
    // `Forwarded` is never read either.
    let (s, _, _) = get_with(
        &client,
        &node,
        "bad",
        "/events/index",
        &[("Forwarded", "for=198.51.100.9")],
    );
    assert_eq!(s, 429);
}

#[test]
fn forwarded_for_is_honoured_from_a_trusted_proxy() {
    let node = RunningNode::start_with("localhost", "CERT-A", |t| {
        t.push_str("\n[limits]\nauth_failures_per_min = 2\ntrusted_proxies = [\"127.0.0.0/8\"]\n")
    });
    let client = node.client();
    // The client our proxy saw is the right-most address that is not a proxy; a
    // left part the client wrote itself is not believed.
    let via = [("X-Forwarded-For", "198.51.100.1, 203.0.113.7")];
    let statuses: Vec<u16> = (0..3)
        .map(|_| get_with(&client, &node, "bad", "/events/index", &via).0)
        .collect();
    assert_eq!(statuses, [403, 403, 429]);
    let recs = audit_records(&node);
    let f = recs.iter().find(|r| r["kind"] == "auth_failure").unwrap();
    let remote = f["remote"].as_str().unwrap();
    assert!(remote.starts_with("203.0.113.7 via 127.0.0.1:"), "{remote}");
    let d = &denials(&recs, "rate limit (auth_failures)")[0];
    assert!(
        d["remote"]
            .as_str()
            .unwrap()
            .starts_with("203.0.113.7 via "),
        "{d}"
    );
    // Another client behind the same proxy has its own allowance, and the
    // proxy's own requests (no header) theirs.
    let other = [("X-Forwarded-For", "203.0.113.8")];
    assert_eq!(
        get_with(&client, &node, "bad", "/events/index", &other).0,
        403
    );
    assert_eq!(
        get_with(&client, &node, &node.admin_key, "/users/view/me", &[]).0,
        200
    );
    // The limited client: its bad keys are refused with 429, its valid key
    // still works (a lockout never denies a valid key).
    assert_eq!(
        get_with(&client, &node, "bad", "/events/index", &via).0,
        429
    );
    assert_eq!(
        get_with(&client, &node, &node.admin_key, "/users/view/me", &via).0,
        200
    );
}

/// Node `cert-a` with two peers, `cert-b` and `cert-c` (neither pulled from nor
/// pushed to), and `limits` in its `[limits]`.
fn node_with_peers(limits: &str) -> RunningNode {
    let limits = limits.to_owned();
    RunningNode::start_with("cert-a", "CERT-A", move |t| {
        for name in ["cert-b", "cert-c"] {
            let key = sluis::seal::NodeKey::generate().unwrap().public_key_b64();
            t.push_str(&peer_table(
                name,
                "https://127.0.0.1:1",
                uuid::Uuid::new_v4(),
                &key,
                None,
            ));
            t.push_str("pull = false\npush = false\n");
        }
        t.push_str("\n[limits]\n");
        t.push_str(&limits);
    })
}

/// A client presenting a certificate for `name` from the node's CA.
fn peer_client(node: &RunningNode, name: &str) -> reqwest::blocking::Client {
    let c = sluis::tls::Ca::load(node.dir.path())
        .unwrap()
        .issue_client_cert(name)
        .unwrap();
    mtls_client(&node.ca_pem, Some((&c.cert_pem, &c.key_pem)))
}

#[test]
fn a_peer_over_its_rate_gets_429_and_another_peer_does_not() {
    let node = node_with_peers("peer_rate_per_sec = 1\npeer_rate_burst = 2\n");
    let b = peer_client(&node, "cert-b");
    let (before, retry, body) = until_limited(50, || get_with(&b, &node, "", "/fed/v1/hello", &[]));
    assert!(
        before.len() >= 2 && before.iter().all(|s| *s == 200),
        "{before:?}"
    );
    let retry = retry.expect("a 429 without Retry-After");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("rate limit exceeded for peer cert-b"),
        "{body}"
    );
    assert_eq!(body["url"], "/fed/v1/hello");
    let c = peer_client(&node, "cert-c");
    let (s, _, v) = get_with(&c, &node, "", "/fed/v1/hello", &[]);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["peer"], "cert-c");
    let recs = audit_records(&node);
    let denied = denials(&recs, "rate limit (peer)");
    assert!(!denied.is_empty(), "no denial recorded");
    assert_eq!(denied[0]["actor"], "cert-b");
    assert_eq!(denied[0]["request"], "GET /fed/v1/hello");
    assert!(metric(&node, "sluis_rate_limited_total{limit=\"peer\"}") >= 1);
    // A peer's limit is not an authentication failure.
    assert_eq!(metric(&node, "sluis_fed_auth_failures_total"), 0);
}

/// The record and end lines of a changes page.
fn page_lines(text: &str) -> (usize, serde_json::Value) {
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (end, records) = lines.split_last().expect("an empty page");
    assert!(records.iter().all(|r| r["seq"].is_u64()), "{text}");
    (records.len(), end["end"].clone())
}

#[test]
fn feed_pages_and_open_feeds_are_capped_per_peer() {
    let _quiet = quiet();
    let node = node_with_peers("header_timeout_secs = 1\n");
    let max = sluis::federation::feed::MAX_LIMIT as u64;
    // More shareable changes than one page may hold.
    for seed in 0..=max + 4 {
        let raw = serde_json::to_vec(&generated_event(seed, 1)).unwrap();
        let mut ev = sluis::model::parse::parse_event(&raw, 1 << 20).unwrap();
        ev.published = true;
        ev.distribution = 3;
        ev.seal = None;
        node.state
            .store
            .put_event(ev, sluis::store::Durability::Deferred)
            .unwrap();
    }
    node.state.store.flush().unwrap();
    let b = peer_client(&node, "cert-b");
    let page = |query: &str| {
        let r = b
            .get(format!("{}/fed/v1/changes?{query}", node.url))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        page_lines(&r.text().unwrap())
    };
    let (n, end) = page("after=0&limit=1000000");
    assert_eq!(n as u64, max, "a page larger than MAX_LIMIT");
    assert_eq!(end["more"], true, "{end}");
    let (n, _) = page("after=0&limit=0");
    assert_eq!(n, 1);

    // Two long-polls held open (longer than the idle deadline: in flight, so
    // not cut off), then a third feed is refused.
    // (8 s, so a loaded machine still opens both before the window closes.)
    let url = format!("{}/fed/v1/changes?after=1000000000&wait=8", node.url);
    let polls: Vec<_> = (0..2)
        .map(|_| {
            let (b, url) = (b.clone(), url.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let r = b.get(url).send().unwrap();
                let status = r.status().as_u16();
                let text = r.text().unwrap();
                (status, text, started.elapsed())
            })
        })
        .collect();
    let mut third = None;
    let refused = eventually(Duration::from_secs(6), || {
        let r = b
            .get(format!(
                "{}/fed/v1/changes?after=1000000000&wait=0",
                node.url
            ))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        third = Some(r.text().unwrap());
        status == 429
    });
    assert!(refused, "a third feed was served: {third:?}");
    assert!(third.unwrap().contains("at most 2 changes feeds"));
    for p in polls {
        let (status, text, took) = p.join().unwrap();
        assert_eq!(status, 200, "{text}");
        assert_eq!(page_lines(&text).0, 0);
        assert!(
            took >= Duration::from_secs(3),
            "a long-poll ended after {took:?}"
        );
    }
}

#[test]
fn hostile_search_paging_is_answered_not_failed() {
    // restSearch's `limit` is not capped, as in MISP (a search without one
    // returns every match); answers stream with flat memory. What must hold is
    // that no paging value breaks the arithmetic.
    let node = RunningNode::start("localhost", "CERT-A");
    for i in 0..3 {
        let (s, v, _) = node.post(
            &node.admin_key,
            "/events/add",
            &serde_json::json!({"info": format!("paging {i}"), "distribution": "0"}),
        );
        assert_eq!(s, 200, "{v}");
    }
    let max = u64::MAX;
    for (filter, rows) in [
        (serde_json::json!({"limit": max, "page": max}), 0),
        (serde_json::json!({"limit": max, "page": 1}), 3),
        (serde_json::json!({"limit": 2, "page": max}), 0),
        (
            serde_json::json!({"limit": "18446744073709551616", "page": "99999999999999999999"}),
            3,
        ),
        (serde_json::json!({"limit": -1, "page": -5}), 3),
        (serde_json::json!({"limit": 1e300, "page": 1e300}), 0),
        (serde_json::json!({"limit": 2, "page": 2}), 1),
    ] {
        let (s, v, h) = node.post(&node.admin_key, "/events/restSearch", &filter);
        assert_eq!(s, 200, "{filter}: {v}");
        assert_eq!(
            v["response"].as_array().unwrap().len(),
            rows,
            "{filter}: {v}"
        );
        assert_eq!(h["x-result-count"], "3", "{filter}");
    }
    for (filter, rows) in [
        (serde_json::json!({"limit": max, "page": max}), 0),
        (
            serde_json::json!({"limit": "18446744073709551616", "page": -1}),
            3,
        ),
    ] {
        let (s, v, _) = node.post(&node.admin_key, "/events/index", &filter);
        assert_eq!(
            (s, v.as_array().map(Vec::len)),
            (200, Some(rows)),
            "{filter}: {v}"
        );
    }
}

#[test]
fn the_federation_client_follows_no_redirect() {
    // A genuine peer certificate on a server that answers with a redirect to
    // somewhere else (a trap that only counts connections).
    let ca = tempfile::tempdir().unwrap();
    let init = |name: &str| {
        let dir = tempfile::tempdir().unwrap();
        let report = sluis::node::init(&sluis::node::InitOptions {
            dir: dir.path().to_owned(),
            name: name.into(),
            org: name.to_uppercase(),
            org_uuid: None,
            listen: "127.0.0.1:0".into(),
            ca_dir: Some(ca.path().to_owned()),
        })
        .unwrap();
        (dir, report.config)
    };
    let (m_dir, m_config) = init("cert-m");
    let (b_dir, b_config) = init("cert-b");
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let elsewhere = format!("https://{}/fed/v1/hello", trap.local_addr().unwrap());
    let m_tls = sluis::tls::server_config(
        &m_dir.path().join("node.crt"),
        &m_dir.path().join("node.key"),
        &m_dir.path().join("ca.crt"),
        &[],
        sluis::tls::ClientAuth::Required,
    )
    .unwrap();
    let target = elsewhere.clone();
    let app = axum::Router::new().route(
        "/fed/v1/hello",
        axum::routing::get(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let m_url = format!("https://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    rt.spawn(async move {
        let l = tokio::net::TcpListener::from_std(listener).unwrap();
        serve_tls(l, m_tls, app).await;
    });
    let m = sluis::config::Config::load(&m_config).unwrap();
    let mut text = std::fs::read_to_string(&b_config).unwrap();
    text.push_str(&peer_table(
        "cert-m",
        &m_url,
        m.node.org_uuid.unwrap(),
        &sluis::seal::NodeKey::load(&m_dir.path().join("signing.key"))
            .unwrap()
            .public_key_b64(),
        None,
    ));
    std::fs::write(&b_config, text).unwrap();
    let b = sluis::config::Config::load(&b_config).unwrap();
    let b_tls = sluis::tls::client_config(
        &b_dir.path().join("node.crt"),
        &b_dir.path().join("node.key"),
        &b_dir.path().join("ca.crt"),
    )
    .unwrap();
    let trapped = || {
        let mut n = 0;
        while trap.accept().is_ok() {
            n += 1;
        }
        n
    };
    // The set-up catches a client that follows: reqwest's default does.
    let following = reqwest::Client::builder()
        .tls_backend_preconfigured((*b_tls).clone())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let _ = rt.block_on(following.get(format!("{m_url}/fed/v1/hello")).send());
    assert!(
        eventually(Duration::from_secs(5), || trapped() > 0),
        "the trap saw no connection from a client that follows redirects"
    );
    // The peer client does not.
    let client = sluis::federation::client::PeerClient::new(b.peer[0].clone(), &b_tls).unwrap();
    let err = rt.block_on(client.hello()).unwrap_err().to_string();
    assert!(err.contains("302") || err.contains("307"), "{err}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(trapped(), 0, "the federation client followed a redirect");
}

/// `/metrics` is labelled by route template, a fixed set: 10 000 junk paths
/// (404s, unauthenticated, long and short) share one label, so the page stays
/// small and holds no client-chosen text.
#[test]
fn junk_paths_do_not_grow_metrics() {
    let node = RunningNode::start("localhost", "CERT-A");
    let client = node.client();
    let metrics = || {
        client
            .get(format!("{}/metrics", node.url))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let before = metrics().len();
    for i in 0..10_000 {
        let path = if i % 100 == 0 {
            format!("/junk{i}/{}", "x".repeat(2000))
        } else {
            format!("/junk{i}/a/b")
        };
        let r = client.get(format!("{}{path}", node.url)).send().unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    // A real route keeps its template, ids and all.
    node.get(&node.admin_key, "/events/view/123");
    let text = metrics();
    assert!(
        text.len() < 200_000,
        "/metrics grew from {before} to {} bytes",
        text.len()
    );
    assert!(!text.contains("junk"), "a client's path became a label");
    assert!(
        text.contains("route=\"unmatched\",status=\"404\"} 10000"),
        "{text}"
    );
    assert!(text.contains("route=\"/events/view/{id}\""), "{text}");
}

/// TLS handshakes in progress are capped per address, below the connection
/// cap: of ten connections that send three bytes of a record header and stop,
/// the node keeps `max_handshakes_per_address` (4 here) and closes the rest at
/// once; a connection that completes its handshake frees its handshake slot.
#[test]
fn handshakes_in_progress_are_capped_per_address() {
    let _quiet = quiet();
    let node = RunningNode::start_with("localhost", "CERT-A", |t| {
        t.push_str("\n[limits]\nheader_timeout_secs = 60\nmax_handshakes_per_address = 4\n")
    });
    // A completed handshake (a served request on a kept-alive connection)
    // holds a connection slot but no handshake slot.
    let http = node.client();
    assert_eq!(node.get(&node.admin_key, "/users/view/me").0, 200);
    let target = addr(&node);
    let half_open: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = TcpStream::connect(&target).unwrap();
            s.write_all(&[0x16, 0x03, 0x01]).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            s
        })
        .collect();
    let closed = half_open
        .iter()
        .filter(|s| {
            let mut s: &TcpStream = s;
            let mut b = [0u8; 1];
            // Closed: EOF or a reset; open: the read times out.
            match s.read(&mut b) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            }
        })
        .count();
    assert_eq!(closed, 6, "the node kept {} handshakes", 10 - closed);
    drop(http);
}

/// One unauthenticated client keeping 2 000 half-open connections open
/// against the default limits (three bytes of a TLS record header each, then
/// nothing; every one the node closes is opened again, as the probe that found
/// this did) holds at most `max_handshakes_per_address` of the node's slots: a
/// legitimate client at another address (127.0.0.2) is still served, at least
/// 95 of 100 requests (issue 19's acceptance). Before the per-address caps, the
/// flood took every slot until the handshake deadline and 30–45 % of
/// legitimate requests failed.
#[test]
fn a_half_open_flood_from_one_address_leaves_room_for_others() {
    const FLOOD: usize = 2000;
    let _alone = exclusive();
    let node = RunningNode::start_with("localhost", "CERT-A", |t| {
        t.push_str("\n[limits]\nheader_timeout_secs = 60\napi_rate_per_sec = 0\n")
    });
    let target = addr(&node);
    let open_one = |target: &str| -> Option<TcpStream> {
        let mut s = TcpStream::connect(target).ok()?;
        let _ = s.write_all(&[0x16, 0x03, 0x01]);
        s.set_nonblocking(true).ok()?;
        Some(s)
    };
    let mut flood: Vec<TcpStream> = (0..FLOOD).filter_map(|_| open_one(&target)).collect();
    assert!(
        flood.len() >= 1100,
        "only {} flood connections (descriptor limit?)",
        flood.len()
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The attacker re-opens every connection the node closes, for as long as
    // the legitimate client is at work.
    let attacker = {
        let stop = stop.clone();
        let target = target.clone();
        std::thread::spawn(move || {
            let mut reopened = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // At most 500 re-opened per round (5 000/s): the node is kept
                // at its caps without the test turning into a CPU benchmark.
                let mut budget = 500;
                for s in flood.iter_mut() {
                    if budget == 0 {
                        break;
                    }
                    let mut b = [0u8; 1];
                    let closed = match s.read(&mut b) {
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                    };
                    if closed {
                        if let Some(fresh) = open_one(&target) {
                            *s = fresh;
                            reopened += 1;
                            budget -= 1;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            reopened
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let ca = reqwest::Certificate::from_pem(node.ca_pem.as_bytes()).unwrap();
    let other = reqwest::blocking::Client::builder()
        .tls_certs_only([ca])
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let ok = (0..100)
        .filter(|_| {
            other
                .get(format!("{}/users/view/me", node.url))
                .header("Authorization", &node.admin_key)
                .header("Accept", "application/json")
                .send()
                .is_ok_and(|r| r.status().as_u16() == 200)
        })
        .count();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reopened = attacker.join().unwrap();
    assert!(
        reopened > 0,
        "the node closed none of the flood's connections"
    );
    assert!(
        ok >= 95,
        "{ok} of 100 legitimate requests succeeded under the flood"
    );
}

/// Large request bodies share `limits.body_memory_mib` (issue 19, finding 9:
/// four concurrent 80 MiB posts once took a node to 868 MiB). With the whole
/// budget held, a large body — with a declared length, or chunked without one —
/// waits for its share instead of being read, while small requests go on; once
/// the budget frees, it is read and answered. (The memory itself is measured
/// by `cargo bench --bench body_memory`, `docs/performance.md`.)
#[test]
fn large_bodies_wait_for_the_body_budget_and_small_ones_do_not() {
    let _quiet = quiet();
    let node = RunningNode::start_with("localhost", "CERT-A", |t| {
        t.push_str("\n[limits]\nmax_document_mib = 2\nbody_memory_mib = 2\napi_rate_per_sec = 0\n")
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let held = rt
        .block_on(node.state.bodies.admit(2 * 1024 * 1024))
        .unwrap();
    assert!(held.is_some());
    // 256 KiB: over the small-body threshold, invalid at its end, so that the
    // answer (400, naming the field) comes as soon as it is read.
    let mut event = common::generated_event(1, 1300);
    let last = event["Event"]["Attribute"].as_array().unwrap().len() - 1;
    event["Event"]["Attribute"][last]["timestamp"] = "soon".into();
    let body = serde_json::to_vec(&event).unwrap();
    assert!(body.len() > 128 * 1024, "{}", body.len());
    let post = |chunked: bool| {
        let (url, key, body) = (
            format!("{}/events/add", node.url),
            node.admin_key.clone(),
            body.clone(),
        );
        let http = node.client();
        std::thread::spawn(move || {
            let req = http
                .post(url)
                .header("Authorization", key)
                .header("Accept", "application/json")
                .header("Content-Type", "application/json");
            let req = if chunked {
                // A reader of unknown length: sent chunked, no Content-Length.
                req.body(reqwest::blocking::Body::new(std::io::Cursor::new(body)))
            } else {
                req.body(body)
            };
            let r = req.send().unwrap();
            (r.status().as_u16(), r.text().unwrap())
        })
    };
    let declared = post(false);
    let chunked = post(true);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!declared.is_finished(), "a large body did not wait");
    assert!(!chunked.is_finished(), "a chunked large body did not wait");
    assert_eq!(node.get(&node.admin_key, "/users/view/me").0, 200);
    assert_eq!(node.state.bodies.available(), 0);
    drop(held);
    for waiting in [declared, chunked] {
        let (status, text) = waiting.join().unwrap();
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("timestamp"), "{text}");
    }
    assert_eq!(node.state.bodies.available(), 2 * 1024 * 1024);
}
