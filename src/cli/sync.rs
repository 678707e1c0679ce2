//! `davsync sync`: sync pairs.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use davsync::config::SyncMode;
use davsync::filter::DateBound;
use davsync::hook;
use davsync::model::Side;
use davsync::plan::Action;
use davsync::plan::mirroring_side;
use davsync::storage;
use davsync::sync::{
    CollectionReport, Progress, SyncOptions, discover_with_hints, known_as, never_written,
    settle_gone, sync_collection,
};

use super::complete;
use super::interrupt::{self, INTERRUPTED};
use super::json::{self, CollectionRecorder, Exit, GoneView, SyncDoc, SyncPair};
use super::progress::{Bars, show_progress};
use super::{
    Cli, CliError, PairStorages, Selection, Verbosity, display_name, load_config, open_status,
    select_pairs,
};
use davsync::config::{Config, PairConfig};

/// Sync pairs (all pairs when none is named)
///
/// Output on stdout, one summary line per collection where something happened:
/// "PAIR/COLLECTION: N created, N updated, N deleted, N conflicts, N errors" (the collection is
/// left out for a pair of two single collections; with --dry-run "would be: " comes before the
/// counts; a date window adds how many items it left alone, a one-way pair what it undid on the
/// target). A pair where nothing happened prints one line, "PAIR: all N collections in sync"
/// (or "PAIR/COLLECTION: in sync"); -v prints every collection's line. --dry-run prints each
/// planned action first, -v each action applied, as "PAIR/COLLECTION: ACTION"; -q prints no
/// summary lines; with --json stdout holds one JSON document and these lines go to stderr. Problems go to stderr, one line each: "conflict: PAIR/COLLECTION: UID: WHY",
/// "error: PAIR/COLLECTION: WHY" (a collection refused as a whole: "error: PAIR/COLLECTION: not
/// synced: WHY"), "note: PAIR/COLLECTION: ..." and "interrupted: ...".
///
/// Pairs that share no server and no local path run at the same time (up to 4 groups at once,
/// with at most max_connections HTTP requests in flight in all), and their lines may
/// interleave; pairs that share one run one after another in config order.
///
/// Exit status: 0 when everything synced; 1 when something needs a person (an item, conflict or
/// collection left unsynced, a failing hook, an unusable status database); 75 when a server
/// could only not be reached or a pair was locked by another davsync (try again later; 1 when
/// both happen); 2 for usage or config errors (also a PAIR/COLLECTION found on neither side,
/// after the other pairs synced); 130 or 143 when stopped by SIGINT or SIGTERM.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Pairs to sync, as PAIR or PAIR/COLLECTION
    #[arg(value_name = "PAIR[/COLLECTION]", add = complete::pairs_and_collections())]
    pairs: Vec<String>,
    /// Print what would be done, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Also sync PAIR[/COLLECTION], propagating deletions from a side that lists no items at
    /// all (or forgetting the items when both sides list none); applies to the named pairs or
    /// collections only, repeat it for each
    #[arg(long, value_name = "PAIR[/COLLECTION]", add = complete::pairs_and_collections())]
    force_delete: Vec<String>,
    /// Print one JSON document on stdout (schema davsync/sync/1, docs/schema/sync.json): per
    /// pair and collection the counts, every action with its source and target, conflicts,
    /// errors, refusals, and the exit status; what is printed for people goes to stderr
    #[arg(long)]
    json: bool,
}

pub fn cmd_sync(cli: &Cli, args: &SyncArgs, verbosity: Verbosity) -> Result<(), CliError> {
    if !args.json {
        return sync_pairs(cli, args, verbosity, None);
    }
    let mut doc = SyncDoc::new(args.dry_run);
    let result = sync_pairs(cli, args, verbosity, Some(&mut doc));
    doc.exit = Some(Exit::of(&result));
    json::print(&doc)?;
    result
}

