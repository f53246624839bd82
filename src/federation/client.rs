//! The HTTPS client for one peer: the node's certificate as client identity, the
//! federation CA as the only trust root (no public roots), CRLs applied to the
//! peer's server certificate, and no redirects (a peer is reached at its
//! configured URL or not at all).

use super::SyncError;
use crate::config::PeerSection;
use crate::federation::PROTOCOL_VERSION;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Time to connect and receive a response head (a long-poll's head comes after
/// its wait, at most [`crate::federation::feed::MAX_WAIT`]).
const HEAD_TIMEOUT: Duration = Duration::from_secs(40);
/// Longest silence while a page body streams in: the sender writes record by
/// record, so a gap this long means it is stuck.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Time for a notification or a report.
const SHORT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
struct Hello {
    node: String,
    org: uuid::Uuid,
    protocol: u32,
}

/// Talks to one configured peer.
pub struct PeerClient {
    http: reqwest::Client,
    peer: PeerSection,
}

impl PeerClient {
    pub fn new(peer: PeerSection, tls: &Arc<rustls::ClientConfig>) -> Result<Self, SyncError> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((**tls).clone())
            .connect_timeout(SHORT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(PeerClient { http, peer })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, SyncError> {
        let url = format!("{}{path}", self.base());
        let r = self.http.get(url).timeout(HEAD_TIMEOUT).send().await?;
        Ok(check(r).await?.json().await?)
    }

    /// `GET /fed/v1/hello`: the peer speaks our protocol, and the node that
    /// answered is the configured one (its name and organisation), not merely
    /// some node holding a certificate from the same CA.
    pub async fn hello(&self) -> Result<(), SyncError> {
        let h: Hello = self.get_json("/fed/v1/hello").await?;
        if h.protocol != PROTOCOL_VERSION {
            return Err(SyncError::Protocol(format!(
                "the peer speaks federation protocol {}, this node {PROTOCOL_VERSION}",
                h.protocol
            )));
        }
        if h.node != self.peer.name || h.org != self.peer.org_uuid {
            return Err(SyncError::Protocol(format!(
                "the node at {} is {} of org {}, configured as {} of org {}",
                self.peer.url, h.node, h.org, self.peer.name, self.peer.org_uuid
            )));
        }
        Ok(())
    }

    /// `GET /fed/v1/changes?after=&limit=&wait=`: the response, its head
    /// checked, for the caller to stream the page from.
    pub async fn changes(
        &self,
        after: u64,
        limit: usize,
        wait: u64,
    ) -> Result<reqwest::Response, SyncError> {
        let url = format!(
            "{}/fed/v1/changes?after={after}&limit={limit}&wait={wait}",
            self.base()
        );
        let r = tokio::time::timeout(
            HEAD_TIMEOUT + Duration::from_secs(wait),
            self.http.get(url).send(),
        )
        .await
        .map_err(|_| SyncError::Protocol("no answer to a changes request in time".into()))??;
        let r = check(r).await?;
        let ct = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with(crate::federation::wire::CONTENT_TYPE) {
            return Err(SyncError::Protocol(format!(
                "a changes page must be {}, got {ct:?}",
                crate::federation::wire::CONTENT_TYPE
            )));
        }
        Ok(r)
    }

    /// `POST /fed/v1/report`.
    pub async fn report(&self, report: &crate::federation::wire::Report) -> Result<(), SyncError> {
        let url = format!("{}/fed/v1/report", self.base());
        let r = self
            .http
            .post(url)
            .timeout(SHORT_TIMEOUT)
            .json(report)
            .send()
            .await?;
        check(r).await.map(|_| ())
    }

    /// `POST /fed/v1/notify`.
    pub async fn notify(&self) -> Result<(), SyncError> {
        let url = format!("{}/fed/v1/notify", self.base());
        let r = self.http.post(url).timeout(SHORT_TIMEOUT).send().await?;
        check(r).await.map(|_| ())
    }

    fn base(&self) -> &str {
        self.peer.url.trim_end_matches('/')
    }
}

/// The response if its status is a success, else its status and the start of
/// its body as the error.
async fn check(r: reqwest::Response) -> Result<reqwest::Response, SyncError> {
    let status = r.status();
    if status.is_success() {
        return Ok(r);
    }
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        // Honour the peer's Retry-After (bounded), default one second.
        let secs = r
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1)
            .clamp(1, 300);
        return Err(SyncError::RateLimited(Duration::from_secs(secs)));
    }
    let body = r.text().await.unwrap_or_default();
    Err(SyncError::Status {
        status: status.as_u16(),
        body: body.chars().take(300).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, retry_after: Option<&str>) -> reqwest::Response {
        let mut b = axum::http::Response::builder().status(status);
        if let Some(r) = retry_after {
            b = b.header("Retry-After", r);
        }
        reqwest::Response::from(b.body("slow down").unwrap())
    }

    #[tokio::test]
    async fn a_429_carries_the_peers_retry_after_bounded() {
        for (header, want) in [
            (Some("7"), 7),
            (None, 1),
            (Some("soon"), 1),
            (Some("99999"), 300),
        ] {
            match check(response(429, header)).await {
                Err(SyncError::RateLimited(d)) => assert_eq!(d, Duration::from_secs(want)),
                other => panic!("{header:?}: {other:?}"),
            }
        }
        assert!(matches!(
            check(response(503, Some("7"))).await,
            Err(SyncError::Status { status: 503, .. })
        ));
        assert!(check(response(200, None)).await.is_ok());
    }
}
