//! The storage contract: what every [`Storage`] promises the sync engine, written once and run
//! over every storage type.
//!
//! Each case is a function taking a [`Subject`]: a storage opened from a config section as a
//! run opens it, a fresh collection of its own, and what the type says about itself (whether it
//! keeps bytes exactly, which collection properties it holds). The `writable!` and `read_only!`
//! lines at the end make one `#[test]` per (storage, case), so a failure names both; adding a
//! storage type is one such line with a function that opens it.
//!
//! The DAV servers (Radicale and Xandikos on 127.0.0.1, from the test venv) are started once
//! for the whole suite and stopped when the test process exits; each case works in its own
//! collection on them. A server that cannot be started fails the tests, never skips them. A
//! webcal case has a feed server of its own (`dav_support::feed`), a singlefile or vdir case a
//! temporary directory.

mod dav_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};

use dav_support::feed::{FeedServer, Validators};
use dav_support::{DavServer, Radicale, Xandikos, elements, xml_text};
use davsync::config::MetadataKey;
use davsync::item::Item;
use davsync::storage::{
    Changes, CollectionInfo, Fetched, ItemError, ListEntry, MAX_NAME_LEN, Storage, Written,
};

// ---------------------------------------------------------------------------------------------
// The subject of a case

/// What a storage holds: calendar objects or vCards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    Calendar,
    Contacts,
}

impl Content {
    /// An item with this UID whose text carries `summary` (an event's SUMMARY, a card's FN).
    fn item(self, uid: &str, summary: &str) -> Vec<u8> {
        match self {
            Content::Calendar => format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davsync contract//EN\r\n\
                 BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T090000Z\r\n\
                 DTSTART:20260110T100000Z\r\nDTEND:20260110T110000Z\r\nSUMMARY:{summary}\r\n\
                 END:VEVENT\r\nEND:VCALENDAR\r\n"
            ),
            Content::Contacts => format!(
                "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{summary}\r\nN:{summary};;;;\r\n\
                 END:VCARD\r\n"
            ),
        }
        .into_bytes()
    }

    fn extension(self) -> &'static str {
        match self {
            Content::Calendar => ".ics",
            Content::Contacts => ".vcf",
        }
    }
}

/// What a storage does with a collection property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Property {
    /// Set, read back, removed (read back as `None`).
    Kept,
    /// Set and read back; removing it fails with an error and leaves the value as it was.
    RemovalRefused,
    /// Set and read back; once removed, the server reports a value of its own making, derived
    /// from the collection's path (Radicale and Xandikos do this for `displayname`). A later
    /// run cannot tell it from a value a user set: a known problem, see issue 8's contract
    /// report.
    RemovalShowsServerDefault,
    /// Reads as `None`; setting it fails with an error.
    Unsupported,
}

/// Whether the case may write, and if not, what the collection holds.
enum Access {
    /// The collection starts empty; the case fills it through the storage.
    Writable,
    /// The collection holds these items (in any order) and every write is refused.
    ReadOnly { items: Vec<Vec<u8>> },
}

/// One storage under test, as one case sees it.
struct Subject {
    /// The storage, opened from its config section as a run opens it.
    storage: Box<dyn Storage>,
    /// Opens the same storage afresh (see [`Subject::next_run`]).
    reopen: Box<dyn Fn() -> Box<dyn Storage>>,
    /// This case's own collection.
    collection: CollectionInfo,
    content: Content,
    access: Access,
    /// The storage hands back exactly the bytes written; otherwise (a server re-serializes)
    /// what it hands back has the same normalized hash.
    keeps_bytes: bool,
    /// What the storage does with each collection property.
    properties: Vec<(MetadataKey, Property)>,
    /// Everything the storage's place holds outside its collections (files beside the
    /// collection directories, items directly in a DAV home): a name hint that escaped its
    /// collection shows up here.
    outside: Box<dyn Fn() -> Vec<String>>,
    /// Other cases share the storage's place and create collections there meanwhile, named
    /// with this prefix.
    other_cases: Option<&'static str>,
    /// Keeps a temporary directory or a server alive for the case.
    _keep: Box<dyn std::any::Any>,
}

impl Subject {
    /// The storage as the next run opens it, after this run's writes were flushed (as the
    /// executor flushes before it records them): a storage may hold writes until then.
    fn next_run(&self) -> Box<dyn Storage> {
        self.storage.flush().expect("flush");
        (self.reopen)()
    }

    fn item(&self, uid: &str, summary: &str) -> Vec<u8> {
        self.content.item(uid, summary)
    }

    fn list(&self) -> Vec<ListEntry> {
        sorted(self.storage.list(&self.collection).expect("list"))
    }

    fn create(&self, hint: &str, bytes: &[u8]) -> Written {
        self.storage
            .create(&self.collection, hint, bytes)
            .unwrap_or_else(|e| panic!("create {hint:?}: {e}"))
    }

    fn get(&self, href: &str) -> Result<Fetched, ItemError> {
        let mut results = self.storage.get_many(&self.collection, &[href]);
        assert_eq!(results.len(), 1, "one result per href asked: {results:?}");
        let (got, result) = results.remove(0);
        assert_eq!(got, href, "the result names the href asked for");
        result
    }

