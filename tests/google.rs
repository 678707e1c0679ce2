//! Google storages with OAuth2, through the binary, against a local OAuth2 emulation
//! (`dav_support::oauth`, not Google) in front of Xandikos: `davsync auth` with a scripted
//! browser and with a pasted answer, the token file's mode, tokens never in the output, a sync
//! over an expired access token, and a revoked refresh token stopping only its own pair.
//! Then Google's URL layout: the OAuth2 emulation in front of `GoogleFront` (the emulation of
//! Google's CalDAV/CardDAV front, with `GoogleLayout`) before Radicale, so that discovery,
//! collection names and hrefs are those of Google.

mod common;
mod dav_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{EventBuilder, Run, Sandbox};
use dav_support::google::{GoogleFront, GoogleLayout, Limit};
use dav_support::oauth::{
    CLIENT_ID, CLIENT_SECRET, OAuthEmulation, authorization_redirect, scripted_browser,
};
use dav_support::{DavServer, Radicale, Xandikos};

const SECRET_ENV: &str = "DAVSYNC_TEST_GOOGLE_SECRET";

/// A config with storage `g` (google_calendar at `url`, endpoints of `oauth`), storage `local`
/// (a vdir below `{root}/cals`) and pair `p`, plus `extra`.
fn config(sb: &Sandbox, oauth: &OAuthEmulation, url: &str, extra: &str) {
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"

[storage.g]
type = "google_calendar"
client_id = "{CLIENT_ID}"
client_secret = {{ env = "{SECRET_ENV}" }}
url = "{url}"
authorize_url = "{authorize}"
token_url = "{token}"

[storage.local]
type = "vdir"
path = "{{root}}/cals"
fileext = ".ics"

[pair.p]
a = "local"
b = "g"
collections = "from a"
{extra}"#,
        authorize = oauth.authorize_url(),
        token = oauth.token_url(),
    ));
}

/// `davsync auth STORAGE` running, with its output read on threads.
struct AuthRun {
    child: Child,
    /// The lines of standard error as they come.
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

fn spawn_auth(sb: &Sandbox, storage: &str) -> AuthRun {
    let mut child = sb
        .std_cmd()
        .args(["auth", storage])
        .env(SECRET_ENV, CLIENT_SECRET)
        .env("BROWSER", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn davsync auth");
    let stderr = child.stderr.take().expect("stderr");
    let (send, lines) = mpsc::channel();
    let all = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let kept = std::sync::Arc::clone(&all);
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            kept.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = send.send(line);
        }
    });
    AuthRun {
        child,
        lines,
        stderr: all,
    }
}

impl AuthRun {
    /// The authorization URL davsync printed.
    fn url(&self) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("davsync auth prints the authorization URL");
            if line.starts_with("http") && line.contains("/authorize?") {
                return line.trim().to_owned();
            }
        }
    }

    fn paste(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Waits for the end: exit code, stdout, stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut stdout)
            .expect("read stdout");
        let status = self.child.wait().expect("wait");
        // Let the reader thread take the last lines.
        thread::sleep(Duration::from_millis(100));
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code(), stdout, stderr)
    }
}

/// Runs `davsync auth g` answered by the scripted browser; asserts success.
fn authorize(sb: &Sandbox) -> String {
    let run = spawn_auth(sb, "g");
    let url = run.url();
    let (_, page) = scripted_browser(&url);
    assert!(page.contains("davsync is authorized"), "{page}");
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    format!("{stdout}{stderr}")
}

fn assert_no_secret(oauth: &OAuthEmulation, output: &str) {
    for token in oauth.issued() {
        assert!(!output.contains(&token), "{token} in output:\n{output}");
    }
    assert!(
        !output.contains(CLIENT_SECRET),
        "client secret in:\n{output}"
    );
}

fn run(sb: &Sandbox, args: &[&str]) -> Run {
    sb.run_env(args, &[(SECRET_ENV, CLIENT_SECRET)])
}

fn token_file(sb: &Sandbox) -> std::path::PathBuf {
    sb.path("status/g.token")
}

