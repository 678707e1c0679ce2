//! `kill -9` test through the real binary.
//!
//! Two vdirs are paired (root collections, conflicts reported). 600 items are synced first;
//! then side A gets 3000 new items and side B 200, and of the synced items 100 are edited on A,
//! 100 on B, 50 deleted on A and 50 on B. `davsync -v sync` is started and killed with SIGKILL
//! eight times (more if too many runs finish before their kill), at a moment drawn from a seeded
//! xorshift: one round in four after a random delay up to the time reading every item takes
//! (so during listing, fetching, planning or the first writes), the others once the run has
//! reported a random number of applied actions (so anywhere among the writes and the group
//! commits of their status records, independently of the machine's speed). Between kills more
//! synced items are edited or deleted and new items created, on both sides. Every item is
//! edited on one side at most once, so no conflict is legitimate: a killed run may have copied
//! an edit without recording it, which the next run must recognize as "changed alike on both
//! sides", not as a conflict (an item edited again after such a copy is a conflict that no
//! engine could avoid, and is not what this test is about).
//!
//! The vdirs live on `/dev/shm` when it exists: a SIGKILL leaves the page cache alone, so the
//! test loses nothing there, and runs several times faster than on a disk.
//!
//! After every kill both sides are scanned: every visible `.ics` file is a complete item
//! (nothing torn or empty), hidden leftovers are only davsync's own temporary files. Then a final
//! sync must exit 0 with no conflicts; every UID is held by exactly one file on each side, both
//! copies byte-identical (davsync copies exact bytes) and equal to the last version the test
//! wrote (every edit and deletion made before or between kills is there); and one more sync
//! writes nothing (names, inodes, sizes and mtimes of all files unchanged).
//!
//! The same scenario runs a second time with side A a singlefile storage (`a/a.ics`, one
//! VCALENDAR holding every event; the storage keeps its writes in memory and replaces the file,
//! temporary file and rename, when the executor flushes a batch, by time only: every 0.5 s and
//! at the end). There the test edits side A through the file: it reads the file, changes,
//! deletes or appends VEVENTs, and writes it back as a whole through a temporary file, as an
//! editor would (once per batch of edits). Its counts are the vdir pair's (the variant takes a
//! few seconds in a debug build). As a run copies nothing to A before its first flush,
//! one kill in two of that variant is timed from the moment the run replaced `a.ics` (at once:
//! between the rename and the status commit, or up to a second later), and the rounds go on
//! until a few kills came after such a replacement. The scan after a kill requires `a.ics` to
//! be one complete VCALENDAR of complete VEVENTs (never torn) and allows as hidden leftover only
//! the storage's `.davsync-tmp-<pid>-a.ics`. Items are compared by their VEVENT component
//! (`BEGIN:VEVENT` to `END:VEVENT`): the file's VCALENDAR wrapper is the file's own, so a copy
//! to the vdir carries it instead of the test's; every vdir file must still be a complete item.
//!
//! `DAVSYNC_CRASH_SEED` picks another seed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant};

const SHARED: usize = 600;
const NEW_ON_A: usize = 3000;
const NEW_ON_B: usize = 200;
const EDITED: usize = 100;
const KILLS: usize = 8;
const MIN_EFFECTIVE_KILLS: usize = 3;
const MAX_ROUNDS: usize = 24;

/// A tiny xorshift64 generator: reproducible without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One item as the test writes it; the revision and the editing side are in the SUMMARY, and a
/// DESCRIPTION makes it a realistic size.
fn item(uid: &str, rev: u32, by: &str) -> Vec<u8> {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davsync crash test//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240301T100000Z\r\n\
         DTEND:20240301T110000Z\r\nSUMMARY:{uid} revision {rev} by {by}\r\n\
         DESCRIPTION:Lorem ipsum dolor sit amet\\, consectetur adipiscing elit\\, sed do eiusm\r\n \
         od tempor incididunt ut labore et dolore magna aliqua.\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    .into_bytes()
}

