//! Backups: a consistent snapshot of the whole store in one file, and the restore
//! of such a file into an empty database directory.
//!
//! **Consistency.** [`Store::backup_to`] holds the store's writer lock while it
//! walks the `data` tree, so no write lands mid-snapshot: every event write,
//! sighting, tombstone and account change is either wholly in the backup or
//! wholly out of it, and the change log in the file is contiguous. (sled has no
//! snapshots; its iterators see concurrent writes, hence the lock.) Writers wait
//! for the walk — readers do not. A write that does not take the lock (a local id
//! counter bump, operator bookkeeping in `meta`) is one key, in the backup whole or
//! not at all, exactly as a crash at that instant would leave it; a counter may
//! then stand one past the records that use it: a gap in local ids, never a
//! reused one.
//!
//! **Format, version 1** (all integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `SLUISBAK` |
//! | 4 | backup format version (`1`) |
//! | 8 | the store's format version ([`super::record::FORMAT_VERSION`]) |
//! | 8 | when the snapshot was taken, epoch seconds |
//! | … | records, each: tag `0x01`, key length (4), key, value length (4), value |
//! | 1 | end tag `0x00` |
//! | 8 | record count |
//! | 32 | SHA-256 of every byte above, from the magic through the count |
//!
//! A record is one entry of the store's single `data` tree, the key with its
//! keyspace prefix byte (the whole store: see the keyspace table in
//! [`super`]); records come in strictly increasing key order, as sled iterates.
//! Nothing may follow the checksum.
//!
//! **Restore** ([`restore`]) reads the file twice and never loads it whole: a
//! first pass checks the structure, the count and the checksum, so a truncated or
//! damaged file is refused before anything is written; a second pass writes the
//! records into a fresh database in a temporary directory beside the target,
//! which is renamed into place only once complete and flushed. The target must be
//! empty, unless the caller asks to move an existing database aside (never to
//! delete it).

use super::{record, Store, StoreError, StoreOptions};
use sha2::{Digest, Sha256};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// The first bytes of every backup file.
pub const MAGIC: [u8; 8] = *b"SLUISBAK";
/// The version of the backup format this code writes and reads.
pub const VERSION: u32 = 1;
/// Magic, version, store format version, creation time.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 8;

const TAG_RECORD: u8 = 0x01;
const TAG_END: u8 = 0x00;
/// A record's declared length is only trusted as far as the bytes actually
/// present: buffers start at most this large and grow as data arrives, so a
/// damaged length cannot make restore allocate gigabytes.
const INITIAL_BUFFER: u64 = 64 * 1024;
/// Records are written into the restored database in sled batches of about
/// this many bytes: large enough to be fast, small enough to bound memory.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Progress is reported at most once per this many bytes.
const PROGRESS_STEP: u64 = 256 * 1024;

/// What can go wrong writing, checking or restoring a backup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The destination of a backup failed (disk full, the client went away).
    #[error("cannot write the backup: {0}")]
    Write(io::Error),
    /// Reading the backup failed for another reason than its end.
    #[error("cannot read the backup: {0}")]
    Read(io::Error),
    /// A file or directory operation of a restore.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("not a sluis backup (it does not start with the SLUISBAK signature)")]
    NotABackup,
    #[error("backup format version {found} is not one this sluis reads (version {VERSION})")]
    Version { found: u32 },
    #[error("the backup holds a database of format version {found}; this sluis reads version {expected}")]
    StoreFormat { found: u64, expected: u64 },
    /// The file ends before its checksum: cut short, or a damaged length field.
    #[error("the backup is truncated or damaged: it ends at byte {at}, inside the {part}")]
    Truncated { at: u64, part: &'static str },
    #[error("the backup is damaged at byte {at}: {reason}")]
    Corrupt { at: u64, reason: String },
    #[error("the backup is damaged: its SHA-256 checksum does not match its contents")]
    Checksum,
    #[error("the backup is damaged: its trailer counts {declared} records, it holds {found}")]
    Count { declared: u64, found: u64 },
    #[error("a store record of {len} bytes is larger than the backup format allows (4 GiB)")]
    TooLarge { len: usize },
    #[error("{path} is not empty: restore only into an empty database directory (`sluis restore --force` moves an existing database aside)")]
    NotEmpty { path: PathBuf },
    #[error("the database in {path} is open in another process (is a sluis node running?); stop it before restoring")]
    InUse { path: PathBuf },
    /// The second pass read something else than the first: the file changed
    /// during the restore.
    #[error("the backup file changed while it was being restored")]
    Changed,
    #[error("the restored database holds {found} records, the backup {expected}")]
    Incomplete { found: u64, expected: u64 },
    /// One of the errors above about the contents of the backup file `path`.
    #[error("{path}: {err}")]
    File {
        path: PathBuf,
        err: Box<BackupError>,
    },
}

