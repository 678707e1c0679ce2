//! Scenario tests of the `davsync` binary on temporary vdirs: every row of the three-way table
//! and every rule of the sync engine, checked the way a user would check them (file contents
//! on both sides, exit status, messages). Conflict resolution, collections, the other commands,
//! config errors, exit statuses and the pair lock are in `cli_commands.rs`.

mod common;

use std::time::Duration;

use common::{EventBuilder, Sandbox, event, event_without_uid, set_mtime, touch};

/// The usual pair `cal` of two vdirs whose paths are the collections themselves.
fn setup(extra: &str) -> Sandbox {
    Sandbox::with_vdir_pair(extra)
}

/// Writes `items` (file name, content) to side A, syncs, and checks that the sync was clean.
fn synced(items: &[(&str, &str)]) -> Sandbox {
    let sb = setup("");
    for (name, content) in items {
        sb.write(&format!("a/{name}"), content);
    }
    sb.run(&["sync"]).success();
    sb
}

/// The number of items `davsync status` reports for pair `cal`.
fn status_items(sb: &Sandbox) -> u64 {
    sb.status_items("cal")
}

const LUNCH: &str = "lunch@example.org";
const LUNCH_FILE: &str = "lunch@example.org.ics";

// ---------------------------------------------------------------------------------------------
// The three-way table
// ---------------------------------------------------------------------------------------------

#[test]
fn new_on_a_is_copied_to_b_byte_for_byte() {
    let sb = setup("");
    let lunch = event(LUNCH, "Lunch with Ana");
    sb.write("a/lunch.ics", &lunch);
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        cal: 1 created, 0 updated, 0 deleted, 0 conflicts, 0 errors
        --- exit 0
        ");
    assert_eq!(sb.ls("b"), [LUNCH_FILE]);
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), lunch.as_bytes());
    assert_eq!(
        sb.read("a/lunch.ics"),
        lunch.as_bytes(),
        "the source is left as it was"
    );
}

#[test]
fn new_on_b_is_copied_to_a_byte_for_byte() {
    let sb = setup("");
    // LF line ends and folding on purpose: copies are exact bytes, never re-serialized.
    let lunch = EventBuilder::new("Lunch with Ana, a long summary that needs folding")
        .uid(LUNCH)
        .lf()
        .fold_at(30)
        .build();
    sb.write("b/whatever-name.ics", &lunch);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 1 created, 0 updated, 0 deleted");
    assert_eq!(sb.ls("a"), [LUNCH_FILE]);
    assert_eq!(sb.read(&format!("a/{LUNCH_FILE}")), lunch.as_bytes());
}

#[test]
fn new_on_both_with_same_content_writes_nothing() {
    let sb = setup("");
    sb.write("a/lunch.ics", event(LUNCH, "Lunch"));
    // The same event, re-serialized by another program: LF, folded, other property order,
    // other DTSTAMP and PRODID.
    sb.write(
        "b/other-name.ics",
        EventBuilder::new("Lunch")
            .uid(LUNCH)
            .lf()
            .fold_at(20)
            .reversed()
            .dtstamp("20250607T080910Z")
            .prodid("-//Other Client//1.0//EN")
            .build(),
    );
    let (a, b) = (sb.state("a"), sb.state("b"));
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: in sync");
    assert_eq!(sb.state("a"), a, "side a untouched (bytes, mtime, inode)");
    assert_eq!(sb.state("b"), b, "side b untouched (bytes, mtime, inode)");
    assert_eq!(status_items(&sb), 1, "the pair is remembered");
}

#[test]
fn new_on_both_with_different_content_is_a_conflict() {
    let sb = setup("");
    sb.write("a/lunch.ics", event(LUNCH, "Lunch at noon"));
    sb.write("b/lunch.ics", event(LUNCH, "Lunch at one"));
    let (a, b) = (sb.state("a"), sb.state("b"));
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        cal: 0 created, 0 updated, 0 deleted, 1 conflicts, 0 errors
        --- stderr
        conflict: cal: lunch@example.org: created differently on both sides: a [TMP]/a/lunch.ics, b [TMP]/b/lunch.ics; make both the same, or set the pair's conflict_resolution
        davsync: some items or collections were left unsynced
        --- exit 1
        ");
    assert_eq!(sb.state("a"), a);
    assert_eq!(sb.state("b"), b);
    // Still open on the next run.
    sb.run(&["sync"]).expect_code(1);
    assert_eq!(sb.state("a"), a);
    assert_eq!(sb.state("b"), b);
}

