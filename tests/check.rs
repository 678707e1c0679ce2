//! `davsync check` through the binary: a vdir pair, Radicale and Xandikos (discovery, item
//! counts, listing method), a wrong password, an unreachable port, a config error; secrets
//! never in the output, nothing written under the status path, and the exit codes. The
//! self-signed certificate is checked in `tests/dav_auth_tls.rs`, beside its fixtures.

mod common;
mod dav_support;

use common::{Run, Sandbox, event};
use dav_support::proxy::{Fault, FaultProxy, FaultRule};
use dav_support::{DavServer, Radicale, Xandikos, free_port};

const SECRET: &str = "secret-horse-42";

/// A sandbox with vdir `local` at `{root}/cals` (collection `work` with `events` events), the
/// CalDAV storage `server` (`url = URL` plus `server_keys`) and pair `p` over them.
fn sandbox(url: &str, server_keys: &str, events: usize) -> Sandbox {
    let sb = Sandbox::new();
    sb.mkdir("cals/work");
    for i in 0..events {
        sb.write(
            &format!("cals/work/e{i}.ics"),
            event(&format!("e{i}"), &format!("Event {i}")),
        );
    }
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"

[storage.local]
type = "vdir"
path = "{{root}}/cals"
fileext = ".ics"

[storage.server]
type = "caldav"
url = "{url}"
{server_keys}

[pair.p]
a = "local"
b = "server"
collections = "from a"
"#
    ));
    sb
}

fn alice(password: &str) -> String {
    format!("username = \"alice\"\npassword = \"{password}\"")
}

/// Runs `davsync check`, asserting that it leaves no status directory behind and never prints
/// `secret`.
fn check(sb: &Sandbox, secret: &str) -> Run {
    let before = sb.exists("status");
    let run = sb.run(&["check"]);
    assert!(
        !run.both().contains(secret),
        "the secret shows in the output:\n{}",
        run.both()
    );
    if !before {
        assert!(
            !sb.exists("status"),
            "check created the status path:\n{}",
            run.both()
        );
    }
    run
}

#[test]
fn a_vdir_pair_is_checked_without_writing() {
    let sb = Sandbox::new();
    sb.mkdir("cals/work");
    sb.write("cals/work/a.ics", event("a", "A"));
    sb.write("cals/work/b.ics", event("b", "B"));
    sb.write_config(
        r#"status_path = "{root}/status"

[storage.local]
type = "vdir"
path = "{root}/cals"
fileext = ".ics"

[storage.copy]
type = "vdir"
path = "{root}/copy"
fileext = ".ics"

[pair.p]
a = "local"
b = "copy"
collections = "from a"
"#,
    );
    let run = check(&sb, SECRET);
    run.success();
    let out = &run.stdout;
    assert!(out.contains("storage local (vdir, pair p): ok"), "{out}");
    assert!(out.contains("collection work ("), "{out}");
    assert!(out.contains("2 items"), "{out}");
    // The missing side is a note: the first sync creates it.
    assert!(out.contains("does not exist yet"), "{out}");
    assert!(out.contains("created by the first sync"), "{out}");
    assert!(out.contains("all is well"), "{out}");
    assert!(!sb.exists("copy"), "check created the missing vdir");

    // After a sync the same missing vdir is a problem (an unmounted disk?).
    sb.run(&["sync"]).success();
    let copy_state = sb.state("status");
    std::fs::remove_dir_all(sb.path("copy")).unwrap();
    let run = check(&sb, SECRET);
    run.expect_code(1);
    assert!(
        run.stdout.contains("though the pair synced before"),
        "{}",
        run.stdout
    );
    assert_eq!(
        sb.state("status"),
        copy_state,
        "check changed the status path"
    );

    // A config error is exit 2, as for every command.
    sb.write_config("[pair.p]\na = \"nowhere\"\n");
    sb.run(&["check"]).expect_code(2);
    // An unknown pair too.
    let sb = sandbox("http://127.0.0.1:1/", &alice(SECRET), 0);
    sb.run(&["check", "nosuchpair"]).expect_code(2);
}

