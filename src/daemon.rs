//! `davsync daemon`'s decisions, sans-IO: which pair (and which of its collections) to sync
//! next and when to wake up ([`Scheduler`]), and what a changed local path means
//! ([`touched_by`], [`watch_specs`]). The binary owns the clock, inotify, signals and the
//! systemd socket; it feeds events and `now` in and runs the [`Job`]s that come out.
//!
//! The rules:
//! - every pair syncs once at the start (all of it);
//! - a change in a watched local storage syncs the touched collection (the whole pair for a
//!   single file or a pair without `collections`) [`DEBOUNCE`] after the last change of a
//!   burst, at most [`MAX_DELAY`] after its first;
//! - a pair with a poll interval (the shortest `interval` of its two storages) syncs all of it
//!   that long after its last full sync ended;
//! - a pair that failed is synced again after a backoff, [`FIRST_RETRY`] doubling up to its
//!   poll interval (or [`crate::config::DEFAULT_POLL_INTERVAL`] for a pair that is not
//!   polled); local changes still sync it as soon as they settle;
//! - jobs of different groups run at the same time (the binary's workers), but a pair never
//!   runs twice at once and two pairs of one group (sharing a server or a local path, see
//!   [`pair_groups`]) never at once; a change that comes while its pair runs waits for it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{CollectionsSpec, Config, DEFAULT_POLL_INTERVAL, PairConfig, StorageKind};

/// How long a local change must be left alone before its collection syncs: editors write a
/// file in several steps, and a burst of changes (a `git pull`, a bulk import) syncs once.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// The longest a stream of changes can put its sync off.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// The first wait before syncing a failed pair again; each further failure doubles it.
pub const FIRST_RETRY: Duration = Duration::from_secs(30);

/// What of a pair to sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every collection of the pair.
    Pair,
    /// Only these collections (pair-level names).
    Collections(BTreeSet<String>),
}

impl Scope {
    /// The scope of one collection.
    pub fn collection(name: &str) -> Scope {
        Scope::Collections(BTreeSet::from([name.to_owned()]))
    }

    fn merge(&mut self, other: Scope) {
        match (&mut *self, other) {
            (Scope::Collections(mine), Scope::Collections(theirs)) => mine.extend(theirs),
            (_, _) => *self = Scope::Pair,
        }
    }
}

/// One sync to run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The pair's name.
    pub pair: String,
    /// What of it.
    pub scope: Scope,
}

/// Local changes waiting for their burst to end.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    scope: Scope,
    first: Instant,
    due: Instant,
}

/// What the scheduler knows of one pair.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PairState {
    /// How often the pair is synced whole without being told of a change.
    poll: Option<Duration>,
    /// When the pair is next synced whole: the start, a poll or a retry; `None` while such a
    /// sync runs or when nothing but a local change will sync it.
    next_full: Option<Instant>,
    pending: Option<Pending>,
    /// Failures in a row.
    failures: u32,
    /// The group the pair belongs to: pairs of one group never run at the same time.
    group: usize,
    /// Whether a job of this pair is running (handed out by [`Scheduler::next_job`], not yet
    /// [`Scheduler::finished`]).
    running: bool,
}

