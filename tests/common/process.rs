//! A node as a real `sluis serve` process (for tests that kill it, fill its
//! disk or damage its files): its directory made by `sluis::node::init`, a
//! fixed port so restarts keep the address, its log kept in `serve.log`.

use super::sluis_bin;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free at the time of asking (the node binds it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node directory for a `sluis serve` process: the init report's config
/// with `extra` appended (e.g. `[limits]` tables).
pub struct ProcessNode {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub admin_key: String,
    pub url: String,
    pub ca_pem: String,
    /// stderr of every run, appended: read it when a test fails.
    pub log: PathBuf,
}

impl ProcessNode {
    /// Runs `sluis init` (as a library call) into `dir`, listening on a free
    /// port of 127.0.0.1.
    pub fn init(dir: &Path, name: &str, extra: &str) -> Self {
        let port = free_port();
        let report = sluis::node::init(&sluis::node::InitOptions {
            dir: dir.to_owned(),
            name: name.into(),
            org: name.to_uppercase(),
            org_uuid: None,
            listen: format!("127.0.0.1:{port}"),
            ca_dir: None,
        })
        .unwrap();
        let mut text = std::fs::read_to_string(&report.config).unwrap();
        text.push_str(extra);
        std::fs::write(&report.config, text).unwrap();
        ProcessNode {
            dir: dir.to_owned(),
            config: report.config,
            admin_key: report.admin_key,
            url: format!("https://127.0.0.1:{port}"),
            ca_pem: std::fs::read_to_string(dir.join("ca.crt")).unwrap(),
            log: dir.join("serve.log"),
        }
    }

    pub fn db_dir(&self) -> PathBuf {
        self.dir.join("db")
    }

    /// Starts `sluis serve` (not waiting for it to listen).
    pub fn spawn(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        Command::new(sluis_bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("SLUIS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    }

    /// Starts `sluis serve` and waits until `/healthz` answers (any status).
    pub fn start(&self) -> Child {
        let mut child = self.spawn();
        self.wait_listening(&mut child);
        child
    }

    /// Waits until the node answers `/healthz`; panics with its log if it
    /// exits or takes longer than a minute.
    pub fn wait_listening(&self, child: &mut Child) {
        let http = self.client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("sluis serve exited ({st}) at start: {}", self.log_text());
            }
            if http.get(format!("{}/healthz", self.url)).send().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the node did not come up within 60 s: {}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An HTTPS client that trusts only the node's CA (keep-alive, timeouts
    /// short enough for a test to notice a dead node).
    pub fn client(&self) -> reqwest::blocking::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap();
        reqwest::blocking::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    }
}

/// Stops `child` with SIGTERM (a graceful stop, as an orchestrator does
/// first) and waits for it; false if it had not exited after `grace` (it is
/// then killed).
pub fn terminate(child: &mut Child, grace: Duration) -> bool {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}
