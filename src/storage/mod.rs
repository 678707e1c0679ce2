//! The storage abstraction every backend implements (vdir now; CalDAV, CardDAV, single file,
//! webcal and cloud APIs later), and the errors storages report.
//!
//! A storage holds named collections; a collection holds items addressed by href. Every write
//! is conditional on the version tag seen when listing, so a storage never overwrites or deletes
//! a version davsync has not seen.

pub mod dav;
pub mod google;
pub mod singlefile;
pub mod vdir;
pub mod webcal;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::config::{ConfigError, Env, MetadataKey, Section, StorageConfig};
use crate::filter::Window;
use crate::model::{ItemVersion, UnreadableItem};

/// A collection as found on a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    /// Name used to pair collections of two storages (a vdir subdirectory name).
    pub name: String,
    /// Storage-specific address of the collection (a directory path, a URL).
    pub id: String,
}

/// One entry of a collection listing: where an item lives and its current version tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// Location of the item within the collection.
    pub href: String,
    /// Version tag; weak tags (`W/...`) must be confirmed by content.
    pub etag: String,
    /// The item's bytes at `etag`, when the listing carried them (a DAV server answering a
    /// listing that asked for content); such an entry needs no fetch.
    pub content: Option<Vec<u8>>,
}

/// How a collection stands compared with the state a storage reported after the last clean
/// sync (a DAV sync token or ctag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// The whole collection, as [`Storage::list`] gives it.
    Full(Vec<ListEntry>),
    /// Only these entries are new or changed and these hrefs are gone; every other item is as
    /// the status database remembers it.
    Delta {
        /// New or changed entries.
        changed: Vec<ListEntry>,
        /// Hrefs that disappeared.
        removed: Vec<String>,
    },
    /// Nothing changed.
    Unchanged,
}

/// [`Changes`] plus the state to remember once this run has synced the collection cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    /// What changed.
    pub changes: Changes,
    /// The storage's new state, if it has such a thing.
    pub state: Option<String>,
    /// Items the listing names but cannot vouch for (a DAV entry without an ETag): they exist,
    /// so they are unreadable this run, never absent.
    pub unreadable: Vec<UnreadableItem>,
}

/// An item's bytes with the version tag they were read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The exact bytes stored.
    pub bytes: Vec<u8>,
    /// Version tag of these bytes.
    pub etag: String,
}

/// Where a write put the item and the version tag it now has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Location of the item.
    pub href: String,
    /// Version tag after the write.
    pub etag: String,
}

impl Written {
    /// The version this write created; its content is `source`'s, so is its hash.
    pub fn version_of(self, source: &ItemVersion) -> ItemVersion {
        ItemVersion {
            href: self.href,
            etag: self.etag,
            hash: source.hash.clone(),
        }
    }
}

/// Longest item name davsync derives from a UID, in bytes, extension included.
pub const MAX_NAME_LEN: usize = 200;

/// The name for a new item with this UID (or other hint) and extension (such as `".ics"`): the
/// UID itself when it is plainly safe as a file name and URL segment (only
/// `A-Z a-z 0-9 - _ . @ + =`, not starting with a dot, at most [`MAX_NAME_LEN`] bytes with the
/// extension), else 32 hex digits of its SHA-256. One rule for every storage, so that a hostile
/// UID such as `../../etc/x` never names anything outside its collection.
pub fn item_file_name(hint: &str, ext: &str) -> String {
    let safe = !hint.is_empty()
        && !hint.starts_with('.')
        && hint.len() + ext.len() <= MAX_NAME_LEN
        && hint
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.@+=".contains(&c));
    if safe {
        format!("{hint}{ext}")
    } else {
        let digest = Sha256::digest(hint.as_bytes());
        format!("{}{ext}", crate::vobject::hex(&digest[..16]))
    }
}

/// What the storages opened for one run share: network storages with the same connection setup
/// share an HTTP client ([`crate::http::Clients`]), and every HTTP client the cap on requests
/// in flight ([`crate::http::ConnectionLimit`], `max_connections`).
#[derive(Debug, Default)]
pub struct Shared {
    http: crate::http::Clients,
    /// The token source of each OAuth2 token file: a storage in several pairs refreshes once,
    /// and its pairs share one HTTP client.
    tokens: google::TokenSources,
}

