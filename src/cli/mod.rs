//! Command-line definition, shared plumbing and the exit-code map. One file per command.

/// Prints a line for people: on stdout, or on stderr when stdout carries a JSON document
/// (`$json`).
macro_rules! say {
    ($json:expr, $($arg:tt)*) => {
        if $json {
            eprintln!($($arg)*)
        } else {
            println!($($arg)*)
        }
    };
}

mod auth;
mod check;
mod complete;
mod daemon;
mod discover;
mod generate;
mod import_vdirsyncer;
mod interrupt;
mod json;
mod progress;
mod repair;
mod status;
mod sync;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use davsync::config::{self, Config, PairConfig, ProcessEnv};
use davsync::status::{LockError, PairLock, StatusDb, StatusError};
use davsync::storage::{self, Storage, StorageError};
use davsync::sync::Sides;

/// Two-way sync of calendars and contacts between vdirs and other storages.
///
/// davsync pairs two collections of calendar or contact items, remembers what both sides held
/// after the last sync in a status database, and on each run copies every change made on one
/// side to the other. Edits on both sides to the same item are conflicts: reported, or resolved
/// as the pair's conflict_resolution says. Pairs are described in the config file, see
/// davsync.toml(5).
///
/// Exit status: 0 when everything synced; 1 when something needs a person: an item, conflict or
/// collection was left unsynced (a refused item, an open conflict, an unreadable file, a server
/// refusing the credentials, TLS refusing the server), or the run could not start (an unusable
/// status database); 75 (EX_TEMPFAIL) when the run could only not reach a server (connection
/// refused or reset, DNS, timeout, an answer broken off, a server error after the retries) or
/// found a pair locked by another davsync, so that a timer or script simply tries again later
/// (when both happen, 1); 2 for usage or config errors (an unknown pair, or a named collection
/// found on neither side, reported after the other pairs synced); 130 or 143 when stopped by
/// SIGINT or SIGTERM after finishing and recording the writes under way (a second signal stops
/// at once).
///
/// Files: $XDG_CONFIG_HOME/davsync/config.toml (the config), <status_path>/<pair>.db (status
/// database, mode 0600), <status_path>/<pair>.lock (held while a pair syncs),
/// <status_path>/<storage>.token (OAuth2 tokens of a Google storage, mode 0600, see
/// davsync-auth(1)).
#[derive(Debug, Parser)]
#[command(name = "davsync", version, max_term_width = 100)]
pub struct Cli {
    /// Config file [default: $XDG_CONFIG_HOME/davsync/config.toml]
    #[arg(
        short,
        long,
        global = true,
        env = "DAVSYNC_CONFIG",
        value_name = "PATH"
    )]
    config: Option<PathBuf>,
    /// Say more: -v every action applied; -vv also a line per HTTP request (method, URL,
    /// status, time, bytes) on stderr; -vvv also discovery details and each collection's
    /// listing method. Never credentials, tokens or query strings.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Say less: only problems
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Sync(sync::SyncArgs),
    Daemon(daemon::DaemonArgs),
    Discover(discover::DiscoverArgs),
    Check(check::CheckArgs),
    Status(status::StatusArgs),
    Repair(repair::RepairArgs),
    Auth(auth::AuthArgs),
    ImportVdirsyncer(import_vdirsyncer::ImportVdirsyncerArgs),
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

/// How much the user wants to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// The one error type of the binary; its variant decides the exit status.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// Bad arguments or configuration: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The run could not do its job (a status database failure, a held lock): exit 1.
    #[error("{0}")]
    Failed(String),
    /// Problems were already reported; the run finished with something left unsynced: exit 1.
    #[error("some items or collections were left unsynced")]
    Unsynced,
    /// The run could not reach a server or found the pair locked by another davsync, and
    /// nothing needs a person: exit 75 (`EX_TEMPFAIL`), try again later.
    #[error("{0}")]
    RetryLater(String),
    /// Stopped by SIGINT or SIGTERM after finishing the writes under way: exit 128 + signal.
    #[error("interrupted by {}; the next sync does what was left", interrupt::signal_name(*.0))]
    Interrupted(libc::c_int),
}

