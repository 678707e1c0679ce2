//! Listing, fetching and executing: everything around the pure planner that touches storages
//! and the status database.
//!
//! For each collection: list both sides, fetch only the items whose version tag the status does
//! not vouch for, plan, then apply each action and record it in the status database as soon as
//! it succeeded. Errors are kept in two kinds: a status database failure is fatal
//! ([`StatusError`], the run stops), anything concerning one item or one collection is
//! collected in the [`CollectionReport`] and the run goes on.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::Command;

use crate::config::{CollectionsSpec, ConflictResolution};
use crate::item::Item;
use crate::model::{
    ItemVersion, ListedItem, Listing, Side, StatusItem, UnreadableItem, is_weak_etag,
};
use crate::pairing::{CollectionPair, match_collections};
use crate::plan::{Action, PlanOptions, SkipReason, plan};
use crate::status::{CollectionId, Problem, RunRecord, StatusDb, StatusError};
use crate::storage::{Changes, CollectionInfo, ItemError, Storage, StorageError, Written};

/// How a run behaves.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Allow propagating deletions from a side that lists nothing.
    pub force_delete: bool,
    /// Plan and report, change nothing.
    pub dry_run: bool,
    /// What to do with conflicts.
    pub resolution: ConflictResolution,
    /// The time the run is recorded at (unix seconds); the library never reads the clock.
    pub now: i64,
}

/// What happened to one action, as it happens.
#[derive(Debug)]
pub enum Progress<'a> {
    /// `--dry-run`: the action would be applied.
    Planned(&'a Action),
    /// The action was applied and recorded.
    Applied(&'a Action),
    /// The action failed; the message says why and where.
    Failed(&'a Action, &'a str),
}

/// The outcome of one collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionReport {
    /// Pair-level collection name (empty for a pair without `collections`).
    pub name: String,
    /// Items created on either side (restores included).
    pub created: u64,
    /// Items overwritten on either side (resolved conflicts included).
    pub updated: u64,
    /// Items deleted on either side.
    pub deleted: u64,
    /// Conflicts left open.
    pub conflicts: Vec<Problem>,
    /// Items that could not be synced, and why.
    pub errors: Vec<Problem>,
    /// Set when the whole collection was not synced, with the reason.
    pub refused: Option<String>,
}

impl CollectionReport {
    /// True when everything in the collection is in sync.
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty() && self.errors.is_empty() && self.refused.is_none()
    }
}

/// The two storages of a pair.
pub struct Sides<'a> {
    /// Side A.
    pub a: &'a dyn Storage,
    /// Side B.
    pub b: &'a dyn Storage,
}

impl Sides<'_> {
    fn get(&self, side: Side) -> &dyn Storage {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }
}

/// A listing plus the items fetched to build it, keyed by href.
struct Prepared {
    listing: Listing,
    fetched: HashMap<String, Item>,
    /// The storage's state to remember after a clean sync.
    state: Option<String>,
}

/// The collections of a pair as they exist now on both sides.
pub fn pair_collections(
    spec: &CollectionsSpec,
    sides: &Sides<'_>,
) -> Result<Vec<CollectionPair>, StorageError> {
    if *spec == CollectionsSpec::Root {
        return Ok(vec![CollectionPair {
            name: String::new(),
            a_name: String::new(),
            b_name: String::new(),
            a: Some(sides.a.root_collection()),
            b: Some(sides.b.root_collection()),
        }]);
    }
    let a = sides.a.list_collections()?;
    let b = sides.b.list_collections()?;
    Ok(match_collections(spec, &a, &b))
}

/// Status database keys of the storages' change-tracking states, per side.
const STATE_KEYS: [&str; 2] = ["a:state", "b:state"];

/// The component types both sides accept: one side's restriction, or both sides' common ones.
fn allowed_types(a: &[String], b: &[String]) -> Vec<String> {
    match (a, b) {
        ([], only) | (only, []) => only.to_vec(),
        (a, b) => a.iter().filter(|t| b.contains(t)).cloned().collect(),
    }
}

/// Creates a collection that exists on one side only (not in a dry run, where the missing side
/// is planned as empty).
fn ensure_collection(
    storage: &dyn Storage,
    existing: &Option<CollectionInfo>,
    name: &str,
    dry_run: bool,
) -> Result<Option<CollectionInfo>, StorageError> {
    match existing {
        Some(c) => Ok(Some(c.clone())),
        None if dry_run => Ok(None),
        None => storage.create_collection(name).map(Some),
    }
}

