//! [`NodeError`]: why a node could not be created, started or run.

use crate::config::ConfigError;
use crate::seal::keys::KeyError;
use crate::store::StoreError;
use crate::tls::TlsError;
use std::path::PathBuf;

/// Why a node could not be created, started or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("{0} already holds a node (sluis.toml exists); refusing to overwrite it")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The listener failed (accepting is retried; this is a fatal socket error).
    #[error("serving: {0}")]
    Serve(std::io::Error),
}
