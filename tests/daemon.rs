//! `davsync daemon` as a user runs it: the real binary in a sandbox, on vdir pairs and against
//! Radicale. Changes cross within the 2 s the issue allows, a server change arrives within the
//! storage's `interval`, SIGHUP reloads (or keeps a broken config out), SIGTERM in the middle of
//! a large upload exits 0 and a restart converges, systemd hears READY=1, STATUS= and
//! WATCHDOG=1 on the socket `NOTIFY_SOCKET` names, and a pair stuck on a server that never
//! answers holds up no other pair.

mod common;
mod dav_support;

use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{EventBuilder, Sandbox, list_dir, totals};
use dav_support::{DavServer, Radicale};

/// The latency the issue allows for a local change to reach the other side.
const LOCAL_LATENCY: Duration = Duration::from_secs(2);

fn event(uid: &str, summary: &str) -> String {
    EventBuilder::new(summary).uid(uid).build()
}

/// Whether `check` holds within `limit`, tried every 20 ms.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A sandbox on tmpfs: a vdir write ends with `syncfs`, which on a busy disk alone can take
/// longer than the latency under test.
fn sandbox() -> Sandbox {
    Sandbox::new_in(Path::new("/dev/shm"))
}

/// A running `davsync daemon`, its output going to files in the sandbox, with the datagram
/// socket it notifies as systemd's would.
struct Daemon {
    child: Child,
    notify: UnixDatagram,
    /// Every message received so far.
    messages: Vec<String>,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

/// Where the daemon is told to notify.
enum Socket {
    Path,
    Abstract,
}

impl Daemon {
    fn start(sb: &Sandbox, args: &[&str], env: &[(&str, &str)], socket: Socket) -> Daemon {
        let (notify, name) = match socket {
            Socket::Path => {
                let path = sb.path("notify.sock");
                let _ = fs::remove_file(&path);
                let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
                (socket, path.display().to_string())
            }
            Socket::Abstract => {
                let name = format!("davsync-test-{}-{:?}", std::process::id(), Instant::now());
                let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
                let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
                (socket, format!("@{name}"))
            }
        };
        // Non-blocking: `receive` takes what is queued and returns. With a read timeout it
        // would wait for a gap in the messages, and watchdog pings every 50 ms may leave none.
        notify.set_nonblocking(true).expect("non-blocking socket");
        let runs = fs::read_dir(sb.root()).map_or(0, |d| d.count());
        let out = sb.path(&format!("daemon-{runs}.out"));
        let err = sb.path(&format!("daemon-{runs}.err"));
        let mut cmd = sb.std_cmd();
        cmd.arg("daemon")
            .args(args)
            .env("NOTIFY_SOCKET", name)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("stdout file"))
            .stderr(fs::File::create(&err).expect("stderr file"));
        for (name, value) in env {
            cmd.env(name, value);
        }
        let child = cmd.spawn().expect("start davsync daemon");
        Daemon {
            child,
            notify,
            messages: Vec::new(),
            out,
            err,
        }
    }

