//! "Bad servers": a vdir ↔ CalDAV pair synced by the real binary, with the server (Radicale
//! with Basic auth, Xandikos where it is cheap) behind a `FaultProxy` that garbles, truncates,
//! drops, delays or refuses chosen requests.
//!
//! Each scenario checks what a user would: the exit status, that the message names what went
//! wrong and where (URL or href, HTTP status), that nothing was lost or duplicated on either
//! side, and that the next run without faults converges (exit 0, both sides equal, no
//! conflicts, no duplicates) and the run after that writes nothing.

mod common;
mod dav_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Run, Sandbox, event};
use dav_support::{DavServer, Fault, FaultProxy, FaultRule, Radicale, Recorded, Xandikos};

/// Methods that change something on a DAV server.
const WRITE_METHODS: &[&str] = &["PUT", "DELETE", "MKCALENDAR", "MKCOL", "PROPPATCH", "MOVE"];

/// UID → the SUMMARY of every copy with that UID (more than one: a duplicate).
type Items = BTreeMap<String, Vec<String>>;

/// One server behind a fault proxy, one sandbox with a vdir `a/<collection>/` and the pair
/// `cal` = vdir `laptop` ↔ caldav `server` (collections = [<collection>]).
struct World {
    sb: Sandbox,
    proxy: FaultProxy,
    server: Box<dyn DavServer + Send + Sync>,
    /// The collection's name on both sides.
    coll: String,
    /// The collection's URL on the server itself (not through the proxy).
    coll_url: String,
}

impl World {
    /// Radicale (Basic auth), calendar `/alice/work/`.
    fn radicale(storage_extra: &str, pair_extra: &str) -> World {
        let server = Radicale::start();
        let coll_url = format!("{}work/", server.calendar_home_url());
        server.client().mkcalendar(&coll_url);
        World::new(
            Box::new(server),
            "work",
            coll_url,
            storage_extra,
            pair_extra,
        )
    }

    /// Xandikos (no auth), its default calendar `/alice/calendars/calendar/`.
    fn xandikos(storage_extra: &str, pair_extra: &str) -> World {
        let server = Xandikos::start();
        let coll_url = server.calendar_url();
        World::new(
            Box::new(server),
            "calendar",
            coll_url,
            storage_extra,
            pair_extra,
        )
    }

    fn new(
        server: Box<dyn DavServer + Send + Sync>,
        coll: &str,
        coll_url: String,
        storage_extra: &str,
        pair_extra: &str,
    ) -> World {
        let proxy = FaultProxy::start(&server.url());
        let sb = Sandbox::new();
        sb.mkdir(&format!("a/{coll}"));
        let url = proxy.proxied(&server.principal_url());
        sb.write_config(&format!(
            r#"status_path = "{{root}}/status"

[storage.laptop]
type = "vdir"
path = "{{root}}/a"
fileext = ".ics"

[storage.server]
type = "caldav"
url = "{url}"
username = "{user}"
password = "{password}"
{timeout}
{storage_extra}

[pair.cal]
a = "laptop"
b = "server"
collections = ["{coll}"]
{pair_extra}
"#,
            user = server.user(),
            password = server.password(),
            // 10 s unless the test sets its own.
            timeout = if storage_extra.contains("timeout") {
                ""
            } else {
                "timeout = 10"
            },
        ));
        World {
            sb,
            proxy,
            server,
            coll: coll.to_owned(),
            coll_url,
        }
    }

    /// `cal/<collection>`, as the binary names the collection in its messages.
    fn name(&self) -> String {
        format!("cal/{}", self.coll)
    }

    /// The collection's URL as davsync sees it (through the proxy).
    fn proxied_coll(&self) -> String {
        self.proxy.proxied(&self.coll_url)
    }

    /// The URL davsync sees for the item the server holds at `<uid>.ics`.
    fn proxied_item(&self, uid: &str) -> String {
        format!("{}{uid}.ics", self.proxied_coll())
    }

    /// Runs `davsync sync` (its output is shown when a test fails).
    fn sync(&self) -> Run {
        let run = self.sb.run(&["sync"]);
        eprintln!("$ davsync sync\n{}", run.both());
        run
    }

    /// Runs `sync`; as soon as every fault rule now set has been used up, calls `then` (on
    /// another thread, while the binary keeps running). Give the last rule of the first stage
    /// a `Delay` so that `then` runs while that request is still held by the proxy.
    fn sync_then(&self, then: impl FnOnce(&FaultProxy) + Send) -> Run {
        let finished = AtomicBool::new(false);
        thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                while !finished.load(Ordering::SeqCst) {
                    let rules = self.proxy.faults();
                    if !rules.is_empty() && rules.iter().all(|r| r.remaining == Some(0)) {
                        then(&self.proxy);
                        return true;
                    }
                    thread::sleep(Duration::from_millis(2));
                }
                false
            });
            let run = self.sync();
            finished.store(true, Ordering::SeqCst);
            let fired = watcher.join().expect("watcher thread");
            assert!(
                fired,
                "the first fault stage was never used up: {:#?}\n{}",
                self.proxy.requests(),
                run.both()
            );
            run
        })
    }

    /// A first sync that uploads one local event, `seed`: from then on the status knows the
    /// collection and the server side was written to, so the next listing asks for ETags only
    /// and what it finds is fetched by multigets (a first download or a delta carries the
    /// items in the listing itself).
    fn seed(&self) {
        self.put_local("seed", "Seed");
        self.sync().success();
        self.proxy.reset_log();
    }

    /// Writes an event into the vdir as another program would.
    fn put_local(&self, uid: &str, summary: &str) {
        self.sb
            .write(&format!("a/{}/{uid}.ics", self.coll), event(uid, summary));
    }

    /// Stores an event on the server as another client would (not through the proxy).
    fn put_remote(&self, uid: &str, summary: &str) {
        self.server.client().put_item(
            &format!("{}{uid}.ics", self.coll_url),
            event(uid, summary).as_bytes(),
        );
    }

    /// The server's copy of `<uid>.ics`, read directly.
    fn remote_bytes(&self, uid: &str) -> Vec<u8> {
        let resp = self
            .server
            .client()
            .get(&format!("{}{uid}.ics", self.coll_url));
        assert_eq!(resp.status, 200, "GET {uid}.ics: {}", resp.text());
        resp.body
    }

    /// The events in the vdir collection.
    fn local_items(&self) -> Items {
        let mut items = Items::new();
        for name in self.sb.ls(&format!("a/{}", self.coll)) {
            if name.starts_with('.') || !name.ends_with(".ics") {
                continue;
            }
            let text = self.sb.read_string(&format!("a/{}/{name}", self.coll));
            let (uid, summary) = uid_and_summary(&text);
            items.entry(uid).or_default().push(summary);
        }
        items
    }

    /// The events in the server collection, read directly (PROPFIND, then a GET each).
    fn remote_items(&self) -> Items {
        let client = self.server.client();
        let resp = client.propfind(
            &self.coll_url,
            "1",
            &davsync::storage::dav::xml::propfind_etags(),
        );
        assert_eq!(
            resp.status,
            207,
            "PROPFIND {}: {}",
            self.coll_url,
            resp.text()
        );
        let status =
            davsync::storage::dav::xml::parse_multistatus(&resp.body).expect("multistatus");
        let base = format!("{}/", self.server.url().trim_end_matches('/'));
        let mut items = Items::new();
        for r in status.responses {
            if r.props.is_collection {
                continue;
            }
            let url = format!("{base}{}", r.href.trim_start_matches('/'));
            let resp = client.get(&url);
            assert_eq!(resp.status, 200, "GET {url}");
            let (uid, summary) = uid_and_summary(&resp.text());
            items.entry(uid).or_default().push(summary);
        }
        items
    }

    /// The next run without faults converges to `expected` on both sides with exit 0, no
    /// conflicts and no duplicates, and the run after it writes nothing.
    #[track_caller]
    fn assert_converges(&self, expected: &[(&str, &str)]) {
        self.proxy.clear_faults();
        let run = self.sync();
        run.success();
        assert_clean(&run);
        let expected: Items = expected
            .iter()
            .map(|(uid, summary)| ((*uid).to_owned(), vec![(*summary).to_owned()]))
            .collect();
        assert_eq!(self.local_items(), expected, "vdir after converging");
        assert_eq!(self.remote_items(), expected, "server after converging");

        let before = self.sb.state("a");
        self.proxy.reset_log();
        let run = self.sync();
        run.success();
        assert_clean(&run);
        let writes: Vec<Recorded> = self
            .proxy
            .requests()
            .into_iter()
            .filter(|r| WRITE_METHODS.contains(&r.method.as_str()))
            .collect();
        assert!(
            writes.is_empty(),
            "the run after converging wrote {writes:#?}"
        );
        assert!(
            self.sb.state("a") == before,
            "the run after converging touched the vdir"
        );
        assert!(run.stdout.contains(": in sync"), "{}", run.both());
    }
}

