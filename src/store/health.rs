//! Faults of the disk under the store: a full disk, a damaged database, and a
//! database that silently lost changes it had acknowledged.
//!
//! What sled 0.34 does, measured (see `tests/faults.rs`), and what the store
//! does about it:
//!
//! * **Full disk.** sled does not survive meeting one in place. A write that
//!   cannot reach the disk fails with an I/O error of kind `StorageFull` (the
//!   store names it [`StoreError::StorageFull`], the API answers 507), and sled
//!   then refuses every later write with the same error, *even once space is
//!   free again*: it keeps its first I/O error (the log buffer that failed never
//!   becomes stable) until the database is reopened. Reads mostly go on, but a
//!   read that finds a page due for a split does the split — a write — and fails.
//!   Worse, when the error hits sled's background segment cleaner it is only
//!   logged, and a later flush waits for ever. So the store keeps sled away
//!   from a full disk: below a free-space reserve ([`Store::check_space`],
//!   `[store] min_free_mib`) writes are refused before sled is asked, reads are
//!   untouched, and writes resume by themselves once space is freed. If the
//!   disk fills past the reserve anyway, the store records the failed flush
//!   ([`Store::check_writable`]) or notices the stuck one
//!   ([`Store::write_stalled`]), `/healthz` answers 503, and a restart
//!   recovers with every acknowledged write (each was fsynced before its
//!   answer).
//! * **Damaged files.** sled returns `Corruption` for some damage, and *panics*
//!   for other damage (e.g. zeroed pages in the middle of its log: "tried to
//!   serialize Uninitialized", or an index out of bounds in its segment
//!   accounting); both become [`StoreError::Damaged`] at open, a one-line error
//!   that names the directory and the way back (`sluis restore`). Damage in the
//!   middle of the log shows only when that page is read: with
//!   `verify_on_open` ([`Store::verify_all`]) every record is read at open.
//! * **Truncation.** sled treats a log cut short as a crash and recovers to the
//!   last intact record: without a snapshot, a `db` file truncated to a few
//!   hundred KiB or to nothing opens as a new, empty database — silently. The
//!   store therefore keeps a *stamp* beside sled's files (`sluis.stamp` in the
//!   database directory): the highest change sequence it has seen on disk. A
//!   database that opens with fewer changes than its stamp lost acknowledged
//!   data and is refused. The stamp is written at most once per
//!   [`STAMP_EVERY`] (plus at open and at close), so losing only the changes of
//!   the last second before a crash is not detected this way; it is a fault
//!   detector, not a defence against someone who can write the directory.

use super::{Store, StoreError};
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// The stamp's file name inside the database directory. sled leaves files it
/// does not know alone, and `sluis restore` moves the whole directory aside, so
/// a restored database starts with its own stamp.
pub const STAMP_FILE: &str = "sluis.stamp";

/// How often, at most, a flush rewrites the stamp (one extra fsync each time).
pub const STAMP_EVERY: Duration = Duration::from_secs(1);

/// The default free-space reserve (`[store] min_free_mib`): room for the
/// writes already past the check, the audit log, and sled's own segment
/// rewrites. Raise it with `[limits] max_document_mib`: one large event takes
/// a few times its size on disk.
pub const DEFAULT_MIN_FREE_MIB: u64 = 128;

const STAMP_HEADER: &str = "sluis store stamp v1";

/// Whether a sled error means the disk (or the user's quota) is full.
pub(crate) fn is_storage_full(e: &sled::Error) -> bool {
    // sled re-creates the `io::Error` when it hands out its kept error, so the
    // OS error number is gone and only the kind is left.
    matches!(e, sled::Error::Io(io) if matches!(
        io.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ))
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        if is_storage_full(&e) {
            StoreError::StorageFull(e)
        } else {
            StoreError::Sled(e)
        }
    }
}

