//! Listing, fetching and executing: everything around the pure planner that touches storages
//! and the status database.
//!
//! For each collection: list both sides, fetch only the items whose version tag the status does
//! not vouch for, plan, then apply each action and record it in the status database as soon as
//! it succeeded. Errors are kept in two kinds: a status database failure is fatal
//! ([`StatusError`], the run stops), anything concerning one item or one collection is
//! collected in the [`CollectionReport`] and the run goes on.

mod execute;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::config::{CollectionsSpec, ConflictResolution, MetadataKey, SyncMode};
use crate::filter::{CivilDate, ItemFilter, Window, item_span};
use crate::item::Item;
use crate::metadata::{Described, PropertyAction, plan_mirrored_property, plan_property};
use crate::model::{
    ItemVersion, ListedItem, Listing, SeenVersion, Side, StatusItem, UnreadableItem, is_weak_etag,
};
use crate::pairing::{CollectionPair, match_collections};
use crate::plan::{Action, PlanOptions, SkipReason, mirroring_side, plan};
use crate::status::{CollectionId, Problem, RunRecord, StatusDb, StatusError};
use crate::storage::{
    ChangeSet, Changes, CollectionInfo, Fetched, ItemError, ListEntry, Storage, StorageError,
};
use execute::{Executor, Outcome};
pub use execute::{known_as, never_written};

/// How a run behaves.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Allow propagating deletions from a side that lists nothing.
    pub force_delete: bool,
    /// Plan and report, change nothing.
    pub dry_run: bool,
    /// What to do with conflicts.
    pub resolution: ConflictResolution,
    /// The time the run is recorded at (unix seconds); the library never reads the clock. Its
    /// day (UTC) is the day relative `start_date`/`end_date` bounds count from.
    pub now: i64,
    /// The filters of side A's and side B's storage (`item_types`, `start_date`, `end_date`):
    /// an item either leaves out is out of scope on both sides, neither copied nor deleted.
    pub filters: [ItemFilter; 2],
    /// Collection properties to sync.
    pub metadata: Vec<MetadataKey>,
    /// Set (by a signal handler, say) to stop: the writes under way finish and are recorded,
    /// no further action is started, and the report says how many were left.
    pub interrupt: Option<&'static AtomicBool>,
    /// Which way changes flow (a one-way pair's target mirrors its source).
    pub mode: SyncMode,
    /// Per side (a, b): the storage is `read_only`; nothing is ever written to it.
    pub read_only: [bool; 2],
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
    /// The conflict action was left open (reported, nothing written); the message says why.
    Open(&'a Action, &'a str),
    /// A collection property was (or, in a dry run, would be) changed; described for people.
    Property(&'a str),
    /// A phase that may take a while got this far: `done` of `total` steps. Sent after each
    /// step (each batch of fetched items, each action), so a terminal can draw a bar.
    Count {
        /// Which phase.
        phase: Phase,
        /// Steps done so far.
        done: u64,
        /// Steps in the phase (known when it starts; both sides' items when fetching).
        total: u64,
    },
}

/// The phases [`Progress::Count`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the items that changed (a first download, a big local scan of new files).
    Fetching,
    /// Applying the plan: writes to either side and their status records.
    Applying,
}

/// How many items `prepare` fetches at a time between two progress reports: enough for a DAV
/// storage's concurrent multigets (50 per batch, 4 in flight) to stay busy.
const FETCH_CHUNK: usize = 1000;

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
    /// In a one-way pair: of `created` and `updated`, the target's own changes undone
    /// (overwritten with the source's version, or its deletions restored).
    pub mirror_overwritten: u64,
    /// In a one-way pair: of `deleted`, the target's items the source does not have (only on
    /// the target, or deleted on the source while the target changed them).
    pub mirror_deleted: u64,
    /// Conflicts left open.
    pub conflicts: Vec<Problem>,
    /// Items that could not be synced, and why.
    pub errors: Vec<Problem>,
    /// Set when the whole collection was not synced, with the reason.
    pub refused: Option<String>,
    /// Set when the run was interrupted: the number of actions with storage writes not done.
    pub interrupted: Option<u64>,
    /// Items left alone on both sides because a date window (`start_date`, `end_date`) leaves
    /// them out.
    pub out_of_scope: u64,
    /// The collection's address (directory, URL) on side A and side B in this run, where it
    /// exists (not one a dry run would create).
    pub ids: [Option<String>; 2],
    /// The sides this run created the collection on, as it existed only on the other side (in
    /// a dry run: would create).
    pub collection_created: Vec<Side>,
    /// Things the user should know that are neither errors nor conflicts (such as a collection
    /// synced like a first sync because it is not the one the status database knew).
    pub notes: Vec<String>,
    /// Set with `refused` when the collection was refused only because a server could not be
    /// reached or answer now ([`StorageError::is_temporary`]): a later run may succeed.
    pub retry_later: bool,
}

impl CollectionReport {
    /// True when everything in the collection is in sync.
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty()
            && self.errors.is_empty()
            && self.refused.is_none()
            && self.interrupted.is_none()
    }

    /// True when what was left unsynced needs a person: anything but a collection refused only
    /// because its server could not be reached (which a later run retries by itself).
    pub fn needs_person(&self) -> bool {
        let only_unreachable =
            self.retry_later && self.conflicts.is_empty() && self.errors.is_empty();
        !self.is_clean() && !only_unreachable
    }

    /// True when nothing happened: in sync, no collection created, and no item created,
    /// updated or deleted (notes and items outside a date window do not count: they are the
    /// same every run).
    pub fn is_unchanged(&self) -> bool {
        self.is_clean()
            && self.collection_created.is_empty()
            && self.created == 0
            && self.updated == 0
            && self.deleted == 0
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
struct Prepared<'s> {
    listing: Listing<'s>,
    fetched: FxHashMap<String, Item>,
    /// The storage's state to remember after a clean sync.
    state: Option<String>,
    /// Listed items a time-range answer left out, not fetched: outside the window.
    deferred: Vec<String>,
    /// Items new to the status left out for their component type, counted by type.
    left_out_types: BTreeMap<String, u64>,
}

/// What [`prepare`] leaves out of a side's listing.
struct Scope<'a> {
    /// The component types both sides accept (empty for all).
    allowed: &'a [String],
    /// The status entries known to be of a type `allowed` leaves out.
    excluded: &'a [&'a StatusItem],
    /// The storage's answer to a time-range query ([`Storage::list_in_window`]) keyed by
    /// href, for a side listed in full.
    in_window: Option<&'a FxHashMap<&'a str, &'a ListEntry>>,
    /// Leave listed items `in_window` lacks unfetched ([`Prepared::deferred`]) rather than
    /// fetch them.
    defer: bool,
    /// Keep the content of fetched items ([`Prepared::fetched`]) for the executor. Without it,
    /// items are fetched in bounded batches and their content is kept only when there are few
    /// ([`KEPT_ITEMS_MAX`]) and all of it fits in [`KEPT_CONTENT_BUDGET`]; else only their
    /// listing entries are kept and the executor reads what it copies again
    /// ([`Storage::reads_cheaply`]).
    keep_content: bool,
}

/// How many items [`prepare`] fetches at a time when it does not keep their content.
const FETCH_BATCH: usize = 500;

/// Most items whose content [`prepare`] holds for the executor from a storage that reads
/// cheaply: 10,000 typical events (10 MB) are written without being read twice, while
/// 100,000 are read again rather than held, so a large collection's peak memory stays what it
/// was.
const KEPT_ITEMS_MAX: usize = 20_000;

/// Most bytes of content [`prepare`] holds for the executor from a storage that reads
/// cheaply, when there are few enough items: past it, none is kept (items with large photos).
const KEPT_CONTENT_BUDGET: usize = 64 * 1024 * 1024;

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

/// A collection the status database knows that this run's discovery no longer pairs: it
/// disappeared from the side(s) the pair takes its collections from, or from both sides, or
/// the pair's explicit `collections` list no longer names it. Nothing is left to sync, so
/// [`settle_gone`] drops it from the status database; the binary reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoneCollection {
    /// The pair-level name.
    pub name: String,
    /// The sides it disappeared from; empty when it is no longer in the pair's collections.
    pub gone_from: Vec<Side>,
    /// Where it was on side A and side B when last synced, where known.
    pub was: [Option<String>; 2],
    /// How many items the status database knew of it.
    pub items: u64,
}

