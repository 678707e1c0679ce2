//! Shared helpers for the integration tests that run the real `davsync` binary: a hermetic
//! sandbox (temporary directory standing in for `$HOME`, the XDG directories and the config),
//! writing configs and items, running the binary and reading its output with temporary paths
//! replaced by `[TMP]`, and snapshots of directory trees to prove that nothing was written.
//!
//! Every test binary compiles this module separately and uses a different subset of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use assert_cmd::Command;

pub mod intercept;

/// A temporary directory that is the whole world of one test: `home/` is `$HOME`,
/// `home/.config`, `home/.local/share`, `home/.cache` and `home/.local/state` are the XDG
/// directories, and `config.toml` at the root is `$DAVSYNC_CONFIG`. Removed on drop.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A fresh, empty sandbox with its `home/` created.
    pub fn new() -> Sandbox {
        Sandbox::new_in(&std::env::temp_dir())
    }

    /// A fresh, empty sandbox below `parent` (`/dev/shm` for a test that must not wait for a
    /// disk), with its `home/` created.
    pub fn new_in(parent: &Path) -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("davsync-test-")
            .tempdir_in(parent)
            .expect("create temporary directory");
        let sandbox = Sandbox { dir };
        sandbox.mkdir("home");
        sandbox
    }

    /// The sandbox root (absolute).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `root/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// The fake `$HOME`.
    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// The file `$DAVSYNC_CONFIG` points at.
    pub fn config_path(&self) -> PathBuf {
        self.path("config.toml")
    }

    /// Creates `root/rel` and its parents; returns its path.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        path
    }

    /// Writes the config file. `{root}` in `text` is replaced by the sandbox root, so configs
    /// can name absolute paths inside the sandbox.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let path = self.config_path();
        write_file(&path, self.expand(text).as_bytes());
        path
    }

    /// Writes `bytes` to `root/rel`, creating parent directories; returns the path.
    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        write_file(&path, bytes.as_ref());
        path
    }

    /// The bytes of `root/rel`; panics when it cannot be read.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        let path = self.path(rel);
        fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// The bytes of `root/rel` as text (lossy); panics when it cannot be read.
    pub fn read_string(&self, rel: &str) -> String {
        String::from_utf8_lossy(&self.read(rel)).into_owned()
    }

    /// Whether `root/rel` exists.
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Removes the file `root/rel`.
    pub fn remove(&self, rel: &str) {
        let path = self.path(rel);
        fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
    }

    /// Sorted names of the entries of directory `root/rel` (hidden ones included).
    pub fn ls(&self, rel: &str) -> Vec<String> {
        list_dir(&self.path(rel))
    }

    /// `text` with `{root}` replaced by the sandbox root.
    pub fn expand(&self, text: &str) -> String {
        text.replace("{root}", &self.root().display().to_string())
    }

    /// A command running the `davsync` binary inside the sandbox: `HOME` and every `XDG_*`
    /// variable point into the sandbox, `DAVSYNC_CONFIG` at [`Sandbox::config_path`], and the
    /// working directory is the root. Nothing of the real home can be read or written.
    pub fn cmd(&self) -> Command {
        Command::from_std(self.std_cmd())
    }

    /// [`Sandbox::cmd`] as a `std::process::Command`, for a test that spawns the binary and
    /// watches or kills it while it runs.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_davsync"));
        let home = self.home();
        cmd.current_dir(self.root())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_RUNTIME_DIR", self.root().join("run"))
            .env("DAVSYNC_CONFIG", self.config_path())
            .env_remove("XDG_CONFIG_DIRS")
            .env_remove("XDG_DATA_DIRS")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env("LC_ALL", "C");
        cmd
    }

    /// Runs `davsync ARGS` in the sandbox (see [`Sandbox::cmd`]) and collects the result.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// Like [`Sandbox::run`], with extra environment variables (passwords for DAV tests).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.cmd();
        for (name, value) in env {
            cmd.env(name, value);
        }
        let output = cmd.args(args).output().expect("run davsync");
        Run {
            code: output.status.code(),
            stdout: self.normalize(&String::from_utf8_lossy(&output.stdout)),
            stderr: self.normalize(&String::from_utf8_lossy(&output.stderr)),
        }
    }

    /// Replaces the sandbox root (and its canonical form) in `text` by `[TMP]`.
    pub fn normalize(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let root = self.root().display().to_string();
        if let Ok(canonical) = self.root().canonicalize() {
            let canonical = canonical.display().to_string();
            if canonical != root {
                out = out.replace(&canonical, "[TMP]");
            }
        }
        out.replace(&root, "[TMP]")
    }

    /// The state of every file under `root/rel` (see [`tree_state`]).
    pub fn state(&self, rel: &str) -> BTreeMap<String, FileState> {
        tree_state(&self.path(rel))
    }
}

