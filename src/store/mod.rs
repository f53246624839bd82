//! Durable local storage on sled: records, secondary indexes, the change log.
//!
//! Keyspaces (one-byte prefixes in one sled tree, so one atomic batch spans them):
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `events` | event uuid | [`record::StoredEvent`] |
//! | `attrs` | event ‖ attribute uuid | [`record::StoredAttr`] (postcard) |
//! | `objects` | event ‖ object uuid | object JSON (references inline, attributes in `attrs`) |
//! | `reports` | event ‖ report uuid | report JSON |
//! | `sightings` | event ‖ sighting uuid | sighting JSON |
//! | `sharing_groups` | sg uuid | sharing group JSON |
//! | `loc` | any element uuid | kind ‖ event uuid — makes uuids unique store-wide |
//! | `ids` | kind ‖ local id | uuid — MISP's numeric event and sharing-group ids |
//! | `idx_value` | folded value ‖ 0 ‖ event ‖ attr | index flags |
//! | `idx_rvalue` | reversed folded value ‖ 0 ‖ event ‖ attr | index flags (name-like types only) |
//! | `idx_ip` | family ‖ network ‖ prefix ‖ event ‖ attr | index flags |
//! | `idx_type` | type ‖ 0 ‖ event | — (which events hold a type) |
//! | `idx_tag` | folded tag ‖ 0 ‖ event ‖ (attr or nil) | — |
//! | `idx_ts`, `idx_pts` | timestamp (BE) ‖ event | — |
//! | `changes` | sequence (BE) | [`record::Change`] |
//! | `meta` | name | counters, format version |
//! | `orgs` | org uuid | [`accounts::OrgRecord`] JSON |
//! | `users` | user id (BE) | [`accounts::UserRecord`] JSON |
//! | `authkeys` | SHA-256 of the key | [`accounts::AuthKeyRecord`] JSON |
//! | `sighting_seals` | event ‖ sighting uuid | the sighting's sealed record (opaque JSON) |
//! | `tombstones` | event ‖ timestamp (BE) ‖ sequence (BE) | a sealed tombstone (opaque JSON) |
//! | `local` | event uuid | [`record::LocalRecord`] JSON: effective distribution, `received_from` |
//! | `peer_state` | peer name | [`record::PeerState`] JSON: the pull cursor and its health |
//! | `peer_out` | peer name | [`record::PeerOut`] JSON: what the peer last reported of our feed |
//! | `case_records` | record uuid | an incident-support case record, sealed JSON, opaque to the store (`cases.rs`) |
//! | `idx_extends` | extended event uuid ‖ extending event uuid | (empty): the events that extend an event (`extends_uuid`) |
//! | `tags` | folded tag name | `tags::TagRecord` (JSON): the tag catalogue |
//! | `case_index` | case uuid ‖ created ‖ record uuid | (empty): a case's records in time order |
//!
//! **Durability**: a write is acknowledged only after `Db::flush` (fsync) returned;
//! sled's own 500 ms background flush is not relied on. **Atomicity**: everything an
//! event write touches changes in one sled batch, which sled recovers atomically.
//! **Concurrency**: one writer at a time (a mutex), so merge decisions read a stable
//! state; readers never block.

pub mod accounts;
pub mod backup;
mod cases;
mod children;
mod durable;
pub mod health;
pub mod index;
mod keys;
mod local;
mod lookup;
pub mod merge;
mod read;
pub mod record;
mod sharing;
pub mod tags;
mod txn;
mod write;

