//! TLS for the node: the federation PKI, rustls configs, and peer identity.
//!
//! Nodes talk HTTPS; federation uses mutual TLS where each side's certificate is
//! verified against the federation CA (plus CRLs), and the verified certificate
//! becomes a typed [`PeerIdentity`] that the HTTP layer maps to a configured peer
//! (docs/design.md §5). This module authenticates; deciding what an identity may do belongs
//! to `api`/`policy`.
//!
//! | file | owns |
//! |---|---|
//! | `pki.rs` | the CA ([`Ca`]): create/load `ca.crt`+`ca.key`, issue node and client certificates, sign CRLs; [`fingerprint_sha256`] |
//! | `config.rs` | rustls [`server_config`] ([`ClientAuth`] optional or required, CRLs) and [`client_config`], PEM loading |
//! | `identity.rs` | [`PeerIdentity`] from a verified leaf, and the [`ClientCert`] request extension |
//! | `acceptor.rs` | [`TlsAcceptor`] (handshake with a deadline, then identity) and [`ReloadableAcceptor`] (= [`Acceptor`], what listeners hold) |
//! | `files.rs` | atomic file writes with the key mode (0600) set before any byte is written |
//! | `error.rs` | [`TlsError`], every file-related variant naming its file |

pub mod acceptor;
pub mod config;
mod error;
mod files;
pub mod identity;
pub mod pki;

pub use acceptor::{ReloadableAcceptor, TlsAcceptor, TlsStream};
pub use config::{
    client_config, client_config_with_crls, load_certs, load_crls, load_key, load_roots,
    server_config, ClientAuth,
};
pub use error::TlsError;
pub use identity::{ClientCert, PeerIdentity};
pub use pki::{fingerprint_sha256, write_cert_and_key, Ca, IssuedCert, CA_CERT_FILE, CA_KEY_FILE};

/// The acceptor a listener holds: reloadable, so new CRLs and a renewed node
/// certificate apply without a restart (docs/design.md §5).
pub type Acceptor = ReloadableAcceptor;
