//! Several pairs in one `davsync sync`: pairs on different servers run at the same time, pairs
//! on one server one after another. Each pair syncs a vdir calendar to a Radicale behind a
//! fault proxy; a proxy on its own port is a server of its own (another origin), so two proxies
//! in front of one Radicale make two servers. However many pairs run at once, the requests in
//! flight across all servers stay under `max_connections`.

mod common;
mod dav_support;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::Sandbox;
use dav_support::{DavServer, Fault, FaultProxy, FaultRule, Gauge, Radicale, Release};

/// Longest wait for the other pair's first request while one pair is held.
const OVERLAP_TIMEOUT: Duration = Duration::from_secs(60);

fn event(uid: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davsync pairs test//EN\r\n\
         BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n\
         DTSTART:20240301T100000Z\r\nDTEND:20240301T110000Z\r\nSUMMARY:{uid}\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// A sandbox with pairs `p1` (vdir `one` with calendar `one`, to `url1`) and `p2` (vdir `two`
/// with calendar `two`, to `url2`), each calendar holding two events.
fn two_pairs(server: &Radicale, url1: &str, url2: &str) -> Sandbox {
    let sb = Sandbox::new();
    for name in ["one", "two"] {
        for n in 0..2 {
            sb.write(
                &format!("{name}/{name}/{name}-{n}.ics"),
                event(&format!("{name}-{n}")),
            );
        }
    }
    let mut config = String::from("status_path = \"{root}/status\"\n");
    for (name, url) in [("one", url1), ("two", url2)] {
        config.push_str(&format!(
            r#"
[storage.local_{name}]
type = "vdir"
path = "{{root}}/{name}"
fileext = ".ics"

[storage.server_{name}]
type = "caldav"
url = "{url}"
username = "{user}"
password = {{ env = "DAVSYNC_TEST_PW" }}
"#,
            user = server.user(),
        ));
    }
    config.push_str(
        "\n[pair.p1]\na = \"local_one\"\nb = \"server_one\"\ncollections = \"from a\"\n\
         \n[pair.p2]\na = \"local_two\"\nb = \"server_two\"\ncollections = \"from a\"\n",
    );
    sb.write_config(&config);
    sb
}

#[test]
fn pairs_on_different_servers_run_at_the_same_time() {
    let server = Radicale::start();
    let (proxy1, proxy2) = (
        FaultProxy::start(&server.url()),
        FaultProxy::start(&server.url()),
    );
    let sb = two_pairs(&server, &proxy1.url(), &proxy2.url());
    // p1's first request waits at its proxy until p2 has been answered something: were the
    // pairs run one after another, p2 would never start.
    let hold = proxy1.hold(&[], None, 1);
    let run = std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            sb.run_env(
                &["sync", "--json"],
                &[("DAVSYNC_TEST_PW", server.password())],
            )
        });
        let end = Instant::now() + OVERLAP_TIMEOUT;
        while (proxy1.held(hold).is_none() || proxy2.count() == 0) && Instant::now() < end {
            sleep(Duration::from_millis(10));
        }
        let overlapped = proxy1.held(hold).is_some() && proxy2.count() > 0;
        proxy1.release(hold, Release::Forward);
        let run = run.join().expect("the run");
        assert!(
            overlapped,
            "p2 sent nothing while p1's first request was held\np1:\n{}\np2:\n{}",
            proxy1.log_text(),
            proxy2.log_text()
        );
        run
    });
    run.success();
    // Both calendars made it, each through its own server.
    assert!(proxy1.requests().iter().any(|r| r.path.contains("/one/")));
    assert!(proxy2.requests().iter().any(|r| r.path.contains("/two/")));
    // The JSON document lists the pairs in config order, though p2 finished first.
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON document");
    let names: Vec<&str> = doc["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| p["name"].as_str().expect("pair name"))
        .collect();
    assert_eq!(names, ["p1", "p2"]);
}

#[test]
fn pairs_on_one_server_run_one_after_another() {
    let server = Radicale::start();
    let proxy = FaultProxy::start(&server.url());
    let sb = two_pairs(&server, &proxy.url(), &proxy.url());
    sb.run_env(&["sync"], &[("DAVSYNC_TEST_PW", server.password())])
        .success();
    // Which calendar each request was about, in the order they were answered: all of one
    // pair's come before all of the other's.
    let about: Vec<&str> = proxy
        .requests()
        .iter()
        .filter_map(|r| {
            if r.path.contains("/one/") {
                Some("one")
            } else if r.path.contains("/two/") {
                Some("two")
            } else {
                None
            }
        })
        .collect();
    let mut runs = about.clone();
    runs.dedup();
    assert_eq!(runs, ["one", "two"], "requests interleaved: {about:?}");
}

#[test]
fn requests_in_flight_across_servers_stay_under_max_connections() {
    let server = Radicale::start();
    // Three servers (proxies) sharing one gauge, each answer held 30 ms so requests overlap.
    let gauge = std::sync::Arc::new(Gauge::default());
    let proxies: Vec<FaultProxy> = (0..3)
        .map(|_| {
            let proxy = FaultProxy::start_gauged(&server.url(), &gauge);
            proxy.set_faults(vec![FaultRule::always(Fault::Delay(30))]);
            proxy
        })
        .collect();
    let sb = Sandbox::new();
    // Each storage may have 8 requests in flight: three pairs uploading at once would have
    // up to 24 without the cap.
    let mut config = String::from("status_path = \"{root}/status\"\nmax_connections = 2\n");
    for (n, proxy) in proxies.iter().enumerate() {
        for i in 0..10 {
            sb.write(
                &format!("local{n}/cal{n}/e{i}.ics"),
                event(&format!("cal{n}-{i}")),
            );
        }
        config.push_str(&format!(
            r#"
[storage.local{n}]
type = "vdir"
path = "{{root}}/local{n}"
fileext = ".ics"

[storage.server{n}]
type = "caldav"
url = "{url}"
username = "{user}"
password = {{ env = "DAVSYNC_TEST_PW" }}
concurrency = 8

[pair.p{n}]
a = "local{n}"
b = "server{n}"
collections = "from a"
"#,
            url = proxy.url(),
            user = server.user(),
        ));
    }
    sb.write_config(&config);
    sb.run_env(&["sync"], &[("DAVSYNC_TEST_PW", server.password())])
        .success();
    for proxy in &proxies {
        assert_eq!(
            proxy.requests_with_method("PUT").len(),
            10,
            "{}",
            proxy.log_text()
        );
    }
    let most = gauge.most();
    assert!(
        (1..=2).contains(&most),
        "{most} requests were in flight at once; max_connections = 2"
    );
}
