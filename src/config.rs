//! The node configuration (`sluis.toml`).
//!
//! Every key is documented in `config/sluis.example.toml`. Unknown keys are refused,
//! so a typo is an error at start rather than a silently ignored setting. Relative
//! paths are resolved against the directory holding the config file, so a node
//! directory can be moved as a whole.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where commands look when no `--config` is given.
pub const DEFAULT_CONFIG: &str = "sluis-data/sluis.toml";
/// The embedded default node directory.
pub const DEFAULT_DIR: &str = "sluis-data";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: NodeSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub limits: LimitsSection,
    /// Sections that later parts of the node read; accepted here so one file
    /// describes the whole node.
    #[serde(default)]
    pub tls: Option<TlsSection>,
    #[serde(default)]
    pub signing: Option<SigningSection>,
    #[serde(default)]
    pub peer: Vec<toml::Table>,
    #[serde(default)]
    pub origin: Vec<toml::Table>,
    /// The file this was read from (not a key).
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub name: String,
    pub org: String,
    #[serde(default)]
    pub org_uuid: Option<uuid::Uuid>,
    pub data_dir: PathBuf,
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default)]
    pub url: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8443".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Node certificate (server and client auth), PEM.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The federation CA, PEM.
    pub ca: PathBuf,
    #[serde(default)]
    pub crl: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSection {
    /// The node's ed25519 signing key (PKCS#8 PEM, mode 0600).
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// sled page cache, MiB.
    #[serde(default = "default_cache_mib")]
    pub cache_mib: u64,
    /// MISP's `correlation_limit`.
    #[serde(default = "default_correlation_limit")]
    pub correlation_limit: usize,
}

fn default_cache_mib() -> u64 {
    256
}
fn default_correlation_limit() -> usize {
    20
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            cache_mib: default_cache_mib(),
            correlation_limit: default_correlation_limit(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest MISP JSON document accepted (a file on import, a body on the API), MiB.
    #[serde(default = "default_max_doc_mib")]
    pub max_document_mib: u64,
    /// Longest a request may take to produce its response head, seconds.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Longest a client may take to complete the TLS handshake or send request
    /// headers, seconds (slowloris protection); also the idle keep-alive timeout.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Most connections served at once; more are closed at accept.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_request_timeout() -> u64 {
    60
}
fn default_header_timeout() -> u64 {
    10
}
fn default_max_connections() -> usize {
    1024
}

fn default_max_doc_mib() -> u64 {
    100
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_document_mib: default_max_doc_mib(),
            request_timeout_secs: default_request_timeout(),
            header_timeout_secs: default_header_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        cfg.source = path.to_owned();
        let base = path.parent().unwrap_or(Path::new("."));
        let anchor = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        anchor(&mut cfg.node.data_dir);
        if let Some(t) = &mut cfg.tls {
            anchor(&mut t.cert);
            anchor(&mut t.key);
            anchor(&mut t.ca);
            t.crl.iter_mut().for_each(anchor);
        }
        if let Some(s) = &mut cfg.signing {
            anchor(&mut s.key);
        }
        let invalid = |key, message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message: message.to_owned(),
        };
        if cfg.node.name.trim().is_empty() {
            return Err(invalid("node.name", "must not be empty"));
        }
        if cfg.node.org.trim().is_empty() {
            return Err(invalid("node.org", "must not be empty"));
        }
        if cfg.node.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "node.listen",
                "must be an address:port, e.g. 127.0.0.1:8443",
            ));
        }
        if cfg.store.correlation_limit == 0 {
            return Err(invalid("store.correlation_limit", "must be at least 1"));
        }
        if cfg.limits.max_document_mib == 0 {
            return Err(invalid("limits.max_document_mib", "must be at least 1"));
        }
        if cfg.limits.request_timeout_secs == 0 || cfg.limits.header_timeout_secs == 0 {
            return Err(invalid("limits", "timeouts must be at least 1 second"));
        }
        if cfg.limits.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        Ok(cfg)
    }

    /// The configuration used when no file exists yet: the embedded default node in
    /// `./sluis-data`.
    pub fn embedded_default() -> Self {
        Config {
            node: NodeSection {
                name: "sluis".into(),
                org: "LOCAL".into(),
                org_uuid: None,
                data_dir: PathBuf::from(DEFAULT_DIR),
                listen: default_listen(),
                url: None,
            },
            store: StoreSection::default(),
            limits: LimitsSection::default(),
            tls: None,
            signing: None,
            peer: Vec::new(),
            origin: Vec::new(),
            source: PathBuf::from(DEFAULT_CONFIG),
        }
    }

    /// `--config FILE` if given; else `./sluis-data/sluis.toml` if it exists; else the
    /// embedded default.
    pub fn resolve(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        match explicit {
            Some(p) => Self::load(p),
            None if Path::new(DEFAULT_CONFIG).exists() => Self::load(Path::new(DEFAULT_CONFIG)),
            None => Ok(Self::embedded_default()),
        }
    }

    /// The sled database directory.
    pub fn db_dir(&self) -> PathBuf {
        self.node.data_dir.join("db")
    }

    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            cache_bytes: self.store.cache_mib * 1024 * 1024,
            correlation_limit: self.store.correlation_limit,
        }
    }

    pub fn max_document_bytes(&self) -> usize {
        usize::try_from(self.limits.max_document_mib * 1024 * 1024).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let p = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/sluis.example.toml"
        ));
        let cfg = Config::load(p).unwrap();
        assert_eq!(cfg.node.name, "cert-a");
    }

    #[test]
    fn errors_name_the_key() {
        let p = Path::new("/etc/sluis.toml");
        let e = Config::parse(
            "[node]\nname='a'\norg='B'\ndata_dir='d'\nlisten='nope'\n",
            p,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "config /etc/sluis.toml: node.listen: must be an address:port, e.g. 127.0.0.1:8443"
        );
        let e =
            Config::parse("[node]\nname='a'\norg='B'\ndata_dir='d'\nlisen='x'\n", p).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = Config::parse("[node]\nname='a'\n", p).unwrap_err();
        assert!(e.to_string().contains("org"), "{e}");
    }

    #[test]
    fn relative_data_dir_is_anchored_at_the_config() {
        let cfg = Config::parse(
            "[node]\nname='a'\norg='B'\ndata_dir='d'\n",
            Path::new("/srv/node/sluis.toml"),
        )
        .unwrap();
        assert_eq!(cfg.node.data_dir, PathBuf::from("/srv/node/d"));
    }
}
