//! `davsync repair`: gives items without a UID a UID, and splits UIDs held by several items of
//! one collection, on any writable storage.
//!
//! [`decide`] is pure: from what the items of a collection are (href, UID, hash, timestamp) it
//! decides which items get which new UID. Of the items sharing a UID the oldest keeps it: the
//! one with the earliest `LAST-MODIFIED` (iCalendar) or `REV` (vCard), else `DTSTAMP`; an item
//! without any of them counts as newer than one with; ties go by href. Every other copy gets a
//! new UID.
//!
//! New UIDs are derived from the item's normalized hash (and its old UID): an item without UID
//! that exists on both sides of a pair gets the same UID on each side when each side is
//! repaired, so the next sync finds the same item on both sides instead of two new ones. A
//! derived UID that is already used in the collection is derived again with a counter.
//!
//! [`repair_collection`] applies the decisions with conditional writes on the version read:
//! the item is rewritten in place with its new UID ([`crate::vobject::with_uid`]); where the
//! storage refuses a UID change in place (Radicale answers 409 `no-uid-conflict`), the item is
//! created under a name derived from its new UID and the old one deleted (and the copy deleted
//! again when the old one cannot be). The next `davsync sync` then sees the old ident gone and
//! a new one, and converges without duplicates or conflicts.

use std::collections::{BTreeMap, HashSet};

use sha2::{Digest, Sha256};

use crate::item::Item;
use crate::storage::{CollectionInfo, ItemError, Storage, StorageError};
use crate::vobject;

/// What [`decide`] needs to know about one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where the item is in its collection.
    pub href: String,
    /// Its UID, if it has one.
    pub uid: Option<String>,
    /// Its normalized hash ([`Item::hash`]).
    pub hash: String,
    /// When it was last changed, as a sortable timestamp (see [`modified`]).
    pub modified: Option<String>,
}

impl Found {
    /// What an item read at `href` is, for [`decide`].
    pub fn of(href: &str, item: &Item) -> Found {
        Found {
            href: href.to_owned(),
            uid: item.uid().map(str::to_owned),
            hash: item.hash().to_owned(),
            modified: modified(item.bytes()),
        }
    }
}

/// When an item was last changed: its `LAST-MODIFIED`, else `REV`, else `DTSTAMP`, with `-`
/// and `:` removed so that the basic and extended ISO 8601 forms compare alike
/// (`2026-01-02T03:04:05Z` and `20260102T030405Z`).
pub fn modified(bytes: &[u8]) -> Option<String> {
    ["LAST-MODIFIED", "REV", "DTSTAMP"]
        .iter()
        .find_map(|name| vobject::main_property(bytes, name))
        .map(|value| {
            value
                .chars()
                .filter(|c| !matches!(c, '-' | ':'))
                .collect::<String>()
                .to_ascii_uppercase()
        })
}

/// Why an item gets a new UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// It had none.
    NoUid,
    /// Another item, older, keeps its UID.
    Duplicate {
        /// The UID both had.
        uid: String,
        /// The href of the item that keeps it.
        kept_by: String,
    },
}

/// One item to give a new UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// The item's href.
    pub href: String,
    /// Why.
    pub reason: Reason,
    /// The UID it gets.
    pub new_uid: String,
}

/// The items of one collection that need a new UID, in href order (see the module comment for
/// the rules).
pub fn decide(items: &[Found]) -> Vec<Fix> {
    let mut used: HashSet<String> = items.iter().filter_map(|i| i.uid.clone()).collect();
    let mut by_uid: BTreeMap<&str, Vec<&Found>> = BTreeMap::new();
    let mut without = Vec::new();
    for item in items {
        match &item.uid {
            Some(uid) => by_uid.entry(uid).or_default().push(item),
            None => without.push(item),
        }
    }
    let mut fixes = Vec::new();
    for (uid, mut holders) in by_uid.into_iter().filter(|(_, h)| h.len() > 1) {
        holders.sort_by(|x, y| {
            (x.modified.is_none(), &x.modified, &x.href).cmp(&(
                y.modified.is_none(),
                &y.modified,
                &y.href,
            ))
        });
        let kept_by = &holders[0].href;
        for copy in &holders[1..] {
            fixes.push(Fix {
                href: copy.href.clone(),
                reason: Reason::Duplicate {
                    uid: uid.to_owned(),
                    kept_by: kept_by.clone(),
                },
                new_uid: fresh_uid(&format!("{uid}\0{}", copy.hash), &mut used),
            });
        }
    }
    without.sort_by(|x, y| x.href.cmp(&y.href));
    for item in without {
        fixes.push(Fix {
            href: item.href.clone(),
            reason: Reason::NoUid,
            new_uid: fresh_uid(&item.hash, &mut used),
        });
    }
    fixes.sort_by(|x, y| x.href.cmp(&y.href));
    fixes
}

