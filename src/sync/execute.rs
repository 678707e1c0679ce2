//! The executor: applies a plan's actions to the storages and records each one in the status
//! database as soon as it succeeded.
//!
//! Each action is split in two: [`Executor::perform`] does the storage writes and says what the
//! status database must now hold (an [`Effect`]); [`Recorder::record`] writes that, with a
//! compare-and-swap on the row. Storage writes of different items run concurrently (bounded by
//! the storages' [`Storage::concurrency`]) on worker threads, which also compress the content
//! to record ([`StoredContent`]); the status database is only touched from the calling thread,
//! which records effects while the workers go on writing. Actions go in batches of
//! [`BATCH_ACTIONS`]; the sources of the next batch that are not in memory are read while one
//! batch is written, and let go with their batch.
//!
//! Recording is a group commit: at most [`BATCH_ACTIONS`] actions (unless a storage's flush
//! rewrites everything: [`Storage::flush_rewrites_everything`]) or [`BATCH_TIME`] share one
//! short transaction, committed after the storages made the batch's writes durable
//! ([`Storage::flush`]). A crash loses at most one uncommitted batch of status rows; the
//! storages are then ahead of the status, which the planner resolves without writes.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::{Sides, conflict_message, item_location};
use crate::config::{ConflictResolution, SyncMode};
use crate::item::Item;
use crate::model::{ItemVersion, Side, StatusItem, is_weak_etag};
use crate::plan::{Action, SkipReason, mirroring_side};
use crate::status::{CollectionId, StatusDb, StatusError, StoredContent};
use crate::storage::{CollectionInfo, Fetched, ItemError, Storage, Written};

/// Most actions recorded in one status transaction.
const BATCH_ACTIONS: usize = 500;

/// How many effects a worker sends to the recording thread at once: waking that thread for
/// every one cost more than recording some. A slower storage's effects go sooner
/// ([`EFFECTS_WAIT`]).
const EFFECTS_SENT_TOGETHER: usize = 16;

/// Longest time an effect waits on its worker for others to be sent with.
const EFFECTS_WAIT: Duration = Duration::from_millis(20);

/// Longest time a recorded action waits for its batch to commit.
const BATCH_TIME: Duration = Duration::from_millis(500);

/// What became of one action.
pub(super) enum Outcome {
    /// Applied and recorded.
    Done,
    /// A conflict left open, with a description.
    Open(String),
    /// Not applied; the message says why.
    Failed(String),
    /// Nothing to apply (already reported elsewhere).
    Skipped,
}

/// How [`Item::ident`] starts for an item without a UID (a content hash nobody knows).
const NO_UID_PREFIX: &str = "sha256:";

/// How an action's item is named for people: its UID, or for an item without one its file or
/// href, marked "(no UID)" (the reason a server may refuse it).
pub fn known_as(action: &Action) -> Cow<'_, str> {
    let ident = action.ident();
    if !ident.starts_with(NO_UID_PREFIX) {
        return Cow::Borrowed(ident);
    }
    let href = match action {
        Action::Create { source, .. }
        | Action::Update { source, .. }
        | Action::Restore { source, .. } => Some(&source.href),
        Action::Delete { target, .. } => Some(&target.href),
        Action::Record { a, .. } | Action::Conflict { a, .. } => Some(&a.href),
        Action::Forget { status } => Some(&status.a.href),
        Action::Skip {
            reason: SkipReason::Unreadable { href, .. },
            ..
        } => Some(href),
        Action::Skip {
            reason: SkipReason::DuplicateUid { .. } | SkipReason::MayBeUnreadable { .. },
            ..
        } => None,
    };
    href.map_or(Cow::Borrowed(ident), |href| {
        Cow::Owned(format!("{href} (no UID)"))
    })
}

/// Per side (a, b), why davsync must never write to it: a `read_only` storage, or the source
/// of a one-way pair; `None` for a side that may be written.
pub fn never_written(mode: SyncMode, read_only: [bool; 2]) -> [Option<String>; 2] {
    let target = mirroring_side(mode);
    [Side::A, Side::B].map(|side| {
        if read_only[side.index()] {
            Some(format!("{side} is read-only (read_only = true)"))
        } else if target == Some(side.other()) {
            Some(format!(
                "{side} is the source of a one-way pair ({})",
                mode_name(mode)
            ))
        } else {
            None
        }
    })
}

