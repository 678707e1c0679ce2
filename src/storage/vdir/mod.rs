//! The vdir storage: a directory of collections, each a directory holding one file per item,
//! the layout khal, khard and todoman read.
//!
//! Version tags are `<mtime in ns>-<size>-<inode>`. A file modified less than [`WEAK_WINDOW`]
//! before it was looked at gets a weak tag (`W/…`): another write within the file system's
//! timestamp granularity could leave mtime, size and inode as they were, so only the content
//! hash can prove such a file unchanged. Files davsync writes itself get an mtime of
//! [`WEAK_WINDOW`] in the past, so any later edit, however soon, changes the tag.
//!
//! Writes go to a file that gets its name only once complete, so no reader ever sees a torn or
//! empty file, even after `kill -9`: a new item is written to an unnamed file (`O_TMPFILE`) and
//! linked under its name (one change to the directory instead of a create and a rename, which
//! two writers in one directory wait for in turn), an update to a hidden temporary file in the
//! same directory that is renamed over the target; without `O_TMPFILE` (or a way to link
//! it: `AT_EMPTY_PATH`, else `/proc/self/fd`), a new
//! item goes the way of an update, with a rename that never replaces. Files are not
//! synced one by one (a flush per item made a first sync of 10,000 items take 24 s on this
//! project's test machine); instead [`Storage::flush`] syncs the whole file system once before
//! the executor records a batch of writes in the status database. A write counts as needing
//! that flush only once it is complete (linked, renamed or unlinked): a flush that runs while a write is
//! still in flight must not vouch for it.
//!
//! Only a directory entry that is not there (`ENOENT` on the entry itself) means an item is
//! gone. An entry that cannot be looked at or read for any other reason (`EIO`, `EACCES`, a
//! symlink loop, a per-file symlink into an unmounted disk, a directory where an item should be,
//! a file over [`MAX_ITEM_SIZE`]) is listed anyway and reported unreadable when fetched, so the
//! planner never takes it for a deletion.
//!
//! Hooks ([`VdirConfig::post_hook`], [`VdirConfig::pre_deletion_hook`]): `post_hook` runs with the item's path after a create or update
//! completed (a failing one is kept for [`Storage::take_hook_failures`]; the write stands and
//! is recorded), `pre_deletion_hook` runs before a delete, and when it fails the file is not
//! deleted: the hook is typically a backup, and a deletion without its backup could lose data
//! the user meant to keep. The deletion is then reported and tried again by the next sync.
//! Hooks of one storage run one at a time (two `git add` at once would fight over git's lock).

pub mod config;

pub use config::{VdirConfig, parse_config};

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::config::MetadataKey;
use crate::hook::{self, HookFailure};

use super::{
    CollectionInfo, Fetched, ItemError, ListEntry, Storage, StorageError, Written, item_file_name,
};

/// How recent a modification makes a version tag weak.
pub const WEAK_WINDOW: Duration = Duration::from_secs(2);

/// Largest item file read; a bigger one is unreadable (never read into memory whole).
pub const MAX_ITEM_SIZE: u64 = 64 * 1024 * 1024;

/// Version tag listed for an entry that could not be looked at: weak, so it is always fetched
/// (and reported unreadable then), never vouched for by the status.
const UNREADABLE_TAG: &str = "W/unreadable";

/// Marker in the names of temporary files, which start with a dot so every vdir reader skips
/// them.
const TEMP_MARKER: &str = ".davsync-tmp-";

/// Temporary files older than this are leftovers of a killed run and are removed when listing.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// A vdir: `path` holds one subdirectory per collection; items end in `fileext`.
#[derive(Debug)]
pub struct VdirStorage {
    path: PathBuf,
    fileext: String,
    /// Run with an item's path after davsync created or updated it (empty: none).
    post_hook: Vec<String>,
    /// Run with an item's path before davsync deletes it; when it fails, the item stays.
    pre_deletion_hook: Vec<String>,
    /// `post_hook` failures not yet taken by [`Storage::take_hook_failures`]; the lock is also
    /// held while any hook runs, so hooks run one at a time.
    hook_failures: Mutex<Vec<HookFailure>>,
    /// Writes completed so far (counted after the rename or unlink).
    writes_done: AtomicU64,
    /// How many of `writes_done` the last successful [`Storage::flush`] covered.
    writes_flushed: AtomicU64,
    /// The collection directory new items were last written to, held open until the next
    /// listing or [`Storage::flush`], so that a directory replaced since is opened afresh.
    write_dir: Mutex<Option<Arc<OpenDir>>>,
    /// Called in the middle of every write, to let tests run a flush while a write is in flight.
    #[cfg(test)]
    mid_write: Option<fn(&VdirStorage)>,
}

impl VdirStorage {
    /// A vdir rooted at `path` whose items end in `fileext` (such as `.ics`).
    pub fn new(path: PathBuf, fileext: String) -> VdirStorage {
        VdirStorage {
            path,
            fileext,
            post_hook: Vec::new(),
            pre_deletion_hook: Vec::new(),
            hook_failures: Mutex::new(Vec::new()),
            writes_done: AtomicU64::new(0),
            writes_flushed: AtomicU64::new(0),
            write_dir: Mutex::new(None),
            #[cfg(test)]
            mid_write: None,
        }
    }

