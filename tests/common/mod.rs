//! Shared test helpers: where the real MISP samples are (vendored), temporary stores and node
//! directories, and the `sluis` binary. Written once, used by every test in `tests/`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// PyMISP's sample events, vendored in `tests/data/misp/` (see its NOTICE.md).
pub fn samples_dir() -> PathBuf {
    sluis::testdata::misp_samples_dir()
}

/// Sample files that hold an event, with their parsed JSON (`{"Event":…}` unwrapped).
pub fn sample_events() -> Vec<(PathBuf, serde_json::Value)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples_dir())
        .expect("samples dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let ev = match v {
            serde_json::Value::Object(mut m) => match m.remove("Event") {
                Some(e) => e,
                None => serde_json::Value::Object(m),
            },
            _ => continue, // a list of index rows, not an event
        };
        out.push((f, ev));
    }
    assert!(
        out.len() >= 15,
        "expected the 15 sample events, found {}",
        out.len()
    );
    out
}

/// A node directory with a minimal config (an org uuid and a fresh signing key,
/// because the store holds only sealed events), removed on drop.
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub org_uuid: uuid::Uuid,
    /// The node's public signing key, base64 (as `sluis keys` prints it).
    pub public_key: String,
}

impl TestNode {
    pub fn new() -> Self {
        Self::with_trust("")
    }

    /// A node whose config ends with `trust` (`[[origin]]`, `[trust]` … tables).
    pub fn with_trust(trust: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sluis.toml");
        let key = sluis::seal::NodeKey::generate().unwrap();
        key.save(&dir.path().join("signing.key")).unwrap();
        let org_uuid = uuid::Uuid::new_v4();
        std::fs::write(
            &config,
            format!(
                "[node]\nname = \"test\"\norg = \"TEST\"\norg_uuid = \"{org_uuid}\"\n\
                 data_dir = \".\"\n\n[store]\ncache_mib = 32\n\n\
                 [signing]\nkey = \"signing.key\"\n\n{trust}"
            ),
        )
        .unwrap();
        TestNode {
            dir,
            config,
            org_uuid,
            public_key: key.public_key_b64(),
        }
    }

    /// The `[[origin]]` table that makes another node trust this one's seals.
    pub fn as_origin(&self) -> String {
        format!(
            "[[origin]]\norg_uuid = \"{}\"\npublic_key = \"{}\"\n",
            self.org_uuid, self.public_key
        )
    }

    pub fn db_dir(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    /// Opens the node's store in this process.
    pub fn open(&self) -> sluis::store::Store {
        sluis::store::Store::open(&self.db_dir(), Default::default()).unwrap()
    }

    /// Runs `sluis <args> --config <this node>`.
    pub fn sluis(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(sluis_bin());
        cmd.args(args).arg("--config").arg(&self.config);
        cmd.output().unwrap()
    }
}

pub fn sluis_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluis"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A realistic generated event: `n` attributes over the common indicator types.
pub fn generated_event(seed: u64, n: usize) -> serde_json::Value {
    sluis::testdata::generated_event_json(seed, n)
}

/// A real node running in-process over HTTPS on 127.0.0.1:0, made with the same
/// `sluis init` and `serve` code paths as production. Stopped on drop.
pub struct RunningNode {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub admin_key: String,
    pub ca_pem: String,
    pub state: sluis::http::AppState,
    /// The node's config file (`sluis.toml` in `dir`).
    pub config: PathBuf,
    /// A handle on the listener's TLS acceptor (shares its slot), for
    /// `sluis::node::reload_tls` without a signal.
    pub acceptor: sluis::tls::Acceptor,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningNode {
    /// Initialises a node directory (CA, certificate, keys, admin) and serves it on
    /// its own runtime thread; `tweak` may edit the config text first.
    pub fn start_with(name: &str, org: &str, tweak: impl FnOnce(&mut String)) -> Self {
        Self::start_with_ca(name, org, None, tweak)
    }

    /// [`RunningNode::start_with`] with the node's certificate issued by the CA in
    /// `ca_dir` (created there if absent) instead of a CA of its own, so several
    /// nodes can share one federation CA.
    pub fn start_with_ca(
        name: &str,
        org: &str,
        ca_dir: Option<&Path>,
        tweak: impl FnOnce(&mut String),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let report = sluis::node::init(&sluis::node::InitOptions {
            dir: dir.path().to_owned(),
            name: name.into(),
            org: org.into(),
            org_uuid: None,
            listen: "127.0.0.1:0".into(),
            ca_dir: ca_dir.map(Path::to_owned),
        })
        .unwrap();
        let mut text = std::fs::read_to_string(&report.config).unwrap();
        tweak(&mut text);
        std::fs::write(&report.config, &text).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Self::serve(dir, report.config, report.admin_key, listener)
    }

    /// Serves the node directory `dir` (made by `sluis init`, config `config`) on
    /// `listener`, in-process on its own runtime thread.
    pub fn serve(
        dir: tempfile::TempDir,
        config: PathBuf,
        admin_key: String,
        listener: std::net::TcpListener,
    ) -> Self {
        let cfg = sluis::config::Config::load(&config).unwrap();
        let node = sluis::node::Node::start(&cfg).unwrap();
        let state = node.state().clone();
        let acceptor = node.acceptor().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                node.run(listener, async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        });
        let ca_pem = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
        RunningNode {
            dir,
            url: format!("https://{addr}"),
            admin_key,
            ca_pem,
            state,
            config,
            acceptor,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Stops the node (drained, store closed) and hands back its directory, to
    /// serve again later (a restart).
    pub fn stop(mut self) -> StoppedNode {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let addr: std::net::SocketAddr = self.url.trim_start_matches("https://").parse().unwrap();
        let stopped = StoppedNode {
            dir: std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()),
            admin_key: self.admin_key.clone(),
            config: self.config.clone(),
            addr,
        };
        // Every handle on the store goes with `self`, so it can be opened again.
        drop(self);
        stopped
    }

    pub fn start(name: &str, org: &str) -> Self {
        Self::start_with(name, org, |_| {})
    }

    /// A blocking HTTPS client that trusts only this node's CA.
    pub fn client(&self) -> reqwest::blocking::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap();
        reqwest::blocking::Client::builder()
            .tls_certs_only([ca])
            .build()
            .unwrap()
    }

