//! Scenario tests of the storage filters through the binary: `item_types` on vdirs, and date
//! windows (`start_date`, `end_date`) whose out-of-scope items are never deleted: an item
//! leaving the window (its date moved, or time passed) stays on both sides, and syncs normally
//! when it comes back. The day of the run is set with `DAVSYNC_TEST_TODAY`. CalDAV windows
//! against Radicale and Xandikos are in `dav_filters` below.

mod common;
mod dav_support;

use common::{Sandbox, crlf, totals};
use dav_support::{DavClient, DavServer, FaultProxy, Radicale, Xandikos};

/// A pair `cal` of two vdirs `{root}/a` (storage `laptop`, with `a_extra` in its section) and
/// `{root}/b` (storage `backup`, with `b_extra`).
fn setup(a_extra: &str, b_extra: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.mkdir("a");
    sb.mkdir("b");
    sb.write_config(&config(a_extra, b_extra));
    sb
}

/// The config text of [`setup`].
fn config(a_extra: &str, b_extra: &str) -> String {
    format!(
        r#"status_path = "{{root}}/status"

[storage.laptop]
type = "vdir"
path = "{{root}}/a"
fileext = ".ics"
{a_extra}

[storage.backup]
type = "vdir"
path = "{{root}}/b"
fileext = ".ics"
{b_extra}

[pair.cal]
a = "laptop"
b = "backup"
"#
    )
}

/// An all-day event on `day` (`YYYYMMDD`) with more `lines` (RRULE, say).
fn event_on(uid: &str, summary: &str, day: &str, lines: &[&str]) -> String {
    let mut all = vec![
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//davsync tests//EN",
        "BEGIN:VEVENT",
    ];
    let uid = format!("UID:{uid}");
    let start = format!("DTSTART;VALUE=DATE:{day}");
    let summary = format!("SUMMARY:{summary}");
    all.extend([
        uid.as_str(),
        "DTSTAMP:20240101T090000Z",
        start.as_str(),
        summary.as_str(),
    ]);
    all.extend(lines);
    all.extend(["END:VEVENT", "END:VCALENDAR"]);
    crlf(&all)
}

/// A todo, due on `due` (`YYYYMMDD`) when given.
fn todo(uid: &str, summary: &str, due: Option<&str>) -> String {
    let uid = format!("UID:{uid}");
    let summary = format!("SUMMARY:{summary}");
    let due = due.map(|d| format!("DUE;VALUE=DATE:{d}"));
    let mut all = vec![
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//davsync tests//EN",
        "BEGIN:VTODO",
        uid.as_str(),
        "DTSTAMP:20240101T090000Z",
        summary.as_str(),
    ];
    all.extend(due.as_deref());
    all.extend(["END:VTODO", "END:VCALENDAR"]);
    crlf(&all)
}

/// `davsync sync` on `day` (`YYYY-MM-DD`).
fn sync_on(sb: &Sandbox, day: &str) -> common::Run {
    sb.run_env(&["sync"], &[("DAVSYNC_TEST_TODAY", day)])
}

const WINDOW_2026: &str = "start_date = \"2026-01-01\"\nend_date = \"2026-12-31\"";

#[test]
fn item_types_on_a_vdir_pair_sync_events_and_leave_todos() {
    let sb = setup("item_types = [\"VEVENT\"]", "");
    sb.write("a/party.ics", event_on("party", "Party", "20260601", &[]));
    sb.write("a/milk.ics", todo("milk", "Buy milk", None));
    sb.write("b/taxes.ics", todo("taxes", "Taxes", Some("20260531")));
    let run = sb.run(&["sync"]);
    run.success()
        .expect_stdout("cal: 1 created, 0 updated, 0 deleted, 0 conflicts, 0 errors");
    assert_eq!(sb.ls("a"), ["milk.ics", "party.ics"]);
    assert_eq!(sb.ls("b"), ["party.ics", "taxes.ics"]);
    // The todos are out of scope, not new: deleting one leaves the other side alone.
    sb.remove("a/milk.ics");
    sb.run(&["sync"]).success().expect_stdout("cal: in sync");
    assert_eq!(sb.ls("b"), ["party.ics", "taxes.ics"]);
}

