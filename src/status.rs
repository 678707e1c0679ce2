//! The per-pair status database and the pair lock.
//!
//! Every pair has one SQLite database (the caller chooses the path, usually
//! `<status_path>/<pair>.db`). It remembers, per collection and ident, the last versions both
//! sides agreed on ([`StatusItem`]) together with the last synced content (LZ4-compressed), which
//! is the common ancestor for later conflict resolution. It also keeps, per collection, the time
//! and counts of the last run, the open conflicts and failed items of that run, and a small
//! key/value store for storages (e.g. a DAV sync token); a pair-wide key/value store exists too.
//!
//! Every change is written as soon as the corresponding action succeeded, each in its own short
//! transaction: an interrupted sync loses at most the action in flight. Updates and deletions are
//! compare-and-swap: they only apply while the row still holds what the caller expects.
//!
//! The database runs in WAL mode with `synchronous=NORMAL` and a busy timeout; its schema version
//! lives in `PRAGMA user_version` and is brought up to date by [`MIGRATIONS`] on open.
//!
//! [`PairLock`] makes sure that two davsync processes never sync the same pair at once.
//!
//! This module never reads clocks: times are unix seconds passed in by the caller.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use crate::filter::{Span, Window, item_span};
use crate::item::Item;
use crate::model::{ItemVersion, Side, StatusItem};
use crate::vobject::component_type;

/// An item's content as the status database keeps it: LZ4-compressed, with what is read from
/// it for queries (its component type and the days it spans). Made apart from the database
/// call ([`StoredContent::of`]) so that the executor's worker threads do the compressing and
/// parsing while the one thread that owns the database only writes rows.
#[derive(Debug, Clone)]
pub struct StoredContent {
    data: Vec<u8>,
    component: Option<String>,
    /// `None`: not read (no date window needs it yet; see [`StatusDb::fill_spans`]).
    span: Option<Span>,
}

impl StoredContent {
    /// An item's content, with the component type its parse found, and the days it spans
    /// when `with_span` (a date window is in use).
    pub fn of(item: &Item, with_span: bool) -> StoredContent {
        StoredContent {
            data: lz4_flex::compress_prepend_size(item.bytes()),
            component: item.component().map(str::to_owned),
            span: with_span.then(|| item_span(item.bytes())),
        }
    }

    /// Any bytes, their component type and span read here: a test's rows.
    #[cfg(test)]
    pub(crate) fn of_bytes(content: &[u8]) -> StoredContent {
        StoredContent {
            data: lz4_flex::compress_prepend_size(content),
            component: component_type(content),
            span: Some(item_span(content)),
        }
    }

    /// The span columns: first day, last day, whether they were read.
    fn span_columns(&self) -> (Option<i64>, Option<i64>, bool) {
        match self.span {
            Some(span) => (span.first, span.last, true),
            None => (None, None, false),
        }
    }
}

/// Identifier of a collection within one status database, as returned by
/// [`StatusDb::collection`]. Only meaningful for the database that returned it.
pub type CollectionId = i64;

/// How long a statement waits for another connection's lock before failing with "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations, applied in order. `MIGRATIONS[i]` brings a database from
/// `user_version = i` to `i + 1`; a new database starts at version 0. Never edit an entry that
/// has been released, only append.
pub const MIGRATIONS: &[&str] = &[
    // Version 1: initial schema.
    "
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE collections (
        id           INTEGER PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        last_sync    INTEGER,
        last_created INTEGER,
        last_updated INTEGER,
        last_deleted INTEGER
    );

    CREATE TABLE collection_meta (
        collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        PRIMARY KEY (collection, key)
    ) WITHOUT ROWID;

    CREATE TABLE items (
        id         INTEGER PRIMARY KEY,
        collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        ident      TEXT NOT NULL,
        a_href     TEXT NOT NULL,
        a_etag     TEXT NOT NULL,
        a_hash     TEXT NOT NULL,
        b_href     TEXT NOT NULL,
        b_etag     TEXT NOT NULL,
        b_hash     TEXT NOT NULL,
        UNIQUE (collection, ident)
    );

    -- Kept apart from `items` so that listing the items never reads the content pages.
    CREATE TABLE contents (
        item INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
        data BLOB NOT NULL
    );

    -- Open conflicts and failed items of the last run, replaced by every run.
    CREATE TABLE problems (
        collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        kind       TEXT NOT NULL CHECK (kind IN ('conflict', 'failure')),
        seq        INTEGER NOT NULL,
        ident      TEXT NOT NULL,
        message    TEXT NOT NULL,
        PRIMARY KEY (collection, kind, seq)
    ) WITHOUT ROWID;
    ",
    // Version 2: each item's main component type (`VEVENT`, `VTODO`, ...), so that a storage's
    // `item_types` can put status rows out of scope instead of letting them look deleted.
    // Filled from the stored content right after this migration (`backfill_components`).
    "
    ALTER TABLE items ADD COLUMN component TEXT;
    ",
    // Version 3: the days each item's occurrences may touch (`filter::item_span`, days since
    // 1970-01-01, NULL for no bound), so that a date window can put a status row out of scope
    // without reading its content. Filled right after this migration (`backfill_spans`).
    "
    ALTER TABLE items ADD COLUMN span_first INTEGER;
    ALTER TABLE items ADD COLUMN span_last INTEGER;
    ",
    // Version 4: when a collection last synced clean (`last_sync` is the last attempt, clean
    // or not); a run recorded before without problems was clean.
    "
    ALTER TABLE collections ADD COLUMN last_clean INTEGER;
    UPDATE collections SET last_clean = last_sync
     WHERE NOT EXISTS (SELECT 1 FROM problems p WHERE p.collection = collections.id);
    ",
    // Version 5: whether `span_first`/`span_last` were read from the content (every row so
    // far was). A sync without a date window no longer reads them (a twentieth of a first
    // sync's CPU); `fill_spans` reads them once a window needs them.
    "
    ALTER TABLE items ADD COLUMN span_known INTEGER NOT NULL DEFAULT 1;
    ",
];

/// The schema version that added `items.component`.
const COMPONENT_VERSION: i64 = 2;

/// The schema version that added `items.span_first` and `items.span_last`.
const SPAN_VERSION: i64 = 3;

/// Errors of the status database. Every variant names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Creating the directory or the file, or setting their permissions, failed.
    #[error("status database {}: {source}", path.display())]
    Io {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// SQLite reported an error.
    #[error("status database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer davsync whose schema this binary does not know.
    #[error(
        "status database {}: schema version {found} is newer than this davsync supports ({supported}); upgrade davsync",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version found in the database.
        found: i64,
        /// The newest version this binary knows.
        supported: i64,
    },
    /// A compare-and-swap failed: the row for `ident` is not (or no longer) what the caller
    /// expected, or an inserted ident already exists.
    #[error(
        "status database {}: the entry for {ident:?} in collection {collection} changed unexpectedly",
        path.display()
    )]
    RowChanged {
        /// The database file.
        path: PathBuf,
        /// The collection.
        collection: CollectionId,
        /// The ident whose row differed.
        ident: String,
    },
    /// [`StatusDb::replace`] was asked to change an item's ident, which it does not do.
    #[error(
        "status database {}: cannot replace the entry for {expected:?} with one for {new:?}",
        path.display()
    )]
    IdentMismatch {
        /// The database file.
        path: PathBuf,
        /// The ident of the expected row.
        expected: String,
        /// The ident of the new row.
        new: String,
    },
    /// The collection id does not exist in this database.
    #[error("status database {}: no collection with id {collection}", path.display())]
    NoSuchCollection {
        /// The database file.
        path: PathBuf,
        /// The unknown id.
        collection: CollectionId,
    },
    /// SQLite refused to switch the database to WAL journal mode (e.g. on a network file system).
    #[error(
        "status database {}: cannot use WAL journal mode (journal mode is {mode})",
        path.display()
    )]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported instead.
        mode: String,
    },
    /// The stored content of an item could not be decompressed.
    #[error("status database {}: stored content of {ident:?} is corrupt: {source}", path.display())]
    CorruptContent {
        /// The database file.
        path: PathBuf,
        /// The item whose content is corrupt.
        ident: String,
        /// The decompression error.
        #[source]
        source: io::Error,
    },
}

/// An open conflict or a failed item of the last run, for `davsync status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The item's ident.
    pub ident: String,
    /// Human-readable description.
    pub message: String,
}

