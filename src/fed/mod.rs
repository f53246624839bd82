//! Federation between sluis nodes (DESIGN §5): the endpoints under `/fed/v1/` that
//! partner nodes call with their client certificate.
//!
//! Authentication is mutual TLS only. rustls has already verified the chain to the
//! federation CA and the CRLs before a request reaches this module; here the
//! verified [`crate::tls::PeerIdentity`] is mapped to exactly one configured
//! `[[peer]]` (and its pinned fingerprint, if any), or the request is refused. API
//! keys play no part: an analyst key grants nothing here, and a peer certificate
//! grants nothing on the analyst API (`api::auth` requires a key).
//!
//! | file | owns |
//! |---|---|
//! | `auth.rs` | the [`Peer`] extractor and [`FedAuthError`], the refusals |
//! | `routes.rs` | [`routes`]: the table of `/fed/v1/` endpoints, and `hello` |
//! | `changes.rs` | the changes feed, filtered for the calling peer, streamed |
//! | `notify.rs` | `POST /fed/v1/notify`: wake the caller's puller |
//! | `report.rs` | `POST /fed/v1/report`: what the caller accepted and refused |
//! | `wire.rs` | the protocol's lines and reports, and their bounded decoder |
//!
//! [`reload_tls`] re-reads the certificates and CRLs so a revocation takes effect
//! without a restart (`sluis serve` calls it on SIGHUP).

mod auth;
pub mod changes;
mod notify;
mod report;
mod routes;
pub mod wire;

pub use auth::{FedAuthError, Peer};
pub use routes::{routes, PROTOCOL_VERSION};

use crate::config::Config;
use crate::tls::{server_config, Acceptor, ClientAuth, TlsError};

/// Rebuilds the server TLS config from `cfg`'s `[tls]` files (certificate, key,
/// CA, every CRL) and installs it in `acceptor` for handshakes from now on.
///
/// Everything is loaded and checked before the swap, so a missing or malformed
/// CRL returns an error and leaves the config in effect untouched: a bad file must
/// not silently re-admit a revoked peer, nor take the listener down. Connections
/// already established keep their old config (see [`crate::tls::ReloadableAcceptor`]).
///
/// The client-auth mode matches [`crate::cli::serve::prepare`]: one listener serves
/// analysts (certificate optional) and peers (certificate required by [`Peer`]).
pub fn reload_tls(cfg: &Config, acceptor: &Acceptor) -> Result<(), TlsError> {
    let tls = cfg.tls.as_ref().ok_or_else(|| TlsError::Invalid {
        path: cfg.source.clone(),
        message: "no [tls] section: nothing to reload".into(),
    })?;
    let fresh = server_config(&tls.cert, &tls.key, &tls.ca, &tls.crl, ClientAuth::Optional)?;
    acceptor.reload(fresh);
    Ok(())
}