/// The UID of a complete item; `None` for anything torn, empty or otherwise not an item.
fn complete_item_uid(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text.starts_with("BEGIN:VCALENDAR\r\n") || !text.ends_with("END:VCALENDAR\r\n") {
        return None;
    }
    text.split("\r\n")
        .find_map(|l| l.strip_prefix("UID:"))
        .map(str::to_owned)
}

/// The storage side A is: side B is always a vdir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A vdir: one file per item.
    Vdir,
    /// A singlefile storage: the file `a/a.ics`, one VCALENDAR holding every event.
    Singlefile,
}

/// Item counts of a scenario (see the module comment).
struct Counts {
    shared: usize,
    new_on_a: usize,
    new_on_b: usize,
    /// Synced items edited on each side before the kills (deleted: half as many).
    edited: usize,
}

/// The file of side A when it is a single file.
const SINGLEFILE: &str = "a.ics";

/// The VCALENDAR lines around the events of a singlefile written by the test.
const CALENDAR_HEAD: &str =
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davsync crash test file//EN\r\n";
const CALENDAR_TAIL: &str = "END:VCALENDAR\r\n";

/// The VEVENT component (`BEGIN:VEVENT` to `END:VEVENT` and its line break) of an item.
fn vevent(bytes: &[u8]) -> &[u8] {
    let text = std::str::from_utf8(bytes).expect("items are UTF-8");
    let start = text.find("BEGIN:VEVENT\r\n").expect("an item has a VEVENT");
    let end = text[start..]
        .find("END:VEVENT\r\n")
        .map(|e| start + e + "END:VEVENT\r\n".len())
        .expect("an item's VEVENT ends");
    &bytes[start..end]
}

/// The events of a single calendar file, in order, as (UID, VEVENT text); `None` when the file
/// is not one complete VCALENDAR of complete VEVENTs each with a UID (torn, empty, doubled).
fn parse_calendar(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let body = text
        .strip_prefix("BEGIN:VCALENDAR\r\n")?
        .strip_suffix("END:VCALENDAR\r\n")?;
    if body.contains("BEGIN:VCALENDAR") || body.contains("END:VCALENDAR") {
        return None;
    }
    let mut events = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("BEGIN:VEVENT\r\n") {
        let len = rest[start..].find("END:VEVENT\r\n")? + "END:VEVENT\r\n".len();
        let event = &rest[start..start + len];
        if event[1..].contains("BEGIN:VEVENT") {
            return None;
        }
        let uid = event.split("\r\n").find_map(|l| l.strip_prefix("UID:"))?;
        events.push((uid.to_owned(), event.to_owned()));
        rest = &rest[start + len..];
    }
    (!rest.contains("END:VEVENT")).then_some(events)
}

/// Rewrites a file as a user's editor would: a temporary file renamed over it.
fn replace(path: &Path, bytes: &[u8]) {
    let temp = path.with_file_name(".editor-save.tmp");
    fs::write(&temp, bytes).unwrap();
    fs::rename(&temp, path).unwrap();
}

/// One side: UID → every (file name, bytes) holding it; for a single file, the bytes are the
/// event's VEVENT component.
type SideItems = BTreeMap<String, Vec<(String, Vec<u8>)>>;

