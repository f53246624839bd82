//! The `sluis` command line. Parsing and reporting only; the work is in the library.

#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluis::cli;
use sluis::config::Config;
use sluis::export::{parse_since, Filter, Format};
use sluis::model::time::now_secs;
use sluis::store::Store;
use std::io::Write;
use std::path::PathBuf;
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
    /// Import MISP JSON events (files, or directories such as MISP feeds). The node
    /// must be stopped. Exits non-zero if anything was rejected.
    Import {
        #[arg(long, env = "SLUIS_CONFIG")]
        config: Option<PathBuf>,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
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
        /// write here instead of stdout
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&cfg.db_dir(), cfg.store_options())?)
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Import { config, paths } => {
            let cfg = Config::resolve(config.as_deref())?;
            let store = open_store(&cfg)?;
            let files = cli::import::collect_files(&paths)?;
            let stdout = std::io::stdout();
            let summary =
                cli::import::import(&store, &files, cfg.max_document_bytes(), &mut |r| {
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
        Command::Export {
            config,
            format,
            types,
            values,
            tags,
            since,
            include_deleted,
            output,
        } => {
            let cfg = Config::resolve(config.as_deref())?;
            let store = open_store(&cfg)?;
            let filter = Filter {
                types,
                values,
                tags,
                since: since.map(|s| parse_since(&s, now_secs())).transpose()?,
                include_deleted,
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
