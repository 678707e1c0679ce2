//! The webcal storage through the `davsync` binary, against [`FeedServer`], a small feed
//! server written here: a `std` `TcpListener` on 127.0.0.1 serving one `.ics` feed with
//! `ETag`/`Last-Modified` and 304 answers, optionally re-stamping DTSTAMP, LAST-MODIFIED and
//! SEQUENCE on every request, or failing mid-body. It logs every request it answers, so a test
//! asserts what was asked and what came back; file states (content, mtime, inode) show what
//! was written locally.

mod common;
mod dav_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use common::{FileState, Run, Sandbox, totals};
use dav_support::http::{header, read_head};

// ---------------------------------------------------------------------------------------------
// The feed server

/// Which validators the server sends (and honours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validators {
    ETag,
    LastModified,
}

/// How the server breaks the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// `Content-Length` of the whole feed, half of it sent, then the connection is closed.
    DroppedMidBody,
    /// No `Content-Length`, half the feed, then the connection is closed (a truncated file).
    Truncated,
    /// `500 Internal Server Error`.
    ServerError,
    /// An HTML page with status 200.
    Garbage,
}

/// One request as the server saw and answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Logged {
    path: String,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    status: u16,
}

#[derive(Debug)]
struct FeedState {
    /// The feed with `{STAMP}` and `{SEQ}` placeholders.
    template: String,
    /// Bumped by every change of the template (and, when re-stamping, by every request).
    version: u64,
    restamp: bool,
    validators: Validators,
    failure: Option<Failure>,
    log: Vec<Logged>,
}

impl FeedState {
    fn etag(&self) -> String {
        format!("\"feed-v{}\"", self.version)
    }

    fn last_modified(&self) -> String {
        format!("Sat, 05 Dec 2026 10:{:02}:00 GMT", self.version % 60)
    }

    /// The feed as served now: a re-stamping exporter writes the moment of the request into
    /// every DTSTAMP and LAST-MODIFIED and bumps every SEQUENCE; otherwise they stay put.
    fn body(&self) -> String {
        let (stamp, seq) = match self.restamp {
            true => (
                format!("20261205T10{:04}Z", self.version % 10_000),
                self.version,
            ),
            false => ("20260101T000000Z".to_owned(), 0),
        };
        self.template
            .replace("{STAMP}", &stamp)
            .replace("{SEQ}", &seq.to_string())
    }
}

/// A feed at `http://127.0.0.1:PORT/holidays.ics`.
struct FeedServer {
    port: u16,
    state: Arc<Mutex<FeedState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FeedServer {
    fn start(template: &str, validators: Validators) -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(FeedState {
            template: template.to_owned(),
            version: 1,
            restamp: false,
            validators,
            failure: None,
            log: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (Arc::clone(&state), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(stream, &shared);
                }
            }
        });
        FeedServer {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/holidays.ics", self.port)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves `template` from now on, as a new version.
    fn set_feed(&self, template: &str) {
        let mut state = self.state();
        state.template = template.to_owned();
        state.version += 1;
    }

    fn restamp(&self) {
        self.state().restamp = true;
    }

    fn fail(&self, failure: Option<Failure>) {
        self.state().failure = failure;
    }

    /// The requests answered since the last call.
    fn take_log(&self) -> Vec<Logged> {
        std::mem::take(&mut self.state().log)
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request on `stream`, then closes the connection.
fn serve(mut stream: TcpStream, state: &Mutex<FeedState>) {
    let Ok(Some((start, headers))) = read_head(&mut BufReader::new(&stream)) else {
        return;
    };
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    if state.restamp {
        state.version += 1;
    }
    let path = start.split(' ').nth(1).unwrap_or("").to_owned();
    let if_none_match = header(&headers, "if-none-match").map(str::to_owned);
    let if_modified_since = header(&headers, "if-modified-since").map(str::to_owned);
    let (etag, last_modified) = (state.etag(), state.last_modified());
    let validator = match state.validators {
        Validators::ETag => format!("ETag: {etag}\r\n"),
        Validators::LastModified => format!("Last-Modified: {last_modified}\r\n"),
    };
    let not_modified = match state.validators {
        Validators::ETag => if_none_match.as_deref() == Some(etag.as_str()),
        Validators::LastModified => if_modified_since.as_deref() == Some(last_modified.as_str()),
    };
    let body = state.body();
    let half = &body.as_bytes()[..body.len() / 2];
    let (status, answer): (u16, Vec<u8>) = match (state.failure, not_modified) {
        (Some(Failure::ServerError), _) => (
            500,
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops".to_vec(),
        ),
        (Some(Failure::Garbage), _) => (
            200,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 23\r\n\r\n<html>Moved away</html>"
                .to_vec(),
        ),
        (Some(Failure::DroppedMidBody), _) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\n{validator}Content-Length: {}\r\n\r\n",
                body.len()
            );
            (200, [head.as_bytes(), half].concat())
        }
        (Some(Failure::Truncated), _) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\n{validator}Connection: close\r\n\r\n"
            );
            (200, [head.as_bytes(), half].concat())
        }
        (None, true) => (
            304,
            format!("HTTP/1.1 304 Not Modified\r\n{validator}\r\n").into_bytes(),
        ),
        (None, false) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/calendar; charset=utf-8\r\n{validator}Content-Length: {}\r\n\r\n",
                body.len()
            );
            (200, [head.as_bytes(), body.as_bytes()].concat())
        }
    };
    state.log.push(Logged {
        path,
        if_none_match,
        if_modified_since,
        status,
    });
    drop(state);
    let _ = stream.write_all(&answer);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------------------------