#[test]
fn changed_on_a_updates_b_with_the_exact_bytes() {
    let sb = synced(&[("lunch.ics", &event(LUNCH, "Lunch"))]);
    let changed = EventBuilder::new("Lunch, moved to the canteen")
        .uid(LUNCH)
        .description("Bring the slides")
        .fold_at(40)
        .build();
    sb.write("a/lunch.ics", &changed);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 1 updated, 0 deleted");
    assert_eq!(sb.ls("b"), [LUNCH_FILE]);
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), changed.as_bytes());
}

#[test]
fn changed_on_b_updates_a_with_the_exact_bytes() {
    let sb = synced(&[("lunch.ics", &event(LUNCH, "Lunch"))]);
    let changed = EventBuilder::new("Lunch (B)").uid(LUNCH).lf().build();
    sb.write(&format!("b/{LUNCH_FILE}"), &changed);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 1 updated, 0 deleted");
    assert_eq!(
        sb.ls("a"),
        ["lunch.ics"],
        "updated in place, under its own name"
    );
    assert_eq!(sb.read("a/lunch.ics"), changed.as_bytes());
}

#[test]
fn changed_on_both_alike_writes_nothing() {
    let sb = synced(&[("lunch.ics", &event(LUNCH, "Lunch"))]);
    sb.write("a/lunch.ics", event(LUNCH, "Lunch at the canteen"));
    sb.write(
        &format!("b/{LUNCH_FILE}"),
        EventBuilder::new("Lunch at the canteen")
            .uid(LUNCH)
            .lf()
            .dtstamp("20250101T000000Z")
            .build(),
    );
    let (a, b) = (sb.state("a"), sb.state("b"));
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: in sync");
    assert_eq!(sb.state("a"), a);
    assert_eq!(sb.state("b"), b);
}

#[test]
fn changed_on_both_differently_is_a_conflict_listed_by_status() {
    let sb = synced(&[("lunch.ics", &event(LUNCH, "Lunch"))]);
    sb.write("a/lunch.ics", event(LUNCH, "Lunch on A"));
    sb.write(&format!("b/{LUNCH_FILE}"), event(LUNCH, "Lunch on B"));
    let (a, b) = (sb.state("a"), sb.state("b"));
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        cal: 0 created, 0 updated, 0 deleted, 1 conflicts, 0 errors
        --- stderr
        conflict: cal: lunch@example.org: changed on both sides: a [TMP]/a/lunch.ics, b [TMP]/b/lunch@example.org.ics; make both the same, or set the pair's conflict_resolution
        davsync: some items or collections were left unsynced
        --- exit 1
        ");
    assert_eq!(sb.state("a"), a);
    assert_eq!(sb.state("b"), b);
    let status = sb.run(&["status"]);
    insta::assert_snapshot!(common::redact_timestamps(&status.both()), @r"
        cal: 1 items, last clean sync [TIME] UTC, 1 open conflicts, 0 failed items
          last attempt [TIME] UTC: 1 conflicts left open
          conflict: lunch@example.org: changed on both sides: a [TMP]/a/lunch.ics, b [TMP]/b/lunch@example.org.ics; make both the same, or set the pair's conflict_resolution
        --- stderr
        davsync: a conflict is open or the last run failed
        --- exit 1
        ");
}

#[test]
fn deleted_on_a_and_unchanged_on_b_is_deleted_on_b() {
    let sb = synced(&[
        ("lunch.ics", &event(LUNCH, "Lunch")),
        ("keep.ics", &event("keep@example.org", "Keep")),
    ]);
    sb.remove("a/lunch.ics");
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 0 updated, 1 deleted");
    assert_eq!(sb.ls("b"), ["keep@example.org.ics"]);
    assert_eq!(status_items(&sb), 1);
}

#[test]
fn deleted_on_b_and_unchanged_on_a_is_deleted_on_a() {
    let sb = synced(&[
        ("lunch.ics", &event(LUNCH, "Lunch")),
        ("keep.ics", &event("keep@example.org", "Keep")),
    ]);
    sb.remove(&format!("b/{LUNCH_FILE}"));
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 0 updated, 1 deleted");
    assert_eq!(sb.ls("a"), ["keep.ics"]);
}

#[test]
fn deleted_on_a_and_changed_on_b_is_restored_to_a() {
    let sb = synced(&[
        ("lunch.ics", &event(LUNCH, "Lunch")),
        ("keep.ics", &event("keep@example.org", "Keep")),
    ]);
    sb.remove("a/lunch.ics");
    let changed = event(LUNCH, "Lunch, changed on B");
    sb.write(&format!("b/{LUNCH_FILE}"), &changed);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 1 created, 0 updated, 0 deleted");
    assert_eq!(sb.ls("a"), ["keep.ics", LUNCH_FILE]);
    assert_eq!(sb.read(&format!("a/{LUNCH_FILE}")), changed.as_bytes());
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), changed.as_bytes());
    // And it is known again: the next run is quiet.
    let again = sb.run(&["sync"]);
    again.expect_stdout("cal: in sync");
}