/// The outcome of one sync run of one collection, recorded by [`StatusDb::record_run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRecord {
    /// When the run finished (unix seconds, from the caller); becomes the collection's last sync.
    pub finished_at: i64,
    /// Items created (on either side).
    pub created: u64,
    /// Items updated (on either side).
    pub updated: u64,
    /// Items deleted (on either side).
    pub deleted: u64,
    /// Conflicts left open by the run.
    pub conflicts: Vec<Problem>,
    /// Items that failed in the run.
    pub failures: Vec<Problem>,
}

/// The counts of the last run of a collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Items created.
    pub created: u64,
    /// Items updated.
    pub updated: u64,
    /// Items deleted.
    pub deleted: u64,
}

/// What `davsync status` shows about one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionStatus {
    /// The collection's name.
    pub name: String,
    /// Number of items in the status database.
    pub items: u64,
    /// When the last run (the last attempt, clean or not) finished (unix seconds), if there
    /// was one.
    pub last_sync: Option<i64>,
    /// When the last clean run finished (no conflict, no failure), if there was one.
    pub last_clean: Option<i64>,
    /// Counts of the last run, if there was one.
    pub last_run: Option<RunCounts>,
    /// Conflicts left open by the last run, in the order they were recorded.
    pub conflicts: Vec<Problem>,
    /// Items that failed in the last run, in the order they were recorded.
    pub failures: Vec<Problem>,
}

/// A run that refused the whole pair before it looked at any collection, as
/// [`StatusDb::pair_refusal`] remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRefusal {
    /// When the run finished (unix seconds).
    pub finished_at: i64,
    /// Why nothing was synced.
    pub reason: String,
}

/// The pair-wide `meta` keys of the last [`PairRefusal`]: its time and its reason.
const REFUSED_AT_KEY: &str = "pair_refused_at";
const REFUSED_KEY: &str = "pair_refused";

/// A write transaction of one call, or the surrounding batch's.
enum WriteTx<'c> {
    Own(Transaction<'c>),
    InBatch(&'c Connection),
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            WriteTx::Own(tx) => tx,
            WriteTx::InBatch(conn) => conn,
        }
    }
}

impl WriteTx<'_> {
    /// Commits the call's own transaction; inside a batch the batch commits later.
    fn commit(self) -> rusqlite::Result<()> {
        match self {
            WriteTx::Own(tx) => tx.commit(),
            WriteTx::InBatch(_) => Ok(()),
        }
    }
}

/// An open status database of one pair.
#[derive(Debug)]
pub struct StatusDb {
    conn: Connection,
    path: PathBuf,
}

/// An item's row id and its stored content, decompressed (`None` when it cannot be).
type RowContent = (i64, Option<Vec<u8>>);