#[test]
fn an_item_created_outside_the_window_is_not_copied_nor_deleted() {
    let sb = setup(WINDOW_2026, "");
    sb.write("a/in.ics", event_on("in", "In", "20260601", &[]));
    sb.write("a/old.ics", event_on("old", "Old", "20250601", &[]));
    sb.write("b/later.ics", event_on("later", "Later", "20270101", &[]));
    sb.write("b/someday.ics", todo("someday", "Someday", None));
    for _ in 0..2 {
        // (-v: the second run changes nothing, and an unchanged collection says so with -v.)
        let run = sb.run(&["sync", "-v"]);
        run.success();
        assert!(
            run.stdout
                .contains("; 2 outside the date window, left alone"),
            "{}",
            run.stdout
        );
    }
    // The undated todo is in every window.
    assert_eq!(sb.ls("a"), ["in.ics", "old.ics", "someday.ics"]);
    assert_eq!(sb.ls("b"), ["in.ics", "later.ics", "someday.ics"]);
    assert_eq!(sb.status_items("cal"), 2);
}

#[test]
fn an_item_leaving_the_window_stays_and_its_changes_sync_when_it_comes_back() {
    let sb = setup(WINDOW_2026, "");
    let first = event_on("trip", "Trip", "20260601", &[]);
    sb.write("a/trip.ics", &first);
    sb.run(&["sync"]).success();
    assert_eq!(sb.read_string("b/trip.ics"), first);

    // Moved out of the window on A: both copies stay as they are.
    sb.write("a/trip.ics", event_on("trip", "Trip", "20250601", &[]));
    let run = sb.run(&["sync", "-v"]);
    run.success();
    assert!(
        run.stdout
            .contains("cal: 0 created, 0 updated, 0 deleted, 0 conflicts, 0 errors; 1 outside"),
        "{}",
        run.stdout
    );
    assert_eq!(sb.read_string("b/trip.ics"), first);
    assert_eq!(sb.status_items("cal"), 1, "the status still knows it");

    // Changed again while out, then moved back: the change comes along.
    sb.write(
        "a/trip.ics",
        event_on("trip", "Trip (booked)", "20250601", &[]),
    );
    sb.run(&["sync"]).success();
    assert_eq!(sb.read_string("b/trip.ics"), first);
    let back = event_on("trip", "Trip (booked)", "20260701", &[]);
    sb.write("a/trip.ics", &back);
    sb.run(&["sync"])
        .success()
        .expect_stdout("cal: 0 created, 1 updated, 0 deleted, 0 conflicts, 0 errors\n");
    assert_eq!(sb.read_string("b/trip.ics"), back);
}

#[test]
fn a_window_set_after_syncing_without_one_knows_the_days_of_what_was_synced() {
    // Synced without a window, the status does not read the items' days...
    let sb = setup("", "");
    sb.write("a/in.ics", event_on("in", "In", "20260601", &[]));
    sb.write("a/old.ics", event_on("old", "Old", "20250601", &[]));
    // Old files: their version tags vouch for them, so A's items are not read again and only
    // the status can tell on which days they fall.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for name in ["in.ics", "old.ics"] {
        common::set_mtime(&sb.path(&format!("a/{name}")), an_hour_ago);
    }
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("b"), ["in.ics", "old.ics"]);
    // ...yet once a window is set, the copy deleted outside it is not a deletion to copy,
    // in a dry run (which reads them) as in a sync (which records them).
    sb.write_config(&config(WINDOW_2026, ""));
    sb.remove("b/old.ics");
    for args in [&["sync", "--dry-run", "-v"][..], &["sync", "-v"]] {
        let run = sb.run(args);
        run.success();
        assert!(
            run.stdout.contains("0 deleted") && run.stdout.contains("1 outside"),
            "{args:?}: {}",
            run.stdout
        );
        assert_eq!(sb.ls("a"), ["in.ics", "old.ics"], "{args:?}");
    }
}

