//! The singlefile storage: a whole calendar in one `.ics` file (events, todos, journals and
//! their VTIMEZONEs) or an address book in one `.vcf` file, as exported by most calendar
//! programs. With a `%s` in its path (`~/cals/%s.ics`) each matching file is a collection named
//! by what `%s` matched.
//!
//! A file is read once per run and cut into items by [`vobject::split_file`] (by UID: a master
//! and its overrides are one item, carrying the VTIMEZONEs it references). An item's href is
//! its UID, or `sha256:<normalized hash>` without one (its identity in the sync engine too, so
//! an edit of such an item is a new item, as everywhere). Its version tag is a hash of its own
//! component bytes in the file, which is also what a write returns, so a second sync finds
//! every tag it recorded.
//!
//! Writes are conditional on those tags and only change memory; [`Storage::flush`] (called by
//! the executor before it records writes in the status database) writes the file once, to a
//! temporary file renamed over it, after checking that the file still has the version tag
//! (`mtime-size-inode`) it had when read. A file changed behind our back is not written: the
//! flush fails, nothing is recorded, and the next run looks at everything again. Everything
//! not written by this run keeps its bytes: an item's component ranges are replaced in place,
//! new items go before the last `END:VCALENDAR` (or at the end of a `.vcf`), and malformed
//! items, blank lines and the VCALENDAR's own lines are copied as they were.
//!
//! A malformed item is listed with an unreadable tag and reported with its line when fetched,
//! so it is never taken for a deletion (the planner skips the ident its href, the UID, had).
//! One whose UID cannot be read is [`ItemError::Unidentified`]: it may be any item, so the
//! planner deletes nothing on the other side while it stays.

pub mod config;

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::vdir::WEAK_WINDOW;
use super::{
    ChangeSet, Changes, CollectionInfo, Fetched, ItemError, ListEntry, Storage, StorageError,
    Written,
};
use crate::config::MetadataKey;
use crate::vobject::{self, SplitFile};

pub use config::{SinglefileConfig, parse_config};

/// Version tag listed for a malformed item: weak, so the status never vouches for it and the
/// fetch reports why it cannot be read.
const UNREADABLE_TAG: &str = "W/unreadable";

/// The placeholder a collection name takes in a path.
const PLACEHOLDER: &str = "%s";

/// A singlefile storage: one file, or with `%s` in `path` one file per collection.
#[derive(Debug)]
pub struct SinglefileStorage {
    path: PathBuf,
    /// Files read in this run, by path (the collection id).
    files: Mutex<HashMap<String, File>>,
}

/// A file as read in this run, with the writes made to it since.
#[derive(Debug)]
struct File {
    /// Version tag when read (`None`: there was no file).
    tag: Option<String>,
    bytes: Vec<u8>,
    split: SplitFile,
    /// The items as they stand now, by href.
    items: HashMap<String, Entry>,
    /// Indexes into `split.items` of items deleted or replaced since the last write.
    removed: Vec<usize>,
    /// Hrefs of items created since the last write, in order.
    created: Vec<String>,
    dirty: bool,
}

/// An item as it stands now.
#[derive(Debug)]
struct Entry {
    /// Index into `split.items` while the item is as read; `None` once written by this run.
    original: Option<usize>,
    etag: String,
    /// The bytes written by this run.
    written: Option<Vec<u8>>,
    /// The item of `split.items` these bytes replace, whose place in the file they take.
    in_place_of: Option<usize>,
}

/// A hash of an item's own component bytes: its version tag.
fn content_tag<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut hasher = Sha256::new();
    parts.into_iter().for_each(|p| hasher.update(p));
    format!("\"{}\"", vobject::hex(&hasher.finalize()[..16]))
}

/// An item's href: its UID, or without one its normalized hash (as its ident).
fn href_of(uid: Option<&str>, content: &[u8]) -> String {
    match uid {
        Some(uid) => uid.to_owned(),
        None => format!("sha256:{}", vobject::normalized_hash(content)),
    }
}