impl Shared {
    /// Nothing shared yet but `connections`, the cap on requests in flight that every HTTP
    /// client opened through this counts against, and `interrupt`, set when the run is asked
    /// to stop (no request is tried again then). (`Shared::default()` has a cap of its own of
    /// [`crate::http::DEFAULT_MAX_CONNECTIONS`] and no interrupt.)
    pub fn new(
        connections: std::sync::Arc<crate::http::ConnectionLimit>,
        interrupt: Option<&'static std::sync::atomic::AtomicBool>,
    ) -> Shared {
        Shared {
            http: crate::http::Clients::new(connections, interrupt),
            tokens: google::TokenSources::default(),
        }
    }
}

/// Opens the storage a config section describes. Secrets are resolved now, from `env` and
/// password commands, before any network I/O.
pub fn open(
    config: &StorageConfig,
    env: &dyn Env,
    shared: &Shared,
) -> Result<Box<dyn Storage>, StorageError> {
    match &config.kind {
        StorageKind::Vdir(vdir) => Ok(Box::new(vdir::VdirStorage::from_config(vdir))),
        StorageKind::Dav(dav) => Ok(Box::new(dav::open(dav, &config.filter, env, &shared.http)?)),
        StorageKind::Singlefile(file) => Ok(Box::new(singlefile::SinglefileStorage::new(
            file.path.clone(),
        ))),
        StorageKind::Webcal(feed) => Ok(Box::new(webcal::open(feed, env, &shared.http)?)),
        StorageKind::Google(google) => Ok(Box::new(google::open(
            google,
            &config.filter,
            env,
            &shared.http,
            &shared.tokens,
        )?)),
    }
}

/// The storage types a config may name (`type = "..."`), in the order error messages list
/// them; [`StorageKind::parse`] parses each.
pub const STORAGE_TYPES: &[&str] = &[
    "vdir",
    "singlefile",
    "caldav",
    "carddav",
    "webcal",
    "google_calendar",
    "google_contacts",
];

/// Storage types that are planned but not implemented yet; they get a friendlier error.
pub const PLANNED_STORAGE_TYPES: &[&str] = &[];

/// Where a storage keeps its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    /// A local directory or file; another place inside it is the same place.
    Path(&'a std::path::Path),
    /// An address on a server.
    Url(&'a str),
    /// An account on a server whose address every account shares (Google), known by its
    /// token file: two storages are the same place only with the same token file.
    Account(&'a std::path::Path),
}

/// Every key some storage type's section accepts besides the common keys
/// ([`crate::config::COMMON_STORAGE_KEYS`]), for documentation checks.
pub fn type_keys() -> Vec<&'static str> {
    [
        vdir::config::KEYS,
        singlefile::config::KEYS,
        dav::config::KEYS,
        crate::http::options::KEYS,
        google::config::KEYS,
    ]
    .concat()
}

/// A storage type and its own section (`[storage.<name>]` without the common keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageKind {
    /// `type = "vdir"`: a directory of collections, one file per item.
    Vdir(vdir::VdirConfig),
    /// `type = "caldav"` or `type = "carddav"`: collections on a WebDAV server.
    Dav(dav::DavConfig),
    /// `type = "singlefile"`: one `.ics` or `.vcf` file (one per collection with `%s`).
    Singlefile(singlefile::SinglefileConfig),
    /// `type = "webcal"`: one read-only calendar feed.
    Webcal(webcal::WebcalConfig),
    /// `type = "google_calendar"` or `type = "google_contacts"`: a Google account's calendars
    /// or contacts over CalDAV/CardDAV with OAuth2.
    Google(google::GoogleConfig),
}

impl StorageKind {
    /// Parses the section of a storage of type `type_name` (one of [`STORAGE_TYPES`]); the
    /// common keys are parsed by the caller.
    pub fn parse(type_name: &str, section: &Section<'_, '_>) -> Result<StorageKind, ConfigError> {
        Ok(match type_name {
            "vdir" => StorageKind::Vdir(vdir::parse_config(section)?),
            "singlefile" => StorageKind::Singlefile(singlefile::parse_config(section)?),
            "caldav" => StorageKind::Dav(dav::parse_config(section, dav::DavKind::CalDav)?),
            "carddav" => StorageKind::Dav(dav::parse_config(section, dav::DavKind::CardDav)?),
            "webcal" => StorageKind::Webcal(webcal::parse_config(section)?),
            "google_calendar" => {
                StorageKind::Google(google::parse_config(section, dav::DavKind::CalDav)?)
            }
            "google_contacts" => {
                StorageKind::Google(google::parse_config(section, dav::DavKind::CardDav)?)
            }
            other => {
                return Err(section.invalid(
                    section.required("type")?,
                    "type",
                    format!("storage type {other:?} has no parser"),
                ));
            }
        })
    }

