//! rustls server and client configurations built from the `[tls]` files (docs/design.md §6.2).
//!
//! Trust is narrow on purpose: both directions trust **only the federation CA** in
//! `ca.crt`, never the system or webpki roots, so a certificate from a public CA
//! cannot pass for a peer. Every config is built with an explicit aws-lc-rs
//! provider, so nothing depends on a process-wide default being installed (which
//! panics when more than one provider is compiled in). Protocol versions are rustls'
//! safe defaults: TLS 1.3 and 1.2.

use super::TlsError;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Whether a listener requires a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Certificates are requested and, if presented, verified against the CA and the
    /// CRLs; clients without one still connect (they authenticate with an API key).
    /// For the analyst listener only, never for federation.
    Optional,
    /// No verified certificate, no connection. For the federation listener.
    Required,
}

/// ALPN offered by the server: HTTP/2 first, HTTP/1.1 for simple clients.
const SERVER_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Server config: our certificate chain and key, client certificates verified
/// against `ca_path` and every CRL in `crl_paths`.
///
/// With CRLs present, a client certificate whose revocation status the CRLs cannot
/// decide is refused (rustls' default); expired CRLs are still used (not enforced),
/// so a late CRL refresh does not lock out the whole federation.
///
/// Each call builds a fresh TLS session cache. Resumed sessions skip certificate
/// verification, so handing a new config to [`super::ReloadableAcceptor::reload`]
/// (rather than mutating an old one) is also what stops a just-revoked client from
/// resuming a session it opened before the new CRL.
pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
    ca_path: &Path,
    crl_paths: &[PathBuf],
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certs(cert_path)?;
    let key = load_key(key_path)?;
    let roots = load_roots(ca_path)?;
    let mut crls = Vec::new();
    for path in crl_paths {
        crls.extend(load_crls(path)?);
    }
    let provider = provider();

    let verifier_error = |source| TlsError::Verifier {
        ca: ca_path.to_path_buf(),
        crls: crl_paths.into(),
        source,
    };
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls);
    let verifier = match client_auth {
        ClientAuth::Optional => builder.allow_unauthenticated().build(),
        ClientAuth::Required => builder.build(),
    }
    .map_err(verifier_error)?;

    let config_error = |source| TlsError::Config {
        side: "server",
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source: Box::new(source),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(config_error)?;
    config.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Client config for outbound federation: presents our node certificate and trusts
/// only the federation CA.
///
/// ALPN is left empty: the HTTP client sets what it actually speaks (offering `h2`
/// here to a client that only speaks HTTP/1.1 would break the first request).
/// With reqwest: `tls_backend_preconfigured((*config).clone())`.
pub fn client_config(
    cert_path: &Path,
    key_path: &Path,
    ca_path: &Path,
) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_with_crls(cert_path, key_path, ca_path, &[])
}

/// [`client_config`] that also refuses servers whose certificate one of `crl_paths`
/// revokes, so a revoked peer cannot keep serving us data.
pub fn client_config_with_crls(
    cert_path: &Path,
    key_path: &Path,
    ca_path: &Path,
    crl_paths: &[PathBuf],
) -> Result<Arc<ClientConfig>, TlsError> {
    let chain = load_certs(cert_path)?;
    let key = load_key(key_path)?;
    let roots = load_roots(ca_path)?;
    let mut crls = Vec::new();
    for path in crl_paths {
        crls.extend(load_crls(path)?);
    }
    let provider = provider();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .with_crls(crls)
    .build()
    .map_err(|source| TlsError::Verifier {
        ca: ca_path.to_path_buf(),
        crls: crl_paths.into(),
        source,
    })?;
    let config_error = |source| TlsError::Config {
        side: "client",
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source: Box::new(source),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(config_error)?;
    Ok(Arc::new(config))
}

/// All certificates in a PEM file (leaf first, then intermediates). Empty is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        path: path.to_path_buf(),
        what: "certificate",
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(pem_error(rustls_pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        path: path.to_path_buf(),
        what: "private key",
        source,
    })
}

/// All CRLs in a PEM file. Empty is an error: a configured CRL file that revokes
/// nothing because it is truncated must not pass silently.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        path: path.to_path_buf(),
        what: "CRL",
        source,
    };
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if crls.is_empty() {
        return Err(pem_error(rustls_pki_types::pem::Error::NoItemsFound));
    }
    // rustls parses CRLs only when the verifier is built, and its error cannot say
    // which file was bad; parse here so the message names it.
    for crl in &crls {
        x509_parser::parse_x509_crl(crl)
            .map_err(|e| TlsError::invalid(path, format!("not a valid CRL: {e}")))?;
    }
    Ok(crls)
}

/// A root store holding exactly the certificates of `ca_path`.
pub fn load_roots(ca_path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_path)? {
        roots.add(cert).map_err(|e| {
            TlsError::invalid(ca_path, format!("not usable as a trust anchor: {e}"))
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{write_cert_and_key, Ca};

    #[test]
    fn configs_build_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(dir.path(), "ca").unwrap();
        let node = ca.issue_node_cert("cert-a", &[]).unwrap();
        let (cert, key) = write_cert_and_key(dir.path(), "node", &node).unwrap();
        let ca_path = dir.path().join("ca.crt");
        let crl_path = dir.path().join("revoked.crl");
        std::fs::write(&crl_path, ca.revoke(&["01"]).unwrap()).unwrap();

        let server = server_config(
            &cert,
            &key,
            &ca_path,
            std::slice::from_ref(&crl_path),
            ClientAuth::Required,
        )
        .unwrap();
        assert_eq!(
            server.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        client_config(&cert, &key, &ca_path).unwrap();
        client_config_with_crls(&cert, &key, &ca_path, &[crl_path]).unwrap();

        let missing = dir.path().join("missing.crt");
        let err = server_config(&missing, &key, &ca_path, &[], ClientAuth::Optional)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.crt"), "{err}");

        // A key file holding a certificate: no key in it.
        let err = client_config(&cert, &cert, &ca_path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("node.crt") && err.contains("private key"),
            "{err}"
        );

        // A CRL path holding a certificate: no CRL in it.
        let err = server_config(
            &cert,
            &key,
            &ca_path,
            std::slice::from_ref(&cert),
            ClientAuth::Required,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("node.crt") && err.contains("CRL"), "{err}");

        // A CRL section whose contents are not a CRL: the bad file is named.
        let garbage = dir.path().join("garbage.crl");
        std::fs::write(
            &garbage,
            "-----BEGIN X509 CRL-----\nMAMCAQA=\n-----END X509 CRL-----\n",
        )
        .unwrap();
        let err = server_config(&cert, &key, &ca_path, &[garbage], ClientAuth::Required)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("garbage.crl") && err.contains("not a valid CRL"),
            "{err}"
        );

        // Cert and key that do not belong together.
        let other = ca.issue_node_cert("cert-b", &[]).unwrap();
        let (_, other_key) = write_cert_and_key(dir.path(), "other", &other).unwrap();
        let err = server_config(&cert, &other_key, &ca_path, &[], ClientAuth::Required)
            .unwrap_err()
            .to_string();
        assert!(err.contains("other.key"), "{err}");
    }
}
