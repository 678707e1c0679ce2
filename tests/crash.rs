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

/// One side: UID → every (file name, bytes) holding it.
type SideItems = BTreeMap<String, Vec<(String, Vec<u8>)>>;

/// Scans one side. Fails on a visible file that is not a complete item and on hidden files
/// other than davsync's temporary files; returns the items and the number of temporary files.
fn scan(dir: &Path) -> (SideItems, usize) {
    let mut items = SideItems::new();
    let mut temps = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            assert!(
                name.starts_with(".davsync-tmp-"),
                "{}: unexpected hidden file {name}",
                dir.display()
            );
            temps += 1;
            continue;
        }
        assert!(
            name.ends_with(".ics"),
            "{}: stray file {name}",
            dir.display()
        );
        let bytes = fs::read(entry.path()).unwrap();
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
    (items, temps)
}

/// What the test expects on both sides after the final sync: UID → exact bytes.
struct Expected {
    items: BTreeMap<String, Vec<u8>>,
}

/// A tree with `a/`, `b/`, `status/` and `config.toml`.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new(root: PathBuf) -> Tree {
        for d in ["a", "b", "status"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let config = format!(
            "status_path = {status:?}\n\n\
             [storage.a]\ntype = \"vdir\"\npath = {a:?}\nfileext = \".ics\"\n\n\
             [storage.b]\ntype = \"vdir\"\npath = {b:?}\nfileext = \".ics\"\n\n\
             [pair.p]\na = \"a\"\nb = \"b\"\n",
            status = root.join("status").display().to_string(),
            a = root.join("a").display().to_string(),
            b = root.join("b").display().to_string(),
        );
        fs::write(root.join("config.toml"), config).unwrap();
        Tree { root }
    }

    fn side(&self, side: &str) -> PathBuf {
        self.root.join(side)
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

    /// Creates a new item as a user's client would: a new file named after the UID.
    fn create(&self, side: &str, uid: &str, bytes: &[u8], expected: &mut Expected) {
        let path = self.side(side).join(format!("{uid}.ics"));
        assert!(!path.exists(), "{} exists", path.display());
        fs::write(path, bytes).unwrap();
        expected.items.insert(uid.to_owned(), bytes.to_vec());
    }

    /// Edits an item in place, in whatever file holds it now.
    fn edit(&self, side: &str, uid: &str, bytes: &[u8], expected: &mut Expected) {
        let path = find(&self.side(side), uid).unwrap_or_else(|| panic!("{uid} not on {side}"));
        fs::write(path, bytes).unwrap();
        expected.items.insert(uid.to_owned(), bytes.to_vec());
    }

    fn delete(&self, side: &str, uid: &str, expected: &mut Expected) {
        let path = find(&self.side(side), uid).unwrap_or_else(|| panic!("{uid} not on {side}"));
        fs::remove_file(path).unwrap();
        expected.items.remove(uid);
    }
}

/// The file on a side holding `uid`: davsync names the files it creates after safe UIDs, so
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

/// When a round's run is killed.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// After this long.
    After(Duration),
    /// Once it has reported this many applied actions.
    Applied(usize),
}

