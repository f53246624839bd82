//! `sluis init`: creates a complete node directory once, and refuses to touch an
//! existing node or to start from bad arguments, writing nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

mod common;

use common::*;
use std::process::Command;

fn init(dir: &std::path::Path, listen: &str) -> std::process::Output {
    Command::new(sluis_bin())
        .args(["init", "--dir"])
        .arg(dir)
        .args(["--name", "cert-a", "--org", "CERT-A", "--listen", listen])
        .output()
        .unwrap()
}

#[test]
fn init_creates_once_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let out = init(&dir, "127.0.0.1:8443");
    assert!(out.status.success(), "{}", stderr(&out));
    let key = std::fs::read_to_string(dir.join("admin.key")).unwrap();
    assert!(stdout(&out).contains(key.trim()));
    for f in [
        "sluis.toml",
        "ca.crt",
        "ca.key",
        "node.crt",
        "node.key",
        "signing.key",
        "admin.key",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    #[cfg(unix)]
    for f in ["admin.key", "signing.key", "node.key", "ca.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let before = std::fs::read(dir.join("signing.key")).unwrap();
    let again = init(&dir, "127.0.0.1:8443");
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already holds a node"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read(dir.join("signing.key")).unwrap(),
        before,
        "an existing node was touched"
    );
    assert_eq!(std::fs::read_to_string(dir.join("admin.key")).unwrap(), key);
}

#[test]
fn bad_listen_address_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let out = init(&dir, "not-an-address");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--listen"), "{}", stderr(&out));
    assert!(!dir.exists());
}

/// Runs `sluis <args>` in `cwd` with no `--config` (and none in the environment).
fn bare(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(sluis_bin())
        .current_dir(cwd)
        .env_remove("SLUIS_CONFIG")
        .args(args)
        .output()
        .unwrap()
}

/// A newcomer's first `sluis import FILE` on a machine without a node creates
/// the default node exactly as `sluis serve` does, then imports into it.
#[test]
fn first_import_creates_the_default_node() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = samples_dir().join("event.json");
    let out = bare(tmp.path(), &["import", sample.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("created the default node"), "{err}");
    let node = tmp.path().join("sluis-data");
    for f in [
        "sluis.toml",
        "ca.crt",
        "node.crt",
        "signing.key",
        "admin.key",
    ] {
        assert!(node.join(f).is_file(), "{f} missing");
    }
    assert!(stdout(&out).starts_with("accepted"), "{}", stdout(&out));
    // The node it made is whole: `export` now finds the event.
    let out = bare(tmp.path(), &["export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exported 1 events"),
        "{}",
        stderr(&out)
    );
}

/// Every command that needs an existing node stops with one line saying how to
/// make one, and creates nothing: no partial node, no empty database. (`verify`
/// and `audit verify` check files offline and need no node.)
#[test]
fn reading_commands_without_a_node_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["export"][..],
        &["keys"],
        &["peers"],
        &["support", "list"],
        &["backup", "--out", "b.bak"],
        &["audit", "rotate"],
        &["restore", "b.bak"],
    ] {
        let out = bare(tmp.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("no node here"), "{args:?}: {err}");
        assert!(err.contains("sluis serve"), "{args:?}: {err}");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
}

/// `sluis export --format csv --spreadsheet-safe`: formula cells get a leading
/// `'`; without the flag the csv is MISP's, verbatim.
#[test]
fn export_csv_can_be_spreadsheet_safe() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = tmp.path().join("risky.json");
    std::fs::write(
        &doc,
        serde_json::json!({"Event": {"info": "csv", "Attribute": [
            {"type": "text", "value": "=1+2", "category": "Other"}]}})
        .to_string(),
    )
    .unwrap();
    let out = bare(tmp.path(), &["import", doc.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plain = bare(tmp.path(), &["export", "--format", "csv"]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    assert!(stdout(&plain).contains(",\"=1+2\","), "{}", stdout(&plain));
    let safe = bare(
        tmp.path(),
        &["export", "--format", "csv", "--spreadsheet-safe"],
    );
    assert!(safe.status.success(), "{}", stderr(&safe));
    assert!(stdout(&safe).contains(",\"'=1+2\","), "{}", stdout(&safe));
}