/// A flush that has not returned for this long is taken for stuck (see
/// [`Store::write_stalled`]). A healthy fsync takes milliseconds; a loaded
/// disk, seconds.
pub const STALLED_AFTER: Duration = Duration::from_secs(10);

/// The store's record of disk faults: the stamp, the first failed flush, and
/// whether flushes are completing.
pub(super) struct Health {
    stamp: Mutex<Stamped>,
    /// Set once the open checks passed: only then is the stamp written (a
    /// database refused at open must keep the stamp that refused it).
    opened: AtomicBool,
    /// Why the database stopped taking writes (sled keeps its first I/O error
    /// until it is reopened).
    write_failure: Mutex<Option<String>>,
    /// Flushes running now.
    flushing: AtomicUsize,
    /// When (ms after `epoch`) a flush last returned, or the first of the
    /// running ones started: while flushes run, the time since this is how long
    /// none has completed.
    progress: AtomicU64,
    epoch: Instant,
}

struct Stamped {
    seq: u64,
    at: Option<Instant>,
}

impl Health {
    pub(super) fn new() -> Self {
        Health {
            stamp: Mutex::new(Stamped { seq: 0, at: None }),
            opened: AtomicBool::new(false),
            write_failure: Mutex::new(None),
            flushing: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// Counts a flush as running until dropped (see [`Health::progress`]).
struct Flushing<'a>(&'a Health);

impl<'a> Flushing<'a> {
    fn start(h: &'a Health) -> Self {
        if h.flushing.fetch_add(1, Ordering::AcqRel) == 0 {
            h.progress.store(h.now_ms(), Ordering::Release);
        }
        Flushing(h)
    }
}

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        self.0.progress.store(self.0.now_ms(), Ordering::Release);
        self.0.flushing.fetch_sub(1, Ordering::AcqRel);
    }
}

fn stamp_path(dir: &Path) -> PathBuf {
    dir.join(STAMP_FILE)
}

/// `path` as an operator types it: `data_dir = "."` makes `<dir>/./db`.
fn shown(path: &Path) -> PathBuf {
    path.components().collect()
}

fn damaged(dir: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Damaged {
        path: shown(dir),
        detail: detail.into(),
    }
}

/// sled's `Corruption`, said without its (empty) backtrace field. (Generic so
/// as not to name sled's pointer type, which it exports only for its tests.)
fn corruption<P: std::fmt::Debug>(at: &Option<P>) -> String {
    match at {
        Some(p) => format!("sled found corrupted data (at {p:?})"),
        None => "sled found corrupted data".into(),
    }
}

/// Reads the stamp: `None` if there is none (a new database, or one made
/// before stamps existed).
fn read_stamp(dir: &Path) -> Result<Option<u64>, StoreError> {
    let path = stamp_path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(damaged(
                dir,
                format!("cannot read {}: {e}", shown(&path).display()),
            ))
        }
    };
    let mut lines = text.lines();
    let seq = match (lines.next(), lines.next(), lines.next()) {
        (Some(STAMP_HEADER), Some(l), None) => l
            .strip_prefix("durable_sequence ")
            .and_then(|n| n.parse::<u64>().ok()),
        _ => None,
    };
    seq.map(Some).ok_or_else(|| {
        damaged(
            dir,
            format!(
                "{} is not a store stamp (it was damaged too?); if you are sure the database itself is intact, delete that file to skip this check",
                shown(&path).display()
            ),
        )
    })
}

