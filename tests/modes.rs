//! One-way pairs (`mode = "a-to-b"` / `"b-to-a"`) and read-only storages (`read_only = true`)
//! through the binary: the target mirrors the source in one run (its own edits overwritten,
//! items only on it deleted, the source's deletions propagated, no conflicts), `--dry-run`
//! names each deletion and writes nothing, and a read-only storage is never written: a vdir's
//! files, mtimes and listing stay as they were, and a CalDAV server (Radicale) is sent no write
//! request (its request log and the fault proxy's record show none).

mod common;
mod dav_support;

use std::collections::BTreeMap;

use common::{FileState, Sandbox, event, mtime, set_mtime, vdir_pair_config};
use dav_support::{DavServer, FaultProxy, Radicale};

/// The usual vdir pair `cal` (`laptop` at `{root}/a`, `backup` at `{root}/b`) with
/// `storage_extra` appended to the storage table of `read_only_side` (`"a"`/`"b"`, or `""` for
/// neither) and `pair_extra` to the pair table.
fn sandbox(read_only_side: &str, storage_extra: &str, pair_extra: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.mkdir("a");
    sb.mkdir("b");
    let mut config = vdir_pair_config(".ics", pair_extra);
    if !read_only_side.is_empty() {
        let path = format!("path = \"{{root}}/{read_only_side}\"\n");
        config = config.replacen(&path, &format!("{path}{storage_extra}\n"), 1);
    }
    sb.write_config(&config);
    sb
}

/// The vdir at `{root}/dir` as a test compares it: every file's content, mtime and inode, the
/// listing, and the directory's own mtime (a temporary file made and removed changes it).
fn snapshot(sb: &Sandbox, dir: &str) -> (BTreeMap<String, FileState>, std::time::SystemTime) {
    (sb.state(dir), mtime(&sb.path(dir)))
}

/// The summary line of pair `cal` (without a collection name).
fn summary(run: &common::Run) -> &str {
    run.stdout
        .lines()
        .find(|l| l.starts_with("cal: ") && l.contains(" created, "))
        .unwrap_or_else(|| panic!("no summary line in {:?}", run.stdout))
}

/// Side `source` and side `target` of a one-way pair have synced `keep`, `edited`, `gone` and
/// `differs` (the last created differently on both sides before the first sync, so the source's
/// version wins at once); then the target edits `edited`, creates `mine`, deletes `keep`, and
/// the source deletes `gone` and creates `fresh`. One run makes the target a copy of the
/// source, with no conflict, and a second run writes nothing.
fn mirrors_in_one_run(mode: &str, source: &str, target: &str) {
    let sb = sandbox("", "", &format!("mode = \"{mode}\""));
    for uid in ["keep", "edited", "gone"] {
        sb.write(&format!("{source}/{uid}.ics"), event(uid, uid));
    }
    sb.write(
        &format!("{source}/differs.ics"),
        event("differs", "source's"),
    );
    sb.write(
        &format!("{target}/differs.ics"),
        event("differs", "target's"),
    );
    // Old enough for the vdir to vouch for them by version tag: the source's unchanged items
    // are then not read while listing, and an overwrite must read them itself.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for name in sb.ls(source) {
        set_mtime(&sb.path(&format!("{source}/{name}")), an_hour_ago);
    }
    let first = sb.run(&["sync"]);
    first.success();
    assert_eq!(
        summary(&first),
        format!(
            "cal: 3 created, 1 updated, 0 deleted, 0 conflicts, 0 errors; {target} mirrors \
             {source}: 1 own change on {target} overwritten, 0 items on {target} that {source} \
             does not have deleted"
        )
    );
    assert_eq!(
        sb.read_string(&format!("{target}/differs.ics")),
        event("differs", "source's")
    );

    sb.write(
        &format!("{target}/edited.ics"),
        event("edited", "target's edit"),
    );
    sb.write(
        &format!("{target}/mine.ics"),
        event("mine", "only on the target"),
    );
    sb.remove(&format!("{target}/keep.ics"));
    sb.remove(&format!("{source}/gone.ics"));
    sb.write(&format!("{source}/fresh.ics"), event("fresh", "fresh"));
    let before = snapshot(&sb, source);

    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(
        summary(&run),
        format!(
            "cal: 2 created, 1 updated, 2 deleted, 0 conflicts, 0 errors; {target} mirrors \
             {source}: 2 own changes on {target} overwritten, 1 item on {target} that {source} \
             does not have deleted"
        )
    );
    assert_eq!(run.stderr, "", "no conflict, no error");
    // The target holds exactly the source's items, byte for byte.
    let source_items: Vec<String> = sb.ls(source);
    assert_eq!(
        source_items,
        ["differs.ics", "edited.ics", "fresh.ics", "keep.ics"]
    );
    assert_eq!(sb.ls(target), source_items);
    for name in &source_items {
        assert_eq!(
            sb.read(&format!("{target}/{name}")),
            sb.read(&format!("{source}/{name}")),
            "{name}"
        );
    }
    assert_eq!(snapshot(&sb, source), before, "the source is never written");

    let target_state = snapshot(&sb, target);
    let again = sb.run(&["sync"]);
    again.success();
    assert_eq!(
        again.stdout, "cal: in sync\n",
        "a run that undid nothing says nothing of mirroring"
    );
    assert_eq!(
        snapshot(&sb, target),
        target_state,
        "the second run writes nothing"
    );
    assert_eq!(snapshot(&sb, source), before);
}

