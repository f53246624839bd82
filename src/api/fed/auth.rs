//! Who is calling on `/fed/v1/`: the configured peer that the verified client
//! certificate maps to, or a refusal.
//!
//! By the time a request arrives, rustls has verified the certificate's chain to
//! the federation CA, its validity and the CRLs (a failing certificate fails the
//! handshake, so it never gets here). What remains is authorisation by
//! configuration: a certificate signed by the CA proves who the client is, and only
//! a matching `[[peer]]` entry makes it a partner (docs/design.md §5).
//!
//! A recognised peer is then held to its rate (`[limits] peer_rate_per_sec`,
//! by configured peer name): past it, 429 with `Retry-After`.
//!
//! The `Authorization` header is never read here: an analyst key grants nothing on
//! the federation endpoints, just as a peer certificate grants nothing on the
//! analyst API.

use crate::config::PeerSection;
use crate::http::AppState;
use crate::tls::{ClientCert, PeerIdentity};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A DNS SAN that `Ca::issue_node_cert` puts on every node certificate, so it
/// identifies no one: it is matched only when it is the certificate's own name.
const SHARED_SAN: &str = "localhost";

/// An authenticated partner node: its `[[peer]]` entry and the certificate it
/// presented.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The configured peer the certificate maps to.
    pub config: PeerSection,
    /// The verified client certificate.
    pub identity: PeerIdentity,
}

impl Peer {
    /// The configured peer name (equal to one of the certificate's names).
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// Why a federation request was refused. The messages are what the calling node's
/// operator reads, so each says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FedAuthError {
    /// The client presented no certificate (the analyst listener allows that; the
    /// federation endpoints do not).
    #[error("a client certificate is required")]
    NoCertificate,
    /// The certificate is valid but no `[[peer]]` has any of its names.
    #[error("unknown peer {name}")]
    UnknownPeer { name: String },
    /// The certificate's names match more than one `[[peer]]`. Config validation
    /// forbids duplicate names, but a certificate with several SANs could still
    /// match two entries; which one it is would be a guess, so refuse.
    #[error("certificate {name} matches several configured peers ({peers}); refusing")]
    AmbiguousPeer { name: String, peers: String },
    /// The peer has a pinned fingerprint and the certificate is another one (e.g.
    /// issued by the CA to someone holding the same name).
    #[error("certificate fingerprint does not match the pin for {peer}")]
    FingerprintMismatch { peer: String },
    /// No `ClientCert` extension at all: the request did not come through the TLS
    /// listener, a wiring bug. Fail closed rather than treat it as anonymous.
    #[error("the request did not come through the TLS listener")]
    NotOverTls,
    /// A recognised peer over its request rate (`[limits] peer_rate_per_sec`).
    #[error("rate limit exceeded for peer {peer}; retry in {retry_after} s")]
    RateLimited { peer: String, retry_after: u64 },
}

impl FedAuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            FedAuthError::NoCertificate => StatusCode::UNAUTHORIZED,
            FedAuthError::UnknownPeer { .. }
            | FedAuthError::AmbiguousPeer { .. }
            | FedAuthError::FingerprintMismatch { .. } => StatusCode::FORBIDDEN,
            FedAuthError::NotOverTls => StatusCode::INTERNAL_SERVER_ERROR,
            FedAuthError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

impl IntoResponse for FedAuthError {
    fn into_response(self) -> Response {
        let url = crate::http::error::REQUEST_PATH
            .try_with(|p| p.clone())
            .unwrap_or_default();
        let message = self.to_string();
        let body = serde_json::json!({"name": message, "message": message, "url": url});
        let mut resp = (self.status(), axum::Json(body)).into_response();
        if let FedAuthError::RateLimited { retry_after, .. } = self {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after.into());
        }
        resp
    }
}

/// Fingerprints compare case-insensitively, with or without the `sha256:` prefix
/// and `:` separators, so a pin pasted from another tool's output still works.
fn normalise_fingerprint(fp: &str) -> String {
    let fp = fp.trim();
    let hex = fp
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("sha256:"))
        .and_then(|_| fp.get(7..))
        .unwrap_or(fp);
    hex.chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Maps a verified certificate to exactly one configured peer.
