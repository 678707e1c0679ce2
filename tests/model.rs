//! Property-based state-machine test of the sync engine against a model of its intended
//! semantics.
//!
//! Each case is a random list of [`Op`]s interpreted against two real vdirs (side A and side B,
//! temporary directories), a real [`StatusDb`] and [`sync_collection`] called directly, with
//! `conflict_resolution = "a wins"` so that every outcome is determined. Proptest shrinks the op
//! list; a failing case prints the minimal list and the trace of what each op did on disk.
//!
//! # What the ops do
//!
//! Between syncs, on either side, like a user or another client would: create an item (UID from
//! a small pool, so collisions and duplicate UIDs happen, or no UID at all), edit its SUMMARY,
//! delete it, `touch` it (mtime only), rewrite the same content differently serialized (CRLF or
//! LF, folded or not, property order, volatile PRODID/DTSTAMP changed: not a change), change
//! its UID (or drop it), add a second item with the same UID (or the same UID-less content),
//! rename the file, and resolve a duplicate by deleting all but one of its files. Writes are in
//! place or by rename, with a fresh mtime (weak version tag) or an mtime seconds in the past
//! (strong tag, trusted without reading). Syncs: a normal one; one through
//! [`FaultInjectingStorage`] where some writes are refused before reaching the vdir, some are
//! performed but reported as failed (what `kill -9` between a write and its status record
//! leaves) and some flushes fail (the durability barrier before the executor commits a batch
//! of status records, whose failure drops the batch); and an interrupted one (after k writes,
//! the k-th possibly performed-but-failed, every further write and flush fails, so the open
//! batch is dropped, as a `kill -9` would).
//!
//! # The model
//!
//! The model keeps one thing: `base`, per ident (UID, or `sha256:<normalized hash>` for a
//! UID-less item), the content both sides last agreed on, i.e. what the status database must
//! remember. Content is compared as (UID, SUMMARY), parsed from the files by a parser of this
//! test, so serialization differences never count. Before every sync both vdirs are read; per
//! ident, with `a`/`b` the content on each side (absent = deleted) the model predicts:
//!
//! - a side holding the ident in several files: skipped, nothing changes for that ident;
//! - `a == b`: no write; `base := a` (a record or forget in the status);
//! - only one side differs from `base`: that side wins (create, update or delete on the other);
//! - both differ: an edit beats a delete (restore); two different edits are a conflict, A wins;
//! - the whole collection is refused when one side or both hold no item and `base` is not
//!   empty.
//!
//! After every sync (faulty or not) it checks, per ident: exactly the predicted action kind was
//! attempted (so conflicts are reported exactly for idents edited differently on both sides
//! since they were last agreed); exactly one storage write for each write action, on the
//! predicted side, and none elsewhere; the side that was not written is unchanged; the written
//! side holds either its old content or the predicted one, and the latter exactly when the
//! write was performed; no side ever holds an ident in two files unless the user put them there;
//! no temporary or unparsable file is visible. `base` takes the predicted content (or, for
//! `a == b`, that content) exactly when the action was reported applied and its batch of status
//! records was committed, which the model reads off the order of writes, flushes and reported
//! actions (the executor runs with concurrency 1 here). A performed-but-failed write, or one
//! whose batch was dropped, leaves the written side changed while `base` stays, which the next
//! sync must see as "both sides alike" and record without a write. The status database must
//! then hold exactly `base` (idents and hashes).
//!
//! After a fault-free sync additionally: every ident that is not a duplicate has the same
//! content on both sides; a second sync performs no storage write and reports nothing created,
//! updated or deleted. Every case ends with a fault-free sync.
//!
//! Not covered: unreadable or malformed items, concurrent edits during a sync, the
//! conditional-write races, conflict resolution other than "a wins", collections other than
//! the root collection, concurrent writes (the mock reports a concurrency of 1 so that fault
//! decisions are reproducible), batches split by size or age (a run here has a handful of
//! actions; the timeline reading would handle a split, but none is provoked).
//!
//! `PROPTEST_CASES` overrides the number of cases (64).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::intercept::{Intercept, Intercepted};
use davsync::config::{CollectionsSpec, ConflictResolution};
use davsync::model::Side;
use davsync::plan::Action;
use davsync::status::StatusDb;
use davsync::storage::vdir::VdirStorage;
use davsync::storage::{CollectionInfo, ItemError, Storage, StorageError, Written};
use davsync::sync::{
    CollectionReport, Progress, Sides, SyncOptions, pair_collections, sync_collection,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------------

/// What the mock does with one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Passed through.
    Pass,
    /// Refused without touching the inner storage.
    FailBefore,
    /// Performed on the inner storage, then reported as failed.
    FailAfter,
}

/// How the writes and flushes of one sync run fail.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FaultMode {
    /// Everything passes.
    Clean,
    /// The i-th write or flush follows `decisions[i]`: a write passes on 0–5, fails before on
    /// 6–7, fails after on 8–9; a flush fails on 8–9. Beyond the list everything passes.
    Random(Vec<u8>),
    /// Writes before `after` pass; write `after` fails after performing when `last_after`,
    /// before otherwise; from then on the run is dead: every write fails before and every
    /// flush fails, so the open batch of status records is dropped, as a `kill -9` would.
    Interrupt { after: usize, last_after: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    Create,
    Update,
    Delete,
}

