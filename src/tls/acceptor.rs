//! Accepting TLS connections: handshake with a deadline, then the peer identity.
//!
//! This is pattern 2 of the design notes (a manual accept loop with tokio-rustls):
//! the server owns the loop, calls [`TlsAcceptor::accept`] per TCP connection in its
//! own task, and passes the returned [`PeerIdentity`] down to the HTTP layer as a
//! [`super::ClientCert`] request extension.
//!
//! The handshake deadline matters: without it a client that opens a TCP connection
//! and sends nothing holds a task and a socket forever (slowloris).
//!
//! [`ReloadableAcceptor`] swaps the `ServerConfig` (new CRLs, a renewed certificate)
//! without restarting the listener. A swap affects handshakes that start after it;
//! connections already established keep the config they were accepted with, so an
//! operator who revokes a peer should also close that peer's open connections.

use super::{PeerIdentity, TlsError};
use rustls::ServerConfig;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
pub use tokio_rustls::server::TlsStream;

/// A TLS acceptor with a fixed configuration. Cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
}

impl TlsAcceptor {
    /// Wrap a server config (from [`super::server_config`]).
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(config),
        }
    }

    /// Run the server handshake on `io`, giving up after `handshake_timeout`.
    ///
    /// Returns the stream and the identity of the client certificate, if one was
    /// presented. The certificate has been verified by rustls (chain to the CA, CRLs,
    /// validity, clientAuth usage) before it is read here; a certificate that fails
    /// verification fails the handshake instead.
    pub async fn accept<IO>(
        &self,
        io: IO,
        handshake_timeout: Duration,
    ) -> Result<(TlsStream<IO>, Option<PeerIdentity>), TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = match tokio::time::timeout(handshake_timeout, self.inner.accept(io)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(TlsError::Handshake { source }),
            Err(_elapsed) => {
                return Err(TlsError::HandshakeTimeout {
                    timeout: handshake_timeout,
                })
            }
        };
        // Only after `accept` completed is the client's certificate verified and
        // available; the first one is the leaf.
        let peer = match stream.get_ref().1.peer_certificates() {
            Some([leaf, ..]) => Some(PeerIdentity::from_der(leaf)?),
            _ => None,
        };
        Ok((stream, peer))
    }

    /// The configuration this acceptor uses.
    pub fn config(&self) -> &Arc<ServerConfig> {
        self.inner.config()
    }
}

/// A [`TlsAcceptor`] whose configuration can be replaced while the listener runs.
/// Cheap to clone; clones share the configuration slot.
#[derive(Clone)]
pub struct ReloadableAcceptor {
    current: Arc<RwLock<TlsAcceptor>>,
}

impl ReloadableAcceptor {
    /// Start with `config`.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        ReloadableAcceptor {
            current: Arc::new(RwLock::new(TlsAcceptor::new(config))),
        }
    }

    /// Use `config` for every handshake that starts from now on.
    pub fn reload(&self, config: Arc<ServerConfig>) {
        let fresh = TlsAcceptor::new(config);
        // The lock only guards an assignment and a clone, neither of which can
        // panic, so a poisoned lock still holds a consistent value.
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        tracing::info!("TLS configuration reloaded");
    }

    /// The acceptor in effect now (a snapshot; later reloads do not change it).
    pub fn current(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// [`TlsAcceptor::accept`] with the configuration in effect when it is called.
    pub async fn accept<IO>(
        &self,
        io: IO,
        handshake_timeout: Duration,
    ) -> Result<(TlsStream<IO>, Option<PeerIdentity>), TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        // Snapshot first: the lock must not be held across the handshake.
        let acceptor = self.current();
        acceptor.accept(io, handshake_timeout).await
    }
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ReloadableAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableAcceptor").finish_non_exhaustive()
    }
}