#[test]
fn deleted_on_b_and_changed_on_a_is_restored_to_b() {
    let sb = synced(&[
        ("lunch.ics", &event(LUNCH, "Lunch")),
        ("keep.ics", &event("keep@example.org", "Keep")),
    ]);
    sb.remove(&format!("b/{LUNCH_FILE}"));
    let changed = event(LUNCH, "Lunch, changed on A");
    sb.write("a/lunch.ics", &changed);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 1 created, 0 updated, 0 deleted");
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), changed.as_bytes());
    assert_eq!(sb.read("a/lunch.ics"), changed.as_bytes());
}

#[test]
fn deleted_on_both_is_forgotten() {
    let sb = synced(&[
        ("lunch.ics", &event(LUNCH, "Lunch")),
        ("keep.ics", &event("keep@example.org", "Keep")),
    ]);
    assert_eq!(status_items(&sb), 2);
    sb.remove("a/lunch.ics");
    sb.remove(&format!("b/{LUNCH_FILE}"));
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: in sync");
    assert_eq!(status_items(&sb), 1);
    assert_eq!(sb.ls("a"), ["keep.ics"]);
    assert_eq!(sb.ls("b"), ["keep@example.org.ics"]);
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

#[test]
fn second_sync_right_after_a_successful_one_writes_nothing() {
    let sb = setup("");
    sb.write("a/lunch.ics", event(LUNCH, "Lunch"));
    sb.write("a/nouid.ics", event_without_uid("No UID"));
    sb.write("b/dinner.ics", event("dinner@example.org", "Dinner"));
    sb.write("b/same.ics", event("same@example.org", "Same"));
    sb.write(
        "a/same.ics",
        EventBuilder::new("Same")
            .uid("same@example.org")
            .lf()
            .build(),
    );
    sb.run(&["sync"]).success();
    let (a, b) = (sb.state("a"), sb.state("b"));
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        cal: in sync
        --- exit 0
        ");
    assert_eq!(sb.state("a"), a, "nothing written on a");
    assert_eq!(sb.state("b"), b, "nothing written on b");
}

#[test]
fn in_place_rewrite_of_same_size_within_the_same_second_is_propagated() {
    let sb = synced(&[("lunch.ics", &event(LUNCH, "Lunch at 12"))]);
    // Rewritten in place right after the sync, same length, and with the old mtime put back,
    // as a file system with one-second timestamps would leave it: mtime, size and inode are
    // all as the last sync saw them.
    let path = sb.path("a/lunch.ics");
    let before = common::mtime(&path);
    // Precondition: the first sync looked at the file within the weak window (2 s) of its
    // mtime, as "right after" means. Only an absurdly slow machine breaks this.
    let age = std::time::SystemTime::now()
        .duration_since(before)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(2), "setup took {age:?}");
    let edited = event(LUNCH, "Lunch at 13");
    assert_eq!(edited.len(), event(LUNCH, "Lunch at 12").len());
    std::fs::write(&path, &edited).expect("rewrite in place");
    set_mtime(&path, before);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 1 updated");
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), edited.as_bytes());

    // The copy davsync wrote on b, rewritten in place (same size) right after the sync.
    let edited_b = event(LUNCH, "Lunch at 14");
    std::fs::write(sb.path(&format!("b/{LUNCH_FILE}")), &edited_b).expect("rewrite in place");
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 1 updated");
    assert_eq!(sb.read("a/lunch.ics"), edited_b.as_bytes());
}