/// How the config spells `mode`.
fn mode_name(mode: SyncMode) -> &'static str {
    match mode {
        SyncMode::TwoWay => "mode = \"two-way\"",
        SyncMode::AToB => "mode = \"a-to-b\"",
        SyncMode::BToA => "mode = \"b-to-a\"",
    }
}

/// The item a write copies, and where it was read, for messages.
#[derive(Clone, Copy)]
struct Source<'h, 'i> {
    /// The side it was read from; `None` for an item made here (a merge).
    side: Option<Side>,
    href: &'h str,
    item: &'i Item,
}

/// What the status database must hold after an action's storage writes. The content comes
/// compressed and read ([`StoredContent::of`], on the worker thread), so the recording thread
/// only writes rows.
enum Effect<'a> {
    /// A new row.
    Insert {
        row: StatusItem,
        content: StoredContent,
    },
    /// A row replaced; `None` content keeps the stored one.
    Replace {
        old: &'a StatusItem,
        row: StatusItem,
        content: Option<StoredContent>,
    },
    /// A row dropped.
    Remove(&'a StatusItem),
    /// Nothing to record; the outcome says why.
    Nothing(Outcome),
}

/// Everything the storage half of an action needs; shared by the worker threads.
pub(super) struct Executor<'a> {
    pub(super) sides: &'a Sides<'a>,
    pub(super) collections: [Option<CollectionInfo>; 2],
    pub(super) fetched: [FxHashMap<String, Item>; 2],
    /// Per side, the sources read again for the batch of actions under way
    /// ([`Executor::read_sources`]), let go with the batch.
    pub(super) batch_sources: [FxHashMap<String, Item>; 2],
    pub(super) resolution: &'a ConflictResolution,
    /// Once set, no further action is started; the ones under way finish and are recorded.
    pub(super) interrupt: Option<&'a AtomicBool>,
    /// Per side, why it must never be written (read-only, or the source of a one-way pair).
    /// The planner plans no such write; one that comes anyway is refused here, not performed.
    pub(super) never_written: [Option<String>; 2],
    /// Whether the content recorded gets its span read: only while a date window needs it
    /// (see [`StatusDb::fill_spans`]).
    pub(super) spans: bool,
    /// Per side, sources [`Executor::read_sources`] could not read, with the reason.
    pub(super) unfetched: [HashMap<String, String>; 2],
}

/// What [`Executor::read_sources`] read for a batch of actions.
#[derive(Default)]
struct SourcesRead {
    /// Per side, the items read, by href.
    items: [FxHashMap<String, Item>; 2],
    /// The ones that could not be read (or changed since listed): side, href, why.
    unreadable: Vec<(Side, String, String)>,
}

/// How a run of the executor ended, besides the outcomes of the actions it applied.
pub(super) struct RunEnd {
    /// Set when the last writes could not be made durable and were left unrecorded.
    pub(super) flush_error: Option<String>,
    /// Set when the run was interrupted: how many storage-writing actions were not started.
    pub(super) not_done: Option<u64>,
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

/// Records effects in the status database in bounded batches (see the module comment).
struct Recorder<'s> {
    status: &'s StatusDb,
    coll: CollectionId,
    storages: [&'s dyn Storage; 2],
    pending: usize,
    /// Most actions in one batch.
    batch_actions: usize,
    opened: Option<Instant>,
    /// Set when a batch could not be made durable and was not recorded.
    flush_error: Option<String>,
}

impl Recorder<'_> {
    /// Writes an effect. Only a database failure is an error.
    fn record(&mut self, effect: Effect<'_>) -> Result<Outcome, StatusError> {
        if let Effect::Nothing(outcome) = effect {
            return Ok(outcome);
        }
        if self.opened.is_none() {
            self.status.begin_batch()?;
            self.opened = Some(Instant::now());
        }
        let (status, coll) = (self.status, self.coll);
        match effect {
            Effect::Insert { row, content } => status.insert(coll, &row, &content)?,
            Effect::Replace { old, row, content } => {
                status.replace(coll, old, &row, content.as_ref())?
            }
            Effect::Remove(old) => status.remove(coll, old)?,
            Effect::Nothing(_) => {}
        }
        self.pending += 1;
        if self.pending >= self.batch_actions
            || self.opened.is_some_and(|t| t.elapsed() >= BATCH_TIME)
        {
            self.commit()?;
        }
        Ok(Outcome::Done)
    }

