//! The writer: one append-only file, one mutex, group-committed fsyncs, signed
//! checkpoints, and resuming (with a check of the tail) after a restart.

use super::anchor::{self, Anchor};
use super::record::{
    checkpoint_line, checkpoint_message, entry_line, genesis, line_hash, now_rfc3339, Entry, Kind,
    LineHash, Outcome,
};
use super::verify::{self, Checker, Problem, Start, Trust};
use super::{AuditError, Durability};
use crate::seal::Sealer;
use crate::store::Store;
use base64::Engine as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Tunables (from `[audit]` in the config).
#[derive(Clone)]
pub struct AuditOptions {
    /// A checkpoint after this many records.
    pub checkpoint_records: u64,
    /// How often [`run_checkpoints`] looks; it writes a checkpoint when anything
    /// was recorded since the last one.
    pub checkpoint_interval: Duration,
    /// The store that keeps the anchor (see [`super::anchor`]); without one,
    /// truncation after the last checkpoint cannot be noticed at start.
    pub anchor: Option<Arc<Store>>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            checkpoint_records: 1000,
            checkpoint_interval: Duration::from_secs(60),
            anchor: None,
        }
    }
}

impl std::fmt::Debug for AuditOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditOptions")
            .field("checkpoint_records", &self.checkpoint_records)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("anchor", &self.anchor.as_ref().map(|s| s.path().to_owned()))
            .finish()
    }
}

/// How far back from the end of the file the tail check looks for the last
/// checkpoint before it reads the whole file instead. Checkpoints come at least
/// every `checkpoint_records` records of at most a few KiB each.
const MAX_TAIL_SEARCH: u64 = 16 * 1024 * 1024;

/// The node's audit log. Share it behind an `Arc`; every method may block on
/// disk I/O (use [`AuditLog::record_async`] from async code).
pub struct AuditLog {
    path: PathBuf,
    sealer: Arc<Sealer>,
    opts: AuditOptions,
    writer: Mutex<Writer>,
    /// A second handle on the file, so fsyncs run outside the append lock.
    sync_file: File,
    /// Bytes appended so far (the file's length); only grows.
    written: AtomicU64,
    /// Bytes known to be on disk. Its lock also serialises the fsyncs: a caller
    /// that finds its bytes already covered by a sync that ran while it waited
    /// returns without one (group commit).
    synced: Mutex<u64>,
    /// An append or sync failed; cleared when a later sync succeeds.
    failing: AtomicBool,
    /// The last failure was a full disk (or quota): the API says so.
    full: AtomicBool,
    /// The seq of the last anchor saved, so anchors only move forward.
    anchored: Mutex<u64>,
    /// What opening found that the `node_start` record should say.
    notes: Vec<String>,
}

struct Writer {
    file: File,
    seq: u64,
    last: LineHash,
    len: u64,
    since_checkpoint: u64,
    /// Set when the file may hold a partial line or lost data: nothing more is
    /// written until a restart re-checks the tail.
    broken: Option<String>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("failing", &self.is_failing())
            .finish_non_exhaustive()
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AuditError {
    let path = path.to_owned();
    move |source| AuditError::Io {
        action,
        path,
        source,
    }
}

/// Opens (creating if needed) the file for appending, private to the node's
/// user: the log names users and addresses.
fn open_append(path: &Path) -> Result<File, AuditError> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(io_err("open", path))
}