    /// Whether the storage holds contacts only, so `item_types`, `start_date` and `end_date`
    /// (which concern calendar components) make no sense on it.
    pub fn holds_contacts(&self) -> bool {
        match self {
            StorageKind::Vdir(vdir) => vdir.holds_contacts(),
            StorageKind::Dav(dav) => dav.kind == dav::DavKind::CardDav,
            StorageKind::Singlefile(file) => file.holds_contacts(),
            StorageKind::Webcal(_) => false,
            StorageKind::Google(google) => google.dav.kind == dav::DavKind::CardDav,
        }
    }

    /// The component types the storage can hold at all, where it is limited (a Google
    /// calendar: events only); [`crate::config`] narrows its `item_types` to them.
    pub fn component_limit(&self) -> Option<crate::filter::ComponentLimit> {
        match self {
            StorageKind::Dav(dav) => dav.component_limit(),
            StorageKind::Google(google) => google.dav.component_limit(),
            StorageKind::Vdir(_) | StorageKind::Singlefile(_) | StorageKind::Webcal(_) => None,
        }
    }

    /// Whether the storage type cannot be written at all (a webcal feed), so its
    /// `read_only` is `true` whatever the section says.
    pub fn only_readable(&self) -> bool {
        matches!(self, StorageKind::Webcal(_))
    }

    /// Where the storage is, so a pair can refuse two sides that are the same place.
    pub fn place(&self) -> Place<'_> {
        match self {
            StorageKind::Vdir(vdir) => Place::Path(&vdir.path),
            StorageKind::Dav(dav) => Place::Url(&dav.http.url),
            StorageKind::Singlefile(file) => Place::Path(&file.path),
            StorageKind::Webcal(feed) => Place::Url(&feed.http.url),
            StorageKind::Google(google) => Place::Account(&google.token_file),
        }
    }

    /// The HTTP options of a network storage, `None` for a local one.
    pub fn http(&self) -> Option<&crate::http::HttpOptions> {
        match self {
            StorageKind::Vdir(_) | StorageKind::Singlefile(_) => None,
            StorageKind::Dav(dav) => Some(&dav.http),
            StorageKind::Webcal(feed) => Some(&feed.http),
            StorageKind::Google(google) => Some(&google.dav.http),
        }
    }
}

/// A failure that concerns one item; the sync goes on with the others.
#[derive(Debug, Error)]
pub enum ItemError {
    /// The item changed (or appeared, or vanished) since it was listed; nothing was written.
    #[error("{href}: changed since it was listed, left for the next sync")]
    Changed {
        /// The item's location.
        href: String,
    },
    /// The item is gone.
    #[error("{href}: not found")]
    NotFound {
        /// The item's location.
        href: String,
    },
    /// The storage refused the item.
    #[error("{href}: refused{}: {reason}", .status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Refused {
        /// The item's location.
        href: String,
        /// The HTTP status of a server's refusal; `None` for a local refusal.
        status: Option<u16>,
        /// What the storage said: a server's `DAV:error` precondition (such as
        /// `no-uid-conflict`) or the first line of its answer.
        reason: String,
    },
    /// The item could not be reached (connection, timeout, an unusable answer).
    #[error("{href}: {reason}")]
    Transport {
        /// The item's location.
        href: String,
        /// What went wrong.
        reason: String,
    },
    /// The item cannot be read and the storage cannot tell which item it is (its UID, which
    /// would name it, is part of what cannot be read).
    #[error("{location}: {reason}")]
    Unidentified {
        /// Where it is, such as the file and line.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A local I/O failure on this item.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A failure that concerns a whole collection or storage: nothing in it can be synced this run.
#[derive(Debug, Error)]
pub enum StorageError {
    /// A local I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The collection does not exist.
    #[error("collection {id} does not exist")]
    NoSuchCollection {
        /// The collection's address.
        id: String,
    },
    /// The storage cannot create collections; a person must, where `how` says.
    #[error("cannot create collection {name:?}: {how}")]
    CannotCreate {
        /// The collection's name.
        name: String,
        /// Why not, and where to create it instead.
        how: String,
    },
    /// The server could not be reached or could not answer now (no answer through the
    /// retries: connection refused or reset, DNS, timeout, an answer broken off; or a 5xx/429
    /// status; never TLS refusing the server, which needs a person):
    /// trying again later may well succeed, no person is needed.
    #[error("{0}")]
    Unreachable(String),
    /// Anything else the storage reports about itself.
    #[error("{0}")]
    Other(String),
}

impl StorageError {
    /// True when the failure is the server's for now ([`StorageError::Unreachable`]): a later
    /// run may succeed without anyone changing anything.
    pub fn is_temporary(&self) -> bool {
        matches!(self, StorageError::Unreachable(_))
    }
}

/// How a storage will find out what changed in a collection (what `davsync check` reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingMethod {
    /// RFC 6578 sync-collection: only the changes since the last token.
    SyncCollection,
    /// A full listing, skipped while the collection's ctag has not moved.
    Ctag,
    /// A full listing on every run.
    Full,
}

