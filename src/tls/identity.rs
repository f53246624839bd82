//! The peer identity the TLS layer hands to the HTTP layer.
//!
//! As in linkerd2-proxy, identity is a typed value derived once per connection from
//! the verified client certificate and passed down as a request extension, never a
//! header a client could forge. Authorization (which configured peer, which role) is
//! decided above this layer: a certificate signed by the CA proves who the client is,
//! not what it may do.

use super::pki::{fingerprint_sha256, serial_to_hex};
use super::TlsError;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// Who is on the other end of a TLS connection, read from its leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// The subject CN, or the first DNS SAN when there is no CN. For a node this is
    /// the node name, which must match a configured `[[peer]] name`.
    pub name: String,
    /// All DNS SANs, in certificate order.
    pub dns_names: Vec<String>,
    /// `sha256:<hex>` of the leaf DER: the value a peer pins.
    pub fingerprint: String,
    /// Serial number, lowercase hex without leading zero bytes: what a CRL lists.
    pub serial_hex: String,
}

impl PeerIdentity {
    /// Read the identity from a leaf certificate.
    ///
    /// Call this **only after rustls has verified the chain** (i.e. on
    /// `peer_certificates()[0]` of a completed handshake): the fields of an
    /// unverified certificate are whatever the client chose to write. The parse
    /// itself is defensive; it just confers no trust.
    pub fn from_der(cert: &CertificateDer<'_>) -> Result<Self, TlsError> {
        let bad = |message: String| TlsError::PeerCertificate { message };
        let (_, x509) = x509_parser::parse_x509_certificate(cert)
            .map_err(|e| bad(format!("cannot parse: {e}")))?;

        let dns_names: Vec<String> = match x509.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_owned()),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(bad(format!("subjectAltName: {e}"))),
        };
        let cn = match x509.subject().iter_common_name().next() {
            Some(attr) => Some(
                attr.as_str()
                    .map_err(|e| bad(format!("common name: {e}")))?
                    .to_owned(),
            ),
            None => None,
        };
        let name = cn
            .filter(|n| !n.is_empty())
            .or_else(|| dns_names.first().cloned())
            .ok_or_else(|| bad("no common name and no DNS name".into()))?;

        Ok(PeerIdentity {
            name,
            dns_names,
            fingerprint: fingerprint_sha256(cert),
            serial_hex: serial_to_hex(x509.raw_serial()),
        })
    }
}

/// Request extension inserted by the HTTP layer for every request on a connection:
/// `ClientCert(Some(..))` when the client presented a verified certificate,
/// `ClientCert(None)` when it presented none (possible only on a listener with
/// [`super::ClientAuth::Optional`]).
///
/// Always inserted, so a handler that finds no `ClientCert` at all knows the request
/// did not come through the TLS listener (a wiring bug), rather than mistaking that
/// for an anonymous client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert(pub Option<PeerIdentity>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::Ca;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn identity_of_a_node_cert() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(dir.path(), "ca").unwrap();
        let issued = ca.issue_node_cert("cert-a", &["a.example"]).unwrap();
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        let id = PeerIdentity::from_der(&der).unwrap();
        assert_eq!(id.name, "cert-a");
        assert_eq!(id.dns_names, ["cert-a", "localhost", "a.example"]);
        assert_eq!(id.fingerprint, issued.fingerprint);
        assert_eq!(id.serial_hex, issued.serial_hex);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let der = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01]);
        assert!(PeerIdentity::from_der(&der).is_err());
    }
}