#[test]
fn auth_with_a_scripted_browser_stores_private_tokens() {
    let oauth = OAuthEmulation::start(3600);
    let sb = Sandbox::new();
    config(&sb, &oauth, "http://127.0.0.1:9/", "");
    let output = authorize(&sb);
    assert!(
        output.contains("[TMP]/status/g.token") || output.contains("status/g.token"),
        "{output}"
    );
    let mode = std::fs::metadata(token_file(&sb))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(sb.path("status"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    assert_eq!(oauth.grants("authorization_code", 200), 1);
    assert_no_secret(&oauth, &output);
    let stored = sb.read_string("status/g.token");
    assert!(oauth.issued().iter().any(|t| stored.contains(t.as_str())));
}

#[test]
fn auth_takes_the_pasted_redirect_address_or_the_bare_code() {
    let oauth = OAuthEmulation::start(3600);
    let sb = Sandbox::new();
    config(&sb, &oauth, "http://127.0.0.1:9/", "");

    // The whole address the browser ended at (the loopback listener never hears from it).
    let mut run = spawn_auth(&sb, "g");
    let location = authorization_redirect(&run.url());
    run.paste(&format!("\n{location}\n"));
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_no_secret(&oauth, &format!("{stdout}{stderr}"));

    // Just the code.
    std::fs::remove_file(token_file(&sb)).unwrap();
    let mut run = spawn_auth(&sb, "g");
    let location = authorization_redirect(&run.url());
    let code_value = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap()
        .to_owned();
    run.paste(&format!("{code_value}\n"));
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(token_file(&sb).exists());
    assert_eq!(oauth.grants("authorization_code", 200), 2);
}

#[test]
fn auth_refuses_other_storages_and_unknown_names() {
    let oauth = OAuthEmulation::start(3600);
    let sb = Sandbox::new();
    config(&sb, &oauth, "http://127.0.0.1:9/", "");
    let vdir = run(&sb, &["auth", "local"]);
    assert_eq!(vdir.code, Some(2), "{}", vdir.both());
    assert!(vdir.stderr.contains("google_calendar"), "{}", vdir.both());
    let unknown = run(&sb, &["auth", "nope"]);
    assert_eq!(unknown.code, Some(2), "{}", unknown.both());
}

#[test]
fn a_sync_refreshes_an_expired_access_token() {
    let server = Xandikos::start();
    let oauth = OAuthEmulation::start_front(3600, &server.url());
    let sb = Sandbox::new();
    config(&sb, &oauth, &format!("{}alice/calendars/", oauth.url()), "");
    sb.write(
        "cals/calendar/e1.ics",
        EventBuilder::new("First").uid("e1").build(),
    );
    let output = authorize(&sb);
    let first = run(&sb, &["sync"]);
    assert_eq!(first.code, Some(0), "{}", first.both());
    assert_eq!(oauth.grants("refresh_token", 200), 0);

    // Expired at the emulation while davsync's file still believes it valid: a 401, one
    // refresh, the request again.
    oauth.expire_access_tokens();
    sb.write(
        "cals/calendar/e2.ics",
        EventBuilder::new("Second").uid("e2").build(),
    );
    let second = run(&sb, &["sync"]);
    assert_eq!(second.code, Some(0), "{}", second.both());
    assert_eq!(oauth.grants("refresh_token", 200), 1, "{:?}", oauth.log());

    // A token with less than a minute left is refreshed before use: no 401 first.
    let stored = sb.read_string("status/g.token");
    let mut edited: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    edited["expires_at"] = (now + 30).into();
    edited["obtained_at"] = (now - 3570).into();
    sb.write("status/g.token", edited.to_string());
    let refused = || oauth.log().iter().filter(|l| l.status == 401).count();
    let refused_before = refused();
    let third = run(&sb, &["sync"]);
    assert_eq!(third.code, Some(0), "{}", third.both());
    assert_eq!(oauth.grants("refresh_token", 200), 2, "{:?}", oauth.log());
    assert_eq!(
        refused(),
        refused_before,
        "refreshed before use: {:?}",
        oauth.log()
    );
    let fourth = run(&sb, &["sync"]);
    assert_eq!(fourth.code, Some(0), "{}", fourth.both());
    assert_eq!(oauth.grants("refresh_token", 200), 2, "{:?}", oauth.log());
    let mode = std::fs::metadata(token_file(&sb))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let listed = server
        .client()
        .propfind(
            &format!("{}alice/calendars/calendar/", server.url()),
            "1",
            "<propfind xmlns=\"DAV:\"><prop><getetag/></prop></propfind>",
        )
        .text();
    assert!(listed.contains("e1") && listed.contains("e2"), "{listed}");
    for run in [&first, &second, &third, &fourth] {
        assert_no_secret(&oauth, &run.both());
    }
    assert_no_secret(&oauth, &output);
}

/// `-vvv` shows every request, the token endpoint's too, and never a token, the client secret
/// or an `Authorization` header, in `check` and in a sync that refreshes its token.
#[test]
fn verbose_output_shows_requests_and_never_a_token() {
    let server = Xandikos::start();
    let oauth = OAuthEmulation::start_front(3600, &server.url());
    let sb = Sandbox::new();
    let url = format!("{}alice/calendars/", oauth.url());
    config(&sb, &oauth, &url, "");
    sb.write(
        "cals/calendar/e1.ics",
        EventBuilder::new("First").uid("e1").build(),
    );
    authorize(&sb);
    let check = run(&sb, &["-vvv", "check"]);
    assert_eq!(check.code, Some(0), "{}", check.both());
    assert!(
        check.stderr.contains(&format!("PROPFIND {url}: 207 in ")),
        "{}",
        check.both()
    );
    // Expired at the emulation: a 401, a refresh at the token endpoint, the request again.
    oauth.expire_access_tokens();
    let sync = run(&sb, &["-vvv", "sync"]);
    assert_eq!(sync.code, Some(0), "{}", sync.both());
    assert_eq!(oauth.grants("refresh_token", 200), 1, "{:?}", oauth.log());
    for line in [
        format!("PROPFIND {url}: 401 in "),
        format!("POST {}: 200 in ", oauth.token_url()),
        format!("PROPFIND {url}: 207 in "),
    ] {
        assert!(
            sync.stderr.contains(&line),
            "no {line:?} in:\n{}",
            sync.both()
        );
    }
    for output in [check.both(), sync.both()] {
        assert_no_secret(&oauth, &output);
        assert!(
            !output.to_ascii_lowercase().contains("authorization:"),
            "{output}"
        );
        assert!(!output.contains("Bearer"), "{output}");
    }
}

#[test]
fn a_revoked_authorization_stops_only_its_pair_and_names_davsync_auth() {
    let server = Xandikos::start();
    let oauth = OAuthEmulation::start_front(3600, &server.url());
    let sb = Sandbox::new();
    config(
        &sb,
        &oauth,
        &format!("{}alice/calendars/", oauth.url()),
        r#"
[storage.file]
type = "singlefile"
path = "{root}/work.ics"

[storage.dir]
type = "vdir"
path = "{root}/b"
fileext = ".ics"

[pair.other]
a = "file"
b = "dir"
"#,
    );
    sb.write(
        "cals/calendar/e1.ics",
        EventBuilder::new("First").uid("e1").build(),
    );
    sb.write("work.ics", EventBuilder::new("Work").uid("w1").build());
    authorize(&sb);
    oauth.revoke();
    oauth.expire_access_tokens();
    let sync = run(&sb, &["sync"]);
    assert_eq!(sync.code, Some(1), "{}", sync.both());
    assert!(
        sync.stderr.contains("davsync auth g"),
        "the message names the command: {}",
        sync.both()
    );
    assert!(
        sb.exists("b/w1.ics"),
        "the other pair synced: {}",
        sync.both()
    );
    assert_eq!(oauth.grants("refresh_token", 400), 1, "{:?}", oauth.log());
    assert_no_secret(&oauth, &sync.both());

    // Without a token file at all, the same advice.
    std::fs::remove_file(token_file(&sb)).unwrap();
    let sync = run(&sb, &["sync", "p"]);
    assert_eq!(sync.code, Some(1), "{}", sync.both());
    assert!(sync.stderr.contains("davsync auth g"), "{}", sync.both());
}

#[test]
fn a_storage_in_two_pairs_refreshes_once() {
    let server = Xandikos::start();
    let oauth = OAuthEmulation::start_front(3600, &server.url());
    let sb = Sandbox::new();
    config(
        &sb,
        &oauth,
        &format!("{}alice/calendars/", oauth.url()),
        r#"
[storage.local2]
type = "vdir"
path = "{root}/cals2"
fileext = ".ics"

[pair.q]
a = "local2"
b = "g"
collections = "from b"
"#,
    );
    sb.write(
        "cals/calendar/e1.ics",
        EventBuilder::new("First").uid("e1").build(),
    );
    sb.mkdir("cals2");
    authorize(&sb);
    oauth.expire_access_tokens();
    let sync = run(&sb, &["sync"]);
    assert_eq!(sync.code, Some(0), "{}", sync.both());
    assert_eq!(oauth.grants("refresh_token", 200), 1, "{:?}", oauth.log());
    assert_no_secret(&oauth, &sync.both());
}

#[test]
fn a_refused_authorization_stores_nothing_and_exits_1() {
    let oauth = OAuthEmulation::start(3600);
    let sb = Sandbox::new();
    config(&sb, &oauth, "http://127.0.0.1:9/", "");
    let mut run = spawn_auth(&sb, "g");
    let url = run.url();
    let state = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("state="))
        .unwrap()
        .to_owned();
    run.paste(&format!(
        "http://127.0.0.1:1/?error=access_denied&state={state}\n"
    ));
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("access_denied"), "{stderr}");
    assert!(!token_file(&sb).exists());

    // An answer for another authorization (another state) is refused too.
    let mut run = spawn_auth(&sb, "g");
    let location = authorization_redirect(&run.url());
    let forged = location.replace("state=", "state=x");
    run.paste(&format!("{forged}\n"));
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("state"), "{stderr}");
    assert!(!token_file(&sb).exists());
}

