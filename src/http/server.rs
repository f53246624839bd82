//! The HTTPS server: a bound listener, a TLS acceptor and a shutdown future in;
//! connections served until the future resolves, then drained (mini-redis style,
//! so tests start real nodes in-process on `127.0.0.1:0`).
//!
//! Per connection: a slot from a bounded pool (more connections than
//! `limits.max_connections` are closed at once; so are more than
//! `max_connections_per_address` from one address, or more than
//! `max_handshakes_per_address` of its TLS handshakes in progress, see
//! [`admission`]), a TLS handshake under a deadline
//! (slowloris), the verified client certificate attached to every request as a
//! typed [`crate::tls::ClientCert`], header-read and keep-alive deadlines, a
//! connection with no request in flight closed after the same deadline (HTTP/2
//! included, see [`idle`]), and a deadline for each request to produce its
//! response head.

mod admission;
mod idle;

use super::{handle, AppState, RemoteAddr};
use crate::tls::{Acceptor, ClientCert};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// Most connections from one client address at once.
    pub max_connections_per_address: usize,
    /// Most TLS handshakes in progress from one client address at once.
    pub max_handshakes_per_address: usize,
}

impl ServeOptions {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        ServeOptions {
            handshake_timeout: Duration::from_secs(cfg.limits.header_timeout_secs),
            header_timeout: Duration::from_secs(cfg.limits.header_timeout_secs),
            request_timeout: Duration::from_secs(cfg.limits.request_timeout_secs),
            max_connections: cfg.limits.max_connections,
            max_connections_per_address: cfg.limits.max_connections_per_address,
            max_handshakes_per_address: cfg.limits.max_handshakes_per_address,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits (at most
/// ten seconds) for open connections to finish their current requests. `state`
/// is what the request pipeline ([`handle`]) needs around the router.
pub async fn run(
    listener: TcpListener,
    tls: Acceptor,
    router: Router,
    state: AppState,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let per_address = Arc::new(admission::PerAddress::default());
    let handshaking = Arc::new(admission::PerAddress::default());
    let refusals = admission::Refusals::new();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        state.metrics.connection();
        // The address's cap first: one client must not take the slots of all.
        let Some(address_slot) =
            admission::PerAddress::take(&per_address, peer.ip(), opts.max_connections_per_address)
        else {
            refusals.note(true, peer.ip());
            drop(tcp);
            continue;
        };
        // Then its handshakes in progress: a connection that has not finished
        // TLS costs the node a slot and a deadline's worth of waiting, and
        // nobody knows yet who it is.
        let Some(handshake_slot) =
            admission::PerAddress::take(&handshaking, peer.ip(), opts.max_handshakes_per_address)
        else {
            refusals.note(true, peer.ip());
            drop(tcp);
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refusals.note(false, peer.ip());
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let router = router.clone();
        let state = state.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let _address_slot = address_slot;
            let handshake = tls.accept(tcp, opts.handshake_timeout).await;
            drop(handshake_slot);
            let (stream, identity) = match handshake {
                Ok(s) => s,
                Err(e) => {
                    state.metrics.handshake_failure();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            if let Some(id) = &identity {
                tracing::debug!(%peer, client = %id.name, fingerprint = %id.fingerprint, "client certificate");
            }
            let cert = ClientCert(identity);
            let activity = idle::Activity::new();
            let busy = activity.clone();
            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                let router = router.clone();
                let state = state.clone();
                let cert = cert.clone();
                let in_flight = busy.begin();
                async move {
                    req.extensions_mut().insert(cert);
                    req.extensions_mut().insert(RemoteAddr(peer));
                    let req = req.map(Body::new);
                    let resp = match tokio::time::timeout(opts.request_timeout, handle(router, state, req)).await {
                        Ok(r) => r,
                        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({
                            "name": "Request timed out.", "message": "Request timed out.", "url": ""}))).into_response(),
                    };
                    Ok::<_, std::convert::Infallible>(
                        resp.map(|b| idle::Tracked::wrap(b, in_flight)),
                    )
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(opts.header_timeout)
                .keep_alive(true);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(opts.header_timeout));
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            let conn = watcher.watch(conn.into_owned());
            match idle::close_when_idle(conn, &activity, opts.header_timeout).await {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection ended with an error")
                }
                None => tracing::debug!(%peer, "closing a connection with no request in flight"),
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; stopping anyway"),
    }
    Ok(())
}