impl std::fmt::Display for GoneCollection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |side: Side| match &self.was[side.index()] {
            Some(id) => format!(" (was {id})"),
            None => String::new(),
        };
        match self.gone_from.as_slice() {
            [] => write!(f, "no longer in the pair's collections")?,
            [side] => write!(f, "gone from {side}{}", at(*side))?,
            _ => write!(f, "gone from a{} and b{}", at(Side::A), at(Side::B))?,
        }
        write!(
            f,
            ", {} item{} synced before",
            self.items,
            if self.items == 1 { "" } else { "s" }
        )
    }
}

/// Finds the collections the status database knows that `collections` (this run's discovery,
/// see [`discover_with_hints`]) no longer pairs or finds on neither side, among those
/// `include` accepts, and drops them from the status database (not in a dry run): nothing is
/// left to sync there, and a collection that comes back later is synced like a first sync
/// (nothing deleted). A collection gone from one side while the other still has it is not
/// among them: [`sync_collection`] refuses it instead, as it cannot be settled without a
/// person.
pub fn settle_gone(
    spec: &CollectionsSpec,
    collections: &[CollectionPair],
    status: &StatusDb,
    include: &dyn Fn(&str) -> bool,
    dry_run: bool,
) -> Result<Vec<GoneCollection>, StatusError> {
    // A pair without `collections` syncs its storages themselves, which never go.
    if *spec == CollectionsSpec::Root {
        return Ok(Vec::new());
    }
    let mut gone = Vec::new();
    for known in status.collections()? {
        if !include(&known.name) {
            continue;
        }
        let gone_from = match collections.iter().find(|c| c.name == known.name) {
            Some(pair) if pair.a.is_none() && pair.b.is_none() => vec![Side::A, Side::B],
            Some(_) => continue,
            None => match spec {
                CollectionsSpec::FromA => vec![Side::A],
                CollectionsSpec::FromB => vec![Side::B],
                CollectionsSpec::All => vec![Side::A, Side::B],
                CollectionsSpec::Explicit(_) | CollectionsSpec::Root => Vec::new(),
            },
        };
        let coll = status.collection(&known.name)?;
        let was = [
            status.collection_meta(coll, ID_KEYS[0])?,
            status.collection_meta(coll, ID_KEYS[1])?,
        ];
        if !dry_run {
            status.forget_collection(coll)?;
        }
        gone.push(GoneCollection {
            name: known.name,
            gone_from,
            was,
            items: known.items,
        });
    }
    Ok(gone)
}

/// Like [`pair_collections`], but starting discovery where the last run's ended (remembered in
/// the status database), and remembering where this one ended: on a DAV server that saves
/// the principal and home-set lookups, leaving one request for a sync with nothing to do.
pub fn discover_with_hints(
    spec: &CollectionsSpec,
    sides: &Sides<'_>,
    status: &StatusDb,
) -> Result<Result<Vec<CollectionPair>, StorageError>, StatusError> {
    let storages = [sides.a, sides.b];
    for ((keys, storage), side) in HINT_KEYS.iter().zip(storages).zip(["a", "b"]) {
        // A hint belongs to the storage that found it: after the user points `url` or
        // `username` elsewhere, it would keep syncing the old place.
        let owner = status.meta(keys.owner)?;
        if owner.as_deref() != Some(storage.identity().as_str()) {
            if owner.is_some() {
                tracing::trace!(
                    "side {side}: the remembered home set was another storage's (url or \
                     username changed): discovering anew"
                );
            }
            continue;
        }
        if let Some(hint) = status.meta(keys.hint)? {
            tracing::trace!("side {side}: discovery starts from the remembered home set {hint}");
            storage.use_discovery_hint(&hint);
        }
    }
    let collections = pair_collections(spec, sides);
    if collections.is_ok() {
        for (keys, storage) in HINT_KEYS.iter().zip(storages) {
            if let Some(hint) = storage.discovery_hint() {
                status.set_meta(keys.hint, &hint)?;
                status.set_meta(keys.owner, &storage.identity())?;
            }
        }
    }
    Ok(collections)
}

/// How the status database spells the last synced value of a property: `=value`, or `-` for
/// "absent on both sides".
fn encode_property(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("={v}"))
}

fn decode_property(stored: &str) -> Option<&str> {
    stored.strip_prefix('=')
}

/// Syncs the pair's `metadata` properties of one collection, with the same three-way rules as
/// items (see [`crate::metadata`]).
/// One collection on both sides, as far as it exists, and whether this run created it.
struct CollectionSides<'a> {
    collections: [Option<&'a CollectionInfo>; 2],
    created: [bool; 2],
}

fn sync_metadata(
    sides: &Sides<'_>,
    target: &CollectionSides<'_>,
    status: &StatusDb,
    coll: CollectionId,
    options: &SyncOptions,
    report: &mut CollectionReport,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<[bool; 2], StatusError> {
    let mut written = [false; 2];
    for &key in &options.metadata {
        let read = |side: Side| match target.collections[side.index()] {
            Some(collection) => sides.get(side).metadata(collection, key),
            None => Ok(None),
        };
        let (a, b) = match (read(Side::A), read(Side::B)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                report.errors.push(Problem {
                    ident: key.file_name().to_owned(),
                    message: format!("{}: {e}", key.file_name()),
                });
                continue;
            }
        };
        let status_key = format!("meta:{}", key.file_name());
        let stored = status.collection_meta(coll, &status_key)?;
        // A collection davsync just created holds whatever the server gave it (such as its
        // name as display name): the other side's value is the one that counts.
        let fresh = match target.created {
            [true, false] => Some(a.as_deref()),
            [false, true] => Some(b.as_deref()),
            _ => None,
        };
        let synced = stored.as_deref().map(decode_property).or(fresh);
        let action = match mirroring_side(options.mode) {
            Some(target) => plan_mirrored_property(a.as_deref(), b.as_deref(), synced, target),
            None => plan_property(a.as_deref(), b.as_deref(), synced, &options.resolution),
        };
        if action != PropertyAction::Nothing {
            progress(Progress::Property(&Described(key, &action).to_string()));
        }
        let agreed = match action {
            PropertyAction::Nothing => continue,
            PropertyAction::Conflict { a, b } => {
                let show = |v: Option<String>| v.map_or("(none)".to_owned(), |v| format!("{v:?}"));
                report.conflicts.push(Problem {
                    ident: key.file_name().to_owned(),
                    message: format!("changed on both sides: {} on a, {} on b", show(a), show(b)),
                });
                continue;
            }
            _ if options.dry_run => continue,
            PropertyAction::Record(value) => value,
            PropertyAction::Set { on, value } => {
                let guard = never_written(options.mode, options.read_only);
                let result = match (target.collections[on.index()], &guard[on.index()]) {
                    (_, Some(why)) => {
                        report.errors.push(Problem {
                            ident: key.file_name().to_owned(),
                            message: format!(
                                "{}: refused to write to {on}: {why}",
                                key.file_name()
                            ),
                        });
                        continue;
                    }
                    (Some(collection), None) => {
                        sides
                            .get(on)
                            .set_metadata(collection, key, value.as_deref())
                    }
                    (None, None) => Ok(()),
                };
                if let Err(e) = result {
                    report.errors.push(Problem {
                        ident: key.file_name().to_owned(),
                        message: format!("{} on {on}: {e}", key.file_name()),
                    });
                    continue;
                }
                written[on.index()] = true;
                value
            }
        };
        status.set_collection_meta(coll, &status_key, &encode_property(agreed.as_deref()))?;
    }
    Ok(written)
}

/// Waits for a scoped thread, passing its panic on.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Where the status database keeps one side's discovery hint and whose hint it is.
struct HintKeys {
    /// The hint ([`Storage::discovery_hint`]).
    hint: &'static str,
    /// The [`Storage::identity`] of the storage that found it.
    owner: &'static str,
}