fn sync_pairs(
    cli: &Cli,
    args: &SyncArgs,
    verbosity: Verbosity,
    mut doc: Option<&mut SyncDoc>,
) -> Result<(), CliError> {
    let json = doc.is_some();
    let config = load_config(cli)?;
    interrupt::install()
        .map_err(|e| CliError::Failed(format!("cannot install the signal handler: {e}")))?;
    let now = run_time()?;
    // Storages of different pairs share what they can, such as one HTTP client per server.
    let shared = storage::Shared::new(
        davsync::http::ConnectionLimit::new(config.max_connections),
        Some(&INTERRUPTED),
    );
    // What was left unsynced: needing a person (exit 1) or only a later run (exit 75).
    let mut clean = true;
    let mut retry_later = false;
    let mut bars = Bars::new(show_progress(
        std::io::stderr().is_terminal(),
        verbosity == Verbosity::Quiet,
        json,
        cli.verbose >= 2,
    ));
    // Named collections found on neither side: a usage error (exit 2), reported once the
    // pairs that could sync have synced.
    let mut unknown = Vec::new();
    // After SIGINT/SIGTERM: the collections and pairs not started, named in the message.
    let mut not_started = Vec::new();
    // `--force-delete X` names X to sync as well: `sync --force-delete X` syncs X alone, as
    // `sync X` would, and `sync Y --force-delete X` syncs both, forcing X only.
    let named: Vec<String> = args
        .pairs
        .iter()
        .chain(&args.force_delete)
        .cloned()
        .collect();
    // (select_pairs takes no names for all pairs; no `--force-delete` forces nothing.)
    let forced = match args.force_delete.as_slice() {
        [] => Vec::new(),
        names => select_pairs(&config, names)?,
    };
    let is_forced = |pair: &str, collection: &str| {
        forced
            .iter()
            .any(|(p, selection)| p.name == pair && selection.includes(collection))
    };
    let run = PairRun {
        dry_run: args.dry_run,
        now,
        verbosity,
        forced: &is_forced,
        say_in_sync: true,
    };
    let selected = select_pairs(&config, &named)?;
    // Pairs sharing a server or a local path run one after another, in one group.
    let groups = davsync::groups::pair_groups(&config, selected.iter().map(|(pair, _)| *pair));
    let ctx = GroupRun {
        config: &config,
        selected: &selected,
        shared: &shared,
        run: &run,
        json,
    };
    // One group runs here, drawing bars; several run on threads, whose bars would draw over
    // each other, so they draw none.
    let mut results = if let [group] = groups.as_slice() {
        ctx.sync_group(group, &mut bars)
    } else {
        sync_groups(&ctx, &groups)
    };
    // Reported in the order the pairs were selected, whichever finished first.
    results.sort_by_key(|(index, _)| *index);
    for (index, result) in results {
        let (view, outcome) = match result {
            PairResult::NotStarted => {
                not_started.push(selected[index].0.name.clone());
                continue;
            }
            PairResult::Ran(ran) => (ran.0, ran.1?),
        };
        if let (Some(doc), Some(view)) = (doc.as_deref_mut(), view) {
            doc.pairs.push(view);
        }
        // Left unsynced: for a person (exit 1), or only for a later run (exit 75).
        match (outcome.summary.clean, outcome.needs_person) {
            (true, _) => {}
            (false, true) => clean = false,
            (false, false) => retry_later = true,
        }
        unknown.extend(outcome.unknown);
        not_started.extend(outcome.not_started);
    }
    if let Some(doc) = doc {
        doc.unknown.clone_from(&unknown);
        doc.not_started.clone_from(&not_started);
    }
    if let Some(signal) = interrupt::received() {
        if !not_started.is_empty() {
            eprintln!("interrupted: not started: {}", not_started.join(", "));
        }
        Err(CliError::Interrupted(signal))
    } else if !unknown.is_empty() {
        Err(CliError::Usage(unknown.join("; ")))
    } else if !clean {
        Err(CliError::Unsynced)
    } else if retry_later {
        Err(CliError::RetryLater(
            "a server could not be reached or a pair was locked; nothing needs a person, the \
             next run tries again"
                .to_owned(),
        ))
    } else {
        Ok(())
    }
}

/// How many groups of pairs sync at once. Each group talks to its own servers with their own
/// per-server request limits; all of them together stay under `max_connections` (the
/// `ConnectionLimit` every client of the run's `storage::Shared` counts against).
const PARALLEL_GROUPS: usize = 4;

