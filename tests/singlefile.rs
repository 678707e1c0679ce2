//! Scenario tests of the `singlefile` storage through the binary: a whole `.ics` file synced
//! with a vdir both ways, a malformed item named by its line while the rest syncs and its bytes
//! stay, collections from a `%s` path, a second sync that writes nothing, a missing file, and
//! khal reading the vdir a file filled.

mod common;
#[path = "dav_support/venv.rs"]
mod venv;

use common::{Sandbox, crlf, mtime, vcard};

/// One VEVENT component on a January 2026 day (UTC), for khal.
fn vevent(uid: &str, summary: &str, day: u32) -> String {
    crlf(&[
        "BEGIN:VEVENT",
        &format!("UID:{uid}"),
        "DTSTAMP:20251201T000000Z",
        &format!("DTSTART;TZID=Europe/Berlin:202601{day:02}T100000"),
        &format!("DTEND;TZID=Europe/Berlin:202601{day:02}T110000"),
        &format!("SUMMARY:{summary}"),
        "END:VEVENT",
    ])
}

const BERLIN: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\n\
DTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n\
END:VTIMEZONE\r\n";

/// A calendar file holding `components`, with a VTIMEZONE and a name.
fn calendar(components: &[String]) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//someone//EN\r\nX-WR-CALNAME:Work\r\n{BERLIN}{}\
END:VCALENDAR\r\n",
        components.concat()
    )
}

/// A sandbox with pair `cal`: side A the file `work.ics`, side B the vdir `b`.
fn setup(file: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write("work.ics", file);
    sb.mkdir("b");
    sb.write_config(&sb.expand(
        r#"status_path = "{root}/status"

[storage.file]
type = "singlefile"
path = "{root}/work.ics"

[storage.dir]
type = "vdir"
path = "{root}/b"
fileext = ".ics"

[pair.cal]
a = "file"
b = "dir"
"#,
    ));
    sb
}

fn read(sb: &Sandbox, rel: &str) -> String {
    sb.read_string(rel)
}

#[test]
fn first_sync_fills_the_vdir_and_khal_reads_it() {
    let over = crlf(&[
        "BEGIN:VEVENT",
        "UID:standup",
        "RECURRENCE-ID;TZID=Europe/Berlin:20260107T100000",
        "DTSTART;TZID=Europe/Berlin:20260107T120000",
        "SUMMARY:Standup moved",
        "END:VEVENT",
    ]);
    let mut master = vevent("standup", "Standup", 5);
    master = master.replace("SUMMARY", "RRULE:FREQ=DAILY;COUNT=5\r\nSUMMARY");
    let file = calendar(&[
        master,
        vevent("dentist", "Dentist appointment", 12),
        over,
        vevent("planning", "Quarterly planning", 20),
    ]);
    let sb = setup(&file);
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("b"), ["dentist.ics", "planning.ics", "standup.ics"]);
    let standup = read(&sb, "b/standup.ics");
    assert!(standup.contains("Standup moved") && standup.contains("TZID:Europe/Berlin"));
    assert_eq!(read(&sb, "work.ics"), file, "the file is not written");

    let khal_config = sb.write(
        "home/.config/khal/config",
        format!(
            "[calendars]\n[[work]]\npath = {}\ntype = calendar\n\n[locale]\n\
             timeformat = %H:%M\ndateformat = %Y-%m-%d\nlongdateformat = %Y-%m-%d\n\
             datetimeformat = %Y-%m-%d %H:%M\nlongdatetimeformat = %Y-%m-%d %H:%M\n\
             default_timezone = UTC\nlocal_timezone = UTC\n",
            sb.path("b").display()
        ),
    );
    let out = venv::tool_output(
        "khal",
        &sb.home(),
        &khal_config,
        &["list", "2026-01-01", "30d"],
    );
    for summary in [
        "Dentist appointment",
        "Quarterly planning",
        "Standup",
        "Standup moved",
    ] {
        assert!(out.contains(summary), "khal list lacks {summary:?}:\n{out}");
    }
    assert!(out.contains("2026-01-12"), "{out}");
}

