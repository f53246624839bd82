//! `sluis serve`: everything a running node needs, prepared from its config, so
//! `main` and in-process test launchers start nodes the same way.

use super::CliError;
use crate::api::{AppState, Limits, NodeInfo};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::server::ServeOptions;
use crate::store::Store;
use crate::tls::{server_config, Acceptor, ClientAuth};
use std::sync::Arc;

/// Makes `sealer` seal every event version `store` writes (the store's finisher),
/// so no write path can forget to.
pub fn install_sealer(store: &Store, sealer: &Arc<crate::seal::Sealer>) {
    let hook = sealer.clone();
    store.set_finisher(Arc::new(move |e| {
        hook.seal(e)
            .map_err(|x| crate::store::StoreError::Rejected(format!("cannot seal the event: {x}")))
    }));
}

/// A node ready to serve: pass these to [`crate::server::run`] with a bound listener.
pub struct Prepared {
    pub state: AppState,
    pub acceptor: Acceptor,
    pub opts: ServeOptions,
    /// The pullers of the `[[peer]]`s with `pull = true`; start them with
    /// [`crate::sync::spawn`] once the runtime runs.
    pub sync: crate::sync::Syncer,
}

/// Opens the store, loads the TLS material and checks the node's organisation.
pub fn prepare(cfg: &Config) -> Result<Prepared, CliError> {
    let tls = cfg.tls.as_ref().ok_or_else(|| {
        CliError::Config(crate::config::ConfigError::Invalid {
            path: cfg.source.clone(),
            key: "tls".into(),
            message: "the [tls] section (cert, key, ca) is required to serve".into(),
        })
    })?;
    let org_uuid = cfg.node.org_uuid.ok_or_else(|| {
        CliError::Config(crate::config::ConfigError::Invalid {
            path: cfg.source.clone(),
            key: "node.org_uuid".into(),
            message: "required to serve (the node's organisation owns what it creates)".into(),
        })
    })?;
    // Analysts may present a client certificate (verified against the CA if they
    // do); the API key is what authenticates them.
    let server = server_config(&tls.cert, &tls.key, &tls.ca, &tls.crl, ClientAuth::Optional)?;
    let sealer = Arc::new(super::sealer(cfg, "serve")?);
    // What the pullers verify with; built here so a trust entry that conflicts
    // with the node's own key is an error at start.
    let trust = crate::config::trust_list(cfg, Some((sealer.key(), sealer.org())))?;
    // The pullers' client: the node's certificate, the federation CA only.
    let client_tls = crate::tls::client_config_with_crls(&tls.cert, &tls.key, &tls.ca, &tls.crl)?;
    let store = Store::open(&cfg.db_dir(), cfg.store_options())?;
    install_sealer(&store, &sealer);
    if store.org(&org_uuid)?.is_none() {
        store.add_org(org_uuid, &cfg.node.org, true)?;
    }
    let store = Arc::new(store);
    // After the store: its lock keeps a second node off the same directory, and
    // it keeps the audit log's anchor.
    let audit = Arc::new(crate::audit::AuditLog::open(
        &cfg.audit_path(),
        sealer.clone(),
        cfg.audit_options(Some(store.clone())),
    )?);
    let notifier = Arc::new(crate::support::Notifier::new(
        cfg.support.webhook.clone(),
        cfg.support.overdue_check(),
    ));
    let hub = Arc::new(crate::sync::Hub::with_notifier(&cfg.peer, notifier));
    let sync = crate::sync::Syncer::new(
        cfg,
        store.clone(),
        sealer.clone(),
        trust,
        client_tls,
        hub.clone(),
        Some(audit.clone()),
    );
    // Checked when the config was read; a config built in code gets the same
    // error here.
    let proxies = crate::api::forwarded::TrustedProxies::parse(&cfg.limits.trusted_proxies)
        .map_err(|(i, message)| {
            CliError::Config(crate::config::ConfigError::Invalid {
                path: cfg.source.clone(),
                key: format!("limits.trusted_proxies[{i}]"),
                message,
            })
        })?;
    let state = AppState {
        store,
        node: Arc::new(NodeInfo {
            name: cfg.node.name.clone(),
            org: org_uuid,
        }),
        metrics: Arc::new(Metrics::default()),
        limits: Limits {
            max_body: cfg.max_document_bytes(),
        },
        sealer,
        peers: Arc::new(cfg.peer.clone()),
        hub,
        audit,
        rates: Arc::new(crate::api::ratelimit::RateLimits::from_config(&cfg.limits)),
        proxies: Arc::new(proxies),
    };
    Ok(Prepared {
        state,
        acceptor: Acceptor::new(server),
        opts: ServeOptions::from_config(cfg),
        sync,
    })
}