/// Status database keys of the storages' discovery hints, per side.
const HINT_KEYS: [HintKeys; 2] = [
    HintKeys {
        hint: "a:home",
        owner: "a:home-of",
    },
    HintKeys {
        hint: "b:home",
        owner: "b:home-of",
    },
];

/// Collection status keys of the address of the collection on each side (its
/// [`CollectionInfo::id`]) the status entries are about.
const ID_KEYS: [&str; 2] = ["a:id", "b:id"];

/// Collection status key of the component types both sides accepted in the last run.
const ITEM_TYPES_KEY: &str = "item_types";

/// Collection status key of the date window (both sides' together) of the last run.
const WINDOW_KEY: &str = "window";

/// Status database keys of the storages' change-tracking states, per side.
const STATE_KEYS: [&str; 2] = ["a:state", "b:state"];

/// The component types both sides accept: one side's restriction, or both sides' common ones.
fn allowed_types(a: &[String], b: &[String]) -> Vec<String> {
    match (a, b) {
        ([], only) | (only, []) => only.to_vec(),
        (a, b) => a.iter().filter(|t| b.contains(t)).cloned().collect(),
    }
}

/// Compares the collections about to be synced with the ones the status entries are about (see
/// [`ID_KEYS`]). When a side's collection is another one than before (the user pointed `path`,
/// `url` or a collection mapping elsewhere), the collection's status is set aside, so the run
/// is a first sync: in a two-way pair nothing is deleted, identical items are adopted and
/// differing ones are reported as conflicts (a one-way target mirrors its source). Returns the note saying so, if it came to that. Records the current
/// addresses (not in a dry run).
fn check_identity(
    status: &StatusDb,
    coll: CollectionId,
    current: &CollectionSides<'_>,
    options: &SyncOptions,
) -> Result<Option<String>, StatusError> {
    let mut moved = Vec::new();
    for side in [Side::A, Side::B] {
        let Some(collection) = current.collections[side.index()] else {
            continue;
        };
        match status.collection_meta(coll, ID_KEYS[side.index()])? {
            Some(known) if !same_address(&known, &collection.id) => {
                moved.push(format!("{side} is now {} (was {known})", collection.id));
            }
            _ => {}
        }
    }
    let first_sync = match mirroring_side(options.mode) {
        None => {
            "nothing deleted, identical items kept, different ones reported as conflicts".to_owned()
        }
        Some(target) => format!(
            "{target} mirrors {}: different items overwritten, items only on {target} deleted",
            target.other()
        ),
    };
    let note = match moved.is_empty() {
        true => None,
        false => Some(format!(
            "{}: synced like a first sync ({first_sync})",
            moved.join(", ")
        )),
    };
    if options.dry_run {
        return Ok(note);
    }
    if note.is_some() {
        status.reset_collection(coll)?;
    }
    for side in [Side::A, Side::B] {
        if let Some(collection) = current.collections[side.index()] {
            status.set_collection_meta(coll, ID_KEYS[side.index()], &collection.id)?;
        }
    }
    Ok(note)
}

