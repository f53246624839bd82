//! The node configuration (`sluis.toml`).
//!
//! Every key is documented in `config/sluis.example.toml`. Unknown keys are refused,
//! so a typo is an error at start rather than a silently ignored setting. Relative
//! paths are resolved against the directory holding the config file, so a node
//! directory can be moved as a whole.

mod proxies;

pub use proxies::TrustedProxies;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where commands look when no `--config` is given.
pub const DEFAULT_CONFIG: &str = "sluis-data/sluis.toml";
/// The embedded default node directory.
pub const DEFAULT_DIR: &str = "sluis-data";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// No `--config` and no default node: a command that needs a node says how
    /// to make one, in one line.
    #[error("no node here ({path} does not exist): create the default node with `sluis serve` (or one of your own with `sluis init`), or pass --config FILE")]
    NoNode { path: PathBuf },
    /// `key` names the setting, with the index of a repeated table
    /// (`origin[1].public_key`) or list (`trust.revoked[0]`).
    #[error("config {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
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
    /// Partner nodes this node federates with (their keys are trusted).
    #[serde(default)]
    pub peer: Vec<PeerSection>,
    /// Further trusted origins: nodes whose sealed records this node accepts
    /// without being peered with them, and extra (e.g. rotated) keys of peers.
    #[serde(default)]
    pub origin: Vec<OriginSection>,
    #[serde(default)]
    pub trust: TrustSection,
    #[serde(default)]
    pub audit: AuditSection,
    #[serde(default)]
    pub support: SupportSection,
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

/// A partner node (`[[peer]]`). Its key is trusted for its org, with no
/// validity window; list a rotated-out or upcoming key of the same partner as an
/// `[[origin]]` with a window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSection {
    /// Must match the peer certificate's name: the certificate maps to this entry.
    pub name: String,
    /// Where the peer listens (`https://…`).
    pub url: String,
    /// The peer's organisation: the origin its key vouches for.
    pub org_uuid: uuid::Uuid,
    /// The peer's ed25519 public key, base64, as its `sluis keys` prints it.
    pub public_key: String,
    /// Pull the peer's changes feed.
    #[serde(default = "default_true")]
    pub pull: bool,
    /// Notify the peer of news so it pulls at once.
    #[serde(default = "default_true")]
    pub push: bool,
    /// How often to pull when not notified: `<n>s`, `<n>m` or `<n>h`.
    #[serde(default = "default_interval")]
    pub interval: String,
    /// Optional pin: the SHA-256 fingerprint of the peer's certificate
    /// (`sha256:<hex>`, as its `sluis keys` prints `tls_fingerprint`); when set, a
    /// certificate with the right name but another fingerprint is refused.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

fn default_true() -> bool {
    true
}
fn default_interval() -> String {
    "30s".into()
}

impl PeerSection {
    /// The pull interval (validated when the config is read).
    pub fn interval(&self) -> std::time::Duration {
        parse_interval(&self.interval).unwrap_or(std::time::Duration::from_secs(30))
    }
}

/// `30s`, `5m`, `1h` (at least one second, at most a day): a short interval
/// spelled without a unit is too easily read as minutes, so the unit is required.
fn parse_interval(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let unit_at = s.len().checked_sub(1)?;
    if !s.is_char_boundary(unit_at) {
        return None; // a non-ASCII last character is no unit
    }
    let (n, unit) = s.split_at(unit_at);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (1..=86_400)
        .contains(&secs)
        .then(|| std::time::Duration::from_secs(secs))
}

/// A further trusted origin key (`[[origin]]`): a node we are not peered with,
/// or another key of a peer (rotation). The same org may be listed several
/// times, one key each; the window (epoch seconds, inclusive) is checked
/// against when a seal was made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginSection {
    pub org_uuid: uuid::Uuid,
    /// base64 ed25519 public key, as `sluis keys` prints it.
    pub public_key: String,
    /// Seals made before this time (epoch seconds) fail.
    #[serde(default)]
    pub not_before: Option<u64>,
    /// Seals made after this time (epoch seconds) fail.
    #[serde(default)]
    pub not_after: Option<u64>,
}