    /// The vdir a config section describes, with its hooks.
    pub fn from_config(config: &VdirConfig) -> VdirStorage {
        VdirStorage {
            post_hook: config.post_hook.clone(),
            pre_deletion_hook: config.pre_deletion_hook.clone(),
            ..VdirStorage::new(config.path.clone(), config.fileext.clone())
        }
    }

    /// Takes the hook lock (see `hook_failures`). A panic while another thread held it left
    /// nothing half-done in the list.
    fn hook_lock(&self) -> std::sync::MutexGuard<'_, Vec<HookFailure>> {
        self.hook_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `post_hook` on a file just written, keeping a failure for the report.
    fn after_write(&self, path: &Path) {
        if self.post_hook.is_empty() {
            return;
        }
        let mut failures = self.hook_lock();
        if let Err(failure) = hook::run("post_hook", &self.post_hook, Some(path.as_os_str()), &[]) {
            failures.push(failure);
        }
    }

    /// Runs `pre_deletion_hook` on a file about to be deleted; its failure refuses the
    /// deletion.
    fn before_delete(&self, path: &Path, href: &str) -> Result<(), ItemError> {
        if self.pre_deletion_hook.is_empty() {
            return Ok(());
        }
        let _running = self.hook_lock();
        hook::run(
            "pre_deletion_hook",
            &self.pre_deletion_hook,
            Some(path.as_os_str()),
            &[],
        )
        .map_err(|failure| ItemError::Refused {
            href: href.to_owned(),
            status: None,
            // The href is already in the message; the hook's own target would repeat it.
            reason: HookFailure {
                target: None,
                ..failure
            }
            .to_string(),
        })
    }

    /// Counts a completed write; the next [`Storage::flush`] makes it durable.
    fn wrote(&self) {
        self.writes_done.fetch_add(1, Ordering::AcqRel);
    }

    /// A point between the start and the end of a write (see `mid_write`).
    fn in_flight(&self) {
        #[cfg(test)]
        if let Some(hook) = self.mid_write {
            hook(self);
        }
    }

    /// True when some completed write is not yet covered by a flush.
    fn has_unflushed(&self) -> bool {
        self.writes_done.load(Ordering::Acquire) != self.writes_flushed.load(Ordering::Acquire)
    }

    /// The storage error for a failure on the vdir root itself: a root that is not there is
    /// named as possibly unmounted (a first sync creates it before listing, see
    /// [`Storage::create_root`]).
    fn root_error(&self, source: io::Error) -> StorageError {
        if source.kind() == io::ErrorKind::NotFound {
            StorageError::Other(format!(
                "{}: missing — unmounted? (only the first sync of a pair creates it)",
                self.path.display()
            ))
        } else {
            io_storage(&self.path, source)
        }
    }

    fn is_item_name(&self, name: &str) -> bool {
        !name.starts_with('.') && name.len() > self.fileext.len() && name.ends_with(&self.fileext)
    }

    /// The path of `href` inside the collection, refusing anything that is not a plain file
    /// name of this vdir: an href never reaches outside its collection directory.
    fn item_path(&self, collection: &CollectionInfo, href: &str) -> Result<PathBuf, ItemError> {
        if href.contains('/') || href.contains('\0') || !self.is_item_name(href) {
            return Err(ItemError::Refused {
                href: href.to_owned(),
                status: None,
                reason: "not a file name of this vdir".into(),
            });
        }
        Ok(Path::new(&collection.id).join(href))
    }

    /// The directory of `collection`, open for writing new items into.
    fn write_dir(&self, collection: &CollectionInfo) -> io::Result<Arc<OpenDir>> {
        let mut held = self.held_write_dir();
        match held.as_ref() {
            Some(dir) if dir.id == collection.id => Ok(Arc::clone(dir)),
            _ => {
                let dir = Arc::new(OpenDir::open(&collection.id)?);
                *held = Some(Arc::clone(&dir));
                Ok(dir)
            }
        }
    }

    /// The held [`VdirStorage::write_dir`]; a panic while another thread held the lock left
    /// at worst a directory that is opened again.
    fn held_write_dir(&self) -> std::sync::MutexGuard<'_, Option<Arc<OpenDir>>> {
        self.write_dir.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A collection directory held open, so that its items are opened and linked by name relative
/// to it: a full path costs the kernel a lookup of every component each time (about a
/// twentieth of a first sync's CPU, measured on tmpfs).
#[derive(Debug)]
struct OpenDir {
    /// The collection's id (its path).
    id: String,
    fd: OwnedFd,
}

impl OpenDir {
    /// Opens the directory `id` as a place only (`O_PATH`): what it needs is the search
    /// permission every use of a path needs, not the right to read its entries.
    fn open(id: &str) -> io::Result<OpenDir> {
        let path = c_path(Path::new(id))?;
        // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        Ok(OpenDir {
            id: id.to_owned(),
            fd: owned(fd)?,
        })
    }

    /// Opens the item `name` for reading (following a symlink, as `File::open` does).
    fn open_item(&self, name: &str) -> io::Result<File> {
        let name = c_path(Path::new(name))?;
        // SAFETY: `name` is a valid NUL-terminated string that outlives the call; `self.fd`
        // is an open directory.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        owned(fd).map(File::from)
    }

    /// A new unnamed file in the directory (`O_TMPFILE`), open for writing.
    fn unnamed_file(&self) -> io::Result<File> {
        // SAFETY: the path is a NUL-terminated literal; `self.fd` is an open directory.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c".".as_ptr(),
                libc::O_WRONLY | libc::O_TMPFILE | libc::O_CLOEXEC,
                0o666 as libc::c_uint,
            )
        };
        owned(fd).map(File::from)
    }
}