    /// Makes the batch's writes durable on both storages, then commits it; if they cannot be
    /// made durable the batch is not recorded (the next run finds the writes and records them).
    fn commit(&mut self) -> Result<(), StatusError> {
        if self.opened.take().is_none() {
            return Ok(());
        }
        self.pending = 0;
        for storage in self.storages {
            if let Err(e) = storage.flush() {
                self.flush_error = Some(format!(
                    "could not make writes durable ({e}); they stay unrecorded until the next sync"
                ));
                return self.status.rollback_batch();
            }
        }
        self.status.commit_batch()
    }
}
/// An item read again for a write, checked against its version as listed (and planned).
fn reread(fetched: Fetched, listed: &ItemVersion) -> Result<Item, String> {
    const CHANGED: &str = "changed since it was listed; left for the next sync";
    // A vdir file's tag loses its weakness marker as the file ages, between the listing and
    // now: the rest of the tag, and the hash, must match.
    if strong_part(&fetched.etag) != strong_part(&listed.etag) {
        return Err(CHANGED.to_owned());
    }
    // The same strong tag vouches for the content, as it does in a listing: its hash is the
    // listed one (parsing and hashing it again cost a sixth of a first sync's CPU).
    let bytes = match fetched.etag == listed.etag && !is_weak_etag(&listed.etag) {
        true => match Item::vouched(fetched.bytes, &listed.hash) {
            Ok(item) => return Ok(item),
            Err(bytes) => bytes,
        },
        false => fetched.bytes,
    };
    match Item::parse(bytes) {
        Ok(item) if item.hash() == listed.hash || item.matches_recorded(&listed.hash) => Ok(item),
        Ok(_) => Err(CHANGED.to_owned()),
        Err(malformed) => Err(malformed.to_string()),
    }
}

/// A version tag without its weakness marker (`W/`).
fn strong_part(etag: &str) -> &str {
    etag.strip_prefix("W/").unwrap_or(etag)
}

fn failed(message: String) -> Effect<'static> {
    Effect::Nothing(Outcome::Failed(message))
}

impl<'a> Executor<'a> {
    /// Applies `actions`, calling `done` for each one on this thread as it completes, until
    /// they are all done or the interrupt flag is set.
    ///
    /// Two stages overlap: a storage thread ([`Executor::apply`]) reads the sources of a batch
    /// of actions and performs them, and this thread records each effect as it arrives. Even
    /// with one write at a time (a vdir) the file writes and the database writes then run side
    /// by side. A database error stops the storage thread from starting more actions; the
    /// writes it already made stay unrecorded, which the next run resolves without writes.
    pub(super) fn run(
        &mut self,
        actions: &'a [Action],
        status: &StatusDb,
        coll: CollectionId,
        done: &mut dyn FnMut(&'a Action, Outcome),
    ) -> Result<RunEnd, StatusError> {
        // The merge command needs the last synced content, which only this thread may read.
        let mut ancestors = HashMap::new();
        if matches!(self.resolution, ConflictResolution::Command(_)) {
            for action in actions {
                if let Action::Conflict {
                    ident,
                    status: Some(_),
                    ..
                } = action
                {
                    let content = status.synced_content(coll, ident)?.unwrap_or_default();
                    ancestors.insert(ident.as_str(), content);
                }
            }
        }
        let mut recorder = Recorder {
            status,
            coll,
            storages: [self.sides.a, self.sides.b],
            pending: 0,
            batch_actions: match [self.sides.a, self.sides.b]
                .iter()
                .any(|s| s.flush_rewrites_everything())
            {
                true => usize::MAX,
                false => BATCH_ACTIONS,
            },
            opened: None,
            flush_error: None,
        };
        let abandoned = AtomicBool::new(false);
        // Bounded, so the storage thread runs at most a batch ahead of the records.
        let (sender, receiver) = mpsc::sync_channel(BATCH_ACTIONS / EFFECTS_SENT_TOGETHER);
        let storage_stage = &mut *self;
        let (recorded, left) = thread::scope(|scope| {
            let (ancestors, abandoned) = (&ancestors, &abandoned);
            let storage_thread =
                scope.spawn(move || storage_stage.apply(actions, ancestors, abandoned, sender));
            // Effects are recorded (and `done` hears of them) in the plan's order, whichever
            // worker finished first: the actions are handed out in that order and every one
            // handed out sends its effect, so the ones held back wait only for those under way.
            let mut next = 0;
            let mut held_back = BTreeMap::new();
            let mut recorded = Ok(());
            'received: for effects in receiver {
                held_back.extend(effects);
                while let Some((action, effect)) = held_back.remove(&next) {
                    next += 1;
                    match recorder.record(effect) {
                        Ok(outcome) => done(action, outcome),
                        Err(e) => {
                            abandoned.store(true, Ordering::SeqCst);
                            recorded = Err(e);
                            break 'received;
                        }
                    }
                }
            }
            (recorded, storage_thread.join())
        });
        recorded?;
        let left = left.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        recorder.commit()?;
        Ok(RunEnd {
            flush_error: recorder.flush_error,
            not_done: self
                .interrupted()
                .then(|| u64::try_from(left).unwrap_or(u64::MAX)),
        })
    }

