//! Reaching the running node as its administrator, for commands that need the
//! database while `sluis serve` holds it (sled lets one process open it):
//! `sluis backup` and `sluis peers`. The node is found at `[node] url` (or an
//! explicit `--url`), trusted through the federation CA only (`[tls] ca`, never
//! public roots), and called with the admin key `sluis init` wrote to
//! `<data_dir>/admin.key`.

use super::CliError;
use crate::config::{Config, ConfigError};
use std::io;
use std::time::Duration;

/// Time allowed to reach the running node; transfers themselves have no limit
/// (the node abandons a client that stops reading).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running node's base URL: `url`, else `[node] url`. An unspecified
/// listen address (`0.0.0.0`, `[::]`) is reached on loopback, which the node's
/// certificate names.
pub fn node_url(cfg: &Config, url: Option<&str>) -> Result<String, CliError> {
    let base = url
        .map(str::to_owned)
        .or_else(|| cfg.node.url.clone())
        .ok_or_else(|| {
            CliError::Config(ConfigError::Invalid {
                path: cfg.source.clone(),
                key: "node.url".into(),
                message: "the database is in use by a running node, and reaching it needs its \
                          URL (or pass --url)"
                    .into(),
            })
        })?;
    Ok(base
        .trim_end_matches('/')
        .replace("://0.0.0.0", "://127.0.0.1")
        .replace("://[::]", "://[::1]"))
}

/// A reqwest error with its causes, on one line (its own message is terse).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// An HTTPS client trusting only the federation CA, and the admin key. `what`
/// names the command in error messages.
pub fn admin_client(cfg: &Config, what: &str) -> Result<(reqwest::Client, String), CliError> {
    let io_err = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source: io::Error| CliError::Io { path, source }
    };
    let tls = cfg.tls.as_ref().ok_or_else(|| {
        CliError::Config(ConfigError::Invalid {
            path: cfg.source.clone(),
            key: "tls".into(),
            message: format!(
                "the database is in use by a running node, and reaching it for {what} needs \
                 [tls] ca"
            ),
        })
    })?;
    let ca = std::fs::read(&tls.ca).map_err(io_err(&tls.ca))?;
    let ca = reqwest::Certificate::from_pem(&ca).map_err(|e| CliError::Remote {
        url: cfg.node.url.clone().unwrap_or_default(),
        reason: format!("the CA certificate {}: {}", tls.ca.display(), chain(&e)),
    })?;
    let key_path = cfg.node.data_dir.join("admin.key");
    let key = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
    let key = key.trim().to_owned();
    if key.is_empty() {
        return Err(io_err(&key_path)(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("empty ({what} on a running node authenticates with its admin key)"),
        )));
    }
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CliError::Remote {
            url: cfg.node.url.clone().unwrap_or_default(),
            reason: chain(&e),
        })?;
    Ok((client, key))
}

/// `GET <base><path>` as admin; the JSON answer.
pub fn get_json(
    cfg: &Config,
    base: &str,
    path: &str,
    what: &str,
) -> Result<serde_json::Value, CliError> {
    let url = format!("{base}{path}");
    let remote = |reason: String| CliError::Remote {
        url: url.clone(),
        reason,
    };
    let (client, key) = admin_client(cfg, what)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| remote(format!("cannot start the HTTP client: {e}")))?;
    runtime.block_on(async {
        let resp = client
            .get(&url)
            .header("Authorization", key)
            .header("Accept", "application/json")
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| remote(chain(&e)))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| remote(chain(&e)))?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| body.chars().take(200).collect());
            return Err(remote(format!("the node answered {status}: {message}")));
        }
        serde_json::from_str(&body).map_err(|e| remote(format!("not JSON: {e}")))
    })
}
