//! Scenario tests of the `davsync` binary on temporary vdirs, continued from `cli.rs`:
//! conflict resolution, collections, `discover`, `status`, config errors, exit statuses and
//! the pair lock.

mod common;

use common::{EventBuilder, Sandbox, event};

/// The usual pair `cal` of two vdirs whose paths are the collections themselves.
fn setup(extra: &str) -> Sandbox {
    Sandbox::with_vdir_pair(extra)
}

const LUNCH: &str = "lunch@example.org";
const LUNCH_FILE: &str = "lunch@example.org.ics";

// ---------------------------------------------------------------------------------------------
// Conflict resolution
// ---------------------------------------------------------------------------------------------

/// A synced item that was then changed differently on both sides; returns the two versions.
fn conflicted(sb: &Sandbox) -> (String, String) {
    sb.write("a/lunch.ics", event(LUNCH, "Lunch"));
    sb.write("a/keep.ics", event("keep@example.org", "Keep"));
    sb.run(&["sync"]).success();
    let on_a = event(LUNCH, "Lunch on A");
    let on_b = EventBuilder::new("Lunch on B").uid(LUNCH).lf().build();
    sb.write("a/lunch.ics", &on_a);
    sb.write(&format!("b/{LUNCH_FILE}"), &on_b);
    (on_a, on_b)
}

#[test]
fn conflict_a_wins() {
    let sb = setup(r#"conflict_resolution = "a wins""#);
    let (on_a, _) = conflicted(&sb);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 1 updated, 0 deleted, 0 conflicts");
    assert_eq!(sb.read("a/lunch.ics"), on_a.as_bytes());
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), on_a.as_bytes());
    let again = sb.run(&["sync"]);
    again.success();
    again.expect_stdout("cal: in sync");
}

#[test]
fn conflict_b_wins() {
    let sb = setup(r#"conflict_resolution = "b wins""#);
    let (_, on_b) = conflicted(&sb);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 1 updated, 0 deleted, 0 conflicts");
    assert_eq!(sb.read("a/lunch.ics"), on_b.as_bytes());
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), on_b.as_bytes());
    let (a, b) = (sb.state("a"), sb.state("b"));
    let again = sb.run(&["sync"]);
    again.success();
    again.expect_stdout("cal: in sync");
    assert_eq!(sb.state("a"), a);
    assert_eq!(sb.state("b"), b);
}

#[test]
fn conflict_b_wins_when_created_differently_on_both_sides() {
    let sb = setup(r#"conflict_resolution = "b wins""#);
    sb.write("a/lunch.ics", event(LUNCH, "Created on A"));
    let on_b = event(LUNCH, "Created on B");
    sb.write("b/lunch.ics", &on_b);
    sb.run(&["sync"]).success();
    assert_eq!(sb.read("a/lunch.ics"), on_b.as_bytes());
    assert_eq!(sb.read("b/lunch.ics"), on_b.as_bytes());
}

/// A merge script that saves its arguments for inspection and leaves `merged.ics` in the
/// first one.
const MERGE_SCRIPT: &str = r#"#!/bin/sh
mkdir -p "{root}/merge-args"
echo "$#" > "{root}/merge-args/argc"
cp "$1" "{root}/merge-args/a"
cp "$2" "{root}/merge-args/b"
cp "$3" "{root}/merge-args/base"
cat "{root}/merged.ics" > "$1"
"#;

#[test]
fn conflict_merged_by_a_command() {
    let sb = setup(r#"conflict_resolution = { cmd = ["sh", "{root}/merge.sh"] }"#);
    sb.write("merge.sh", sb.expand(MERGE_SCRIPT));
    let merged = event(LUNCH, "Lunch on A and B");
    sb.write("merged.ics", &merged);
    let original = event(LUNCH, "Lunch");
    let (on_a, on_b) = conflicted(&sb);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 1 updated, 0 deleted, 0 conflicts");
    assert_eq!(sb.read("a/lunch.ics"), merged.as_bytes());
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), merged.as_bytes());
    assert_eq!(sb.read_string("merge-args/argc"), "3\n");
    assert_eq!(sb.read_string("merge-args/a"), on_a);
    assert_eq!(sb.read_string("merge-args/b"), on_b);
    assert_eq!(
        sb.read_string("merge-args/base"),
        original,
        "the third argument is the last synced version"
    );
    let again = sb.run(&["sync"]);
    again.success();
    again.expect_stdout("cal: in sync");
}