    /// The storage stage of [`Executor::run`]: for each batch of actions, reads the sources not
    /// fetched yet, performs the actions (on up to the storages' [`Storage::concurrency`]
    /// threads) and sends each effect to the recording thread, then lets the sources go.
    /// Returns how many storage-writing actions were not started (after an interrupt).
    fn apply(
        &mut self,
        actions: &'a [Action],
        ancestors: &HashMap<&str, Vec<u8>>,
        abandoned: &AtomicBool,
        sender: mpsc::SyncSender<Vec<(usize, (&'a Action, Effect<'a>))>>,
    ) -> usize {
        let workers = self
            .sides
            .a
            .concurrency()
            .max(self.sides.b.concurrency())
            .max(1);
        let mut batches = actions.chunks(BATCH_ACTIONS).peekable();
        let mut read_ahead = batches.peek().map(|batch| self.read_sources(batch));
        let mut first_of_batch = 0;
        while let Some(batch) = batches.next() {
            let SourcesRead { items, unreadable } = read_ahead.take().unwrap_or_default();
            self.batch_sources = items;
            for (side, href, reason) in unreadable {
                self.unfetched[side.index()].insert(href, reason);
            }
            let queue = Mutex::new(batch.iter().enumerate());
            let this = &*self;
            let upcoming = batches.peek().copied();
            thread::scope(|scope| {
                for _ in 0..workers {
                    scope.spawn(|| {
                        let mut effects = Vec::with_capacity(EFFECTS_SENT_TOGETHER);
                        let mut first_unsent = Instant::now();
                        while let Some((i, action)) = this.next_action(&queue, abandoned) {
                            if effects.is_empty() {
                                first_unsent = Instant::now();
                            }
                            let effect = this.perform(action, ancestors);
                            effects.push((first_of_batch + i, (action, effect)));
                            let due = effects.len() == EFFECTS_SENT_TOGETHER
                                || first_unsent.elapsed() >= EFFECTS_WAIT;
                            if due && sender.send(std::mem::take(&mut effects)).is_err() {
                                return;
                            }
                        }
                        if !effects.is_empty() {
                            let _ = sender.send(effects);
                        }
                    });
                }
                // The next batch's sources are read while this one is written.
                read_ahead = upcoming.map(|batch| this.read_sources(batch));
            });
            if abandoned.load(Ordering::SeqCst) {
                return 0;
            }
            if self.interrupted() {
                let not_started = |action: &&Action| !action.is_status_only();
                let left = queue.into_inner().map_or(0, |rest| {
                    rest.map(|(_, action)| action).filter(not_started).count()
                });
                return left + batches.flatten().filter(not_started).count();
            }
            first_of_batch += batch.len();
        }
        0
    }

    fn interrupted(&self) -> bool {
        self.interrupt
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }

    /// The next action to start, or `None` when all are handed out, the run is interrupted
    /// (the ones left stay in the queue, to be counted) or its records were abandoned.
    fn next_action(
        &self,
        queue: &Mutex<std::iter::Enumerate<std::slice::Iter<'a, Action>>>,
        abandoned: &AtomicBool,
    ) -> Option<(usize, &'a Action)> {
        if self.interrupted() || abandoned.load(Ordering::SeqCst) {
            return None;
        }
        queue.lock().map(|mut q| q.next()).unwrap_or(None)
    }

    fn collection(&self, side: Side) -> Result<&CollectionInfo, String> {
        self.collections[side.index()]
            .as_ref()
            .ok_or_else(|| format!("side {side} has no such collection"))
    }