impl StatusDb {
    /// Opens (creating if needed) the status database at `path` and brings its schema up to date.
    ///
    /// Missing parent directories are created with mode 0700 and a new database file with mode
    /// 0600; an existing file readable or writable by group or others is restricted to its
    /// owner, since it holds copies of calendar and contact data. Fails with
    /// [`StatusError::SchemaTooNew`] if a newer davsync wrote the database.
    pub fn open(path: &Path) -> Result<StatusDb, StatusError> {
        let io_err = |source| StatusError::Io {
            path: path.to_owned(),
            source,
        };
        create_private_parent(path).map_err(io_err)?;
        create_private_file(path).map_err(io_err)?;

        let sql_err = |source| StatusError::Sqlite {
            path: path.to_owned(),
            source,
        };
        // Without SQLITE_OPEN_URI, so that a path starting with `file:` is just a path.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sql_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sql_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StatusError::NoWal {
                path: path.to_owned(),
                mode,
            });
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql_err)?;

        let db = StatusDb {
            conn,
            path: path.to_owned(),
        };
        db.migrate()?;
        Ok(db)
    }

    /// The collection names the database at `path` knows, ordered, without the unnamed root
    /// collection. Opened read-only: nothing is created, migrated or locked, so it is safe
    /// while a sync runs (shell completion calls it on every Tab).
    pub fn collection_names(path: &Path) -> Result<Vec<String>, StatusError> {
        let sql_err = |source| StatusError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sql_err)?;
        let names = || -> rusqlite::Result<Vec<String>> {
            let mut stmt =
                conn.prepare("SELECT name FROM collections WHERE name != '' ORDER BY name")?;
            stmt.query_map([], |row| row.get(0))?.collect()
        };
        names().map_err(sql_err)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database (equal to `MIGRATIONS.len()` after [`open`]).
    ///
    /// [`open`]: StatusDb::open
    pub fn schema_version(&self) -> Result<i64, StatusError> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| self.sql(e))
    }

    /// Applies the migrations the database lacks, in one transaction.
    fn migrate(&self) -> Result<(), StatusError> {
        let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        let check = |found: i64| {
            if found > supported {
                Err(StatusError::SchemaTooNew {
                    path: self.path.clone(),
                    found,
                    supported,
                })
            } else {
                Ok(found)
            }
        };
        if check(self.schema_version()?)? == supported {
            return Ok(());
        }
        let tx = self.begin()?;
        // Another process may have migrated between the check and the lock.
        let found = check(self.schema_version()?)?;
        let done = usize::try_from(found).unwrap_or(0);
        for migration in MIGRATIONS.iter().skip(done) {
            tx.execute_batch(migration).map_err(|e| self.sql(e))?;
        }
        if found < COMPONENT_VERSION {
            self.backfill_components(&tx)?;
        }
        if found < SPAN_VERSION {
            self.backfill_spans(&tx)?;
        }
        tx.pragma_update(None, "user_version", supported)
            .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))
    }

    /// Every stored content with its item's row id, decompressed (`None` when it cannot be),
    /// for the migrations that fill a new column from it.
    fn stored_contents(&self, tx: &Connection) -> Result<Vec<RowContent>, StatusError> {
        let rows = tx
            .prepare("SELECT item, data FROM contents")
            .and_then(|mut stmt| {
                stmt.query_map([], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.sql(e))?;
        Ok(rows
            .into_iter()
            .map(|(id, data)| (id, lz4_flex::decompress_size_prepended(&data).ok()))
            .collect())
    }

    /// Sets the component type of every item of a database that did not record it yet, read
    /// from the stored content.
    fn backfill_components(&self, tx: &Connection) -> Result<(), StatusError> {
        let mut update = tx
            .prepare("UPDATE items SET component = ?2 WHERE id = ?1")
            .map_err(|e| self.sql(e))?;
        for (id, content) in self.stored_contents(tx)? {
            // Unreadable content leaves the type unknown: such a row stays in scope of every
            // `item_types`, as before this column existed.
            let component = content.and_then(|content| component_type(&content));
            update
                .execute(params![id, component])
                .map_err(|e| self.sql(e))?;
        }
        Ok(())
    }

    /// Sets the span of every item of a database that did not record it yet, read from the
    /// stored content (unreadable content: no bounds, in every window).
    fn backfill_spans(&self, tx: &Connection) -> Result<(), StatusError> {
        let mut update = tx
            .prepare("UPDATE items SET span_first = ?2, span_last = ?3 WHERE id = ?1")
            .map_err(|e| self.sql(e))?;
        for (id, content) in self.stored_contents(tx)? {
            let span = content.map_or(Span::ALL, |content| item_span(&content));
            update
                .execute(params![id, span.first, span.last])
                .map_err(|e| self.sql(e))?;
        }
        Ok(())
    }

    /// The idents of a collection's items whose recorded span lies outside `window` (see
    /// [`Window::admits`]).
    pub fn idents_out_of_window(
        &self,
        coll: CollectionId,
        window: Window,
    ) -> Result<Vec<String>, StatusError> {
        let run = || -> rusqlite::Result<Vec<String>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT ident FROM items WHERE collection = ?1 AND span_known
                 AND ((span_last IS NOT NULL AND span_last < ?2)
                   OR (span_first IS NOT NULL AND span_first > ?3))",
            )?;
            let rows = stmt.query_map(
                params![
                    coll,
                    window.start.unwrap_or(i64::MIN),
                    window.end.unwrap_or(i64::MAX)
                ],
                |row| row.get::<_, String>(0),
            )?;
            rows.collect()
        };
        let mut outside = run().map_err(|e| self.sql(e))?;
        // Rows whose span was not read yet (a dry run does not fill them): read here.
        for (_, ident, span) in self.unread_spans(coll)? {
            if !window.admits(span) {
                outside.push(ident);
            }
        }
        Ok(outside)
    }

    /// Reads and records the span of every row of a collection that was stored without one
    /// (synced while no date window asked for it), so that a window can put rows out of scope
    /// without reading their content again.
    pub fn fill_spans(&self, coll: CollectionId) -> Result<(), StatusError> {
        let unread = self.unread_spans(coll)?;
        if unread.is_empty() {
            return Ok(());
        }
        let tx = self.begin()?;
        {
            let mut update = tx
                .prepare_cached(
                    "UPDATE items SET span_first = ?2, span_last = ?3, span_known = 1
                     WHERE id = ?1",
                )
                .map_err(|e| self.sql(e))?;
            for (id, _, span) in unread {
                update
                    .execute(params![id, span.first, span.last])
                    .map_err(|e| self.sql(e))?;
            }
        }
        tx.commit().map_err(|e| self.sql(e))
    }

    /// Row id, ident and span (read from the stored content; unreadable content: no bounds) of
    /// each row of a collection stored without its span.
    fn unread_spans(&self, coll: CollectionId) -> Result<Vec<(i64, String, Span)>, StatusError> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT items.id, items.ident, contents.data FROM items
                 JOIN contents ON contents.item = items.id
                 WHERE items.collection = ?1 AND NOT items.span_known",
            )
            .and_then(|mut stmt| {
                stmt.query_map([coll], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.sql(e))?;
        Ok(rows
            .into_iter()
            .map(|(id, ident, data)| {
                let span = lz4_flex::decompress_size_prepended(&data)
                    .map_or(Span::ALL, |content| item_span(&content));
                (id, ident, span)
            })
            .collect())
    }

    /// The idents of a collection's items whose recorded component type is not one of
    /// `allowed` (compared case-insensitively). Items of unknown type are never among them.
    pub fn idents_outside(
        &self,
        coll: CollectionId,
        allowed: &[String],
    ) -> Result<Vec<String>, StatusError> {
        let run = || -> rusqlite::Result<Vec<String>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT ident, component FROM items
                 WHERE collection = ?1 AND component IS NOT NULL",
            )?;
            let rows = stmt.query_map([coll], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            let mut outside = Vec::new();
            for row in rows {
                let (ident, component) = row?;
                if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&component)) {
                    outside.push(ident);
                }
            }
            Ok(outside)
        };
        run().map_err(|e| self.sql(e))
    }

    /// Forgets everything the database knows about one collection's items and the storages'
    /// states for it (its entries, content, change-tracking states, properties and last
    /// problems), keeping the collection's id: the next listing is treated like a first sync.
    pub fn reset_collection(&self, coll: CollectionId) -> Result<(), StatusError> {
        let tx = self.begin()?;
        for sql in [
            "DELETE FROM items WHERE collection = ?1",
            "DELETE FROM collection_meta WHERE collection = ?1",
            "DELETE FROM problems WHERE collection = ?1",
        ] {
            tx.prepare_cached(sql)
                .and_then(|mut stmt| stmt.execute([coll]))
                .map_err(|e| self.sql(e))?;
        }
        tx.commit().map_err(|e| self.sql(e))
    }

    /// Drops a collection and everything the database knows of it (items, content, states,
    /// properties, problems): for a collection that is no longer synced at all.
    pub fn forget_collection(&self, coll: CollectionId) -> Result<(), StatusError> {
        // The other tables follow through their `ON DELETE CASCADE`.
        self.conn
            .prepare_cached("DELETE FROM collections WHERE id = ?1")
            .and_then(|mut stmt| stmt.execute([coll]))
            .map(drop)
            .map_err(|e| self.sql(e))
    }

    /// The id of the collection `name`, creating it if needed.
    pub fn collection(&self, name: &str) -> Result<CollectionId, StatusError> {
        let find = |conn: &Connection| {
            conn.prepare_cached("SELECT id FROM collections WHERE name = ?1")?
                .query_row([name], |row| row.get::<_, CollectionId>(0))
                .optional()
        };
        if let Some(id) = find(&self.conn).map_err(|e| self.sql(e))? {
            return Ok(id);
        }
        self.conn
            .prepare_cached(
                "INSERT INTO collections (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
            )
            .and_then(|mut stmt| stmt.execute([name]))
            .map_err(|e| self.sql(e))?;
        find(&self.conn)
            .map_err(|e| self.sql(e))?
            .ok_or_else(|| self.sql(rusqlite::Error::QueryReturnedNoRows))
    }

    /// All status entries of a collection, ordered by ident. Does not load the stored content.
    pub fn items(&self, coll: CollectionId) -> Result<Vec<StatusItem>, StatusError> {
        let run = || -> rusqlite::Result<Vec<StatusItem>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT ident, a_href, a_etag, a_hash, b_href, b_etag, b_hash
                 FROM items WHERE collection = ?1 ORDER BY ident",
            )?;
            // Sized up front: growing a vector of 100,000 rows by doubling held half again
            // its size while copying, the peak memory of a no-op sync.
            let count: usize = self
                .conn
                .prepare_cached("SELECT COUNT(*) FROM items WHERE collection = ?1")?
                .query_row([coll], |row| row.get(0))?;
            let mut items = Vec::with_capacity(count);
            for row in stmt.query_map([coll], row_to_item)? {
                items.push(row?);
            }
            Ok(items)
        };
        run().map_err(|e| self.sql(e))
    }

    /// Offers `side`'s href and version tag of every entry of a collection to `matches`, in no
    /// particular order and without loading the entries, until it says no. Returns how many
    /// entries there are when it said yes to all, `None` at the first no.
    pub fn versions_all_match(
        &self,
        coll: CollectionId,
        side: Side,
        mut matches: impl FnMut(&str, &str) -> bool,
    ) -> Result<Option<usize>, StatusError> {
        let sql = match side {
            Side::A => "SELECT a_href, a_etag FROM items WHERE collection = ?1",
            Side::B => "SELECT b_href, b_etag FROM items WHERE collection = ?1",
        };
        let mut run = || -> rusqlite::Result<Option<usize>> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let mut rows = stmt.query([coll])?;
            let mut count = 0;
            while let Some(row) = rows.next()? {
                if !matches(row.get_ref(0)?.as_str()?, row.get_ref(1)?.as_str()?) {
                    return Ok(None);
                }
                count += 1;
            }
            Ok(Some(count))
        };
        run().map_err(|e| self.sql(e))
    }

    /// Whether a collection has any status entries (a cheap look before [`StatusDb::items`]).
    pub fn has_items(&self, coll: CollectionId) -> Result<bool, StatusError> {
        self.conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM items WHERE collection = ?1)")
            .and_then(|mut stmt| stmt.query_row([coll], |row| row.get(0)))
            .map_err(|e| self.sql(e))
    }

    /// The status entry for `ident` in a collection, if there is one.
    pub fn item(&self, coll: CollectionId, ident: &str) -> Result<Option<StatusItem>, StatusError> {
        self.conn
            .prepare_cached(
                "SELECT ident, a_href, a_etag, a_hash, b_href, b_etag, b_hash
                 FROM items WHERE collection = ?1 AND ident = ?2",
            )
            .and_then(|mut stmt| stmt.query_row(params![coll, ident], row_to_item).optional())
            .map_err(|e| self.sql(e))
    }

    /// Records a newly synced item with its content. Fails with [`StatusError::RowChanged`] if
    /// the collection already has an entry for the ident.
    pub fn insert(
        &self,
        coll: CollectionId,
        item: &StatusItem,
        content: &StoredContent,
    ) -> Result<(), StatusError> {
        let (span_first, span_last, span_known) = content.span_columns();
        let tx = self.begin()?;
        // Without RETURNING, which SQLite runs like a trigger and so guards with a statement
        // journal: a copy of every page the insert touches, in memory, for every item.
        let inserted = tx
            .prepare_cached(
                "INSERT INTO items
                 (collection, ident, a_href, a_etag, a_hash, b_href, b_etag, b_hash, component,
                  span_first, span_last, span_known)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (collection, ident) DO NOTHING",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    coll,
                    item.ident,
                    item.a.href,
                    item.a.etag,
                    item.a.hash,
                    item.b.href,
                    item.b.etag,
                    item.b.hash,
                    content.component,
                    span_first,
                    span_last,
                    span_known,
                ])
            })
            .map_err(|e| self.sql(e))?;
        if inserted == 0 {
            return Err(self.row_changed(coll, &item.ident));
        }
        let id = tx.last_insert_rowid();
        tx.prepare_cached("INSERT INTO contents (item, data) VALUES (?1, ?2)")
            .and_then(|mut stmt| stmt.execute(params![id, content.data]))
            .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))
    }

    /// Replaces the entry `expected` with `new` (same ident), provided the stored row still
    /// equals `expected` in every column; otherwise fails with [`StatusError::RowChanged`].
    /// `content` replaces the stored content (and the recorded component type and span); `None`
    /// keeps them.
    pub fn replace(
        &self,
        coll: CollectionId,
        expected: &StatusItem,
        new: &StatusItem,
        content: Option<&StoredContent>,
    ) -> Result<(), StatusError> {
        if expected.ident != new.ident {
            return Err(StatusError::IdentMismatch {
                path: self.path.clone(),
                expected: expected.ident.clone(),
                new: new.ident.clone(),
            });
        }
        let tx = self.begin()?;
        let id = tx
            .prepare_cached(
                "UPDATE items
                 SET a_href = ?9, a_etag = ?10, a_hash = ?11,
                     b_href = ?12, b_etag = ?13, b_hash = ?14
                 WHERE collection = ?1 AND ident = ?2
                   AND a_href = ?3 AND a_etag = ?4 AND a_hash = ?5
                   AND b_href = ?6 AND b_etag = ?7 AND b_hash = ?8
                 RETURNING id",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![
                        coll,
                        expected.ident,
                        expected.a.href,
                        expected.a.etag,
                        expected.a.hash,
                        expected.b.href,
                        expected.b.etag,
                        expected.b.hash,
                        new.a.href,
                        new.a.etag,
                        new.a.hash,
                        new.b.href,
                        new.b.etag,
                        new.b.hash,
                    ],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
            })
            .map_err(|e| self.sql(e))?
            .ok_or_else(|| self.row_changed(coll, &expected.ident))?;
        if let Some(content) = content {
            tx.prepare_cached("UPDATE contents SET data = ?2 WHERE item = ?1")
                .and_then(|mut stmt| stmt.execute(params![id, content.data]))
                .map_err(|e| self.sql(e))?;
            let (span_first, span_last, span_known) = content.span_columns();
            tx.prepare_cached(
                "UPDATE items SET component = ?2, span_first = ?3, span_last = ?4, span_known = ?5
                 WHERE id = ?1",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    id,
                    content.component,
                    span_first,
                    span_last,
                    span_known
                ])
            })
            .map_err(|e| self.sql(e))?;
        }
        tx.commit().map_err(|e| self.sql(e))
    }

    /// Removes the entry `expected` (and its content), provided the stored row still equals it
    /// in every column; otherwise fails with [`StatusError::RowChanged`].
    pub fn remove(&self, coll: CollectionId, expected: &StatusItem) -> Result<(), StatusError> {
        // The content goes with the row (ON DELETE CASCADE), so one statement suffices.
        let changed = self
            .conn
            .prepare_cached(
                "DELETE FROM items
                 WHERE collection = ?1 AND ident = ?2
                   AND a_href = ?3 AND a_etag = ?4 AND a_hash = ?5
                   AND b_href = ?6 AND b_etag = ?7 AND b_hash = ?8",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    coll,
                    expected.ident,
                    expected.a.href,
                    expected.a.etag,
                    expected.a.hash,
                    expected.b.href,
                    expected.b.etag,
                    expected.b.hash,
                ])
            })
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Err(self.row_changed(coll, &expected.ident));
        }
        Ok(())
    }

    /// The content last synced for `ident` (decompressed), if the collection has an entry for it.
    pub fn synced_content(
        &self,
        coll: CollectionId,
        ident: &str,
    ) -> Result<Option<Vec<u8>>, StatusError> {
        let data: Option<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT contents.data FROM items JOIN contents ON contents.item = items.id
                 WHERE items.collection = ?1 AND items.ident = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![coll, ident], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| self.sql(e))?;
        let Some(data) = data else {
            return Ok(None);
        };
        lz4_flex::decompress_size_prepended(&data)
            .map(Some)
            .map_err(|e| StatusError::CorruptContent {
                path: self.path.clone(),
                ident: ident.to_owned(),
                source: io::Error::other(e),
            })
    }

    /// Records the outcome of a run of a collection in one transaction: sets its last sync time
    /// and counts and replaces its open conflicts and failed items with those of `run`.
    pub fn record_run(&self, coll: CollectionId, run: &RunRecord) -> Result<(), StatusError> {
        let tx = self.begin()?;
        let changed = tx
            .prepare_cached(
                "UPDATE collections
                 SET last_sync = ?2, last_created = ?3, last_updated = ?4, last_deleted = ?5,
                     last_clean = CASE WHEN ?6 THEN ?2 ELSE last_clean END
                 WHERE id = ?1",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    coll,
                    run.finished_at,
                    saturating_i64(run.created),
                    saturating_i64(run.updated),
                    saturating_i64(run.deleted),
                    run.conflicts.is_empty() && run.failures.is_empty(),
                ])
            })
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Err(StatusError::NoSuchCollection {
                path: self.path.clone(),
                collection: coll,
            });
        }
        let write = || -> rusqlite::Result<()> {
            tx.prepare_cached("DELETE FROM problems WHERE collection = ?1")?
                .execute([coll])?;
            let mut stmt = tx.prepare_cached(
                "INSERT INTO problems (collection, kind, seq, ident, message)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (kind, list) in [("conflict", &run.conflicts), ("failure", &run.failures)] {
                for (seq, problem) in list.iter().enumerate() {
                    stmt.execute(params![
                        coll,
                        kind,
                        saturating_i64(seq as u64),
                        problem.ident,
                        problem.message
                    ])?;
                }
            }
            Ok(())
        };
        write().map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))
    }

    /// Records a run that refused the collection (nothing synced, `reason` says why) at
    /// `finished_at`: the last attempt, with the reason as its only failure. The open conflicts
    /// and the last run's counts stay as they were: nothing was looked at.
    pub fn record_refusal(
        &self,
        coll: CollectionId,
        finished_at: i64,
        reason: &str,
    ) -> Result<(), StatusError> {
        let tx = self.begin()?;
        let write = || -> rusqlite::Result<()> {
            tx.prepare_cached("UPDATE collections SET last_sync = ?2 WHERE id = ?1")?
                .execute(params![coll, finished_at])?;
            tx.prepare_cached("DELETE FROM problems WHERE collection = ?1 AND kind = 'failure'")?
                .execute([coll])?;
            tx.prepare_cached(
                "INSERT INTO problems (collection, kind, seq, ident, message)
                 VALUES (?1, 'failure', 0, '', ?2)",
            )?
            .execute(params![coll, reason])?;
            Ok(())
        };
        write().map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))
    }

    /// Records a run that refused the whole pair before looking at any collection (a storage
    /// that could not be opened, a secret not found, discovery failed):
    /// [`StatusDb::record_refusal`] for every collection the database knows, and the pair-wide
    /// attempt ([`StatusDb::pair_refusal`]), which is all a pair that never got to its
    /// collections has to show.
    pub fn record_pair_refusal(&self, finished_at: i64, reason: &str) -> Result<(), StatusError> {
        let ids = || -> rusqlite::Result<Vec<CollectionId>> {
            let mut stmt = self.conn.prepare_cached("SELECT id FROM collections")?;
            stmt.query_map([], |row| row.get(0))?.collect()
        };
        for coll in ids().map_err(|e| self.sql(e))? {
            self.record_refusal(coll, finished_at, reason)?;
        }
        let tx = self.begin()?;
        let write = || -> rusqlite::Result<()> {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?;
            stmt.execute([REFUSED_AT_KEY, &finished_at.to_string()])?;
            stmt.execute([REFUSED_KEY, reason])?;
            Ok(())
        };
        write().map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))
    }

    /// The last run that refused the whole pair, unless a later run got past that point
    /// ([`StatusDb::clear_pair_refusal`]).
    pub fn pair_refusal(&self) -> Result<Option<PairRefusal>, StatusError> {
        let at = self.meta(REFUSED_AT_KEY)?.and_then(|at| at.parse().ok());
        Ok(match (at, self.meta(REFUSED_KEY)?) {
            (Some(finished_at), Some(reason)) => Some(PairRefusal {
                finished_at,
                reason,
            }),
            _ => None,
        })
    }

    /// Forgets the pair-wide refusal: a run got to the pair's collections, which from then on
    /// record their own attempts.
    pub fn clear_pair_refusal(&self) -> Result<(), StatusError> {
        self.conn
            .prepare_cached("DELETE FROM meta WHERE key IN (?1, ?2)")
            .and_then(|mut stmt| stmt.execute([REFUSED_AT_KEY, REFUSED_KEY]))
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Every collection with its item count, last run and open problems, ordered by name.
    pub fn collections(&self) -> Result<Vec<CollectionStatus>, StatusError> {
        let run = || -> rusqlite::Result<Vec<CollectionStatus>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT c.id, c.name, c.last_sync, c.last_created, c.last_updated, c.last_deleted,
                        (SELECT count(*) FROM items i WHERE i.collection = c.id), c.last_clean
                 FROM collections c ORDER BY c.name",
            )?;
            let rows = stmt.query_map([], |row| {
                let id: CollectionId = row.get(0)?;
                let last_sync: Option<i64> = row.get(2)?;
                let counts = (
                    row.get::<_, Option<i64>>(3)?,
                    row.get::<_, Option<i64>>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                );
                let last_run = match counts {
                    (Some(c), Some(u), Some(d)) => Some(RunCounts {
                        created: saturating_u64(c),
                        updated: saturating_u64(u),
                        deleted: saturating_u64(d),
                    }),
                    _ => None,
                };
                Ok((
                    id,
                    CollectionStatus {
                        name: row.get(1)?,
                        items: saturating_u64(row.get(6)?),
                        last_sync,
                        last_clean: row.get(7)?,
                        last_run,
                        conflicts: Vec::new(),
                        failures: Vec::new(),
                    },
                ))
            })?;
            let collections = rows.collect::<rusqlite::Result<Vec<_>>>()?;

            let mut problems = self.conn.prepare_cached(
                "SELECT kind, ident, message FROM problems
                 WHERE collection = ?1 ORDER BY kind, seq",
            )?;
            let mut out = Vec::with_capacity(collections.len());
            for (id, mut status) in collections {
                let mut rows = problems.query([id])?;
                while let Some(row) = rows.next()? {
                    let kind: String = row.get(0)?;
                    let problem = Problem {
                        ident: row.get(1)?,
                        message: row.get(2)?,
                    };
                    if kind == "conflict" {
                        status.conflicts.push(problem);
                    } else {
                        status.failures.push(problem);
                    }
                }
                out.push(status);
            }
            Ok(out)
        };
        run().map_err(|e| self.sql(e))
    }

    /// The value stored under `key` for a collection (e.g. a DAV sync token), if any.
    pub fn collection_meta(
        &self,
        coll: CollectionId,
        key: &str,
    ) -> Result<Option<String>, StatusError> {
        self.conn
            .prepare_cached("SELECT value FROM collection_meta WHERE collection = ?1 AND key = ?2")
            .and_then(|mut stmt| {
                stmt.query_row(params![coll, key], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| self.sql(e))
    }

    /// Stores `value` under `key` for a collection, replacing any previous value.
    pub fn set_collection_meta(
        &self,
        coll: CollectionId,
        key: &str,
        value: &str,
    ) -> Result<(), StatusError> {
        self.conn
            .prepare_cached(
                "INSERT INTO collection_meta (collection, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut stmt| stmt.execute(params![coll, key, value]))
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Removes the value stored under `key` for a collection, if any.
    pub fn remove_collection_meta(&self, coll: CollectionId, key: &str) -> Result<(), StatusError> {
        self.conn
            .prepare_cached("DELETE FROM collection_meta WHERE collection = ?1 AND key = ?2")
            .and_then(|mut stmt| stmt.execute(params![coll, key]))
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The pair-wide value stored under `key`, if any.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StatusError> {
        self.conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
            .map_err(|e| self.sql(e))
    }

    /// Stores the pair-wide `value` under `key`, replacing any previous value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StatusError> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut stmt| stmt.execute([key, value]))
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Starts a short write transaction. `IMMEDIATE` takes the write lock up front, so waiting
    /// for another connection goes through the busy timeout instead of failing on upgrade.
    /// Dropping the transaction without committing rolls it back. Inside a batch
    /// ([`StatusDb::begin_batch`]) the batch's transaction is used instead.
    fn begin(&self) -> Result<WriteTx<'_>, StatusError> {
        if !self.conn.is_autocommit() {
            return Ok(WriteTx::InBatch(&self.conn));
        }
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map(WriteTx::Own)
            .map_err(|e| self.sql(e))
    }

    /// Starts a batch: the following writes share one transaction until
    /// [`StatusDb::commit_batch`]. The executor groups a bounded number of recorded actions
    /// this way (a group commit); a crash loses at most the uncommitted batch, which leaves the
    /// status lagging the storages, a state the next sync resolves without writes.
    pub fn begin_batch(&self) -> Result<(), StatusError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.sql(e))
    }

    /// Commits the batch started by [`StatusDb::begin_batch`].
    pub fn commit_batch(&self) -> Result<(), StatusError> {
        self.conn.execute_batch("COMMIT").map_err(|e| self.sql(e))
    }

    /// Drops the batch started by [`StatusDb::begin_batch`].
    pub fn rollback_batch(&self) -> Result<(), StatusError> {
        self.conn.execute_batch("ROLLBACK").map_err(|e| self.sql(e))
    }

    fn sql(&self, source: rusqlite::Error) -> StatusError {
        StatusError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn row_changed(&self, collection: CollectionId, ident: &str) -> StatusError {
        StatusError::RowChanged {
            path: self.path.clone(),
            collection,
            ident: ident.to_owned(),
        }
    }
}

fn row_to_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<StatusItem> {
    Ok(StatusItem {
        ident: row.get(0)?,
        a: ItemVersion {
            href: row.get(1)?,
            etag: row.get(2)?,
            hash: row.get(3)?,
        },
        b: ItemVersion {
            href: row.get(4)?,
            etag: row.get(5)?,
            hash: row.get(6)?,
        },
    })
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn saturating_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Creates the missing parent directories of `path` with mode 0700.
fn create_private_parent(path: &Path) -> io::Result<()> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(parent)
}

/// Opens (creating with mode 0600 if missing) the file at `path` for reading and writing,
/// without truncating it, and restricts an existing file that group or others may access.
fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    Ok(file)
}

/// Errors of [`PairLock::acquire`]. Every variant names the lock file.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process (or another lock in this process) holds the lock.
    #[error(
        "{}: another davsync{} is already syncing this pair",
        path.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id as written into the lock file, if it could be read.
        pid: Option<u32>,
    },
    /// Creating, locking or writing the lock file failed.
    #[error("lock file {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Exclusive lock so two davsync processes never sync the same pair at once.
