//! The `sluis` subcommands as library functions, so tests drive them directly and
//! `main.rs` stays a thin argument parser.

pub mod audit;
pub mod backup;
pub mod export;
pub mod import;
pub mod peers;
pub mod remote;
pub mod resolve;
pub mod support;
pub mod verify;

use crate::config::ConfigError;
use crate::export::{ExportError, FilterError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    #[error(transparent)]
    Key(#[from] crate::seal::keys::KeyError),
    #[error(transparent)]
    Parse(#[from] crate::model::parse::ParseError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// A public key given on the command line (`--key`) that is not one.
    #[error("--key {key}: {reason}")]
    BadKey { key: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Backup(#[from] crate::store::backup::BackupError),
    /// A running node that could not be reached or refused (online backup).
    #[error("{url}: {reason}")]
    Remote { url: String, reason: String },
}

pub use crate::node::sealer;

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub(crate) fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr_with_hz(5),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}