#[test]
fn edits_and_deletions_go_both_ways_and_a_second_sync_writes_nothing() {
    let file = calendar(&[
        vevent("one", "One", 1),
        vevent("two", "Two", 2),
        vevent("three", "Three", 3),
        vevent("four", "Four", 4),
    ]);
    let sb = setup(&file);
    sb.run(&["sync"]).success();

    // In the file: "one" edited, "three" deleted. In the vdir: "two" edited, "four" deleted,
    // "five" new.
    let edited = file
        .replace("SUMMARY:One", "SUMMARY:One edited in the file")
        .replace(&vevent("three", "Three", 3), "");
    sb.write("work.ics", &edited);
    let two = read(&sb, "b/two.ics").replace("SUMMARY:Two", "SUMMARY:Two edited in the vdir");
    sb.write("b/two.ics", &two);
    sb.remove("b/four.ics");
    sb.write(
        "b/five.ics",
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{}END:VCALENDAR\r\n",
            vevent("five", "Five", 5)
        ),
    );
    sb.run(&["sync"]).success();

    assert_eq!(sb.ls("b"), ["five.ics", "one.ics", "two.ics"]);
    assert!(read(&sb, "b/one.ics").contains("One edited in the file"));
    let now = read(&sb, "work.ics");
    let expected = edited
        .replace(
            &vevent("two", "Two", 2),
            &vevent("two", "Two edited in the vdir", 2),
        )
        .replace(&vevent("four", "Four", 4), "")
        .replace(
            "END:VCALENDAR\r\n",
            &format!("{}END:VCALENDAR\r\n", vevent("five", "Five", 5)),
        );
    assert_eq!(now, expected);

    // Nothing changed since: no write on either side.
    let (file_mtime, vdir) = (mtime(&sb.path("work.ics")), sb.state("b"));
    sb.run(&["sync"]).success();
    assert_eq!(mtime(&sb.path("work.ics")), file_mtime);
    assert_eq!(sb.state("b"), vdir);
    assert_eq!(read(&sb, "work.ics"), expected);
}

#[test]
fn a_malformed_item_is_named_with_its_line_and_keeps_its_bytes() {
    let bad = crlf(&[
        "BEGIN:VEVENT",
        "UID:bad",
        "SUMMARY:fine",
        "this line is broken",
        "END:VEVENT",
    ]);
    let file = calendar(&[vevent("good", "Good", 1), bad.clone()]);
    let sb = setup(&file);
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    // Line 23 of the file is the broken line; the item starts on line 20.
    assert!(
        run.both()
            .contains("work.ics: item at line 20: line 23: not a content line"),
        "{}",
        run.both()
    );
    assert_eq!(sb.ls("b"), ["good.ics"]);

    // A new item from the vdir is written into the file; the broken item stays as it was.
    sb.write(
        "b/new.ics",
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{}END:VCALENDAR\r\n",
            vevent("new", "New", 9)
        ),
    );
    sb.run(&["sync"]).expect_code(1);
    let now = read(&sb, "work.ics");
    assert!(now.contains(&bad), "{now}");
    assert!(now.contains("UID:new"));
    assert_eq!(sb.ls("b"), ["good.ics", "new.ics"]);

    // Repaired in the file, it syncs.
    sb.write("work.ics", now.replace("this line is broken\r\n", ""));
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("b"), ["bad.ics", "good.ics", "new.ics"]);
}

#[test]
fn an_item_deleted_from_the_file_while_another_is_malformed_is_not_confused_with_it() {
    let file = calendar(&[vevent("keep", "Keep", 1), vevent("bad", "Bad", 2)]);
    let sb = setup(&file);
    sb.run(&["sync"]).success();
    // "bad" breaks: it is unreadable, never deleted on the other side.
    sb.write(
        "work.ics",
        file.replace("SUMMARY:Bad", "SUMMARY:Bad\r\nbroken"),
    );
    sb.run(&["sync"]).expect_code(1);
    assert_eq!(sb.ls("b"), ["bad.ics", "keep.ics"]);
}

#[test]
fn collections_are_the_files_of_a_pattern() {
    let sb = Sandbox::new();
    sb.write("cals/home.ics", calendar(&[vevent("h", "Home", 1)]));
    sb.write("cals/work.ics", calendar(&[vevent("w", "Work", 2)]));
    sb.write(
        "vdir/extra/x.ics",
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{}END:VCALENDAR\r\n",
            vevent("x", "Extra", 3)
        ),
    );
    sb.write_config(&sb.expand(
        r#"status_path = "{root}/status"

[storage.files]
type = "singlefile"
path = "{root}/cals/%s.ics"

[storage.dir]
type = "vdir"
path = "{root}/vdir"
fileext = ".ics"

[pair.cals]
a = "files"
b = "dir"
collections = "all"
"#,
    ));
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("vdir"), ["extra", "home", "work"]);
    assert_eq!(sb.ls("vdir/home"), ["h.ics"]);
    assert_eq!(sb.ls("cals"), ["extra.ics", "home.ics", "work.ics"]);
    assert!(read(&sb, "cals/extra.ics").contains("SUMMARY:Extra"));
    let files = sb.state("cals");
    sb.run(&["sync"]).success();
    assert_eq!(sb.state("cals"), files);
}

