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

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_owned()
}

#[test]
fn connections_over_the_cap_are_refused_and_existing_ones_still_work() {
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
        eventually(Duration::from_secs(10), || connect(&node, &[b"http/1.1"]).is_ok()),
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
    let mut req = client
        .get(format!("{}{path}", node.url))
        .header("Authorization", key);
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
    let (before, retry, body) =
        until_limited(50, || get_with(&client, &node, &admin, "/users/view/me", &[]));
    assert!(before.len() >= 3 && before.iter().all(|s| *s == 200), "{before:?}");
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
    assert!(denied.len() * 3 < refused as usize, "{} records for {refused} refusals", denied.len());
    let admin_email = node.state.store.users().unwrap()[0].email.clone();
    assert_eq!(denied[0]["actor"], admin_email.as_str());
    assert_eq!(denied[0]["request"], "GET /users/view/me");
    assert!(denied[0]["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
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
    assert!(before.len() >= 60 && before.iter().all(|s| *s == 403), "{}", before.len());
    assert_eq!(retry, Some(1));
    assert!(
        body["message"].as_str().unwrap().contains("failed authentication"),
        "{body}"
    );
    // Locked: the right key is refused too (it is not even looked at), so a
    // guesser cannot learn from the answer that it guessed right.
    let (s, retry, _) = get_with(&client, &node, &node.admin_key, "/users/view/me", &[]);
    assert_eq!((s, retry), (429, Some(1)));
    // Once the allowance refills, the right key works again.
    std::thread::sleep(Duration::from_millis(1500));
    let (s, _, _) = get_with(&client, &node, &node.admin_key, "/users/view/me", &[]);
    assert_eq!(s, 200);
    // Each failure was recorded; the lockout once, not once per refused request.
    let recs = audit_records(&node);
    let failures = recs.iter().filter(|r| r["kind"] == "auth_failure").count();
    assert_eq!(failures, before.len());
    let locked = denials(&recs, "rate limit (auth_failures)");
    assert!(!locked.is_empty() && locked.len() <= 2, "{locked:#?}");
    assert_eq!(locked[0]["actor"], "unknown");
    assert_eq!(metric(&node, "sluis_auth_failures_total"), before.len() as u64);
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
        statuses.push(get_with(&client, &node, "bad", "/events/index", &[("X-Forwarded-For", fake)]).0);
    }
    assert_eq!(statuses, [403, 403, 429]);
    let recs = audit_records(&node);
    let failures: Vec<_> = recs.iter().filter(|r| r["kind"] == "auth_failure").collect();
    assert_eq!(failures.len(), 2);
    for f in failures {
        let remote = f["remote"].as_str().unwrap();
        assert!(remote.starts_with("127.0.0.1:") && !remote.contains("203.0.113"), "{remote}");
    }
    // `Forwarded` is never read either.
    let (s, _, _) = get_with(&client, &node, "bad", "/events/index", &[("Forwarded", "for=198.51.100.9")]);
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
    assert!(d["remote"].as_str().unwrap().starts_with("203.0.113.7 via "), "{d}");
    // Another client behind the same proxy has its own allowance, and the
    // proxy's own requests (no header) theirs.
    let other = [("X-Forwarded-For", "203.0.113.8")];
    assert_eq!(get_with(&client, &node, "bad", "/events/index", &other).0, 403);
    assert_eq!(get_with(&client, &node, &node.admin_key, "/users/view/me", &[]).0, 200);
    assert_eq!(get_with(&client, &node, &node.admin_key, "/users/view/me", &via).0, 429);
}
