//! `kill -9` during syncs between a vdir and a real CalDAV server (Radicale, Xandikos), through
//! the binary and the fault proxy.
//!
//! A vdir with three calendars (`c0`, `c1`, `c2`; a fourth, `c3`, appears later) is paired with
//! the server (`collections = "from a"`) and synced cleanly. Then, eleven times, items are
//! created, edited and deleted on both sides (on the server by another client) and
//! `davsync -v sync` is killed with SIGKILL at a moment chosen by watching the proxy, so that
//! each round is killed at the same point on every machine:
//!
//! - a request is *held* by the proxy (the first PUT, the third PUT, the second DELETE, the
//!   REPORT listing one calendar, the first request of the second calendar, a MKCALENDAR, the
//!   home-set PROPFIND); the process is killed while it waits for the answer, then the proxy
//!   either forwards the request (the server applies it, the answer is lost) or drops it (it
//!   never reaches the server);
//! - or the run is killed as soon as the proxy has answered its second write (before the status
//!   database records it), or once it has reported a few applied actions (downloads into the
//!   vdir among them); a later request is held meanwhile so that the run cannot finish first;
//! - once, the held PUT of a killed run stays held into the next run, which is not killed: that
//!   run's own PUT of the same item is held until the server applied the old one, so it meets
//!   its own content under a new ETag (a server slow to apply the write of a killed client).
//!   That run must succeed without errors or conflicts.
//!
//! Every item is edited or deleted at most once, and only after a clean sync copied it: a killed
//! run may have copied a change without recording it, which the next run must recognize as "the
//! same on both sides", not as a conflict.
//!
//! After the kills, one sync must exit 0 with zero conflicts; every item the test expects is then
//! held exactly once in its calendar on both sides and is the last version written (the server
//! checked by a calendar-query REPORT of the test's own, the vdir by reading the files), and
//! nothing else is there. One more sync must write nothing: no PUT, DELETE or MKCALENDAR in the
//! proxy's log, "in sync", the vdir files untouched.

mod common;
mod dav_support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Run, Sandbox, totals, tree_state};
use dav_support::{
    DavClient, DavServer, FaultProxy, Hold, Radicale, Release, Xandikos, elements, xml_text,
};

/// Longest wait for a run to reach its kill point.
const KILL_POINT_TIMEOUT: Duration = Duration::from_secs(60);

/// Requests that change something on the server.
const WRITES: [&str; 5] = ["PUT", "DELETE", "MKCALENDAR", "MKCOL", "PROPPATCH"];

/// The two sides of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The vdir.
    Local,
    /// The server, edited by another client.
    Server,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Server => "server",
        }
    }
}

/// When a round's run is killed.
enum Kill {
    /// While the proxy holds the `nth` request whose method is one of `methods` (any if empty)
    /// and whose path contains `path`; then the request goes on as `release` says.
    Held {
        methods: &'static [&'static str],
        path: Option<&'static str>,
        nth: usize,
        release: Release,
    },
    /// While the proxy holds the `nth` PUT, which stays held for [`World::late_write_run`]: a
    /// server slow to apply a write of a killed run.
    HeldLate { nth: usize },
    /// As soon as the proxy has answered this many PUTs and DELETEs with a success. The
    /// second write after those is held meanwhile (and dropped after the kill), so that the
    /// run cannot finish before its kill however fast it is.
    AfterAnswered(usize),
    /// Once the run has reported `n` applied actions (`-v` prints one line each). The first
    /// request whose path contains `backstop` is held meanwhile (and dropped after the kill),
    /// so that the run cannot finish before its kill however fast it is.
    AfterApplied { n: usize, backstop: &'static str },
}

/// A file's content as text (lossy).
fn read(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap()).into_owned()
}

/// An event whose SUMMARY says which version it is.
fn event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davsync dav crash test//EN\r\n\
         BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n\
         DTSTART:20240301T100000Z\r\nDTEND:20240301T110000Z\r\nSUMMARY:{summary}\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// UID and SUMMARY of a complete iCalendar object (as stored, or as a server re-serialized it);