impl PairState {
    /// The earliest moment something of this pair is due.
    fn due(&self) -> Option<Instant> {
        let pending = self.pending.as_ref().map(|p| p.due);
        match (self.next_full, pending) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Decides what `davsync daemon` syncs when. The binary asks for the next [`Job`] whenever it
/// has a worker free, runs it, reports its end with [`Scheduler::finished`], and sleeps until
/// [`Scheduler::wake_at`] or an event. A job handed out is running until it is reported
/// finished: meanwhile no other job of its pair, nor of any pair of its group, is handed out.
#[derive(Debug, Clone)]
pub struct Scheduler {
    pairs: BTreeMap<String, PairState>,
}

impl Scheduler {
    /// A scheduler for these pairs (name and poll interval, see [`poll_interval`]), each due for
    /// a full sync at `now`, each in a group of its own (see [`Scheduler::grouped`]).
    pub fn new(pairs: impl IntoIterator<Item = (String, Option<Duration>)>, now: Instant) -> Self {
        let pairs = pairs
            .into_iter()
            .enumerate()
            .map(|(group, (name, poll))| {
                let state = PairState {
                    poll,
                    next_full: Some(now),
                    pending: None,
                    failures: 0,
                    group,
                    running: false,
                };
                (name, state)
            })
            .collect();
        Scheduler { pairs }
    }

    /// The scheduler with the pairs of each of `groups` (names) in one group, whose pairs never
    /// run at the same time (as [`pair_groups`] makes them); a pair named in no group keeps a
    /// group of its own.
    pub fn grouped<G, P>(mut self, groups: G) -> Self
    where
        G: IntoIterator<Item = P>,
        P: IntoIterator<Item = String>,
    {
        // Numbered after every group of its own `new` gave.
        let first = self.pairs.len();
        for (n, group) in groups.into_iter().enumerate() {
            for name in group {
                if let Some(state) = self.pairs.get_mut(&name) {
                    state.group = first + n;
                }
            }
        }
        self
    }

    /// Whether a job of `state`'s pair may start now: the pair is not running, and no pair of
    /// its group is.
    fn may_start(&self, state: &PairState) -> bool {
        !state.running
            && !self
                .pairs
                .values()
                .any(|other| other.running && other.group == state.group)
    }

    /// How many jobs are running.
    pub fn running(&self) -> usize {
        self.pairs.values().filter(|state| state.running).count()
    }

    /// Whether a job of `pair` is running.
    pub fn is_running(&self, pair: &str) -> bool {
        self.pairs.get(pair).is_some_and(|state| state.running)
    }

    /// A local change touched `scope` of `pair` at `now`; unknown pairs are ignored.
    pub fn touched(&mut self, pair: &str, scope: Scope, now: Instant) {
        let Some(state) = self.pairs.get_mut(pair) else {
            return;
        };
        match &mut state.pending {
            Some(pending) => {
                pending.scope.merge(scope);
                pending.due = (now + DEBOUNCE).min(pending.first + MAX_DELAY);
            }
            None => {
                state.pending = Some(Pending {
                    scope,
                    first: now,
                    due: now + DEBOUNCE,
                })
            }
        }
    }

    /// The job due at `now` that may start (its pair and its group idle), the one due longest
    /// first; it is running from now on, until the caller reports it with
    /// [`Scheduler::finished`]. A full sync takes the pair's pending changes with it.
    pub fn next_job(&mut self, now: Instant) -> Option<Job> {
        let name = self
            .pairs
            .iter()
            .filter(|(_, state)| self.may_start(state))
            .filter_map(|(name, state)| Some((state.due()?, name)))
            .filter(|(due, _)| *due <= now)
            .min_by_key(|(due, _)| *due)
            .map(|(_, name)| name.clone())?;
        let state = self.pairs.get_mut(&name)?;
        state.running = true;
        let scope = if state.next_full.is_some_and(|at| at <= now) {
            state.next_full = None;
            state.pending = None;
            Scope::Pair
        } else {
            match state.pending.take() {
                Some(pending) => pending.scope,
                None => {
                    // Not reached: a due pair has a full sync or changes due.
                    state.running = false;
                    return None;
                }
            }
        };
        Some(Job { pair: name, scope })
    }

    /// `job` ended at `now`, in sync (`ok`) or not (a server unreachable, a conflict left
    /// open: anything a later run may fix).
    pub fn finished(&mut self, job: &Job, ok: bool, now: Instant) {
        let Some(state) = self.pairs.get_mut(&job.pair) else {
            return;
        };
        state.running = false;
        if ok {
            state.failures = 0;
            if job.scope == Scope::Pair {
                state.next_full = state.poll.map(|poll| now + poll);
            }
            return;
        }
        state.failures = state.failures.saturating_add(1);
        let cap = state.poll.unwrap_or(DEFAULT_POLL_INTERVAL);
        let backoff = FIRST_RETRY
            .saturating_mul(1 << state.failures.saturating_sub(1).min(16))
            .min(cap);
        let retry = now + backoff;
        state.next_full = Some(state.next_full.map_or(retry, |at| at.min(retry)));
    }

    /// When the next job that may start is due (the caller sleeps until then, or until an event
    /// such as a job's end), `None` when only a local change or a job's end can start one.
    pub fn wake_at(&self) -> Option<Instant> {
        self.pairs
            .values()
            .filter(|state| self.may_start(state))
            .filter_map(PairState::due)
            .min()
    }

    /// Failures in a row of `pair` (0 when its last sync was clean).
    pub fn failures(&self, pair: &str) -> u32 {
        self.pairs.get(pair).map_or(0, |state| state.failures)
    }
}

/// How often a pair is polled: the shorter [`crate::config::StorageConfig::poll_interval`] of
/// its two storages; `None` when both are local.
pub fn poll_interval(config: &Config, pair: &PairConfig) -> Option<Duration> {
    [&pair.a, &pair.b]
        .into_iter()
        .filter_map(|name| config.storages.get(name)?.poll_interval())
        .min()
}

/// A local directory the daemon watches for changes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WatchSpec {
    /// The directory.
    pub dir: PathBuf,
    /// Whether its subdirectories (a vdir's collections) are watched too.
    pub children: bool,
}

/// The directories to watch for the local storages of `pairs`: a vdir's root (with its
/// collection directories when the pair has `collections`), a single file's directory.
pub fn watch_specs<'c>(
    config: &Config,
    pairs: impl IntoIterator<Item = &'c PairConfig>,
) -> Vec<WatchSpec> {
    let mut specs: Vec<WatchSpec> = pairs
        .into_iter()
        .flat_map(|pair| {
            [&pair.a, &pair.b]
                .into_iter()
                .filter_map(|name| config.storages.get(name))
                .filter_map(|storage| match &storage.kind {
                    StorageKind::Vdir(vdir) => Some(WatchSpec {
                        dir: vdir.path.clone(),
                        children: pair.collections != CollectionsSpec::Root,
                    }),
                    StorageKind::Singlefile(file) => Some(WatchSpec {
                        dir: file.path.parent()?.to_path_buf(),
                        children: false,
                    }),
                    StorageKind::Dav(_) | StorageKind::Webcal(_) | StorageKind::Google(_) => None,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    specs.sort();
    specs.dedup();
    specs
}

/// What a change of `path` (a file or directory inside a watched directory) touches among
/// `pairs`: for a vdir of a pair with `collections`, the collection of the directory it is in
/// (by its pair-level name; a collection the pair does not sync touches nothing); for a vdir
/// that is itself the collection or a single file, the whole pair.
pub fn touched_by<'c>(
    config: &Config,
    pairs: impl IntoIterator<Item = &'c PairConfig>,
    path: &Path,
) -> Vec<(String, Scope)> {
    let mut touched = Vec::new();
    for pair in pairs {
        for (side, name) in [(Side::A, &pair.a), (Side::B, &pair.b)] {
            let Some(storage) = config.storages.get(name) else {
                continue;
            };
            let scope = match &storage.kind {
                StorageKind::Vdir(vdir) => match path.strip_prefix(&vdir.path) {
                    Ok(rel) => vdir_scope(&pair.collections, side, rel),
                    Err(_) => None,
                },
                StorageKind::Singlefile(file) => {
                    let same_dir = path.parent() == file.path.parent();
                    let pattern = file.path.file_name().and_then(|n| n.to_str());
                    let matches = match (pattern, path.file_name().and_then(|n| n.to_str())) {
                        (Some(pattern), Some(name)) => match pattern.split_once("%s") {
                            Some((prefix, suffix)) => {
                                name.starts_with(prefix) && name.ends_with(suffix)
                            }
                            None => name == pattern,
                        },
                        _ => false,
                    };
                    (same_dir && matches).then_some(Scope::Pair)
                }
                StorageKind::Dav(_) | StorageKind::Webcal(_) | StorageKind::Google(_) => None,
            };
            if let Some(scope) = scope {
                touched.push((pair.name.clone(), scope));
            }
        }
    }
    touched
}

/// Which side of a pair a vdir is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// The scope a change at `rel` (relative to a vdir's root) touches.
fn vdir_scope(spec: &CollectionsSpec, side: Side, rel: &Path) -> Option<Scope> {
    let mut components = rel.components();
    let Some(first) = components.next() else {
        // The root itself (gone, moved): everything.
        return Some(Scope::Pair);
    };
    if *spec == CollectionsSpec::Root {
        return Some(Scope::Pair);
    }
    let dir = first.as_os_str().to_str()?;
    if components.next().is_none() {
        // A file or directory at the root: a new, removed or renamed collection when it is
        // a directory, which only a full listing of the pair sees.
        return (!dir.starts_with('.')).then_some(Scope::Pair);
    }
    let name = match spec {
        CollectionsSpec::Explicit(mappings) => mappings
            .iter()
            .find(|m| match side {
                Side::A => m.a == dir,
                Side::B => m.b == dir,
            })
            .map(|m| m.name.as_str())?,
        _ => dir,
    };
    Some(Scope::collection(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn job(pair: &str, scope: Scope) -> Job {
        Job {
            pair: pair.into(),
            scope,
        }
    }

    /// A scheduler of a local pair `local` and a polled pair `remote` (every 60 s), after both
    /// synced cleanly at `t0`.
    fn settled(t0: Instant) -> Scheduler {
        let mut s = Scheduler::new(
            [
                ("local".to_owned(), None),
                ("remote".to_owned(), Some(secs(60))),
            ],
            t0,
        );
        for _ in 0..2 {
            let j = s.next_job(t0).expect("first sync");
            assert_eq!(j.scope, Scope::Pair);
            s.finished(&j, true, t0);
        }
        s
    }

    #[test]
    fn every_pair_syncs_whole_at_the_start_then_waits() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(
            [("a".to_owned(), None), ("b".to_owned(), Some(secs(5)))],
            t0,
        );
        assert_eq!(s.wake_at(), Some(t0));
        let first = s.next_job(t0).expect("a job");
        let second = s.next_job(t0).expect("a job");
        assert_eq!(s.next_job(t0), None);
        assert_eq!(first, job("a", Scope::Pair));
        assert_eq!(second, job("b", Scope::Pair));
        s.finished(&first, true, t0 + secs(1));
        s.finished(&second, true, t0 + secs(2));
        // Only the polled pair wakes the daemon again: 5 s after its sync ended.
        assert_eq!(s.wake_at(), Some(t0 + secs(7)));
        assert_eq!(s.next_job(t0 + secs(6)), None);
        assert_eq!(s.next_job(t0 + secs(7)), Some(job("b", Scope::Pair)));
    }

    #[test]
    fn a_burst_of_changes_syncs_once_after_it_settles() {
        let t0 = Instant::now();
        let mut s = settled(t0);
        s.touched("local", Scope::collection("work"), t0 + ms(1000));
        s.touched("local", Scope::collection("home"), t0 + ms(1200));
        assert_eq!(s.wake_at(), Some(t0 + ms(1500)));
        assert_eq!(s.next_job(t0 + ms(1499)), None);
        let j = s.next_job(t0 + ms(1500)).expect("the burst's sync");
        assert_eq!(
            j,
            job(
                "local",
                Scope::Collections(["home".to_owned(), "work".to_owned()].into())
            )
        );
        s.finished(&j, true, t0 + ms(1600));
        // Nothing else of the local pair until the next change.
        assert_eq!(s.wake_at(), Some(t0 + secs(60)));
    }

    #[test]
    fn a_stream_of_changes_syncs_within_the_longest_delay() {
        let t0 = Instant::now();
        let mut s = settled(t0);
        let mut t = t0 + secs(1);
        for _ in 0..20 {
            s.touched("local", Scope::collection("work"), t);
            t += ms(100);
        }
        assert_eq!(s.wake_at(), Some(t0 + secs(1) + MAX_DELAY));
    }

    #[test]
    fn a_change_at_the_root_syncs_the_whole_pair() {
        let t0 = Instant::now();
        let mut s = settled(t0);
        s.touched("local", Scope::collection("work"), t0);
        s.touched("local", Scope::Pair, t0 + ms(100));
        assert_eq!(s.next_job(t0 + secs(1)), Some(job("local", Scope::Pair)));
    }

    #[test]
    fn a_full_sync_takes_the_pending_changes_with_it() {
        let t0 = Instant::now();
        let mut s = settled(t0);
        s.touched("remote", Scope::collection("work"), t0 + secs(60));
        assert_eq!(s.next_job(t0 + secs(60)), Some(job("remote", Scope::Pair)));
        assert_eq!(s.next_job(t0 + secs(61)), None);
    }

    #[test]
    fn a_failing_pair_backs_off_to_its_interval_and_recovers() {
        let t0 = Instant::now();
        let mut s = settled(t0);
        let mut t = t0 + secs(60);
        let mut waits = Vec::new();
        for _ in 0..4 {
            let j = s.next_job(t).expect("due");
            assert_eq!(j, job("remote", Scope::Pair));
            s.finished(&j, false, t);
            let next = s.wake_at().expect("a retry");
            waits.push(next - t);
            t = next;
        }
        // 30 s, then doubling, never beyond the pair's 60 s interval.
        assert_eq!(waits, [secs(30), secs(60), secs(60), secs(60)]);
        assert_eq!(s.failures("remote"), 4);
        let j = s.next_job(t).expect("due");
        s.finished(&j, true, t);
        assert_eq!(s.failures("remote"), 0);
        assert_eq!(s.wake_at(), Some(t + secs(60)));
    }

    #[test]
    fn a_failing_pair_does_not_hold_the_others_up() {
        let t0 = Instant::now();
        let mut s = settled(t0);
        let j = s.next_job(t0 + secs(60)).expect("poll");
        s.finished(&j, false, t0 + secs(60));
        // The local pair's change runs while the remote one waits for its retry.
        s.touched("local", Scope::collection("work"), t0 + secs(61));
        assert_eq!(
            s.next_job(t0 + secs(62)),
            Some(job("local", Scope::collection("work")))
        );
        assert_eq!(s.next_job(t0 + secs(62)), None);
        assert_eq!(s.next_job(t0 + secs(90)), Some(job("remote", Scope::Pair)));
    }

    #[test]
    fn a_local_pair_that_failed_is_retried_without_a_change() {
        let t0 = Instant::now();
        let mut s = settled(t0);
        s.touched("local", Scope::collection("work"), t0);
        let j = s.next_job(t0 + secs(1)).expect("due");
        s.finished(&j, false, t0 + secs(1));
        assert_eq!(s.next_job(t0 + secs(31)), Some(job("local", Scope::Pair)));
        // Backoff caps at the default interval for a pair that is not polled.
        let mut s = Scheduler::new([("local".to_owned(), None)], t0);
        let mut t = t0;
        for _ in 0..10 {
            let j = s.next_job(t).expect("due");
            s.finished(&j, false, t);
            t = s.wake_at().expect("a retry");
        }
        let j = s.next_job(t).expect("due");
        s.finished(&j, false, t);
        assert_eq!(s.wake_at(), Some(t + DEFAULT_POLL_INTERVAL));
    }

    #[test]
    fn a_pair_never_runs_twice_and_its_changes_wait_for_it() {
        let t0 = Instant::now();
        let mut s = Scheduler::new([("p".to_owned(), None)], t0);
        let first = s.next_job(t0).expect("the first sync");
        assert!(s.is_running("p"));
        assert_eq!(s.running(), 1);
        // A change while it runs is not handed out, and does not wake the loop up.
        s.touched("p", Scope::collection("work"), t0 + ms(10));
        assert_eq!(s.next_job(t0 + secs(5)), None);
        assert_eq!(s.wake_at(), None);
        s.finished(&first, true, t0 + secs(6));
        assert!(!s.is_running("p"));
        // Then it runs, already due.
        assert_eq!(s.wake_at(), Some(t0 + ms(310)));
        assert_eq!(
            s.next_job(t0 + secs(6)),
            Some(job("p", Scope::collection("work")))
        );
    }

    #[test]
    fn pairs_of_other_groups_run_at_once_those_of_one_group_in_turn() {
        let t0 = Instant::now();
        let names = ["a", "b", "c", "d"].map(|n| (n.to_owned(), None));
        // a and b share a server; c and d are groups of their own.
        let mut s = Scheduler::new(names, t0).grouped([vec!["a".to_owned(), "b".to_owned()]]);
        let mut started = Vec::new();
        while let Some(j) = s.next_job(t0) {
            started.push(j.pair);
        }
        assert_eq!(started, ["a", "c", "d"]);
        assert_eq!(s.running(), 3);
        // b waits for a; the loop sleeps until a job ends.
        assert_eq!(s.wake_at(), None);
        s.finished(&job("c", Scope::Pair), true, t0 + secs(1));
        assert_eq!(s.next_job(t0 + secs(1)), None);
        s.finished(&job("a", Scope::Pair), false, t0 + secs(2));
        assert_eq!(s.wake_at(), Some(t0));
        assert_eq!(s.next_job(t0 + secs(2)), Some(job("b", Scope::Pair)));
        // a failed: its retry waits for b as well as for its backoff.
        assert_eq!(s.next_job(t0 + secs(40)), None);
        s.finished(&job("b", Scope::Pair), true, t0 + secs(41));
        assert_eq!(s.next_job(t0 + secs(41)), Some(job("a", Scope::Pair)));
    }

    #[test]
    fn a_slow_pair_holds_up_no_other_group() {
        let t0 = Instant::now();
        let mut s = settled(t0);
        // The remote pair's poll hangs on its server...
        let poll = s.next_job(t0 + secs(60)).expect("poll");
        assert_eq!(poll.pair, "remote");
        // ...while the local pair's changes sync as they come.
        for n in 0..3 {
            let at = t0 + secs(61 + n);
            s.touched("local", Scope::collection("work"), at);
            let j = s.next_job(at + DEBOUNCE).expect("the local change");
            assert_eq!(j, job("local", Scope::collection("work")));
            s.finished(&j, true, at + DEBOUNCE + ms(50));
        }
        assert!(s.is_running("remote"));
    }

    fn config(text: &str) -> Config {
        crate::config::parse(
            text,
            Path::new("/etc/davsync.toml"),
            &BTreeMap::from([("HOME".to_owned(), "/home/u".to_owned())]),
        )
        .expect("valid config")
    }

    const CONFIG: &str = r#"
[storage.cal]
type = "vdir"
path = "/v/cal"
fileext = ".ics"
[storage.phone]
type = "vdir"
path = "/v/phone"
fileext = ".ics"
[storage.server]
type = "caldav"
url = "https://dav.example.com/"
interval = 60
[storage.file]
type = "singlefile"
path = "/f/%s.ics"
[pair.sync]
a = "cal"
b = "server"
collections = "from a"
[pair.renamed]
a = "phone"
b = "file"
collections = [{ name = "work", a = "job", b = "work" }]
"#;

    #[test]
    fn changed_paths_touch_their_collection() {
        let config = config(CONFIG);
        let pairs = config.pairs.values();
        let touched = |path: &str| touched_by(&config, pairs.clone(), Path::new(path));
        assert_eq!(
            touched("/v/cal/work/x.ics"),
            [("sync".to_owned(), Scope::collection("work"))]
        );
        // A collection named differently on this side is touched by its pair-level name; a
        // directory the pair does not sync touches nothing.
        assert_eq!(
            touched("/v/phone/job/x.ics"),
            [("renamed".to_owned(), Scope::collection("work"))]
        );
        assert_eq!(touched("/v/phone/other/x.ics"), []);
        // A new collection directory, the root itself, a file of a single-file storage.
        assert_eq!(touched("/v/cal/new"), [("sync".to_owned(), Scope::Pair)]);
        assert_eq!(touched("/v/cal"), [("sync".to_owned(), Scope::Pair)]);
        assert_eq!(
            touched("/f/work.ics"),
            [("renamed".to_owned(), Scope::Pair)]
        );
        assert_eq!(touched("/f/notes.txt"), []);
        assert_eq!(touched("/v/calendar/x.ics"), []);
    }

    #[test]
    fn watched_directories_and_poll_intervals() {
        let config = config(CONFIG);
        let spec = |dir: &str, children| WatchSpec {
            dir: dir.into(),
            children,
        };
        assert_eq!(
            watch_specs(&config, config.pairs.values()),
            [
                spec("/f", false),
                spec("/v/cal", true),
                spec("/v/phone", true)
            ]
        );
        assert_eq!(
            poll_interval(&config, &config.pairs["sync"]),
            Some(secs(60))
        );
        assert_eq!(poll_interval(&config, &config.pairs["renamed"]), None);
    }
}
