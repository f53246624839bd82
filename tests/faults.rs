//! Disk faults under a real `sluis serve` process:
//!
//! * a **full disk** (the node's directory on a small tmpfs, filled by another
//!   writer): below the store's free-space reserve, writes are refused with 507
//!   and a message naming the disk, reads all keep working, and writes resume
//!   without a restart once space is freed. Without the reserve, sled itself
//!   meets the full disk: writes are still refused with a clear 507 or 503
//!   (never a 500), `/healthz` answers 503 promptly, and a restart recovers;
//!   every acknowledged write is intact either way;
//! * a **damaged or truncated database**: `sluis serve` refuses to start with one
//!   `error:` line naming the database directory and `sluis restore`, exits
//!   non-zero, and neither panics nor prints a backtrace; `sluis restore` of a
//!   backup brings the node back.
//!
//! The full-disk tests need to mount a tmpfs (root with CAP_SYS_ADMIN, as in CI);
//! where that is refused they say so loudly on stderr and skip.
//!
//! SIGKILL during writes and during sync: `tests/crash_load.rs`, `tests/crash.rs`,
//! `tests/fed_kill.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A tmpfs mounted for one test, unmounted (lazily, so a straggling handle
/// cannot keep it) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB, or says why it cannot (not root, no
    /// permission to mount in this container).
    fn mount(mib: u32) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Kills the node process on drop, so a failing assertion does not leave it
/// running (and holding the tmpfs).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Event `n` with `attrs` attributes; the first one's value names it.
fn event_body(n: usize, attrs: usize) -> (Uuid, String, Value) {
    let uuid = Uuid::new_v4();
    let value = format!("full-{n}.disk.example");
    let attributes: Vec<Value> = (0..attrs)
        .map(|i| {
            let v = if i == 0 {
                value.clone()
            } else {
                format!("a{i}.full-{n}.disk.example")
            };
            json!({"type": "domain", "value": v})
        })
        .collect();
    let body = json!({"Event": {
        "uuid": uuid,
        "info": format!("disk fault {n}"),
        "distribution": "0",
        "Attribute": attributes,
    }});
    (uuid, value, body)
}