/// Writes the stamp atomically (temporary file, fsync, rename): a crash leaves
/// the old stamp or the new one, and either is a true lower bound.
fn write_stamp(dir: &Path, seq: u64) -> std::io::Result<()> {
    let path = stamp_path(dir);
    let tmp = dir.join(format!("{STAMP_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(format!("{STAMP_HEADER}\ndurable_sequence {seq}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}

thread_local! {
    /// Set while this thread runs sled under [`quietly`]: its panics are
    /// captured here instead of printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static CAPTURED: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Runs `f`, turning a panic into `Err(message)` without printing it.
///
/// sled 0.34 panics on some damaged files instead of returning `Corruption`
/// (measured: zeroed or overwritten pages in the middle of the `db` file). The
/// store only reads or opens sled here, and after a panic drops everything sled
/// built, so no half-updated state is used again. The panic hook is wrapped once
/// (process-wide, keeping whatever hook was installed) and is silent only on the
/// thread that is inside `quietly`, so other panics print as before.
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| {
                        let file = l.file().rsplit('/').next().unwrap_or(l.file());
                        format!(" at {file}:{}", l.line())
                    })
                    .unwrap_or_default();
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                CAPTURED.with(|c| *c.borrow_mut() = Some(format!("{msg}{at}")));
            } else {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|_| {
        CAPTURED
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| "a panic".into())
    })
}

/// Opens sled in `dir`: its corruption errors and panics become
/// [`StoreError::Damaged`], everything else goes to `classify` (locks, I/O).
pub(super) fn open_db(
    config: &sled::Config,
    dir: &Path,
    classify: impl FnOnce(sled::Error) -> StoreError,
) -> Result<sled::Db, StoreError> {
    match quietly(|| config.open()) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Corruption { at, .. })) => Err(damaged(dir, corruption(&at))),
        Ok(Err(e)) => Err(classify(e)),
        Err(panic) => Err(damaged(dir, format!("sled failed reading it ({panic})"))),
    }
}

/// Runs the first reads of an opened database (`f`): damage they find, as an
/// error or a panic, becomes [`StoreError::Damaged`].
pub(super) fn first_reads<T>(
    dir: &Path,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match quietly(f) {
        Ok(Ok(x)) => Ok(x),
        Ok(Err(StoreError::Sled(sled::Error::Corruption { at, .. }))) => {
            Err(damaged(dir, corruption(&at)))
        }
        Ok(Err(StoreError::Corrupt { tree, reason })) => Err(damaged(
            dir,
            format!("a record in {tree} does not decode: {reason}"),
        )),
        Ok(Err(e)) => Err(e),
        Err(panic) => Err(damaged(dir, format!("sled failed reading it ({panic})"))),
    }
}

impl Store {
    /// The check at open, before anything is written: a database that holds
    /// fewer changes than its stamp (or none at all, while a stamp says it was
    /// made) lost data it had on disk — truncated or damaged — and is refused.
    pub(super) fn check_intact(&self, fresh: bool) -> Result<(), StoreError> {
        let Some(stamped) = read_stamp(&self.path)? else {
            return Ok(());
        };
        let last = self.last_sequence()?;
        let detail = if fresh {
            format!(
                "it opens as a new, empty database, but {} says it held changes up to {stamped}: its files were truncated or replaced",
                shown(&stamp_path(&self.path)).display()
            )
        } else if last < stamped {
            format!(
                "it holds changes up to {last}, but changes up to {stamped} had reached the disk before ({}): its files were truncated or damaged",
                shown(&stamp_path(&self.path)).display()
            )
        } else {
            return Ok(());
        };
        Err(damaged(&self.path, detail))
    }

    /// Reads every record of the database once, so that damage sled would
    /// only meet when a request reads that page is found now: as
    /// [`StoreError::Damaged`] (sled reports it as an error or a panic; both
    /// are caught). Returns the number of records read. Takes about as long as
    /// reading the live data from disk.
    pub fn verify_all(&self) -> Result<u64, StoreError> {
        let started = Instant::now();
        let n = first_reads(&self.path, || {
            let mut n = 0u64;
            for kv in self.t.data.iter() {
                kv?;
                n += 1;
            }
            Ok(n)
        })?;
        tracing::info!(records = n, seconds = started.elapsed().as_secs_f64(), path = %shown(&self.path).display(), "database checked");
        Ok(n)
    }