/// The version tag of a file: `mtime_ns-size-inode`, weak (`W/`) while younger than
/// [`WEAK_WINDOW`], as for a vdir item.
fn file_tag(meta: &fs::Metadata, now: SystemTime) -> String {
    let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    let tag = format!("{mtime_ns}-{}-{}", meta.size(), meta.ino());
    let recent = meta
        .modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .is_none_or(|age| age < WEAK_WINDOW);
    if recent { format!("W/{tag}") } else { tag }
}

fn strong_part(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

fn io_storage(path: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The current tag of the file at `path`; `None` when there is no file.
fn current_tag(path: &Path) -> Result<Option<String>, StorageError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(file_tag(&meta, SystemTime::now()))),
        Ok(_) => Err(StorageError::Other(format!(
            "{}: not a regular file",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_storage(path, e)),
    }
}

impl File {
    /// Reads the file at `path`; tag and bytes come from the same open file.
    fn read(path: &Path) -> Result<File, StorageError> {
        let mut file = fs::File::open(path).map_err(|e| io_storage(path, e))?;
        let meta = file.metadata().map_err(|e| io_storage(path, e))?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| io_storage(path, e))?;
        Ok(File::from_bytes(
            Some(file_tag(&meta, SystemTime::now())),
            bytes,
        ))
    }

    fn from_bytes(tag: Option<String>, bytes: Vec<u8>) -> File {
        let split = vobject::split_file(&bytes);
        let mut items = HashMap::with_capacity(split.items.len());
        for (index, item) in split.items.iter().enumerate() {
            let (href, etag) = match &item.content {
                Ok(content) => (
                    href_of(item.uid.as_deref(), content),
                    content_tag(item.ranges.iter().map(|r| &bytes[r.clone()])),
                ),
                Err(_) => (
                    item.uid
                        .clone()
                        .unwrap_or_else(|| format!("malformed-at-line-{}", item.line)),
                    UNREADABLE_TAG.to_owned(),
                ),
            };
            // A second item with the same UID (two VCARDs) gets its own href; the engine then
            // reports the duplicate UID with both hrefs.
            let href = if items.contains_key(&href) {
                format!("{href}#line-{}", item.line)
            } else {
                href
            };
            items.insert(
                href,
                Entry {
                    original: Some(index),
                    etag,
                    written: None,
                    in_place_of: None,
                },
            );
        }
        File {
            tag,
            bytes,
            split,
            items,
            removed: Vec::new(),
            created: Vec::new(),
            dirty: false,
        }
    }

    /// The entry at `href` if it still has `expected`; else the write fails as changed, or
    /// as not found when the file has no such item (any more): the executor takes a delete of
    /// an item already gone as done, as for every other storage.
    fn expect(&self, href: &str, expected: &str) -> Result<&Entry, ItemError> {
        match self.items.get(href) {
            // A malformed item is never overwritten or deleted: its bytes stay as they are.
            Some(entry) if entry.etag == expected && expected != UNREADABLE_TAG => Ok(entry),
            Some(_) => Err(ItemError::Changed {
                href: href.to_owned(),
            }),
            None => Err(ItemError::NotFound {
                href: href.to_owned(),
            }),
        }
    }

    /// Takes an item out of the file as read (it is rewritten or deleted at the flush).
    fn detach(&mut self, href: &str) {
        if let Some(Entry {
            original: Some(index),
            ..
        }) = self.items.remove(href)
        {
            self.removed.push(index);
        }
        self.created.retain(|h| h != href);
        self.dirty = true;
    }

    /// Stores `bytes` as the item at its href, in place of item `in_place_of` of the file as
    /// read; returns what a write reports.
    fn put(&mut self, bytes: &[u8], in_place_of: Option<usize>) -> Written {
        let split = vobject::split_file(bytes);
        let uid = split.items.first().and_then(|i| i.uid.clone());
        let href = href_of(uid.as_deref(), bytes);
        let etag = content_tag(
            split
                .items
                .iter()
                .flat_map(|i| &i.ranges)
                .map(|r| &bytes[r.clone()]),
        );
        self.created.push(href.clone());
        self.items.insert(
            href.clone(),
            Entry {
                original: None,
                etag: etag.clone(),
                written: Some(bytes.to_vec()),
                in_place_of,
            },
        );
        self.dirty = true;
        Written { href, etag }
    }

    /// The file's new bytes: removed items' ranges dropped; a rewritten item's components (with
    /// the VTIMEZONEs the file lacks) where its first component stood, a new item's before the
    /// last `END:VCALENDAR` (a new card at the end); every other byte as it was.
    fn render(&self) -> Vec<u8> {
        let bytes = &self.bytes;
        let mut cuts: Vec<std::ops::Range<usize>> = self
            .removed
            .iter()
            .filter_map(|&i| self.split.items.get(i))
            .flat_map(|item| item.ranges.iter().cloned())
            .collect();
        cuts.sort_by_key(|r| r.start);
        let mut known_zones: Vec<Vec<u8>> = self
            .split
            .timezones
            .iter()
            .map(|(tz, _)| tz.clone())
            .collect();
        // (position in the file, bytes to insert there), and what goes at the calendar's end.
        let mut inserts: Vec<(usize, Vec<u8>)> = Vec::new();
        let (mut appended, mut cards) = (Vec::new(), Vec::new());
        // A file without VCALENDAR takes the frame (BEGIN line, properties, END line) of the
        // first calendar item written to it.
        let mut frame: Option<(&[u8], &[u8])> = None;
        for entry in self.created.iter().filter_map(|href| self.items.get(href)) {
            let Some(written) = entry.written.as_deref() else {
                continue;
            };
            let place = entry
                .in_place_of
                .and_then(|i| self.split.items.get(i))
                .and_then(|item| item.ranges.first())
                .map(|r| r.start);
            let split = vobject::split_file(written);
            let mut chunk = Vec::new();
            match split.calendar_end {
                None => {
                    chunk.extend_from_slice(written);
                    if !written.ends_with(b"\n") && !written.ends_with(b"\r") {
                        chunk.extend_from_slice(b"\r\n");
                    }
                }
                Some(calendar_end) => {
                    let ranges = split.items.iter().flat_map(|i| &i.ranges);
                    let first = split
                        .timezones
                        .iter()
                        .map(|(_, r)| r)
                        .chain(ranges.clone())
                        .map(|r| r.start)
                        .min()
                        .unwrap_or(calendar_end);
                    if place.is_none() {
                        frame.get_or_insert((&written[..first], &written[calendar_end..]));
                    }
                    for (tz, range) in &split.timezones {
                        if !known_zones.contains(tz) {
                            known_zones.push(tz.clone());
                            chunk.extend_from_slice(&written[range.clone()]);
                        }
                    }
                    ranges.for_each(|r| chunk.extend_from_slice(&written[r.clone()]));
                }
            }
            match (place, split.calendar_end) {
                (Some(at), _) => inserts.push((at, chunk)),
                (None, None) => cards.extend_from_slice(&chunk),
                (None, Some(_)) => appended.extend_from_slice(&chunk),
            }
        }
        if let Some(at) = self.split.calendar_end {
            inserts.push((at, std::mem::take(&mut appended)));
        }
        inserts.sort_by_key(|(at, _)| *at);
        let mut out = Vec::with_capacity(bytes.len() + appended.len() + cards.len());
        let mut pos = 0;
        let mut pending = inserts.into_iter().peekable();
        // An empty cut at the end places the inserts left after the last real one.
        cuts.push(bytes.len()..bytes.len());
        for cut in cuts {
            while let Some((at, chunk)) = pending.next_if(|(at, _)| *at <= cut.start) {
                out.extend_from_slice(&bytes[pos..at.max(pos)]);
                out.extend_from_slice(&chunk);
                pos = at.max(pos);
            }
            out.extend_from_slice(&bytes[pos..cut.start.max(pos)]);
            pos = cut.end.max(pos);
        }
        let appending = !cards.is_empty() || !appended.is_empty();
        if appending && !out.is_empty() && !out.ends_with(b"\n") && !out.ends_with(b"\r") {
            out.extend_from_slice(b"\r\n");
        }
        if !appended.is_empty() {
            let (head, tail) = frame.unwrap_or_default();
            out.extend_from_slice(head);
            out.extend_from_slice(&appended);
            out.extend_from_slice(tail);
        }
        out.extend_from_slice(&cards);
        out
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it (same permissions as the
/// file it replaces, else 0600), synced, its mtime set back by [`WEAK_WINDOW`] (as vdir items
/// are, so the next edit by anyone changes the tag), renamed over `path`, then the directory
/// synced. Returns the new file's version tag.
fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<String> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".davsync-tmp-{}-{name}", std::process::id()));
    let mode = fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o7777);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        let now = SystemTime::now();
        file.set_modified(now - WEAK_WINDOW)?;
        file.sync_all()?;
        let tag = file_tag(&file.metadata()?, now);
        fs::rename(&temp, path)?;
        fs::File::open(dir)?.sync_all()?;
        Ok(tag)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