/// A UID derived from `seed`, shaped like a UUID, not in `used` (and now added to it).
fn fresh_uid(seed: &str, used: &mut HashSet<String>) -> String {
    (0u32..)
        .map(|n| {
            let digest = Sha256::digest(format!("davsync repair\0{seed}\0{n}").as_bytes());
            let hex = vobject::hex(&digest[..16]);
            format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )
        })
        .find(|uid| used.insert(uid.clone()))
        .unwrap_or_default()
}

/// What became of one [`Fix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The decision.
    pub fix: Fix,
    /// The item's new href when it had to move (a storage that refuses a UID change in place);
    /// `None` when it kept its href, or in a dry run.
    pub moved_to: Option<String>,
}

/// The outcome of repairing one collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The items given a new UID (in a dry run: that would be).
    pub changes: Vec<Change>,
    /// Items that could not be read or changed, and failed hooks, with the reason.
    pub errors: Vec<String>,
}

/// Where a person finds `href` of `collection`: a file's full path or a server item's URL.
pub fn location(collection: &CollectionInfo, href: &str) -> String {
    crate::sync::item_location(collection, href)
}

/// Lists and reads every item of `collection`, decides, and (unless `dry_run`) gives each item
/// that needs one its new UID with conditional writes. Unreadable items are reported and left
/// alone. Only a failure to list the collection is an error.
pub fn repair_collection(
    storage: &dyn Storage,
    collection: &CollectionInfo,
    dry_run: bool,
) -> Result<RepairReport, StorageError> {
    let mut report = RepairReport::default();
    let listing = storage.list(collection)?;
    let hrefs: Vec<&str> = listing.iter().map(|e| e.href.as_str()).collect();
    let mut read = BTreeMap::new();
    for (href, fetched) in storage.get_many(collection, &hrefs) {
        let where_ = location(collection, &href);
        match fetched.map(|f| (Item::parse(f.bytes), f.etag)) {
            Ok((Ok(item), etag)) => {
                read.insert(href, (item, etag));
            }
            Ok((Err(malformed), _)) => report
                .errors
                .push(format!("{where_}: not repaired: {malformed}")),
            // Gone since it was listed: nothing to repair.
            Err(ItemError::NotFound { .. }) => {}
            Err(e) => report.errors.push(format!("not repaired: {e}")),
        }
    }
    let found: Vec<Found> = read
        .iter()
        .map(|(href, (item, _))| Found::of(href, item))
        .collect();
    for fix in decide(&found) {
        let Some((item, etag)) = read.get(&fix.href) else {
            continue;
        };
        if dry_run {
            report.changes.push(Change {
                fix,
                moved_to: None,
            });
            continue;
        }
        match give_uid(storage, collection, &fix, item, etag) {
            Ok(moved_to) => report.changes.push(Change { fix, moved_to }),
            Err(why) => report.errors.push(format!(
                "{}: not given UID {}: {why}",
                location(collection, &fix.href),
                fix.new_uid
            )),
        }
    }
    if !dry_run && let Err(e) = storage.flush() {
        report
            .errors
            .push(format!("could not make the changes durable: {e}"));
    }
    report.errors.extend(
        storage
            .take_hook_failures()
            .into_iter()
            .map(|f| f.to_string()),
    );
    Ok(report)
}