/// One write the executor asked for.
#[derive(Debug, Clone)]
struct WriteRecord {
    side: Side,
    kind: WriteKind,
    /// The href written (for a create: the href it got, or the name hint if not performed).
    href: String,
    /// The bytes written (create and update).
    bytes: Option<Vec<u8>>,
    /// The inner storage performed the write.
    performed: bool,
    /// The executor was told that the write succeeded.
    reported_ok: bool,
}

/// What happened in a run, in order.
#[derive(Debug, Clone)]
enum Mark {
    Write(WriteRecord),
    /// The executor asked a storage to make its writes durable before committing a batch of
    /// status records; `ok: false` makes it drop the batch.
    Flush {
        ok: bool,
    },
    /// The executor reported an action; `applied` means recorded in the open batch.
    Action {
        ident: String,
        kind: &'static str,
        applied: bool,
    },
}

/// The decisions and the timeline, shared by both sides of one run and the progress callback.
#[derive(Debug)]
struct FaultScript {
    mode: FaultMode,
    /// Writes and flushes decided so far.
    steps: usize,
    writes: usize,
    dead: bool,
    timeline: Vec<Mark>,
}

impl FaultScript {
    fn new(mode: FaultMode) -> Arc<Mutex<FaultScript>> {
        Arc::new(Mutex::new(FaultScript {
            mode,
            steps: 0,
            writes: 0,
            dead: false,
            timeline: Vec::new(),
        }))
    }

    fn decision(&mut self) -> Option<u8> {
        let n = self.steps;
        self.steps += 1;
        match &self.mode {
            FaultMode::Random(decisions) => decisions.get(n).map(|d| d % 10),
            _ => None,
        }
    }

    fn decide_write(&mut self) -> Fault {
        let decision = self.decision();
        let n = self.writes;
        self.writes += 1;
        match &self.mode {
            FaultMode::Clean => Fault::Pass,
            FaultMode::Random(_) => match decision {
                None | Some(0..=5) => Fault::Pass,
                Some(6 | 7) => Fault::FailBefore,
                Some(_) => Fault::FailAfter,
            },
            FaultMode::Interrupt { after, last_after } => {
                if n < *after {
                    return Fault::Pass;
                }
                self.dead = true;
                if n == *after && *last_after {
                    Fault::FailAfter
                } else {
                    Fault::FailBefore
                }
            }
        }
    }

    fn decide_flush(&mut self) -> bool {
        let decision = self.decision();
        match &self.mode {
            FaultMode::Clean => true,
            FaultMode::Random(_) => !matches!(decision, Some(8 | 9)),
            FaultMode::Interrupt { .. } => !self.dead,
        }
    }
}

/// Mock storage for fault injection: wraps a real storage and, driven by a [`FaultScript`],
/// makes writes fail before they reach the inner storage (a plain refusal) or after it performed
/// them (the executor is told it failed although it happened: the state a `kill -9` between a
/// storage write and its status record leaves), and makes flushes (the durability barrier
/// before a batch of status records is committed) fail. Reads pass through. Every write and
/// flush goes into the script's timeline. It reports a concurrency of 1 whatever the inner
/// storage says, so that the order of writes, flushes and actions, and therefore which
/// decision applies to which write, is reproducible.
struct FaultInjectingStorage<S: Storage> {
    inner: S,
    side: Side,
    script: Arc<Mutex<FaultScript>>,
}

impl<S: Storage> FaultInjectingStorage<S> {
    fn new(inner: S, side: Side, script: Arc<Mutex<FaultScript>>) -> Intercepted<Self> {
        Intercepted(FaultInjectingStorage {
            inner,
            side,
            script,
        })
    }

    fn injected(href: &str, fault: Fault) -> ItemError {
        ItemError::Io {
            path: href.to_owned(),
            source: io::Error::other(format!("injected fault: {fault:?}")),
        }
    }

    /// Runs one write under the script: `write` performs it on the inner storage and returns
    /// the href it concerned.
    fn write<T>(
        &self,
        kind: WriteKind,
        href: &str,
        bytes: Option<&[u8]>,
        write: impl FnOnce() -> Result<T, ItemError>,
        href_of: impl Fn(&T) -> String,
    ) -> Result<T, ItemError> {
        let mut script = self.script.lock().unwrap();
        let fault = script.decide_write();
        let mut record = WriteRecord {
            side: self.side,
            kind,
            href: href.to_owned(),
            bytes: bytes.map(<[u8]>::to_vec),
            performed: false,
            reported_ok: false,
        };
        let result = match fault {
            Fault::FailBefore => Err(Self::injected(href, fault)),
            Fault::Pass | Fault::FailAfter => match write() {
                Ok(done) => {
                    record.performed = true;
                    record.href = href_of(&done);
                    if fault == Fault::Pass {
                        record.reported_ok = true;
                        Ok(done)
                    } else {
                        Err(Self::injected(href, fault))
                    }
                }
                Err(e) => Err(e),
            },
        };
        script.timeline.push(Mark::Write(record));
        result
    }
}

