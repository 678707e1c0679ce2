//! What `-v`, `-vv` and `-vvv` add to the output, through the binary against Radicale: the
//! actions applied, one line per HTTP request (method, URL, status, time, bytes), discovery
//! details and each collection's listing method; and never a password (literal or from a
//! command), its Basic encoding or an `Authorization` header, in `sync` and `check` alike.
//! (An OAuth2 bearer token is checked the same way in `tests/google.rs`.)

mod common;
mod dav_support;

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