impl SinglefileStorage {
    /// A singlefile storage at `path` (`~` already expanded); a `%s` in the file name makes
    /// each matching file a collection.
    pub fn new(path: PathBuf) -> SinglefileStorage {
        SinglefileStorage {
            path,
            files: Mutex::new(HashMap::new()),
        }
    }

    /// The text before and after `%s` in the path, when it has one.
    fn pattern(&self) -> Option<(String, String)> {
        let path = self.path.to_string_lossy();
        let (before, after) = path.split_once(PLACEHOLDER)?;
        Some((before.to_owned(), after.to_owned()))
    }

    fn missing(&self, path: &Path) -> StorageError {
        StorageError::Other(format!(
            "{}: missing — unmounted? (only the first sync of a pair creates it)",
            path.display()
        ))
    }

    /// Runs `f` on the file of `collection`, reading it on first use.
    fn with_file<T>(
        &self,
        collection: &CollectionInfo,
        f: impl FnOnce(&mut File) -> T,
    ) -> Result<T, StorageError> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if !files.contains_key(&collection.id) {
            let path = Path::new(&collection.id);
            let file = match File::read(path) {
                Err(StorageError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    return Err(if self.pattern().is_some() {
                        StorageError::NoSuchCollection {
                            id: collection.id.clone(),
                        }
                    } else {
                        self.missing(path)
                    });
                }
                other => other?,
            };
            files.insert(collection.id.clone(), file);
        }
        let file = files
            .get_mut(&collection.id)
            .ok_or_else(|| StorageError::Other(format!("{}: not read", collection.id)))?;
        Ok(f(file))
    }

    /// Like [`Self::with_file`] for a write to one item: a storage error becomes the item's.
    fn write<T>(
        &self,
        collection: &CollectionInfo,
        href: &str,
        f: impl FnOnce(&mut File) -> Result<T, ItemError>,
    ) -> Result<T, ItemError> {
        self.with_file(collection, f).unwrap_or_else(|e| {
            Err(ItemError::Transport {
                href: href.to_owned(),
                reason: e.to_string(),
            })
        })
    }
}