#[test]
fn touch_is_not_a_change() {
    let sb = synced(&[
        ("lunch.ics", &event(LUNCH, "Lunch")),
        ("keep.ics", &event("keep@example.org", "Keep")),
    ]);
    let b = sb.state("b");
    touch(&sb.path("a/lunch.ics"));
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: in sync");
    assert_eq!(sb.state("b"), b, "nothing written on b");

    let a = sb.state("a");
    touch(&sb.path(&format!("b/{LUNCH_FILE}")));
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: in sync");
    assert_eq!(sb.state("a"), a, "nothing written on a");
}

#[test]
fn reserialized_copy_on_b_is_not_a_change() {
    let lunch = EventBuilder::new("Lunch with a summary long enough to be folded somewhere")
        .uid(LUNCH)
        .description("Agenda: budget, hiring, the new office and whatever else comes up")
        .build();
    let sb = synced(&[("lunch.ics", &lunch)]);
    // A server re-serializes it: other property order, other folding, LF, new DTSTAMP.
    sb.write(
        &format!("b/{LUNCH_FILE}"),
        EventBuilder::new("Lunch with a summary long enough to be folded somewhere")
            .uid(LUNCH)
            .description("Agenda: budget, hiring, the new office and whatever else comes up")
            .reversed()
            .fold_at(25)
            .lf()
            .dtstamp("20260101T101010Z")
            .build(),
    );
    let a = sb.state("a");
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: in sync");
    assert_eq!(sb.state("a"), a);
    assert_eq!(sb.read("a/lunch.ics"), lunch.as_bytes());
}

#[test]
fn uid_changed_on_one_side_deletes_the_old_and_creates_the_new() {
    let sb = synced(&[
        ("lunch.ics", &event(LUNCH, "Lunch")),
        ("keep.ics", &event("keep@example.org", "Keep")),
    ]);
    let renamed = event("brunch@example.org", "Lunch");
    sb.write("a/lunch.ics", &renamed);
    let run = sb.run(&["sync", "-v"]);
    insta::assert_snapshot!(run.both(), @r"
        cal: create brunch@example.org: a → b (new on a as lunch.ics)
        cal: delete lunch@example.org: on b (deleted on a)
        cal: 1 created, 0 updated, 1 deleted, 0 conflicts, 0 errors
        --- exit 0
        ");
    assert_eq!(
        sb.ls("b"),
        ["brunch@example.org.ics", "keep@example.org.ics"]
    );
    assert_eq!(sb.read("b/brunch@example.org.ics"), renamed.as_bytes());
    assert_eq!(sb.ls("a"), ["keep.ics", "lunch.ics"]);
}

#[test]
fn item_moved_to_another_file_name_is_not_a_change() {
    let sb = synced(&[
        ("lunch.ics", &event(LUNCH, "Lunch")),
        ("keep.ics", &event("keep@example.org", "Keep")),
    ]);
    std::fs::rename(sb.path("a/lunch.ics"), sb.path("a/moved.ics")).expect("rename");
    let b = sb.state("b");
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: in sync");
    assert_eq!(sb.state("b"), b, "nothing written on b");
    let a = sb.state("a");
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: in sync");
    assert_eq!(sb.state("a"), a);
    assert_eq!(sb.state("b"), b);
    assert_eq!(status_items(&sb), 2);

    // The status follows the move: an edit under the new name reaches b's copy.
    let edited = event(LUNCH, "Lunch, edited after the move");
    sb.write("a/moved.ics", &edited);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 1 updated, 0 deleted");
    assert_eq!(sb.ls("b"), ["keep@example.org.ics", LUNCH_FILE]);
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), edited.as_bytes());
}

#[test]
fn duplicate_uids_on_one_side_are_skipped_and_named() {
    let sb = synced(&[("lunch.ics", &event(LUNCH, "Lunch"))]);
    // A second file with the same UID appears on a, and something else to sync.
    sb.write("a/lunch-copy.ics", event(LUNCH, "Lunch, the copy"));
    sb.write("a/dinner.ics", event("dinner@example.org", "Dinner"));
    let b = sb.state("b");
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        cal: 1 created, 0 updated, 0 deleted, 0 conflicts, 1 errors
        --- stderr
        error: cal: lunch@example.org: UID used by several items on a, none synced until only one is left: [TMP]/a/lunch-copy.ics, [TMP]/a/lunch.ics
        davsync: some items or collections were left unsynced
        --- exit 1
        ");
    assert_eq!(sb.ls("b"), ["dinner@example.org.ics", LUNCH_FILE]);
    assert_eq!(
        sb.state("b")[LUNCH_FILE],
        b[LUNCH_FILE],
        "nothing written for the duplicated UID"
    );
    assert_eq!(
        sb.ls("a"),
        ["dinner.ics", "lunch-copy.ics", "lunch.ics"],
        "nothing deleted"
    );

    // New on a only, twice: nothing created on b.
    sb.write("a/x1.ics", event("twice@example.org", "One"));
    sb.write("a/x2.ics", event("twice@example.org", "Two"));
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("[TMP]/a/x1.ics, [TMP]/a/x2.ics"),
        "both paths named: {}",
        run.stderr
    );
    assert!(!sb.ls("b").iter().any(|n| n.starts_with("twice")));
}