impl AuditLog {
    /// Opens the log at `path`, creating it if absent, and resumes its chain.
    ///
    /// Before anything is appended the tail is checked: from the last checkpoint
    /// (its signature, if made with the current key) to the end, the chain and
    /// the seqs; and the anchor, if `opts.anchor` holds one. A damaged, cut or
    /// replaced log is an error — the node does not start on top of a log it
    /// cannot vouch for (see `sluis audit rotate` for starting a new one on
    /// purpose). A last line without its newline — a crash in the middle of a
    /// write, never acknowledged — is moved to `<path>.partial-<time>` and noted
    /// in the next `node_start` record.
    pub fn open(
        path: &Path,
        sealer: Arc<Sealer>,
        opts: AuditOptions,
    ) -> Result<AuditLog, AuditError> {
        let file = open_append(path)?;
        let mut notes = Vec::new();
        if let Some(note) = set_aside_partial_line(path, &file)? {
            notes.push(note);
        }
        let len = file.metadata().map_err(io_err("stat", path))?.len();
        let anchor = match &opts.anchor {
            Some(s) => anchor::load(s)?,
            None => None,
        };
        let trust = Trust {
            org: sealer.org(),
            keys: vec![sealer.key().verifying_key()],
        };
        let (start, from) = match find_window(path, len, anchor.map(|a| a.seq))? {
            Some(offset) => (Start::Anywhere, offset),
            None => (Start::File, 0),
        };
        let mut checker = Checker::new(&trust, anchor, start).allow_unknown_keys();
        let mut reader = std::io::BufReader::new(File::open(path).map_err(io_err("open", path))?);
        reader
            .seek(SeekFrom::Start(from))
            .map_err(io_err("read", path))?;
        let mut buf = Vec::new();
        let damaged = |problem: Problem| AuditError::Damaged {
            path: path.to_owned(),
            problem,
            context: if start == Start::File {
                String::new()
            } else {
                format!(" (line numbers counted from byte {from}, the record before the last checkpoint)")
            },
        };
        loop {
            match verify::read_line(&mut reader, &mut buf) {
                Ok(None) => break,
                Ok(Some(true)) => checker.line(&buf).map_err(damaged)?,
                // The partial line was set aside above; another one means the
                // file changed under us.
                Ok(Some(false)) => {
                    return Err(damaged(Problem::Incomplete {
                        line: checker.lines() + 1,
                    }))
                }
                Err(None) => {
                    return Err(damaged(Problem::TooLong {
                        line: checker.lines() + 1,
                    }))
                }
                Err(Some(e)) => return Err(io_err("read", path)(e)),
            }
        }
        let report = checker.finish();
        if let Some(p) = report.problem.clone() {
            return Err(damaged(p));
        }
        if let (Some(_), Some(seq), Some(hash)) = (report.closed, report.last_seq, report.last_hash)
        {
            if report.unprotected == 0 {
                return Err(AuditError::Closed {
                    path: path.to_owned(),
                    seq,
                    hash,
                });
            }
        }
        if !report.unchecked.is_empty() {
            notes.push(format!(
                "the last checkpoint was signed by key {}, not by this node's current key {}: the signing key was changed",
                report.unchecked.join(", "),
                sealer.key().key_id()
            ));
        }
        let (seq, last) = match (report.last_seq, report.last_hash) {
            (Some(s), Some(h)) => (s, h),
            _ => (0, genesis(sealer.org(), &sealer.key().verifying_key())),
        };
        let sync_file = file.try_clone().map_err(io_err("open", path))?;
        Ok(AuditLog {
            path: path.to_owned(),
            sealer,
            writer: Mutex::new(Writer {
                file,
                seq,
                last,
                len,
                since_checkpoint: report.unprotected,
                broken: None,
            }),
            sync_file,
            written: AtomicU64::new(len),
            synced: Mutex::new(len),
            failing: AtomicBool::new(false),
            full: AtomicBool::new(false),
            anchored: Mutex::new(anchor.map_or(0, |a| a.seq)),
            notes,
            opts,
        })
    }

    /// Starts a new log file at `path` (which must not exist) that continues an
    /// earlier one: its first line is a checkpoint, signed by this node, chaining
    /// from `from` (the earlier log's last seq and line hash), followed by a
    /// `log_rotated` record saying why. The verifier accepts a file that starts
    /// this way and reports what it continues from.
    pub fn start_continuation(
        path: &Path,
        sealer: Arc<Sealer>,
        opts: AuditOptions,
        from: (u64, LineHash),
        entry: Entry,
    ) -> Result<AuditLog, AuditError> {
        if path.exists() {
            return Err(AuditError::Io {
                action: "create",
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists"),
            });
        }
        let file = open_append(path)?;
        let sync_file = file.try_clone().map_err(io_err("open", path))?;
        let log = AuditLog {
            path: path.to_owned(),
            sealer,
            writer: Mutex::new(Writer {
                file,
                seq: from.0,
                last: from.1,
                len: 0,
                since_checkpoint: 0,
                broken: None,
            }),
            sync_file,
            written: AtomicU64::new(0),
            synced: Mutex::new(0),
            failing: AtomicBool::new(false),
            full: AtomicBool::new(false),
            anchored: Mutex::new(0),
            notes: Vec::new(),
            opts,
        };
        {
            let mut w = log.lock()?;
            log.checkpoint_locked(&mut w)?;
        }
        log.record(entry)?;
        log.checkpoint()?;
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &AuditOptions {
        &self.opts
    }

    /// The seq and line hash of the last line written.
    pub fn head(&self) -> Result<(u64, LineHash), AuditError> {
        let w = self.lock()?;
        Ok((w.seq, w.last))
    }

    /// True while the log cannot be relied on to take a record: an append or
    /// fsync failed and no sync has succeeded since. The API refuses writes
    /// meanwhile (an unaudited change is worse than a refused one).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Whether the failure that made the log [failing](AuditLog::is_failing)
    /// was a full disk (or quota): it ends once space is freed (the periodic
    /// checkpoint is the probe).
    pub fn disk_full(&self) -> bool {
        self.is_failing() && self.full.load(Ordering::Acquire)
    }

    /// Whether the log stopped for good: a failed fsync (or an append it could
    /// not undo) left the file in a state only a restart re-checks. The node
    /// reports itself unhealthy then.
    pub fn needs_restart(&self) -> bool {
        self.writer.lock().map_or(true, |w| w.broken.is_some())
    }

    /// Marks the log failing, noting whether for lack of space.
    fn fail(&self, e: &std::io::Error) {
        self.full.store(
            matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            Ordering::Release,
        );
        self.failing.store(true, Ordering::Release);
    }

    fn lock(&self) -> Result<MutexGuard<'_, Writer>, AuditError> {
        let w = self.writer.lock().map_err(|_| AuditError::Broken {
            path: self.path.clone(),
            reason: "a writer panicked while appending".into(),
        })?;
        if let Some(reason) = &w.broken {
            return Err(AuditError::Broken {
                path: self.path.clone(),
                reason: reason.clone(),
            });
        }
        Ok(w)
    }