pub use cases::CaseRecordKey;
pub use index::TagEntry;
pub use local::local_record_of;
pub use lookup::{Correlation, Hit, LookupError, WildcardKind};
pub use write::{next_timestamp, Durability, Outcome};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What can go wrong below the API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "the database in {path} is already open in another process (is a sluis node running?)"
    )]
    Locked { path: PathBuf },
    #[error("cannot open the database in {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error(
        "the database in {path} has format version {found}, this sluis reads version {expected}"
    )]
    Format {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    /// Any other failure of sled (`From<sled::Error>` sorts a full disk into
    /// [`StoreError::StorageFull`]; see [`health`]).
    #[error("storage error: {0}")]
    Sled(sled::Error),
    /// The disk (or quota) holding the database is full. sled refuses writes
    /// from then on, until it is reopened.
    #[error("the disk holding the database is full ({0}): writes are refused; free space, then restart the node")]
    StorageFull(sled::Error),
    /// Less free space than the configured reserve: the write is refused
    /// before sled is asked, so reads go on and writes resume by themselves.
    #[error("only {available} bytes are free on the disk holding {path}, less than the reserve of {reserve} ([store] min_free_mib): writes are refused until space is freed, reads still work")]
    LowSpace {
        path: PathBuf,
        available: u64,
        reserve: u64,
    },
    /// An earlier write failed to reach the disk (sled will not take another
    /// until the database is reopened), or one never returns.
    #[error("the database in {path} is not taking writes: {reason}; it resumes only after a restart: fix the disk (free space), then restart the node")]
    Unwritable { path: PathBuf, reason: String },
    /// The database's files are damaged or were truncated (see [`health`]).
    #[error("the database in {path} is damaged: {detail}. Stop the node, keep the damaged directory for analysis, and restore the latest backup with `sluis restore <backup file> --force` (it moves the damaged directory aside)")]
    Damaged { path: PathBuf, detail: String },
    #[error("corrupt record in tree {tree}: {reason}")]
    Corrupt { tree: &'static str, reason: String },
    /// A record could not be encoded for storage: an error, never an empty
    /// record.
    #[error("cannot encode the {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error(transparent)]
    Invalid(#[from] crate::model::validate::ValidationError),
    /// The input breaks one of the store's rules (an unknown sharing group, a
    /// uuid used twice, a duplicate value …): `field` names what was refused,
    /// `reason` says why, in full. The client's fault: a 403 on the API.
    #[error("{reason}")]
    Refused { field: &'static str, reason: String },
    /// Sealing what was to be stored failed: a fault of this node (its key),
    /// never the client's. A 500 on the API, with the cause logged.
    #[error("cannot seal the {what}: {reason}")]
    Seal { what: &'static str, reason: String },
    /// The operating system had no randomness for a new secret.
    #[error("no OS randomness: {0}")]
    Randomness(String),
    #[error("not newer: the stored version of event {uuid} has timestamp {stored}, the incoming one {incoming}")]
    NotNewer {
        uuid: uuid::Uuid,
        stored: u64,
        incoming: u64,
    },
}

/// Tunables of the store (from `[store]` in the config).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled page cache size.
    pub cache_bytes: u64,
    /// Values seen on more attributes than this are "over-correlating": MISP's
    /// `correlation_limit`, default 20.
    pub correlation_limit: usize,
    /// Writes are refused while the disk holding the database has less free
    /// space than this ([`Store::check_space`]), so sled never meets a full
    /// disk, which it does not recover from without a restart (see [`health`]).
    /// 0 turns the check off.
    pub min_free_bytes: u64,
    /// Read every record once at open ([`Store::verify_all`]), so damage in
    /// the middle of the files (which sled finds only when that page is read)
    /// is refused at start rather than met by a request. Off by default for
    /// library users; `[store] verify_on_start` (default on) for the node.
    pub verify_on_open: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 256 * 1024 * 1024,
            correlation_limit: 20,
            min_free_bytes: health::DEFAULT_MIN_FREE_MIB * 1024 * 1024,
            verify_on_open: false,
        }
    }
}

/// One keyspace of the store: a one-byte prefix inside the single `data` tree.
///
/// All keyspaces live in one sled tree so that an event write, which touches most
/// of them, is one `Tree::apply_batch`: sled applies and recovers a batch
/// atomically, without the read-set bookkeeping of a multi-tree transaction (which
/// cost a third of import throughput when measured).
pub(crate) struct Ks {
    tree: sled::Tree,
    prefix: u8,
}

type KV = sled::Result<(sled::IVec, sled::IVec)>;

impl Ks {
    fn full(&self, k: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(k.len() + 1);
        v.push(self.prefix);
        v.extend_from_slice(k);
        v
    }

    fn strip(item: KV) -> KV {
        item.map(|(k, v)| (sled::IVec::from(&k[1..]), v))
    }

    pub fn get(&self, k: impl AsRef<[u8]>) -> sled::Result<Option<sled::IVec>> {
        self.tree.get(self.full(k.as_ref()))
    }

    /// Entries whose key starts with `p`, keys without the keyspace prefix.
    pub fn scan_prefix<K: AsRef<[u8]>>(
        &self,
        p: K,
    ) -> impl DoubleEndedIterator<Item = KV> + use<K> {
        self.tree
            .scan_prefix(self.full(p.as_ref()))
            .map(Self::strip)
    }

    /// Every entry of the keyspace.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = KV> + use<> {
        self.scan_prefix([0u8; 0])
    }

    /// Entries with `lo <= key`.
    pub fn range_from<K: AsRef<[u8]>>(
        &self,
        lo: K,
    ) -> impl DoubleEndedIterator<Item = KV> + use<K> {
        let end = [self.prefix.wrapping_add(1)];
        let iter = if self.prefix == u8::MAX {
            self.tree.range(self.full(lo.as_ref())..)
        } else {
            self.tree.range(self.full(lo.as_ref())..end.to_vec())
        };
        iter.map(Self::strip)
    }

    /// Entries with `lo <= key <= hi`.
    pub fn range_incl<K: AsRef<[u8]>>(
        &self,
        lo: K,
        hi: K,
    ) -> impl DoubleEndedIterator<Item = KV> + use<K> {
        self.tree
            .range(self.full(lo.as_ref())..=self.full(hi.as_ref()))
            .map(Self::strip)
    }

    pub fn last(&self) -> sled::Result<Option<(sled::IVec, sled::IVec)>> {
        self.iter().next_back().transpose()
    }
}