/// Lists one side, taking ident and hash from the status where an unchanged strong version tag
/// vouches for them, and fetching and parsing everything else. With a storage that reports
/// changes since a remembered state, items it does not mention are taken from the status.
/// Items whose component type `allowed` excludes are left out, as if they were not there.
fn prepare(
    storage: &dyn Storage,
    collection: Option<&CollectionInfo>,
    status: &[StatusItem],
    side: Side,
    since: Option<&str>,
    allowed: &[String],
) -> Result<Prepared, StorageError> {
    let mut prepared = Prepared {
        listing: Listing::default(),
        fetched: HashMap::new(),
        state: None,
    };
    let Some(collection) = collection else {
        return Ok(prepared);
    };
    let change_set = storage.list_changes(collection, since)?;
    prepared.state = change_set.state;
    let known: HashMap<&str, &StatusItem> = status
        .iter()
        .map(|s| (s.side(side).href.as_str(), s))
        .collect();
    let from_status = |s: &StatusItem| ListedItem {
        ident: s.ident.clone(),
        version: s.side(side).clone(),
    };
    let entries = match change_set.changes {
        Changes::Full(entries) => entries,
        Changes::Unchanged => {
            prepared.listing.items = status.iter().map(from_status).collect();
            return Ok(prepared);
        }
        Changes::Delta { changed, removed } => {
            let untouched = |s: &&StatusItem| {
                let href = &s.side(side).href;
                !removed.contains(href) && !changed.iter().any(|c| &c.href == href)
            };
            prepared.listing.items = status.iter().filter(untouched).map(from_status).collect();
            changed
        }
    };
    let mut to_fetch = Vec::new();
    for entry in &entries {
        match known.get(entry.href.as_str()) {
            Some(s) if s.side(side).etag == entry.etag && !is_weak_etag(&entry.etag) => {
                prepared.listing.items.push(from_status(s));
            }
            _ => to_fetch.push(entry.href.as_str()),
        }
    }
    for (href, result) in storage.get_many(collection, &to_fetch) {
        let reason = match result {
            Ok(fetched) => match Item::parse(fetched.bytes) {
                Ok(item) if !allowed.is_empty() && !is_allowed(&item, allowed) => continue,
                Ok(item) => {
                    prepared.listing.items.push(ListedItem {
                        ident: item.ident(),
                        version: ItemVersion {
                            href: href.clone(),
                            etag: fetched.etag,
                            hash: item.hash().to_owned(),
                        },
                    });
                    prepared.fetched.insert(href, item);
                    continue;
                }
                Err(malformed) => format!("{}: {malformed}", item_location(collection, &href)),
            },
            // Deleted between listing and fetching: it is simply not there.
            Err(ItemError::NotFound { .. }) => continue,
            Err(e) => format!("{}: {e}", collection.id),
        };
        prepared
            .listing
            .unreadable
            .push(UnreadableItem { href, reason });
    }
    Ok(prepared)
}

fn is_allowed(item: &Item, allowed: &[String]) -> bool {
    item.component()
        .is_some_and(|c| allowed.iter().any(|a| a.eq_ignore_ascii_case(c)))
}

fn item_location(collection: &CollectionInfo, href: &str) -> String {
    format!("{}/{href}", collection.id.trim_end_matches('/'))
}

