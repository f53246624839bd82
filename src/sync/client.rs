//! The HTTPS client for one peer: the node's certificate as client identity, the
//! federation CA as the only trust root (no public roots), CRLs applied to the
//! peer's server certificate.

use super::SyncError;
use crate::config::PeerSection;
use crate::fed::PROTOCOL_VERSION;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Time for one request. A changes page is bounded, so this is generous.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One record of a changes page, as the peer sent it.
#[derive(Debug, Deserialize)]
pub struct FeedRecord {
    pub seq: u64,
    pub kind: String,
    pub record: Value,
}

/// A changes page.
#[derive(Debug, Deserialize)]
pub struct FeedPage {
    pub records: Vec<FeedRecord>,
    pub last_seq: u64,
    pub more: bool,
}

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
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(PeerClient { http, peer })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, SyncError> {
        let url = format!("{}{path}", self.peer.url.trim_end_matches('/'));
        let r = self.http.get(url).send().await?;
        let status = r.status();
        if !status.is_success() {
            let body = r.text().await.unwrap_or_default();
            return Err(SyncError::Status {
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        Ok(r.json().await?)
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

    /// `GET /fed/v1/changes?after=&limit=`.
    pub async fn changes(&self, after: u64, limit: usize) -> Result<FeedPage, SyncError> {
        self.get_json(&format!("/fed/v1/changes?after={after}&limit={limit}"))
            .await
    }
}