pub(crate) struct Trees {
    pub data: sled::Tree,
    pub events: Ks,
    pub attrs: Ks,
    pub objects: Ks,
    pub reports: Ks,
    pub sightings: Ks,
    pub sharing_groups: Ks,
    pub loc: Ks,
    pub ids: Ks,
    pub idx_value: Ks,
    pub idx_rvalue: Ks,
    pub idx_ip: Ks,
    pub idx_type: Ks,
    pub idx_tag: Ks,
    pub idx_ts: Ks,
    pub idx_pts: Ks,
    pub changes: Ks,
    pub meta: Ks,
    pub orgs: Ks,
    pub users: Ks,
    pub authkeys: Ks,
    pub sighting_seals: Ks,
    pub tombstones: Ks,
    pub local: Ks,
    pub peer_state: Ks,
    pub peer_out: Ks,
    pub case_records: Ks,
    pub case_index: Ks,
    pub tags: Ks,
    pub idx_extends: Ks,
}

/// The keyspaces; the discriminant is the key prefix byte, so it must never change
/// for an existing database (see [`record::FORMAT_VERSION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum T {
    Events = 1,
    Attrs,
    Objects,
    Reports,
    Sightings,
    SharingGroups,
    Loc,
    Ids,
    IdxValue,
    IdxRvalue,
    IdxIp,
    IdxType,
    IdxTag,
    IdxTs,
    IdxPts,
    Changes,
    Meta,
    Orgs,
    Users,
    AuthKeys,
    SightingSeals,
    Tombstones,
    Local,
    PeerState,
    PeerOut,
    CaseRecords,
    CaseIndex,
    Tags,
    IdxExtends,
}

impl Trees {
    fn open(db: &sled::Db) -> sled::Result<Self> {
        let data = db.open_tree("data")?;
        let ks = |t: T| Ks {
            tree: data.clone(),
            prefix: t as u8,
        };
        Ok(Trees {
            events: ks(T::Events),
            attrs: ks(T::Attrs),
            objects: ks(T::Objects),
            reports: ks(T::Reports),
            sightings: ks(T::Sightings),
            sharing_groups: ks(T::SharingGroups),
            loc: ks(T::Loc),
            ids: ks(T::Ids),
            idx_value: ks(T::IdxValue),
            idx_rvalue: ks(T::IdxRvalue),
            idx_ip: ks(T::IdxIp),
            idx_type: ks(T::IdxType),
            idx_tag: ks(T::IdxTag),
            idx_ts: ks(T::IdxTs),
            idx_pts: ks(T::IdxPts),
            changes: ks(T::Changes),
            meta: ks(T::Meta),
            orgs: ks(T::Orgs),
            users: ks(T::Users),
            authkeys: ks(T::AuthKeys),
            sighting_seals: ks(T::SightingSeals),
            tombstones: ks(T::Tombstones),
            local: ks(T::Local),
            peer_state: ks(T::PeerState),
            peer_out: ks(T::PeerOut),
            case_records: ks(T::CaseRecords),
            case_index: ks(T::CaseIndex),
            tags: ks(T::Tags),
            idx_extends: ks(T::IdxExtends),
            data,
        })
    }
}