// Feeds and sandboxes

/// One event of a feed, with the placeholders [`FeedState::body`] fills; no UID when `uid` is
/// `None`.
fn feed_event(uid: Option<&str>, summary: &str, day: u32) -> String {
    let uid = uid.map(|u| format!("UID:{u}\r\n")).unwrap_or_default();
    format!(
        "BEGIN:VEVENT\r\n{uid}DTSTAMP:{{STAMP}}\r\nLAST-MODIFIED:{{STAMP}}\r\nSEQUENCE:{{SEQ}}\r\n\
         DTSTART;VALUE=DATE:202601{day:02}\r\nDTEND;VALUE=DATE:202601{:02}\r\nSUMMARY:{summary}\r\n\
         END:VEVENT\r\n",
        day + 1
    )
}

fn feed(events: &[String]) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Holiday exporter//EN\r\n\
         X-WR-CALNAME:Public holidays\r\nX-APPLE-CALENDAR-COLOR:#CC0000\r\n{}END:VCALENDAR\r\n",
        events.concat()
    )
}

/// Three holidays, one of them without UID.
fn holidays() -> Vec<String> {
    vec![
        feed_event(Some("new-year@holidays"), "New Year", 1),
        feed_event(Some("epiphany@holidays"), "Epiphany", 6),
        feed_event(None, "Bridge day", 2),
    ]
}

/// A sandbox with pair `holidays` from the feed at `url` (storage `feed`) into the vdir
/// `{root}/cal` (storage `local`).
fn sandbox(url: &str, feed_keys: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.mkdir("cal");
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"

[storage.feed]
type = "webcal"
url = "{url}"
{feed_keys}

[storage.local]
type = "vdir"
path = "{{root}}/cal"
fileext = ".ics"

[pair.holidays]
a = "feed"
b = "local"
metadata = ["displayname", "color"]
"#
    ));
    sb
}

fn sync(sb: &Sandbox) -> Run {
    sb.run(&["sync"])
}

/// The files of the vdir whose content contains `needle`.
fn files_with(state: &BTreeMap<String, FileState>, needle: &str) -> Vec<String> {
    state
        .iter()
        .filter(|(_, f)| String::from_utf8_lossy(&f.bytes).contains(needle))
        .map(|(name, _)| name.clone())
        .collect()
}

/// How many items (`.ics` files) the vdir holds.
fn ics_files(state: &BTreeMap<String, FileState>) -> usize {
    state.keys().filter(|name| name.ends_with(".ics")).count()
}

/// Names whose state differs between `before` and `after`, or that only one of them has.
fn touched(
    before: &BTreeMap<String, FileState>,
    after: &BTreeMap<String, FileState>,
) -> Vec<String> {
    let mut names: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|name| before.get(*name) != after.get(*name))
        .cloned()
        .collect();
    names.dedup();
    names
}

/// The statuses the server answered, in order.
fn statuses(log: &[Logged]) -> Vec<u16> {
    log.iter().map(|l| l.status).collect()
}

