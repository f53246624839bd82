//! Reloading TLS material without a restart: [`reload_tls`], and on Unix the
//! SIGHUP handler [`Node::run`](super::Node::run) installs, so a revocation (a
//! new CRL) applies at once (docs/design.md §5).

use crate::config::Config;
use crate::tls::{server_config, Acceptor, ClientAuth, TlsError};
#[cfg(unix)]
use std::path::PathBuf;

/// Rebuilds the server TLS config from `cfg`'s `[tls]` files (certificate, key,
/// CA, every CRL) and installs it in `acceptor` for handshakes from now on.
///
/// Everything is loaded and checked before the swap, so a missing or malformed
/// CRL returns an error and leaves the config in effect untouched: a bad file must
/// not silently re-admit a revoked peer, nor take the listener down. Connections
/// already established keep their old config (see [`crate::tls::ReloadableAcceptor`]).
///
/// The client-auth mode matches [`super::Node::start`]: one listener serves
/// analysts (certificate optional) and peers (certificate required by the
/// federation endpoints).
pub fn reload_tls(cfg: &Config, acceptor: &Acceptor) -> Result<(), TlsError> {
    let tls = cfg.tls.as_ref().ok_or_else(|| TlsError::Invalid {
        path: cfg.source.clone(),
        message: "no [tls] section: nothing to reload".into(),
    })?;
    let fresh = server_config(&tls.cert, &tls.key, &tls.ca, &tls.crl, ClientAuth::Optional)?;
    acceptor.reload(fresh);
    Ok(())
}

/// Why a reload failed: the config could not be read, or its TLS files.
#[cfg(unix)]
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// On every SIGHUP: re-read the config file and rebuild the TLS config from its
/// certificate, key, CA and CRL files. Anything unreadable (config, certificate,
/// a bad CRL) is logged and the configuration in effect is kept: a broken CRL
/// must neither re-admit a revoked peer nor stop the node. Only TLS material is
/// reloaded; `[[peer]]` changes still need a restart.
#[cfg(unix)]
pub(super) async fn on_sighup(config_path: PathBuf, acceptor: Acceptor) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot install the SIGHUP handler; TLS reload needs a restart");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let path = config_path.clone();
        let acceptor = acceptor.clone();
        let outcome = tokio::task::spawn_blocking(move || -> Result<(), ReloadError> {
            let cfg = Config::load(&path)?;
            reload_tls(&cfg, &acceptor)?;
            Ok(())
        })
        .await;
        match outcome {
            Ok(Ok(())) => {
                tracing::info!(config = %config_path.display(), "SIGHUP: TLS certificates and CRLs reloaded ([[peer]] changes need a restart)")
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the configuration in effect")
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS reload task failed; keeping the configuration in effect")
            }
        }
    }
}