/// A `google_calendar` storage speaks Google's dialect: a local VTODO is left alone with a
/// note (never sent, never deleted), a calendar missing on Google is named for the user to
/// create in the web interface instead of being made, and events still sync.
#[test]
fn a_google_calendar_storage_speaks_googles_dialect() {
    let server = Xandikos::start();
    let oauth = OAuthEmulation::start_front(3600, &server.url());
    let sb = Sandbox::new();
    config(&sb, &oauth, &format!("{}alice/calendars/", oauth.url()), "");
    sb.write(
        "cals/calendar/e1.ics",
        EventBuilder::new("First").uid("e1").build(),
    );
    let todo = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\n\
                UID:t1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Chore\r\nEND:VTODO\r\n\
                END:VCALENDAR\r\n";
    sb.write("cals/calendar/t1.ics", todo);
    sb.write(
        "cals/holidays/h1.ics",
        EventBuilder::new("Holiday").uid("h1").build(),
    );
    authorize(&sb);

    let run = run(&sb, &["sync"]);
    assert_eq!(run.code, Some(1), "{}", run.both());
    let out = run.both();
    assert!(
        out.contains("Google cannot create calendars over CalDAV"),
        "{out}"
    );
    assert!(out.contains("\"holidays\""), "{out}");
    assert!(out.contains("not syncable to Google Calendar"), "{out}");
    let mkcalendars = oauth
        .log()
        .iter()
        .filter(|l| l.method == "MKCALENDAR")
        .count();
    assert_eq!(mkcalendars, 0, "{:?}", oauth.log());
    let listed = server
        .client()
        .propfind(
            &format!("{}alice/calendars/calendar/", server.url()),
            "1",
            "<propfind xmlns=\"DAV:\"><prop><getetag/></prop></propfind>",
        )
        .text();
    assert!(listed.contains("e1") && !listed.contains("t1"), "{listed}");
    assert_eq!(sb.read_string("cals/calendar/t1.ics"), todo);
}