/// What became of one selected pair: not started (SIGINT/SIGTERM came first, or an earlier
/// pair of its group ended the run with an error), or synced, with its part of the JSON
/// document when one is written.
enum PairResult {
    NotStarted,
    Ran(Box<(Option<SyncPair>, Result<PairOutcome, CliError>)>),
}

/// What every group of a `davsync sync` run shares.
struct GroupRun<'r> {
    config: &'r Config,
    selected: &'r [(&'r PairConfig, Selection)],
    shared: &'r storage::Shared,
    run: &'r PairRun<'r>,
    json: bool,
}

impl GroupRun<'_> {
    /// Syncs the pairs of `group` one after another; after SIGINT/SIGTERM the rest are not
    /// started, and after an error that stops the run neither are they.
    fn sync_group(&self, group: &[usize], bars: &mut Bars) -> Vec<(usize, PairResult)> {
        let mut results = Vec::new();
        let mut failed = false;
        for &index in group {
            let (pair, only) = &self.selected[index];
            if interrupt::received().is_some() || failed {
                results.push((index, PairResult::NotStarted));
                continue;
            }
            let mut view = self.json.then(|| SyncPair::new(&pair.name));
            let outcome = sync_pair(
                self.config,
                pair,
                only,
                self.shared,
                self.run,
                view.as_mut(),
                bars,
            );
            failed = outcome.is_err();
            results.push((index, PairResult::Ran(Box::new((view, outcome)))));
        }
        results
    }
}

