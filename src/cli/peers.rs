//! `sluis peers [--config FILE] [--json] [--url URL]`: where each configured
//! peer stands ([`crate::federation::status`]). Reads the database directly when the
//! node is stopped, else asks the running node (`GET /admin/peers`, see
//! [`super::remote`]).

use super::remote::{get_json, node_url};
use super::CliError;
use crate::config::Config;
use crate::federation::status::{peer_status, PeerStatus};
use crate::store::{Store, StoreError};

/// The peers' status, from the database or the running node.
pub fn peers(cfg: &Config, url: Option<&str>) -> Result<serde_json::Value, CliError> {
    match Store::open(&cfg.db_dir(), cfg.store_options()) {
        Ok(store) => {
            let status: Vec<PeerStatus> = peer_status(&store, &cfg.peer)?;
            serde_json::to_value(status).map_err(|e| CliError::Remote {
                url: "-".into(),
                reason: e.to_string(),
            })
        }
        Err(StoreError::Locked { .. }) => {
            let base = node_url(cfg, url)?;
            get_json(cfg, &base, "/admin/peers", "sluis peers")
        }
        Err(e) => Err(e.into()),
    }
}