/// Scans one side. Fails on a visible file that is not a complete item (or, for a single file,
/// a complete calendar) and on hidden files other than davsync's temporary files; returns the
/// items and the number of temporary files.
fn scan(dir: &Path, kind: Kind) -> (SideItems, usize) {
    let mut items = SideItems::new();
    let mut temps = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            // A vdir's temporary files are `.davsync-tmp-…`, a single file's
            // `.davsync-tmp-<pid>-<file name>`.
            let ours = match kind {
                Kind::Vdir => name.starts_with(".davsync-tmp-"),
                Kind::Singlefile => name
                    .strip_prefix(".davsync-tmp-")
                    .and_then(|r| r.split_once('-'))
                    .is_some_and(|(pid, file)| {
                        pid.bytes().all(|b| b.is_ascii_digit()) && file == SINGLEFILE
                    }),
            };
            assert!(ours, "{}: unexpected hidden file {name}", dir.display());
            temps += 1;
            continue;
        }
        let bytes = fs::read(entry.path()).unwrap();
        match kind {
            Kind::Vdir => {
                assert!(
                    name.ends_with(".ics"),
                    "{}: stray file {name}",
                    dir.display()
                );
                let uid = complete_item_uid(&bytes).unwrap_or_else(|| {
                    panic!(
                        "{}/{name}: torn or empty item ({} bytes): {:?}",
                        dir.display(),
                        bytes.len(),
                        String::from_utf8_lossy(&bytes)
                    )
                });
                items.entry(uid).or_default().push((name, bytes));
            }
            Kind::Singlefile => {
                assert!(name == SINGLEFILE, "{}: stray file {name}", dir.display());
                let events = parse_calendar(&bytes).unwrap_or_else(|| {
                    panic!(
                        "{}/{name}: not a complete calendar ({} bytes)",
                        dir.display(),
                        bytes.len(),
                    )
                });
                for (uid, event) in events {
                    items
                        .entry(uid)
                        .or_default()
                        .push((name.clone(), event.into_bytes()));
                }
            }
        }
    }
    if kind == Kind::Singlefile {
        assert!(
            dir.join(SINGLEFILE).is_file(),
            "{}: {SINGLEFILE} is gone",
            dir.display()
        );
    }
    (items, temps)
}

/// What the test expects on both sides after the final sync: UID → exact bytes.
struct Expected {
    items: BTreeMap<String, Vec<u8>>,
}

