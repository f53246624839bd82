//! Which node a command works on: `--config FILE`, else the default node in
//! `./sluis-data`. On a machine without one, a command that writes (`serve`,
//! `import`) creates the default node exactly as `sluis serve` always has; every
//! other command stops with one line saying how to create it, and creates
//! nothing (no partial node, no empty database).

use super::CliError;
use crate::config::{Config, ConfigError, DEFAULT_CONFIG, DEFAULT_DIR};
use crate::node::{init, InitOptions, InitReport};
use std::path::{Path, PathBuf};

/// What a command does when there is no node to work on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Create the default node in `./sluis-data` (as `sluis serve` does).
    Create,
    /// Stop with one line saying how to create a node.
    Refuse,
}

/// The config a command works on, and the default node if it was created now
/// (its admin key is shown once).
pub struct Resolved {
    pub config: Config,
    pub created: Option<InitReport>,
}

/// `--config FILE` if given; else `./sluis-data/sluis.toml`; else, per
/// `missing`, the default node created now or an error naming the way out.
pub fn node_config(explicit: Option<&Path>, missing: Missing) -> Result<Resolved, CliError> {
    if let Some(p) = explicit {
        return Ok(Resolved {
            config: Config::load(p)?,
            created: None,
        });
    }
    let default = Path::new(DEFAULT_CONFIG);
    if default.exists() {
        return Ok(Resolved {
            config: Config::load(default)?,
            created: None,
        });
    }
    match missing {
        Missing::Refuse => Err(CliError::Config(ConfigError::NoNode {
            path: default.to_owned(),
        })),
        Missing::Create => {
            let report = init(&default_node())?;
            Ok(Resolved {
                config: Config::load(default)?,
                created: Some(report),
            })
        }
    }
}

/// The embedded default node: `./sluis-data`, listening on 127.0.0.1:8443.
pub fn default_node() -> InitOptions {
    InitOptions {
        dir: PathBuf::from(DEFAULT_DIR),
        name: "localhost".into(),
        org: "CERT-LOCAL".into(),
        org_uuid: None,
        listen: "127.0.0.1:8443".into(),
        ca_dir: None,
    }
}
