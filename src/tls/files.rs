//! Atomic writes of certificate and key files with the right permissions.
//!
//! A private key must never be readable by others, not even for the instant between
//! creating a file and calling `chmod`: the temporary file is created with its final
//! mode, filled, synced, and renamed over the target, so readers see either the old
//! file or the complete new one, and a crash leaves no half-written key behind.

use super::TlsError;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Mode of private key files: owner read/write only.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificate files: public material, world-readable.
pub(crate) const CERT_MODE: u32 = 0o644;

/// Write `contents` to `path` atomically, the file having `mode` from its creation on.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| TlsError::invalid(path, "not a file path"))?
        .to_string_lossy();
    // A random suffix keeps two concurrent writers from sharing a temp file;
    // `create_new` makes a collision an error rather than a shared file.
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}",
        uuid::Uuid::new_v4().simple()
    ));

    let result = (|| {
        let mut file = create_with_mode(&tmp, mode)
            .map_err(|e| TlsError::io(&tmp, "create temporary file", e))?;
        file.write_all(contents)
            .map_err(|e| TlsError::io(&tmp, "write", e))?;
        file.sync_all().map_err(|e| TlsError::io(&tmp, "sync", e))?;
        std::fs::rename(&tmp, path).map_err(|e| TlsError::io(path, "rename into place", e))
    })();
    if result.is_err() {
        // Best effort: the temp file is garbage either way, and the original error
        // is the one worth reporting.
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    sync_dir(dir);
    Ok(())
}

#[cfg(unix)]
fn create_with_mode(path: &Path, mode: u32) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

#[cfg(not(unix))]
fn create_with_mode(path: &Path, _mode: u32) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Persist the rename itself. Failure only weakens durability, not correctness, so
/// it is not an error (some filesystems refuse to open directories).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn key_mode_is_0600_and_rewrite_keeps_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.key");
        write_atomic(&path, b"one", KEY_MODE).unwrap();
        write_atomic(&path, b"two", KEY_MODE).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.key")]);
    }
}
