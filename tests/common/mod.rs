//! Shared test helpers: where the real MISP samples are, temporary stores and node
//! directories, and the `sluis` binary. Written once, used by every test in `tests/`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `../shared/data` beside the checkout (CI lays `shared/` there too), or
/// `$SLUIS_SHARED_DATA`.
pub fn shared_data() -> PathBuf {
    if let Ok(p) = std::env::var("SLUIS_SHARED_DATA") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(
        p.is_dir(),
        "MISP sample data not found at {} (set SLUIS_SHARED_DATA)",
        p.display()
    );
    p
}

pub fn samples_dir() -> PathBuf {
    shared_data().join("misp-samples")
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

/// A node directory with a minimal config, removed on drop.
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl TestNode {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sluis.toml");
        std::fs::write(
            &config,
            "[node]\nname = \"test\"\norg = \"TEST\"\ndata_dir = \".\"\n\n[store]\ncache_mib = 32\n",
        )
        .unwrap();
        TestNode { dir, config }
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
