//! The vdir hooks (`post_hook`, `pre_deletion_hook`) and the pair's `post_sync` through the
//! binary, on two vdirs: what each hook is given, when it runs, what a failing hook does to the
//! exit status and to the rest of the sync, and that `--dry-run` runs none.

mod common;

use common::{Sandbox, event, totals};

/// Config text for storages `laptop` (`{root}/a`) and `backup` (`{root}/b`) with `laptop` and
/// `backup` appended to their tables, and pair `cal` with `pair`.
fn config(laptop: &str, backup: &str, pair: &str) -> String {
    format!(
        r#"status_path = "{{root}}/status"

[storage.laptop]
type = "vdir"
path = "{{root}}/a"
fileext = ".ics"
{laptop}

[storage.backup]
type = "vdir"
path = "{{root}}/b"
fileext = ".ics"
{backup}

[pair.cal]
a = "laptop"
b = "backup"
{pair}
"#
    )
}

fn sandbox(laptop: &str, backup: &str, pair: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.mkdir("a");
    sb.mkdir("b");
    sb.write_config(&config(laptop, backup, pair));
    sb
}

/// A hook that appends `TAG <its last argument>` to `{root}/hooks.log`, after checking that the
/// file it is given exists.
fn logging_hook(key: &str, tag: &str) -> String {
    format!(
        r#"{key} = ["sh", "-c", "test -f \"$1\" && echo {tag} \"$1\" >> {{root}}/hooks.log", "hook"]"#
    )
}

#[test]
fn post_hook_gets_each_written_path() {
    let sb = sandbox(
        &logging_hook("post_hook", "a"),
        &logging_hook("post_hook", "b"),
        "",
    );
    sb.write("a/one.ics", event("one", "One"));
    sb.write("a/two.ics", event("two", "Two"));
    assert_eq!(totals(sb.run(&["sync"]).success()), (2, 0, 0));
    assert_eq!(
        sb.normalize(&sb.read_string("hooks.log")),
        "b [TMP]/b/one.ics\nb [TMP]/b/two.ics\n"
    );
    // An update on b runs it on a.
    sb.write("b/one.ics", event("one", "One, moved"));
    assert_eq!(totals(sb.run(&["sync"]).success()), (0, 1, 0));
    let log = sb.normalize(&sb.read_string("hooks.log"));
    assert_eq!(
        log,
        "b [TMP]/b/one.ics\nb [TMP]/b/two.ics\na [TMP]/a/one.ics\n"
    );
}

#[test]
fn pre_deletion_hook_runs_before_the_file_is_gone() {
    let sb = sandbox(
        "",
        r#"pre_deletion_hook = ["cp", "-t", "{root}/trash"]"#,
        "",
    );
    sb.mkdir("trash");
    let one = event("one", "One");
    sb.write("a/one.ics", &one);
    sb.write("a/two.ics", event("two", "Two"));
    sb.run(&["sync"]).success();
    assert!(sb.ls("trash").is_empty(), "no hook without a deletion");
    sb.remove("a/one.ics");
    assert_eq!(totals(sb.run(&["sync"]).success()), (0, 0, 1));
    assert_eq!(sb.ls("b"), ["two.ics"]);
    assert_eq!(sb.ls("trash"), ["one.ics"]);
    assert_eq!(
        sb.read_string("trash/one.ics"),
        one,
        "the hook saw the file"
    );
}

#[test]
fn a_failing_pre_deletion_hook_keeps_the_file_and_the_deletion_waits() {
    let sb = sandbox(
        "",
        r#"pre_deletion_hook = ["sh", "-c", "echo backup disk missing >&2; exit 4", "backup"]"#,
        "",
    );
    sb.write("a/one.ics", event("one", "One"));
    sb.run(&["sync"]).success();
    sb.remove("a/one.ics");
    sb.write("a/two.ics", event("two", "Two"));
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "error: cal: not deleted on b: [TMP]/b/one.ics: refused: pre_deletion_hook \
             \"sh -c echo backup disk missing >&2; exit 4 backup\": exited with status 4: \
             backup disk missing"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        sb.ls("b"),
        ["one.ics", "two.ics"],
        "kept, and the rest synced"
    );
    // Once the hook works, the next sync makes the deletion.
    sb.write_config(&config("", "", ""));
    assert_eq!(totals(sb.run(&["sync"]).success()), (0, 0, 1));
    assert_eq!(sb.ls("b"), ["two.ics"]);
}