// ---------------------------------------------------------------------------------------------
// Google's URL layout (`GoogleLayout`, an emulation: see tests/dav_support/google.rs)

const EMAIL: &str = "alice@example.com";
const TEAM: &str = "team@group.calendar.google.com";

/// An account in Google's layout: the OAuth2 emulation checks bearer tokens and forwards to
/// `GoogleFront` (Google's refusals, rewrites and URL layout), which forwards to Radicale,
/// where alice has the calendars `alice@example.com` and `team@group.calendar.google.com` and
/// the address book `contacts` (Google's `lists/default`).
struct Account {
    server: Radicale,
    front: GoogleFront,
    oauth: OAuthEmulation,
}

impl Account {
    fn start() -> Account {
        Account::start_with(false)
    }

    /// With `bare_at`, the front's hrefs have `@` where Google might write `%40`.
    fn start_with(bare_at: bool) -> Account {
        let server = Radicale::start();
        let client = server.client();
        for id in [EMAIL, TEAM] {
            let url = format!("{}{}/", server.calendar_home_url(), id.replace('@', "%40"));
            assert!(client.mkcalendar(&url).is_success(), "MKCALENDAR {url}");
        }
        let book = format!("{}contacts/", server.addressbook_home_url());
        assert!(client.mkcol_addressbook(&book).is_success(), "MKCOL {book}");
        let front = GoogleFront::start(&server, "not-used-behind-the-oauth-emulation");
        front.google_layout(GoogleLayout {
            email: EMAIL.to_owned(),
            address_book: "contacts".to_owned(),
            bare_at,
        });
        front.behind_bearer_check();
        let oauth = OAuthEmulation::start_front(3600, &front.url());
        Account {
            server,
            front,
            oauth,
        }
    }