#[test]
fn radicale_discovery_counts_and_listing_method() {
    let server = Radicale::start();
    let url = server.url();
    // Put a collection with three events on the server through a sync in another sandbox.
    let upload = sandbox(&url, &alice(SECRET), 3);
    upload.run(&["sync"]).success();

    let sb = sandbox(&url, &alice(SECRET), 0);
    let run = check(&sb, SECRET);
    run.success();
    let out = &run.stdout;
    assert!(out.contains("storage server (caldav, pair p): ok"), "{out}");
    assert!(out.contains("auth: basic as alice"), "{out}");
    assert!(out.contains(&format!("home set: {url}alice/")), "{out}");
    assert!(out.contains("collection work ("), "{out}");
    assert!(out.contains("3 items"), "{out}");
    assert!(out.contains("listing: sync-collection"), "{out}");
    assert!(!out.contains("tls:"), "plain HTTP has no TLS line: {out}");

    // A wrong password: 401, the fix, exit 1, and neither password shown.
    let sb = sandbox(&url, &alice("wrong-pony-17"), 0);
    let run = check(&sb, "wrong-pony-17");
    run.expect_code(1);
    assert!(!run.both().contains(SECRET), "{}", run.both());
    assert!(run.stdout.contains("HTTP 401"), "{}", run.stdout);
    assert!(
        run.stdout.contains("fix: check username/password"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("check found 1 problem"),
        "{}",
        run.stderr
    );
}

#[test]
fn weak_etags_are_reported_as_a_server_quirk() {
    let server = Radicale::start();
    let upload = sandbox(&server.url(), &alice(SECRET), 2);
    upload.run(&["sync"]).success();
    // A server that tags its items weakly (a fault proxy making Radicale's tags `W/"..."`).
    let proxy = FaultProxy::start(&server.url());
    proxy.set_faults(vec![FaultRule::always(Fault::ReplaceInBody(
        "getetag>\"".into(),
        "getetag>W/\"".into(),
    ))]);
    let sb = sandbox(&proxy.url(), &alice(SECRET), 0);
    let run = check(&sb, SECRET);
    run.success();
    assert!(
        run.stdout.contains("quirk: 2 of 2 items in ")
            && run.stdout.contains("have weak ETags (W/...)"),
        "{}",
        run.stdout
    );
    // Radicale itself has no quirk to report.
    let plain = check(&sandbox(&server.url(), &alice(SECRET), 0), SECRET);
    assert!(!plain.stdout.contains("quirk:"), "{}", plain.stdout);
}

#[test]
fn xandikos_default_collections() {
    let server = Xandikos::start();
    let sb = sandbox(&server.url(), &alice(SECRET), 0);
    let run = check(&sb, SECRET);
    run.success();
    let out = &run.stdout;
    assert!(
        out.contains(&format!("home set: {}", server.calendar_home_url())),
        "{out}"
    );
    assert!(
        out.contains(&format!("collection calendar ({})", server.calendar_url())),
        "{out}"
    );
    assert!(out.contains("0 items"), "{out}");
    assert!(out.contains("    listing: "), "{out}");
}

#[test]
fn an_unreachable_port_says_to_check_the_server() {
    let url = format!("http://127.0.0.1:{}/", free_port());
    let sb = sandbox(&url, &alice(SECRET), 1);
    let run = check(&sb, SECRET);
    run.expect_code(1);
    assert!(
        run.stdout
            .contains("connection refused (is the server running? is the port right?)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("fix: is the server running at {url}?")),
        "{}",
        run.stdout
    );
    // The vdir side is still reported.
    assert!(
        run.stdout.contains("storage local (vdir, pair p): ok"),
        "{}",
        run.stdout
    );
}
