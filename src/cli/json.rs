//! `--json` output: the documents `sync`, `status`, `discover` and `check` print on stdout,
//! as small view structs over the library's reports (so those stay free to change) and the
//! code that writes them. Each document names its schema (`"schema": "davsync/<command>/1"`),
//! described by `docs/schema/<command>.json` (JSON Schema 2020-12); the number changes when a
//! member is removed or changes its meaning, not when one is added.

use std::collections::BTreeMap;

use davsync::check::{Severity, StorageCheck};
use davsync::config::ConflictResolution;
use davsync::model::{ItemVersion, Side};
use davsync::pairing::CollectionPair;
use davsync::plan::Action;
use davsync::status::{CollectionStatus, PairRefusal, Problem};
use davsync::storage::{CollectionInfo, ListingMethod};
use davsync::sync::{CollectionReport, GoneCollection, item_location, known_as};
use serde::Serialize;

use super::CliError;

/// Writes `doc` to stdout as one JSON document and a newline.
pub fn print<T: Serialize>(doc: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(doc)
        .map_err(|e| CliError::Failed(format!("cannot write the JSON output: {e}")))?;
    println!("{text}");
    Ok(())
}

/// How the command ended, as its exit status says it (the `exit` member of every document).
#[derive(Debug, Serialize)]
pub struct Exit {
    /// The process exit status.
    code: u8,
    /// What it means: `ok`, `unsynced` (something needs a person), `failed` (the run could
    /// not do its job), `usage` (arguments or config), `interrupted`.
    status: &'static str,
    /// The closing message davsync prints on stderr, if any.
    message: Option<String>,
}

impl Exit {
    /// The exit of a command that returned `result`.
    pub fn of(result: &Result<(), CliError>) -> Exit {
        match result {
            Ok(()) => Exit {
                code: 0,
                status: "ok",
                message: None,
            },
            Err(e) => Exit {
                code: e.exit_code(),
                status: e.kind(),
                message: Some(e.to_string()),
            },
        }
    }
}

/// Serializes a side as `"a"` or `"b"`.
fn side_name(side: Side) -> &'static str {
    side.letter()
}

// ---------------------------------------------------------------------------------------------
// sync
// ---------------------------------------------------------------------------------------------

/// `davsync sync --json`.
#[derive(Debug, Serialize)]
pub struct SyncDoc {
    schema: &'static str,
    /// `--dry-run`: actions are planned, not applied.
    pub dry_run: bool,
    /// One entry per pair the run looked at.
    pub pairs: Vec<SyncPair>,
    /// Collections named on the command line that neither side has (exit 2).
    pub unknown: Vec<String>,
    /// After SIGINT/SIGTERM: the pairs and collections not started.
    pub not_started: Vec<String>,
    /// How the run ended.
    pub exit: Option<Exit>,
}

impl SyncDoc {
    /// An empty document for a run.
    pub fn new(dry_run: bool) -> SyncDoc {
        SyncDoc {
            schema: "davsync/sync/1",
            dry_run,
            pairs: Vec::new(),
            unknown: Vec::new(),
            not_started: Vec::new(),
            exit: None,
        }
    }
}

/// One pair of a sync run.
#[derive(Debug, Serialize)]
pub struct SyncPair {
    /// The pair's name.
    pub name: String,
    /// Problems of the pair as a whole (cannot open a storage or the status, discovery
    /// failed, a failing `post_sync`).
    pub errors: Vec<String>,
    /// The collections synced (or refused).
    pub collections: Vec<SyncCollection>,
    /// Collections synced before and now gone for good: reported once and forgotten.
    pub gone: Vec<GoneView>,
}

impl SyncPair {
    /// A pair with nothing reported yet.
    pub fn new(name: &str) -> SyncPair {
        SyncPair {
            name: name.to_owned(),
            errors: Vec::new(),
            collections: Vec::new(),
            gone: Vec::new(),
        }
    }
}

