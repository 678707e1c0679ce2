//! `davsync daemon`: sync once, then keep syncing. The decisions are the library's
//! ([`davsync::daemon::Scheduler`]); this is the loop around them: inotify, signals, the systemd
//! notification socket, and each job run through [`sync_pair`] as `davsync sync` runs it.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use davsync::config::Config;
use davsync::daemon::{Job, Scheduler, Scope, WatchSpec, poll_interval, touched_by, watch_specs};
use davsync::http::ConnectionLimit;
use davsync::storage;
use inotify::{Inotify, WatchMask, Watches};

use super::interrupt;
use super::progress::Bars;
use super::sync::{PairRun, run_time, sync_pair};
use super::{Cli, CliError, Selection, Verbosity, complete, load_config};

/// Sync pairs (all pairs when none is named), then keep them in sync
///
/// Syncs every pair once, then: a change in a local storage (a vdir, a single file), seen
/// through inotify, syncs the touched collection 300 ms after the last change of a burst (the
/// whole pair for a single file or a pair without `collections`); network storages are polled
/// every `interval` seconds (a storage key, default 300). A pair that fails is tried again
/// after 30 s, then 60 s, doubling up to its interval; the others go on meanwhile. Pairs that
/// share no server and no local path sync at the same time (up to 4 at once), so a slow or
/// unreachable server holds up only its own pairs.
///
/// SIGHUP reloads the config once the syncs under way ended (a broken one is reported and the
/// previous one kept); SIGTERM or SIGINT finishes and records the writes under way (a request
/// a server leaves unanswered is not tried again) and exits 0. Under systemd (Type=notify) it
/// sends READY=1 once every pair synced once, STATUS= with the last result, and WATCHDOG=1
/// every half of WatchdogSec.
///
/// Output: what `davsync sync` prints, for each collection a job synced. Exit status: 0 when
/// stopped by a signal; 2 for usage or config errors at the start; 1 when inotify or the
/// signal handlers cannot be set up.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Pairs to keep in sync
    #[arg(value_name = "PAIR", add = complete::pairs())]
    pairs: Vec<String>,
}

/// How many jobs run at once, each on a worker thread of its own (as many as `davsync sync`
/// runs groups at once).
const WORKERS: usize = 4;

/// What the loop hears about while it waits.
enum Event {
    /// A file or directory changed in a watched directory.
    Changed(PathBuf),
    /// A signal came (its flag says which).
    Signal,
    /// A worker ran a job, in sync (`true`) or not.
    Finished(Job, bool),
}

