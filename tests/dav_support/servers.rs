//! Real DAV servers (Radicale, Xandikos) from the pinned venv, each on 127.0.0.1 and a free
//! port, with its data in a temporary directory, stopped on drop.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::http::DavClient;
use super::venv::venv_bin;

const START_TIMEOUT: Duration = Duration::from_secs(15);
const START_ATTEMPTS: usize = 5;

/// A port that was free a moment ago (bind 127.0.0.1:0, read the port, close).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// What the tests need to know about any of the servers, so a test can run against each.
pub trait DavServer {
    /// `http://127.0.0.1:PORT/`
    fn url(&self) -> String;
    fn port(&self) -> u16;
    fn user(&self) -> &str;
    fn password(&self) -> &str;
    /// Everything the server printed so far (stdout and stderr interleaved).
    fn log(&self) -> String;
    /// The principal, e.g. `http://127.0.0.1:PORT/alice/`.
    fn principal_url(&self) -> String;
    /// Where new calendars go (`{home}{name}/`).
    fn calendar_home_url(&self) -> String;
    /// Where new address books go.
    fn addressbook_home_url(&self) -> String;
    /// A client with this server's credentials.
    fn client(&self) -> DavClient {
        DavClient::basic(self.user(), self.password())
    }
    /// Whether a sync-collection REPORT answer carries the `calendar-data`/`address-data` it
    /// asked for (RFC 6578 allows any property; Xandikos leaves the data out, as the README's
    /// DAV section says).
    fn sync_report_has_data(&self) -> bool {
        true
    }
}

/// A running server process; killed and reaped on drop, before its temporary directory goes.
struct ServerProcess {
    child: Child,
    /// Held open: the watchdog in the server process exits when it reads EOF, i.e. when this
    /// test process dies without running `Drop` (killed by a time-out, aborted, a server kept
    /// in a `static`), so no server outlives its test binary.
    _stdin: Option<ChildStdin>,
    port: u16,
    log_path: PathBuf,
}

enum Start {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

impl ServerProcess {
    /// Spawns `build(port)` on free ports until one starts (a port taken between our probe and
    /// the server's bind makes the server exit; then another port is tried). Ready means: the
    /// port accepts TCP connections, the log has `ready_line`, and the process is still alive.
    fn spawn(
        name: &'static str,
        dir: &Path,
        ready_line: &str,
        mut build: impl FnMut(u16) -> Command,
    ) -> ServerProcess {
        let log_path = dir.join(format!("{name}.log"));
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let log = File::create(&log_path).expect("create server log");
            let mut cmd = build(port);
            cmd.stdin(Stdio::piped())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .env("PYTHONUNBUFFERED", "1")
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .env_remove("LISTEN_FDS")
                .env_remove("LISTEN_PID");
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
            let mut proc = ServerProcess {
                _stdin: child.stdin.take(),
                child,
                port,
                log_path: log_path.clone(),
            };
            match proc.wait_ready(ready_line) {
                Start::Ready => return proc,
                Start::Exited(status) => {
                    let log = proc.log();
                    let port_taken = log.contains("Address already in use")
                        || log.contains("address already in use")
                        || log.contains("Errno 98");
                    if port_taken && attempt < START_ATTEMPTS {
                        continue;
                    }
                    panic!("{name} exited during start-up ({status}) on port {port}:\n{log}");
                }
                Start::TimedOut => {
                    let log = proc.log();
                    drop(proc);
                    panic!(
                        "{name} did not accept connections on 127.0.0.1:{port} within \
                         {START_TIMEOUT:?}:\n{log}"
                    );
                }
            }
        }
        unreachable!()
    }