    /// Records `entry` with its kind's default durability
    /// ([`Kind::default_durability`]) and returns its seq. Blocks on disk I/O.
    pub fn record(&self, entry: Entry) -> Result<u64, AuditError> {
        let d = entry.kind.default_durability();
        self.record_with(entry, d)
    }

    /// Records `entry`; with [`Durability::Synced`] it is on disk when this
    /// returns. Several `Written` records followed by one [`AuditLog::sync`]
    /// cost one fsync (for batches, e.g. a page of records from a peer).
    pub fn record_with(&self, entry: Entry, durability: Durability) -> Result<u64, AuditError> {
        if entry.kind == Kind::Checkpoint {
            return Err(AuditError::Reserved);
        }
        let (seq, end, checkpoint) = {
            let mut w = self.lock()?;
            let seq = w.seq + 1;
            let line = entry_line(&entry, seq, &now_rfc3339(), &w.last);
            let mut end = self.append_locked(&mut w, line)?;
            w.since_checkpoint += 1;
            let mut checkpoint = None;
            if w.since_checkpoint >= self.opts.checkpoint_records.max(1) {
                // The record is in; a failed checkpoint is retried after the
                // next record or by the checkpointer, and must not fail it.
                match self.checkpoint_locked(&mut w) {
                    Ok((a, e)) => {
                        checkpoint = Some(a);
                        end = e;
                    }
                    Err(e) => tracing::error!(error = %e, "audit log: cannot write a checkpoint"),
                }
            }
            (seq, end, checkpoint)
        };
        if durability == Durability::Synced || checkpoint.is_some() {
            self.sync_to(end)?;
        }
        if let Some(a) = checkpoint {
            self.save_anchor(a);
        }
        Ok(seq)
    }

    /// Records `entry` from async code, on a blocking thread.
    pub async fn record_async(self: &Arc<Self>, entry: Entry) -> Result<u64, AuditError> {
        let log = self.clone();
        tokio::task::spawn_blocking(move || log.record(entry))
            .await
            .map_err(|e| AuditError::Worker(e.to_string()))?
    }