impl Storage for SinglefileStorage {
    fn list_collections(&self) -> Result<Vec<CollectionInfo>, StorageError> {
        let Some((before, after)) = self.pattern() else {
            return Ok(vec![self.root_collection()]);
        };
        let (dir, prefix) = match before.rfind('/') {
            Some(i) => (before[..=i].to_owned(), before[i + 1..].to_owned()),
            None => ("./".to_owned(), before.clone()),
        };
        if after.contains('/') {
            return Err(StorageError::Other(format!(
                "{}: %s must be in the file name",
                self.path.display()
            )));
        }
        let entries = fs::read_dir(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => self.missing(Path::new(&dir)),
            _ => io_storage(Path::new(&dir), e),
        })?;
        let mut collections = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_storage(Path::new(&dir), e))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file_name
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_suffix(after.as_str()))
            else {
                continue;
            };
            if name.is_empty() || file_name.starts_with('.') {
                continue;
            }
            collections.push(CollectionInfo {
                name: name.to_owned(),
                id: format!("{dir}{file_name}"),
            });
        }
        collections.sort_by(|x, y| x.name.cmp(&y.name));
        Ok(collections)
    }

    fn root_collection(&self) -> CollectionInfo {
        CollectionInfo {
            name: String::new(),
            id: self.path.display().to_string(),
        }
    }

    fn create_collection(&self, name: &str) -> Result<CollectionInfo, StorageError> {
        let Some((before, after)) = self.pattern() else {
            return Err(StorageError::Other(format!(
                "{}: a path without %s holds one collection only",
                self.path.display()
            )));
        };
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\0']) {
            return Err(StorageError::Other(format!(
                "{}: {name:?} is not a usable collection file name",
                self.path.display()
            )));
        }
        let id = format!("{before}{name}{after}");
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&id)
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_storage(Path::new(&id), e)),
        }
        Ok(CollectionInfo {
            name: name.to_owned(),
            id,
        })
    }

    fn list(&self, collection: &CollectionInfo) -> Result<Vec<ListEntry>, StorageError> {
        self.with_file(collection, |file| {
            file.items
                .iter()
                .map(|(href, entry)| ListEntry {
                    href: href.clone(),
                    etag: entry.etag.clone(),
                    content: None,
                })
                .collect()
        })
    }

    /// An unchanged file (same strong version tag as after the last clean sync) is not even
    /// read; the state is the file's tag, remembered only while it is strong.
    fn list_changes(
        &self,
        collection: &CollectionInfo,
        since: Option<&str>,
        _fetch_all: bool,
    ) -> Result<ChangeSet, StorageError> {
        let path = Path::new(&collection.id);
        let tag = current_tag(path)?;
        let state = tag.filter(|t| !t.starts_with("W/"));
        if state.is_some() && state.as_deref() == since {
            return Ok(ChangeSet {
                changes: Changes::Unchanged,
                state,
                unreadable: Vec::new(),
            });
        }
        let entries = self.list(collection)?;
        // The tag of what was read, which may be newer than the one looked at above.
        let read = self.with_file(collection, |file| file.tag.clone())?;
        Ok(ChangeSet {
            changes: Changes::Full(entries),
            state: read.filter(|t| !t.starts_with("W/")),
            unreadable: Vec::new(),
        })
    }

    fn get_many(
        &self,
        collection: &CollectionInfo,
        hrefs: &[&str],
    ) -> Vec<(String, Result<Fetched, ItemError>)> {
        let result = self.with_file(collection, |file| {
            hrefs
                .iter()
                .map(|&href| {
                    let fetched = match file.items.get(href) {
                        None => Err(ItemError::NotFound {
                            href: href.to_owned(),
                        }),
                        Some(entry) => match (&entry.written, entry.original) {
                            (Some(bytes), _) => Ok(bytes.clone()),
                            (None, Some(i)) => match file.split.items.get(i).map(|i| &i.content) {
                                Some(Ok(content)) => Ok(content.clone()),
                                Some(Err(malformed)) => {
                                    let split = &file.split.items[i];
                                    // The engine puts the file's name in front.
                                    let location = format!("item at line {}", split.line);
                                    // Without a UID it has no name of its own: it may be any
                                    // item of the file, which the engine must not delete.
                                    Err(match split.uid {
                                        Some(_) => ItemError::Io {
                                            path: location,
                                            source: io::Error::new(
                                                io::ErrorKind::InvalidData,
                                                malformed.to_string(),
                                            ),
                                        },
                                        None => ItemError::Unidentified {
                                            location,
                                            reason: format!(
                                                "{malformed} (no UID can be read, so it may be \
                                                 any item: nothing is deleted on the other side \
                                                 until it is fixed)"
                                            ),
                                        },
                                    })
                                }
                                None => Err(ItemError::NotFound {
                                    href: href.to_owned(),
                                }),
                            },
                            (None, None) => Err(ItemError::NotFound {
                                href: href.to_owned(),
                            }),
                        }
                        .map(|bytes| Fetched {
                            bytes,
                            etag: entry.etag.clone(),
                        }),
                    };
                    (href.to_owned(), fetched)
                })
                .collect::<Vec<_>>()
        });
        result.unwrap_or_else(|e| {
            hrefs
                .iter()
                .map(|&href| {
                    let error = ItemError::Transport {
                        href: href.to_owned(),
                        reason: e.to_string(),
                    };
                    (href.to_owned(), Err(error))
                })
                .collect()
        })
    }

    fn create(
        &self,
        collection: &CollectionInfo,
        name_hint: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        self.write(collection, name_hint, |file| {
            let uid = vobject::uid(bytes);
            let href = href_of(uid.as_deref(), bytes);
            if file.items.contains_key(&href) {
                return Err(ItemError::Changed { href });
            }
            Ok(file.put(bytes, None))
        })
    }

    fn update(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        self.write(collection, href, |file| {
            let entry = file.expect(href, expected_etag)?;
            let place = entry.original.or(entry.in_place_of);
            file.detach(href);
            Ok(file.put(bytes, place))
        })
    }

    fn delete(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
    ) -> Result<(), ItemError> {
        self.write(collection, href, |file| {
            file.expect(href, expected_etag)?;
            file.detach(href);
            Ok(())
        })
    }

    fn flush_rewrites_everything(&self) -> bool {
        true
    }

    fn flush(&self) -> Result<(), StorageError> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        for (id, file) in files.iter_mut().filter(|(_, f)| f.dirty) {
            let path = Path::new(id);
            let now = current_tag(path)?;
            if now.as_deref().map(strong_part) != file.tag.as_deref().map(strong_part) {
                return Err(StorageError::Other(format!(
                    "{id}: changed by another program since it was read; nothing written, \
                     the changes are looked at again next sync"
                )));
            }
            let bytes = file.render();
            let tag = replace_file(path, &bytes).map_err(|e| io_storage(path, e))?;
            *file = File::from_bytes(Some(tag), bytes);
        }
        Ok(())
    }

    fn create_root(&self) -> Result<Option<String>, StorageError> {
        let (target, is_file) = match self.pattern() {
            Some((before, _)) => match before.rfind('/') {
                Some(i) => (PathBuf::from(&before[..i]), false),
                None => return Ok(None),
            },
            None => (self.path.clone(), true),
        };
        if fs::symlink_metadata(&target).is_ok() {
            return Ok(None);
        }
        let dir = if is_file {
            target.parent().map(Path::to_path_buf)
        } else {
            Some(target.clone())
        };
        if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| io_storage(&dir, e))?;
        }
        if is_file {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&target)
                .map_err(|e| io_storage(&target, e))?;
        }
        Ok(Some(target.display().to_string()))
    }

    /// `X-WR-CALNAME` (display name), `X-APPLE-CALENDAR-COLOR` (colour) and `X-WR-CALDESC`
    /// (description) of the file's first VCALENDAR; a `.vcf` has none.
    fn metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
    ) -> Result<Option<String>, StorageError> {
        let Some(property) = calendar_property(key) else {
            return Ok(None);
        };
        self.with_file(collection, |file| {
            vobject::calendar_property(&file.bytes, property)
        })
    }

    fn set_metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
        value: Option<&str>,
    ) -> Result<(), StorageError> {
        let _ = value;
        Err(StorageError::Other(format!(
            "{}: setting {} is not supported for a single file",
            collection.id,
            key.file_name()
        )))
    }
}

/// The VCALENDAR property holding a collection property, if a file has one.
fn calendar_property(key: MetadataKey) -> Option<&'static [u8]> {
    match key {
        MetadataKey::DisplayName => Some(b"X-WR-CALNAME"),
        MetadataKey::Color => Some(b"X-APPLE-CALENDAR-COLOR"),
        MetadataKey::Description => Some(b"X-WR-CALDESC"),
        MetadataKey::Order => None,
    }
}

#[cfg(test)]
mod tests;
