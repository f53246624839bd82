//! `sluis audit verify` and `sluis audit rotate`.

use super::CliError;
use crate::audit::{anchor, AuditError, AuditLog, Entry, Kind, Origin, Outcome, Report, Trust};
use crate::config::{Config, ConfigError};
use crate::store::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

/// The result of `sluis audit verify`: the report and what could not be checked.
#[derive(Debug)]
pub struct Verified {
    pub file: PathBuf,
    pub report: Report,
    /// What was not checked, and why (no anchor available, …).
    pub notes: Vec<String>,
}

impl Verified {
    /// Exit 0 only if this is true.
    pub fn ok(&self) -> bool {
        self.report.ok()
    }

    /// What `sluis audit verify` prints on stdout: `ok …` or `FAIL line N: …`,
    /// then `key: value` details.
    pub fn lines(&self) -> Vec<String> {
        let r = &self.report;
        let mut out = Vec::new();
        match &r.problem {
            Some(p) => out.push(format!("FAIL {p}")),
            None => out.push(format!(
                "ok: {} lines intact, {} signed checkpoints",
                r.lines, r.checkpoints
            )),
        }
        out.push(format!("file: {}", self.file.display()));
        match r.origin {
            Some(Origin::Genesis) => out.push("starts: at this node's genesis".into()),
            Some(Origin::Continues { seq, hash }) => out.push(format!(
                "starts: continuing an earlier log that ended at seq {seq} with a line of hash {}",
                hex::encode(hash)
            )),
            None => {}
        }
        if let (Some(first), Some(last)) = (r.first_seq, r.last_seq) {
            out.push(format!("seqs: {first} to {last}"));
        }
        if let Some(h) = r.last_hash {
            out.push(format!("last_line_hash: {}", hex::encode(h)));
        }
        match r.last_checkpoint {
            Some((line, seq)) => out.push(format!("last_checkpoint: line {line}, seq {seq}")),
            None if r.lines > 0 => out.push("last_checkpoint: none".into()),
            None => {}
        }
        if !r.signed_by.is_empty() {
            out.push(format!("signed_by: {}", r.signed_by.join(", ")));
        }
        if r.problem.is_none() {
            out.push(format!(
                "unprotected: {} records after the last checkpoint are chained but not signed",
                r.unprotected
            ));
            if let Some(seq) = r.closed {
                out.push(format!(
                    "closed: by `sluis audit rotate` at seq {seq}; a later log continues it"
                ));
            }
            if r.anchor_checked {
                out.push(
                    "anchor: the last checkpoint this node's store remembers is in the log".into(),
                );
            }
        }
        out
    }
}

