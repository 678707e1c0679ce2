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
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::config::{CollectionsSpec, ConflictResolution, MetadataKey};
use crate::item::Item;
use crate::metadata::{Described, PropertyAction, plan_property};
use crate::model::{
    ItemVersion, ListedItem, Listing, Side, StatusItem, UnreadableItem, is_weak_etag,
};
use crate::pairing::{CollectionPair, match_collections};
use crate::plan::{Action, PlanOptions, SkipReason, plan};
use crate::status::{CollectionId, Problem, RunRecord, StatusDb, StatusError};
use crate::storage::{
    ChangeSet, Changes, CollectionInfo, Fetched, ItemError, Storage, StorageError,
};
pub use execute::known_as;
use execute::{Executor, Outcome};

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
    /// Collection properties to sync.
    pub metadata: Vec<MetadataKey>,
    /// Set (by a signal handler, say) to stop: the writes under way finish and are recorded,
    /// no further action is started, and the report says how many were left.
    pub interrupt: Option<&'static AtomicBool>,
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
    /// A collection property was (or, in a dry run, would be) changed; described for people.
    Property(&'a str),
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
    /// Set when the run was interrupted: the number of actions with storage writes not done.
    pub interrupted: Option<u64>,
    /// Things the user should know that are neither errors nor conflicts (such as a collection
    /// synced like a first sync because it is not the one the status database knew).
    pub notes: Vec<String>,
}