/// Syncs one collection pair. Only a status database failure is returned as an error.
pub fn sync_collection(
    sides: &Sides<'_>,
    pair: &CollectionPair,
    status: &StatusDb,
    options: &SyncOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<CollectionReport, StatusError> {
    let mut report = CollectionReport {
        name: pair.name.clone(),
        ..CollectionReport::default()
    };
    let coll = status.collection(&pair.name)?;
    let known = status.items(coll)?;

    let allowed = allowed_types(sides.a.item_types(), sides.b.item_types());
    let since_a = status.collection_meta(coll, STATE_KEYS[0])?;
    let since_b = status.collection_meta(coll, STATE_KEYS[1])?;
    let prepared = (|| -> Result<_, StorageError> {
        let a_coll = ensure_collection(sides.a, &pair.a, &pair.a_name, options.dry_run)?;
        let b_coll = ensure_collection(sides.b, &pair.b, &pair.b_name, options.dry_run)?;
        let a = prepare(
            sides.a,
            a_coll.as_ref(),
            &known,
            Side::A,
            since_a.as_deref(),
            &allowed,
        )?;
        let b = prepare(
            sides.b,
            b_coll.as_ref(),
            &known,
            Side::B,
            since_b.as_deref(),
            &allowed,
        )?;
        Ok((a_coll, b_coll, a, b))
    })();
    let (a_coll, b_coll, a, b) = match prepared {
        Ok(p) => p,
        Err(e) => {
            report.refused = Some(e.to_string());
            return Ok(report);
        }
    };
    for unreadable in a.listing.unreadable.iter().chain(&b.listing.unreadable) {
        report.errors.push(Problem {
            ident: unreadable.href.clone(),
            message: unreadable.reason.clone(),
        });
    }
    let plan_options = PlanOptions {
        force_delete: options.force_delete,
    };
    let actions = match plan(&a.listing, &b.listing, &known, plan_options) {
        Ok(actions) => actions,
        Err(refusal) => {
            report.refused = Some(refusal.to_string());
            return Ok(report);
        }
    };

    let (a_state, b_state) = (a.state, b.state);
    let mut executor = Executor {
        sides,
        collections: [a_coll, b_coll],
        fetched: [a.fetched, b.fetched],
        status,
        coll,
        resolution: &options.resolution,
    };
    for action in &actions {
        if options.dry_run {
            count_planned(action, &options.resolution, &mut report);
            if !action.is_status_only() {
                progress(Progress::Planned(action));
            }
            continue;
        }
        match executor.apply(action)? {
            Outcome::Done => {
                count_done(action, &options.resolution, &mut report);
                progress(Progress::Applied(action));
            }
            Outcome::Open(message) => report.conflicts.push(Problem {
                ident: action.ident().to_owned(),
                message,
            }),
            Outcome::Failed(message) => {
                progress(Progress::Failed(action, &message));
                report.errors.push(Problem {
                    ident: action.ident().to_owned(),
                    message,
                });
            }
            Outcome::Skipped => {}
        }
    }
    if !options.dry_run && report.is_clean() {
        // Only a clean run may move the remembered states forward: a change left unsynced
        // must be reported again by the next delta.
        for (key, state) in STATE_KEYS.iter().zip([&a_state, &b_state]) {
            match state {
                Some(state) => status.set_collection_meta(coll, key, state)?,
                None => status.remove_collection_meta(coll, key)?,
            }
        }
    }
    if !options.dry_run {
        status.record_run(
            coll,
            &RunRecord {
                finished_at: options.now,
                created: report.created,
                updated: report.updated,
                deleted: report.deleted,
                conflicts: report.conflicts.clone(),
                failures: report.errors.clone(),
            },
        )?;
    }
    Ok(report)
}

fn count_done(action: &Action, resolution: &ConflictResolution, report: &mut CollectionReport) {
    match action {
        Action::Create { .. } | Action::Restore { .. } => report.created += 1,
        Action::Update { .. } => report.updated += 1,
        Action::Conflict { .. } if *resolution != ConflictResolution::Report => report.updated += 1,
        Action::Delete { .. } => report.deleted += 1,
        Action::Record { .. }
        | Action::Forget { .. }
        | Action::Conflict { .. }
        | Action::Skip { .. } => {}
    }
}

/// In a dry run, conflicts without a resolution are counted as open and skips as errors, as a
/// real run would.
fn count_planned(action: &Action, resolution: &ConflictResolution, report: &mut CollectionReport) {
    match action {
        Action::Conflict { a, b, status, .. } if *resolution == ConflictResolution::Report => {
            report.conflicts.push(Problem {
                ident: action.ident().to_owned(),
                message: conflict_message(a, b, status.as_ref()),
            })
        }
        Action::Skip {
            reason: SkipReason::DuplicateUid { .. },
            ..
        } => report.errors.push(Problem {
            ident: action.ident().to_owned(),
            message: action.to_string(),
        }),
        _ => count_done(action, resolution, report),
    }
}

/// How an open conflict is reported: what happened, and the two files.
fn conflict_message(a: &ItemVersion, b: &ItemVersion, status: Option<&StatusItem>) -> String {
    let what = match status {
        Some(_) => "changed on both sides",
        None => "created differently on both sides",
    };
    format!("{what}: a {}, b {}", a.href, b.href)
}

enum Outcome {
    /// Applied and recorded.
    Done,
    /// A conflict left open, with a description.
    Open(String),
    /// Not applied; the message says why.
    Failed(String),
    /// Nothing to apply (already reported elsewhere).
    Skipped,
}

struct Executor<'a> {
    sides: &'a Sides<'a>,
    collections: [Option<CollectionInfo>; 2],
    fetched: [HashMap<String, Item>; 2],
    status: &'a StatusDb,
    coll: CollectionId,
    resolution: &'a ConflictResolution,
}