    /// Marks the open checks passed and stamps what recovery found.
    pub(super) fn opened(&self, seq: u64) {
        self.health.opened.store(true, Ordering::Release);
        self.stamp(seq, true);
    }

    /// Moves the stamp to `seq` (a sequence known to be on disk), at most once
    /// per [`STAMP_EVERY`] unless `now`. A failure is logged, not returned: the
    /// stamp only detects damage, and a full disk must not fail a write that
    /// sled already made durable.
    pub(super) fn stamp(&self, seq: u64, now: bool) {
        if !self.health.opened.load(Ordering::Acquire) {
            return;
        }
        // A concurrent flush is stamping: this one's sequence is covered by the
        // next stamp.
        let Ok(mut s) = self.health.stamp.try_lock() else {
            return;
        };
        let due = now || s.at.is_none_or(|t| t.elapsed() >= STAMP_EVERY);
        if seq <= s.seq && s.at.is_some() || !due {
            return;
        }
        match write_stamp(&self.path, seq) {
            Ok(()) => {
                s.seq = seq;
                s.at = Some(Instant::now());
            }
            Err(e) => {
                // Retried at the next flush after STAMP_EVERY, not at every one.
                s.at = Some(Instant::now());
                tracing::warn!(error = %e, path = %stamp_path(&self.path).display(), "cannot write the store's stamp");
            }
        }
    }

    /// Refuses a write while the disk holding the database has less free
    /// space than the reserve (`min_free_bytes`): sled is then never the one to
    /// meet a full disk, reads go on, and writes resume by themselves once space
    /// is freed. Cheap (one `statvfs`); a failure to ask is logged and lets the
    /// write through (sled's own error is the backstop).
    pub fn check_space(&self) -> Result<(), StoreError> {
        let reserve = self.opts.min_free_bytes;
        if reserve == 0 {
            return Ok(());
        }
        match fs2::available_space(&self.path) {
            Ok(available) if available < reserve => Err(StoreError::LowSpace {
                path: shown(&self.path),
                available,
                reserve,
            }),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, path = %self.path.display(), "cannot ask how much disk space is free");
                Ok(())
            }
        }
    }

    /// sled's flush and the OS-level sync after it, counted as running while it runs (see
    /// [`Store::write_stalled`]); a failure is recorded ([`Store::check_writable`]).
    pub(super) fn flush_db(&self) -> Result<(), StoreError> {
        let _running = Flushing::start(&self.health);
        self.db.flush().map_err(|e| self.flush_failed(e))?;
        // sled's flush is not an fsync on Linux: see `durable`.
        self.synced
            .sync()
            .map_err(|e| self.flush_failed(sled::Error::Io(e)))?;
        Ok(())
    }

    /// How long flushes have been running without any completing, if longer
    /// than [`STALLED_AFTER`]. sled 0.34 can wait forever in a flush after it
    /// met a full disk in its background segment cleaner (measured: the error is
    /// logged, not kept, and the flush waits for a write that never comes);
    /// the writer holding the store's lock then blocks every other write. The
    /// API refuses changes while this is `Some`, and `/healthz` reports it, so
    /// the node is restarted.
    pub fn write_stalled(&self) -> Option<Duration> {
        self.flushes_waiting()
            .filter(|stalled| *stalled >= STALLED_AFTER)
    }

    /// How long running flushes have gone without one completing (`None`
    /// when none runs).
    fn flushes_waiting(&self) -> Option<Duration> {
        if self.health.flushing.load(Ordering::Acquire) == 0 {
            return None;
        }
        let since = self.health.progress.load(Ordering::Acquire);
        Some(Duration::from_millis(
            self.health.now_ms().saturating_sub(since),
        ))
    }

    /// Records that a flush failed: sled keeps its first I/O error, so every
    /// later write fails too until the database is reopened.
    fn flush_failed(&self, e: sled::Error) -> StoreError {
        if let Ok(mut f) = self.health.write_failure.lock() {
            if f.is_none() {
                tracing::error!(error = %e, path = %shown(&self.path).display(), "the database stopped taking writes; a restart is needed once the disk is healthy");
                *f = Some(format!("a write failed: {e}"));
            }
        }
        StoreError::from(e)
    }

    /// Whether the database still takes writes. Once a write failed to reach
    /// the disk, sled refuses writes until it is reopened, however much space
    /// is freed: this then answers [`StoreError::Unwritable`], and the node
    /// reports itself unhealthy so it is restarted. Otherwise it flushes (cheap
    /// when nothing is pending), which is how a failure of sled's background
    /// flush is noticed.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        let recorded = || {
            self.health
                .write_failure
                .lock()
                .ok()
                .and_then(|f| f.clone())
        };
        if let Some(stalled) = self.write_stalled() {
            return Err(StoreError::Unwritable {
                path: shown(&self.path),
                reason: format!(
                    "a write to disk has not completed for {} s",
                    stalled.as_secs()
                ),
            });
        }
        if recorded().is_none() {
            // A failure here is recorded by `flush`.
            let _ = self.flush();
        }
        match recorded() {
            None => Ok(()),
            Some(reason) => Err(StoreError::Unwritable {
                path: shown(&self.path),
                reason,
            }),
        }
    }
}

