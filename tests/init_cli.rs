//! `sluis init`: creates a complete node directory once, and refuses to touch an
//! existing node or to start from bad arguments, writing nothing.

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
