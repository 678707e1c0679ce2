//! What `-v`, `-vv` and `-vvv` add to the output, through the binary against Radicale: the
//! actions applied, one line per HTTP request (method, URL, status, time, bytes), discovery
//! details and each collection's listing method; and never a password (literal or from a
//! command), its Basic encoding or an `Authorization` header, in `sync` and `check` alike.
//! (An OAuth2 bearer token is checked the same way in `tests/google.rs`.) Then progress bars:
//! drawn on a terminal (a pty from `script`), never when stderr is not one, with `-q` or
//! while `-vv` logs to stderr.

mod common;
mod dav_support;

use std::process::{Command, Stdio};

use common::{Run, Sandbox, event};
use dav_support::{DavServer, Radicale, http::base64};

/// A sandbox with vdirs `local` (collection `work`, three events) and `local2` (collection
/// `home`, one event), CalDAV storages `server` (literal password) and `server2` (the same
/// account, password from a command reading a file), and pairs `p` (local, server) and `q`
/// (local2, server2).
fn sandbox(url: &str) -> Sandbox {
    let sb = Sandbox::new();
    for i in 0..3 {
        sb.write(
            &format!("cals/work/e{i}.ics"),
            event(&format!("e{i}"), &format!("Event {i}")),
        );
    }
    sb.write("cals2/home/h.ics", event("h", "Home"));
    sb.write("pw", format!("{}\n", Radicale::PASSWORD));
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"

[storage.local]
type = "vdir"
path = "{{root}}/cals"
fileext = ".ics"

[storage.local2]
type = "vdir"
path = "{{root}}/cals2"
fileext = ".ics"

[storage.server]
type = "caldav"
url = "{url}"
username = "{user}"
password = "{password}"

[storage.server2]
type = "caldav"
url = "{url}"
username = "{user}"
password = {{ cmd = ["cat", "{{root}}/pw"] }}

[pair.p]
a = "local"
b = "server"
collections = "from a"

[pair.q]
a = "local2"
b = "server2"
collections = "from a"
"#,
        user = Radicale::USER,
        password = Radicale::PASSWORD,
    ));
    sb
}

/// Runs davsync and asserts that neither the password, nor its Basic encoding, nor any
/// `Authorization` header shows anywhere in the output.
fn run(sb: &Sandbox, args: &[&str]) -> Run {
    let run = sb.run(args);
    let both = run.both();
    let basic = base64(format!("{}:{}", Radicale::USER, Radicale::PASSWORD).as_bytes());
    for secret in [Radicale::PASSWORD, basic.as_str()] {
        assert!(!both.contains(secret), "{secret} shows in:\n{both}");
    }
    assert!(
        !both.to_ascii_lowercase().contains("authorization"),
        "an Authorization header shows in:\n{both}"
    );
    run
}

#[test]
fn each_level_adds_its_lines_and_no_secret_shows() {
    let server = Radicale::start();
    let url = server.url();
    let home = format!("{url}{}/", Radicale::USER);
    let sb = sandbox(&url);

    // -vvv on the first sync: the requests, discovery from the configured url, listings.
    let first = run(&sb, &["-vvv", "sync"]);
    first.success();
    let err = &first.stderr;
    // One line per request: method, URL, status, time and bytes.
    for line in [
        format!("PROPFIND {url}: 207 in "),
        format!("PROPFIND {home}: 207 in "),
        format!("MKCALENDAR {home}work/: 201 in "),
        format!("PUT {home}work/e0.ics: 201 in "),
    ] {
        assert!(err.contains(&line), "no {line:?} in:\n{err}");
    }
    assert!(err.contains(" ms, ") && err.contains(" bytes"), "{err}");
    // Discovery: principal and home set, the collections found, the listing chosen.
    for line in [
        format!("{url}: principal {home}"),
        format!("home set {home}"),
        format!("{home}work/: listing: "),
    ] {
        assert!(err.contains(&line), "no {line:?} in:\n{err}");
    }
    // -v's actions are there too.
    assert!(first.stdout.contains("p/work: "), "{}", first.stdout);

    // The second run starts from the remembered home set, and sync-collection lists.
    let second = run(&sb, &["-vvv", "sync"]);
    second.success();
    let err = &second.stderr;
    for line in [
        format!("side b: discovery starts from the remembered home set {home}"),
        format!("{home}work/: listing: "),
    ] {
        assert!(err.contains(&line), "no {line:?} in:\n{err}");
    }
    assert!(!err.contains("principal"), "discovered again:\n{err}");

    // check at -vvv: the same request lines, no secret either.
    let check = run(&sb, &["-vvv", "check"]);
    check.success();
    assert!(
        check.stderr.contains(&format!("PROPFIND {home}: 207 in ")),
        "{}",
        check.both()
    );

    // -vv: requests but no discovery details; -v: neither.
    let vv = run(&sb, &["-vv", "sync"]);
    vv.success();
    assert!(vv.stderr.contains(" 207 in "), "{}", vv.stderr);
    assert!(!vv.stderr.contains("listing: "), "{}", vv.stderr);
    let v = run(&sb, &["-v", "sync"]);
    v.success();
    assert!(v.stderr.is_empty(), "{}", v.stderr);
}