#[test]
fn a_missing_file_is_created_on_a_first_sync_only() {
    let sb = setup("");
    sb.remove("work.ics");
    sb.write(
        "b/one.ics",
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{}END:VCALENDAR\r\n",
            vevent("one", "One", 1)
        ),
    );
    sb.run(&["sync"]).success();
    assert!(read(&sb, "work.ics").contains("UID:one"));

    sb.remove("work.ics");
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.both().contains("missing — unmounted?"),
        "{}",
        run.both()
    );
    assert!(!sb.exists("work.ics"));
    assert!(sb.exists("b/one.ics"));
}

#[test]
fn an_address_book_file_syncs_cards() {
    let sb = Sandbox::new();
    sb.write(
        "people.vcf",
        format!(
            "{}{}",
            vcard("p1", "Grace Hopper"),
            vcard("p2", "Alan Turing")
        ),
    );
    sb.mkdir("b");
    sb.write_config(&sb.expand(
        r#"status_path = "{root}/status"

[storage.file]
type = "singlefile"
path = "{root}/people.vcf"

[storage.dir]
type = "vdir"
path = "{root}/b"
fileext = ".vcf"

[pair.people]
a = "file"
b = "dir"
"#,
    ));
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("b"), ["p1.vcf", "p2.vcf"]);
    sb.write("b/p3.vcf", vcard("p3", "Ada Lovelace"));
    sb.run(&["sync"]).success();
    let file = read(&sb, "people.vcf");
    assert_eq!(
        file,
        format!(
            "{}{}{}",
            vcard("p1", "Grace Hopper"),
            vcard("p2", "Alan Turing"),
            vcard("p3", "Ada Lovelace")
        )
    );
}

#[test]
fn an_event_without_uid_is_known_by_its_content() {
    let no_uid = vevent("x", "No UID", 3).replace("UID:x\r\n", "");
    let sb = setup(&calendar(&[no_uid.clone(), vevent("one", "One", 1)]));
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("b").len(), 2);
    let (file, vdir) = (sb.state("."), sb.state("b"));
    sb.run(&["sync"]).success();
    assert_eq!(sb.state("b"), vdir);
    assert_eq!(sb.state(".").get("work.ics"), file.get("work.ics"));

    // Edited in the vdir, it is another item: the old one goes, the new one comes.
    let name = sb
        .ls("b")
        .into_iter()
        .find(|n| n != "one.ics")
        .expect("the no-UID item");
    let edited = read(&sb, &format!("b/{name}")).replace("SUMMARY:No UID", "SUMMARY:Edited");
    sb.remove(&format!("b/{name}"));
    sb.write("b/edited.ics", &edited);
    sb.run(&["sync"]).success();
    let now = read(&sb, "work.ics");
    assert!(
        now.contains("SUMMARY:Edited") && !now.contains("SUMMARY:No UID"),
        "{now}"
    );
    let file = sb.state(".").get("work.ics").cloned();
    sb.run(&["sync"]).success();
    assert_eq!(sb.state(".").get("work.ics").cloned(), file);
}

#[test]
fn an_event_whose_uid_cannot_be_read_keeps_every_copy_until_it_is_fixed() {
    let no_uid = vevent("x", "No UID", 3).replace("UID:x\r\n", "");
    let file = calendar(&[no_uid.clone(), vevent("one", "One", 1)]);
    let sb = setup(&file);
    sb.run(&["sync"]).success();
    let vdir = sb.ls("b");
    assert_eq!(vdir.len(), 2);
    // The UID-less event breaks: without a UID nobody can tell which item it was, so the
    // vdir copy of the no-UID event is not deleted.
    sb.write(
        "work.ics",
        file.replace("SUMMARY:No UID", "SUMMARY:No UID\r\nbroken line"),
    );
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert_eq!(sb.ls("b"), vdir, "{}", run.both());
    assert!(run.both().contains("no UID can be read"), "{}", run.both());
    assert!(
        run.both()
            .contains("work.ics: item at line 13: line 18: not a content line"),
        "{}",
        run.both()
    );
    // Fixed, everything is as before and nothing was lost.
    sb.write("work.ics", &file);
    sb.run(&["sync"]).success();
    assert_eq!(sb.ls("b"), vdir);
}
