//! The `sluis` command line. Parsing and reporting only; the work is in the library.

#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluis::cli;
use sluis::cli::resolve::Missing;
use sluis::config::{Config, DEFAULT_DIR};
use sluis::export::{parse_since, Filter, Format};
use sluis::model::time::now_secs;
use sluis::node::{init, InitOptions};
use sluis::store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sluis",
    version,
    about = "Threat-intelligence exchange node for national CERTs"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node. Without --config: the embedded default in ./sluis-data, created
    /// on first start, listening on https://127.0.0.1:8443.
    Serve {
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Create a node directory: CA (in --ca, created if absent), node certificate,
    /// signing key, organisation, admin user and key, sluis.toml.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        /// directory of the federation CA (ca.crt, ca.key); default: the node directory
        #[arg(long)]
        ca: Option<PathBuf>,
        /// the organisation's uuid, if it already has one (a CERT's uuid is global)
        #[arg(long)]
        org_uuid: Option<uuid::Uuid>,
    },
    /// Print what an operator sends a partner: name, org, org_uuid, public_key,
    /// tls_fingerprint.
    Keys {
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Issue a client certificate from a CA directory (for analysts' tools that
    /// present one, e.g. PyMISP's cert=): writes NAME.crt and NAME.key into --out.
    IssueCert {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Import MISP JSON events (files, or directories such as MISP feeds), sealed by
    /// this node; a sealed export is verified against the config's trust list
    /// first. Needs [signing] and node.org_uuid. The node must be stopped. Exits
    /// non-zero if anything was rejected.
    Import {
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Check every seal in a MISP JSON export offline: one line per event,
    /// `ok<TAB>uuid<TAB>origin org<TAB>key id` or `FAIL<TAB>uuid<TAB>reason`. Exit 0
    /// only if every event verifies, 1 if any fails, 2 if the check cannot run.
    Verify {
        /// the export (`{"response":[{"Event":…}]}`, `{"Event":…}` or a list)
        file: PathBuf,
        /// trust what this node's config trusts (its own key, [[peer]], [[origin]],
        /// [trust] revoked); default ./sluis-data/sluis.toml if it exists
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
        /// also trust this ed25519 public key (base64, as `sluis keys` prints it)
        /// for whichever origin org a seal names: the org is not pinned
        /// (repeatable)
        #[arg(long = "key", value_name = "PUBLIC_KEY")]
        keys: Vec<String>,
    },
    /// The audit log (<data_dir>/audit.log): check it, or start a new one.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Export events as MISP JSON, CSV or text. The node must be stopped.
    Export {
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
        /// misp (what events/restSearch returns), csv (MISP's columns) or text
        #[arg(long, default_value = "misp")]
        format: Format,
        /// only attributes of this type (repeatable)
        #[arg(long = "type")]
        types: Vec<String>,
        /// only attributes with this value; `%` wildcards at either end (repeatable)
        #[arg(long = "value")]
        values: Vec<String>,
        /// only events or attributes with this tag (repeatable)
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// only events changed since: epoch seconds, YYYY-MM-DD, or 7d / 12h / 30m
        #[arg(long)]
        since: Option<String>,
        /// include soft-deleted attributes
        #[arg(long)]
        include_deleted: bool,
        /// include exercise events (tag `exercise:…`) in csv/text output
        #[arg(long)]
        include_exercise: bool,
        /// csv meant for a spreadsheet: cells starting with = + - @ get a
        /// leading ' and line breaks in fields become spaces (default: MISP's
        /// verbatim csv, what SIEMs and scripts read)
        #[arg(long)]
        spreadsheet_safe: bool,
        /// write here instead of stdout
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Write a consistent snapshot of the whole database to a new file. With the
    /// node stopped, reads the database; while it runs, fetches the snapshot from
    /// its GET /admin/backup ([node] url, [tls] ca, the admin key in
    /// <data_dir>/admin.key). The file is checked before it is put in place.
    /// Incident-support cases between CERTs: `list` and `show UUID`.
    Support {
        #[command(subcommand)]
        command: SupportCommand,
    },
    /// Show where each configured peer stands, in both directions: our cursor
    /// on its feed and its lag, its cursor on ours as it last reported, what was
    /// stored and refused and why. Asks the running node (GET /admin/peers) when
    /// it holds the database.
    Peers {
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
        /// print JSON instead of text
        #[arg(long)]
        json: bool,
        /// the running node's URL, if not [node] url
        #[arg(long)]
        url: Option<String>,
    },
    Backup {
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
        /// the backup file to create (never overwritten)
        #[arg(long, short)]
        out: PathBuf,
        /// the running node's URL, if not [node] url
        #[arg(long)]
        url: Option<String>,
    },
    /// Restore a backup into the config's database directory, which must be empty
    /// or absent. The node must be stopped. The whole file is checked before
    /// anything is written.
    Restore {
        /// a file written by `sluis backup`
        file: PathBuf,
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
        /// replace an existing database: it is moved aside to db.replaced-<time>,
        /// not deleted
        #[arg(long)]
        force: bool,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("SLUIS_LOG_FORMAT").is_ok_and(|f| f == "json");
    // A failed write to stderr (a log file on a full disk) is dropped: the
    // default reports it with `eprintln!`, which panics when stderr fails too.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The node a command works on (see `cli::resolve`); a default node created
/// now has its admin key shown once, as `sluis serve` always did.
fn node_config(config: Option<PathBuf>, missing: Missing) -> anyhow::Result<Config> {
    Ok(resolve_node(config, missing)?.config)
}

fn resolve_node(
    config: Option<PathBuf>,
    missing: Missing,
) -> anyhow::Result<cli::resolve::Resolved> {
    let r = cli::resolve::node_config(config.as_deref(), missing)?;
    if let Some(report) = &r.created {
        eprintln!("created the default node in ./{DEFAULT_DIR}");
        eprintln!(
            "admin key (shown once; also in ./{DEFAULT_DIR}/admin.key): {}",
            report.admin_key
        );
        eprintln!("CA certificate for clients (ssl=): ./{DEFAULT_DIR}/ca.crt");
    }
    Ok(r)
}

fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&cfg.db_dir(), cfg.store_options())?)
}

/// Resolves once on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let resolved = resolve_node(config, Missing::Create)?;
    if let Some(report) = &resolved.created {
        println!("{}", report.admin_key);
    }
    let cfg = resolved.config;
    let node = sluis::node::Node::start(&cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.node.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.node.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, node = %cfg.node.name, "listening");
        // Not `eprintln!`, which panics if stderr cannot be written (a log file
        // on a full disk).
        let _ = writeln!(std::io::stderr(), "sluis listening on https://{addr}");
        node.run(listener, shutdown_signal()).await?;
        anyhow::Ok(())
    });
    // A blocking task stuck in the storage engine (a flush that never returns,
    // see `store::health`) must not keep a stopping node alive: what it was
    // writing was never acknowledged.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    served?;
    Ok(ExitCode::SUCCESS)
}