impl BackupError {
    /// Names `path` in an error about what was read from it; other errors (the
    /// store, the target directory) already say where they are.
    fn in_file(self, path: &Path) -> Self {
        match self {
            e @ (BackupError::Read(_)
            | BackupError::NotABackup
            | BackupError::Version { .. }
            | BackupError::StoreFormat { .. }
            | BackupError::Truncated { .. }
            | BackupError::Corrupt { .. }
            | BackupError::Checksum
            | BackupError::Count { .. }
            | BackupError::Changed) => BackupError::File {
                path: path.to_owned(),
                err: Box::new(e),
            },
            other => other,
        }
    }

    /// The error itself, without the file it was found in.
    pub fn kind(&self) -> &BackupError {
        match self {
            BackupError::File { err, .. } => err,
            other => other,
        }
    }
}

/// What a backup holds, as read from (or written to) its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    /// Size of the whole file.
    pub bytes: u64,
    /// When the snapshot was taken, epoch seconds.
    pub created: u64,
    /// The store format version the records are in.
    pub store_format: u64,
    /// The file's SHA-256 trailer.
    pub sha256: [u8; 32],
}

/// Which pass of a restore a progress report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Checking the whole file before anything is written.
    Verifying,
    /// Writing the records into the new database.
    Restoring,
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub summary: Summary,
    /// Where the database that was in the target went, if there was one.
    pub moved_aside: Option<PathBuf>,
}

/// A writer that hashes and counts everything it passes on.
struct HashWrite<'a> {
    inner: &'a mut dyn Write,
    hasher: Sha256,
    bytes: u64,
}

impl HashWrite<'_> {
    fn put(&mut self, data: &[u8]) -> Result<(), BackupError> {
        self.inner.write_all(data).map_err(BackupError::Write)?;
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        Ok(())
    }

    fn put_field(&mut self, data: &[u8]) -> Result<(), BackupError> {
        let len =
            u32::try_from(data.len()).map_err(|_| BackupError::TooLarge { len: data.len() })?;
        self.put(&len.to_be_bytes())?;
        self.put(data)
    }
}

fn header(created: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_be_bytes());
    h[12..20].copy_from_slice(&record::FORMAT_VERSION.to_be_bytes());
    h[20..28].copy_from_slice(&created.to_be_bytes());
    h
}