impl<S: Storage> Intercept for FaultInjectingStorage<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    fn flush(&self) -> Result<(), StorageError> {
        let mut script = self.script.lock().unwrap();
        let ok = script.decide_flush() && self.inner.flush().is_ok();
        script.timeline.push(Mark::Flush { ok });
        if ok {
            Ok(())
        } else {
            Err(StorageError::Other("injected fault: flush failed".into()))
        }
    }

    fn concurrency(&self) -> usize {
        1
    }

    fn create(
        &self,
        collection: &CollectionInfo,
        name_hint: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        self.write(
            WriteKind::Create,
            name_hint,
            Some(bytes),
            || self.inner.create(collection, name_hint, bytes),
            |w: &Written| w.href.clone(),
        )
    }

    fn update(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        self.write(
            WriteKind::Update,
            href,
            Some(bytes),
            || self.inner.update(collection, href, expected_etag, bytes),
            |w: &Written| w.href.clone(),
        )
    }

    fn delete(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
    ) -> Result<(), ItemError> {
        self.write(
            WriteKind::Delete,
            href,
            None,
            || self.inner.delete(collection, href, expected_etag),
            |()| href.to_owned(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Items: model content, serialization, parsing
// ---------------------------------------------------------------------------------------------

/// UID pool; one needs a hashed file name, one has an `@`.
const UIDS: [&str; 5] = ["u0", "u1", "u2", "odd uid/3", "u4@example.com"];

/// The content of an item as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ev {
    uid: Option<String>,
    summary: String,
}

fn summary(n: u8) -> String {
    // Several summaries share a length, so in-place edits often keep the file size.
    format!("event {n}{}", " pad".repeat(usize::from(n % 3)))
}

/// How an item is serialized; never part of its content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    crlf: bool,
    fold: bool,
    swap: bool,
    stamp: u8,
}

fn render(ev: &Ev, style: Style) -> Vec<u8> {
    let eol = if style.crlf { "\r\n" } else { "\n" };
    let at = 3 + 2 * usize::from(style.stamp);
    let fold = |line: String| -> String {
        if style.fold && line.len() > at + 1 {
            format!("{}{eol} {}", &line[..at], &line[at..])
        } else {
            line
        }
    };
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        format!("PRODID:-//davsync model test {}//EN", style.stamp),
        "BEGIN:VEVENT".to_owned(),
    ];
    if let Some(uid) = &ev.uid {
        lines.push(fold(format!("UID:{uid}")));
    }
    lines.push(format!("DTSTAMP:2024010{}T000000Z", style.stamp + 1));
    let mut props = vec![
        fold(format!("SUMMARY:{}", ev.summary)),
        "DTSTART:20240101T100000Z".to_owned(),
    ];
    if style.swap {
        props.reverse();
    }
    lines.extend(props);
    lines.push("END:VEVENT".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    let mut text = lines.join(eol);
    text.push_str(eol);
    text.into_bytes()
}

/// The test's own reading of a file: unfold, then UID and SUMMARY. `None` for anything that is
/// not a complete calendar object (a torn or empty file).
fn parse_ev(bytes: &[u8]) -> Option<Ev> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix(' ') {
            lines.last_mut()?.push_str(rest);
        } else if !raw.is_empty() {
            lines.push(raw.to_owned());
        }
    }
    if lines.first()? != "BEGIN:VCALENDAR" || lines.last()? != "END:VCALENDAR" {
        return None;
    }
    let uid = lines
        .iter()
        .find_map(|l| l.strip_prefix("UID:"))
        .map(str::to_owned);
    let summary = lines
        .iter()
        .find_map(|l| l.strip_prefix("SUMMARY:"))?
        .to_owned();
    Some(Ev { uid, summary })
}

/// The engine's identity of an item: its UID, or `sha256:` and the normalized hash.
fn ident(ev: &Ev) -> String {
    match &ev.uid {
        Some(uid) => uid.clone(),
        None => format!("sha256:{}", content_hash(ev)),
    }
}

fn content_hash(ev: &Ev) -> String {
    davsync::vobject::normalized_hash(&render(ev, Style::default()))
}

fn side_index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// One side as found on disk: href → content.
type Snapshot = BTreeMap<String, Ev>;

/// Reads a vdir; every visible name must be a complete item, and nothing hidden may be left.
fn scan(dir: &Path) -> Result<Snapshot, String> {
    let mut snap = Snapshot::new();
    for entry in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            return Err(format!("{}: leftover hidden file {name}", dir.display()));
        }
        let bytes = fs::read(entry.path()).map_err(|e| format!("{name}: {e}"))?;
        let ev = parse_ev(&bytes).ok_or_else(|| {
            format!(
                "{}/{name}: not a complete item: {:?}",
                dir.display(),
                String::from_utf8_lossy(&bytes)
            )
        })?;
        snap.insert(name, ev);
    }
    Ok(snap)
}

/// ident → the (href, content) pairs holding it.
fn by_ident(snap: &Snapshot) -> BTreeMap<String, Vec<(String, Ev)>> {
    let mut map: BTreeMap<String, Vec<(String, Ev)>> = BTreeMap::new();
    for (href, ev) in snap {
        map.entry(ident(ev))
            .or_default()
            .push((href.clone(), ev.clone()));
    }
    map
}

// ---------------------------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------------------------

/// An mtime of a write: `None` leaves the fresh one (a weak version tag), `Some((s, ns))` sets
/// it that far in the past (a strong tag, as for an edit made a while before the sync).
type Age = Option<(u64, u32)>;

#[derive(Debug, Clone)]
enum Op {
    Create {
        side: Side,
        uid: Option<usize>,
        summary: u8,
        style: Style,
        name_by_uid: bool,
        age: Age,
    },
    Edit {
        side: Side,
        pick: u8,
        summary: u8,
        style: Style,
        atomic: bool,
        age: Age,
    },
    Delete {
        side: Side,
        pick: u8,
    },
    Touch {
        side: Side,
        pick: u8,
        age: (u64, u32),
    },
    Restyle {
        side: Side,
        pick: u8,
        style: Style,
        atomic: bool,
        age: Age,
    },
    ChangeUid {
        side: Side,
        pick: u8,
        uid: Option<usize>,
        age: Age,
    },
    Duplicate {
        side: Side,
        pick: u8,
        summary: u8,
        age: Age,
    },
    Rename {
        side: Side,
        pick: u8,
    },
    ResolveDuplicate {
        side: Side,
        keep: u8,
    },
    Sync(FaultMode),
}

