//! `davsync repair`: give items without a UID a UID and split duplicate UIDs on one storage.

use clap::Args;
use davsync::config::{CollectionsSpec, Config, ProcessEnv};
use davsync::repair::{Reason, location, repair_collection};
use davsync::storage::{self, CollectionInfo, Storage};

use super::{Cli, CliError, Verbosity, complete, display_name, load_config};

/// Give items without a UID a new UID and split UIDs used by several items
///
/// Of the items of one collection sharing a UID, the oldest keeps it (the earliest
/// LAST-MODIFIED, else REV, else DTSTAMP; then href order) and every other gets a new UID. Each
/// item is changed with a conditional write; a server that refuses to change a UID in place
/// gets the item under a new name derived from its new UID, and the old one is deleted. Every
/// file or URL changed is named. Sync the storage's pairs afterwards: the next sync copies the
/// changed items and converges without duplicates.
///
/// Exit status: 0 when every item that needed it was repaired (or, with --dry-run, could be);
/// 1 when an item could not be read or changed, or the storage could not be listed; 2 for an
/// unknown storage or collection, or a read_only storage.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The storage, or one of its collections, to repair
    #[arg(value_name = "STORAGE[/COLLECTION]", add = complete::storages())]
    target: String,
    /// Print what would be changed, change nothing
    #[arg(long)]
    dry_run: bool,
}

pub fn cmd_repair(cli: &Cli, args: &RepairArgs, verbosity: Verbosity) -> Result<(), CliError> {
    let config = load_config(cli)?;
    let (name, only) = match args.target.split_once('/') {
        Some((name, collection)) => (name, Some(collection)),
        None => (args.target.as_str(), None),
    };
    let section = config.storages.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.storages.keys().map(String::as_str).collect();
        CliError::Usage(format!(
            "no storage named {name:?} in {} (storages: {})",
            config.path.display(),
            known.join(", ")
        ))
    })?;
    if section.read_only {
        return Err(CliError::Usage(format!(
            "storage {name} is read_only: repair writes to the storage it repairs; repair the \
             place it reads from, or remove read_only from its section in {}",
            config.path.display()
        )));
    }
    let shared = storage::Shared::new(
        davsync::http::ConnectionLimit::new(config.max_connections),
        None,
    );
    let storage = storage::open(section, &ProcessEnv, &shared)
        .map_err(|e| CliError::Failed(format!("storage {name}: {e}")))?;
    let collections = collections(&config, name, storage.as_ref(), only)?;
    let mut clean = true;
    for collection in &collections {
        let shown = display_name(name, &collection.name);
        let report = match repair_collection(storage.as_ref(), collection, args.dry_run) {
            Ok(report) => report,
            Err(e) => {
                eprintln!("error: {shown}: {e}");
                clean = false;
                continue;
            }
        };
        for change in &report.changes {
            let fix = &change.fix;
            let place = location(collection, &fix.href);
            let why = match &fix.reason {
                Reason::NoUid => "no UID".to_owned(),
                Reason::Duplicate { uid, kept_by } => format!(
                    "UID {uid:?} also used by {}, which keeps it",
                    location(collection, kept_by)
                ),
            };
            let moved = match &change.moved_to {
                Some(href) => format!(", now {}", location(collection, href)),
                None => String::new(),
            };
            let verb = if args.dry_run { "would get" } else { "given" };
            if verbosity >= Verbosity::Normal {
                println!("{shown}: {place}: {why}; {verb} UID {}{moved}", fix.new_uid);
            }
        }
        for error in &report.errors {
            eprintln!("error: {shown}: {error}");
        }
        clean &= report.errors.is_empty();
        if verbosity >= Verbosity::Normal {
            println!(
                "{shown}: {}{} items given a new UID, {} errors",
                if args.dry_run { "would be: " } else { "" },
                report.changes.len(),
                report.errors.len()
            );
        }
    }
    if clean {
        Ok(())
    } else {
        Err(CliError::Failed(
            "some items could not be read or repaired (see above)".into(),
        ))
    }
}

/// The collections to repair: the one named, else the storage itself when a pair syncs it as
/// one collection (no `collections` setting) or it has no collections, else all of them.
fn collections(
    config: &Config,
    name: &str,
    storage: &dyn Storage,
    only: Option<&str>,
) -> Result<Vec<CollectionInfo>, CliError> {
    let as_root = config
        .pairs
        .values()
        .any(|p| (p.a == name || p.b == name) && p.collections == CollectionsSpec::Root);
    if as_root && only.is_none() {
        return Ok(vec![storage.root_collection()]);
    }
    let found = storage
        .list_collections()
        .map_err(|e| CliError::Failed(format!("storage {name}: {e}")))?;
    match only {
        Some(wanted) => match found.into_iter().find(|c| c.name == wanted) {
            Some(collection) => Ok(vec![collection]),
            None => Err(CliError::Usage(format!(
                "storage {name}: no collection named {wanted:?}"
            ))),
        },
        None if found.is_empty() => Ok(vec![storage.root_collection()]),
        None => Ok(found),
    }
}