/// A collection gone for good.
#[derive(Debug, Serialize)]
pub struct GoneView {
    name: String,
    /// The sides it disappeared from; empty when the pair's explicit list no longer names it.
    gone_from: Vec<&'static str>,
    /// Where it was on each side when last synced.
    was: BySide<Option<String>>,
    /// Items the status knew of it.
    items: u64,
    /// Whether its status was dropped (not in a dry run).
    forgotten: bool,
    /// The same, for people.
    message: String,
}

impl GoneView {
    /// The view of `gone`; `dry_run` forgets nothing.
    pub fn new(gone: &GoneCollection, dry_run: bool) -> GoneView {
        let [a, b] = gone.was.clone();
        GoneView {
            name: gone.name.clone(),
            gone_from: gone.gone_from.iter().map(|s| side_name(*s)).collect(),
            was: BySide { a, b },
            items: gone.items,
            forgotten: !dry_run,
            message: gone.to_string(),
        }
    }
}

/// A value for side a and one for side b.
#[derive(Debug, Default, Serialize)]
struct BySide<T> {
    a: T,
    b: T,
}

/// Items written to one side.
#[derive(Debug, Default, Serialize)]
struct SideCounts {
    created: u64,
    updated: u64,
    deleted: u64,
}

/// The counts of one collection.
#[derive(Debug, Serialize)]
struct Counts {
    /// Items created on either side (restores included).
    created: u64,
    /// Items overwritten on either side (resolved conflicts included).
    updated: u64,
    /// Items deleted on either side.
    deleted: u64,
    /// Conflicts left open.
    conflicts: u64,
    /// Items that could not be synced.
    errors: u64,
    /// Items left alone because a date window leaves them out.
    out_of_scope: u64,
    /// One-way pair: the target's own changes undone, its own items deleted.
    mirror_overwritten: u64,
    mirror_deleted: u64,
    /// Per side written to (a conflict settled by a merge command counts in `updated` only:
    /// the command may write either side or both).
    by_side: BySide<SideCounts>,
}

/// One collection of a sync run.
#[derive(Debug, Serialize)]
pub struct SyncCollection {
    /// Pair-level name (empty for a pair without `collections`).
    name: String,
    /// As messages name it: `pair/collection`, or the pair.
    display: String,
    /// Everything in sync (no conflict, error, refusal or interruption).
    clean: bool,
    /// Something was (or, in a dry run, would be) written or left for a person.
    changed: bool,
    /// The collection's address on each side, where it exists.
    location: BySide<Option<String>>,
    /// Sides the collection was created on (it existed only on the other).
    collection_created: Vec<&'static str>,
    counts: Counts,
    /// Why the whole collection was not synced.
    refused: Option<String>,
    /// Interrupted: the number of actions not done.
    interrupted: Option<u64>,
    notes: Vec<String>,
    /// Every action with storage writes: applied, planned (dry run) or failed.
    actions: Vec<ActionView>,
    conflicts: Vec<ConflictView>,
    errors: Vec<ProblemView>,
}

/// Where an item is on one side.
#[derive(Debug, Clone, Serialize)]
struct ItemPlace {
    side: &'static str,
    /// The storage's name for it (file name, href).
    href: String,
    /// Full path or URL, when the collection's address is known.
    location: Option<String>,
}

/// One action.
#[derive(Debug, Serialize)]
struct ActionView {
    /// `create`, `update`, `restore`, `delete`, `conflict` or `skip`.
    kind: &'static str,
    /// The item's UID, or its file or href marked `(no UID)`.
    ident: String,
    /// `applied`, `planned` (dry run) or `failed`.
    outcome: &'static str,
    /// The side written to, where one side is (a merged conflict may write both: null).
    to: Option<&'static str>,
    /// Undoes something the target of a one-way pair did.
    mirror: bool,
    /// The version copied.
    source: Option<ItemPlace>,
    /// The version overwritten or deleted.
    target: Option<ItemPlace>,
    /// Why it failed.
    message: Option<String>,
    /// The action as `-v` prints it (an item without a UID named by its file or href).
    description: String,
}

