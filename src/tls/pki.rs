//! The federation CA and the certificates it issues (rcgen).
//!
//! A CERT that starts a federation (or a developer running `sluis serve` with no config)
//! needs a small CA: one self-signed root that signs every node's certificate. Peers
//! then trust that root and nothing else, so a certificate from a public CA, or from
//! another federation, cannot open a federation connection.
//!
//! What is issued, and why:
//! - **CA**: `basicConstraints CA:true, pathlen:0` (it signs leaves only, never another
//!   CA), key usages `keyCertSign` + `cRLSign` (so its CRLs verify), ~10 years.
//! - **Node certificate**: CN = node name; SANs = node name, `localhost`, `127.0.0.1`
//!   and any extras; EKU `serverAuth` *and* `clientAuth`, because a node is both the
//!   server peers pull from and the client that pulls from peers; ~2 years.
//! - **Client certificate** (analysts, tests): `clientAuth` only, so it cannot
//!   impersonate a node's server side.
//! - Serial numbers are random (positive, 127 bits), which keeps them unique without
//!   a serial counter file and makes them usable as revocation handles.
//!
//! Keys are ECDSA P-256 (rcgen's default). Private keys are written with mode 0600
//! via `files.rs`, atomically (mode set before any byte is written).

use super::files::{write_atomic, CERT_MODE, KEY_MODE};
use super::TlsError;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevokedCertParams, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::ParsedExtension;
use x509_parser::x509::X509Name;

/// File name of the CA certificate in a CA or node directory (docs/design.md §6.1).
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the CA private key in a CA directory (docs/design.md §6.1).
pub const CA_KEY_FILE: &str = "ca.key";

/// CA lifetime: long enough that a federation does not have to re-key every node
/// often; the CA key lives offline in the CA directory.
const CA_LIFETIME: Duration = Duration::from_secs(3650 * 24 * 60 * 60);
/// Leaf lifetime: short enough that a forgotten node's cert dies on its own.
const LEAF_LIFETIME: Duration = Duration::from_secs(730 * 24 * 60 * 60);
/// Backdating of `notBefore`, so a peer whose clock is slightly behind accepts a
/// freshly issued certificate.
const CLOCK_SKEW: Duration = Duration::from_secs(60 * 60);
/// Validity announced in a CRL (`nextUpdate`). The verifier does not enforce CRL
/// expiry by default, so this is informational for other tools reading the CRL.
const CRL_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// X.520 upper bound for a common name.
const MAX_CN_LEN: usize = 64;

/// A CA that can issue node and client certificates and sign CRLs.
///
/// The private key stays inside; `Debug` does not print it.
pub struct Ca {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_id: KeyIdMethod,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// A freshly issued certificate with its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate (leaf only; peers already hold the CA).
    pub cert_pem: String,
    /// The PKCS#8 private key. Write it with [`write_cert_and_key`] (mode 0600).
    pub key_pem: String,
    /// Serial number as lowercase hex without leading zero bytes: the handle for
    /// [`Ca::revoke`], and the form [`super::PeerIdentity::serial_hex`] reports.
    pub serial_hex: String,
    /// `sha256:<hex>` of the certificate DER (docs/design.md §6.1 `tls_fingerprint`).
    pub fingerprint: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("serial_hex", &self.serial_hex)
            .field("fingerprint", &self.fingerprint)
            .field("key_pem", &"[elided]")
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Create a new CA named `name` and write `dir/ca.crt` and `dir/ca.key` (0600).
    ///
    /// Refuses if either file exists: replacing a CA silently would invalidate every
    /// certificate the federation holds.
    pub fn create(dir: &Path, name: &str) -> Result<Ca, TlsError> {
        check_common_name(name)?;
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(TlsError::AlreadyExists { path: path.clone() });
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| TlsError::io(dir, "create directory", e))?;