    /// Asserts that `fetched` holds `expected`: the same bytes, or for a storage that
    /// re-serializes, the same normalized content.
    fn assert_holds(&self, fetched: &[u8], expected: &[u8], what: &str) {
        if self.keeps_bytes {
            assert_eq!(
                String::from_utf8_lossy(fetched),
                String::from_utf8_lossy(expected),
                "{what}: not the bytes written"
            );
        } else {
            assert_eq!(hash(fetched), hash(expected), "{what}: another item");
        }
    }

    /// The items of a collection for the read cases: the fixture of a read-only storage, or
    /// three items created now. Returns them with their bytes, sorted by href.
    fn fill(&self) -> Vec<(ListEntry, Vec<u8>)> {
        let items: Vec<Vec<u8>> = match &self.access {
            Access::ReadOnly { items } => items.clone(),
            Access::Writable => (1..=3)
                .map(|i| {
                    let bytes = self.item(&format!("fill-{i}"), &format!("Fill {i}"));
                    self.create(&format!("fill-{i}"), &bytes);
                    bytes
                })
                .collect(),
        };
        let listed = self.list();
        assert_eq!(listed.len(), items.len(), "one entry per item: {listed:#?}");
        // Matched by content: a read-only storage names its items itself.
        let fetched = self.storage.get_many(&self.collection, &hrefs(&listed));
        let mut unmatched = items;
        listed
            .into_iter()
            .zip(fetched)
            .map(|(entry, (_, result))| {
                let got = result.unwrap_or_else(|e| panic!("{}: {e}", entry.href));
                let index = unmatched
                    .iter()
                    .position(|item| hash(item) == hash(&got.bytes))
                    .unwrap_or_else(|| panic!("{}: not one of the items", entry.href));
                (entry, unmatched.swap_remove(index))
            })
            .collect()
    }

    /// A name in this collection that no item has: the last segment of `href` replaced.
    fn missing_href(&self, href: &str) -> String {
        let name = format!("never-there{}", self.content.extension());
        match href.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{name}"),
            None => name,
        }
    }
}

fn hash(bytes: &[u8]) -> String {
    Item::parse(bytes.to_vec())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
        .hash()
        .to_owned()
}

fn sorted(mut entries: Vec<ListEntry>) -> Vec<ListEntry> {
    entries.sort_by(|a, b| a.href.cmp(&b.href));
    entries
}

fn hrefs(entries: &[ListEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.href.as_str()).collect()
}

/// `(href, etag)` of each entry, sorted.
fn versions(entries: &[ListEntry]) -> Vec<(String, String)> {
    let mut v: Vec<_> = entries
        .iter()
        .map(|e| (e.href.clone(), e.etag.clone()))
        .collect();
    v.sort();
    v
}

/// The name of `href` inside `collection`: a bare name as a vdir gives it, or an absolute path
/// below the collection's URL as a DAV server gives it.
fn member_name<'a>(collection: &CollectionInfo, href: &'a str) -> &'a str {
    if !href.starts_with('/') {
        return href;
    }
    let path = collection
        .id
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(&collection.id);
    href.strip_prefix(path)
        .unwrap_or_else(|| panic!("{href} is not below the collection {}", collection.id))
}

// ---------------------------------------------------------------------------------------------
// Read cases: every storage, read-only ones included

/// Every item is listed once, with a version tag; the full listing of `list_changes` is the
/// same listing.
fn listing_names_every_item_with_a_version(s: &Subject) {
    let filled = s.fill();
    for (entry, _) in &filled {
        assert!(!entry.etag.is_empty(), "{entry:?}");
    }
    let listed: Vec<ListEntry> = filled.into_iter().map(|(e, _)| e).collect();
    let set = s
        .storage
        .list_changes(&s.collection, None, false)
        .expect("list changes");
    match set.changes {
        Changes::Full(entries) => assert_eq!(versions(&entries), versions(&listed)),
        other => panic!("with no state to start from, a full listing: {other:?}"),
    }
    assert!(set.unreadable.is_empty(), "{:?}", set.unreadable);
}

/// `get_many` answers every href asked, in order, each at its listed version; an href no item
/// has is `NotFound` (never an empty success), and does not disturb the others.
fn get_many_returns_each_item_at_its_listed_version(s: &Subject) {
    let filled = s.fill();
    let missing = s.missing_href(&filled[0].0.href);
    let mut asked: Vec<&str> = filled.iter().map(|(e, _)| e.href.as_str()).collect();
    asked.insert(1, &missing);
    let results = s.storage.get_many(&s.collection, &asked);
    let got: Vec<&str> = results.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(got, asked, "one result per href, in the order asked");
    for (href, result) in &results {
        if *href == missing {
            assert!(
                matches!(result, Err(ItemError::NotFound { .. })),
                "{href}: {result:?}"
            );
            continue;
        }
        let (entry, bytes) = filled.iter().find(|(e, _)| &e.href == href).unwrap();
        let fetched = result.as_ref().unwrap_or_else(|e| panic!("{href}: {e}"));
        assert_eq!(
            fetched.etag, entry.etag,
            "{href}: fetched at the listed version"
        );
        s.assert_holds(&fetched.bytes, bytes, href);
    }
    assert!(s.storage.get_many(&s.collection, &[]).is_empty());
}