fn keys(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = node_config(config, Missing::Refuse)?;
    let signing = cfg
        .signing
        .as_ref()
        .context("the config has no [signing] section")?;
    let key = sluis::seal::keys::NodeKey::load(&signing.key)?;
    let tls = cfg
        .tls
        .as_ref()
        .context("the config has no [tls] section")?;
    let certs = sluis::tls::load_certs(&tls.cert)?;
    let leaf = certs
        .first()
        .context("the node certificate file holds no certificate")?;
    println!("name: {}", cfg.node.name);
    println!("org: {}", cfg.node.org);
    println!(
        "org_uuid: {}",
        cfg.node.org_uuid.map(|u| u.to_string()).unwrap_or_default()
    );
    println!("public_key: {}", key.public_key_b64());
    println!("tls_fingerprint: {}", sluis::tls::fingerprint_sha256(leaf));
    println!("key_id: {}", key.key_id());
    Ok(ExitCode::SUCCESS)
}

fn verify(file: &Path, config: Option<PathBuf>, keys: &[String]) -> anyhow::Result<ExitCode> {
    let cfg = Config::resolve(config.as_deref())?;
    let trust = cli::verify::Trust::from_config(&cfg, keys)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let report = cli::verify::verify(&bytes, cfg.max_document_bytes(), &trust, now_secs())
        .with_context(|| format!("{}", file.display()))?;
    let mut out = std::io::stdout().lock();
    for line in report.lines() {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    for note in report.notes() {
        eprintln!("note: {note}");
    }
    eprintln!("{}: {}", file.display(), report.summary());
    Ok(if report.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(Subcommand)]
enum SupportCommand {
    /// Every case, newest first: status, OVERDUE, [EXERCISE], severity, requester, title.
    List {
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
        /// print JSON instead of text
        #[arg(long)]
        json: bool,
        /// the running node's URL, if not [node] url
        #[arg(long)]
        url: Option<String>,
    },
    /// One case and its timeline: who said what, when.
    Show {
        uuid: uuid::Uuid,
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        url: Option<String>,
    },
}

fn support(command: SupportCommand) -> anyhow::Result<ExitCode> {
    let (config, uuid, json, url) = match command {
        SupportCommand::List { config, json, url } => (config, None, json, url),
        SupportCommand::Show {
            uuid,
            config,
            json,
            url,
        } => (config, Some(uuid), json, url),
    };
    let cfg = node_config(config, Missing::Refuse)?;
    let v = cli::support::cases(&cfg, uuid, url.as_deref())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if uuid.is_some() {
        print!("{}", cli::support::render_case(&v));
    } else {
        print!("{}", cli::support::render_list(&v));
    }
    Ok(ExitCode::SUCCESS)
}

fn peers(config: Option<PathBuf>, json: bool, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let cfg = node_config(config, Missing::Refuse)?;
    let v = cli::peers::peers(&cfg, url)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let status: Vec<sluis::federation::status::PeerStatus> = serde_json::from_value(v)?;
        print!(
            "{}",
            sluis::federation::status::render(&status, sluis::model::time::now_secs())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn backup(config: Option<PathBuf>, out: &Path, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let cfg = node_config(config, Missing::Refuse)?;
    let r = cli::backup::backup(&cfg, out, url)?;
    eprintln!(
        "backed up {} records ({} bytes, checksum {}) from {} to {}",
        r.summary.records,
        r.summary.bytes,
        hex::encode(r.summary.sha256),
        r.source,
        r.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn restore(file: &Path, config: Option<PathBuf>, force: bool) -> anyhow::Result<ExitCode> {
    let cfg = node_config(config, Missing::Refuse)?;
    let r = cli::backup::restore(&cfg, file, force)?;
    if let Some(old) = &r.moved_aside {
        eprintln!("the previous database was moved to {}", old.display());
    }
    eprintln!(
        "restored {} records (backup taken at {}, checksum {}) into {}",
        r.summary.records,
        i64::try_from(r.summary.created)
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map_or_else(|| r.summary.created.to_string(), |t| t.to_string()),
        hex::encode(r.summary.sha256),
        cfg.db_dir().display()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the chain, the seqs, every checkpoint signature and (node stopped)
    /// the anchor in the store. Prints `ok: …` or `FAIL line N: why`, then
    /// details. Exit 0 only if the log is intact, 1 if not, 2 if the check
    /// cannot run.
    Verify {
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
        /// the log to check (default: the config's <data_dir>/audit.log)
        #[arg(long)]
        file: Option<PathBuf>,
        /// also trust checkpoints signed with this ed25519 public key (base64,
        /// as `sluis keys` prints it), e.g. the node's key before a change
        /// (repeatable)
        #[arg(long = "key", value_name = "PUBLIC_KEY")]
        keys: Vec<String>,
        /// the node's organisation uuid, if the config has none
        #[arg(long)]
        org: Option<uuid::Uuid>,
    },
    /// Start a new audit log (node stopped): the current one is sealed and
    /// renamed to audit.log.<last seq>; the new one continues its chain.
    Rotate {
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
        /// also when the current log does not check out (it is kept, renamed
        /// audit.log.damaged-<time>; the new log says so)
        #[arg(long)]
        force: bool,
    },
}

fn audit(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            config,
            file,
            keys,
            org,
        } => {
            let cfg = Config::resolve(config.as_deref())?;
            let v = cli::audit::verify(&cfg, file.as_deref(), &keys, org)?;
            let mut out = std::io::stdout().lock();
            for line in v.lines() {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
            for note in &v.notes {
                eprintln!("note: {note}");
            }
            Ok(if v.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Rotate { config, force } => {
            let cfg = node_config(config, Missing::Refuse)?;
            let r = cli::audit::rotate(&cfg, force)?;
            if let Some(a) = &r.archived {
                println!("previous log: {}", a.display());
            }
            println!("new log: {}", r.log.display());
            println!("continues from seq: {}", r.continues_from);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Serve { config } => serve(config),
        Command::Init {
            dir,
            name,
            org,
            listen,
            ca,
            org_uuid,
        } => {
            let report = init(&InitOptions {
                dir,
                name,
                org,
                org_uuid,
                listen,
                ca_dir: ca,
            })?;
            println!("admin key: {}", report.admin_key);
            println!("admin user: {}", report.admin_email);
            println!("config: {}", report.config.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { config } => keys(config),
        Command::IssueCert { ca, name, out } => {
            let ca = sluis::tls::Ca::load(&ca)?;
            let issued = ca.issue_client_cert(&name)?;
            let (cert, key) = sluis::tls::write_cert_and_key(&out, &name, &issued)?;
            println!("certificate: {}", cert.display());
            println!("key: {}", key.display());
            println!("fingerprint: {}", issued.fingerprint);
            println!("serial: {}", issued.serial_hex);
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { config, paths } => {
            let cfg = node_config(config, Missing::Create)?;
            let sealer = cli::sealer(&cfg, "import")?;
            let trust = sluis::config::trust_list(&cfg, Some((sealer.key(), sealer.org())))?;
            let store = open_store(&cfg)?;
            let owner = sluis::model::Org {
                id: None,
                name: cfg.node.org.clone(),
                uuid: sealer.org(),
                local: true,
            };
            let files = cli::import::collect_files(&paths)?;
            let stdout = std::io::stdout();
            let opts = cli::import::ImportOptions {
                max_document_bytes: cfg.max_document_bytes(),
                owner: Some(&owner),
                sealer: &sealer,
                trust: &trust,
            };
            let summary = cli::import::import(&store, &files, &opts, &mut |r| {
                let mut out = stdout.lock();
                for line in r.lines() {
                    let _ = writeln!(out, "{line}");
                }
                let _ = out.flush();
            })?;
            eprintln!("imported {summary}");
            Ok(if summary.rejected > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Verify { file, config, keys } => verify(&file, config, &keys),
        Command::Audit { command } => audit(command),
        Command::Backup { config, out, url } => backup(config, &out, url.as_deref()),
        Command::Peers { config, json, url } => peers(config, json, url.as_deref()),
        Command::Support { command } => support(command),
        Command::Restore {
            file,
            config,
            force,
        } => restore(&file, config, force),
        Command::Export {
            config,
            format,
            types,
            values,
            tags,
            since,
            include_deleted,
            include_exercise,
            spreadsheet_safe,
            output,
        } => {
            let cfg = node_config(config, Missing::Refuse)?;
            let store = open_store(&cfg)?;
            let filter = Filter {
                types,
                values,
                tags,
                since: since.map(|s| parse_since(&s, now_secs())).transpose()?,
                include_deleted,
                include_exercise,
                csv_style: if spreadsheet_safe {
                    sluis::export::CsvStyle::Spreadsheet
                } else {
                    sluis::export::CsvStyle::Misp
                },
            };
            let stats = match output {
                Some(path) => {
                    let f = std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut w = std::io::BufWriter::new(f);
                    let s = cli::export::export(&store, &filter, format, &mut w)?;
                    w.into_inner()
                        .map_err(|e| e.into_error())
                        .and_then(|f| f.sync_all())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    s
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut w = std::io::BufWriter::new(stdout.lock());
                    cli::export::export(&store, &filter, format, &mut w)?
                }
            };
            eprintln!(
                "exported {} events, {} attributes",
                stats.events, stats.attributes
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        // `sluis export | head` closing the pipe early is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || c.to_string().contains("Broken pipe")
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