/// A change a user makes to one side.
enum Edit<'u> {
    Create(&'u str, Vec<u8>),
    Update(&'u str, Vec<u8>),
    Delete(&'u str),
}

/// A tree with `a/`, `b/`, `status/` and `config.toml`.
struct Tree {
    root: PathBuf,
    a: Kind,
}

impl Tree {
    fn new(root: PathBuf, a: Kind) -> Tree {
        for d in ["a", "b", "status"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let storage_a = match a {
            Kind::Vdir => format!(
                "type = \"vdir\"\npath = {:?}\nfileext = \".ics\"",
                root.join("a").display().to_string()
            ),
            Kind::Singlefile => format!(
                "type = \"singlefile\"\npath = {:?}",
                root.join("a").join(SINGLEFILE).display().to_string()
            ),
        };
        let config = format!(
            "status_path = {status:?}\n\n\
             [storage.a]\n{storage_a}\n\n\
             [storage.b]\ntype = \"vdir\"\npath = {b:?}\nfileext = \".ics\"\n\n\
             [pair.p]\na = \"a\"\nb = \"b\"\n",
            status = root.join("status").display().to_string(),
            b = root.join("b").display().to_string(),
        );
        fs::write(root.join("config.toml"), config).unwrap();
        Tree { root, a }
    }

    fn side(&self, side: &str) -> PathBuf {
        self.root.join(side)
    }

    fn kind(&self, side: &str) -> Kind {
        if side == "a" { self.a } else { Kind::Vdir }
    }

    fn scan(&self, side: &str) -> (SideItems, usize) {
        scan(&self.side(side), self.kind(side))
    }

    /// What the comparisons between the sides look at: the exact bytes of a vdir pair's items;
    /// with a single file, the VEVENT component (its VCALENDAR wrapper is the file's).
    fn compared<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        match self.a {
            Kind::Vdir => bytes,
            Kind::Singlefile => vevent(bytes),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_davsync"));
        cmd.arg("-c")
            .arg(self.root.join("config.toml"))
            .arg("sync")
            .env_remove("DAVSYNC_CONFIG")
            .env("HOME", &self.root);
        cmd
    }

    fn sync(&self) -> Output {
        self.command().output().unwrap()
    }

    /// Makes `edits` on one side as a user's client would. In a vdir: a new item is a new file
    /// named after its UID, an edit rewrites whatever file holds the item in place, a deletion
    /// removes it. In a single file: the file is read, its events changed (an edited event
    /// keeps its place, a new one goes at the end), and the file rewritten as a whole through
    /// a temporary file, once for all `edits`.
    fn apply(&self, side: &str, edits: Vec<Edit>, expected: &mut Expected) {
        for edit in &edits {
            match edit {
                Edit::Create(uid, bytes) | Edit::Update(uid, bytes) => {
                    expected.items.insert(uid.to_string(), bytes.clone())
                }
                Edit::Delete(uid) => expected.items.remove(*uid),
            };
        }
        let dir = self.side(side);
        if self.kind(side) == Kind::Vdir {
            for edit in edits {
                match edit {
                    Edit::Create(uid, bytes) => {
                        let path = dir.join(format!("{uid}.ics"));
                        assert!(!path.exists(), "{} exists", path.display());
                        fs::write(path, bytes).unwrap();
                    }
                    Edit::Update(uid, bytes) => {
                        let path = find(&dir, uid).unwrap_or_else(|| panic!("{uid} not on {side}"));
                        fs::write(path, bytes).unwrap();
                    }
                    Edit::Delete(uid) => {
                        let path = find(&dir, uid).unwrap_or_else(|| panic!("{uid} not on {side}"));
                        fs::remove_file(path).unwrap();
                    }
                }
            }
            return;
        }
        let path = dir.join(SINGLEFILE);
        let mut events = match fs::read(&path) {
            Ok(bytes) => parse_calendar(&bytes)
                .unwrap_or_else(|| panic!("{}: not a complete calendar", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let position = |events: &[(String, String)], uid: &str| {
            let found: Vec<usize> = (0..events.len()).filter(|&i| events[i].0 == uid).collect();
            assert!(found.len() == 1, "{uid} is {} times on {side}", found.len());
            found[0]
        };
        let event = |bytes: &[u8]| String::from_utf8(vevent(bytes).to_vec()).unwrap();
        for edit in edits {
            match edit {
                Edit::Create(uid, bytes) => {
                    assert!(!events.iter().any(|(u, _)| u == uid), "{uid} exists");
                    events.push((uid.to_owned(), event(&bytes)));
                }
                Edit::Update(uid, bytes) => {
                    let i = position(&events, uid);
                    events[i].1 = event(&bytes);
                }
                Edit::Delete(uid) => {
                    let i = position(&events, uid);
                    events.remove(i);
                }
            }
        }
        let mut text = CALENDAR_HEAD.to_owned();
        events.iter().for_each(|(_, e)| text.push_str(e));
        text.push_str(CALENDAR_TAIL);
        replace(&path, text.as_bytes());
    }
}

/// The file on a vdir holding `uid`: davsync names the files it creates after safe UIDs, so
/// look there first, then scan.
fn find(dir: &Path, uid: &str) -> Option<PathBuf> {
    let named = dir.join(format!("{uid}.ics"));
    if fs::read(&named)
        .ok()
        .and_then(|b| complete_item_uid(&b))
        .as_deref()
        == Some(uid)
    {
        return Some(named);
    }
    fs::read_dir(dir).unwrap().find_map(|e| {
        let path = e.unwrap().path();
        let bytes = fs::read(&path).ok()?;
        (complete_item_uid(&bytes).as_deref() == Some(uid)).then_some(path)
    })
}

/// Inode and mtime of side A's single file (`None` for a vdir): a flush replaces it.
fn file_identity(tree: &Tree) -> Option<(u64, i64, i64)> {
    (tree.a == Kind::Singlefile).then(|| {
        let m = fs::metadata(tree.side("a").join(SINGLEFILE)).unwrap();
        (m.ino(), m.mtime(), m.mtime_nsec())
    })
}

/// When a round's run is killed.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// After this long.
    After(Duration),
    /// Once it has reported this many applied actions.
    Applied(usize),
    /// This long after it replaced side A's single file, its first flush of writes to it.
    Replaced(Duration),
}

fn line_count(path: &Path) -> usize {
    fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// How many items still need a write (missing on a side, or different), and how many items
/// there are in all.
fn pending_writes(tree: &Tree, expected: &Expected) -> (usize, usize) {
    let (a, _) = tree.scan("a");
    let (b, _) = tree.scan("b");
    let mut uids: Vec<&String> = a
        .keys()
        .chain(b.keys())
        .chain(expected.items.keys())
        .collect();
    uids.sort();
    uids.dedup();
    let content = |side: &SideItems, uid: &str| {
        side.get(uid)
            .map(|files| tree.compared(&files[0].1).to_vec())
    };
    let pending = uids
        .iter()
        .filter(|uid| content(&a, uid) != content(&b, uid))
        .count();
    (pending, uids.len())
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// File name → (inode, size, mtime in ns) of every entry of a directory.
fn stat_all(dir: &Path) -> BTreeMap<String, (u64, u64, i128)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
            (
                e.file_name().to_string_lossy().into_owned(),
                (m.ino(), m.size(), mtime),
            )
        })
        .collect()
}

#[test]
fn sigkill_at_random_moments_converges() {
    scenario(
        Kind::Vdir,
        &Counts {
            shared: SHARED,
            new_on_a: NEW_ON_A,
            new_on_b: NEW_ON_B,
            edited: EDITED,
        },
    );
}

#[test]
fn sigkill_with_a_singlefile_side_converges() {
    scenario(
        Kind::Singlefile,
        &Counts {
            shared: SHARED,
            new_on_a: NEW_ON_A,
            new_on_b: NEW_ON_B,
            edited: EDITED,
        },
    );
}

fn scenario(kind: Kind, counts: &Counts) {
    let started = Instant::now();
    let seed = std::env::var("DAVSYNC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_da75_c0de_0001_u64);
    eprintln!("side A {kind:?}, seed {seed} (set DAVSYNC_CRASH_SEED to change)");
    let mut rng = XorShift(seed | 1);
    // On tmpfs when there is one (see the module comment).
    let shm = Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("davsync-crash-");
    let tmp = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
    .unwrap();
    let tree = Tree::new(tmp.path().join("main"), kind);
    let mut expected = Expected {
        items: BTreeMap::new(),
    };

    // Phase 0: items synced cleanly before the crashes.
    let shared: Vec<String> = (0..counts.shared)
        .map(|i| format!("shared-{i:04}"))
        .collect();
    let creates = shared
        .iter()
        .map(|uid| Edit::Create(uid, item(uid, 0, "a")))
        .collect();
    tree.apply("a", creates, &mut expected);
    let t = Instant::now();
    let first = tree.sync();
    let first_took = t.elapsed();
    assert!(first.status.success(), "initial sync: {}", text(&first));
    let t = Instant::now();
    let noop = tree.sync();
    let noop_took = t.elapsed();
    assert!(noop.status.success(), "second sync: {}", text(&noop));

    // Phase 1: work for the killed runs.
    let new_a: Vec<String> = (0..counts.new_on_a)
        .map(|i| format!("new-a-{i:05}"))
        .collect();
    let new_b: Vec<String> = (0..counts.new_on_b)
        .map(|i| format!("new-b-{i:05}"))
        .collect();
    let e = counts.edited;
    for (side, new, edited, deleted) in [
        ("a", &new_a, 0..e, 2 * e..2 * e + e / 2),
        ("b", &new_b, e..2 * e, 2 * e + e / 2..3 * e),
    ] {
        let mut edits: Vec<Edit> = new
            .iter()
            .map(|uid| Edit::Create(uid, item(uid, 0, side)))
            .collect();
        edits.extend(
            shared[edited]
                .iter()
                .map(|uid| Edit::Update(uid, item(uid, 1, side))),
        );
        edits.extend(shared[deleted].iter().map(|uid| Edit::Delete(uid)));
        tree.apply(side, edits, &mut expected);
    }

    // When to kill. One round in four kills after a random delay up to the time it takes to
    // read every item (estimated from the no-op run above), so during listing, fetching,
    // planning or the first writes; the others kill once the run has reported a random number
    // of applied actions between 0 and the writes pending, so anywhere among the writes and
    // the group commits of their status records, however fast or slow the machine is.
    let per_item = noop_took / counts.shared as u32;
    eprintln!("initial sync took {first_took:?}, a no-op one {noop_took:?}");

    // Phase 2: kills, with more edits between them, each on items nobody touched yet.
    let mut fresh = shared[3 * e..].iter();
    let mut outcomes = Vec::new();
    // Kills that interrupted a run after it had applied something (a write, or a status record
    // refreshing a weak version tag); a few are needed for the test to mean anything, so when
    // too many runs finish before their kill, more rounds are run.
    let mut effective = 0;
    // Kills of a run that had replaced the single file (flushed its writes).
    let mut file_kills = 0;
    let mut round = 0;
    let enough = |effective: usize, file_kills: usize| {
        effective >= MIN_EFFECTIVE_KILLS
            && (kind == Kind::Vdir || file_kills >= MIN_EFFECTIVE_KILLS)
    };
    while round < KILLS || (!enough(effective, file_kills) && round < MAX_ROUNDS) {
        let (pending, total) = pending_writes(&tree, &expected);
        let trigger = if rng.below(4) == 0 {
            let reading = per_item * total as u32;
            Trigger::After(Duration::from_micros(rng.below(reading.as_micros() as u64)))
        } else if kind == Kind::Singlefile && rng.below(3) != 0 {
            // Half of these right after the rename (before or while the batch is recorded),
            // the others up to a second later (in the next batches, or their flush).
            let delay = if rng.below(2) == 0 {
                0
            } else {
                rng.below(1000)
            };
            Trigger::Replaced(Duration::from_millis(delay))
        } else {
            Trigger::Applied(rng.below(pending as u64 + 1) as usize)
        };
        let file_before = file_identity(&tree);
        let mut replaced_at = None;
        let log = tmp.path().join(format!("run-{round}.log"));
        let log_file = fs::File::create(&log).unwrap();
        let mut child = tree
            .command()
            .arg("-v")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let t = Instant::now();
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let due = match trigger {
                Trigger::After(delay) => t.elapsed() >= delay,
                // -v prints one line per applied action; the binary's stdout is line-buffered.
                Trigger::Applied(n) => line_count(&log) >= n,
                Trigger::Replaced(delay) => {
                    if replaced_at.is_none() && file_identity(&tree) != file_before {
                        replaced_at = Some(Instant::now());
                    }
                    replaced_at.is_some_and(|at| at.elapsed() >= delay)
                }
            };
            if due {
                break None;
            }
            sleep(Duration::from_millis(1));
        };
        let killed = match finished {
            Some(status) => {
                assert!(
                    status.success(),
                    "run {round} failed: {status}: {}",
                    fs::read_to_string(&log).unwrap()
                );
                false
            }
            None => {
                child.kill().unwrap();
                let status = child.wait().unwrap();
                // It may have finished just before the signal.
                assert!(
                    status.signal() == Some(9) || status.success(),
                    "run {round}: {status}: {}",
                    fs::read_to_string(&log).unwrap()
                );
                status.signal() == Some(9)
            }
        };
        let (left, _) = pending_writes(&tree, &expected);
        let applied = line_count(&log);
        if killed && applied > 0 {
            effective += 1;
        }
        let replaced = file_identity(&tree) != file_before;
        if killed && replaced {
            file_kills += 1;
        }
        outcomes.push(format!(
            "round {round}: {pending} writes pending, kill {trigger:?}: {} after {:?}, \
             {applied} actions applied, {left} writes pending then{}",
            if killed { "killed" } else { "finished" },
            t.elapsed(),
            if replaced { ", a.ics replaced" } else { "" },
        ));

        // What a killed run leaves: only complete items and hidden temporary files.
        let temps = tree.scan("a").1 + tree.scan("b").1;
        if temps > 0 {
            outcomes.push(format!("  {temps} temporary files left behind"));
        }

        let (mut on_a, mut on_b) = (Vec::new(), Vec::new());
        for n in 0..(10 + rng.below(20)) {
            let Some(uid) = fresh.next() else { break };
            match n % 4 {
                0 => on_a.push(Edit::Update(uid, item(uid, 2, "a"))),
                1 => on_b.push(Edit::Update(uid, item(uid, 2, "b"))),
                2 => on_a.push(Edit::Delete(uid)),
                _ => on_b.push(Edit::Delete(uid)),
            }
        }
        let new: Vec<(&str, String)> = ["a", "b"]
            .into_iter()
            .flat_map(|side| (0..5).map(move |i| (side, format!("round{round}-{side}-{i}"))))
            .collect();
        for (side, uid) in &new {
            let edits = if *side == "a" { &mut on_a } else { &mut on_b };
            edits.push(Edit::Create(uid, item(uid, 0, side)));
        }
        tree.apply("a", on_a, &mut expected);
        tree.apply("b", on_b, &mut expected);
        round += 1;
    }
    eprintln!("kills:\n{}", outcomes.join("\n"));
    if kind == Kind::Singlefile {
        eprintln!("{file_kills} kills after the run had replaced the single file");
    }
    assert!(
        enough(effective, file_kills),
        "only {effective} kills interrupted a run that had applied something, \
         {file_kills} one that had replaced the single file"
    );

    // The final sync converges cleanly.
    let last = tree.sync();
    let out = text(&last);
    assert!(last.status.success(), "final sync: {out}");
    assert!(!out.contains("conflict:"), "final sync: {out}");
    assert!(out.contains(" 0 conflicts, 0 errors"), "final sync: {out}");

    let (a, a_temps) = tree.scan("a");
    let (b, b_temps) = tree.scan("b");
    eprintln!("temporary files left behind by killed runs: a {a_temps}, b {b_temps}");
    for (name, side) in [("a", &a), ("b", &b)] {
        let dups: Vec<_> = side.iter().filter(|(_, f)| f.len() != 1).collect();
        assert!(
            dups.is_empty(),
            "side {name}: UIDs not held by exactly one file: {dups:?}"
        );
    }
    let uids = |s: &SideItems| s.keys().cloned().collect::<Vec<_>>();
    let expected_uids: Vec<String> = expected.items.keys().cloned().collect();
    for (name, side) in [("a", &a), ("b", &b)] {
        let got = uids(side);
        let missing: Vec<_> = expected_uids
            .iter()
            .filter(|u| !side.contains_key(*u))
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|u| !expected.items.contains_key(*u))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "side {name}: missing {missing:?}, resurrected or unexpected {extra:?}"
        );
    }
    for (uid, bytes) in &expected.items {
        for (name, side) in [("a", &a), ("b", &b)] {
            let got = &side[uid][0].1;
            assert!(
                tree.compared(got) == tree.compared(bytes),
                "{uid} on {name}: expected {:?}, found {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(got)
            );
        }
    }

    // One more sync writes nothing.
    let before = (stat_all(&tree.side("a")), stat_all(&tree.side("b")));
    let again = tree.sync();
    let out = text(&again);
    assert!(again.status.success(), "sync after convergence: {out}");
    assert!(out.contains(": in sync"), "sync after convergence: {out}");
    let after = (stat_all(&tree.side("a")), stat_all(&tree.side("b")));
    assert!(before == after, "the sync after convergence touched files");
    eprintln!(
        "{} items on each side; test took {:?}",
        expected.items.len(),
        started.elapsed()
    );
}