#[test]
fn deleting_one_copy_of_an_item_outside_the_window_deletes_nothing_else() {
    let sb = setup(WINDOW_2026, "");
    sb.write("a/trip.ics", event_on("trip", "Trip", "20260601", &[]));
    sb.run(&["sync"]).success();
    let moved = event_on("trip", "Trip", "20270601", &[]);
    sb.write("b/trip.ics", &moved);
    sb.remove("a/trip.ics");
    let run = sb.run(&["sync", "-v"]);
    run.success()
        .expect_stdout("0 created, 0 updated, 0 deleted, 0 conflicts, 0 errors; 1 outside");
    assert_eq!(sb.read_string("b/trip.ics"), moved);
}

#[test]
fn a_side_whose_items_are_all_outside_the_window_is_not_taken_for_emptied() {
    let sb = setup(WINDOW_2026, "");
    sb.write("a/trip.ics", event_on("trip", "Trip", "20260601", &[]));
    sb.write("a/party.ics", event_on("party", "Party", "20260701", &[]));
    sb.run(&["sync"]).success();
    // A's only remaining item moved out of the window, the other one deleted: the deletion
    // is copied, not refused as if A's disk were gone.
    sb.write("a/trip.ics", event_on("trip", "Trip", "20270601", &[]));
    sb.remove("a/party.ics");
    sb.run(&["sync"])
        .success()
        .expect_stdout("cal: 0 created, 0 updated, 1 deleted, 0 conflicts, 0 errors; 1 outside");
    assert_eq!(sb.ls("b"), ["trip.ics"]);
    assert!(sb.read_string("b/trip.ics").contains("20260601"));
}

#[test]
fn time_passing_leaves_items_behind_without_deleting_them() {
    let sb = setup("start_date = \"-30d\"\nend_date = \"+1y\"", "");
    sb.write("a/june.ics", event_on("june", "June", "20260601", &[]));
    sync_on(&sb, "2026-06-10")
        .success()
        .expect_stdout("cal: 1 created, 0 updated, 0 deleted");
    assert_eq!(sb.ls("b"), ["june.ics"]);

    // Two months later June is out of the window: cleaning it up on B leaves A's copy.
    sb.remove("b/june.ics");
    sb.run_env(&["sync", "-v"], &[("DAVSYNC_TEST_TODAY", "2026-08-10")])
        .success()
        .expect_stdout("cal: 0 created, 0 updated, 0 deleted, 0 conflicts, 0 errors; 1 outside");
    assert_eq!(sb.ls("a"), ["june.ics"]);
    // An event entering the window as time passes is copied then, not before.
    sb.write("a/next.ics", event_on("next", "Next year", "20270901", &[]));
    sync_on(&sb, "2026-08-10").success();
    assert_eq!(sb.ls("b"), Vec::<String>::new());
    sync_on(&sb, "2026-09-10")
        .success()
        .expect_stdout("cal: 1 created, 0 updated, 0 deleted");
    assert_eq!(sb.ls("b"), ["next.ics"]);
    assert_eq!(sb.ls("a"), ["june.ics", "next.ics"]);
}

#[test]
fn a_recurring_event_from_before_the_window_with_instances_inside_it_is_in_scope() {
    let sb = setup("start_date = \"-30d\"", "");
    let weekly = event_on(
        "weekly",
        "Standup",
        "20200106",
        &["RRULE:FREQ=WEEKLY;BYDAY=MO"],
    );
    let counted = event_on(
        "counted",
        "Course",
        "20260105",
        &["RRULE:FREQ=WEEKLY;COUNT=30"],
    );
    let ended = event_on(
        "ended",
        "Old course",
        "20200106",
        &["RRULE:FREQ=WEEKLY;UNTIL=20201231"],
    );
    let moved = event_on("moved", "Moved", "20200106", &["RDATE;VALUE=DATE:20260620"]);
    sb.write("a/weekly.ics", &weekly);
    sb.write("a/counted.ics", &counted);
    sb.write("a/ended.ics", &ended);
    sb.write("a/moved.ics", &moved);
    sync_on(&sb, "2026-06-10")
        .success()
        .expect_stdout("cal: 3 created, 0 updated, 0 deleted, 0 conflicts, 0 errors; 1 outside");
    assert_eq!(sb.ls("b"), ["counted.ics", "moved.ics", "weekly.ics"]);
}

