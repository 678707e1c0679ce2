//! Smoke tests of the DAV test harness itself (`tests/dav_support`): the pinned venv, Radicale
//! and Xandikos, the helper HTTP client and the fault proxy.

mod dav_support;

use std::io::{BufReader, ErrorKind};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use dav_support::http::{base64, read_response, write_request};
use dav_support::*;

fn event(uid: &str, summary: &str) -> Vec<u8> {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davsync//harness//EN\r\n\
         BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n\
         DTSTART:20240102T100000Z\r\nDTEND:20240102T110000Z\r\nSUMMARY:{summary}\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    .into_bytes()
}

fn card(uid: &str, name: &str) -> Vec<u8> {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n")
        .into_bytes()
}

fn multiget(hrefs: &[String]) -> String {
    let hrefs: String = hrefs
        .iter()
        .map(|h| format!("<D:href>{h}</D:href>"))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <C:calendar-multiget xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">\
         <D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>"
    )
}

fn path_of(url: &str) -> String {
    dav_support::http::split_url(url).1
}

#[test]
fn venv_has_pinned_tools() {
    for (tool, arg) in [
        ("radicale", "--version"),
        ("khal", "--version"),
        ("khard", "--version"),
    ] {
        let out = Command::new(venv_bin(tool))
            .arg(arg)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(out.status.success(), "{tool} {arg}: {out:?}");
    }
    let out = Command::new(venv_bin("pip"))
        .args(["freeze", "--disable-pip-version-check"])
        .output()
        .expect("pip freeze");
    let freeze = String::from_utf8_lossy(&out.stdout).to_lowercase();
    for pin in REQUIREMENTS.lines() {
        assert!(
            freeze.contains(&pin.to_lowercase()),
            "{pin} not in {freeze}"
        );
    }
}

#[test]
fn radicale_through_the_proxy() {
    let server = Radicale::start();
    let proxy = FaultProxy::start(&server.url());
    let client = server.client();

    let cal = proxy.proxied(&format!("{}work/", server.calendar_home_url()));
    assert_eq!(cal, format!("{}alice/work/", proxy.url()));
    client.mkcalendar(&cal);
    let item = format!("{cal}e1.ics");
    let put = client.put_item(&item, &event("e1", "Harness"));
    assert!(put.etag().is_some(), "PUT without ETag: {put:?}");
    let got = client.get(&item);
    assert_eq!(got.status, 200);
    assert!(got.text().contains("UID:e1"), "{}", got.text());
    assert!(got.text().contains("SUMMARY:Harness"), "{}", got.text());
    assert_eq!(got.etag(), put.etag());

    // Conditional PUT: If-None-Match on an existing item is refused, and the proxy logs it.
    let again = client.put_item_with(&item, &event("e1", "x"), &[("If-None-Match", "*")]);
    assert_eq!(again.status, 412);

    let log = proxy.requests();
    let methods: Vec<&str> = log.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["MKCALENDAR", "PUT", "GET", "PUT"], "{log:#?}");
    assert!(log.iter().all(|r| r.has_auth()), "{log:#?}");
    assert_eq!(log[1].path, "/alice/work/e1.ics");
    assert_eq!(log[1].status, Some(201));
    assert!(log[1].body_text().contains("SUMMARY:Harness"));
    assert_eq!(log[3].if_none_match(), Some("*"));
    assert_eq!(proxy.count(), 4);

    // Wrong password: 401, logged by the proxy with auth present.
    proxy.reset_log();
    let wrong = DavClient::basic("alice", "wrong").get(&item);
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("www-authenticate").is_some());
    let anonymous = DavClient::anonymous().get(&item);
    assert_eq!(anonymous.status, 401);
    let log = proxy.requests();
    assert_eq!(log.len(), 2);
    assert!(log[0].has_auth() && !log[1].has_auth());
    assert_eq!(log[0].status, Some(401));

    // Radicale logs one line per request.
    let logged = server.logged_requests();
    assert!(
        logged.contains(&("MKCALENDAR".to_string(), "/alice/work/".to_string())),
        "{logged:?}"
    );
    assert_eq!(logged.len(), 6, "{logged:?}");

    // Address book creation with extended MKCOL.
    let book = format!("{}contacts/", server.addressbook_home_url());
    client.mkcol_addressbook(&book);
    client.put_item(&format!("{book}c1.vcf"), &card("c1", "Ann Example"));
    assert!(
        client
            .get(&format!("{book}c1.vcf"))
            .text()
            .contains("FN:Ann Example")
    );
    client.delete_item(&format!("{book}c1.vcf"));
    assert_eq!(client.get(&format!("{book}c1.vcf")).status, 404);
}