/// An open conflict.
#[derive(Debug, Serialize)]
struct ConflictView {
    ident: String,
    message: String,
    /// The item on side a and side b (null for a collection property's conflict).
    a: Option<ItemPlace>,
    b: Option<ItemPlace>,
}

/// An item (or a problem of the collection, with an empty ident) that could not be synced.
#[derive(Debug, Serialize)]
pub struct ProblemView {
    ident: String,
    message: String,
}

impl From<&Problem> for ProblemView {
    fn from(p: &Problem) -> Self {
        ProblemView {
            ident: p.ident.clone(),
            message: p.message.clone(),
        }
    }
}

/// Where `version` is on `side` of the collection `pair`.
fn place(pair: &CollectionPair, side: Side, version: &ItemVersion) -> ItemPlace {
    let collection: &Option<CollectionInfo> = [&pair.a, &pair.b][side.index()];
    ItemPlace {
        side: side_name(side),
        href: version.href.clone(),
        location: collection.as_ref().map(|c| item_location(c, &version.href)),
    }
}

/// Collects the actions of one collection as the sync reports them, then builds its view.
#[derive(Debug, Default)]
pub struct CollectionRecorder {
    actions: Vec<ActionView>,
    /// The places of open conflicts by ident as reported, for their views.
    conflicts: BTreeMap<String, [ItemPlace; 2]>,
    by_side: BySide<SideCounts>,
}

impl CollectionRecorder {
    /// Records an action that was applied (`planned` in a dry run), or failed with `failed`.
    pub fn action(
        &mut self,
        pair: &CollectionPair,
        action: &Action,
        outcome: &'static str,
        failed: Option<&str>,
        resolution: &ConflictResolution,
    ) {
        let (kind, to, source, target, mirror) = match action {
            Action::Create { from, source, .. } => (
                "create",
                Some(from.other()),
                Some(place(pair, *from, source)),
                None,
                false,
            ),
            Action::Update {
                from,
                source,
                target,
                mirror,
                ..
            } => (
                "update",
                Some(from.other()),
                Some(place(pair, *from, source)),
                Some(place(pair, from.other(), target)),
                *mirror,
            ),
            Action::Restore {
                from,
                source,
                mirror,
                ..
            } => (
                "restore",
                Some(from.other()),
                Some(place(pair, *from, source)),
                None,
                *mirror,
            ),
            Action::Delete {
                on, target, mirror, ..
            } => (
                "delete",
                Some(*on),
                None,
                Some(place(pair, *on, target)),
                *mirror,
            ),
            Action::Conflict { a, b, .. } => {
                let to = match resolution {
                    // Left open, nothing written (a dry run plans it as an action): listed
                    // with the conflicts.
                    ConflictResolution::Report => return self.open(pair, action),
                    ConflictResolution::AWins => Some(Side::B),
                    ConflictResolution::BWins => Some(Side::A),
                    ConflictResolution::Command(_) => None,
                };
                let (pa, pb) = (place(pair, Side::A, a), place(pair, Side::B, b));
                let (source, target) = match to {
                    Some(Side::A) => (Some(pb), Some(pa)),
                    Some(Side::B) => (Some(pa), Some(pb)),
                    None => (Some(pa), Some(pb)),
                };
                ("conflict", to, source, target, false)
            }
            Action::Skip { .. } => ("skip", None, None, None, false),
            // Status-only actions write nothing to a storage.
            Action::Record { .. } | Action::Forget { .. } => return,
        };
        if failed.is_none()
            && let Some(side) = to
        {
            let counts = match side {
                Side::A => &mut self.by_side.a,
                Side::B => &mut self.by_side.b,
            };
            match kind {
                "create" | "restore" => counts.created += 1,
                "update" | "conflict" => counts.updated += 1,
                "delete" => counts.deleted += 1,
                _ => {}
            }
        }
        self.actions.push(ActionView {
            kind,
            ident: known_as(action).into_owned(),
            outcome,
            to: to.map(side_name),
            mirror,
            source,
            target,
            message: failed.map(str::to_owned),
            description: super::sync::shown(action),
        });
    }

