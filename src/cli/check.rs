//! `davsync check`: validate the config, open every storage of the named pairs and say what
//! each looks like and what to fix. Writes nothing.

use std::collections::BTreeMap;
use std::time::SystemTime;

use clap::Args;
use davsync::check::{self, Severity, StorageCheck, Usage};
use davsync::config::{CollectionsSpec, ProcessEnv};
use davsync::storage::{self, ListingMethod};

use super::json::{self, CheckDoc, CheckStorage, Exit};
use super::{Cli, CliError, complete, exists, load_config, select_pairs, status_db_path};

/// Check the config, the connections and the collections of pairs, writing nothing
///
/// For each storage of the named pairs (all pairs when none is named): what discovery found
/// (home set, collections with their item counts), the listing method each DAV collection
/// will use and why, the authentication scheme (never the secret), TLS settings, and each
/// problem with the fix to try. No status database is created and no token file written: a
/// Google storage whose access token would need a refresh is reported and not contacted.
///
/// Output on stdout, per storage: "storage NAME (TYPE, pair PAIR): ok" (or PROBLEMS), then
/// indented lines "at:", "auth:", "tls:", "home set:", "collection NAME (WHERE): N items" with
/// "listing: METHOD (WHY)" below it, "quirk: ..." for each way the server departs from what
/// davsync assumes first (weak ETags, a Google account's limits) and what davsync does about
/// it, "note: ..." and "problem: ..." each with "fix: ..." below it; "all is well" at the end
/// when nothing is wrong. With --json stdout holds one JSON
/// document and these lines go to stderr.
///
/// Exit status: 0 when all is well, 1 when something is wrong, 2 for config errors.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Pairs to check (all when none is named)
    #[arg(value_name = "PAIR", add = complete::pairs())]
    pairs: Vec<String>,
    /// Print one JSON document on stdout (schema davsync/check/1, docs/schema/check.json):
    /// what the text shows, per storage, as data; the text for people goes to stderr
    #[arg(long)]
    json: bool,
}

pub fn cmd_check(cli: &Cli, args: &CheckArgs) -> Result<(), CliError> {
    if !args.json {
        return check(cli, args, None);
    }
    let mut doc = CheckDoc::new();
    let result = check(cli, args, Some(&mut doc));
    doc.exit = Some(Exit::of(&result));
    json::print(&doc)?;
    result
}

fn check(cli: &Cli, args: &CheckArgs, mut doc: Option<&mut CheckDoc>) -> Result<(), CliError> {
    let json = doc.is_some();
    let config = load_config(cli)?;
    let mut used: BTreeMap<&str, (Usage, Vec<&str>)> = BTreeMap::new();
    for (pair, _) in select_pairs(&config, &args.pairs)? {
        let synced_before = exists(&status_db_path(&config, &pair.name));
        let all_collections = pair.collections != CollectionsSpec::Root;
        for name in [&pair.a, &pair.b] {
            let (usage, pairs) = used.entry(name.as_str()).or_insert((
                Usage {
                    all_collections: false,
                    synced_before: false,
                },
                Vec::new(),
            ));
            usage.all_collections |= all_collections;
            usage.synced_before |= synced_before;
            pairs.push(pair.name.as_str());
        }
    }
    let shared = storage::Shared::new(
        davsync::http::ConnectionLimit::new(config.max_connections),
        None,
    );
    let now = SystemTime::now();
    let mut problems = 0;
    for (name, (usage, pairs)) in &used {
        let Some(storage) = config.storages.get(*name) else {
            return Err(CliError::Usage(format!("no storage named {name:?}")));
        };
        let report = check::check_storage(name, storage, &ProcessEnv, &shared, *usage, now);
        print_report(&report, pairs, json);
        if let Some(doc) = doc.as_deref_mut() {
            doc.storages.push(CheckStorage::new(&report, pairs));
        }
        problems += report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Problem)
            .count();
    }
    if let Some(doc) = doc {
        doc.problems = problems as u64;
    }
    if problems == 0 {
        say!(json, "all is well");
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "check found {problems} problem{}",
            if problems == 1 { "" } else { "s" }
        )))
    }
}

fn print_report(report: &StorageCheck, pairs: &[&str], json: bool) {
    say!(
        json,
        "storage {} ({}, pair{} {}): {}",
        report.name,
        report.type_name,
        if pairs.len() == 1 { "" } else { "s" },
        pairs.join(", "),
        if report.has_problems() {
            "PROBLEMS"
        } else {
            "ok"
        }
    );
    say!(json, "  at: {}", report.location);
    if let Some(auth) = &report.auth {
        say!(json, "  auth: {auth}");
    }
    if let Some(tls) = &report.tls {
        say!(
            json,
            "  tls: certificate checked against {}; {}",
            tls.verify,
            match &tls.pinned {
                Some(fingerprint) => format!("pinned to {fingerprint}"),
                None => "not pinned".to_owned(),
            }
        );
        match &tls.session {
            Ok(session) => {
                say!(
                    json,
                    "  tls: {}, certificate {}, expires {}",
                    session.protocol,
                    session.subject.as_deref().map_or_else(
                        || "without a common name".to_owned(),
                        |cn| format!("CN={cn}")
                    ),
                    session.not_after.as_deref().unwrap_or("(not readable)")
                );
                say!(json, "  tls: fingerprint sha256:{}", session.fingerprint);
            }
            Err(e) => say!(json, "  tls: handshake details not available: {e}"),
        }
    }
    if let Some(home) = &report.home_set {
        say!(json, "  home set: {home}");
    }
    for c in &report.collections {
        let label = if c.name.is_empty() {
            c.id.clone()
        } else {
            format!("{} ({})", c.name, c.id)
        };
        let items = match c.items {
            Some(n) if c.unreadable > 0 => format!("{n} items, {} unreadable", c.unreadable),
            Some(n) => format!("{n} items"),
            None => "not listed".to_owned(),
        };
        say!(json, "  collection {label}: {items}");
        if let Some(plan) = &c.listing {
            let method = match plan.method {
                ListingMethod::SyncCollection => "sync-collection",
                ListingMethod::Ctag => "ctag, then a full listing",
                ListingMethod::Full => "full listing",
            };
            say!(json, "    listing: {method} ({})", plan.why);
        }
    }
    for quirk in &report.quirks {
        say!(json, "  quirk: {quirk}");
    }
    for finding in &report.findings {
        let tag = match finding.severity {
            Severity::Note => "note",
            Severity::Problem => "problem",
        };
        say!(json, "  {tag}: {}", finding.what);
        if let Some(fix) = &finding.fix {
            say!(json, "    fix: {fix}");
        }
    }
}
