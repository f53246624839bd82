//! API benchmark: `attributes/restSearch` for one value under 50 keep-alive
//! connections (measured with wrk, a real HTTP load tool), and a streamed CSV
//! export of every attribute (time, and RSS while streaming).
//!
//! ```text
//! cargo bench --bench api -- --attributes 1000000 [--connections 50] [--seconds 20]
//! ```
//! Needs `wrk` on the PATH (Debian: `apt-get install wrk`). The node runs
//! in-process over real TLS; wrk and the node share the machine's cores.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::{arg, status_mib};
use sluis::model::parse::parse_event;
use sluis::store::Durability;
use sluis::testdata::generated_event_json;
use std::io::Read;
use std::time::{Duration, Instant};

fn main() {
    let attributes = arg("--attributes", 1_000_000) as usize;
    let per_event = arg("--per-event", 100) as usize;
    let connections = arg("--connections", 50);
    let seconds = arg("--seconds", 20);
    let dir = tempfile::tempdir().unwrap();
    let report = sluis::node::init(&sluis::node::InitOptions {
        dir: dir.path().to_owned(),
        name: "localhost".into(),
        org: "CERT-BENCH".into(),
        org_uuid: None,
        listen: "127.0.0.1:0".into(),
        ca_dir: None,
    })
    .unwrap();
    let mut cfg = sluis::config::Config::load(&report.config).unwrap();
    // wrk drives one API key as hard as it can: this measures the node, not its
    // per-key rate limit (which would answer most requests 429).
    cfg.limits.api_rate_per_sec = 0;
    let node = sluis::node::Node::start(&cfg).unwrap();
    let store = node.state().store.clone();
    let owner = sluis::model::Org {
        id: None,
        name: cfg.node.org.clone(),
        uuid: cfg.node.org_uuid.unwrap(),
        local: true,
    };
    let events = attributes.div_ceil(per_event);
    eprintln!("loading {attributes} attributes…");
    let t = Instant::now();
    let mut probe = String::new();
    for seed in 0..events as u64 {
        let doc = generated_event_json(seed, per_event);
        if seed == events as u64 / 2 {
            probe = doc["Event"]["Attribute"][3]["value"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        let mut e = parse_event(&serde_json::to_vec(&doc).unwrap(), 1 << 30).unwrap();
        e.org = Some(owner.clone());
        store.put_event(e, Durability::Deferred).unwrap();
    }
    store.flush().unwrap();
    eprintln!("loaded in {:.0} s", t.elapsed().as_secs_f64());

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            node.run(l, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();
    let url = format!("https://{addr}");

    println!("## API benchmark: {attributes} attributes stored");
    println!();
    // 1. restSearch for one value, wrk, keep-alive connections.
    let script = dir.path().join("search.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"value\": \"{probe}\"}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Accept\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"{}\"\n",
            report.admin_key
        ),
    )
    .unwrap();
    let out = std::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(format!("{url}/attributes/restSearch"))
        .output();
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let pick = |prefix: &str| {
                text.lines()
                    .find(|l| l.trim_start().starts_with(prefix))
                    .map(|l| l.trim().to_owned())
                    .unwrap_or_default()
            };
            println!("| restSearch one value, {connections} connections, {seconds} s (wrk) | |");
            println!("|---|---|");
            println!("| {} | |", pick("Requests/sec"));
            println!("| latency {} | |", pick("50%"));
            println!("| latency {} | |", pick("99%"));
            println!("| {} | |", pick("Non-2xx"));
            eprintln!("{text}");
        }
        Err(e) => println!("wrk not available ({e}); install it to run the load part"),
    }
    println!();

    // 2. CSV export of everything, streamed.
    let ca = reqwest::Certificate::from_pem(
        std::fs::read(dir.path().join("ca.crt")).unwrap().as_slice(),
    )
    .unwrap();
    let client = reqwest::blocking::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let before = status_mib(None, "VmRSS:");
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s2 = sampling.clone();
    let sampler = std::thread::spawn(move || {
        let mut peak: f64 = 0.0;
        while s2.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(status_mib(None, "VmRSS:"));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    let t = Instant::now();
    let mut resp = client
        .post(format!("{url}/attributes/restSearch"))
        .header("Authorization", &report.admin_key)
        .json(&serde_json::json!({"returnFormat": "csv"}))
        .send()
        .unwrap();
    let count = resp
        .headers()
        .get("x-result-count")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    let mut buf = vec![0u8; 1 << 16];
    let (mut bytes, mut lines) = (0u64, 0u64);
    loop {
        let n = resp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes += n as u64;
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
    let took = t.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    println!("| CSV export of all attributes (streamed) | |");
    println!("|---|---|");
    println!("| time | {:.1} s |", took.as_secs_f64());
    println!("| rows / bytes | {lines} lines, {bytes} bytes, X-Result-Count {count} |");
    println!("| process RSS before → peak during export | {before:.0} MiB → {peak:.0} MiB |");
    let _ = tx.send(());
    let _ = server.join();
}