#[test]
fn a_to_b_mirrors_a_in_one_run() {
    mirrors_in_one_run("a-to-b", "a", "b");
}

#[test]
fn b_to_a_mirrors_b_in_one_run() {
    mirrors_in_one_run("b-to-a", "b", "a");
}

#[test]
fn two_way_copies_both_ways_and_reports_conflicts() {
    let sb = sandbox("", "", "mode = \"two-way\"");
    sb.write("a/x.ics", event("x", "x"));
    sb.write("a/y.ics", event("y", "y"));
    sb.run(&["sync"]).success();
    sb.write("b/x.ics", event("x", "edited on b"));
    sb.write("b/mine.ics", event("mine", "only on b"));
    sb.write("a/y.ics", event("y", "edited on a"));
    sb.write("b/y.ics", event("y", "edited on b"));
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert_eq!(
        summary(&run),
        "cal: 1 created, 1 updated, 0 deleted, 1 conflicts, 0 errors"
    );
    assert_eq!(sb.read_string("a/x.ics"), event("x", "edited on b"));
    assert_eq!(sb.read_string("a/mine.ics"), event("mine", "only on b"));
}

#[test]
fn dry_run_of_a_one_way_pair_names_each_deletion_and_writes_nothing() {
    let sb = sandbox("", "", "mode = \"a-to-b\"");
    sb.write("a/keep.ics", event("keep", "keep"));
    sb.write("a/edited.ics", event("edited", "edited"));
    sb.write("a/gone.ics", event("gone", "gone"));
    sb.run(&["sync"]).success();
    sb.write("b/edited.ics", event("edited", "b's edit"));
    sb.write("b/mine.ics", event("mine", "only on b"));
    sb.remove("a/gone.ics");
    let (a, b) = (snapshot(&sb, "a"), snapshot(&sb, "b"));

    let run = sb.run(&["sync", "--dry-run"]);
    run.success();
    assert_eq!(
        run.stdout,
        "cal: update edited: a → b (changed on b; b mirrors a)\n\
         cal: delete gone: on b (deleted on a)\n\
         cal: delete mine: on b (only on b; b mirrors a)\n\
         cal: would be: 0 created, 1 updated, 2 deleted, 0 conflicts, 0 errors; b mirrors a: \
         1 own change on b overwritten, 1 item on b that a does not have deleted\n"
    );
    assert_eq!((snapshot(&sb, "a"), snapshot(&sb, "b")), (a, b));
}

#[test]
fn collection_properties_are_copied_from_the_source_only() {
    let sb = sandbox(
        "",
        "",
        "mode = \"b-to-a\"\nmetadata = [\"displayname\", \"color\"]",
    );
    sb.write("a/x.ics", event("x", "x"));
    sb.write("b/x.ics", event("x", "x"));
    sb.write("a/displayname", "Mine");
    sb.write("b/displayname", "Work");
    sb.write("a/color", "#ff0000");
    let b = snapshot(&sb, "b");
    sb.run(&["sync"]).success();
    assert_eq!(sb.read_string("a/displayname"), "Work");
    assert!(
        !sb.exists("a/color"),
        "a property the source lacks is removed"
    );
    assert_eq!(snapshot(&sb, "b"), b, "the source is never written");
}

#[test]
fn an_item_only_on_the_target_is_kept_while_the_source_has_an_unreadable_item() {
    let sb = sandbox("", "", "mode = \"a-to-b\"");
    sb.write("a/ok.ics", event("ok", "readable"));
    // Cut short: it may well be the source's copy of `mine`, so `mine` must not be deleted.
    sb.write(
        "a/broken.ics",
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:mine\r\n",
    );
    sb.write("b/mine.ics", event("mine", "on b"));
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("[TMP]/a/broken.ics")
            && run.stderr.contains(
                "skip mine: not deleted on b: an item could not be read on a and may be it: \
                 broken.ics"
            ),
        "{}",
        run.both()
    );
    assert_eq!(sb.ls("b"), ["mine.ics", "ok.ics"]);
    // Once the source is readable again, b mirrors it.
    sb.remove("a/broken.ics");
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("b"), ["ok.ics"]);
}