/// `[trust]`: revocations, which win over every trust entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    /// Key ids (16 hex digits, as `sluis keys` prints `key_id`) whose seals fail
    /// whenever they were made: a compromised key. Retire a key that is merely
    /// replaced with `not_after` instead, so what it sealed keeps verifying.
    #[serde(default)]
    pub revoked: Vec<String>,
}

/// `[audit]`: how often the audit log (`<data_dir>/audit.log`) is sealed by a
/// signed checkpoint. Records after the last checkpoint are chained but not
/// signed, so these bound what could be rewritten unnoticed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// A checkpoint after this many records.
    #[serde(default = "default_checkpoint_records")]
    pub checkpoint_records: u64,
    /// And at least this often while anything is recorded: `<n>s`, `<n>m` or `<n>h`.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: String,
}

/// `[support]`: incident-support exchange ([`crate::support`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportSection {
    /// Where to post notices (`http://` or `https://`, on the operator's side):
    /// requests to us, responses to our requests, status changes, overdue cases.
    #[serde(default)]
    pub webhook: Option<String>,
    /// How often to look for overdue cases: `<n>s`, `<n>m` or `<n>h` (default 60s).
    #[serde(default)]
    pub overdue_check: Option<String>,
}

impl SupportSection {
    /// The overdue scan interval (validated when the config is read).
    pub fn overdue_check(&self) -> std::time::Duration {
        self.overdue_check
            .as_deref()
            .and_then(parse_interval)
            .unwrap_or(std::time::Duration::from_secs(60))
    }
}

fn default_checkpoint_records() -> u64 {
    1000
}
fn default_checkpoint_interval() -> String {
    "60s".into()
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            checkpoint_records: default_checkpoint_records(),
            checkpoint_interval: default_checkpoint_interval(),
        }
    }
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
    /// Free space (MiB) kept in reserve on the disk holding the database:
    /// below it, writes are refused with 507 (reads go on) until space is
    /// freed. 0 turns the check off. See `store::health`.
    #[serde(default = "default_min_free_mib")]
    pub min_free_mib: u64,
    /// Read every record once when the database is opened, so a damaged one
    /// is refused at start (seconds per GB of live data). Off, damage in the
    /// middle of the files is found only when a request reads it.
    #[serde(default = "default_true")]
    pub verify_on_start: bool,
}

fn default_min_free_mib() -> u64 {
    crate::store::health::DEFAULT_MIN_FREE_MIB
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
            min_free_mib: default_min_free_mib(),
            verify_on_start: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest MISP JSON document accepted (a file on import, a body on the API), MiB.
    #[serde(default = "default_max_doc_mib")]
    pub max_document_mib: u64,
    /// Memory the request bodies larger than 64 KiB may hold together while
    /// they are read and processed, MiB (default: twice `max_document_mib`).
    /// A request that cannot get its share within 30 s is answered 503; see
    /// `http::budget`. At least `max_document_mib`.
    #[serde(default)]
    pub body_memory_mib: Option<u64>,
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
    /// Most connections from one TCP peer address at once; more are closed at
    /// accept, so one client cannot hold every slot. Counted on the TCP peer (a
    /// connection is admitted before any header is read), so a reverse proxy
    /// in front of the node needs a higher value.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Most TLS handshakes in progress from one TCP peer address at once;
    /// more connections are closed at accept. A client that opens connections
    /// and never completes TLS (a half-open flood) is held to this many.
    #[serde(default = "default_max_handshakes_per_address")]
    pub max_handshakes_per_address: usize,
    /// Requests per second per API key, on average (0: no limit); see
    /// `api::ratelimit`.
    #[serde(default = "default_api_rate")]
    pub api_rate_per_sec: u32,
    /// Requests one API key may make at once before the rate applies.
    #[serde(default = "default_api_burst")]
    pub api_rate_burst: u32,
    /// `/fed/v1/` requests per second per configured peer (0: no limit).
    #[serde(default = "default_peer_rate")]
    pub peer_rate_per_sec: u32,
    /// Requests one peer may make at once before the rate applies.
    #[serde(default = "default_peer_burst")]
    pub peer_rate_burst: u32,
    /// Failed API-key authentications per minute per client address (0: no
    /// limit); past it, every request from the address is refused with 429
    /// until the allowance refills.
    #[serde(default = "default_auth_failures")]
    pub auth_failures_per_min: u32,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names
    /// the client; from anyone else the header is ignored. See `http::forwarded`.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// `trusted_proxies`, parsed when the config is read ([`Config::parse`]).
    #[serde(skip)]
    pub proxies: TrustedProxies,
}