#[test]
fn conflict_merge_command_gets_an_empty_base_for_items_created_on_both_sides() {
    let sb = setup(r#"conflict_resolution = { cmd = ["sh", "{root}/merge.sh"] }"#);
    sb.write("merge.sh", sb.expand(MERGE_SCRIPT));
    let merged = event(LUNCH, "Merged");
    sb.write("merged.ics", &merged);
    sb.write("a/lunch.ics", event(LUNCH, "Created on A"));
    sb.write("b/lunch.ics", event(LUNCH, "Created on B"));
    sb.run(&["sync"]).success();
    assert_eq!(sb.read_string("merge-args/base"), "");
    assert_eq!(sb.read("a/lunch.ics"), merged.as_bytes());
    assert_eq!(sb.read("b/lunch.ics"), merged.as_bytes());
}

#[test]
fn failing_merge_command_leaves_the_conflict_open() {
    let sb = setup(r#"conflict_resolution = { cmd = ["sh", "-c", "exit 1"] }"#);
    conflicted(&sb);
    let (a, b) = (sb.state("a"), sb.state("b"));
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        cal: 0 created, 0 updated, 0 deleted, 1 conflicts, 0 errors
        --- stderr
        conflict: cal: lunch@example.org: merge command: sh exited with exit status: 1; conflict left open
        davsync: some items or collections were left unsynced
        --- exit 1
        ");
    assert_eq!(sb.state("a"), a);
    assert_eq!(sb.state("b"), b);
    let status = sb.run(&["status"]);
    status.expect_code(1);
    status.expect_stdout("1 open conflicts");
    assert!(
        status.stdout.contains(&format!("  conflict: {LUNCH}: ")),
        "{}",
        status.stdout
    );
}

#[test]
fn merge_command_leaving_a_malformed_item_leaves_the_conflict_open() {
    let sb = setup(r#"conflict_resolution = { cmd = ["sh", "{root}/merge.sh"] }"#);
    sb.write("merge.sh", sb.expand(MERGE_SCRIPT));
    sb.write("merged.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
    conflicted(&sb);
    let (a, b) = (sb.state("a"), sb.state("b"));
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "merge command produced a malformed item: line 2: BEGIN:VCALENDAR is never ended"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(sb.state("a"), a);
    assert_eq!(sb.state("b"), b);
}

// ---------------------------------------------------------------------------------------------
// Collections
// ---------------------------------------------------------------------------------------------

/// The pair `cal` of two vdirs whose subdirectories are collections, paired by `collections`.
fn setup_collections(collections: &str) -> Sandbox {
    Sandbox::with_vdir_pair(&format!("collections = {collections}"))
}

#[test]
fn collections_from_a_creates_missing_collections_on_b() {
    let sb = setup_collections(r#""from a""#);
    let work = event("work@example.org", "Standup");
    sb.write("a/work/standup.ics", &work);
    sb.write("a/work/displayname", "Work");
    sb.write("a/work/color", "#ff0000");
    sb.mkdir("a/empty");
    sb.mkdir("b/only-on-b");
    sb.write("b/only-on-b/x.ics", event("x@example.org", "X"));
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        cal/empty: 0 created, 0 updated, 0 deleted, 0 conflicts, 0 errors; collection created on b
        cal/work: 1 created, 0 updated, 0 deleted, 0 conflicts, 0 errors; collection created on b
        --- exit 0
        ");
    assert_eq!(sb.ls("b"), ["empty", "only-on-b", "work"]);
    assert_eq!(
        sb.ls("b/work"),
        ["work@example.org.ics"],
        "metadata files are not synced"
    );
    assert_eq!(sb.read("b/work/work@example.org.ics"), work.as_bytes());
    assert_eq!(
        sb.ls("a"),
        ["empty", "work"],
        "b's own collection is not synced"
    );
    assert_eq!(sb.ls("a/work"), ["color", "displayname", "standup.ics"]);
    assert_eq!(sb.read_string("a/work/displayname"), "Work");
}

#[test]
fn collections_from_b() {
    let sb = setup_collections(r#""from b""#);
    sb.write(
        "b/home/dentist.ics",
        event("dentist@example.org", "Dentist"),
    );
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("a"), ["home", "work"]);
    assert_eq!(sb.ls("a/home"), ["dentist@example.org.ics"]);
    assert_eq!(sb.ls("b"), ["home"]);
}

#[test]
fn collections_all_is_the_union() {
    let sb = setup_collections(r#""all""#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.write(
        "b/home/dentist.ics",
        event("dentist@example.org", "Dentist"),
    );
    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(sb.ls("a"), ["home", "work"]);
    assert_eq!(sb.ls("b"), ["home", "work"]);
    assert_eq!(sb.ls("a/home"), ["dentist@example.org.ics"]);
    assert_eq!(sb.ls("b/work"), ["work@example.org.ics"]);
}

#[test]
fn collections_explicit_list_maps_different_names() {
    let sb = setup_collections(r#"["work", { name = "private", a = "personal", b = "home" }]"#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.write(
        "a/personal/dentist.ics",
        event("dentist@example.org", "Dentist"),
    );
    sb.write("a/ignored/x.ics", event("x@example.org", "Not listed"));
    sb.write("b/home/gym.ics", event("gym@example.org", "Gym"));
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        cal/work: 1 created, 0 updated, 0 deleted, 0 conflicts, 0 errors; collection created on b
        cal/private: 2 created, 0 updated, 0 deleted, 0 conflicts, 0 errors
        --- exit 0
        ");
    assert_eq!(sb.ls("b"), ["home", "work"]);
    assert_eq!(sb.ls("b/home"), ["dentist@example.org.ics", "gym.ics"]);
    assert_eq!(sb.ls("a/personal"), ["dentist.ics", "gym@example.org.ics"]);
    assert_eq!(sb.ls("a"), ["ignored", "personal", "work"]);
}

#[test]
fn metadata_files_of_a_collection_are_left_alone() {
    let sb = setup_collections(r#""from a""#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.write("a/work/displayname", "Work (laptop)");
    sb.write("b/work/displayname", "Work (backup)");
    sb.write("b/work/color", "#00ff00");
    sb.run(&["sync"]).success();
    sb.remove("a/work/displayname");
    sb.run(&["sync"]).success();
    assert_eq!(sb.read_string("b/work/displayname"), "Work (backup)");
    assert_eq!(sb.read_string("b/work/color"), "#00ff00");
    assert_eq!(sb.ls("a/work"), ["standup.ics"]);
}

#[test]
fn emptied_collection_is_refused_by_name() {
    let sb = setup_collections(r#""from a""#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.write(
        "a/home/dentist.ics",
        event("dentist@example.org", "Dentist"),
    );
    sb.run(&["sync"]).success();
    sb.remove("a/work/standup.ics");
    sb.write("a/home/gym.ics", event("gym@example.org", "Gym"));
    let b = sb.state("b/work");
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("error: cal/work: not synced: side a lists no items")
            && run.stderr.contains("--force-delete"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.state("b/work"), b);
    assert_eq!(
        sb.ls("b/home"),
        ["dentist@example.org.ics", "gym@example.org.ics"],
        "other collections sync"
    );
    let run = sb.run(&["sync", "--force-delete", "cal"]);
    run.success();
    assert!(sb.ls("b/work").is_empty());
}

/// A timer's journal: a collection where nothing happened prints nothing, a pair where nothing
/// happened prints one line; `-v` shows every collection, `-q` nothing.
#[test]
fn unchanged_collections_are_quiet_unless_verbose() {
    let sb = setup_collections(r#""from a""#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.write("a/home/gym.ics", event("gym@example.org", "Gym"));
    sb.run(&["sync"]).success();
    insta::assert_snapshot!(sb.run(&["sync"]).both(), @r"
    cal: all 2 collections in sync
    --- exit 0
    ");
    insta::assert_snapshot!(sb.run(&["sync", "-v"]).both(), @r"
    cal/home: 0 created, 0 updated, 0 deleted, 0 conflicts, 0 errors
    cal/work: 0 created, 0 updated, 0 deleted, 0 conflicts, 0 errors
    --- exit 0
    ");
    insta::assert_snapshot!(sb.run(&["sync", "-q"]).both(), @"--- exit 0");
    // One collection changed: only its line.
    sb.write("a/work/review.ics", event("review@example.org", "Review"));
    insta::assert_snapshot!(sb.run(&["sync"]).both(), @r"
    cal/work: 1 created, 0 updated, 0 deleted, 0 conflicts, 0 errors
    --- exit 0
    ");
    // One collection named: the line names it.
    insta::assert_snapshot!(sb.run(&["sync", "cal/home"]).both(), @r"
    cal/home: in sync
    --- exit 0
    ");
}

/// A collection deleted on one side while the other still has it: refused (exit 1), not
/// created again, nothing deleted, and `status` keeps it until it is settled. Deleting it on
/// the other side as well settles it: reported once, then dropped from `status`.
#[test]
fn vanished_collection_directory_is_refused_until_settled() {
    let sb = setup_collections(r#""from a""#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.write("a/work/review.ics", event("review@example.org", "Review"));
    sb.write("a/home/gym.ics", event("gym@example.org", "Gym"));
    sb.run(&["sync"]).success();
    // The whole collection directory on b is gone (deleted, a wrong path, an unmounted disk).
    std::fs::remove_dir_all(sb.path("b/work")).expect("remove b/work");
    let a = sb.state("a");
    let runs: Vec<String> = (0..2)
        .map(|_| {
            let run = sb.run(&["sync"]).both();
            assert_eq!(sb.state("a"), a, "nothing deleted on a");
            assert_eq!(sb.ls("b"), ["home"], "not created again on b");
            run
        })
        .collect();
    assert_eq!(runs[0], runs[1], "the same every run until settled");
    insta::assert_snapshot!(runs[0], @r"
    --- stderr
    error: cal/work: not synced: the collection is gone from b (was [TMP]/b/work) but a still has it; davsync neither deletes a collection nor brings back a deleted one: delete it on a as well to stop syncing it, or run with --force-delete to create it again on b and delete its items on a
    davsync: some items or collections were left unsynced
    --- exit 1
    ");
    assert_eq!(sb.status_items("cal/work"), 2, "status still knows it");

    // Deleted on a as well: settled, said once, and gone from `status`.
    std::fs::remove_dir_all(sb.path("a/work")).expect("remove a/work");
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
    cal/home: in sync
    --- stderr
    note: cal/work: gone from a (was [TMP]/a/work), 2 items synced before; no longer synced, its status is forgotten, what is left on either side is left alone
    --- exit 0
    ");
    let status = sb.run(&["status"]);
    assert!(!status.stdout.contains("cal/work"), "{}", status.stdout);
    let again = sb.run(&["sync"]);
    insta::assert_snapshot!(again.both(), @r"
    cal/home: in sync
    --- exit 0
    ");
}

/// Pointing a side's `path` at another directory is no deletion: the collections it lacks
/// are created there and synced like a first sync, nothing refused.
#[test]
fn collections_missing_after_the_path_moved_are_created_not_refused() {
    let sb = setup_collections(r#""from a""#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.run(&["sync"]).success();
    sb.mkdir("c");
    sb.write_config(
        &common::vdir_pair_config(".ics", r#"collections = "from a""#)
            .replace("{root}/b", "{root}/c"),
    );
    let run = sb.run(&["sync"]);
    run.success();
    assert!(
        run.stderr.contains("synced like a first sync"),
        "{}",
        run.both()
    );
    assert_eq!(sb.ls("c/work"), ["work@example.org.ics"]);
}

/// In a pair syncing the collections of both sides, `--force-delete` is the way through for a
/// collection deleted on one side: it is created again there and emptied on the other.
#[test]
fn vanished_collection_with_force_delete_empties_the_other_side() {
    let sb = setup_collections(r#""all""#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.write("a/home/gym.ics", event("gym@example.org", "Gym"));
    sb.run(&["sync"]).success();
    std::fs::remove_dir_all(sb.path("a/work")).expect("remove a/work");
    sb.run(&["sync"]).expect_code(1);
    let run = sb.run(&["sync", "--force-delete", "cal/work"]);
    insta::assert_snapshot!(run.both(), @r"
    cal/work: 0 created, 0 updated, 1 deleted, 0 conflicts, 0 errors; collection created on a
    --- exit 0
    ");
    assert!(sb.ls("a/work").is_empty() && sb.ls("b/work").is_empty());
    sb.run(&["sync"])
        .success()
        .expect_stdout("cal: all 2 collections in sync\n");
}

/// The user points `backup` at another directory holding some of the items, one of them
/// different: the status is about the old directory, so the run is a first sync. Nothing is
/// deleted on either side, the identical item is adopted, the different one is a conflict.
#[test]
fn path_pointed_elsewhere_is_synced_like_a_first_sync() {
    let sb = setup("");
    sb.write("a/same.ics", event("same@example.org", "Same"));
    sb.write("a/differs.ics", event("differs@example.org", "Differs"));
    sb.write("a/only-a.ics", event("only-a@example.org", "Only on a"));
    sb.run(&["sync"]).success();
    sb.mkdir("c");
    std::fs::copy(sb.path("b/same@example.org.ics"), sb.path("c/same.ics")).expect("copy");
    sb.write(
        "c/differs.ics",
        event("differs@example.org", "Differs, in c"),
    );
    sb.write("c/only-c.ics", event("only-c@example.org", "Only in c"));
    sb.write_config(&common::vdir_pair_config(".ics", "").replace("{root}/b", "{root}/c"));
    let a = sb.state("a");

    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("note: cal: b is now ")
            && run.stderr.contains("synced like a first sync"),
        "{}",
        run.both()
    );
    assert!(
        run.stderr
            .contains("conflict: cal: differs@example.org: created differently on both sides"),
        "{}",
        run.both()
    );
    run.expect_stdout("cal: 2 created, 0 updated, 0 deleted, 1 conflicts");
    for name in ["same.ics", "differs.ics", "only-a.ics"] {
        assert_eq!(sb.state("a").get(name), a.get(name), "{name} on a");
    }
    assert!(sb.read_string("c/differs.ics").contains("Differs, in c"));
    assert!(sb.exists("c/same.ics") && sb.exists("c/only-c.ics"));
    assert!(sb.exists("c/only-a@example.org.ics"));
    assert!(sb.exists("a/only-c@example.org.ics"));
    assert_eq!(sb.ls("b").len(), 3, "the old directory is left alone");

    // Once the two differing versions are made equal, the pair is in sync.
    sb.write("c/differs.ics", event("differs@example.org", "Differs"));
    let again = sb.run(&["sync"]);
    again.success();
    again.expect_stdout("cal: in sync");
    assert!(!again.stderr.contains("first sync"), "{}", again.both());
}

#[test]
fn sync_of_one_collection_only() {
    let sb = setup_collections(r#""from a""#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.write(
        "a/home/dentist.ics",
        event("dentist@example.org", "Dentist"),
    );
    let run = sb.run(&["sync", "cal/work"]);
    insta::assert_snapshot!(run.both(), @r"
        cal/work: 1 created, 0 updated, 0 deleted, 0 conflicts, 0 errors; collection created on b
        --- exit 0
        ");
    assert_eq!(sb.ls("b"), ["work"]);

    let run = sb.run(&["sync", "cal/nope"]);
    insta::assert_snapshot!(run.both(), @r#"
        --- stderr
        davsync: cal: no collection named "nope" on either side
        --- exit 2
        "#);
    assert_eq!(sb.ls("b"), ["work"]);
}

#[test]
fn contacts_sync_too() {
    let sb = Sandbox::new();
    sb.mkdir("a/friends");
    sb.mkdir("b");
    sb.write_config(
        r#"status_path = "{root}/status"
[storage.phone]
type = "vdir"
path = "{root}/a"
fileext = ".vcf"
[storage.desktop]
type = "vdir"
path = "{root}/b"
fileext = ".vcf"
[pair.contacts]
a = "phone"
b = "desktop"
collections = "from a"
"#,
    );
    let ana = common::vcard("ana@example.org", "Ana Lima");
    sb.write("a/friends/ana.vcf", &ana);
    sb.write("a/friends/not-a-card.ics", event(LUNCH, "Wrong extension"));
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("b/friends"), ["ana@example.org.vcf"]);
    assert_eq!(sb.read("b/friends/ana@example.org.vcf"), ana.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// Other commands, config errors, exit statuses, the lock
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_pair_is_a_usage_error() {
    let sb = setup("");
    let run = sb.run(&["sync", "nope"]);
    insta::assert_snapshot!(run.both(), @r#"
        --- stderr
        davsync: no pair named "nope" in [TMP]/config.toml (pairs: cal)
        --- exit 2
        "#);
    assert!(!sb.exists("status"), "nothing was started");
    for command in ["status", "discover"] {
        let run = sb.run(&[command, "nope"]);
        run.expect_code(2);
        assert!(
            run.stderr.contains(r#"no pair named "nope""#),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn discover_shows_how_collections_pair_up() {
    let sb = setup_collections(r#"["work", { name = "private", a = "personal", b = "home" }]"#);
    sb.mkdir("a/work");
    sb.mkdir("b/work");
    sb.mkdir("a/personal");
    let run = sb.run(&["discover"]);
    insta::assert_snapshot!(run.both(), @r"
        pair cal: a = laptop, b = backup
          cal/work
            a: [TMP]/a/work
            b: [TMP]/b/work
          cal/private
            a: [TMP]/a/personal
            b: home (missing, created by the next sync)
        --- exit 0
        ");
    assert!(!sb.exists("b/home"), "discover creates nothing");
    assert!(!sb.exists("status"));
}

#[test]
fn status_shows_counts_time_and_problems() {
    let sb = setup_collections(r#""from a""#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.write("a/work/broken.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
    sb.write(
        "a/home/dentist.ics",
        event("dentist@example.org", "Dentist"),
    );
    sb.write(
        "b/home/dentist.ics",
        event("dentist@example.org", "Dentist, other time"),
    );
    let never = sb.run(&["status"]);
    insta::assert_snapshot!(never.both(), @r"
        cal: never synced
        --- exit 0
        ");
    sb.run(&["sync"]).expect_code(1);
    let run = sb.run(&["status"]);
    insta::assert_snapshot!(common::redact_timestamps(&run.both()), @r"
        cal/home: 0 items, last clean sync never, 1 open conflicts, 0 failed items
          last attempt [TIME] UTC: 1 conflicts left open
          conflict: dentist@example.org: created differently on both sides: a [TMP]/a/home/dentist.ics, b [TMP]/b/home/dentist.ics; make both the same, or set the pair's conflict_resolution
        cal/work: 1 items, last clean sync never, 0 open conflicts, 1 failed items
          last attempt [TIME] UTC: failed: broken.ics: [TMP]/a/work/broken.ics: line 2: BEGIN:VCALENDAR is never ended
          failed: broken.ics: [TMP]/a/work/broken.ics: line 2: BEGIN:VCALENDAR is never ended
        --- stderr
        davsync: a conflict is open or the last run failed
        --- exit 1
        ");
}

#[test]
fn config_error_unknown_key() {
    let sb = setup("conflict = \"a wins\"");
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        --- stderr
        davsync: [TMP]/config.toml:16: pair.cal.conflict: unknown key (expected one of: a, b, collections, conflict_resolution, metadata, mode, post_sync)
        --- exit 2
        ");
}

#[test]
fn config_error_vdirsyncer_spellings_say_the_fix() {
    // In vdirsyncer `collections = ["from b"]` means "every collection of b"; here a list holds
    // collection names, so it used to create a collection called "from b" on both sides.
    let sb = setup_collections(r#"["from b"]"#);
    sb.mkdir("b/work");
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r#"
        --- stderr
        davsync: [TMP]/config.toml:16: pair.cal.collections[0]: "from b" inside a list names a collection called "from b"; use collections = "from b"
        --- exit 2
        "#);
    assert_eq!(
        sb.ls("a"),
        Vec::<String>::new(),
        "no collection was created"
    );
    assert_eq!(sb.ls("b"), ["work"]);
    assert!(!sb.exists("status"));

    let sb = setup(r#"conflict_resolution = ["command", "vimdiff", "-d"]"#);
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r#"
        --- stderr
        davsync: [TMP]/config.toml:16: pair.cal.conflict_resolution: a list is vdirsyncer's spelling of a merge command; use conflict_resolution = { cmd = ["vimdiff", "-d"] }
        --- exit 2
        "#);

    let sb = setup_collections(r#"[["home", "personal", "home"]]"#);
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r#"
        --- stderr
        davsync: [TMP]/config.toml:16: pair.cal.collections[0]: a list inside the list is vdirsyncer's spelling; use a table { name = "...", a = "name on a", b = "name on b" }
        --- exit 2
        "#);

    let sb = Sandbox::new();
    sb.write_config(
        r#"[storage.laptop]
type = "filesystem"
path = "{root}/a"
fileext = ".ics"
"#,
    );
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r#"
        --- stderr
        davsync: [TMP]/config.toml:2: storage.laptop.type: "filesystem" is vdirsyncer's name; use type = "vdir"
        --- exit 2
        "#);

    sb.write_config(
        r#"[storage.server]
type = "caldav"
url = "https://dav.example.org/"
username = "alice"
password.fetch = ["command", "pass", "dav"]
"#,
    );
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r#"
        --- stderr
        davsync: [TMP]/config.toml:5: storage.server.password.fetch: unknown key (expected one of: cmd, env); vdirsyncer's fetch = ["command", "prog", "arg"] is written { cmd = ["prog", "arg"] } here
        --- exit 2
        "#);
}

#[test]
fn config_error_pair_names_a_missing_storage() {
    let sb = Sandbox::new();
    sb.write_config(
        r#"[storage.laptop]
type = "vdir"
path = "{root}/a"
fileext = ".ics"

[pair.cal]
a = "laptop"
b = "backup"
"#,
    );
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r#"
        --- stderr
        davsync: [TMP]/config.toml:8: pair.cal.b: storage "backup" is not defined (defined: laptop)
        --- exit 2
        "#);
    let run = sb.run(&["status"]);
    run.expect_code(2);
}

#[test]
fn config_file_missing_and_config_option() {
    let sb = Sandbox::new();
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        --- stderr
        davsync: [TMP]/config.toml: cannot read config file: No such file or directory (os error 2)
        --- exit 2
        ");
    // `-c` beats $DAVSYNC_CONFIG.
    let other = setup("");
    let run = sb.run(&["-c", &other.config_path().display().to_string(), "status"]);
    run.success();
    run.expect_stdout("cal: never synced");
}

#[test]
fn default_status_path_is_under_xdg_data_home() {
    let sb = Sandbox::new();
    sb.mkdir("a");
    sb.mkdir("b");
    sb.write_config(
        r#"[storage.laptop]
type = "vdir"
path = "{root}/a"
fileext = ".ics"
[storage.backup]
type = "vdir"
path = "{root}/b"
fileext = ".ics"
[pair.cal]
a = "laptop"
b = "backup"
"#,
    );
    sb.run(&["sync"]).success();
    assert!(sb.path("home/.local/share/davsync/cal.db").is_file());
}

#[test]
fn exit_status_map() {
    let sb = setup("");
    sb.run(&["sync"]).expect_code(0);
    let bad_flag = sb.run(&["sync", "--no-such-flag"]);
    bad_flag.expect_code(2);
    assert!(
        bad_flag.stderr.contains("--no-such-flag"),
        "{}",
        bad_flag.stderr
    );
    sb.run(&["frobnicate"]).expect_code(2);
    sb.run(&["sync", "-v", "-q"]).expect_code(2);
    sb.write("a/x.ics", event("x@example.org", "On A"));
    sb.write("b/x.ics", event("x@example.org", "On B"));
    sb.run(&["sync"]).expect_code(1);
    // An open conflict: status says so with its exit status too.
    sb.run(&["status"]).expect_code(1);
}

#[test]
fn quiet_prints_only_problems() {
    let sb = setup("");
    sb.write("a/lunch.ics", event(LUNCH, "Lunch"));
    let run = sb.run(&["sync", "-q"]);
    run.success();
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "");
    assert_eq!(sb.ls("b"), [LUNCH_FILE]);
}

#[test]
fn a_held_lock_is_reported_with_its_pid() {
    use std::io::Write as _;
    let sb = setup("");
    sb.write("a/lunch.ics", event(LUNCH, "Lunch"));
    sb.mkdir("status");
    let mut lock = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(sb.path("status/cal.lock"))
        .expect("open lock file");
    lock.try_lock().expect("take the lock");
    writeln!(lock, "4242").expect("write pid");
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @"
    --- stderr
    error: cal: [TMP]/status/cal.lock: another davsync (pid 4242) is already syncing this pair
    davsync: a server could not be reached or a pair was locked; nothing needs a person, the next run tries again
    --- exit 75
    ");
    assert!(sb.ls("b").is_empty(), "nothing synced while locked");
    lock.unlock().expect("unlock");
    drop(lock);
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("b"), [LUNCH_FILE]);
}

#[test]
fn dry_run_with_a_wins_plans_the_resolution() {
    let sb = setup(r#"conflict_resolution = "a wins""#);
    conflicted(&sb);
    let (a, b) = (sb.state("a"), sb.state("b"));
    let run = sb.run(&["sync", "--dry-run"]);
    insta::assert_snapshot!(run.both(), @r"
        cal: conflict lunch@example.org: changed on both sides
        cal: would be: 0 created, 1 updated, 0 deleted, 0 conflicts, 0 errors
        --- exit 0
        ");
    assert_eq!(sb.state("a"), a);
    assert_eq!(sb.state("b"), b);
}

#[test]
fn naming_a_pair_and_one_of_its_collections_syncs_the_whole_pair() {
    let sb = setup_collections(r#""from a""#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.write(
        "a/home/dentist.ics",
        event("dentist@example.org", "Dentist"),
    );
    sb.run(&["sync", "cal/work", "cal"]).success();
    assert_eq!(sb.ls("b"), ["home", "work"]);
}

// ---------------------------------------------------------------------------------------------
// Interrupted by a signal
// ---------------------------------------------------------------------------------------------

/// A pair whose first sync resolves `count` items created differently on both sides with a
/// merge command that touches `{root}/started` and then takes `merge_secs`: every action is a
/// slow write, so a signal arrives while one is under way. The merge keeps A's version.
fn slow_merges(count: usize, merge_secs: &str) -> Sandbox {
    let sb = setup(&format!(
        r#"conflict_resolution = {{ cmd = ["sh", "-c", "touch {{root}}/started; sleep {merge_secs}", "merge"] }}"#
    ));
    for n in 0..count {
        let uid = format!("item{n}@example.org");
        sb.write(
            &format!("a/item{n}.ics"),
            event(&uid, &format!("Item {n} on A")),
        );
        sb.write(
            &format!("b/item{n}.ics"),
            event(&uid, &format!("Item {n} on B")),
        );
    }
    sb
}

/// Starts `davsync sync` and waits until the first merge is under way.
fn start_sync_until_merging(sb: &Sandbox, output: std::process::Stdio) -> std::process::Child {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_davsync"))
        .current_dir(sb.root())
        .env("HOME", sb.home())
        .env("DAVSYNC_CONFIG", sb.config_path())
        .arg("sync")
        .stdout(std::process::Stdio::piped())
        .stderr(output)
        .spawn()
        .expect("start davsync");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !sb.exists("started") {
        assert!(std::time::Instant::now() < deadline, "no merge started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child
}

fn send(child: &std::process::Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
}

#[test]
fn sigint_and_sigterm_finish_the_writes_under_way_and_exit_130_or_143() {
    const COUNT: usize = 12;
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let sb = slow_merges(COUNT, "0.3");
        let child = start_sync_until_merging(&sb, std::process::Stdio::piped());
        send(&child, signal);
        let output = child.wait_with_output().expect("wait for davsync");
        let stderr = sb.normalize(&String::from_utf8_lossy(&output.stderr));
        assert_eq!(output.status.code(), Some(code), "{stderr}");
        // The merge under way was finished; the others were not started.
        let left: usize = stderr
            .split_once("interrupted: cal: ")
            .and_then(|(_, rest)| rest.split_once(" actions not done"))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or_else(|| panic!("no count of actions left in {stderr:?}"));
        assert!(left > 0 && left < COUNT, "{left} left: {stderr}");
        let name = if signal == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        assert!(
            stderr.contains(&format!(
                "davsync: interrupted by {name}; the next sync does what was left"
            )),
            "{stderr}"
        );

        let status = sb.run(&["status"]);
        status.expect_code(1);
        let summary = common::redact_timestamps(&status.stdout);
        assert!(
            summary.starts_with(&format!(
                "cal: {} items, last clean sync never, 0 open conflicts, 1 failed items\n  \
                 last attempt [TIME] UTC: failed: interrupted: {left} actions not done\n  \
                 failed: interrupted: {left} actions not done\n",
                COUNT - left
            )),
            "{summary}"
        );

        let run = sb.run(&["sync"]);
        assert_eq!(
            run.stdout,
            format!("cal: 0 created, {left} updated, 0 deleted, 0 conflicts, 0 errors\n"),
            "{}",
            run.stderr
        );
        run.success();
        let names: Vec<String> = (0..COUNT).map(|n| format!("item{n}.ics")).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sb.ls("a"), sorted, "no duplicates on a");
        assert_eq!(sb.ls("b"), sorted, "no duplicates on b");
        for name in &names {
            assert_eq!(sb.read(&format!("a/{name}")), sb.read(&format!("b/{name}")));
        }
        sb.run(&["sync"]).expect_stdout("cal: in sync");
    }
}

#[test]
fn after_a_signal_the_next_collections_are_not_started_and_named() {
    let sb = setup_collections(
        r#""from a"
conflict_resolution = { cmd = ["sh", "-c", "echo >> {root}/started; sleep 0.5", "merge"] }"#,
    );
    for n in 0..3 {
        let uid = format!("item{n}@example.org");
        sb.write(&format!("a/1-slow/item{n}.ics"), event(&uid, "On A"));
        sb.write(&format!("b/1-slow/item{n}.ics"), event(&uid, "On B"));
    }
    sb.write("a/2-next/lunch.ics", event(LUNCH, "Lunch"));
    let child = start_sync_until_merging(&sb, std::process::Stdio::piped());
    send(&child, libc::SIGTERM);
    let output = child.wait_with_output().expect("wait for davsync");
    let stderr = sb.normalize(&String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    // A vdir takes two writes at once: one merge or two were under way and finished.
    let merged = sb.read_string("started").lines().count();
    assert!(
        stderr.contains(&format!(
            "interrupted: cal/1-slow: {} actions not done",
            3 - merged
        )) && stderr.contains("interrupted: not started: cal/2-next\n"),
        "{stderr}"
    );
    assert!(
        !sb.exists("b/2-next"),
        "the next collection was not started"
    );
    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(sb.ls("b/2-next"), [LUNCH_FILE]);
}

#[test]
fn a_second_signal_stops_at_once() {
    use std::os::unix::process::ExitStatusExt as _;
    let sb = slow_merges(3, "20");
    // The merge command inherits stderr and outlives davsync: no pipe to wait on.
    let mut child = start_sync_until_merging(&sb, std::process::Stdio::null());
    send(&child, libc::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        child.try_wait().expect("poll davsync").is_none(),
        "the first signal waits for the merge under way"
    );
    send(&child, libc::SIGINT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll davsync") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().expect("kill davsync");
            panic!("davsync still runs after a second signal");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(status.signal(), Some(libc::SIGINT));
}

// ---------------------------------------------------------------------------------------------
// Exit status: 75 (retry later) apart from 1 (a person is needed)
// ---------------------------------------------------------------------------------------------

/// The usual vdir pair `cal`, plus a pair `remote` whose CalDAV server's port is closed.
fn setup_with_unreachable_server() -> Sandbox {
    let sb = setup("");
    add_unreachable_pair(&sb);
    sb
}

/// Adds the pair `remote` to the usual config: a vdir and a CalDAV server whose port is closed.
fn add_unreachable_pair(sb: &Sandbox) {
    sb.mkdir("c");
    let port = common::closed_port();
    let mut config = common::vdir_pair_config(".ics", "");
    config.push_str(&format!(
        r#"
[storage.local]
type = "vdir"
path = "{{root}}/c"
fileext = ".ics"

[storage.server]
type = "caldav"
url = "http://127.0.0.1:{port}/cal/"
timeout = 5

[pair.remote]
a = "local"
b = "server"
"#
    ));
    sb.write_config(&config);
}

#[test]
fn a_server_that_cannot_be_reached_exits_75() {
    let sb = setup_with_unreachable_server();
    sb.write("a/lunch.ics", event(LUNCH, "Lunch"));
    let run = sb.run(&["sync", "remote"]);
    run.expect_code(75);
    assert!(
        run.stderr.contains("error: remote: ") && run.stderr.contains("the next run tries again"),
        "{}",
        run.both()
    );
    // The other pair syncs and leaves nothing for a person: still 75.
    let run = sb.run(&["sync"]);
    run.expect_code(75);
    assert_eq!(sb.ls("b"), [LUNCH_FILE]);
}

#[test]
fn a_conflict_exits_1() {
    let sb = setup("");
    conflicted(&sb);
    sb.run(&["sync"]).expect_code(1);
}

#[test]
fn a_conflict_and_an_unreachable_server_exit_1() {
    let sb = setup("");
    conflicted(&sb);
    add_unreachable_pair(&sb);
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("conflict: cal: ") && run.stderr.contains("error: remote: "),
        "{}",
        run.both()
    );
    assert!(
        run.stderr
            .contains("some items or collections were left unsynced"),
        "{}",
        run.both()
    );
}

// ---------------------------------------------------------------------------------------------
// status: the last attempt beside the last clean sync, and its exit status
// ---------------------------------------------------------------------------------------------

#[test]
fn status_shows_the_last_attempt_and_exits_1_while_a_conflict_is_open() {
    let sb = setup("");
    conflicted(&sb);
    sb.run(&["status"]).success();
    sb.run(&["sync"]).expect_code(1);
    let run = sb.run(&["status"]);
    insta::assert_snapshot!(common::redact_timestamps(&run.both()), @r"
    cal: 2 items, last clean sync [TIME] UTC, 1 open conflicts, 0 failed items
      last attempt [TIME] UTC: 1 conflicts left open
      conflict: lunch@example.org: changed on both sides: a [TMP]/a/lunch.ics, b [TMP]/b/lunch@example.org.ics; make both the same, or set the pair's conflict_resolution
    --- stderr
    davsync: a conflict is open or the last run failed
    --- exit 1
    ");
}

#[test]
fn status_shows_a_failed_attempt_of_an_unreachable_server_and_exits_1() {
    let sb = setup_with_unreachable_server();
    sb.write("c/lunch.ics", event(LUNCH, "Lunch"));
    sb.run(&["sync", "remote"]).expect_code(75);
    let run = sb.run(&["status", "remote"]);
    run.expect_code(1);
    let port_free = without_port(&run.stdout);
    insta::assert_snapshot!(port_free, @"
    remote: 0 items, last clean sync never, 0 open conflicts, 1 failed items
      last attempt [TIME] UTC: failed: not synced: PROPFIND http://127.0.0.1:[PORT]/cal/: connection refused (is the server running? is the port right?)
      failed: not synced: PROPFIND http://127.0.0.1:[PORT]/cal/: connection refused (is the server running? is the port right?)
    ");
    // The other pair, in sync, is fine.
    sb.run(&["sync", "cal"]).success();
    sb.run(&["status", "cal"]).success();
}

/// The pair `remote` of the usual config, whose server storage's password command fails
/// (`false`), so that the run stops before any request or collection.
fn add_pair_with_failing_password(sb: &Sandbox) {
    sb.mkdir("c");
    let port = common::closed_port();
    let mut config = common::vdir_pair_config(".ics", "");
    config.push_str(&format!(
        r#"
[storage.local]
type = "vdir"
path = "{{root}}/c"
fileext = ".ics"

[storage.server]
type = "caldav"
url = "http://127.0.0.1:{port}/cal/"
username = "me"
password = {{ cmd = ["false"] }}

[pair.remote]
a = "local"
b = "server"
"#
    ));
    sb.write_config(&config);
}

#[test]
fn status_shows_a_run_whose_password_command_failed_as_a_failed_attempt() {
    let sb = setup("");
    add_pair_with_failing_password(&sb);
    sb.write("c/lunch.ics", event(LUNCH, "Lunch"));
    // A dry run records nothing: the pair has still never synced.
    sb.run(&["sync", "--dry-run", "remote"]).expect_code(1);
    sb.run(&["status", "remote"]).success();
    let run = sb.run(&["sync", "remote"]);
    run.expect_code(1);
    let run = sb.run(&["status", "remote"]);
    insta::assert_snapshot!(without_port(&run.both()), @r#"
    remote: no collection synced yet
      last attempt [TIME] UTC: failed: not synced: storage server: http://127.0.0.1:[PORT]/cal/: password command "false" failed (exit status: 1)
    --- stderr
    davsync: a conflict is open or the last run failed
    --- exit 1
    "#);
    // Once a run gets to the collections, they speak for themselves: with the password
    // command fixed the server still cannot be reached, and that is the attempt shown.
    let config = sb.read_string("config.toml");
    sb.write(
        "config.toml",
        config.replace(r#"cmd = ["false"]"#, r#"cmd = ["echo", "secret"]"#),
    );
    sb.run(&["sync", "remote"]).expect_code(75);
    let run = sb.run(&["status", "remote"]);
    run.expect_code(1);
    assert!(!run.stdout.contains("password"), "{}", run.both());
}

#[test]
fn status_shows_a_failed_password_command_of_a_pair_that_synced_before() {
    // Synced once between two vdirs, then side b becomes a server whose password command
    // fails: the run stops before the status database was opened until now.
    let sb = setup("");
    sb.write("a/lunch.ics", event(LUNCH, "Lunch"));
    sb.run(&["sync"]).success();
    let config = sb.read_string("config.toml");
    let vdir_b = config
        .split("[storage.backup]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("the backup storage's table");
    sb.write(
        "config.toml",
        config.replace(
            vdir_b,
            "\ntype = \"caldav\"\nurl = \"http://127.0.0.1:9/cal/\"\nusername = \"me\"\n\
             password = { cmd = [\"false\"] }\n",
        ),
    );
    sb.run(&["sync"]).expect_code(1);
    let run = sb.run(&["status"]);
    insta::assert_snapshot!(common::redact_timestamps(&run.both()), @r#"
    cal: 1 items, last clean sync [TIME] UTC, 0 open conflicts, 1 failed items
      last attempt [TIME] UTC: failed: not synced: storage backup: http://127.0.0.1:9/cal/: password command "false" failed (exit status: 1)
      failed: not synced: storage backup: http://127.0.0.1:9/cal/: password command "false" failed (exit status: 1)
    --- stderr
    davsync: a conflict is open or the last run failed
    --- exit 1
    "#);
}

#[test]
fn a_held_lock_records_no_attempt_even_when_the_password_command_fails() {
    let sb = setup("");
    add_pair_with_failing_password(&sb);
    sb.mkdir("status");
    let lock = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(sb.path("status/remote.lock"))
        .expect("open lock file");
    lock.try_lock().expect("take the lock");
    // The holder records its own run: this one only says it is locked.
    let run = sb.run(&["sync", "remote"]);
    run.expect_code(75);
    assert!(!run.stderr.contains("password"), "{}", run.both());
    assert!(!sb.exists("status/remote.db"), "{}", run.both());
    sb.run(&["status", "remote"]).success();
}

/// The output with timestamps and the closed port's number replaced.
fn without_port(text: &str) -> String {
    let text = common::redact_timestamps(text);
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("127.0.0.1:") {
        let (head, tail) = rest.split_at(i + "127.0.0.1:".len());
        out.push_str(head);
        out.push_str("[PORT]");
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

#[test]
fn status_shows_a_pair_whose_discovery_failed_as_a_failed_attempt() {
    // Synced once between two vdirs, then side b becomes a server that cannot be reached:
    // discovering b's collections fails before any collection is synced.
    let sb = setup(r#"collections = "from a""#);
    sb.write("a/home/lunch.ics", event(LUNCH, "Lunch"));
    sb.run(&["sync"]).success();
    sb.run(&["status"]).success();
    let config = sb.read_string("config.toml");
    let port = common::closed_port();
    let vdir_b = config
        .split("[storage.backup]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("the backup storage's table");
    sb.write(
        "config.toml",
        config.replace(
            vdir_b,
            &format!("\ntype = \"caldav\"\nurl = \"http://127.0.0.1:{port}/cal/\"\ntimeout = 5\n"),
        ),
    );
    sb.run(&["sync"]).expect_code(75);
    let run = sb.run(&["status"]);
    run.expect_code(1);
    let shown = common::redact_timestamps(&run.stdout);
    assert!(
        shown.starts_with(
            "cal/home: 1 items, last clean sync [TIME] UTC, 0 open conflicts, 1 failed items\n  \
             last attempt [TIME] UTC: failed: not synced: PROPFIND http://127.0.0.1:"
        ),
        "{}",
        run.both()
    );
    // A dry run records nothing.
    let before = sb.read("status/cal.db");
    sb.run(&["sync", "--dry-run"]).expect_code(75);
    assert!(
        sb.read("status/cal.db") == before,
        "the dry run changed the status database"
    );
}