#[test]
fn a_failing_post_hook_is_reported_and_the_writes_stand() {
    let sb = sandbox(
        "",
        r#"post_hook = ["sh", "-c", "echo not a git repository >&2; exit 3", "git"]"#,
        "",
    );
    sb.write("a/one.ics", event("one", "One"));
    sb.write("a/two.ics", event("two", "Two"));
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    for name in ["one", "two"] {
        let message = format!(
            "error: cal: post_hook \"sh -c echo not a git repository >&2; exit 3 git\" on \
             [TMP]/b/{name}.ics: exited with status 3: not a git repository"
        );
        assert!(run.stderr.contains(&message), "{}", run.stderr);
    }
    run.expect_stdout("cal: 2 created, 0 updated, 0 deleted, 0 conflicts, 2 errors");
    assert_eq!(sb.ls("b"), ["one.ics", "two.ics"]);
    // The writes were recorded: the next sync has nothing to do (and runs no hook).
    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(totals(&run), (0, 0, 0));
    assert_eq!(sb.status_items("cal"), 2);
}

#[test]
fn a_hook_that_cannot_start_is_reported() {
    let sb = sandbox("", r#"post_hook = ["/nonexistent/hook"]"#, "");
    sb.write("a/one.ics", event("one", "One"));
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "error: cal: post_hook \"/nonexistent/hook\" on [TMP]/b/one.ics: could not start: \
             No such file or directory"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(sb.ls("b"), ["one.ics"]);
}

#[test]
fn post_sync_gets_the_counts() {
    let sb = sandbox(
        "",
        "",
        r#"post_sync = ["sh", "-c", "env | grep ^DAVSYNC_ | grep -v ^DAVSYNC_CONFIG= | sort >> {root}/post_sync.env; echo ---  >> {root}/post_sync.env"]"#,
    );
    sb.write("a/one.ics", event("one", "One"));
    sb.write("a/two.ics", event("two", "Two"));
    sb.run(&["sync"]).success();
    sb.write("a/one.ics", event("one", "One, edited"));
    sb.remove("b/two.ics");
    sb.write("a/three.ics", event("three", "Three"));
    sb.write("b/three.ics", event("three", "Three, differently"));
    sb.run(&["sync"]).expect_code(1);
    assert_eq!(
        sb.read_string("post_sync.env"),
        "DAVSYNC_CLEAN=1\nDAVSYNC_COLLECTIONS=1\nDAVSYNC_CONFLICTS=0\nDAVSYNC_CREATED=2\n\
         DAVSYNC_DELETED=0\nDAVSYNC_ERRORS=0\nDAVSYNC_PAIR=cal\nDAVSYNC_UPDATED=0\n---\n\
         DAVSYNC_CLEAN=0\nDAVSYNC_COLLECTIONS=1\nDAVSYNC_CONFLICTS=1\nDAVSYNC_CREATED=0\n\
         DAVSYNC_DELETED=1\nDAVSYNC_ERRORS=0\nDAVSYNC_PAIR=cal\nDAVSYNC_UPDATED=1\n---\n"
    );
}

#[test]
fn a_failing_post_sync_makes_the_exit_status_1() {
    let sb = sandbox("", "", r#"post_sync = ["false"]"#);
    sb.write("a/one.ics", event("one", "One"));
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("error: cal: post_sync \"false\": exited with status 1"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.ls("b"), ["one.ics"]);
}

#[test]
fn dry_run_runs_no_hook() {
    let sb = sandbox(
        &format!(
            "{}\n{}",
            logging_hook("post_hook", "a"),
            logging_hook("pre_deletion_hook", "a-deleting")
        ),
        &format!(
            "{}\n{}",
            logging_hook("post_hook", "b"),
            logging_hook("pre_deletion_hook", "b-deleting")
        ),
        r#"post_sync = ["sh", "-c", "echo post_sync >> {root}/hooks.log"]"#,
    );
    sb.write("a/one.ics", event("one", "One"));
    sb.write("a/two.ics", event("two", "Two"));
    sb.run(&["sync"]).success();
    sb.remove("hooks.log");
    sb.remove("a/one.ics");
    sb.write("b/two.ics", event("two", "Two, edited"));
    sb.write("b/three.ics", event("three", "Three"));
    let before = (sb.state("a"), sb.state("b"));
    let run = sb.run(&["sync", "--dry-run"]);
    run.success();
    run.expect_stdout("cal: would be: 1 created, 1 updated, 1 deleted");
    assert!(!sb.exists("hooks.log"), "no hook ran");
    assert_eq!((sb.state("a"), sb.state("b")), before);
    // The real run runs each of them once.
    sb.run(&["sync"]).success();
    let mut log: Vec<String> = sb
        .normalize(&sb.read_string("hooks.log"))
        .lines()
        .map(str::to_owned)
        .collect();
    log.sort();
    assert_eq!(
        log,
        [
            "a [TMP]/a/three.ics",
            "a [TMP]/a/two.ics",
            "b-deleting [TMP]/b/one.ics",
            "post_sync"
        ]
    );
}