/// Nothing changed since a state the storage reported: `Unchanged` or an empty delta (a
/// storage without states lists everything again, as it was).
fn list_changes_with_nothing_changed(s: &Subject) {
    let listed: Vec<ListEntry> = s.fill().into_iter().map(|(e, _)| e).collect();
    let first = s
        .storage
        .list_changes(&s.collection, None, false)
        .expect("list changes");
    let next = s
        .next_run()
        .list_changes(&s.collection, first.state.as_deref(), false)
        .expect("list changes");
    match (&first.state, &next.changes) {
        (Some(_), Changes::Unchanged) => {}
        (Some(_), Changes::Delta { changed, removed }) => {
            assert!(changed.is_empty() && removed.is_empty(), "{next:?}");
        }
        (_, Changes::Full(entries)) => assert_eq!(versions(entries), versions(&listed)),
        (None, other) => panic!("no state was reported, yet {other:?}"),
    }
    if first.state.is_some() {
        assert!(
            next.state.is_some(),
            "a storage with states keeps reporting one"
        );
    }
}

/// Content a listing carries (asked for with `fetch_all`) is the item's at the listed version.
fn listed_content_is_the_item(s: &Subject) {
    let filled = s.fill();
    let set = s
        .storage
        .list_changes(&s.collection, None, true)
        .expect("list changes");
    let Changes::Full(entries) = set.changes else {
        panic!("with no state to start from, a full listing: {set:?}");
    };
    assert_eq!(
        versions(&entries),
        versions(&filled.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>())
    );
    for entry in entries {
        if let Some(content) = &entry.content {
            let (_, bytes) = filled.iter().find(|(e, _)| e.href == entry.href).unwrap();
            s.assert_holds(content, bytes, &entry.href);
        }
    }
}

/// The case's collection is among the storage's collections, as it was opened.
fn collections_include_the_collection(s: &Subject) {
    let all = s.next_run().list_collections().expect("list collections");
    assert!(
        all.contains(&s.collection),
        "{:?} not in {all:#?}",
        s.collection
    );
}

// ---------------------------------------------------------------------------------------------
// Write cases

/// A new collection lists nothing, in either form.
fn empty_collection_lists_nothing(s: &Subject) {
    assert_eq!(s.list(), []);
    let set = s
        .storage
        .list_changes(&s.collection, None, true)
        .expect("list changes");
    assert_eq!(set.changes, Changes::Full(Vec::new()));
    assert!(set.unreadable.is_empty());
}

/// A created item is listed at the version the create reported, and fetched as written.
fn created_item_is_listed_and_fetched(s: &Subject) {
    let bytes = s.item("created-1", "Created");
    let written = s.create("created-1", &bytes);
    assert!(!written.etag.is_empty(), "{written:?}");
    // A fresh run sees the same.
    let listed = sorted(s.next_run().list(&s.collection).expect("list"));
    assert_eq!(
        versions(&listed),
        [(written.href.clone(), written.etag.clone())]
    );
    let fetched = s.get(&written.href).expect("get the created item");
    assert_eq!(fetched.etag, written.etag);
    s.assert_holds(&fetched.bytes, &bytes, &written.href);
}

/// `create` never replaces: the same name hint twice, or a hint naming an existing item, gives
/// another href and leaves the first item as it was.
fn create_never_replaces(s: &Subject) {
    let first_bytes = s.item("taken", "First");
    let first = s.create("taken", &first_bytes);
    let second_bytes = s.item("taken-2", "Second");
    let second = s.create("taken", &second_bytes);
    assert_ne!(second.href, first.href);
    // The hint a vdir or a server derives the existing name from, spelled as the name itself.
    let name = member_name(&s.collection, &first.href);
    let third_bytes = s.item("taken-3", "Third");
    let third = s.create(name.trim_end_matches(s.content.extension()), &third_bytes);
    assert!(
        third.href != first.href && third.href != second.href,
        "{third:?}"
    );
    assert_eq!(
        versions(&s.list()),
        versions(&[&first, &second, &third].map(|w| ListEntry {
            href: w.href.clone(),
            etag: w.etag.clone(),
            content: None,
        }))
    );
    for (written, bytes) in [(&first, &first_bytes), (&second, &second_bytes)] {
        let fetched = s.get(&written.href).expect("get");
        assert_eq!(fetched.etag, written.etag, "{}: untouched", written.href);
        s.assert_holds(&fetched.bytes, bytes, &written.href);
    }
}

/// An update against the listed version succeeds, gives a new version, and the new content is
/// what is fetched at it.
fn update_with_the_listed_version(s: &Subject) {
    let written = s.create("upd", &s.item("upd", "Before"));
    let listed = s.list();
    let new_bytes = s.item("upd", "After");
    let updated = s
        .storage
        .update(&s.collection, &written.href, &listed[0].etag, &new_bytes)
        .expect("update with the listed version");
    assert_eq!(updated.href, written.href);
    assert_ne!(
        updated.etag, listed[0].etag,
        "an update changes the version"
    );
    assert_eq!(
        versions(&s.list()),
        [(updated.href.clone(), updated.etag.clone())]
    );
    let fetched = s.get(&written.href).expect("get");
    assert_eq!(fetched.etag, updated.etag);
    s.assert_holds(&fetched.bytes, &new_bytes, &written.href);
}

