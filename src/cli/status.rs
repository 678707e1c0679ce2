//! `davsync status`: what the status database remembers about pairs.

use clap::Args;
use davsync::status::{Problem, StatusDb};

use super::json::{self, Exit, StatusDoc, StatusPair};
use super::{
    Cli, CliError, complete, display_name, exists, load_config, select_pairs, status_db_path,
};

/// Show collections, item counts, last clean sync, last attempt, open conflicts and failed items
///
/// Reads the status databases only: no server is contacted. Output, per collection of each
/// pair (all pairs when none is named):
///
///   PAIR/COLLECTION: N items, last clean sync TIME, N open conflicts, N failed items
///
/// where TIME is YYYY-MM-DD HH:MM:SS UTC, or "never" when no run of the collection has been
/// free of conflicts and failures. When the last attempt was not clean, an indented line "last
/// attempt TIME: OUTCOME" follows (its first failure, or the number of conflicts it left open),
/// then an indented "conflict: UID: WHY" line per open conflict and "failed: ITEM: WHY" line per
/// failed item. A pair that has never synced is "PAIR: never synced"; one whose runs never got
/// to a collection (a storage that could not be opened, a password command that failed) is
/// "PAIR: no collection synced yet" and its last attempt. With --json stdout holds
/// one JSON document (last_sync: the last attempt; last_clean: the last clean sync) and these
/// lines go to stderr.
///
/// Exit status: 0 when every shown collection is in sync; 1 when a conflict is open or the last
/// attempt of a collection or pair failed (a refused item, a server that could not be reached,
/// an interrupted run); 2 for usage or config errors.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Pairs to show (all when none is named)
    #[arg(value_name = "PAIR", add = complete::pairs())]
    pairs: Vec<String>,
    /// Print one JSON document on stdout (schema davsync/status/1, docs/schema/status.json):
    /// per pair and collection the items, the last sync, open conflicts and failed items; the
    /// text for people goes to stderr
    #[arg(long)]
    json: bool,
}

pub fn cmd_status(cli: &Cli, args: &StatusArgs) -> Result<(), CliError> {
    if !args.json {
        return show_status(cli, args, None);
    }
    let mut doc = StatusDoc::new();
    let result = show_status(cli, args, Some(&mut doc));
    doc.exit = Some(Exit::of(&result));
    json::print(&doc)?;
    result
}

fn show_status(
    cli: &Cli,
    args: &StatusArgs,
    mut doc: Option<&mut StatusDoc>,
) -> Result<(), CliError> {
    let json = doc.is_some();
    let config = load_config(cli)?;
    let mut troubled = false;
    for (pair, _) in select_pairs(&config, &args.pairs)? {
        let path = status_db_path(&config, &pair.name);
        if !exists(&path) {
            say!(json, "{}: never synced", pair.name);
            if let Some(doc) = doc.as_deref_mut() {
                doc.pairs
                    .push(StatusPair::new(&pair.name, None, None, format_utc));
            }
            continue;
        }
        let db = StatusDb::open(&path)?;
        let collections = db.collections()?;
        // A run refused before it got to any collection (a password command that failed, say)
        // is the pair's only attempt when no collection is known; known ones show it anyway.
        let refused = match collections.is_empty() {
            true => db.pair_refusal()?,
            false => None,
        };
        if let Some(doc) = doc.as_deref_mut() {
            doc.pairs.push(StatusPair::new(
                &pair.name,
                Some(&collections),
                refused.as_ref(),
                format_utc,
            ));
        }
        if let Some(refused) = &refused {
            say!(json, "{}: no collection synced yet", pair.name);
            say!(
                json,
                "  last attempt {}: failed: {}",
                format_utc(refused.finished_at),
                refused.reason
            );
            troubled = true;
        }
        for c in collections {
            let name = display_name(&pair.name, &c.name);
            let last = c.last_clean.map_or("never".to_owned(), format_utc);
            say!(
                json,
                "{name}: {} items, last clean sync {last}, {} open conflicts, {} failed items",
                c.items,
                c.conflicts.len(),
                c.failures.len()
            );
            // The last attempt, when it was not clean: its time and outcome.
            let unclean = !c.conflicts.is_empty() || !c.failures.is_empty();
            if let Some(attempt) = c.last_sync.filter(|_| unclean) {
                let outcome = match (c.failures.first(), c.conflicts.len()) {
                    (Some(p), _) => failed(p),
                    (None, n) => format!("{n} conflicts left open"),
                };
                say!(json, "  last attempt {}: {outcome}", format_utc(attempt));
            }
            troubled |= unclean;
            for p in &c.conflicts {
                say!(json, "  conflict: {}: {}", p.ident, p.message);
            }
            for p in &c.failures {
                say!(json, "  {}", failed(p));
            }
        }
    }
    match troubled {
        true => Err(CliError::Failed(
            "a conflict is open or the last run failed".to_owned(),
        )),
        false => Ok(()),
    }
}

/// `failed: ITEM: WHY`; a problem of the whole run (refused, interrupted, writes not durable)
/// names no item: `failed: WHY`.
fn failed(p: &Problem) -> String {
    if p.ident.is_empty() {
        format!("failed: {}", p.message)
    } else {
        format!("failed: {}: {}", p.ident, p.message)
    }
}

/// Formats unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (civil-from-days, proleptic Gregorian).
fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn formats_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_795_469_285), "2026-11-23 21:28:05 UTC");
        assert_eq!(format_utc(951_825_600), "2000-02-29 12:00:00 UTC");
    }
}