/// `None` for anything torn or empty.
fn uid_and_summary(text: &str) -> Option<(String, String)> {
    let text = text.trim_end();
    if !text.starts_with("BEGIN:VCALENDAR") || !text.ends_with("END:VCALENDAR") {
        return None;
    }
    let unfolded = text.replace("\r\n ", "").replace("\n ", "");
    let value = |name: &str| {
        unfolded
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .find_map(|l| l.strip_prefix(name))
            .map(str::to_owned)
    };
    Some((value("UID:")?, value("SUMMARY:")?))
}

/// One calendar's items on one side: UID → every (file or href, SUMMARY) holding it.
type Holdings = BTreeMap<String, Vec<(String, String)>>;

/// The test's world: the server behind the proxy, the sandbox with the vdir, and what the test
/// expects on both sides once the pair converged.
struct World<'s> {
    server: &'s dyn DavServer,
    proxy: FaultProxy,
    client: DavClient,
    sb: Sandbox,
    /// Calendar → UID → the SUMMARY of the last version written.
    expected: BTreeMap<String, BTreeMap<String, String>>,
    /// Items a clean sync copied that nobody touched since, as (calendar, UID): each is edited
    /// or deleted once at most.
    untouched: Vec<(String, String)>,
    /// For new UIDs.
    created: usize,
    /// Rounds run so far.
    round: usize,
    /// One line per killed run, printed at the end.
    outcomes: Vec<String>,
    /// A write of a killed run the proxy still holds, and `METHOD target` of it.
    late: Option<(Hold, String)>,
}