/// Why an action could not be applied; a fatal status error is kept apart.
enum Failure {
    Item(String),
    Status(StatusError),
}

impl From<StatusError> for Failure {
    fn from(e: StatusError) -> Self {
        Failure::Status(e)
    }
}

fn index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// A status row with `side`'s version replaced by `version` and the other side's by `other`.
fn row(ident: &str, side: Side, version: ItemVersion, other: ItemVersion) -> StatusItem {
    let (a, b) = match side {
        Side::A => (version, other),
        Side::B => (other, version),
    };
    StatusItem {
        ident: ident.to_owned(),
        a,
        b,
    }
}

impl Executor<'_> {
    fn collection(&self, side: Side) -> Result<&CollectionInfo, Failure> {
        self.collections[index(side)]
            .as_ref()
            .ok_or_else(|| Failure::Item(format!("side {side} has no such collection")))
    }

    fn item(&self, side: Side, href: &str) -> Result<&Item, Failure> {
        self.fetched[index(side)].get(href).ok_or_else(|| {
            Failure::Item(format!("{href} on {side} was not fetched (internal error)"))
        })
    }

    fn item_failure(&self, side: Side, e: ItemError) -> Failure {
        let place = self.collections[index(side)]
            .as_ref()
            .map_or(String::new(), |c| c.id.clone());
        Failure::Item(format!("side {side} ({place}): {e}"))
    }

    fn create(&self, on: Side, item: &Item) -> Result<Written, Failure> {
        let hint = item
            .uid()
            .map_or_else(|| item.hash().to_owned(), str::to_owned);
        self.sides
            .get(on)
            .create(self.collection(on)?, &hint, item.bytes())
            .map_err(|e| self.item_failure(on, e))
    }

    fn update(&self, on: Side, target: &ItemVersion, bytes: &[u8]) -> Result<Written, Failure> {
        self.sides
            .get(on)
            .update(self.collection(on)?, &target.href, &target.etag, bytes)
            .map_err(|e| self.item_failure(on, e))
    }

    fn apply(&mut self, action: &Action) -> Result<Outcome, StatusError> {
        match self.try_apply(action) {
            Ok(outcome) => Ok(outcome),
            Err(Failure::Item(message)) => Ok(Outcome::Failed(message)),
            Err(Failure::Status(e)) => Err(e),
        }
    }

    fn try_apply(&mut self, action: &Action) -> Result<Outcome, Failure> {
        match action {
            Action::Create {
                ident,
                from,
                source,
            } => {
                let item = self.item(*from, &source.href)?;
                let written = self.create(from.other(), item)?;
                let new = row(ident, *from, source.clone(), written.version_of(source));
                self.status.insert(self.coll, &new, item.bytes())?;
            }
            Action::Update {
                ident,
                from,
                source,
                target,
                status,
            } => {
                let item = self.item(*from, &source.href)?;
                let written = self.update(from.other(), target, item.bytes())?;
                let new = row(ident, *from, source.clone(), written.version_of(source));
                self.status
                    .replace(self.coll, status, &new, Some(item.bytes()))?;
            }
            Action::Restore {
                ident,
                from,
                source,
                status,
            } => {
                let item = self.item(*from, &source.href)?;
                let written = self.create(from.other(), item)?;
                let new = row(ident, *from, source.clone(), written.version_of(source));
                self.status
                    .replace(self.coll, status, &new, Some(item.bytes()))?;
            }
            Action::Delete {
                on, target, status, ..
            } => {
                let deleted =
                    self.sides
                        .get(*on)
                        .delete(self.collection(*on)?, &target.href, &target.etag);
                match deleted {
                    // Already gone is what we wanted.
                    Ok(()) | Err(ItemError::NotFound { .. }) => {}
                    Err(e) => return Err(self.item_failure(*on, e)),
                }
                self.status.remove(self.coll, status)?;
            }
            Action::Record {
                ident,
                a,
                b,
                status,
            } => {
                let new = row(ident, Side::A, a.clone(), b.clone());
                let content = self.fetched[0]
                    .get(&a.href)
                    .or_else(|| self.fetched[1].get(&b.href))
                    .map(Item::bytes);
                match (status, content) {
                    (Some(old), content) => self.status.replace(self.coll, old, &new, content)?,
                    (None, Some(content)) => self.status.insert(self.coll, &new, content)?,
                    (None, None) => {
                        return Err(Failure::Item(format!(
                            "{ident}: content to record was not fetched (internal error)"
                        )));
                    }
                }
            }
            Action::Forget { status } => self.status.remove(self.coll, status)?,
            Action::Conflict {
                ident,
                a,
                b,
                status,
            } => return self.resolve(ident, a, b, status.as_ref()),
            Action::Skip { ident, reason } => {
                return Ok(match reason {
                    SkipReason::DuplicateUid { side, hrefs } => {
                        let paths: Vec<String> = match self.collection(*side) {
                            Ok(c) => hrefs.iter().map(|h| item_location(c, h)).collect(),
                            Err(_) => hrefs.clone(),
                        };
                        Outcome::Failed(format!(
                            "{ident}: UID used by several items on {side}, none synced until \
                             only one is left: {}",
                            paths.join(", ")
                        ))
                    }
                    // The unreadable item itself is already reported with its parse error.
                    SkipReason::Unreadable { .. } => Outcome::Skipped,
                });
            }
        }
        Ok(Outcome::Done)
    }

    fn resolve(
        &mut self,
        ident: &str,
        a: &ItemVersion,
        b: &ItemVersion,
        status: Option<&StatusItem>,
    ) -> Result<Outcome, Failure> {
        let winner = match self.resolution {
            ConflictResolution::Report => return Ok(Outcome::Open(conflict_message(a, b, status))),
            ConflictResolution::AWins => Side::A,
            ConflictResolution::BWins => Side::B,
            ConflictResolution::Command(cmd) => return self.merge(cmd, ident, a, b, status),
        };
        let (win, lose) = match winner {
            Side::A => (a, b),
            Side::B => (b, a),
        };
        let item = self.item(winner, &win.href)?;
        let written = self.update(winner.other(), lose, item.bytes())?;
        let new = row(ident, winner, win.clone(), written.version_of(win));
        let bytes = item.bytes().to_vec();
        self.record(status, &new, &bytes)?;
        Ok(Outcome::Done)
    }

    fn record(
        &self,
        old: Option<&StatusItem>,
        new: &StatusItem,
        content: &[u8],
    ) -> Result<(), StatusError> {
        match old {
            Some(old) => self.status.replace(self.coll, old, new, Some(content)),
            None => self.status.insert(self.coll, new, content),
        }
    }

    /// Runs the user's merge command on (A, B, last synced) and writes its result to both
    /// sides. A failing command leaves the conflict open.
    fn merge(
        &mut self,
        cmd: &[String],
        ident: &str,
        a: &ItemVersion,
        b: &ItemVersion,
        status: Option<&StatusItem>,
    ) -> Result<Outcome, Failure> {
        let ancestor = match status {
            Some(_) => self
                .status
                .synced_content(self.coll, ident)?
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let merged = run_merge(
            cmd,
            self.item(Side::A, &a.href)?.bytes(),
            self.item(Side::B, &b.href)?.bytes(),
            &ancestor,
        );
        let merged = match merged {
            Ok(bytes) => bytes,
            Err(why) => return Ok(Outcome::Open(format!("merge command: {why}"))),
        };
        let item = match Item::parse(merged) {
            Ok(item) => item,
            Err(e) => {
                return Ok(Outcome::Open(format!(
                    "merge command produced a malformed item: {e}"
                )));
            }
        };
        let wa = self.update(Side::A, a, item.bytes())?;
        let wb = self.update(Side::B, b, item.bytes())?;
        let hash = item.hash().to_owned();
        let version = |w: Written| ItemVersion {
            href: w.href,
            etag: w.etag,
            hash: hash.clone(),
        };
        let new = row(ident, Side::A, version(wa), version(wb));
        self.record(status, &new, item.bytes())?;
        Ok(Outcome::Done)
    }
}

/// Writes the three versions to temporary files, runs `cmd` with their paths and returns what
/// it left in the first one.
fn run_merge(cmd: &[String], a: &[u8], b: &[u8], ancestor: &[u8]) -> Result<Vec<u8>, String> {
    let (program, args) = cmd.split_first().ok_or("empty command")?;
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut paths = Vec::new();
    for (name, bytes) in [("a", a), ("b", b), ("base", ancestor)] {
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        paths.push(path);
    }
    let status = Command::new(program)
        .args(args)
        .args(&paths)
        .status()
        .map_err(|e| format!("{program}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "{program} exited with {status}; conflict left open"
        ));
    }
    std::fs::read(&paths[0]).map_err(|e| format!("{}: {e}", paths[0].display()))
}
