//! Where each peer stands, for operators (`sluis peers`, `GET /admin/peers`):
//! both directions of the exchange, from this node's persisted state, so the
//! answer is the same whether the node runs or not.
//!
//! - **pulling** (their feed → us): our cursor on their feed, their newest
//!   change when we last asked (`lag` = the difference, in changes), when a pull
//!   last succeeded, what we stored and refused, the last error;
//! - **serving** (our feed → them): their cursor on our feed as they last
//!   reported it (`lag` against our newest durable change), when, and what they
//!   told us they refused and why.

use crate::config::PeerSection;
use crate::store::{Store, StoreError};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PeerStatus {
    pub name: String,
    pub url: String,
    pub org_uuid: uuid::Uuid,
    pub pull: bool,
    pub push: bool,
    pub pulling: Pulling,
    pub serving: Serving,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Pulling {
    pub cursor: u64,
    pub peer_head: u64,
    pub lag: u64,
    pub last_success: Option<u64>,
    pub accepted: u64,
    pub rejected: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Serving {
    pub peer_cursor: u64,
    pub our_head: u64,
    pub lag: u64,
    pub reported_at: Option<u64>,
    pub accepted: u64,
    pub rejected: u64,
    pub last_rejections: Vec<crate::federation::wire::Rejection>,
}

/// The status of every configured peer, in config order.
pub fn peer_status(store: &Store, peers: &[PeerSection]) -> Result<Vec<PeerStatus>, StoreError> {
    let head = store.durable_sequence();
    peers
        .iter()
        .map(|p| {
            let st = store.peer_state(&p.name)?;
            let out = store.peer_out(&p.name)?;
            Ok(PeerStatus {
                name: p.name.clone(),
                url: p.url.clone(),
                org_uuid: p.org_uuid,
                pull: p.pull,
                push: p.push,
                pulling: Pulling {
                    cursor: st.cursor,
                    peer_head: st.head,
                    lag: st.head.saturating_sub(st.cursor),
                    last_success: st.last_success,
                    accepted: st.accepted,
                    rejected: st.rejected,
                    errors: st.errors,
                    last_error: st.last_error,
                },
                serving: Serving {
                    peer_cursor: out.cursor,
                    our_head: head,
                    lag: head.saturating_sub(out.cursor),
                    reported_at: out.reported_at,
                    accepted: out.accepted,
                    rejected: out.rejected,
                    last_rejections: out.last_rejections,
                },
            })
        })
        .collect()
}

/// The status as operator-readable text, one block per peer.
pub fn render(status: &[PeerStatus], now: u64) -> String {
    use std::fmt::Write;
    let ago = |t: Option<u64>| match t {
        Some(t) => format!("{}s ago", now.saturating_sub(t)),
        None => "never".into(),
    };
    let mut out = String::new();
    if status.is_empty() {
        out.push_str("no [[peer]] configured\n");
    }
    for p in status {
        let _ = writeln!(out, "{} ({}, org {})", p.name, p.url, p.org_uuid);
        let pl = &p.pulling;
        if p.pull {
            let _ = writeln!(
                out,
                "  pulling: cursor {} of {} (lag {}), last success {}, stored {}, refused {}, errors {}",
                pl.cursor, pl.peer_head, pl.lag, ago(pl.last_success), pl.accepted, pl.rejected, pl.errors
            );
            if let Some(e) = &pl.last_error {
                let _ = writeln!(out, "  last error: {e}");
            }
        } else {
            let _ = writeln!(out, "  pulling: off (pull = false)");
        }
        let sv = &p.serving;
        let _ = writeln!(
            out,
            "  serving: their cursor {} of our {} (lag {}), last report {}, they stored {}, refused {}",
            sv.peer_cursor, sv.our_head, sv.lag, ago(sv.reported_at), sv.accepted, sv.rejected
        );
        for r in &sv.last_rejections {
            let _ = writeln!(
                out,
                "    refused record {} ({}{}): {}",
                r.seq,
                r.kind,
                r.event.map(|u| format!(", event {u}")).unwrap_or_default(),
                r.reason
            );
        }
    }
    out
}