    /// Radicale's URL of collection `name` of alice.
    fn radicale(&self, name: &str) -> String {
        format!(
            "{}{}/",
            self.server.calendar_home_url(),
            name.replace('@', "%40")
        )
    }

    /// Item names in Radicale's collection `name`.
    fn items(&self, name: &str) -> Vec<String> {
        let answer = self.server.client().propfind(&self.radicale(name), "1", "");
        let mut names: Vec<String> = dav_support::elements(&answer.text(), "href")
            .into_iter()
            .filter(|h| h.ends_with(".ics") || h.ends_with(".vcf"))
            .map(|h| h.rsplit('/').next().unwrap_or_default().to_owned())
            .collect();
        names.sort();
        names
    }
}

/// Storage `g` of `kind` (`google_calendar` at the emulation's `/caldav/v2/`, or
/// `google_contacts` at `/carddav/v1/principals/`), a vdir `local` below `{root}/local`, and
/// pair `p` with `collections = "from b"`.
fn layout_config(sb: &Sandbox, account: &Account, kind: &str) {
    let (url, ext) = match kind {
        "google_calendar" => ("caldav/v2/", ".ics"),
        _ => ("carddav/v1/principals/", ".vcf"),
    };
    let oauth = &account.oauth;
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"

[storage.g]
type = "{kind}"
client_id = "{CLIENT_ID}"
client_secret = {{ env = "{SECRET_ENV}" }}
url = "{base}{url}"
authorize_url = "{authorize}"
token_url = "{token}"

[storage.local]
type = "vdir"
path = "{{root}}/local"
fileext = "{ext}"

[pair.p]
a = "local"
b = "g"
collections = "from b"
"#,
        base = oauth.url(),
        authorize = oauth.authorize_url(),
        token = oauth.token_url(),
    ));
}

#[test]
fn discovery_in_googles_layout_names_calendars_by_calendar_id() {
    let account = Account::start();
    let sb = Sandbox::new();
    layout_config(&sb, &account, "google_calendar");
    authorize(&sb);
    sb.mkdir("local");
    let run = run(&sb, &["discover"]);
    run.success();
    let out = run.both();
    for id in [EMAIL, TEAM] {
        assert!(
            out.contains(&format!("p/{id}\n")),
            "{out}\n{}",
            account.front.log_text()
        );
    }
    assert!(!out.contains("p/events"), "{out}");
    let base = account.oauth.url();
    for id in ["alice%40example.com", "team%40group.calendar.google.com"] {
        assert!(
            out.contains(&format!("b: {base}caldav/v2/{id}/events/\n")),
            "{out}"
        );
    }
    assert!(
        !out.contains("contacts"),
        "an address book is no calendar:\n{out}"
    );
    // Root, principal (Google's `/user`), home set: Google's addresses only.
    assert_eq!(
        account.front.log_text(),
        "PROPFIND /caldav/v2/ -> 207\n\
         PROPFIND /caldav/v2/alice%40example.com/user/ -> 207\n\
         PROPFIND /caldav/v2/alice%40example.com/ -> 207\n"
    );
    assert!(sb.ls("local").is_empty(), "discover creates nothing");
}