impl<'s> World<'s> {
    fn start(server: &'s dyn DavServer) -> World<'s> {
        let proxy = FaultProxy::start(&server.url());
        proxy.plain_answers();
        // On tmpfs where there is one: a SIGKILL leaves the page cache alone, so nothing of
        // what the test checks is lost there, and a vdir `syncfs` costs nothing.
        let shm = Path::new("/dev/shm");
        let sb = if shm.is_dir() {
            Sandbox::new_in(shm)
        } else {
            Sandbox::new()
        };
        sb.mkdir("cals");
        sb.write_config(&format!(
            r#"status_path = "{{root}}/status"

[storage.local]
type = "vdir"
path = "{{root}}/cals"
fileext = ".ics"

[storage.server]
type = "caldav"
url = "{url}"
username = "{user}"
password = {{ env = "DAVSYNC_TEST_PW" }}

[pair.p]
a = "local"
b = "server"
collections = "from a"
"#,
            url = proxy.url(),
            user = server.user(),
        ));
        World {
            server,
            client: server.client(),
            proxy,
            sb,
            expected: BTreeMap::new(),
            untouched: Vec::new(),
            created: 0,
            round: 0,
            outcomes: Vec::new(),
            late: None,
        }
    }

    /// The calendar's URL on the server itself (not through the proxy).
    fn calendar_url(&self, calendar: &str) -> String {
        format!("{}{calendar}/", self.server.calendar_home_url())
    }

    fn sync(&self) -> Run {
        self.sb
            .run_env(&["sync"], &[("DAVSYNC_TEST_PW", self.server.password())])
    }

    /// A sync that must succeed; afterwards every expected item counts as copied.
    fn clean_sync(&mut self) {
        let run = self.sync();
        run.success();
        self.untouched = self
            .expected
            .iter()
            .flat_map(|(cal, items)| items.keys().map(|uid| (cal.clone(), uid.clone())))
            .collect();
        // Spread the edits over the calendars.
        self.untouched
            .sort_by(|x, y| (&x.1[3..], &x.0).cmp(&(&y.1[3..], &y.0)));
    }

    /// Creates `n` new items in `calendar` on `side`.
    fn create(&mut self, side: Side, calendar: &str, n: usize) {
        for _ in 0..n {
            self.created += 1;
            let uid = format!("{calendar}-{:03}-{}", self.created, side.name());
            let summary = format!("{uid} rev 0 by {}", side.name());
            let bytes = event(&uid, &summary);
            match side {
                Side::Local => {
                    let path = self.sb.path(&format!("cals/{calendar}/{uid}.ics"));
                    assert!(!path.exists(), "{} exists", path.display());
                    common::write_file(&path, bytes.as_bytes());
                }
                Side::Server => {
                    let url = format!("{}{uid}.ics", self.calendar_url(calendar));
                    let put = self.client.put_item_with(
                        &url,
                        bytes.as_bytes(),
                        &[("If-None-Match", "*")],
                    );
                    assert!(put.is_success(), "PUT {url}: {} {}", put.status, put.text());
                }
            }
            self.expected
                .entry(calendar.to_owned())
                .or_default()
                .insert(uid, summary);
        }
    }

    /// Edits the next `n` untouched items on `side`.
    fn edit(&mut self, side: Side, n: usize) {
        for _ in 0..n {
            let (calendar, uid) = self.untouched.pop().expect("an untouched item left");
            let summary = format!("{uid} rev 1 by {}", side.name());
            let bytes = event(&uid, &summary);
            match side {
                Side::Local => {
                    let file = self.local_file(&calendar, &uid);
                    fs::write(&file, bytes).unwrap();
                }
                Side::Server => {
                    let (url, etag) = self.server_item(&calendar, &uid);
                    let put = self.client.put_item_with(
                        &url,
                        bytes.as_bytes(),
                        &[("If-Match", etag.as_str())],
                    );
                    assert!(put.is_success(), "PUT {url}: {} {}", put.status, put.text());
                }
            }
            self.expected
                .get_mut(&calendar)
                .unwrap()
                .insert(uid, summary);
        }
    }

    /// Deletes the next `n` untouched items on `side`.
    fn delete(&mut self, side: Side, n: usize) {
        for _ in 0..n {
            let (calendar, uid) = self.untouched.pop().expect("an untouched item left");
            match side {
                Side::Local => fs::remove_file(self.local_file(&calendar, &uid)).unwrap(),
                Side::Server => {
                    let (url, etag) = self.server_item(&calendar, &uid);
                    let resp =
                        self.client
                            .request("DELETE", &url, &[("If-Match", etag.as_str())], &[]);
                    assert!(resp.is_success(), "DELETE {url}: {}", resp.status);
                }
            }
            self.expected.get_mut(&calendar).unwrap().remove(&uid);
        }
    }

    /// The one vdir file holding `uid` in `calendar`.
    fn local_file(&self, calendar: &str, uid: &str) -> std::path::PathBuf {
        let holding = self.local_items(calendar).remove(uid).unwrap_or_default();
        assert_eq!(holding.len(), 1, "{uid} in local {calendar}: {holding:?}");
        self.sb.path(&format!("cals/{calendar}/{}", holding[0].0))
    }

    /// URL and ETag of the one server item holding `uid` in `calendar`.
    fn server_item(&self, calendar: &str, uid: &str) -> (String, String) {
        let answer = self.calendar_query(calendar);
        let found: Vec<(String, String)> = elements(&answer, "response")
            .into_iter()
            .filter_map(|r| {
                let data = xml_text(elements(r, "calendar-data").first()?);
                let (item_uid, _) = uid_and_summary(&data)?;
                (item_uid == uid).then(|| {
                    let href = xml_text(elements(r, "href")[0]);
                    let etag = xml_text(elements(r, "getetag")[0]);
                    (self.absolute(&href), etag)
                })
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{uid} on the server in {calendar}: {found:?}"
        );
        found.into_iter().next().unwrap()
    }

    /// The URL of an href the server answered (an absolute path).
    fn absolute(&self, href: &str) -> String {
        assert!(href.starts_with('/'), "href {href:?}");
        format!("{}{href}", self.server.url().trim_end_matches('/'))
    }

    /// A calendar-query REPORT for every item of `calendar` with its ETag and data, asked of
    /// the server directly.
    fn calendar_query(&self, calendar: &str) -> String {
        let url = self.calendar_url(calendar);
        let resp = self.client.report(
            &url,
            "1",
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <C:calendar-query xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">\
             <D:prop><D:getetag/><C:calendar-data/></D:prop>\
             <C:filter><C:comp-filter name=\"VCALENDAR\"/></C:filter></C:calendar-query>",
        );
        assert_eq!(resp.status, 207, "REPORT {url}: {}", resp.text());
        resp.text()
    }

    /// What the server holds in `calendar`.
    fn server_items(&self, calendar: &str) -> Holdings {
        let answer = self.calendar_query(calendar);
        let mut items = Holdings::new();
        for response in elements(&answer, "response") {
            let href = xml_text(elements(response, "href")[0]);
            let Some(data) = elements(response, "calendar-data")
                .first()
                .map(|d| xml_text(d))
            else {
                continue;
            };
            let (uid, summary) = uid_and_summary(&data)
                .unwrap_or_else(|| panic!("{href} on the server: not an item: {data:?}"));
            items.entry(uid).or_default().push((href, summary));
        }
        items
    }

    /// The calendars on the server (their last path segment), asked of the server directly.
    fn server_calendars(&self) -> Vec<String> {
        let home = self.server.calendar_home_url();
        let resp = self.client.propfind(
            &home,
            "1",
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/></D:prop></D:propfind>",
        );
        assert_eq!(resp.status, 207, "PROPFIND {home}: {}", resp.text());
        let text = resp.text();
        let home_path = dav_support::http::split_url(&home).1;
        let mut names: Vec<String> = elements(&text, "response")
            .into_iter()
            .filter(|r| {
                elements(r, "resourcetype")
                    .first()
                    .is_some_and(|t| t.contains("calendar"))
            })
            .map(|r| xml_text(elements(r, "href")[0]))
            .filter(|href| href.trim_end_matches('/') != home_path.trim_end_matches('/'))
            .map(|href| {
                href.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        names.sort();
        names
    }

    /// What the vdir holds in `calendar`. Every visible file must be a complete item; hidden
    /// files may only be davsync's temporary files (a killed run may leave some).
    fn local_items(&self, calendar: &str) -> Holdings {
        let dir = self.sb.path(&format!("cals/{calendar}"));
        let mut items = Holdings::new();
        for name in common::list_dir(&dir) {
            if name.starts_with('.') {
                assert!(
                    name.starts_with(".davsync-tmp-"),
                    "local {calendar}: unexpected hidden file {name}"
                );
                continue;
            }
            let bytes = fs::read(dir.join(&name)).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let (uid, summary) = uid_and_summary(&text)
                .unwrap_or_else(|| panic!("local {calendar}/{name}: torn or empty: {text:?}"));
            items.entry(uid).or_default().push((name, summary));
        }
        items
    }

    /// Starts `davsync ARGS` writing stdout and stderr to `run-ROUND.out`.
    fn spawn(&self, args: &[&str]) -> (std::process::Child, std::path::PathBuf) {
        let out_path = self.sb.path(&format!("run-{}.out", self.round));
        let out = fs::File::create(&out_path).unwrap();
        let child = self
            .sb
            .std_cmd()
            .args(args)
            .env("DAVSYNC_TEST_PW", self.server.password())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        (child, out_path)
    }

    /// Runs `davsync -v sync` and kills it with SIGKILL at `kill`; waits until the proxy has
    /// nothing in flight any more, then checks that the vdir holds only complete items.
    fn killed_run(&mut self, moment: &str, kill: Kill) {
        assert!(self.late.is_none(), "a late write is still held");
        self.round += 1;
        self.proxy.reset_log();
        let hold = match &kill {
            Kill::Held {
                methods, path, nth, ..
            } => Some(self.proxy.hold(methods, *path, *nth)),
            Kill::HeldLate { nth } => Some(self.proxy.hold(&["PUT"], None, *nth)),
            Kill::AfterApplied { backstop, .. } => Some(self.proxy.hold(&[], Some(backstop), 1)),
            Kill::AfterAnswered(n) => Some(self.proxy.hold(&["PUT", "DELETE"], None, n + 2)),
        };
        let (mut child, out_path) = self.spawn(&["-v", "sync"]);
        let started = Instant::now();
        let point = loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "round {} ({moment}): the run ended ({status}) before its kill point:\n{}\n\
                     requests:\n{:#?}",
                    self.round,
                    read(&out_path),
                    self.proxy.requests()
                );
            }
            let held = hold.and_then(|h| self.proxy.held(h));
            let point = match kill {
                Kill::Held { .. } | Kill::HeldLate { .. } => held,
                Kill::AfterAnswered(n) => {
                    let answered = self
                        .proxy
                        .requests()
                        .iter()
                        .filter(|r| matches!(r.method.as_str(), "PUT" | "DELETE"))
                        .filter(|r| r.status.is_some_and(|s| (200..300).contains(&s)))
                        .count();
                    (answered >= n).then(|| format!("{answered} writes answered"))
                }
                Kill::AfterApplied { n, .. } => {
                    let applied = read(&out_path)
                        .lines()
                        .filter(|l| !l.contains(" created, "))
                        .count();
                    assert!(
                        applied >= n || held.is_none(),
                        "round {} ({moment}): the backstop {held:?} came first:\n{}",
                        self.round,
                        read(&out_path)
                    );
                    (applied >= n).then(|| format!("{applied} actions applied"))
                }
            };
            if let Some(point) = point {
                break point;
            }
            assert!(
                started.elapsed() < KILL_POINT_TIMEOUT,
                "round {} ({moment}): no kill point after {KILL_POINT_TIMEOUT:?}:\n{}",
                self.round,
                read(&out_path)
            );
            sleep(Duration::from_millis(1));
        };
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "round {} ({moment}): not killed ({status}):\n{}",
            self.round,
            read(&out_path)
        );
        match (kill, hold) {
            (Kill::Held { release, .. }, Some(hold)) => self.proxy.release(hold, release),
            (Kill::HeldLate { .. }, Some(hold)) => {
                self.late = Some((hold, point.clone()));
            }
            (_, Some(backstop)) => self.proxy.release(backstop, Release::Drop),
            (_, None) => {}
        }
        if self.late.is_none() {
            assert!(
                self.proxy.wait_idle(Duration::from_secs(30)),
                "round {} ({moment}): the proxy is still busy",
                self.round
            );
        }
        self.note(&format!(
            "{moment}: killed after {:?} at {point}",
            started.elapsed()
        ));
        for calendar in self.expected.keys() {
            self.local_items(calendar);
        }
    }