///
/// The certificate's names are its [`PeerIdentity::name`] and its DNS SANs (except
/// the [`SHARED_SAN`] every node certificate carries); a peer matches when its
/// `name` equals one of them exactly. Zero or several matches refuse, and so does
/// a pinned fingerprint that differs.
pub fn authorise(peers: &[PeerSection], id: &PeerIdentity) -> Result<PeerSection, FedAuthError> {
    let is_name_of_cert = |candidate: &str| {
        candidate == id.name
            || (candidate != SHARED_SAN && id.dns_names.iter().any(|d| d == candidate))
    };
    let matched: Vec<&PeerSection> = peers.iter().filter(|p| is_name_of_cert(&p.name)).collect();
    let peer = match matched.as_slice() {
        [] => {
            return Err(FedAuthError::UnknownPeer {
                name: id.name.clone(),
            })
        }
        [one] => *one,
        several => {
            return Err(FedAuthError::AmbiguousPeer {
                name: id.name.clone(),
                peers: several
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    };
    if let Some(pin) = &peer.fingerprint {
        if normalise_fingerprint(pin) != normalise_fingerprint(&id.fingerprint) {
            return Err(FedAuthError::FingerprintMismatch {
                peer: peer.name.clone(),
            });
        }
    }
    Ok(peer.clone())
}

impl FromRequestParts<AppState> for Peer {
    type Rejection = FedAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, FedAuthError> {
        let path = parts.uri.path().to_owned();
        let remote = parts
            .extensions
            .get::<crate::http::ClientAddr>()
            .map(|r| r.to_string());
        // Every refusal is logged, counted and audited (an unknown certificate
        // knocking on /fed/ is exactly what an operator wants on record).
        let refuse = async |name: Option<&str>, e: FedAuthError| {
            tracing::warn!(
                peer = name.unwrap_or("-"),
                %path,
                reason = %e,
                "federation request refused"
            );
            state.metrics.fed_auth_failure();
            let mut entry = crate::audit::Entry::auth_failure(
                format!("peer-cert:{}", name.unwrap_or("-")),
                e.to_string(),
            )
            .request(path.clone());
            if let Some(r) = &remote {
                entry = entry.remote(r.clone());
            }
            state.audit.record_or_log_async(entry).await;
            e
        };
        let Some(ClientCert(cert)) = parts.extensions.get::<ClientCert>().cloned() else {
            return Err(refuse(None, FedAuthError::NotOverTls).await);
        };
        let Some(identity) = cert else {
            return Err(refuse(None, FedAuthError::NoCertificate).await);
        };
        match authorise(&state.peers, &identity) {
            Ok(config) => {
                let verdict = state
                    .rates
                    .peer
                    .take(&config.name, std::time::Instant::now());
                if verdict != crate::http::ratelimit::Verdict::Allowed {
                    let retry_after = crate::http::rate_limited(
                        state,
                        parts,
                        &config.name,
                        crate::metrics::RateLimit::Peer,
                        verdict,
                    )
                    .await;
                    return Err(FedAuthError::RateLimited {
                        peer: config.name,
                        retry_after,
                    });
                }
                Ok(Peer { config, identity })
            }
            Err(e) => Err(refuse(Some(&identity.name), e).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, fingerprint: Option<&str>) -> PeerSection {
        PeerSection {
            name: name.into(),
            url: format!("https://{name}.example"),
            org_uuid: uuid::Uuid::nil(),
            public_key: String::new(),
            pull: true,
            push: true,
            interval: "30s".into(),
            fingerprint: fingerprint.map(str::to_owned),
        }
    }

    fn id(name: &str, sans: &[&str], fp: &str) -> PeerIdentity {
        PeerIdentity {
            name: name.into(),
            dns_names: sans.iter().map(|s| (*s).to_owned()).collect(),
            fingerprint: fp.into(),
            serial_hex: "01".into(),
        }
    }

    #[test]
    fn exactly_one_peer_by_name_or_san() {
        let peers = [peer("cert-b", None), peer("c.example", None)];
        let b = id("cert-b", &["cert-b", "localhost"], "sha256:aa");
        assert_eq!(authorise(&peers, &b).unwrap().name, "cert-b");
        let c = id("cert-c", &["cert-c", "c.example"], "sha256:aa");
        assert_eq!(authorise(&peers, &c).unwrap().name, "c.example");
        let x = id("cert-x", &["cert-x", "localhost"], "sha256:aa");
        assert_eq!(
            authorise(&peers, &x).unwrap_err(),
            FedAuthError::UnknownPeer {
                name: "cert-x".into()
            }
        );
        let both = id("cert-b", &["cert-b", "c.example"], "sha256:aa");
        assert!(matches!(
            authorise(&peers, &both),
            Err(FedAuthError::AmbiguousPeer { .. })
        ));
    }

    #[test]
    fn the_san_every_node_cert_has_identifies_no_one() {
        let peers = [peer("localhost", None)];
        let other = id("cert-x", &["cert-x", "localhost"], "sha256:aa");
        assert!(authorise(&peers, &other).is_err());
        let own = id("localhost", &["localhost"], "sha256:aa");
        assert!(authorise(&peers, &own).is_ok());
    }

    #[test]
    fn pinned_fingerprint() {
        let peers = [peer("cert-b", Some("SHA256:AB:CD"))];
        assert!(authorise(&peers, &id("cert-b", &[], "sha256:abcd")).is_ok());
        assert_eq!(
            authorise(&peers, &id("cert-b", &[], "sha256:abce")).unwrap_err(),
            FedAuthError::FingerprintMismatch {
                peer: "cert-b".into()
            }
        );
    }
}