/// `path` for a system call.
fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// The descriptor a system call returned, or its error.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the call just opened, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn io_item(path: &Path, source: io::Error) -> ItemError {
    if source.kind() == io::ErrorKind::NotFound {
        ItemError::NotFound {
            href: path.display().to_string(),
        }
    } else {
        ItemError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// An error for `path` that is not the file system's own (not a regular file, too big).
fn unusable(path: &Path, kind: io::ErrorKind, why: String) -> ItemError {
    ItemError::Io {
        path: path.display().to_string(),
        source: io::Error::new(kind, why),
    }
}

/// Opens and reads one item file, at most [`MAX_ITEM_SIZE`] bytes: `name` in `dir` where that
/// is open, else `path` (the same file). Only an entry that is not there is
/// [`ItemError::NotFound`]: a symlink whose target is missing (a disk not mounted) is an entry
/// that cannot be read.
fn read_item(
    dir: Option<&OpenDir>,
    path: &Path,
    name: &str,
) -> Result<(fs::Metadata, Vec<u8>), ItemError> {
    let opened = match dir {
        Some(dir) => dir.open_item(name),
        None => File::open(path),
    };
    let mut file = opened.map_err(|e| {
        if e.kind() != io::ErrorKind::NotFound {
            return io_item(path, e);
        }
        let gone = |why: &str| unusable(path, io::ErrorKind::NotFound, why.into());
        match fs::symlink_metadata(path) {
            Ok(_) => gone("symlink to a missing file (not mounted?)"),
            // The whole collection went away during the run: that says nothing about the item.
            Err(_) if path.parent().is_some_and(|dir| !dir.is_dir()) => {
                gone("its collection directory is gone (unmounted?)")
            }
            Err(_) => io_item(path, e),
        }
    })?;
    let meta = file.metadata().map_err(|e| io_item(path, e))?;
    if !meta.is_file() {
        return Err(unusable(
            path,
            io::ErrorKind::InvalidInput,
            "not a regular file".into(),
        ));
    }
    let too_big = || {
        unusable(
            path,
            io::ErrorKind::FileTooLarge,
            format!(
                "larger than {} MiB, the limit for one item",
                MAX_ITEM_SIZE / (1024 * 1024)
            ),
        )
    };
    if meta.len() > MAX_ITEM_SIZE {
        return Err(too_big());
    }
    // One read(2) asks for a byte more than the stat's size: getting exactly that size means
    // the whole file, so one system call reads it instead of two (the second only to see the
    // end). A file that grew since the stat, or a short read, is read on, never past the limit.
    let size = usize::try_from(meta.len()).unwrap_or(0);
    let mut bytes = vec![0; size + 1];
    let got = loop {
        match file.read(&mut bytes) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            got => break got.map_err(|e| io_item(path, e))?,
        }
    };
    bytes.truncate(got);
    if got != size {
        (&mut file)
            .take(MAX_ITEM_SIZE + 1 - got as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| io_item(path, e))?;
    }
    if bytes.len() as u64 > MAX_ITEM_SIZE {
        return Err(too_big());
    }
    Ok((meta, bytes))
}