    /// One line about this round's run in the outcomes printed at the end.
    fn note(&mut self, what: &str) {
        let requests = self.proxy.requests();
        let writes = requests
            .iter()
            .filter(|r| WRITES.contains(&r.method.as_str()))
            .count();
        let refused = requests
            .iter()
            .filter(|r| r.status.is_some_and(|s| s >= 400))
            .count();
        self.outcomes.push(format!(
            "round {}: {what}; {} requests ({writes} writes, {refused} answered 4xx/5xx)",
            self.round,
            requests.len()
        ));
    }

    /// The run after a [`Kill::HeldLate`]: its own write of the same item is held, the killed
    /// run's write is forwarded and applied first, then the run's write goes on and finds the
    /// item already as it means to write it (412 on its condition). The run is not killed; it
    /// must finish without errors or conflicts.
    fn late_write_run(&mut self) {
        let (late, line) = self.late.take().expect("a held write of the last run");
        self.round += 1;
        self.proxy.reset_log();
        let path = line.split_once(' ').unwrap().1.to_owned();
        let again = self.proxy.hold(&["PUT"], Some(&path), 1);
        let (mut child, out_path) = self.spawn(&["sync"]);
        let started = Instant::now();
        while self.proxy.held(again).is_none() {
            if let Some(status) = child.try_wait().unwrap() {
                self.proxy.release(late, Release::Drop);
                panic!(
                    "round {}: the run ended ({status}) without writing {path} again:\n{}",
                    self.round,
                    read(&out_path)
                );
            }
            assert!(
                started.elapsed() < KILL_POINT_TIMEOUT,
                "round {}",
                self.round
            );
            sleep(Duration::from_millis(1));
        }
        self.proxy.release(late, Release::Forward);
        let landed = |proxy: &FaultProxy| {
            proxy
                .requests()
                .iter()
                .any(|r| r.method == "PUT" && r.path == path && r.status.is_some())
        };
        while !landed(&self.proxy) {
            assert!(
                started.elapsed() < KILL_POINT_TIMEOUT,
                "round {}",
                self.round
            );
            sleep(Duration::from_millis(1));
        }
        self.proxy.release(again, Release::Forward);
        let status = child.wait().unwrap();
        let output = read(&out_path);
        assert!(
            status.success() && !output.contains("conflict:"),
            "round {}: the run after the late write: {status}:\n{output}",
            self.round
        );
        let answers: Vec<Option<u16>> = self
            .proxy
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path == path)
            .map(|r| r.status)
            .collect();
        assert_eq!(
            answers.last(),
            Some(&Some(412)),
            "round {}: the second PUT of {path} met the first: {answers:?}",
            self.round
        );
        self.note(&format!(
            "{line} of the killed run applied while this run's own PUT waited; not killed"
        ));
    }

    /// Every expected item is held exactly once on both sides, in its last version, and
    /// nothing else is there.
    fn assert_converged(&self) {
        let on_server = self.server_calendars();
        for (calendar, expected) in &self.expected {
            assert!(
                on_server.contains(calendar),
                "calendar {calendar} missing on the server: {on_server:?}"
            );
            for (side, holdings) in [
                ("local", self.local_items(calendar)),
                ("server", self.server_items(calendar)),
            ] {
                let mut problems = Vec::new();
                for (uid, summary) in expected {
                    match holdings.get(uid).map(Vec::as_slice) {
                        None => problems.push(format!("{uid} missing")),
                        Some([(_, got)]) if got == summary => {}
                        Some([(place, got)]) => {
                            problems.push(format!("{place}: {got:?}, expected {summary:?}"))
                        }
                        Some(several) => problems.push(format!("{uid} held {several:?}")),
                    }
                }
                for (uid, held) in &holdings {
                    if !expected.contains_key(uid) {
                        problems.push(format!("{uid} should not be there: {held:?}"));
                    }
                }
                assert!(
                    problems.is_empty(),
                    "{side} calendar {calendar}:\n{}",
                    problems.join("\n")
                );
            }
        }
        let local = common::list_dir(&self.sb.path("cals"));
        let expected: Vec<&String> = self.expected.keys().collect();
        assert_eq!(
            local.iter().collect::<Vec<_>>(),
            expected,
            "local calendars"
        );
    }
}