/// A hook run on the exact event version about to be stored (see
/// [`Store::set_finisher`]): the node installs its sealer here.
pub type Finisher =
    std::sync::Arc<dyn Fn(&mut crate::model::Event) -> Result<(), StoreError> + Send + Sync>;

/// The node's database. Cheap to share behind an `Arc`.
pub struct Store {
    db: sled::Db,
    pub(crate) t: Trees,
    writer: Mutex<()>,
    opts: StoreOptions,
    path: PathBuf,
    finisher: std::sync::RwLock<Option<Finisher>>,
    /// The highest change sequence known to be on disk. The changes feed serves
    /// only changes up to it: a peer that pulled a change this node then lost in a
    /// crash would hold a sequence number the node hands out again for another
    /// change, and never pull that one. Advanced by [`Store::flush`]; watched by
    /// long-polls and push notifiers, which wake when it moves.
    durable: tokio::sync::watch::Sender<u64>,
    /// The stamp and the first failed flush (see [`health`]).
    health: health::Health,
    /// The OS-level sync after sled's flush, group-committed ([`durable`]).
    synced: durable::SyncGate,
}

impl Store {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: dir.to_owned(),
            source: sled::Error::Io(e),
        })?;
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            // We flush explicitly before acknowledging; the periodic flush only bounds
            // how much unacknowledged work a crash can lose.
            .flush_every_ms(Some(1000));
        // sled's flusher thread lets go of the file lock a moment after the database
        // is dropped, so a reopen right after a close (a restart) retries briefly
        // before calling the database busy.
        let mut attempts = 0;
        let db = loop {
            match health::open_db(&config, dir, |e| classify_open_error(dir, e)) {
                Err(StoreError::Locked { .. }) if attempts < 40 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => break other?,
            }
        };
        // The first reads are where damage sled did not notice at open shows
        // (as an error or a panic): refused before anything is written.
        health::first_reads(dir, || {
            let t = Trees::open(&db)?;
            let store = Store {
                db,
                t,
                writer: Mutex::new(()),
                opts,
                path: dir.to_owned(),
                finisher: std::sync::RwLock::new(None),
                durable: tokio::sync::watch::Sender::new(0),
                health: health::Health::new(),
                synced: durable::SyncGate::new(dir),
            };
            store.check_intact(store.t.meta.get("format")?.is_none())?;
            if store.opts.verify_on_open {
                store.verify_all()?;
            }
            store.check_format()?;
            // What recovery found on disk is durable by definition.
            let seq = store.last_sequence()?;
            store.durable.send_replace(seq);
            store.opened(seq);
            Ok(store)
        })
    }

    fn check_format(&self) -> Result<(), StoreError> {
        match self.t.meta.get("format")? {
            Some(v) => {
                let found = keys::be_u64(&v).unwrap_or(0);
                if found != record::FORMAT_VERSION {
                    return Err(StoreError::Format {
                        path: self.path.clone(),
                        found,
                        expected: record::FORMAT_VERSION,
                    });
                }
            }
            None => {
                let mut key = vec![T::Meta as u8];
                key.extend_from_slice(b"format");
                self.t
                    .data
                    .insert(key, &record::FORMAT_VERSION.to_be_bytes())?;
                self.db.flush()?;
            }
        }
        Ok(())
    }

    /// Installs the hook every write applies to the event version it stores
    /// (`put_event`, and the changes of `hard_delete_children`). The store does not
    /// know what the hook does: the node uses it to seal what it stores, so no write
    /// path can forget to.
    pub fn set_finisher(&self, f: Finisher) {
        *self.finisher.write().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Makes `sealer` seal every event version this store writes (the finisher),
    /// so no write path can forget to. Every node installs it here, in one place.
    pub fn install_sealer(&self, sealer: &Arc<crate::seal::Sealer>) {
        let hook = sealer.clone();
        self.set_finisher(Arc::new(move |e| {
            hook.seal(e).map_err(|x| StoreError::Seal {
                what: "event",
                reason: x.to_string(),
            })
        }));
    }

    /// Runs the installed finisher, if any.
    pub(crate) fn finish(&self, event: &mut crate::model::Event) -> Result<(), StoreError> {
        let f = self
            .finisher
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match f {
            Some(f) => f(event),
            None => Ok(()),
        }
    }

    /// Forces everything written so far to stable storage — sled's flush, then
    /// an `fdatasync` of the database's files ([`durable`]), shared with
    /// concurrent callers — and moves the durable sequence (see
    /// [`Store::durable_sequence`]) to the last change written before it began.
    /// Every acknowledgement of a write follows a call to this.
    pub fn flush(&self) -> Result<(), StoreError> {
        let seq = self.last_sequence()?;
        self.flush_db()?;
        self.durable.send_if_modified(|d| {
            let moved = seq > *d;
            *d = (*d).max(seq);
            moved
        });
        self.stamp(seq, false);
        Ok(())
    }

    /// How many OS-level syncs have run (each covers every flush that finished
    /// before it began): for tests and `/metrics`.
    pub fn os_syncs(&self) -> u64 {
        self.synced.runs()
    }

    /// The highest change sequence known to be on disk: what the changes feed may
    /// hand to peers.
    pub fn durable_sequence(&self) -> u64 {
        *self.durable.borrow()
    }

    /// A receiver that wakes whenever the durable sequence moves (its value is
    /// that sequence). Never blocks a writer, however slow the receiver.
    pub fn watch_durable(&self) -> tokio::sync::watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Bytes sled reports on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Sum of the sizes of all live keys and values: what the store holds before
    /// sled's own overhead and not-yet-reclaimed old page versions. O(n): for
    /// benchmarks and operators' diagnostics, not for request paths.
    pub fn logical_bytes(&self) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for item in self.t.data.iter() {
            let (k, v) = item?;
            n += (k.len() + v.len()) as u64;
        }
        Ok(n)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// A small named value of the node's own bookkeeping (`meta` keyspace), e.g.
    /// the audit log's anchor. Names other modules use must not collide with the
    /// store's (`format`).
    pub fn meta_value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.t.meta.get(name.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Sets a [`Store::meta_value`]. Not flushed: durable with the next flush
    /// (at most about a second later, or at once through [`Store::flush`]).
    pub fn set_meta_value(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut key = vec![T::Meta as u8];
        key.extend_from_slice(name.as_bytes());
        self.t.data.insert(key, value)?;
        Ok(())
    }

    /// The highest change sequence number stored (0 if none).
    pub fn last_sequence(&self) -> Result<u64, StoreError> {
        Ok(self
            .t
            .changes
            .last()?
            .and_then(|(k, _)| keys::be_u64(&k))
            .unwrap_or(0))
    }

    /// Changes after `after`, in sequence order, at most `limit`.
    pub fn changes_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, record::Change)>, StoreError> {
        let start = after.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for item in self.t.changes.range_from(start).take(limit) {
            let (k, v) = item?;
            let seq = keys::be_u64(&k).ok_or_else(|| corrupt("changes", "short key"))?;
            let c: record::Change =
                postcard::from_bytes(&v).map_err(|e| corrupt("changes", e.to_string()))?;
            out.push((seq, c));
        }
        Ok(out)
    }
}

pub(crate) fn corrupt(tree: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        tree,
        reason: reason.into(),
    }
}

/// sled reports a held lock as an I/O error from `flock`; name it for the operator.
fn classify_open_error(dir: &Path, e: sled::Error) -> StoreError {
    if let sled::Error::Io(io) = &e {
        let msg = io.to_string();
        if io.kind() == std::io::ErrorKind::WouldBlock
            || msg.contains("lock")
            || msg.contains("temporarily unavailable")
        {
            return StoreError::Locked {
                path: dir.to_owned(),
            };
        }
    }
    StoreError::Open {
        path: dir.to_owned(),
        source: e,
    }
}
