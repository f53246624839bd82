//! The one error type of the `tls` module.
//!
//! Every variant that involves a file names the file, because the operator who reads
//! `error: …` on stderr needs to know which of `ca.crt`, `node.key`, or a CRL is wrong
//! without reading source code.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while creating, loading, or using TLS material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading or writing a file failed at the OS level.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// A PEM file could not be decoded, or holds no item of the expected kind.
    #[error("{path}: no valid {what} in PEM: {source}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate or key file is syntactically fine but unusable for its role.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// `Ca::create` refuses to overwrite an existing CA: that would orphan every
    /// certificate the old CA issued.
    #[error("{path}: already exists; refusing to overwrite an existing CA")]
    AlreadyExists { path: PathBuf },
    /// A node or client name is not usable in a certificate.
    #[error("invalid certificate name {name:?}: {message}")]
    InvalidName { name: String, message: String },
    /// A serial number given for revocation is not hexadecimal.
    #[error("invalid serial number {serial:?}: expected hexadecimal")]
    InvalidSerial { serial: String },
    /// rcgen refused to build a certificate, key, or CRL.
    #[error("cannot {action}: {source}")]
    Generate {
        action: &'static str,
        source: rcgen::Error,
    },
    /// rustls refused the certificate/key pair when building a config.
    #[error("cannot build TLS {side} config from {cert} and {key}: {source}")]
    Config {
        side: &'static str,
        cert: PathBuf,
        key: PathBuf,
        // Boxed: rustls::Error is large and this variant is rare.
        source: Box<rustls::Error>,
    },
    /// The client-certificate verifier could not be built (no CA roots, or a bad CRL).
    #[error("cannot build client-certificate verifier from {ca} and CRLs {crls:?}: {source}")]
    Verifier {
        ca: PathBuf,
        crls: Box<[PathBuf]>,
        source: rustls::server::VerifierBuilderError,
    },
    /// A certificate presented on a connection could not be parsed after verification.
    #[error("peer certificate: {message}")]
    PeerCertificate { message: String },
    /// The TLS handshake with a client failed (bad certificate, protocol error, reset).
    #[error("TLS handshake failed: {source}")]
    Handshake { source: std::io::Error },
    /// The client did not complete the handshake in time (slowloris protection).
    #[error("TLS handshake did not complete within {timeout:?}")]
    HandshakeTimeout { timeout: Duration },
}

impl TlsError {
    /// Shorthand for the most common variant: an I/O failure on a named path.
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        TlsError::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// Shorthand for a semantically unusable file.
    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TlsError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every `Result<_, TlsError>` carries this much on the happy path too.
    #[test]
    fn stays_small() {
        assert!(std::mem::size_of::<super::TlsError>() <= 112);
    }
}
