//! The CalDAV/CardDAV storage (`davsync::storage::dav::open`) against real servers, one storage
//! operation at a time: discovery, collections, listing, change tracking, batched fetching and
//! conditional writes, down to the requests sent. What every storage promises (listing, fetching,
//! conditional failures, name hints, collections, properties) is checked once for all storage
//! types by the contract suite, `tests/contract.rs`; this file keeps what is DAV's own. Every test body is written once, taking the server, and runs against
//! Radicale and Xandikos (see the `both!` invocation at the end). Requests are counted and
//! inspected at a `FaultProxy` in front of the server.
//!
//! Each test opens a fresh storage per "run", as the binary does: a storage remembers what the
//! home-set PROPFIND said about its collections for the rest of its life.

mod dav_support;

use std::collections::BTreeMap;
use std::time::Duration;

use dav_support::http::split_url;
use dav_support::*;
use davsync::config::{AuthScheme, DavConfig, DavKind, HttpOptions, ItemFilter, Secret, TlsVerify};
use davsync::storage::dav::{DavStorage, Dialect};
use davsync::storage::{ChangeSet, Changes, CollectionInfo, ItemError, ListEntry, Storage};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A storage config for `url` with the server's credentials (Basic auth; Xandikos ignores it).
fn config(server: &dyn DavServer, kind: DavKind, url: &str) -> DavConfig {
    DavConfig {
        kind,
        http: HttpOptions {
            url: url.to_owned(),
            username: Some(server.user().to_owned()),
            password: Some(Secret::Literal(server.password().to_owned())),
            auth: AuthScheme::Basic,
            verify: TlsVerify::System,
            fingerprint: None,
            client_cert: None,
            timeout: Duration::from_secs(30),
            user_agent: None,
            max_response_size: 256 << 20,
        },
        batch_size: 50,
        concurrency: 4,
        dialect: Dialect::Standard,
    }
}

fn open(config: &DavConfig) -> DavStorage {
    open_filtered(config, &ItemFilter::default())
}

/// A storage letting through only what `filter` lets through.
fn open_filtered(config: &DavConfig, filter: &ItemFilter) -> DavStorage {
    davsync::storage::dav::open(
        config,
        filter,
        &BTreeMap::<String, String>::new(),
        &davsync::http::Clients::default(),
    )
    .expect("open DAV storage")
}

/// A CalDAV storage whose URL is the proxy's root (the server root behind it).
fn caldav(server: &dyn DavServer, proxy: &FaultProxy) -> DavStorage {
    open(&config(server, DavKind::CalDav, &proxy.url()))
}

fn carddav(server: &dyn DavServer, proxy: &FaultProxy) -> DavStorage {
    open(&config(server, DavKind::CardDav, &proxy.url()))
}

fn home(server: &dyn DavServer, kind: DavKind) -> String {
    match kind {
        DavKind::CalDav => server.calendar_home_url(),
        DavKind::CardDav => server.addressbook_home_url(),
    }
}

/// Creates a calendar `name` on the server (as another client) and returns its URL.
fn make_calendar(server: &dyn DavServer, name: &str) -> String {
    let url = format!("{}{name}/", server.calendar_home_url());
    server.client().mkcalendar(&url);
    url
}

fn make_addressbook(server: &dyn DavServer, name: &str) -> String {
    let url = format!("{}{name}/", server.addressbook_home_url());
    server.client().mkcol_addressbook(&url);
    url
}

/// The path of a URL (`/alice/work/`).
fn path_of(url: &str) -> String {
    split_url(url).1
}

fn event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davsync tests//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20260101T090000Z\r\nDTSTART:20260110T100000Z\r\n\
         DTEND:20260110T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn todo(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davsync tests//EN\r\nBEGIN:VTODO\r\n\
         UID:{uid}\r\nDTSTAMP:20260101T090000Z\r\nDUE:20260112T100000Z\r\n\
         SUMMARY:{summary}\r\nSTATUS:NEEDS-ACTION\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
}

fn vcard(uid: &str, name: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n\
         EMAIL;TYPE=INTERNET:{uid}@example.org\r\nEND:VCARD\r\n"
    )
}