fn kills_then_converges(server: &dyn DavServer) {
    let started = Instant::now();
    let mut w = World::start(server);
    let calendars_before = w.server_calendars();
    for calendar in ["c0", "c1", "c2"] {
        w.sb.mkdir(&format!("cals/{calendar}"));
        w.create(Side::Local, calendar, 10);
    }
    w.clean_sync();

    w.create(Side::Local, "c0", 6);
    w.edit(Side::Local, 1);
    w.killed_run(
        "uploading: the first PUT held, applied after the kill",
        Kill::Held {
            methods: &["PUT"],
            path: None,
            nth: 1,
            release: Release::Forward,
        },
    );

    w.create(Side::Local, "c1", 6);
    w.edit(Side::Server, 2);
    w.killed_run(
        "uploading with writes in flight: the third PUT held, never applied",
        Kill::Held {
            methods: &["PUT"],
            path: None,
            nth: 3,
            release: Release::Drop,
        },
    );

    w.delete(Side::Local, 3);
    w.create(Side::Local, "c2", 2);
    w.edit(Side::Local, 1);
    w.killed_run(
        "deleting on the server: the second DELETE held, applied after the kill",
        Kill::Held {
            methods: &["DELETE"],
            path: None,
            nth: 2,
            release: Release::Forward,
        },
    );

    w.create(Side::Server, "c0", 8);
    w.edit(Side::Server, 1);
    w.delete(Side::Server, 1);
    w.create(Side::Server, "c2", 1);
    w.killed_run(
        "downloading: after four applied actions",
        Kill::AfterApplied {
            n: 4,
            backstop: "/c2/",
        },
    );

    w.create(Side::Server, "c2", 5);
    w.edit(Side::Local, 1);
    w.killed_run(
        "listing: the REPORT on c2 held, never answered",
        Kill::Held {
            methods: &["REPORT"],
            path: Some("/c2/"),
            nth: 1,
            release: Release::Drop,
        },
    );

    w.create(Side::Local, "c0", 3);
    w.create(Side::Server, "c1", 3);
    w.delete(Side::Server, 1);
    w.killed_run(
        "between calendars: c0 done, the first request for c1 held",
        Kill::Held {
            methods: &[],
            path: Some("/c1/"),
            nth: 1,
            release: Release::Drop,
        },
    );

    w.sb.mkdir("cals/c3");
    w.create(Side::Local, "c3", 4);
    w.edit(Side::Server, 1);
    w.killed_run(
        "a new calendar: its MKCALENDAR held, applied after the kill",
        Kill::Held {
            methods: &["MKCALENDAR"],
            path: None,
            nth: 1,
            release: Release::Forward,
        },
    );

    w.create(Side::Local, "c3", 4);
    w.edit(Side::Local, 2);
    w.killed_run(
        "uploading: the second write answered, not yet recorded",
        Kill::AfterAnswered(2),
    );

    w.edit(Side::Local, 2);
    w.edit(Side::Server, 2);
    w.delete(Side::Server, 1);
    w.killed_run(
        "both ways: the second PUT held, applied by the server during the next run",
        Kill::HeldLate { nth: 2 },
    );
    w.late_write_run();

    w.create(Side::Server, "c0", 4);
    w.create(Side::Local, "c1", 3);
    w.create(Side::Server, "c3", 2);
    w.delete(Side::Local, 1);
    w.killed_run(
        "both ways: after three applied actions",
        Kill::AfterApplied {
            n: 3,
            backstop: "/c3/",
        },
    );

    w.create(Side::Local, "c1", 2);
    w.edit(Side::Server, 1);
    w.killed_run(
        "discovery: the home-set PROPFIND held",
        Kill::Held {
            methods: &["PROPFIND"],
            path: None,
            nth: 1,
            release: Release::Drop,
        },
    );
    eprintln!("{}", w.outcomes.join("\n"));

    // The next sync converges: zero conflicts, nothing left unsynced.
    w.proxy.reset_log();
    // (-v: a collection this run had nothing left to do in prints its summary only then.)
    let last =
        w.sb.run_env(&["sync", "-v"], &[("DAVSYNC_TEST_PW", w.server.password())]);
    last.success();
    assert!(!last.stderr.contains("conflict"), "{}", last.both());
    let summaries: Vec<&str> = last
        .stdout
        .lines()
        .filter(|l| l.contains(" created, "))
        .collect();
    assert_eq!(summaries.len(), 4, "{}", last.both());
    for line in &summaries {
        assert!(line.ends_with(" 0 conflicts, 0 errors"), "{}", last.both());
    }
    w.assert_converged();
    let mut calendars: Vec<String> = calendars_before;
    calendars.extend(w.expected.keys().cloned());
    calendars.sort();
    assert_eq!(w.server_calendars(), calendars, "calendars on the server");

    // One more sync writes nothing.
    let before = tree_state(&w.sb.path("cals"));
    w.proxy.reset_log();
    let again = w.sync();
    again.success();
    assert_eq!(totals(&again), (0, 0, 0), "{}", again.both());
    let writes: Vec<_> = w
        .proxy
        .requests()
        .into_iter()
        .filter(|r| WRITES.contains(&r.method.as_str()))
        .collect();
    assert!(writes.is_empty(), "writes after convergence: {writes:#?}");
    assert!(
        before == tree_state(&w.sb.path("cals")),
        "the sync after convergence touched the vdir"
    );
    eprintln!("test took {:?}", started.elapsed());
}

#[test]
fn radicale_kills_then_converges() {
    kills_then_converges(&Radicale::start());
}

#[test]
fn xandikos_kills_then_converges() {
    kills_then_converges(&Xandikos::start());
}