pub fn cmd_daemon(cli: &Cli, args: &DaemonArgs, verbosity: Verbosity) -> Result<(), CliError> {
    if let Some(name) = args.pairs.iter().find(|name| name.contains('/')) {
        return Err(CliError::Usage(format!(
            "{name}: the daemon keeps whole pairs in sync; name the pair alone"
        )));
    }
    let mut config = Arc::new(load_daemon_config(cli, &args.pairs)?);
    // Read (and dropped from the environment) before any thread starts, so that hooks do not
    // inherit them.
    let notifier = Notifier::from_env().map(Arc::new);
    let watchdog = watchdog_period();
    let (events, received) = mpsc::channel();
    install_signals(events.clone())?;
    let mut watcher = Watcher::start(events.clone())
        .map_err(|e| CliError::Failed(format!("cannot watch local storages (inotify): {e}")))?;
    if let (Some(notifier), Some(period)) = (&notifier, watchdog) {
        let notifier = Arc::clone(notifier);
        // Pinged from its own thread: a sync (a first download) may outlast the period.
        thread::spawn(move || {
            loop {
                notifier.send("WATCHDOG=1");
                thread::sleep(period);
            }
        });
    }
    let notify = |message: &str| {
        if let Some(notifier) = &notifier {
            notifier.send(message);
        }
    };
    watcher.refresh(&config.watches());
    let mut scheduler = config.scheduler(Instant::now());
    // One cap on requests in flight for every job, whichever runs at the same time as which.
    let connections = ConnectionLimit::new(config.config.max_connections);
    // The pairs that have not run yet: READY=1 once none is left.
    let mut first_round: BTreeSet<String> = config.pairs.iter().cloned().collect();
    if first_round.is_empty() {
        // A config without pairs: nothing to wait for (a reload may bring some).
        notify("READY=1");
    }
    // A SIGHUP waits for the jobs under way: the new scheduler knows nothing of them, and a
    // pair must never run twice at once.
    let mut reload_pending = false;
    let mut stopping = false;
    loop {
        if let Some(signal) = interrupt::received() {
            if !stopping {
                // Jobs under way stop after their writes in flight are recorded.
                stopping = true;
                notify("STOPPING=1");
            }
            if scheduler.running() == 0 {
                eprintln!("davsync: stopped by {}", interrupt::signal_name(signal));
                return Ok(());
            }
        }
        reload_pending |= interrupt::reload_requested();
        if reload_pending && !stopping && scheduler.running() == 0 {
            reload_pending = false;
            match load_daemon_config(cli, &args.pairs) {
                Ok(reloaded) => {
                    config = Arc::new(reloaded);
                    watcher.refresh(&config.watches());
                    connections.set_limit(config.config.max_connections);
                    // Every pair syncs once with what the new config says.
                    scheduler = config.scheduler(Instant::now());
                    first_round.retain(|pair| config.pairs.contains(pair));
                    eprintln!("davsync: reloaded {}", config.config.path.display());
                }
                Err(e) => eprintln!("davsync: config not reloaded, keeping the previous one: {e}"),
            }
        }
        let now = Instant::now();
        // Nothing new starts while stopping or waiting to reload.
        let starting = !stopping && !reload_pending;
        while starting && scheduler.running() < WORKERS {
            let Some(job) = scheduler.next_job(now) else {
                break;
            };
            let worker = Worker {
                config: Arc::clone(&config),
                connections: Arc::clone(&connections),
                verbosity,
                report: Report {
                    job: Some(job),
                    events: events.clone(),
                },
            };
            if let Err(e) = thread::Builder::new()
                .name("davsync-job".into())
                .spawn(move || worker.run())
            {
                // The job comes back as failed (its report dropped) and is retried later.
                eprintln!("error: cannot start a sync thread: {e}");
            }
        }
        let wake_at = if starting { scheduler.wake_at() } else { None };
        let event = match wake_at {
            Some(at) => match received.recv_timeout(at.saturating_duration_since(now)) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Err(lost_events()),
            },
            None => Some(received.recv().map_err(|_| lost_events())?),
        };
        // Take every event already there, so that a burst is one sync.
        for event in event.into_iter().chain(received.try_iter()) {
            match event {
                Event::Changed(path) => {
                    let pairs = config.selected();
                    for (pair, scope) in touched_by(&config.config, pairs, &path) {
                        scheduler.touched(&pair, scope, Instant::now());
                    }
                }
                Event::Signal => {}
                Event::Finished(job, ok) => {
                    scheduler.finished(&job, ok, Instant::now());
                    if !stopping {
                        notify(&status_line(&job, ok, &scheduler, Instant::now()));
                    }
                    // A job cut short by SIGTERM does not count: the daemon is stopping, not
                    // ready.
                    if interrupt::received().is_none()
                        && first_round.remove(&job.pair)
                        && first_round.is_empty()
                    {
                        notify("READY=1");
                    }
                    // Collections the job created are watched from now on.
                    watcher.refresh(&config.watches());
                }
            }
        }
    }
}

/// One job on its worker thread.
struct Worker {
    config: Arc<DaemonConfig>,
    connections: Arc<ConnectionLimit>,
    verbosity: Verbosity,
    report: Report,
}

impl Worker {
    fn run(mut self) {
        if let Some(job) = self.report.job.take() {
            let ok = run_job(&self.config, &job, &self.connections, self.verbosity);
            let _ = self.report.events.send(Event::Finished(job, ok));
        }
    }
}

/// Tells the loop a job ended: sent by [`Worker::run`], or as a failure when the job never ran
/// or its thread panicked, so the scheduler never takes its pair for running forever.
struct Report {
    job: Option<Job>,
    events: Sender<Event>,
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            let _ = self.events.send(Event::Finished(job, false));
        }
    }
}

fn lost_events() -> CliError {
    CliError::Failed("the threads watching files and signals stopped".into())
}

/// The config and the pairs the daemon keeps in sync.
struct DaemonConfig {
    config: Config,
    /// Names of the selected pairs.
    pairs: Vec<String>,
}

impl DaemonConfig {
    fn selected(&self) -> impl Iterator<Item = &davsync::config::PairConfig> + Clone {
        self.pairs
            .iter()
            .filter_map(|name| self.config.pairs.get(name))
    }

    fn watches(&self) -> Vec<WatchSpec> {
        watch_specs(&self.config, self.selected())
    }