/// The UID and SUMMARY of an event (unfolded enough for the short values used here).
fn uid_and_summary(text: &str) -> (String, String) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim_end().strip_prefix(name).map(str::to_owned))
            .unwrap_or_default()
    };
    (field("UID:"), field("SUMMARY:"))
}

#[track_caller]
fn assert_clean(run: &Run) {
    assert!(
        !run.stderr.contains("error") && !run.stderr.contains("conflict"),
        "{}",
        run.both()
    );
}

/// True for the REPORT carrying a calendar-multiget (the listing is a sync-collection REPORT).
fn is_multiget(r: &Recorded) -> bool {
    r.method == "REPORT" && r.body_text().contains("calendar-multiget")
}

fn hrefs_in(r: &Recorded) -> usize {
    r.body_text().matches("<d:href>").count()
}

fn show(requests: &[Recorded]) -> String {
    requests
        .iter()
        .map(|r| format!("{r:?}\n"))
        .collect::<String>()
}

// 1. Garbage XML answering the home-set PROPFIND.

fn garbage_home_set(world: World) {
    world.put_local("local-1", "Local one");
    world.put_remote("remote-1", "Remote one");
    let before = world.sb.state("a");
    world.proxy.set_faults(vec![
        FaultRule::once(Fault::GarbageBody(b"<html><body>Gateway oops".to_vec()))
            .method("PROPFIND"),
    ]);
    let run = world.sync();
    run.expect_code(1);
    let url = world.proxy.proxied(&world.server.principal_url());
    let first = &world.proxy.requests()[0];
    assert_eq!(
        (first.method.as_str(), first.depth()),
        ("PROPFIND", Some("0"))
    );
    assert!(
        run.stderr.contains(&format!("PROPFIND {url}"))
            && run.stderr.contains("unusable answer")
            && run.stderr.contains("207"),
        "{}",
        run.both()
    );
    assert!(world.sb.state("a") == before, "the vdir was touched");
    assert_eq!(
        world.remote_items(),
        Items::from([("remote-1".into(), vec!["Remote one".into()])])
    );
    world.assert_converges(&[("local-1", "Local one"), ("remote-1", "Remote one")]);
}

#[test]
fn garbage_home_set_radicale() {
    garbage_home_set(World::radicale("", ""));
}

#[test]
fn garbage_home_set_xandikos() {
    garbage_home_set(World::xandikos("", ""));
}

// 2. Truncated body on the sync-collection REPORT.

#[test]
fn truncated_listing() {
    let world = World::radicale("", "");
    world.put_local("local-1", "Local one");
    for i in 1..=3 {
        world.put_remote(&format!("remote-{i}"), &format!("Remote {i}"));
    }
    let before = world.sb.state("a");
    world.proxy.set_faults(vec![
        FaultRule::always(Fault::Truncate(40)).method("REPORT"),
    ]);
    let run = world.sync();
    // An answer that broke off is the connection's or the server's for now: retry later.
    run.expect_code(75);
    let listing: Vec<Recorded> = world.proxy.requests_with_method("REPORT");
    assert!(
        !listing.is_empty()
            && listing
                .iter()
                .all(|r| r.body_text().contains("sync-collection")),
        "{}",
        show(&listing)
    );
    let coll = world.proxied_coll();
    assert!(
        run.stderr.contains(&format!(
            "error: {}: not synced: REPORT {coll}",
            world.name()
        )) && run.stderr.contains("response body (HTTP 207)"),
        "{}",
        run.both()
    );
    assert!(world.sb.state("a") == before, "the vdir was touched");
    assert!(world.proxy.requests_with_method("PUT").is_empty());
    world.assert_converges(&[
        ("local-1", "Local one"),
        ("remote-1", "Remote 1"),
        ("remote-2", "Remote 2"),
        ("remote-3", "Remote 3"),
    ]);
}

// 3. Connection reset on a PUT, not forwarded: retried.

fn reset_on_put(world: World) {
    world.put_local("local-1", "Local one");
    world.put_local("local-2", "Local two");
    world.proxy.set_faults(vec![
        FaultRule::once(Fault::Reset).method("PUT").path("local-1"),
    ]);
    let run = world.sync();
    run.success();
    let puts: Vec<Recorded> = world
        .proxy
        .requests_with_method("PUT")
        .into_iter()
        .filter(|r| r.path.contains("local-1"))
        .collect();
    assert_eq!(
        puts.len(),
        2,
        "the reset PUT was not retried:\n{}",
        show(&puts)
    );
    assert_eq!(puts[0].status, None);
    assert_eq!(puts[0].faults, vec![Fault::Reset]);
    assert!(matches!(puts[1].status, Some(200..=299)), "{}", show(&puts));
    assert_eq!(puts[0].body, puts[1].body);
    assert_eq!(puts[1].if_none_match(), Some("*"));
    assert_eq!(
        world.remote_items(),
        Items::from([
            ("local-1".into(), vec!["Local one".into()]),
            ("local-2".into(), vec!["Local two".into()]),
        ])
    );
    world.assert_converges(&[("local-1", "Local one"), ("local-2", "Local two")]);
}

#[test]
fn reset_on_put_radicale() {
    reset_on_put(World::radicale("", ""));
}

#[test]
fn reset_on_put_xandikos() {
    reset_on_put(World::xandikos("", ""));
}

// 4. The PUT of a new item was applied but its answer lost: the retry's 412 is our own write.

fn lost_answer_on_create(world: World, rewrite: fn(String) -> String) {
    for (uid, summary) in [("local-1", "Local one"), ("local-2", "Local two")] {
        world.sb.write(
            &format!("a/{}/{uid}.ics", world.coll),
            rewrite(event(uid, summary)),
        );
    }
    world.proxy.set_faults(vec![
        FaultRule::once(Fault::ResetAfterForward)
            .method("PUT")
            .path("local-1"),
    ]);
    let run = world.sync();
    run.success();
    assert_clean(&run);
    let log = world.proxy.requests();
    let puts: Vec<&Recorded> = log
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("local-1"))
        .collect();
    assert!(puts.len() >= 2, "{}", show(&log));
    assert_eq!(puts[0].status, None);
    assert_eq!(puts[1].status, Some(412), "{}", show(&log));
    assert!(
        log.iter()
            .any(|r| r.method == "GET" && r.path.ends_with("local-1.ics")),
        "davsync did not look at what the server holds:\n{}",
        show(&log)
    );
    // Exactly one copy on the server, under the first name.
    assert_eq!(
        world.remote_items(),
        Items::from([
            ("local-1".into(), vec!["Local one".into()]),
            ("local-2".into(), vec!["Local two".into()]),
        ])
    );
    assert!(
        !log.iter().any(|r| r.method == "PUT"
            && r.path.contains("local-1")
            && !r.path.ends_with("/local-1.ics")),
        "a second name was tried:\n{}",
        show(&log)
    );
    world.assert_converges(&[("local-1", "Local one"), ("local-2", "Local two")]);
}