// ---------------------------------------------------------------------------------------------
// Scenarios

#[test]
fn first_sync_fills_the_vdir_and_an_unchanged_feed_costs_one_304() {
    for validators in [Validators::ETag, Validators::LastModified] {
        let server = FeedServer::start(&feed(&holidays()), validators);
        let sb = sandbox(&server.url(), "");
        let first = sync(&sb);
        first.success();
        assert_eq!(totals(&first), (3, 0, 0), "{}", first.both());
        let log = server.take_log();
        assert_eq!(statuses(&log), [200], "{validators:?}: {log:?}");
        assert_eq!(log[0].path, "/holidays.ics");
        assert_eq!(
            (&log[0].if_none_match, &log[0].if_modified_since),
            (&None, &None)
        );
        let files = sb.state("cal");
        assert_eq!(ics_files(&files), 3, "{files:?}");
        assert_eq!(files["displayname"].bytes, b"Public holidays");
        assert_eq!(files["color"].bytes, b"#CC0000");
        for summary in ["New Year", "Epiphany", "Bridge day"] {
            assert_eq!(files_with(&files, summary).len(), 1, "{summary}: {files:?}");
        }
        assert!(files.contains_key("new-year@holidays.ics"), "{files:?}");

        let again = sync(&sb);
        again.success();
        assert_eq!(totals(&again), (0, 0, 0), "{}", again.both());
        let log = server.take_log();
        assert_eq!(statuses(&log), [304], "{validators:?}: {log:?}");
        match validators {
            Validators::ETag => assert_eq!(log[0].if_none_match.as_deref(), Some("\"feed-v1\"")),
            Validators::LastModified => assert_eq!(
                log[0].if_modified_since.as_deref(),
                Some("Sat, 05 Dec 2026 10:01:00 GMT")
            ),
        }
        assert_eq!(touched(&files, &sb.state("cal")), Vec::<String>::new());
    }
}

#[test]
fn a_feed_restamped_on_every_request_writes_nothing() {
    let server = FeedServer::start(&feed(&holidays()), Validators::ETag);
    server.restamp();
    let sb = sandbox(&server.url(), "");
    sync(&sb).success();
    let files = sb.state("cal");
    assert_eq!(ics_files(&files), 3, "{files:?}");
    server.take_log();
    for _ in 0..2 {
        let again = sync(&sb);
        again.success();
        assert_eq!(totals(&again), (0, 0, 0), "{}", again.both());
        // Every request brings a new feed: one GET, a whole answer, nothing written.
        assert_eq!(statuses(&server.take_log()), [200]);
        assert_eq!(touched(&files, &sb.state("cal")), Vec::<String>::new());
    }
}

#[test]
fn one_real_change_writes_one_file_and_a_removed_item_is_deleted() {
    let server = FeedServer::start(&feed(&holidays()), Validators::ETag);
    server.restamp();
    let sb = sandbox(&server.url(), "");
    sync(&sb).success();
    server.take_log();
    let before = sb.state("cal");

    let mut changed = holidays();
    changed[1] = feed_event(Some("epiphany@holidays"), "Epiphany (moved)", 7);
    server.set_feed(&feed(&changed));
    let run = sync(&sb);
    run.success();
    assert_eq!(totals(&run), (0, 1, 0), "{}", run.both());
    assert_eq!(statuses(&server.take_log()), [200]);
    let after = sb.state("cal");
    assert_eq!(touched(&before, &after), ["epiphany@holidays.ics"]);
    assert!(String::from_utf8_lossy(&after["epiphany@holidays.ics"].bytes).contains("(moved)"));

    // Gone from the feed: gone locally (the feed is the source).
    changed.remove(0);
    server.set_feed(&feed(&changed));
    let run = sync(&sb);
    run.success();
    assert_eq!(totals(&run), (0, 0, 1), "{}", run.both());
    let last = sb.state("cal");
    assert_eq!(touched(&after, &last), ["new-year@holidays.ics"]);
    assert!(!last.contains_key("new-year@holidays.ics"));
}