impl Store {
    /// Writes a consistent snapshot of the whole store to `out`, streaming (one
    /// record in memory at a time), and flushes `out`. `progress` gets the bytes
    /// written so far. Holds the writer lock for the walk, so writes wait for it;
    /// a failing `out` (a client that went away) ends the walk and the wait.
    pub fn backup_to(
        &self,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Summary, BackupError> {
        let created = crate::model::time::now_secs();
        let mut w = HashWrite {
            inner: out,
            hasher: Sha256::new(),
            bytes: 0,
        };
        w.put(&header(created))?;
        let mut records = 0u64;
        let mut reported = 0u64;
        {
            // A poisoned lock only means another writer panicked; its batch applied
            // whole or not at all, so the tree is consistent either way.
            let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            for item in self.t.data.iter() {
                let (k, v) = item.map_err(StoreError::from)?;
                w.put(&[TAG_RECORD])?;
                w.put_field(&k)?;
                w.put_field(&v)?;
                records += 1;
                if w.bytes - reported >= PROGRESS_STEP {
                    reported = w.bytes;
                    progress(w.bytes);
                }
            }
        }
        w.put(&[TAG_END])?;
        w.put(&records.to_be_bytes())?;
        let sha256: [u8; 32] = w.hasher.finalize().into();
        w.inner.write_all(&sha256).map_err(BackupError::Write)?;
        w.inner.flush().map_err(BackupError::Write)?;
        let bytes = w.bytes + 32;
        progress(bytes);
        Ok(Summary {
            records,
            bytes,
            created,
            store_format: record::FORMAT_VERSION,
            sha256,
        })
    }
}

/// A reader that hashes everything it passes on and knows its position.
struct HashRead<R> {
    inner: R,
    hasher: Sha256,
    pos: u64,
}

impl<R: Read> Read for HashRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read> HashRead<R> {
    fn exact(&mut self, buf: &mut [u8], part: &'static str) -> Result<(), BackupError> {
        self.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => BackupError::Truncated { at: self.pos, part },
            _ => BackupError::Read(e),
        })
    }

    fn u32(&mut self, part: &'static str) -> Result<u32, BackupError> {
        let mut b = [0u8; 4];
        self.exact(&mut b, part)?;
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self, part: &'static str) -> Result<u64, BackupError> {
        let mut b = [0u8; 8];
        self.exact(&mut b, part)?;
        Ok(u64::from_be_bytes(b))
    }

    /// Reads `len` bytes, growing the buffer only as bytes actually arrive.
    fn field(&mut self, len: u32, part: &'static str) -> Result<Vec<u8>, BackupError> {
        let len = u64::from(len);
        let mut v = Vec::with_capacity(len.min(INITIAL_BUFFER) as usize);
        let n = self
            .by_ref()
            .take(len)
            .read_to_end(&mut v)
            .map_err(BackupError::Read)?;
        if n as u64 != len {
            return Err(BackupError::Truncated { at: self.pos, part });
        }
        Ok(v)
    }

    /// Passes over `len` bytes (hashing them) without keeping them.
    fn skip(&mut self, len: u32, part: &'static str) -> Result<(), BackupError> {
        let len = u64::from(len);
        let n =
            io::copy(&mut self.by_ref().take(len), &mut io::sink()).map_err(BackupError::Read)?;
        if n != len {
            return Err(BackupError::Truncated { at: self.pos, part });
        }
        Ok(())
    }
}

/// Receives each record of a backup being read: the key and the value.
type Sink<'a> = &'a mut dyn FnMut(&[u8], Vec<u8>) -> Result<(), BackupError>;