#[test]
fn lost_answer_on_create_radicale() {
    lost_answer_on_create(World::radicale("", ""), |text| text);
}

#[test]
fn lost_answer_on_create_xandikos() {
    lost_answer_on_create(World::xandikos("", ""), |text| text);
}

/// The same, with the RRULE parts already in the order Xandikos writes them: the recognition
/// itself works on Xandikos, only the hash of a rewritten RRULE differs.
#[test]
fn lost_answer_on_create_xandikos_canonical_rrule() {
    lost_answer_on_create(World::xandikos("", ""), |text| {
        text.replace("BYMONTH=10;BYDAY=-1SU", "BYDAY=-1SU;BYMONTH=10")
            .replace("BYMONTH=3;BYDAY=-1SU", "BYDAY=-1SU;BYMONTH=3")
    });
}

// 5. 503 with Retry-After: 1 once on the multiget.

#[test]
fn retry_after_on_multiget() {
    let world = World::radicale("", "");
    world.seed();
    for i in 1..=3 {
        world.put_remote(&format!("remote-{i}"), &format!("Remote {i}"));
    }
    // Stage 1 holds the listing REPORT; stage 2 answers the next REPORT (the multiget) 503.
    world
        .proxy
        .set_faults(vec![FaultRule::once(Fault::Delay(300)).method("REPORT")]);
    let started = Instant::now();
    let run = world.sync_then(|proxy| {
        proxy.set_faults(vec![
            FaultRule::once(Fault::unavailable(1)).method("REPORT"),
        ])
    });
    let elapsed = started.elapsed();
    run.success();
    assert_clean(&run);
    let multigets: Vec<Recorded> = world
        .proxy
        .requests()
        .into_iter()
        .filter(is_multiget)
        .collect();
    assert_eq!(multigets.len(), 2, "{}", show(&world.proxy.requests()));
    assert_eq!(multigets[0].status, Some(503));
    assert_eq!(multigets[1].status, Some(207));
    assert_eq!(multigets[0].body, multigets[1].body);
    assert!(
        elapsed >= Duration::from_millis(1300),
        "Retry-After: 1 was not honoured ({elapsed:?})"
    );
    assert_eq!(world.local_items(), world.remote_items());
    world.assert_converges(&[
        ("remote-1", "Remote 1"),
        ("remote-2", "Remote 2"),
        ("remote-3", "Remote 3"),
        ("seed", "Seed"),
    ]);
}

// 6. 500 on every PUT of one item.

#[test]
fn one_item_refused_with_500() {
    let world = World::radicale("", "");
    for (uid, summary) in [("ok-1", "Fine 1"), ("broken", "Broken"), ("ok-2", "Fine 2")] {
        world.put_local(uid, summary);
    }
    world.proxy.set_faults(vec![
        FaultRule::always(Fault::Status(500, vec![], b"injected failure\n".to_vec()))
            .method("PUT")
            .path("broken"),
    ]);
    let run = world.sync();
    run.expect_code(1);
    let href = world.proxied_item("broken");
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("broken"))
        .unwrap_or_else(|| panic!("no error names the item:\n{}", run.both()));
    assert!(
        line.starts_with(&format!("error: {}:", world.name()))
            && line.contains(&href)
            && line.contains("500"),
        "{line}"
    );
    assert!(
        run.stdout.contains("2 created") && run.stdout.contains("1 errors"),
        "{}",
        run.both()
    );
    assert_eq!(
        world.remote_items(),
        Items::from([
            ("ok-1".into(), vec!["Fine 1".into()]),
            ("ok-2".into(), vec!["Fine 2".into()]),
        ])
    );
    assert_eq!(world.local_items().len(), 3);
    world.assert_converges(&[("broken", "Broken"), ("ok-1", "Fine 1"), ("ok-2", "Fine 2")]);
}

#[test]
fn refused_write_names_the_item_as_the_user_knows_it() {
    let world = World::radicale("", "");
    world.put_local("lunch", "Lunch");
    let no_uid = format!("a/{}/no-uid.ics", world.coll);
    world
        .sb
        .write(&no_uid, common::event_without_uid("Without UID"));
    // One line, so that it is also the first line of the body.
    let body = br#"<D:error xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><C:valid-calendar-object-resource/></D:error>"#;
    world.proxy.set_faults(vec![
        FaultRule::always(Fault::Status(
            403,
            vec![("Content-Type".into(), "application/xml".into())],
            body.to_vec(),
        ))
        .method("PUT"),
    ]);
    let run = world.sync();
    run.expect_code(1);
    let error_for = |file: &str| {
        let source = format!("[TMP]/a/{}/{file}", world.coll);
        run.stderr
            .lines()
            .find(|l| l.contains(&source))
            .unwrap_or_else(|| panic!("no error names {source}:\n{}", run.both()))
            .to_owned()
    };
    // Without -v: the source file, the UID, the target URL, the status and the reason.
    let lunch = error_for("lunch.ics");
    for part in [
        format!("error: {}: ", world.name()),
        "(UID lunch)".to_owned(),
        format!("not written to b as {}", world.proxied_item("lunch")),
        "HTTP 403".to_owned(),
        "valid-calendar-object-resource".to_owned(),
    ] {
        assert!(lunch.contains(&part), "{part:?} missing in {lunch}");
    }
    // An item without a UID is named by its file, with that as the likely reason.
    let no_uid = error_for("no-uid.ics");
    assert!(
        no_uid.contains("(no UID)") && no_uid.contains("HTTP 403"),
        "{no_uid}"
    );
    assert!(!run.stderr.contains("sha256:"), "{}", run.stderr);
    let status = world.sb.run(&["status"]);
    assert!(
        status.stdout.contains("no-uid.ics") && !status.stdout.contains("sha256:"),
        "{}",
        status.stdout
    );
}