#[test]
fn proxy_keeps_client_connections_alive() {
    let server = Radicale::start();
    let proxy = FaultProxy::start(&server.url());
    let auth = basic_auth(server.user(), server.password());
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for _ in 0..3 {
        let headers = vec![
            ("Host".to_string(), proxy.addr().to_string()),
            ("Authorization".to_string(), auth.clone()),
            ("Depth".to_string(), "0".to_string()),
            ("Content-Length".to_string(), "0".to_string()),
        ];
        write_request(&mut writer, "PROPFIND", "/alice/", &headers, b"").unwrap();
        let resp = read_response(&mut reader, "PROPFIND").unwrap();
        assert_eq!(resp.status, 207, "{}", resp.text());
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
    assert_eq!(proxy.count(), 3);
    assert!(proxy.requests().iter().all(|r| r.depth() == Some("0")));
}

#[test]
fn xandikos_default_calendar_and_addressbook() {
    let server = Xandikos::start();
    let client = server.client();
    let cal = server.calendar_url();
    assert!(cal.ends_with("/alice/calendars/calendar/"));
    let item = format!("{cal}x1.ics");
    // Xandikos answers the PUT with a chunked, empty body.
    let put = client.put_item(&item, &event("x1", "On Xandikos"));
    assert_eq!(put.status, 201);
    assert!(put.etag().is_some());
    let got = client.get(&item);
    assert_eq!(got.status, 200);
    assert!(got.text().contains("SUMMARY:On Xandikos"));
    assert_eq!(got.etag(), put.etag());

    let card_url = format!("{}k1.vcf", server.addressbook_url());
    client.put_item(&card_url, &card("k1", "Kim"));
    assert!(client.get(&card_url).text().contains("FN:Kim"));

    // New collections under the homes.
    let cal2 = format!("{}second/", server.calendar_home_url());
    client.mkcalendar(&cal2);
    client.put_item(&format!("{cal2}y.ics"), &event("y", "second"));
    let book2 = format!("{}second/", server.addressbook_home_url());
    client.mkcol_addressbook(&book2);
    client.put_item(&format!("{book2}z.vcf"), &card("z", "Zed"));

    let listing = client.propfind(
        &cal,
        "1",
        "<propfind xmlns=\"DAV:\"><prop><getetag/></prop></propfind>",
    );
    assert_eq!(listing.status, 207);
    assert!(listing.text().contains("x1.ics"));
    assert!(
        server
            .log()
            .contains("\"PUT /alice/calendars/calendar/x1.ics")
    );
}

#[test]
fn faults_are_seen_by_the_helper_client() {
    let server = Xandikos::start();
    let proxy = FaultProxy::start(&server.url());
    let client = DavClient::anonymous();
    let cal = proxy.proxied(&server.calendar_url());
    let a = format!("{cal}a.ics");
    let b = format!("{cal}b.ics");

    // 503 with Retry-After, once, for PUT: not forwarded, then the next PUT goes through.
    proxy.set_faults(vec![FaultRule::once(Fault::unavailable(1)).method("PUT")]);
    let r = client.put_item_with(&a, &event("a", "A"), &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        client.get(&a).status,
        404,
        "a 503'd PUT must not reach the server"
    );
    client.put_item(&a, &event("a", "A"));
    assert_eq!(proxy.faults()[0].remaining, Some(0));

    // Reset: the request is read, not forwarded, and no answer comes back.
    proxy.set_faults(vec![FaultRule::once(Fault::Reset).path("b.ics")]);
    let err = client
        .try_request(
            "PUT",
            &b,
            &[("Content-Type", "text/calendar")],
            &event("b", "B"),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    assert_eq!(client.get(&b).status, 404);
    let last = proxy.requests().into_iter().rev().nth(1).unwrap();
    assert_eq!((last.method.as_str(), last.status), ("PUT", None));

    // ResetAfterForward: the server applies the PUT but the answer is lost.
    proxy.set_faults(vec![
        FaultRule::once(Fault::ResetAfterForward).method("PUT"),
    ]);
    assert!(
        client
            .try_request(
                "PUT",
                &b,
                &[("Content-Type", "text/calendar")],
                &event("b", "B")
            )
            .is_err()
    );
    assert_eq!(client.get(&b).status, 200);

    // Truncate: full Content-Length, part of the body, close.
    proxy.set_faults(vec![FaultRule::once(Fault::Truncate(20)).method("GET")]);
    let err = client.try_request("GET", &a, &[], &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    assert!(err.to_string().contains("got 20 of"), "{err}");
    assert_eq!(client.get(&a).status, 200, "fault applied once only");

    // StripHeader, GarbageBody, Status(500), Delay.
    proxy.set_faults(vec![
        FaultRule::once(Fault::StripHeader("ETag".into())).method("PUT"),
        FaultRule::once(Fault::GarbageBody(b"<multistatus><broken".to_vec())).method("PROPFIND"),
        FaultRule::once(Fault::status(500)).method("DELETE"),
        FaultRule::always(Fault::Delay(300)).method("OPTIONS"),
    ]);
    let put = client.put_item(&a, &event("a", "A2"));
    assert_eq!(put.etag(), None);
    assert!(client.get(&a).etag().is_some());
    let pf = client.propfind(
        &cal,
        "1",
        "<propfind xmlns=\"DAV:\"><prop><getetag/></prop></propfind>",
    );
    assert_eq!(
        (pf.status, pf.text().as_str()),
        (207, "<multistatus><broken")
    );
    assert_eq!(client.request("DELETE", &a, &[], &[]).status, 500);
    assert_eq!(client.get(&a).status, 200);
    let started = Instant::now();
    client.request("OPTIONS", &cal, &[], &[]);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // DropHrefsFromMultiget on Xandikos' `ns0:`-prefixed multistatus.
    proxy.set_faults(vec![
        FaultRule::once(Fault::DropHrefsFromMultiget("/b.ics".into())).method("REPORT"),
    ]);
    let hrefs = [path_of(&a), path_of(&b)];
    let report = client.report(&cal, "1", &multiget(&hrefs));
    assert_eq!(report.status, 207);
    assert!(report.text().contains("a.ics"), "{}", report.text());
    assert!(!report.text().contains("b.ics"), "{}", report.text());
    let report = client.report(&cal, "1", &multiget(&hrefs));
    assert!(report.text().contains("b.ics"), "{}", report.text());

    let log = proxy.requests();
    assert!(log.iter().any(|r| r.faults == [Fault::Reset]), "{log:#?}");
}

#[test]
fn drop_hrefs_from_multiget_handles_prefixes() {
    let body = "<?xml version=\"1.0\"?>\n<d:multistatus xmlns:d=\"DAV:\">\
                <d:response><d:href>/c/a.ics</d:href><d:status>HTTP/1.1 200 OK</d:status></d:response>\
                <d:response>\n <d:href>/c/b.ics</d:href></d:response>\
                <d:responsedescription>x</d:responsedescription></d:multistatus>";
    let out = drop_responses(body, "b.ics");
    assert!(out.contains("a.ics") && !out.contains("b.ics"), "{out}");
    assert!(out.contains("<d:responsedescription>x</d:responsedescription></d:multistatus>"));
    let plain = "<multistatus xmlns=\"DAV:\"><response><href>/x/1</href></response>\
                 <response><href>/x/2</href></response></multistatus>";
    assert_eq!(
        drop_responses(plain, "/x/1"),
        "<multistatus xmlns=\"DAV:\"><response><href>/x/2</href></response></multistatus>"
    );
    let upper = "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/y</D:href></D:response></D:multistatus>";
    assert_eq!(
        drop_responses(upper, "/y"),
        "<D:multistatus xmlns:D=\"DAV:\"></D:multistatus>"
    );
    assert_eq!(drop_responses(upper, "/nothing"), upper);
}

#[test]
fn basic_auth_encoding() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(
        basic_auth("alice", "secret-horse-42"),
        "Basic YWxpY2U6c2VjcmV0LWhvcnNlLTQy"
    );
}