#[test]
fn a_feed_failing_mid_body_deletes_nothing() {
    for (failure, status) in [
        (Failure::DroppedMidBody, "HTTP 200"),
        (Failure::Truncated, "HTTP 200"),
        (Failure::ServerError, "HTTP 500"),
        (Failure::Garbage, "HTTP 200"),
    ] {
        let server = FeedServer::start(&feed(&holidays()), Validators::ETag);
        let sb = sandbox(&server.url(), "");
        sync(&sb).success();
        let before = sb.state("cal");
        // The feed loses an item and breaks while sending the rest.
        server.set_feed(&feed(&holidays()[1..]));
        server.fail(Some(failure));
        let run = sync(&sb);
        run.expect_code(1);
        assert!(
            run.both().contains(&server.url()),
            "{failure:?}: {}",
            run.both()
        );
        assert!(run.both().contains(status), "{failure:?}: {}", run.both());
        assert_eq!(totals(&run), (0, 0, 0), "{failure:?}: {}", run.both());
        assert_eq!(touched(&before, &sb.state("cal")), Vec::<String>::new());

        // Healed: the next run syncs the real change.
        server.fail(None);
        let run = sync(&sb);
        run.success();
        assert_eq!(totals(&run), (0, 0, 1), "{failure:?}: {}", run.both());
    }
}

/// Python's own file server over TLS (it answers `If-Modified-Since` with 304), serving
/// `argv[1]` with the certificate and key `argv[2]`, `argv[3]` on a free port it prints.
const HTTPS_FILE_SERVER: &str = r#"
import functools, http.server, ssl, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.HTTPServer(("127.0.0.1", 0), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// Kills the server it holds when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_webcal_url_is_fetched_over_https() {
    let sb = Sandbox::new();
    let site = sb.mkdir("site");
    let text = feed(&holidays())
        .replace("{STAMP}", "20260101T000000Z")
        .replace("{SEQ}", "0");
    sb.write("site/holidays.ics", &text);
    let (cert, key) = (sb.path("cert.pem"), sb.path("key.pem"));
    let openssl = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=davsync feed"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(openssl.status.success(), "{openssl:?}");
    let mut server = Killed(
        Command::new("python3")
            .args(["-c", HTTPS_FILE_SERVER])
            .args([&site, &cert, &key])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3"),
    );
    let mut port = String::new();
    BufReader::new(server.0.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("read the port");
    let url = format!("webcal://127.0.0.1:{}/holidays.ics", port.trim());
    let verify = format!("verify = \"{}\"", cert.display());
    let sb_feed = sandbox(&url, &verify);
    let first = sync(&sb_feed);
    first.success();
    assert_eq!(totals(&first), (3, 0, 0), "{}", first.both());
    let files = sb_feed.state("cal");
    assert_eq!(ics_files(&files), 3, "{files:?}");
    let again = sync(&sb_feed);
    again.success();
    assert_eq!(totals(&again), (0, 0, 0), "{}", again.both());
    assert_eq!(touched(&files, &sb_feed.state("cal")), Vec::<String>::new());
}

#[test]
fn khal_reads_a_vdir_filled_from_a_feed() {
    let server = FeedServer::start(&feed(&holidays()), Validators::ETag);
    let sb = sandbox(&server.url(), "");
    sync(&sb).success();
    let khal_config = sb.write(
        "home/.config/khal/config",
        format!(
            "[calendars]\n[[holidays]]\npath = {}\ntype = calendar\n\n[locale]\n\
             timeformat = %H:%M\ndateformat = %Y-%m-%d\nlongdateformat = %Y-%m-%d\n\
             datetimeformat = %Y-%m-%d %H:%M\nlongdatetimeformat = %Y-%m-%d %H:%M\n\
             default_timezone = UTC\nlocal_timezone = UTC\n",
            sb.path("cal").display()
        ),
    );
    let out = dav_support::tool_output(
        "khal",
        &sb.home(),
        &khal_config,
        &["list", "2026-01-01", "30d"],
    );
    // The feed's event without UID is in the vdir too (see the other tests), as the feed has
    // it; khal 0.14 keys its database by UID and lists no event without one.
    for (day, summary) in [("2026-01-01", "New Year"), ("2026-01-06", "Epiphany")] {
        let at = out
            .find(summary)
            .unwrap_or_else(|| panic!("khal list lacks {summary:?}:\n{out}"));
        let heading = out[..at].rfind(day);
        assert!(heading.is_some(), "{summary} not under {day}:\n{out}");
    }
}
