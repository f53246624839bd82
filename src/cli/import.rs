//! `sluis import PATH...`: MISP JSON files, or directories of them (MISP feeds),
//! into the store, with a per-file report.
//!
//! Reports are printed only after the events they name were flushed to disk, so a
//! line saying "accepted" is a promise that survives a crash. Flushes are grouped
//! (every [`GROUP_EVENTS`] events or [`GROUP_MILLIS`] ms) to keep bulk imports fast.
//!
//! **Seals.** The store holds only sealed versions, each verified or made here:
//!
//! | the event in the file | what is stored |
//! |---|---|
//! | no seal (a MISP event or feed) | sealed by this node: the importing node vouches for it |
//! | a seal that fails against the trust list | nothing: the event is rejected whole, the reason reported, logged and counted |
//! | a valid seal by this node's org (its own export) | re-sealed by this node over the exact stored (merged) version |
//! | a valid seal by another org | kept, if it still verifies on the exact stored (merged) version; rejected otherwise. Local tags and nested sightings, which the seal does not cover, are dropped, and the event is `locked` (remote-owned) |
//!
//! And only an event's origin may change it: a version whose origin (the org
//! whose seal it will carry) differs from the stored version's is rejected.
//! The per-event logic is [`crate::federation::receive`], shared with the puller.

use super::{progress_bar, CliError};
use crate::federation::receive::Receiver;
use crate::model::parse::parse_events;
use crate::model::Org;
use crate::seal::{Sealer, TrustList};
use crate::store::{Outcome, Store, StoreError};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

const GROUP_EVENTS: usize = 256;
const GROUP_MILLIS: u128 = 250;

/// What happened to one event of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventResult {
    Stored(Outcome, usize),
    Rejected(Option<uuid::Uuid>, String),
}

/// The report for one file.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: PathBuf,
    pub events: Vec<EventResult>,
    /// How many of the rejections were for a seal.
    pub seal_failures: usize,
}

impl FileReport {
    /// `status<TAB>path<TAB>event uuid<TAB>detail`, one line per event.
    pub fn lines(&self) -> Vec<String> {
        let p = self.path.display();
        self.events
            .iter()
            .map(|r| match r {
                EventResult::Stored(o, n) => {
                    format!("{}\t{p}\t{}\t{n} attributes", o.label(), o.uuid())
                }
                EventResult::Rejected(u, why) => format!(
                    "rejected\t{p}\t{}\t{why}",
                    u.map(|u| u.to_string()).unwrap_or_else(|| "-".into())
                ),
            })
            .collect()
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub accepted: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejected: usize,
    /// Of `rejected`: events refused for their seal — it failed, would not
    /// cover the stored version, or names another origin than the stored
    /// version's. Counted apart because it may mean tampering, not a bad file.
    pub seal_failures: usize,
    pub attributes: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files: {} accepted, {} updated, {} unchanged, {} rejected ({} attributes stored)",
            self.files, self.accepted, self.updated, self.unchanged, self.rejected, self.attributes
        )?;
        if self.seal_failures > 0 {
            write!(f, "; {} rejected for their seal", self.seal_failures)?;
        }
        Ok(())
    }
}

/// How `import` treats what it reads: limits, ownership, sealing and trust.
pub struct ImportOptions<'a> {
    /// Largest file accepted, bytes.
    pub max_document_bytes: usize,
    /// When known, each event's owner organisation (MISP's `Org`): on import, as
    /// in MISP, the importing node's organisation owns what it imports, while
    /// `Orgc` keeps the creator.
    pub owner: Option<&'a Org>,
    /// This node's sealer: seals unsealed events and the node's own.
    pub sealer: &'a Sealer,
    /// Whose seals are accepted (see [`crate::config::trust_list`]).
    pub trust: &'a TrustList,
}

/// Expands directories (recursively, sorted) into `.json` files. A feed's
/// `manifest.json` is an index, not an event, and is skipped.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| CliError::Io {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for e in entries {
        if e.is_dir() {
            walk(&e, out)?;
        } else if e.extension().is_some_and(|x| x == "json")
            && e.file_name().is_some_and(|n| n != "manifest.json")
        {
            out.push(e);
        }
    }
    Ok(())
}

