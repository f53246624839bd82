//! The audit log: an append-only, hash-chained record of what happened at the
//! node's gates — failed logins, refused requests, every change through the API,
//! records accepted or refused from peers, key, user and peer changes, starts and
//! stops — with checkpoints signed by the node's key.
//!
//! | file | owns |
//! |---|---|
//! | [`record`] | [`Entry`] and [`Kind`] (what callers record), the line format, genesis, the checkpoint's signed message |
//! | [`log`] | [`AuditLog`]: appending, group-committed fsyncs, checkpoints, resuming after a restart |
//! | [`verify`] | checking a log line by line: chain, seqs, signatures, anchor ([`Report`], [`Problem`]) |
//! | [`anchor`] | the last checkpoint, remembered in the store, so a cut-off end shows |
//!
//! **Format.** `<data_dir>/audit.log`, one JSON object per line, outside sled so it
//! survives a damaged database and can be shipped as is to a SIEM:
//! `{"seq","time","prev","kind","action"?,"actor","subject"?,"event"?,"outcome",
//! "reason"?,"remote"?,"request"?}`. `prev` is the hex SHA-256 of the previous
//! line's bytes; the first line's `prev` is the genesis value, a hash bound to the
//! node's organisation and public key. A checkpoint line (`"kind":"checkpoint"`)
//! adds `key_id` and `signature`: ed25519 over a domain-separated message of the
//! org, its seq, its `prev` (which chains every earlier line) and its time.
//!
//! **What it proves.** Any edit, deletion or reordering before the last
//! checkpoint breaks the chain or a signature, and `sluis audit verify` names the
//! line. Records after the last checkpoint are chained but not signed: whoever can
//! write the file can rewrite or drop them consistently. The node narrows that
//! window by checkpointing every `checkpoint_records` records, every
//! `checkpoint_interval` when anything was recorded, and at a clean stop; and it
//! remembers its last checkpoint in the store (the [`anchor`]), so a log cut back
//! to an earlier checkpoint is noticed at start and by `verify`. Nothing in a file
//! on the node's own disk stands up to someone who owns the machine and the key:
//! ship the log elsewhere as it is written.
//!
//! **Durability.** A record is written to the operating system (one `write`) before
//! `record` returns, so it survives the process crashing. Records of things the
//! node acknowledges or acts on — writes, key/user/peer changes, accepted sync
//! records, stops, checkpoints — are also fsynced before `record` returns, so
//! the audit of a change is on disk no later than the change's acknowledgement
//! (the store flushes before the ack; the API records after the store and before
//! answering). Concurrent fsyncs are shared (group commit). Records of refusals
//! (failed logins, denials, rejected sync records) are fsynced with the next
//! sync: nothing is acknowledged on their strength, and one fsync per failed login
//! would let anyone make the node fsync at will. See [`Durability`].
//!
//! **Failure.** If an append or fsync fails, the log reports it on every call and
//! [`AuditLog::is_failing`] turns true; the API then refuses changes with 503
//! until a later sync succeeds (the periodic checkpoint is the probe), because an
//! unaudited change is worse than a refused one. A change whose store write
//! succeeded but whose record then failed is answered 503 too, and logged loudly:
//! it is stored, but the client must not take it as a clean success. After a
//! failed fsync nothing more is written until a restart re-checks the tail.
//!
//! **Calling it.** [`AuditLog::record`] blocks (use it from blocking threads),
//! [`AuditLog::record_async`] runs it on a blocking thread, and
//! [`AuditLog::record_or_log`] / [`AuditLog::record_or_log_async`] log a failure
//! with `tracing::error` instead of returning it, for paths that go on either way.

pub mod anchor;
pub mod log;
pub mod record;
pub mod verify;

pub use log::{run_checkpoints, AuditLog, AuditOptions};
pub use record::{Entry, Kind, LineHash, Outcome};
pub use verify::{Origin, Problem, Report, Trust};

use std::path::PathBuf;

/// The file name of the log in the node's data directory.
pub const FILE_NAME: &str = "audit.log";

/// How durable a record is when `record` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Handed to the operating system: survives the process, not a power cut
    /// until the next sync.
    Written,
    /// On disk (fdatasync, shared with concurrent callers).
    Synced,
}

/// Why the audit log could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit log {path}: cannot {action}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The log does not check out at open: the node will not append to a log it
    /// cannot vouch for.
    #[error("audit log {path} does not check out: {problem}{context}. Keep the file: it is evidence. Run `sluis audit verify` for the full report; restore the log from a copy, or start a new one with `sluis audit rotate --force`")]
    Damaged {
        path: PathBuf,
        problem: Problem,
        context: String,
    },
    /// The log was closed by `sluis audit rotate` (it ends with `log_closed` and
    /// a checkpoint): the current log should have replaced it.
    #[error("audit log {path} was closed by `sluis audit rotate` at seq {seq}; the log that continues it is missing. Restore it, or run `sluis audit rotate` to start one")]
    Closed {
        path: PathBuf,
        seq: u64,
        hash: record::LineHash,
    },
    /// An earlier failure left the file in a state only a restart re-checks.
    #[error(
        "audit log {path}: no longer written ({reason}); restart the node once the disk is healthy"
    )]
    Broken { path: PathBuf, reason: String },
    /// Checkpoints are written by the log itself.
    #[error("checkpoints are written by the audit log itself, not recorded")]
    Reserved,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("audit worker failed: {0}")]
    Worker(String),
}