#[test]
fn a_pair_from_google_syncs_both_ways_by_calendar_id() {
    let account = Account::start();
    let client = account.server.client();
    assert!(
        client
            .put_item(
                &format!("{}g1.ics", account.radicale(EMAIL)),
                EventBuilder::new("On Google").uid("g1").build().as_bytes(),
            )
            .is_success()
    );
    let sb = Sandbox::new();
    layout_config(&sb, &account, "google_calendar");
    authorize(&sb);

    let first = run(&sb, &["sync"]);
    first.success();
    assert_eq!(
        sb.ls("local"),
        vec![EMAIL.to_owned(), TEAM.to_owned()],
        "{}",
        first.both()
    );
    assert_eq!(sb.ls(&format!("local/{EMAIL}")), vec!["g1.ics".to_owned()]);

    sb.write(
        &format!("local/{TEAM}/l1.ics"),
        EventBuilder::new("From here").uid("l1").build(),
    );
    let second = run(&sb, &["sync"]);
    second.success();
    assert_eq!(
        account.items(TEAM),
        vec!["l1.ics".to_owned()],
        "{}",
        second.both()
    );
    assert_eq!(account.items(EMAIL), vec!["g1.ics".to_owned()]);
    let puts = account.front.with_method("PUT");
    assert_eq!(puts.len(), 1, "{}", account.front.log_text());
    assert_eq!(
        puts[0].path,
        "/caldav/v2/team%40group.calendar.google.com/events/l1.ics",
        "{}",
        account.front.log_text()
    );

    // The run after a write lists the written calendar once more (by design: a side a run
    // wrote to keeps no remembered ctag or token, see src/sync/mod.rs), the other not.
    account.front.reset_log();
    let after = run(&sb, &["sync"]);
    after.success();
    assert_eq!(common::totals(&after), (0, 0, 0), "{}", after.both());
    assert_eq!(
        account.front.log_text(),
        "PROPFIND /caldav/v2/alice%40example.com/ -> 207\n\
         REPORT /caldav/v2/team%40group.calendar.google.com/events/ -> 207\n"
    );
    // Nothing changed: one request for the account.
    account.front.reset_log();
    let idle = run(&sb, &["sync"]);
    idle.success();
    assert_eq!(common::totals(&idle), (0, 0, 0), "{}", idle.both());
    assert_eq!(
        account.front.log_text(),
        "PROPFIND /caldav/v2/alice%40example.com/ -> 207\n",
        "a no-op sync costs one request, the home set's PROPFIND"
    );
    assert_no_secret(&account.oauth, &idle.both());
}

#[test]
fn a_rate_limit_storm_through_the_google_type_ends_clean() {
    let account = Account::start();
    let sb = Sandbox::new();
    layout_config(&sb, &account, "google_calendar");
    authorize(&sb);
    for n in 1..=3 {
        sb.write(
            &format!("local/{EMAIL}/e{n}.ics"),
            EventBuilder::new("x").uid(&format!("e{n}")).build(),
        );
    }
    account.front.rate_limit(vec![
        Limit::RateLimitExceeded,
        Limit::TooManyRequests(1),
        Limit::RateLimitExceeded,
        Limit::RateLimitExceeded,
    ]);
    let storm = run(&sb, &["sync"]);
    storm.success();
    assert_eq!(account.front.limits_left(), 0);
    let statuses: Vec<u16> = account.front.log().iter().map(|l| l.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        account.items(EMAIL).len(),
        3,
        "{}\n{}",
        storm.both(),
        account.front.log_text()
    );
    let again = run(&sb, &["sync"]);
    again.success();
    assert_eq!(common::totals(&again), (0, 0, 0), "{}", again.both());
}

