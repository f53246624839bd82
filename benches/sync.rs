//! Federation benchmark, with three real `sluis serve` processes over mutual TLS
//! on loopback:
//!
//! 1. **Initial sync**: A holds `--events` events of `--per-event` attributes
//!    (default 100 000 × 10 = 1 M attributes); B starts empty and pulls A's
//!    feed. Reported: time until B's cursor reaches A's head, attributes/s, and
//!    the peak RSS (VmHWM) of both processes.
//! 2. **Propagation**: with A–B–C on a chain (C trusts A as an origin), one new
//!    event is posted on A `--samples` times; B (one hop) and C (two hops) are
//!    polled every 5 ms until it shows. Reported: p50 and p99 per hop count.
//! 3. **A large event** of `--large` attributes (default 60 000, more than a
//!    page's attribute budget) posted on A: time until complete on B and C, and
//!    the peak RSS of each process before and after.
//!
//! ```text
//! cargo bench --bench sync -- [--events 100000] [--per-event 10] [--samples 50] [--large 60000]
//! ```
//! Uses the release `sluis` binary cargo builds for benches.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::{arg, status_mib};
use serde_json::json;
use sluis::store::Durability;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Node {
    name: &'static str,
    dir: PathBuf,
    config: PathBuf,
    url: String,
    org: uuid::Uuid,
    public_key: String,
    admin_key: String,
    ca_pem: String,
}

fn init(root: &Path, ca: &Path, name: &'static str) -> Node {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = root.join(name);
    let report = sluis::node::init(&sluis::node::InitOptions {
        dir: dir.clone(),
        name: name.into(),
        org: name.to_uppercase(),
        org_uuid: None,
        listen: format!("127.0.0.1:{port}"),
        ca_dir: Some(ca.to_owned()),
    })
    .unwrap();
    let cfg = sluis::config::Config::load(&report.config).unwrap();
    let key = sluis::seal::NodeKey::load(&dir.join("signing.key")).unwrap();
    Node {
        name,
        url: format!("https://127.0.0.1:{port}"),
        config: report.config,
        org: cfg.node.org_uuid.unwrap(),
        public_key: key.public_key_b64(),
        admin_key: report.admin_key,
        ca_pem: std::fs::read_to_string(dir.join("ca.crt")).unwrap(),
        dir,
    }
}

fn peer(a: &Node, b: &Node) {
    let mut t = std::fs::read_to_string(&a.config).unwrap();
    t.push_str(&format!(
        "\n[[peer]]\nname = \"{}\"\nurl = \"{}\"\norg_uuid = \"{}\"\npublic_key = \"{}\"\n",
        b.name, b.url, b.org, b.public_key
    ));
    std::fs::write(&a.config, t).unwrap();
}

fn origin(a: &Node, o: &Node) {
    let mut t = std::fs::read_to_string(&a.config).unwrap();
    t.push_str(&format!(
        "\n[[origin]]\norg_uuid = \"{}\"\npublic_key = \"{}\"\n",
        o.org, o.public_key
    ));
    std::fs::write(&a.config, t).unwrap();
}