/// Tests only: bars show at once instead of after a second.
const SHOW_AT_ONCE: (&str, &str) = ("DAVSYNC_TEST_PROGRESS_AFTER_MS", "0");

/// A vdir pair `p` whose first sync copies 300 events of collection `work`.
fn vdir_pair() -> Sandbox {
    let sb = Sandbox::new();
    for i in 0..300 {
        sb.write(
            &format!("a/work/e{i}.ics"),
            event(&format!("e{i}"), &format!("Event {i}")),
        );
    }
    sb.write_config(
        r#"status_path = "{root}/status"

[storage.a]
type = "vdir"
path = "{root}/a"
fileext = ".ics"

[storage.b]
type = "vdir"
path = "{root}/b"
fileext = ".ics"

[pair.p]
a = "a"
b = "b"
collections = "from a"
"#,
    );
    sb
}

/// What a terminal shows of `davsync ARGS` run in the sandbox on a pty (`script`), both
/// streams together.
fn on_a_terminal(sb: &Sandbox, args: &str) -> String {
    let davsync = sb.std_cmd();
    let mut script = Command::new("script");
    for (name, value) in davsync.get_envs() {
        match value {
            Some(value) => script.env(name, value),
            None => script.env_remove(name),
        };
    }
    let line = format!("{} {args}", davsync.get_program().to_string_lossy());
    let output = script
        .env(SHOW_AT_ONCE.0, SHOW_AT_ONCE.1)
        .current_dir(sb.root())
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{args}:\n{shown}");
    shown
}

#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    let sb = vdir_pair();
    let run = sb.run_env(&["sync"], &[SHOW_AT_ONCE]);
    run.success();
    assert_eq!(
        run.stderr, "",
        "stderr of a run that went well, not on a terminal"
    );
    insta::assert_snapshot!(run.stdout, @r"
    p: created [TMP]/b (did not exist yet)
    p/work: 300 created, 0 updated, 0 deleted, 0 conflicts, 0 errors; collection created on b
    ");
}

#[test]
fn a_progress_bar_on_a_terminal_but_not_with_q_or_vv() {
    let shown = on_a_terminal(&vdir_pair(), "sync");
    assert!(shown.contains("p/work: applying ["), "{shown}");
    assert!(shown.contains("/300 ("), "{shown}");
    assert!(shown.contains("p/work: 300 created"), "{shown}");
    for quieter in ["-q sync", "-vv sync"] {
        let shown = on_a_terminal(&vdir_pair(), quieter);
        assert!(!shown.contains(" ["), "{quieter}:\n{shown}");
    }
}

/// The library's progress reports: fetching in chunks up to all the items to fetch, then one
/// count per action applied, each phase ending at its total.
#[test]
fn the_library_counts_fetching_and_applying() {
    use davsync::config::CollectionsSpec;
    use davsync::status::StatusDb;
    use davsync::storage::vdir::VdirStorage;
    use davsync::sync::{Phase, Progress, Sides, SyncOptions, pair_collections, sync_collection};

    let sb = Sandbox::new();
    for i in 0..1500 {
        sb.write(&format!("a/e{i}.ics"), event(&format!("e{i}"), "Event"));
    }
    sb.mkdir("b");
    let (a, b) = (
        VdirStorage::new(sb.path("a"), ".ics".into()),
        VdirStorage::new(sb.path("b"), ".ics".into()),
    );
    let sides = Sides { a: &a, b: &b };
    let status = StatusDb::open(&sb.path("status.db")).unwrap();
    let pairs = pair_collections(&CollectionsSpec::Root, &sides).unwrap();
    let mut counts: Vec<(Phase, u64, u64)> = Vec::new();
    let report = sync_collection(
        &sides,
        &pairs[0],
        &status,
        &SyncOptions::default(),
        &mut |event| {
            if let Progress::Count { phase, done, total } = event {
                counts.push((phase, done, total));
            }
        },
    )
    .unwrap();
    assert_eq!(report.created, 1500);
    let of = |phase: Phase| -> Vec<(u64, u64)> {
        counts
            .iter()
            .filter(|(p, ..)| *p == phase)
            .map(|&(_, done, total)| (done, total))
            .collect()
    };
    assert_eq!(of(Phase::Fetching), [(0, 1500), (1000, 1500), (1500, 1500)]);
    let applying = of(Phase::Applying);
    assert_eq!(applying.len(), 1500);
    assert!(
        applying
            .iter()
            .enumerate()
            .all(|(i, &(done, total))| done == i as u64 + 1 && total == 1500),
        "{applying:?}"
    );
    // Fetching ends before applying starts.
    assert!(matches!(counts.first(), Some((Phase::Fetching, ..))));
}
