//! What the federation's moving parts share at run time, per configured peer:
//! the wake-up a `POST /fed/v1/notify` from that peer gives its puller, the cap
//! on the feeds it may hold open here, and the counters `/metrics` shows. Plus
//! the node-wide stop signal that ends pullers, pushers and long-polls together,
//! so a shutdown is not held up by a peer's 25-second long-poll.
//!
//! Built once from the config (the set of peers is fixed until restart) and
//! shared by the API state and the sync tasks.

use crate::config::PeerSection;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

/// Changes feeds one peer may hold open at once. Its puller needs one; a second
/// covers a reconnect racing the old request's end. More is a misbehaving peer.
pub const FEEDS_PER_PEER: usize = 2;

/// Counters of one peer, all monotonic except the gauges noted.
#[derive(Debug, Default)]
pub struct PeerStats {
    /// Records of the peer's feed stored (or already held) here.
    pub accepted: AtomicU64,
    /// Records of the peer's feed refused here.
    pub rejected: AtomicU64,
    /// Pull rounds that failed (network, protocol, storage).
    pub pull_failures: AtomicU64,
    /// Records this node served to the peer.
    pub served: AtomicU64,
    /// Records the peer reported refusing from this node's feed.
    pub refused_by_peer: AtomicU64,
    /// Gauge: this node's cursor on the peer's feed.
    pub cursor: AtomicU64,
    /// Gauge: the peer's newest change, as last seen.
    pub head: AtomicU64,
    /// Gauge: when a pull last succeeded (epoch seconds, 0 never).
    pub last_success: AtomicU64,
    /// Gauge: the peer's cursor on this node's feed, as last reported.
    pub peer_cursor: AtomicU64,
}

struct Slot {
    wake: Notify,
    feeds: Arc<Semaphore>,
    stats: PeerStats,
}

/// Shared per-peer run-time state (see the module docs).
pub struct Hub {
    peers: HashMap<String, Slot>,
    stop: watch::Sender<bool>,
    /// Incident-support notices (the operator webhook).
    pub notifier: Arc<crate::support::Notifier>,
}

impl Hub {
    pub fn new(peers: &[PeerSection]) -> Self {
        Self::with_notifier(peers, Arc::new(crate::support::Notifier::disabled()))
    }

    /// [`Hub::new`] with the node's incident-support notifier.
    pub fn with_notifier(peers: &[PeerSection], notifier: Arc<crate::support::Notifier>) -> Self {
        Hub {
            notifier,
            peers: peers
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        Slot {
                            wake: Notify::new(),
                            feeds: Arc::new(Semaphore::new(FEEDS_PER_PEER)),
                            stats: PeerStats::default(),
                        },
                    )
                })
                .collect(),
            stop: watch::Sender::new(false),
        }
    }

    /// Wakes `peer`'s puller (it has news for us). A wake-up sent while the puller
    /// is busy is kept, so it pulls once more afterwards.
    pub fn wake(&self, peer: &str) {
        if let Some(s) = self.peers.get(peer) {
            s.wake.notify_one();
        }
    }

    /// Resolves when `peer` is woken (never, for an unknown peer).
    pub async fn woken(&self, peer: &str) {
        match self.peers.get(peer) {
            Some(s) => s.wake.notified().await,
            None => std::future::pending().await,
        }
    }

    /// A slot for one changes feed served to `peer`, or `None` when it already
    /// holds [`FEEDS_PER_PEER`].
    pub fn feed_permit(&self, peer: &str) -> Option<OwnedSemaphorePermit> {
        self.peers.get(peer)?.feeds.clone().try_acquire_owned().ok()
    }

    /// `peer`'s counters (`None` for a peer not configured).
    pub fn stats(&self, peer: &str) -> Option<&PeerStats> {
        self.peers.get(peer).map(|s| &s.stats)
    }

    /// Asks every federation task and long-poll to end.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// A receiver that turns `true` when [`Hub::stop`] is called.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Resolves once [`Hub::stop`] has been called.
    pub async fn stopped(&self) {
        let mut rx = self.stopping();
        // An error means the sender is gone, which only happens with the hub.
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The per-peer series in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut names: Vec<&String> = self.peers.keys().collect();
        names.sort();
        type Field = fn(&PeerStats) -> &AtomicU64;
        let series: [(&str, &str, &str, Field); 9] = [
            (
                "sluis_fed_records_accepted_total",
                "counter",
                "Records of the peer's feed stored or already held here.",
                |s| &s.accepted,
            ),
            (
                "sluis_fed_records_rejected_total",
                "counter",
                "Records of the peer's feed refused here.",
                |s| &s.rejected,
            ),
            (
                "sluis_fed_pull_failures_total",
                "counter",
                "Pull rounds from the peer that failed.",
                |s| &s.pull_failures,
            ),
            (
                "sluis_fed_records_served_total",
                "counter",
                "Records this node served to the peer.",
                |s| &s.served,
            ),
            (
                "sluis_fed_records_refused_by_peer_total",
                "counter",
                "Records of this node's feed the peer reported refusing.",
                |s| &s.refused_by_peer,
            ),
            (
                "sluis_fed_cursor",
                "gauge",
                "This node's cursor on the peer's feed.",
                |s| &s.cursor,
            ),
            (
                "sluis_fed_peer_head",
                "gauge",
                "The peer's newest change, as last seen.",
                |s| &s.head,
            ),
            (
                "sluis_fed_last_success_seconds",
                "gauge",
                "When a pull from the peer last succeeded (epoch seconds).",
                |s| &s.last_success,
            ),
            (
                "sluis_fed_peer_cursor",
                "gauge",
                "The peer's cursor on this node's feed, as last reported.",
                |s| &s.peer_cursor,
            ),
        ];
        for (name, kind, help, field) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for n in &names {
                let v = field(&self.peers[*n].stats).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{peer=\"{n}\"}} {v}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str) -> PeerSection {
        toml::from_str(&format!(
            "name = \"{name}\"\nurl = \"https://127.0.0.1:1\"\norg_uuid = \"{}\"\npublic_key = \"x\"\n",
            uuid::Uuid::new_v4()
        ))
        .unwrap()
    }

    #[test]
    fn feed_permits_are_capped_per_peer() {
        let hub = Hub::new(&[peer("cert-b"), peer("cert-c")]);
        let held: Vec<_> = (0..FEEDS_PER_PEER)
            .map(|_| hub.feed_permit("cert-b").unwrap())
            .collect();
        assert!(hub.feed_permit("cert-b").is_none());
        assert!(hub.feed_permit("cert-c").is_some(), "caps are per peer");
        assert!(
            hub.feed_permit("cert-x").is_none(),
            "unknown peers get none"
        );
        drop(held);
        assert!(hub.feed_permit("cert-b").is_some());
    }

    #[test]
    fn per_peer_series_render() {
        let hub = Hub::new(&[peer("cert-b")]);
        hub.stats("cert-b")
            .unwrap()
            .accepted
            .fetch_add(3, Ordering::Relaxed);
        let mut out = String::new();
        hub.render(&mut out);
        assert!(out.contains("sluis_fed_records_accepted_total{peer=\"cert-b\"} 3"));
        assert!(out.contains("# TYPE sluis_fed_cursor gauge"));
    }

    #[tokio::test]
    async fn a_wake_before_the_wait_is_kept() {
        let hub = Hub::new(&[peer("cert-b")]);
        hub.wake("cert-b");
        tokio::time::timeout(std::time::Duration::from_secs(1), hub.woken("cert-b"))
            .await
            .unwrap();
    }
}
