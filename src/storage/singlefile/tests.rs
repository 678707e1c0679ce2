use super::*;

const ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-CALNAME:Work\r\n\
BEGIN:VTIMEZONE\r\nTZID:Z\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=Z:20260101T100000\r\nEND:VEVENT\r\n\r\n\
BEGIN:VEVENT\r\nUID:bad\r\nthis is no content line\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:b\r\nSUMMARY:b\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID:20260102T100000Z\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

fn event(uid: &str, summary: &str) -> Vec<u8> {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:other\r\nBEGIN:VTIMEZONE\r\nTZID:Y\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART;TZID=Y:20260101T100000\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n"
    )
    .into_bytes()
}

fn setup(
    content: &str,
) -> (
    tempfile::TempDir,
    PathBuf,
    SinglefileStorage,
    CollectionInfo,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("work.ics");
    fs::write(&path, content).expect("write");
    let storage = SinglefileStorage::new(path.clone());
    let coll = storage.root_collection();
    (dir, path, storage, coll)
}

fn etags(storage: &SinglefileStorage, coll: &CollectionInfo) -> HashMap<String, String> {
    let listing = storage.list(coll).expect("list");
    listing.into_iter().map(|e| (e.href, e.etag)).collect()
}

fn text(path: &Path) -> String {
    String::from_utf8(fs::read(path).expect("read")).expect("utf-8")
}

#[test]
fn lists_items_by_uid_and_reports_the_malformed_one_with_its_line() {
    let (_dir, _path, storage, coll) = setup(ICS);
    let tags = etags(&storage, &coll);
    let mut hrefs: Vec<_> = tags.keys().cloned().collect();
    hrefs.sort();
    assert_eq!(hrefs, ["a", "b", "bad"]);
    assert_eq!(tags["bad"], UNREADABLE_TAG);
    let got = storage.get_many(&coll, &["a", "bad"]);
    let a = got[0].1.as_ref().expect("a is readable");
    let a_text = String::from_utf8(a.bytes.clone()).expect("utf-8");
    assert!(a_text.contains("TZID:Z") && a_text.contains("RECURRENCE-ID"));
    let bad = got[1].1.as_ref().expect_err("bad is malformed").to_string();
    assert_eq!(bad, "item at line 12: line 14: not a content line");
    assert_eq!(
        storage
            .metadata(&coll, MetadataKey::DisplayName)
            .expect("meta"),
        Some("Work".into())
    );
}

#[test]
fn writes_keep_every_other_byte_and_tags_match_the_next_listing() {
    let (_dir, path, storage, coll) = setup(ICS);
    let tags = etags(&storage, &coll);
    let new_b = event("b", "edited");
    let written_b = storage
        .update(&coll, "b", &tags["b"], &new_b)
        .expect("update");
    let written_c = storage
        .create(&coll, "c", &event("c", "new"))
        .expect("create");
    storage.delete(&coll, "a", &tags["a"]).expect("delete");
    storage.flush().expect("flush");
    let expected = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-CALNAME:Work\r\n\
BEGIN:VTIMEZONE\r\nTZID:Z\r\nEND:VTIMEZONE\r\n\r\n\
BEGIN:VEVENT\r\nUID:bad\r\nthis is no content line\r\nEND:VEVENT\r\n\
BEGIN:VTIMEZONE\r\nTZID:Y\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:b\r\nDTSTART;TZID=Y:20260101T100000\r\nSUMMARY:edited\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:c\r\nDTSTART;TZID=Y:20260101T100000\r\nSUMMARY:new\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";
    assert_eq!(text(&path), expected);
    // A new run finds the tags the writes reported.
    let again = etags(&SinglefileStorage::new(path.clone()), &coll);
    assert_eq!(again["b"], written_b.etag);
    assert_eq!(again["c"], written_c.etag);
    assert!(!again.contains_key("a"));
}

#[test]
fn untouched_file_is_not_rewritten_and_round_trips() {
    let (_dir, path, storage, coll) = setup(ICS);
    let before = fs::metadata(&path)
        .expect("meta")
        .modified()
        .expect("mtime");
    etags(&storage, &coll);
    storage.flush().expect("flush");
    assert_eq!(
        fs::metadata(&path)
            .expect("meta")
            .modified()
            .expect("mtime"),
        before
    );
    // A write and its undo give back the same bytes.
    let tags = etags(&storage, &coll);
    let original = storage
        .get_many(&coll, &["b"])
        .remove(0)
        .1
        .expect("b")
        .bytes;
    let w = storage
        .update(&coll, "b", &tags["b"], &event("b", "x"))
        .expect("update");
    storage
        .update(&coll, "b", &w.etag, &original)
        .expect("undo");
    storage.flush().expect("flush");
    // The item is written back where it stood: the file is byte for byte what it was.
    assert_eq!(text(&path), ICS);
}