fn side_strategy() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::A), Just(Side::B)]
}

fn style_strategy() -> impl Strategy<Value = Style> {
    (any::<bool>(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(|(crlf, fold, swap, stamp)| {
        Style {
            crlf,
            fold,
            swap,
            stamp,
        }
    })
}

fn age_strategy() -> impl Strategy<Value = Age> {
    prop_oneof![Just(None), (3u64..100, 0u32..1_000_000_000).prop_map(Some)]
}

fn uid_strategy() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![1 => Just(None), 4 => (0..UIDS.len()).prop_map(Some)]
}

fn user_op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (side_strategy(), uid_strategy(), 0u8..6, style_strategy(), any::<bool>(), age_strategy())
            .prop_map(|(side, uid, summary, style, name_by_uid, age)| Op::Create {
                side, uid, summary, style, name_by_uid, age
            }),
        6 => (side_strategy(), any::<u8>(), 0u8..6, style_strategy(), any::<bool>(), age_strategy())
            .prop_map(|(side, pick, summary, style, atomic, age)| Op::Edit {
                side, pick, summary, style, atomic, age
            }),
        3 => (side_strategy(), any::<u8>()).prop_map(|(side, pick)| Op::Delete { side, pick }),
        2 => (side_strategy(), any::<u8>(), (3u64..100, 0u32..1_000_000_000))
            .prop_map(|(side, pick, age)| Op::Touch { side, pick, age }),
        2 => (side_strategy(), any::<u8>(), style_strategy(), any::<bool>(), age_strategy())
            .prop_map(|(side, pick, style, atomic, age)| Op::Restyle {
                side, pick, style, atomic, age
            }),
        2 => (side_strategy(), any::<u8>(), uid_strategy(), age_strategy())
            .prop_map(|(side, pick, uid, age)| Op::ChangeUid { side, pick, uid, age }),
        1 => (side_strategy(), any::<u8>(), 0u8..6, age_strategy())
            .prop_map(|(side, pick, summary, age)| Op::Duplicate { side, pick, summary, age }),
        2 => (side_strategy(), any::<u8>()).prop_map(|(side, pick)| Op::Rename { side, pick }),
        2 => (side_strategy(), any::<u8>())
            .prop_map(|(side, keep)| Op::ResolveDuplicate { side, keep }),
    ]
}

fn sync_op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Sync(FaultMode::Clean)),
        3 => prop::collection::vec(0u8..10, 1..10).prop_map(|d| Op::Sync(FaultMode::Random(d))),
        2 => (0usize..5, any::<bool>())
            .prop_map(|(after, last_after)| Op::Sync(FaultMode::Interrupt { after, last_after })),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![7 => user_op_strategy(), 3 => sync_op_strategy()]
}

// ---------------------------------------------------------------------------------------------
// The world: two vdirs, a status database, the model
// ---------------------------------------------------------------------------------------------

/// What the model predicts for one ident in one sync.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pred {
    /// Duplicate UID on a side: left alone.
    Skip,
    /// Both sides alike: no write, the status follows.
    Same(Option<Ev>),
    /// One write on `target`, leaving `merged` there.
    Write {
        target: Side,
        merged: Option<Ev>,
        kind: &'static str,
    },
}

fn predict(base: Option<&Ev>, a: Option<&Ev>, b: Option<&Ev>) -> Pred {
    if a == b {
        return Pred::Same(a.cloned());
    }
    let (target, merged, conflict) = match (a != base, b != base) {
        (false, _) => (Side::A, b, false),
        (_, false) => (Side::B, a, false),
        (true, true) => match (a, b) {
            (None, Some(_)) => (Side::A, b, false),
            (Some(_), None) => (Side::B, a, false),
            _ => (Side::B, a, true),
        },
    };
    let current = match target {
        Side::A => a,
        Side::B => b,
    };
    let kind = if conflict {
        "conflict"
    } else if merged.is_none() {
        "delete"
    } else if current.is_none() && base.is_none() {
        "create"
    } else if current.is_none() {
        "restore"
    } else {
        "update"
    };
    Pred::Write {
        target,
        merged: merged.cloned(),
        kind,
    }
}

fn action_kind(action: &Action) -> &'static str {
    match action {
        Action::Create { .. } => "create",
        Action::Update { .. } => "update",
        Action::Restore { .. } => "restore",
        Action::Delete { .. } => "delete",
        Action::Record { .. } => "record",
        Action::Forget { .. } => "forget",
        Action::Conflict { .. } => "conflict",
        Action::Skip { .. } => "skip",
    }
}