        let key = KeyPair::generate().map_err(|source| TlsError::Generate {
            action: "generate CA key",
            source,
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        set_validity(&mut params, CA_LIFETIME);
        let cert = params
            .self_signed(&key)
            .map_err(|source| TlsError::Generate {
                action: "self-sign CA certificate",
                source,
            })?;

        // Key first: a crash in between leaves a key without a cert, which `create`
        // and `load` both report, rather than a cert whose key is lost.
        write_atomic(&key_path, key.serialize_pem().as_bytes(), KEY_MODE)?;
        write_atomic(&cert_path, cert.pem().as_bytes(), CERT_MODE)?;

        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_id: params.key_identifier_method.clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Load the CA from `dir/ca.crt` and `dir/ca.key`.
    ///
    /// Checks that the certificate is a CA allowed to sign certificates, that the key
    /// belongs to it, and that certificates issued now will name it exactly as its
    /// subject (otherwise peers could not build the chain).
    pub fn load(dir: &Path) -> Result<Ca, TlsError> {
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        let cert_der =
            CertificateDer::from_pem_file(&cert_path).map_err(|source| TlsError::Pem {
                path: cert_path.clone(),
                what: "certificate",
                source,
            })?;
        let cert_pem =
            std::fs::read_to_string(&cert_path).map_err(|e| TlsError::io(&cert_path, "read", e))?;
        warn_if_key_readable_by_others(&key_path);
        let key_pem =
            std::fs::read_to_string(&key_path).map_err(|e| TlsError::io(&key_path, "read", e))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| TlsError::invalid(&key_path, format!("not a usable private key: {e}")))?;

        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| TlsError::invalid(&cert_path, format!("cannot parse certificate: {e}")))?;
        let is_ca = matches!(x509.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca {
            return Err(TlsError::invalid(
                &cert_path,
                "not a CA certificate (basicConstraints CA:true missing)",
            ));
        }
        let key_usages = ca_key_usages(&x509)
            .ok_or_else(|| TlsError::invalid(&cert_path, "key usage does not allow keyCertSign"))?;
        if key.subject_public_key_info() != x509.public_key().raw {
            return Err(TlsError::invalid(
                &key_path,
                format!("this key does not belong to {}", cert_path.display()),
            ));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(x509.subject())
            .map_err(|m| TlsError::invalid(&cert_path, format!("subject: {m}")))?;
        params.key_usages = key_usages;
        // Reuse the CA's own subjectKeyIdentifier so the authorityKeyIdentifier of
        // issued certificates matches it, whoever generated the CA.
        params.key_identifier_method = subject_key_id(&x509)
            .map(|ski| KeyIdMethod::PreSpecified(ski.to_vec()))
            .unwrap_or(KeyIdMethod::Sha256);
        let subject_raw = x509.subject().as_raw().to_vec();

        let ca = Ca {
            cert_pem,
            key_id: params.key_identifier_method.clone(),
            issuer: Issuer::new(params, key),
            cert_der,
        };
        ca.check_issuer_name(&subject_raw, &cert_path)?;
        Ok(ca)
    }

    /// Load the CA in `dir`, or create it (named `name`) if `dir/ca.crt` does not exist.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Ca, TlsError> {
        if dir.join(CA_CERT_FILE).exists() {
            Ca::load(dir)
        } else {
            Ca::create(dir, name)
        }
    }

    /// The CA certificate, PEM (what goes into every node's `ca.crt`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// `sha256:<hex>` of the CA certificate, for out-of-band comparison.
    pub fn fingerprint(&self) -> String {
        fingerprint_sha256(&self.cert_der)
    }

    /// Issue a node certificate: CN and first SAN = `node_name`, plus `localhost`,
    /// `127.0.0.1` and `extra_sans` (IP-looking extras become IP SANs), usable for
    /// both serverAuth and clientAuth.
    pub fn issue_node_cert(
        &self,
        node_name: &str,
        extra_sans: &[&str],
    ) -> Result<IssuedCert, TlsError> {
        check_common_name(node_name)?;
        check_dns_name(node_name)?;
        let mut sans = Vec::new();
        for name in [node_name, "localhost", "127.0.0.1"]
            .iter()
            .chain(extra_sans)
        {
            let san = san_for(name)?;
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        self.issue(
            node_name,
            sans,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// Issue a client-only certificate (analysts, tools, tests) with CN = `name`.
    ///
    /// `name` gets a DNS SAN too when it is a valid DNS name, so it is found the same
    /// way as a node's name; other names (e.g. `alice@cert-a`) stay CN-only.
    pub fn issue_client_cert(&self, name: &str) -> Result<IssuedCert, TlsError> {
        check_common_name(name)?;
        let sans = match check_dns_name(name) {
            Ok(()) => vec![san_for(name)?],
            Err(_) => Vec::new(),
        };
        self.issue(name, sans, vec![ExtendedKeyUsagePurpose::ClientAuth])
    }

    /// A CRL, signed by this CA, revoking the given serials (hex as in
    /// [`IssuedCert::serial_hex`]; `:` separators and a `0x` prefix are accepted).
    ///
    /// The CRL lists exactly these serials: to keep earlier revocations, pass them
    /// again. The CRL number is the current Unix time, so later CRLs number higher.
    pub fn revoke(&self, serials_hex: &[&str]) -> Result<String, TlsError> {
        let now = unix_now();
        let now_dt = rcgen::date_time_ymd(1970, 1, 1) + now;
        let revoked_certs = serials_hex
            .iter()
            .map(|s| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from(parse_serial(s)?),
                    revocation_time: now_dt,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, TlsError>>()?;
        let params = CertificateRevocationListParams {
            this_update: now_dt,
            next_update: now_dt + CRL_LIFETIME,
            crl_number: SerialNumber::from(now.as_secs()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: self.key_id.clone(),
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(|source| TlsError::Generate {
                action: "sign CRL",
                source,
            })?;
        crl.pem().map_err(|source| TlsError::Generate {
            action: "encode CRL as PEM",
            source,
        })
    }

    fn issue(
        &self,
        common: &str,
        sans: Vec<SanType>,
        ekus: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<IssuedCert, TlsError> {
        let key = KeyPair::generate().map_err(|source| TlsError::Generate {
            action: "generate certificate key",
            source,
        })?;
        let serial = random_serial();
        let serial_hex = serial_to_hex(serial.as_ref());
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(common);
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = ekus;
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, LEAF_LIFETIME);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| TlsError::Generate {
                action: "sign certificate",
                source,
            })?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial_hex,
            fingerprint: fingerprint_sha256(cert.der()),
        })
    }

    /// rcgen encodes the issuer name from the reconstructed subject; if that differs
    /// by a single byte from the CA's real subject, peers cannot chain the leaves.
    /// Sign a throwaway certificate (over the CA's own public key; nothing is
    /// generated) and compare.
    fn check_issuer_name(&self, subject_raw: &[u8], cert_path: &Path) -> Result<(), TlsError> {
        let probe = CertificateParams::default()
            .signed_by(self.issuer.key(), &self.issuer)
            .map_err(|source| TlsError::Generate {
                action: "sign probe certificate",
                source,
            })?;
        let same = x509_parser::parse_x509_certificate(probe.der())
            .map(|(_, p)| p.issuer().as_raw() == subject_raw)
            .unwrap_or(false);
        if same {
            Ok(())
        } else {
            Err(TlsError::invalid(
                cert_path,
                "subject name cannot be reproduced exactly when issuing; \
                 use a CA created by `sluis init`",
            ))
        }
    }
}

/// Write `dir/<stem>.crt` and `dir/<stem>.key` (mode 0600), each atomically; returns
/// their paths. Existing files are replaced (certificate rotation).
pub fn write_cert_and_key(
    dir: &Path,
    stem: &str,
    issued: &IssuedCert,
) -> Result<(PathBuf, PathBuf), TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| TlsError::io(dir, "create directory", e))?;
    let cert_path = dir.join(format!("{stem}.crt"));
    let key_path = dir.join(format!("{stem}.key"));
    write_atomic(&key_path, issued.key_pem.as_bytes(), KEY_MODE)?;
    write_atomic(&cert_path, issued.cert_pem.as_bytes(), CERT_MODE)?;
    Ok((cert_path, key_path))
}

/// `sha256:<lowercase hex of SHA-256(cert DER)>`, the `tls_fingerprint` of docs/design.md §6.1.
pub fn fingerprint_sha256(cert_der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(cert_der)))
}