impl CliError {
    /// What the exit status means, as `--json` documents say it.
    fn kind(&self) -> &'static str {
        match self {
            CliError::Usage(_) => "usage",
            CliError::Failed(_) => "failed",
            CliError::Unsynced => "unsynced",
            CliError::RetryLater(_) => "retry_later",
            CliError::Interrupted(_) => "interrupted",
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) | CliError::Unsynced => 1,
            CliError::RetryLater(_) => EX_TEMPFAIL,
            CliError::Interrupted(signal) => u8::try_from(128 + signal).unwrap_or(1),
        }
    }
}

impl From<config::ConfigError> for CliError {
    fn from(e: config::ConfigError) -> Self {
        CliError::Usage(e.to_string())
    }
}

impl From<StatusError> for CliError {
    fn from(e: StatusError) -> Self {
        CliError::Failed(e.to_string())
    }
}

/// The exit status of a run to try again later (sysexits.h).
const EX_TEMPFAIL: u8 = 75;

impl From<LockError> for CliError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Held { .. } => CliError::RetryLater(e.to_string()),
            _ => CliError::Failed(e.to_string()),
        }
    }
}

impl From<StorageError> for CliError {
    fn from(e: StorageError) -> Self {
        match e.is_temporary() {
            true => CliError::RetryLater(e.to_string()),
            false => CliError::Failed(e.to_string()),
        }
    }
}

/// Runs the command line and maps the result to the exit status.
pub fn main() -> ExitCode {
    complete::answer_if_asked();
    let cli = Cli::parse();
    if cli.verbose >= 2 {
        install_log(cli.verbose);
    }
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (false, 0) => Verbosity::Normal,
        (false, _) => Verbosity::Verbose,
    };
    let result = match &cli.command {
        Command::Sync(args) => sync::cmd_sync(&cli, args, verbosity),
        Command::Daemon(args) => daemon::cmd_daemon(&cli, args, verbosity),
        Command::Discover(args) => discover::cmd_discover(&cli, args),
        Command::Check(args) => check::cmd_check(&cli, args),
        Command::Status(args) => status::cmd_status(&cli, args),
        Command::Repair(args) => repair::cmd_repair(&cli, args, verbosity),
        Command::Auth(args) => auth::cmd_auth(&cli, args),
        Command::ImportVdirsyncer(args) => import_vdirsyncer::cmd_import_vdirsyncer(args),
        Command::Generate(args) => generate::cmd_generate(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("davsync: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Prints davsync's own `tracing` events on stderr: at `-vv` one line per HTTP request
/// (debug), at `-vvv` discovery details too (trace). Only davsync's targets: the HTTP stack's
/// own events may show headers.
fn install_log(verbose: u8) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = if verbose >= 3 {
        tracing::Level::TRACE
    } else {
        tracing::Level::DEBUG
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(tracing_subscriber::filter::Targets::new().with_target("davsync", level))
        .init();
}

fn load_config(cli: &Cli) -> Result<Config, CliError> {
    let path = config::config_path(cli.config.as_deref(), &ProcessEnv)?;
    Ok(config::load(&path, &ProcessEnv)?)
}

/// Which collections of a selected pair to work on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selection {
    /// The pair was named as a whole (or nothing was named).
    All,
    /// Only these collections were named.
    Only(Vec<String>),
}

impl Selection {
    fn includes(&self, collection: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Only(names) => names.iter().any(|n| n == collection),
        }
    }
}

/// The pairs named on the command line (`PAIR` or `PAIR/COLLECTION`), or all pairs, each with
/// the collections it is limited to. Naming a pair as a whole wins over naming some of its
/// collections.
fn select_pairs<'c>(
    config: &'c Config,
    names: &[String],
) -> Result<Vec<(&'c PairConfig, Selection)>, CliError> {
    if names.is_empty() {
        return Ok(config.pairs.values().map(|p| (p, Selection::All)).collect());
    }
    let mut selected: Vec<(&PairConfig, Selection)> = Vec::new();
    for name in names {
        let (pair_name, collection) = match name.split_once('/') {
            Some((p, c)) => (p, Some(c.to_owned())),
            None => (name.as_str(), None),
        };
        let pair = config.pairs.get(pair_name).ok_or_else(|| {
            let known: Vec<&str> = config.pairs.keys().map(String::as_str).collect();
            CliError::Usage(format!(
                "no pair named {pair_name:?} in {} (pairs: {})",
                config.path.display(),
                known.join(", ")
            ))
        })?;
        let index = match selected.iter().position(|(p, _)| p.name == pair.name) {
            Some(index) => index,
            None => {
                selected.push((pair, Selection::Only(Vec::new())));
                selected.len() - 1
            }
        };
        let selection = &mut selected[index].1;
        match (collection, &mut *selection) {
            (None, _) => *selection = Selection::All,
            (Some(c), Selection::Only(names)) => names.push(c),
            (Some(_), Selection::All) => {}
        }
    }
    Ok(selected)
}