    /// A scheduler of the selected pairs, grouped as `davsync sync` groups them: pairs sharing
    /// a server or a local path never run at the same time.
    fn scheduler(&self, now: Instant) -> Scheduler {
        let pairs = self
            .selected()
            .map(|pair| (pair.name.clone(), poll_interval(&self.config, pair)));
        let selected: Vec<_> = self.selected().collect();
        let groups = davsync::groups::pair_groups(&self.config, selected.iter().copied())
            .into_iter()
            .map(|group| {
                group
                    .into_iter()
                    .map(|index| selected[index].name.clone())
                    .collect::<Vec<_>>()
            });
        Scheduler::new(pairs, now).grouped(groups)
    }
}

fn load_daemon_config(cli: &Cli, names: &[String]) -> Result<DaemonConfig, CliError> {
    let config = load_config(cli)?;
    let pairs = super::select_pairs(&config, names)?
        .into_iter()
        .map(|(pair, _)| pair.name.clone())
        .collect();
    Ok(DaemonConfig { config, pairs })
}

/// Runs one job as `davsync sync PAIR[/COLLECTION...]` would, its requests counted against
/// `connections`; whether all of it is in sync.
fn run_job(
    config: &DaemonConfig,
    job: &Job,
    connections: &Arc<ConnectionLimit>,
    verbosity: Verbosity,
) -> bool {
    let Some(pair) = config.config.pairs.get(&job.pair) else {
        return false;
    };
    let only = match &job.scope {
        Scope::Pair => Selection::All,
        Scope::Collections(names) => Selection::Only(names.iter().cloned().collect()),
    };
    let now = match run_time() {
        Ok(now) => now,
        Err(e) => {
            eprintln!("error: {e}");
            return false;
        }
    };
    let run = PairRun {
        dry_run: false,
        now,
        verbosity,
        forced: &|_, _| false,
        say_in_sync: false,
    };
    // A fresh set of clients per job: what one run keeps (discovery answers) must not
    // outlive it, or a poll would not see the server change. The cap on requests in flight
    // is the daemon's, shared with the jobs running at the same time.
    let shared = storage::Shared::new(Arc::clone(connections), Some(&interrupt::INTERRUPTED));
    // No progress bars: a daemon's stderr is a journal, not a person.
    match sync_pair(
        &config.config,
        pair,
        &only,
        &shared,
        &run,
        None,
        &mut Bars::new(false),
    ) {
        // A touched directory that is no collection of the pair (`unknown`) is no failure.
        Ok(outcome) => outcome.summary.clean,
        Err(e) => {
            eprintln!("error: {}: {e}", pair.name);
            false
        }
    }
}

/// The `STATUS=` line after a job.
fn status_line(job: &Job, ok: bool, scheduler: &Scheduler, now: Instant) -> String {
    let what = match &job.scope {
        Scope::Pair => job.pair.clone(),
        Scope::Collections(names) => names
            .iter()
            .map(|name| super::display_name(&job.pair, name))
            .collect::<Vec<_>>()
            .join(", "),
    };
    if ok {
        return format!("STATUS={what}: in sync");
    }
    let retry = scheduler
        .wake_at()
        .map(|at| {
            format!(
                "; next sync in {} s",
                at.saturating_duration_since(now).as_secs()
            )
        })
        .unwrap_or_default();
    format!(
        "STATUS={what}: not in sync ({} failed runs in a row){retry}",
        scheduler.failures(&job.pair)
    )
}