/// Serial bytes as lowercase hex, leading zero bytes removed (DER adds one when the
/// top bit is set; it is not part of the number).
pub(crate) fn serial_to_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(&raw[start..])
}

fn parse_serial(s: &str) -> Result<Vec<u8>, TlsError> {
    let bad = || TlsError::InvalidSerial {
        serial: s.to_owned(),
    };
    let trimmed = s.trim();
    let digits: String = trimmed
        .strip_prefix("0x")
        .unwrap_or(trimmed)
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if digits.is_empty() {
        return Err(bad());
    }
    let even = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    hex::decode(even).map_err(|_| bad())
}

/// 16 random bytes with the top bit clear (positive INTEGER without padding) and the
/// next bit set (so the encoding length is always 16 and never loses a leading zero).
fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    // A v4 UUID has 122 random bits; the fixed version/variant bits are harmless here.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn unix_now() -> Duration {
    // A clock before 1970 is a broken host; the resulting certificate would simply
    // be not-yet-valid elsewhere, which is the honest outcome.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn set_validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = rcgen::date_time_ymd(1970, 1, 1) + unix_now();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + lifetime;
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn check_common_name(name: &str) -> Result<(), TlsError> {
    let bad = |message: &str| TlsError::InvalidName {
        name: name.to_owned(),
        message: message.to_owned(),
    };
    if name.trim().is_empty() {
        return Err(bad("empty"));
    }
    if name.chars().count() > MAX_CN_LEN {
        return Err(bad("longer than 64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    Ok(())
}

/// Node names are matched against certificate names by peers and by rustls, so they
/// must be plain DNS names: no IP addresses, no wildcards.
fn check_dns_name(name: &str) -> Result<(), TlsError> {
    let bad = |message: &str| TlsError::InvalidName {
        name: name.to_owned(),
        message: message.to_owned(),
    };
    if name.parse::<IpAddr>().is_ok() {
        return Err(bad("a node name must be a DNS name, not an IP address"));
    }
    if name.contains('*') {
        return Err(bad("wildcards are not allowed"));
    }
    rustls_pki_types::DnsName::try_from(name)
        .map(|_| ())
        .map_err(|_| bad("not a valid DNS name"))
}

fn san_for(name: &str) -> Result<SanType, TlsError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    check_dns_name(name)?;
    let ia5 = name.try_into().map_err(|e| TlsError::InvalidName {
        name: name.to_owned(),
        message: format!("{e}"),
    })?;
    Ok(SanType::DnsName(ia5))
}

fn ca_key_usages(x509: &X509Certificate<'_>) -> Option<Vec<KeyUsagePurpose>> {
    match x509.key_usage() {
        Ok(Some(ku)) if ku.value.key_cert_sign() => {
            let mut usages = vec![KeyUsagePurpose::KeyCertSign];
            if ku.value.crl_sign() {
                usages.push(KeyUsagePurpose::CrlSign);
            }
            if ku.value.digital_signature() {
                usages.push(KeyUsagePurpose::DigitalSignature);
            }
            Some(usages)
        }
        // No keyUsage extension at all means "any usage" (RFC 5280 §4.2.1.3).
        Ok(None) => Some(Vec::new()),
        _ => None,
    }
}

fn subject_key_id<'a>(x509: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    x509.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
            _ => None,
        })
}