/// The listing method a collection will use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingPlan {
    /// The method.
    pub method: ListingMethod,
    /// Why this one (what the server advertised, what the configuration restricts).
    pub why: String,
}

/// The operations the sync engine needs from a storage.
///
/// Implementations must make every write conditional: `update` and `delete` only act when the
/// item still has `expected_etag`, `create` never replaces an existing item.
pub trait Storage: Send + Sync {
    /// The collections this storage holds now.
    fn list_collections(&self) -> Result<Vec<CollectionInfo>, StorageError>;

    /// The storage itself as one collection (used when a pair has no `collections` setting).
    fn root_collection(&self) -> CollectionInfo;

    /// Creates a collection named `name` and returns it.
    fn create_collection(&self, name: &str) -> Result<CollectionInfo, StorageError>;

    /// Lists the items of a collection with their version tags.
    fn list(&self, collection: &CollectionInfo) -> Result<Vec<ListEntry>, StorageError>;

    /// What changed in a collection since `since`, the state this storage reported after the
    /// last clean sync. Storages without such states list everything.
    ///
    /// `fetch_all` says the caller will fetch every entry listed (it knows none of the items
    /// yet, or `since` vouches that every change is new to it): a storage for which content
    /// costs little extra in the listing itself may then return it in [`ListEntry::content`].
    fn list_changes(
        &self,
        collection: &CollectionInfo,
        since: Option<&str>,
        fetch_all: bool,
    ) -> Result<ChangeSet, StorageError> {
        let _ = (since, fetch_all);
        Ok(ChangeSet {
            changes: Changes::Full(self.list(collection)?),
            state: None,
            unreadable: Vec::new(),
        })
    }

    /// Who and where this storage is as configured (e.g. `caldav https://host/dav/ alice`),
    /// stable between runs while the configuration points at the same place: a remembered
    /// [`Storage::discovery_hint`] is used only by a storage with the identity that found it.
    /// Empty for a storage without discovery hints.
    fn identity(&self) -> String {
        String::new()
    }

    /// How [`Storage::list_changes`] will list `collection`, for a storage that chooses
    /// between methods (DAV); `None` for one that always reads everything (a vdir's scan is
    /// its listing). Reads only.
    fn listing_plan(
        &self,
        collection: &CollectionInfo,
    ) -> Result<Option<ListingPlan>, StorageError> {
        let _ = collection;
        Ok(None)
    }

    /// Where discovery ended last time (a DAV home set), worth remembering between runs.
    fn discovery_hint(&self) -> Option<String> {
        None
    }

    /// Starts discovery at a hint remembered from an earlier run; a hint that no longer works
    /// is dropped and discovery starts from the beginning.
    fn use_discovery_hint(&self, hint: &str) {
        let _ = hint;
    }

