//! Making an acknowledged write reach stable storage: the OS-level sync after
//! sled's flush, group-committed.
//!
//! sled 0.34's `Db::flush` ends, on Linux, with `sync_file_range(WAIT_BEFORE |
//! WRITE | WAIT_AFTER)` (`pagecache/iobuf.rs`), not `fsync`: it neither commits
//! the file's metadata (its size, newly used segments) nor asks the device to
//! empty its write cache. Only sled's background flusher calls `sync_all`, once
//! per `flush_every_ms`. A process kill cannot see the difference (the page
//! cache survives the process), a power cut or kernel crash can: up to a second
//! of writes the node had acknowledged. So after every flush that is about to be
//! acknowledged, the store `fdatasync`s its own files here — an fsync through
//! another descriptor of the same file commits it too — and the directory, so
//! new files (a new snapshot, blobs) are found after a crash.
//!
//! Syncs are group-committed: a caller whose sled flush finished takes a ticket;
//! if a sync that started after its ticket completes, it is covered and returns
//! at once; otherwise one caller runs the sync for everyone waiting. Concurrent
//! writers therefore share one sync instead of queueing one each.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    /// The last ticket handed out.
    issued: u64,
    /// Every ticket up to this one is covered by a completed sync.
    synced: u64,
    /// A sync is running.
    running: bool,
}

/// The group-commit gate for one database directory.
#[derive(Debug)]
pub(super) struct SyncGate {
    dir: PathBuf,
    state: Mutex<State>,
    done: Condvar,
    /// Syncs run (each covers one or more callers): for tests and metrics.
    runs: AtomicU64,
    /// Blob files already synced. sled writes a blob once (`create_new`) and
    /// never syncs it itself (`pagecache/blob_io.rs`); each is synced once here.
    blobs_synced: Mutex<HashSet<OsString>>,
}

impl SyncGate {
    pub(super) fn new(dir: &Path) -> Self {
        SyncGate {
            dir: dir.to_owned(),
            state: Mutex::new(State::default()),
            done: Condvar::new(),
            runs: AtomicU64::new(0),
            blobs_synced: Mutex::new(HashSet::new()),
        }
    }

    /// Returns once everything written before the call is on stable storage.
    pub(super) fn sync(&self) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.issued += 1;
        let ticket = st.issued;
        loop {
            if st.synced >= ticket {
                return Ok(());
            }
            if !st.running {
                break;
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        // This caller runs the sync, for every ticket issued so far: their
        // flushes returned before they took their tickets.
        st.running = true;
        let covers = st.issued;
        drop(st);
        let result = self.sync_files();
        self.runs.fetch_add(1, Ordering::Relaxed);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.running = false;
        if result.is_ok() {
            st.synced = st.synced.max(covers);
        }
        // On failure nothing is marked synced: the waiters try themselves and
        // get the error too.
        self.done.notify_all();
        result
    }

    /// How many syncs have run.
    pub(super) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// `fdatasync` of sled's log file and of every blob not synced before,
    /// then `fsync` of the directories that hold them (new entries).
    fn sync_files(&self) -> io::Result<()> {
        File::open(self.dir.join("db"))?.sync_data()?;
        let blobs = self.dir.join("blobs");
        if let Ok(entries) = std::fs::read_dir(&blobs) {
            let mut synced = self.blobs_synced.lock().unwrap_or_else(|p| p.into_inner());
            let mut present = HashSet::new();
            for e in entries {
                let e = e?;
                let name = e.file_name();
                if !synced.contains(&name) && e.file_type()?.is_file() {
                    File::open(e.path())?.sync_data()?;
                }
                present.insert(name);
            }
            File::open(&blobs)?.sync_all()?;
            // Blobs sled removed are forgotten, so the set stays the size of
            // the directory.
            *synced = present;
        }
        File::open(&self.dir)?.sync_all()
    }
}