#[test]
fn google_contacts_syncs_a_vdir_with_the_default_address_book() {
    let account = Account::start();
    assert!(
        account
            .server
            .client()
            .put_item(
                &format!("{}c1.vcf", account.radicale("contacts")),
                common::vcard("c1", "Ann Example").as_bytes(),
            )
            .is_success()
    );
    let sb = Sandbox::new();
    layout_config(&sb, &account, "google_contacts");
    authorize(&sb);
    let first = run(&sb, &["sync"]);
    first.success();
    assert_eq!(
        sb.ls("local"),
        vec!["default".to_owned()],
        "{}",
        first.both()
    );
    assert_eq!(sb.ls("local/default"), vec!["c1.vcf".to_owned()]);
    sb.write("local/default/c2.vcf", common::vcard("c2", "Bob Example"));
    let second = run(&sb, &["sync"]);
    second.success();
    assert_eq!(
        account.items("contacts"),
        vec!["c1.vcf".to_owned(), "c2.vcf".to_owned()],
        "{}\n{}",
        second.both(),
        account.front.log_text()
    );
    assert!(
        account
            .front
            .log()
            .iter()
            .all(|l| l.path.starts_with("/carddav/v1/principals/")),
        "{}",
        account.front.log_text()
    );
    run(&sb, &["sync"]).success();
    account.front.reset_log();
    let idle = run(&sb, &["sync"]);
    idle.success();
    assert_eq!(common::totals(&idle), (0, 0, 0), "{}", idle.both());
    assert_eq!(account.front.log().len(), 1, "{}", account.front.log_text());
}

/// Ids and item names with `@` (Google's event UIDs often end in `@google.com`), written in
/// hrefs as a bare `@` by the front: names stay the ids, items are neither duplicated nor
/// listed again, a no-op sync costs one request.
#[test]
fn hrefs_with_a_bare_at_sign_name_the_same_calendars_and_items() {
    let account = Account::start_with(true);
    let client = account.server.client();
    let on_google = format!("{}abc123%40google.com.ics", account.radicale(TEAM));
    let put = client.put_item(
        &on_google,
        EventBuilder::new("Google's")
            .uid("abc123@google.com")
            .build()
            .as_bytes(),
    );
    assert!(put.is_success(), "{}", put.text());
    let sb = Sandbox::new();
    layout_config(&sb, &account, "google_calendar");
    authorize(&sb);
    sb.mkdir("local");
    let discover = run(&sb, &["discover"]);
    discover.success();
    let out = discover.both();
    for id in [EMAIL, TEAM] {
        assert!(out.contains(&format!("p/{id}\n")), "{out}");
    }

    let first = run(&sb, &["sync"]);
    first.success();
    assert_eq!(sb.ls("local"), vec![EMAIL.to_owned(), TEAM.to_owned()]);
    assert_eq!(sb.ls(&format!("local/{TEAM}")).len(), 1, "{}", first.both());
    sb.write(
        &format!("local/{EMAIL}/mine.ics"),
        EventBuilder::new("Mine").uid("mine@example.com").build(),
    );
    let second = run(&sb, &["sync"]);
    second.success();
    assert_eq!(common::totals(&second), (1, 0, 0), "{}", second.both());
    assert_eq!(
        account.items(EMAIL).len(),
        1,
        "{}",
        account.front.log_text()
    );
    assert_eq!(account.items(TEAM).len(), 1);
    let puts = account.front.with_method("PUT");
    assert_eq!(
        puts.iter().map(|l| l.path.as_str()).collect::<Vec<_>>(),
        ["/caldav/v2/alice@example.com/events/mine@example.com.ics"],
        "davsync writes below the hrefs as the server gave them"
    );
    run(&sb, &["sync"]).success();
    account.front.reset_log();
    let idle = run(&sb, &["sync"]);
    idle.success();
    assert_eq!(common::totals(&idle), (0, 0, 0), "{}", idle.both());
    assert_eq!(account.front.log().len(), 1, "{}", account.front.log_text());
    assert_eq!(sb.ls(&format!("local/{EMAIL}")).len(), 1);
    assert_eq!(sb.ls(&format!("local/{TEAM}")).len(), 1);
}

/// A pair that names one calendar by its id syncs that calendar only.
#[test]
fn a_calendar_named_by_its_id_in_collections_is_the_one_synced() {
    let account = Account::start();
    let sb = Sandbox::new();
    layout_config(&sb, &account, "google_calendar");
    let config = std::fs::read_to_string(sb.config_path()).unwrap();
    sb.write_config(&config.replace(
        "collections = \"from b\"",
        &format!("collections = [\"{TEAM}\"]"),
    ));
    authorize(&sb);
    sb.write(
        &format!("local/{TEAM}/t1.ics"),
        EventBuilder::new("Team").uid("t1").build(),
    );
    let sync = run(&sb, &["sync"]);
    sync.success();
    assert_eq!(sb.ls("local"), vec![TEAM.to_owned()], "{}", sync.both());
    assert_eq!(
        account.items(TEAM),
        vec!["t1.ics".to_owned()],
        "{}",
        sync.both()
    );
    assert!(account.items(EMAIL).is_empty());
}