#[test]
fn an_empty_source_is_refused_on_a_first_sync() {
    let sb = sandbox("", "", "mode = \"a-to-b\"");
    sb.write("b/mine.ics", event("mine", "only on b"));
    let b = snapshot(&sb, "b");
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert_eq!(
        run.stderr,
        "error: cal: not synced: side a lists no items; side b mirrors it, so its 1 items would \
         be deleted; run with --force-delete if side a really is empty\n\
         davsync: some items or collections were left unsynced\n"
    );
    assert_eq!(snapshot(&sb, "b"), b);
    sb.run(&["sync", "--force-delete", "cal"]).success();
    assert!(sb.ls("b").is_empty());
}

#[test]
fn a_read_only_vdir_is_never_written() {
    // No mode: a read-only side makes the pair one-way from it.
    let sb = sandbox("a", "read_only = true", "");
    sb.write("a/x.ics", event("x", "x"));
    sb.write("a/y.ics", event("y", "y"));
    let a = snapshot(&sb, "a");
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("b"), ["x.ics", "y.ics"]);
    // Everything b does is undone, nothing reaches a.
    sb.write("b/x.ics", event("x", "edited on b"));
    sb.write("b/new.ics", event("new", "new on b"));
    sb.remove("b/y.ics");
    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(
        summary(&run),
        "cal: 1 created, 1 updated, 1 deleted, 0 conflicts, 0 errors; b mirrors a: 2 own changes \
         on b overwritten, 1 item on b that a does not have deleted"
    );
    assert_eq!(snapshot(&sb, "a"), a);
    assert_eq!(sb.read("b/x.ics"), sb.read("a/x.ics"));
    assert_eq!(sb.ls("b"), ["x.ics", "y.ics"]);
}

#[test]
fn a_missing_read_only_vdir_is_not_created() {
    let sb = sandbox("a", "read_only = true", "");
    std::fs::remove_dir(sb.path("a")).unwrap();
    sb.write("b/x.ics", event("x", "x"));
    let b = snapshot(&sb, "b");
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(!sb.exists("a"), "{}", run.both());
    assert_eq!(snapshot(&sb, "b"), b);
}

#[test]
fn two_way_with_a_read_only_side_is_a_config_error_naming_the_mode_that_fits() {
    let sb = sandbox("b", "read_only = true", "mode = \"two-way\"");
    let run = sb.run(&["sync"]);
    run.expect_code(2);
    assert_eq!(
        run.stderr,
        "davsync: [TMP]/config.toml:17: pair.cal.mode: mode = \"two-way\" would write into \
         storage \"backup\", which is read_only; use mode = \"b-to-a\" (or leave mode out)\n"
    );
    assert!(sb.ls("a").is_empty() && sb.ls("b").is_empty());
}

// ---------------------------------------------------------------------------------------------
// A read-only CalDAV storage

/// Methods that change something on a DAV server.
const WRITES: [&str; 5] = ["PUT", "DELETE", "MKCOL", "MKCALENDAR", "PROPPATCH"];

#[test]
fn a_read_only_caldav_storage_is_never_written() {
    let server = Radicale::start();
    let proxy = FaultProxy::start(&server.url());
    let client = server.client();
    let home = server.calendar_home_url();
    client.mkcalendar(&format!("{home}work/"));
    client.put_item(&format!("{home}work/x.ics"), event("x", "x").as_bytes());
    client.put_item(&format!("{home}work/y.ics"), event("y", "y").as_bytes());
    let logged_before = server.logged_requests().len();

    let sb = Sandbox::new();
    sb.mkdir("cals/work");
    // A local-only collection: the read-only server must not get it.
    sb.mkdir("cals/extra");
    sb.write("cals/extra/e.ics", event("e", "local only"));
    // Created differently on both sides before the first sync: the server's version wins.
    sb.write("cals/work/x.ics", event("x", "local version"));
    sb.write("cals/work/mine.ics", event("mine", "only local"));
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
read_only = true

[pair.p]
a = "local"
b = "server"
collections = "all"
metadata = ["displayname"]
"#,
        proxy.url()
    ));
    let run = |args: &[&str]| sb.run_env(args, &[("DAVSYNC_TEST_PW", server.password())]);

    let first = run(&["sync"]);
    first.success();
    assert!(
        first.stderr.contains("note: p/extra: left alone"),
        "{}",
        first.both()
    );
    let items: Vec<String> = sb
        .ls("cals/work")
        .into_iter()
        .filter(|name| name.ends_with(".ics"))
        .collect();
    assert_eq!(items, ["x.ics", "y.ics"]);
    // (Radicale re-serializes what it stores: compare what the user sees.)
    let local_x = sb.read_string("cals/work/x.ics");
    assert!(local_x.contains("SUMMARY:x\r\n"), "{local_x}");

    // Local edits are undone again; the server hears nothing but reads.
    sb.write("cals/work/y.ics", event("y", "local edit"));
    sb.write("cals/work/new.ics", event("new", "new locally"));
    run(&["sync"]).success();
    let local_y = sb.read_string("cals/work/y.ics");
    assert!(local_y.contains("SUMMARY:y\r\n"), "{local_y}");
    assert!(!sb.exists("cals/work/new.ics"));

    let writes: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|r| WRITES.contains(&r.method.as_str()))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "{}", proxy.log_text());
    let logged: Vec<(String, String)> = server.logged_requests()[logged_before..]
        .iter()
        .filter(|(method, _)| WRITES.contains(&method.as_str()))
        .cloned()
        .collect();
    assert_eq!(logged, Vec::<(String, String)>::new());
    assert!(
        !proxy.requests().is_empty(),
        "the sync went through the proxy"
    );
}

