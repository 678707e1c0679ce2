//! Google's CalDAV/CardDAV dialect, against `GoogleFront` (an emulation of Google's front, see
//! `tests/dav_support/google.rs`) before Radicale, with a static bearer token.
//!
//! `Dialect::Google` is set only by the Google storage types, so what depends on it is tested
//! through the library (a `DavStorage` opened with a Google `DavConfig`, `sync_collection`
//! called directly). What any server may do (rate limits answered with 403, rewritten items)
//! is tested through the binary with `type = "caldav"` and `auth = "bearer"`, the front's
//! `If-None-Match` refusal turned off for those (a standard client needs it).

mod common;
mod dav_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Sandbox, event, totals, vcard};
use dav_support::google::{GoogleFront, Limit, Refusals, google_rewrite};
use dav_support::{DavServer, Radicale};
use davsync::config::{
    AuthScheme, CollectionsSpec, DavConfig, DavKind, Dialect, HttpOptions, ItemFilter, Secret,
    TlsVerify,
};
use davsync::status::StatusDb;
use davsync::storage::dav::DavStorage;
use davsync::storage::vdir::VdirStorage;
use davsync::storage::{ItemError, Storage, StorageError};
use davsync::sync::{Sides, SyncOptions, pair_collections, sync_collection};

const TOKEN: &str = "ya29.emulated-access-token";

/// A DAV config for `url` with the bearer token and the given dialect.
fn config(kind: DavKind, url: &str, dialect: Dialect) -> DavConfig {
    DavConfig {
        kind,
        http: HttpOptions {
            url: url.to_owned(),
            username: None,
            password: Some(Secret::Literal(TOKEN.to_owned())),
            auth: AuthScheme::Bearer,
            verify: TlsVerify::System,
            fingerprint: None,
            client_cert: None,
            timeout: Duration::from_secs(30),
            user_agent: None,
            max_response_size: 256 << 20,
        },
        batch_size: 50,
        concurrency: 4,
        dialect,
    }
}

/// The filter the config gives a storage of this config (a Google calendar: VEVENT only).
fn filter_of(config: &DavConfig) -> ItemFilter {
    match config.component_limit() {
        Some(limit) => ItemFilter::default().limited(limit).expect("limited"),
        None => ItemFilter::default(),
    }
}

fn open(config: &DavConfig) -> DavStorage {
    davsync::storage::dav::open(
        config,
        &filter_of(config),
        &BTreeMap::<String, String>::new(),
        &davsync::http::Clients::default(),
    )
    .expect("open DAV storage")
}

/// A Google calendar storage on the front's calendar home.
fn google_calendars(server: &Radicale, front: &GoogleFront) -> (DavConfig, DavStorage) {
    let config = config(
        DavKind::CalDav,
        &front.proxied(&server.calendar_home_url()),
        Dialect::Google,
    );
    let storage = open(&config);
    (config, storage)
}

/// Makes calendar `name` on the server directly (as Google's web interface would).
fn make_calendar(server: &Radicale, name: &str) -> String {
    let url = format!("{}{name}/", server.calendar_home_url());
    server.client().mkcalendar(&url);
    url
}

fn calendar_text(uid: &str, summary: &str) -> String {
    event(uid, summary)
}

fn todo(uid: &str, summary: &str) -> String {
    common::crlf(&[
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//davsync tests//EN",
        "BEGIN:VTODO",
        &format!("UID:{uid}"),
        "DTSTAMP:20240101T120000Z",
        &format!("SUMMARY:{summary}"),
        "END:VTODO",
        "END:VCALENDAR",
    ])
}