/// Imports `files` into `store`. `report` receives each file's report once its
/// events are durable.
pub fn import(
    store: &Store,
    files: &[PathBuf],
    opts: &ImportOptions<'_>,
    report: &mut dyn FnMut(&FileReport),
) -> Result<Summary, CliError> {
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let pb = progress_bar(
        total,
        "{spinner} importing [{bar:30}] {bytes}/{total_bytes} {msg} ({eta})",
    );
    let mut summary = Summary::default();
    let mut pending: Vec<FileReport> = Vec::new();
    let mut pending_events = 0usize;
    let mut last_flush = Instant::now();
    let mut release = |store: &Store, pending: &mut Vec<FileReport>| -> Result<(), CliError> {
        store.flush()?;
        for r in pending.drain(..) {
            report(&r);
        }
        Ok(())
    };
    for path in files {
        summary.files += 1;
        let file = import_file(store, path, opts)?;
        summary.seal_failures += file.seal_failures;
        for r in &file.events {
            match r {
                EventResult::Stored(Outcome::Accepted { .. }, n) => {
                    summary.accepted += 1;
                    summary.attributes += n;
                }
                EventResult::Stored(Outcome::Updated { .. }, n) => {
                    summary.updated += 1;
                    summary.attributes += n;
                }
                EventResult::Stored(Outcome::Unchanged { .. }, _) => summary.unchanged += 1,
                EventResult::Rejected(..) => summary.rejected += 1,
            }
        }
        pending_events += file.events.len();
        pending.push(file);
        pb.inc(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0));
        pb.set_message(format!("{} events", summary.accepted + summary.updated));
        if pending_events >= GROUP_EVENTS || last_flush.elapsed().as_millis() >= GROUP_MILLIS {
            release(store, &mut pending)?;
            pending_events = 0;
            last_flush = Instant::now();
        }
    }
    release(store, &mut pending)?;
    pb.finish_and_clear();
    Ok(summary)
}

/// Imports one file without flushing; storage failures abort, bad input is reported.
fn import_file(
    store: &Store,
    path: &Path,
    opts: &ImportOptions<'_>,
) -> Result<FileReport, CliError> {
    let max = opts.max_document_bytes;
    let mut rep = FileReport {
        path: path.to_owned(),
        events: Vec::new(),
        seal_failures: 0,
    };
    let io = |source| CliError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    // Refuse before reading: a 200 MB file must not be pulled into memory first.
    if usize::try_from(size).map_or(true, |s| s > max) {
        rep.events.push(EventResult::Rejected(
            None,
            format!("file is {size} bytes, larger than the limit of {max} bytes"),
        ));
        return Ok(rep);
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let events = match parse_events(&bytes, max) {
        Ok(e) => e,
        Err(e) => {
            rep.events.push(EventResult::Rejected(None, e.to_string()));
            return Ok(rep);
        }
    };
    for mut ev in events {
        let uuid = Some(ev.uuid).filter(|u| !u.is_nil());
        if let Some(o) = opts.owner {
            ev.org = Some(o.clone());
        }
        let seal_failed = Cell::new(false);
        let receiver = Receiver {
            sealer: opts.sealer,
            trust: opts.trust,
        };
        match receiver.receive_event(store, ev, None, &seal_failed) {
            Ok(o) => {
                let n = store
                    .get_event_header(&o.uuid())?
                    .and_then(|h| h.attribute_count)
                    .unwrap_or(0);
                rep.events.push(EventResult::Stored(o, n as usize));
            }
            Err(
                e @ (StoreError::Invalid(_)
                | StoreError::Refused { .. }
                | StoreError::NotNewer { .. }),
            ) => {
                let why = e.to_string();
                if seal_failed.get() {
                    rep.seal_failures += 1;
                    tracing::warn!(
                        event = %uuid.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
                        file = %path.display(),
                        reason = %why,
                        "sealed event rejected"
                    );
                }
                rep.events.push(EventResult::Rejected(uuid, why));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(rep)
}
