//! A node's life, in one place: creating its directory ([`init`]), preparing
//! everything it needs from its config ([`Node::start`]), and running every task
//! it owns until told to stop ([`Node::run`]).
//!
//! [`Node::run`] takes a bound listener and a shutdown future (mini-redis
//! style), so `sluis serve` and the in-process test nodes run the same code:
//! `main` only supplies the signals. The tasks, all joined on shutdown:
//!
//! - the HTTPS server ([`crate::http::server::run`]) with the API routes;
//! - per `[[peer]]`, the puller and the push notifier ([`crate::federation::spawn`]);
//! - the incident-support webhook delivery and overdue scan;
//! - the audit checkpointer, with the start and stop records around it all;
//! - on Unix, the SIGHUP handler that reloads the TLS certificates and CRLs.
//!
//! | file | owns |
//! |---|---|
//! | `init.rs` | [`init`]: CA, certificate, signing key, organisation, admin key, `sluis.toml` |
//! | `start.rs` | [`Node::start`] and [`sealer`], the node's sealing identity |
//! | `reload.rs` | [`reload_tls`] and the SIGHUP handler |
//! | `error.rs` | [`NodeError`] |

mod error;
mod init;
mod reload;
mod start;

pub use error::NodeError;
pub use init::{init, InitOptions, InitReport};
pub use reload::reload_tls;
pub use start::sealer;

use crate::federation::Syncer;
use crate::http::server::ServeOptions;
use crate::http::AppState;
use crate::tls::Acceptor;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;

/// A node ready to run: made by [`Node::start`], consumed by [`Node::run`].
pub struct Node {
    state: AppState,
    acceptor: Acceptor,
    opts: ServeOptions,
    syncer: Syncer,
    /// The config file, re-read on SIGHUP.
    config_path: PathBuf,
}

impl Node {
    /// What the request handlers share (store, audit log, hub …); tests and
    /// benchmarks reach into the running node through it.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The listener's TLS acceptor (a handle on the same slot), for reloading
    /// certificates and CRLs without a signal.
    pub fn acceptor(&self) -> &Acceptor {
        &self.acceptor
    }

    /// Runs every task of the node on `listener` until `shutdown` resolves, then
    /// stops them all and waits for them: the server drains its connections,
    /// the hub's stop signal ends the pullers, notifiers and feeds' long-polls,
    /// and the audit log gets its stop record.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let Node {
            state,
            acceptor,
            opts,
            syncer,
            config_path,
        } = self;
        // The audit log brackets the node's life: a start record, checkpoints
        // while it runs, a stop record and final checkpoint once connections
        // drain.
        let listen = listener
            .local_addr()
            .map_or_else(|e| e.to_string(), |a| a.to_string());
        audit_blocking(&state, move |log, node| {
            log.node_start(node, &listen).map(drop)
        })
        .await;
        let checkpointer = tokio::spawn(crate::audit::run_checkpoints(state.audit.clone()));
        let hub = state.hub.clone();
        let mut tasks = hub
            .notifier
            .spawn(state.store.clone(), state.node.org, hub.stopping());
        tasks.extend(crate::federation::spawn(syncer));
        #[cfg(unix)]
        let sighup = tokio::spawn(reload::on_sighup(config_path, acceptor.clone()));
        #[cfg(not(unix))]
        let _ = config_path;
        let router = crate::api::router(state.clone());
        let stop = hub.clone();
        let served = crate::http::server::run(
            listener,
            acceptor,
            router,
            state.clone(),
            opts,
            async move {
                shutdown.await;
                stop.stop();
            },
        )
        .await;
        // Whatever ended the server, every task stops with it.
        hub.stop();
        for t in tasks {
            let _ = t.await;
        }
        #[cfg(unix)]
        sighup.abort();
        checkpointer.abort();
        // Bounded: the stop record flushes the store (the audit anchor), and a
        // flush stuck in sled (see `store::health`) must not keep the node from
        // stopping. The next start checks the log's tail either way.
        let stop = audit_blocking(&state, |log, node| log.node_stop(node));
        if tokio::time::timeout(Duration::from_secs(5), stop)
            .await
            .is_err()
        {
            tracing::error!("the audit stop record did not complete within 5 s (is the disk stuck?); stopping without it");
        }
        served.map_err(NodeError::Serve)
    }
}

/// Runs `f` on the audit log on a blocking thread; a failure is logged loudly
/// (the node runs on, and refuses changes while the log is failing).
async fn audit_blocking(
    state: &AppState,
    f: impl FnOnce(&crate::audit::AuditLog, &str) -> Result<(), crate::audit::AuditError>
        + Send
        + 'static,
) {
    let log = state.audit.clone();
    let node = state.node.name.clone();
    match tokio::task::spawn_blocking(move || f(&log, &node)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "AUDIT LOG WRITE FAILED at node start or stop"),
        Err(e) => tracing::error!(error = %e, "AUDIT LOG WRITE FAILED: the audit worker failed"),
    }
}