    fn item(&self, side: Side, href: &str) -> Result<&'_ Item, String> {
        if let Some(item) = self.held(side, href) {
            return Ok(item);
        }
        let location = match &self.collections[side.index()] {
            Some(c) => item_location(c, href),
            None => href.to_owned(),
        };
        Err(match self.unfetched[side.index()].get(href) {
            Some(reason) => format!("{location}: {reason}"),
            None => format!("{location} on {side} was not fetched (internal error)"),
        })
    }

    /// What the status database keeps of `item`'s content.
    fn stored(&self, item: &Item) -> StoredContent {
        StoredContent::of(item, self.spans)
    }

    /// The item at `href` on `side` if it is in memory: kept from the listing, or read for the
    /// batch under way.
    fn held(&self, side: Side, href: &str) -> Option<&Item> {
        let i = side.index();
        self.fetched[i]
            .get(href)
            .or_else(|| self.batch_sources[i].get(href))
    }

    /// Reads the items `actions` copy or record that are not in memory: those prepared
    /// without their content ([`Storage::reads_cheaply`]), and in a one-way pair the sources
    /// of overwrites and restores the listing took from the status without reading them. An
    /// item that cannot be read, or changed since it was listed (its version tag or its
    /// content hash), fails its own action only (the next run sees the change). Takes `&self`
    /// so that it runs while the batch before is being written.
    fn read_sources(&self, actions: &[Action]) -> SourcesRead {
        let mut sources = SourcesRead::default();
        for side in [Side::A, Side::B] {
            let Some(collection) = &self.collections[side.index()] else {
                continue;
            };
            // Only what the listing kept counts as held: the batch under way lets its own
            // sources go before these actions start.
            let held = |side: Side, version: &ItemVersion| {
                self.fetched[side.index()].contains_key(&version.href)
            };
            let wanted: HashMap<&str, &ItemVersion> = actions
                .iter()
                .flat_map(|action| -> Vec<&ItemVersion> {
                    match action {
                        Action::Create { from, source, .. }
                        | Action::Update { from, source, .. }
                        | Action::Restore { from, source, .. }
                            if *from == side =>
                        {
                            vec![source]
                        }
                        // Recorded with content from either side.
                        Action::Record {
                            a, b, status: None, ..
                        } if side == Side::A && !held(Side::B, b) => vec![a],
                        // A resolution copies or merges either side's item.
                        Action::Conflict { a, b, .. } => match side {
                            Side::A => vec![a],
                            Side::B => vec![b],
                        },
                        _ => Vec::new(),
                    }
                })
                .filter(|version| !held(side, version))
                .map(|version| (version.href.as_str(), version))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let hrefs: Vec<&str> = wanted.keys().copied().collect();
            for (href, result) in self.sides.get(side).get_many(collection, &hrefs) {
                let Some(listed) = wanted.get(href.as_str()) else {
                    continue;
                };
                match result
                    .map_err(|e| e.to_string())
                    .and_then(|f| reread(f, listed))
                {
                    Ok(item) => {
                        sources.items[side.index()].insert(href, item);
                    }
                    Err(reason) => sources.unreadable.push((side, href, reason)),
                }
            }
        }
        sources
    }

    /// `e` as a person finds it: its href made a full path or URL (`<collection id>/<href>`)
    /// where the storage gave a bare name.
    fn located(&self, side: Side, e: &ItemError) -> String {
        let href = match e {
            ItemError::Changed { href }
            | ItemError::NotFound { href }
            | ItemError::Refused { href, .. }
            | ItemError::Transport { href, .. } => href,
            ItemError::Io { path, .. } => path,
            ItemError::Unidentified { location, .. } => location,
        };
        match &self.collections[side.index()] {
            Some(c) if !href.starts_with('/') && !href.contains("://") => {
                format!("{}/{e}", c.id.trim_end_matches('/'))
            }
            _ => e.to_string(),
        }
    }

    /// A write of `source` (the item as read from its side, where the user knows it) that
    /// `on` refused: the source's full path or URL, its UID, and the target with the reason.
    fn write_failure(&self, source: Source<'_, '_>, on: Side, e: &ItemError) -> String {
        let uid = source
            .item
            .uid()
            .map_or_else(|| "no UID".to_owned(), |uid| format!("UID {uid}"));
        format!(
            "{} ({uid}): not written to {on} as {}",
            self.source_location(source),
            self.located(on, e)
        )
    }

    /// Where the user knows the item a write copies: its full path or URL.
    fn source_location(&self, source: Source<'_, '_>) -> String {
        match source
            .side
            .and_then(|side| self.collections[side.index()].as_ref())
        {
            Some(c) => item_location(c, source.href),
            None => source.href.to_owned(),
        }
    }

    /// The storage on `on`, for a write of the item `what` names; an error for a side that must
    /// never be written.
    fn writable(&self, on: Side, what: &str) -> Result<&dyn Storage, String> {
        match &self.never_written[on.index()] {
            Some(why) => Err(format!("{what}: refused to write to {on}: {why}")),
            None => Ok(self.sides.get(on)),
        }
    }

    fn create(&self, on: Side, source: Source<'_, '_>) -> Result<Written, String> {
        let item = source.item;
        let hint = item
            .uid()
            .map_or_else(|| item.hash().to_owned(), str::to_owned);
        self.writable(on, &self.source_location(source))?
            .create(self.collection(on)?, &hint, item.bytes())
            .map_err(|e| self.write_failure(source, on, &e))
    }

    fn update(
        &self,
        on: Side,
        target: &ItemVersion,
        source: Source<'_, '_>,
    ) -> Result<Written, String> {
        self.writable(on, &self.source_location(source))?
            .update(
                self.collection(on)?,
                &target.href,
                &target.etag,
                source.item.bytes(),
            )
            .map_err(|e| self.write_failure(source, on, &e))
    }

    /// The item at `href` on `side`, as the source of a write.
    fn source<'h>(&self, side: Side, href: &'h str) -> Result<Source<'h, '_>, String> {
        Ok(Source {
            side: Some(side),
            href,
            item: self.item(side, href)?,
        })
    }

    /// The storage half of an action: writes, and what the status must record afterwards.
    fn perform(&self, action: &'a Action, ancestors: &HashMap<&str, Vec<u8>>) -> Effect<'a> {
        match self.try_perform(action, ancestors) {
            Ok(effect) => effect,
            Err(message) => failed(message),
        }
    }

    fn try_perform(
        &self,
        action: &'a Action,
        ancestors: &HashMap<&str, Vec<u8>>,
    ) -> Result<Effect<'a>, String> {
        Ok(match action {
            Action::Create {
                ident,
                from,
                source,
            } => {
                let copy = self.source(*from, &source.href)?;
                let written = self.create(from.other(), copy)?;
                Effect::Insert {
                    row: row(
                        ident,
                        *from,
                        ItemVersion::clone(source),
                        written.version_of(source),
                    ),
                    content: self.stored(copy.item),
                }
            }
            Action::Update {
                ident,
                from,
                source,
                target,
                status,
                ..
            } => {
                let copy = self.source(*from, &source.href)?;
                let written = self.update(from.other(), target, copy)?;
                let new = row(
                    ident,
                    *from,
                    ItemVersion::clone(source),
                    written.version_of(source),
                );
                // A target's own item that a mirror overwrote had no row yet.
                settled(status.as_deref(), new, self.stored(copy.item))
            }
            Action::Restore {
                ident,
                from,
                source,
                status,
                ..
            } => {
                let copy = self.source(*from, &source.href)?;
                let written = self.create(from.other(), copy)?;
                Effect::Replace {
                    old: status,
                    row: row(
                        ident,
                        *from,
                        ItemVersion::clone(source),
                        written.version_of(source),
                    ),
                    content: Some(self.stored(copy.item)),
                }
            }
            Action::Delete {
                on, target, status, ..
            } => {
                let collection = self.collection(*on)?;
                match self
                    .writable(*on, &item_location(collection, &target.href))?
                    .delete(collection, &target.href, &target.etag)
                {
                    // Already gone is what we wanted. An item only ever on the target of a
                    // one-way pair had no row to remove.
                    Ok(()) | Err(ItemError::NotFound { .. }) => match status {
                        Some(status) => Effect::Remove(status),
                        None => Effect::Nothing(Outcome::Done),
                    },
                    Err(e) => {
                        return Err(format!("not deleted on {on}: {}", self.located(*on, &e)));
                    }
                }
            }
            Action::Record {
                ident,
                a,
                b,
                status,
            } => {
                let new = row(ident, Side::A, ItemVersion::clone(a), ItemVersion::clone(b));
                let content = self
                    .held(Side::A, &a.href)
                    .or_else(|| self.held(Side::B, &b.href))
                    .map(|item| self.stored(item));
                match (status, content) {
                    (Some(old), content) => Effect::Replace {
                        old,
                        row: new,
                        content,
                    },
                    (None, Some(content)) => Effect::Insert { row: new, content },
                    (None, None) => {
                        return Err(format!(
                            "{ident}: content to record was not fetched (internal error)"
                        ));
                    }
                }
            }
            Action::Forget { status } => Effect::Remove(status),
            Action::Conflict {
                ident,
                a,
                b,
                status,
            } => self.resolve(ident, a, b, status.as_deref(), ancestors)?,
            Action::Skip { ident, reason } => Effect::Nothing(match reason {
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
                SkipReason::MayBeUnreadable { .. } => Outcome::Failed(action.to_string()),
            }),
        })
    }

    fn resolve(
        &self,
        ident: &str,
        a: &ItemVersion,
        b: &ItemVersion,
        status: Option<&'a StatusItem>,
        ancestors: &HashMap<&str, Vec<u8>>,
    ) -> Result<Effect<'a>, String> {
        let winner = match self.resolution {
            ConflictResolution::Report => {
                let collections = [self.collections[0].as_ref(), self.collections[1].as_ref()];
                return Ok(Effect::Nothing(Outcome::Open(conflict_message(
                    collections,
                    a,
                    b,
                    status,
                ))));
            }
            ConflictResolution::AWins => Side::A,
            ConflictResolution::BWins => Side::B,
            ConflictResolution::Command(cmd) => {
                let ancestor = ancestors.get(ident).map_or(&[][..], Vec::as_slice);
                return self.merge(cmd, ident, a, b, status, ancestor);
            }
        };
        let (win, lose) = match winner {
            Side::A => (a, b),
            Side::B => (b, a),
        };
        let copy = self.source(winner, &win.href)?;
        let written = self.update(winner.other(), lose, copy)?;
        let new = row(ident, winner, win.clone(), written.version_of(win));
        Ok(settled(status, new, self.stored(copy.item)))
    }

    /// Runs the user's merge command on (A, B, last synced) and writes its result to both
    /// sides. A failing command leaves the conflict open.
    fn merge(
        &self,
        cmd: &[String],
        ident: &str,
        a: &ItemVersion,
        b: &ItemVersion,
        status: Option<&'a StatusItem>,
        ancestor: &[u8],
    ) -> Result<Effect<'a>, String> {
        let merged = run_merge(
            cmd,
            self.item(Side::A, &a.href)?.bytes(),
            self.item(Side::B, &b.href)?.bytes(),
            ancestor,
        );
        let merged = match merged {
            Ok(bytes) => bytes,
            Err(why) => {
                return Ok(Effect::Nothing(Outcome::Open(format!(
                    "merge command: {why}"
                ))));
            }
        };
        let item = match Item::parse(merged) {
            Ok(item) => item,
            Err(e) => {
                return Ok(Effect::Nothing(Outcome::Open(format!(
                    "merge command produced a malformed item: {e}"
                ))));
            }
        };
        let merged = Source {
            side: None,
            href: "the merge command's result",
            item: &item,
        };
        // Both sides get the result: refuse before writing either, so neither gets it alone.
        for side in [Side::A, Side::B] {
            self.writable(side, ident)?;
        }
        let wa = self.update(Side::A, a, merged)?;
        let wb = self.update(Side::B, b, merged)?;
        let hash = item.hash().to_owned();
        let version = |w: Written| ItemVersion {
            href: w.href,
            etag: w.etag,
            hash: hash.clone(),
        };
        let new = row(ident, Side::A, version(wa), version(wb));
        Ok(settled(status, new, self.stored(&item)))
    }
}

/// The effect of a resolved conflict: a new row, or a replaced one.
fn settled(old: Option<&StatusItem>, row: StatusItem, content: StoredContent) -> Effect<'_> {
    match old {
        Some(old) => Effect::Replace {
            old,
            row,
            content: Some(content),
        },
        None => Effect::Insert { row, content },
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
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("{program}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "{program} exited with {status}; conflict left open"
        ));
    }
    std::fs::read(&paths[0]).map_err(|e| format!("{}: {e}", paths[0].display()))
}
