//! Acknowledged means durable, under load: a real `sluis serve` process takes
//! 10 000 small event writes over HTTPS from several keep-alive clients while it
//! is killed with SIGKILL and restarted several times. Every write answered 200
//! must be in the store afterwards, intact (its value and type, a seal that
//! verifies with the node's key), and no write may be stored twice.
//!
//! The clients choose each event's uuid, as PyMISP users may: a write whose
//! connection died before the answer is retried with the same body, and the
//! node then either stores it (the first attempt was lost with the process) or
//! answers that the event already exists (the first attempt was stored but not
//! acknowledged). Either way one write is one event, so a duplicate in the store
//! would be a real fault, not client noise.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::{json, Value};
use sluis::seal::{verify_event, NodeKey, TrustList};
use sluis::store::Store;
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Acknowledged writes the run needs, in total across the clients.
const WRITES: usize = 10_000;
const CLIENTS: usize = 4;
/// Kill the node when this many writes have been acknowledged, so every kill
/// lands while the clients are writing, however fast the machine is.
const KILL_AT: [usize; 5] = [1_300, 3_100, 4_900, 6_700, 8_500];
/// Longest one write may take to be acknowledged, retries and restarts included.
const WRITE_DEADLINE: Duration = Duration::from_secs(60);

/// One client's write number `n`: a fresh event with one attribute whose
/// value names the write.
struct Write {
    event: Uuid,
    attr: Uuid,
    value: String,
    body: Value,
}

fn write(client: usize, n: usize) -> Write {
    // Deterministic uuids (v4-shaped), so a failure can be reproduced and read.
    let event = Uuid::from_u128(
        0x5100_0000_0000_4000_8000_0000_0000_0000 | ((client as u128) << 32) | n as u128,
    );
    let attr = Uuid::from_u128(
        0x5200_0000_0000_4000_8000_0000_0000_0000 | ((client as u128) << 32) | n as u128,
    );
    let value = format!("c{client}-w{n}.load.example");
    let body = json!({"Event": {
        "uuid": event,
        "info": format!("load c{client} w{n}"),
        "distribution": "0",
        "Attribute": [{"uuid": attr, "type": "domain", "category": "Network activity", "value": value}],
    }});
    Write {
        event,
        attr,
        value,
        body,
    }
}

/// How the node answered one write in the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// 200, with the event the client sent.
    Acknowledged,
    /// A retry was told the event exists: an earlier attempt whose answer was
    /// lost in a kill had been stored.
    StoredUnacknowledged,
}

#[derive(Default)]
struct Tally {
    fates: Vec<(usize, usize, Fate)>,
    /// Attempts that failed at the connection (refused, reset, cut short).
    connection_errors: usize,
    /// 5xx answers (retried): the node must not give any here.
    server_errors: Vec<String>,
}