    fn wait_ready(&mut self, ready_line: &str) -> Start {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Start::Exited(status);
            }
            if self.log().contains(ready_line)
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                thread::sleep(Duration::from_millis(20));
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Start::Exited(status);
                }
                return Start::Ready;
            }
            if Instant::now() > deadline {
                return Start::TimedOut;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

/// Runs a venv console script (`radicale`, `xandikos`) under the venv's Python with a watchdog
/// thread that ends the process when its stdin reaches EOF.
const WATCHDOG: &str = "\
import os, runpy, sys, threading
def watch():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
";

/// `python -c WATCHDOG <venv>/bin/SCRIPT`, ready for arguments.
fn watched(script: &str) -> Command {
    let mut cmd = Command::new(venv_bin("python3"));
    cmd.arg("-c").arg(WATCHDOG).arg(venv_bin(script));
    cmd
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Radicale with Basic auth (plain htpasswd, `alice` / `secret-horse-42`, no failed-login
/// delay, no 5xx delay), rights `owner_only`, info-level logging (one line per request).
/// Collections are `/alice/NAME/`.
pub struct Radicale {
    // Field order matters: the process is stopped before the directory is removed.
    proc: ServerProcess,
    dir: tempfile::TempDir,
}

impl Radicale {
    pub const USER: &'static str = "alice";
    pub const PASSWORD: &'static str = "secret-horse-42";

    pub fn start() -> Radicale {
        let dir = tempfile::Builder::new()
            .prefix("davsync-radicale-")
            .tempdir()
            .expect("create temporary directory");
        let users = dir.path().join("users");
        fs::write(&users, format!("{}:{}\n", Self::USER, Self::PASSWORD)).expect("write users");
        let data = dir.path().join("data");
        let config = dir.path().join("config");
        let proc = ServerProcess::spawn("radicale", dir.path(), "Radicale server ready", |port| {
            fs::write(
                &config,
                format!(
                    "[server]\n\
                     hosts = 127.0.0.1:{port}\n\
                     delay_on_error = 0\n\
                     max_connections = 32\n\
                     [auth]\n\
                     type = htpasswd\n\
                     htpasswd_filename = {}\n\
                     htpasswd_encryption = plain\n\
                     delay = 0\n\
                     [rights]\n\
                     type = owner_only\n\
                     [storage]\n\
                     filesystem_folder = {}\n\
                     [web]\n\
                     type = none\n\
                     [logging]\n\
                     level = info\n\
                     mask_passwords = True\n",
                    users.display(),
                    data.display()
                ),
            )
            .expect("write radicale config");
            let mut cmd = watched("radicale");
            cmd.arg("--config").arg(&config);
            cmd
        });
        Radicale { proc, dir }
    }

    /// The storage folder (`collection-root/alice/...` below it).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `(METHOD, path)` of every request Radicale logged so far, in order
    /// (from its `METHOD request for 'PATH' received from ...` lines).
    pub fn logged_requests(&self) -> Vec<(String, String)> {
        self.log()
            .lines()
            .filter_map(|line| {
                let (_, rest) = line.split_once("] [INFO] ")?;
                let (method, rest) = rest.split_once(" request for '")?;
                let (path, _) = rest.split_once("' received from")?;
                Some((method.to_string(), path.to_string()))
            })
            .collect()
    }
}

impl DavServer for Radicale {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.proc.port)
    }
    fn port(&self) -> u16 {
        self.proc.port
    }
    fn user(&self) -> &str {
        Self::USER
    }
    fn password(&self) -> &str {
        Self::PASSWORD
    }
    fn log(&self) -> String {
        self.proc.log()
    }
    fn principal_url(&self) -> String {
        format!("{}alice/", self.url())
    }
    fn calendar_home_url(&self) -> String {
        self.principal_url()
    }
    fn addressbook_home_url(&self) -> String {
        self.principal_url()
    }
}

/// Xandikos with `--defaults --current-user-principal /alice/`, no auth (any credentials are
/// accepted and ignored). Default collections: `/alice/calendars/calendar/` and
/// `/alice/contacts/addressbook/`.
pub struct Xandikos {
    proc: ServerProcess,
    dir: tempfile::TempDir,
}

impl Xandikos {
    pub fn start() -> Xandikos {
        let dir = tempfile::Builder::new()
            .prefix("davsync-xandikos-")
            .tempdir()
            .expect("create temporary directory");
        let data = dir.path().join("data");
        let state = dir.path().join("state");
        let proc = ServerProcess::spawn("xandikos", dir.path(), "Listening on", |port| {
            let mut cmd = watched("xandikos");
            cmd.arg("serve")
                .arg("--defaults")
                .args(["--current-user-principal", "/alice/"])
                .args(["-l", "127.0.0.1"])
                .args(["-p", &port.to_string()])
                .arg("-d")
                .arg(&data)
                // Keeps TLS/VAPID state out of $XDG_DATA_HOME.
                .arg("--state-dir")
                .arg(&state)
                .arg("--no-detect-systemd");
            cmd
        });
        Xandikos { proc, dir }
    }

    /// The data directory (a git repository per collection).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `http://127.0.0.1:PORT/alice/calendars/calendar/`
    pub fn calendar_url(&self) -> String {
        format!("{}calendar/", self.calendar_home_url())
    }

    /// `http://127.0.0.1:PORT/alice/contacts/addressbook/`
    pub fn addressbook_url(&self) -> String {
        format!("{}addressbook/", self.addressbook_home_url())
    }
}

impl DavServer for Xandikos {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.proc.port)
    }
    fn port(&self) -> u16 {
        self.proc.port
    }
    fn user(&self) -> &str {
        "alice"
    }
    /// Not checked by Xandikos.
    fn password(&self) -> &str {
        "unused-by-xandikos"
    }
    fn log(&self) -> String {
        self.proc.log()
    }
    fn principal_url(&self) -> String {
        format!("{}alice/", self.url())
    }
    fn calendar_home_url(&self) -> String {
        format!("{}alice/calendars/", self.url())
    }
    fn addressbook_home_url(&self) -> String {
        format!("{}alice/contacts/", self.url())
    }
    fn sync_report_has_data(&self) -> bool {
        false
    }
}
