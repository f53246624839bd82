//! Prometheus metrics, rendered in the text exposition format at `/metrics`.
//!
//! A handful of counters and histograms with bounded label sets (routes are the
//! first two path segments of known routes, statuses are numbers), kept in a
//! mutex-guarded map: contention is negligible next to a request's own work.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    auth_failures: AtomicU64,
    connections: AtomicU64,
    handshake_failures: AtomicU64,
    fed_auth_failures: AtomicU64,
    /// Indexed by [`RateLimit`].
    rate_limited: [AtomicU64; 3],
}

/// Which rate limit refused a request (the `limit` label of
/// `sluis_rate_limited_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// Requests per API key.
    ApiKey = 0,
    /// `/fed/v1/` requests per peer.
    Peer = 1,
    /// Failed authentications per client address.
    AuthFailures = 2,
}

impl RateLimit {
    const ALL: [RateLimit; 3] = [RateLimit::ApiKey, RateLimit::Peer, RateLimit::AuthFailures];

    pub fn label(self) -> &'static str {
        match self {
            RateLimit::ApiKey => "api_key",
            RateLimit::Peer => "peer",
            RateLimit::AuthFailures => "auth_failures",
        }
    }
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16, took: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_owned(), status)).or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let h = m.entry(route.to_owned()).or_default();
            let s = took.as_secs_f64();
            for (i, b) in BUCKETS.iter().enumerate() {
                if s <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += s;
            h.count += 1;
        }
    }

    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn handshake_failure(&self) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A `/fed/v1/` request refused: no certificate, unknown peer, pin mismatch.
    pub fn fed_auth_failure(&self) {
        self.fed_auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A request refused with 429 by `limit`.
    pub fn rate_limited(&self, limit: RateLimit) {
        self.rate_limited[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text; `gauges` are extra `(name, help, value)` readings
    /// (store size, event count) taken by the caller.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP sluis_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE sluis_http_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "sluis_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sluis_http_request_duration_seconds Request latency by route."
        );
        let _ = writeln!(out, "# TYPE sluis_http_request_duration_seconds histogram");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(out, "sluis_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}", h.counts[i]);
                }
                let _ = writeln!(out, "sluis_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(
                    out,
                    "sluis_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "sluis_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        for (name, help, v) in [
            (
                "sluis_auth_failures_total",
                "Requests refused for a missing or bad API key.",
                self.auth_failures.load(Ordering::Relaxed),
            ),
            (
                "sluis_connections_total",
                "TCP connections accepted.",
                self.connections.load(Ordering::Relaxed),
            ),
            (
                "sluis_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out.",
                self.handshake_failures.load(Ordering::Relaxed),
            ),
            (
                "sluis_fed_auth_failures_total",
                "Federation requests refused (no certificate, unknown peer, pin mismatch).",
                self.fed_auth_failures.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP sluis_rate_limited_total Requests refused by a rate limit (429), by limit.\n\
             # TYPE sluis_rate_limited_total counter"
        );
        for l in RateLimit::ALL {
            let _ = writeln!(
                out,
                "sluis_rate_limited_total{{limit=\"{}\"}} {}",
                l.label(),
                self.rate_limited[l as usize].load(Ordering::Relaxed)
            );
        }
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("/events/view", 200, Duration::from_millis(2));
        m.request("/events/view", 404, Duration::from_millis(2));
        let text = m.render(&[("sluis_store_bytes", "Bytes on disk.", 42.0)]);
        assert!(text.contains("sluis_http_requests_total{route=\"/events/view\",status=\"200\"} 1"));
        assert!(text.contains(
            "sluis_http_request_duration_seconds_bucket{route=\"/events/view\",le=\"0.0025\"} 2"
        ));
        assert!(text.contains("sluis_store_bytes 42"));
        m.rate_limited(RateLimit::Peer);
        m.rate_limited(RateLimit::Peer);
        let text = m.render(&[]);
        assert!(text.contains("sluis_rate_limited_total{limit=\"peer\"} 2"));
        assert!(text.contains("sluis_rate_limited_total{limit=\"api_key\"} 0"));
    }
}