/// Writes `item` with its new UID: in place, or where the storage refuses that, as a new item
/// replacing the old one. Returns the new href when the item moved.
fn give_uid(
    storage: &dyn Storage,
    collection: &CollectionInfo,
    fix: &Fix,
    item: &Item,
    etag: &str,
) -> Result<Option<String>, String> {
    let bytes = vobject::with_uid(item.bytes(), &fix.new_uid);
    match storage.update(collection, &fix.href, etag, &bytes) {
        Ok(_) => return Ok(None),
        Err(ItemError::Refused { .. }) => {}
        Err(e) => return Err(e.to_string()),
    }
    let created = storage
        .create(collection, &fix.new_uid, &bytes)
        .map_err(|e| {
            format!("the UID could not be changed in place, and a copy not created: {e}")
        })?;
    match storage.delete(collection, &fix.href, etag) {
        Ok(()) => Ok(Some(created.href)),
        Err(e) => {
            let undone = match storage.delete(collection, &created.href, &created.etag) {
                Ok(()) => "the copy was removed again".to_owned(),
                Err(undo) => format!(
                    "the copy {} stays too ({undo})",
                    location(collection, &created.href)
                ),
            };
            Err(format!(
                "copied under the new UID, but the original could not be deleted ({e}); {undone}"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(href: &str, uid: Option<&str>, modified: Option<&str>) -> Found {
        Found {
            href: href.into(),
            uid: uid.map(Into::into),
            hash: format!("hash-of-{href}"),
            modified: modified.map(Into::into),
        }
    }

    /// (href, reason) of a fix: `None` for "no UID", else the href that keeps the UID.
    type Decided = (String, Option<String>);

    fn decided(items: &[Found]) -> Vec<Decided> {
        decide(items)
            .into_iter()
            .map(|f| match f.reason {
                Reason::NoUid => (f.href, None),
                Reason::Duplicate { kept_by, .. } => (f.href, Some(kept_by)),
            })
            .collect()
    }

    #[test]
    fn decision_table() {
        let s = |v: &str| v.to_owned();
        let cases: Vec<(&str, Vec<Found>, Vec<Decided>)> = vec![
            (
                "nothing to do",
                vec![found("a", Some("1"), None), found("b", Some("2"), None)],
                vec![],
            ),
            (
                "no UID",
                vec![found("b", None, None), found("a", Some("1"), None)],
                vec![(s("b"), None)],
            ),
            (
                "the newer copy by timestamp gets a new UID, whatever the href order",
                vec![
                    found("a", Some("u"), Some("20260301T000000Z")),
                    found("b", Some("u"), Some("20260101T000000Z")),
                ],
                vec![(s("a"), Some(s("b")))],
            ),
            (
                "without timestamps the href order decides",
                vec![found("b", Some("u"), None), found("a", Some("u"), None)],
                vec![(s("b"), Some(s("a")))],
            ),
            (
                "a copy with a timestamp is older than one without",
                vec![
                    found("a", Some("u"), None),
                    found("b", Some("u"), Some("20260101T000000Z")),
                ],
                vec![(s("a"), Some(s("b")))],
            ),
            (
                "three copies: two get new UIDs",
                vec![
                    found("c", Some("u"), Some("3")),
                    found("a", Some("u"), Some("2")),
                    found("b", Some("u"), Some("1")),
                ],
                vec![(s("a"), Some(s("b"))), (s("c"), Some(s("b")))],
            ),
        ];
        for (name, items, expected) in cases {
            assert_eq!(decided(&items), expected, "{name}");
        }
    }

    #[test]
    fn new_uids_are_derived_distinct_and_unused() {
        let items = [
            found("a", None, None),
            found("b", None, None),
            found("c", Some("u"), None),
            found("d", Some("u"), None),
        ];
        let fixes = decide(&items);
        let uids: HashSet<&str> = fixes.iter().map(|f| f.new_uid.as_str()).collect();
        assert_eq!(uids.len(), 3);
        assert!(!uids.contains("u"));
        assert_eq!(decide(&items), fixes, "the same items get the same UIDs");
        assert_eq!(fixes[0].new_uid.len(), 36);
        // The same content without UID in two places still gets two UIDs.
        let twins = [
            found("a", None, None),
            Found {
                href: "b".into(),
                ..found("a", None, None)
            },
        ];
        let fixes = decide(&twins);
        assert_ne!(fixes[0].new_uid, fixes[1].new_uid);
    }

    #[test]
    fn timestamps_compare_in_both_iso_forms() {
        let ics = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTAMP:20260105T000000Z\r\n\
                    LAST-MODIFIED:20260102T030405Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(modified(ics).as_deref(), Some("20260102T030405Z"));
        let vcf = b"BEGIN:VCARD\r\nREV:2026-01-02T03:04:06Z\r\nEND:VCARD\r\n";
        assert_eq!(modified(vcf).as_deref(), Some("20260102T030406Z"));
        assert_eq!(modified(b"BEGIN:VCARD\r\nEND:VCARD\r\n"), None);
    }
}