fn line_count(path: &Path) -> usize {
    fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// How many items still need a write (missing on a side, or different), and how many items
/// there are in all.
fn pending_writes(tree: &Tree, expected: &Expected) -> (usize, usize) {
    let (a, _) = scan(&tree.side("a"));
    let (b, _) = scan(&tree.side("b"));
    let mut uids: Vec<&String> = a
        .keys()
        .chain(b.keys())
        .chain(expected.items.keys())
        .collect();
    uids.sort();
    uids.dedup();
    let content = |side: &SideItems, uid: &str| side.get(uid).map(|files| files[0].1.clone());
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
    let started = Instant::now();
    let seed = std::env::var("DAVSYNC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_da75_c0de_0001_u64);
    eprintln!("seed {seed} (set DAVSYNC_CRASH_SEED to change)");
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
    let tree = Tree::new(tmp.path().join("main"));
    let mut expected = Expected {
        items: BTreeMap::new(),
    };

    // Phase 0: items synced cleanly before the crashes.
    let shared: Vec<String> = (0..SHARED).map(|i| format!("shared-{i:04}")).collect();
    for uid in &shared {
        tree.create("a", uid, &item(uid, 0, "a"), &mut expected);
    }
    let t = Instant::now();
    let first = tree.sync();
    let first_took = t.elapsed();
    assert!(first.status.success(), "initial sync: {}", text(&first));
    let t = Instant::now();
    let noop = tree.sync();
    let noop_took = t.elapsed();
    assert!(noop.status.success(), "second sync: {}", text(&noop));

    // Phase 1: work for the killed runs.
    for i in 0..NEW_ON_A {
        let uid = format!("new-a-{i:05}");
        tree.create("a", &uid, &item(&uid, 0, "a"), &mut expected);
    }
    for i in 0..NEW_ON_B {
        let uid = format!("new-b-{i:05}");
        tree.create("b", &uid, &item(&uid, 0, "b"), &mut expected);
    }
    for uid in &shared[0..100] {
        tree.edit("a", uid, &item(uid, 1, "a"), &mut expected);
    }
    for uid in &shared[100..200] {
        tree.edit("b", uid, &item(uid, 1, "b"), &mut expected);
    }
    for uid in &shared[200..250] {
        tree.delete("a", uid, &mut expected);
    }
    for uid in &shared[250..300] {
        tree.delete("b", uid, &mut expected);
    }

    // When to kill. One round in four kills after a random delay up to the time it takes to
    // read every item (estimated from the no-op run above), so during listing, fetching,
    // planning or the first writes; the others kill once the run has reported a random number
    // of applied actions between 0 and the writes pending, so anywhere among the writes and
    // the group commits of their status records, however fast or slow the machine is.
    let per_item = noop_took / SHARED as u32;
    eprintln!("initial sync took {first_took:?}, a no-op one {noop_took:?}");

    // Phase 2: kills, with more edits between them, each on items nobody touched yet.
    let mut fresh = shared[300..].iter();
    let mut outcomes = Vec::new();
    // Kills that interrupted a run after it had applied something (a write, or a status record
    // refreshing a weak version tag); a few are needed for the test to mean anything, so when
    // too many runs finish before their kill, more rounds are run.
    let mut effective = 0;
    let mut round = 0;
    while round < KILLS || (effective < MIN_EFFECTIVE_KILLS && round < MAX_ROUNDS) {
        let (pending, total) = pending_writes(&tree, &expected);
        let trigger = if rng.below(4) == 0 {
            let reading = per_item * total as u32;
            Trigger::After(Duration::from_micros(rng.below(reading.as_micros() as u64)))
        } else {
            Trigger::Applied(rng.below(pending as u64 + 1) as usize)
        };
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
        outcomes.push(format!(
            "round {round}: {pending} writes pending, kill {trigger:?}: {} after {:?}, \
             {applied} actions applied, {left} writes pending then",
            if killed { "killed" } else { "finished" },
            t.elapsed(),
        ));

        // What a killed run leaves: only complete items and hidden temporary files.
        let temps = scan(&tree.side("a")).1 + scan(&tree.side("b")).1;
        if temps > 0 {
            outcomes.push(format!("  {temps} temporary files left behind"));
        }

        for n in 0..(10 + rng.below(20)) {
            let Some(uid) = fresh.next() else { break };
            match n % 4 {
                0 => tree.edit("a", uid, &item(uid, 2, "a"), &mut expected),
                1 => tree.edit("b", uid, &item(uid, 2, "b"), &mut expected),
                2 => tree.delete("a", uid, &mut expected),
                _ => tree.delete("b", uid, &mut expected),
            }
        }
        for side in ["a", "b"] {
            for i in 0..5 {
                let uid = format!("round{round}-{side}-{i}");
                tree.create(side, &uid, &item(&uid, 0, side), &mut expected);
            }
        }
        round += 1;
    }
    eprintln!("kills:\n{}", outcomes.join("\n"));
    assert!(
        effective >= MIN_EFFECTIVE_KILLS,
        "only {effective} kills interrupted a run that had applied something"
    );

    // The final sync converges cleanly.
    let last = tree.sync();
    let out = text(&last);
    assert!(last.status.success(), "final sync: {out}");
    assert!(!out.contains("conflict:"), "final sync: {out}");
    assert!(out.contains(" 0 conflicts, 0 errors"), "final sync: {out}");

    let (a, a_temps) = scan(&tree.side("a"));
    let (b, b_temps) = scan(&tree.side("b"));
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
                got == bytes,
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
    assert!(
        out.contains(": 0 created, 0 updated, 0 deleted, 0 conflicts, 0 errors"),
        "sync after convergence: {out}"
    );
    let after = (stat_all(&tree.side("a")), stat_all(&tree.side("b")));
    assert!(before == after, "the sync after convergence touched files");
    eprintln!(
        "{} items on each side; test took {:?}",
        expected.items.len(),
        started.elapsed()
    );
}