    /// Records where a conflict left open is, for its view.
    pub fn open(&mut self, pair: &CollectionPair, action: &Action) {
        if let Action::Conflict { a, b, .. } = action {
            let places = [place(pair, Side::A, a), place(pair, Side::B, b)];
            self.conflicts.insert(known_as(action).into_owned(), places);
        }
    }

    /// The view of the collection `display` once synced.
    pub fn finish(self, display: String, report: &CollectionReport) -> SyncCollection {
        let [a, b] = report.ids.clone();
        let conflicts = report
            .conflicts
            .iter()
            .map(|p| {
                let [a, b] = match self.conflicts.get(&p.ident) {
                    Some([a, b]) => [Some(a.clone()), Some(b.clone())],
                    None => [None, None],
                };
                ConflictView {
                    ident: p.ident.clone(),
                    message: p.message.clone(),
                    a,
                    b,
                }
            })
            .collect();
        SyncCollection {
            name: report.name.clone(),
            display,
            clean: report.is_clean(),
            changed: !report.is_unchanged(),
            location: BySide { a, b },
            collection_created: report
                .collection_created
                .iter()
                .map(|s| side_name(*s))
                .collect(),
            counts: Counts {
                created: report.created,
                updated: report.updated,
                deleted: report.deleted,
                conflicts: report.conflicts.len() as u64,
                errors: report.errors.len() as u64,
                out_of_scope: report.out_of_scope,
                mirror_overwritten: report.mirror_overwritten,
                mirror_deleted: report.mirror_deleted,
                by_side: self.by_side,
            },
            refused: report.refused.clone(),
            interrupted: report.interrupted,
            notes: report.notes.clone(),
            actions: self.actions,
            conflicts,
            errors: report.errors.iter().map(ProblemView::from).collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------------

/// `davsync status --json`.
#[derive(Debug, Serialize)]
pub struct StatusDoc {
    schema: &'static str,
    /// One entry per pair.
    pub pairs: Vec<StatusPair>,
    /// How the command ended.
    pub exit: Option<Exit>,
}

impl StatusDoc {
    /// An empty document.
    pub fn new() -> StatusDoc {
        StatusDoc {
            schema: "davsync/status/1",
            pairs: Vec::new(),
            exit: None,
        }
    }
}

/// What the status database of one pair remembers.
#[derive(Debug, Serialize)]
pub struct StatusPair {
    name: String,
    /// Whether the pair ever synced (its status database exists).
    synced: bool,
    collections: Vec<StatusCollection>,
    /// The last run that refused the pair before it got to any collection, when the database
    /// knows no collection (else each collection shows that attempt).
    refused: Option<Refused>,
}

/// A run that refused a whole pair (a storage not opened, a secret not found, discovery failed).
#[derive(Debug, Serialize)]
struct Refused {
    /// When it finished (unix seconds, and as text in UTC).
    finished_at: i64,
    finished_at_utc: String,
    /// Why nothing was synced.
    reason: String,
}

/// One collection in a pair's status.
#[derive(Debug, Serialize)]
struct StatusCollection {
    name: String,
    display: String,
    /// Items in sync as of the last run.
    items: u64,
    /// When the last run of the collection finished (unix seconds, and as text in UTC).
    last_sync: Option<i64>,
    last_sync_utc: Option<String>,
    /// When the last run without conflicts or failures finished (unix seconds, and as text).
    last_clean: Option<i64>,
    last_clean_utc: Option<String>,
    /// What the last run created, updated and deleted.
    last_run: Option<LastRun>,
    conflicts: Vec<ProblemView>,
    failures: Vec<ProblemView>,
}

/// The counts of a collection's last run.
#[derive(Debug, Serialize)]
struct LastRun {
    created: u64,
    updated: u64,
    deleted: u64,
}

impl StatusPair {
    /// The view of pair `name`'s collections (`None`: never synced) and of the last run that
    /// refused the whole pair, if it is to be shown; `utc` formats times.
    pub fn new(
        name: &str,
        collections: Option<&[CollectionStatus]>,
        refused: Option<&PairRefusal>,
        utc: impl Fn(i64) -> String,
    ) -> StatusPair {
        StatusPair {
            name: name.to_owned(),
            synced: collections.is_some(),
            refused: refused.map(|r| Refused {
                finished_at: r.finished_at,
                finished_at_utc: utc(r.finished_at),
                reason: r.reason.clone(),
            }),
            collections: collections
                .unwrap_or_default()
                .iter()
                .map(|c| StatusCollection {
                    name: c.name.clone(),
                    display: super::display_name(name, &c.name),
                    items: c.items,
                    last_sync: c.last_sync,
                    last_sync_utc: c.last_sync.map(&utc),
                    last_clean: c.last_clean,
                    last_clean_utc: c.last_clean.map(&utc),
                    last_run: c.last_run.map(|r| LastRun {
                        created: r.created,
                        updated: r.updated,
                        deleted: r.deleted,
                    }),
                    conflicts: c.conflicts.iter().map(ProblemView::from).collect(),
                    failures: c.failures.iter().map(ProblemView::from).collect(),
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// discover
// ---------------------------------------------------------------------------------------------

/// `davsync discover --json`.
#[derive(Debug, Serialize)]
pub struct DiscoverDoc {
    schema: &'static str,
    /// One entry per pair.
    pub pairs: Vec<DiscoverPair>,
    /// How the command ended.
    pub exit: Option<Exit>,
}

impl DiscoverDoc {
    /// An empty document.
    pub fn new() -> DiscoverDoc {
        DiscoverDoc {
            schema: "davsync/discover/1",
            pairs: Vec::new(),
            exit: None,
        }
    }
}

/// The collections of one pair.
#[derive(Debug, Serialize)]
pub struct DiscoverPair {
    name: String,
    /// The storages of side a and side b.
    storages: BySide<String>,
    /// Why discovery failed, if it did.
    error: Option<String>,
    /// How the collections pair up.
    collections: Vec<DiscoverCollection>,
}

/// One pair-level collection.
#[derive(Debug, Serialize)]
struct DiscoverCollection {
    name: String,
    display: String,
    a: DiscoverSide,
    b: DiscoverSide,
}

/// One side of a pair-level collection.
#[derive(Debug, Serialize)]
struct DiscoverSide {
    /// The collection's name on this side.
    name: String,
    /// Its address, or null when it does not exist there (the next sync creates it).
    location: Option<String>,
}

impl DiscoverPair {
    /// The view of pair `name` with storages `a` and `b` and what discovery gave.
    pub fn new(
        name: &str,
        [a, b]: [&str; 2],
        found: Result<&[CollectionPair], String>,
    ) -> DiscoverPair {
        let (collections, error) = match found {
            Ok(collections) => (collections, None),
            Err(e) => (&[][..], Some(e)),
        };
        let side = |name: &str, found: &Option<CollectionInfo>| DiscoverSide {
            name: name.to_owned(),
            location: found.as_ref().map(|c| c.id.clone()),
        };
        DiscoverPair {
            name: name.to_owned(),
            storages: BySide {
                a: a.to_owned(),
                b: b.to_owned(),
            },
            error,
            collections: collections
                .iter()
                .map(|c| DiscoverCollection {
                    name: c.name.clone(),
                    display: super::display_name(name, &c.name),
                    a: side(&c.a_name, &c.a),
                    b: side(&c.b_name, &c.b),
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------------------------

/// `davsync check --json`.
#[derive(Debug, Serialize)]
pub struct CheckDoc {
    schema: &'static str,
    /// One entry per storage of the pairs checked.
    pub storages: Vec<CheckStorage>,
    /// Findings that are problems, all storages together.
    pub problems: u64,
    /// How the command ended.
    pub exit: Option<Exit>,
}

impl CheckDoc {
    /// An empty document.
    pub fn new() -> CheckDoc {
        CheckDoc {
            schema: "davsync/check/1",
            storages: Vec::new(),
            problems: 0,
            exit: None,
        }
    }
}

/// What `check` found about one storage.
#[derive(Debug, Serialize)]
pub struct CheckStorage {
    name: String,
    #[serde(rename = "type")]
    type_name: &'static str,
    /// The pairs using it.
    pairs: Vec<String>,
    /// `ok` or `problems`.
    verdict: &'static str,
    location: String,
    home_set: Option<String>,
    /// Scheme and user name, never the secret.
    auth: Option<String>,
    tls: Option<CheckTls>,
    collections: Vec<CheckCollection>,
    findings: Vec<CheckFinding>,
    /// How the server departs from what davsync assumes first, and what davsync does.
    quirks: Vec<String>,
}

/// TLS settings and what a handshake showed.
#[derive(Debug, Serialize)]
struct CheckTls {
    verify: String,
    pinned: Option<String>,
    /// The handshake's details, or null with `session_error` saying why there are none.
    session: Option<CheckSession>,
    session_error: Option<String>,
}

/// What a TLS handshake showed.
#[derive(Debug, Serialize)]
struct CheckSession {
    protocol: String,
    subject: Option<String>,
    not_after: Option<String>,
    fingerprint: String,
}

/// One collection `check` looked at.
#[derive(Debug, Serialize)]
struct CheckCollection {
    name: String,
    location: String,
    /// Items listed; null when the listing failed.
    items: Option<u64>,
    unreadable: u64,
    /// DAV: `sync-collection`, `ctag` or `full`, and why.
    listing: Option<CheckListing>,
}

/// The listing method of a collection.
#[derive(Debug, Serialize)]
struct CheckListing {
    method: &'static str,
    why: String,
}

/// A finding.
#[derive(Debug, Serialize)]
struct CheckFinding {
    /// `note` or `problem`.
    severity: &'static str,
    what: String,
    fix: Option<String>,
}

impl CheckStorage {
    /// The view of `report` for the storage used by `pairs`.
    pub fn new(report: &StorageCheck, pairs: &[&str]) -> CheckStorage {
        CheckStorage {
            name: report.name.clone(),
            type_name: report.type_name,
            pairs: pairs.iter().map(|p| (*p).to_owned()).collect(),
            verdict: if report.has_problems() {
                "problems"
            } else {
                "ok"
            },
            location: report.location.clone(),
            home_set: report.home_set.clone(),
            auth: report.auth.clone(),
            tls: report.tls.as_ref().map(|tls| {
                let (session, session_error) = match &tls.session {
                    Ok(s) => (
                        Some(CheckSession {
                            protocol: s.protocol.clone(),
                            subject: s.subject.clone(),
                            not_after: s.not_after.clone(),
                            fingerprint: s.fingerprint.clone(),
                        }),
                        None,
                    ),
                    Err(e) => (None, Some(e.clone())),
                };
                CheckTls {
                    verify: tls.verify.clone(),
                    pinned: tls.pinned.clone(),
                    session,
                    session_error,
                }
            }),
            collections: report
                .collections
                .iter()
                .map(|c| CheckCollection {
                    name: c.name.clone(),
                    location: c.id.clone(),
                    items: c.items.map(|n| n as u64),
                    unreadable: c.unreadable as u64,
                    listing: c.listing.as_ref().map(|plan| CheckListing {
                        method: match plan.method {
                            ListingMethod::SyncCollection => "sync-collection",
                            ListingMethod::Ctag => "ctag",
                            ListingMethod::Full => "full",
                        },
                        why: plan.why.clone(),
                    }),
                })
                .collect(),
            findings: report
                .findings
                .iter()
                .map(|f| CheckFinding {
                    severity: match f.severity {
                        Severity::Note => "note",
                        Severity::Problem => "problem",
                    },
                    what: f.what.clone(),
                    fix: f.fix.clone(),
                })
                .collect(),
            quirks: report.quirks.clone(),
        }
    }
}