/// What one run of the binary did.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit status (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output, sandbox paths replaced by `[TMP]`.
    pub stdout: String,
    /// Standard error, sandbox paths replaced by `[TMP]`.
    pub stderr: String,
}

impl Run {
    /// Both streams, for snapshots: stdout, then stderr under a `--- stderr` marker when
    /// non-empty, then the exit status.
    pub fn both(&self) -> String {
        let mut out = self.stdout.clone();
        if !self.stderr.is_empty() {
            out.push_str("--- stderr\n");
            out.push_str(&self.stderr);
        }
        out.push_str(&format!("--- exit {}\n", self.code_str()));
        out
    }

    fn code_str(&self) -> String {
        self.code.map_or("signal".to_owned(), |c| c.to_string())
    }

    /// Panics, showing the output, unless the exit status is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit status {code}, got {}\n--- stdout\n{}--- stderr\n{}",
            self.code_str(),
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the run exited 0.
    #[track_caller]
    pub fn success(&self) -> &Run {
        self.expect_code(0)
    }

    /// Asserts that stdout contains `needle` (a summary line, say), showing stdout otherwise.
    pub fn expect_stdout(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }
}

/// Writes `bytes` to `path`, creating its parent directories.
pub fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Sorted names of the entries of `dir` (hidden ones included); empty when it does not exist.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| {
            e.expect("read directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// What a test compares to prove a file was not written: content, mtime and inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    /// The content.
    pub bytes: Vec<u8>,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// The inode (an atomic rename-over changes it).
    pub inode: u64,
    /// Unix permission bits.
    pub mode: u32,
}

/// Every regular file below `dir`, keyed by its path relative to `dir` (directories appear as
/// keys ending in `/` with an empty state). Empty when `dir` does not exist.
pub fn tree_state(dir: &Path) -> BTreeMap<String, FileState> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, FileState>) {
        for name in list_dir(dir) {
            let path = dir.join(&name);
            let rel = path
                .strip_prefix(base)
                .expect("below base")
                .display()
                .to_string();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                out.insert(
                    format!("{rel}/"),
                    FileState {
                        bytes: Vec::new(),
                        mtime_ns: 0,
                        inode: meta.ino(),
                        mode: meta.mode() & 0o7777,
                    },
                );
                walk(base, &path, out);
            } else {
                out.insert(
                    rel,
                    FileState {
                        bytes: fs::read(&path).unwrap_or_default(),
                        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000
                            + i128::from(meta.mtime_nsec()),
                        inode: meta.ino(),
                        mode: meta.mode() & 0o7777,
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Sets the modification time of `path`.
pub fn set_mtime(path: &Path, time: SystemTime) {
    let file = fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.set_modified(time)
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// The modification time of `path`.
pub fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("mtime of {}: {e}", path.display()))
}

/// Like `touch`: sets the modification time of `path` to now (and, to be sure the version tag
/// changes on any file system, never to its current value).
pub fn touch(path: &Path) {
    let old = mtime(path);
    let mut now = SystemTime::now();
    if now <= old {
        now = old + Duration::from_secs(1);
    }
    set_mtime(path, now);
}

/// Replaces every `YYYY-MM-DD HH:MM:SS` timestamp in `text` by `[TIME]`.
pub fn redact_timestamps(text: &str) -> String {
    const PATTERN: &[u8] = b"dddd-dd-dd dd:dd:dd";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let matches = bytes.len() - i >= PATTERN.len()
            && PATTERN.iter().zip(&bytes[i..]).all(|(p, b)| match p {
                b'd' => b.is_ascii_digit(),
                p => p == b,
            });
        if matches {
            out.push_str("[TIME]");
            i += PATTERN.len();
        } else {
            let ch = text[i..].chars().next().expect("char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Joins `lines` with CRLF, ending with a CRLF, as iCalendar and vCard require.
pub fn crlf(lines: &[&str]) -> String {
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out
}

/// A realistic single-event iCalendar object (CRLF line ends) with the given UID and summary.
pub fn event(uid: &str, summary: &str) -> String {
    EventBuilder::new(summary).uid(uid).build()
}

/// A realistic single-event iCalendar object without a UID.
pub fn event_without_uid(summary: &str) -> String {
    EventBuilder::new(summary).build()
}

/// A realistic vCard 3.0 (CRLF line ends).
pub fn vcard(uid: &str, name: &str) -> String {
    crlf(&[
        "BEGIN:VCARD",
        "VERSION:3.0",
        "PRODID:-//davsync tests//EN",
        &format!("UID:{uid}"),
        &format!("FN:{name}"),
        &format!("N:{name};;;;"),
        &format!(
            "EMAIL;TYPE=INTERNET:{}@example.org",
            name.to_lowercase().replace(' ', ".")
        ),
        "REV:20240101T120000Z",
        "END:VCARD",
    ])
}

/// Builds iCalendar events with the knobs the tests turn: volatile properties, description,
/// line ends, folding and property order.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    uid: Option<String>,
    summary: String,
    description: Option<String>,
    dtstamp: String,
    prodid: String,
    start: String,
    end: String,
    lf_only: bool,
    fold_at: Option<usize>,
    reversed_props: bool,
}

impl EventBuilder {
    /// An event with the given summary, no UID yet, CRLF, unfolded, usual property order.
    pub fn new(summary: &str) -> EventBuilder {
        EventBuilder {
            uid: None,
            summary: summary.to_owned(),
            description: None,
            dtstamp: "20240101T090000Z".to_owned(),
            prodid: "-//davsync tests//EN".to_owned(),
            start: "20240315T100000".to_owned(),
            end: "20240315T110000".to_owned(),
            lf_only: false,
            fold_at: None,
            reversed_props: false,
        }
    }

    /// Sets the UID.
    pub fn uid(mut self, uid: &str) -> Self {
        self.uid = Some(uid.to_owned());
        self
    }

    /// Sets a DESCRIPTION (long ones are what folding is for).
    pub fn description(mut self, text: &str) -> Self {
        self.description = Some(text.to_owned());
        self
    }

    /// Sets DTSTAMP (a volatile property).
    pub fn dtstamp(mut self, stamp: &str) -> Self {
        self.dtstamp = stamp.to_owned();
        self
    }

    /// Sets PRODID (a volatile property).
    pub fn prodid(mut self, prodid: &str) -> Self {
        self.prodid = prodid.to_owned();
        self
    }

    /// Sets DTSTART (floating local time such as `20240315T100000`).
    pub fn start(mut self, start: &str) -> Self {
        self.start = start.to_owned();
        self
    }

    /// LF line ends instead of CRLF.
    pub fn lf(mut self) -> Self {
        self.lf_only = true;
        self
    }

    /// Folds content lines longer than `octets` (continuation lines start with a space).
    pub fn fold_at(mut self, octets: usize) -> Self {
        self.fold_at = Some(octets);
        self
    }

    /// Emits the VEVENT's properties in reverse order.
    pub fn reversed(mut self) -> Self {
        self.reversed_props = true;
        self
    }

    /// The object's bytes.
    pub fn build(&self) -> String {
        let mut props = Vec::new();
        if let Some(uid) = &self.uid {
            props.push(format!("UID:{uid}"));
        }
        props.push(format!("DTSTAMP:{}", self.dtstamp));
        props.push(format!("DTSTART;TZID=Europe/Berlin:{}", self.start));
        props.push(format!("DTEND;TZID=Europe/Berlin:{}", self.end));
        props.push(format!("SUMMARY:{}", self.summary));
        if let Some(description) = &self.description {
            props.push(format!("DESCRIPTION:{description}"));
        }
        props.push("LOCATION:Room 4.2\\, Main Building".to_owned());
        props.push("STATUS:CONFIRMED".to_owned());
        if self.reversed_props {
            props.reverse();
        }
        let mut lines = vec![
            "BEGIN:VCALENDAR".to_owned(),
            "VERSION:2.0".to_owned(),
            format!("PRODID:{}", self.prodid),
            "CALSCALE:GREGORIAN".to_owned(),
            "BEGIN:VTIMEZONE".to_owned(),
            "TZID:Europe/Berlin".to_owned(),
            "BEGIN:STANDARD".to_owned(),
            "DTSTART:19701025T030000".to_owned(),
            "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU".to_owned(),
            "TZOFFSETFROM:+0200".to_owned(),
            "TZOFFSETTO:+0100".to_owned(),
            "TZNAME:CET".to_owned(),
            "END:STANDARD".to_owned(),
            "BEGIN:DAYLIGHT".to_owned(),
            "DTSTART:19700329T020000".to_owned(),
            "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU".to_owned(),
            "TZOFFSETFROM:+0100".to_owned(),
            "TZOFFSETTO:+0200".to_owned(),
            "TZNAME:CEST".to_owned(),
            "END:DAYLIGHT".to_owned(),
            "END:VTIMEZONE".to_owned(),
            "BEGIN:VEVENT".to_owned(),
        ];
        lines.extend(props);
        lines.push("END:VEVENT".to_owned());
        lines.push("END:VCALENDAR".to_owned());
        let eol = if self.lf_only { "\n" } else { "\r\n" };
        let mut out = String::new();
        for line in &lines {
            match self.fold_at {
                Some(width) => out.push_str(&fold(line, width, eol)),
                None => out.push_str(line),
            }
            out.push_str(eol);
        }
        out
    }
}

/// Folds one content line at `width` octets (never inside a UTF-8 character).
pub fn fold(line: &str, width: usize, eol: &str) -> String {
    let mut out = String::new();
    let mut used = 0;
    let mut limit = width;
    for ch in line.chars() {
        if used + ch.len_utf8() > limit {
            out.push_str(eol);
            out.push(' ');
            used = 1;
            limit = width;
        }
        out.push(ch);
        used += ch.len_utf8();
    }
    out
}

impl Sandbox {
    /// A sandbox with the usual test pair: storages `laptop` (`{root}/a`) and `backup`
    /// (`{root}/b`), both vdirs of `.ics` files and both created, pair `cal` between them,
    /// status in `{root}/status`. `pair_extra` is appended to the `[pair.cal]` table (e.g.
    /// `collections = "from a"`); without `collections`, the two paths are the collections.
    pub fn with_vdir_pair(pair_extra: &str) -> Sandbox {
        let sb = Sandbox::new();
        sb.mkdir("a");
        sb.mkdir("b");
        sb.write_config(&vdir_pair_config(".ics", pair_extra));
        sb
    }

    /// The number of items `davsync status` reports on the line starting with `name: `
    /// (a pair, or `pair/collection`); panics when there is no such line.
    pub fn status_items(&self, name: &str) -> u64 {
        let run = self.run(&["status"]);
        // Exit 1 only says a conflict is open or the last attempt failed; the counts are there.
        assert!(matches!(run.code, Some(0 | 1)), "{}", run.both());
        let prefix = format!("{name}: ");
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no status line for {name} in {:?}", run.stdout));
        line[prefix.len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no item count in {line:?}"))
    }
}

/// Config text (with `{root}` placeholders, see [`Sandbox::write_config`]) for the usual test
/// pair: vdir storages `laptop` at `{root}/a` and `backup` at `{root}/b` with extension
/// `fileext`, pair `cal` with `pair_extra` appended to its table, status in `{root}/status`.
pub fn vdir_pair_config(fileext: &str, pair_extra: &str) -> String {
    format!(
        r#"status_path = "{{root}}/status"

[storage.laptop]
type = "vdir"
path = "{{root}}/a"
fileext = "{fileext}"

[storage.backup]
type = "vdir"
path = "{{root}}/b"
fileext = "{fileext}"

[pair.cal]
a = "laptop"
b = "backup"
{pair_extra}
"#
    )
}

/// Created, updated and deleted, summed over the summary lines of a run
/// (`NAME: 1 created, 0 updated, 0 deleted, 0 conflicts, 0 errors`).
pub fn totals(run: &Run) -> (u64, u64, u64) {
    let mut sum = (0, 0, 0);
    for line in run.stdout.lines() {
        let Some((_, counts)) = line.split_once(": ") else {
            continue;
        };
        // What follows the counts ("; b mirrors a: ...") has numbers of its own.
        let counts = counts.split(';').next().unwrap_or_default();
        let numbers: Vec<u64> = counts
            .split(", ")
            .filter_map(|part| part.split(' ').next()?.parse().ok())
            .collect();
        if counts.contains(" created, ") && numbers.len() == 5 {
            sum.0 += numbers[0];
            sum.1 += numbers[1];
            sum.2 += numbers[2];
        }
    }
    sum
}

/// A port on 127.0.0.1 where nothing listens: bound to find a free one, then closed, so a
/// connection to it is refused.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