    /// Records `entry`, and on failure logs it loudly (`tracing::error`) instead of
    /// returning the error: for paths that go on either way (a refusal is
    /// refused whether or not its record could be written). Returns whether the
    /// record was written.
    pub fn record_or_log(&self, entry: Entry) -> bool {
        let kind = entry.kind.name();
        let actor = entry.actor.clone();
        match self.record(entry) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, kind, %actor, "AUDIT LOG WRITE FAILED: this event is not in the audit log");
                false
            }
        }
    }

    /// [`AuditLog::record_or_log`] from async code.
    pub async fn record_or_log_async(self: &Arc<Self>, entry: Entry) -> bool {
        let log = self.clone();
        match tokio::task::spawn_blocking(move || log.record_or_log(entry)).await {
            Ok(written) => written,
            Err(e) => {
                tracing::error!(error = %e, "AUDIT LOG WRITE FAILED: the audit worker failed");
                false
            }
        }
    }

    /// Makes everything recorded so far durable (one fsync, shared with any
    /// concurrent callers).
    pub fn sync(&self) -> Result<(), AuditError> {
        self.sync_to(self.written.load(Ordering::Acquire))
    }

    /// Appends one line; on failure removes whatever part of it reached the
    /// file, so the file keeps ending at a whole line.
    fn append_locked(&self, w: &mut Writer, mut line: Vec<u8>) -> Result<u64, AuditError> {
        let hash = line_hash(&line);
        line.push(b'\n');
        if let Err(e) = w.file.write_all(&line) {
            self.fail(&e);
            if let Err(t) = w.file.set_len(w.len) {
                w.broken = Some(format!(
                    "a failed append ({e}) could not be undone ({t}); the file may end in a partial line"
                ));
            }
            return Err(io_err("append to", &self.path)(e));
        }
        w.seq += 1;
        w.last = hash;
        w.len += line.len() as u64;
        self.written.store(w.len, Ordering::Release);
        Ok(w.len)
    }

    fn checkpoint_locked(&self, w: &mut Writer) -> Result<(Anchor, u64), AuditError> {
        let seq = w.seq + 1;
        let time = now_rfc3339();
        let msg = checkpoint_message(self.sealer.org(), seq, &w.last, &time);
        let sig = base64::engine::general_purpose::STANDARD
            .encode(self.sealer.key().sign(&msg).to_bytes());
        let line = checkpoint_line(
            seq,
            &time,
            &w.last,
            &self.sealer.key().key_id().to_string(),
            &sig,
        );
        let hash = line_hash(&line);
        let end = self.append_locked(w, line)?;
        w.since_checkpoint = 0;
        Ok((Anchor { seq, hash }, end))
    }

    /// Writes a signed checkpoint if anything was recorded since the last one
    /// (or if the log is failing: the checkpoint is then the probe that shows
    /// whether the disk takes writes again), makes it durable and moves the
    /// anchor. Returns the checkpoint's seq, if one was written.
    pub fn checkpoint(&self) -> Result<Option<u64>, AuditError> {
        let (anchor, end) = {
            let mut w = self.lock()?;
            if w.since_checkpoint == 0 && !self.is_failing() {
                return Ok(None);
            }
            self.checkpoint_locked(&mut w)?
        };
        self.sync_to(end)?;
        self.save_anchor(anchor);
        Ok(Some(anchor.seq))
    }

    fn sync_to(&self, end: u64) -> Result<(), AuditError> {
        let mut synced = self.synced.lock().map_err(|_| AuditError::Broken {
            path: self.path.clone(),
            reason: "a writer panicked while syncing".into(),
        })?;
        if *synced >= end {
            return Ok(());
        }
        let upto = self.written.load(Ordering::Acquire);
        match self.sync_file.sync_data() {
            Ok(()) => {
                *synced = upto;
                self.failing.store(false, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.fail(&e);
                // After a failed fsync the kernel may have dropped the dirty
                // pages and will not report it again: what is on disk is
                // unknown, so stop here; a restart re-checks the tail.
                if let Ok(mut w) = self.writer.lock() {
                    w.broken = Some(format!("fsync failed: {e}"));
                }
                Err(io_err("sync", &self.path)(e))
            }
        }
    }

    fn save_anchor(&self, a: Anchor) {
        let Some(store) = &self.opts.anchor else {
            return;
        };
        let Ok(mut anchored) = self.anchored.lock() else {
            return;
        };
        if a.seq <= *anchored {
            return;
        }
        match anchor::save(store, &a) {
            Ok(()) => *anchored = a.seq,
            Err(e) => {
                tracing::error!(error = %e, seq = a.seq, "audit log: cannot remember the checkpoint in the store (truncation of the log will not be noticed)")
            }
        }
    }

    /// Records that the node started: its name, and anything opening the log
    /// found (a partial last line set aside, a changed key).
    pub fn node_start(&self, node: &str, listen: &str) -> Result<u64, AuditError> {
        let mut reason = format!("sluis {} listening on {listen}", env!("CARGO_PKG_VERSION"));
        for n in &self.notes {
            reason.push_str("; ");
            reason.push_str(n);
        }
        self.record(
            Entry::new(Kind::NodeStart, "node", Outcome::Ok)
                .subject(node)
                .reason(reason),
        )
    }

    /// Records that the node stops, writes the final checkpoint, and flushes the
    /// anchor's store. Records after this still work (late sync tasks); they
    /// are covered by the next checkpoint, at the latest at the next start.
    pub fn node_stop(&self, node: &str) -> Result<(), AuditError> {
        self.record(Entry::new(Kind::NodeStop, "node", Outcome::Ok).subject(node))?;
        self.checkpoint()?;
        if let Some(s) = &self.opts.anchor {
            if let Err(e) = s.flush() {
                tracing::error!(error = %e, "audit log: cannot flush the anchor");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl AuditLog {
    /// Makes every later append fail with a real I/O error (the file handle is
    /// swapped for a read-only one), without marking the log failing: what a
    /// disk that stops taking writes looks like to the next caller.
    pub(crate) fn break_writes_for_test(&self) {
        let ro = File::open(&self.path).expect("the log file exists");
        self.writer.lock().expect("not poisoned").file = ro;
    }
}

/// Writes a checkpoint every `checkpoint_interval` if anything was recorded
/// since the last one (or to probe a failing log). Runs until dropped/aborted.
pub async fn run_checkpoints(log: Arc<AuditLog>) {
    let period = log.opts.checkpoint_interval.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let l = log.clone();
        match tokio::task::spawn_blocking(move || l.checkpoint()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "audit log: periodic checkpoint failed"),
            Err(e) => tracing::error!(error = %e, "audit log: checkpoint worker failed"),
        }
    }
}

/// Moves a last line without its newline aside (see [`AuditLog::open`]).
fn set_aside_partial_line(path: &Path, file: &File) -> Result<Option<String>, AuditError> {
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut r = File::open(path).map_err(io_err("open", path))?;
    let window = len.min(verify::MAX_LINE as u64 + 1);
    r.seek(SeekFrom::Start(len - window))
        .map_err(io_err("read", path))?;
    let mut tail = Vec::with_capacity(window as usize);
    r.take(window)
        .read_to_end(&mut tail)
        .map_err(io_err("read", path))?;
    if tail.last() == Some(&b'\n') {
        return Ok(None);
    }
    let start = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => len - window + i as u64 + 1,
        None if window == len => 0,
        // No newline in the last MAX_LINE bytes: not an interrupted write.
        None => {
            return Err(AuditError::Damaged {
                path: path.to_owned(),
                problem: Problem::TooLong { line: 0 },
                context: " (line 0: the end of the file, whose last 64 KiB hold no newline)".into(),
            })
        }
    };
    let partial = &tail[(start - (len - window)) as usize..];
    let aside = PathBuf::from(format!(
        "{}.partial-{}",
        path.display(),
        crate::model::time::now_secs()
    ));
    std::fs::write(&aside, partial).map_err(io_err("write", &aside))?;
    file.set_len(start).map_err(io_err("truncate", path))?;
    file.sync_all().map_err(io_err("sync", path))?;
    tracing::warn!(path = %path.display(), bytes = partial.len(), aside = %aside.display(), "audit log ended in a partial line (interrupted write); moved it aside");
    Ok(Some(format!(
        "an incomplete last line ({} bytes, from an interrupted write) was moved to {}",
        partial.len(),
        aside.display()
    )))
}

/// Where the check at open starts: the byte offset of the line just before
/// the target checkpoint — the anchored one (seq `anchor`), or the last one if
/// there is no anchor — searching back at most [`MAX_TAIL_SEARCH`] bytes.
/// `None` if there is no such checkpoint that close to the end (then the whole
/// file is checked). Starting one line early lets the checker tie the
/// checkpoint to the line it seals, and shows a closing `log_closed` record.
fn find_window(path: &Path, len: u64, anchor: Option<u64>) -> Result<Option<u64>, AuditError> {
    #[derive(serde::Deserialize)]
    struct SeqKind {
        seq: u64,
        kind: String,
    }
    let mut r = File::open(path).map_err(io_err("open", path))?;
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    let mut block = 64 * 1024u64;
    while start > 0 && len - start < MAX_TAIL_SEARCH {
        let from = start.saturating_sub(block);
        let mut chunk = vec![0u8; (start - from) as usize];
        r.seek(SeekFrom::Start(from))
            .map_err(io_err("read", path))?;
        r.read_exact(&mut chunk).map_err(io_err("read", path))?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        start = from;
        block = block.saturating_mul(2);
        // Complete lines only: before the first newline may be a line cut by
        // the window (unless the window reached the start of the file).
        let skip = if start == 0 {
            0
        } else {
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let body = &buf[skip..];
        let line_start = |end: usize| {
            body[..end]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
        };
        // Walk the lines backwards; `end` is just past a line's newline.
        let mut end = body.len();
        while end > 0 {
            let ls = line_start(end - 1);
            let target = serde_json::from_slice::<SeqKind>(&body[ls..end - 1])
                .is_ok_and(|h| h.kind == "checkpoint" && anchor.is_none_or(|a| a == h.seq));
            if target {
                if ls > 0 {
                    return Ok(Some(start + (skip + line_start(ls - 1)) as u64));
                }
                if start == 0 {
                    // The checkpoint is the file's first line.
                    return Ok(Some(0));
                }
                // The line before it is not in the buffer yet: read further.
                break;
            }
            if anchor.is_some_and(|a| {
                serde_json::from_slice::<SeqKind>(&body[ls..end - 1]).is_ok_and(|h| h.seq < a)
            }) {
                // Past the anchored seq without finding it: check everything.
                return Ok(None);
            }
            end = ls;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify::{verify, Origin};
    use crate::audit::Problem;

    struct Kit {
        dir: tempfile::TempDir,
        sealer: Arc<Sealer>,
        store: Arc<Store>,
    }

    impl Kit {
        fn new() -> Kit {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Store::open(&dir.path().join("db"), Default::default()).unwrap());
            let sealer = Arc::new(Sealer::new(
                crate::seal::NodeKey::generate().unwrap(),
                uuid::Uuid::new_v4(),
            ));
            Kit { dir, sealer, store }
        }
        fn path(&self) -> PathBuf {
            self.dir.path().join("audit.log")
        }
        fn opts(&self, every: u64) -> AuditOptions {
            AuditOptions {
                checkpoint_records: every,
                anchor: Some(self.store.clone()),
                ..Default::default()
            }
        }
        fn open(&self, every: u64) -> Result<AuditLog, AuditError> {
            AuditLog::open(&self.path(), self.sealer.clone(), self.opts(every))
        }
        fn trust(&self) -> Trust {
            Trust {
                org: self.sealer.org(),
                keys: vec![self.sealer.key().verifying_key()],
            }
        }
        fn verify(&self) -> verify::Report {
            let a = anchor::load(&self.store).unwrap();
            let mut r = std::io::BufReader::new(File::open(self.path()).unwrap());
            verify(&mut r, &self.trust(), a).unwrap()
        }
        fn lines(&self) -> Vec<String> {
            std::fs::read_to_string(self.path())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
        fn write_lines(&self, lines: &[String]) {
            let mut text = lines.join("\n");
            text.push('\n');
            std::fs::write(self.path(), text).unwrap();
        }
    }

    fn write(n: u32) -> Entry {
        Entry::write("a@b.example", "events.add").subject(format!("subject-{n}"))
    }

    #[test]
    fn records_chain_from_genesis_and_checkpoints_verify() {
        let k = Kit::new();
        let log = k.open(3).unwrap();
        for i in 0..7 {
            log.record(write(i)).unwrap();
        }
        let lines = k.lines();
        // 7 records and a checkpoint after every 3rd: r r r C r r r C r
        assert_eq!(lines.len(), 9, "{lines:#?}");
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            first["prev"],
            hex::encode(genesis(k.sealer.org(), &k.sealer.key().verifying_key()))
        );
        assert_eq!(first["seq"], 1);
        for (i, pair) in lines.windows(2).enumerate() {
            let next: serde_json::Value = serde_json::from_str(&pair[1]).unwrap();
            assert_eq!(next["prev"], hex::encode(line_hash(pair[0].as_bytes())));
            assert_eq!(next["seq"], i as u64 + 2);
        }
        let cp: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
        assert_eq!(cp["kind"], "checkpoint");
        assert_eq!(cp["key_id"], k.sealer.key().key_id().to_string());
        let r = k.verify();
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.lines, 9);
        assert_eq!(r.checkpoints, 2);
        assert_eq!(r.unprotected, 1);
        assert_eq!(r.origin, Some(Origin::Genesis));
        assert!(r.anchor_checked);
        assert_eq!(anchor::load(&k.store).unwrap().unwrap().seq, 8);
    }

    #[test]
    fn checkpoint_only_when_something_is_new() {
        let k = Kit::new();
        let log = k.open(1000).unwrap();
        assert_eq!(log.checkpoint().unwrap(), None);
        log.record(write(1)).unwrap();
        assert_eq!(log.checkpoint().unwrap(), Some(2));
        assert_eq!(log.checkpoint().unwrap(), None);
        assert!(k.verify().ok());
    }

    #[test]
    fn a_checkpoint_cannot_be_recorded_by_a_caller() {
        let k = Kit::new();
        let log = k.open(1000).unwrap();
        let e = Entry::new(Kind::Checkpoint, "x", Outcome::Ok);
        assert!(matches!(log.record(e), Err(AuditError::Reserved)));
        assert!(k.lines().is_empty());
    }

    #[test]
    fn reopening_resumes_the_chain() {
        let k = Kit::new();
        {
            let log = k.open(2).unwrap();
            for i in 0..3 {
                log.record(write(i)).unwrap();
            }
            log.node_stop("n").unwrap();
        }
        {
            let log = k.open(2).unwrap();
            log.node_start("n", "127.0.0.1:1").unwrap();
            log.record(write(9)).unwrap();
        }
        let r = k.verify();
        assert!(r.ok(), "{r:?}");
        let seqs: Vec<u64> = k
            .lines()
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn reopening_without_checkpoint_checks_from_genesis() {
        let k = Kit::new();
        {
            let log = k.open(1000).unwrap();
            log.record(write(1)).unwrap();
            log.record(write(2)).unwrap();
        }
        k.open(1000).unwrap().record(write(3)).unwrap();
        assert!(k.verify().ok());
    }

    #[test]
    fn open_refuses_an_altered_tail() {
        let k = Kit::new();
        {
            let log = k.open(1000).unwrap();
            for i in 0..4 {
                log.record(write(i)).unwrap();
            }
        }
        let mut lines = k.lines();
        lines[1] = lines[1].replace("subject-1", "subject-X");
        k.write_lines(&lines);
        let err = k.open(1000).unwrap_err();
        assert!(
            matches!(
                &err,
                AuditError::Damaged {
                    problem: Problem::Altered { line: 2, next: 3 },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn open_refuses_a_log_cut_before_the_anchor() {
        let k = Kit::new();
        {
            let log = k.open(2).unwrap();
            for i in 0..6 {
                log.record(write(i)).unwrap();
            }
        }
        // r r C r r C r r C: cut after the first checkpoint.
        let lines = k.lines();
        k.write_lines(&lines[..3]);
        let err = k.open(2).unwrap_err();
        assert!(
            matches!(
                &err,
                AuditError::Damaged {
                    problem: Problem::Truncated {
                        anchor: 9,
                        last: 3,
                        ..
                    },
                    ..
                }
            ),
            "{err}"
        );
        // Removing the file altogether is no way around it.
        std::fs::remove_file(k.path()).unwrap();
        assert!(matches!(k.open(2).unwrap_err(), AuditError::Damaged { .. }));
    }

    #[test]
    fn open_sets_an_interrupted_line_aside() {
        let k = Kit::new();
        {
            let log = k.open(1000).unwrap();
            log.record(write(1)).unwrap();
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(k.path())
            .unwrap();
        f.write_all(b"{\"seq\":2,\"ti").unwrap();
        drop(f);
        let log = k.open(1000).unwrap();
        log.node_start("n", "x").unwrap();
        drop(log);
        let lines = k.lines();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].contains("incomplete last line"), "{}", lines[1]);
        let aside: Vec<_> = std::fs::read_dir(k.dir.path())
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().into_string().unwrap();
                n.starts_with("audit.log.partial-").then_some(n)
            })
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            std::fs::read(k.dir.path().join(&aside[0])).unwrap(),
            b"{\"seq\":2,\"ti"
        );
        assert!(k.verify().ok());
    }

    #[test]
    fn a_key_change_is_noted_and_new_checkpoints_use_the_new_key() {
        let k = Kit::new();
        {
            let log = k.open(1000).unwrap();
            log.record(write(1)).unwrap();
            log.node_stop("n").unwrap();
        }
        let new = Arc::new(Sealer::new(
            crate::seal::NodeKey::generate().unwrap(),
            k.sealer.org(),
        ));
        let log = AuditLog::open(&k.path(), new.clone(), k.opts(1000)).unwrap();
        log.node_start("n", "x").unwrap();
        log.node_stop("n").unwrap();
        assert!(
            k.lines()[3].contains("signing key was changed"),
            "{}",
            k.lines()[3]
        );
        // Both keys are needed to verify; either alone names the line it cannot check.
        let mut r = std::io::BufReader::new(File::open(k.path()).unwrap());
        let only_new = Trust {
            org: k.sealer.org(),
            keys: vec![new.key().verifying_key()],
        };
        let rep = verify(&mut r, &only_new, None).unwrap();
        assert!(
            matches!(rep.problem, Some(Problem::Genesis { line: 1, .. })),
            "{rep:?}"
        );
        let both = Trust {
            org: k.sealer.org(),
            keys: vec![k.sealer.key().verifying_key(), new.key().verifying_key()],
        };
        let mut r = std::io::BufReader::new(File::open(k.path()).unwrap());
        let rep = verify(&mut r, &both, None).unwrap();
        assert!(rep.ok(), "{rep:?}");
        assert_eq!(rep.signed_by.len(), 2);
    }

    #[test]
    fn a_continuation_verifies_and_says_what_it_continues() {
        let k = Kit::new();
        let (seq, hash) = {
            let log = k.open(1000).unwrap();
            log.record(write(1)).unwrap();
            log.node_stop("n").unwrap();
            log.head().unwrap()
        };
        let old = k.dir.path().join("audit.log.1");
        std::fs::rename(k.path(), &old).unwrap();
        let entry = Entry::new(Kind::Rotated, "operator", Outcome::Ok).reason("rotated");
        let log = AuditLog::start_continuation(
            &k.path(),
            k.sealer.clone(),
            k.opts(1000),
            (seq, hash),
            entry,
        )
        .unwrap();
        log.record(write(2)).unwrap();
        drop(log);
        let r = k.verify();
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.origin, Some(Origin::Continues { seq, hash }));
        assert_eq!(r.first_seq, Some(seq + 1));
        // And it reopens.
        k.open(1000).unwrap().record(write(3)).unwrap();
        assert!(k.verify().ok());
    }

    #[test]
    fn concurrent_records_get_distinct_contiguous_seqs() {
        let k = Kit::new();
        let log = Arc::new(k.open(50).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..40 {
                        log.record(write(t * 100 + i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let r = k.verify();
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.lines, 160 + 3);
    }

    #[test]
    fn open_checks_the_line_the_last_checkpoint_seals() {
        let k = Kit::new();
        {
            let log = k.open(3).unwrap();
            for i in 0..7 {
                log.record(write(i)).unwrap();
            }
        }
        // r r r C r r r C r: alter the record just before the last checkpoint.
        let mut lines = k.lines();
        lines[6] = lines[6].replace("subject-5", "subject-X");
        k.write_lines(&lines);
        let err = k.open(3).unwrap_err();
        assert!(
            matches!(
                &err,
                AuditError::Damaged {
                    problem: Problem::Altered { line: 1, next: 2 },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("counted from byte"), "{err}");
    }

    #[test]
    fn verify_names_a_forged_or_altered_checkpoint() {
        let k = Kit::new();
        {
            let log = k.open(2).unwrap();
            for i in 0..4 {
                log.record(write(i)).unwrap();
            }
        }
        // r r C r r C: the first checkpoint is line 3.
        let orig = k.lines();
        let cp: serde_json::Value = serde_json::from_str(&orig[2]).unwrap();
        let check = |line: String| {
            let mut lines = orig.clone();
            lines[2] = line;
            k.write_lines(&lines);
            let r = k.verify();
            k.write_lines(&orig);
            r.problem
        };
        // Another signature of the right length.
        let other = Sealer::new(crate::seal::NodeKey::generate().unwrap(), k.sealer.org());
        let msg = crate::audit::record::checkpoint_message(k.sealer.org(), 3, &[0; 32], "t");
        let forged =
            base64::engine::general_purpose::STANDARD.encode(other.key().sign(&msg).to_bytes());
        let sig = cp["signature"].as_str().unwrap();
        assert_eq!(
            check(orig[2].replace(sig, &forged)),
            Some(Problem::BadSignature { line: 3 })
        );
        // A signed field changed: the time.
        let time = cp["time"].as_str().unwrap();
        assert_eq!(
            check(orig[2].replace(time, "2000-01-01T00:00:00.000Z")),
            Some(Problem::BadSignature { line: 3 })
        );
        // An unsigned field changed, or one added.
        assert_eq!(
            check(orig[2].replace("\"actor\":\"node\"", "\"actor\":\"x\"")),
            Some(Problem::CheckpointAltered { line: 3 })
        );
        assert_eq!(
            check(orig[2].replace("\"outcome\"", "\"extra\":1,\"outcome\"")),
            Some(Problem::CheckpointAltered { line: 3 })
        );
        assert!(k.verify().ok());
    }

    #[test]
    fn verify_names_tampering_with_the_first_line() {
        let k = Kit::new();
        {
            let log = k.open(1000).unwrap();
            for i in 0..3 {
                log.record(write(i)).unwrap();
            }
        }
        let orig = k.lines();
        let check = |lines: Vec<String>| {
            k.write_lines(&lines);
            let r = k.verify();
            k.write_lines(&orig);
            r.problem
        };
        // Deleted: the new first line does not chain from genesis.
        assert!(matches!(
            check(orig[1..].to_vec()),
            Some(Problem::Genesis { line: 1, .. })
        ));
        // Its seq changed.
        let mut t = orig.clone();
        t[0] = t[0].replace("\"seq\":1,", "\"seq\":4,");
        assert_eq!(
            check(t),
            Some(Problem::Missing {
                line: 1,
                found: 4,
                expected: 1
            })
        );
        // Another node's log (another org's genesis).
        let other = Trust {
            org: uuid::Uuid::new_v4(),
            keys: vec![k.sealer.key().verifying_key()],
        };
        let mut r = std::io::BufReader::new(File::open(k.path()).unwrap());
        let rep = verify(&mut r, &other, None).unwrap();
        assert!(
            matches!(rep.problem, Some(Problem::Genesis { line: 1, .. })),
            "{rep:?}"
        );
        assert!(k.verify().ok());
    }

    #[test]
    fn open_finds_the_anchor_far_from_the_end() {
        let k = Kit::new();
        {
            let log = k.open(1000).unwrap();
            log.record(write(0)).unwrap();
            log.checkpoint().unwrap();
            // ~200 KiB after the checkpoint: the search reads several blocks.
            for i in 0..200 {
                log.record(write(i).reason("r".repeat(1000))).unwrap();
            }
        }
        let log = k.open(1000).unwrap();
        assert_eq!(log.head().unwrap().0, 202);
        log.record(write(9)).unwrap();
        drop(log);
        assert!(k.verify().ok());
    }

    #[test]
    fn open_refuses_a_closed_log() {
        let k = Kit::new();
        let head = {
            let log = k.open(1000).unwrap();
            log.record(write(1)).unwrap();
            log.record(Entry::new(Kind::LogClosed, "operator", Outcome::Ok))
                .unwrap();
            log.checkpoint().unwrap();
            log.head().unwrap()
        };
        match k.open(1000).unwrap_err() {
            AuditError::Closed { seq, hash, .. } => assert_eq!((seq, hash), head),
            e => panic!("{e}"),
        }
        // On its own a closed log verifies, and says it is closed.
        let r = k.verify();
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.closed, Some(2));
    }

    /// What a record costs, next to what the store's flush before every
    /// acknowledged write costs on the same disk.
    #[test]
    #[ignore = "a measurement, not a check: cargo test --release --lib measure_record_cost -- --ignored --nocapture"]
    fn measure_record_cost() {
        use std::time::{Duration, Instant};
        fn show(name: &str, mut t: Vec<Duration>) {
            t.sort();
            let p = |q: f64| t[((t.len() - 1) as f64 * q) as usize];
            println!(
                "{name}: n={} p50={:?} p99={:?} max={:?}",
                t.len(),
                p(0.5),
                p(0.99),
                t[t.len() - 1]
            );
        }
        let k = Kit::new();
        let log = Arc::new(k.open(1000).unwrap());
        for (name, d, n) in [
            ("record, written", Durability::Written, 5000),
            ("record, synced", Durability::Synced, 1000),
        ] {
            let t = (0..n)
                .map(|i| {
                    let s = Instant::now();
                    log.record_with(write(i), d).unwrap();
                    s.elapsed()
                })
                .collect();
            show(name, t);
        }
        let start = Instant::now();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        log.record(write(t * 1000 + i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let el = start.elapsed();
        println!(
            "record, synced, 8 threads: 2000 in {el:?} = {:.0}/s (group commit)",
            2000.0 / el.as_secs_f64()
        );
        let t = (0..1000)
            .map(|i: u32| {
                let s = Instant::now();
                k.store.set_meta_value("measure", &i.to_be_bytes()).unwrap();
                k.store.flush().unwrap();
                s.elapsed()
            })
            .collect();
        show("store flush (for comparison)", t);
        drop(log);
        assert!(k.verify().ok());
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let k = Kit::new();
        k.open(1000).unwrap().record(write(1)).unwrap();
        let mode = std::fs::metadata(k.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