fn serve(n: &Node) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["serve", "--config"])
        .arg(&n.config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let c = client(n);
    let start = Instant::now();
    while c.get(format!("{}/healthz", n.url)).send().is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} did not start",
            n.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn client(n: &Node) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(n.ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

/// `(cursor, peer head)` of `n`'s pull from `from`, asked of the running node.
fn pull_state(c: &reqwest::blocking::Client, n: &Node, from: &str) -> (u64, u64) {
    let v: serde_json::Value = c
        .get(format!("{}/admin/peers", n.url))
        .header("Authorization", &n.admin_key)
        .send()
        .and_then(|r| r.json())
        .unwrap_or(serde_json::Value::Null);
    v.as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == from))
        .map(|p| {
            (
                p["pulling"]["cursor"].as_u64().unwrap_or(0),
                p["pulling"]["peer_head"].as_u64().unwrap_or(0),
            )
        })
        .unwrap_or((0, 0))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let events = arg("--events", 100_000);
    let per_event = arg("--per-event", 10) as usize;
    let samples = arg("--samples", 50) as usize;
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("ca");
    let a = init(root.path(), &ca, "cert-a");
    let b = init(root.path(), &ca, "cert-b");
    let c = init(root.path(), &ca, "cert-c");
    peer(&a, &b);
    peer(&b, &a);
    peer(&b, &c);
    peer(&c, &b);
    origin(&c, &a);

    // A's data, sealed by A, written with the library while A is stopped.
    let t = Instant::now();
    {
        let cfg = sluis::config::Config::load(&a.config).unwrap();
        let node = sluis::node::Node::start(&cfg).unwrap();
        let store = node.state().store.clone();
        for seed in 0..events {
            let raw = serde_json::to_vec(&sluis::testdata::generated_event_json(seed, per_event))
                .unwrap();
            let mut ev = sluis::model::parse::parse_event(&raw, 1 << 26).unwrap();
            ev.published = true;
            ev.distribution = 3;
            ev.seal = None;
            store.put_event(ev, Durability::Deferred).unwrap();
        }
        store.flush().unwrap();
    }
    let attributes = events * per_event as u64;
    println!(
        "populated A: {events} events, {attributes} attributes in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // 1. Initial sync A → B (C not started yet).
    let mut pa = serve(&a);
    let ca_client = client(&b);
    let t = Instant::now();
    let mut pb = serve(&b);
    loop {
        let (cursor, head) = pull_state(&ca_client, &b, "cert-a");
        if head > 0 && cursor >= head {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3600),
            "sync did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = t.elapsed();
    println!(
        "initial sync of {attributes} attributes: {:.1} s ({:.0} attributes/s); peak RSS A {:.0} MiB, B {:.0} MiB",
        took.as_secs_f64(),
        attributes as f64 / took.as_secs_f64(),
        status_mib(Some(pa.id()), "VmHWM:"),
        status_mib(Some(pb.id()), "VmHWM:")
    );

    // 2. Propagation over one and two hops.
    let mut pc = serve(&c);
    let cc = client(&c);
    let t = Instant::now();
    loop {
        let (cursor, head) = pull_state(&cc, &c, "cert-b");
        if head > 0 && cursor >= head {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3600),
            "C did not catch up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("C caught up with B in {:.1} s", t.elapsed().as_secs_f64());
    let post = client(&a);
    let (cb, ccl) = (client(&b), client(&c));
    let mut one = Vec::new();
    let mut two = Vec::new();
    for i in 0..samples {
        let r: serde_json::Value = post
            .post(format!("{}/events/add", a.url))
            .header("Authorization", &a.admin_key)
            .header("Accept", "application/json")
            .json(&json!({"info": format!("propagation {i}"), "distribution": "3", "published": true,
                          "Attribute": [{"type": "domain", "value": format!("p{i}.latency.example")}]}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let start = Instant::now();
        let uuid = r["Event"]["uuid"].as_str().unwrap().to_owned();
        let seen = |cl: &reqwest::blocking::Client, n: &Node| {
            cl.get(format!("{}/events/view/{uuid}", n.url))
                .header("Authorization", &n.admin_key)
                .header("Accept", "application/json")
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        };
        let (mut at_b, mut at_c) = (None, None);
        while at_b.is_none() || at_c.is_none() {
            if at_b.is_none() && seen(&cb, &b) {
                at_b = Some(start.elapsed());
            }
            if at_c.is_none() && seen(&ccl, &c) {
                at_c = Some(start.elapsed());
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "event {i} did not arrive"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        one.extend(at_b);
        two.extend(at_c);
    }
    one.sort();
    two.sort();
    println!(
        "propagation of one new event ({samples} samples, polled every 5 ms): one hop p50 {:.0} ms p99 {:.0} ms; two hops p50 {:.0} ms p99 {:.0} ms",
        percentile(&one, 0.5).as_secs_f64() * 1e3,
        percentile(&one, 0.99).as_secs_f64() * 1e3,
        percentile(&two, 0.5).as_secs_f64() * 1e3,
        percentile(&two, 0.99).as_secs_f64() * 1e3,
    );
    // 3. One large event (`--large` attributes) through two hops.
    let large = arg("--large", 60_000) as usize;
    if large > 0 {
        let attrs: Vec<serde_json::Value> = (0..large)
            .map(|i| json!({"type": "domain", "value": format!("l{i}.large-event.example")}))
            .collect();
        let before = [
            status_mib(Some(pa.id()), "VmHWM:"),
            status_mib(Some(pb.id()), "VmHWM:"),
            status_mib(Some(pc.id()), "VmHWM:"),
        ];
        let start = Instant::now();
        let r: serde_json::Value = post
            .post(format!("{}/events/add", a.url))
            .header("Authorization", &a.admin_key)
            .header("Accept", "application/json")
            .timeout(Duration::from_secs(600))
            .json(&json!({"info": "large", "distribution": "3", "published": true, "Attribute": attrs}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let stored = start.elapsed();
        let uuid = r["Event"]["uuid"].as_str().unwrap().to_owned();
        let seen = |cl: &reqwest::blocking::Client, n: &Node| -> usize {
            cl.get(format!("{}/events/view/{uuid}", n.url))
                .header("Authorization", &n.admin_key)
                .header("Accept", "application/json")
                .timeout(Duration::from_secs(120))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
                .and_then(|r| r.json::<serde_json::Value>().ok())
                .and_then(|v| v["Event"]["Attribute"].as_array().map(Vec::len))
                .unwrap_or(0)
        };
        let (mut at_b, mut at_c) = (None, None);
        while at_b.is_none() || at_c.is_none() {
            if at_b.is_none() && seen(&cb, &b) == large {
                at_b = Some(start.elapsed());
            }
            if at_c.is_none() && seen(&ccl, &c) == large {
                at_c = Some(start.elapsed());
            }
            assert!(
                start.elapsed() < Duration::from_secs(1200),
                "the large event did not arrive"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        println!(
            "large event of {large} attributes: stored on A in {:.1} s, complete on B after {:.1} s, on C after {:.1} s; peak RSS before/after A {:.0}/{:.0} MiB, B {:.0}/{:.0} MiB, C {:.0}/{:.0} MiB",
            stored.as_secs_f64(),
            at_b.unwrap_or_default().as_secs_f64(),
            at_c.unwrap_or_default().as_secs_f64(),
            before[0], status_mib(Some(pa.id()), "VmHWM:"),
            before[1], status_mib(Some(pb.id()), "VmHWM:"),
            before[2], status_mib(Some(pc.id()), "VmHWM:"),
        );
    }
    for p in [&mut pa, &mut pb, &mut pc] {
        let _ = p.kill();
        let _ = p.wait();
    }
    drop(a.dir);
}