    /// POSTs JSON with `key`; returns (status, body as JSON or Null, headers).
    pub fn post(
        &self,
        key: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
        let r = self
            .client()
            .post(format!("{}{path}", self.url))
            .header("Authorization", key)
            .header("Accept", "application/json")
            .json(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            headers,
        )
    }

    pub fn get(&self, key: &str, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client()
            .get(format!("{}{path}", self.url))
            .header("Authorization", key)
            .header("Accept", "application/json")
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Creates an organisation with a user of `role_id`; returns (org uuid, key).
    pub fn org_with_user(&self, org: &str, role_id: u64) -> (uuid::Uuid, String) {
        let store = &self.state.store;
        let o = match store.orgs().unwrap().into_iter().find(|o| o.name == org) {
            Some(o) => o,
            None => store.add_org(uuid::Uuid::new_v4(), org, true).unwrap(),
        };
        let n = store.users().unwrap().len();
        let u = store
            .add_user(
                &format!("user{n}@{}.example", org.to_lowercase()),
                o.uuid,
                role_id,
            )
            .unwrap();
        let (key, _) = store.add_auth_key(u.id, "test", 0).unwrap();
        (o.uuid, key)
    }
}

/// A `[[peer]]` table (with a leading newline) to append to a node's config text.
pub fn peer_table(
    name: &str,
    url: &str,
    org_uuid: uuid::Uuid,
    public_key: &str,
    fingerprint: Option<&str>,
) -> String {
    let mut t = format!(
        "\n[[peer]]\nname = \"{name}\"\nurl = \"{url}\"\norg_uuid = \"{org_uuid}\"\n\
         public_key = \"{public_key}\"\n"
    );
    if let Some(fp) = fingerprint {
        t.push_str(&format!("fingerprint = \"{fp}\"\n"));
    }
    t
}

/// A blocking HTTPS client that trusts only the CA in `ca_pem` and presents
/// `identity` (certificate PEM + key PEM) if given.
pub fn mtls_client(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::blocking::Client {
    let root = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let mut b = reqwest::blocking::Client::builder().tls_certs_only([root]);
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// A node directory whose server was stopped: [`StoppedNode::restart`] serves it
/// again on the same address.
pub struct StoppedNode {
    pub dir: tempfile::TempDir,
    pub admin_key: String,
    pub config: PathBuf,
    pub addr: std::net::SocketAddr,
}

impl StoppedNode {
    pub fn restart(self) -> RunningNode {
        let listener = std::net::TcpListener::bind(self.addr).unwrap();
        RunningNode::serve(self.dir, self.config, self.admin_key, listener)
    }

    /// Opens the stopped node's store in this process.
    pub fn open(&self) -> sluis::store::Store {
        sluis::store::Store::open(&self.dir.path().join("db"), Default::default()).unwrap()
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

mod cluster;
#[allow(unused_imports)] // not every test file runs a cluster
pub use cluster::*;

mod process;
#[allow(unused_imports)] // only the tests that run `sluis serve` processes
pub use process::*;

/// Serves `app` over TLS with `tls` on `listener` until the runtime ends: a
/// stand-in for a peer that is not a sluis node (a rogue one, a redirecting one).
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    app: axum::Router,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
        });
    }
}