#[test]
fn malformed_items_are_named_with_their_line_and_the_rest_syncs() {
    let sb = setup("");
    let good = event(LUNCH, "Lunch");
    sb.write("a/good.ics", &good);
    let missing_end = event("broken@example.org", "Broken").replace("END:VCALENDAR\r\n", "");
    sb.write("a/missing-end.ics", missing_end);
    let mut not_utf8 = event("latin1@example.org", "Caf").into_bytes();
    let at = not_utf8
        .windows(4)
        .position(|w| w == b"Caf\r")
        .expect("summary")
        + 3;
    not_utf8.insert(at, 0xE9); // "Café" in Latin-1
    sb.write("a/not-utf8.ics", not_utf8);
    sb.write(
        "a/no-begin.ics",
        "VERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n",
    );
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        cal: 1 created, 0 updated, 0 deleted, 0 conflicts, 3 errors
        --- stderr
        error: cal: [TMP]/a/missing-end.ics: line 30: BEGIN:VCALENDAR is never ended
        error: cal: [TMP]/a/not-utf8.ics: line 27: not valid UTF-8
        error: cal: [TMP]/a/no-begin.ics: line 1: expected BEGIN:VCALENDAR or BEGIN:VCARD
        davsync: some items or collections were left unsynced
        --- exit 1
        ");
    assert_eq!(sb.ls("b"), [LUNCH_FILE]);
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), good.as_bytes());
}

#[test]
fn synced_item_that_becomes_malformed_is_not_deleted_on_the_other_side() {
    let sb = synced(&[
        ("lunch.ics", &event(LUNCH, "Lunch")),
        ("keep.ics", &event("keep@example.org", "Keep")),
    ]);
    let b = sb.state("b");
    // Truncated by a crashing editor.
    sb.write(
        "a/lunch.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:lunch@exa",
    );
    for _ in 0..2 {
        let run = sb.run(&["sync"]);
        run.expect_code(1);
        assert!(
            run.stderr.contains("[TMP]/a/lunch.ics: line 4"),
            "{}",
            run.stderr
        );
        assert_eq!(sb.state("b"), b, "b's copy is neither deleted nor changed");
    }
    // Repaired: it syncs again.
    let repaired = event(LUNCH, "Lunch, repaired");
    sb.write("a/lunch.ics", &repaired);
    sb.run(&["sync"]).success();
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), repaired.as_bytes());
}