/// Syncs `groups` on up to [`PARALLEL_GROUPS`] threads, each taking the next group not yet
/// taken, without progress bars.
fn sync_groups(ctx: &GroupRun<'_>, groups: &[Vec<usize>]) -> Vec<(usize, PairResult)> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..groups.len().min(PARALLEL_GROUPS) {
            scope.spawn(|| {
                while let Some(group) = groups.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let done = ctx.sync_group(group, &mut Bars::new(false));
                    results
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .extend(done);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a run asks of every pair it syncs, beyond the config: shared by `davsync sync` and
/// `davsync daemon`.
pub(super) struct PairRun<'r> {
    /// `--dry-run`: plan and print, write nothing.
    pub dry_run: bool,
    /// The time of the run (unix seconds), for relative date windows.
    pub now: i64,
    /// How much to print.
    pub verbosity: Verbosity,
    /// Whether `--force-delete` names this pair and collection.
    pub forced: &'r (dyn Fn(&str, &str) -> bool + Sync),
    /// Whether a pair where nothing changed says so in one line (`davsync sync`: a timer's
    /// journal shows each run). The daemon says nothing then: it syncs again after each of
    /// its own writes and on every poll, and its `STATUS=` shows the last result.
    pub say_in_sync: bool,
}

/// What became of one pair in a run.
pub(super) struct PairOutcome {
    /// Counts of the pair's collections; `clean` is false when anything was left unsynced,
    /// including a pair that could not start.
    pub summary: hook::PairSummary,
    /// Whether what was left unsynced needs a person; false when it was only a server that
    /// could not be reached or a lock held by another davsync (a later run retries by itself).
    pub needs_person: bool,
    /// Named collections found on neither side (a usage error once every pair ran).
    pub unknown: Vec<String>,
    /// Collections not started because of SIGINT/SIGTERM.
    pub not_started: Vec<String>,
}

/// Syncs the collections of `pair` that `only` selects and prints what happened, recording it
/// in `view` when a JSON document is being written and drawing progress on `bars`. A pair that
/// cannot start (a secret command failing, a lock held by another davsync, discovery failing) is
/// reported and comes back unclean; only usage errors and status database failures are errors.
pub(super) fn sync_pair(
    config: &Config,
    pair: &PairConfig,
    only: &Selection,
    shared: &storage::Shared,
    run: &PairRun<'_>,
    mut view: Option<&mut SyncPair>,
    bars: &mut Bars,
) -> Result<PairOutcome, CliError> {
    let json = view.is_some();
    let mut outcome = PairOutcome {
        summary: hook::PairSummary::new(&pair.name),
        needs_person: false,
        unknown: Vec::new(),
        not_started: Vec::new(),
    };
    // A problem of the pair as a whole (`error: pair: message`), also in the JSON document.
    let pair_error = |view: &mut Option<&mut SyncPair>, message: String| {
        eprintln!("error: {}: {message}", pair.name);
        if let Some(view) = view.as_deref_mut() {
            view.errors.push(message);
        }
    };
    // The status database is opened before the storages, so that a storage that cannot be
    // opened (a password command that fails, say) is recorded as this pair's last attempt for
    // `status`. A pair locked by another run records nothing: that run records its own.
    let opened = match open_status(config, &pair.name, run.dry_run) {
        Ok(opened) => opened,
        Err(CliError::RetryLater(message)) => {
            pair_error(&mut view, message);
            outcome.summary.clean = false;
            return Ok(outcome);
        }
        Err(CliError::Failed(message)) => {
            pair_error(&mut view, message);
            outcome.summary.clean = false;
            outcome.needs_person = true;
            return Ok(outcome);
        }
        Err(e) => return Err(e),
    };
    let status = &opened.db;
    let storages = match PairStorages::open(config, pair, shared) {
        Ok(storages) => storages,
        // The message names the storage (and so the pair) already.
        Err(CliError::Failed(message)) => {
            eprintln!("error: {message}");
            if !run.dry_run {
                // `status` names the pair on its own line: the reason need not repeat it.
                let prefix = format!("pair {}: ", pair.name);
                let reason = message.strip_prefix(&prefix).unwrap_or(&message);
                status.record_pair_refusal(run.now, &format!("not synced: {reason}"))?;
            }
            if let Some(view) = view.as_deref_mut() {
                view.errors.push(message);
            }
            outcome.summary.clean = false;
            outcome.needs_person = true;
            return Ok(outcome);
        }
        Err(e) => return Err(e),
    };
    let sides = storages.sides();
    let mode = pair.mode;
    let read_only =
        [&pair.a, &pair.b].map(|name| config.storages.get(name).is_some_and(|s| s.read_only));
    let guard = never_written(mode, read_only);
    // A vdir directory that could not be created leaves the pair unclean, though its hook
    // hears only of the collections.
    let mut root_failed = false;
    // On the first sync of a pair a vdir directory that does not exist yet is created; once
    // the status knows items, a missing one is refused (an unmounted disk). A side never
    // written (read-only, or a one-way pair's source) is not created either.
    if !run.dry_run && status.collections()?.iter().all(|c| c.items == 0) {
        let writable = [sides.a, sides.b]
            .into_iter()
            .zip(&guard)
            .filter(|(_, why)| why.is_none());
        for (storage, _) in writable {
            match storage.create_root() {
                Ok(Some(created)) if run.verbosity >= Verbosity::Normal => {
                    say!(json, "{}: created {created} (did not exist yet)", pair.name)
                }
                Ok(_) => {}
                Err(e) => {
                    pair_error(&mut view, e.to_string());
                    root_failed = true;
                }
            }
        }
    }
    let collections = match discover_with_hints(&pair.collections, &sides, status)? {
        Ok(collections) => {
            // From here on each collection records its own attempt.
            if !run.dry_run {
                status.clear_pair_refusal()?;
            }
            collections
        }
        Err(e) => {
            pair_error(&mut view, e.to_string());
            outcome.summary.clean = false;
            outcome.needs_person = !e.is_temporary();
            // `status` shows it as the last attempt of each collection.
            if !run.dry_run {
                status.record_pair_refusal(run.now, &format!("not synced: {e}"))?;
            }
            return Ok(outcome);
        }
    };
    let named: &[String] = match only {
        Selection::All => &[],
        Selection::Only(names) => names,
    };
    for wanted in named {
        if !collections.iter().any(|c| &c.name == wanted) {
            outcome.unknown.push(format!(
                "{}: no collection named {wanted:?} on either side",
                pair.name
            ));
        }
    }
    let mut options = SyncOptions {
        force_delete: false,
        dry_run: run.dry_run,
        resolution: pair.conflict_resolution.clone(),
        now: run.now,
        metadata: pair.metadata.clone(),
        filters: [&pair.a, &pair.b].map(|name| {
            config
                .storages
                .get(name)
                .map(|storage| storage.filter.clone())
                .unwrap_or_default()
        }),
        interrupt: Some(&INTERRUPTED),
        mode,
        read_only,
    };
    // Collections synced before that are gone for good are reported once and forgotten.
    let gone = settle_gone(
        &pair.collections,
        &collections,
        status,
        &|name| only.includes(name),
        run.dry_run,
    )?;
    for g in &gone {
        let name = display_name(&pair.name, &g.name);
        let forgotten = if run.dry_run { "would be" } else { "is" };
        eprintln!(
            "note: {name}: {g}; no longer synced, its status {forgotten} forgotten, \
             what is left on either side is left alone"
        );
        if let Some(view) = view.as_deref_mut() {
            view.gone.push(GoneView::new(g, run.dry_run));
        }
    }
    let is_gone = |name: &str| gone.iter().any(|g| g.name == name);
    let verbosity = run.verbosity;
    // The collections synced, and the name of the last one: when none of them changed, the
    // pair gets one line instead of one per collection.
    let (mut synced, mut changed, mut last) = (0, 0, String::new());
    for collection in collections
        .iter()
        .filter(|c| only.includes(&c.name) && !is_gone(&c.name))
    {
        let name = display_name(&pair.name, &collection.name);
        if interrupt::received().is_some() {
            outcome.not_started.push(name);
            continue;
        }
        options.force_delete = (run.forced)(&pair.name, &collection.name);
        let mut recorder = json.then(CollectionRecorder::default);
        let resolution = &pair.conflict_resolution;
        let mut progress = |event: Progress<'_>| {
            if let Some(recorder) = &mut recorder {
                match event {
                    Progress::Planned(action) => {
                        recorder.action(collection, action, "planned", None, resolution)
                    }
                    Progress::Applied(action) => {
                        recorder.action(collection, action, "applied", None, resolution)
                    }
                    Progress::Failed(action, why) => {
                        recorder.action(collection, action, "failed", Some(why), resolution)
                    }
                    Progress::Open(action, _) => recorder.open(collection, action),
                    Progress::Property(_) | Progress::Count { .. } => {}
                }
            }
            // Lines printed while a bar is drawn go through `bars.suspend`, not over it.
            match event {
                Progress::Planned(action) => {
                    bars.suspend(|| say!(json, "{name}: {}", shown(action)))
                }
                Progress::Applied(action) if verbosity >= Verbosity::Verbose => {
                    bars.suspend(|| say!(json, "{name}: {}", shown(action)))
                }
                Progress::Applied(_) | Progress::Open(..) => {}
                Progress::Failed(action, why) if verbosity >= Verbosity::Verbose => {
                    bars.suspend(|| eprintln!("{name}: failed: {}: {why}", shown(action)))
                }
                Progress::Failed(..) => {}
                Progress::Property(what) if run.dry_run || verbosity >= Verbosity::Verbose => {
                    bars.suspend(|| say!(json, "{name}: {what}"))
                }
                Progress::Property(_) => {}
                Progress::Count { phase, done, total } => bars.count(&name, phase, done, total),
            }
        };
        let report = sync_collection(&sides, collection, status, &options, &mut progress)?;
        bars.finish();
        print_report(&name, &report, run.dry_run, mode, verbosity, json);
        if let (Some(recorder), Some(view)) = (recorder, view.as_deref_mut()) {
            view.collections
                .push(recorder.finish(name.clone(), &report));
        }
        outcome.summary.add(&report);
        outcome.needs_person |= report.needs_person();
        synced += 1;
        changed += usize::from(!report.is_unchanged());
        last = name;
    }
    if run.say_in_sync
        && verbosity == Verbosity::Normal
        && changed == 0
        && interrupt::received().is_none()
    {
        match synced {
            0 => {}
            1 => say!(json, "{last}: in sync"),
            n => say!(json, "{}: all {n} collections in sync", pair.name),
        }
    }
    // Not after an interrupted run: the user asked davsync to stop.
    if !run.dry_run
        && interrupt::received().is_none()
        && let Err(failure) = hook::post_sync(&pair.post_sync, &outcome.summary)
    {
        pair_error(&mut view, failure.to_string());
        outcome.summary.clean = false;
        outcome.needs_person = true;
    }
    outcome.summary.clean &= !root_failed;
    outcome.needs_person |= root_failed;
    Ok(outcome)
}

/// Environment variable, for tests only, that sets the day of the run (`YYYY-MM-DD`, UTC) so
/// that relative `start_date`/`end_date` bounds can be tested as time passes.
const TEST_TODAY: &str = "DAVSYNC_TEST_TODAY";

/// The time of the run (unix seconds): now, or noon of the day `DAVSYNC_TEST_TODAY` names.
pub(super) fn run_time() -> Result<i64, CliError> {
    if let Some(day) = std::env::var_os(TEST_TODAY) {
        let day = day.to_string_lossy();
        return match day.parse::<DateBound>() {
            Ok(DateBound::Absolute(date)) => Ok(date.days_since_epoch() * 86_400 + 43_200),
            _ => Err(CliError::Usage(format!(
                "{TEST_TODAY}={day}: expected a date such as 2026-01-31"
            ))),
        };
    }
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
}

/// An action as printed: an item without a UID is named by its file or href, not by the content
/// hash that stands in for its UID.
pub(super) fn shown(action: &Action) -> String {
    let text = action.to_string();
    match known_as(action) {
        Cow::Borrowed(_) => text,
        Cow::Owned(name) => text.replacen(action.ident(), &name, 1),
    }
}

fn print_report(
    name: &str,
    report: &CollectionReport,
    dry_run: bool,
    mode: SyncMode,
    verbosity: Verbosity,
    json: bool,
) {
    if let Some(reason) = &report.refused {
        eprintln!("error: {name}: not synced: {reason}");
        return;
    }
    for note in &report.notes {
        eprintln!("note: {name}: {note}");
    }
    for conflict in &report.conflicts {
        eprintln!("conflict: {name}: {}: {}", conflict.ident, conflict.message);
    }
    for error in &report.errors {
        eprintln!("error: {name}: {}", error.message);
    }
    if let Some(left) = report.interrupted {
        eprintln!(
            "interrupted: {name}: {left} actions not done (the writes under way were finished \
             and recorded)"
        );
    }
    // A collection where nothing happened says so only when asked (`-v`): a timer's journal
    // gets the pair's one line instead (see `cmd_sync`).
    let wanted = verbosity >= Verbosity::Verbose
        || (verbosity == Verbosity::Normal && !report.is_unchanged());
    if wanted {
        let out_of_scope = match report.out_of_scope {
            0 => String::new(),
            n => format!("; {n} outside the date window, left alone"),
        };
        let collection_created = match report.collection_created.as_slice() {
            [] => String::new(),
            [side] => format!("; collection created on {side}"),
            _ => "; collection created on a and b".to_owned(),
        };
        say!(
            json,
            "{name}: {}{} created, {} updated, {} deleted, {} conflicts, {} errors{}{out_of_scope}\
             {collection_created}",
            if dry_run { "would be: " } else { "" },
            report.created,
            report.updated,
            report.deleted,
            report.conflicts.len(),
            report.errors.len(),
            mirror_summary(report, mode)
        );
    }
}

/// In a one-way pair where the run undid something on the target, what the summary adds: how
/// many of the target's own changes were undone and how many of its items the source does not
/// have were deleted. A run that undid nothing adds nothing.
fn mirror_summary(report: &CollectionReport, mode: SyncMode) -> String {
    let Some(target) = mirroring_side(mode) else {
        return String::new();
    };
    if report.mirror_overwritten == 0 && report.mirror_deleted == 0 {
        return String::new();
    }
    let source: Side = target.other();
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    format!(
        "; {target} mirrors {source}: {} own change{} on {target} overwritten, {} item{} on \
         {target} that {source} does not have deleted",
        report.mirror_overwritten,
        plural(report.mirror_overwritten),
        report.mirror_deleted,
        plural(report.mirror_deleted)
    )
}
