//! Network errors through the binary say what to change: a refused connection, a server that
//! never answers (naming the `timeout` key and its value), a host name that does not resolve
//! (naming the `url` key), and TLS keys on an `http://` url
//! (a warning that TLS is not in use). `https://` against a plain-HTTP port is tested against
//! Radicale in `tests/dav_faults.rs` (`tls_to_plain_http`).

mod common;

use std::net::TcpListener;
use std::thread;

use common::{Run, Sandbox};

/// A sandbox with vdir `local` (one empty collection), the CalDAV storage `server` at `url`
/// with `server_keys`, and pair `p` over them.
fn sandbox(url: &str, server_keys: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.mkdir("cals/work");
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"

[storage.local]
type = "vdir"
path = "{{root}}/cals"
fileext = ".ics"

[storage.server]
type = "caldav"
url = "{url}"
username = "alice"
password = "secret"
{server_keys}

[pair.p]
a = "local"
b = "server"
collections = "from a"
"#
    ));
    sb
}

/// A port nothing listens on: bound, then let go.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `davsync ARGS` with the port in the output replaced by `PORT`.
fn run(sb: &Sandbox, args: &[&str], port: u16) -> Run {
    let mut run = sb.run(args);
    run.stdout = run.stdout.replace(&port.to_string(), "PORT");
    run.stderr = run.stderr.replace(&port.to_string(), "PORT");
    run
}

#[test]
fn a_refused_connection_says_to_check_server_and_port() {
    let port = closed_port();
    let sb = sandbox(&format!("http://127.0.0.1:{port}/cal/"), "");
    insta::assert_snapshot!(run(&sb, &["sync"], port).both(), @r"
    --- stderr
    error: p: PROPFIND http://127.0.0.1:PORT/cal/: connection refused (is the server running? is the port right?)
    davsync: a server could not be reached or a pair was locked; nothing needs a person, the next run tries again
    --- exit 75
    ");
}

#[test]
fn a_server_that_never_answers_names_the_timeout_key() {
    // Accepts connections and keeps them open without a word.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let sb = sandbox(&format!("http://127.0.0.1:{port}/cal/"), "timeout = 1");
    insta::assert_snapshot!(run(&sb, &["sync"], port).both(), @r"
    --- stderr
    error: p: PROPFIND http://127.0.0.1:PORT/cal/: timed out after 1 s (the storage's `timeout` key)
    davsync: a server could not be reached or a pair was locked; nothing needs a person, the next run tries again
    --- exit 75
    ");
}

#[test]
fn tls_keys_on_an_http_url_are_a_warning_that_tls_is_not_in_use() {
    let port = closed_port();
    let sb = sandbox(&format!("http://127.0.0.1:{port}/cal/"), "verify = false");
    // The closed port: try again later (75).
    let sync = run(&sb, &["sync"], port);
    sync.expect_code(75);
    insta::assert_snapshot!(sync.stderr.lines().next().unwrap_or_default(), @"warning: storage server: verify = false does nothing: the url is http://, so TLS is not in use and nothing is encrypted (use https:// for TLS)");
    // `check` says the same, as a note.
    let check = run(&sb, &["check"], port);
    check.expect_code(1);
    assert!(
        check.stdout.contains(
            "note: verify = false does nothing: the url is http://, so TLS is not in use"
        ),
        "{}",
        check.both()
    );

    // Every TLS key set on an http:// url is named.
    let fingerprint = "ab".repeat(32);
    let sb = sandbox(
        &format!("http://127.0.0.1:{port}/cal/"),
        &format!("verify = \"{{root}}/ca.pem\"\nfingerprint = \"sha256:{fingerprint}\""),
    );
    let sync = run(&sb, &["sync"], port);
    insta::assert_snapshot!(sync.stderr.lines().next().unwrap_or_default(), @"warning: storage server: verify, fingerprint do nothing: the url is http://, so TLS is not in use and nothing is encrypted (use https:// for TLS)");
}

#[test]
fn a_host_name_that_does_not_resolve_says_to_check_the_url_key() {
    // RFC 6761: names under .invalid never resolve, so no network is needed.
    let sb = sandbox("https://dav.example.invalid/cal/", "");
    let mut run = sb.run(&["sync"]);
    // What the resolver says in the parentheses depends on the system (a name that does not
    // exist, or no DNS server at all): only its place is pinned.
    let (head, rest) = run.stderr.split_once(" (").expect("the resolver's words");
    let (_, tail) = rest
        .split_once("): ")
        .expect("the end of the resolver's words");
    run.stderr = format!("{head} (RESOLVER): {tail}");
    insta::assert_snapshot!(run.both(), @r"
    --- stderr
    error: p: PROPFIND https://dav.example.invalid/cal/: could not resolve host dav.example.invalid (RESOLVER): check the `url` key, or the network
    davsync: a server could not be reached or a pair was locked; nothing needs a person, the next run tries again
    --- exit 75
    ");
    // `check` names the fix too.
    let check = sb.run(&["check"]);
    assert!(
        check
            .stdout
            .contains("could not resolve host dav.example.invalid ("),
        "{}",
        check.both()
    );
}