/// Whether the collection address `id` lies below the storage address `root` (a vdir's
/// directory, a server's `url`).
fn is_under(id: &str, root: &str) -> bool {
    id.strip_prefix(root.trim_end_matches('/'))
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether two collection addresses name the same collection despite different spellings: the
/// address a storage gives a collection it creates may be encoded differently from the one its
/// listing shows later (`%40` or `@`, a trailing slash). A directory is never a URL.
fn same_address(known: &str, now: &str) -> bool {
    known.contains("://") == now.contains("://") && crate::storage::dav::href::same_href(known, now)
}

/// Whether the component types both sides accept differ from the last run's. If they do, the
/// remembered change-tracking states are dropped (not in a dry run, which only ignores them):
/// a state taken while a type was filtered out would hide items of a type now let in.
fn check_item_types(
    status: &StatusDb,
    coll: CollectionId,
    allowed: &[String],
    dry_run: bool,
) -> Result<bool, StatusError> {
    let mut current: Vec<String> = allowed.iter().map(|t| t.to_ascii_uppercase()).collect();
    current.sort();
    check_scope(status, coll, ITEM_TYPES_KEY, &current.join(","), dry_run)
}

/// Whether the date window differs from the last run's (a relative bound moves with the day),
/// dropping the remembered change-tracking states if it does, as [`check_item_types`] does: an
/// item that was left out as new on one side is not in the status, and a change list since a
/// state taken then would never mention it again, even once the window has come to it.
fn check_window(
    status: &StatusDb,
    coll: CollectionId,
    window: Window,
    dry_run: bool,
) -> Result<bool, StatusError> {
    let current = match window.is_open() {
        true => String::new(),
        false => window.key(),
    };
    check_scope(status, coll, WINDOW_KEY, &current, dry_run)
}

/// Compares what a filter lets through (`current`, empty for everything) with what the status
/// remembers under `key`; when they differ, drops the change-tracking states and remembers
/// `current` (not in a dry run). Returns whether they differed.
fn check_scope(
    status: &StatusDb,
    coll: CollectionId,
    key: &str,
    current: &str,
    dry_run: bool,
) -> Result<bool, StatusError> {
    let last = status.collection_meta(coll, key)?;
    if last.as_deref().unwrap_or("") == current {
        return Ok(false);
    }
    if !dry_run {
        for state in STATE_KEYS {
            status.remove_collection_meta(coll, state)?;
        }
        match current.is_empty() {
            true => status.remove_collection_meta(coll, key)?,
            false => status.set_collection_meta(coll, key, current)?,
        }
    }
    Ok(true)
}

/// A storage's time-range answer keyed by href.
fn by_href(entries: &[ListEntry]) -> FxHashMap<&str, &ListEntry> {
    entries.iter().map(|e| (e.href.as_str(), e)).collect()
}

/// Whether `from` lists an item in `window` that neither `to` nor the status knows, which the
/// plan would create on `to`'s side.
fn would_create(
    from: &Prepared<'_>,
    to: &Prepared<'_>,
    status: &[StatusItem],
    window: Window,
) -> bool {
    let known: FxHashSet<&str> = status
        .iter()
        .map(|s| s.ident.as_str())
        .chain(to.listing.items.iter().map(|i| i.ident.as_ref()))
        .collect();
    from.listing.items.iter().any(|item| {
        !known.contains(item.ident.as_ref())
            && from
                .fetched
                .get(&item.version.href)
                .is_none_or(|fetched| window.admits(item_span(fetched.bytes())))
    })
}

/// The idents a date window leaves out in this run. Each side's version is judged: one
/// fetched in this run by its content, one the status vouched for by the status row's span.
/// For an ident one side no longer lists, the version the status last agreed on is judged in
/// its place, so an item that left the window is never deleted on the other side because
/// someone deleted it on one. `status_outside` are the status rows whose span the window
/// leaves out.
fn out_of_window(
    window: Window,
    prepared: [&Prepared<'_>; 2],
    status: &[StatusItem],
    status_outside: &FxHashSet<String>,
) -> FxHashSet<String> {
    let mut outside = FxHashSet::default();
    let mut listed: [FxHashSet<&str>; 2] = Default::default();
    for (side, prepared) in prepared.iter().enumerate() {
        for item in &prepared.listing.items {
            listed[side].insert(item.ident.as_ref());
            let left_out = match prepared.fetched.get(&item.version.href) {
                Some(fetched) => !window.admits(item_span(fetched.bytes())),
                None => status_outside.contains(item.ident.as_ref()),
            };
            if left_out {
                outside.insert(item.ident.clone().into_owned());
            }
        }
    }
    for row in status {
        let ident = row.ident.as_str();
        // Gone from both sides: nothing left to delete, the row may go.
        if status_outside.contains(ident) && listed[0].contains(ident) != listed[1].contains(ident)
        {
            outside.insert(row.ident.clone());
        }
    }
    outside
}

/// One note per side for the items it holds that the other side's storage cannot hold at all
/// ([`ItemFilter::limit`]: a Google calendar holds events only), so a person learns once per
/// run why their tasks stay where they are: left alone, never sent, never deleted.
fn limit_notes(filters: &[ItemFilter; 2], prepared: [&Prepared<'_>; 2]) -> Vec<String> {
    let mut notes = Vec::new();
    for side in [Side::A, Side::B] {
        let Some(limit) = filters[side.other().index()].limit else {
            continue;
        };
        let held = |t: &str| limit.types.iter().any(|l| l.eq_ignore_ascii_case(t));
        let left: Vec<String> = prepared[side.index()]
            .left_out_types
            .iter()
            .filter(|(component, _)| !held(component))
            .map(|(component, n)| format!("{n} {component}"))
            .collect();
        if !left.is_empty() {
            notes.push(format!(
                "{} on {side} left alone: not syncable to {}, which holds only {} (never sent, \
                 never deleted)",
                left.join(", "),
                limit.holder,
                limit.types.join(", ")
            ));
        }
    }
    notes
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

/// Turns one side's change set into its listing: ident and hash come from the status where an
/// unchanged strong version tag vouches for them, everything else is fetched and parsed. With a
/// storage that reports changes since a remembered state, items it does not mention are taken
/// from the status. Items whose component type `allowed` excludes are left out, as if they were
/// not there; the status entries known to be of such a type are not even fetched while their
/// version tag is unchanged (see [`Scope`]). With a date window and a time-range answer, items
/// it carries are taken from it, and new ones it leaves out are deferred. `fetching` hears
/// how many of the items to fetch have been, before the first chunk and after each.
fn prepare<'s>(
    storage: &dyn Storage,
    collection: Option<&CollectionInfo>,
    change_set: Option<ChangeSet>,
    status: &'s [StatusItem],
    side: Side,
    scope: &Scope<'_>,
    fetching: &dyn Fn(usize, usize),
) -> Prepared<'s> {
    let allowed = scope.allowed;
    let mut prepared = Prepared {
        listing: Listing::default(),
        fetched: FxHashMap::default(),
        state: None,
        deferred: Vec::new(),
        left_out_types: BTreeMap::new(),
    };
    let (Some(collection), Some(change_set)) = (collection, change_set) else {
        return prepared;
    };
    prepared.state = change_set.state;
    // Named by the listing but not vouched for: there, yet unreadable (never absent).
    prepared.listing.unreadable = change_set.unreadable;
    // Keys are hrefs from local files and servers; a fast non-keyed hash is worth it here
    // (SipHash was the largest single cost of a no-op sync of 10,000 items).
    let known: FxHashMap<&str, &StatusItem> = status
        .iter()
        .map(|s| (s.side(side).href.as_str(), s))
        .collect();
    let excluded: FxHashMap<&str, &str> = scope
        .excluded
        .iter()
        .map(|s| (s.side(side).href.as_str(), s.side(side).etag.as_str()))
        .collect();
    let from_status = |s: &'s StatusItem| ListedItem {
        ident: Cow::Borrowed(s.ident.as_str()),
        version: SeenVersion::Vouched(s.side(side)),
    };
    let entries = match change_set.changes {
        Changes::Full(entries) => {
            prepared.listing.items.reserve_exact(entries.len());
            entries
        }
        Changes::Unchanged => {
            prepared.listing.items = status.iter().map(from_status).collect();
            return prepared;
        }
        Changes::Delta { changed, removed } => {
            let touched: FxHashSet<&str> = removed
                .iter()
                .map(String::as_str)
                .chain(changed.iter().map(|c| c.href.as_str()))
                .chain(prepared.listing.unreadable.iter().map(|u| u.href.as_str()))
                .collect();
            let untouched = |s: &&StatusItem| !touched.contains(s.side(side).href.as_str());
            prepared.listing.items = status.iter().filter(untouched).map(from_status).collect();
            changed
        }
    };
    // Entries whose content came with the listing need no fetch.
    let mut carried = Vec::new();
    let mut to_fetch = Vec::new();
    for entry in entries {
        let unchanged_outside = excluded
            .get(entry.href.as_str())
            .is_some_and(|etag| *etag == entry.etag && !is_weak_etag(etag));
        if unchanged_outside {
            continue;
        }
        match (known.get(entry.href.as_str()), entry.content) {
            (Some(s), _) if s.side(side).etag == entry.etag && !is_weak_etag(&entry.etag) => {
                prepared.listing.items.push(from_status(s));
            }
            (_, Some(bytes)) => carried.push((
                entry.href,
                Ok(Fetched {
                    bytes,
                    etag: entry.etag,
                }),
            )),
            (_, None) => match scope
                .in_window
                .map(|answer| answer.get(entry.href.as_str()))
            {
                Some(Some(ListEntry {
                    etag,
                    content: Some(bytes),
                    ..
                })) if *etag == entry.etag => carried.push((
                    entry.href,
                    Ok(Fetched {
                        bytes: bytes.clone(),
                        etag: entry.etag,
                    }),
                )),
                // Only an item the status does not know: one it knows that the answer leaves
                // out must be read, or it would look deleted.
                Some(None) if scope.defer && !known.contains_key(entry.href.as_str()) => {
                    prepared.deferred.push(entry.href)
                }
                // No answer, an answer without content, an item changed since it, or one too
                // large to be carried.
                _ => to_fetch.push(entry.href),
            },
        }
    }
    let to_fetch: Vec<&str> = to_fetch.iter().map(String::as_str).collect();
    // Kept content is fetched in chunks only to report progress between them; content not
    // kept is fetched in bounded batches, each dropped once its entries are listed.
    let batch = match scope.keep_content {
        true => FETCH_CHUNK,
        false => FETCH_BATCH,
    };
    let total = to_fetch.len();
    let mut budget = match scope.keep_content {
        true => Some(usize::MAX),
        false if total <= KEPT_ITEMS_MAX => Some(KEPT_CONTENT_BUDGET),
        false => None,
    };
    if total > 0 {
        // The total first: a bar over both sides knows its length before either is done.
        fetching(0, total);
    }
    // The storage reads the next chunk on a thread of its own while this one parses the last:
    // reading and parsing take about as long as each other.
    std::thread::scope(|threads| {
        let (sender, chunks) = std::sync::mpsc::sync_channel(1);
        match total {
            0 => drop(sender),
            _ => {
                threads.spawn(move || {
                    for hrefs in to_fetch.chunks(batch) {
                        let got = storage.get_many(collection, hrefs);
                        if sender.send((hrefs.len(), got)).is_err() {
                            break;
                        }
                    }
                });
            }
        }
        let mut done = 0;
        let fetched = chunks.into_iter().flat_map(|(asked, got)| {
            done += asked;
            fetching(done, total);
            got
        });
        for (href, result) in carried.into_iter().chain(fetched) {
            let unidentified = matches!(result, Err(ItemError::Unidentified { .. }));
            let reason = match result {
                Ok(fetched) => match Item::parse(fetched.bytes) {
                    Ok(item) if !allowed.is_empty() && !is_allowed(&item, allowed) => {
                        // An item synced as an allowed type that now is of another one would look
                        // deleted on this side: it cannot be synced, but must not be deleted.
                        if !known.contains_key(href.as_str()) {
                            let component = item.component().unwrap_or("item without component");
                            *prepared
                                .left_out_types
                                .entry(component.to_owned())
                                .or_default() += 1;
                            continue;
                        }
                        format!(
                            "{}: now a {}, which item_types leaves out; left alone on both sides",
                            item_location(collection, &href),
                            item.component().unwrap_or("item without component")
                        )
                    }
                    Ok(item) => {
                        // A status written before the hash recognized default values holds hashes
                        // of the older definition: content that still matches its row is unchanged
                        // and keeps the row's ident and hash, so an upgrade edits nothing.
                        let recorded = known
                            .get(href.as_str())
                            .filter(|s| item.hash() != s.side(side).hash)
                            .filter(|s| item.matches_recorded(&s.side(side).hash));
                        let (ident, hash) = match recorded {
                            Some(s) => (Cow::Borrowed(s.ident.as_str()), s.side(side).hash.clone()),
                            None => (Cow::Owned(item.ident()), item.hash().to_owned()),
                        };
                        prepared.listing.items.push(ListedItem {
                            ident,
                            version: ItemVersion {
                                href: href.clone(),
                                etag: fetched.etag,
                                hash,
                            }
                            .into(),
                        });
                        // Once over the budget, nothing is kept (see KEPT_CONTENT_BUDGET).
                        budget = budget.and_then(|left| left.checked_sub(item.bytes().len()));
                        match budget {
                            Some(_) => {
                                prepared.fetched.insert(href, item);
                            }
                            None => prepared.fetched = FxHashMap::default(),
                        }
                        continue;
                    }
                    Err(malformed) => format!("{}: {malformed}", item_location(collection, &href)),
                },
                // Deleted between listing and fetching: it is simply not there.
                Err(ItemError::NotFound { .. }) => continue,
                Err(e) => format!("{}: {e}", collection.id),
            };
            prepared.listing.unreadable.push(UnreadableItem {
                href,
                reason,
                unidentified,
            });
        }
    });
    prepared
}

fn is_allowed(item: &Item, allowed: &[String]) -> bool {
    item.component()
        .is_some_and(|c| allowed.iter().any(|a| a.eq_ignore_ascii_case(c)))
}

/// Whether `side` is as the status left it: its storage says nothing changed, or it listed
/// in full exactly the hrefs the status knows for it, each with the same strong version tag
/// (a weak tag vouches for nothing, so such an item is read). Then that side's plan would hold
/// nothing.
fn unchanged_since_status(
    status: &StatusDb,
    coll: CollectionId,
    side: Side,
    listed: &ChangeSet,
) -> Result<bool, StatusError> {
    if !listed.unreadable.is_empty() {
        return Ok(false);
    }
    let entries = match &listed.changes {
        Changes::Unchanged => return Ok(true),
        Changes::Delta { changed, removed } => return Ok(changed.is_empty() && removed.is_empty()),
        Changes::Full(entries) => entries,
    };
    let mut tags: FxHashMap<&str, &str> = FxHashMap::default();
    tags.reserve(entries.len());
    for entry in entries {
        if is_weak_etag(&entry.etag) || tags.insert(&entry.href, &entry.etag).is_some() {
            return Ok(false);
        }
    }
    // Each row takes its entry away, so two rows cannot both match one entry.
    let known =
        status.versions_all_match(coll, side, |href, etag| tags.remove(href) == Some(etag))?;
    Ok(known == Some(entries.len()))
}

/// Where a person finds an item: a vdir file's full path, or a server item's full URL. A
/// server names its items by absolute path (`/alice/work/x.ics`), which is resolved against the
/// collection URL instead of appended to it.
pub fn item_location(collection: &CollectionInfo, href: &str) -> String {
    if href.contains("://") || (href.starts_with('/') && collection.id.contains("://")) {
        return crate::storage::dav::href::join(&collection.id, href);
    }
    format!("{}/{href}", collection.id.trim_end_matches('/'))
}

/// Syncs one collection pair. Only a status database failure is returned as an error.
///
/// A refused collection is recorded as the last attempt (`StatusDb::record_refusal`), not in a
/// dry run.
pub fn sync_collection(
    sides: &Sides<'_>,
    pair: &CollectionPair,
    status: &StatusDb,
    options: &SyncOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<CollectionReport, StatusError> {
    let report = sync_collection_once(sides, pair, status, options, progress)?;
    if let Some(reason) = &report.refused
        && !options.dry_run
    {
        let coll = status.collection(&pair.name)?;
        status.record_refusal(coll, options.now, &format!("not synced: {reason}"))?;
    }
    Ok(report)
}

fn sync_collection_once(
    sides: &Sides<'_>,
    pair: &CollectionPair,
    status: &StatusDb,
    options: &SyncOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<CollectionReport, StatusError> {
    let mut report = CollectionReport {
        name: pair.name.clone(),
        ids: [&pair.a, &pair.b].map(|c| c.as_ref().map(|c| c.id.clone())),
        ..CollectionReport::default()
    };
    let coll = status.collection(&pair.name)?;
    let [filter_a, filter_b] = &options.filters;
    let allowed = allowed_types(&filter_a.item_types, &filter_b.item_types);
    let today = CivilDate::from_days_since_epoch(options.now.div_euclid(86_400));
    let window = filter_a.window(today).intersect(filter_b.window(today));
    // A collection synced before that disappeared from one side while the other still has
    // it: creating it again (empty) would undo someone's deletion and then ask to delete
    // everything on the other side. A person decides; `--force-delete` is the way through.
    // Only while the side is the place it was synced at: after its `path` or `url` was
    // pointed elsewhere, the collection is simply not there yet (it is created, and
    // `check_identity` makes the run a first sync).
    for (side, existing) in [(Side::A, &pair.a), (Side::B, &pair.b)] {
        let other = [&pair.a, &pair.b][side.other().index()];
        if existing.is_some() || other.is_none() || options.force_delete {
            continue;
        }
        let was = status.collection_meta(coll, ID_KEYS[side.index()])?;
        let root = sides.get(side).root_collection().id;
        if let Some(was) = was.filter(|was| is_under(was, &root)) {
            report.refused = Some(format!(
                "the collection is gone from {side} (was {was}) but {other_side} still has it; \
                 davsync neither deletes a collection nor brings back a deleted one: delete it \
                 on {other_side} as well to stop syncing it, or run with --force-delete to \
                 create it again on {side} and delete its items on {other_side}",
                other_side = side.other()
            ));
            return Ok(report);
        }
    }
    let guard = never_written(options.mode, options.read_only);
    // A side never written gets no collection: the collection on the other side is left alone
    // (davsync deletes no collection, and a one-way target's items are not emptied because the
    // source lacks the collection).
    for (side, existing) in [(Side::A, &pair.a), (Side::B, &pair.b)] {
        if let (None, Some(why)) = (existing, &guard[side.index()]) {
            report.notes.push(format!(
                "left alone: the collection exists only on {}, and {side} is never written ({why})",
                side.other()
            ));
            return Ok(report);
        }
    }
    let collections =
        ensure_collection(sides.a, &pair.a, &pair.a_name, options.dry_run).and_then(|a| {
            Ok((
                a,
                ensure_collection(sides.b, &pair.b, &pair.b_name, options.dry_run)?,
            ))
        });
    let (a_coll, b_coll) = match collections {
        Ok(collections) => collections,
        Err(e) => {
            report.refused = Some(e.to_string());
            report.retry_later = e.is_temporary();
            return Ok(report);
        }
    };
    let current = CollectionSides {
        collections: [a_coll.as_ref(), b_coll.as_ref()],
        created: [pair.a.is_none(), pair.b.is_none()],
    };
    report.ids = current.collections.map(|c| c.map(|c| c.id.clone()));
    report.collection_created = [Side::A, Side::B]
        .into_iter()
        .filter(|side| current.created[side.index()])
        .collect();
    let first_sync = check_identity(status, coll, &current, options)?;
    // A dry run changes nothing in the status database: it plans as if it had been set aside.
    let forget = first_sync.is_some() && options.dry_run;
    report.notes.extend(first_sync);
    let types_changed = check_item_types(status, coll, &allowed, options.dry_run)?;
    let window_changed = check_window(status, coll, window, options.dry_run)?;
    // Rows synced while no window needed their days get them once one does (a dry run writes
    // nothing: `idents_out_of_window` reads them where it needs them).
    if !window.is_open() && !options.dry_run {
        status.fill_spans(coll)?;
    }
    let since = |side: Side| -> Result<Option<String>, StatusError> {
        if forget || types_changed || window_changed {
            return Ok(None);
        }
        status.collection_meta(coll, STATE_KEYS[side.index()])
    };
    let (since_a, since_b) = (since(Side::A)?, since(Side::B)?);
    // Both sides list at the same time, while this thread reads the status database (which
    // only it may touch); then both sides fetch what they must at the same time. For two local
    // vdirs that halves a no-op sync, for a server it overlaps network waits with local work.
    // With nothing of this collection in the status yet, every item listed will be fetched: a
    // server may as well send the content with the listing (one request instead of many).
    let fetch_all = forget || !status.has_items(coll)?;
    // With a date window, a side listed in full without a remembered state is also asked
    // which items are in the window (a CalDAV time-range query; on a first download with their
    // content, so the listing itself asks for none): an item the status does not know and the
    // answer leaves out is not fetched. The listing still says what exists, so such an item is
    // outside the window, never absent. (A storage that cannot answer has its items fetched.)
    let list = |storage: &dyn Storage, collection: Option<&CollectionInfo>, since: Option<&str>| {
        collection
            .map(|c| {
                let windowed = (fetch_all || since.is_none()) && !window.is_open();
                let changes = storage.list_changes(c, since, fetch_all && !windowed)?;
                let in_window = match (windowed, &changes.changes) {
                    (true, Changes::Full(_)) => storage.list_in_window(c, window, fetch_all),
                    _ => None,
                };
                Ok::<_, StorageError>((changes, in_window))
            })
            .transpose()
    };
    let (changes_a, changes_b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| list(sides.a, a_coll.as_ref(), since_a.as_deref()));
        let b = scope.spawn(|| list(sides.b, b_coll.as_ref(), since_b.as_deref()));
        (join(a), join(b))
    });
    // The common case of a timer's run: both sides as the status left them. Then nothing is
    // fetched or planned, and the status rows are compared where they are, never loaded (at
    // 100,000 items loading them was most of a no-op sync's memory and a third of its time).
    // Only without item filters, which make the plan leave items out rather than compare them,
    // and not when the status knows nothing of the collection (a first sync: nothing to match).
    let unchanged = match (&changes_a, &changes_b) {
        (Ok(Some((a, None))), Ok(Some((b, None))))
            if !fetch_all && allowed.is_empty() && window.is_open() =>
        {
            unchanged_since_status(status, coll, Side::A, a)?
                && unchanged_since_status(status, coll, Side::B, b)?
        }
        _ => false,
    };
    let (actions, [a_state, b_state], fetched) = if unchanged {
        let states = [changes_a, changes_b]
            .map(|listed| listed.ok().flatten().and_then(|(changes, _)| changes.state));
        (Vec::new(), states, Default::default())
    } else {
        let known = match forget {
            true => Vec::new(),
            false => status.items(coll)?,
        };
        // Status entries of component types outside `item_types` are out of scope on both sides:
        // neither listed nor planned, so they are never taken for deleted items.
        let outside: FxHashSet<String> = match allowed.is_empty() || known.is_empty() {
            true => FxHashSet::default(),
            false => status.idents_outside(coll, &allowed)?.into_iter().collect(),
        };
        let in_scope: Cow<'_, [StatusItem]> = match outside.is_empty() {
            true => Cow::Borrowed(&known),
            false => known
                .iter()
                .filter(|s| !outside.contains(&s.ident))
                .cloned()
                .collect(),
        };
        let excluded: Vec<&StatusItem> = known
            .iter()
            .filter(|s| outside.contains(&s.ident))
            .collect();
        let (listed_a, listed_b) = match (changes_a, changes_b) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                report.refused = Some(e.to_string());
                report.retry_later = e.is_temporary();
                return Ok(report);
            }
        };
        let split = |listed: Option<(ChangeSet, Option<Vec<ListEntry>>)>| match listed {
            Some((changes, in_window)) => (Some(changes), in_window),
            None => (None, None),
        };
        let ((changes_a, window_a), (changes_b, window_b)) = (split(listed_a), split(listed_b));
        let answers = [
            window_a.as_deref().map(by_href),
            window_b.as_deref().map(by_href),
        ];
        // Judging the date window needs the content of what was fetched.
        let keep_content = [sides.a, sides.b].map(|s| !s.reads_cheaply() || !window.is_open());
        let scopes = [0, 1].map(|side| Scope {
            allowed: &allowed,
            excluded: &excluded,
            in_window: answers[side].as_ref(),
            defer: true,
            keep_content: keep_content[side],
        });
        // A deferred side may have to be prepared again: keep its (content-less) listing. Only a
        // side with a time-range answer can defer; cloning every listing (as `Option::and` did,
        // eagerly) cost a no-op sync of 10,000 items a fifth of its time.
        let kept = [(&changes_a, &answers[0]), (&changes_b, &answers[1])]
            .map(|(changes, answer)| answer.as_ref().and_then(|_| changes.clone()));
        // Both sides fetch on threads of their own; this thread passes on how far they got, as
        // `progress` may only be called here.
        let (counts, counted) = std::sync::mpsc::channel::<(Side, usize, usize)>();
        let in_scope_ref: &[StatusItem] = &in_scope;
        let (a, b) = std::thread::scope(|scope| {
            let fetch = |side: Side, changes: Option<ChangeSet>| {
                let counts = counts.clone();
                let collection = [a_coll.as_ref(), b_coll.as_ref()][side.index()];
                let scope_of_side = &scopes[side.index()];
                scope.spawn(move || {
                    let fetching = |done: usize, total: usize| {
                        let _ = counts.send((side, done, total));
                    };
                    prepare(
                        sides.get(side),
                        collection,
                        changes,
                        in_scope_ref,
                        side,
                        scope_of_side,
                        &fetching,
                    )
                })
            };
            let b = fetch(Side::B, changes_b);
            let a = fetch(Side::A, changes_a);
            drop(counts);
            let mut sofar = [(0, 0); 2];
            for (side, done, total) in counted {
                sofar[side.index()] = (done, total);
                let sum = |pick: fn(&(usize, usize)) -> usize| {
                    u64::try_from(sofar.iter().map(pick).sum::<usize>()).unwrap_or(u64::MAX)
                };
                progress(Progress::Count {
                    phase: Phase::Fetching,
                    done: sum(|c| c.0),
                    total: sum(|c| c.1),
                });
            }
            (join(a), join(b))
        });
        // An item the time-range answer left out is not looked at. That is only safe while the
        // other side has nothing this run would create on the deferring side: such an item might
        // be one of those left out (the server and davsync may disagree about an instance at the
        // window's edge). Then the deferring side is prepared again, fetching what it deferred.
        let [kept_a, kept_b] = kept;
        let mut prepared = [a, b];
        for (side, kept) in [(Side::A, kept_a), (Side::B, kept_b)] {
            let (this, other) = (side.index(), side.other().index());
            if prepared[this].deferred.is_empty()
                || !would_create(&prepared[other], &prepared[this], &in_scope, window)
            {
                continue;
            }
            let scope = Scope {
                defer: false,
                ..scopes[this]
            };
            let collection = [a_coll.as_ref(), b_coll.as_ref()][this];
            // Rare and after the main fetch: no progress of its own.
            prepared[this] = prepare(
                sides.get(side),
                collection,
                kept,
                &in_scope,
                side,
                &scope,
                &|_, _| {},
            );
        }
        let [a, b] = prepared;
        report.notes.extend(limit_notes(&options.filters, [&a, &b]));
        // Out of the date window: left out of the plan on both sides (and the status rows with
        // them), so nothing is copied and nothing deleted; the rows stay for when it comes back.
        let (mut a, mut b) = (a, b);
        // A side whose items are all outside the window lists nothing to the planner, yet it is
        // not emptied (an unmounted disk, a wiped server): the planner's refusal is for a side
        // that lists nothing at all.
        let holds_items = [&a, &b].map(|p| !p.listing.is_empty() || !p.deferred.is_empty());
        let outside = match window.is_open() {
            true => FxHashSet::default(),
            false => {
                let status_outside = match in_scope.is_empty() {
                    true => FxHashSet::default(),
                    false => status
                        .idents_out_of_window(coll, window)?
                        .into_iter()
                        .collect(),
                };
                out_of_window(window, [&a, &b], &in_scope, &status_outside)
            }
        };
        let planned: Cow<'_, [StatusItem]> = match outside.is_empty() {
            true => Cow::Borrowed(&in_scope),
            false => {
                for prepared in [&mut a, &mut b] {
                    prepared
                        .listing
                        .items
                        .retain(|item| !outside.contains(item.ident.as_ref()));
                }
                in_scope
                    .iter()
                    .filter(|s| !outside.contains(&s.ident))
                    .cloned()
                    .collect()
            }
        };
        let deferred = a.deferred.len() + b.deferred.len();
        report.out_of_scope = u64::try_from(outside.len() + deferred).unwrap_or(u64::MAX);
        for unreadable in a.listing.unreadable.iter().chain(&b.listing.unreadable) {
            report.errors.push(Problem {
                ident: unreadable.href.clone(),
                message: unreadable.reason.clone(),
            });
        }
        let plan_options = PlanOptions {
            force_delete: options.force_delete || holds_items == [true, true],
            mode: options.mode,
        };
        let actions = match plan(&a.listing, &b.listing, &planned, plan_options) {
            Ok(actions) => actions,
            Err(refusal) => {
                report.refused = Some(refusal.to_string());
                return Ok(report);
            }
        };
        (actions, [a.state, b.state], [a.fetched, b.fetched])
    };

    let mut written = sync_metadata(
        sides,
        &current,
        status,
        coll,
        options,
        &mut report,
        progress,
    )?;
    if options.dry_run {
        for action in &actions {
            let collections = [a_coll.as_ref(), b_coll.as_ref()];
            count_planned(action, &options.resolution, collections, &mut report);
            if !action.is_status_only() {
                progress(Progress::Planned(action));
            }
        }
        return Ok(report);
    }
    let mut executor = Executor {
        sides,
        collections: [a_coll, b_coll],
        fetched,
        batch_sources: Default::default(),
        spans: !window.is_open(),
        resolution: &options.resolution,
        interrupt: options.interrupt,
        never_written: guard,
        unfetched: Default::default(),
    };
    let total = u64::try_from(actions.len()).unwrap_or(u64::MAX);
    let mut done = 0;
    let end = executor.run(&actions, status, coll, &mut |action, outcome| {
        match outcome {
            Outcome::Done => {
                count_done(action, &options.resolution, &mut report);
                for side in written_sides(action) {
                    written[side.index()] = true;
                }
                progress(Progress::Applied(action));
            }
            Outcome::Open(message) => {
                progress(Progress::Open(action, &message));
                report.conflicts.push(Problem {
                    ident: known_as(action).into_owned(),
                    message,
                })
            }
            Outcome::Failed(message) => {
                progress(Progress::Failed(action, &message));
                report.errors.push(Problem {
                    ident: known_as(action).into_owned(),
                    message,
                });
            }
            Outcome::Skipped => {}
        }
        done += 1;
        progress(Progress::Count {
            phase: Phase::Applying,
            done,
            total,
        });
    })?;
    if let Some(message) = end.flush_error {
        report.errors.push(Problem {
            ident: String::new(),
            message,
        });
    }
    report.interrupted = end.not_done;
    // A hook that failed after its write: the write stands (and is recorded), the failure is
    // this collection's error.
    for failure in [sides.a, sides.b]
        .iter()
        .flat_map(|storage| storage.take_hook_failures())
    {
        report.errors.push(Problem {
            ident: failure.target.clone().unwrap_or_default(),
            message: failure.to_string(),
        });
    }
    if report.is_clean() {
        // Only a clean run may move the remembered states forward: a change left unsynced
        // must be reported again by the next delta. A side this run wrote to gets no state at
        // all: its state was read before our writes, and a server whose token is a hash of the
        // content (Xandikos) gives that same token again if another client undoes our writes,
        // which would hide the undoing. The next run lists that side in full instead.
        for (side, state) in [(Side::A, &a_state), (Side::B, &b_state)] {
            let key = STATE_KEYS[side.index()];
            match state {
                Some(state) if !written[side.index()] => {
                    status.set_collection_meta(coll, key, state)?
                }
                _ => status.remove_collection_meta(coll, key)?,
            }
        }
    }
    status.record_run(
        coll,
        &RunRecord {
            finished_at: options.now,
            created: report.created,
            updated: report.updated,
            deleted: report.deleted,
            conflicts: report.conflicts.clone(),
            failures: report
                .errors
                .iter()
                .cloned()
                .chain(report.interrupted.map(|left| Problem {
                    ident: String::new(),
                    message: format!("interrupted: {left} actions not done"),
                }))
                .collect(),
        },
    )?;
    Ok(report)
}

