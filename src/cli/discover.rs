//! `davsync discover`: show the collections on both sides and how they pair up.

use clap::Args;
use davsync::storage;
use davsync::sync::pair_collections;

use super::{Cli, CliError, PairStorages, complete, display_name, load_config, select_pairs};

/// Show the collections on both sides of pairs and how they pair up
///
/// Writes nothing. Output on stdout, per pair: "pair PAIR: a = STORAGE, b = STORAGE", then per
/// collection an indented "PAIR/COLLECTION" line followed by "a: WHERE" and "b: WHERE" lines
/// (the collection's URL or path, or "NAME (missing, created by the next sync)"). A pair whose
/// collections cannot be listed is "error: PAIR: WHY" on stderr; the other pairs are still shown.
///
/// Exit status: 0 when the collections of every pair were listed; 1 when a storage could not be
/// opened or listed; 2 for usage or config errors (an unknown pair).
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Pairs to look at (all when none is named)
    #[arg(value_name = "PAIR", add = complete::pairs())]
    pairs: Vec<String>,
}

pub fn cmd_discover(cli: &Cli, args: &DiscoverArgs) -> Result<(), CliError> {
    let config = load_config(cli)?;
    let shared = storage::Shared::default();
    let mut clean = true;
    for (pair, _) in select_pairs(&config, &args.pairs)? {
        let storages = PairStorages::open(&config, pair, &shared)?;
        println!("pair {}: a = {}, b = {}", pair.name, pair.a, pair.b);
        let collections = match pair_collections(&pair.collections, &storages.sides()) {
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
            println!("  {}", display_name(&pair.name, &c.name));
            println!("    a: {}", side(&c.a_name, &c.a));
            println!("    b: {}", side(&c.b_name, &c.b));
        }
    }
    if clean {
        Ok(())
    } else {
        Err(CliError::Unsynced)
    }
}
