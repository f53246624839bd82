//! The HTTP core every route group stands on: the state handlers reach
//! ([`AppState`]), MISP-shaped errors, API-key authentication and rate limits,
//! the client's address (trusted proxies), request bodies, the audit wrapper, the
//! request pipeline ([`handle`]) and the accept loop ([`server`]).
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`AppState`], [`handle`]: path normalisation, client address, size refusal, audit, metrics |
//! | `error.rs` | [`error::ApiError`] and MISP's error and success shapes |
//! | `auth.rs` | [`auth::Caller`]: the API key → user, role, organisation |
//! | `ratelimit.rs` | token buckets per key, per peer, per address |
//! | `forwarded.rs` | [`ClientAddr`]: `X-Forwarded-For` from trusted proxies only |
//! | `body.rs` | request bodies (bounded), CakePHP named parameters, path normalisation |
//! | `budget.rs` | the memory budget shared by the large bodies in flight |
//! | `audited.rs` | the audit record of every request that changed or was refused something |
//! | `server.rs` | the accept loop: connection cap, TLS and header deadlines, graceful drain |
//!
//! The routes themselves are `api`, one file per group; this module knows none of
//! them (the router is handed in).

pub(crate) mod audited;
pub mod auth;
pub mod body;
pub mod budget;
pub mod error;
pub mod forwarded;
pub mod ratelimit;
pub mod server;

use crate::metrics::Metrics;
use crate::store::Store;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use std::sync::Arc;
use std::time::Instant;

pub(crate) use audited::rate_limited;
pub use audited::RemoteAddr;
pub use forwarded::ClientAddr;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub node: Arc<NodeInfo>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// `[limits] body_memory_mib`: the share of memory large request bodies
    /// in flight may hold together (see `budget`).
    pub bodies: Arc<budget::BodyBudget>,
    /// Seals every event version this node stores through the API.
    pub sealer: Arc<crate::seal::Sealer>,
    /// The configured peer nodes (`[[peer]]`), for the federation endpoints.
    pub peers: Arc<Vec<crate::config::PeerSection>>,
    /// Per-peer run-time state shared with the sync tasks (wake-ups, feed caps,
    /// counters, the stop signal).
    pub hub: Arc<crate::federation::Hub>,
    /// The audit log: the API records authentication failures, denials and
    /// changes in it (see `audited`); sync records what it accepts and refuses.
    pub audit: Arc<crate::audit::AuditLog>,
    /// The rate limiters (`[limits]`): per API key, per peer, per address for
    /// failed authentications.
    pub rates: Arc<ratelimit::RateLimits>,
    /// `[limits] trusted_proxies`: whose `X-Forwarded-For` is believed.
    pub proxies: Arc<crate::config::TrustedProxies>,
}

impl AppState {
    /// Stores an event written through the API (validated, merged, sealed by the
    /// store's finisher, flushed).
    pub fn store_event(
        &self,
        ev: crate::model::Event,
    ) -> Result<crate::store::Outcome, crate::store::StoreError> {
        self.store.put_event(ev, crate::store::Durability::Flush)
    }
}

/// An `AppState` over `store` for in-process handler tests: the node's org is
/// `org`, with a fresh signing key installed as the store's sealer.
#[cfg(test)]
pub(crate) fn test_state(store: Arc<Store>, org: uuid::Uuid) -> AppState {
    let sealer = Arc::new(crate::seal::Sealer::new(
        crate::seal::NodeKey::generate().expect("OS randomness"),
        org,
    ));
    store.install_sealer(&sealer);
    let audit = Arc::new(
        crate::audit::AuditLog::open(
            &store.path().join(crate::audit::FILE_NAME),
            sealer.clone(),
            crate::audit::AuditOptions {
                anchor: Some(store.clone()),
                ..Default::default()
            },
        )
        .expect("a fresh audit log in the test store's directory"),
    );
    AppState {
        store,
        node: Arc::new(NodeInfo {
            name: "test".into(),
            org,
        }),
        metrics: Arc::new(Metrics::default()),
        limits: Limits { max_body: 1 << 20 },
        bodies: Arc::new(budget::BodyBudget::new(4 << 20)),
        sealer,
        peers: Arc::new(Vec::new()),
        hub: Arc::new(crate::federation::Hub::new(&[])),
        audit,
        rates: Arc::new(ratelimit::RateLimits::unlimited()),
        proxies: Arc::new(crate::config::TrustedProxies::default()),
    }
}

/// This node, as shown to clients.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub org: uuid::Uuid,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted, bytes.
    pub max_body: usize,
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, error::ApiError> + Send + 'static,
) -> Result<T, error::ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error::ApiError::Internal(format!("worker failed: {e}")))?
}