    /// Reads what arrived on the socket.
    fn receive(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.notify.recv(&mut buf) {
            self.messages
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }

    /// Waits (up to `limit`) for a message starting with `prefix`.
    fn wait_message(&mut self, prefix: &str, limit: Duration) -> bool {
        within(limit, || {
            self.receive();
            self.messages.iter().any(|m| m.starts_with(prefix))
        })
    }

    /// Waits for READY=1: every pair synced once.
    fn ready(&mut self) {
        let ready = self.wait_message("READY=1", Duration::from_secs(120));
        assert!(ready, "no READY=1; stderr:\n{}", self.stderr());
    }

    fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Both outputs, for assertion messages.
    fn output(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr())
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.child.wait().expect("wait for the daemon")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A vdir pair `p` between `{root}/a` and `{root}/b`, collections from a.
fn vdir_pair(name: &str, a: &str, b: &str) -> String {
    format!(
        r#"
[storage.{name}_a]
type = "vdir"
path = "{{root}}/{a}"
fileext = ".ics"

[storage.{name}_b]
type = "vdir"
path = "{{root}}/{b}"
fileext = ".ics"

[pair.{name}]
a = "{name}_a"
b = "{name}_b"
collections = "from a"
"#
    )
}

fn status_path() -> String {
    "status_path = \"{root}/status\"\n".to_owned()
}

#[test]
fn vdir_changes_cross_within_two_seconds_and_systemd_hears_of_it() {
    let sb = sandbox();
    sb.write_config(&(status_path() + &vdir_pair("p", "a", "b")));
    sb.write("a/work/one.ics", event("one", "First"));
    sb.mkdir("b");
    let mut daemon = Daemon::start(&sb, &[], &[("WATCHDOG_USEC", "100000")], Socket::Path);
    daemon.ready();
    // READY=1 comes after the first sync.
    assert!(sb.exists("b/work/one.ics"), "{}", daemon.stderr());
    assert!(
        daemon.messages.iter().any(|m| m == "STATUS=p: in sync"),
        "{:?}",
        daemon.messages
    );

    // Created on a, created on b, edited, deleted: each on the other side within 2 s.
    sb.write("a/work/two.ics", event("two", "Second"));
    assert!(
        within(LOCAL_LATENCY, || sb.exists("b/work/two.ics")),
        "{}",
        daemon.output()
    );
    sb.write("b/work/three.ics", event("three", "Third"));
    assert!(
        within(LOCAL_LATENCY, || sb.exists("a/work/three.ics")),
        "{}",
        daemon.output()
    );
    sb.write("a/work/one.ics", event("one", "First, moved"));
    assert!(
        within(LOCAL_LATENCY, || {
            sb.read_string("b/work/one.ics").contains("First, moved")
        }),
        "{}",
        daemon.output()
    );
    sb.remove("b/work/two.ics");
    assert!(
        within(LOCAL_LATENCY, || !sb.exists("a/work/two.ics")),
        "{}",
        daemon.output()
    );
    // A new collection directory.
    sb.write("a/home/four.ics", event("four", "Fourth"));
    assert!(
        within(LOCAL_LATENCY, || sb.exists("b/home/four.ics")),
        "{}",
        daemon.output()
    );

    // A change in one collection syncs that collection only (and so does the no-op sync
    // that follows davsync's own write to b).
    // (First the follow-up of the new directory: a whole-pair sync 300 ms after it.)
    thread::sleep(Duration::from_millis(800));
    let before = daemon.stdout().len();
    sb.write("a/home/five.ics", event("five", "Fifth"));
    assert!(
        within(LOCAL_LATENCY, || sb.exists("b/home/five.ics")),
        "{}",
        daemon.output()
    );
    thread::sleep(Duration::from_millis(500));
    let since = daemon.stdout()[before..].to_owned();
    assert!(since.starts_with("p/home: 1 created, "), "{since}");
    assert!(
        since.lines().all(|line| line.starts_with("p/home: ")),
        "{since}"
    );

    // WATCHDOG_USEC=100000: a ping every 50 ms.
    thread::sleep(Duration::from_millis(300));
    daemon.receive();
    let pings = daemon
        .messages
        .iter()
        .filter(|m| *m == "WATCHDOG=1")
        .count();
    assert!(pings >= 4, "{:?}", daemon.messages);

    let status = daemon.stop();
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
    assert!(daemon.stderr().contains("davsync: stopped by SIGTERM"));
    daemon.receive();
    assert_eq!(
        daemon.messages.last().map(String::as_str),
        Some("STOPPING=1")
    );
    assert_eq!(list_dir(&sb.path("a/home")), ["five.ics", "four.ics"]);
    assert_eq!(list_dir(&sb.path("a/work")), ["one.ics", "three.ics"]);
    assert_eq!(list_dir(&sb.path("b/work")), ["one.ics", "three.ics"]);
    // Every run left both sides in sync: no conflict, nothing unsynced.
    let stdout = daemon.stdout();
    assert!(
        stdout
            .lines()
            .all(|line| line.contains(" 0 conflicts, 0 errors")),
        "{stdout}"
    );
    assert!(daemon.stderr().lines().count() == 1, "{}", daemon.stderr());
}

#[test]
fn sighup_reloads_the_config_and_keeps_it_when_broken() {
    let sb = sandbox();
    let first = status_path() + &vdir_pair("p", "a", "b");
    sb.write_config(&first);
    sb.write("a/work/one.ics", event("one", "First"));
    sb.mkdir("b");
    let mut daemon = Daemon::start(&sb, &[], &[], Socket::Abstract);
    daemon.ready();
    assert!(sb.exists("b/work/one.ics"));

    // A new pair: it starts syncing on SIGHUP.
    let second = first.clone() + &vdir_pair("q", "c", "d");
    sb.write("c/home/x.ics", event("x", "Elsewhere"));
    sb.mkdir("d");
    sb.write_config(&second);
    daemon.signal(libc::SIGHUP);
    assert!(
        within(Duration::from_secs(10), || sb.exists("d/home/x.ics")),
        "{}",
        daemon.stderr()
    );
    assert!(daemon.stderr().contains("davsync: reloaded "));

    // A broken config is reported and the previous one keeps working, both pairs.
    sb.write_config(&(second + "[pair.r]\na = \"p_a\"\n"));
    daemon.signal(libc::SIGHUP);
    assert!(within(Duration::from_secs(10), || {
        daemon
            .stderr()
            .contains("davsync: config not reloaded, keeping the previous one: ")
    }));
    let stderr = sb.normalize(&daemon.stderr());
    let reason = stderr
        .lines()
        .find(|line| line.contains("config not reloaded"))
        .unwrap_or_default()
        .to_owned();
    insta::assert_snapshot!(reason, @"davsync: config not reloaded, keeping the previous one: [TMP]/config.toml:32: pair.r: missing required key \"b\"");
    sb.write("a/work/two.ics", event("two", "Second"));
    sb.write("c/home/y.ics", event("y", "Elsewhere too"));
    assert!(
        within(LOCAL_LATENCY, || sb.exists("b/work/two.ics")),
        "{}",
        daemon.output()
    );
    assert!(
        within(LOCAL_LATENCY, || sb.exists("d/home/y.ics")),
        "{}",
        daemon.output()
    );
    assert_eq!(daemon.stop().code(), Some(0));
}

/// Config text: vdir `local` at `{root}/cals` and Radicale's home set as `server`, polled every
/// `interval` seconds, pair `p` with the server's collections.
fn radicale_config(server: &Radicale, interval: u64) -> String {
    format!(
        r#"status_path = "{{root}}/status"

[storage.local]
type = "vdir"
path = "{{root}}/cals"
fileext = ".ics"

[storage.server]
type = "caldav"
url = "{url}"
username = "alice"
password = {{ env = "DAVSYNC_TEST_PW" }}
interval = {interval}

[pair.p]
a = "local"
b = "server"
collections = "from b"
"#,
        url = server.url()
    )
}

#[test]
fn radicale_pair_local_changes_go_up_at_once_and_server_changes_come_down_by_polling() {
    let server = Radicale::start();
    let client = server.client();
    let home = server.calendar_home_url();
    client.mkcalendar(&format!("{home}work/"));
    let sb = sandbox();
    sb.mkdir("cals");
    sb.write_config(&radicale_config(&server, 1));
    let password = [("DAVSYNC_TEST_PW", server.password())];
    let mut daemon = Daemon::start(&sb, &[], &password, Socket::Path);
    daemon.ready();

    // vdir → server within 2 s.
    sb.write("cals/work/v1.ics", event("v1", "From the laptop"));
    let on_server = || client.get(&format!("{home}work/v1.ics")).status == 200;
    assert!(within(LOCAL_LATENCY, on_server), "{}", daemon.stderr());

    // server → vdir within the 1 s interval (and the 2 s a sync may take).
    let put = client.put_item(
        &format!("{home}work/s1.ics"),
        event("s1", "From the phone").as_bytes(),
    );
    assert!(put.is_success());
    let limit = Duration::from_secs(1) + LOCAL_LATENCY;
    assert!(
        within(limit, || sb.exists("cals/work/s1.ics")),
        "{}",
        daemon.stderr()
    );

    // Once settled, a poll that finds nothing new costs one request: the home set's
    // PROPFIND (Depth 1) asking for the collections' ctags.
    thread::sleep(Duration::from_millis(1500));
    let before = server.logged_requests().len();
    thread::sleep(Duration::from_millis(3500));
    let polls: Vec<(String, String)> = server.logged_requests()[before..].to_vec();
    println!("no-op polls in 3.5 s: {polls:?}");
    assert!(polls.len() >= 2, "{polls:?}");
    assert!(
        polls
            .iter()
            // (How `logged_requests` cuts Radicale's log line.)
            .all(|(method, path)| method == "PROPFIND" && path == "/alice/' with depth '1"),
        "{polls:?}"
    );
    assert_eq!(daemon.stop().code(), Some(0), "{}", daemon.stderr());
}

#[test]
fn sigterm_during_a_large_sync_exits_0_and_a_restart_converges() {
    const ITEMS: usize = 2000;
    let sb = sandbox();
    for n in 0..ITEMS {
        sb.write(
            &format!("a/work/e{n:04}.ics"),
            event(&format!("e{n:04}"), "Many"),
        );
    }
    sb.mkdir("b");
    // The SIGTERM comes from b's post_hook once e0100 is written: in the middle of the sync,
    // every time. (The hook's parent is the daemon.)
    let hook =
        r#"post_hook = ["sh", "-c", "case $1 in */e0100.ics) kill -TERM $PPID;; esac", "hook"]"#;
    let text = (status_path() + &vdir_pair("p", "a", "b")).replace(
        "path = \"{root}/b\"\n",
        &format!("path = \"{{root}}/b\"\n{hook}\n"),
    );
    assert!(text.contains("post_hook"));
    sb.write_config(&text);

    let mut daemon = Daemon::start(&sb, &[], &[], Socket::Path);
    let status = daemon.child.wait().expect("wait for the daemon");
    let stderr = daemon.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("interrupted: p/work: ") && stderr.contains("davsync: stopped by SIGTERM"),
        "{stderr}"
    );
    let copied = list_dir(&sb.path("b/work")).len();
    assert!((100..ITEMS).contains(&copied), "{copied} copied");
    daemon.receive();
    assert!(!daemon.messages.iter().any(|m| m == "READY=1"));

    // The restart does the rest: every item once on each side.
    let mut daemon = Daemon::start(&sb, &[], &[], Socket::Path);
    daemon.ready();
    assert_eq!(daemon.stop().code(), Some(0), "{}", daemon.stderr());
    let names: Vec<String> = (0..ITEMS).map(|n| format!("e{n:04}.ics")).collect();
    assert_eq!(list_dir(&sb.path("a/work")), names);
    assert_eq!(list_dir(&sb.path("b/work")), names);
    let again = sb.run(&["sync"]);
    again.success();
    assert_eq!(totals(&again), (0, 0, 0), "{}", again.both());
    sb.run(&["status"]).success();
}

/// A mock server that accepts connections and never answers, until [`BlackHole::close`]: then
/// every connection is shut down and no new one accepted, so a client waiting on it fails at
/// once instead of at its timeout.
struct BlackHole {
    url: String,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    addr: std::net::SocketAddr,
}

impl BlackHole {
    fn start() -> BlackHole {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (kept, stopped) = (accepted.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    kept.lock().expect("streams").push(stream);
                }
            }
        });
        BlackHole {
            url: format!("http://{addr}/dav/"),
            accepted,
            stop,
            addr,
        }
    }

    /// Connections accepted so far.
    fn connections(&self) -> usize {
        self.accepted.lock().expect("streams").len()
    }

    fn close(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept loop, which then ends and drops the listener.
        let _ = std::net::TcpStream::connect(self.addr);
        for stream in self.accepted.lock().expect("streams").drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The config of pair `slow`: the vdir `{root}/phone` and the CalDAV server at `url`, with
/// `timeout` seconds per request.
fn silent_pair(url: &str, timeout: u64) -> String {
    format!(
        r#"
[storage.phone]
type = "vdir"
path = "{{root}}/phone"
fileext = ".ics"

[storage.silent]
type = "caldav"
url = "{url}"
timeout = {timeout}

[pair.slow]
a = "phone"
b = "silent"
collections = "from b"
"#
    )
}

#[test]
fn a_pair_stuck_on_a_silent_server_holds_up_no_other_pair() {
    let hole = BlackHole::start();
    let sb = sandbox();
    // `slow` waits on a server that never answers (for a minute per request, its timeout);
    // `p` is two vdirs.
    let slow = silent_pair(&hole.url, 60);
    sb.write_config(&(status_path() + &vdir_pair("p", "a", "b") + &slow));
    sb.write("a/work/one.ics", event("one", "First"));
    sb.mkdir("b");
    sb.mkdir("phone");
    let mut daemon = Daemon::start(&sb, &[], &[], Socket::Path);
    assert!(
        within(Duration::from_secs(30), || sb.exists("b/work/one.ics")
            && hole.connections() > 0),
        "{}",
        daemon.output()
    );
    // While `slow` waits for its answer, `p`'s changes cross as quickly as ever.
    sb.write("a/work/two.ics", event("two", "Second"));
    assert!(
        within(LOCAL_LATENCY, || sb.exists("b/work/two.ics")),
        "{}",
        daemon.output()
    );
    sb.write("b/work/three.ics", event("three", "Third"));
    assert!(
        within(LOCAL_LATENCY, || sb.exists("a/work/three.ics")),
        "{}",
        daemon.output()
    );
    daemon.receive();
    // `slow` never finished its first sync: no READY=1 yet.
    assert!(
        !daemon.messages.iter().any(|m| m == "READY=1"),
        "{:?}",
        daemon.messages
    );
    // A reload waits for the stuck job: the new scheduler knows nothing of the jobs under
    // way. Once the server goes away, the job fails and the reload goes through.
    daemon.signal(libc::SIGHUP);
    thread::sleep(Duration::from_millis(500));
    assert!(
        !daemon.stderr().contains("davsync: reloaded"),
        "{}",
        daemon.output()
    );
    hole.close();
    assert!(
        within(Duration::from_secs(30), || daemon
            .stderr()
            .contains("davsync: reloaded")),
        "{}",
        daemon.output()
    );
    // SIGTERM waits for the jobs under way (`slow` again, failing at once now) and exits 0.
    daemon.signal(libc::SIGTERM);
    let status = daemon.child.wait().expect("wait for the daemon");
    assert_eq!(status.code(), Some(0), "{}", daemon.output());
    assert!(
        daemon.stderr().contains("davsync: stopped by SIGTERM"),
        "{}",
        daemon.output()
    );
}

/// SIGTERM while a request waits on a server that never answers: the request runs out its
/// `timeout` and is not tried again, so the daemon stops within one timeout, not within the
/// four of a request and its retries (which outlast systemd's stop timeout with a long one).
#[test]
fn sigterm_tries_no_request_again() {
    let hole = BlackHole::start();
    let sb = sandbox();
    let timeout = 3;
    sb.write_config(&(status_path() + &silent_pair(&hole.url, timeout)));
    sb.mkdir("phone");
    let mut daemon = Daemon::start(&sb, &[], &[], Socket::Path);
    assert!(
        within(Duration::from_secs(30), || hole.connections() > 0),
        "{}",
        daemon.output()
    );
    let asked = hole.connections();
    let signalled = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.child.wait().expect("wait for the daemon");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", daemon.output());
    assert_eq!(
        hole.connections(),
        asked,
        "a request was tried again after SIGTERM"
    );
    assert!(
        took < Duration::from_secs(timeout + 2),
        "stopping took {took:?}\n{}",
        daemon.output()
    );
}