impl CollectionReport {
    /// True when everything in the collection is in sync.
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty()
            && self.errors.is_empty()
            && self.refused.is_none()
            && self.interrupted.is_none()
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

/// Like [`pair_collections`], but starting discovery where the last run's ended (remembered in
/// the status database), and remembering where this one ended: on a DAV server that saves
/// the principal and home-set lookups, leaving one request for a sync with nothing to do.
pub fn discover_with_hints(
    spec: &CollectionsSpec,
    sides: &Sides<'_>,
    status: &StatusDb,
) -> Result<Result<Vec<CollectionPair>, StorageError>, StatusError> {
    let storages = [sides.a, sides.b];
    for (keys, storage) in HINT_KEYS.iter().zip(storages) {
        // A hint belongs to the storage that found it: after the user points `url` or
        // `username` elsewhere, it would keep syncing the old place.
        let owner = status.meta(keys.owner)?;
        if owner.as_deref() != Some(storage.identity().as_str()) {
            continue;
        }
        if let Some(hint) = status.meta(keys.hint)? {
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
        let action = plan_property(a.as_deref(), b.as_deref(), synced, &options.resolution);
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
                let result = match target.collections[on.index()] {
                    Some(collection) => {
                        sides
                            .get(on)
                            .set_metadata(collection, key, value.as_deref())
                    }
                    None => Ok(()),
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
/// is a first sync: nothing is deleted, identical items are adopted and differing ones are
/// reported as conflicts. Returns the note saying so, if it came to that. Records the current
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
    let note = match moved.is_empty() {
        true => None,
        false => Some(format!(
            "{}: synced like a first sync (nothing deleted, identical items kept, different ones              reported as conflicts)",
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
    let current = current.join(",");
    let last = status.collection_meta(coll, ITEM_TYPES_KEY)?;
    if last.as_deref().unwrap_or("") == current {
        return Ok(false);
    }
    if !dry_run {
        for key in STATE_KEYS {
            status.remove_collection_meta(coll, key)?;
        }
        match current.is_empty() {
            true => status.remove_collection_meta(coll, ITEM_TYPES_KEY)?,
            false => status.set_collection_meta(coll, ITEM_TYPES_KEY, &current)?,
        }
    }
    Ok(true)
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
/// not there; `excluded` are the status entries known to be of such a type, which are not even
/// fetched while their version tag is unchanged.
fn prepare<'s>(
    storage: &dyn Storage,
    collection: Option<&CollectionInfo>,
    change_set: Option<ChangeSet>,
    status: &'s [StatusItem],
    excluded: &[&StatusItem],
    side: Side,
    allowed: &[String],
) -> Prepared<'s> {
    let mut prepared = Prepared {
        listing: Listing::default(),
        fetched: HashMap::new(),
        state: None,
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
    let excluded: FxHashMap<&str, &str> = excluded
        .iter()
        .map(|s| (s.side(side).href.as_str(), s.side(side).etag.as_str()))
        .collect();
    let from_status = |s: &'s StatusItem| ListedItem {
        ident: Cow::Borrowed(s.ident.as_str()),
        version: Cow::Borrowed(s.side(side)),
    };
    let entries = match change_set.changes {
        Changes::Full(entries) => entries,
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
            (_, None) => to_fetch.push(entry.href),
        }
    }
    let to_fetch: Vec<&str> = to_fetch.iter().map(String::as_str).collect();
    let fetched = storage.get_many(collection, &to_fetch);
    for (href, result) in carried.into_iter().chain(fetched) {
        let reason = match result {
            Ok(fetched) => match Item::parse(fetched.bytes) {
                Ok(item) if !allowed.is_empty() && !is_allowed(&item, allowed) => {
                    // An item synced as an allowed type that now is of another one would look
                    // deleted on this side: it cannot be synced, but must not be deleted.
                    if !known.contains_key(href.as_str()) {
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
                        version: Cow::Owned(ItemVersion {
                            href: href.clone(),
                            etag: fetched.etag,
                            hash,
                        }),
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
    prepared
}

fn is_allowed(item: &Item, allowed: &[String]) -> bool {
    item.component()
        .is_some_and(|c| allowed.iter().any(|a| a.eq_ignore_ascii_case(c)))
}

/// Where a person finds an item: a vdir file's full path, or a server item's full URL. A
/// server names its items by absolute path (`/alice/work/x.ics`), which is resolved against the
/// collection URL instead of appended to it.
pub(crate) fn item_location(collection: &CollectionInfo, href: &str) -> String {
    if href.contains("://") || (href.starts_with('/') && collection.id.contains("://")) {
        return crate::storage::dav::href::join(&collection.id, href);
    }
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
    let allowed = allowed_types(sides.a.item_types(), sides.b.item_types());
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
            return Ok(report);
        }
    };
    let current = CollectionSides {
        collections: [a_coll.as_ref(), b_coll.as_ref()],
        created: [pair.a.is_none(), pair.b.is_none()],
    };
    let first_sync = check_identity(status, coll, &current, options)?;
    // A dry run changes nothing in the status database: it plans as if it had been set aside.
    let forget = first_sync.is_some() && options.dry_run;
    report.notes.extend(first_sync);
    let types_changed = check_item_types(status, coll, &allowed, options.dry_run)?;
    let since = |side: Side| -> Result<Option<String>, StatusError> {
        if forget || types_changed {
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
    let list = |storage: &dyn Storage, collection: Option<&CollectionInfo>, since: Option<&str>| {
        collection
            .map(|c| storage.list_changes(c, since, fetch_all))
            .transpose()
    };
    let (known, changes_a, changes_b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| list(sides.a, a_coll.as_ref(), since_a.as_deref()));
        let b = scope.spawn(|| list(sides.b, b_coll.as_ref(), since_b.as_deref()));
        let known = match forget {
            true => Ok(Vec::new()),
            false => status.items(coll),
        };
        (known, join(a), join(b))
    });
    let known = known?;
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
    let (changes_a, changes_b) = match (changes_a, changes_b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            report.refused = Some(e.to_string());
            return Ok(report);
        }
    };
    let (a, b) = std::thread::scope(|scope| {
        let b = scope.spawn(|| {
            prepare(
                sides.b,
                b_coll.as_ref(),
                changes_b,
                &in_scope,
                &excluded,
                Side::B,
                &allowed,
            )
        });
        let a = prepare(
            sides.a,
            a_coll.as_ref(),
            changes_a,
            &in_scope,
            &excluded,
            Side::A,
            &allowed,
        );
        (a, join(b))
    });
    for unreadable in a.listing.unreadable.iter().chain(&b.listing.unreadable) {
        report.errors.push(Problem {
            ident: unreadable.href.clone(),
            message: unreadable.reason.clone(),
        });
    }
    let plan_options = PlanOptions {
        force_delete: options.force_delete,
    };
    let actions = match plan(&a.listing, &b.listing, &in_scope, plan_options) {
        Ok(actions) => actions,
        Err(refusal) => {
            report.refused = Some(refusal.to_string());
            return Ok(report);
        }
    };

    let (a_state, b_state) = (a.state, b.state);
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
    let executor = Executor {
        sides,
        collections: [a_coll, b_coll],
        fetched: [a.fetched, b.fetched],
        resolution: &options.resolution,
        interrupt: options.interrupt,
    };
    let end = executor.run(
        &actions,
        status,
        coll,
        &mut |action, outcome| match outcome {
            Outcome::Done => {
                count_done(action, &options.resolution, &mut report);
                for side in written_sides(action) {
                    written[side.index()] = true;
                }
                progress(Progress::Applied(action));
            }
            Outcome::Open(message) => report.conflicts.push(Problem {
                ident: known_as(action).into_owned(),
                message,
            }),
            Outcome::Failed(message) => {
                progress(Progress::Failed(action, &message));
                report.errors.push(Problem {
                    ident: known_as(action).into_owned(),
                    message,
                });
            }
            Outcome::Skipped => {}
        },
    )?;
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
                message: conflict_message(collections, a, b, status.as_ref()),
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