#[test]
fn sigint_during_slow_uploads_finishes_the_puts_under_way() {
    const COUNT: usize = 40;
    let world = World::radicale("", "");
    let expected: Vec<(String, String)> = (0..COUNT)
        .map(|n| (format!("item-{n:02}"), format!("Item {n}")))
        .collect();
    for (uid, summary) in &expected {
        world.put_local(uid, summary);
    }
    world
        .proxy
        .set_faults(vec![FaultRule::always(Fault::Delay(300)).method("PUT")]);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_davsync"))
        .current_dir(world.sb.root())
        .env("HOME", world.sb.home())
        .env("DAVSYNC_CONFIG", world.sb.config_path())
        .arg("sync")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start davsync");
    let deadline = Instant::now() + Duration::from_secs(60);
    while world.proxy.requests_with_method("PUT").is_empty() {
        assert!(Instant::now() < deadline, "no PUT was answered");
        thread::sleep(Duration::from_millis(5));
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let output = child.wait_with_output().expect("wait for davsync");
    let stderr = world.sb.normalize(&String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let prefix = format!("interrupted: {}: ", world.name());
    let left: usize = stderr
        .split_once(&prefix)
        .and_then(|(_, rest)| rest.split_once(" actions not done"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of actions left in {stderr:?}"));
    // Every PUT sent was answered and recorded: the status knows exactly those items.
    let put = world.proxy.requests_with_method("PUT").len();
    assert_eq!(put + left, COUNT, "{stderr}");
    assert!(left > 0, "{stderr}");
    let status = world.sb.run(&["status"]);
    assert!(
        status
            .stdout
            .starts_with(&format!("{}: {put} items, last clean sync ", world.name()))
            && status
                .stdout
                .contains(&format!("failed: interrupted: {left} actions not done")),
        "{}",
        status.stdout
    );
    let expected: Vec<(&str, &str)> = expected
        .iter()
        .map(|(uid, summary)| (uid.as_str(), summary.as_str()))
        .collect();
    world.assert_converges(&expected);
}

// 7. PUT answered without ETag.

fn put_without_etag(world: World) {
    world.put_local("local-1", "Local one");
    world.put_local("local-2", "Local two");
    world.proxy.set_faults(vec![
        FaultRule::always(Fault::StripHeader("etag".into())).method("PUT"),
    ]);
    let run = world.sync();
    run.success();
    assert_clean(&run);
    let log = world.proxy.requests();
    for uid in ["local-1", "local-2"] {
        let lookup = log
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with(&format!("/{uid}.ics")));
        assert!(lookup, "no GET after the PUT of {uid}:\n{}", show(&log));
    }
    // The next sync is a no-op right away, even with the header still stripped.
    let before = world.sb.state("a");
    world.proxy.reset_log();
    let run = world.sync();
    run.success();
    assert_clean(&run);
    let log = world.proxy.requests();
    assert!(
        !log.iter()
            .any(|r| WRITE_METHODS.contains(&r.method.as_str())
                || r.method == "GET"
                || is_multiget(r)),
        "the next sync wrote or fetched:\n{}",
        show(&log)
    );
    assert!(world.sb.state("a") == before);
    world.assert_converges(&[("local-1", "Local one"), ("local-2", "Local two")]);
}

#[test]
fn put_without_etag_radicale() {
    put_without_etag(World::radicale("", ""));
}

#[test]
fn put_without_etag_xandikos() {
    put_without_etag(World::xandikos("", ""));
}

// 8. A multiget that omits some hrefs.

#[test]
fn multiget_omits_hrefs() {
    let world = World::radicale("", "");
    world.put_remote("known", "Known v1");
    world.put_remote("keep-1", "Keep 1");
    world.put_remote("doomed", "Doomed v1");
    world.seed();
    assert_eq!(world.local_items().len(), 4);

    // On the server: `known` and `doomed` change, two new items appear. The multiget leaves
    // out the changed `known` and the new `omitted-new`; `doomed` is deleted by another client
    // after the listing, before the multiget (which the proxy holds for a moment), so it
    // really is gone since listing.
    world.put_remote("known", "Known v2");
    world.put_remote("doomed", "Doomed v2");
    world.put_remote("omitted-new", "Omitted new");
    world.put_remote("fresh", "Fresh");
    world
        .proxy
        .set_faults(vec![FaultRule::once(Fault::Delay(300)).method("REPORT")]);
    let run = world.sync_then(|proxy| {
        proxy.set_faults(vec![
            FaultRule::once(Fault::Delay(1000)).method("REPORT"),
            FaultRule::once(Fault::DropHrefsFromMultiget("omitted-new".into())).method("REPORT"),
            FaultRule::once(Fault::DropHrefsFromMultiget("known".into())).method("REPORT"),
        ]);
        wait_used_up(proxy);
        world
            .server
            .client()
            .delete_item(&format!("{}doomed.ics", world.coll_url));
    });
    let log = world.proxy.requests();
    let multiget = log
        .iter()
        .find(|r| {
            is_multiget(r)
                && r.faults
                    .contains(&Fault::DropHrefsFromMultiget("known".into()))
        })
        .unwrap_or_else(|| panic!("no faulted multiget:\n{}", show(&log)));
    assert!(multiget.body_text().contains("doomed.ics"), "{multiget:?}");
    // Not fatal, and the rest synced.
    assert_eq!(run.code, Some(0), "{}", run.both());
    assert_clean(&run);
    let local = world.local_items();
    assert_eq!(
        local.get("fresh"),
        Some(&vec!["Fresh".to_owned()]),
        "{local:?}"
    );
    // What the multiget left out is not deleted on the other side, nor on the server.
    assert!(
        local.contains_key("known"),
        "the vdir copy was deleted: {local:?}"
    );
    assert_eq!(
        world.remote_items().get("known"),
        Some(&vec!["Known v2".to_owned()])
    );
    // What really went away since listing is gone on both sides.
    assert!(!local.contains_key("doomed"), "{local:?}");
    world.assert_converges(&[
        ("fresh", "Fresh"),
        ("keep-1", "Keep 1"),
        ("known", "Known v2"),
        ("omitted-new", "Omitted new"),
        ("seed", "Seed"),
    ]);
}

/// Waits (at most 20 s) until every fault rule now set has been used up.
fn wait_used_up(proxy: &FaultProxy) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.faults().iter().any(|r| r.remaining != Some(0)) {
        assert!(
            Instant::now() < deadline,
            "rules not used up: {:?}",
            proxy.faults()
        );
        thread::sleep(Duration::from_millis(2));
    }
}

// 9. A whole multiget failing: smaller batches, then single GETs.

#[test]
fn failing_multiget_falls_back() {
    let world = World::radicale("concurrency = 1", "");
    world.seed();
    let mut expected: Vec<(String, String)> = (1..=12)
        .map(|i| (format!("remote-{i:02}"), format!("Remote {i}")))
        .collect();
    for (uid, summary) in &expected {
        world.put_remote(uid, summary);
    }
    expected.push(("seed".to_owned(), "Seed".to_owned()));
    world
        .proxy
        .set_faults(vec![FaultRule::once(Fault::Delay(300)).method("REPORT")]);
    // Each failing multiget is tried four times (three retries of a 5xx): the one of 12 and
    // then the first of 10 fail, the second of 2 gets through.
    let run = world.sync_then(|proxy| {
        proxy.set_faults(vec![
            FaultRule::times(Fault::Status(500, vec![], b"boom\n".to_vec()), 8).method("REPORT"),
        ])
    });
    run.success();
    assert_clean(&run);
    let log = world.proxy.requests();
    let multigets: Vec<(usize, Option<u16>)> = log
        .iter()
        .filter(|r| is_multiget(r))
        .map(|r| (hrefs_in(r), r.status))
        .collect();
    let mut wanted = vec![(12, Some(500)); 4];
    wanted.extend(vec![(10, Some(500)); 4]);
    wanted.push((2, Some(207)));
    assert_eq!(multigets, wanted, "{}", show(&log));
    let gets = log
        .iter()
        .filter(|r| r.method == "GET" && r.status == Some(200))
        .count();
    assert_eq!(gets, 10, "{}", show(&log));
    let expected: Vec<(&str, &str)> = expected
        .iter()
        .map(|(u, s)| (u.as_str(), s.as_str()))
        .collect();
    world.assert_converges(&expected);
}

// 9b. A first download whose listing carries the items fails (a server that cannot build so
// large an answer): asked again for ETags only, then the items come by multiget.

#[test]
fn failing_content_listing_falls_back() {
    let world = World::radicale("", "");
    let expected: Vec<(String, String)> = (1..=3)
        .map(|i| (format!("remote-{i}"), format!("Remote {i}")))
        .collect();
    for (uid, summary) in &expected {
        world.put_remote(uid, summary);
    }
    // Not retried: the listing without content is the retry.
    world.proxy.set_faults(vec![
        FaultRule::once(Fault::Status(500, vec![], b"too big\n".to_vec())).method("REPORT"),
    ]);
    let run = world.sync();
    run.success();
    assert_clean(&run);
    let reports: Vec<(&str, Option<u16>)> = world
        .proxy
        .requests_with_method("REPORT")
        .iter()
        .map(|r| {
            let body = r.body_text();
            let kind = if is_multiget(r) {
                "multiget"
            } else if body.contains("calendar-data") {
                "sync-collection with content"
            } else {
                "sync-collection"
            };
            (kind, r.status)
        })
        .collect();
    let wanted = [
        ("sync-collection with content", Some(500)),
        ("sync-collection", Some(207)),
        ("multiget", Some(207)),
    ];
    assert_eq!(reports, wanted, "{}", world.proxy.log_text());
    let expected: Vec<(&str, &str)> = expected
        .iter()
        .map(|(u, s)| (u.as_str(), s.as_str()))
        .collect();
    world.assert_converges(&expected);
}

// 9c. A server that takes longer than the timeout to build the listing with content: asked
// once (a retry would only time out again), then for ETags only.

#[test]
fn content_listing_timing_out_falls_back() {
    let world = World::radicale("timeout = 1", "");
    world.put_remote("remote-1", "Remote 1");
    world.put_remote("remote-2", "Remote 2");
    world
        .proxy
        .set_faults(vec![FaultRule::once(Fault::Delay(2500)).method("REPORT")]);
    let run = world.sync();
    run.success();
    assert_clean(&run);
    // The held answer reaches the proxy's log only after its delay, after davsync gave up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.proxy.requests_with_method("REPORT").len() < 3 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let mut reports: Vec<&str> = world
        .proxy
        .requests_with_method("REPORT")
        .iter()
        .map(|r| {
            if is_multiget(r) {
                "multiget"
            } else if r.body_text().contains("calendar-data") {
                "sync-collection with content"
            } else {
                "sync-collection"
            }
        })
        .collect();
    reports.sort_unstable();
    assert_eq!(
        reports,
        [
            "multiget",
            "sync-collection",
            "sync-collection with content"
        ],
        "{}",
        world.proxy.log_text()
    );
    world.assert_converges(&[("remote-1", "Remote 1"), ("remote-2", "Remote 2")]);
}

// 10. 412 on an update.

#[test]
fn update_refused_with_412() {
    let world = World::radicale("", "");
    world.put_local("item", "Original");
    world.put_local("other", "Other");
    world.sync().success();
    let server_before = world.remote_bytes("item");

    world.put_local("item", "Edited locally");
    world.proxy.reset_log();
    world
        .proxy
        .set_faults(vec![FaultRule::once(Fault::status(412)).method("PUT")]);
    let run = world.sync();
    run.expect_code(1);
    let put = &world.proxy.requests_with_method("PUT")[0];
    assert!(put.if_match().is_some(), "{put:?}");
    assert!(
        run.stderr.lines().any(|l| l.starts_with("error: cal/work:")
            && l.contains("item.ics")
            && l.contains("changed since it was listed, left for the next sync")),
        "{}",
        run.both()
    );
    assert_eq!(world.remote_bytes("item"), server_before, "overwritten");
    assert_eq!(
        world.local_items().get("item"),
        Some(&vec!["Edited locally".to_owned()])
    );
    // The server did not really change, so the local edit goes up next time.
    world.assert_converges(&[("item", "Edited locally"), ("other", "Other")]);
}

#[test]
fn update_races_another_client() {
    // The same with a real change by another client between listing and writing; with
    // "b wins" the next run takes the server's version.
    let world = World::radicale("", "conflict_resolution = \"b wins\"");
    world.put_local("item", "Original");
    world.sync().success();

    world.put_local("item", "Edited locally");
    world.proxy.reset_log();
    world
        .proxy
        .set_faults(vec![FaultRule::once(Fault::Delay(1000)).method("PUT")]);
    let run = world.sync_then(|_| world.put_remote("item", "Edited on the server"));
    run.expect_code(1);
    let put = &world.proxy.requests_with_method("PUT")[0];
    assert_eq!(put.status, Some(412), "{put:?}");
    assert!(
        run.stderr
            .contains("changed since it was listed, left for the next sync"),
        "{}",
        run.both()
    );
    assert_eq!(
        world.remote_items().get("item"),
        Some(&vec!["Edited on the server".to_owned()]),
        "the other client's version was overwritten"
    );
    world.assert_converges(&[("item", "Edited on the server")]);
}

// 11. TLS spoken to a plain HTTP port.

#[test]
fn tls_to_plain_http() {
    let world = World::radicale("", "");
    world.put_local("local-1", "Local one");
    let url = format!("https://127.0.0.1:{}/alice/", world.server.port());
    let config = world.sb.read_string("config.toml");
    let plain = world.proxy.proxied(&world.server.principal_url());
    world.sb.write(
        "config.toml",
        config.replace(&format!("\"{plain}\""), &format!("\"{url}\"")),
    );
    let before = world.sb.state("a");
    let started = Instant::now();
    let run = world.sync();
    let elapsed = started.elapsed();
    run.expect_code(1);
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(
        run.stderr.contains(&format!(
            "{url}: the server answered in plain HTTP: use http:// or the TLS port"
        )),
        "{}",
        run.both()
    );
    assert!(world.sb.state("a") == before);
}

// 12. Wrong password.

#[test]
fn wrong_password() {
    let world = World::radicale("", "");
    world.put_local("local-1", "Local one");
    let config = world.sb.read_string("config.toml");
    world.sb.write(
        "config.toml",
        config.replace(Radicale::PASSWORD, "not-the-password"),
    );
    let before = world.sb.state("a");
    let run = world.sync();
    run.expect_code(1);
    let url = world.proxy.proxied(&world.server.principal_url());
    assert!(
        run.stderr.contains(&url) && run.stderr.contains("401"),
        "{}",
        run.both()
    );
    assert!(!run.both().contains("not-the-password"));
    let log = world.proxy.requests();
    assert!(log.len() <= 3, "retried a 401:\n{}", show(&log));
    assert!(log.iter().all(|r| r.status == Some(401)), "{}", show(&log));
    assert!(world.sb.state("a") == before);
}

// Issue 7, point 2: only a 404 or 410 means gone. A member the server lists or returns in a
// way davsync cannot trust is unreadable: named, exit 1, deleted nowhere.

/// Two items known on both sides (the server side was written to, so the next listing asks
/// for ETags only and a multiget fetches what changed), both changed on the server; the
/// answers about `bad` are garbled by `fault`. `bad` keeps its old copy in the vdir, `ok` is
/// synced, and the next clean run brings `bad` over.
fn unreadable_on_server(world: World, fault: FaultRule) {
    world.put_local("bad", "Bad v1");
    world.put_local("ok", "Ok v1");
    world.sync().success();
    world.put_remote("bad", "Bad v2");
    world.put_remote("ok", "Ok v2");
    world.proxy.set_faults(vec![fault]);
    let run = world.sync();
    let log = world.proxy.requests();
    assert!(
        log.iter().any(|r| !r.faults.is_empty()),
        "the fault never applied:\n{}",
        show(&log)
    );
    assert_eq!(run.code, Some(1), "{}", run.both());
    assert!(run.stderr.contains("bad.ics"), "{}", run.both());
    assert_eq!(
        world.local_items(),
        Items::from([
            ("bad".into(), vec!["Bad v1".into()]),
            ("ok".into(), vec!["Ok v2".into()]),
        ]),
        "{}",
        run.both()
    );
    assert!(!log.iter().any(|r| r.method == "DELETE"), "{}", show(&log));
    assert_eq!(
        world.remote_items().get("bad"),
        Some(&vec!["Bad v2".to_owned()])
    );
    world.assert_converges(&[("bad", "Bad v2"), ("ok", "Ok v2")]);
}

fn edit(href: &str, from: &str, to: &str) -> Fault {
    Fault::EditResponses {
        href: href.into(),
        from: from.into(),
        to: to.into(),
    }
}

fn multiget_propstat_500_is_unreadable(world: World) {
    unreadable_on_server(
        world,
        FaultRule::once(edit("bad", "200 OK", "500 Internal Server Error"))
            .method("REPORT")
            .body("calendar-multiget"),
    );
}

#[test]
fn multiget_propstat_500_is_unreadable_radicale() {
    multiget_propstat_500_is_unreadable(World::radicale("", ""));
}

#[test]
fn multiget_propstat_500_is_unreadable_xandikos() {
    multiget_propstat_500_is_unreadable(World::xandikos("", ""));
}

fn multiget_without_etag_is_unreadable(world: World) {
    unreadable_on_server(
        world,
        FaultRule::once(edit("bad", "getetag", "getetagx"))
            .method("REPORT")
            .body("calendar-multiget"),
    );
}

#[test]
fn multiget_without_etag_is_unreadable_radicale() {
    multiget_without_etag_is_unreadable(World::radicale("", ""));
}

#[test]
fn multiget_without_etag_is_unreadable_xandikos() {
    multiget_without_etag_is_unreadable(World::xandikos("", ""));
}

fn multiget_without_calendar_data_is_unreadable(world: World) {
    unreadable_on_server(
        world,
        FaultRule::once(edit("bad", "calendar-data", "calendar-datax"))
            .method("REPORT")
            .body("calendar-multiget"),
    );
}

#[test]
fn multiget_without_calendar_data_is_unreadable_radicale() {
    multiget_without_calendar_data_is_unreadable(World::radicale("", ""));
}

#[test]
fn multiget_without_calendar_data_is_unreadable_xandikos() {
    multiget_without_calendar_data_is_unreadable(World::xandikos("", ""));
}

fn listing_without_etag_is_unreadable(world: World) {
    unreadable_on_server(
        world,
        FaultRule::once(edit("bad", "getetag", "getetagx"))
            .method("REPORT")
            .body("sync-collection"),
    );
}

#[test]
fn listing_without_etag_is_unreadable_radicale() {
    listing_without_etag_is_unreadable(World::radicale("", ""));
}

#[test]
fn listing_without_etag_is_unreadable_xandikos() {
    listing_without_etag_is_unreadable(World::xandikos("", ""));
}

/// A calendar-query listing (a storage restricted to VEVENT) cut short by the server with a
/// 507 `number-of-matches-within-limits`: the collection is refused, nothing deleted.
fn listing_cut_short_refuses_the_collection(world: World) {
    world.put_local("cut-1", "Cut one");
    world.put_local("kept", "Kept");
    world.sync().success();
    world.proxy.set_faults(vec![
        FaultRule::once(Fault::CutShort("cut-1".into()))
            .method("REPORT")
            .body("calendar-query"),
    ]);
    let before = world.sb.state("a");
    world.proxy.reset_log();
    let run = world.sync();
    let log = world.proxy.requests();
    assert!(
        log.iter().any(|r| !r.faults.is_empty()),
        "the fault never applied:\n{}",
        show(&log)
    );
    assert_eq!(run.code, Some(1), "{}", run.both());
    assert!(run.stderr.contains("507"), "{}", run.both());
    assert!(world.sb.state("a") == before, "the vdir was touched");
    assert!(
        !log.iter()
            .any(|r| WRITE_METHODS.contains(&r.method.as_str())),
        "{}",
        show(&log)
    );
    world.assert_converges(&[("cut-1", "Cut one"), ("kept", "Kept")]);
}

#[test]
fn listing_cut_short_refuses_the_collection_radicale() {
    listing_cut_short_refuses_the_collection(World::radicale("item_types = [\"VEVENT\"]", ""));
}

#[test]
fn listing_cut_short_refuses_the_collection_xandikos() {
    listing_cut_short_refuses_the_collection(World::xandikos("item_types = [\"VEVENT\"]", ""));
}

// Issue 7, point 9: a create never duplicates. The PUT went through but was answered 412 and
// the GET that should show what the server holds fails: uncertain, so the item is reported
// changed and left for the next run, never written under a second name.

fn create_answered_412_uncertain_is_left_for_the_next_run(world: World) {
    world.put_local("new-1", "New one");
    world.proxy.set_faults(vec![
        FaultRule::once(Fault::StatusAfterForward(412))
            .method("PUT")
            .path("new-1"),
        FaultRule::always(Fault::status(500))
            .method("GET")
            .path("new-1"),
    ]);
    let run = world.sync();
    let log = world.proxy.requests();
    assert_eq!(run.code, Some(1), "{}", run.both());
    assert!(run.stderr.contains("new-1"), "{}", run.both());
    let puts: Vec<&Recorded> = log.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 1, "a second name was tried:\n{}", show(&log));
    assert_eq!(
        world.remote_items(),
        Items::from([("new-1".into(), vec!["New one".into()])])
    );
    world.assert_converges(&[("new-1", "New one")]);
}

#[test]
fn create_answered_412_uncertain_is_left_for_the_next_run_radicale() {
    create_answered_412_uncertain_is_left_for_the_next_run(World::radicale("", ""));
}

#[test]
fn create_answered_412_uncertain_is_left_for_the_next_run_xandikos() {
    create_answered_412_uncertain_is_left_for_the_next_run(World::xandikos("", ""));
}

/// Another client stores an item with the same UID under another name while our PUT is under
/// way: the server refuses ours (Radicale: 409 `no-uid-conflict`, without naming the holder),
/// and the message names the status, the precondition and the item that holds the UID.
#[test]
fn uid_conflict_names_the_item_holding_the_uid() {
    let world = World::radicale("", "");
    world.put_local("dup", "Mine");
    world.proxy.set_faults(vec![
        FaultRule::once(Fault::Delay(800)).method("PUT").path("dup"),
    ]);
    let run = world.sync_then(|_| {
        world.server.client().put_item(
            &format!("{}other-name.ics", world.coll_url),
            event("dup", "Theirs").as_bytes(),
        );
    });
    assert_eq!(run.code, Some(1), "{}", run.both());
    for needed in ["409", "no-uid-conflict", "/alice/work/other-name.ics"] {
        assert!(run.stderr.contains(needed), "{needed}: {}", run.both());
    }
    let log = world.proxy.requests();
    assert_eq!(
        log.iter().filter(|r| r.method == "PUT").count(),
        1,
        "another name was tried:\n{}",
        show(&log)
    );
    assert_eq!(
        world.remote_items(),
        Items::from([("dup".into(), vec!["Theirs".into()])])
    );
    assert_eq!(
        world.local_items(),
        Items::from([("dup".into(), vec!["Mine".into()])])
    );
}

// Issue 7, point 10: a PUT answered without ETag is followed by a GET; another client's write
// in between is not taken for ours, so the next run brings it over.

fn put_without_etag_then_another_client_writes(world: World) {
    world.put_local("edited", "Mine");
    // The PUT and the request after it for the same item are held a moment; while the second
    // is held another client replaces the item.
    world.proxy.set_faults(vec![
        FaultRule::once(Fault::StripHeader("etag".into())).method("PUT"),
        FaultRule::times(Fault::Delay(500), 2).path("edited.ics"),
    ]);
    let run = world.sync_then(|_| world.put_remote("edited", "Theirs"));
    run.success();
    let log = world.proxy.requests();
    // The other client's version reaches the vdir, and the server keeps it.
    world.assert_converges(&[("edited", "Theirs")]);
    assert!(
        log.iter()
            .any(|r| r.method == "GET" && r.path.ends_with("/edited.ics")),
        "no GET after the PUT without ETag:\n{}",
        show(&log)
    );
}

#[test]
fn put_without_etag_then_another_client_writes_radicale() {
    put_without_etag_then_another_client_writes(World::radicale("", ""));
}

#[test]
fn put_without_etag_then_another_client_writes_xandikos() {
    put_without_etag_then_another_client_writes(World::xandikos("", ""));
}

// Issue 7, point 11: sync-collection is sent with Depth 0, and a server failing the token
// request (and the fresh one) falls back to a full listing instead of blocking the collection.

fn sync_collection_failing_falls_back_to_a_listing(world: World) {
    world.seed();
    // A run that writes nothing remembers the server's sync token.
    world.sync().success();
    world.put_remote("fresh", "Fresh");
    world.proxy.reset_log();
    world.proxy.set_faults(vec![
        FaultRule::always(Fault::Status(400, Vec::new(), b"bad sync token\n".to_vec()))
            .method("REPORT")
            .body("sync-collection"),
    ]);
    let run = world.sync();
    run.success();
    assert_clean(&run);
    let log = world.proxy.requests();
    let reports: Vec<&Recorded> = log
        .iter()
        .filter(|r| r.method == "REPORT" && r.body_text().contains("sync-collection"))
        .collect();
    assert!(
        reports
            .iter()
            .any(|r| !r.body_text().contains("<d:sync-token/>")),
        "no token request:\n{}",
        show(&log)
    );
    assert!(
        reports
            .iter()
            .any(|r| r.body_text().contains("<d:sync-token/>")),
        "no fresh sync-collection:\n{}",
        show(&log)
    );
    assert!(
        reports.iter().all(|r| r.depth() == Some("0")),
        "sync-collection without Depth 0:\n{}",
        show(&log)
    );
    assert_eq!(
        world.local_items().get("fresh"),
        Some(&vec!["Fresh".to_owned()])
    );
    world.assert_converges(&[("fresh", "Fresh"), ("seed", "Seed")]);
}

#[test]
fn sync_collection_failing_falls_back_to_a_listing_radicale() {
    sync_collection_failing_falls_back_to_a_listing(World::radicale("", ""));
}

#[test]
fn sync_collection_failing_falls_back_to_a_listing_xandikos() {
    sync_collection_failing_falls_back_to_a_listing(World::xandikos("", ""));
}

// Issue 7, point 14: a server spelling hrefs in Latin-1 (`caf%E9.ics`): the item is fetched,
// recorded and written back under exactly that href.

#[test]
fn latin1_hrefs_round_trip() {
    let world = World::radicale("", "");
    world.seed();
    world
        .proxy
        .set_faults(vec![FaultRule::always(Fault::Latin1Hrefs)]);
    world.server.client().put_item(
        &format!("{}caf%C3%A9.ics", world.coll_url),
        event("cafe", "Cafe").as_bytes(),
    );
    let run = world.sync();
    run.success();
    assert_clean(&run);
    let log = world.proxy.requests();
    assert!(
        log.iter().any(|r| r.answer_text().contains("caf%E9.ics")),
        "the server never spoke Latin-1:\n{}",
        show(&log)
    );
    assert_eq!(
        world.local_items().get("cafe"),
        Some(&vec!["Cafe".to_owned()]),
        "{}",
        run.both()
    );
    // A local edit goes back to the same resource.
    let name = world
        .sb
        .ls(&format!("a/{}", world.coll))
        .into_iter()
        .find(|n| {
            world
                .sb
                .read_string(&format!("a/{}/{n}", world.coll))
                .contains("UID:cafe")
        })
        .expect("the local copy");
    world.sb.write(
        &format!("a/{}/{name}", world.coll),
        event("cafe", "Cafe edited"),
    );
    world.proxy.reset_log();
    let run = world.sync();
    run.success();
    assert_clean(&run);
    let log = world.proxy.requests();
    assert!(
        log.iter().any(|r| r.method == "PUT"
            && r.path.ends_with("/caf%E9.ics")
            && r.status == Some(204)
            || r.method == "PUT" && r.path.ends_with("/caf%E9.ics") && r.status == Some(201)),
        "{}",
        show(&log)
    );
    assert_eq!(
        world.remote_items(),
        Items::from([
            ("cafe".into(), vec!["Cafe edited".into()]),
            ("seed".into(), vec!["Seed".into()]),
        ])
    );
    // And the run after that has nothing to do.
    world.proxy.reset_log();
    let run = world.sync();
    run.success();
    assert_clean(&run);
    assert!(
        !world
            .proxy
            .requests()
            .iter()
            .any(|r| WRITE_METHODS.contains(&r.method.as_str())),
        "{}",
        show(&world.proxy.requests())
    );
}

// 20. Credentials stay with their origin: a home set on another port (another origin) is
// refused, naming both URLs, and nothing at all (let alone the password) goes there.

/// A mock server on another port of 127.0.0.1 that records the head of every request it gets
/// and answers 404: "another origin" a server could point davsync to.
struct RecordingMock {
    addr: std::net::SocketAddr,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RecordingMock {
    fn start() -> RecordingMock {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind mock");
        let addr = listener.local_addr().expect("mock address");
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = std::sync::Arc::clone(&heads);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut head = String::new();
                while reader.read_line(&mut head).is_ok_and(|n| n > 2) {}
                recorded.lock().expect("mock log").push(head);
                let _ = (&stream).write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        RecordingMock { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("mock log").clone()
    }
}

#[test]
fn home_set_on_another_origin_is_refused() {
    let world = World::radicale("", "");
    world.put_local("local-1", "Local one");
    let mock = RecordingMock::start();
    let elsewhere = format!("http://{}/alice/", mock.addr);
    // The principal's answer names its home set (and itself) on the mock's origin.
    world.proxy.set_faults(vec![
        FaultRule::always(Fault::ReplaceInBody(
            ">/alice/<".into(),
            format!(">{elsewhere}<"),
        ))
        .method("PROPFIND"),
    ]);
    let before = world.sb.state("a");
    let run = world.sync();
    let heads = mock.heads();
    assert!(
        !heads
            .iter()
            .any(|h| h.to_lowercase().contains("authorization:")),
        "credentials sent to the other origin: {heads:#?}"
    );
    assert_eq!(
        heads,
        Vec::<String>::new(),
        "requests sent to the other origin"
    );
    run.expect_code(1);
    let configured = world.proxy.proxied(&world.server.principal_url());
    assert!(
        run.stderr.contains(&elsewhere) && run.stderr.contains(&configured),
        "the message names both URLs: {}",
        run.both()
    );
    assert!(world.sb.state("a") == before, "the vdir was touched");
    world.assert_converges(&[("local-1", "Local one")]);
}

// 21. A write the server redirects is an error naming the target, never a success.

#[test]
fn redirected_writes_are_errors() {
    let world = World::radicale("", "");
    world.put_local("local-1", "Local one");
    world.put_local("local-2", "Local two");
    let moved = format!("{}moved/x.ics", world.proxied_coll());
    world.proxy.set_faults(vec![
        FaultRule::once(Fault::Status(
            303,
            vec![("Location".into(), "/elsewhere/x.ics".into())],
            vec![],
        ))
        .method("PUT")
        .path("local-1"),
        FaultRule::once(Fault::Status(
            307,
            vec![("Location".into(), moved.clone())],
            vec![],
        ))
        .method("PUT")
        .path("local-2"),
    ]);
    let before = world.sb.state("a");
    let run = world.sync();
    run.expect_code(1);
    let elsewhere = format!("{}elsewhere/x.ics", world.proxy.url());
    assert!(
        run.stderr.contains(&elsewhere) && run.stderr.contains(&moved),
        "the message names both targets: {}",
        run.both()
    );
    let log = world.proxy.requests();
    assert!(
        log.iter()
            .all(|r| !r.path.contains("elsewhere") && !r.path.contains("moved")),
        "a redirected write was followed: {}",
        show(&log)
    );
    assert_eq!(
        world.remote_items(),
        Items::new(),
        "server after the redirects"
    );
    assert!(world.sb.state("a") == before, "the vdir was touched");
    world.assert_converges(&[("local-1", "Local one"), ("local-2", "Local two")]);
}

// 22. A PROPFIND redirected (301) to a relative location is followed, as PROPFIND, and the
// relative hrefs in its answer are taken relative to the URL that answered, not the one
// asked.

#[test]
fn propfind_redirected_to_a_relative_location() {
    let world = World::radicale("", "");
    world.put_local("local-1", "Local one");
    world.put_remote("remote-1", "Remote one");
    let principal = world.proxy.proxied(&world.server.principal_url());
    let old = format!("{}old-home/", world.proxy.url());
    let config = world.sb.read_string("config.toml");
    world.sb.write(
        "config.toml",
        config.replace(&format!("\"{principal}\""), &format!("\"{old}\"")),
    );
    // The configured URL moved to /alice/; the server there names its home set and
    // collection by relative hrefs.
    world.proxy.set_faults(vec![
        FaultRule::always(Fault::Status(
            301,
            vec![("Location".into(), "../alice/".into())],
            vec![],
        ))
        .path("/old-home/"),
        FaultRule::always(Fault::ReplaceInBody(">/alice/<".into(), ">./<".into()))
            .method("PROPFIND"),
        FaultRule::always(Fault::ReplaceInBody(
            format!(">/alice/{}/<", world.coll),
            format!(">{}/<", world.coll),
        ))
        .method("PROPFIND"),
    ]);
    let run = world.sync();
    run.success();
    assert_clean(&run);
    let log = world.proxy.requests();
    assert!(
        log.iter()
            .any(|r| r.method == "PROPFIND" && r.path == "/alice/" && r.status == Some(207)),
        "the redirect was not followed as a PROPFIND: {}",
        show(&log)
    );
    let expected: Items = [("local-1", "Local one"), ("remote-1", "Remote one")]
        .iter()
        .map(|(uid, summary)| ((*uid).to_owned(), vec![(*summary).to_owned()]))
        .collect();
    assert_eq!(world.local_items(), expected, "vdir");
    assert_eq!(world.remote_items(), expected, "server");
    let run = world.sync();
    run.success();
    assert!(run.stdout.contains(": in sync"), "{}", run.both());
}

// 23. Retry-After as an HTTP date, counted from the answer's own Date header (here 1994, so
// the local clock cannot be what makes davsync wait).

#[test]
fn retry_after_http_date() {
    let world = World::radicale("", "");
    world.put_local("local-1", "Local one");
    world.proxy.set_faults(vec![
        FaultRule::once(Fault::Status(
            503,
            vec![
                ("Date".into(), "Sun, 06 Nov 1994 08:49:37 GMT".into()),
                ("Retry-After".into(), "Sun, 06 Nov 1994 08:49:40 GMT".into()),
            ],
            b"injected 503\n".to_vec(),
        ))
        .method("PROPFIND"),
    ]);
    let started = Instant::now();
    let run = world.sync();
    let elapsed = started.elapsed();
    run.success();
    assert_clean(&run);
    assert!(
        elapsed >= Duration::from_millis(2900),
        "Retry-After (3 s by the server's clock) was not honoured ({elapsed:?})"
    );
    world.assert_converges(&[("local-1", "Local one")]);
}

// 24. A server locking its collection per write (423 to a write while another is in flight,
// as Xandikos does after an interrupted run): fewer writes at once, and the run converges.

#[test]
fn parallel_writes_answered_423_converge() {
    let world = World::radicale("concurrency = 4", "");
    let expected: Vec<(String, String)> = (1..=16)
        .map(|i| (format!("local-{i:02}"), format!("Local {i}")))
        .collect();
    for (uid, summary) in &expected {
        world.put_local(uid, summary);
    }
    world.proxy.set_faults(vec![
        FaultRule::always(Fault::LockedWhileBusy(150)).method("PUT"),
    ]);
    let run = world.sync();
    run.success();
    assert_clean(&run);
    let log = world.proxy.requests();
    assert!(
        log.iter().any(|r| r.status == Some(423)),
        "the writes never ran into the lock: {}",
        show(&log)
    );
    let expected: Vec<(&str, &str)> = expected
        .iter()
        .map(|(u, s)| (u.as_str(), s.as_str()))
        .collect();
    world.assert_converges(&expected);
}

// 25. A server that stops answering mid-run costs one request and its retries, not a
// request per batch and per item: the multigets get no answer at all.

#[test]
fn dead_server_is_asked_once() {
    let world = World::radicale("batch_size = 10", "");
    world.seed();
    let expected: Vec<(String, String)> = (1..=30)
        .map(|i| (format!("remote-{i:02}"), format!("Remote {i}")))
        .collect();
    for (uid, summary) in &expected {
        world.put_remote(uid, summary);
    }
    world.proxy.set_faults(vec![
        FaultRule::always(Fault::Reset)
            .method("REPORT")
            .body("calendar-multiget"),
        FaultRule::always(Fault::Reset).method("GET"),
    ]);
    let before = world.sb.state("a");
    let run = world.sync();
    run.expect_code(1);
    assert!(run.stderr.contains("remote-"), "{}", run.both());
    let log = world.proxy.requests();
    let unanswered = log.iter().filter(|r| r.status.is_none()).count();
    // One request and its three retries; each of the other workers may have had its first
    // multiget in flight already, and it too gets its retries.
    assert!(
        unanswered <= 4 * 3,
        "{unanswered} requests to a dead server: {}",
        show(&log)
    );
    assert!(world.sb.state("a") == before, "the vdir was touched");
    let mut expected: Vec<(&str, &str)> = expected
        .iter()
        .map(|(u, s)| (u.as_str(), s.as_str()))
        .collect();
    expected.push(("seed", "Seed"));
    world.assert_converges(&expected);
}

// 26. An answer larger than max_response_size once decompressed (a gzip bomb) is an error
// naming the URL, read no further.

#[test]
fn huge_gzip_answer_is_refused() {
    use std::io::Write;
    let world = World::radicale("max_response_size = 1", "");
    world.seed();
    world.put_remote("remote-1", "Remote one");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&vec![b' '; 4 << 20]).expect("gzip");
    let bomb = gzip.finish().expect("gzip");
    assert!(bomb.len() < 64 << 10);
    let headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/xml".into()),
        ("Content-Encoding".into(), "gzip".into()),
    ];
    world.proxy.set_faults(vec![
        FaultRule::always(Fault::Status(207, headers.clone(), bomb.clone()))
            .method("REPORT")
            .body("calendar-multiget"),
        FaultRule::always(Fault::Status(200, headers, bomb)).method("GET"),
    ]);
    let before = world.sb.state("a");
    let run = world.sync();
    run.expect_code(1);
    let item = world.proxied_item("remote-1");
    assert!(
        run.stderr.contains(&item) && run.stderr.contains("larger than 1 MiB"),
        "{}",
        run.both()
    );
    assert!(world.sb.state("a") == before, "the vdir was touched");
    world.assert_converges(&[("remote-1", "Remote one"), ("seed", "Seed")]);
}

// 27. A single item over 64 MiB (in an answer within max_response_size) is an error naming
// it; nothing is written locally.

#[test]
fn huge_item_is_refused() {
    let world = World::radicale("", "");
    world.seed();
    world.put_remote("remote-1", "Remote one");
    let href = format!("/alice/{}/remote-1.ics", world.coll);
    let description = "x".repeat(65 << 20);
    let answer = format!(
        "<?xml version=\"1.0\"?><d:multistatus xmlns:d=\"DAV:\" \
         xmlns:c=\"urn:ietf:params:xml:ns:caldav\"><d:response><d:href>{href}</d:href>\
         <d:propstat><d:prop><d:getetag>\"huge\"</d:getetag><c:calendar-data>\
         BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n\
         UID:remote-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T100000Z\r\n\
         SUMMARY:Huge\r\nDESCRIPTION:{description}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n\
         </c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>\
         </d:response></d:multistatus>"
    );
    world.proxy.set_faults(vec![
        FaultRule::once(Fault::Status(
            207,
            vec![("Content-Type".into(), "application/xml".into())],
            answer.into_bytes(),
        ))
        .method("REPORT")
        .body("calendar-multiget"),
    ]);
    let before = world.sb.state("a");
    let run = world.sync();
    run.expect_code(1);
    assert!(
        run.stderr.contains("remote-1.ics") && run.stderr.contains("larger than 64 MiB"),
        "{}",
        run.both()
    );
    assert!(world.sb.state("a") == before, "the vdir was touched");
    world.assert_converges(&[("remote-1", "Remote one"), ("seed", "Seed")]);
}