/// Sends write `n` of client `c` until the node settles it (see [`Fate`]).
fn settle(
    http: &reqwest::blocking::Client,
    url: &str,
    key: &str,
    c: usize,
    n: usize,
    tally: &mut Tally,
) -> Fate {
    let w = write(c, n);
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        assert!(
            started.elapsed() < WRITE_DEADLINE,
            "write c{c} w{n} not settled after {attempts} attempts"
        );
        attempts += 1;
        let sent = http
            .post(format!("{url}/events/add"))
            .header("Authorization", key)
            .header("Accept", "application/json")
            .json(&w.body)
            .send()
            .and_then(|r| {
                let status = r.status().as_u16();
                r.text().map(|t| (status, t))
            });
        let (status, text) = match sent {
            Ok(x) => x,
            Err(_) => {
                tally.connection_errors += 1;
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        match status {
            200 => {
                let ev = &v["Event"];
                assert_eq!(ev["uuid"], json!(w.event), "c{c} w{n}: {v}");
                assert_eq!(
                    ev["Attribute"][0]["value"],
                    json!(w.value),
                    "c{c} w{n}: {v}"
                );
                return Fate::Acknowledged;
            }
            404 if attempts > 1 && text.contains("already exists") => {
                return Fate::StoredUnacknowledged;
            }
            s if s >= 500 => {
                tally.server_errors.push(format!("c{c} w{n}: {s} {text}"));
                std::thread::sleep(Duration::from_millis(50));
            }
            s => panic!("c{c} w{n}, attempt {attempts}: unexpected {s}: {text}"),
        }
    }
}

#[test]
fn ten_thousand_writes_survive_repeated_sigkill() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // One admin key writes as fast as it can here: the per-key rate limit
    // (`tests/abuse.rs` covers it) would turn the load test into a test of it.
    let node = ProcessNode::init(dir.path(), "load", "\n[limits]\napi_rate_per_sec = 0\n");
    let child = Mutex::new(node.start());
    let acked = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let per_client = WRITES / CLIENTS;

    let (tallies, kills) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (node, acked) = (&node, &acked);
                s.spawn(move || {
                    let http = node.client();
                    let mut tally = Tally::default();
                    for n in 0..per_client {
                        let fate = settle(&http, &node.url, &node.admin_key, c, n, &mut tally);
                        if fate == Fate::Acknowledged {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        tally.fates.push((c, n, fate));
                    }
                    tally
                })
            })
            .collect();
        // The killer: SIGKILL at each threshold, restart after a short random
        // pause (the clients meanwhile meet refused connections and retry).
        let killer = s.spawn(|| {
            let mut rng = sluis::testdata::Rng::new(7);
            let mut kills = Vec::new();
            for at in KILL_AT {
                while acked.load(Ordering::Relaxed) < at {
                    if done.load(Ordering::Relaxed) {
                        return kills;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                let mut c = child.lock().unwrap();
                c.kill().unwrap(); // SIGKILL
                c.wait().unwrap();
                kills.push((acked.load(Ordering::Relaxed), t0.elapsed()));
                std::thread::sleep(Duration::from_millis(rng.below(250)));
                *c = node.start();
            }
            kills
        });
        let tallies: Vec<Tally> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        done.store(true, Ordering::Relaxed);
        (tallies, killer.join().unwrap())
    });
    let run_time = t0.elapsed();
    {
        let mut c = child.lock().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let mut fates: HashMap<(usize, usize), Fate> = HashMap::new();
    let mut connection_errors = 0;
    let mut server_errors = Vec::new();
    for t in tallies {
        connection_errors += t.connection_errors;
        server_errors.extend(t.server_errors);
        for (c, n, f) in t.fates {
            assert!(fates.insert((c, n), f).is_none());
        }
    }
    let acknowledged = fates.values().filter(|f| **f == Fate::Acknowledged).count();
    eprintln!(
        "{acknowledged} acknowledged, {} stored but unacknowledged, {connection_errors} connection errors, kills at (acked, time) {kills:?}, run {run_time:?}",
        fates.len() - acknowledged
    );
    assert!(
        kills.len() >= 4,
        "only {} kills landed during the run: {kills:?}",
        kills.len()
    );
    assert!(
        server_errors.is_empty(),
        "the node answered 5xx {} times, e.g. {:?}",
        server_errors.len(),
        &server_errors[..server_errors.len().min(5)]
    );
    assert_eq!(fates.len(), WRITES);
    // A kill cuts at most the one write each client has in flight.
    assert!(
        WRITES - acknowledged <= CLIENTS * kills.len(),
        "only {acknowledged} of {WRITES} writes acknowledged"
    );

    // Every write is stored exactly once, as sent, sealed by the node.
    let cfg = sluis::config::Config::load(&node.config).unwrap();
    let node_key = NodeKey::load(&dir.path().join("signing.key")).unwrap();
    let mut trust = TrustList::new();
    trust
        .add_key(
            cfg.node.org_uuid.unwrap(),
            node_key.verifying_key(),
            None,
            None,
        )
        .unwrap();
    let store = Store::open(&cfg.db_dir(), Default::default()).unwrap();
    assert_eq!(
        store.event_count(),
        WRITES,
        "events stored ≠ writes made: a write was lost or stored twice"
    );
    let now = sluis::model::time::now_secs();
    for (&(c, n), fate) in &fates {
        let w = write(c, n);
        let ev = store
            .get_event(&w.event)
            .unwrap()
            .unwrap_or_else(|| panic!("{fate:?} write c{c} w{n} ({}) is missing", w.event));
        assert_eq!(ev.attributes.len(), 1, "c{c} w{n}");
        let a = &ev.attributes[0];
        assert_eq!(
            (a.uuid, a.attr_type.as_str(), a.value.as_str()),
            (w.attr, "domain", w.value.as_str()),
            "c{c} w{n}"
        );
        verify_event(&ev, &trust, now).unwrap_or_else(|e| panic!("c{c} w{n}: seal: {e}"));
    }
    // …and nothing else: every value in the store belongs to one write, once.
    let mut by_value: HashMap<String, usize> = HashMap::new();
    for u in store.event_uuids() {
        for a in store.get_event(&u.unwrap()).unwrap().unwrap().attributes {
            *by_value.entry(a.value).or_default() += 1;
        }
    }
    assert_eq!(by_value.len(), WRITES);
    let twice: Vec<_> = by_value.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    drop(store);

    // The audit log survived the kills: its chain checks out from start to end.
    let out = Command::new(sluis_bin())
        .args(["audit", "verify", "--config"])
        .arg(&node.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    eprintln!("total {:?}", t0.elapsed());
}