/// Update and delete against a version that is no longer the item's fail with
/// `ItemError::Changed` and change nothing.
fn stale_version_changes_nothing(s: &Subject) {
    let old = s.create("stale", &s.item("stale", "One"));
    let current_bytes = s.item("stale", "Two");
    let current = s
        .storage
        .update(&s.collection, &old.href, &old.etag, &current_bytes)
        .expect("update");
    let result = s.storage.update(
        &s.collection,
        &old.href,
        &old.etag,
        &s.item("stale", "Lost"),
    );
    assert!(
        matches!(result, Err(ItemError::Changed { .. })),
        "update against a stale version: {result:?}"
    );
    let result = s.storage.delete(&s.collection, &old.href, &old.etag);
    assert!(
        matches!(result, Err(ItemError::Changed { .. })),
        "delete against a stale version: {result:?}"
    );
    assert_eq!(
        versions(&s.list()),
        [(current.href.clone(), current.etag.clone())]
    );
    let fetched = s.get(&current.href).expect("still there");
    assert_eq!(fetched.etag, current.etag);
    s.assert_holds(&fetched.bytes, &current_bytes, &current.href);
}

/// A delete against the listed version removes the item: it is no longer listed and fetching
/// it is `NotFound`; deleting it again is `NotFound` too (the executor takes that as done).
fn delete_removes_the_item(s: &Subject) {
    let kept = s.create("kept", &s.item("kept", "Kept"));
    let gone = s.create("gone", &s.item("gone", "Gone"));
    s.storage
        .delete(&s.collection, &gone.href, &gone.etag)
        .expect("delete with the listed version");
    assert_eq!(
        versions(&s.list()),
        [(kept.href.clone(), kept.etag.clone())]
    );
    let result = s.get(&gone.href);
    assert!(
        matches!(result, Err(ItemError::NotFound { .. })),
        "{result:?}"
    );
    let result = s.storage.delete(&s.collection, &gone.href, &gone.etag);
    assert!(
        matches!(result, Err(ItemError::NotFound { .. })),
        "deleting it again: {result:?}"
    );
}

/// An update of an item that was deleted since it was listed fails and creates nothing.
///
/// The contract's word for it is `ItemError::Changed` ("changed (or appeared, or vanished)
/// since it was listed"), which the DAV storage answers; the vdir and singlefile storages
/// answer `NotFound`. Both leave the item deleted, which is what matters to the sync engine
/// (it reports either and looks again next run); the difference is noted in issue 8's contract
/// report.
fn update_of_a_deleted_item_creates_nothing(s: &Subject) {
    let written = s.create("vanished", &s.item("vanished", "Here"));
    s.storage
        .delete(&s.collection, &written.href, &written.etag)
        .expect("delete");
    let result = s.storage.update(
        &s.collection,
        &written.href,
        &written.etag,
        &s.item("vanished", "Back"),
    );
    assert!(
        matches!(
            result,
            Err(ItemError::Changed { .. } | ItemError::NotFound { .. })
        ),
        "{result:?}"
    );
    assert_eq!(s.list(), []);
}

/// `list_changes` from the state reported before a write reports that write (as a delta or in
/// a full listing), for a create, an update and a delete.
fn list_changes_reports_each_write(s: &Subject) {
    let changes_since = |state: Option<&str>| {
        s.next_run()
            .list_changes(&s.collection, state, false)
            .expect("list changes")
    };
    let start = changes_since(None);
    assert_eq!(start.changes, Changes::Full(Vec::new()));

    let created = s.create("tracked", &s.item("tracked", "One"));
    let after_create = changes_since(start.state.as_deref());
    assert_reports(&after_create.changes, &created, "create");

    let updated = s
        .storage
        .update(
            &s.collection,
            &created.href,
            &created.etag,
            &s.item("tracked", "Two"),
        )
        .expect("update");
    let after_update = changes_since(after_create.state.as_deref());
    assert_reports(&after_update.changes, &updated, "update");

    s.storage
        .delete(&s.collection, &updated.href, &updated.etag)
        .expect("delete");
    let after_delete = changes_since(after_update.state.as_deref());
    match &after_delete.changes {
        Changes::Full(entries) => assert_eq!(entries, &[], "delete"),
        Changes::Delta { changed, removed } => {
            assert_eq!(changed, &[], "delete");
            assert_eq!(removed, std::slice::from_ref(&updated.href), "delete");
        }
        Changes::Unchanged => panic!("the delete went unnoticed"),
    }
}

/// `changes` name `written` at its version: the whole listing (holding only it), or a delta
/// with it alone.
fn assert_reports(changes: &Changes, written: &Written, what: &str) {
    let expected = [(written.href.clone(), written.etag.clone())];
    match changes {
        Changes::Full(entries) => assert_eq!(versions(entries), expected, "{what}"),
        Changes::Delta { changed, removed } => {
            assert_eq!(versions(changed), expected, "{what}");
            assert_eq!(removed, &[] as &[String], "{what}");
        }
        Changes::Unchanged => panic!("the {what} went unnoticed"),
    }
}