///
/// The lock is an advisory lock on an open file (`flock` on Unix), held as long as the value
/// lives and released on drop or when the process dies, so a crashed process never leaves a
/// stale lock behind. The lock file itself stays; while held it contains the holder's pid.
#[derive(Debug)]
pub struct PairLock {
    file: File,
    path: PathBuf,
}

impl PairLock {
    /// Takes the lock at `path` (e.g. `<status_path>/<pair>.lock`), creating the file (mode 0600)
    /// and missing parent directories (mode 0700) as needed, and writes our pid into it.
    ///
    /// Never waits: if the lock is held, even by another `PairLock` of this process, fails with
    /// [`LockError::Held`] carrying the pid read from the file.
    pub fn acquire(path: &Path) -> Result<PairLock, LockError> {
        let io_err = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        create_private_parent(path).map_err(io_err)?;
        // Not truncated on open: the holder's pid must survive a failed attempt.
        let mut file = create_private_file(path).map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    path: path.to_owned(),
                    pid: read_pid(&mut file),
                });
            }
            Err(fs::TryLockError::Error(source)) => return Err(io_err(source)),
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush())
            .map_err(io_err)?;
        Ok(PairLock {
            file,
            path: path.to_owned(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PairLock {
    fn drop(&mut self) {
        // Clear the pid while still holding the lock, so nobody reads a stale one; closing the
        // file releases the lock even if these fail.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn version(side: &str, n: u32) -> ItemVersion {
        ItemVersion {
            href: format!("{side}-{n}.ics"),
            etag: format!("\"{side}{n}\""),
            hash: format!("hash{n}"),
        }
    }

    fn item(ident: &str, n: u32) -> StatusItem {
        StatusItem {
            ident: ident.to_owned(),
            a: version("a", n),
            b: version("b", n),
        }
    }

    fn open_temp() -> (tempfile::TempDir, StatusDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = StatusDb::open(&dir.path().join("pair.db")).unwrap();
        (dir, db)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn open_creates_private_dir_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status").join("nested").join("pair.db");
        let db = StatusDb::open(&path).unwrap();
        assert_eq!(db.path(), path);
        assert_eq!(mode(&dir.path().join("status")), 0o700);
        assert_eq!(mode(&dir.path().join("status/nested")), 0o700);
        assert_eq!(mode(&path), 0o600);
        let journal: String = db
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        let sync: i64 = db
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
        // Writing creates the WAL, which SQLite gives the database file's mode.
        db.set_meta("k", "v").unwrap();
        let wal = dir.path().join("status/nested/pair.db-wal");
        assert_eq!(mode(&wal), 0o600);
    }

    #[test]
    fn open_tightens_loose_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.db");
        fs::write(&path, b"").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        StatusDb::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn migrations_idempotent_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.db");
        let db = StatusDb::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let coll = db.collection("cal").unwrap();
        db.insert(
            coll,
            &item("u1", 1),
            &StoredContent::of_bytes(b"BEGIN:VCALENDAR"),
        )
        .unwrap();
        db.set_meta("k", "v").unwrap();
        drop(db);

        let db = StatusDb::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let coll2 = db.collection("cal").unwrap();
        assert_eq!(coll, coll2);
        assert_eq!(db.items(coll).unwrap(), vec![item("u1", 1)]);
        assert_eq!(db.meta("k").unwrap().as_deref(), Some("v"));
    }

    /// A one-item VCALENDAR holding `component`.
    fn calendar(component: &str) -> Vec<u8> {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:{component}\r\nUID:x\r\n\
             END:{component}\r\nEND:VCALENDAR\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn version_1_database_gets_component_types_from_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.db");
        {
            // What davsync wrote before the component type was kept.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute("INSERT INTO collections (id, name) VALUES (1, 'cal')", [])
                .unwrap();
            let rows: [(i64, &str, Vec<u8>); 3] = [
                (1, "event", calendar("VEVENT")),
                (2, "task", calendar("VTODO")),
                (3, "broken", b"not lz4".to_vec()),
            ];
            for (id, ident, content) in rows {
                conn.execute(
                    "INSERT INTO items VALUES (?1, 1, ?2, 'a', 'ea', 'h', 'b', 'eb', 'h')",
                    params![id, ident],
                )
                .unwrap();
                let data = match id {
                    3 => content,
                    _ => lz4_flex::compress_prepend_size(&content),
                };
                conn.execute("INSERT INTO contents VALUES (?1, ?2)", params![id, data])
                    .unwrap();
            }
        }
        let db = StatusDb::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let coll = db.collection("cal").unwrap();
        assert_eq!(db.items(coll).unwrap().len(), 3);
        // The task is outside an events-only restriction; the event is not, and the row whose
        // type cannot be read stays in scope.
        assert_eq!(
            db.idents_outside(coll, &["VEVENT".into()]).unwrap(),
            ["task"]
        );
        assert_eq!(
            db.idents_outside(coll, &["vtodo".into()]).unwrap(),
            ["event"]
        );
    }

    #[test]
    fn component_type_follows_the_stored_content() {
        let (_dir, db) = open_temp();
        let coll = db.collection("cal").unwrap();
        db.insert(
            coll,
            &item("u1", 1),
            &StoredContent::of_bytes(&calendar("VTODO")),
        )
        .unwrap();
        let events = ["VEVENT".to_owned()];
        assert_eq!(db.idents_outside(coll, &events).unwrap(), ["u1"]);
        // Keeping the content keeps the type; new content brings its own.
        db.replace(coll, &item("u1", 1), &item("u1", 2), None)
            .unwrap();
        assert_eq!(db.idents_outside(coll, &events).unwrap(), ["u1"]);
        db.replace(
            coll,
            &item("u1", 2),
            &item("u1", 3),
            Some(&StoredContent::of_bytes(&calendar("VEVENT"))),
        )
        .unwrap();
        assert!(db.idents_outside(coll, &events).unwrap().is_empty());
    }

    /// A one-event VCALENDAR on the day `date` (`YYYYMMDD`).
    fn event_on(date: &str) -> Vec<u8> {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\n\
             DTSTART;VALUE=DATE:{date}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        .into_bytes()
    }

    /// The window from `start` to `end`, both `(year, month, day)`.
    fn window(start: (i32, u8, u8), end: (i32, u8, u8)) -> Window {
        let day = |(y, m, d)| {
            crate::filter::CivilDate::new(y, m, d).map(crate::filter::CivilDate::days_since_epoch)
        };
        Window {
            start: day(start),
            end: day(end),
        }
    }

    #[test]
    fn spans_not_read_at_insert_are_read_where_a_window_needs_them() {
        let (_dir, db) = open_temp();
        let coll = db.collection("cal").unwrap();
        let unread = || -> i64 {
            db.conn
                .query_row("SELECT COUNT(*) FROM items WHERE NOT span_known", [], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        let event = Item::parse(event_on("20260110")).unwrap();
        db.insert(coll, &item("u1", 1), &StoredContent::of(&event, false))
            .unwrap();
        assert_eq!(unread(), 1);
        let january = window((2026, 1, 1), (2026, 1, 31));
        let february = window((2026, 2, 1), (2026, 2, 28));
        // Read from the content without writing (a dry run)...
        assert!(db.idents_out_of_window(coll, january).unwrap().is_empty());
        assert_eq!(db.idents_out_of_window(coll, february).unwrap(), ["u1"]);
        assert_eq!(unread(), 1);
        // ...or recorded once, with the same answers.
        db.fill_spans(coll).unwrap();
        assert_eq!(unread(), 0);
        assert!(db.idents_out_of_window(coll, january).unwrap().is_empty());
        assert_eq!(db.idents_out_of_window(coll, february).unwrap(), ["u1"]);
        // New content without its span makes the row unread again.
        db.replace(
            coll,
            &item("u1", 1),
            &item("u1", 2),
            Some(&StoredContent::of(&event, false)),
        )
        .unwrap();
        assert_eq!(unread(), 1);
    }

    #[test]
    fn span_follows_the_stored_content() {
        let (_dir, db) = open_temp();
        let coll = db.collection("cal").unwrap();
        let january = window((2026, 1, 1), (2026, 1, 31));
        db.insert(
            coll,
            &item("u1", 1),
            &StoredContent::of_bytes(&event_on("20260110")),
        )
        .unwrap();
        db.insert(
            coll,
            &item("u2", 1),
            &StoredContent::of_bytes(&calendar("VTODO")),
        )
        .unwrap();
        assert!(db.idents_out_of_window(coll, january).unwrap().is_empty());
        assert_eq!(
            db.idents_out_of_window(coll, window((2026, 2, 1), (2026, 2, 28)))
                .unwrap(),
            ["u1"],
            "a todo without dates is in every window"
        );
        assert_eq!(
            db.idents_out_of_window(coll, window((2025, 1, 1), (2025, 12, 31)))
                .unwrap(),
            ["u1"]
        );
        db.replace(coll, &item("u1", 1), &item("u1", 2), None)
            .unwrap();
        assert!(db.idents_out_of_window(coll, january).unwrap().is_empty());
        db.replace(
            coll,
            &item("u1", 2),
            &item("u1", 3),
            Some(&StoredContent::of_bytes(&event_on("20260301"))),
        )
        .unwrap();
        assert_eq!(db.idents_out_of_window(coll, january).unwrap(), ["u1"]);
        assert!(
            db.idents_out_of_window(coll, Window::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn version_2_database_gets_spans_from_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(MIGRATIONS[1]).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute("INSERT INTO collections (id, name) VALUES (1, 'cal')", [])
                .unwrap();
            let rows: [(i64, &str, Vec<u8>); 2] = [
                (
                    1,
                    "old",
                    lz4_flex::compress_prepend_size(&event_on("20200101")),
                ),
                (2, "broken", b"not lz4".to_vec()),
            ];
            for (id, ident, data) in rows {
                conn.execute(
                    "INSERT INTO items VALUES (?1, 1, ?2, 'a', 'ea', 'h', 'b', 'eb', 'h', NULL)",
                    params![id, ident],
                )
                .unwrap();
                conn.execute("INSERT INTO contents VALUES (?1, ?2)", params![id, data])
                    .unwrap();
            }
        }
        let db = StatusDb::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let coll = db.collection("cal").unwrap();
        // The row whose content cannot be read has no bounds: it stays in scope.
        assert_eq!(
            db.idents_out_of_window(coll, window((2026, 1, 1), (2026, 12, 31)))
                .unwrap(),
            ["old"]
        );
    }

    #[test]
    fn version_3_database_counts_a_recorded_run_without_problems_as_clean() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.db");
        {
            let conn = Connection::open(&path).unwrap();
            for migration in &MIGRATIONS[..3] {
                conn.execute_batch(migration).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.execute_batch(
                "INSERT INTO collections (id, name, last_sync) VALUES
                     (1, 'clean', 1700000000), (2, 'conflicted', 1700000100), (3, 'new', NULL);
                 INSERT INTO problems VALUES (2, 'conflict', 0, 'x', 'changed on both sides');",
            )
            .unwrap();
        }
        let db = StatusDb::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let found: Vec<(String, Option<i64>, Option<i64>)> = db
            .collections()
            .unwrap()
            .into_iter()
            .map(|c| (c.name, c.last_sync, c.last_clean))
            .collect();
        assert_eq!(
            found,
            [
                ("clean".to_owned(), Some(1_700_000_000), Some(1_700_000_000)),
                ("conflicted".to_owned(), Some(1_700_000_100), None),
                ("new".to_owned(), None, None),
            ]
        );
    }

    #[test]
    fn reset_collection_forgets_items_and_states_of_that_collection_only() {
        let (_dir, db) = open_temp();
        let cal = db.collection("cal").unwrap();
        let other = db.collection("other").unwrap();
        for coll in [cal, other] {
            db.insert(coll, &item("u1", 1), &StoredContent::of_bytes(b"x"))
                .unwrap();
            db.set_collection_meta(coll, "a:state", "token").unwrap();
        }
        db.reset_collection(cal).unwrap();
        assert_eq!(db.collection("cal").unwrap(), cal);
        assert!(!db.has_items(cal).unwrap());
        assert_eq!(db.synced_content(cal, "u1").unwrap(), None);
        assert_eq!(db.collection_meta(cal, "a:state").unwrap(), None);
        assert_eq!(db.items(other).unwrap(), vec![item("u1", 1)]);
        assert_eq!(
            db.collection_meta(other, "a:state").unwrap().as_deref(),
            Some("token")
        );
    }

    #[test]
    fn schema_too_new() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.db");
        drop(StatusDb::open(&path).unwrap());
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
                .unwrap();
        }
        match StatusDb::open(&path) {
            Err(StatusError::SchemaTooNew {
                path: p,
                found,
                supported,
            }) => {
                assert_eq!(p, path);
                assert_eq!(found, MIGRATIONS.len() as i64 + 1);
                assert_eq!(supported, MIGRATIONS.len() as i64);
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
        let msg = StatusDb::open(&path).unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }

    #[test]
    fn collection_names_reads_without_creating_anything() {
        let (dir, db) = open_temp();
        for name in ["work", "", "home"] {
            db.collection(name).unwrap();
        }
        assert_eq!(
            StatusDb::collection_names(db.path()).unwrap(),
            ["home", "work"]
        );
        let missing = dir.path().join("missing.db");
        assert!(StatusDb::collection_names(&missing).is_err());
        assert!(!missing.exists());
    }

    #[test]
    fn collections_are_get_or_create() {
        let (_dir, db) = open_temp();
        let a = db.collection("a").unwrap();
        let b = db.collection("b").unwrap();
        assert_ne!(a, b);
        assert_eq!(db.collection("a").unwrap(), a);
    }

    #[test]
    fn insert_replace_remove_with_cas() {
        let (_dir, db) = open_temp();
        let coll = db.collection("cal").unwrap();
        let other = db.collection("other").unwrap();
        let v1 = item("u1", 1);

        db.insert(coll, &v1, &StoredContent::of_bytes(b"one"))
            .unwrap();
        // Same ident again: refused, the existing row is untouched.
        let err = db
            .insert(coll, &item("u1", 9), &StoredContent::of_bytes(b"nine"))
            .unwrap_err();
        assert!(
            matches!(&err, StatusError::RowChanged { ident, .. } if ident == "u1"),
            "{err:?}"
        );
        assert!(err.to_string().contains("pair.db"), "{err}");
        assert_eq!(db.items(coll).unwrap(), vec![v1.clone()]);
        assert_eq!(db.synced_content(coll, "u1").unwrap().unwrap(), b"one");
        // The same ident in another collection is a different row.
        db.insert(other, &v1, &StoredContent::of_bytes(b"elsewhere"))
            .unwrap();

        // Replace with a stale expectation fails and changes nothing.
        let v2 = item("u1", 2);
        let mut stale = v1.clone();
        stale.b.etag = "\"old\"".into();
        assert!(matches!(
            db.replace(coll, &stale, &v2, Some(&StoredContent::of_bytes(b"two"))),
            Err(StatusError::RowChanged { .. })
        ));
        assert_eq!(db.item(coll, "u1").unwrap(), Some(v1.clone()));
        assert_eq!(db.synced_content(coll, "u1").unwrap().unwrap(), b"one");

        // Replace without content keeps the content.
        db.replace(coll, &v1, &v2, None).unwrap();
        assert_eq!(db.item(coll, "u1").unwrap(), Some(v2.clone()));
        assert_eq!(db.synced_content(coll, "u1").unwrap().unwrap(), b"one");
        // Replace with content.
        let v3 = item("u1", 3);
        db.replace(coll, &v2, &v3, Some(&StoredContent::of_bytes(b"three")))
            .unwrap();
        assert_eq!(db.items(coll).unwrap(), vec![v3.clone()]);
        assert_eq!(db.synced_content(coll, "u1").unwrap().unwrap(), b"three");
        // The other collection was not touched.
        assert_eq!(db.items(other).unwrap(), vec![v1.clone()]);
        assert_eq!(
            db.synced_content(other, "u1").unwrap().unwrap(),
            b"elsewhere"
        );

        // Changing the ident is refused.
        assert!(matches!(
            db.replace(coll, &v3, &item("u2", 3), None),
            Err(StatusError::IdentMismatch { .. })
        ));
        // Replacing a missing row is a CAS failure.
        assert!(matches!(
            db.replace(coll, &item("nope", 1), &item("nope", 2), None),
            Err(StatusError::RowChanged { .. })
        ));

        // Remove with a stale expectation fails.
        assert!(matches!(
            db.remove(coll, &v2),
            Err(StatusError::RowChanged { .. })
        ));
        assert_eq!(db.items(coll).unwrap().len(), 1);
        db.remove(coll, &v3).unwrap();
        assert!(db.items(coll).unwrap().is_empty());
        assert_eq!(db.item(coll, "u1").unwrap(), None);
        assert_eq!(db.synced_content(coll, "u1").unwrap(), None);
        // Removing again fails.
        assert!(matches!(
            db.remove(coll, &v3),
            Err(StatusError::RowChanged { .. })
        ));
        // The content went with the row.
        let orphans: i64 = db
            .conn
            .query_row(
                "SELECT count(*) FROM contents WHERE item NOT IN (SELECT id FROM items)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0);
        // Re-inserting after removal works.
        db.insert(coll, &v1, &StoredContent::of_bytes(b"again"))
            .unwrap();
        assert_eq!(db.synced_content(coll, "u1").unwrap().unwrap(), b"again");
    }

    #[test]
    fn has_items_tells_an_empty_collection() {
        let (_dir, db) = open_temp();
        let coll = db.collection("cal").unwrap();
        let other = db.collection("other").unwrap();
        assert!(!db.has_items(coll).unwrap());
        db.insert(coll, &item("a", 1), &StoredContent::of_bytes(b"x"))
            .unwrap();
        assert!(db.has_items(coll).unwrap());
        assert!(!db.has_items(other).unwrap());
    }

    #[test]
    fn items_are_ordered_by_ident() {
        let (_dir, db) = open_temp();
        let coll = db.collection("cal").unwrap();
        for ident in ["c", "a", "b"] {
            db.insert(coll, &item(ident, 1), &StoredContent::of_bytes(b"x"))
                .unwrap();
        }
        let idents: Vec<_> = db
            .items(coll)
            .unwrap()
            .into_iter()
            .map(|i| i.ident)
            .collect();
        assert_eq!(idents, ["a", "b", "c"]);
    }

    #[test]
    fn content_round_trip_is_compressed() {
        let (_dir, db) = open_temp();
        let coll = db.collection("cal").unwrap();
        let content = "BEGIN:VCALENDAR\r\nSUMMARY:ünïcödé\r\nEND:VCALENDAR\r\n".repeat(200);
        db.insert(
            coll,
            &item("u1", 1),
            &StoredContent::of_bytes(content.as_bytes()),
        )
        .unwrap();
        db.insert(coll, &item("empty", 1), &StoredContent::of_bytes(b""))
            .unwrap();
        assert_eq!(
            db.synced_content(coll, "u1").unwrap().unwrap(),
            content.as_bytes()
        );
        assert_eq!(db.synced_content(coll, "empty").unwrap().unwrap(), b"");
        assert_eq!(db.synced_content(coll, "missing").unwrap(), None);
        let stored: Vec<u8> = db
            .conn
            .query_row(
                "SELECT data FROM contents JOIN items ON items.id = contents.item
                 WHERE items.ident = 'u1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(stored.len() < content.len() / 10, "{}", stored.len());

        // Large, incompressible content round-trips too.
        let mut noise = Vec::with_capacity(1 << 20);
        let mut x: u32 = 12345;
        for _ in 0..(1 << 20) {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            noise.push((x >> 16) as u8);
        }
        db.insert(coll, &item("noise", 1), &StoredContent::of_bytes(&noise))
            .unwrap();
        assert_eq!(db.synced_content(coll, "noise").unwrap().unwrap(), noise);
        db.replace(
            coll,
            &item("noise", 1),
            &item("noise", 2),
            Some(&StoredContent::of_bytes(b"small")),
        )
        .unwrap();
        assert_eq!(db.synced_content(coll, "noise").unwrap().unwrap(), b"small");
        assert_eq!(
            db.synced_content(coll, "u1").unwrap().unwrap(),
            content.as_bytes()
        );

        db.conn
            .execute("UPDATE contents SET data = x'00112233'", [])
            .unwrap();
        assert!(matches!(
            db.synced_content(coll, "u1"),
            Err(StatusError::CorruptContent { .. })
        ));
    }

    #[test]
    fn a_pair_refusal_is_remembered_until_a_run_gets_to_the_collections() {
        let (_dir, db) = open_temp();
        assert_eq!(db.pair_refusal().unwrap(), None);
        // A pair that never got to a collection keeps only the pair-wide attempt.
        db.record_pair_refusal(
            1_700_000_000,
            "not synced: storage b: password command failed",
        )
        .unwrap();
        db.record_pair_refusal(1_700_000_060, "not synced: server down")
            .unwrap();
        assert_eq!(
            db.pair_refusal().unwrap(),
            Some(PairRefusal {
                finished_at: 1_700_000_060,
                reason: "not synced: server down".into(),
            })
        );
        assert!(db.collections().unwrap().is_empty());
        // Known collections get the attempt too.
        let work = db.collection("work").unwrap();
        db.record_pair_refusal(1_700_000_120, "not synced: again")
            .unwrap();
        let work_status = &db.collections().unwrap()[0];
        assert_eq!(work_status.last_sync, Some(1_700_000_120));
        assert_eq!(work_status.failures[0].message, "not synced: again");
        db.record_refusal(work, 1_700_000_180, "x").unwrap();
        db.clear_pair_refusal().unwrap();
        assert_eq!(db.pair_refusal().unwrap(), None);
    }

    #[test]
    fn record_run_replaces_problems_and_reports_collections() {
        let (_dir, db) = open_temp();
        let work = db.collection("work").unwrap();
        let home = db.collection("home").unwrap();
        for n in 0..3 {
            db.insert(
                work,
                &item(&format!("w{n}"), n),
                &StoredContent::of_bytes(b"x"),
            )
            .unwrap();
        }
        db.insert(home, &item("h", 0), &StoredContent::of_bytes(b"x"))
            .unwrap();

        let before = db.collections().unwrap();
        assert_eq!(before.len(), 2);
        assert_eq!(before[0].name, "home");
        assert_eq!(before[0].items, 1);
        assert_eq!(before[0].last_sync, None);
        assert_eq!(before[0].last_run, None);
        assert!(before[0].conflicts.is_empty() && before[0].failures.is_empty());

        let problem = |ident: &str, message: &str| Problem {
            ident: ident.into(),
            message: message.into(),
        };
        let first = RunRecord {
            finished_at: 1_700_000_000,
            created: 3,
            updated: 1,
            deleted: 2,
            conflicts: vec![problem("w2", "both changed"), problem("w1", "both changed")],
            failures: vec![problem("w0", "403 Forbidden")],
        };
        db.record_run(work, &first).unwrap();
        let after = db.collections().unwrap();
        assert_eq!(after[0].name, "home");
        assert_eq!(after[0].last_sync, None);
        let w = &after[1];
        assert_eq!(w.name, "work");
        assert_eq!(w.items, 3);
        assert_eq!(w.last_sync, Some(1_700_000_000));
        assert_eq!(
            w.last_run,
            Some(RunCounts {
                created: 3,
                updated: 1,
                deleted: 2
            })
        );
        assert_eq!(w.conflicts, first.conflicts);
        assert_eq!(w.failures, first.failures);

        let second = RunRecord {
            finished_at: 1_700_000_100,
            conflicts: vec![problem("w1", "still both changed")],
            ..RunRecord::default()
        };
        db.record_run(work, &second).unwrap();
        let w = &db.collections().unwrap()[1];
        assert_eq!(w.last_sync, Some(1_700_000_100));
        assert_eq!(w.last_clean, None, "no run was clean yet");
        assert_eq!(w.last_run, Some(RunCounts::default()));
        assert_eq!(w.conflicts, second.conflicts);
        assert!(w.failures.is_empty());

        let clean = RunRecord {
            finished_at: 1_700_000_200,
            ..RunRecord::default()
        };
        db.record_run(work, &clean).unwrap();
        let w = &db.collections().unwrap()[1];
        assert_eq!(w.last_clean, Some(1_700_000_200));
        assert!(w.conflicts.is_empty() && w.failures.is_empty());

        // A refused run is the last attempt; the last clean sync and the counts stay.
        db.record_refusal(work, 1_700_000_300, "not synced: connection refused")
            .unwrap();
        let w = &db.collections().unwrap()[1];
        assert_eq!(w.last_sync, Some(1_700_000_300));
        assert_eq!(w.last_clean, Some(1_700_000_200));
        assert_eq!(w.last_run, Some(RunCounts::default()));
        assert_eq!(w.failures, [problem("", "not synced: connection refused")]);

        assert!(matches!(
            db.record_run(9999, &second),
            Err(StatusError::NoSuchCollection {
                collection: 9999,
                ..
            })
        ));
    }

    #[test]
    fn meta_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.db");
        let db = StatusDb::open(&path).unwrap();
        let a = db.collection("a").unwrap();
        let b = db.collection("b").unwrap();
        assert_eq!(db.meta("version").unwrap(), None);
        assert_eq!(db.collection_meta(a, "sync-token").unwrap(), None);

        db.set_meta("version", "1").unwrap();
        db.set_meta("version", "2").unwrap();
        db.set_collection_meta(a, "sync-token", "tok-1").unwrap();
        db.set_collection_meta(a, "sync-token", "tok-2").unwrap();
        db.set_collection_meta(b, "sync-token", "other").unwrap();
        drop(db);

        let db = StatusDb::open(&path).unwrap();
        assert_eq!(db.meta("version").unwrap().as_deref(), Some("2"));
        assert_eq!(
            db.collection_meta(a, "sync-token").unwrap().as_deref(),
            Some("tok-2")
        );
        assert_eq!(
            db.collection_meta(b, "sync-token").unwrap().as_deref(),
            Some("other")
        );
        // Pair-wide and per-collection keys are separate namespaces.
        assert_eq!(db.meta("sync-token").unwrap(), None);
        db.remove_collection_meta(a, "sync-token").unwrap();
        assert_eq!(db.collection_meta(a, "sync-token").unwrap(), None);
        assert!(db.collection_meta(b, "sync-token").unwrap().is_some());
    }

    #[test]
    fn lock_is_exclusive_within_the_process_and_reports_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks").join("pair.lock");
        let lock = PairLock::acquire(&path).unwrap();
        assert_eq!(lock.path(), path);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("locks")), 0o700);
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );

        let err = PairLock::acquire(&path).unwrap_err();
        match &err {
            LockError::Held { path: p, pid } => {
                assert_eq!(p, &path);
                assert_eq!(*pid, Some(std::process::id()));
            }
            other => panic!("expected Held, got {other:?}"),
        }
        assert!(err.to_string().contains("pair.lock"), "{err}");
        // A failed attempt does not wipe the holder's pid.
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );

        drop(lock);
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
        let again = PairLock::acquire(&path).unwrap();
        drop(again);
    }

    #[test]
    fn lock_held_without_pid_reports_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pair.lock");
        let file = File::create(&path).unwrap();
        file.lock().unwrap();
        assert!(matches!(
            PairLock::acquire(&path),
            Err(LockError::Held { pid: None, .. })
        ));
        drop(file);
        PairLock::acquire(&path).unwrap();
    }
}