/// Reads a whole backup from `input`, checking everything the format promises;
/// hands each record to `sink` if there is one (values are skipped otherwise).
fn read_backup<R: Read>(
    input: R,
    mut sink: Option<Sink<'_>>,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, BackupError> {
    let mut r = HashRead {
        inner: input,
        hasher: Sha256::new(),
        pos: 0,
    };
    let mut magic = [0u8; 8];
    r.exact(&mut magic, "header")?;
    if magic != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let version = r.u32("header")?;
    if version != VERSION {
        return Err(BackupError::Version { found: version });
    }
    let store_format = r.u64("header")?;
    let created = r.u64("header")?;
    let mut records = 0u64;
    let mut reported = 0u64;
    let mut previous: Option<Vec<u8>> = None;
    loop {
        let at = r.pos;
        let mut tag = [0u8; 1];
        r.exact(&mut tag, "records")?;
        match tag[0] {
            TAG_RECORD => {}
            TAG_END => break,
            other => {
                return Err(BackupError::Corrupt {
                    at,
                    reason: format!("unknown record tag {other:#04x}"),
                })
            }
        }
        let klen = r.u32("record")?;
        if klen == 0 {
            return Err(BackupError::Corrupt {
                at,
                reason: "a record with an empty key".into(),
            });
        }
        let key = r.field(klen, "record")?;
        // Strictly increasing keys: what sled's iteration yields, and it rules out
        // duplicates, which would silently shrink a restored database.
        if previous.as_ref().is_some_and(|p| *p >= key) {
            return Err(BackupError::Corrupt {
                at,
                reason: "records out of order".into(),
            });
        }
        let vlen = r.u32("record")?;
        match sink.as_mut() {
            Some(sink) => {
                let value = r.field(vlen, "record")?;
                sink(&key, value)?;
            }
            None => r.skip(vlen, "record")?,
        }
        previous = Some(key);
        records += 1;
        if r.pos - reported >= PROGRESS_STEP {
            reported = r.pos;
            progress(r.pos);
        }
    }
    let declared = r.u64("trailer")?;
    let computed: [u8; 32] = r.hasher.clone().finalize().into();
    let mut sha256 = [0u8; 32];
    // The checksum is not part of what it covers: read it past the hasher.
    r.inner
        .read_exact(&mut sha256)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => BackupError::Truncated {
                at: r.pos,
                part: "checksum",
            },
            _ => BackupError::Read(e),
        })?;
    if computed != sha256 {
        return Err(BackupError::Checksum);
    }
    if declared != records {
        return Err(BackupError::Count {
            declared,
            found: records,
        });
    }
    let bytes = r.pos + 32;
    let mut extra = [0u8; 1];
    loop {
        match r.inner.read(&mut extra) {
            Ok(0) => break,
            Ok(_) => {
                return Err(BackupError::Corrupt {
                    at: bytes,
                    reason: "data after the checksum".into(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BackupError::Read(e)),
        }
    }
    progress(bytes);
    Ok(Summary {
        records,
        bytes,
        created,
        store_format,
        sha256,
    })
}

/// Checks a whole backup (structure, record order, count, checksum) without
/// writing anything. `progress` gets the bytes read so far.
pub fn verify(input: impl Read, progress: &mut dyn FnMut(u64)) -> Result<Summary, BackupError> {
    read_backup(input, None, progress)
}

/// [`verify`] on a file.
pub fn verify_file(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<Summary, BackupError> {
    verify(open(path)?, progress).map_err(|e| e.in_file(path))
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>, BackupError> {
    let f = std::fs::File::open(path).map_err(|err| BackupError::Io {
        path: path.to_owned(),
        err,
    })?;
    Ok(BufReader::with_capacity(1 << 20, f))
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> BackupError + '_ {
    move |err| BackupError::Io {
        path: path.to_owned(),
        err,
    }
}

/// Restores the backup in `file` into the database directory `target` (what
/// [`Store::open`] opens), which must be absent or empty — or, with
/// `move_aside`, holds a database that is renamed to `<target>.replaced-<time>`
/// once the new one is complete. Nothing is written anywhere unless the whole
/// file checked out first, and `target` changes only by renames at the end.
pub fn restore(
    file: &Path,
    target: &Path,
    opts: &StoreOptions,
    move_aside: bool,
    progress: &mut dyn FnMut(Phase, u64),
) -> Result<Restored, BackupError> {
    let occupied = occupied(target)?;
    if occupied && !move_aside {
        return Err(BackupError::NotEmpty {
            path: target.to_owned(),
        });
    }
    let checked = verify_file(file, &mut |n| progress(Phase::Verifying, n))?;
    if checked.store_format != record::FORMAT_VERSION {
        return Err(BackupError::StoreFormat {
            found: checked.store_format,
            expected: record::FORMAT_VERSION,
        }
        .in_file(file));
    }
    if occupied && in_use(target) {
        return Err(BackupError::InUse {
            path: target.to_owned(),
        });
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "db".into());
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io_at(&parent))?;
    // Beside the target, so the final rename stays on one filesystem.
    let tmp = parent.join(format!(".{name}.restoring-{}", std::process::id()));
    if tmp.exists() {
        // Left by an earlier restore of this process id that did not finish.
        std::fs::remove_dir_all(&tmp).map_err(io_at(&tmp))?;
    }
    let built = build(file, &tmp, opts, &mut |n| progress(Phase::Restoring, n));
    let summary = match built {
        Ok(s) if s.sha256 == checked.sha256 => s,
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(BackupError::Changed.in_file(file));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let moved_aside = if occupied {
        let aside = aside_name(&parent, &name);
        std::fs::rename(target, &aside).map_err(io_at(target))?;
        Some(aside)
    } else {
        if target.is_dir() {
            // Empty (checked above): make way for the rename.
            std::fs::remove_dir(target).map_err(io_at(target))?;
        }
        None
    };
    if let Err(err) = std::fs::rename(&tmp, target) {
        if let Some(aside) = &moved_aside {
            let _ = std::fs::rename(aside, target);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(BackupError::Io {
            path: target.to_owned(),
            err,
        });
    }
    sync_dir(&parent)?;
    Ok(Restored {
        summary,
        moved_aside,
    })
}

/// Writes every record of `file` into a new database in `dir`, flushed.
fn build(
    file: &Path,
    dir: &Path,
    opts: &StoreOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, BackupError> {
    let store = Store::open(dir, opts.clone())?;
    let tree = store.t.data.clone();
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    let mut sink = |k: &[u8], v: Vec<u8>| -> Result<(), BackupError> {
        pending += k.len() + v.len();
        batch.insert(k, v);
        if pending >= BATCH_BYTES {
            tree.apply_batch(std::mem::take(&mut batch))
                .map_err(StoreError::from)?;
            pending = 0;
        }
        Ok(())
    };
    let summary =
        read_backup(open(file)?, Some(&mut sink), progress).map_err(|e| e.in_file(file))?;
    tree.apply_batch(batch).map_err(StoreError::from)?;
    store.flush()?;
    let found = tree.len() as u64;
    if found != summary.records {
        return Err(BackupError::Incomplete {
            found,
            expected: summary.records,
        });
    }
    Ok(summary)
}

/// Whether `dir` exists and is not an empty directory.
fn occupied(dir: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        // Not a directory (a file in the way), or unreadable: not ours to replace.
        Err(_) if dir.exists() => Ok(true),
        Err(err) => Err(BackupError::Io {
            path: dir.to_owned(),
            err,
        }),
    }
}

/// Whether another process holds the database in `dir` open. sled locks its
/// file exclusively, so opening it is the probe; any other failure to open (a
/// damaged database, a reason to restore) does not count as in use.
fn in_use(dir: &Path) -> bool {
    use fs2::FileExt;
    // sled holds an exclusive lock (flock) on its `db` file while the database
    // is open; without the file, no sled holds this directory. The lock itself
    // is probed, not by opening sled: that would run sled's recovery on what is
    // often a damaged database (it can panic there, and must not change files
    // the operator keeps for analysis).
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("db"))
    else {
        return false;
    };
    // sled lets go of its lock a moment after a database closes (a node that has
    // just stopped): retry briefly, as `Store::open` does, before calling it busy.
    for _ in 0..40 {
        match file.try_lock_exclusive() {
            Ok(()) => {
                let _ = FileExt::unlock(&file);
                return false;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(_) => return false,
        }
    }
    true
}

/// `<name>.replaced-<epoch seconds>` in `parent`, with a counter if taken.
fn aside_name(parent: &Path, name: &str) -> PathBuf {
    let stamp = crate::model::time::now_secs();
    let mut candidate = parent.join(format!("{name}.replaced-{stamp}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = parent.join(format!("{name}.replaced-{stamp}-{n}"));
        n += 1;
    }
    candidate
}

/// Makes the renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::PeerState;
    use std::sync::mpsc;

    fn store_with_records(dir: &Path) -> Store {
        let s = Store::open(dir, StoreOptions::default()).unwrap();
        for i in 0..300u32 {
            // Keys across several keyspaces, values from empty to a few KiB.
            let mut k = vec![(i % 5) as u8 + 1];
            k.extend_from_slice(&i.to_be_bytes());
            let v = vec![(i % 251) as u8; (i as usize * 13) % 4000];
            s.t.data.insert(k, v).unwrap();
        }
        s.flush().unwrap();
        s
    }

    fn entries(s: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
        s.t.data
            .iter()
            .map(|kv| {
                let (k, v) = kv.unwrap();
                (k.to_vec(), v.to_vec())
            })
            .collect()
    }

    fn backup_bytes(s: &Store) -> (Vec<u8>, Summary) {
        let mut out = Vec::new();
        let summary = s.backup_to(&mut out, &mut |_| {}).unwrap();
        (out, summary)
    }

    /// Recomputes the checksum of a hand-edited backup, so only the edit is wrong.
    fn reseal(b: &mut [u8]) {
        let n = b.len() - 32;
        let d: [u8; 32] = Sha256::digest(&b[..n]).into();
        b[n..].copy_from_slice(&d);
    }

    fn check(b: &[u8]) -> Result<Summary, BackupError> {
        verify(b, &mut |_| {})
    }

    #[test]
    fn round_trip_restores_every_record() {
        let src = tempfile::tempdir().unwrap();
        let s = store_with_records(src.path());
        let (bytes, written) = backup_bytes(&s);
        assert_eq!(written.bytes, bytes.len() as u64);
        // 300 records plus the store's format marker.
        assert_eq!(written.records, 301);
        assert_eq!(&bytes[..8], b"SLUISBAK");
        assert_eq!(check(&bytes).unwrap(), written);

        let file = src.path().join("b.sbk");
        std::fs::write(&file, &bytes).unwrap();
        let out = tempfile::tempdir().unwrap();
        let target = out.path().join("db");
        let mut phases = Vec::new();
        let r = restore(
            &file,
            &target,
            &StoreOptions::default(),
            false,
            &mut |p, _| phases.push(p),
        )
        .unwrap();
        assert_eq!(r.summary, written);
        assert_eq!(r.moved_aside, None);
        assert_eq!(phases.first(), Some(&Phase::Verifying));
        assert_eq!(phases.last(), Some(&Phase::Restoring));
        let restored = Store::open(&target, StoreOptions::default()).unwrap();
        assert_eq!(entries(&restored), entries(&s));
        // Nothing but the database is left beside it.
        let names: Vec<_> = std::fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("db")]);
    }

    #[test]
    fn every_truncation_and_every_flipped_bit_is_refused() {
        let src = tempfile::tempdir().unwrap();
        let s = Store::open(src.path(), StoreOptions::default()).unwrap();
        s.t.data.insert([1u8, 7, 7], &b"value"[..]).unwrap();
        s.t.data.insert([2u8, 1], &b""[..]).unwrap();
        let (bytes, _) = backup_bytes(&s);
        for cut in 0..bytes.len() {
            match check(&bytes[..cut]) {
                Err(BackupError::Truncated { .. }) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(
                    check(&b).is_err(),
                    "flipping bit {bit} of byte {i} went unnoticed"
                );
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            check(&longer),
            Err(BackupError::Corrupt { reason, .. }) if reason.contains("after the checksum")
        ));
    }

    #[test]
    fn header_and_structure_errors_are_named() {
        let src = tempfile::tempdir().unwrap();
        let s = Store::open(src.path(), StoreOptions::default()).unwrap();
        s.t.data.insert([1u8, 1], &b"a"[..]).unwrap();
        s.t.data.insert([1u8, 2], &b"b"[..]).unwrap();
        let (bytes, _) = backup_bytes(&s);

        let mut b = bytes.clone();
        b[0] = b'X';
        assert!(matches!(check(&b), Err(BackupError::NotABackup)));
        assert!(matches!(
            check(b"{\"Event\": {}}"),
            Err(BackupError::NotABackup)
        ));

        let mut b = bytes.clone();
        b[8..12].copy_from_slice(&2u32.to_be_bytes());
        reseal(&mut b);
        assert!(matches!(check(&b), Err(BackupError::Version { found: 2 })));

        // A wrong count under a valid checksum (a writer bug, not damage).
        let mut b = bytes.clone();
        let at = b.len() - 40;
        b[at..at + 8].copy_from_slice(&99u64.to_be_bytes());
        reseal(&mut b);
        assert!(matches!(
            check(&b),
            Err(BackupError::Count {
                declared: 99,
                found: 3
            })
        ));

        // Records out of order: the first data record's key is [1, 1], the second
        // [1, 2]; make the second [1, 0].
        let mut b = bytes.clone();
        let first = HEADER_LEN + 1 + 4 + 2 + 4 + 1;
        let second_key = first + 1 + 4;
        assert_eq!(&b[second_key..second_key + 2], &[1, 2]);
        b[second_key + 1] = 0;
        reseal(&mut b);
        assert!(matches!(
            check(&b),
            Err(BackupError::Corrupt { reason, .. }) if reason.contains("out of order")
        ));

        // An unknown tag where a record should start.
        let mut b = bytes.clone();
        b[HEADER_LEN] = 0x07;
        reseal(&mut b);
        assert!(
            matches!(check(&b), Err(BackupError::Corrupt { at, .. }) if at == HEADER_LEN as u64)
        );
    }

    #[test]
    fn a_damaged_length_allocates_only_what_is_there() {
        // A key length of 4 GiB in a 40-byte file: refused as truncated, and the
        // reader must not have tried to allocate the declared size first.
        let mut b = header(0).to_vec();
        b.push(TAG_RECORD);
        b.extend_from_slice(&u32::MAX.to_be_bytes());
        b.extend_from_slice(b"abc");
        assert!(matches!(
            read_backup(&b[..], Some(&mut |_, _| Ok(())), &mut |_| {}),
            Err(BackupError::Truncated { part: "record", .. })
        ));
    }

    #[test]
    fn restore_refuses_a_bad_file_or_an_occupied_target_and_writes_nothing() {
        let src = tempfile::tempdir().unwrap();
        let s = store_with_records(&src.path().join("db"));
        let (bytes, _) = backup_bytes(&s);
        let good = src.path().join("good.sbk");
        std::fs::write(&good, &bytes).unwrap();
        let bad = src.path().join("bad.sbk");
        std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
        let opts = StoreOptions::default();

        let out = tempfile::tempdir().unwrap();
        let target = out.path().join("db");
        let e = restore(&bad, &target, &opts, false, &mut |_, _| {}).unwrap_err();
        assert!(matches!(e.kind(), BackupError::Truncated { .. }), "{e}");
        assert!(e.to_string().starts_with(&bad.display().to_string()), "{e}");
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);

        // An occupied target is refused, even with a good file.
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"mine").unwrap();
        let e = restore(&good, &target, &opts, false, &mut |_, _| {}).unwrap_err();
        assert!(matches!(e, BackupError::NotEmpty { .. }), "{e}");
        // With move_aside and a bad file: still nothing moves.
        let e = restore(&bad, &target, &opts, true, &mut |_, _| {}).unwrap_err();
        assert!(matches!(e.kind(), BackupError::Truncated { .. }), "{e}");
        assert_eq!(std::fs::read(target.join("keep")).unwrap(), b"mine");
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);

        // An empty directory is a fine target.
        let empty = out.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        restore(&good, &empty, &opts, false, &mut |_, _| {}).unwrap();
        drop(Store::open(&empty, opts.clone()).unwrap());

        // A database of another format version is refused before anything is written.
        let mut other = bytes.clone();
        other[12..20].copy_from_slice(&(record::FORMAT_VERSION + 1).to_be_bytes());
        reseal(&mut other);
        let other_file = src.path().join("other.sbk");
        std::fs::write(&other_file, &other).unwrap();
        let fresh = out.path().join("fresh");
        let e = restore(&other_file, &fresh, &opts, false, &mut |_, _| {}).unwrap_err();
        assert!(matches!(e.kind(), BackupError::StoreFormat { .. }), "{e}");
        assert!(!fresh.exists());
    }

    #[test]
    fn move_aside_keeps_the_old_database_and_refuses_one_in_use() {
        let src = tempfile::tempdir().unwrap();
        let s = store_with_records(&src.path().join("db"));
        let (bytes, _) = backup_bytes(&s);
        let file = src.path().join("b.sbk");
        std::fs::write(&file, &bytes).unwrap();
        let opts = StoreOptions::default();

        let out = tempfile::tempdir().unwrap();
        let target = out.path().join("db");
        let old = Store::open(&target, opts.clone()).unwrap();
        old.t.data.insert([3u8, 3, 3], &b"old"[..]).unwrap();
        old.flush().unwrap();
        // Open here: this process holds sled's lock, as a running node would.
        let e = restore(&file, &target, &opts, true, &mut |_, _| {}).unwrap_err();
        assert!(matches!(e, BackupError::InUse { .. }), "{e}");
        drop(old);
        // Closed a moment ago: the probe waits for sled to let go of its lock.
        let r = restore(&file, &target, &opts, true, &mut |_, _| {}).unwrap();
        let aside = r.moved_aside.expect("the old database was moved aside");
        assert!(aside
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("db.replaced-"));
        let restored = Store::open(&target, opts.clone()).unwrap();
        assert_eq!(entries(&restored), entries(&s));
        let kept = Store::open(&aside, opts).unwrap();
        assert_eq!(kept.t.data.get([3u8, 3, 3]).unwrap().unwrap(), &b"old"[..]);
    }

    /// A destination that stalls once the walk has begun, until told to go on.
    struct Gate {
        written: usize,
        started: Option<mpsc::Sender<()>>,
        go: mpsc::Receiver<()>,
        out: Vec<u8>,
    }

    impl Write for Gate {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.written += data.len();
            if self.written > HEADER_LEN {
                if let Some(started) = self.started.take() {
                    started.send(()).unwrap();
                    self.go.recv().unwrap();
                }
            }
            self.out.extend_from_slice(data);
            Ok(data.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_wait_for_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(store_with_records(dir.path()));
        let (started_tx, started_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel();
        let snap = {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut gate = Gate {
                    written: 0,
                    started: Some(started_tx),
                    go: go_rx,
                    out: Vec::new(),
                };
                s.backup_to(&mut gate, &mut |_| {}).unwrap();
                gate.out
            })
        };
        started_rx.recv().unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (s, done) = (s.clone(), done.clone());
            std::thread::spawn(move || {
                let state = PeerState {
                    cursor: 42,
                    ..PeerState::default()
                };
                s.set_peer_state("cert-b", &state).unwrap();
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            !done.load(std::sync::atomic::Ordering::SeqCst),
            "a write landed while the snapshot was being taken"
        );
        go_tx.send(()).unwrap();
        let bytes = snap.join().unwrap();
        writer.join().unwrap();
        assert_eq!(s.peer_state("cert-b").unwrap().cursor, 42);
        // The snapshot is the state before the write: restore it and look.
        let file = dir.path().join("b.sbk");
        std::fs::write(&file, &bytes).unwrap();
        let out = tempfile::tempdir().unwrap();
        let target = out.path().join("db");
        restore(
            &file,
            &target,
            &StoreOptions::default(),
            false,
            &mut |_, _| {},
        )
        .unwrap();
        let restored = Store::open(&target, StoreOptions::default()).unwrap();
        assert_eq!(restored.peer_state("cert-b").unwrap().cursor, 0);
    }
}