/// Checks the audit log `file` (default: the config's `<data_dir>/audit.log`).
///
/// Trusted keys: the config's `[signing]` key (its public half), and every
/// `keys` entry (base64, as `sluis keys` prints it) — pass the old public key
/// after a key change. The org is `org`, or the config's `node.org_uuid`. The
/// end of the log is compared with the anchor in the node's store when the
/// store can be opened (not while the node runs: it holds the database lock).
pub fn verify(
    cfg: &Config,
    file: Option<&Path>,
    keys: &[String],
    org: Option<Uuid>,
) -> Result<Verified, CliError> {
    let mut notes = Vec::new();
    let org = org.or(cfg.node.org_uuid).ok_or_else(|| {
        CliError::Config(ConfigError::Invalid {
            path: cfg.source.clone(),
            key: "node.org_uuid".into(),
            message: "needed to check the log's genesis; pass --org if the config has none".into(),
        })
    })?;
    let mut trusted = Vec::new();
    if let Some(s) = &cfg.signing {
        match crate::seal::NodeKey::load(&s.key) {
            Ok(k) => trusted.push(k.verifying_key()),
            Err(e) if !keys.is_empty() => {
                notes.push(format!("the config's signing key is not used: {e}"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    for k in keys {
        trusted.push(
            crate::seal::parse_public_key(k).map_err(|reason| CliError::BadKey {
                key: k.clone(),
                reason,
            })?,
        );
    }
    if trusted.is_empty() {
        return Err(CliError::Config(ConfigError::Invalid {
            path: cfg.source.clone(),
            key: "signing".into(),
            message:
                "no key to check the checkpoints with: the config has no [signing] key; pass --key"
                    .into(),
        }));
    }
    let anchor = match load_anchor(cfg) {
        Ok(a) => a,
        Err(why) => {
            notes.push(format!(
                "the end of the log was not compared with this node's anchor: {why}"
            ));
            None
        }
    };
    let file = file.map_or_else(|| cfg.audit_path(), Path::to_owned);
    let f = std::fs::File::open(&file).map_err(|source| CliError::Io {
        path: file.clone(),
        source,
    })?;
    let trust = Trust { org, keys: trusted };
    let report = crate::audit::verify::verify(&mut std::io::BufReader::new(f), &trust, anchor)
        .map_err(|source| CliError::Io {
            path: file.clone(),
            source,
        })?;
    Ok(Verified {
        file,
        report,
        notes,
    })
}

/// The anchor in the node's store, or why it could not be read.
fn load_anchor(cfg: &Config) -> Result<Option<anchor::Anchor>, String> {
    let db = cfg.db_dir();
    if !db.is_dir() {
        return Err(format!("no database at {}", db.display()));
    }
    match Store::open(&db, cfg.store_options()) {
        Ok(store) => anchor::load(&store).map_err(|e| e.to_string()),
        Err(StoreError::Locked { .. }) => {
            Err("the node is running (it holds its database); stop it to compare".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// What `sluis audit rotate` did.
#[derive(Debug)]
pub struct Rotated {
    /// Where the previous log went, if there was one.
    pub archived: Option<PathBuf>,
    /// The seq the new log continues from (0: a new chain from genesis).
    pub continues_from: u64,
    pub log: PathBuf,
}

/// Starts a new audit log (the node must be stopped). The current log is
/// checked as at start, closed (a `log_closed` record and a checkpoint), and
/// renamed to `audit.log.<last seq>`; the new `audit.log` begins with a
/// checkpoint, signed by this node, that chains from the old log's last line,
/// so the two verify as one history. With `force`, a log that does not check out is
/// renamed to `audit.log.damaged-<time>` (keep it: it is evidence) and the new
/// log continues from the last checkpoint the store remembers, saying so.
pub fn rotate(cfg: &Config, force: bool) -> Result<Rotated, CliError> {
    let sealer = Arc::new(super::sealer(cfg, "audit rotate")?);
    let store = Arc::new(Store::open(&cfg.db_dir(), cfg.store_options())?);
    let path = cfg.audit_path();
    let opts = cfg.audit_options(Some(store.clone()));
    let Previous {
        archived,
        from,
        reason,
    } = match AuditLog::open(&path, sealer.clone(), opts.clone()) {
        Ok(log) => {
            if log.head()?.0 == 0 {
                // An empty log: nothing to keep.
                drop(log);
                std::fs::remove_file(&path).map_err(|source| CliError::Io {
                    path: path.clone(),
                    source,
                })?;
                Previous {
                    archived: None,
                    from: None,
                    reason: "a new log (the previous one was empty)".to_owned(),
                }
            } else {
                // Close the old log: a signed last word, so it verifies on its
                // own although the anchor moves on to the new log.
                log.record(
                    Entry::new(Kind::LogClosed, "operator", Outcome::Ok)
                        .reason("closed by `sluis audit rotate`; a new log continues it"),
                )?;
                log.checkpoint()?;
                let (seq, hash) = log.head()?;
                drop(log);
                archive_closed(&path, seq, hash)?
            }
        }
        // Closed by an earlier rotation that stopped before moving it.
        Err(AuditError::Closed { seq, hash, .. }) => archive_closed(&path, seq, hash)?,
        Err(AuditError::Damaged { problem, .. }) if force => {
            let anchor = anchor::load(&store)?;
            let archived = if path.exists() {
                let to = PathBuf::from(format!(
                    "{}.damaged-{}",
                    path.display(),
                    crate::model::time::now_secs()
                ));
                move_aside(&path, &to)?;
                Some(to)
            } else {
                None
            };
            let kept = archived.as_ref().map_or_else(
                || "it was missing".to_owned(),
                |p| format!("it was moved to {}", p.display()),
            );
            let reason = match anchor {
                Some(a) => format!(
                    "the previous log did not check out ({problem}); {kept}; this log continues from the last checkpoint the store remembers (seq {}): records after it are not vouched for",
                    a.seq
                ),
                None => format!("the previous log did not check out ({problem}); {kept}; this log starts a new chain"),
            };
            Previous {
                archived,
                from: anchor.map(|a| (a.seq, a.hash)),
                reason,
            }
        }
        Err(e) => return Err(e.into()),
    };
    let entry = Entry::new(Kind::Rotated, "operator", Outcome::Ok).reason(reason);
    match from {
        Some(from) => {
            AuditLog::start_continuation(&path, sealer, opts, from, entry)?;
        }
        None => {
            let log = AuditLog::open(&path, sealer, opts)?;
            log.record(entry)?;
            log.checkpoint()?;
        }
    }
    store.flush()?;
    Ok(Rotated {
        archived,
        continues_from: from.map_or(0, |f| f.0),
        log: path,
    })
}

/// What became of the previous log, and what the new one continues from.
struct Previous {
    archived: Option<PathBuf>,
    /// The seq and line hash to chain from; `None`: a new chain from genesis.
    from: Option<(u64, crate::audit::LineHash)>,
    /// Why, for the new log's first record.
    reason: String,
}

/// Moves a closed log to `audit.log.<seq>`; the new log continues from it.
fn archive_closed(
    path: &Path,
    seq: u64,
    hash: crate::audit::LineHash,
) -> Result<Previous, CliError> {
    let to = PathBuf::from(format!("{}.{seq}", path.display()));
    move_aside(path, &to)?;
    let reason = format!(
        "the previous log, closed at seq {seq}, was moved to {}",
        to.display()
    );
    Ok(Previous {
        archived: Some(to),
        from: Some((seq, hash)),
        reason,
    })
}

/// Renames `from` to `to`, refusing to replace anything.
fn move_aside(from: &Path, to: &Path) -> Result<(), CliError> {
    if to.exists() {
        return Err(CliError::Io {
            path: to.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists; move it away first",
            ),
        });
    }
    std::fs::rename(from, to).map_err(|source| CliError::Io {
        path: from.to_owned(),
        source,
    })
}