// ---------------------------------------------------------------------------------------------
// The executor's own guard

/// The config rules make a two-way pair with a read-only side impossible; should such options
/// reach the engine anyway, the executor refuses every write to the read-only side and reports
/// it, item by item (and property by property).
#[test]
fn the_executor_refuses_writes_to_a_read_only_side_the_config_would_have_rejected() {
    use davsync::config::{CollectionsSpec, MetadataKey, SyncMode};
    use davsync::status::StatusDb;
    use davsync::storage::vdir::VdirStorage;
    use davsync::sync::{Sides, SyncOptions, pair_collections, sync_collection};

    let sb = Sandbox::new();
    sb.write("a/new.ics", event("new", "new on a"));
    sb.write("b/old.ics", event("old", "only on b"));
    sb.write("a/displayname", "Work");
    let b = snapshot(&sb, "b");
    let a_storage = VdirStorage::new(sb.path("a"), ".ics".into());
    let b_storage = VdirStorage::new(sb.path("b"), ".ics".into());
    let sides = Sides {
        a: &a_storage,
        b: &b_storage,
    };
    let status = StatusDb::open(&sb.path("status.db")).unwrap();
    let pairs = pair_collections(&CollectionsSpec::Root, &sides).unwrap();
    let options = SyncOptions {
        mode: SyncMode::TwoWay,
        read_only: [true, true],
        metadata: vec![MetadataKey::DisplayName],
        ..SyncOptions::default()
    };
    let report = sync_collection(&sides, &pairs[0], &status, &options, &mut |_| {}).unwrap();
    let mut messages: Vec<String> = report
        .errors
        .iter()
        .map(|e| sb.normalize(&e.message))
        .collect();
    messages.sort();
    assert_eq!(
        messages,
        [
            "[TMP]/a/new.ics: refused to write to b: b is read-only (read_only = true)",
            "[TMP]/b/old.ics: refused to write to a: a is read-only (read_only = true)",
            "displayname: refused to write to b: b is read-only (read_only = true)",
        ]
    );
    assert_eq!((report.created, report.updated, report.deleted), (0, 0, 0));
    assert_eq!(sb.ls("a"), ["displayname", "new.ics"]);
    assert_eq!(snapshot(&sb, "b"), b);

    // Synced, then deleted on a: the deletion is refused on a read-only b.
    let writable = SyncOptions::default();
    sync_collection(&sides, &pairs[0], &status, &writable, &mut |_| {}).unwrap();
    sb.remove("a/new.ics");
    let b = snapshot(&sb, "b");
    let options = SyncOptions {
        read_only: [false, true],
        ..SyncOptions::default()
    };
    let report = sync_collection(&sides, &pairs[0], &status, &options, &mut |_| {}).unwrap();
    let messages: Vec<String> = report
        .errors
        .iter()
        .map(|e| sb.normalize(&e.message))
        .collect();
    assert_eq!(
        messages,
        ["[TMP]/b/new.ics: refused to write to b: b is read-only (read_only = true)"]
    );
    assert_eq!(snapshot(&sb, "b"), b);
}

#[test]
fn a_target_pointed_at_another_directory_is_told_it_now_mirrors_the_source() {
    let sb = sandbox("", "", "mode = \"a-to-b\"\n");
    sb.write("a/keep.ics", event("keep", "keep"));
    sb.run(&["sync"]).success();
    sb.mkdir("c");
    sb.write("c/other.ics", event("other", "other"));
    sb.write_config(
        &vdir_pair_config(".ics", "mode = \"a-to-b\"\n").replace("{root}/b", "{root}/c"),
    );

    let run = sb.run(&["sync"]);
    run.success();
    assert!(
        run.stderr.contains(
            "synced like a first sync (b mirrors a: different items overwritten, items only \
             on b deleted)"
        ),
        "{}",
        run.both()
    );
    assert_eq!(sb.ls("c"), ["keep.ics"]);
}
