//! [`Node::start`]: everything a running node needs, prepared from its config —
//! store, sealer, trust list, audit log, TLS, the federation hub and syncer, the
//! request state — so `sluis serve` and the in-process test nodes start the
//! same way.

use super::{Node, NodeError};
use crate::config::{Config, ConfigError};
use crate::federation::{Hub, Syncer};
use crate::http::server::ServeOptions;
use crate::http::{AppState, Limits, NodeInfo};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tls::{server_config, Acceptor, ClientAuth};
use std::sync::Arc;

/// This node's sealing identity from its config: the `[signing]` key and the
/// `node.org_uuid` it vouches for. Every command that writes events needs it,
/// because the store holds only sealed versions. `command` names the command in
/// the error.
pub fn sealer(cfg: &Config, command: &str) -> Result<crate::seal::Sealer, NodeError> {
    let signing = cfg.signing.as_ref().ok_or_else(|| {
        invalid(
            cfg,
            "signing",
            format!(
                "the [signing] section (key = \"signing.key\") is required: `sluis {command}` \
                 seals what it stores with the node's key (`sluis init` creates one)"
            ),
        )
    })?;
    let org = cfg.node.org_uuid.ok_or_else(|| {
        invalid(
            cfg,
            "node.org_uuid",
            format!("required by `sluis {command}`: the node's seals vouch for its organisation"),
        )
    })?;
    Ok(crate::seal::Sealer::new(
        crate::seal::NodeKey::load(&signing.key)?,
        org,
    ))
}

fn invalid(cfg: &Config, key: &str, message: String) -> NodeError {
    NodeError::Config(ConfigError::Invalid {
        path: cfg.source.clone(),
        key: key.into(),
        message,
    })
}

impl Node {
    /// Opens the store (and with it the database lock), installs the sealer,
    /// checks the node's organisation, opens the audit log, loads the TLS
    /// material and builds the federation hub and syncer. Nothing runs yet:
    /// [`Node::run`] starts every task.
    pub fn start(cfg: &Config) -> Result<Node, NodeError> {
        let tls = cfg.tls.as_ref().ok_or_else(|| {
            invalid(
                cfg,
                "tls",
                "the [tls] section (cert, key, ca) is required to serve".into(),
            )
        })?;
        let org_uuid = cfg.node.org_uuid.ok_or_else(|| {
            invalid(
                cfg,
                "node.org_uuid",
                "required to serve (the node's organisation owns what it creates)".into(),
            )
        })?;
        // Analysts may present a client certificate (verified against the CA if
        // they do); the API key is what authenticates them.
        let server = server_config(&tls.cert, &tls.key, &tls.ca, &tls.crl, ClientAuth::Optional)?;
        let sealer = Arc::new(sealer(cfg, "serve")?);
        // What the pullers verify with; built here so a trust entry that
        // conflicts with the node's own key is an error at start.
        let trust = crate::config::trust_list(cfg, Some((sealer.key(), sealer.org())))?;
        // The pullers' client: the node's certificate, the federation CA only.
        let client_tls =
            crate::tls::client_config_with_crls(&tls.cert, &tls.key, &tls.ca, &tls.crl)?;
        let store = Store::open(&cfg.db_dir(), cfg.store_options())?;
        store.install_sealer(&sealer);
        if store.org(&org_uuid)?.is_none() {
            store.add_org(org_uuid, &cfg.node.org, true)?;
        }
        let store = Arc::new(store);
        // After the store: its lock keeps a second node off the same directory,
        // and it keeps the audit log's anchor.
        let audit = Arc::new(crate::audit::AuditLog::open(
            &cfg.audit_path(),
            sealer.clone(),
            cfg.audit_options(Some(store.clone())),
        )?);
        let notifier = Arc::new(crate::support::Notifier::new(
            cfg.support.webhook.clone(),
            cfg.support.overdue_check(),
        ));
        let hub = Arc::new(Hub::with_notifier(&cfg.peer, notifier));
        let syncer = Syncer::new(
            cfg,
            store.clone(),
            sealer.clone(),
            trust,
            client_tls,
            hub.clone(),
            Some(audit.clone()),
        );
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
            bodies: Arc::new(crate::http::budget::BodyBudget::new(
                cfg.body_memory_bytes(),
            )),
            sealer,
            peers: Arc::new(cfg.peer.clone()),
            hub,
            audit,
            rates: Arc::new(crate::http::ratelimit::RateLimits::from_config(&cfg.limits)),
            proxies: Arc::new(cfg.limits.proxies.clone()),
        };
        Ok(Node {
            state,
            acceptor: Acceptor::new(server),
            opts: ServeOptions::from_config(cfg),
            syncer,
            config_path: cfg.source.clone(),
        })
    }
}