/// Name hints that are no safe name (a path, a hidden name, very long, non-ASCII, empty) give
/// an item inside the collection, under a plain name, and nothing anywhere else.
fn hostile_name_hints_stay_in_the_collection(s: &Subject) {
    let hints = [
        "../../x".to_owned(),
        "../sibling/x".to_owned(),
        "/abs/x".to_owned(),
        ".hidden".to_owned(),
        "a/b".to_owned(),
        "x y%2F..%2Fz".to_owned(),
        "ümlaut-日本-€".to_owned(),
        "x".repeat(300),
        String::new(),
    ];
    let outside_before = (s.outside)();
    let collections_before = names(&s.next_run().list_collections().expect("collections"));
    let mut written = Vec::new();
    for (i, hint) in hints.iter().enumerate() {
        let bytes = s.item(&format!("hostile-{i}"), &format!("Hostile {i}"));
        let w = s.create(hint, &bytes);
        let name = member_name(&s.collection, &w.href);
        assert!(
            !name.is_empty()
                && !name.contains('/')
                && !name.starts_with('.')
                && name.len() <= MAX_NAME_LEN,
            "{hint:?} named {:?}",
            w.href
        );
        let fetched = s.get(&w.href).expect("get");
        s.assert_holds(&fetched.bytes, &bytes, hint);
        written.push(ListEntry {
            href: w.href,
            etag: w.etag,
            content: None,
        });
    }
    assert_eq!(versions(&s.list()), versions(&written));
    assert_eq!(
        (s.outside)(),
        outside_before,
        "written outside the collection"
    );
    let collections_after = names(&s.next_run().list_collections().expect("collections"));
    let appeared: Vec<&String> = collections_after
        .iter()
        .filter(|name| !collections_before.contains(name))
        .filter(|name| !s.other_cases.is_some_and(|prefix| name.starts_with(prefix)))
        .collect();
    assert_eq!(
        appeared,
        [] as [&String; 0],
        "collections made by name hints"
    );
}

fn names(collections: &[CollectionInfo]) -> Vec<String> {
    collections.iter().map(|c| c.name.clone()).collect()
}

/// Created collections are listed (as `create_collection` described them) and list empty.
fn created_collections_are_listed_empty(s: &Subject) {
    let base = s.collection.name.clone();
    let created: Vec<CollectionInfo> = [format!("{base}-a"), format!("{base} b")]
        .iter()
        .map(|name| {
            let c = s
                .storage
                .create_collection(name)
                .unwrap_or_else(|e| panic!("create collection {name:?}: {e}"));
            assert_eq!(&c.name, name);
            c
        })
        .collect();
    // An item in one stays in that one.
    let bytes = s.item("in-a", "In a");
    let w = s
        .storage
        .create(&created[0], "in-a", &bytes)
        .expect("create in a new collection");
    let fresh = s.next_run();
    let listed = fresh.list_collections().expect("list collections");
    for c in &created {
        assert!(listed.contains(c), "{c:?} not in {listed:#?}");
    }
    assert_eq!(
        versions(&fresh.list(&created[0]).expect("list")),
        [(w.href, w.etag)]
    );
    assert_eq!(fresh.list(&created[1]).expect("list"), []);
    assert_eq!(fresh.list(&s.collection).expect("list"), []);
}

