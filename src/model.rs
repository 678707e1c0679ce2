//! Plain data shared by the storages, the status database, the planner and the executor.
//!
//! Nothing here does I/O. These types are the vocabulary of a sync: which side, which item
//! version, what the status database remembers about the last agreement of both sides.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// One of the two sides of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The storage named `a` in the pair.
    A,
    /// The storage named `b` in the pair.
    B,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// 0 for A, 1 for B: the index of this side in a `[_; 2]` of per-side values.
    pub fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }

    /// Lower-case letter used in messages and in the status database.
    pub fn letter(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.letter())
    }
}

/// The identity of an item within a collection: its UID, or for an item without a UID a
/// string derived from its normalized content hash (`"sha256:<hex>"`), as vdirsyncer does.
pub type Ident = String;

/// What is known about one item on one side: where it lives, the storage's version tag and the
/// normalized content hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemVersion {
    /// Storage-specific location of the item (file name in a vdir, href on a server).
    pub href: String,
    /// Storage version tag; see [`is_weak_etag`] for the tags that must not be trusted.
    pub etag: String,
    /// Normalized content hash (hex), see [`crate::vobject::normalized_hash`].
    pub hash: String,
}

/// One item as listed (and, where needed, fetched) on one side in this run. An item whose
/// version the status database vouches for borrows ident and version from the status row:
/// most items of a sync are such, and copying them was a measurable part of a no-op sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedItem<'s> {
    /// The item's identity (UID or content-derived).
    pub ident: Cow<'s, str>,
    /// Location, version tag and hash as seen in this run.
    pub version: SeenVersion<'s>,
}

/// The version of a [`ListedItem`]: the status row's, or one read in this run. Unlike a
/// `Cow<ItemVersion>` (72 bytes) it is a pointer either way (16 bytes): a listing of 100,000
/// items, nearly all vouched for, is 11 MB smaller.
#[derive(Debug, Clone)]
pub enum SeenVersion<'s> {
    /// The status row's version, which an unchanged strong version tag vouched for.
    Vouched(&'s ItemVersion),
    /// Read (or derived) in this run; shared with the actions planned for it
    /// ([`SeenVersion::shared`]).
    Read(Arc<ItemVersion>),
}

impl SeenVersion<'_> {
    /// The version, owned.
    pub fn into_owned(self) -> ItemVersion {
        match self {
            SeenVersion::Vouched(version) => version.clone(),
            SeenVersion::Read(version) => Arc::unwrap_or_clone(version),
        }
    }

    /// The version for an action: one read in this run is shared, not copied (a first sync of
    /// 100,000 items planned 100,000 copies of every href, tag and hash, a third of its peak
    /// memory).
    pub fn shared(&self) -> Arc<ItemVersion> {
        match self {
            SeenVersion::Vouched(version) => Arc::new((*version).clone()),
            SeenVersion::Read(version) => Arc::clone(version),
        }
    }
}

impl From<ItemVersion> for SeenVersion<'_> {
    fn from(version: ItemVersion) -> Self {
        SeenVersion::Read(Arc::new(version))
    }
}

impl std::ops::Deref for SeenVersion<'_> {
    type Target = ItemVersion;

    fn deref(&self) -> &ItemVersion {
        match self {
            SeenVersion::Vouched(version) => version,
            SeenVersion::Read(version) => version,
        }
    }
}

/// Equal when the versions are, wherever they come from (as `Cow` compares).
impl PartialEq for SeenVersion<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for SeenVersion<'_> {}

/// An entry that was listed but could not be read or understood in this run (malformed content,
/// a read error). The planner never treats such an href as deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableItem {
    /// Where the item lives.
    pub href: String,
    /// Human-readable reason, already naming the file or href.
    pub reason: String,
    /// The storage cannot tell which item this is (a malformed item without a readable UID
    /// inside a single file, where such an item's href is its content hash): it may be any
    /// item the status knows on this side, so while it stays nothing is deleted on the other
    /// side.
    pub unidentified: bool,
}

/// Everything one side of one collection holds in this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing<'s> {
    /// Items that were understood.
    pub items: Vec<ListedItem<'s>>,
    /// Items that exist but could not be read; they are never taken for deletions.
    pub unreadable: Vec<UnreadableItem>,
}

impl Listing<'_> {
    /// True when the side holds nothing at all, not even unreadable items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.unreadable.is_empty()
    }
}

/// The status database's record of the last state both sides agreed on for one ident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusItem {
    /// The item's identity.
    pub ident: Ident,
    /// Version on side A when last synced.
    pub a: ItemVersion,
    /// Version on side B when last synced.
    pub b: ItemVersion,
}

impl StatusItem {
    /// The version recorded for `side`.
    pub fn side(&self, side: Side) -> &ItemVersion {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }
}

/// A weak ETag (`W/...`) names a version that may change without the tag changing: a vdir file
/// modified within the file system's timestamp granularity, or a server's weak validator. A weak
/// tag never proves that an item is unchanged; the content hash has to decide.
pub fn is_weak_etag(etag: &str) -> bool {
    etag.starts_with("W/")
}