// Generous on purpose: they are there to stop a runaway, not to pace a busy
// script or a peer catching up. PyMISP hands a 429 back as an error result (it
// does not retry), and a puller backs off after one, so a limit that ordinary
// use can reach silently drops work or stalls a sync.
fn default_api_rate() -> u32 {
    100
}
fn default_api_burst() -> u32 {
    1000
}
fn default_peer_rate() -> u32 {
    50
}
fn default_peer_burst() -> u32 {
    500
}
fn default_auth_failures() -> u32 {
    20
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

fn default_max_connections_per_address() -> usize {
    128
}

fn default_max_handshakes_per_address() -> usize {
    32
}

fn default_max_doc_mib() -> u64 {
    100
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_document_mib: default_max_doc_mib(),
            body_memory_mib: None,
            request_timeout_secs: default_request_timeout(),
            header_timeout_secs: default_header_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            max_handshakes_per_address: default_max_handshakes_per_address(),
            api_rate_per_sec: default_api_rate(),
            api_rate_burst: default_api_burst(),
            peer_rate_per_sec: default_peer_rate(),
            peer_rate_burst: default_peer_burst(),
            auth_failures_per_min: default_auth_failures(),
            trusted_proxies: Vec::new(),
            proxies: TrustedProxies::default(),
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
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
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
        if cfg
            .limits
            .body_memory_mib
            .is_some_and(|m| m < cfg.limits.max_document_mib)
        {
            return Err(invalid(
                "limits.body_memory_mib",
                "must be at least limits.max_document_mib (a largest body must fit)",
            ));
        }
        if cfg.limits.request_timeout_secs == 0 || cfg.limits.header_timeout_secs == 0 {
            return Err(invalid("limits", "timeouts must be at least 1 second"));
        }
        if cfg.limits.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        if cfg.limits.max_handshakes_per_address == 0 {
            return Err(invalid(
                "limits.max_handshakes_per_address",
                "must be at least 1",
            ));
        }
        if cfg.limits.max_connections_per_address == 0 {
            return Err(invalid(
                "limits.max_connections_per_address",
                "must be at least 1",
            ));
        }
        if cfg.limits.api_rate_per_sec > 0 && cfg.limits.api_rate_burst == 0 {
            return Err(invalid(
                "limits.api_rate_burst",
                "must be at least 1 while api_rate_per_sec is set",
            ));
        }
        if cfg.limits.peer_rate_per_sec > 0 && cfg.limits.peer_rate_burst == 0 {
            return Err(invalid(
                "limits.peer_rate_burst",
                "must be at least 1 while peer_rate_per_sec is set",
            ));
        }
        match TrustedProxies::parse(&cfg.limits.trusted_proxies) {
            Ok(p) => cfg.limits.proxies = p,
            Err((i, message)) => {
                return Err(invalid(&format!("limits.trusted_proxies[{i}]"), &message))
            }
        }
        if cfg.audit.checkpoint_records == 0 {
            return Err(invalid("audit.checkpoint_records", "must be at least 1"));
        }
        if parse_interval(&cfg.audit.checkpoint_interval).is_none() {
            return Err(invalid(
                "audit.checkpoint_interval",
                "must be a number with a unit s, m or h (e.g. \"60s\"), between 1s and 24h",
            ));
        }
        if let Some(w) = &cfg.support.webhook {
            if !(w.starts_with("https://") || w.starts_with("http://")) {
                return Err(invalid(
                    "support.webhook",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if let Some(c) = &cfg.support.overdue_check {
            if parse_interval(c).is_none() {
                return Err(invalid(
                    "support.overdue_check",
                    "must be a number with a unit s, m or h (e.g. \"60s\"), between 1s and 24h",
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in cfg.peer.iter().enumerate() {
            if p.name.trim().is_empty() {
                return Err(invalid(&format!("peer[{i}].name"), "must not be empty"));
            }
            if !names.insert(p.name.as_str()) {
                return Err(invalid(
                    &format!("peer[{i}].name"),
                    &format!(
                        "\"{}\" is configured twice (a certificate maps to one peer)",
                        p.name
                    ),
                ));
            }
            if !p.url.starts_with("https://") {
                return Err(invalid(
                    &format!("peer[{i}].url"),
                    "must be an https:// URL (peers talk mutual TLS)",
                ));
            }
            if p.name == cfg.node.name || p.name == "localhost" {
                return Err(invalid(
                    &format!("peer[{i}].name"),
                    &format!(
                        "\"{}\" names this node itself (or the name every node certificate \
                         carries): a peer is another node",
                        p.name
                    ),
                ));
            }
            if let Some(fp) = &p.fingerprint {
                let hex = fp.strip_prefix("sha256:").unwrap_or("");
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid(
                        &format!("peer[{i}].fingerprint"),
                        "must be sha256:<64 hex digits>, as the peer's `sluis keys` prints \
                         tls_fingerprint",
                    ));
                }
            }
            if parse_interval(&p.interval).is_none() {
                return Err(invalid(
                    &format!("peer[{i}].interval"),
                    "must be a number with a unit s, m or h (e.g. \"30s\"), between 1s and 24h",
                ));
            }
        }
        // Every trust entry is checked now, so a bad key or revocation is an error
        // when the config is read, not when a seal first needs it.
        trust_list(&cfg, None)?;
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
            trust: TrustSection::default(),
            audit: AuditSection::default(),
            support: SupportSection::default(),
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
            min_free_bytes: self.store.min_free_mib.saturating_mul(1024 * 1024),
            verify_on_open: self.store.verify_on_start,
        }
    }

    /// The audit log.
    pub fn audit_path(&self) -> PathBuf {
        self.node.data_dir.join(crate::audit::FILE_NAME)
    }

    /// The audit log's tunables; `anchor` is the node's store.
    pub fn audit_options(
        &self,
        anchor: Option<std::sync::Arc<crate::store::Store>>,
    ) -> crate::audit::AuditOptions {
        crate::audit::AuditOptions {
            checkpoint_records: self.audit.checkpoint_records,
            checkpoint_interval: parse_interval(&self.audit.checkpoint_interval)
                .unwrap_or(std::time::Duration::from_secs(60)),
            anchor,
        }
    }

    pub fn max_document_bytes(&self) -> usize {
        usize::try_from(self.limits.max_document_mib * 1024 * 1024).unwrap_or(usize::MAX)
    }

    /// `limits.body_memory_mib` in bytes, its default filled in.
    pub fn body_memory_bytes(&self) -> usize {
        let mib = self
            .limits
            .body_memory_mib
            .unwrap_or(self.limits.max_document_mib.saturating_mul(2));
        usize::try_from(mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }
}

/// The trust list the config describes: `own` (this node's key and org, when
/// it has them), every `[[peer]]` key, every `[[origin]]` key with its window,
/// and the `[trust] revoked` key ids. Errors name the entry at fault; an entry
/// repeating an earlier one exactly (a partner both peer and origin) is fine.
pub fn trust_list(
    cfg: &Config,
    own: Option<(&crate::seal::NodeKey, uuid::Uuid)>,
) -> Result<crate::seal::TrustList, ConfigError> {
    let mut t = crate::seal::TrustList::new();
    let invalid = |key: String, e: crate::seal::TrustError| ConfigError::Invalid {
        path: cfg.source.clone(),
        key,
        message: e.to_string(),
    };
    if let Some((key, org)) = own {
        t.add_key(org, key.verifying_key(), None, None)
            .map_err(|e| invalid("signing.key".into(), e))?;
    }
    for (i, p) in cfg.peer.iter().enumerate() {
        t.add(p.org_uuid, &p.public_key, None, None)
            .map_err(|e| invalid(format!("peer[{i}].public_key"), e))?;
    }
    for (i, o) in cfg.origin.iter().enumerate() {
        t.add(o.org_uuid, &o.public_key, o.not_before, o.not_after)
            .map_err(|e| {
                let field = match e {
                    crate::seal::TrustError::EmptyWindow { .. } => "not_after",
                    _ => "public_key",
                };
                invalid(format!("origin[{i}].{field}"), e)
            })?;
    }
    for (i, id) in cfg.trust.revoked.iter().enumerate() {
        t.revoke(id)
            .map_err(|e| invalid(format!("trust.revoked[{i}]"), e))?;
    }
    Ok(t)
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

    const BASE: &str = "[node]\nname='a'\norg='B'\ndata_dir='d'\n";
    const ORG_B: &str = "5c1b0000-0000-4000-8000-00000000000b";
    const ORG_C: &str = "5c1b0000-0000-4000-8000-00000000000c";

    fn key_b64() -> String {
        crate::seal::NodeKey::generate().unwrap().public_key_b64()
    }

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{BASE}{extra}"), Path::new("/etc/sluis.toml"))
    }

    #[test]
    fn peers_origins_and_revocations() {
        let (kb, kc, kc2) = (key_b64(), key_b64(), key_b64());
        let cfg = parse(&format!(
            "[[peer]]\nname='cert-b'\nurl='https://b.example:8443'\norg_uuid='{ORG_B}'\npublic_key='{kb}'\n\
             [[origin]]\norg_uuid='{ORG_C}'\npublic_key='{kc}'\nnot_after=2000\n\
             [[origin]]\norg_uuid='{ORG_C}'\npublic_key='{kc2}'\nnot_before=1000\n\
             [[origin]]\norg_uuid='{ORG_B}'\npublic_key='{kb}'\n\
             [trust]\nrevoked=['0123456789abcdef']\n"
        ))
        .unwrap();
        let p = &cfg.peer[0];
        assert!(p.pull && p.push);
        assert_eq!(p.interval(), std::time::Duration::from_secs(30));
        assert_eq!(cfg.origin[0].not_after, Some(2000));
        let own = crate::seal::NodeKey::generate().unwrap();
        let own_org = uuid::Uuid::from_u128(0xa);
        let t = trust_list(&cfg, Some((&own, own_org))).unwrap();
        assert_eq!(t.len(), 4);
        let c: uuid::Uuid = ORG_C.parse().unwrap();
        assert_eq!(t.keys_for(&c).count(), 2);
        assert!(t.is_revoked(&"0123456789abcdef".parse().unwrap()));
        assert!(t.lookup(&own_org, &own.key_id(), 5).is_ok());
    }

    #[test]
    fn trust_errors_name_the_entry() {
        let p = |extra: &str| parse(extra).unwrap_err().to_string();
        let kb = key_b64();
        let e = p(&format!(
            "[[origin]]\norg_uuid='{ORG_B}'\npublic_key='{kb}'\n[[origin]]\norg_uuid='{ORG_C}'\npublic_key='nope'\n"
        ));
        assert!(e.contains("origin[1].public_key"), "{e}");
        let e = p(&format!(
            "[[origin]]\norg_uuid='{ORG_B}'\npublic_key='{kb}'\nnot_before=5\nnot_after=4\n"
        ));
        assert!(e.contains("origin[0].not_after"), "{e}");
        let e = p(&format!(
            "[[origin]]\norg_uuid='{ORG_B}'\npublic_key='{kb}'\n[[origin]]\norg_uuid='{ORG_C}'\npublic_key='{kb}'\n"
        ));
        assert!(
            e.contains("origin[1].public_key") && e.contains("one org only"),
            "{e}"
        );
        let e = p("[trust]\nrevoked=['0123', 'x']\n");
        assert!(e.contains("trust.revoked[0]"), "{e}");
        let e = p("[trust]\nrevokd=[]\n");
        assert!(e.contains("revokd"), "{e}");
        let e = p(&format!(
            "[[origin]]\norg_uuid='{ORG_B}'\npublic_key='{kb}'\nnot_befor=1\n"
        ));
        assert!(e.contains("not_befor"), "{e}");
        let peer = |extra: &str| {
            format!(
                "[[peer]]\nname='b'\nurl='https://b'\norg_uuid='{ORG_B}'\npublic_key='{kb}'\n{extra}"
            )
        };
        let e = p(&peer("interval='30'\n"));
        assert!(e.contains("peer[0].interval"), "{e}");
        let e = p(&peer("pull='yes'\n"));
        assert!(e.contains("pull"), "{e}");
        let e = p(&format!("{}{}", peer(""), peer("")));
        assert!(e.contains("peer[1].name"), "{e}");
        let e = p(&peer("").replace("https://b", "http://b"));
        assert!(e.contains("peer[0].url"), "{e}");
        let e = p("[support]\nwebhook='ftp://x'\n");
        assert!(e.contains("support.webhook"), "{e}");
        let e = p("[support]\noverdue_check='5'\n");
        assert!(e.contains("support.overdue_check"), "{e}");
        let e = p("[support]\nwebhok='https://x'\n");
        assert!(e.contains("webhok"), "{e}");
        let e = p(&peer("fingerprint='sha256:abc'\n"));
        assert!(e.contains("peer[0].fingerprint"), "{e}");
        let e = p(&peer("").replace("name='b'", "name='localhost'"));
        assert!(e.contains("peer[0].name"), "{e}");
        let e = p(&peer("").replace(ORG_B, "not-a-uuid"));
        assert!(e.contains("org_uuid"), "{e}");
        // The own key listed under another org.
        let own = crate::seal::NodeKey::generate().unwrap();
        let cfg = parse(&format!(
            "[[origin]]\norg_uuid='{ORG_B}'\npublic_key='{}'\n",
            own.public_key_b64()
        ))
        .unwrap();
        let e = trust_list(&cfg, Some((&own, uuid::Uuid::from_u128(0xa))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("origin[0].public_key"), "{e}");
    }

    #[test]
    fn abuse_limits() {
        let cfg = parse("").unwrap();
        let l = &cfg.limits;
        assert_eq!(
            (l.api_rate_per_sec, l.api_rate_burst, l.peer_rate_per_sec),
            (100, 1000, 50)
        );
        assert_eq!((l.peer_rate_burst, l.auth_failures_per_min), (500, 20));
        assert!(l.trusted_proxies.is_empty());
        let cfg = parse(
            "[limits]\napi_rate_per_sec = 0\napi_rate_burst = 0\n\
             trusted_proxies = ['10.0.0.1', '192.168.0.0/16', '2001:db8::/48']\n",
        )
        .unwrap();
        assert_eq!(cfg.limits.trusted_proxies.len(), 3);
        // Parsed once, when the config is read.
        assert!(cfg
            .limits
            .proxies
            .is_trusted("192.168.7.7".parse().unwrap()));
        assert!(!cfg.limits.proxies.is_trusted("10.0.0.2".parse().unwrap()));
        assert_eq!(cfg.limits.max_connections_per_address, 128);
        let e = |extra: &str| parse(extra).unwrap_err().to_string();
        let msg = e("[limits]\nmax_connections_per_address = 0\n");
        assert!(msg.contains("limits.max_connections_per_address"), "{msg}");
        assert_eq!(cfg.body_memory_bytes(), 2 * cfg.max_document_bytes());
        assert_eq!(cfg.limits.max_handshakes_per_address, 32);
        let msg = e("[limits]\nmax_handshakes_per_address = 0\n");
        assert!(msg.contains("limits.max_handshakes_per_address"), "{msg}");
        let msg = e("[limits]\nmax_document_mib = 50\nbody_memory_mib = 49\n");
        assert!(msg.contains("limits.body_memory_mib"), "{msg}");
        let msg = e("[limits]\ntrusted_proxies = ['10.0.0.1', 'proxy.example']\n");
        assert!(msg.contains("limits.trusted_proxies[1]"), "{msg}");
        let msg = e("[limits]\ntrusted_proxies = ['10.0.0.0/40']\n");
        assert!(msg.contains("limits.trusted_proxies[0]"), "{msg}");
        let msg = e("[limits]\npeer_rate_burst = 0\n");
        assert!(msg.contains("limits.peer_rate_burst"), "{msg}");
        let msg = e("[limits]\napi_rate_per_sec = -1\n");
        assert!(msg.contains("api_rate_per_sec"), "{msg}");
        let msg = e("[limits]\nauth_failures_per_minute = 5\n");
        assert!(msg.contains("auth_failures_per_minute"), "{msg}");
    }

    #[test]
    fn intervals() {
        use std::time::Duration;
        assert_eq!(parse_interval("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_interval("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_interval("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "s", "30", "0s", "25h", "-1s", "1.5m", "1d", "1é"] {
            assert_eq!(parse_interval(bad), None, "{bad}");
        }
    }
}
