//! `davsync repair` through the binary: items without a UID and UIDs held by several items, on
//! a vdir and on Radicale; `--dry-run`; and the next sync converging without duplicates.

mod common;
mod dav_support;

use std::collections::BTreeSet;

use common::{Sandbox, crlf, event, event_without_uid, totals, vdir_pair_config};
use dav_support::{DavServer, Radicale, Xandikos};

/// An event with `uid` (none when `None`), `summary` and a LAST-MODIFIED of `modified`.
fn event_modified(uid: Option<&str>, summary: &str, modified: &str) -> String {
    let uid_line = uid.map(|u| format!("UID:{u}"));
    let mut lines = vec![
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//davsync tests//EN",
        "BEGIN:VEVENT",
    ];
    lines.extend(uid_line.as_deref());
    let summary = format!("SUMMARY:{summary}");
    let modified = format!("LAST-MODIFIED:{modified}");
    lines.extend([
        "DTSTAMP:20260101T000000Z",
        "DTSTART:20260110T100000Z",
        summary.as_str(),
        modified.as_str(),
        "END:VEVENT",
        "END:VCALENDAR",
    ]);
    crlf(&lines)
}

/// The UID of an item's text (the first `UID:` line).
fn uid_of(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("UID:"))
        .map(|u| u.trim().to_owned())
}

/// The UIDs of every item file in `dir` of the sandbox, one per file (`-` for none).
fn uids(sb: &Sandbox, dir: &str) -> Vec<String> {
    sb.ls(dir)
        .iter()
        .map(|name| uid_of(&sb.read_string(&format!("{dir}/{name}"))).unwrap_or("-".into()))
        .collect()
}

/// Side a of the usual pair with an item without UID, two copies of one UID (the copy in
/// `copy.ics` is the newer one by LAST-MODIFIED although its name sorts first) and a fine item.
fn broken_vdir() -> Sandbox {
    let sb = Sandbox::with_vdir_pair("");
    sb.write("a/nouid.ics", event_without_uid("No UID"));
    sb.write(
        "a/original.ics",
        event_modified(Some("dup"), "Original", "20260101T000000Z"),
    );
    sb.write(
        "a/copy.ics",
        event_modified(Some("dup"), "Copy, edited later", "20260201T000000Z"),
    );
    sb.write("a/fine.ics", event("fine", "Fine"));
    sb
}

#[test]
fn dry_run_names_the_files_and_changes_nothing() {
    let sb = broken_vdir();
    let before = sb.state("a");
    let run = sb.run(&["repair", "laptop", "--dry-run"]);
    run.success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(
        lines[0].starts_with(
            "laptop: [TMP]/a/copy.ics: UID \"dup\" also used by [TMP]/a/original.ics, which \
             keeps it; would get UID "
        ),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with("laptop: [TMP]/a/nouid.ics: no UID; would get UID "),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines[2],
        "laptop: would be: 2 items given a new UID, 0 errors"
    );
    assert_eq!(sb.state("a"), before, "a dry run writes nothing");
}

#[test]
fn repair_gives_uids_and_the_next_sync_copies_every_item_once() {
    let sb = broken_vdir();
    let original = sb.read("a/original.ics");
    let run = sb.run(&["repair", "laptop"]);
    run.success();
    assert!(
        run.stdout
            .contains("laptop: [TMP]/a/copy.ics: UID \"dup\" also used by [TMP]/a/original.ics"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("laptop: [TMP]/a/nouid.ics: no UID; given UID "),
        "{}",
        run.stdout
    );
    run.expect_stdout("laptop: 2 items given a new UID, 0 errors");
    // A vdir changes the UID in place: same files, the older copy untouched.
    assert_eq!(
        sb.ls("a"),
        ["copy.ics", "fine.ics", "nouid.ics", "original.ics"]
    );
    assert_eq!(sb.read("a/original.ics"), original);
    let a_uids: BTreeSet<String> = uids(&sb, "a").into_iter().collect();
    assert_eq!(a_uids.len(), 4, "four distinct UIDs: {a_uids:?}");
    assert!(
        sb.read_string("a/copy.ics")
            .contains("SUMMARY:Copy, edited later")
    );
    // Nothing left to repair.
    sb.run(&["repair", "laptop"])
        .success()
        .expect_stdout("laptop: 0 items given a new UID, 0 errors");

    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(totals(&run), (4, 0, 0));
    let b_uids: BTreeSet<String> = uids(&sb, "b").into_iter().collect();
    assert_eq!(b_uids, a_uids, "every item copied once");
    assert_eq!(totals(&sb.run(&["sync"]).success().clone()), (0, 0, 0));
}

#[test]
fn repair_of_a_synced_side_converges_without_duplicates_or_conflicts() {
    let sb = Sandbox::with_vdir_pair("");
    sb.write("a/nouid.ics", event_without_uid("No UID"));
    sb.write(
        "a/original.ics",
        event_modified(Some("dup"), "Original", "20260101T000000Z"),
    );
    sb.run(&["sync"]).success();
    sb.write(
        "a/copy.ics",
        event_modified(Some("dup"), "Copy", "20260201T000000Z"),
    );
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("UID used by several items on a"),
        "{}",
        run.stderr
    );

    sb.run(&["repair", "laptop"])
        .success()
        .expect_stdout("laptop: 2 items given a new UID, 0 errors");
    let run = sb.run(&["sync"]);
    run.success();
    // The copy is new; the item that had no UID replaces its UID-less twin on b.
    assert_eq!(totals(&run), (2, 0, 1), "{}", run.stdout);
    let mut a: Vec<String> = uids(&sb, "a");
    let mut b: Vec<String> = uids(&sb, "b");
    a.sort();
    b.sort();
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
    assert!(!b.contains(&"-".to_owned()));
    assert_eq!(totals(&sb.run(&["sync"]).success().clone()), (0, 0, 0));
}

