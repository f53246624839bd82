//! Creating a node directory (`sluis init`, and the embedded default that
//! `sluis serve` and every other command create on first use): CA, node
//! certificate, signing key, organisation, admin user and key, and `sluis.toml`.

use super::NodeError;
use crate::config::Config;
use crate::seal::keys::NodeKey;
use crate::store::Store;
use crate::tls::pki::{write_cert_and_key, Ca};
use std::io::Write;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// What `sluis init` is asked for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub dir: PathBuf,
    pub name: String,
    pub org: String,
    pub org_uuid: Option<Uuid>,
    pub listen: String,
    /// Where the federation CA lives (created if absent); the node directory itself
    /// when not given (a self-contained dev node).
    pub ca_dir: Option<PathBuf>,
}

/// What was created; the admin key is shown once.
#[derive(Debug)]
pub struct InitReport {
    pub config: PathBuf,
    pub admin_key: String,
    pub admin_email: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a secret file with mode 0600 from the start (never briefly readable).
fn write_secret(path: &Path, contents: &str) -> Result<(), NodeError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(contents.as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn toml_str(s: &str) -> String {
    // TOML basic strings share JSON's escaping for everything we write.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Creates a node directory. Fails, touching nothing, if one exists there.
pub fn init(opts: &InitOptions) -> Result<InitReport, NodeError> {
    let dir = &opts.dir;
    let config_path = dir.join("sluis.toml");
    if config_path.exists() {
        return Err(NodeError::Exists(dir.clone()));
    }
    let listen: std::net::SocketAddr = opts.listen.parse().map_err(|_| NodeError::Invalid {
        what: "--listen",
        why: format!("\"{}\" is not an address:port", opts.listen),
    })?;
    if opts.name.trim().is_empty() || opts.org.trim().is_empty() {
        return Err(NodeError::Invalid {
            what: "name",
            why: "--name and --org must not be empty".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca_dir = opts.ca_dir.clone().unwrap_or_else(|| dir.clone());
    let ca = Ca::load_or_create(&ca_dir, &format!("{} federation CA", opts.org))?;
    if ca_dir != *dir {
        let dst = dir.join("ca.crt");
        std::fs::write(&dst, ca.cert_pem()).map_err(io(&dst))?;
    }
    let ip = listen.ip().to_string();
    let extra: Vec<&str> = if listen.ip().is_loopback() || listen.ip().is_unspecified() {
        vec![]
    } else {
        vec![ip.as_str()]
    };
    let issued = ca.issue_node_cert(&opts.name, &extra)?;
    write_cert_and_key(dir, "node", &issued)?;
    let key_path = dir.join("signing.key");
    NodeKey::generate()?.save(&key_path)?;

    let org_uuid = opts.org_uuid.unwrap_or_else(Uuid::new_v4);
    let text = format!(
        "# sluis node \"{name}\" — every key is documented in config/sluis.example.toml\n\
         # Paths are relative to this file.\n\n\
         [node]\nname = {name_q}\norg = {org_q}\norg_uuid = \"{org_uuid}\"\ndata_dir = \".\"\n\
         listen = \"{listen}\"\nurl = \"https://{listen}\"\n\n\
         [tls]\ncert = \"node.crt\"\nkey = \"node.key\"\nca = \"ca.crt\"\ncrl = []\n\n\
         [signing]\nkey = \"signing.key\"\n",
        name = opts.name,
        name_q = toml_str(&opts.name),
        org_q = toml_str(&opts.org),
    );
    // Validate what we are about to write with the same parser that will read it.
    Config::parse(&text, &config_path)?;

    let store = Store::open(&dir.join("db"), Default::default())?;
    let org = store.add_org(org_uuid, &opts.org, true)?;
    let email = format!("admin@{}", opts.name);
    let admin = store.add_user(&email, org.uuid, crate::policy::roles::ADMIN.id)?;
    let (key, _) = store.add_auth_key(admin.id, "created by sluis init", 0)?;
    drop(store);
    write_secret(&dir.join("admin.key"), &format!("{key}\n"))?;
    // The config goes last: its presence marks a complete node directory.
    let tmp = dir.join(".sluis.toml.tmp");
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &config_path).map_err(io(&config_path))?;
    Ok(InitReport {
        config: config_path,
        admin_key: key,
        admin_email: email,
    })
}