    /// Makes the writes made so far durable. The executor calls it before recording those
    /// writes in the status database, so the status never claims a write a power loss could
    /// still undo.
    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Whether [`Storage::flush`] costs about as much as rewriting the whole collection (a
    /// single file), so the executor should flush by time only and not every few hundred
    /// writes: 40 flushes of a 20,000-item file tripled the time of its first sync.
    fn flush_rewrites_everything(&self) -> bool {
        false
    }

    /// Whether reading an item again costs about as little as keeping it in memory (a local
    /// file): a sync then reads the items it copies in bounded batches while writing them,
    /// instead of holding every fetched item from listing to write (the whole collection, in
    /// a first sync).
    fn reads_cheaply(&self) -> bool {
        false
    }

    /// Creates the place the storage keeps its collections when it does not exist yet (a vdir
    /// directory, `mkdir -p` with mode 0700), for the first sync of a pair; returns what it
    /// created. Called only while the status knows no items, so a storage that vanished after
    /// a sync (an unmounted disk) is reported missing instead of being recreated empty.
    fn create_root(&self) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    /// The hooks that failed after a write that succeeded (a vdir's `post_hook`) since the
    /// last call; the caller reports them with the collection it was writing. A hook failure
    /// that prevents a write (a `pre_deletion_hook`) is that write's [`ItemError`] instead.
    fn take_hook_failures(&self) -> Vec<crate::hook::HookFailure> {
        Vec::new()
    }

    /// A collection property (display name, colour, ...); `None` when absent.
    fn metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
    ) -> Result<Option<String>, StorageError>;

    /// Sets (`Some`) or removes (`None`) a collection property.
    fn set_metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
        value: Option<&str>,
    ) -> Result<(), StorageError>;

    /// How many writes to this storage may be under way at once.
    fn concurrency(&self) -> usize {
        1
    }

    /// The items of `collection` with an occurrence in `window` (and perhaps a day or two
    /// around it), with their content if `content`, when the storage can ask for just those
    /// (a CalDAV time-range query); `None` when it cannot or the answer cannot be trusted. An
    /// item it leaves out is outside the window, never absent: the listing still names it.
    fn list_in_window(
        &self,
        _collection: &CollectionInfo,
        _window: Window,
        _content: bool,
    ) -> Option<Vec<ListEntry>> {
        None
    }

    /// Reads several items; each href gets its own result.
    fn get_many(
        &self,
        collection: &CollectionInfo,
        hrefs: &[&str],
    ) -> Vec<(String, Result<Fetched, ItemError>)>;

    /// Stores a new item. `name_hint` is the item's UID, used for the href when safe.
    fn create(
        &self,
        collection: &CollectionInfo,
        name_hint: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError>;

    /// Replaces the item at `href` if it still has `expected_etag`.
    fn update(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError>;

    /// Deletes the item at `href` if it still has `expected_etag`.
    fn delete(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
    ) -> Result<(), ItemError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_file_name_keeps_safe_uids() {
        assert_eq!(
            item_file_name("abc-123_x.y@host+a=b", ".ics"),
            "abc-123_x.y@host+a=b.ics"
        );
    }

    #[test]
    fn item_file_name_hashes_unsafe_uids() {
        for uid in [
            "",
            ".hidden",
            "a/b",
            "with space",
            "ümlaut",
            "a:b",
            &"x".repeat(197),
        ] {
            let name = item_file_name(uid, ".vcf");
            assert_eq!(name.len(), 36, "{uid:?} -> {name}");
            assert!(name.ends_with(".vcf"));
            assert!(
                name[..32]
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        // Deterministic, and different UIDs give different names.
        assert_eq!(item_file_name("a/b", ".ics"), item_file_name("a/b", ".ics"));
        assert_ne!(item_file_name("a/b", ".ics"), item_file_name("a/c", ".ics"));
        // 196 + 4 = 200 bytes is still safe.
        assert_eq!(item_file_name(&"x".repeat(196), ".ics").len(), 200);
        assert!(item_file_name(&"x".repeat(196), ".ics").starts_with("xxx"));
    }

    #[test]
    fn item_file_name_matches_sha256_prefix() {
        // SHA-256("a b") = c8b5fba8..., first 16 bytes in lower-case hex.
        let digest = Sha256::digest(b"a b");
        let expected: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(item_file_name("a b", ".ics"), format!("{expected}.ics"));
    }
}