// ---------------------------------------------------------------------------------------------
// CalDAV: the window as a time-range query on the first download

/// Names of the items in the collection at `url` (PROPFIND Depth 1), sorted.
fn server_items(client: &DavClient, url: &str) -> Vec<String> {
    let resp = client.propfind(
        url,
        "1",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <d:propfind xmlns:d=\"DAV:\"><d:prop><d:getetag/></d:prop></d:propfind>",
    );
    assert_eq!(resp.status, 207, "PROPFIND {url}: {}", resp.text());
    let mut names: Vec<String> = dav_support::elements(&resp.text(), "href")
        .into_iter()
        .map(dav_support::xml_text)
        .filter(|href| !href.ends_with('/'))
        .map(|href| href.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

/// A calendar `work` on `server` holding events in and out of 2026, with recurring ones; a
/// vdir `{root}/cals` paired with it (`collections = "from b"`) through a recording proxy,
/// the server storage windowed to 2026. Returns the sandbox, the proxy and the calendar URL.
fn windowed_server(server: &dyn DavServer) -> (Sandbox, FaultProxy, String) {
    let client = server.client();
    let url = format!("{}work/", server.calendar_home_url());
    let made = client.mkcalendar(&url);
    assert!(made.is_success(), "MKCALENDAR {url}: {}", made.text());
    let items = [
        ("in.ics", event_on("in", "In the window", "20260601", &[])),
        ("old.ics", event_on("old", "Long ago", "20200601", &[])),
        (
            "future.ics",
            event_on("future", "Far ahead", "20300601", &[]),
        ),
        (
            "weekly.ics",
            event_on("weekly", "Standup", "20200106", &["RRULE:FREQ=WEEKLY"]),
        ),
        (
            "ended.ics",
            event_on(
                "ended",
                "Old course",
                "20200106",
                &["RRULE:FREQ=WEEKLY;UNTIL=20201231"],
            ),
        ),
    ];
    for (name, body) in &items {
        let put = client.put_item(&format!("{url}{name}"), body.as_bytes());
        assert!(put.is_success(), "PUT {name}: {}", put.text());
    }
    let proxy = FaultProxy::start(&server.url());
    proxy.plain_answers();
    let sb = Sandbox::new();
    sb.mkdir("cals");
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"

[storage.local]
type = "vdir"
path = "{{root}}/cals"
fileext = ".ics"

[storage.server]
type = "caldav"
url = "{}"
username = "alice"
password = {{ env = "DAVSYNC_TEST_PW" }}
{WINDOW_2026}

[pair.p]
a = "local"
b = "server"
collections = "from b"
"#,
        proxy.url()
    ));
    (sb, proxy, url)
}

