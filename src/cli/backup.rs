//! `sluis backup --out FILE` and `sluis restore FILE`: the whole database to one
//! file and back (the format and its guarantees: [`crate::store::backup`]).
//!
//! **Online or offline.** sled lets one process open the database. `backup` first
//! opens it directly (the node is stopped); if a running node holds it, `backup`
//! asks that node instead, at `GET /admin/backup` on `[node] url` (or `--url`),
//! trusting only the federation CA (`[tls] ca`) and authenticating with the
//! node's admin key (`<data_dir>/admin.key`). Either way the snapshot is
//! consistent, and the file is written beside its final name, fsynced, read back
//! and checked whole before it is renamed into place: a file at `--out` is always
//! a complete, verified backup. `restore` needs the node stopped.

use super::remote::{admin_client, chain, node_url};
use super::{progress_bar, CliError};
use crate::config::Config;
use crate::store::backup::{self, Phase, Restored, Summary};
use crate::store::{Store, StoreError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where a backup was taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The database directory, opened directly (the node was stopped).
    Database(PathBuf),
    /// The running node at this URL.
    Node(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Database(p) => write!(f, "the database in {} (offline)", p.display()),
            Source::Node(u) => write!(f, "the running node at {u} (online)"),
        }
    }
}

/// What `backup` wrote.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub source: Source,
    pub summary: Summary,
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> CliError + '_ {
    move |err| {
        CliError::Backup(backup::BackupError::Io {
            path: path.to_owned(),
            err,
        })
    }
}

fn spinner(template: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(5),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}

/// Writes a backup of the node `cfg` describes to `out`, which must not exist.
/// `url` overrides `[node] url` for the online path.
pub fn backup(cfg: &Config, out: &Path, url: Option<&str>) -> Result<BackupReport, CliError> {
    if out.exists() {
        return Err(io_err(out)(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "already exists (a backup never overwrites a file)",
        )));
    }
    let db = cfg.db_dir();
    if !db.is_dir() {
        return Err(io_err(&db)(io::Error::new(
            io::ErrorKind::NotFound,
            "no database here (is --config the node's?)",
        )));
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            io_err(out)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file name",
            ))
        })?;
    let partial = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    match write_and_check(cfg, &db, &partial, url) {
        Ok((source, summary)) => {
            std::fs::rename(&partial, out).map_err(io_err(out))?;
            sync_parent(out)?;
            Ok(BackupReport {
                path: out.to_owned(),
                source,
                summary,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Writes the snapshot into `partial`, fsyncs it, and checks it as read back.
fn write_and_check(
    cfg: &Config,
    db: &Path,
    partial: &Path,
    url: Option<&str>,
) -> Result<(Source, Summary), CliError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(partial)
        .map_err(io_err(partial))?;
    let mut w = io::BufWriter::with_capacity(1 << 20, file);
    let pb = spinner("{spinner} backing up {bytes} ({elapsed}) {msg}");
    let source = match Store::open(db, cfg.store_options()) {
        Ok(store) => {
            pb.set_message("from the database");
            store.backup_to(&mut w, &mut |n| pb.set_position(n))?;
            Source::Database(db.to_owned())
        }
        Err(StoreError::Locked { .. }) => {
            let base = node_url(cfg, url)?;
            pb.set_message(format!("from {base}"));
            fetch(cfg, &base, &mut w, &|n| pb.set_position(n))?;
            Source::Node(base)
        }
        Err(e) => return Err(e.into()),
    };
    let file = w
        .into_inner()
        .map_err(|e| io_err(partial)(e.into_error()))?;
    file.sync_all().map_err(io_err(partial))?;
    drop(file);
    pb.finish_and_clear();
    // Read back what is on disk: a cut-off transfer or a bad disk shows here,
    // not at restore time.
    let len = std::fs::metadata(partial).map_err(io_err(partial))?.len();
    let pb = progress_bar(len, "{spinner} checking [{bar:30}] {bytes}/{total_bytes}");
    let summary = backup::verify_file(partial, &mut |n| pb.set_position(n))?;
    pb.finish_and_clear();
    Ok((source, summary))
}

/// Streams `GET <base>/admin/backup` into `out`.
fn fetch(
    cfg: &Config,
    base: &str,
    out: &mut dyn Write,
    progress: &dyn Fn(u64),
) -> Result<(), CliError> {
    let remote = |reason: String| CliError::Remote {
        url: format!("{base}/admin/backup"),
        reason,
    };
    let (client, key) = admin_client(cfg, "backup")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| remote(format!("cannot start the HTTP client: {e}")))?;
    let url = format!("{base}/admin/backup");
    runtime.block_on(async {
        let mut resp = client
            .get(&url)
            .header("Authorization", key)
            .send()
            .await
            .map_err(|e| remote(chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| body.chars().take(200).collect());
            return Err(remote(format!("the node answered {status}: {message}")));
        }
        let mut received = 0u64;
        loop {
            let chunk = resp.chunk().await.map_err(|e| {
                remote(format!(
                    "the transfer broke off after {received} bytes: {}",
                    chain(&e)
                ))
            })?;
            let Some(chunk) = chunk else { break };
            out.write_all(&chunk)
                .map_err(|e| remote(format!("cannot write the backup: {e}")))?;
            received += chunk.len() as u64;
            progress(received);
        }
        Ok(())
    })
}

/// Restores the backup `file` into the database directory of `cfg` (the node
/// stopped). `force` moves an existing database aside instead of refusing.
pub fn restore(cfg: &Config, file: &Path, force: bool) -> Result<Restored, CliError> {
    let len = std::fs::metadata(file).map_err(io_err(file))?.len();
    let pb = progress_bar(
        len,
        "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
    );
    let mut current = None;
    let restored = backup::restore(
        file,
        &cfg.db_dir(),
        &cfg.store_options(),
        force,
        &mut |phase, n| {
            if current != Some(phase) {
                current = Some(phase);
                pb.set_message(match phase {
                    Phase::Verifying => "checking",
                    Phase::Restoring => "restoring",
                });
            }
            pb.set_position(n);
        },
    )?;
    pb.finish_and_clear();
    Ok(restored)
}

/// Makes a rename in `path`'s directory durable.
fn sync_parent(path: &Path) -> Result<(), CliError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: Option<&str>) -> Config {
        let mut c = Config::embedded_default();
        c.node.url = url.map(str::to_owned);
        c
    }

    #[test]
    fn the_node_url_comes_from_the_flag_or_the_config() {
        assert_eq!(
            node_url(&cfg(Some("https://cert-a.example:8443/")), None).unwrap(),
            "https://cert-a.example:8443"
        );
        assert_eq!(
            node_url(&cfg(Some("https://0.0.0.0:8443")), None).unwrap(),
            "https://127.0.0.1:8443"
        );
        assert_eq!(
            node_url(&cfg(Some("https://[::]:8443")), None).unwrap(),
            "https://[::1]:8443"
        );
        assert_eq!(
            node_url(&cfg(Some("https://a:1")), Some("https://b:2")).unwrap(),
            "https://b:2"
        );
        let e = node_url(&cfg(None), None).unwrap_err().to_string();
        assert!(e.contains("node.url"), "{e}");
    }
}
