//! Durable local storage on sled: records, secondary indexes, the change log.
//!
//! Trees (all in one sled database, so one transaction can span them):
//!
//! | tree | key | value |
//! |---|---|---|
//! | `events` | event uuid | [`record::StoredEvent`] |
//! | `attrs` | event ‖ attribute uuid | [`record::StoredAttr`] (postcard) |
//! | `objects` | event ‖ object uuid | object JSON (references inline, attributes in `attrs`) |
//! | `reports` | event ‖ report uuid | report JSON |
//! | `sightings` | event ‖ sighting uuid | sighting JSON |
//! | `sharing_groups` | sg uuid | sharing group JSON |
//! | `loc` | any element uuid | kind ‖ event uuid — makes uuids unique store-wide |
//! | `ids` | kind ‖ local id | uuid(s) — MISP's numeric ids, local only |
//! | `idx_value` | folded value ‖ 0 ‖ event ‖ attr | index flags |
//! | `idx_rvalue` | reversed folded value ‖ 0 ‖ event ‖ attr | index flags |
//! | `idx_ip` | family ‖ network ‖ prefix ‖ event ‖ attr | index flags |
//! | `idx_type` | type ‖ 0 ‖ event ‖ attr | index flags |
//! | `idx_tag` | folded tag ‖ 0 ‖ event ‖ (attr or nil) | — |
//! | `idx_ts`, `idx_pts` | timestamp (BE) ‖ event | — |
//! | `changes` | sequence (BE) | [`record::Change`] |
//! | `meta` | name | counters, format version |
//!
//! **Durability**: a write is acknowledged only after `Db::flush` (fsync) returned;
//! sled's own 500 ms background flush is not relied on. **Atomicity**: all trees an
//! event write touches change in one sled transaction, which sled recovers atomically.
//! **Concurrency**: one writer at a time (a mutex), so merge decisions read a stable
//! state; readers never block.

mod keys;
mod lookup;
mod read;
pub mod record;
mod write;

pub use lookup::{Correlation, Hit, LookupError, WildcardKind};
pub use write::{Durability, Outcome};

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What can go wrong below the API.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database in {path} is already open in another process (is a sluis node running?)")]
    Locked { path: PathBuf },
    #[error("cannot open the database in {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("the database in {path} has format version {found}, this sluis reads version {expected}")]
    Format {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in tree {tree}: {reason}")]
    Corrupt { tree: &'static str, reason: String },
    #[error(transparent)]
    Invalid(#[from] crate::model::validate::ValidationError),
    #[error("{0}")]
    Rejected(String),
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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 256 * 1024 * 1024,
            correlation_limit: 20,
        }
    }
}

pub(crate) struct Trees {
    pub events: sled::Tree,
    pub attrs: sled::Tree,
    pub objects: sled::Tree,
    pub reports: sled::Tree,
    pub sightings: sled::Tree,
    pub sharing_groups: sled::Tree,
    pub loc: sled::Tree,
    pub ids: sled::Tree,
    pub idx_value: sled::Tree,
    pub idx_rvalue: sled::Tree,
    pub idx_ip: sled::Tree,
    pub idx_type: sled::Tree,
    pub idx_tag: sled::Tree,
    pub idx_ts: sled::Tree,
    pub idx_pts: sled::Tree,
    pub changes: sled::Tree,
    pub meta: sled::Tree,
}

/// Position of each tree in [`Trees::all`], used to route batched writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum T {
    Events,
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
}

pub(crate) const TREE_COUNT: usize = 17;

impl Trees {
    fn open(db: &sled::Db) -> sled::Result<Self> {
        Ok(Trees {
            events: db.open_tree("events")?,
            attrs: db.open_tree("attrs")?,
            objects: db.open_tree("objects")?,
            reports: db.open_tree("reports")?,
            sightings: db.open_tree("sightings")?,
            sharing_groups: db.open_tree("sharing_groups")?,
            loc: db.open_tree("loc")?,
            ids: db.open_tree("ids")?,
            idx_value: db.open_tree("idx_value")?,
            idx_rvalue: db.open_tree("idx_rvalue")?,
            idx_ip: db.open_tree("idx_ip")?,
            idx_type: db.open_tree("idx_type")?,
            idx_tag: db.open_tree("idx_tag")?,
            idx_ts: db.open_tree("idx_ts")?,
            idx_pts: db.open_tree("idx_pts")?,
            changes: db.open_tree("changes")?,
            meta: db.open_tree("meta")?,
        })
    }

    /// In [`T`] order.
    pub fn all(&self) -> [&sled::Tree; TREE_COUNT] {
        [
            &self.events,
            &self.attrs,
            &self.objects,
            &self.reports,
            &self.sightings,
            &self.sharing_groups,
            &self.loc,
            &self.ids,
            &self.idx_value,
            &self.idx_rvalue,
            &self.idx_ip,
            &self.idx_type,
            &self.idx_tag,
            &self.idx_ts,
            &self.idx_pts,
            &self.changes,
            &self.meta,
        ]
    }
}

/// The node's database. Cheap to share behind an `Arc`.
pub struct Store {
    db: sled::Db,
    pub(crate) t: Trees,
    writer: Mutex<()>,
    opts: StoreOptions,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: dir.to_owned(),
            source: sled::Error::Io(e),
        })?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            // We flush explicitly before acknowledging; the periodic flush only bounds
            // how much unacknowledged work a crash can lose.
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| classify_open_error(dir, e))?;
        let t = Trees::open(&db)?;
        let store = Store {
            db,
            t,
            writer: Mutex::new(()),
            opts,
            path: dir.to_owned(),
        };
        store.check_format()?;
        Ok(store)
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
                self.t
                    .meta
                    .insert("format", &record::FORMAT_VERSION.to_be_bytes())?;
                self.db.flush()?;
            }
        }
        Ok(())
    }

    /// Forces everything written so far to disk (fsync).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Bytes sled reports on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &StoreOptions {
        &self.opts
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
        for item in self.t.changes.range(start..).take(limit) {
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