/// Rebuild an rcgen name from a parsed one, keeping each value's string type, so the
/// issuer field of new certificates is byte-identical to the CA's subject.
fn distinguished_name(name: &X509Name<'_>) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err("multi-valued or empty RDNs are not supported".into());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("attribute OID out of range")?
            .collect();
        let value = attr.attr_value();
        let text = std::str::from_utf8(value.data).map_err(|_| "attribute is not UTF-8")?;
        let dn_value = match value.header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(
                text.try_into()
                    .map_err(|e| format!("bad PrintableString: {e}"))?,
            ),
            Tag::Ia5String => {
                DnValue::Ia5String(text.try_into().map_err(|e| format!("bad IA5String: {e}"))?)
            }
            other => return Err(format!("unsupported string type {other}")),
        };
        dn.push(DnType::from_oid(&oid), dn_value);
    }
    Ok(dn)
}

#[cfg(unix)]
fn warn_if_key_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "private key is readable by group or others; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_key_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;

    fn parse(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn fingerprint_format() {
        let fp = fingerprint_sha256(b"abc");
        assert_eq!(
            fp,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(fp.len(), "sha256:".len() + 64);
    }

    #[test]
    fn node_cert_has_names_usages_and_is_not_a_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(dir.path(), "test CA").unwrap();
        let issued = ca
            .issue_node_cert("cert-a", &["cert-a.example.org", "192.0.2.7", "localhost"])
            .unwrap();
        let der = parse(&issued.cert_pem);
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();

        let cn: Vec<_> = x509
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(cn, ["cert-a"]);
        let san = x509.subject_alternative_name().unwrap().unwrap();
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
                other => panic!("unexpected SAN {other:?}"),
            }
        }
        // The duplicate "localhost" extra is not repeated.
        assert_eq!(dns, ["cert-a", "localhost", "cert-a.example.org"]);
        assert_eq!(ips, [vec![127, 0, 0, 1], vec![192, 0, 2, 7]]);

        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(x509.key_usage().unwrap().unwrap().value.digital_signature());
        let bc = x509.basic_constraints().unwrap().unwrap().value;
        assert!(!bc.ca);
        assert_eq!(x509.issuer().as_raw(), {
            let ca_der = ca.cert_der().to_vec();
            let (_, c) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
            c.subject().as_raw().to_vec()
        });
        assert_eq!(serial_to_hex(x509.raw_serial()), issued.serial_hex);
        assert_eq!(issued.serial_hex.len(), 32);
        assert_eq!(fingerprint_sha256(&der), issued.fingerprint);
        let lifetime = x509.validity().time_to_expiration().unwrap();
        assert!(lifetime.whole_days() > 700 && lifetime.whole_days() <= 730);
    }

    #[test]
    fn client_cert_is_client_auth_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(dir.path(), "test CA").unwrap();
        let issued = ca.issue_client_cert("alice@cert-a").unwrap();
        let der = parse(&issued.cert_pem);
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        // Not a DNS name, so no SAN.
        assert!(x509.subject_alternative_name().unwrap().is_none());
    }

    #[test]
    fn ca_is_constrained_and_signs_crls() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(dir.path(), "test CA").unwrap();
        let (_, x509) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        let bc = x509.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        let days = x509.validity().time_to_expiration().unwrap().whole_days();
        assert!(days > 3600, "CA lifetime {days} days");
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(dir.path(), "test CA").unwrap();
        let issued = ca.issue_node_cert("cert-a", &[]).unwrap();
        let (_, key_path) = write_cert_and_key(dir.path(), "node", &issued).unwrap();
        for path in [dir.path().join(CA_KEY_FILE), key_path] {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }

    #[test]
    fn load_round_trips_and_keeps_issuing_chainable_certs() {
        let dir = tempfile::tempdir().unwrap();
        let created = Ca::create(dir.path(), "Sluis dev CA").unwrap();
        let loaded = Ca::load(dir.path()).unwrap();
        assert_eq!(created.cert_der(), loaded.cert_der());
        let via = Ca::load_or_create(dir.path(), "ignored").unwrap();
        assert_eq!(via.fingerprint(), created.fingerprint());
        // Issuing and CRL signing work after a load (the probe check passed too).
        loaded.issue_node_cert("cert-b", &[]).unwrap();
        let crl = loaded.revoke(&["4a:bc", "0x01"]).unwrap();
        assert!(crl.starts_with("-----BEGIN X509 CRL-----"));
    }

    #[test]
    fn create_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        Ca::create(dir.path(), "one").unwrap();
        let err = Ca::create(dir.path(), "two").unwrap_err();
        assert!(matches!(err, TlsError::AlreadyExists { .. }), "{err}");
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }

    #[test]
    fn load_rejects_a_key_of_another_ca() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        Ca::create(a.path(), "a").unwrap();
        Ca::create(b.path(), "b").unwrap();
        std::fs::copy(b.path().join(CA_KEY_FILE), a.path().join(CA_KEY_FILE)).unwrap();
        let err = Ca::load(a.path()).unwrap_err().to_string();
        assert!(
            err.contains("ca.key") && err.contains("does not belong"),
            "{err}"
        );
    }

    #[test]
    fn load_rejects_a_leaf_as_ca() {
        let a = tempfile::tempdir().unwrap();
        let ca = Ca::create(a.path(), "a").unwrap();
        let leaf = ca.issue_node_cert("cert-a", &[]).unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join(CA_CERT_FILE), &leaf.cert_pem).unwrap();
        std::fs::write(b.path().join(CA_KEY_FILE), &leaf.key_pem).unwrap();
        let err = Ca::load(b.path()).unwrap_err().to_string();
        assert!(err.contains("not a CA"), "{err}");
    }

    #[test]
    fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(dir.path(), "a").unwrap();
        for bad in ["", "10.0.0.1", "*.example", "has space", "x\n"] {
            assert!(ca.issue_node_cert(bad, &[]).is_err(), "{bad:?}");
        }
        assert!(ca.issue_node_cert("ok", &["bad name"]).is_err());
        assert!(ca.revoke(&["xyz"]).is_err());
        assert!(ca.revoke(&[""]).is_err());
    }

    #[test]
    fn serial_hex_strips_der_padding() {
        assert_eq!(serial_to_hex(&[0, 0x80, 1]), "8001");
        assert_eq!(serial_to_hex(&[0]), "00");
        assert_eq!(parse_serial("0x80:01").unwrap(), vec![0x80, 0x01]);
        assert_eq!(parse_serial("abc").unwrap(), vec![0x0a, 0xbc]);
    }
}