fn caldav_window_downloads_only_what_is_in_it(server: &dyn DavServer) {
    let client = server.client();
    let (sb, proxy, url) = windowed_server(server);
    let run = |args: &[&str]| sb.run_env(args, &[("DAVSYNC_TEST_PW", server.password())]);
    let first = run(&["sync"]);
    first.success();
    assert_eq!(totals(&first), (2, 0, 0), "{}", first.both());
    assert_eq!(sb.ls("cals/work"), ["in.ics", "weekly.ics"]);
    let log = proxy.requests();
    assert!(
        log.iter().any(|r| r.body_text().contains("time-range")),
        "no time-range query:\n{}",
        proxy.log_text()
    );
    for summary in ["Long ago", "Far ahead", "Old course"] {
        assert!(
            !log.iter().any(|r| r.answer_text().contains(summary)),
            "{summary:?} was downloaded:\n{}",
            proxy.log_text()
        );
    }

    // Later runs delete nothing on either side, and a no-op is still one request.
    let again = run(&["sync"]);
    again.success();
    assert_eq!(totals(&again), (0, 0, 0), "{}", again.both());
    proxy.reset_log();
    run(&["sync"]).success();
    assert_eq!(proxy.count(), 1, "{}", proxy.log_text());

    // Another client moves the event out of the window: both copies stay.
    let moved = event_on("in", "Postponed", "20270301", &[]);
    let put = client.put_item(&format!("{url}in.ics"), moved.as_bytes());
    assert!(put.is_success(), "PUT in.ics: {}", put.text());
    sb.remove("cals/work/weekly.ics");
    let after = run(&["sync"]);
    after.success();
    assert_eq!(totals(&after), (0, 0, 1), "{}", after.both());
    assert!(sb.read_string("cals/work/in.ics").contains("In the window"));
    assert_eq!(
        server_items(&client, &url),
        ["ended.ics", "future.ics", "in.ics", "old.ics"],
        "only the standup deleted on the vdir went"
    );
}

/// A server event entering a relative window as time passes is downloaded that day, although
/// the collection did not change: the remembered sync state is dropped when the window moves.
fn caldav_relative_window_lets_in_what_time_brings(server: &dyn DavServer) {
    let client = server.client();
    let url = format!("{}work/", server.calendar_home_url());
    let made = client.mkcalendar(&url);
    assert!(made.is_success(), "MKCALENDAR {url}: {}", made.text());
    let later = event_on("later", "Next autumn", "20270901", &[]);
    let put = client.put_item(&format!("{url}later.ics"), later.as_bytes());
    assert!(put.is_success(), "PUT later.ics: {}", put.text());
    let proxy = FaultProxy::start(&server.url());
    proxy.plain_answers();
    let sb = Sandbox::new();
    sb.mkdir("cals");
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"

[storage.local]
type = "vdir"
path = "{{root}}/cals"
fileext = ".ics"
end_date = "+1y"

[storage.server]
type = "caldav"
url = "{}"
username = "alice"
password = {{ env = "DAVSYNC_TEST_PW" }}

[pair.p]
a = "local"
b = "server"
collections = ["work"]
"#,
        proxy.url()
    ));
    let run_on = |day: &str| {
        sb.run_env(
            &["sync"],
            &[
                ("DAVSYNC_TEST_PW", server.password()),
                ("DAVSYNC_TEST_TODAY", day),
            ],
        )
    };
    run_on("2026-08-10").success();
    assert!(sb.ls("cals/work").is_empty());
    proxy.reset_log();
    run_on("2026-08-10").success();
    assert_eq!(proxy.count(), 1, "{}", proxy.log_text());
    assert!(sb.ls("cals/work").is_empty());
    let run = run_on("2026-09-10");
    run.success();
    assert_eq!(totals(&run), (1, 0, 0), "{}", run.both());
    assert!(
        sb.read_string("cals/work/later.ics")
            .contains("SUMMARY:Next autumn")
    );
}

mod radicale {
    use super::*;

    #[test]
    fn caldav_window_downloads_only_what_is_in_it() {
        super::caldav_window_downloads_only_what_is_in_it(&Radicale::start());
    }

    #[test]
    fn caldav_relative_window_lets_in_what_time_brings() {
        super::caldav_relative_window_lets_in_what_time_brings(&Radicale::start());
    }
}

mod xandikos {
    use super::*;

    #[test]
    fn caldav_window_downloads_only_what_is_in_it() {
        super::caldav_window_downloads_only_what_is_in_it(&Xandikos::start());
    }

    #[test]
    fn caldav_relative_window_lets_in_what_time_brings() {
        super::caldav_relative_window_lets_in_what_time_brings(&Xandikos::start());
    }
}