/// The two storages of a pair, opened from the config.
struct PairStorages {
    a: Box<dyn Storage>,
    b: Box<dyn Storage>,
}

impl PairStorages {
    fn open(
        config: &Config,
        pair: &PairConfig,
        shared: &storage::Shared,
    ) -> Result<PairStorages, CliError> {
        let open = |name: &String| {
            let storage = config.storages.get(name).ok_or_else(|| {
                CliError::Usage(format!("pair {}: no storage named {name:?}", pair.name))
            })?;
            if let Some(warning) = storage.kind.http().and_then(|http| http.tls_warning()) {
                eprintln!("warning: storage {name}: {warning}");
            }
            storage::open(storage, &ProcessEnv, shared)
                .map_err(|e| CliError::Failed(format!("pair {}: storage {name}: {e}", pair.name)))
        };
        Ok(PairStorages {
            a: open(&pair.a)?,
            b: open(&pair.b)?,
        })
    }

    fn sides(&self) -> Sides<'_> {
        Sides {
            a: self.a.as_ref(),
            b: self.b.as_ref(),
        }
    }
}

fn status_db_path(config: &Config, pair: &str) -> PathBuf {
    config.status_path.join(format!("{pair}.db"))
}

/// A pair's status database, opened under its lock.
struct OpenStatus {
    db: StatusDb,
    _lock: Option<PairLock>,
    /// A dry run of a pair that never synced plans against an empty database here, so that it
    /// leaves nothing behind.
    _scratch: Option<tempfile::TempDir>,
}

/// Takes the pair's lock, then opens its status database.
fn open_status(config: &Config, pair: &str, dry_run: bool) -> Result<OpenStatus, CliError> {
    let path = status_db_path(config, pair);
    if dry_run && !exists(&path) {
        let scratch = tempfile::tempdir()
            .map_err(|e| CliError::Failed(format!("temporary directory: {e}")))?;
        let db = StatusDb::open(&scratch.path().join("dry-run.db"))?;
        return Ok(OpenStatus {
            db,
            _lock: None,
            _scratch: Some(scratch),
        });
    }
    let lock = PairLock::acquire(&config.status_path.join(format!("{pair}.lock")))?;
    Ok(OpenStatus {
        db: StatusDb::open(&path)?,
        _lock: Some(lock),
        _scratch: None,
    })
}

/// How a collection is named in messages: `pair/collection`, or the pair alone.
fn display_name(pair: &str, collection: &str) -> String {
    if collection.is_empty() {
        pair.to_owned()
    } else {
        format!("{pair}/{collection}")
    }
}

fn exists(path: &Path) -> bool {
    path.try_exists().unwrap_or(false)
}