impl Drop for Store {
    /// Stamps the last sequence known durable. sled flushes once more as it
    /// closes; those changes are stamped at the next open.
    fn drop(&mut self) {
        let seq = *self.durable.borrow();
        self.stamp(seq, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_under_quietly_is_an_error_and_later_panics_still_unwind() {
        let r: Result<(), String> = quietly(|| panic!("tried to serialize Uninitialized"));
        let msg = r.unwrap_err();
        assert!(
            msg.starts_with("tried to serialize Uninitialized at health.rs:"),
            "{msg}"
        );
        assert!(!QUIET.with(Cell::get), "quiet mode ends with the call");
        assert!(std::panic::catch_unwind(|| panic!("ordinary")).is_err());
    }

    #[test]
    fn stamps_round_trip_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_stamp(dir.path()).unwrap(), None);
        write_stamp(dir.path(), 42).unwrap();
        assert_eq!(read_stamp(dir.path()).unwrap(), Some(42));
        std::fs::write(stamp_path(dir.path()), "durable_sequence 9\n").unwrap();
        let e = read_stamp(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is not a store stamp"), "{e}");
    }

    #[test]
    fn a_flush_that_does_not_return_is_seen_as_stalled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Default::default()).unwrap();
        assert_eq!(store.flushes_waiting(), None);
        // A flush that never returns, as sled's can after a full disk.
        let stuck = Flushing::start(&store.health);
        std::thread::sleep(Duration::from_millis(30));
        // Other flushes starting meanwhile do not reset the clock…
        let other = Flushing::start(&store.health);
        assert!(store.flushes_waiting().unwrap() >= Duration::from_millis(30));
        // …one completing does.
        drop(other);
        assert!(store.flushes_waiting().unwrap() < Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(30));
        assert!(store.flushes_waiting().unwrap() >= Duration::from_millis(30));
        assert_eq!(store.write_stalled(), None, "10 s have not passed");
        drop(stuck);
        assert_eq!(store.flushes_waiting(), None);
        store.check_writable().unwrap();
    }

    #[test]
    fn a_database_behind_its_stamp_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        drop(Store::open(&db, Default::default()).unwrap());
        write_stamp(&db, 7).unwrap();
        let e = Store::open(&db, Default::default()).err().unwrap();
        assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
        assert!(e.to_string().contains("changes up to 7"), "{e}");
        // The refused open left the stamp as it was.
        assert_eq!(read_stamp(&db).unwrap(), Some(7));
    }
}