/// The sides an applied action wrote to.
fn written_sides(action: &Action) -> Vec<Side> {
    match action {
        Action::Create { from, .. }
        | Action::Update { from, .. }
        | Action::Restore { from, .. } => {
            vec![from.other()]
        }
        Action::Delete { on, .. } => vec![*on],
        // A resolved conflict wrote the loser's side, or both for a merge.
        Action::Conflict { .. } => vec![Side::A, Side::B],
        Action::Record { .. } | Action::Forget { .. } | Action::Skip { .. } => Vec::new(),
    }
}

fn count_done(action: &Action, resolution: &ConflictResolution, report: &mut CollectionReport) {
    match action {
        Action::Update { mirror: true, .. } | Action::Restore { mirror: true, .. } => {
            report.mirror_overwritten += 1
        }
        Action::Delete { mirror: true, .. } => report.mirror_deleted += 1,
        _ => {}
    }
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
fn count_planned(
    action: &Action,
    resolution: &ConflictResolution,
    collections: [Option<&CollectionInfo>; 2],
    report: &mut CollectionReport,
) {
    match action {
        Action::Conflict { a, b, status, .. } if *resolution == ConflictResolution::Report => {
            report.conflicts.push(Problem {
                ident: known_as(action).into_owned(),
                message: conflict_message(collections, a, b, status.as_deref()),
            })
        }
        Action::Skip {
            reason: SkipReason::DuplicateUid { .. },
            ..
        } => report.errors.push(Problem {
            ident: known_as(action).into_owned(),
            message: action.to_string(),
        }),
        _ => count_done(action, resolution, report),
    }
}

/// How an open conflict is reported: what happened, the two versions by full path or URL, and
/// how to settle it.
fn conflict_message(
    collections: [Option<&CollectionInfo>; 2],
    a: &ItemVersion,
    b: &ItemVersion,
    status: Option<&StatusItem>,
) -> String {
    let what = match status {
        Some(_) => "changed on both sides",
        None => "created differently on both sides",
    };
    let place = |side: Side, version: &ItemVersion| match collections[side.index()] {
        Some(c) => item_location(c, &version.href),
        None => version.href.clone(),
    };
    format!(
        "{what}: a {}, b {}; make both the same, or set the pair's conflict_resolution",
        place(Side::A, a),
        place(Side::B, b)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_compare_by_what_they_name() {
        assert!(same_address(
            "https://h/dav/alice%40x/cal/",
            "https://h/dav/alice@x/cal"
        ));
        assert!(same_address("/home/u/cal", "/home/u/cal/"));
        assert!(!same_address(
            "https://h/dav/cal/",
            "https://other/dav/cal/"
        ));
        assert!(!same_address("https://h/dav/cal/", "https://h/dav/cal2/"));
        assert!(!same_address("/home/u/cal", "/home/u/cal2"));
        // A vdir whose path happens to equal a server's path is another place.
        assert!(!same_address("/dav/cal/", "https://h/dav/cal/"));
    }

    #[test]
    fn collections_lie_below_their_storage() {
        assert!(is_under("/home/u/cal/work", "/home/u/cal"));
        assert!(is_under("/home/u/cal/work", "/home/u/cal/"));
        assert!(!is_under("/home/u/calendars/work", "/home/u/cal"));
        assert!(is_under("http://h:1/alice/work/", "http://h:1/"));
        assert!(!is_under("http://h:1/alice/work/", "http://h:2/"));
    }

    #[test]
    fn a_change_of_item_types_drops_the_remembered_states() {
        let dir = tempfile::tempdir().unwrap();
        let status = StatusDb::open(&dir.path().join("p.db")).unwrap();
        let coll = status.collection("cal").unwrap();
        let remember = || {
            for key in STATE_KEYS {
                status.set_collection_meta(coll, key, "token").unwrap();
            }
        };
        let states = || STATE_KEYS.map(|key| status.collection_meta(coll, key).unwrap());
        let kept = [Some("token".to_owned()), Some("token".to_owned())];
        let events = ["VEVENT".to_owned()];

        remember();
        assert!(!check_item_types(&status, coll, &[], false).unwrap());
        assert_eq!(states(), kept);
        // Restricting drops them, once; a dry run only says so.
        assert!(check_item_types(&status, coll, &events, true).unwrap());
        assert_eq!(states(), kept);
        assert!(check_item_types(&status, coll, &events, false).unwrap());
        assert_eq!(states(), [None, None]);
        remember();
        assert!(!check_item_types(&status, coll, &["vevent".to_owned()], false).unwrap());
        assert_eq!(states(), kept);
        // So does lifting the restriction.
        assert!(check_item_types(&status, coll, &[], false).unwrap());
        assert_eq!(states(), [None, None]);
        assert!(!check_item_types(&status, coll, &[], false).unwrap());
    }

    #[test]
    fn a_side_is_unchanged_only_when_its_listing_is_exactly_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let status = StatusDb::open(&dir.path().join("p.db")).unwrap();
        let coll = status.collection("cal").unwrap();
        let version = |href: &str, etag: &str| ItemVersion {
            href: href.into(),
            etag: etag.into(),
            hash: "h".into(),
        };
        for (ident, href, etag) in [("u1", "1.ics", "e1"), ("u2", "2.ics", "e2")] {
            let row = StatusItem {
                ident: ident.into(),
                a: version(href, etag),
                b: version(&format!("b-{href}"), "b-etag"),
            };
            status
                .insert(coll, &row, &crate::status::StoredContent::of_bytes(b"x"))
                .unwrap();
        }
        let entry = |href: &str, etag: &str| ListEntry {
            href: href.into(),
            etag: etag.into(),
            content: None,
        };
        let full = |entries: &[(&str, &str)]| ChangeSet {
            changes: Changes::Full(entries.iter().map(|(h, e)| entry(h, e)).collect()),
            state: None,
            unreadable: Vec::new(),
        };
        let changes = |changes: Changes| ChangeSet {
            changes,
            state: None,
            unreadable: Vec::new(),
        };
        let cases: Vec<(&str, ChangeSet, bool)> = vec![
            (
                "the same entries",
                full(&[("2.ics", "e2"), ("1.ics", "e1")]),
                true,
            ),
            ("a storage that says so", changes(Changes::Unchanged), true),
            (
                "an empty delta",
                changes(Changes::Delta {
                    changed: Vec::new(),
                    removed: Vec::new(),
                }),
                true,
            ),
            (
                "a changed tag",
                full(&[("1.ics", "e1"), ("2.ics", "e3")]),
                false,
            ),
            (
                "a weak tag",
                full(&[("1.ics", "e1"), ("2.ics", "W/e2")]),
                false,
            ),
            (
                "a new entry",
                full(&[("1.ics", "e1"), ("2.ics", "e2"), ("3.ics", "e")]),
                false,
            ),
            ("a missing entry", full(&[("1.ics", "e1")]), false),
            (
                "a renamed entry",
                full(&[("1.ics", "e1"), ("3.ics", "e2")]),
                false,
            ),
            (
                "one entry twice",
                full(&[("1.ics", "e1"), ("1.ics", "e1")]),
                false,
            ),
            (
                "a delta with a removal",
                changes(Changes::Delta {
                    changed: Vec::new(),
                    removed: vec!["1.ics".into()],
                }),
                false,
            ),
            (
                "an entry that cannot be read",
                ChangeSet {
                    unreadable: vec![UnreadableItem {
                        href: "4.ics".into(),
                        reason: "broken".into(),
                        unidentified: false,
                    }],
                    ..full(&[("1.ics", "e1"), ("2.ics", "e2")])
                },
                false,
            ),
        ];
        for (case, listed, expected) in cases {
            let got = unchanged_since_status(&status, coll, Side::A, &listed).unwrap();
            assert_eq!(got, expected, "{case}");
        }
        // Side B's own hrefs and tags count for side B.
        let b_side = full(&[("b-1.ics", "b-etag"), ("b-2.ics", "b-etag")]);
        assert!(unchanged_since_status(&status, coll, Side::B, &b_side).unwrap());
        assert!(!unchanged_since_status(&status, coll, Side::A, &b_side).unwrap());
    }

    /// An all-day event `uid` on `day` (`YYYYMMDD`).
    fn event_on(uid: &str, day: &str) -> Item {
        let text = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
             DTSTART;VALUE=DATE:{day}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
        Item::parse(text.into_bytes()).unwrap()
    }

    fn version(href: &str) -> ItemVersion {
        ItemVersion {
            href: href.into(),
            etag: "e".into(),
            hash: "h".into(),
        }
    }

    /// A side listing `idents`: fetched in this run with the day given, or vouched for by
    /// the status (`None`).
    fn side(items: &[(&str, Option<&str>)]) -> Prepared<'static> {
        let mut prepared = Prepared {
            listing: Listing::default(),
            fetched: FxHashMap::default(),
            state: None,
            deferred: Vec::new(),
            left_out_types: BTreeMap::new(),
        };
        for (ident, day) in items {
            let href = format!("{ident}.ics");
            if let Some(day) = day {
                prepared.fetched.insert(href.clone(), event_on(ident, day));
            }
            prepared.listing.items.push(ListedItem {
                ident: Cow::Owned((*ident).to_owned()),
                version: version(&href).into(),
            });
        }
        prepared
    }

    #[test]
    fn an_ident_is_out_of_the_window_when_any_version_that_counts_is() {
        let window = Window {
            start: CivilDate::new(2026, 1, 1).map(CivilDate::days_since_epoch),
            end: CivilDate::new(2026, 12, 31).map(CivilDate::days_since_epoch),
        };
        let (in_window, out) = (Some("20260601"), Some("20250601"));
        // (A's version, B's version, the status row's span is outside, out of the window?)
        // `None`: vouched for by the status; `Some(None)`: listed there; missing: absent.
        type Version = Option<Option<&'static str>>;
        let cases: [(&str, Version, Version, bool, bool); 9] = [
            ("both in", Some(in_window), Some(None), false, false),
            ("moved out on a", Some(out), Some(None), false, true),
            (
                "moved out on a, back in on both",
                Some(in_window),
                Some(in_window),
                true,
                false,
            ),
            ("time passed, unchanged", Some(None), Some(None), true, true),
            ("time passed, deleted on b", Some(None), None, true, true),
            (
                "time passed, changed on a, deleted on b",
                Some(in_window),
                None,
                true,
                true,
            ),
            ("in, deleted on b", Some(None), None, false, false),
            ("gone from both", None, None, true, false),
            ("new on a outside", Some(out), None, false, true),
        ];
        for (what, a, b, status_out, expected) in cases {
            let ident = "x";
            let listed = |v: Version| match v {
                Some(day) => side(&[(ident, day)]),
                None => side(&[]),
            };
            let row = StatusItem {
                ident: ident.into(),
                a: version("x.ics"),
                b: version("x.ics"),
            };
            let new = what.starts_with("new");
            let status: Vec<StatusItem> = if new { vec![] } else { vec![row] };
            let status_outside: FxHashSet<String> = match status_out {
                true => [ident.to_owned()].into_iter().collect(),
                false => FxHashSet::default(),
            };
            let outside = out_of_window(window, [&listed(a), &listed(b)], &status, &status_outside);
            assert_eq!(outside.contains(ident), expected, "{what}");
        }
    }

    #[test]
    fn item_locations_are_full_paths_or_urls_without_doubled_paths() {
        let coll = |id: &str| CollectionInfo {
            name: "work".into(),
            id: id.into(),
        };
        let server = coll("https://dav.example.com/alice/work/");
        assert_eq!(
            item_location(&server, "/alice/work/x.ics"),
            "https://dav.example.com/alice/work/x.ics"
        );
        assert_eq!(
            item_location(&server, "x.ics"),
            "https://dav.example.com/alice/work/x.ics"
        );
        assert_eq!(
            item_location(&coll("/home/a/cal/work"), "x.ics"),
            "/home/a/cal/work/x.ics"
        );
    }
}