fn io_storage(path: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The version tag of a file with metadata `meta`, looked at `now`.
fn etag(meta: &fs::Metadata, now: SystemTime) -> String {
    let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    // The same digits either way; formatting an i128 was a measurable part of listing.
    let tag = match i64::try_from(mtime_ns) {
        Ok(mtime_ns) => format!("{mtime_ns}-{}-{}", meta.size(), meta.ino()),
        Err(_) => format!("{mtime_ns}-{}-{}", meta.size(), meta.ino()),
    };
    let recent = match meta.modified() {
        Ok(modified) => now
            .duration_since(modified)
            .map_or(true, |age| age < WEAK_WINDOW),
        Err(_) => true,
    };
    if recent { format!("W/{tag}") } else { tag }
}

/// The tag without its weakness marker: what must still match for a conditional write.
fn strong_part(etag: &str) -> &str {
    etag.strip_prefix("W/").unwrap_or(etag)
}

/// Checks that the file at `path` still has the version `expected`.
fn check_unchanged(path: &Path, href: &str, expected: &str) -> Result<(), ItemError> {
    let meta = fs::metadata(path).map_err(|e| io_item(path, e))?;
    if strong_part(&etag(&meta, SystemTime::now())) == strong_part(expected) {
        Ok(())
    } else {
        Err(ItemError::Changed {
            href: href.to_owned(),
        })
    }
}

/// A written temporary file and the version tag it will keep once renamed into place (a
/// rename changes neither inode nor mtime).
struct TempFile {
    path: PathBuf,
    etag: String,
}

/// Writes `bytes` to a new hidden temporary file beside `target`, with its mtime set back by
/// [`WEAK_WINDOW`] (see the module comment).
fn write_temp(target: &Path, bytes: &[u8]) -> io::Result<TempFile> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = dir.join(format!(
        "{TEMP_MARKER}{}-{}-{name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut file| write_aged(&mut file, bytes));
    match result {
        Ok(etag) => Ok(TempFile { path, etag }),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// A new item's file written but not yet in place: an unnamed file (`O_TMPFILE`) to be linked
/// under its name, or where the file system or `/proc` cannot do that, a hidden temporary
/// file to be renamed. Either way no reader ever sees a partly written item.
enum Staged {
    Unnamed { file: File, etag: String },
    Named(TempFile),
}

impl Staged {
    /// Writes `bytes` into a new file in `dir` (named after `target`, a path in `dir`, while
    /// it is a temporary one), its mtime set back by [`WEAK_WINDOW`].
    fn write(dir: &OpenDir, target: &Path, bytes: &[u8]) -> io::Result<Staged> {
        // Linking an unnamed file needs /proc (see `link_unnamed`).
        static PROC_FDS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let unnamed = match PROC_FDS.get_or_init(|| Path::new("/proc/self/fd").is_dir()) {
            true => dir.unnamed_file().and_then(|mut file| {
                let etag = write_aged(&mut file, bytes)?;
                Ok(Staged::Unnamed { file, etag })
            }),
            false => Err(io::ErrorKind::Unsupported.into()),
        };
        match unnamed {
            Ok(staged) => Ok(staged),
            // A file system without O_TMPFILE, or a failed write, which the named file then
            // reports in the same words as ever.
            Err(_) => write_temp(target, bytes).map(Staged::Named),
        }
    }

    /// The version tag the file keeps once in place.
    fn etag(&self) -> &str {
        match self {
            Staged::Unnamed { etag, .. } => etag,
            Staged::Named(temp) => &temp.etag,
        }
    }

    /// Puts the file at `name` in `dir` (whose path that is: `target`) unless something is
    /// there already (then `AlreadyExists`).
    fn place(&self, dir: &OpenDir, name: &str, target: &Path) -> io::Result<()> {
        match self {
            Staged::Unnamed { file, .. } => link_unnamed(file, dir, name),
            Staged::Named(temp) => rename_noreplace(&temp.path, target),
        }
    }

    /// Lets go of a file that was not placed.
    fn discard(self) {
        if let Staged::Named(temp) = self {
            let _ = fs::remove_file(&temp.path);
        }
    }
}

/// Writes `bytes` to `file` and sets its mtime back by [`WEAK_WINDOW`]; returns its tag.
fn write_aged(file: &mut File, bytes: &[u8]) -> io::Result<String> {
    file.write_all(bytes)?;
    let now = SystemTime::now();
    file.set_modified(now - WEAK_WINDOW)?;
    Ok(etag(&file.metadata()?, now))
}

/// Gives the unnamed `file` the name `name` in `dir`, failing with `AlreadyExists` when it is
/// taken (`linkat` never replaces). The descriptor itself is linked (`AT_EMPTY_PATH`) where
/// the kernel lets its opener do that (Linux 6.10 on; always with `CAP_DAC_READ_SEARCH`);
/// else through `/proc/self/fd`, whose lookup cost a tenth of a first sync's CPU. Which one
/// works is learnt once per process.
fn link_unnamed(file: &File, dir: &OpenDir, name: &str) -> io::Result<()> {
    use std::ffi::CStr;
    use std::sync::atomic::AtomicBool;
    static NO_EMPTY_PATH: AtomicBool = AtomicBool::new(false);
    let to = c_path(Path::new(name))?;
    let link = |from_dir: libc::c_int, from: &CStr, flags: libc::c_int| {
        // SAFETY: both strings are valid NUL-terminated paths that outlive the call, `dir`
        // keeps its descriptor open, and `from_dir` is a descriptor `file` keeps open (or
        // AT_FDCWD).
        let linked = unsafe {
            libc::linkat(
                from_dir,
                from.as_ptr(),
                dir.fd.as_raw_fd(),
                to.as_ptr(),
                flags,
            )
        };
        match linked {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    };
    let via_proc = || {
        let from = c_path(Path::new(&format!("/proc/self/fd/{}", file.as_raw_fd())))?;
        link(libc::AT_FDCWD, &from, libc::AT_SYMLINK_FOLLOW)
    };
    if NO_EMPTY_PATH.load(Ordering::Relaxed) {
        return via_proc();
    }
    match link(file.as_raw_fd(), c"", libc::AT_EMPTY_PATH) {
        // Refused (older kernels say ENOENT, newer EPERM): through /proc, and if that works,
        // through /proc from now on. (A missing directory fails that way too.)
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::EINVAL | libc::ENOENT)
            ) =>
        {
            let linked = via_proc();
            if linked.is_ok() {
                NO_EMPTY_PATH.store(true, Ordering::Relaxed);
            }
            linked
        }
        done => done,
    }
}

/// Moves `from` to `to` unless `to` exists, atomically: `renameat2(RENAME_NOREPLACE)`, or
/// where the file system lacks it, a hard link (which never replaces either) and an unlink.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (from_c, to_c) = (c_path(from)?, c_path(to)?);
    // SAFETY: both strings are valid NUL-terminated paths that outlive the call.
    let result = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if result == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        _ => Err(error),
    }
}

fn remove_stale_temp(path: &Path, now: SystemTime) {
    let stale = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .is_some_and(|age| age > STALE_TEMP_AGE);
    if stale {
        // Best effort: a leftover that cannot be removed is harmless, readers skip it.
        let _ = fs::remove_file(path);
    }
}

impl Storage for VdirStorage {
    fn list_collections(&self) -> Result<Vec<CollectionInfo>, StorageError> {
        let entries = fs::read_dir(&self.path).map_err(|e| self.root_error(e))?;
        let mut collections = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_storage(&self.path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            // A symlink that cannot be followed may be a collection on a disk not mounted:
            // leaving it out would make its items look deleted.
            let is_dir = match entry.file_type() {
                Ok(t) if t.is_symlink() => fs::metadata(entry.path())
                    .map_err(|e| io_storage(&entry.path(), e))?
                    .is_dir(),
                Ok(t) => t.is_dir(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(io_storage(&entry.path(), e)),
            };
            if !is_dir {
                continue;
            }
            collections.push(CollectionInfo {
                id: entry.path().display().to_string(),
                name,
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
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\0']) {
            return Err(StorageError::Other(format!(
                "{}: {name:?} is not a usable collection directory name",
                self.path.display()
            )));
        }
        let path = self.path.join(name);
        fs::create_dir_all(&path).map_err(|e| io_storage(&path, e))?;
        Ok(CollectionInfo {
            name: name.to_owned(),
            id: path.display().to_string(),
        })
    }

    fn list(&self, collection: &CollectionInfo) -> Result<Vec<ListEntry>, StorageError> {
        *self.held_write_dir() = None;
        let dir = Path::new(&collection.id);
        let entries = fs::read_dir(dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound if dir == self.path.as_path() || !self.path.exists() => {
                self.root_error(e)
            }
            io::ErrorKind::NotFound => StorageError::NoSuchCollection {
                id: collection.id.clone(),
            },
            _ => io_storage(dir, e),
        })?;
        let now = SystemTime::now();
        let mut listing = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_storage(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_MARKER) {
                remove_stale_temp(&entry.path(), now);
                continue;
            }
            if !self.is_item_name(&name) {
                continue;
            }
            // DirEntry::metadata stats relative to the open directory, much cheaper than a
            // full path lookup per file; it does not follow symlinks, so those get a second look.
            let meta = match entry.metadata() {
                Ok(meta) if meta.file_type().is_symlink() => fs::metadata(entry.path()),
                other => other,
            };
            let etag = match meta {
                Ok(meta) if meta.is_file() => etag(&meta, now),
                // Vanished since read_dir: not there.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        && fs::symlink_metadata(entry.path())
                            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound) =>
                {
                    continue;
                }
                // There but not readable as an item (see the module comment): the fetch
                // reports why.
                _ => UNREADABLE_TAG.to_owned(),
            };
            listing.push(ListEntry {
                href: name,
                etag,
                content: None,
            });
        }
        Ok(listing)
    }

    fn get_many(
        &self,
        collection: &CollectionInfo,
        hrefs: &[&str],
    ) -> Vec<(String, Result<Fetched, ItemError>)> {
        let now = SystemTime::now();
        // Without the directory open, each item is read by its path and fails on its own.
        let dir = OpenDir::open(&collection.id).ok();
        hrefs
            .iter()
            .map(|href| {
                let result = self.item_path(collection, href).and_then(|path| {
                    // Tag and bytes come from the same open file, so they belong together
                    // even if the file is replaced meanwhile.
                    let (meta, bytes) = read_item(dir.as_ref(), &path, href)?;
                    Ok(Fetched {
                        bytes,
                        etag: etag(&meta, now),
                    })
                });
                ((*href).to_owned(), result)
            })
            .collect()
    }

    fn create(
        &self,
        collection: &CollectionInfo,
        name_hint: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        let preferred = item_file_name(name_hint, &self.fileext);
        let dir = Path::new(&collection.id);
        let first_choice = dir.join(&preferred);
        let open_dir = self
            .write_dir(collection)
            .map_err(|e| io_item(&first_choice, e))?;
        let staged = Staged::write(&open_dir, &first_choice, bytes)
            .map_err(|e| io_item(&first_choice, e))?;
        self.in_flight();
        // A taken name falls back to hashed names with a counter.
        let stem = preferred.trim_end_matches(&self.fileext).to_owned();
        let mut result = Err(ItemError::Refused {
            href: preferred.clone(),
            status: None,
            reason: "no free file name".into(),
        });
        for attempt in 0..100u32 {
            let name = match attempt {
                0 => preferred.clone(),
                n => item_file_name(&format!("{stem}\0{n}"), &self.fileext),
            };
            let target = dir.join(&name);
            match staged.place(&open_dir, &name, &target) {
                Ok(()) => {
                    result = Ok(Written {
                        href: name,
                        etag: staged.etag().to_owned(),
                    });
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    result = Err(io_item(&target, e));
                    break;
                }
            }
        }
        match &result {
            Ok(written) => {
                self.wrote();
                self.after_write(&dir.join(&written.href));
            }
            Err(_) => staged.discard(),
        }
        result
    }

    fn update(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        let path = self.item_path(collection, href)?;
        let temp = write_temp(&path, bytes).map_err(|e| io_item(&path, e))?;
        self.in_flight();
        // Checked as late as possible: the file system offers no compare-and-swap, so the
        // window between this check and the rename is kept to two system calls.
        let replaced = check_unchanged(&path, href, expected_etag)
            .and_then(|()| fs::rename(&temp.path, &path).map_err(|e| io_item(&path, e)));
        if let Err(e) = replaced {
            let _ = fs::remove_file(&temp.path);
            return Err(e);
        }
        self.wrote();
        self.after_write(&path);
        Ok(Written {
            href: href.to_owned(),
            etag: temp.etag,
        })
    }

    fn delete(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
    ) -> Result<(), ItemError> {
        let path = self.item_path(collection, href)?;
        check_unchanged(&path, href, expected_etag)?;
        self.before_delete(&path, href)?;
        // The hook may have taken its time (or touched the file): the deletion is still
        // conditional on the version listed.
        if !self.pre_deletion_hook.is_empty() {
            check_unchanged(&path, href, expected_etag)?;
        }
        self.in_flight();
        fs::remove_file(&path).map_err(|e| io_item(&path, e))?;
        self.wrote();
        Ok(())
    }

    fn metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
    ) -> Result<Option<String>, StorageError> {
        let path = Path::new(&collection.id).join(key.file_name());
        match fs::read(&path) {
            // khal and vdirsyncer write the bare value; a trailing newline from an editor is
            // not part of it.
            Ok(bytes) => Ok(Some(
                String::from_utf8_lossy(&bytes)
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_storage(&path, e)),
        }
    }

    fn set_metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
        value: Option<&str>,
    ) -> Result<(), StorageError> {
        let path = Path::new(&collection.id).join(key.file_name());
        let result = match value {
            Some(value) => {
                write_temp(&path, value.as_bytes()).and_then(|temp| fs::rename(&temp.path, &path))
            }
            None => fs::remove_file(&path).or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            }),
        };
        result.map_err(|e| io_storage(&path, e))?;
        self.wrote();
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        *self.held_write_dir() = None;
        if !self.has_unflushed() {
            return Ok(());
        }
        // Only writes complete before the sync starts are covered by it; one that completes
        // meanwhile stays counted for the next flush.
        let covered = self.writes_done.load(Ordering::Acquire);
        let dir = File::open(&self.path).map_err(|e| io_storage(&self.path, e))?;
        // SAFETY: syncfs only reads the descriptor, which `dir` keeps open for the call.
        let result = unsafe { libc::syncfs(dir.as_raw_fd()) };
        if result == 0 {
            self.writes_flushed.fetch_max(covered, Ordering::AcqRel);
            Ok(())
        } else {
            Err(io_storage(&self.path, io::Error::last_os_error()))
        }
    }

    fn concurrency(&self) -> usize {
        // Two writers keep both halves of a write (the file, then its rename under the
        // directory's lock) busy: a first sync of 10,000 items took a fifth less time than
        // with one; three or four took longer again (measured on 2 cores, tmpfs). Hooks run
        // one at a time anyway, and then in the plan's order.
        match self.post_hook.is_empty() && self.pre_deletion_hook.is_empty() {
            true => 2,
            false => 1,
        }
    }

    fn reads_cheaply(&self) -> bool {
        // A file is read again from the page cache: holding a first sync's 100,000 items
        // until written took more memory than all the rest of the run.
        true
    }

    fn take_hook_failures(&self) -> Vec<HookFailure> {
        std::mem::take(&mut *self.hook_lock())
    }

    fn create_root(&self) -> Result<Option<String>, StorageError> {
        match fs::metadata(&self.path) {
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&self.path)
                    .map_err(|e| io_storage(&self.path, e))?;
                Ok(Some(self.path.display().to_string()))
            }
            Err(e) => Err(io_storage(&self.path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, VdirStorage, CollectionInfo) {
        let dir = tempfile::tempdir().unwrap();
        let storage = VdirStorage::new(dir.path().to_owned(), ".ics".into());
        let coll = storage.create_collection("cal").unwrap();
        (dir, storage, coll)
    }

    #[test]
    fn hostile_uid_never_leaves_the_collection() {
        let (dir, storage, coll) = setup();
        for uid in [
            "../../etc/x",
            "/abs",
            ".hidden",
            "a/b",
            &"x".repeat(300),
            "",
        ] {
            let written = storage.create(&coll, uid, b"BEGIN:VCALENDAR\r\n").unwrap();
            assert!(!written.href.contains('/'), "{uid}: {}", written.href);
            assert!(!written.href.starts_with('.'), "{uid}: {}", written.href);
            assert!(written.href.len() <= super::super::MAX_NAME_LEN);
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["cal"], "nothing written beside the collection");
    }

    #[test]
    fn safe_uid_names_the_file_and_taken_names_fall_back() {
        let (_dir, storage, coll) = setup();
        let first = storage.create(&coll, "abc@example.com", b"1").unwrap();
        assert_eq!(first.href, "abc@example.com.ics");
        let second = storage.create(&coll, "abc@example.com", b"2").unwrap();
        assert_ne!(second.href, first.href);
        let listed = storage.list(&coll).unwrap();
        assert_eq!(listed.len(), 2);
    }

    #[test]
    fn a_staged_file_of_either_kind_never_replaces_and_leaves_nothing_behind() {
        let (_dir, _storage, coll) = setup();
        let dir = Path::new(&coll.id);
        let open_dir = OpenDir::open(&coll.id).unwrap();
        let target = dir.join("x.ics");
        let named = write_temp(&target, b"named").map(Staged::Named).unwrap();
        // An unnamed file where the file system has O_TMPFILE (tmpfs, ext4, xfs, btrfs).
        let unnamed = Staged::write(&open_dir, &target, b"unnamed").unwrap();
        // Whichever comes first takes the name; the other is refused, not written over it.
        named.place(&open_dir, "x.ics", &target).unwrap();
        let refused = unnamed.place(&open_dir, "x.ics", &target).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&target).unwrap(), b"named");
        unnamed.discard();
        let other = dir.join("y.ics");
        let unnamed = Staged::write(&open_dir, &other, b"unnamed").unwrap();
        let tag = unnamed.etag().to_owned();
        unnamed.place(&open_dir, "y.ics", &other).unwrap();
        assert_eq!(fs::read(&other).unwrap(), b"unnamed");
        // The tag is the placed file's, as a listing sees it.
        let meta = fs::metadata(&other).unwrap();
        assert_eq!(
            strong_part(&tag),
            strong_part(&etag(&meta, SystemTime::now()))
        );
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["x.ics", "y.ics"]);
        let named = write_temp(&dir.join("z.ics"), b"dropped")
            .map(Staged::Named)
            .unwrap();
        named.discard();
        assert_eq!(
            fs::read_dir(dir).unwrap().count(),
            2,
            "a discarded file is gone"
        );
    }

    #[test]
    fn a_collection_directory_replaced_between_runs_gets_the_new_items() {
        let (dir, storage, coll) = setup();
        storage.create(&coll, "one", b"1").unwrap();
        storage.flush().unwrap();
        // Moved away and made again (a restore from a backup, say) while a daemon waits.
        fs::rename(dir.path().join("cal"), dir.path().join("old")).unwrap();
        fs::create_dir(dir.path().join("cal")).unwrap();
        assert!(storage.list(&coll).unwrap().is_empty());
        storage.create(&coll, "two", b"2").unwrap();
        assert_eq!(fs::read(dir.path().join("cal/two.ics")).unwrap(), b"2");
        assert!(!dir.path().join("old/two.ics").exists());
    }

    #[test]
    fn conditional_update_and_delete() {
        let (_dir, storage, coll) = setup();
        let w = storage.create(&coll, "u", b"one").unwrap();
        assert!(
            !w.etag.starts_with("W/"),
            "own writes are backdated: {}",
            w.etag
        );
        let w2 = storage.update(&coll, &w.href, &w.etag, b"two!").unwrap();
        assert!(matches!(
            storage.update(&coll, &w.href, &w.etag, b"three"),
            Err(ItemError::Changed { .. })
        ));
        assert!(matches!(
            storage.delete(&coll, &w.href, &w.etag),
            Err(ItemError::Changed { .. })
        ));
        let fetched = storage.get_many(&coll, &[&w.href]);
        assert_eq!(fetched[0].1.as_ref().unwrap().bytes, b"two!");
        storage.delete(&coll, &w.href, &w2.etag).unwrap();
        assert!(storage.list(&coll).unwrap().is_empty());
    }

    #[test]
    fn a_write_in_flight_during_a_flush_needs_the_next_flush() {
        let (_dir, mut storage, coll) = setup();
        // The executor's thread flushes while a worker's write is between its temporary file
        // and the rename (or before the unlink): that flush cannot vouch for the write.
        storage.mid_write = Some(|s| s.flush().expect("flush"));
        let w = storage.create(&coll, "u", b"one").unwrap();
        assert!(storage.has_unflushed(), "create finished after the flush");
        storage.flush().unwrap();
        assert!(!storage.has_unflushed());
        let w = storage.update(&coll, &w.href, &w.etag, b"two").unwrap();
        assert!(storage.has_unflushed(), "update finished after the flush");
        storage.flush().unwrap();
        storage.delete(&coll, &w.href, &w.etag).unwrap();
        assert!(storage.has_unflushed(), "delete finished after the flush");
        storage.flush().unwrap();
        assert!(!storage.has_unflushed());
    }

    #[test]
    fn entries_that_cannot_be_read_are_listed_and_unreadable() {
        let (_dir, storage, coll) = setup();
        let dir = Path::new(&coll.id);
        std::os::unix::fs::symlink(dir.join("loop.ics"), dir.join("loop.ics")).unwrap();
        std::os::unix::fs::symlink("/nonexistent-disk/x.ics", dir.join("dangling.ics")).unwrap();
        fs::create_dir(dir.join("dir.ics")).unwrap();
        let mut names: Vec<_> = storage.list(&coll).unwrap();
        names.sort_by(|x, y| x.href.cmp(&y.href));
        let hrefs: Vec<&str> = names.iter().map(|e| e.href.as_str()).collect();
        assert_eq!(hrefs, ["dangling.ics", "dir.ics", "loop.ics"]);
        for (href, result) in storage.get_many(&coll, &hrefs) {
            assert!(
                matches!(result, Err(ItemError::Io { .. })),
                "{href}: {result:?}"
            );
        }
        assert!(matches!(
            &storage.get_many(&coll, &["gone.ics"])[0].1,
            Err(ItemError::NotFound { .. })
        ));
        // A collection directory that vanished says nothing about its items.
        fs::remove_dir_all(dir).unwrap();
        assert!(matches!(
            &storage.get_many(&coll, &["gone.ics"])[0].1,
            Err(ItemError::Io { .. })
        ));
    }

    #[test]
    fn an_item_over_the_size_limit_is_unreadable() {
        let (_dir, storage, coll) = setup();
        let path = Path::new(&coll.id).join("big.ics");
        File::create(&path)
            .unwrap()
            .set_len(MAX_ITEM_SIZE + 1)
            .unwrap();
        let fetched = storage.get_many(&coll, &["big.ics"]);
        let error = fetched[0].1.as_ref().unwrap_err().to_string();
        assert!(
            error.contains("big.ics") && error.contains("64 MiB"),
            "{error}"
        );
    }

    #[test]
    fn in_place_rewrite_of_same_size_is_seen() {
        let (_dir, storage, coll) = setup();
        let w = storage.create(&coll, "u", b"aaaa").unwrap();
        let path = Path::new(&coll.id).join(&w.href);
        fs::write(&path, b"bbbb").unwrap();
        let listed = storage.list(&coll).unwrap();
        assert_ne!(listed[0].etag, w.etag);
        assert!(listed[0].etag.starts_with("W/"), "fresh edit is weak");
    }

    #[test]
    fn hooks_run_on_written_and_deleted_files_and_a_failed_backup_keeps_the_file() {
        let (dir, storage, coll) = setup();
        let log = dir.path().join("hooks.log");
        let logger = |tag: &str, status: u8| -> Vec<String> {
            let script = format!("echo {tag} \"$1\" >> {}; exit {status}", log.display());
            ["sh", "-c", &script, "hook"].map(String::from).to_vec()
        };
        let storage = VdirStorage {
            post_hook: logger("post", 0),
            pre_deletion_hook: logger("pre", 0),
            ..storage
        };
        let w = storage.create(&coll, "u", b"one").unwrap();
        let w = storage.update(&coll, &w.href, &w.etag, b"two").unwrap();
        let path = Path::new(&coll.id).join(&w.href);
        assert!(storage.take_hook_failures().is_empty());
        storage.delete(&coll, &w.href, &w.etag).unwrap();
        let p = path.display();
        assert_eq!(
            fs::read_to_string(&log).unwrap(),
            format!("post {p}\npost {p}\npre {p}\n")
        );

        let storage = VdirStorage {
            post_hook: logger("post", 1),
            pre_deletion_hook: logger("pre", 2),
            ..storage
        };
        let w = storage.create(&coll, "v", b"three").unwrap();
        let failures = storage.take_hook_failures();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].to_string().contains("exited with status 1"));
        assert!(storage.take_hook_failures().is_empty(), "taken once");
        let refused = storage.delete(&coll, &w.href, &w.etag).unwrap_err();
        assert!(
            refused.to_string().contains("refused: pre_deletion_hook"),
            "{refused}"
        );
        assert!(Path::new(&coll.id).join(&w.href).exists());
    }

    #[test]
    fn hidden_foreign_and_metadata_files_are_not_items() {
        let (_dir, storage, coll) = setup();
        let dir = Path::new(&coll.id);
        for name in [".hidden.ics", "displayname", "color", "notes.txt", ".ics"] {
            fs::write(dir.join(name), b"x").unwrap();
        }
        fs::write(dir.join("real.ics"), b"x").unwrap();
        let names: Vec<_> = storage
            .list(&coll)
            .unwrap()
            .into_iter()
            .map(|e| e.href)
            .collect();
        assert_eq!(names, ["real.ics"]);
    }
}