/// Item names on the server in the collection at `url`.
fn server_items(server: &Radicale, url: &str) -> Vec<String> {
    let answer = server.client().propfind(url, "1", "");
    let mut names: Vec<String> = dav_support::elements(&answer.text(), "href")
        .into_iter()
        .filter(|h| h.ends_with(".ics") || h.ends_with(".vcf"))
        .map(|h| h.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------------
// The emulation's rewrites and the normalized hash

#[test]
fn googles_rewrites_keep_the_normalized_hash() {
    let items = [
        event(
            "e1",
            "A meeting with a long description that gets folded somewhere",
        ),
        vcard("c1", "Ann Example"),
        vcard("c2", "Bob").replace("EMAIL;TYPE=INTERNET", "EMAIL;TYPE=internet"),
        vcard("c3", "Cid").replace("EMAIL;TYPE=INTERNET", "EMAIL;TYPE=home"),
        vcard("c4", "Dee").replace("EMAIL;TYPE=INTERNET", "EMAIL"),
    ];
    for item in items {
        let rewritten = google_rewrite(item.as_bytes());
        assert_ne!(rewritten, item.as_bytes(), "the emulation rewrote nothing");
        assert_eq!(
            davsync::vobject::normalized_hash(&rewritten),
            davsync::vobject::normalized_hash(item.as_bytes()),
            "{item}\n---\n{}",
            String::from_utf8_lossy(&rewritten)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Library level: what Dialect::Google changes

#[test]
fn create_checks_the_href_instead_of_if_none_match_and_never_overwrites() {
    let server = Radicale::start();
    let cal_url = make_calendar(&server, "cal");
    let front = GoogleFront::start(&server, TOKEN);
    let (_, storage) = google_calendars(&server, &front);
    let cal = storage
        .list_collections()
        .expect("list")
        .into_iter()
        .find(|c| c.name == "cal")
        .expect("cal listed");

    // A new item: a GET finds nothing, then a PUT without If-None-Match.
    front.reset_log();
    let written = storage
        .create(&cal, "e1", calendar_text("e1", "one").as_bytes())
        .expect("create");
    assert!(written.href.ends_with("/cal/e1.ics"), "{written:?}");
    let log = front.log();
    let requests: Vec<(String, u16)> = log.iter().map(|l| (l.method.clone(), l.status)).collect();
    assert_eq!(
        requests,
        [("GET".to_owned(), 404), ("PUT".to_owned(), 201)],
        "{}",
        front.log_text()
    );
    assert!(log.iter().all(|l| l.if_none_match.is_none()));

    // The name is taken by an item with another UID: another name, the other item untouched.
    let other = calendar_text("other", "someone else's");
    server
        .client()
        .put_item(&format!("{cal_url}taken.ics"), other.as_bytes());
    let written = storage
        .create(&cal, "taken", calendar_text("taken", "mine").as_bytes())
        .expect("create under another name");
    assert!(!written.href.ends_with("/taken.ics"), "{written:?}");
    let held = server.client().get(&format!("{cal_url}taken.ics"));
    assert!(held.text().contains("someone else's"), "{}", held.text());

    // The same UID already there with other content (another client's): not overwritten,
    // reported as changed for the next run to sort out.
    let result = storage.create(&cal, "e1", calendar_text("e1", "two").as_bytes());
    assert!(
        matches!(result, Err(ItemError::Changed { .. })),
        "{result:?}\n{}",
        front.log_text()
    );
    let held = server.client().get(&format!("{cal_url}e1.ics"));
    assert!(held.text().contains("SUMMARY:one"), "{}", held.text());
    assert!(
        front
            .with_method("PUT")
            .iter()
            .all(|l| l.if_none_match.is_none()),
        "{}",
        front.log_text()
    );

    // The standard dialect's conditional create is what Google refuses.
    let standard = open(&config(
        DavKind::CalDav,
        &front.proxied(&server.calendar_home_url()),
        Dialect::Standard,
    ));
    let result = standard.create(&cal, "e2", calendar_text("e2", "x").as_bytes());
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn a_calendar_missing_on_google_is_named_and_the_others_sync() {
    let server = Radicale::start();
    make_calendar(&server, "cal");
    let front = GoogleFront::start(&server, TOKEN);
    let (config, google) = google_calendars(&server, &front);
    let sb = Sandbox::new();
    sb.write("local/cal/e1.ics", calendar_text("e1", "in cal"));
    sb.write("local/new/e2.ics", calendar_text("e2", "in new"));
    let local = VdirStorage::new(sb.path("local"), ".ics".into());
    let sides = Sides {
        a: &local,
        b: &google,
    };
    let status = StatusDb::open(&sb.path("status.db")).expect("status");
    let options = SyncOptions {
        filters: [ItemFilter::default(), filter_of(&config)],
        ..SyncOptions::default()
    };
    let pairs = pair_collections(&CollectionsSpec::FromA, &sides).expect("pairs");
    let mut reports = BTreeMap::new();
    for pair in &pairs {
        let report = sync_collection(&sides, pair, &status, &options, &mut |_| {}).expect("sync");
        reports.insert(pair.name.clone(), report);
    }
    let cal = &reports["cal"];
    assert!(cal.is_clean() && cal.created == 1, "{cal:?}");
    let refused = reports["new"].refused.clone().unwrap_or_default();
    assert_eq!(
        refused,
        "cannot create collection \"new\": Google cannot create calendars over CalDAV; create \
         a calendar for \"new\" in Google Calendar's web interface (calendar.google.com, \
         \"Other calendars\" > \"+\" > \"Create new calendar\"), then pair this collection \
         with its calendar id in the pair's collections (`davsync discover` lists the ids), \
         e.g. { name = \"new\", a = \"new\", b = \"<calendar id>\" } where Google is b"
    );
    assert!(
        front.with_method("MKCALENDAR").is_empty(),
        "{}",
        front.log_text()
    );
    assert!(
        front.with_method("MKCOL").is_empty(),
        "{}",
        front.log_text()
    );

    // The same error from the storage itself, for address books too.
    let contacts = open(&config_contacts(&server, &front));
    match contacts.create_collection("friends") {
        Err(StorageError::CannotCreate { name, how }) => {
            assert_eq!(name, "friends");
            assert!(how.contains("one address book"), "{how}");
        }
        other => panic!("{other:?}"),
    }
}

fn config_contacts(server: &Radicale, front: &GoogleFront) -> DavConfig {
    config(
        DavKind::CardDav,
        &front.proxied(&server.addressbook_home_url()),
        Dialect::Google,
    )
}

#[test]
fn vtodos_stay_local_are_never_sent_and_are_reported_once_per_run() {
    let server = Radicale::start();
    let cal_url = make_calendar(&server, "cal");
    let front = GoogleFront::start(&server, TOKEN);
    let config = config(DavKind::CalDav, &front.proxied(&cal_url), Dialect::Google);
    let google = open(&config);
    let sb = Sandbox::new();
    sb.write("local/e1.ics", calendar_text("e1", "an event"));
    sb.write("local/t1.ics", todo("t1", "a task"));
    sb.write("local/t2.ics", todo("t2", "another task"));
    let local = VdirStorage::new(sb.path("local"), ".ics".into());
    let sides = Sides {
        a: &local,
        b: &google,
    };
    let status = StatusDb::open(&sb.path("status.db")).expect("status");
    let options = SyncOptions {
        filters: [ItemFilter::default(), filter_of(&config)],
        ..SyncOptions::default()
    };
    let note = "2 VTODO on a left alone: not syncable to Google Calendar, which holds only \
                VEVENT (never sent, never deleted)";
    for run in 0..3 {
        let pairs = pair_collections(&CollectionsSpec::Root, &sides).expect("pairs");
        let report =
            sync_collection(&sides, &pairs[0], &status, &options, &mut |_| {}).expect("sync");
        assert!(report.is_clean(), "run {run}: {report:?}");
        assert_eq!(report.notes, [note], "run {run}");
        let expected_created = u64::from(run == 0);
        assert_eq!(
            (report.created, report.updated, report.deleted),
            (expected_created, 0, 0),
            "run {run}: {report:?}"
        );
        assert_eq!(sb.ls("local"), ["e1.ics", "t1.ics", "t2.ics"], "run {run}");
    }
    assert!(
        front
            .with_method("PUT")
            .iter()
            .all(|l| !l.body_text().contains("VTODO")),
        "{}",
        front.log_text()
    );
    assert_eq!(server_items(&server, &cal_url), ["e1.ics"]);
}

/// Uploads through the Google dialect (creates without If-None-Match, rewritten on store),
/// then forgets the status, as a run killed before its first commit would: the next run finds
/// every item on both sides, Google's copy rewritten, and adopts them all without a write or a
/// conflict; the run after that writes nothing.
fn rewritten_uploads_are_adopted_after_a_lost_status(kind: DavKind) {
    let server = Radicale::start();
    let (url, ext, items): (String, &str, Vec<(String, String)>) = match kind {
        DavKind::CalDav => {
            let url = make_calendar(&server, "cal");
            let items = (1..=5)
                .map(|n| (format!("e{n}"), event(&format!("e{n}"), "to Google")))
                .collect();
            (url, ".ics", items)
        }
        DavKind::CardDav => {
            let url = format!("{}contacts/", server.addressbook_home_url());
            server.client().mkcol_addressbook(&url);
            let items = (1..=5)
                .map(|n| {
                    (
                        format!("c{n}"),
                        // Without the type Google adds.
                        vcard(&format!("c{n}"), &format!("Person {n}"))
                            .replace("EMAIL;TYPE=INTERNET", "EMAIL;TYPE=HOME"),
                    )
                })
                .collect();
            (url, ".vcf", items)
        }
    };
    let front = GoogleFront::start(&server, TOKEN);
    let config = config(kind, &front.proxied(&url), Dialect::Google);
    let google = open(&config);
    let sb = Sandbox::new();
    for (uid, text) in &items {
        sb.write(&format!("local/{uid}{ext}"), text);
    }
    let local = VdirStorage::new(sb.path("local"), ext.into());
    let sides = Sides {
        a: &local,
        b: &google,
    };
    let options = SyncOptions {
        filters: [ItemFilter::default(), filter_of(&config)],
        ..SyncOptions::default()
    };
    let sync = |status: &StatusDb| {
        let pairs = pair_collections(&CollectionsSpec::Root, &sides).expect("pairs");
        sync_collection(&sides, &pairs[0], status, &options, &mut |_| {}).expect("sync")
    };
    let first = StatusDb::open(&sb.path("first.db")).expect("status");
    let report = sync(&first);
    assert!(report.is_clean() && report.created == 5, "{report:?}");
    assert!(
        front
            .with_method("PUT")
            .iter()
            .all(|l| l.if_none_match.is_none()),
        "{}",
        front.log_text()
    );
    let stored = server.client().get(&format!("{url}{}{ext}", items[0].0));
    assert!(
        stored.text().contains("PRODID:-//Google Inc"),
        "{}",
        stored.text()
    );
    assert_ne!(stored.text(), items[0].1);

    let before = sb.state("local");
    front.reset_log();
    let status = StatusDb::open(&sb.path("lost.db")).expect("status");
    for run in 0..2 {
        let report = sync(&status);
        assert!(report.is_clean(), "run {run}: {report:?}");
        assert_eq!(
            (report.created, report.updated, report.deleted),
            (0, 0, 0),
            "run {run}: {report:?}"
        );
    }
    assert_eq!(sb.state("local"), before);
    assert!(front.with_method("PUT").is_empty(), "{}", front.log_text());
}

#[test]
fn rewritten_events_are_adopted_after_a_lost_status() {
    rewritten_uploads_are_adopted_after_a_lost_status(DavKind::CalDav);
}

#[test]
fn rewritten_vcards_are_adopted_after_a_lost_status() {
    rewritten_uploads_are_adopted_after_a_lost_status(DavKind::CardDav);
}

#[test]
fn a_date_window_asks_a_google_calendar_for_events_only() {
    let server = Radicale::start();
    let cal_url = make_calendar(&server, "cal");
    server
        .client()
        .put_item(&format!("{cal_url}e1.ics"), event("e1", "x").as_bytes());
    let front = GoogleFront::start(&server, TOKEN);
    let google = open(&config(
        DavKind::CalDav,
        &front.proxied(&cal_url),
        Dialect::Google,
    ));
    let cal = google.root_collection();
    front.reset_log();
    let window = davsync::filter::Window {
        start: Some(0),
        end: None,
    };
    let listed = google
        .list_in_window(&cal, window, false)
        .expect("answered");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let reports = front.with_method("REPORT");
    assert_eq!(reports.len(), 1, "{}", front.log_text());
    assert!(reports[0].body_text().contains("VEVENT"));
}

// ---------------------------------------------------------------------------------------------
// Through the binary: rate limits and rewrites (any server may do these)

/// A vdir `local` and a `caldav` storage with the bearer token at the front's `cal` calendar.
fn binary_config(sb: &Sandbox, url: &str) {
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"

[storage.local]
type = "vdir"
path = "{{root}}/local"
fileext = ".ics"

[storage.google]
type = "caldav"
url = "{url}"
auth = "bearer"
password = "{TOKEN}"

[pair.p]
a = "local"
b = "google"
"#
    ));
}

/// The front with only what a standard client can live with: no If-None-Match refusal.
fn lenient(front: &GoogleFront) {
    front.set_refusals(Refusals {
        if_none_match: false,
        ..Refusals::default()
    });
}

#[test]
fn a_rate_limit_storm_ends_in_a_clean_sync() {
    let server = Radicale::start();
    let cal_url = make_calendar(&server, "cal");
    let front = GoogleFront::start(&server, TOKEN);
    lenient(&front);
    let sb = Sandbox::new();
    for n in 1..=4 {
        sb.write(
            &format!("local/e{n}.ics"),
            calendar_text(&format!("e{n}"), "x"),
        );
    }
    binary_config(&sb, &front.proxied(&cal_url));
    front.rate_limit(vec![
        Limit::RateLimitExceeded,
        Limit::RateLimitExceeded,
        Limit::TooManyRequests(1),
    ]);
    let started = Instant::now();
    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(
        totals(&run),
        (4, 0, 0),
        "{}{}",
        run.both(),
        front.log_text()
    );
    assert_eq!(front.limits_left(), 0);
    let statuses: Vec<u16> = front.log().iter().map(|l| l.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    // Retry-After: 1 was honoured.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(server_items(&server, &cal_url).len(), 4);

    // Another storm, of 403s only (no Retry-After: backoff), at the start of the next run.
    for n in 5..=8 {
        sb.write(
            &format!("local/e{n}.ics"),
            calendar_text(&format!("e{n}"), "x"),
        );
    }
    front.rate_limit(vec![Limit::RateLimitExceeded; 3]);
    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(totals(&run), (4, 0, 0), "{}", run.both());
    let again = sb.run(&["sync"]);
    again.success();
    assert_eq!(totals(&again), (0, 0, 0), "{}", again.both());
}

#[test]
fn a_refused_mkcalendar_fails_only_its_collection_and_exits_1() {
    let server = Radicale::start();
    let cal_url = make_calendar(&server, "cal");
    let front = GoogleFront::start(&server, TOKEN);
    lenient(&front);
    let sb = Sandbox::new();
    sb.write("local/cal/e1.ics", calendar_text("e1", "x"));
    sb.write("local/new/e2.ics", calendar_text("e2", "y"));
    binary_config(&sb, &front.proxied(&server.calendar_home_url()));
    let text = sb.read_string("config.toml") + "collections = \"from a\"\n";
    sb.write_config(&text);
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(run.both().contains("403"), "{}", run.both());
    assert_eq!(server_items(&server, &cal_url), ["e1.ics"]);
    assert_eq!(
        front.with_method("MKCALENDAR").len(),
        1,
        "{}",
        front.log_text()
    );
}

#[test]
fn a_token_the_front_does_not_know_is_refused() {
    let server = Radicale::start();
    let cal_url = make_calendar(&server, "cal");
    let front = GoogleFront::start(&server, TOKEN);
    front.revoke_token(TOKEN);
    let sb = Sandbox::new();
    sb.write("local/e1.ics", calendar_text("e1", "x"));
    binary_config(&sb, &front.proxied(&cal_url));
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(run.both().contains("401"), "{}", run.both());
    assert!(
        front
            .log()
            .iter()
            .all(|l| l.token.as_deref() == Some(TOKEN))
    );
}

#[test]
fn first_sync_against_rewritten_items_has_no_conflicts() {
    let server = Radicale::start();
    let cal_url = make_calendar(&server, "cal");
    let front = GoogleFront::start(&server, TOKEN);
    lenient(&front);
    let sb = Sandbox::new();
    // The same events on both sides, the server's as Google rewrote them.
    for n in 1..=3 {
        let uid = format!("e{n}");
        let text = calendar_text(&uid, "the same on both sides");
        sb.write(&format!("local/{uid}.ics"), &text);
        server.client().put_item(
            &format!("{cal_url}{uid}.ics"),
            &google_rewrite(text.as_bytes()),
        );
    }
    binary_config(&sb, &front.proxied(&cal_url));
    let before = sb.state("local");
    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(totals(&run), (0, 0, 0), "{}", run.both());
    assert_eq!(sb.state("local"), before);
    assert!(front.with_method("PUT").is_empty(), "{}", front.log_text());
}

#[test]
fn an_interrupted_sync_against_a_rewriting_server_converges_without_conflicts() {
    let server = Radicale::start();
    let cal_url = make_calendar(&server, "cal");
    let front = GoogleFront::start(&server, TOKEN);
    lenient(&front);
    let sb = Sandbox::new();
    for n in 1..=6 {
        let uid = format!("e{n}");
        sb.write(
            &format!("local/{uid}.ics"),
            calendar_text(&uid, "to upload"),
        );
    }
    binary_config(&sb, &front.proxied(&cal_url));
    // The third PUT is applied (rewritten) and its answer never comes: davsync is killed
    // while it waits, with writes applied that its status does not know.
    front.stall_after_forward("PUT", 3);
    let mut child = sb.std_cmd().arg("sync").spawn().expect("spawn davsync");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !front.stalled() {
        assert!(
            Instant::now() < deadline,
            "no PUT stalled\n{}",
            front.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("kill davsync");
    let _ = child.wait();
    let uploaded = server_items(&server, &cal_url).len();
    assert!(uploaded >= 3, "{uploaded}");
    // The server now holds rewritten copies the status does not know: adopted, not conflicts.
    let run = sb.run(&["sync"]);
    run.success();
    assert!(!run.stdout.contains("conflict:"), "{}", run.both());
    let (created, updated, deleted) = totals(&run);
    assert_eq!(
        (updated, deleted),
        (0, 0),
        "{}{}",
        run.both(),
        front.log_text()
    );
    assert!(created <= 6 - 2, "{}", run.both());
    assert_eq!(server_items(&server, &cal_url).len(), 6);
    let again = sb.run(&["sync"]);
    again.success();
    assert_eq!(totals(&again), (0, 0, 0), "{}", again.both());
}