/// What one sync did, as seen from outside.
struct SyncRun {
    report: CollectionReport,
    /// (ident, action kind, applied) for every action the executor handled.
    events: Vec<(String, &'static str, bool)>,
    /// Every write the storages were asked for.
    log: Vec<WriteRecord>,
    /// The idents whose status records were committed (recorded in a batch whose flushes
    /// succeeded).
    committed: BTreeSet<String>,
    /// Some flush failed, so some batch was dropped.
    flush_failed: bool,
}

struct World {
    _tmp: tempfile::TempDir,
    dirs: [PathBuf; 2],
    status: StatusDb,
    /// Per ident, the content both sides last agreed on.
    base: BTreeMap<String, Ev>,
    counter: u64,
    trace: String,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::Builder::new()
            .prefix("davsync-model-")
            .tempdir()
            .unwrap();
        let dirs = [tmp.path().join("a"), tmp.path().join("b")];
        for dir in &dirs {
            fs::create_dir(dir).unwrap();
        }
        let status = StatusDb::open(&tmp.path().join("status").join("pair.db")).unwrap();
        World {
            _tmp: tmp,
            dirs,
            status,
            base: BTreeMap::new(),
            counter: 0,
            trace: String::new(),
        }
    }

    fn dir(&self, side: Side) -> &Path {
        &self.dirs[side_index(side)]
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}.ics", self.counter)
    }

    fn note(&mut self, line: impl AsRef<str>) {
        self.trace.push_str(line.as_ref());
        self.trace.push('\n');
    }

    fn fail(&self, msg: impl AsRef<str>) -> ! {
        panic!("{}\n--- trace ---\n{}", msg.as_ref(), self.trace);
    }

    fn scan_side(&self, side: Side) -> Snapshot {
        scan(self.dir(side)).unwrap_or_else(|e| self.fail(e))
    }

    /// The href chosen by `pick` on `side`, if the side holds anything.
    fn pick(&self, side: Side, pick: &u8) -> Option<(String, Ev)> {
        let snap = self.scan_side(side);
        if snap.is_empty() {
            return None;
        }
        let n = usize::from(*pick) % snap.len();
        snap.into_iter().nth(n)
    }

    fn write_user(&mut self, side: Side, href: &str, bytes: &[u8], atomic: bool, age: Age) {
        let path = self.dir(side).join(href);
        if atomic {
            let temp = self.dir(side).join(format!(".user-edit-{}", self.counter));
            fs::write(&temp, bytes).unwrap();
            fs::rename(&temp, &path).unwrap();
        } else {
            fs::write(&path, bytes).unwrap();
        }
        if let Some(age) = age {
            set_age(&path, age);
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create {
                side,
                uid,
                summary: s,
                style,
                name_by_uid,
                age,
            } => {
                let ev = Ev {
                    uid: uid.map(|i| UIDS[i].to_owned()),
                    summary: summary(*s),
                };
                let by_uid = ev
                    .uid
                    .as_ref()
                    .filter(|u| *name_by_uid && u.bytes().all(|c| c.is_ascii_alphanumeric()))
                    .map(|u| format!("{u}.ics"))
                    .filter(|name| !self.dir(*side).join(name).exists());
                let href = by_uid.unwrap_or_else(|| self.fresh("n"));
                self.note(format!("{side}: create {href} {ev:?}"));
                self.write_user(*side, &href, &render(&ev, *style), false, *age);
            }
            Op::Edit {
                side,
                pick,
                summary: s,
                style,
                atomic,
                age,
            } => {
                if let Some((href, mut ev)) = self.pick(*side, pick) {
                    ev.summary = summary(*s);
                    self.note(format!("{side}: edit {href} -> {ev:?}"));
                    self.write_user(*side, &href, &render(&ev, *style), *atomic, *age);
                }
            }
            Op::Delete { side, pick } => {
                if let Some((href, _)) = self.pick(*side, pick) {
                    self.note(format!("{side}: delete {href}"));
                    fs::remove_file(self.dir(*side).join(href)).unwrap();
                }
            }
            Op::Touch { side, pick, age } => {
                if let Some((href, _)) = self.pick(*side, pick) {
                    self.note(format!("{side}: touch {href}"));
                    set_age(&self.dir(*side).join(href), *age);
                }
            }
            Op::Restyle {
                side,
                pick,
                style,
                atomic,
                age,
            } => {
                if let Some((href, ev)) = self.pick(*side, pick) {
                    self.note(format!("{side}: restyle {href} {style:?}"));
                    self.write_user(*side, &href, &render(&ev, *style), *atomic, *age);
                }
            }
            Op::ChangeUid {
                side,
                pick,
                uid,
                age,
            } => {
                if let Some((href, mut ev)) = self.pick(*side, pick) {
                    ev.uid = uid.map(|i| UIDS[i].to_owned());
                    self.note(format!("{side}: change uid of {href} -> {ev:?}"));
                    self.write_user(*side, &href, &render(&ev, Style::default()), true, *age);
                }
            }
            Op::Duplicate {
                side,
                pick,
                summary: s,
                age,
            } => {
                if let Some((_, mut ev)) = self.pick(*side, pick) {
                    if ev.uid.is_some() {
                        ev.summary = summary(*s);
                    }
                    let href = self.fresh("d");
                    self.note(format!("{side}: duplicate as {href} {ev:?}"));
                    self.write_user(*side, &href, &render(&ev, Style::default()), false, *age);
                }
            }
            Op::Rename { side, pick } => {
                if let Some((href, _)) = self.pick(*side, pick) {
                    let to = self.fresh("r");
                    self.note(format!("{side}: rename {href} -> {to}"));
                    let dir = self.dir(*side);
                    fs::rename(dir.join(&href), dir.join(&to)).unwrap();
                }
            }
            Op::ResolveDuplicate { side, keep } => {
                let groups = by_ident(&self.scan_side(*side));
                if let Some((ident, files)) = groups.into_iter().find(|(_, f)| f.len() > 1) {
                    let kept = usize::from(*keep) % files.len();
                    self.note(format!(
                        "{side}: resolve duplicate {ident}: keep {}",
                        files[kept].0
                    ));
                    for (i, (href, _)) in files.iter().enumerate() {
                        if i != kept {
                            fs::remove_file(self.dir(*side).join(href)).unwrap();
                        }
                    }
                }
            }
            Op::Sync(mode) => {
                let clean = *mode == FaultMode::Clean;
                let (refused, _) = self.sync_and_check(mode.clone());
                if clean && !refused {
                    self.converged();
                    self.note("(second sync, must write nothing)");
                    let (_, again) = self.sync_and_check(FaultMode::Clean);
                    let r = &again.report;
                    if !again.log.is_empty() || r.created + r.updated + r.deleted != 0 {
                        self.fail(format!(
                            "second sync after a clean one wrote: {:?}\n{:?}",
                            again.log, again.report
                        ));
                    }
                }
            }
        }
    }

    /// Runs one sync through fault-injecting wrappers.
    fn run(&mut self, mode: FaultMode) -> SyncRun {
        let script = FaultScript::new(mode);
        let a = FaultInjectingStorage::new(
            VdirStorage::new(self.dirs[0].clone(), ".ics".into()),
            Side::A,
            script.clone(),
        );
        let b = FaultInjectingStorage::new(
            VdirStorage::new(self.dirs[1].clone(), ".ics".into()),
            Side::B,
            script.clone(),
        );
        let sides = Sides { a: &a, b: &b };
        let pairs = pair_collections(&CollectionsSpec::Root, &sides).unwrap();
        assert_eq!(pairs.len(), 1);
        let options = SyncOptions {
            resolution: ConflictResolution::AWins,
            ..SyncOptions::default()
        };
        let timeline = script.clone();
        let mark = move |action: &Action, applied: bool| {
            timeline.lock().unwrap().timeline.push(Mark::Action {
                ident: action.ident().to_owned(),
                kind: action_kind(action),
                applied,
            })
        };
        let report = sync_collection(
            &sides,
            &pairs[0],
            &self.status,
            &options,
            &mut |p| match p {
                Progress::Applied(action) => mark(action, true),
                Progress::Failed(action, _) => mark(action, false),
                // Dry-run plans and collection properties: neither happens here.
                _ => {}
            },
        )
        .unwrap_or_else(|e| self.fail(format!("status database error: {e}")));
        let timeline = std::mem::take(&mut script.lock().unwrap().timeline);

        // Which records were committed. The executor records an action right after its
        // storage writes, then commits the open batch (flushing both storages first) when the
        // batch is full or old, and once at the end; an action's progress is reported after
        // that. So flushes between two reported actions belong to the commit that closed the
        // batch holding the second one, and flushes after the last one to the final commit.
        let mut run = SyncRun {
            report,
            events: Vec::new(),
            log: Vec::new(),
            committed: BTreeSet::new(),
            flush_failed: false,
        };
        let mut batch = Vec::new();
        let mut flushed: Option<bool> = None;
        let close = |batch: &mut Vec<String>, ok: bool, committed: &mut BTreeSet<String>| {
            if ok {
                committed.extend(batch.drain(..));
            } else {
                batch.clear();
            }
        };
        for mark in timeline {
            match mark {
                Mark::Write(w) => run.log.push(w),
                Mark::Flush { ok, .. } => {
                    run.flush_failed |= !ok;
                    flushed = Some(flushed.unwrap_or(true) && ok);
                }
                Mark::Action {
                    ident,
                    kind,
                    applied,
                } => {
                    if applied {
                        batch.push(ident.clone());
                        if let Some(ok) = flushed.take() {
                            close(&mut batch, ok, &mut run.committed);
                        }
                    } else if flushed.is_some() {
                        self.fail(format!("flush before the failed action {kind} {ident}"));
                    }
                    run.events.push((ident, kind, applied));
                }
            }
        }
        if let Some(ok) = flushed {
            close(&mut batch, ok, &mut run.committed);
        }
        if !batch.is_empty() {
            self.fail(format!("recorded but never committed: {batch:?}"));
        }
        run
    }

    /// Runs one sync and checks it against the model; returns whether it was refused.
    fn sync_and_check(&mut self, mode: FaultMode) -> (bool, SyncRun) {
        let clean = mode == FaultMode::Clean;
        self.note(format!("sync {mode:?}"));
        let before = [self.scan_side(Side::A), self.scan_side(Side::B)];
        let run = self.run(mode);
        let after = [self.scan_side(Side::A), self.scan_side(Side::B)];
        let refused = self.check(&before, &after, &run, clean);
        self.check_status_db();
        (refused, run)
    }

    fn check(
        &mut self,
        before: &[Snapshot; 2],
        after: &[Snapshot; 2],
        run: &SyncRun,
        clean: bool,
    ) -> bool {
        let report = &run.report;
        let should_refuse = !self.base.is_empty() && (before[0].is_empty() || before[1].is_empty());
        if should_refuse {
            if report.refused.is_none() {
                self.fail(format!(
                    "expected a refusal (emptied side or sides), got {report:?}"
                ));
            }
            if !run.events.is_empty() || !run.log.is_empty() || before != after {
                self.fail("a refused sync changed something");
            }
            return true;
        }
        if let Some(why) = &report.refused {
            self.fail(format!("unexpected refusal: {why}"));
        }
        if !report.conflicts.is_empty() {
            self.fail(format!(
                "open conflicts with \"a wins\": {:?}",
                report.conflicts
            ));
        }

        let groups_before = [by_ident(&before[0]), by_ident(&before[1])];
        let groups_after = [by_ident(&after[0]), by_ident(&after[1])];
        let idents: BTreeSet<String> = groups_before
            .iter()
            .flat_map(|g| g.keys().cloned())
            .chain(self.base.keys().cloned())
            .collect();
        for g in &groups_after {
            if let Some(stray) = g.keys().find(|i| !idents.contains(*i)) {
                self.fail(format!("ident {stray} appeared from nowhere"));
            }
        }

        // Each write the executor asked for, by (side, ident).
        let mut writes: BTreeMap<(Side, String), Vec<&WriteRecord>> = BTreeMap::new();
        for w in &run.log {
            let ev = match &w.bytes {
                Some(bytes) => parse_ev(bytes),
                None => before[side_index(w.side)].get(&w.href).cloned(),
            };
            let Some(ev) = ev else {
                self.fail(format!("write of something the model cannot name: {w:?}"));
            };
            writes.entry((w.side, ident(&ev))).or_default().push(w);
        }
        let mut events: BTreeMap<&str, Vec<(&'static str, bool)>> = BTreeMap::new();
        for (ident, kind, applied) in &run.events {
            events
                .entry(ident.as_str())
                .or_default()
                .push((kind, *applied));
        }

        let mut expected_errors = 0;
        let mut applied_writes = 0;
        let empty = Vec::new();
        for ident in &idents {
            let files = |g: &[BTreeMap<String, Vec<(String, Ev)>>; 2], s: Side| {
                g[side_index(s)].get(ident).unwrap_or(&empty).clone()
            };
            let (ba, bb) = (
                files(&groups_before, Side::A),
                files(&groups_before, Side::B),
            );
            let (aa, ab) = (files(&groups_after, Side::A), files(&groups_after, Side::B));
            let evs = events.remove(ident.as_str()).unwrap_or_default();
            let value = |f: &[(String, Ev)]| f.first().map(|(_, ev)| ev.clone());
            let pred = if ba.len() > 1 || bb.len() > 1 {
                Pred::Skip
            } else {
                predict(
                    self.base.get(ident),
                    value(&ba).as_ref(),
                    value(&bb).as_ref(),
                )
            };
            let ctx = format!(
                "ident {ident}: base {:?}, before a {ba:?} b {bb:?}, after a {aa:?} b {ab:?}, predicted {pred:?}, actions {evs:?}",
                self.base.get(ident)
            );
            for (side, f) in [(Side::A, &aa), (Side::B, &ab)] {
                let before_count = if side == Side::A { ba.len() } else { bb.len() };
                if f.len() > 1 && f.len() != before_count {
                    self.fail(format!("duplicate created on {side}: {ctx}"));
                }
            }
            match &pred {
                Pred::Skip => {
                    expected_errors += 1;
                    if evs != [("skip", false)] {
                        self.fail(format!("expected a skip: {ctx}"));
                    }
                    if aa != ba || ab != bb {
                        self.fail(format!("skipped ident changed: {ctx}"));
                    }
                    if writes.contains_key(&(Side::A, ident.clone()))
                        || writes.contains_key(&(Side::B, ident.clone()))
                    {
                        self.fail(format!("skipped ident written: {ctx}"));
                    }
                }
                Pred::Same(value) => {
                    if evs
                        .iter()
                        .any(|(k, ok)| !["record", "forget"].contains(k) || !ok)
                        || evs.len() > 1
                    {
                        self.fail(format!("expected no write: {ctx}"));
                    }
                    if aa != ba || ab != bb {
                        self.fail(format!("unwritten ident changed: {ctx}"));
                    }
                    if evs.is_empty() && self.base.get(ident) != value.as_ref() {
                        self.fail(format!("the status needed a record or forget: {ctx}"));
                    }
                    if run.committed.contains(ident) {
                        match value {
                            Some(ev) => self.base.insert(ident.clone(), ev.clone()),
                            None => self.base.remove(ident),
                        };
                    }
                }
                Pred::Write {
                    target,
                    merged,
                    kind,
                } => {
                    let (old_t, new_t, old_o, new_o) = match target {
                        Side::A => (&ba, &aa, &bb, &ab),
                        Side::B => (&bb, &ab, &ba, &aa),
                    };
                    if old_o != new_o {
                        self.fail(format!("the side that was not written changed: {ctx}"));
                    }
                    if writes.contains_key(&(target.other(), ident.clone())) {
                        self.fail(format!("written on the wrong side: {ctx}"));
                    }
                    let Some(recs) = writes.remove(&(*target, ident.clone())) else {
                        self.fail(format!("no write attempted: {ctx}"));
                    };
                    let [rec] = recs.as_slice() else {
                        self.fail(format!("several writes: {ctx}: {recs:?}"));
                    };
                    let write_kind = match *kind {
                        "create" | "restore" => WriteKind::Create,
                        "delete" => WriteKind::Delete,
                        _ => WriteKind::Update,
                    };
                    if rec.kind != write_kind {
                        self.fail(format!("{kind} done as a {:?}: {ctx}", rec.kind));
                    }
                    if evs.len() != 1 || evs[0].0 != *kind {
                        self.fail(format!("expected one {kind} action: {ctx}"));
                    }
                    if evs[0].1 != rec.reported_ok {
                        self.fail(format!("action outcome differs from the write's: {ctx}"));
                    }
                    let now = value(new_t);
                    let performed = now == *merged && new_t.len() <= 1;
                    if !performed && new_t != old_t {
                        self.fail(format!("written side holds neither old nor new: {ctx}"));
                    }
                    if performed != rec.performed {
                        self.fail(format!(
                            "disk says performed={performed}, the storage {}: {ctx}",
                            rec.performed
                        ));
                    }
                    if clean && !rec.reported_ok {
                        self.fail(format!("a write failed in a fault-free sync: {ctx}"));
                    }
                    if rec.reported_ok {
                        applied_writes += 1;
                    }
                    if rec.reported_ok && run.committed.contains(ident) {
                        match merged {
                            Some(ev) => self.base.insert(ident.clone(), ev.clone()),
                            None => self.base.remove(ident),
                        };
                    }
                    if !rec.reported_ok {
                        expected_errors += 1;
                    }
                }
            }
        }
        if !writes.is_empty() {
            self.fail(format!("unexpected writes: {writes:?}"));
        }
        if run.flush_failed {
            if clean {
                self.fail("a flush failed in a fault-free sync");
            }
            // One error says that the writes were not made durable and stay unrecorded.
            expected_errors += 1;
        }
        if !events.is_empty() {
            self.fail(format!("actions for unknown idents: {events:?}"));
        }
        if report.errors.len() != expected_errors {
            self.fail(format!(
                "expected {expected_errors} errors, report has {:?}",
                report.errors
            ));
        }
        if report.created + report.updated + report.deleted != applied_writes {
            self.fail(format!(
                "{applied_writes} writes applied, report says {report:?}"
            ));
        }
        false
    }

    /// After a fault-free sync: everything not held twice on a side is alike on both sides.
    fn converged(&self) {
        let a = by_ident(&self.scan_side(Side::A));
        let b = by_ident(&self.scan_side(Side::B));
        let single = |g: &BTreeMap<String, Vec<(String, Ev)>>,
                      other: &BTreeMap<String, Vec<(String, Ev)>>| {
            g.iter()
                .filter(|(i, f)| f.len() == 1 && other.get(*i).is_none_or(|o| o.len() <= 1))
                .map(|(i, f)| (i.clone(), f[0].1.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let (sa, sb) = (single(&a, &b), single(&b, &a));
        if sa != sb {
            self.fail(format!(
                "sides differ after a clean sync:\na {sa:?}\nb {sb:?}"
            ));
        }
        for (i, ev) in &sa {
            if self.base.get(i) != Some(ev) {
                self.fail(format!(
                    "{i}: synced content {ev:?} is not the model's {:?}",
                    self.base.get(i)
                ));
            }
        }
    }

    /// The status database must remember exactly the model's base.
    fn check_status_db(&self) {
        let coll = self.status.collection("").unwrap();
        let rows = self.status.items(coll).unwrap();
        let db: BTreeMap<String, (String, String)> = rows
            .into_iter()
            .map(|r| (r.ident, (r.a.hash, r.b.hash)))
            .collect();
        let model: BTreeMap<String, (String, String)> = self
            .base
            .iter()
            .map(|(i, ev)| (i.clone(), (content_hash(ev), content_hash(ev))))
            .collect();
        if db != model {
            self.fail(format!(
                "status database {db:?}\nmodel base {:?}",
                self.base
            ));
        }
    }
}

fn set_age(path: &Path, (secs, nanos): (u64, u32)) {
    let when = SystemTime::now() - Duration::new(secs, nanos);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn run_ops(ops: &[Op]) {
    let mut world = World::new();
    for op in ops {
        world.apply(op);
    }
    world.apply(&Op::Sync(FaultMode::Clean));
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn sync_agrees_with_the_model(ops in prop::collection::vec(op_strategy(), 20..40)) {
        run_ops(&ops);
    }
}

/// A fixed scenario through the same machinery, so that a broken harness shows up as a plain
/// failure rather than as a shrunk random case: edits on both sides, a performed-but-failed
/// write, a duplicate UID and its resolution.
#[test]
fn scripted_scenario() {
    let create = |side, uid: Option<usize>, summary| Op::Create {
        side,
        uid,
        summary,
        style: Style::default(),
        name_by_uid: true,
        age: Some((10, 0)),
    };
    let ops = vec![
        create(Side::A, Some(0), 0),
        create(Side::A, Some(1), 1),
        create(Side::B, None, 2),
        Op::Sync(FaultMode::Clean),
        Op::Edit {
            side: Side::A,
            pick: 0,
            summary: 3,
            style: Style {
                crlf: true,
                fold: true,
                swap: true,
                stamp: 2,
            },
            atomic: true,
            age: None,
        },
        Op::Sync(FaultMode::Interrupt {
            after: 0,
            last_after: true,
        }),
        create(Side::B, Some(2), 4),
        create(Side::B, Some(2), 5),
        Op::Sync(FaultMode::Random(vec![9, 9, 6])),
        Op::ResolveDuplicate {
            side: Side::B,
            keep: 0,
        },
    ];
    let mut world = World::new();
    for op in &ops {
        world.apply(op);
    }
    world.apply(&Op::Sync(FaultMode::Clean));
    let _ = writeln!(world.trace, "done");
    assert_eq!(
        by_ident(&world.scan_side(Side::A)).len(),
        4,
        "{}",
        world.trace
    );
}
