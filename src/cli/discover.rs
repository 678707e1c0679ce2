//! `davsync discover`: show the collections on both sides and how they pair up.

use clap::Args;
use davsync::storage;
use davsync::sync::pair_collections;

use super::json::{self, DiscoverDoc, DiscoverPair, Exit};
use super::{Cli, CliError, PairStorages, complete, display_name, load_config, select_pairs};

/// Show the collections on both sides of pairs and how they pair up
///
/// Writes nothing. Output on stdout, per pair: "pair PAIR: a = STORAGE, b = STORAGE", then per
/// collection an indented "PAIR/COLLECTION" line followed by "a: WHERE" and "b: WHERE" lines
/// (the collection's URL or path, or "NAME (missing, created by the next sync)"). A pair whose
/// collections cannot be listed is "error: PAIR: WHY" on stderr; the other pairs are still shown.
/// With --json stdout holds one JSON document and these lines go to stderr.
///
/// Exit status: 0 when the collections of every pair were listed; 1 when a storage could not be
/// opened or listed; 2 for usage or config errors (an unknown pair).
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Pairs to look at (all when none is named)
    #[arg(value_name = "PAIR", add = complete::pairs())]
    pairs: Vec<String>,
    /// Print one JSON document on stdout (schema davsync/discover/1,
    /// docs/schema/discover.json): per pair the collections on both sides and how they pair
    /// up; the text for people goes to stderr
    #[arg(long)]
    json: bool,
}

pub fn cmd_discover(cli: &Cli, args: &DiscoverArgs) -> Result<(), CliError> {
    if !args.json {
        return discover(cli, args, None);
    }
    let mut doc = DiscoverDoc::new();
    let result = discover(cli, args, Some(&mut doc));
    doc.exit = Some(Exit::of(&result));
    json::print(&doc)?;
    result
}

fn discover(
    cli: &Cli,
    args: &DiscoverArgs,
    mut doc: Option<&mut DiscoverDoc>,
) -> Result<(), CliError> {
    let json = doc.is_some();
    let config = load_config(cli)?;
    let shared = storage::Shared::new(
        davsync::http::ConnectionLimit::new(config.max_connections),
        None,
    );
    let mut clean = true;
    for (pair, _) in select_pairs(&config, &args.pairs)? {
        let storages = PairStorages::open(&config, pair, &shared)?;
        say!(json, "pair {}: a = {}, b = {}", pair.name, pair.a, pair.b);
        let found = pair_collections(&pair.collections, &storages.sides());
        if let Some(doc) = doc.as_deref_mut() {
            let storages = [pair.a.as_str(), pair.b.as_str()];
            let found = found.as_deref().map_err(ToString::to_string);
            doc.pairs
                .push(DiscoverPair::new(&pair.name, storages, found));
        }
        let collections = match found {
            Ok(collections) => collections,
            Err(e) => {
                eprintln!("error: {}: {e}", pair.name);
                clean = false;
                continue;
            }
        };
        for c in collections {
            let side = |name: &str, found: &Option<davsync::storage::CollectionInfo>| match found {
                Some(info) => info.id.clone(),
                None => format!("{name} (missing, created by the next sync)"),
            };
            say!(json, "  {}", display_name(&pair.name, &c.name));
            say!(json, "    a: {}", side(&c.a_name, &c.a));
            say!(json, "    b: {}", side(&c.b_name, &c.b));
        }
    }
    if clean {
        Ok(())
    } else {
        Err(CliError::Unsynced)
    }
}