/// Installs the SIGINT/SIGTERM/SIGHUP handlers, with a thread turning their wake-up bytes into
/// [`Event::Signal`].
fn install_signals(events: Sender<Event>) -> Result<(), CliError> {
    let failed =
        |e: io::Error| CliError::Failed(format!("cannot install the signal handlers: {e}"));
    let (mut reader, writer) = UnixStream::pair().map_err(failed)?;
    // A handler must never block: a full socket already holds a wake-up.
    writer.set_nonblocking(true).map_err(failed)?;
    interrupt::wake_on_signal(writer.as_raw_fd());
    // The handlers write to it for the rest of the process.
    std::mem::forget(writer);
    interrupt::install().map_err(failed)?;
    interrupt::install_reload().map_err(failed)?;
    thread::spawn(move || {
        let mut byte = [0u8; 64];
        while reader.read(&mut byte).is_ok_and(|n| n > 0) {
            if events.send(Event::Signal).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// The inotify watches on the local storages' directories.
struct Watcher {
    watches: Watches,
    /// The directory of each watch descriptor (by its number), for the reader thread.
    dirs: Arc<Mutex<HashMap<i32, PathBuf>>>,
}

/// What counts as a change: content written, entries created, deleted or renamed.
fn mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

impl Watcher {
    /// Starts the thread that reads inotify events and sends [`Event::Changed`].
    fn start(events: Sender<Event>) -> io::Result<Watcher> {
        let mut inotify = Inotify::init()?;
        let watches = inotify.watches();
        let dirs: Arc<Mutex<HashMap<i32, PathBuf>>> = Arc::default();
        let known = Arc::clone(&dirs);
        thread::spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok(batch) = inotify.read_events_blocking(&mut buffer) {
                let Ok(dirs) = known.lock() else {
                    return;
                };
                for event in batch {
                    let Some(dir) = dirs.get(&event.wd.get_watch_descriptor_id()) else {
                        continue;
                    };
                    let path = match event.name {
                        Some(name) => dir.join(name),
                        None => dir.clone(),
                    };
                    if events.send(Event::Changed(path)).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Watcher { watches, dirs })
    }

    /// Watches the directories `specs` name (and their subdirectories where asked) that exist
    /// now, and no others. A directory that cannot be watched is reported: its changes wait for
    /// the pair's next poll or reload.
    fn refresh(&mut self, specs: &[WatchSpec]) {
        let mut wanted: Vec<PathBuf> = Vec::new();
        for spec in specs {
            if !spec.dir.is_dir() {
                continue;
            }
            wanted.push(spec.dir.clone());
            if spec.children
                && let Ok(entries) = std::fs::read_dir(&spec.dir)
            {
                wanted.extend(
                    entries
                        .flatten()
                        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        let Ok(mut dirs) = self.dirs.lock() else {
            return;
        };
        let stale: Vec<i32> = dirs
            .iter()
            .filter(|(_, dir)| !wanted.contains(dir))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            dirs.remove(&id);
        }
        // Descriptors of removed watches stay unknown to the reader, so their events are
        // dropped; the kernel drops a watch whose directory is gone by itself.
        for dir in wanted {
            match self.watches.add(&dir, mask()) {
                Ok(wd) => {
                    dirs.insert(wd.get_watch_descriptor_id(), dir);
                }
                Err(e) => eprintln!("warning: cannot watch {}: {e}", dir.display()),
            }
        }
    }
}

/// The systemd notification socket (`$NOTIFY_SOCKET`, sd_notify(3)).
struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
}

impl Notifier {
    /// The socket systemd named, if any: a path, or `@name` for an abstract socket. The variable
    /// is dropped from the environment, so that the hooks davsync runs do not notify in its
    /// name.
    fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        // SAFETY: called before the daemon starts any thread, so nothing reads the environment
        // concurrently.
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let bytes = name.as_encoded_bytes();
        let address = match bytes.split_first() {
            Some((b'@', abstract_name)) => SocketAddr::from_abstract_name(abstract_name),
            Some((b'/', _)) => SocketAddr::from_pathname(&name),
            _ => {
                eprintln!("warning: NOTIFY_SOCKET={name:?} is neither a path nor @name; ignored");
                return None;
            }
        };
        // Non-blocking: a reader that stopped reading must not stop the syncs; a message that
        // does not fit is dropped.
        let notifier = UnixDatagram::unbound()
            .and_then(|socket| socket.set_nonblocking(true).map(|()| socket))
            .and_then(|socket| Ok((socket, address?)))
            .map(|(socket, address)| Notifier { socket, address });
        match notifier {
            Ok(notifier) => Some(notifier),
            Err(e) => {
                eprintln!("warning: NOTIFY_SOCKET={name:?}: {e}; systemd is not notified");
                None
            }
        }
    }

    /// Sends one message. A failure is not reported: systemd going away must not stop a sync.
    fn send(&self, message: &str) {
        let _ = self.socket.send_to_addr(message.as_bytes(), &self.address);
    }
}

/// Half of `$WATCHDOG_USEC` when the watchdog is meant for this process (`$WATCHDOG_PID`
/// unset or ours). Both variables are dropped from the environment, like `NOTIFY_SOCKET`.
fn watchdog_period() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    // SAFETY: as in `Notifier::from_env`, no other thread runs yet.
    unsafe {
        std::env::remove_var("WATCHDOG_USEC");
        std::env::remove_var("WATCHDOG_PID");
    }
    if pid.is_some_and(|pid| pid.parse() != Ok(std::process::id())) {
        return None;
    }
    let usec: u64 = usec?.parse().ok().filter(|usec| *usec > 0)?;
    Some(Duration::from_micros(usec / 2))
}