#[test]
fn emptied_side_is_refused_unless_forced() {
    let sb = setup("");
    sb.write("a/lunch.ics", event(LUNCH, "Lunch"));
    sb.write("a/keep.ics", event("keep@example.org", "Keep"));
    sb.run(&["sync"]).success();
    sb.remove("a/lunch.ics");
    sb.remove("a/keep.ics");
    let b = sb.state("b");
    let run = sb.run(&["sync"]);
    insta::assert_snapshot!(run.both(), @r"
        --- stderr
        error: cal: not synced: side a lists no items but 2 were synced before; refusing to delete them on side b; run with --force-delete if the side really was emptied
        davsync: some items or collections were left unsynced
        --- exit 1
        ");
    assert_eq!(sb.state("b"), b, "b untouched");

    let run = sb.run(&["sync", "--force-delete", "cal"]);
    run.success();
    run.expect_stdout("cal: 0 created, 0 updated, 2 deleted");
    assert!(sb.ls("b").is_empty());
    assert_eq!(status_items(&sb), 0);
}

#[test]
fn hostile_uids_never_name_a_file_outside_the_collection() {
    let sb = setup("");
    let long = "x".repeat(300);
    let uids = ["../../etc/x", "a/b", ".hidden", long.as_str(), "/abs/olute"];
    for (i, uid) in uids.iter().enumerate() {
        sb.write(
            &format!("a/item{i}.ics"),
            event(uid, &format!("Hostile {i}")),
        );
    }
    let before: Vec<String> = sb.ls("");
    sb.run(&["sync"]).success();
    let names = sb.ls("b");
    assert_eq!(names.len(), uids.len(), "{names:?}");
    for name in &names {
        assert!(!name.contains('/'), "{name}");
        assert!(!name.starts_with('.'), "{name}");
        assert!(name.len() <= 200, "{name}");
        assert!(name.ends_with(".ics"), "{name}");
        assert!(sb.path("b").join(name).is_file(), "{name}");
    }
    // Nothing appeared beside the collections (only the status directory is new).
    let mut after = sb.ls("");
    after.retain(|n| n != "status");
    assert_eq!(after, before);
    assert!(!sb.exists("etc"));
    assert!(sb.ls("b").iter().all(|n| !sb.path("b").join(n).is_dir()));
    // Every copy carries its UID.
    let contents: Vec<String> = names
        .iter()
        .map(|n| sb.read_string(&format!("b/{n}")))
        .collect();
    for uid in uids {
        assert!(
            contents
                .iter()
                .any(|c| c.contains(&format!("UID:{uid}\r\n"))),
            "{uid}"
        );
    }
    // And a second run is quiet.
    let again = sb.run(&["sync"]);
    again.expect_stdout("cal: in sync");
}

#[test]
fn items_without_uid_sync_by_content() {
    let sb = setup("");
    let note = event_without_uid("Note without UID");
    sb.write("a/note.ics", &note);
    sb.write("b/other.ics", event_without_uid("Another one"));
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 2 created, 0 updated, 0 deleted");
    let on_b: Vec<String> = sb
        .ls("b")
        .into_iter()
        .filter(|n| n != "other.ics")
        .collect();
    assert_eq!(on_b.len(), 1);
    assert_eq!(sb.read(&format!("b/{}", on_b[0])), note.as_bytes());
    assert_eq!(sb.ls("a").len(), 2);

    // Quiet second run; an edit is a deletion plus a creation.
    let again = sb.run(&["sync"]);
    again.expect_stdout("cal: in sync");
    let edited = event_without_uid("Note without UID, edited");
    sb.write("a/note.ics", &edited);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 1 created, 0 updated, 1 deleted");
    let on_b: Vec<String> = sb
        .ls("b")
        .into_iter()
        .filter(|n| n != "other.ics")
        .collect();
    assert_eq!(on_b.len(), 1);
    assert_eq!(sb.read(&format!("b/{}", on_b[0])), edited.as_bytes());
}

#[test]
fn items_without_uid_are_named_by_their_file_in_the_plan() {
    let sb = setup("");
    sb.write("a/note.ics", event_without_uid("Note without UID"));
    sb.write("b/other.ics", event_without_uid("Another one"));
    sb.run(&["sync"]).success();
    sb.write("a/note.ics", event_without_uid("Note without UID, edited"));
    sb.write("a/new.ics", event_without_uid("New note"));
    let run = sb.run(&["sync", "--dry-run"]);
    let plan: Vec<&str> = run.stdout.lines().collect();
    assert!(!run.stdout.contains("sha256:"), "{}", run.stdout);
    for line in [
        "cal: create new.ics (no UID): a → b (new on a as new.ics)",
        "cal: create note.ics (no UID): a → b (new on a as note.ics)",
    ] {
        assert!(plan.contains(&line), "{line:?} not in {plan:#?}");
    }
    // The old version's copy on b is deleted, named by its file there.
    let deleted = plan
        .iter()
        .find(|l| l.starts_with("cal: delete "))
        .unwrap_or_else(|| panic!("no deletion in {plan:#?}"));
    assert!(
        deleted.ends_with(".ics (no UID): on b (deleted on a)"),
        "{deleted}"
    );
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let sb = setup("");
    sb.write("a/lunch.ics", event(LUNCH, "Lunch"));
    sb.write("a/keep.ics", event("keep@example.org", "Keep"));
    sb.write("a/gone.ics", event("gone@example.org", "Gone"));
    sb.write("a/conflict.ics", event("conflict@example.org", "On A"));
    sb.write("b/conflict.ics", event("conflict@example.org", "On B"));
    sb.write("b/dinner.ics", event("dinner@example.org", "Dinner"));
    sb.run(&["sync"]).expect_code(1);
    sb.write("a/lunch.ics", event(LUNCH, "Lunch, later"));
    sb.remove("b/gone@example.org.ics");
    sb.write("b/new.ics", event("new@example.org", "New"));
    let (a, b, status) = (sb.state("a"), sb.state("b"), sb.state("status"));
    let run = sb.run(&["sync", "--dry-run"]);
    insta::assert_snapshot!(run.both(), @r"
        cal: conflict conflict@example.org: created differently on both sides
        cal: delete gone@example.org: on a (deleted on b)
        cal: update lunch@example.org: a → b (changed on a)
        cal: create new@example.org: b → a (new on b as new.ics)
        cal: would be: 1 created, 1 updated, 1 deleted, 1 conflicts, 0 errors
        --- stderr
        conflict: cal: conflict@example.org: created differently on both sides: a [TMP]/a/conflict.ics, b [TMP]/b/conflict.ics; make both the same, or set the pair's conflict_resolution
        davsync: some items or collections were left unsynced
        --- exit 1
        ");
    assert_eq!(sb.state("a"), a);
    assert_eq!(sb.state("b"), b);
    assert_eq!(
        sb.state("status").keys().collect::<Vec<_>>(),
        status.keys().collect::<Vec<_>>()
    );
}

#[test]
fn dry_run_on_a_fresh_pair_creates_no_items_and_no_collections() {
    let sb = Sandbox::new();
    sb.mkdir("a/work");
    sb.mkdir("b");
    sb.write("a/work/lunch.ics", event(LUNCH, "Lunch"));
    sb.write_config(
        r#"status_path = "{root}/status"
[storage.laptop]
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
collections = "from a"
"#,
    );
    let run = sb.run(&["sync", "--dry-run"]);
    insta::assert_snapshot!(run.both(), @r"
        cal/work: create lunch@example.org: a → b (new on a as lunch.ics)
        cal/work: would be: 1 created, 0 updated, 0 deleted, 0 conflicts, 0 errors; collection created on b
        --- exit 0
        ");
    assert!(sb.ls("b").is_empty(), "no collection created on b");
    assert_eq!(sb.ls("a/work"), ["lunch.ics"]);
    // A dry run of a pair that never synced leaves no status database behind either.
    assert!(!sb.exists("status"), "no status directory created");
    let status = sb.run(&["status"]);
    insta::assert_snapshot!(status.both(), @"
    cal: never synced
    --- exit 0
    ");
}

#[test]
fn status_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let sb = synced(&[("lunch.ics", &event(LUNCH, "Lunch"))]);
    let mode = std::fs::metadata(sb.path("status/cal.db"))
        .expect("status database exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn edits_after_time_passes_are_still_seen() {
    // Version tags turn from weak to strong after two seconds; a run in between must neither
    // write anything nor miss a later edit.
    let sb = synced(&[("lunch.ics", &event(LUNCH, "Lunch"))]);
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    set_mtime(&sb.path("a/lunch.ics"), old);
    let b = sb.state("b");
    let run = sb.run(&["sync"]);
    run.expect_stdout("cal: in sync");
    assert_eq!(sb.state("b"), b);
    let edited = event(LUNCH, "Lunch, edited");
    sb.write("a/lunch.ics", &edited);
    sb.run(&["sync"]).success();
    assert_eq!(sb.read(&format!("b/{LUNCH_FILE}")), edited.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// Content that only looks different
// ---------------------------------------------------------------------------------------------

/// An event with attendees, as a client writes it.
fn meeting(uid: &str, summary: &str) -> String {
    common::crlf(&[
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Client//EN",
        "BEGIN:VEVENT",
        &format!("UID:{uid}"),
        "DTSTAMP:20240101T000000Z",
        "DTSTART;TZID=Europe/Berlin:20240102T100000",
        &format!("SUMMARY:{summary}"),
        "ORGANIZER;CN=Boss:mailto:boss@example.org",
        "ATTENDEE;CN=\"Doe, Jane\";PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:jane@example.org",
        "ATTENDEE;CN=Ann:mailto:ann@example.org",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "TRIGGER:-PT15M",
        "END:VALARM",
        "END:VEVENT",
        "END:VCALENDAR",
    ])
}

/// The same event as a server that stores every default stores it: default properties and
/// parameters added, parameters reordered, re-quoted and re-cased, LF line ends, new DTSTAMP.
fn meeting_as_stored(uid: &str, summary: &str) -> String {
    [
        "BEGIN:VCALENDAR",
        "PRODID:-//Server//EN",
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "BEGIN:VEVENT",
        &format!("UID:{uid}"),
        "DTSTAMP:20250505T050505Z",
        "SEQUENCE:0",
        "CLASS:PUBLIC",
        "TRANSP:OPAQUE",
        "DTSTART;VALUE=DATE-TIME;TZID=Europe/Berlin:20240102T100000",
        &format!("SUMMARY;VALUE=TEXT:{summary}"),
        "ORGANIZER;CN=\"Boss\";CUTYPE=INDIVIDUAL:mailto:boss@example.org",
        "ATTENDEE;rsvp=true;partstat=accepted;ROLE=REQ-PARTICIPANT;CUTYPE=INDIVIDUAL;CN=\"Doe, Jane\":mailto:jane@example.org",
        "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE;CN=Ann:mailto:ann@example.org",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "TRIGGER;VALUE=DURATION;RELATED=START:-PT15M",
        "REPEAT:0",
        "END:VALARM",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    .join("\n")
}

#[test]
fn defaulted_copies_after_an_interrupted_first_sync_converge_without_conflicts() {
    // A first sync uploaded every item to a server that stores defaults, and was interrupted
    // before it recorded anything: side b holds the stored form of every item.
    let sb = setup("");
    for i in 0..5 {
        let uid = format!("meeting-{i}@example.org");
        sb.write(
            &format!("a/{i}.ics"),
            meeting(&uid, &format!("Meeting {i}")),
        );
        sb.write(
            &format!("b/{i}.ics"),
            meeting_as_stored(&uid, &format!("Meeting {i}")),
        );
    }
    let (a, b) = (sb.state("a"), sb.state("b"));
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: in sync");
    assert_eq!(sb.state("a"), a, "nothing written on a");
    assert_eq!(sb.state("b"), b, "nothing written on b");
    assert_eq!(status_items(&sb), 5);
    // A real change to what the server defaulted still travels.
    let private = meeting_as_stored("meeting-0@example.org", "Meeting 0")
        .replace("CLASS:PUBLIC", "CLASS:PRIVATE");
    sb.write("b/0.ics", &private);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 1 updated, 0 deleted, 0 conflicts");
    assert_eq!(sb.read_string("a/0.ics"), private);
}

/// Rewrites the status of pair `cal` as davsync wrote it before the hash recognized default
/// values: every hash (and the ident of an item without UID) of the older definition.
fn downgrade_status_hashes(sb: &Sandbox, contents: &[&str]) {
    let db = rusqlite::Connection::open(sb.path("status/cal.db")).expect("status opens");
    for content in contents {
        let new = davsync::vobject::normalized_hash(content.as_bytes());
        let old = davsync::vobject::legacy_hash(content.as_bytes());
        assert_ne!(
            new, old,
            "the test item must hash differently under both definitions"
        );
        let changed = db
            .execute(
                "UPDATE items SET a_hash = ?2, b_hash = ?2,
                     ident = CASE WHEN ident = 'sha256:' || ?1 THEN 'sha256:' || ?2 ELSE ident END
                 WHERE a_hash = ?1 AND b_hash = ?1",
                [&new, &old],
            )
            .expect("status updates");
        assert_eq!(changed, 1);
    }
}

#[test]
fn status_hashes_from_before_defaults_were_recognized_make_no_conflict_or_rewrite() {
    let lunch = meeting(LUNCH, "Lunch");
    let note = meeting("", "Note").replace("UID:\r\n", "");
    let sb = synced(&[("lunch.ics", &lunch), ("note.ics", &note)]);
    downgrade_status_hashes(&sb, &[&lunch, &note]);
    // Both files on a get a new version tag with the same content, and lunch is really edited
    // on b: a is unchanged, so b's edit travels; the note stays where it is on b.
    touch(&sb.path("a/lunch.ics"));
    touch(&sb.path("a/note.ics"));
    let edited = meeting(LUNCH, "Lunch, moved");
    sb.write(&format!("b/{LUNCH_FILE}"), &edited);
    let b = sb.state("b");
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 1 updated, 0 deleted, 0 conflicts, 0 errors");
    assert_eq!(sb.read_string("a/lunch.ics"), edited);
    assert_eq!(sb.state("b"), b, "nothing written on b");
    assert_eq!(status_items(&sb), 2);
    let again = sb.run(&["sync"]);
    again.expect_stdout("cal: in sync");
}