/// Collection properties: set, read back by the next run, removed (each as the storage type
/// says it treats that property).
fn metadata_round_trips(s: &Subject) {
    for &(key, support) in &s.properties {
        let value = match key {
            MetadataKey::Color => "#1E90FFFF".to_owned(),
            MetadataKey::Order => "7".to_owned(),
            _ => format!("Contract {} ü", key.file_name()),
        };
        let read = || {
            s.next_run()
                .metadata(&s.collection, key)
                .unwrap_or_else(|e| panic!("read {}: {e}", key.file_name()))
        };
        // Not asserted empty at first: a DAV storage names a collection it creates (its
        // display name is the name), a vdir does not.
        let set = s.storage.set_metadata(&s.collection, key, Some(&value));
        if support == Property::Unsupported {
            assert!(set.is_err(), "{}: {set:?}", key.file_name());
            assert_eq!(read(), None, "{}", key.file_name());
            continue;
        }
        set.unwrap_or_else(|e| panic!("set {}: {e}", key.file_name()));
        assert_eq!(
            read().as_deref(),
            Some(value.as_str()),
            "{}",
            key.file_name()
        );
        let removed = s.storage.set_metadata(&s.collection, key, None);
        match support {
            Property::Kept => {
                removed.unwrap_or_else(|e| panic!("remove {}: {e}", key.file_name()));
                assert_eq!(read(), None, "{} removed", key.file_name());
            }
            Property::RemovalShowsServerDefault => {
                removed.unwrap_or_else(|e| panic!("remove {}: {e}", key.file_name()));
                let after = read();
                assert!(
                    after
                        .as_ref()
                        .is_none_or(|v| v.contains(&s.collection.name)),
                    "{} removed: {after:?}",
                    key.file_name()
                );
            }
            Property::RemovalRefused => {
                assert!(removed.is_err(), "{}: {removed:?}", key.file_name());
                assert_eq!(
                    read().as_deref(),
                    Some(value.as_str()),
                    "{}",
                    key.file_name()
                );
            }
            Property::Unsupported => unreachable!(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Read-only storages

/// Every write is refused and changes nothing: items, collections, properties.
fn writes_are_refused(s: &Subject) {
    let filled = s.fill();
    let (entry, _) = &filled[0];
    let before = s.list();
    let collections = s.next_run().list_collections().expect("collections");
    let properties: Vec<Option<String>> = MetadataKey::ALL
        .iter()
        .map(|&k| s.storage.metadata(&s.collection, k).expect("metadata"))
        .collect();

    let item = s.item("refused", "Refused");
    let create = s.storage.create(&s.collection, "refused", &item);
    assert!(create.is_err(), "create: {create:?}");
    let update = s
        .storage
        .update(&s.collection, &entry.href, &entry.etag, &item);
    assert!(update.is_err(), "update: {update:?}");
    let delete = s.storage.delete(&s.collection, &entry.href, &entry.etag);
    assert!(delete.is_err(), "delete: {delete:?}");
    let created = s.storage.create_collection("refused");
    assert!(created.is_err(), "create collection: {created:?}");
    for key in MetadataKey::ALL {
        let set = s.storage.set_metadata(&s.collection, key, Some("refused"));
        assert!(set.is_err(), "set {}: {set:?}", key.file_name());
    }

    assert_eq!(s.list(), before);
    for (entry, bytes) in &filled {
        let fetched = s.get(&entry.href).expect("get");
        assert_eq!(fetched.etag, entry.etag);
        s.assert_holds(&fetched.bytes, bytes, &entry.href);
    }
    let fresh = s.next_run();
    assert_eq!(fresh.list_collections().expect("collections"), collections);
    for (key, value) in MetadataKey::ALL.iter().zip(properties) {
        assert_eq!(
            fresh.metadata(&s.collection, *key).expect("metadata"),
            value
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Opening the storages

/// Opens the storage a `[storage.x]` section with `section` describes, as a run does: parsed
/// from TOML, opened through the storage registry.
fn open_section(section: &str) -> Box<dyn Storage> {
    let env = BTreeMap::<String, String>::new();
    // No status database is opened; the key only keeps the parser from looking for $HOME.
    let text = format!("status_path = \"/contract/status\"\n[storage.x]\n{section}");
    let config = davsync::config::parse(&text, Path::new("/contract/config.toml"), &env)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    davsync::storage::open(&config.storages["x"], &env, &Default::default())
        .unwrap_or_else(|e| panic!("open: {e}\n{text}"))
}

/// A vdir of `.ics` files in a temporary directory.
fn vdir(case: &str) -> Subject {
    let dir = tempfile::Builder::new()
        .prefix("davsync-contract-")
        .tempdir()
        .expect("temporary directory");
    let root = dir.path().join("vdir");
    fs::create_dir(&root).expect("create the vdir");
    let section = format!(
        "type = \"vdir\"\npath = \"{}\"\nfileext = \".ics\"\n",
        root.display()
    );
    let storage = open_section(&section);
    let collection = storage.create_collection(case).expect("create collection");
    let outside = dir.path().to_owned();
    Subject {
        storage,
        reopen: Box::new(move || open_section(&section)),
        collection,
        content: Content::Calendar,
        access: Access::Writable,
        keeps_bytes: true,
        properties: MetadataKey::ALL.map(|k| (k, Property::Kept)).to_vec(),
        outside: Box::new(move || files_outside_collections(&outside, &root)),
        other_cases: None,
        _keep: Box::new(dir),
    }
}

/// Every file below `top` that is not directly in a collection directory of the vdir `root`.
fn files_outside_collections(top: &Path, root: &Path) -> Vec<String> {
    files_below(top, |f| f.parent().and_then(Path::parent) != Some(root))
}

/// Every file below `top` for which `outside` holds, sorted.
fn files_below(top: &Path, outside: impl Fn(&Path) -> bool) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry"))
        {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(top, &mut files);
    let mut outside: Vec<String> = files
        .into_iter()
        .filter(|f| outside(f))
        .map(|f| f.display().to_string())
        .collect();
    outside.sort();
    outside
}

/// A singlefile storage with one file per collection, `cals/%s.ics` (`%s.vcf` for contacts) in
/// a temporary directory. It holds no collection property: it reads the calendar's
/// `X-WR-CALNAME`, `X-APPLE-CALENDAR-COLOR` and `X-WR-CALDESC` (none in the files the cases
/// write) but sets none.
fn singlefile(content: Content, case: &str) -> Subject {
    let dir = tempfile::Builder::new()
        .prefix("davsync-contract-")
        .tempdir()
        .expect("temporary directory");
    let cals = dir.path().join("cals");
    fs::create_dir(&cals).expect("create the directory of the files");
    let extension = content.extension();
    let section = format!(
        "type = \"singlefile\"\npath = \"{}/%s{extension}\"\n",
        cals.display()
    );
    let storage = open_section(&section);
    let collection = storage.create_collection(case).expect("create collection");
    let top = dir.path().to_owned();
    Subject {
        storage,
        reopen: Box::new(move || open_section(&section)),
        collection,
        content,
        access: Access::Writable,
        keeps_bytes: true,
        properties: MetadataKey::ALL
            .map(|k| (k, Property::Unsupported))
            .to_vec(),
        // A collection is a visible `<name>.ics` directly in `cals`; anything else is outside.
        outside: Box::new(move || {
            files_below(&top, |f| {
                let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
                !(f.parent() == Some(cals.as_path())
                    && name.is_some_and(|n| !n.starts_with('.') && n.ends_with(extension)))
            })
        }),
        other_cases: None,
        _keep: Box::new(dir),
    }
}

/// A webcal feed of three events, served by a [`FeedServer`] of its own on 127.0.0.1 (with an
/// `ETag`, so the next run's conditional GET is answered 304). The storage splits the feed into
/// items copying its lines byte for byte, each item under the feed's calendar lines: those are
/// the fixture's items, so it keeps bytes.
fn webcal(_case: &str) -> Subject {
    // The feed's calendar lines; the display name is one of the properties a refused write
    // must leave as it was.
    const CALENDAR: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davsync contract//EN\r\n\
                            X-WR-CALNAME:Contract feed\r\n";
    let events: Vec<String> = (1..=3)
        .map(|i| {
            let item = Content::Calendar.item(&format!("feed-{i}@contract"), &format!("Feed {i}"));
            let text = String::from_utf8(item).expect("UTF-8");
            let start = text.find("BEGIN:VEVENT").expect("an event");
            let end = text.find("END:VCALENDAR").expect("the calendar's end");
            text[start..end].to_owned()
        })
        .collect();
    let items = events
        .iter()
        .map(|event| format!("{CALENDAR}{event}END:VCALENDAR\r\n").into_bytes())
        .collect();
    let feed = format!("{CALENDAR}{}END:VCALENDAR\r\n", events.concat());
    let server = FeedServer::start(&feed, Validators::ETag);
    let section = format!("type = \"webcal\"\nurl = \"{}\"\n", server.url());
    let storage = open_section(&section);
    let mut collections = storage.list_collections().expect("list collections");
    assert_eq!(
        collections.len(),
        1,
        "a feed is one collection: {collections:?}"
    );
    let collection = collections.remove(0);
    Subject {
        storage,
        reopen: Box::new(move || open_section(&section)),
        collection,
        content: Content::Calendar,
        access: Access::ReadOnly { items },
        keeps_bytes: true,
        // No case sets a property of a read-only storage.
        properties: Vec::new(),
        // A feed has no place beside its one collection.
        outside: Box::new(Vec::new),
        other_cases: None,
        _keep: Box::new(server),
    }
}

/// A server started once for the whole test process, stopped (process killed, data removed)
/// when it exits.
fn shared_server<S: DavServer + Send + Sync + 'static>(
    slot: &'static Mutex<Option<Arc<S>>>,
    start: fn() -> S,
) -> Arc<S> {
    static STOP_AT_EXIT: Once = Once::new();
    STOP_AT_EXIT.call_once(|| {
        // SAFETY: registers a plain function; it runs after main returned.
        unsafe { libc::atexit(stop_servers) };
    });
    let mut slot_guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    slot_guard.get_or_insert_with(|| Arc::new(start())).clone()
}

static RADICALE: Mutex<Option<Arc<Radicale>>> = Mutex::new(None);
static XANDIKOS: Mutex<Option<Arc<Xandikos>>> = Mutex::new(None);

extern "C" fn stop_servers() {
    drop(RADICALE.lock().map(|mut s| s.take()));
    drop(XANDIKOS.lock().map(|mut s| s.take()));
}

/// The properties Radicale keeps.
const RADICALE_PROPERTIES: [(MetadataKey, Property); 4] = [
    (
        MetadataKey::DisplayName,
        Property::RemovalShowsServerDefault,
    ),
    (MetadataKey::Color, Property::Kept),
    (MetadataKey::Description, Property::Kept),
    (MetadataKey::Order, Property::Kept),
];

/// The properties Xandikos 0.4.10 keeps on a calendar: removing the colour, the description or
/// the order fails with HTTP 500 (its property classes read the text of the `None` a removal
/// gives them).
const XANDIKOS_CALENDAR_PROPERTIES: [(MetadataKey, Property); 4] = [
    (
        MetadataKey::DisplayName,
        Property::RemovalShowsServerDefault,
    ),
    (MetadataKey::Color, Property::RemovalRefused),
    (MetadataKey::Description, Property::RemovalRefused),
    (MetadataKey::Order, Property::RemovalRefused),
];

/// The properties Xandikos 0.4.10 keeps on an address book: no colour or order.
const XANDIKOS_ADDRESSBOOK_PROPERTIES: [(MetadataKey, Property); 4] = [
    (
        MetadataKey::DisplayName,
        Property::RemovalShowsServerDefault,
    ),
    (MetadataKey::Color, Property::Unsupported),
    (MetadataKey::Description, Property::RemovalRefused),
    (MetadataKey::Order, Property::Unsupported),
];

/// A CalDAV (`Content::Calendar`) or CardDAV storage on `server`, configured with the server's
/// root URL (so discovery runs), in a new collection named after the case.
fn dav<S: DavServer + 'static>(
    server: Arc<S>,
    content: Content,
    properties: &[(MetadataKey, Property)],
    case: &str,
) -> Subject {
    let (kind, prefix) = match content {
        Content::Calendar => ("caldav", "caldav-"),
        Content::Contacts => ("carddav", "carddav-"),
    };
    let section = format!(
        "type = \"{kind}\"\nurl = \"{}\"\nusername = \"{}\"\npassword = \"{}\"\n",
        server.url(),
        server.user(),
        server.password()
    );
    let storage = open_section(&section);
    // Radicale keeps calendars and address books side by side.
    let collection = storage
        .create_collection(&format!("{prefix}{case}"))
        .expect("create collection");
    let places = [
        server.url(),
        server.principal_url(),
        server.calendar_home_url(),
        server.addressbook_home_url(),
    ];
    let keep = server.clone();
    Subject {
        storage,
        reopen: Box::new(move || open_section(&section)),
        collection,
        content,
        access: Access::Writable,
        keeps_bytes: false,
        properties: properties.to_vec(),
        outside: Box::new(move || {
            places
                .iter()
                .flat_map(|place| dav_items_in(&*server, place))
                .collect()
        }),
        other_cases: Some(prefix),
        _keep: Box::new(keep),
    }
}

/// The hrefs of the members of `url` that are no collections (items beside the collections).
fn dav_items_in(server: &dyn DavServer, url: &str) -> Vec<String> {
    let answer = server.client().propfind(
        url,
        "1",
        "<propfind xmlns=\"DAV:\"><prop><resourcetype/></prop></propfind>",
    );
    assert_eq!(answer.status, 207, "PROPFIND {url}: {}", answer.text());
    let text = answer.text();
    let mut items: Vec<String> = elements(&text, "response")
        .into_iter()
        .filter(|response| elements(response, "collection").is_empty())
        .flat_map(|response| elements(response, "href"))
        .map(xml_text)
        .collect();
    items.sort();
    items
}

fn radicale() -> Arc<Radicale> {
    shared_server(&RADICALE, Radicale::start)
}

fn xandikos() -> Arc<Xandikos> {
    shared_server(&XANDIKOS, Xandikos::start)
}

// ---------------------------------------------------------------------------------------------
// The suite over every storage type

/// One `#[test]` per case for one storage: `$open(case_name)` gives the case its subject.
macro_rules! suite {
    ($storage:ident, $open:expr, [$($case:ident),* $(,)?]) => {
        mod $storage {
            $(
                #[test]
                fn $case() {
                    super::$case(&($open)(stringify!($case)));
                }
            )*
        }
    };
}

/// The whole contract, for a storage davsync writes to.
macro_rules! writable {
    ($storage:ident, $open:expr) => {
        suite!(
            $storage,
            $open,
            [
                listing_names_every_item_with_a_version,
                get_many_returns_each_item_at_its_listed_version,
                list_changes_with_nothing_changed,
                listed_content_is_the_item,
                collections_include_the_collection,
                empty_collection_lists_nothing,
                created_item_is_listed_and_fetched,
                create_never_replaces,
                update_with_the_listed_version,
                stale_version_changes_nothing,
                delete_removes_the_item,
                update_of_a_deleted_item_creates_nothing,
                list_changes_reports_each_write,
                hostile_name_hints_stay_in_the_collection,
                created_collections_are_listed_empty,
                metadata_round_trips,
            ]
        );
    };
}

/// The read side of the contract and refused writes, for a read-only storage.
macro_rules! read_only {
    ($storage:ident, $open:expr) => {
        suite!(
            $storage,
            $open,
            [
                listing_names_every_item_with_a_version,
                get_many_returns_each_item_at_its_listed_version,
                list_changes_with_nothing_changed,
                listed_content_is_the_item,
                collections_include_the_collection,
                writes_are_refused,
            ]
        );
    };
}

writable!(vdir, super::vdir);
writable!(singlefile_calendar, |case| super::singlefile(
    super::Content::Calendar,
    case
));
writable!(singlefile_contacts, |case| super::singlefile(
    super::Content::Contacts,
    case
));
read_only!(webcal, super::webcal);
writable!(caldav_radicale, |case| super::dav(
    super::radicale(),
    super::Content::Calendar,
    &super::RADICALE_PROPERTIES,
    case
));
writable!(carddav_radicale, |case| super::dav(
    super::radicale(),
    super::Content::Contacts,
    &super::RADICALE_PROPERTIES,
    case
));
writable!(caldav_xandikos, |case| super::dav(
    super::xandikos(),
    super::Content::Calendar,
    &super::XANDIKOS_CALENDAR_PROPERTIES,
    case
));
writable!(carddav_xandikos, |case| super::dav(
    super::xandikos(),
    super::Content::Contacts,
    &super::XANDIKOS_ADDRESSBOOK_PROPERTIES,
    case
));
