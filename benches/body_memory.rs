//! Request-body memory: the peak RSS of a real `sluis serve` process while it
//! takes large request bodies, valid and invalid, one at a time and several at
//! once (issue 19, finding 9: an 80 MiB body once peaked at ~625 MiB).
//!
//! ```text
//! cargo bench --bench body_memory -- [--mib 80] [--concurrent 4] [--budget-mib 0] [--valid 1]
//! ```
//! `--budget-mib N` sets `limits.body_memory_mib` (0 keeps the default).
//! `--valid 1` also stores the event and edits it: that measures the store's
//! cost of one large event (issue 14), several GiB for 80 MiB today. Each
//! scenario runs against a freshly started process (freed memory that the
//! allocator keeps would otherwise hide the next scenario's growth); the peak
//! is the kernel's `VmHWM`, reset before the scenario through `clear_refs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a failed step is the failure

mod common;

use common::{arg, status_mib};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Node {
    config: std::path::PathBuf,
    url: String,
    key: String,
    ca: String,
}

impl Node {
    fn start(&self) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluis"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("SLUIS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let http = self.client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(format!("{}/healthz", self.url)).send().is_err() {
            assert!(child.try_wait().unwrap().is_none(), "sluis serve exited");
            assert!(Instant::now() < deadline, "the node did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca.as_bytes()).unwrap()])
            .timeout(Duration::from_secs(600))
            .build()
            .unwrap()
    }

    fn post(&self, path: &str, body: Vec<u8>) -> u16 {
        self.client()
            .post(format!("{}{path}", self.url))
            .header("Authorization", &self.key)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}

/// Runs `requests` at once against a fresh process and prints its peak RSS
/// growth over the RSS it had before them.
fn scenario(node: &Node, name: &str, path: &str, requests: Vec<Vec<u8>>) {
    let mut child = node.start();
    let pid = child.id();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_mib(Some(pid), "VmRSS");
    let body_mib: f64 = requests.iter().map(|b| b.len() as f64).sum::<f64>() / 1048576.0;
    let n = requests.len();
    let started = Instant::now();
    let codes: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .into_iter()
            .map(|b| s.spawn(move || node.post(path, b)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let peak = status_mib(Some(pid), "VmHWM");
    println!(
        "{name:<34} {n} × {:>5.1} MiB  status {codes:?}  {secs:>6.1} s  RSS before {before:>6.1} MiB  peak {peak:>7.1} MiB  growth {:>7.1} MiB = {:.2} × the bodies",
        body_mib / n as f64,
        peak - before,
        (peak - before) / body_mib,
    );
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
}

/// Sends `total` bytes of `body` and then nothing for `stall`, then gives up:
/// a client that holds a large body half-sent.
struct Stalling {
    body: std::sync::Arc<Vec<u8>>,
    pos: usize,
    total: usize,
    stall: Duration,
}

impl std::io::Read for Stalling {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.total {
            std::thread::sleep(self.stall);
            return Err(std::io::Error::other("the client gives up"));
        }
        let n = buf.len().min(self.total - self.pos);
        buf[..n].copy_from_slice(&self.body[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `n` clients each declare the whole body, send three quarters of it and
/// stall: what the node holds meanwhile is what they made it buffer.
fn stalled(node: &Node, n: usize, body: Vec<u8>) {
    let mut child = node.start();
    let pid = child.id();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_mib(Some(pid), "VmRSS");
    let len = body.len();
    let body = std::sync::Arc::new(body);
    let stall = Duration::from_secs(15);
    std::thread::scope(|s| {
        for _ in 0..n {
            let body = body.clone();
            s.spawn(move || {
                let reader = Stalling {
                    body,
                    pos: 0,
                    total: len * 3 / 4,
                    stall,
                };
                let _ = node
                    .client()
                    .post(format!("{}/events/add", node.url))
                    .header("Authorization", &node.key)
                    .header("Content-Type", "application/json")
                    .body(reqwest::blocking::Body::sized(reader, len as u64))
                    .send();
            });
        }
    });
    let peak = status_mib(Some(pid), "VmHWM");
    println!(
        "{:<34} {n} × {:>5.1} MiB declared, 3/4 sent, then stalled 15 s  RSS before {before:>6.1} MiB  peak {peak:>7.1} MiB  growth {:>7.1} MiB",
        "events/add, stalled senders",
        len as f64 / 1048576.0,
        peak - before,
    );
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();
}

fn main() {
    let mib = arg("--mib", 80);
    let concurrent = arg("--concurrent", 4) as usize;
    let budget = arg("--budget-mib", 0);
    let valid_too = arg("--valid", 0) == 1;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let report = sluis::node::init(&sluis::node::InitOptions {
        dir: dir.path().to_owned(),
        name: "localhost".into(),
        org: "CERT-BENCH".into(),
        org_uuid: None,
        listen: format!("127.0.0.1:{port}"),
        ca_dir: None,
    })
    .unwrap();
    let mut cfg = std::fs::OpenOptions::new()
        .append(true)
        .open(&report.config)
        .unwrap();
    write!(cfg, "\n[limits]\nmax_document_mib = {}\n", mib + 20).unwrap();
    if budget > 0 {
        writeln!(cfg, "body_memory_mib = {budget}").unwrap();
    }
    drop(cfg);
    let node = Node {
        config: report.config.clone(),
        url: format!("https://127.0.0.1:{port}"),
        key: report.admin_key.clone(),
        ca: std::fs::read_to_string(dir.path().join("ca.crt")).unwrap(),
    };

    // About 172 bytes per generated attribute.
    let attributes = (mib as usize * 1048576) / 172;
    let mut event = sluis::testdata::generated_event_json(7, attributes);
    let valid = serde_json::to_vec(&event).unwrap();
    println!(
        "event: {attributes} attributes, {:.1} MiB of JSON",
        valid.len() as f64 / 1048576.0
    );
    let last = event["Event"]["Attribute"].as_array().unwrap().len() - 1;
    event["Event"]["Attribute"][last]["timestamp"] = "soon".into();
    let bad_field = serde_json::to_vec(&event).unwrap();
    drop(event);
    let truncated = valid[..valid.len() - 3].to_vec();

    stalled(&node, concurrent, valid.clone());
    scenario(
        &node,
        "events/add, invalid field at the end",
        "/events/add",
        vec![bad_field.clone()],
    );
    scenario(
        &node,
        "events/add, invalid field, concurrent",
        "/events/add",
        vec![bad_field; concurrent],
    );
    scenario(
        &node,
        "events/add, truncated JSON, concurrent",
        "/events/add",
        vec![truncated; concurrent],
    );
    if !valid_too {
        return;
    }
    scenario(
        &node,
        "events/add, valid",
        "/events/add",
        vec![valid.clone()],
    );
    scenario(
        &node,
        "events/edit, valid, unchanged",
        "/events/edit/1",
        vec![valid],
    );
}