#[test]
fn writes_are_conditional_on_the_item_tag() {
    let (_dir, _path, storage, coll) = setup(ICS);
    let tags = etags(&storage, &coll);
    let changed = |r: Result<(), ItemError>| matches!(r, Err(ItemError::Changed { .. }));
    assert!(changed(
        storage
            .update(&coll, "b", "\"old\"", &event("b", "x"))
            .map(drop)
    ));
    assert!(changed(storage.delete(&coll, "b", "\"old\"")));
    let not_found = |r: Result<(), ItemError>| matches!(r, Err(ItemError::NotFound { .. }));
    assert!(not_found(storage.delete(&coll, "nope", &tags["b"])));
    assert!(changed(
        storage.create(&coll, "a", &event("a", "dup")).map(drop)
    ));
    // A malformed item is never replaced or deleted, whatever tag a caller names.
    assert!(changed(
        storage
            .update(&coll, "bad", UNREADABLE_TAG, &event("bad", "x"))
            .map(drop)
    ));
    assert!(changed(storage.delete(&coll, "bad", UNREADABLE_TAG)));
}

#[test]
fn an_item_already_gone_is_not_found_for_delete_and_update() {
    let (_dir, _path, storage, coll) = setup(ICS);
    let tags = etags(&storage, &coll);
    storage.delete(&coll, "b", &tags["b"]).expect("delete");
    let not_found = |r: Result<(), ItemError>| matches!(r, Err(ItemError::NotFound { .. }));
    // Before and after the flush: the executor takes a delete of a gone item as done.
    assert!(not_found(storage.delete(&coll, "b", &tags["b"])));
    assert!(not_found(
        storage
            .update(&coll, "b", &tags["b"], &event("b", "back"))
            .map(drop)
    ));
    storage.flush().expect("flush");
    assert!(not_found(storage.delete(&coll, "b", &tags["b"])));
    assert!(!etags(&storage, &coll).contains_key("b"));
}

#[test]
fn a_file_changed_behind_our_back_is_not_written() {
    let (_dir, path, storage, coll) = setup(ICS);
    let tags = etags(&storage, &coll);
    storage.delete(&coll, "b", &tags["b"]).expect("delete");
    let theirs = ICS.replace("SUMMARY:b", "SUMMARY:theirs");
    fs::write(&path, &theirs).expect("their write");
    let error = storage.flush().expect_err("refused").to_string();
    assert!(error.contains("changed by another program"), "{error}");
    assert_eq!(text(&path), theirs);
}

#[test]
fn an_empty_file_takes_the_frame_of_the_first_item_and_cards_are_appended() {
    let (_dir, path, storage, coll) = setup("");
    storage
        .create(&coll, "c", &event("c", "new"))
        .expect("create");
    storage
        .create(&coll, "d", &event("d", "other"))
        .expect("create");
    storage.flush().expect("flush");
    let split = vobject::split_file(&fs::read(&path).expect("read"));
    let uids: Vec<_> = split.items.iter().map(|i| i.uid.clone()).collect();
    assert_eq!(uids, [Some("c".into()), Some("d".into())]);
    assert_eq!(split.timezones.len(), 1);
    let (_dir, path, storage, coll) = setup("BEGIN:VCARD\r\nUID:x\r\nFN:x\r\nEND:VCARD");
    storage
        .create(&coll, "y", b"BEGIN:VCARD\r\nUID:y\r\nFN:y\r\nEND:VCARD\r\n")
        .expect("create");
    storage.flush().expect("flush");
    assert_eq!(
        text(&path),
        "BEGIN:VCARD\r\nUID:x\r\nFN:x\r\nEND:VCARD\r\nBEGIN:VCARD\r\nUID:y\r\nFN:y\r\nEND:VCARD\r\n"
    );
}

#[test]
fn collections_are_the_files_matching_the_pattern() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("home.ics"), "").expect("write");
    fs::write(dir.path().join("notes.txt"), "").expect("write");
    let storage = SinglefileStorage::new(dir.path().join("%s.ics"));
    let names = |s: &SinglefileStorage| {
        s.list_collections()
            .expect("list")
            .into_iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&storage), ["home"]);
    storage.create_collection("work").expect("create");
    assert_eq!(names(&storage), ["home", "work"]);
}

#[test]
fn a_missing_file_is_missing_until_created_as_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/work.ics");
    let storage = SinglefileStorage::new(path.clone());
    let coll = storage.root_collection();
    let error = storage.list(&coll).expect_err("missing").to_string();
    assert!(error.contains("missing — unmounted?"), "{error}");
    assert_eq!(
        storage.create_root().expect("create"),
        Some(path.display().to_string())
    );
    assert_eq!(storage.list(&coll).expect("list"), []);
}