/// A local calendar Google lacks: Google cannot create it over CalDAV, and a calendar made in
/// the web interface gets an id of Google's choosing, not the local name. The message says to
/// pair the local collection with that id, and doing so syncs it.
#[test]
fn a_local_calendar_google_lacks_is_paired_with_the_id_google_gives_it() {
    let account = Account::start();
    let sb = Sandbox::new();
    layout_config(&sb, &account, "google_calendar");
    let config = std::fs::read_to_string(sb.config_path()).unwrap();
    sb.write_config(&config.replace("collections = \"from b\"", "collections = \"from a\""));
    authorize(&sb);
    sb.write(
        "local/holidays/h1.ics",
        EventBuilder::new("Holiday").uid("h1").build(),
    );
    let refused = run(&sb, &["sync"]);
    assert_eq!(refused.code, Some(1), "{}", refused.both());
    let out = refused.both();
    assert!(
        out.contains("Google cannot create calendars over CalDAV"),
        "{out}"
    );
    assert!(out.contains("calendar id"), "{out}");
    assert!(out.contains("davsync discover"), "{out}");
    assert!(account.front.with_method("MKCALENDAR").is_empty());

    // The user makes "holidays" in the web interface; Google gives it an id.
    let id = "h0l1d4ys@group.calendar.google.com";
    let made = account.server.client().mkcalendar(&account.radicale(id));
    assert!(made.is_success());
    // Unpaired, it still does not match the local name.
    let again = run(&sb, &["sync"]);
    assert_eq!(again.code, Some(1), "{}", again.both());
    assert!(account.items(id).is_empty());
    // Paired by its id, as the message says, it syncs.
    sb.write_config(&config.replace(
        "collections = \"from b\"",
        &format!("collections = [{{ name = \"holidays\", a = \"holidays\", b = \"{id}\" }}]"),
    ));
    let paired = run(&sb, &["sync"]);
    paired.success();
    assert_eq!(
        account.items(id),
        vec!["h1.ics".to_owned()],
        "{}",
        paired.both()
    );
}

/// The addresses users paste (Google's help and other clients' docs give the principal
/// `/caldav/v2/<email>/user` or a calendar's `/caldav/v2/<id>/events`): with `collections`,
/// discovery from either finds every calendar of the account (as with any server: davsync
/// goes from the URL to its principal's home set); without, a calendar's address is that one
/// calendar.
#[test]
fn discovery_from_the_principal_or_one_calendars_address() {
    let account = Account::start();
    let put = account.server.client().put_item(
        &format!("{}t1.ics", account.radicale(TEAM)),
        EventBuilder::new("Team").uid("t1").build().as_bytes(),
    );
    assert!(put.is_success());
    let sb = Sandbox::new();
    layout_config(&sb, &account, "google_calendar");
    let config = std::fs::read_to_string(sb.config_path()).unwrap();
    authorize(&sb);
    sb.mkdir("local");
    let base = format!("{}caldav/v2/", account.oauth.url());
    let with_url =
        |url: &str| config.replace(&format!("url = \"{base}\""), &format!("url = \"{url}\""));
    for url in [
        format!("{base}alice@example.com/user"),
        format!("{base}alice%40example.com/user/"),
        format!("{base}team%40group.calendar.google.com/events/"),
        format!("{base}alice@example.com/events"),
    ] {
        sb.write_config(&with_url(&url));
        let run = run(&sb, &["discover"]);
        let out = run.both();
        assert_eq!(run.code, Some(0), "{url}\n{out}");
        let listed: Vec<&str> = out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("p/"))
            .collect();
        assert_eq!(
            listed,
            [EMAIL, TEAM],
            "{url}\n{out}\n{}",
            account.front.log_text()
        );
    }

    // No collections: the pair is the one calendar at the URL.
    let one = with_url(&format!("{base}team%40group.calendar.google.com/events/"))
        .replace("collections = \"from b\"\n", "");
    sb.write_config(&one);
    let sync = run(&sb, &["sync"]);
    sync.success();
    assert_eq!(sb.ls("local"), vec!["t1.ics".to_owned()], "{}", sync.both());
}