fn post(http: &reqwest::blocking::Client, node: &ProcessNode, body: &Value) -> (u16, Value) {
    let r = http
        .post(format!("{}/events/add", node.url))
        .header("Authorization", &node.admin_key)
        .header("Accept", "application/json")
        .json(body)
        .send()
        .unwrap_or_else(|e| panic!("POST: {e}; the node's log: {}", node.log_text()));
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A write that may get no answer (a flush stuck in sled): `None` then.
fn try_post(node: &ProcessNode, body: &Value) -> Option<(u16, Value)> {
    let http = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(node.ca_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let r = http
        .post(format!("{}/events/add", node.url))
        .header("Authorization", &node.admin_key)
        .header("Accept", "application/json")
        .json(body)
        .send()
        .ok()?;
    let status = r.status().as_u16();
    let text = r.text().ok()?;
    Some((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A read that may get no answer: `None` then.
fn try_get(node: &ProcessNode, path: &str) -> Option<(u16, Value)> {
    let r = node
        .client()
        .get(format!("{}{path}", node.url))
        .header("Authorization", &node.admin_key)
        .header("Accept", "application/json")
        .send()
        .ok()?;
    let status = r.status().as_u16();
    let text = r.text().ok()?;
    Some((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn get(http: &reqwest::blocking::Client, node: &ProcessNode, path: &str) -> (u16, Value) {
    let r = http
        .get(format!("{}{path}", node.url))
        .header("Authorization", &node.admin_key)
        .header("Accept", "application/json")
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}; the node's log: {}", node.log_text()));
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Writes into `path` until the filesystem holding it has at most `leave`
/// bytes free (0: until it is full). Another process filling the disk.
fn fill(path: &Path, leave: u64) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let mut written = 0u64;
    loop {
        let free = fs2::available_space(path).unwrap();
        if leave > 0 && free <= leave {
            break;
        }
        let n = if leave == 0 {
            1 << 20
        } else {
            (free - leave).min(1 << 20) as usize
        };
        match f.write(&vec![0x5au8; n]) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
                break;
            }
        }
    }
    f.sync_all().unwrap();
    written
}

/// Which layer refused writes first, as the node reported it.
#[derive(Debug, PartialEq, Eq)]
enum FirstHit {
    /// The store's free-space reserve: nothing failed, writes resume by
    /// themselves once space is freed.
    Reserve,
    /// sled met the full disk: it keeps the error, writes resume only after a
    /// restart.
    Store,
    /// Only the audit log met it: writes resume by themselves.
    AuditLog,
}

/// The default set-up, and the usual way a disk fills (the node's own writes,
/// or another process, leaving less than the reserve): the node refuses changes
/// before sled or the audit log meet a full disk; reads all go on, and writes
/// resume without a restart once space is freed. (A disk filled to the last
/// byte by someone else can still reach sled through the node's small
/// bookkeeping writes: the cases below.)
#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_recovers_by_itself() {
    if let Some(hit) = full_disk("reserve", 300, 8, 4, false) {
        assert_eq!(hit, FirstHit::Reserve);
    }
}

/// Without the reserve, large writes need fresh pages at once, so sled meets
/// the full disk before the audit log does: sled then takes no write until it
/// is reopened, the node says so on /healthz, and a restart recovers.
#[test]
fn without_the_reserve_sled_meets_the_full_disk_and_a_restart_recovers() {
    // The node's log on the full disk too: failed log writes must not take a
    // request down with them.
    if let Some(hit) = full_disk("no reserve, large writes", 300, 0, 0, true) {
        assert_eq!(hit, FirstHit::Store);
    }
}

/// Without the reserve, small writes: whichever of sled and the audit log
/// needs a fresh page first meets the full disk first (measured: the audit
/// log, which recovers on its own); the guarantees hold either way.
#[test]
fn without_the_reserve_small_writes_are_refused_and_recover() {
    if let Some(hit) = full_disk("no reserve, small writes", 1, 0, 0, false) {
        assert_ne!(hit, FirstHit::Reserve);
    }
}

/// The full-disk scenario: events of `attrs` attributes, a reserve of
/// `reserve_mib`, the disk filled until `leave_mib` are free, the node's log
/// on that disk or elsewhere. `None` if it cannot run here (it says why,
/// loudly).
fn full_disk(
    case: &str,
    attrs: usize,
    reserve_mib: u32,
    leave_mib: u64,
    log_on_disk: bool,
) -> Option<FirstHit> {
    let fs = match Tmpfs::mount(48) {
        Ok(fs) => fs,
        Err(why) => {
            // CI (and anyone who wants the guarantee) sets this: a full-disk test
            // that cannot run there fails instead of passing by skipping.
            if std::env::var_os("SLUIS_REQUIRE_FULL_DISK_TESTS").is_some() {
                panic!(
                    "full-disk test ({case}) cannot run: it needs a small filesystem to fill, \
                     and {why}; SLUIS_REQUIRE_FULL_DISK_TESTS is set, so this is a failure"
                );
            }
            // Straight to stderr, past the test harness's capture, so the skip
            // shows in a passing run.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED full-disk test ({case}): it needs a small filesystem to fill, \
                 and {why}. Run the tests as root with permission to mount (CAP_SYS_ADMIN) to \
                 check full-disk behaviour. ***\n"
            );
            return None;
        }
    };
    let node_dir = fs.path().join("node");
    // The audit log probes a failing disk at every checkpoint: every second here.
    let node = ProcessNode::init(
        &node_dir,
        "full",
        &format!(
            "\n[store]\nmin_free_mib = {reserve_mib}\n\n[limits]\napi_rate_per_sec = 0\n\n\
             [audit]\ncheckpoint_interval = \"1s\"\n"
        ),
    );
    // Unless asked otherwise, the node's log goes off the disk that fills, to
    // be read when the test fails.
    let logs = tempfile::tempdir().unwrap();
    let node = if log_on_disk {
        node
    } else {
        ProcessNode {
            log: logs.path().join("serve.log"),
            ..node
        }
    };
    let http = node.client();
    let mut child = Running(node.start());

    // Acknowledged before the disk fills.
    let mut acked: Vec<(Uuid, String)> = Vec::new();
    for n in 0..20 {
        let (uuid, value, body) = event_body(n, attrs);
        let (s, v) = post(&http, &node, &body);
        assert_eq!(s, 200, "{v}");
        acked.push((uuid, value));
    }

    let filler = fs.path().join("filler");
    let filled = fill(&filler, leave_mib << 20);
    eprintln!("{case}: filled {} MiB", filled >> 20);

    // Writes now fail — possibly after a few that still fit in space sled or
    // the audit log had already claimed. Every failure names the disk; none is
    // a 500.
    let mut refused = 0;
    let mut statuses = Vec::new();
    let mut stored_unaudited: Vec<(Uuid, String)> = Vec::new();
    let mut hit = None;
    for n in 20..400 {
        let (uuid, value, body) = event_body(n, attrs);
        let Some((s, v)) = try_post(&node, &body) else {
            // No answer: sled's flush is stuck (see `Store::write_stalled`).
            statuses.push(0);
            hit.get_or_insert(FirstHit::Store);
            break;
        };
        statuses.push(s);
        let msg = v["message"].as_str().unwrap_or_default().to_owned();
        match s {
            200 => acked.push((uuid, value)),
            // Stored, but its audit record did not fit: the client is told so
            // (and why), and further changes are refused.
            503 if msg.contains("was stored") => {
                assert!(msg.contains("disk is full"), "{v}");
                stored_unaudited.push((uuid, value));
                hit.get_or_insert(FirstHit::AuditLog);
                refused += 1;
            }
            // A flush stuck in sled: refused at the door.
            503 => {
                assert!(msg.contains("restart the node"), "{v}");
                hit.get_or_insert(FirstHit::Store);
                break;
            }
            507 => {
                assert_eq!(v["url"], "/events/add", "MISP's error shape: {v}");
                assert_eq!(v["name"], v["message"], "MISP's error shape: {v}");
                let first = if msg.contains("nearly full") {
                    FirstHit::Reserve
                } else if msg.contains("audit log") {
                    FirstHit::AuditLog
                } else {
                    assert!(
                        msg.contains("disk is full") && msg.contains("restart"),
                        "{v}"
                    );
                    FirstHit::Store
                };
                hit.get_or_insert(first);
                refused += 1;
                if refused >= 5 {
                    break;
                }
            }
            _ => panic!("{case}: write {n} on a full disk: {s} {v}"),
        }
    }
    eprintln!("{case}: statuses on the full disk (0: no answer): {statuses:?}");
    let hit = hit.unwrap_or_else(|| panic!("{case}: the disk never filled: {statuses:?}"));

    // Reads keep working: every acknowledged event, the index, a search. A
    // sled that met the full disk is the exception: a read that finds a page
    // due for a split does the split, a write, and fails (measured), so there
    // reads are only counted.
    let mut readable = 0;
    for (uuid, value) in &acked {
        match try_get(&node, &format!("/events/view/{uuid}")) {
            Some((200, v)) => {
                assert_eq!(v["Event"]["Attribute"][0]["value"], json!(value));
                readable += 1;
            }
            other => assert_eq!(hit, FirstHit::Store, "{case}: a read failed: {other:?}"),
        }
    }
    if hit != FirstHit::Store {
        let (s, v) = get(&http, &node, "/events/index");
        assert_eq!(s, 200, "{v}");
        assert!(v.as_array().unwrap().len() >= acked.len());
        let r = http
            .post(format!("{}/attributes/restSearch", node.url))
            .header("Authorization", &node.admin_key)
            .header("Accept", "application/json")
            .json(&json!({"value": acked[0].1}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    eprintln!(
        "{case}: {readable} of {} acknowledged events readable on the full disk",
        acked.len()
    );

    // /healthz answers promptly, whatever state sled is in, and calls for a
    // restart exactly when sled met the disk.
    let asked = Instant::now();
    let (hs, hv) = get(&http, &node, "/healthz");
    eprintln!("{case}: healthz on the full disk: {hs} {hv}");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "{:?}",
        asked.elapsed()
    );
    if hit == FirstHit::Store {
        assert_eq!(hs, 503, "{hv}");
        assert!(hv["error"].as_str().unwrap().contains("restart"), "{hv}");
    } else {
        assert_eq!((hs, hv["status"].clone()), (200, json!("degraded")), "{hv}");
    }

    // Space returns.
    std::fs::remove_file(&filler).unwrap();
    // The audit log finds out at its next checkpoint (every second here).
    std::thread::sleep(Duration::from_millis(2500));
    let (uuid, value, body) = event_body(1000, attrs);
    let wrote = try_post(&node, &body);
    let (hs, hv) = get(&http, &node, "/healthz");
    eprintln!(
        "{case}: after freeing space: write {:?}; healthz {hs} {hv}",
        wrote.as_ref().map(|(s, v)| (s, v["message"].clone()))
    );
    match wrote {
        // Recovered by itself, and says so.
        Some((200, _)) => {
            assert_ne!(
                hit,
                FirstHit::Store,
                "sled took a write after meeting a full disk"
            );
            acked.push((uuid, value));
            assert_eq!((hs, hv["status"].clone()), (200, json!("ok")), "{hv}");
        }
        // sled keeps its first I/O error until reopened, or its flush is
        // stuck: the node must say it needs a restart, so an orchestrator
        // restarts it.
        other => {
            assert_eq!(hit, FirstHit::Store, "{case}: {other:?}");
            if let Some((s, v)) = &other {
                assert!(*s == 507 || *s == 503, "{v}");
            }
            assert_eq!(hs, 503, "writes fail but /healthz says {hv}");
            let e = hv["error"].as_str().unwrap();
            assert!(e.contains("restart"), "{hv}");
        }
    }

    // A restart (SIGTERM, as an orchestrator sends) is quick, even with a
    // flush stuck in sled, and the node takes writes again with everything
    // acknowledged intact.
    assert!(
        terminate(&mut child.0, Duration::from_secs(30)),
        "the node did not stop on SIGTERM: {}",
        node.log_text()
    );
    child = Running(node.start());
    let (hs, hv) = get(&http, &node, "/healthz");
    assert_eq!((hs, hv["status"].clone()), (200, json!("ok")), "{hv}");
    let (uuid, value, body) = event_body(2000, attrs);
    let (s, v) = post(&http, &node, &body);
    assert_eq!(s, 200, "{v}");
    acked.push((uuid, value));
    for (uuid, value) in acked.iter().chain(&stored_unaudited) {
        let (s, v) = get(&http, &node, &format!("/events/view/{uuid}"));
        assert_eq!(s, 200, "{uuid}: {v}");
        assert_eq!(v["Event"]["Attribute"][0]["value"], json!(value));
    }
    drop(child);

    // The audit log is intact after all this, and nothing panicked.
    let out = node_cli(&node, &["audit", "verify"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!node.log_text().contains("panicked"), "{}", node.log_text());
    Some(hit)
}

fn node_cli(node: &ProcessNode, args: &[&str]) -> Output {
    Command::new(sluis_bin())
        .args(args)
        .arg("--config")
        .arg(&node.config)
        .output()
        .unwrap()
}

/// Copies a directory tree (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Runs `sluis serve` on a node whose database was damaged: it must exit by
/// itself (not serve), non-zero, with one `error:` line naming the database
/// and the way back, and no panic or backtrace (RUST_BACKTRACE is set, so one
/// would show). Returns that line.
fn refused_start(node: &ProcessNode, case: &str) -> String {
    let mut child = Command::new(sluis_bin())
        .args(["serve", "--config"])
        .arg(&node.config)
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{case}: the node started on a damaged database: {}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!status.success(), "{case}: exit {status}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace"),
        "{case}: {err}"
    );
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{case}: one error line: {err}");
    let line = errors[0];
    assert!(
        line.contains(&node.db_dir().display().to_string()),
        "{case}: the line names the database: {line}"
    );
    assert!(line.contains("damaged"), "{case}: {line}");
    assert!(line.contains("sluis restore"), "{case}: {line}");
    line.to_owned()
}

fn db_file(node: &ProcessNode) -> PathBuf {
    node.db_dir().join("db")
}

fn remove_snapshots(node: &ProcessNode) {
    for e in std::fs::read_dir(node.db_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("snap.")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
}

/// Overwrites `len` bytes at `at` in `path` with `byte`.
fn scribble(path: &Path, at: u64, len: usize, byte: u8) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&vec![byte; len]).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn a_damaged_or_truncated_database_is_refused_at_start_with_a_clear_error() {
    // A node with a few MB of events (several of sled's segments), stopped
    // cleanly, and a backup of it.
    let pristine = tempfile::tempdir().unwrap();
    let node = ProcessNode::init(pristine.path(), "damaged", "");
    let feed = pristine.path().join("feed");
    std::fs::create_dir(&feed).unwrap();
    for seed in 0..150u64 {
        let ev = generated_event(5000 + seed, 40);
        std::fs::write(feed.join(format!("{seed:03}.json")), ev.to_string()).unwrap();
    }
    let out = node_cli(&node, &["import", feed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_dir_all(&feed).unwrap();
    let backup = tempfile::tempdir().unwrap();
    let backup_file = backup.path().join("node.sluisbak");
    let out = node_cli(&node, &["backup", "--out", backup_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let size = std::fs::metadata(db_file(&node)).unwrap().len();
    assert!(
        size > 2 << 20,
        "a database of {size} bytes is too small to damage in the middle"
    );
    let snapshots: Vec<PathBuf> = std::fs::read_dir(node.db_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snap.")
        })
        .collect();
    eprintln!(
        "db file {size} bytes, snapshots {snapshots:?}, files {:?}",
        std::fs::read_dir(node.db_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );

    type Damage = Box<dyn Fn(&ProcessNode)>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "db file truncated to zero",
            Box::new(|n| {
                std::fs::File::options()
                    .write(true)
                    .open(db_file(n))
                    .unwrap()
                    .set_len(0)
                    .unwrap()
            }),
        ),
        (
            "db file truncated to half",
            Box::new(move |n| {
                std::fs::File::options()
                    .write(true)
                    .open(db_file(n))
                    .unwrap()
                    .set_len(size / 2)
                    .unwrap()
            }),
        ),
        // Without a snapshot, sled takes a cut log for a crash and recovers to
        // what is left, silently (measured: to an empty database): the store's
        // stamp is what notices. (A few KiB cut from the end of a cleanly
        // closed database lose nothing live, and it opens whole: not a case.)
        (
            "db file cut to 200 KiB, snapshot deleted",
            Box::new(|n| {
                remove_snapshots(n);
                std::fs::File::options()
                    .write(true)
                    .open(db_file(n))
                    .unwrap()
                    .set_len(200 * 1024)
                    .unwrap()
            }),
        ),
        (
            "db file and snapshot deleted",
            Box::new(|n| {
                remove_snapshots(n);
                std::fs::remove_file(db_file(n)).unwrap()
            }),
        ),
        (
            "64 KiB of zeros in the middle of the db file",
            Box::new(move |n| scribble(&db_file(n), size / 2, 64 * 1024, 0)),
        ),
        (
            "64 KiB of 0xff in the middle of the db file",
            Box::new(move |n| scribble(&db_file(n), size / 3, 64 * 1024, 0xff)),
        ),
        (
            "db file deleted",
            Box::new(|n| std::fs::remove_file(db_file(n)).unwrap()),
        ),
        (
            "the store's stamp overwritten",
            Box::new(|n| {
                std::fs::write(n.db_dir().join(sluis::store::health::STAMP_FILE), "garbage")
                    .unwrap()
            }),
        ),
    ];
    for (case, damage) in &cases {
        let work = tempfile::tempdir().unwrap();
        copy_tree(pristine.path(), work.path());
        let copy = ProcessNode {
            dir: work.path().to_owned(),
            config: work.path().join("sluis.toml"),
            admin_key: node.admin_key.clone(),
            url: node.url.clone(),
            ca_pem: node.ca_pem.clone(),
            log: work.path().join("serve.log"),
        };
        damage(&copy);
        let line = refused_start(&copy, case);
        eprintln!("{case}: {line}");
        // The same refusal in-process: a typed error, not a panic.
        let verifying = sluis::store::StoreOptions {
            verify_on_open: true,
            ..Default::default()
        };
        match sluis::store::Store::open(&copy.db_dir(), verifying) {
            Err(sluis::store::StoreError::Damaged { path, .. }) => {
                assert_eq!(path, copy.db_dir(), "{case}")
            }
            Err(e) => panic!("{case}: {e}"),
            Ok(_) => panic!("{case}: opened"),
        }

        if *case == "db file truncated to half" {
            // The way back the error names: restore the backup over it.
            let out = node_cli(
                &copy,
                &["restore", backup_file.to_str().unwrap(), "--force"],
            );
            assert!(out.status.success(), "{}", stderr(&out));
            let store = sluis::store::Store::open(&copy.db_dir(), Default::default()).unwrap();
            assert_eq!(store.event_count(), 150);
        }
    }
}