/// The metrics label of a request that matched no route: every unmatched
/// path shares it, so junk paths cannot grow `/metrics` (each distinct label is
/// a series kept until restart).
pub const UNMATCHED: &str = "unmatched";

/// The metrics label of a request refused on its declared size, before routing.
pub const TOO_LARGE: &str = "too_large";

/// The metrics label of a request refused because the body budget was spent
/// (see `budget`), before routing.
pub const BUSY: &str = "busy";

/// The route template a request matched (`/events/view/{id}`), recorded on the
/// response by [`record_route`]: metrics are labelled from the router's own
/// route table, a fixed set, never from the path a client sent.
#[derive(Debug, Clone)]
pub struct RouteLabel(axum::extract::MatchedPath);

/// Route layer (`Router::route_layer`): copies the matched route template onto
/// the response for [`handle`]'s metrics.
pub async fn record_route(req: Request<Body>, next: axum::middleware::Next) -> Response {
    let label = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned()
        .map(RouteLabel);
    let mut resp = next.run(req).await;
    if let Some(l) = label {
        resp.extensions_mut().insert(l);
    }
    resp
}

/// Longest body read and thrown away after refusing it as too large, so the client
/// gets to read the 413 instead of a reset connection.
const MAX_DRAIN: u64 = 64 * 1024 * 1024;

/// Reads and discards a refused body, up to [`MAX_DRAIN`] bytes or two seconds.
async fn drain(body: Body) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut seen = 0u64;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > MAX_DRAIN {
                break;
            }
        }
    })
    .await;
}

fn declared_length(req: &Request<Body>) -> Option<u64> {
    req.headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A request refused before routing (its body unread or drained): MISP's error
/// shape for `path`, `Connection: close` (the client may still be sending the
/// body), and the metrics under `label`.
async fn refuse_unrouted(
    state: &AppState,
    path: String,
    err: error::ApiError,
    label: &'static str,
    started: Instant,
) -> Response {
    use axum::response::IntoResponse;
    let mut resp = error::REQUEST_PATH
        .scope(path, async { err.into_response() })
        .await;
    resp.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    state
        .metrics
        .request(label, resp.status().as_u16(), started.elapsed());
    resp
}

/// Normalises the path (named parameters, `.json`, camel-case controllers),
/// works out the client's address ([`ClientAddr`], from the TCP peer and, from a
/// trusted proxy only, `X-Forwarded-For`), scopes the request path for error
/// bodies, routes, and records metrics.
///
/// An error answer to a request that carried a body says `Connection: close`: the
/// handler may have answered without reading the body, and a keep-alive client
/// (PyMISP reuses one session) must not send its next request into the rest of it.
pub async fn handle(router: Router, state: AppState, mut req: Request<Body>) -> Response {
    let started = Instant::now();
    if let Some(RemoteAddr(tcp)) = req.extensions().get::<RemoteAddr>().copied() {
        let client = forwarded::client(&state.proxies, tcp, req.headers());
        req.extensions_mut().insert(client);
    }
    let (path, named) = body::normalise_path(req.uri().path());
    let declared = declared_length(&req);
    let has_body = declared.is_some_and(|n| n > 0)
        || req
            .headers()
            .contains_key(axum::http::header::TRANSFER_ENCODING);
    if declared.is_some_and(|n| n > state.limits.max_body as u64) {
        // Refused on the declared size alone, before reading.
        drain(req.into_body()).await;
        let err = error::ApiError::TooLarge(state.limits.max_body);
        return refuse_unrouted(&state, path, err, TOO_LARGE, started).await;
    }
    // A large body takes its share of the body budget before it is read, and
    // keeps it (through `ticket`, held here) until the answer is produced.
    let ticket = budget::Ticket::default();
    let share = match state
        .bodies
        .admit(declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)))
        .await
    {
        Ok(share) => share,
        Err(busy) => {
            let err = error::ApiError::Busy(busy);
            return refuse_unrouted(&state, path, err, BUSY, started).await;
        }
    };
    ticket.hold(share);
    req.extensions_mut().insert(ticket.clone());
    let query = req.uri().query().map(str::to_owned);
    let uri = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    if let Ok(u) = uri.parse() {
        *req.uri_mut() = u;
    }
    req.extensions_mut().insert(named);
    let method = req.method().clone();
    let remote = req.extensions().get::<ClientAddr>().copied();
    let routed = error::REQUEST_PATH.scope(path.clone(), async move {
        use tower::ServiceExt;
        match router.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    });
    let mut resp = audited::around(&state, &method, &path, remote, routed).await;
    // Answers are data, never markup: no browser may sniff a synced string
    // into HTML (MISP's stored-XSS class; this node has no UI).
    resp.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    let label = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or(UNMATCHED, |l| l.0.as_str());
    state
        .metrics
        .request(label, resp.status().as_u16(), started.elapsed());
    drop(ticket);
    resp
}