/// The collection `name` as the storage lists it.
fn collection(storage: &DavStorage, name: &str) -> CollectionInfo {
    let all = storage.list_collections().expect("list collections");
    all.iter()
        .find(|c| c.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no collection {name:?} in {all:#?}"))
}

/// PUTs items into the collection at `url` as another client; returns `(path, etag)` each.
fn put_all(server: &dyn DavServer, url: &str, items: &[(&str, String)]) -> Vec<(String, String)> {
    let client = server.client();
    items
        .iter()
        .map(|(name, bytes)| {
            let item_url = format!("{url}{name}");
            let resp = client.put_item(&item_url, bytes.as_bytes());
            let etag = match resp.etag() {
                Some(etag) => etag.to_owned(),
                None => client
                    .get(&item_url)
                    .etag()
                    .expect("GET gives an ETag")
                    .to_owned(),
            };
            (path_of(&item_url), etag)
        })
        .collect()
}

fn sorted(mut entries: Vec<ListEntry>) -> Vec<ListEntry> {
    entries.sort_by(|a, b| a.href.cmp(&b.href));
    entries
}

fn hrefs(entries: &[ListEntry]) -> Vec<String> {
    let mut hrefs: Vec<String> = entries.iter().map(|e| e.href.clone()).collect();
    hrefs.sort();
    hrefs
}

/// The requests the proxy saw, one line each, for assertion messages.
fn request_lines(proxy: &FaultProxy) -> String {
    proxy
        .requests()
        .iter()
        .map(|r| format!("{} {} -> {:?}\n", r.method, r.path, r.status))
        .collect()
}

/// Full listing of a `ChangeSet`, panicking on anything else.
fn full(set: &ChangeSet) -> Vec<ListEntry> {
    match &set.changes {
        Changes::Full(entries) => sorted(entries.clone()),
        other => panic!("expected a full listing, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery and collections

fn discovery_from_root(server: &dyn DavServer) {
    make_calendar(server, "disc-cal");
    make_addressbook(server, "disc-book");
    let proxy = FaultProxy::start(&server.url());
    for (kind, own, other) in [
        (DavKind::CalDav, "disc-cal", "disc-book"),
        (DavKind::CardDav, "disc-book", "disc-cal"),
    ] {
        let cfg = config(server, kind, &proxy.url());
        let storage = open(&cfg);
        let collections = storage.list_collections().expect("list collections");
        let names: Vec<&str> = collections.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&own), "{kind:?}: {collections:#?}");
        assert!(!names.contains(&other), "{kind:?}: {collections:#?}");
        for c in &collections {
            assert!(
                c.id.starts_with(&proxy.proxied(&home(server, kind))),
                "{c:?}"
            );
            let last = c.id.trim_end_matches('/').rsplit('/').next().unwrap();
            assert_eq!(c.name, last, "name is the last href segment: {c:?}");
        }

        let hint = storage.discovery_hint().expect("a home set was found");
        assert_eq!(hint, proxy.proxied(&home(server, kind)));

        // A storage given the hint lists the collections with the home-set PROPFIND alone.
        proxy.reset_log();
        let hinted = open(&cfg);
        hinted.use_discovery_hint(&hint);
        assert_eq!(hinted.list_collections().expect("list"), collections);
        let log = proxy.requests();
        assert_eq!(log.len(), 1, "{kind:?}:\n{}", request_lines(&proxy));
        assert_eq!(log[0].method, "PROPFIND");
        assert_eq!(log[0].path, path_of(&hint));
        assert_eq!(log[0].depth(), Some("1"));
        assert_eq!(hinted.discovery_hint().as_deref(), Some(hint.as_str()));
    }
}

fn stale_discovery_hint_is_dropped(server: &dyn DavServer) {
    make_calendar(server, "stale-hint");
    let proxy = FaultProxy::start(&server.url());
    let storage = caldav(server, &proxy);
    storage.use_discovery_hint(&format!("{}gone/home/", proxy.url()));
    let names: Vec<String> = storage
        .list_collections()
        .expect("discovery starts over")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert!(names.contains(&"stale-hint".to_owned()), "{names:?}");
    assert_eq!(
        storage.discovery_hint(),
        Some(proxy.proxied(&server.calendar_home_url()))
    );
}

fn create_collections(server: &dyn DavServer) {
    let proxy = FaultProxy::start(&server.url());

    let cal = caldav(server, &proxy);
    let created = cal.create_collection("new cal").expect("MKCALENDAR");
    assert_eq!(created.name, "new cal");
    assert_eq!(
        created.id,
        proxy.proxied(&format!("{}new%20cal/", server.calendar_home_url()))
    );
    let mk = proxy.requests_with_method("MKCALENDAR");
    assert_eq!(mk.len(), 1, "{}", request_lines(&proxy));
    assert!(mk[0].is_success_status(), "{}", request_lines(&proxy));
    assert!(proxy.requests_with_method("MKCOL").is_empty());
    // A fresh storage (another run) lists it, as a calendar.
    assert_eq!(collection(&caldav(server, &proxy), "new cal"), created);
    assert!(
        !carddav(server, &proxy)
            .list_collections()
            .unwrap()
            .iter()
            .any(|c| c.name == "new cal")
    );

    proxy.reset_log();
    let book = carddav(server, &proxy);
    let created = book.create_collection("new-book").expect("extended MKCOL");
    assert_eq!(created.name, "new-book");
    assert_eq!(
        created.id,
        proxy.proxied(&format!("{}new-book/", server.addressbook_home_url()))
    );
    let mk = proxy.requests_with_method("MKCOL");
    assert_eq!(mk.len(), 1, "{}", request_lines(&proxy));
    assert!(
        mk[0].body_text().contains("addressbook"),
        "{}",
        mk[0].body_text()
    );
    assert!(proxy.requests_with_method("MKCALENDAR").is_empty());
    assert_eq!(collection(&carddav(server, &proxy), "new-book"), created);
}

trait StatusExt {
    fn is_success_status(&self) -> bool;
}

impl StatusExt for Recorded {
    fn is_success_status(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

// ---------------------------------------------------------------------------------------------
// Listing and fetching

fn get_many_in_batches(server: &dyn DavServer) {
    let url = make_calendar(server, "fetching");
    let items: Vec<(String, String)> = (1..=5)
        .map(|i| {
            (
                format!("g{i}.ics"),
                event(&format!("g{i}"), &format!("Fetch {i}")),
            )
        })
        .collect();
    let items_ref: Vec<(&str, String)> =
        items.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    put_all(server, &url, &items_ref);

    let proxy = FaultProxy::start(&server.url());
    let mut cfg = config(server, DavKind::CalDav, &proxy.url());
    cfg.batch_size = 2;
    let storage = open(&cfg);
    let coll = collection(&storage, "fetching");
    let listed = sorted(storage.list(&coll).expect("list"));
    assert_eq!(listed.len(), 5);
    let wanted: Vec<&str> = listed.iter().map(|e| e.href.as_str()).collect();

    proxy.reset_log();
    let fetched = storage.get_many(&coll, &wanted);
    let reports = proxy.requests_with_method("REPORT");
    assert_eq!(reports.len(), 3, "{}", request_lines(&proxy));
    assert_eq!(proxy.count(), 3, "{}", request_lines(&proxy));
    let per_report: Vec<usize> = reports
        .iter()
        .map(|r| r.body_text().matches("<d:href>").count())
        .collect();
    let mut sizes = per_report.clone();
    sizes.sort();
    assert_eq!(sizes, [1, 2, 2], "hrefs per multiget");
    assert!(
        reports
            .iter()
            .all(|r| r.body_text().contains("calendar-multiget"))
    );

    assert_eq!(fetched.len(), 5);
    for ((href, result), entry) in fetched.iter().zip(&listed) {
        assert_eq!(href, &entry.href, "results come in the order asked");
        let got = result.as_ref().unwrap_or_else(|e| panic!("{href}: {e}"));
        assert_eq!(got.etag, entry.etag, "{href}");
        let text = String::from_utf8_lossy(&got.bytes);
        let n = href.trim_end_matches(".ics").rsplit('g').next().unwrap();
        assert!(text.contains(&format!("UID:g{n}")), "{href}: {text}");
        assert!(
            text.contains(&format!("SUMMARY:Fetch {n}")),
            "{href}: {text}"
        );
    }

    // An item deleted by another client since the listing comes back as NotFound, the others
    // as usual.
    server.client().delete_item(&format!("{url}g3.ics"));
    let fetched = storage.get_many(&coll, &wanted);
    assert_eq!(fetched.len(), 5);
    for (href, result) in &fetched {
        if href.ends_with("/g3.ics") {
            assert!(
                matches!(result, Err(ItemError::NotFound { .. })),
                "{href}: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "{href}: {result:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writes

fn create_items(server: &dyn DavServer) {
    let url = make_calendar(server, "creating");
    let proxy = FaultProxy::start(&server.url());
    let storage = caldav(server, &proxy);
    let coll = collection(&storage, "creating");
    let client = server.client();

    proxy.reset_log();
    let bytes = event("new-1", "Created");
    let written = storage
        .create(&coll, "new-1", bytes.as_bytes())
        .expect("create");
    assert_eq!(written.href, path_of(&format!("{url}new-1.ics")));
    let puts = proxy.requests_with_method("PUT");
    assert_eq!(puts.len(), 1, "{}", request_lines(&proxy));
    assert_eq!(puts[0].if_none_match(), Some("*"));
    assert_eq!(puts[0].if_match(), None);
    assert!(
        puts[0]
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/calendar")),
        "{:?}",
        puts[0].headers
    );
    let got = client.get(&format!("{url}new-1.ics"));
    assert_eq!(got.status, 200);
    assert_eq!(got.etag(), Some(written.etag.as_str()));
    assert!(got.text().contains("SUMMARY:Created"));

    // A safe UID with characters that need percent-encoding keeps one spelling.
    let coll_path = path_of(&url);
    proxy.reset_log();
    let plus = "a+b=c@d";
    let written = storage
        .create(&coll, plus, event(plus, "Plus").as_bytes())
        .expect("create");
    let put = &proxy.requests_with_method("PUT")[0];
    assert_eq!(put.path, format!("{coll_path}a%2Bb%3Dc@d.ics"));
    assert_eq!(written.href, put.path);
    let listed = caldav(server, &proxy).list(&coll).expect("list");
    let entry = listed
        .iter()
        .find(|e| e.href == written.href)
        .unwrap_or_else(|| panic!("{written:?} not in {listed:#?}"));
    assert_eq!(entry.etag, written.etag);
    let got = client.get(&format!("{}{}", server.url(), &written.href[1..]));
    assert!(got.text().contains("UID:a+b=c@d"), "{}", got.text());
}

fn update_items(server: &dyn DavServer) {
    let url = make_calendar(server, "updating");
    let put = put_all(server, &url, &[("u.ics", event("u", "Before"))]);
    let (href, etag) = put[0].clone();
    let proxy = FaultProxy::start(&server.url());
    let storage = caldav(server, &proxy);
    let coll = collection(&storage, "updating");
    let client = server.client();

    proxy.reset_log();
    let written = storage
        .update(&coll, &href, &etag, event("u", "After").as_bytes())
        .expect("update with the right ETag");
    assert_eq!(written.href, href);
    assert_ne!(written.etag, etag);
    let puts = proxy.requests_with_method("PUT");
    assert_eq!(puts.len(), 1, "{}", request_lines(&proxy));
    assert_eq!(puts[0].if_match(), Some(etag.as_str()));
    assert_eq!(puts[0].if_none_match(), None);
    let got = client.get(&format!("{url}u.ics"));
    assert!(got.text().contains("SUMMARY:After"));
    assert_eq!(got.etag(), Some(written.etag.as_str()));

    // Updating an item another client deleted is a change, not a creation.
    client.delete_item(&format!("{url}u.ics"));
    let result = storage.update(&coll, &href, &written.etag, event("u", "Again").as_bytes());
    assert!(
        matches!(result, Err(ItemError::Changed { .. })),
        "{result:?}"
    );
    assert_eq!(client.get(&format!("{url}u.ics")).status, 404);
}

/// A delete names the listed ETag in `If-Match` (what a stale or a missing one gives is in the
/// storage contract suite, `tests/contract.rs`).
fn delete_items(server: &dyn DavServer) {
    let url = make_calendar(server, "deleting");
    let put = put_all(server, &url, &[("d1.ics", event("d1", "One"))]);
    let proxy = FaultProxy::start(&server.url());
    let storage = caldav(server, &proxy);
    let coll = collection(&storage, "deleting");
    proxy.reset_log();
    storage
        .delete(&coll, &put[0].0, &put[0].1)
        .expect("delete with the right ETag");
    let deletes = proxy.requests_with_method("DELETE");
    assert_eq!(deletes.len(), 1, "{}", request_lines(&proxy));
    assert_eq!(deletes[0].if_match(), Some(put[0].1.as_str()));
    assert_eq!(server.client().get(&format!("{url}d1.ics")).status, 404);
}

fn addressbook_writes(server: &dyn DavServer) {
    let url = make_addressbook(server, "contacts-rw");
    let proxy = FaultProxy::start(&server.url());
    let storage = carddav(server, &proxy);
    let coll = collection(&storage, "contacts-rw");
    let client = server.client();
    let written = storage
        .create(&coll, "card-1", vcard("card-1", "Ann Example").as_bytes())
        .expect("create");
    assert_eq!(written.href, path_of(&format!("{url}card-1.vcf")));
    let put = &proxy.requests_with_method("PUT")[0];
    assert!(
        put.header("content-type")
            .is_some_and(|t| t.starts_with("text/vcard")),
        "{:?}",
        put.headers
    );
    let updated = storage
        .update(
            &coll,
            &written.href,
            &written.etag,
            vcard("card-1", "Ann Changed").as_bytes(),
        )
        .expect("update");
    assert!(
        client
            .get(&format!("{url}card-1.vcf"))
            .text()
            .contains("FN:Ann Changed")
    );
    let fetched = storage.get_many(&coll, &[written.href.as_str()]);
    let got = fetched[0].1.as_ref().expect("multiget");
    assert_eq!(got.etag, updated.etag);
    assert!(String::from_utf8_lossy(&got.bytes).contains("FN:Ann Changed"));
    assert!(
        proxy
            .requests_with_method("REPORT")
            .last()
            .unwrap()
            .body_text()
            .contains("addressbook-multiget")
    );
    storage
        .delete(&coll, &written.href, &updated.etag)
        .expect("delete");
    assert_eq!(client.get(&format!("{url}card-1.vcf")).status, 404);
}

// ---------------------------------------------------------------------------------------------
// Change tracking

/// One "run": a fresh storage at the proxy, collections listed, then `list_changes`.
fn changes(
    server: &dyn DavServer,
    proxy: &FaultProxy,
    name: &str,
    since: Option<&str>,
) -> ChangeSet {
    let storage = caldav(server, proxy);
    let coll = collection(&storage, name);
    storage
        .list_changes(&coll, since, false)
        .expect("list changes")
}

/// href and ETag of each entry, after checking that the content an entry carries (a server
/// may leave it out: Xandikos does) is the item's, with this SUMMARY.
fn changed_items(entries: &[ListEntry], summary: &str) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| {
            if let Some(content) = &e.content {
                let text = String::from_utf8_lossy(content);
                assert!(text.contains(&format!("SUMMARY:{summary}")), "{text}");
            }
            (e.href.clone(), e.etag.clone())
        })
        .collect()
}

fn list_changes_deltas(server: &dyn DavServer) {
    let url = make_calendar(server, "changes");
    put_all(
        server,
        &url,
        &[
            ("c1.ics", event("c1", "One")),
            ("c2.ics", event("c2", "Two")),
        ],
    );
    let proxy = FaultProxy::start(&server.url());
    let client = server.client();

    let first = changes(server, &proxy, "changes", None);
    let listed = full(&first);
    assert_eq!(
        hrefs(&listed),
        [
            path_of(&format!("{url}c1.ics")),
            path_of(&format!("{url}c2.ics"))
        ]
    );
    let state = first.state.clone().expect("a sync token or ctag");

    // Nothing happened: Unchanged, from the home-set PROPFIND alone.
    proxy.reset_log();
    let storage = caldav(server, &proxy);
    storage.use_discovery_hint(&proxy.proxied(&server.calendar_home_url()));
    let coll = collection(&storage, "changes");
    let same = storage
        .list_changes(&coll, Some(&state), false)
        .expect("list changes");
    assert_eq!(same.changes, Changes::Unchanged);
    assert_eq!(same.state.as_deref(), Some(state.as_str()));
    assert_eq!(proxy.count(), 1, "{}", request_lines(&proxy));
    assert_eq!(proxy.requests()[0].method, "PROPFIND");

    // Another client adds an item: the delta names exactly it.
    let added = client.put_item(&format!("{url}c3.ics"), event("c3", "Three").as_bytes());
    let after_put = changes(server, &proxy, "changes", Some(&state));
    match &after_put.changes {
        Changes::Delta { changed, removed } => {
            // A delta asks for the content too: every change is new to the caller.
            assert_eq!(
                changed_items(changed, "Three"),
                [(
                    path_of(&format!("{url}c3.ics")),
                    added.etag().expect("ETag").to_owned(),
                )]
            );
            assert!(removed.is_empty(), "{removed:?}");
        }
        // Both servers support sync-collection: anything but a delta is a needless listing.
        other => panic!("expected a delta, got {other:?}"),
    }
    let state2 = after_put.state.clone().expect("state");
    assert_ne!(state2, state);

    // Another client deletes one.
    client.delete_item(&format!("{url}c1.ics"));
    let after_delete = changes(server, &proxy, "changes", Some(&state2));
    match &after_delete.changes {
        Changes::Delta { changed, removed } => {
            assert!(changed.is_empty(), "{changed:?}");
            assert_eq!(removed, &vec![path_of(&format!("{url}c1.ics"))]);
        }
        // Both servers support sync-collection: anything but a delta is a needless listing.
        other => panic!("expected a delta, got {other:?}"),
    }
    let state3 = after_delete.state.clone().expect("state");

    // An edit.
    let edited = client.put_item(&format!("{url}c2.ics"), event("c2", "Two v2").as_bytes());
    let after_edit = changes(server, &proxy, "changes", Some(&state3));
    match &after_edit.changes {
        Changes::Delta { changed, removed } => {
            assert_eq!(
                changed_items(changed, "Two v2"),
                [(
                    path_of(&format!("{url}c2.ics")),
                    edited.etag().expect("ETag").to_owned(),
                )]
            );
            assert!(removed.is_empty(), "{removed:?}");
        }
        // Both servers support sync-collection: anything but a delta is a needless listing.
        other => panic!("expected a delta, got {other:?}"),
    }
}

/// A storage instance that lived through another client's change must not answer Unchanged
/// from what its first PROPFIND said.
fn list_changes_same_instance(server: &dyn DavServer) {
    let url = make_calendar(server, "long-lived");
    put_all(server, &url, &[("l1.ics", event("l1", "One"))]);
    let proxy = FaultProxy::start(&server.url());
    let storage = caldav(server, &proxy);
    let coll = collection(&storage, "long-lived");
    let first = storage
        .list_changes(&coll, None, false)
        .expect("list changes");
    assert_eq!(full(&first).len(), 1);
    let state = first.state.expect("state");
    server
        .client()
        .put_item(&format!("{url}l2.ics"), event("l2", "Two").as_bytes());
    let next = storage
        .list_changes(&coll, Some(&state), false)
        .expect("list changes");
    match &next.changes {
        Changes::Delta { changed, .. } => assert_eq!(changed.len(), 1, "{changed:?}"),
        Changes::Full(entries) => assert_eq!(entries.len(), 2, "{entries:?}"),
        Changes::Unchanged => panic!("the PUT since the first listing went unnoticed"),
    }
}

/// A first listing (nothing known yet) asks for the content as well: on Radicale, one REPORT
/// then holds every item and no multiget is needed. Without `fetch_all`, ETags only.
#[test]
fn first_listing_carries_content() {
    let server = Radicale::start();
    let url = make_calendar(&server, "carried");
    let put = put_all(
        &server,
        &url,
        &[
            ("k1.ics", event("k1", "Carried one")),
            ("k2.ics", event("k2", "Carried two")),
        ],
    );
    let proxy = FaultProxy::start(&server.url());
    let storage = caldav(&server, &proxy);
    let coll = collection(&storage, "carried");
    proxy.reset_log();
    let set = storage
        .list_changes(&coll, None, true)
        .expect("list changes");
    let mut listed = full(&set);
    listed.sort_by(|a, b| a.href.cmp(&b.href));
    assert_eq!(listed.len(), 2);
    for (entry, ((href, etag), summary)) in listed
        .iter()
        .zip(put.iter().zip(["Carried one", "Carried two"]))
    {
        assert_eq!((&entry.href, &entry.etag), (href, etag));
        let content = String::from_utf8_lossy(entry.content.as_deref().expect("content"));
        assert!(content.contains(&format!("SUMMARY:{summary}")), "{content}");
    }
    let reports = proxy.requests_with_method("REPORT");
    assert_eq!(proxy.count(), 1, "{}", proxy.log_text());
    assert!(reports[0].body_text().contains("calendar-data"));

    let storage = caldav(&server, &proxy);
    let coll = collection(&storage, "carried");
    let set = storage
        .list_changes(&coll, None, false)
        .expect("list changes");
    assert!(full(&set).iter().all(|e| e.content.is_none()));
}

fn bogus_token_lists_everything(server: &dyn DavServer) {
    let url = make_calendar(server, "bogus");
    put_all(
        server,
        &url,
        &[
            ("b1.ics", event("b1", "One")),
            ("b2.ics", event("b2", "Two")),
        ],
    );
    let proxy = FaultProxy::start(&server.url());
    let set = changes(server, &proxy, "bogus", Some("http://bogus/token"));
    let listed = full(&set);
    assert_eq!(
        hrefs(&listed),
        [
            path_of(&format!("{url}b1.ics")),
            path_of(&format!("{url}b2.ics"))
        ]
    );
    assert!(set.state.is_some());
    assert_ne!(set.state.as_deref(), Some("http://bogus/token"));
}

fn item_types_restrict_listing(server: &dyn DavServer) {
    let url = make_calendar(server, "mixed");
    put_all(
        server,
        &url,
        &[
            ("e1.ics", event("e1", "Event 1")),
            ("t1.ics", todo("t1", "Todo 1")),
            ("e2.ics", event("e2", "Event 2")),
            ("t2.ics", todo("t2", "Todo 2")),
        ],
    );
    let proxy = FaultProxy::start(&server.url());
    let cfg = config(server, DavKind::CalDav, &proxy.url());
    let filter = ItemFilter {
        item_types: vec!["VTODO".to_owned()],
        ..ItemFilter::default()
    };
    let todos = [
        path_of(&format!("{url}t1.ics")),
        path_of(&format!("{url}t2.ics")),
    ];

    let storage = open_filtered(&cfg, &filter);
    let coll = collection(&storage, "mixed");
    assert_eq!(hrefs(&storage.list(&coll).expect("list")), todos);
    let set = storage
        .list_changes(&coll, None, false)
        .expect("list changes");
    assert_eq!(hrefs(&full(&set)), todos);

    // Still only todos when something changed since a remembered state.
    let state = set.state.clone();
    server
        .client()
        .put_item(&format!("{url}e3.ics"), event("e3", "Event 3").as_bytes());
    let storage = open_filtered(&cfg, &filter);
    let coll = collection(&storage, "mixed");
    let set = storage
        .list_changes(&coll, state.as_deref(), false)
        .expect("list changes");
    // sync-collection cannot filter by type: a calendar-query listing of the todos.
    assert_eq!(hrefs(&full(&set)), todos);
}

// ---------------------------------------------------------------------------------------------
// Every test against both servers.

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod radicale {
            use super::*;
            $(
                #[test]
                fn $name() {
                    super::$name(&Radicale::start());
                }
            )*
        }
        mod xandikos {
            use super::*;
            $(
                #[test]
                fn $name() {
                    super::$name(&Xandikos::start());
                }
            )*
        }
    };
}

both!(
    discovery_from_root,
    stale_discovery_hint_is_dropped,
    create_collections,
    get_many_in_batches,
    create_items,
    update_items,
    delete_items,
    addressbook_writes,
    list_changes_deltas,
    list_changes_same_instance,
    bogus_token_lists_everything,
    item_types_restrict_listing,
);