#[test]
fn both_sides_repaired_alone_agree_on_the_new_uid() {
    let sb = Sandbox::with_vdir_pair("");
    sb.write("a/nouid.ics", event_without_uid("No UID"));
    sb.run(&["sync"]).success();
    sb.run(&["repair", "laptop"]).success();
    sb.run(&["repair", "backup"]).success();
    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(totals(&run), (0, 0, 0), "{}", run.stdout);
    assert_eq!(uids(&sb, "a"), uids(&sb, "b"));
    assert_ne!(uids(&sb, "a"), ["-"]);
}

#[test]
fn a_read_only_storage_is_refused() {
    let sb = Sandbox::with_vdir_pair("");
    sb.write_config(&vdir_pair_config(".ics", "").replace(
        "path = \"{root}/a\"\n",
        "path = \"{root}/a\"\nread_only = true\n",
    ));
    sb.write("a/nouid.ics", event_without_uid("No UID"));
    let before = sb.state("a");
    let run = sb.run(&["repair", "laptop"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains(
            "davsync: storage laptop is read_only: repair writes to the storage it repairs"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(sb.state("a"), before);
}

#[test]
fn an_unknown_storage_or_collection_is_a_usage_error() {
    let sb = broken_vdir();
    let run = sb.run(&["repair", "nowhere"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains(
            "no storage named \"nowhere\" in [TMP]/config.toml (storages: backup, laptop)"
        ),
        "{}",
        run.stderr
    );
    let run = sb.run(&["repair", "laptop/none"]);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("storage laptop: no collection named \"none\""),
        "{}",
        run.stderr
    );
}

/// A sandbox with caldav storage `server` at `cal_url` and vdir storage `local` (`{root}/local`),
/// paired as `p` without `collections`.
fn server_pair(server: &dyn DavServer, cal_url: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.mkdir("local");
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"

[storage.server]
type = "caldav"
url = "{cal_url}"
username = "{user}"
password = "{password}"

[storage.local]
type = "vdir"
path = "{{root}}/local"
fileext = ".ics"

[pair.p]
a = "server"
b = "local"
"#,
        user = server.user(),
        password = server.password(),
    ));
    sb
}

#[test]
fn radicale_duplicates_get_new_uids_under_new_names() {
    let server = Radicale::start();
    let cal_url = format!("{}cal/", server.calendar_home_url());
    assert!(server.client().mkcalendar(&cal_url).is_success());
    // Radicale refuses a second item with a UID over HTTP, so the duplicate is made in its
    // storage folder, as another tool or an older server may have left it. (It skips items
    // without UID found there, so it never serves one.)
    let folder = server
        .data_dir()
        .join("collection-root")
        .join(server.user())
        .join("cal");
    let put = |name: &str, text: String| std::fs::write(folder.join(name), text).unwrap();
    put(
        "original.ics",
        event_modified(Some("dup"), "Original", "20260101T000000Z"),
    );
    put(
        "copy.ics",
        event_modified(Some("dup"), "Copy", "20260201T000000Z"),
    );
    let sb = server_pair(&server, &cal_url);
    let base = cal_url.trim_end_matches('/');
    let run = sb.run(&["repair", "server", "--dry-run"]);
    run.success();
    let prefix = format!(
        "server: {base}/copy.ics: UID \"dup\" also used by {base}/original.ics, which keeps it; "
    );
    assert!(
        run.stdout.starts_with(&format!("{prefix}would get UID ")),
        "{}",
        run.stdout
    );
    let run = sb.run(&["repair", "server"]);
    run.success();
    let line = run.stdout.lines().next().unwrap();
    assert!(line.starts_with(&format!("{prefix}given UID ")), "{line}");
    run.expect_stdout("server: 1 items given a new UID, 0 errors");
    // Radicale refuses a UID change in place (409 no-uid-conflict): the copy moved to a name
    // from its new UID.
    let uid = line
        .split("given UID ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert!(line.ends_with(&format!(", now {base}/{uid}.ics")), "{line}");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    assert_eq!(names, [format!("{uid}.ics"), "original.ics".to_owned()]);

    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(totals(&run), (2, 0, 0), "{}", run.stdout);
    let local: BTreeSet<String> = uids(&sb, "local").into_iter().collect();
    assert_eq!(local, BTreeSet::from(["dup".to_owned(), uid.to_owned()]));
    assert_eq!(totals(&sb.run(&["sync"]).success().clone()), (0, 0, 0));
}

#[test]
fn xandikos_item_without_uid_gets_one_in_place() {
    let server = Xandikos::start();
    let cal_url = server.calendar_url();
    server.client().put_item(
        &format!("{cal_url}nouid.ics"),
        event_without_uid("No UID").as_bytes(),
    );
    let sb = server_pair(&server, &cal_url);
    let run = sb.run(&["repair", "server"]);
    run.success();
    let base = cal_url.trim_end_matches('/');
    assert!(
        run.stdout
            .starts_with(&format!("server: {base}/nouid.ics: no UID; given UID ")),
        "{}",
        run.stdout
    );
    let uid = run
        .stdout
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap();
    let text = server.client().get(&format!("{cal_url}nouid.ics")).text();
    assert_eq!(uid_of(&text).as_deref(), Some(uid), "{text}");
    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(uids(&sb, "local"), [uid]);
}
