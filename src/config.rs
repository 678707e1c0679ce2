//! The configuration file: where it is, what it says, and whether it makes sense.
//!
//! The file is TOML:
//!
//! ```toml
//! status_path = "~/.local/share/davsync"   # optional
//! max_connections = 16                      # optional: HTTP requests in flight at once, all servers
//!
//! [storage.laptop]
//! type = "vdir"
//! path = "~/.calendars"
//! fileext = ".ics"
//!
//! [storage.backup]
//! type = "vdir"
//! path = "/mnt/backup/calendars"
//! fileext = ".ics"
//!
//! [storage.server]
//! type = "caldav"                 # or "carddav"
//! url = "https://dav.example.com/"
//! username = "alice"
//! password = { cmd = ["pass", "show", "dav/alice"] }   # or "literal", or { env = "VAR" }
//!
//! [pair.calendars]
//! a = "laptop"
//! b = "backup"
//! collections = "from a"          # "from a" | "from b" | "all" | ["work", { name = "home", a = "personal", b = "home" }]
//! conflict_resolution = "a wins"  # "a wins" | "b wins" | { cmd = ["prog", "arg"] }
//! metadata = ["displayname", "color"]   # also "description", "order"
//! ```
//!
//! [`parse`] walks the span-carrying TOML tree ([`toml::de::DeTable`]): the top level, the
//! pairs and the keys common to every storage here, each storage type's own keys in its folder
//! (`storage::<type>::parse_config`, through a [`Section`]; `storage::StorageKind::parse` picks
//! the folder), so that every error — a syntax error, an unknown key, a wrong type, a
//! missing key, a pair naming a missing storage — can name the file, the 1-based line and the
//! dotted key it is about (see [`ConfigError`]). Nothing here prints; the process environment is
//! read only through [`Env`], so tests can use a fake one.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use crate::filter::{DateBound, ItemFilter};
pub use crate::http::{AuthScheme, HttpOptions, TlsVerify};
pub use crate::storage::dav::{DavConfig, DavKind, Dialect};
pub use crate::storage::vdir::VdirConfig;
pub use crate::storage::{Place, StorageKind};

/// Storage types that a config may use.
use crate::storage::{PLANNED_STORAGE_TYPES, STORAGE_TYPES as SUPPORTED_STORAGE_TYPES};

/// Keys accepted at the top level of the file.
pub const TOP_LEVEL_KEYS: &[&str] = &["status_path", "max_connections", "storage", "pair"];

/// The range of the top-level `max_connections` key.
pub const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<usize> = 1..=256;

/// Keys every `[storage.<name>]` table accepts, whatever its type.
pub const COMMON_STORAGE_KEYS: &[&str] = &[
    "type",
    "read_only",
    "item_types",
    "start_date",
    "end_date",
    "interval",
];

/// How often `davsync daemon` polls a network storage that sets no `interval`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(300);

/// Keys accepted in a `[pair.<name>]` table.
pub const PAIR_KEYS: &[&str] = &[
    "a",
    "b",
    "collections",
    "conflict_resolution",
    "metadata",
    "mode",
    "post_sync",
];

/// Component types a CalDAV storage's `item_types` may list.
const DAV_ITEM_TYPES: &[&str] = &["VEVENT", "VTODO", "VJOURNAL"];

/// A parsed and validated configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file the configuration was read from (as given to [`load`] or [`parse`]).
    pub path: PathBuf,
    /// Directory holding the status databases (one per pair), expanded, absolute and
    /// lexically normalized.
    pub status_path: PathBuf,
    /// `max_connections`: the most HTTP requests in flight at once across every server and
    /// pair of a run (default [`crate::http::DEFAULT_MAX_CONNECTIONS`]); each storage's
    /// `concurrency` still bounds its own server.
    pub max_connections: usize,
    /// Storages by name (`[storage.<name>]`).
    pub storages: BTreeMap<String, StorageConfig>,
    /// Pairs by name (`[pair.<name>]`); every pair names two defined storages.
    pub pairs: BTreeMap<String, PairConfig>,
}

/// One `[storage.<name>]` table: the type's own section and the keys common to every type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// The storage type and its own keys.
    pub kind: StorageKind,
    /// `read_only = true`: davsync never writes to this storage (default false).
    pub read_only: bool,
    /// What the storage lets into a sync: `item_types`, `start_date`, `end_date`.
    pub filter: ItemFilter,
    /// `interval = SECONDS`: how often `davsync daemon` syncs the pairs of this storage without
    /// being told of a change; `None` when not written (see [`StorageConfig::poll_interval`]).
    pub interval: Option<Duration>,
}

impl StorageConfig {
    /// How often `davsync daemon` polls this storage: `interval` when written; else
    /// [`DEFAULT_POLL_INTERVAL`] for a network storage and never for a local one, whose changes
    /// the daemon is told of by inotify.
    pub fn poll_interval(&self) -> Option<Duration> {
        match (self.interval, self.kind.http()) {
            (Some(interval), _) => Some(interval),
            (None, Some(_)) => Some(DEFAULT_POLL_INTERVAL),
            (None, None) => None,
        }
    }
}

/// Where a secret (password or token) comes from. Resolved once per run, before any network
/// I/O, and never logged.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// Written in the config file.
    Literal(String),
    /// `{ cmd = ["pass", "show", "x"] }`: the first line of the command's standard output.
    Command(Vec<String>),
    /// `{ env = "VAR" }`: an environment variable.
    Env(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a literal secret, not even in debug output.
        match self {
            Secret::Literal(_) => f.write_str("Literal(<hidden>)"),
            Secret::Command(cmd) => write!(f, "Command({cmd:?})"),
            Secret::Env(var) => write!(f, "Env({var:?})"),
        }
    }
}

impl Secret {
    /// The secret's value: a literal as written; an environment variable's value (unset or
    /// empty is an error); or the first line (without its line ending) of what the command
    /// prints on standard output.
    ///
    /// The command is run directly (no shell) with standard input connected to nothing and
    /// standard error passed through (so `pass`/`gpg` can report problems); it must exit 0
    /// and print a non-empty first line. Errors name the variable or the program and the exit
    /// status, never the value nor anything the command printed.
    pub fn resolve(&self, env: &dyn Env) -> Result<String, SecretError> {
        match self {
            Secret::Literal(value) => Ok(value.clone()),
            Secret::Env(var) => match env.var(var) {
                None => Err(SecretError::EnvUnset { var: var.clone() }),
                Some(value) if value.is_empty() => Err(SecretError::EnvEmpty { var: var.clone() }),
                Some(value) => Ok(value),
            },
            Secret::Command(cmd) => {
                let Some(program) = cmd.first().filter(|p| !p.is_empty()) else {
                    return Err(SecretError::EmptyCommand);
                };
                let output = Command::new(program)
                    .args(&cmd[1..])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .output()
                    .map_err(|source| SecretError::Spawn {
                        program: program.clone(),
                        source,
                    })?;
                if !output.status.success() {
                    return Err(SecretError::Failed {
                        program: program.clone(),
                        status: output.status,
                    });
                }
                let stdout = output.stdout;
                let end = stdout
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(stdout.len());
                let mut line = &stdout[..end];
                if let Some(stripped) = line.strip_suffix(b"\r") {
                    line = stripped;
                }
                if line.is_empty() {
                    return Err(SecretError::NoOutput {
                        program: program.clone(),
                        status: output.status,
                    });
                }
                String::from_utf8(line.to_vec()).map_err(|_| SecretError::NotUtf8 {
                    program: program.clone(),
                    status: output.status,
                })
            }
        }
    }
}

/// Why a [`Secret`] could not be resolved. The messages name the environment variable or the
/// program, never the secret or anything the program printed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `{ env = "VAR" }` and the variable is unset (or not UTF-8).
    #[error("environment variable {var:?} is not set")]
    EnvUnset {
        /// The variable's name.
        var: String,
    },
    /// `{ env = "VAR" }` and the variable is set to the empty string.
    #[error("environment variable {var:?} is empty")]
    EnvEmpty {
        /// The variable's name.
        var: String,
    },
    /// `{ cmd = [] }` or an empty program name (only possible when built by hand; the config
    /// parser rejects it).
    #[error("the password command is empty")]
    EmptyCommand,
    /// The command could not be started.
    #[error("cannot run password command {program:?}: {source}")]
    Spawn {
        /// The program (`cmd[0]`).
        program: String,
        /// Why it could not be started.
        source: std::io::Error,
    },
    /// The command exited unsuccessfully.
    #[error("password command {program:?} failed ({status})")]
    Failed {
        /// The program (`cmd[0]`).
        program: String,
        /// How it exited.
        status: ExitStatus,
    },
    /// The command succeeded but its first line of output is empty.
    #[error("password command {program:?} printed no password ({status})")]
    NoOutput {
        /// The program (`cmd[0]`).
        program: String,
        /// How it exited.
        status: ExitStatus,
    },
    /// The command's first line of output is not UTF-8.
    #[error("password command {program:?} printed a password that is not UTF-8 ({status})")]
    NotUtf8 {
        /// The program (`cmd[0]`).
        program: String,
        /// How it exited.
        status: ExitStatus,
    },
}

/// One `[pair.<name>]` table: two storages kept in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairConfig {
    /// The pair's name; also the name of its status file, hence restricted to
    /// `[A-Za-z0-9_.-]` and not starting with `.`.
    pub name: String,
    /// Name of the storage on side a (a key of [`Config::storages`]).
    pub a: String,
    /// Name of the storage on side b (a key of [`Config::storages`]).
    pub b: String,
    /// Which collections of the two storages are synced with each other.
    pub collections: CollectionsSpec,
    /// What to do when both sides changed the same item differently.
    pub conflict_resolution: ConflictResolution,
    /// Collection properties synced along with the items (`metadata = [...]`), in the order
    /// written, without duplicates; empty (the default): none.
    pub metadata: Vec<MetadataKey>,
    /// Which way changes flow (`mode`); a pair with a read-only side and no `mode` gets the
    /// one-way mode from that side.
    pub mode: SyncMode,
    /// `post_sync = ["cmd", ...]`: run once after the pair synced; empty: nothing.
    pub post_sync: Vec<String>,
}

/// A collection property a pair may sync (`metadata = ["displayname", "color"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetadataKey {
    /// The collection's display name (DAV `displayname`).
    DisplayName,
    /// The collection's colour (`calendar-color` / Apple `calendar-color`).
    Color,
    /// The collection's description (`calendar-description` / `addressbook-description`).
    Description,
    /// The collection's sort order (Apple `calendar-order`).
    Order,
}

impl MetadataKey {
    /// Every key, in the documented order.
    pub const ALL: [MetadataKey; 4] = [
        MetadataKey::DisplayName,
        MetadataKey::Color,
        MetadataKey::Description,
        MetadataKey::Order,
    ];

    /// The name of the vdir metadata file holding this property; also its name in the config
    /// file.
    pub fn file_name(&self) -> &'static str {
        match self {
            MetadataKey::DisplayName => "displayname",
            MetadataKey::Color => "color",
            MetadataKey::Description => "description",
            MetadataKey::Order => "order",
        }
    }

    /// The key named `name` in the config file (exactly, lower case).
    pub fn from_name(name: &str) -> Option<MetadataKey> {
        MetadataKey::ALL.into_iter().find(|k| k.file_name() == name)
    }
}

/// The `collections` key of a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectionsSpec {
    /// `collections` absent: each storage's path is itself the one collection.
    Root,
    /// `"from a"`: every collection found on side a (created on b when missing).
    FromA,
    /// `"from b"`: every collection found on side b (created on a when missing).
    FromB,
    /// `"all"`: every collection found on either side.
    All,
    /// An explicit list; never empty, names unique.
    Explicit(Vec<CollectionMapping>),
}

/// One entry of an explicit `collections` list.
///
/// A plain string entry `"work"` means `name = a = b = "work"`; a table entry
/// `{ name = "home", a = "personal", b = "home" }` pairs differently named collections (`a` and
/// `b` default to `name` when omitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionMapping {
    /// The name davsync uses for this collection pairing (in the status database and messages).
    pub name: String,
    /// The collection's name on side a.
    pub a: String,
    /// The collection's name on side b.
    pub b: String,
}

/// The `conflict_resolution` key of a pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ConflictResolution {
    /// Key absent: report conflicts and write nothing for them.
    #[default]
    Report,
    /// `"a wins"`: side a's version overwrites side b's.
    AWins,
    /// `"b wins"`: side b's version overwrites side a's.
    BWins,
    /// `{ cmd = ["prog", "arg", ...] }`: run this program (no shell) to merge; never empty,
    /// and the program name is never empty. Not subject to `~`/`$VAR` expansion.
    Command(Vec<String>),
}

/// The `mode` key of a pair: which way changes flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// `"two-way"`: changes on either side are copied to the other.
    #[default]
    TwoWay,
    /// `"a-to-b"`: side b mirrors side a; b's own changes are overwritten and items only on b
    /// are deleted.
    AToB,
    /// `"b-to-a"`: side a mirrors side b.
    BToA,
}

/// The process environment as the config needs it, so tests don't mutate the real env.
pub trait Env {
    /// The value of environment variable `name`, or `None` when it is unset (or not UTF-8).
    fn var(&self, name: &str) -> Option<String>;
}

/// [`Env`] backed by the real process environment ([`std::env::var_os`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var_os(name).and_then(|v| v.into_string().ok())
    }
}

/// A map of variable names to values is an [`Env`] (handy for tests).
impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A map of variable names to values is an [`Env`] (handy for tests).
impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Why a configuration could not be located, read or accepted.
///
/// Displayed as `FILE:LINE: KEY: MESSAGE`, e.g.
/// `/home/u/.config/davsync/config.toml:12: pair.calendars.a: storage "lapto" is not defined
/// (defined: backup, laptop)`; the line and the key are left out when not known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or does not describe a valid configuration.
    #[error("{}", invalid_display(path, *line, key.as_deref(), message))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line the problem is on, when known.
        line: Option<usize>,
        /// Dotted TOML key path the problem is about (`pair.calendars.a`,
        /// `pair.p.collections[1].name`), when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// No `-c`, and the environment gives no way to find the default config file.
    #[error(
        "cannot locate the config file: none of DAVSYNC_CONFIG, XDG_CONFIG_HOME and HOME is set; \
         use -c FILE"
    )]
    NoLocation,
}

impl ConfigError {
    /// The config file concerned, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigError::Read { path, .. } | ConfigError::Invalid { path, .. } => Some(path),
            ConfigError::NoLocation => None,
        }
    }

    /// The 1-based line the error is on, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => *line,
            _ => None,
        }
    }

    /// The dotted key path the error is about, when known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => key.as_deref(),
            _ => None,
        }
    }
}

fn invalid_display(path: &Path, line: Option<usize>, key: Option<&str>, message: &str) -> String {
    let mut out = path.display().to_string();
    if let Some(line) = line {
        out.push_str(&format!(":{line}"));
    }
    if let Some(key) = key {
        out.push_str(": ");
        out.push_str(key);
    }
    out.push_str(": ");
    out.push_str(message);
    out
}

/// Reads and parses the config file at `path` (see [`parse`]); a read failure is a
/// [`ConfigError::Read`] naming the path.
pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path, env)
}

/// Parses and validates config `text` that was read from `path`.
///
/// `path` is used in error messages, stored in [`Config::path`], and its directory is the base
/// for relative storage and status paths (a relative `path` is first made absolute against the
/// current directory). `~` and `$VAR`/`${VAR}` are expanded in `status_path` and storage
/// paths using `env`; an unset variable is an error naming it.
pub fn parse(text: &str, path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
    let cx = Cx {
        text,
        path,
        env,
        base_dir: base_dir(path),
    };
    let doc = DeTable::parse(text).map_err(|e| {
        cx.error(
            e.span(),
            None,
            format!("invalid TOML: {}", e.message().trim_end()),
        )
    })?;
    cx.parse_document(doc.get_ref())
}

/// The config file to use: `-c` (`explicit`) beats `DAVSYNC_CONFIG` beats
/// `$XDG_CONFIG_HOME/davsync/config.toml` beats `$HOME/.config/davsync/config.toml`.
///
/// Empty variables count as unset, and a relative `XDG_CONFIG_HOME` is ignored (as the XDG
/// base directory spec demands). Whether the file exists is not checked.
pub fn config_path(explicit: Option<&Path>, env: &dyn Env) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = nonempty_var(env, "DAVSYNC_CONFIG") {
        return Ok(PathBuf::from(path));
    }
    if let Some(dir) = xdg_dir(env, "XDG_CONFIG_HOME") {
        return Ok(dir.join("davsync").join("config.toml"));
    }
    if let Some(home) = nonempty_var(env, "HOME") {
        return Ok(Path::new(&home)
            .join(".config")
            .join("davsync")
            .join("config.toml"));
    }
    Err(ConfigError::NoLocation)
}

/// `$XDG_DATA_HOME/davsync`, else `$HOME/.local/share/davsync`.
fn default_status_path(env: &dyn Env) -> Option<PathBuf> {
    if let Some(dir) = xdg_dir(env, "XDG_DATA_HOME") {
        return Some(normalize(&dir.join("davsync")));
    }
    nonempty_var(env, "HOME").map(|home| {
        normalize(
            &Path::new(&home)
                .join(".local")
                .join("share")
                .join("davsync"),
        )
    })
}

fn nonempty_var(env: &dyn Env, name: &str) -> Option<String> {
    env.var(name).filter(|v| !v.is_empty())
}

/// An XDG base directory variable, ignored when empty or relative.
fn xdg_dir(env: &dyn Env, name: &str) -> Option<PathBuf> {
    nonempty_var(env, name)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// Directory of the config file, made absolute; base for relative paths in it.
fn base_dir(config: &Path) -> PathBuf {
    std::path::absolute(config)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default()
}

/// Lexical normalization: drops `.` components and resolves `..` against the preceding
/// component (never above the root). Does not touch the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Expands a leading `~` (alone or followed by `/`) to `$HOME`, and `$VAR` / `${VAR}`
/// anywhere. A `$` not followed by a variable name stays as it is. The error text is the
/// message for [`ConfigError::Invalid`].
fn expand(input: &str, env: &dyn Env) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = input;
    if let Some(after) = input.strip_prefix('~') {
        if after.is_empty() || after.starts_with('/') {
            let home = nonempty_var(env, "HOME")
                .ok_or("cannot expand \"~\": environment variable \"HOME\" is not set")?;
            out.push_str(&home);
            rest = after;
        } else {
            return Err(format!(
                "\"~user\" is not supported in {input:?}; write the full path"
            ));
        }
    }
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed \"${{\" in {input:?}"))?;
            let name = &braced[..end];
            if !is_var_name(name) {
                return Err(format!(
                    "invalid variable reference \"${{{name}}}\" in {input:?}"
                ));
            }
            (name, &braced[end + 1..])
        } else {
            let len = after
                .char_indices()
                .find(|&(i, c)| {
                    !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
                })
                .map_or(after.len(), |(i, _)| i);
            if len == 0 {
                out.push('$');
                rest = after;
                continue;
            }
            (&after[..len], &after[len..])
        };
        let value = env
            .var(name)
            .ok_or_else(|| format!("environment variable \"{name}\" is not set"))?;
        out.push_str(&value);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// What makes two DAV URLs the same place: scheme, host and port compared case-insensitively
/// (as the URL parser normalizes them), the path with trailing slashes ignored, and the query.
fn url_identity(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}:{}{}?{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default(),
            parsed.port_or_known_default().unwrap_or_default(),
            parsed.path().trim_end_matches('/'),
            parsed.query().unwrap_or_default()
        ),
        // Not reachable for a parsed config (the URL was checked); compare as written.
        Err(_) => url.trim_end_matches('/').to_string(),
    }
}

/// Storage and pair names: non-empty, only `[A-Za-z0-9_.-]`, not starting with `.`.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Collection names: non-empty, no `/` or NUL, not `.` or `..`.
fn is_valid_collection_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// `prefix.key`, quoting `key` as TOML does when it is not a bare key.
fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    let key = if bare {
        key.to_string()
    } else {
        let mut quoted = String::from("\"");
        for c in key.chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        quoted
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// The davsync spelling of a vdirsyncer key, said where that key is unknown.
fn vdirsyncer_key_fix(name: &str) -> Option<&'static str> {
    match name {
        "verify_fingerprint" => {
            Some("vdirsyncer's verify_fingerprint is written fingerprint = \"sha256:...\" here")
        }
        "useragent" => Some("vdirsyncer's useragent is written user_agent here"),
        "fetch" => Some(
            "vdirsyncer's fetch = [\"command\", \"prog\", \"arg\"] is written \
             { cmd = [\"prog\", \"arg\"] } here",
        ),
        _ => None,
    }
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

/// Parsing context: what every error needs.
struct Cx<'a> {
    text: &'a str,
    path: &'a Path,
    env: &'a dyn Env,
    base_dir: PathBuf,
}

/// One `[storage.<name>]` table as a storage type's folder parses it
/// (`storage::<type>::parse_config`): every error names the file, line and dotted key.
pub struct Section<'s, 'i> {
    cx: &'s Cx<'s>,
    value: &'s Value<'i>,
    table: &'s DeTable<'i>,
    key: &'s str,
    name: &'s str,
    status_path: &'s Path,
}

impl<'s, 'i> Section<'s, 'i> {
    /// Rejects keys that are neither common storage keys nor in one of `own` (the type's key
    /// lists); the error lists them all, the type's first.
    pub fn check_keys(&self, own: &[&[&str]]) -> Result<(), ConfigError> {
        let allowed: Vec<&str> = own
            .iter()
            .flat_map(|keys| keys.iter().copied())
            .chain(COMMON_STORAGE_KEYS.iter().copied().filter(|k| *k != "type"))
            .collect();
        let mut with_type = vec!["type"];
        with_type.extend(allowed);
        self.cx.check_keys(self.table, self.key, &with_type)
    }

    /// The storage's name (`<name>` in `[storage.<name>]`).
    pub fn storage_name(&self) -> &str {
        self.name
    }

    /// The configuration's `status_path` (expanded and absolute), for per-storage files kept
    /// there by default (an OAuth2 token file).
    pub fn status_path(&self) -> &Path {
        self.status_path
    }

    /// The value of key `name`, if given.
    pub fn get(&self, name: &str) -> Option<&'s Value<'i>> {
        self.table.get(name)
    }

    /// The dotted key of `name` in this section (`storage.<storage>.<name>`).
    pub fn sub(&self, name: &str) -> String {
        join_key(self.key, name)
    }

    /// An invalid value: `message` about key `name`, whose value is `value`.
    pub fn invalid(
        &self,
        value: &Value<'_>,
        name: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        self.cx.at(value.span(), &self.sub(name), message)
    }

    /// A value of the wrong type: "expected `expected`, found …".
    pub fn wrong_type(&self, value: &Value<'_>, name: &str, expected: &str) -> ConfigError {
        self.cx.wrong_type(value, &self.sub(name), expected)
    }

    /// A required key's value.
    pub fn required(&self, name: &str) -> Result<&'s Value<'i>, ConfigError> {
        self.cx.required(self.value, self.table, self.key, name)
    }

    /// A string value.
    pub fn string<'v>(&self, value: &'v Value<'_>, name: &str) -> Result<&'v str, ConfigError> {
        self.cx.string(value, &self.sub(name))
    }

    /// Optional string key `name`.
    pub fn optional_string(
        &self,
        name: &str,
    ) -> Result<Option<(&'s Value<'i>, &'s str)>, ConfigError> {
        self.get(name)
            .map(|v| Ok((v, self.string(v, name)?)))
            .transpose()
    }

    /// A path value: `~` and `$VAR` expanded, resolved against the config file's directory,
    /// normalized.
    pub fn path(&self, value: &Value<'_>, name: &str) -> Result<PathBuf, ConfigError> {
        self.cx.path_value(value, &self.sub(name))
    }

    /// Optional integer key `name`, between `min` and `max`.
    pub fn integer_in(
        &self,
        name: &str,
        min: i128,
        max: i128,
    ) -> Result<Option<i128>, ConfigError> {
        self.get(name)
            .map(|v| self.cx.integer_in(v, &self.sub(name), min, max))
            .transpose()
    }

    /// Optional command key `name`: a non-empty array of strings, the program name non-empty;
    /// empty when absent.
    pub fn command(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        self.get(name)
            .map(|v| self.cx.command_value(v, &self.sub(name)))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Optional secret key `name`: a literal, `{ cmd = [...] }` or `{ env = "VAR" }`.
    pub fn secret(&self, name: &str) -> Result<Option<Secret>, ConfigError> {
        self.get(name)
            .map(|v| self.cx.parse_secret(v, &self.sub(name)))
            .transpose()
    }
}

impl Cx<'_> {
    fn error(
        &self,
        span: Option<Range<usize>>,
        key: Option<&str>,
        message: impl Into<String>,
    ) -> ConfigError {
        let line = span.map(|span| {
            let end = span.start.min(self.text.len());
            self.text.as_bytes()[..end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            key: key.map(str::to_string),
            message: message.into(),
        }
    }

    fn at(&self, value_span: Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        self.error(Some(value_span), Some(key), message)
    }

    fn wrong_type(&self, value: &Value<'_>, key: &str, expected: &str) -> ConfigError {
        self.at(
            value.span(),
            key,
            format!("expected {expected}, found {}", type_name(value.get_ref())),
        )
    }

    fn table<'t, 'i>(
        &self,
        value: &'t Value<'i>,
        key: &str,
    ) -> Result<&'t DeTable<'i>, ConfigError> {
        value
            .get_ref()
            .as_table()
            .ok_or_else(|| self.wrong_type(value, key, "a table"))
    }

    fn string<'t>(&self, value: &'t Value<'_>, key: &str) -> Result<&'t str, ConfigError> {
        value
            .get_ref()
            .as_str()
            .ok_or_else(|| self.wrong_type(value, key, "a string"))
    }

    /// Rejects keys of `table` (at `key`) that are not in `allowed`.
    fn check_keys(
        &self,
        table: &DeTable<'_>,
        key: &str,
        allowed: &[&str],
    ) -> Result<(), ConfigError> {
        for (name, _) in table.iter() {
            if !allowed.contains(&name.get_ref().as_ref()) {
                let list = allowed.join(", ");
                let fix = vdirsyncer_key_fix(name.get_ref())
                    .map_or(String::new(), |fix| format!("; {fix}"));
                return Err(self.at(
                    name.span(),
                    &join_key(key, name.get_ref()),
                    format!("unknown key (expected one of: {list}){fix}"),
                ));
            }
        }
        Ok(())
    }

    /// The value of required key `name` in `table` (the value `table_value` at `key`).
    fn required<'t, 'i>(
        &self,
        table_value: &Value<'_>,
        table: &'t DeTable<'i>,
        key: &str,
        name: &str,
    ) -> Result<&'t Value<'i>, ConfigError> {
        table.get(name).ok_or_else(|| {
            self.at(
                table_value.span(),
                key,
                format!("missing required key \"{name}\""),
            )
        })
    }

    /// A path value: expanded, resolved against the config's directory, normalized.
    fn path_value(&self, value: &Value<'_>, key: &str) -> Result<PathBuf, ConfigError> {
        let raw = self.string(value, key)?;
        if raw.is_empty() {
            return Err(self.at(value.span(), key, "the path must not be empty"));
        }
        let expanded = expand(raw, self.env).map_err(|msg| self.at(value.span(), key, msg))?;
        Ok(normalize(&self.base_dir.join(expanded)))
    }

    fn parse_document(&self, root: &DeTable<'_>) -> Result<Config, ConfigError> {
        self.check_keys(root, "", TOP_LEVEL_KEYS)?;
        let status_path = match root.get("status_path") {
            Some(value) => self.path_value(value, "status_path")?,
            None => default_status_path(self.env).ok_or_else(|| {
                self.error(
                    None,
                    Some("status_path"),
                    "not set, and there is no default: neither XDG_DATA_HOME nor HOME is set",
                )
            })?,
        };

        let max_connections = match root.get("max_connections") {
            Some(value) => {
                let (min, max) = (*MAX_CONNECTIONS_RANGE.start(), *MAX_CONNECTIONS_RANGE.end());
                let n = self.integer_in(value, "max_connections", min as i128, max as i128)?;
                // In range, so it fits.
                usize::try_from(n).unwrap_or(max)
            }
            None => crate::http::DEFAULT_MAX_CONNECTIONS,
        };

        let mut storages = BTreeMap::new();
        if let Some(value) = root.get("storage") {
            for (name, value) in self.table(value, "storage")?.iter() {
                let key = join_key("storage", name.get_ref());
                self.check_name(name, &key, "storage")?;
                let storage = self.parse_storage(value, &key, name.get_ref(), &status_path)?;
                storages.insert(name.get_ref().to_string(), storage);
            }
        }

        let mut pairs = BTreeMap::new();
        if let Some(value) = root.get("pair") {
            for (name, value) in self.table(value, "pair")?.iter() {
                let key = join_key("pair", name.get_ref());
                self.check_name(name, &key, "pair")?;
                let pair = self.parse_pair(name.get_ref(), value, &key, &storages)?;
                pairs.insert(pair.name.clone(), pair);
            }
        }

        Ok(Config {
            path: self.path.to_path_buf(),
            status_path,
            max_connections,
            storages,
            pairs,
        })
    }

    fn check_name(
        &self,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        key: &str,
        what: &str,
    ) -> Result<(), ConfigError> {
        if is_valid_name(name.get_ref()) {
            return Ok(());
        }
        Err(self.at(
            name.span(),
            key,
            format!(
                "invalid {what} name: use only letters, digits, '_', '.' and '-', \
                 not starting with '.'"
            ),
        ))
    }

    fn parse_storage(
        &self,
        value: &Value<'_>,
        key: &str,
        name: &str,
        status_path: &Path,
    ) -> Result<StorageConfig, ConfigError> {
        let table = self.table(value, key)?;
        let type_key = join_key(key, "type");
        let type_value = self.required(value, table, key, "type")?;
        let storage_type = self.string(type_value, &type_key)?;
        let supported = SUPPORTED_STORAGE_TYPES.join(", ");
        let section = Section {
            cx: self,
            value,
            table,
            key,
            name,
            status_path,
        };
        let kind = match storage_type {
            known if SUPPORTED_STORAGE_TYPES.contains(&known) => {
                StorageKind::parse(known, &section)?
            }
            planned if PLANNED_STORAGE_TYPES.contains(&planned) => {
                return Err(self.at(
                    type_value.span(),
                    &type_key,
                    format!(
                        "storage type {planned:?} is not supported yet (supported: {supported})"
                    ),
                ));
            }
            "filesystem" => {
                return Err(self.at(
                    type_value.span(),
                    &type_key,
                    "\"filesystem\" is vdirsyncer's name; use type = \"vdir\"",
                ));
            }
            other => {
                return Err(self.at(
                    type_value.span(),
                    &type_key,
                    format!("unknown storage type {other:?} (supported: {supported})"),
                ));
            }
        };
        self.parse_common(&section, kind)
    }

    /// The keys every storage type accepts: `read_only` and the filters.
    fn parse_common(
        &self,
        section: &Section<'_, '_>,
        kind: StorageKind,
    ) -> Result<StorageConfig, ConfigError> {
        let read_only = match section.get("read_only") {
            None => kind.only_readable(),
            Some(v) => {
                let read_only = v.get_ref().as_bool().ok_or_else(|| {
                    self.wrong_type(v, &section.sub("read_only"), "true or false")
                })?;
                if !read_only && kind.only_readable() {
                    return Err(self.at(
                        v.span(),
                        &section.sub("read_only"),
                        "this storage type can only be read; drop read_only = false",
                    ));
                }
                read_only
            }
        };
        let mut filter = ItemFilter::default();
        let contacts_error = |v: &Value<'_>, name: &str, what: &str| {
            self.at(
                v.span(),
                &section.sub(name),
                format!("only calendar storages have {what}; this one holds contacts"),
            )
        };
        if let Some(v) = section.get("item_types") {
            if kind.holds_contacts() {
                return Err(contacts_error(v, "item_types", "item types"));
            }
            filter.item_types = self.parse_item_types(v, &section.sub("item_types"))?;
        }
        for name in ["start_date", "end_date"] {
            let Some(v) = section.get(name) else {
                continue;
            };
            if kind.holds_contacts() {
                return Err(contacts_error(v, name, "start and end dates"));
            }
            let bound = self.date_bound(v, &section.sub(name))?;
            if name == "start_date" {
                filter.start = Some(bound);
            } else {
                filter.end = Some(bound);
            }
        }
        if let (Some(DateBound::Absolute(start)), Some(DateBound::Absolute(end)), Some(v)) =
            (&filter.start, &filter.end, section.get("end_date"))
            && end < start
        {
            return Err(self.at(
                v.span(),
                &section.sub("end_date"),
                format!("{end} is before start_date {start}: no item would be in the window"),
            ));
        }
        // A storage limited to some types (a Google calendar) has those of its item_types
        // it can hold; only a list naming none of them can leave none.
        if let Some(limit) = kind.component_limit() {
            match (filter.clone().limited(limit), section.get("item_types")) {
                (Ok(limited), _) => filter = limited,
                (Err(why), Some(v)) => {
                    return Err(self.at(v.span(), &section.sub("item_types"), why));
                }
                (Err(_), None) => {}
            }
        }
        let interval = section
            .get("interval")
            .map(|v| self.integer_in(v, &section.sub("interval"), 1, u64::MAX.into()))
            .transpose()?
            .map(|secs| Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX)));
        Ok(StorageConfig {
            kind,
            read_only,
            filter,
            interval,
        })
    }

    /// `start_date`/`end_date`: a string (`"2026-01-31"`, `"-30d"`) or a TOML date literal.
    fn date_bound(&self, value: &Value<'_>, key: &str) -> Result<DateBound, ConfigError> {
        let text = match value.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Datetime(dt) if dt.date.is_some() && dt.time.is_none() => dt.to_string(),
            _ => {
                return Err(self.wrong_type(
                    value,
                    key,
                    "a date such as 2026-01-31 or a relative one such as \"-30d\"",
                ));
            }
        };
        text.parse::<DateBound>()
            .map_err(|msg| self.at(value.span(), key, msg))
    }

    /// `password`: a literal string, `{ cmd = [...] }` or `{ env = "VAR" }`.
    fn parse_secret(&self, value: &Value<'_>, key: &str) -> Result<Secret, ConfigError> {
        const EXPECTED: &str = "a string, { cmd = [...] } or { env = \"VAR\" }";
        match value.get_ref() {
            DeValue::String(s) => Ok(Secret::Literal(s.to_string())),
            DeValue::Table(table) => {
                self.check_keys(table, key, &["cmd", "env"])?;
                match (table.get("cmd"), table.get("env")) {
                    (Some(_), Some(_)) => Err(self.at(
                        value.span(),
                        key,
                        "give either \"cmd\" or \"env\", not both",
                    )),
                    (None, None) => Err(self.at(
                        value.span(),
                        key,
                        format!("expected {EXPECTED}, found an empty table"),
                    )),
                    (Some(cmd), None) => Ok(Secret::Command(
                        self.command_value(cmd, &join_key(key, "cmd"))?,
                    )),
                    (None, Some(var_value)) => {
                        let env_key = join_key(key, "env");
                        let var = self.string(var_value, &env_key)?;
                        if var.is_empty() || var.contains(['=', '\0']) {
                            return Err(self.at(
                                var_value.span(),
                                &env_key,
                                format!("invalid environment variable name {var:?}"),
                            ));
                        }
                        Ok(Secret::Env(var.to_string()))
                    }
                }
            }
            _ => Err(self.wrong_type(value, key, EXPECTED)),
        }
    }

    /// `item_types`: a non-empty array of component names, stored upper-case, no duplicates.
    fn parse_item_types(&self, value: &Value<'_>, key: &str) -> Result<Vec<String>, ConfigError> {
        let expected = DAV_ITEM_TYPES.join(", ");
        let items = value
            .get_ref()
            .as_array()
            .ok_or_else(|| self.wrong_type(value, key, "an array of component names"))?;
        if items.is_empty() {
            return Err(self.at(
                value.span(),
                key,
                "the list must not be empty (omit \"item_types\" to sync every component)",
            ));
        }
        let mut types: Vec<String> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let name = self.string(item, &item_key)?;
            let upper = name.to_ascii_uppercase();
            if !DAV_ITEM_TYPES.contains(&upper.as_str()) {
                return Err(self.at(
                    item.span(),
                    &item_key,
                    format!("unknown component {name:?} (expected one of: {expected})"),
                ));
            }
            if types.contains(&upper) {
                return Err(self.at(
                    item.span(),
                    &item_key,
                    format!("component {upper:?} is listed twice"),
                ));
            }
            types.push(upper);
        }
        Ok(types)
    }

    /// An integer in `min..=max`.
    fn integer_in(
        &self,
        value: &Value<'_>,
        key: &str,
        min: i128,
        max: i128,
    ) -> Result<i128, ConfigError> {
        let integer = value
            .get_ref()
            .as_integer()
            .ok_or_else(|| self.wrong_type(value, key, "an integer"))?;
        match i128::from_str_radix(integer.as_str(), integer.radix()) {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => {
                let message = if max >= i128::from(u64::MAX) {
                    format!("must be at least {min}, found {integer}")
                } else {
                    format!("must be between {min} and {max}, found {integer}")
                };
                Err(self.at(value.span(), key, message))
            }
        }
    }

    /// A command: a non-empty array of strings whose first element (the program) is non-empty.
    fn command_value(&self, value: &Value<'_>, key: &str) -> Result<Vec<String>, ConfigError> {
        let items = value
            .get_ref()
            .as_array()
            .ok_or_else(|| self.wrong_type(value, key, "an array of strings"))?;
        let mut cmd = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            cmd.push(self.string(item, &format!("{key}[{index}]"))?.to_string());
        }
        match cmd.first() {
            None => Err(self.at(
                value.span(),
                key,
                "the command must not be empty (expected [\"program\", \"arg\", ...])",
            )),
            Some(program) if program.is_empty() => Err(self.at(
                items[0].span(),
                &format!("{key}[0]"),
                "the program name must not be empty",
            )),
            Some(_) => Ok(cmd),
        }
    }

    /// A pair's `metadata`: an array of metadata names, no duplicates.
    fn parse_metadata(
        &self,
        value: &Value<'_>,
        key: &str,
    ) -> Result<Vec<MetadataKey>, ConfigError> {
        let expected = MetadataKey::ALL.map(|k| k.file_name()).join(", ");
        let items = value
            .get_ref()
            .as_array()
            .ok_or_else(|| self.wrong_type(value, key, "an array of metadata names"))?;
        let mut keys: Vec<MetadataKey> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let name = self.string(item, &item_key)?;
            let Some(metadata) = MetadataKey::from_name(name) else {
                return Err(self.at(
                    item.span(),
                    &item_key,
                    format!("unknown metadata {name:?} (expected one of: {expected})"),
                ));
            };
            if keys.contains(&metadata) {
                return Err(self.at(
                    item.span(),
                    &item_key,
                    format!("metadata {name:?} is listed twice"),
                ));
            }
            keys.push(metadata);
        }
        Ok(keys)
    }

    fn parse_pair(
        &self,
        name: &str,
        value: &Value<'_>,
        key: &str,
        storages: &BTreeMap<String, StorageConfig>,
    ) -> Result<PairConfig, ConfigError> {
        let table = self.table(value, key)?;
        self.check_keys(table, key, PAIR_KEYS)?;
        let mut sides = Vec::with_capacity(2);
        for side in ["a", "b"] {
            let side_key = join_key(key, side);
            let side_value = self.required(value, table, key, side)?;
            let storage = self.string(side_value, &side_key)?;
            if !storages.contains_key(storage) {
                let defined = if storages.is_empty() {
                    "no storage is defined".to_string()
                } else {
                    let names: Vec<&str> = storages.keys().map(String::as_str).collect();
                    format!("defined: {}", names.join(", "))
                };
                return Err(self.at(
                    side_value.span(),
                    &side_key,
                    format!("storage {storage:?} is not defined ({defined})"),
                ));
            }
            sides.push((storage, side_value.span(), side_key));
        }
        let (a, _, _) = &sides[0];
        let (b, b_span, b_key) = &sides[1];
        self.check_distinct(a, b, storages, b_span.clone(), b_key)?;
        self.check_item_types_overlap(a, b, storages, b_span.clone(), b_key)?;

        let collections = match table.get("collections") {
            None => CollectionsSpec::Root,
            Some(value) => self.parse_collections(value, &join_key(key, "collections"))?,
        };
        let conflict_resolution = match table.get("conflict_resolution") {
            None => ConflictResolution::Report,
            Some(value) => {
                self.parse_conflict_resolution(value, &join_key(key, "conflict_resolution"))?
            }
        };
        let metadata = match table.get("metadata") {
            None => Vec::new(),
            Some(value) => self.parse_metadata(value, &join_key(key, "metadata"))?,
        };
        let mode = self.parse_mode(value, table.get("mode"), key, [a, b], storages)?;
        let post_sync = match table.get("post_sync") {
            None => Vec::new(),
            Some(value) => self.command_value(value, &join_key(key, "post_sync"))?,
        };
        Ok(PairConfig {
            name: name.to_string(),
            a: a.to_string(),
            b: b.to_string(),
            collections,
            conflict_resolution,
            metadata,
            mode,
            post_sync,
        })
    }

    /// A pair's `mode`, checked against its sides' `read_only`: nothing is ever planned to be
    /// written into a read-only side, and without `mode` a read-only side is the source.
    fn parse_mode(
        &self,
        pair_value: &Value<'_>,
        mode_value: Option<&Value<'_>>,
        key: &str,
        [a, b]: [&str; 2],
        storages: &BTreeMap<String, StorageConfig>,
    ) -> Result<SyncMode, ConfigError> {
        let read_only = |name: &str| storages.get(name).is_some_and(|s| s.read_only);
        let (ro_a, ro_b) = (read_only(a), read_only(b));
        let mode_key = join_key(key, "mode");
        let span = mode_value.map_or_else(|| pair_value.span(), Spanned::span);
        let error_key = if mode_value.is_some() {
            mode_key.as_str()
        } else {
            key
        };
        if ro_a && ro_b {
            return Err(self.at(
                span,
                error_key,
                format!(
                    "storages {a:?} and {b:?} are both read_only: nothing can be synced; make one \
                     of them writable"
                ),
            ));
        }
        let Some(mode_value) = mode_value else {
            return Ok(if ro_a {
                SyncMode::AToB
            } else if ro_b {
                SyncMode::BToA
            } else {
                SyncMode::TwoWay
            });
        };
        let mode = match self.string(mode_value, &mode_key)? {
            "two-way" => SyncMode::TwoWay,
            "a-to-b" => SyncMode::AToB,
            "b-to-a" => SyncMode::BToA,
            other => {
                return Err(self.at(
                    mode_value.span(),
                    &mode_key,
                    format!(
                        "unknown mode {other:?} (expected \"two-way\", \"a-to-b\" or \"b-to-a\")"
                    ),
                ));
            }
        };
        let conflict = match mode {
            SyncMode::TwoWay if ro_a => Some(("two-way", a, "a-to-b")),
            SyncMode::TwoWay if ro_b => Some(("two-way", b, "b-to-a")),
            SyncMode::BToA if ro_a => Some(("b-to-a", a, "a-to-b")),
            SyncMode::AToB if ro_b => Some(("a-to-b", b, "b-to-a")),
            _ => None,
        };
        match conflict {
            None => Ok(mode),
            Some((written, storage, fits)) => Err(self.at(
                mode_value.span(),
                &mode_key,
                format!(
                    "mode = \"{written}\" would write into storage {storage:?}, which is \
                     read_only; use mode = \"{fits}\" (or leave mode out)"
                ),
            )),
        }
    }

    /// Two sides restricted to component types they do not share would sync nothing, and
    /// leave every item out of scope: a mistake, not a setting.
    fn check_item_types_overlap(
        &self,
        a: &str,
        b: &str,
        storages: &BTreeMap<String, StorageConfig>,
        span: Range<usize>,
        key: &str,
    ) -> Result<(), ConfigError> {
        let (Some(storage_a), Some(storage_b)) = (storages.get(a), storages.get(b)) else {
            return Ok(());
        };
        let (types_a, types_b) = (&storage_a.filter.item_types, &storage_b.filter.item_types);
        if types_a.is_empty() || types_b.is_empty() || types_a.iter().any(|t| types_b.contains(t)) {
            return Ok(());
        }
        Err(self.at(
            span,
            key,
            format!(
                "storage {a:?} has item_types [{}] and storage {b:?} has item_types [{}]: no \
                 component type in common, nothing would sync; give them a common type",
                types_a.join(", "),
                types_b.join(", ")
            ),
        ))
    }

    /// The two sides of a pair must be different places.
    fn check_distinct(
        &self,
        a: &str,
        b: &str,
        storages: &BTreeMap<String, StorageConfig>,
        span: Range<usize>,
        key: &str,
    ) -> Result<(), ConfigError> {
        if a == b {
            return Err(self.at(
                span,
                key,
                format!("a and b are both storage {a:?}; a pair needs two different places"),
            ));
        }
        let (Some(storage_a), Some(storage_b)) = (storages.get(a), storages.get(b)) else {
            return Ok(());
        };
        let message = match (storage_a.kind.place(), storage_b.kind.place()) {
            (Place::Path(path_a), Place::Path(path_b)) => {
                if path_a == path_b {
                    format!(
                        "storages {a:?} and {b:?} are the same directory {}",
                        path_a.display()
                    )
                } else if path_b.starts_with(path_a) {
                    format!(
                        "storage {b:?} ({}) is inside storage {a:?} ({})",
                        path_b.display(),
                        path_a.display()
                    )
                } else if path_a.starts_with(path_b) {
                    format!(
                        "storage {a:?} ({}) is inside storage {b:?} ({})",
                        path_a.display(),
                        path_b.display()
                    )
                } else {
                    return Ok(());
                }
            }
            (Place::Url(url_a), Place::Url(url_b))
                if url_identity(url_a) == url_identity(url_b) =>
            {
                format!("storages {a:?} and {b:?} are the same URL {url_a}")
            }
            (Place::Account(file_a), Place::Account(file_b)) if file_a == file_b => format!(
                "storages {a:?} and {b:?} are the same account (token file {})",
                file_a.display()
            ),
            _ => return Ok(()),
        };
        Err(self.at(
            span,
            key,
            format!("{message}; a pair needs two separate places"),
        ))
    }

    fn parse_collections(
        &self,
        value: &Value<'_>,
        key: &str,
    ) -> Result<CollectionsSpec, ConfigError> {
        const EXPECTED: &str = "\"from a\", \"from b\", \"all\" or an array of collections";
        let items = match value.get_ref() {
            DeValue::String(s) => {
                return match s.as_ref() {
                    "from a" => Ok(CollectionsSpec::FromA),
                    "from b" => Ok(CollectionsSpec::FromB),
                    "all" => Ok(CollectionsSpec::All),
                    other => Err(self.at(
                        value.span(),
                        key,
                        format!("unknown value {other:?} (expected {EXPECTED})"),
                    )),
                };
            }
            DeValue::Array(items) => items,
            _ => return Err(self.wrong_type(value, key, EXPECTED)),
        };
        if items.is_empty() {
            return Err(self.at(
                value.span(),
                key,
                "the list must not be empty (omit \"collections\" to sync the storage paths \
                 themselves)",
            ));
        }
        let mut mappings: Vec<CollectionMapping> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let mapping = match item.get_ref() {
                // vdirsyncer's list spelling: here it would name a collection literally
                // "from b", created on both sides.
                DeValue::String(name) if ["from a", "from b", "all"].contains(&name.as_ref()) => {
                    return Err(self.at(
                        item.span(),
                        &item_key,
                        format!(
                            "{name:?} inside a list names a collection called {name:?}; \
                             use collections = {name:?}"
                        ),
                    ));
                }
                DeValue::String(name) => {
                    self.check_collection_name(name, item.span(), &item_key)?;
                    CollectionMapping {
                        name: name.to_string(),
                        a: name.to_string(),
                        b: name.to_string(),
                    }
                }
                DeValue::Table(table) => {
                    self.check_keys(table, &item_key, &["name", "a", "b"])?;
                    let name_key = join_key(&item_key, "name");
                    let name_value = self.required(item, table, &item_key, "name")?;
                    let name = self.string(name_value, &name_key)?;
                    self.check_collection_name(name, name_value.span(), &name_key)?;
                    let side = |side: &str| -> Result<String, ConfigError> {
                        match table.get(side) {
                            None => Ok(name.to_string()),
                            Some(value) => {
                                let side_key = join_key(&item_key, side);
                                let side_name = self.string(value, &side_key)?;
                                self.check_collection_name(side_name, value.span(), &side_key)?;
                                Ok(side_name.to_string())
                            }
                        }
                    };
                    let a = side("a")?;
                    let b = side("b")?;
                    CollectionMapping {
                        name: name.to_string(),
                        a,
                        b,
                    }
                }
                // vdirsyncer's `["name", "name_on_a", "name_on_b"]`.
                DeValue::Array(_) => {
                    return Err(self.at(
                        item.span(),
                        &item_key,
                        "a list inside the list is vdirsyncer's spelling; use a table \
                         { name = \"...\", a = \"name on a\", b = \"name on b\" }",
                    ));
                }
                _ => {
                    return Err(self.wrong_type(
                        item,
                        &item_key,
                        "a collection name or a table { name = ..., a = ..., b = ... }",
                    ));
                }
            };
            for earlier in &mappings {
                let clash = if earlier.name == mapping.name {
                    Some(format!("collection {:?} is listed twice", mapping.name))
                } else if earlier.a == mapping.a {
                    Some(format!(
                        "collection {:?} on side a is already paired by {:?}",
                        mapping.a, earlier.name
                    ))
                } else if earlier.b == mapping.b {
                    Some(format!(
                        "collection {:?} on side b is already paired by {:?}",
                        mapping.b, earlier.name
                    ))
                } else {
                    None
                };
                if let Some(message) = clash {
                    return Err(self.at(item.span(), &item_key, message));
                }
            }
            mappings.push(mapping);
        }
        Ok(CollectionsSpec::Explicit(mappings))
    }

    fn check_collection_name(
        &self,
        name: &str,
        span: Range<usize>,
        key: &str,
    ) -> Result<(), ConfigError> {
        if is_valid_collection_name(name) {
            return Ok(());
        }
        Err(self.at(
            span,
            key,
            format!("invalid collection name {name:?}: it must be non-empty, contain no '/', and not be \".\" or \"..\""),
        ))
    }

    fn parse_conflict_resolution(
        &self,
        value: &Value<'_>,
        key: &str,
    ) -> Result<ConflictResolution, ConfigError> {
        const EXPECTED: &str = "\"a wins\", \"b wins\" or a table { cmd = [...] }";
        match value.get_ref() {
            DeValue::String(s) => match s.as_ref() {
                "a wins" => Ok(ConflictResolution::AWins),
                "b wins" => Ok(ConflictResolution::BWins),
                other => Err(self.at(
                    value.span(),
                    key,
                    format!("unknown value {other:?} (expected {EXPECTED})"),
                )),
            },
            // vdirsyncer's `["command", prog, args...]`.
            DeValue::Array(items) => {
                let words: Vec<&str> = items
                    .iter()
                    .filter_map(|item| item.get_ref().as_str())
                    .collect();
                let fix = match words.split_first() {
                    Some((&"command", cmd)) if !cmd.is_empty() => format!(
                        "use conflict_resolution = {{ cmd = [{}] }}",
                        cmd.iter()
                            .map(|w| format!("{w:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => "use conflict_resolution = { cmd = [\"prog\", \"arg\"] }".to_owned(),
                };
                Err(self.at(
                    value.span(),
                    key,
                    format!("a list is vdirsyncer's spelling of a merge command; {fix}"),
                ))
            }
            DeValue::Table(table) => {
                self.check_keys(table, key, &["cmd"])?;
                let cmd_value = self.required(value, table, key, "cmd")?;
                Ok(ConflictResolution::Command(
                    self.command_value(cmd_value, &join_key(key, "cmd"))?,
                ))
            }
            _ => Err(self.wrong_type(value, key, EXPECTED)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FILE: &str = "/home/u/.config/davsync/config.toml";

    /// Environment variables of one test case.
    type Vars = &'static [(&'static str, &'static str)];

    fn env(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn home_env() -> BTreeMap<String, String> {
        env(&[("HOME", "/home/u"), ("DEMO", "/srv/demo")])
    }

    fn parse_ok(text: &str, env: &dyn Env) -> Config {
        match parse(text, Path::new(FILE), env) {
            Ok(config) => config,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn parse_err(text: &str, env: &dyn Env) -> String {
        match parse(text, Path::new(FILE), env) {
            Ok(config) => panic!("unexpected success: {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// A storage of `kind` with every common key at its default.
    fn storage(kind: StorageKind) -> StorageConfig {
        StorageConfig {
            kind,
            read_only: false,
            filter: ItemFilter::default(),
            interval: None,
        }
    }

    fn vdir(path: &str, fileext: &str) -> StorageConfig {
        storage(StorageKind::Vdir(VdirConfig {
            path: PathBuf::from(path),
            fileext: fileext.to_string(),
            post_hook: Vec::new(),
            pre_deletion_hook: Vec::new(),
        }))
    }

    fn mapping(name: &str, a: &str, b: &str) -> CollectionMapping {
        CollectionMapping {
            name: name.to_string(),
            a: a.to_string(),
            b: b.to_string(),
        }
    }

    /// Lines 1-9; anything appended starts on line 10 (after the separating blank line).
    const STORAGES: &str = r#"[storage.laptop]
type = "vdir"
path = "/home/u/cal"
fileext = ".ics"

[storage.backup]
type = "vdir"
path = "/mnt/backup/cal"
fileext = ".ics"
"#;

    fn with_storages(rest: &str) -> String {
        format!("{STORAGES}\n{rest}")
    }

    #[test]
    fn full_valid_config() {
        let text = r#"
status_path = "/var/lib/davsync"

[storage.laptop]
type = "vdir"
path = "~/.calendars"
fileext = ".ics"

[storage.backup]
type = "vdir"
path = "/mnt/backup/calendars"
fileext = ".ics"

[storage.contacts-a]
type = "vdir"
path = "$DEMO/contacts/a"
fileext = ".vcf"

[storage."contacts_b.2"]
type = "vdir"
path = "${DEMO}/contacts/b"
fileext = ".vcf"

[pair.root]
a = "laptop"
b = "backup"

[pair.from_a]
a = "laptop"
b = "backup"
collections = "from a"
conflict_resolution = "a wins"

[pair.from-b]
a = "laptop"
b = "backup"
collections = "from b"
conflict_resolution = "b wins"

[pair.all]
a = "contacts-a"
b = "contacts_b.2"
collections = "all"
conflict_resolution = { cmd = ["vimdiff", "--noplugin"] }

[pair."explicit.1"]
a = "laptop"
b = "backup"
collections = ["work", { name = "home", a = "personal", b = "home" }, { name = "x", b = "y" }]

[pair."explicit.1".conflict_resolution]
cmd = ["merge-tool"]
"#;
        let config = parse_ok(text, &home_env());
        let storages: BTreeMap<String, StorageConfig> = [
            ("laptop", vdir("/home/u/.calendars", ".ics")),
            ("backup", vdir("/mnt/backup/calendars", ".ics")),
            ("contacts-a", vdir("/srv/demo/contacts/a", ".vcf")),
            ("contacts_b.2", vdir("/srv/demo/contacts/b", ".vcf")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let pair = |name: &str, a: &str, b: &str, c, r| {
            (
                name.to_string(),
                PairConfig {
                    name: name.to_string(),
                    a: a.to_string(),
                    b: b.to_string(),
                    collections: c,
                    conflict_resolution: r,
                    metadata: Vec::new(),
                    mode: SyncMode::TwoWay,
                    post_sync: Vec::new(),
                },
            )
        };
        let pairs: BTreeMap<String, PairConfig> = [
            pair(
                "root",
                "laptop",
                "backup",
                CollectionsSpec::Root,
                ConflictResolution::Report,
            ),
            pair(
                "from_a",
                "laptop",
                "backup",
                CollectionsSpec::FromA,
                ConflictResolution::AWins,
            ),
            pair(
                "from-b",
                "laptop",
                "backup",
                CollectionsSpec::FromB,
                ConflictResolution::BWins,
            ),
            pair(
                "all",
                "contacts-a",
                "contacts_b.2",
                CollectionsSpec::All,
                ConflictResolution::Command(vec!["vimdiff".into(), "--noplugin".into()]),
            ),
            pair(
                "explicit.1",
                "laptop",
                "backup",
                CollectionsSpec::Explicit(vec![
                    mapping("work", "work", "work"),
                    mapping("home", "personal", "home"),
                    mapping("x", "x", "y"),
                ]),
                ConflictResolution::Command(vec!["merge-tool".into()]),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            config,
            Config {
                path: PathBuf::from(FILE),
                status_path: PathBuf::from("/var/lib/davsync"),
                max_connections: 16,
                storages,
                pairs,
            }
        );
    }

    #[test]
    fn empty_config_is_valid() {
        let config = parse_ok("", &home_env());
        assert!(config.storages.is_empty());
        assert!(config.pairs.is_empty());
    }

    #[test]
    fn max_connections_defaults_and_is_read() {
        assert_eq!(parse_ok("", &home_env()).max_connections, 16);
        assert_eq!(
            parse_ok("max_connections = 1\n", &home_env()).max_connections,
            1
        );
        assert_eq!(
            parse_ok("max_connections = 256\n", &home_env()).max_connections,
            256
        );
    }

    #[test]
    fn status_path_default() {
        let cases: &[(&str, Vars, Result<&str, &str>)] = &[
            (
                "XDG_DATA_HOME wins",
                &[("XDG_DATA_HOME", "/xdg/data"), ("HOME", "/home/u")],
                Ok("/xdg/data/davsync"),
            ),
            (
                "HOME when XDG_DATA_HOME unset",
                &[("HOME", "/home/u")],
                Ok("/home/u/.local/share/davsync"),
            ),
            (
                "empty XDG_DATA_HOME ignored",
                &[("XDG_DATA_HOME", ""), ("HOME", "/home/u")],
                Ok("/home/u/.local/share/davsync"),
            ),
            (
                "relative XDG_DATA_HOME ignored",
                &[("XDG_DATA_HOME", "data"), ("HOME", "/home/u")],
                Ok("/home/u/.local/share/davsync"),
            ),
            (
                "neither",
                &[],
                Err(
                    "/home/u/.config/davsync/config.toml: status_path: not set, and there is \
                     no default: neither XDG_DATA_HOME nor HOME is set",
                ),
            ),
        ];
        for (name, vars, expected) in cases {
            let got = parse(STORAGES, Path::new(FILE), &env(vars))
                .map(|c| c.status_path)
                .map_err(|e| e.to_string());
            let expected = expected.map(PathBuf::from).map_err(|e| e.to_string());
            assert_eq!(got, expected, "case {name}");
        }
    }

    #[test]
    fn path_expansion() {
        let env = env(&[
            ("HOME", "/home/u"),
            ("DEMO", "/srv/demo"),
            ("EMPTY", ""),
            ("_X1", "x1"),
        ]);
        let cases: &[(&str, &str)] = &[
            ("~", "/home/u"),
            ("~/cal", "/home/u/cal"),
            ("$DEMO", "/srv/demo"),
            ("$DEMO/laptop", "/srv/demo/laptop"),
            ("${DEMO}/laptop", "/srv/demo/laptop"),
            ("${DEMO}laptop", "/srv/demolaptop"),
            ("/a/$_X1-b/${_X1}", "/a/x1-b/x1"),
            ("/a$EMPTY/b", "/a/b"),
            ("/cost/$5/$", "/cost/$5/$"),
            ("/a/~/b", "/a/~/b"),
            ("/a/./b/../c/", "/a/c"),
            ("/../a", "/a"),
            ("$DEMO/../other", "/srv/other"),
            ("cal", "/home/u/.config/davsync/cal"),
            ("../../cal", "/home/u/cal"),
        ];
        for (input, expected) in cases {
            let text = format!(
                "status_path = {input:?}\n[storage.s]\ntype = \"vdir\"\npath = {input:?}\nfileext = \".ics\"\n"
            );
            let config = parse_ok(&text, &env);
            assert_eq!(
                config.status_path,
                Path::new(expected),
                "status_path {input}"
            );
            assert_eq!(
                config.storages["s"],
                vdir(expected, ".ics"),
                "storage path {input}"
            );
        }
    }

    #[test]
    fn path_expansion_errors() {
        let cases: &[(&str, Vars, &str)] = &[
            (
                "$NOPE/cal",
                &[("HOME", "/home/u")],
                "environment variable \"NOPE\" is not set",
            ),
            (
                "/x/${NOPE}",
                &[("HOME", "/home/u")],
                "environment variable \"NOPE\" is not set",
            ),
            (
                "~/cal",
                &[("XDG_DATA_HOME", "/d")],
                "cannot expand \"~\": environment variable \"HOME\" is not set",
            ),
            (
                "~bob/cal",
                &[("HOME", "/home/u")],
                "\"~user\" is not supported in \"~bob/cal\"; write the full path",
            ),
            (
                "/x/${HOME",
                &[("HOME", "/home/u")],
                "unclosed \"${\" in \"/x/${HOME\"",
            ),
            (
                "/x/${1A}",
                &[("HOME", "/home/u")],
                "invalid variable reference \"${1A}\" in \"/x/${1A}\"",
            ),
            ("", &[("HOME", "/home/u")], "the path must not be empty"),
        ];
        for (input, vars, message) in cases {
            let text =
                format!("\n[storage.s]\ntype = \"vdir\"\npath = {input:?}\nfileext = \".ics\"\n");
            assert_eq!(
                parse_err(&text, &env(vars)),
                format!("{FILE}:4: storage.s.path: {message}"),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn errors() {
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "unknown top-level key",
                "status_path = \"/s\"\nstatus = \"x\"\n".to_string(),
                "2: status: unknown key (expected one of: status_path, max_connections, storage, pair)",
            ),
            (
                "unknown storage key",
                "[storage.s]\ntype = \"vdir\"\npath = \"/x\"\nfileext = \".ics\"\npth = \"/y\"\n"
                    .to_string(),
                "5: storage.s.pth: unknown key (expected one of: type, path, fileext, post_hook, \
                 pre_deletion_hook, read_only, item_types, start_date, end_date, interval)",
            ),
            (
                "wrong type for path",
                "[storage.s]\ntype = \"vdir\"\npath = 42\nfileext = \".ics\"\n".to_string(),
                "3: storage.s.path: expected a string, found an integer",
            ),
            (
                "wrong type for status_path",
                "status_path = [\"/a\"]\n".to_string(),
                "1: status_path: expected a string, found an array",
            ),
            (
                "max_connections of zero",
                "status_path = \"/s\"\nmax_connections = 0\n".to_string(),
                "2: max_connections: must be between 1 and 256, found 0",
            ),
            (
                "max_connections above the range",
                "max_connections = 257\n".to_string(),
                "1: max_connections: must be between 1 and 256, found 257",
            ),
            (
                "max_connections not an integer",
                "max_connections = \"8\"\n".to_string(),
                "1: max_connections: expected an integer, found a string",
            ),
            (
                "storage is not a table",
                "[storage]\ns = \"vdir\"\n".to_string(),
                "2: storage.s: expected a table, found a string",
            ),
            (
                "pair section is not a table",
                "pair = 1\n".to_string(),
                "1: pair: expected a table, found an integer",
            ),
            (
                "missing path",
                "\n[storage.s]\ntype = \"vdir\"\nfileext = \".ics\"\n".to_string(),
                "2: storage.s: missing required key \"path\"",
            ),
            (
                "missing type",
                "[storage.s]\npath = \"/x\"\n".to_string(),
                "1: storage.s: missing required key \"type\"",
            ),
            (
                "fileext without dot",
                "[storage.s]\ntype = \"vdir\"\npath = \"/x\"\nfileext = \"ics\"\n".to_string(),
                "4: storage.s.fileext: invalid file extension \"ics\": it must start with '.' \
                 and contain no '/' (e.g. \".ics\", \".vcf\")",
            ),
            (
                "fileext with slash",
                "[storage.s]\ntype = \"vdir\"\npath = \"/x\"\nfileext = \"./ics\"\n".to_string(),
                "4: storage.s.fileext: invalid file extension \"./ics\": it must start with '.' \
                 and contain no '/' (e.g. \".ics\", \".vcf\")",
            ),
            (
                "google storage without client_id",
                "[storage.s]\ntype = \"google_calendar\"\n".to_string(),
                "1: storage.s: missing required key \"client_id\"",
            ),
            (
                "unknown storage type",
                "[storage.s]\ntype = \"ftp\"\n".to_string(),
                "2: storage.s.type: unknown storage type \"ftp\" (supported: vdir, singlefile, \
                 caldav, carddav, webcal, google_calendar, google_contacts)",
            ),
            (
                "bad storage name",
                "[storage.\"my laptop\"]\ntype = \"vdir\"\n".to_string(),
                "1: storage.\"my laptop\": invalid storage name: use only letters, digits, '_', \
                 '.' and '-', not starting with '.'",
            ),
            (
                "storage name starting with dot",
                "[storage.\".hidden\"]\ntype = \"vdir\"\n".to_string(),
                "1: storage.\".hidden\": invalid storage name: use only letters, digits, '_', \
                 '.' and '-', not starting with '.'",
            ),
            (
                "bad pair name",
                with_storages("[pair.\"cal/endars\"]\na = \"laptop\"\nb = \"backup\"\n"),
                "11: pair.\"cal/endars\": invalid pair name: use only letters, digits, '_', \
                 '.' and '-', not starting with '.'",
            ),
            (
                "empty pair name",
                with_storages("[pair.\"\"]\na = \"laptop\"\nb = \"backup\"\n"),
                "11: pair.\"\": invalid pair name: use only letters, digits, '_', \
                 '.' and '-', not starting with '.'",
            ),
            (
                "unknown pair key",
                with_storages("[pair.p]\na = \"laptop\"\nb = \"backup\"\nconflict = \"a wins\"\n"),
                "14: pair.p.conflict: unknown key (expected one of: a, b, collections, \
                 conflict_resolution, metadata, mode, post_sync)",
            ),
            (
                "missing b",
                with_storages("[pair.p]\na = \"laptop\"\n"),
                "11: pair.p: missing required key \"b\"",
            ),
            (
                "missing storage in pair",
                with_storages("[pair.calendars]\na = \"lapto\"\nb = \"backup\"\n"),
                "12: pair.calendars.a: storage \"lapto\" is not defined (defined: backup, laptop)",
            ),
            (
                "missing storage, none defined",
                "[pair.p]\na = \"x\"\nb = \"y\"\n".to_string(),
                "2: pair.p.a: storage \"x\" is not defined (no storage is defined)",
            ),
            (
                "same storage both sides",
                with_storages("[pair.p]\na = \"laptop\"\nb = \"laptop\"\n"),
                "13: pair.p.b: a and b are both storage \"laptop\"; a pair needs two different \
                 places",
            ),
            (
                "same path",
                "[storage.x]\ntype = \"vdir\"\npath = \"/data/cal\"\nfileext = \".ics\"\n\
                 [storage.y]\ntype = \"vdir\"\npath = \"/data/other/../cal/\"\nfileext = \".vcf\"\n\
                 [pair.p]\na = \"x\"\nb = \"y\"\n"
                    .to_string(),
                "11: pair.p.b: storages \"x\" and \"y\" are the same directory /data/cal; a pair \
                 needs two separate places",
            ),
            (
                "b nested in a",
                "[storage.x]\ntype = \"vdir\"\npath = \"/srv\"\nfileext = \".ics\"\n\
                 [storage.y]\ntype = \"vdir\"\npath = \"$DEMO/cal\"\nfileext = \".ics\"\n\
                 [pair.p]\na = \"x\"\nb = \"y\"\n"
                    .to_string(),
                "11: pair.p.b: storage \"y\" (/srv/demo/cal) is inside storage \"x\" (/srv); a pair \
                 needs two separate places",
            ),
            (
                "a nested in b",
                "[storage.x]\ntype = \"vdir\"\npath = \"/data/cal/sub\"\nfileext = \".ics\"\n\
                 [storage.y]\ntype = \"vdir\"\npath = \"/data/cal\"\nfileext = \".ics\"\n\
                 [pair.p]\na = \"x\"\nb = \"y\"\n"
                    .to_string(),
                "11: pair.p.b: storage \"x\" (/data/cal/sub) is inside storage \"y\" (/data/cal); \
                 a pair needs two separate places",
            ),
            (
                "unknown collections value",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\ncollections = \"from c\"\n",
                ),
                "14: pair.p.collections: unknown value \"from c\" (expected \"from a\", \
                 \"from b\", \"all\" or an array of collections)",
            ),
            (
                "collections wrong type",
                with_storages("[pair.p]\na = \"laptop\"\nb = \"backup\"\ncollections = true\n"),
                "14: pair.p.collections: expected \"from a\", \"from b\", \"all\" or an array of \
                 collections, found a boolean",
            ),
            (
                "empty collections list",
                with_storages("[pair.p]\na = \"laptop\"\nb = \"backup\"\ncollections = []\n"),
                "14: pair.p.collections: the list must not be empty (omit \"collections\" to \
                 sync the storage paths themselves)",
            ),
            (
                "collection entry missing name",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\ncollections = [\n  \"work\",\n  { a = \"x\" },\n]\n",
                ),
                "16: pair.p.collections[1]: missing required key \"name\"",
            ),
            (
                "collection entry unknown key",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\ncollections = [\n  { name = \"h\", c = \"x\" },\n]\n",
                ),
                "15: pair.p.collections[0].c: unknown key (expected one of: name, a, b)",
            ),
            (
                "collection entry wrong type",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\ncollections = [\"w\", 3]\n",
                ),
                "14: pair.p.collections[1]: expected a collection name or a table \
                 { name = ..., a = ..., b = ... }, found an integer",
            ),
            (
                "bad collection name",
                with_storages("[pair.p]\na = \"laptop\"\nb = \"backup\"\ncollections = [\"..\"]\n"),
                "14: pair.p.collections[0]: invalid collection name \"..\": it must be \
                 non-empty, contain no '/', and not be \".\" or \"..\"",
            ),
            (
                "duplicate collection",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\ncollections = [\"w\", { name = \"w\", b = \"v\" }]\n",
                ),
                "14: pair.p.collections[1]: collection \"w\" is listed twice",
            ),
            (
                "collection used twice on side a",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\ncollections = [\"w\", { name = \"v\", a = \"w\" }]\n",
                ),
                "14: pair.p.collections[1]: collection \"w\" on side a is already paired by \"w\"",
            ),
            (
                "unknown conflict_resolution",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\nconflict_resolution = \"a-wins\"\n",
                ),
                "14: pair.p.conflict_resolution: unknown value \"a-wins\" (expected \"a wins\", \
                 \"b wins\" or a table { cmd = [...] })",
            ),
            (
                "empty cmd",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\n\n[pair.p.conflict_resolution]\ncmd = []\n",
                ),
                "16: pair.p.conflict_resolution.cmd: the command must not be empty (expected \
                 [\"program\", \"arg\", ...])",
            ),
            (
                "empty program",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\nconflict_resolution = { cmd = [\"\", \"x\"] }\n",
                ),
                "14: pair.p.conflict_resolution.cmd[0]: the program name must not be empty",
            ),
            (
                "cmd element wrong type",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\nconflict_resolution = { cmd = [\"m\", 1] }\n",
                ),
                "14: pair.p.conflict_resolution.cmd[1]: expected a string, found an integer",
            ),
            (
                "cmd missing",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\nconflict_resolution = { command = \"m\" }\n",
                ),
                "14: pair.p.conflict_resolution.command: unknown key (expected one of: cmd)",
            ),
            (
                "unset variable",
                "[storage.s]\ntype = \"vdir\"\n\npath = \"$CALDIR/x\"\nfileext = \".ics\"\n"
                    .to_string(),
                "4: storage.s.path: environment variable \"CALDIR\" is not set",
            ),
            (
                "TOML syntax error",
                with_storages("[pair.p]\na = laptop\n"),
                "12: invalid TOML: string values must be quoted, expected literal string",
            ),
            (
                "TOML duplicate key",
                "[storage.s]\ntype = \"vdir\"\ntype = \"vdir\"\n".to_string(),
                "3: invalid TOML: duplicate key",
            ),
        ];
        let mut failures = Vec::new();
        for (name, text, expected) in &cases {
            let got = match parse(text, Path::new(FILE), &home_env()) {
                Ok(config) => format!("unexpected success: {config:?}"),
                Err(e) => e.to_string(),
            };
            let expected = format!("{FILE}:{expected}");
            if got != expected {
                failures.push(format!(
                    "case {name}:\n{text}\n  got:      {got}\n  expected: {expected}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    /// A caldav storage `s` on line 1 (`[storage.s]`), `type` on line 2, `url` on line 3;
    /// anything appended starts on line 4.
    fn caldav(rest: &str) -> String {
        format!("[storage.s]\ntype = \"caldav\"\nurl = \"https://dav.example.com/\"\n{rest}")
    }

    /// Like [`caldav`], of type carddav.
    fn carddav(rest: &str) -> String {
        format!("[storage.s]\ntype = \"carddav\"\nurl = \"https://dav.example.com/\"\n{rest}")
    }

    fn http_defaults(url: &str) -> HttpOptions {
        HttpOptions {
            url: url.to_string(),
            username: None,
            password: None,
            auth: AuthScheme::Basic,
            verify: TlsVerify::System,
            fingerprint: None,
            client_cert: None,
            timeout: Duration::from_secs(30),
            user_agent: None,
            max_response_size: 256 << 20,
        }
    }

    fn dav_defaults(kind: DavKind, url: &str) -> DavConfig {
        DavConfig {
            kind,
            http: http_defaults(url),
            batch_size: 50,
            concurrency: 4,
            dialect: Dialect::Standard,
        }
    }

    fn dav(config: DavConfig) -> StorageConfig {
        storage(StorageKind::Dav(config))
    }

    /// `interval` is whole seconds on any storage; without it a network storage is polled
    /// every five minutes and a local one only when inotify reports a change.
    #[test]
    fn poll_intervals() {
        let text = "[storage.server]\ntype = \"caldav\"\nurl = \"https://dav.example.com/\"\n\
                    [storage.fast]\ntype = \"caldav\"\nurl = \"https://dav.example.org/\"\n\
                    interval = 60\n\
                    [storage.local]\ntype = \"vdir\"\npath = \"/cal\"\nfileext = \".ics\"\n\
                    [storage.nfs]\ntype = \"vdir\"\npath = \"/nfs\"\nfileext = \".ics\"\n\
                    interval = 600\n";
        let config = parse_ok(text, &home_env());
        let interval = |name: &str| config.storages[name].poll_interval();
        assert_eq!(interval("server"), Some(Duration::from_secs(300)));
        assert_eq!(interval("fast"), Some(Duration::from_secs(60)));
        assert_eq!(interval("local"), None);
        assert_eq!(interval("nfs"), Some(Duration::from_secs(600)));
    }

    #[test]
    fn dav_storages() {
        let text = r#"
[storage.cal]
type = "caldav"
url = "https://dav.example.com/dav/calendars/alice/"
username = "alice"
password = { cmd = ["pass", "show", "dav/alice"] }
auth = "digest"
verify = "~/certs/ca.pem"
fingerprint = "SHA256:AB:cd:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab"
client_cert = "client.pem"
item_types = ["vevent", "VTodo"]
timeout = 90
user_agent = "davsync-test/1"
batch_size = 1000
concurrency = 32
max_response_size = 1024

[storage.contacts]
type = "carddav"
url = "http://localhost:5232/alice/contacts/"
password = { env = "DAV_TOKEN" }
auth = "bearer"
verify = false
fingerprint = "sha256:00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"
batch_size = 1
concurrency = 1
timeout = 1

[storage.minimal]
type = "caldav"
url = "HTTPS://Dav.Example.com"

[storage.literal]
type = "carddav"
url = "https://dav.example.com/card/"
username = "bob"
password = "hunter2"

[storage.laptop]
type = "vdir"
path = "/home/u/cal"
fileext = ".ics"

[pair.cal]
a = "laptop"
b = "cal"
collections = "from b"
metadata = ["displayname", "color", "order", "description"]

[pair.contacts]
a = "contacts"
b = "literal"
metadata = []
"#;
        let config = parse_ok(text, &home_env());
        let cal = DavConfig {
            http: HttpOptions {
                username: Some("alice".into()),
                password: Some(Secret::Command(vec![
                    "pass".into(),
                    "show".into(),
                    "dav/alice".into(),
                ])),
                auth: AuthScheme::Digest,
                verify: TlsVerify::CaFile(PathBuf::from("/home/u/certs/ca.pem")),
                fingerprint: Some(
                    "abcd0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab".into(),
                ),
                client_cert: Some(PathBuf::from("/home/u/.config/davsync/client.pem")),
                timeout: Duration::from_secs(90),
                user_agent: Some("davsync-test/1".into()),
                max_response_size: 1 << 30,
                ..http_defaults("https://dav.example.com/dav/calendars/alice/")
            },
            batch_size: 1000,
            concurrency: 32,
            ..dav_defaults(DavKind::CalDav, "")
        };
        let contacts = DavConfig {
            http: HttpOptions {
                password: Some(Secret::Env("DAV_TOKEN".into())),
                auth: AuthScheme::Bearer,
                verify: TlsVerify::Off,
                fingerprint: Some(
                    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".into(),
                ),
                timeout: Duration::from_secs(1),
                ..http_defaults("http://localhost:5232/alice/contacts/")
            },
            batch_size: 1,
            concurrency: 1,
            ..dav_defaults(DavKind::CardDav, "")
        };
        let literal = DavConfig {
            http: HttpOptions {
                username: Some("bob".into()),
                password: Some(Secret::Literal("hunter2".into())),
                ..http_defaults("https://dav.example.com/card/")
            },
            ..dav_defaults(DavKind::CardDav, "")
        };
        assert_eq!(
            config.storages["cal"],
            StorageConfig {
                filter: ItemFilter {
                    item_types: vec!["VEVENT".into(), "VTODO".into()],
                    ..ItemFilter::default()
                },
                ..dav(cal)
            }
        );
        assert_eq!(config.storages["contacts"], dav(contacts));
        assert_eq!(
            config.storages["minimal"],
            dav(dav_defaults(DavKind::CalDav, "HTTPS://Dav.Example.com"))
        );
        assert_eq!(config.storages["literal"], dav(literal));
        assert_eq!(
            config.pairs["cal"].metadata,
            vec![
                MetadataKey::DisplayName,
                MetadataKey::Color,
                MetadataKey::Order,
                MetadataKey::Description,
            ]
        );
        assert_eq!(config.pairs["contacts"].metadata, Vec::new());
    }

    #[test]
    fn dav_errors() {
        let same_url = |url_a: &str, url_b: &str| {
            format!(
                "[storage.x]\ntype = \"caldav\"\nurl = \"{url_a}\"\n\
                 [storage.y]\ntype = \"caldav\"\nurl = \"{url_b}\"\n\
                 [pair.p]\na = \"x\"\nb = \"y\"\n"
            )
        };
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "bad url scheme",
                "[storage.s]\ntype = \"caldav\"\nurl = \"ftp://dav.example.com/\"\n".to_string(),
                "3: storage.s.url: the URL must start with http:// or https://",
            ),
            (
                "url without scheme",
                "[storage.s]\ntype = \"carddav\"\nurl = \"dav.example.com\"\n".to_string(),
                "3: storage.s.url: the URL must start with http:// or https://",
            ),
            (
                "url without host",
                "[storage.s]\ntype = \"carddav\"\nurl = \"https:///cal\"\n".to_string(),
                "3: storage.s.url: invalid URL: no host",
            ),
            (
                "url with credentials",
                "[storage.s]\ntype = \"caldav\"\nurl = \"https://u:secret@dav.example.com/\"\n"
                    .to_string(),
                "3: storage.s.url: the URL must not contain a user name or password; use \
                 \"username\" and \"password\"",
            ),
            (
                "missing url",
                "[storage.s]\ntype = \"caldav\"\nusername = \"u\"\n".to_string(),
                "1: storage.s: missing required key \"url\"",
            ),
            (
                "url wrong type",
                "[storage.s]\ntype = \"caldav\"\nurl = 1\n".to_string(),
                "3: storage.s.url: expected a string, found an integer",
            ),
            (
                "item_types on carddav",
                carddav("item_types = [\"VEVENT\"]\n"),
                "4: storage.s.item_types: only calendar storages have item types; this one holds contacts",
            ),
            (
                "unknown component",
                caldav("item_types = [\"VEVENT\", \"VCARD\"]\n"),
                "4: storage.s.item_types[1]: unknown component \"VCARD\" (expected one of: \
                 VEVENT, VTODO, VJOURNAL)",
            ),
            (
                "duplicate component",
                caldav("item_types = [\"vtodo\", \"VTODO\"]\n"),
                "4: storage.s.item_types[1]: component \"VTODO\" is listed twice",
            ),
            (
                "empty item_types",
                caldav("item_types = []\n"),
                "4: storage.s.item_types: the list must not be empty (omit \"item_types\" to \
                 sync every component)",
            ),
            (
                "fingerprint without prefix",
                caldav("fingerprint = \"AB:CD\"\n"),
                "4: storage.s.fingerprint: invalid fingerprint \"AB:CD\": expected \"sha256:\" \
                 and 32 bytes in hex (64 hex digits, optionally as colon-separated pairs)",
            ),
            (
                "fingerprint too short",
                caldav(&format!("fingerprint = \"sha256:{}\"\n", "ab".repeat(31))),
                "4: storage.s.fingerprint: invalid fingerprint \"sha256:abababababababababababab\
                 ababababababababababababababababababab\": expected \"sha256:\" and 32 \
                 bytes in hex (64 hex digits, optionally as colon-separated pairs)",
            ),
            (
                "fingerprint not hex",
                caldav(&format!("fingerprint = \"sha256:{}zz\"\n", "00".repeat(31))),
                "4: storage.s.fingerprint: invalid fingerprint \"sha256:000000000000000000000000\
                 00000000000000000000000000000000000000zz\": expected \"sha256:\" and 32 \
                 bytes in hex (64 hex digits, optionally as colon-separated pairs)",
            ),
            (
                "timeout 0",
                caldav("timeout = 0\n"),
                "4: storage.s.timeout: must be at least 1, found 0",
            ),
            (
                "timeout negative",
                caldav("timeout = -5\n"),
                "4: storage.s.timeout: must be at least 1, found -5",
            ),
            (
                "timeout float",
                caldav("timeout = 1.5\n"),
                "4: storage.s.timeout: expected an integer, found a float",
            ),
            (
                "interval 0",
                caldav("interval = 0\n"),
                "4: storage.s.interval: must be at least 1, found 0",
            ),
            (
                "interval as text",
                caldav("interval = \"5m\"\n"),
                "4: storage.s.interval: expected an integer, found a string",
            ),
            (
                "batch_size 0",
                caldav("batch_size = 0\n"),
                "4: storage.s.batch_size: must be between 1 and 1000, found 0",
            ),
            (
                "batch_size too large",
                caldav("batch_size = 1001\n"),
                "4: storage.s.batch_size: must be between 1 and 1000, found 1001",
            ),
            (
                "concurrency too large",
                caldav("concurrency = 33\n"),
                "4: storage.s.concurrency: must be between 1 and 32, found 33",
            ),
            (
                "password with cmd and env",
                caldav("username = \"u\"\npassword = { cmd = [\"pass\"], env = \"PW\" }\n"),
                "5: storage.s.password: give either \"cmd\" or \"env\", not both",
            ),
            (
                "password table with neither",
                caldav("username = \"u\"\n\n[storage.s.password]\n"),
                "6: storage.s.password: expected a string, { cmd = [...] } or \
                 { env = \"VAR\" }, found an empty table",
            ),
            (
                "password table unknown key",
                caldav("username = \"u\"\npassword = { command = \"pass\" }\n"),
                "5: storage.s.password.command: unknown key (expected one of: cmd, env)",
            ),
            (
                "password empty cmd",
                caldav("username = \"u\"\npassword = { cmd = [] }\n"),
                "5: storage.s.password.cmd: the command must not be empty (expected \
                 [\"program\", \"arg\", ...])",
            ),
            (
                "password cmd not strings",
                caldav("username = \"u\"\npassword = { cmd = \"pass show x\" }\n"),
                "5: storage.s.password.cmd: expected an array of strings, found a string",
            ),
            (
                "password empty env name",
                caldav("username = \"u\"\npassword = { env = \"\" }\n"),
                "5: storage.s.password.env: invalid environment variable name \"\"",
            ),
            (
                "password wrong type",
                caldav("username = \"u\"\npassword = 1234\n"),
                "5: storage.s.password: expected a string, { cmd = [...] } or \
                 { env = \"VAR\" }, found an integer",
            ),
            (
                "bearer without password",
                caldav("username = \"u\"\nauth = \"bearer\"\n"),
                "5: storage.s.auth: auth = \"bearer\" needs the token in \"password\"",
            ),
            (
                "password without username",
                caldav("\npassword = { env = \"PW\" }\n"),
                "5: storage.s.password: a password needs a \"username\" (for a bearer token, \
                 set auth = \"bearer\")",
            ),
            (
                "digest password without username",
                caldav("auth = \"digest\"\npassword = \"pw\"\n"),
                "5: storage.s.password: a password needs a \"username\" (for a bearer token, \
                 set auth = \"bearer\")",
            ),
            (
                "empty username",
                caldav("username = \"\"\n"),
                "4: storage.s.username: must not be empty (omit \"username\" for no \
                 authentication)",
            ),
            (
                "unknown auth",
                caldav("auth = \"ntlm\"\n"),
                "4: storage.s.auth: unknown value \"ntlm\" (expected \"basic\", \"digest\" or \
                 \"bearer\")",
            ),
            (
                "verify wrong type",
                caldav("verify = 1\n"),
                "4: storage.s.verify: expected true, false or the path of a CA file, found an \
                 integer",
            ),
            (
                "verify path with unset variable",
                caldav("verify = \"$CA_DIR/ca.pem\"\n"),
                "4: storage.s.verify: environment variable \"CA_DIR\" is not set",
            ),
            (
                "user_agent with newline",
                caldav("user_agent = \"a\\nb\"\n"),
                "4: storage.s.user_agent: must be non-empty and contain no control characters",
            ),
            (
                "unknown key in a dav storage",
                caldav("path = \"/x\"\n"),
                "4: storage.s.path: unknown key (expected one of: type, url, username, password, \
                 auth, verify, fingerprint, client_cert, timeout, user_agent, max_response_size, \
                 batch_size, concurrency, read_only, item_types, start_date, end_date, interval)",
            ),
            (
                "vdir key fileext in carddav",
                carddav("fileext = \".vcf\"\n"),
                "4: storage.s.fileext: unknown key (expected one of: type, url, username, password, \
                 auth, verify, fingerprint, client_cert, timeout, user_agent, max_response_size, \
                 batch_size, concurrency, read_only, item_types, start_date, end_date, interval)",
            ),
            (
                "same URL on both sides",
                same_url(
                    "https://dav.example.com/cal/",
                    "https://dav.example.com/cal/",
                ),
                "9: pair.p.b: storages \"x\" and \"y\" are the same URL \
                 https://dav.example.com/cal/; a pair needs two separate places",
            ),
            (
                "same URL up to case and trailing slash",
                same_url(
                    "HTTPS://Dav.Example.COM/cal",
                    "https://dav.example.com:443/cal/",
                ),
                "9: pair.p.b: storages \"x\" and \"y\" are the same URL \
                 HTTPS://Dav.Example.COM/cal; a pair needs two separate places",
            ),
            (
                "metadata unknown key",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\nmetadata = [\"color\", \"colour\"]\n",
                ),
                "14: pair.p.metadata[1]: unknown metadata \"colour\" (expected one of: \
                 displayname, color, description, order)",
            ),
            (
                "metadata listed twice",
                with_storages(
                    "[pair.p]\na = \"laptop\"\nb = \"backup\"\nmetadata = [\"color\", \"color\"]\n",
                ),
                "14: pair.p.metadata[1]: metadata \"color\" is listed twice",
            ),
            (
                "metadata wrong type",
                with_storages("[pair.p]\na = \"laptop\"\nb = \"backup\"\nmetadata = \"color\"\n"),
                "14: pair.p.metadata: expected an array of metadata names, found a string",
            ),
        ];
        let mut failures = Vec::new();
        for (name, text, expected) in &cases {
            let got = match parse(text, Path::new(FILE), &home_env()) {
                Ok(config) => format!("unexpected success: {config:?}"),
                Err(e) => e.to_string(),
            };
            let expected = format!("{FILE}:{expected}");
            if got != expected {
                failures.push(format!(
                    "case {name}:\n{text}\n  got:      {got}\n  expected: {expected}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn dav_storages_at_different_urls_pair() {
        let pairs = [
            (
                "https://dav.example.com/cal/",
                "https://dav.example.com/cal2/",
            ),
            (
                "https://dav.example.com/cal/",
                "http://dav.example.com/cal/",
            ),
            (
                "https://dav.example.com/cal/",
                "https://dav.example.com:8443/cal/",
            ),
            (
                "https://dav.example.com/Cal/",
                "https://dav.example.com/cal/",
            ),
        ];
        for (a, b) in pairs {
            let text = format!(
                "[storage.x]\ntype = \"caldav\"\nurl = \"{a}\"\n\
                 [storage.y]\ntype = \"carddav\"\nurl = \"{b}\"\n\
                 [pair.p]\na = \"x\"\nb = \"y\"\n"
            );
            let config = parse_ok(&text, &home_env());
            assert_eq!(config.pairs["p"].metadata, Vec::new(), "{a} {b}");
        }
    }

    #[test]
    fn metadata_keys() {
        let names: Vec<&str> = MetadataKey::ALL
            .iter()
            .map(MetadataKey::file_name)
            .collect();
        assert_eq!(names, ["displayname", "color", "description", "order"]);
        for key in MetadataKey::ALL {
            assert_eq!(MetadataKey::from_name(key.file_name()), Some(key));
        }
        assert_eq!(MetadataKey::from_name("Color"), None);
    }

    fn cmd(args: &[&str]) -> Secret {
        Secret::Command(args.iter().map(|a| a.to_string()).collect())
    }

    fn resolve_err(secret: &Secret, env: &dyn Env) -> String {
        match secret.resolve(env) {
            Ok(value) => panic!("unexpected success: {} chars", value.len()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn secret_literal_and_env() {
        let env = env(&[("DAV_PW", "s3cret"), ("EMPTY", "")]);
        assert_eq!(
            Secret::Literal("hunter2".into()).resolve(&env).ok(),
            Some("hunter2".to_string())
        );
        assert_eq!(
            Secret::Env("DAV_PW".into()).resolve(&env).ok(),
            Some("s3cret".to_string())
        );
        assert_eq!(
            resolve_err(&Secret::Env("NOPE".into()), &env),
            "environment variable \"NOPE\" is not set"
        );
        assert_eq!(
            resolve_err(&Secret::Env("EMPTY".into()), &env),
            "environment variable \"EMPTY\" is empty"
        );
    }

    #[cfg(unix)]
    #[test]
    fn secret_command() {
        let env = env(&[]);
        let ok = |secret: Secret| match secret.resolve(&env) {
            Ok(value) => value,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(ok(cmd(&["printf", "tok3n\\nsecond line\\n"])), "tok3n");
        assert_eq!(ok(cmd(&["printf", "tok3n\\r\\n"])), "tok3n");
        assert_eq!(ok(cmd(&["printf", "no newline"])), "no newline");
        // Arguments are passed as they are: no shell splits or expands them.
        assert_eq!(ok(cmd(&["echo", "$HOME *"])), "$HOME *");

        let failed = resolve_err(&cmd(&["sh", "-c", "echo leaked; exit 3"]), &env);
        assert_eq!(failed, "password command \"sh\" failed (exit status: 3)");
        assert_eq!(
            resolve_err(&cmd(&["true"]), &env),
            "password command \"true\" printed no password (exit status: 0)"
        );
        assert_eq!(
            resolve_err(&cmd(&["printf", "\\nleaked\\n"]), &env),
            "password command \"printf\" printed no password (exit status: 0)"
        );
        // Standard input is connected to nothing: `cat` sees end of file at once.
        assert_eq!(
            resolve_err(&cmd(&["cat"]), &env),
            "password command \"cat\" printed no password (exit status: 0)"
        );
        let missing = resolve_err(&cmd(&["/nonexistent/davsync-secret"]), &env);
        assert!(
            missing.starts_with("cannot run password command \"/nonexistent/davsync-secret\": "),
            "{missing}"
        );
        assert_eq!(
            resolve_err(&cmd(&[]), &env),
            "the password command is empty"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let literal = Secret::Literal("hunter2".into());
        assert_eq!(format!("{literal:?}"), "Literal(<hidden>)");
        let config = DavConfig {
            http: HttpOptions {
                username: Some("alice".into()),
                password: Some(literal),
                ..http_defaults("https://dav.example.com/")
            },
            ..dav_defaults(DavKind::CalDav, "")
        };
        let debug = format!("{config:?} {:#?}", dav(config.clone()));
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("alice"), "{debug}");

        let config = parse_ok(
            &caldav("username = \"alice\"\npassword = \"hunter2\"\n"),
            &home_env(),
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn error_accessors() {
        let err = match parse(
            &with_storages("[pair.calendars]\na = \"lapto\"\nb = \"backup\"\n"),
            Path::new(FILE),
            &home_env(),
        ) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        };
        assert_eq!(err.path(), Some(Path::new(FILE)));
        assert_eq!(err.line(), Some(12));
        assert_eq!(err.key(), Some("pair.calendars.a"));
    }

    #[test]
    fn load_reads_file_and_reports_io_errors() {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("tempdir: {e}"),
        };
        let path = dir.path().join("config.toml");
        let missing = match load(&path, &home_env()) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        };
        assert!(matches!(missing, ConfigError::Read { .. }));
        assert!(
            missing
                .to_string()
                .starts_with(&format!("{}: cannot read config file: ", path.display())),
            "{missing}"
        );
        if let Err(e) = std::fs::write(
            &path,
            "[storage.s]\ntype = \"vdir\"\npath = \"cal\"\nfileext = \".ics\"\n",
        ) {
            panic!("write: {e}");
        }
        let config = match load(&path, &home_env()) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(config.path, path);
        assert_eq!(
            config.storages["s"],
            storage(StorageKind::Vdir(VdirConfig {
                path: dir.path().join("cal"),
                fileext: ".ics".into(),
                post_hook: Vec::new(),
                pre_deletion_hook: Vec::new(),
            }))
        );
    }

    #[test]
    fn config_path_precedence() {
        let cases: &[(Option<&str>, Vars, Option<&str>)] = &[
            (
                Some("/explicit.toml"),
                &[
                    ("DAVSYNC_CONFIG", "/env.toml"),
                    ("XDG_CONFIG_HOME", "/xdg"),
                    ("HOME", "/home/u"),
                ],
                Some("/explicit.toml"),
            ),
            (
                None,
                &[
                    ("DAVSYNC_CONFIG", "/env.toml"),
                    ("XDG_CONFIG_HOME", "/xdg"),
                    ("HOME", "/home/u"),
                ],
                Some("/env.toml"),
            ),
            (
                None,
                &[("XDG_CONFIG_HOME", "/xdg"), ("HOME", "/home/u")],
                Some("/xdg/davsync/config.toml"),
            ),
            (
                None,
                &[
                    ("DAVSYNC_CONFIG", ""),
                    ("XDG_CONFIG_HOME", "relative"),
                    ("HOME", "/home/u"),
                ],
                Some("/home/u/.config/davsync/config.toml"),
            ),
            (
                None,
                &[("HOME", "/home/u")],
                Some("/home/u/.config/davsync/config.toml"),
            ),
            (Some("rel.toml"), &[], Some("rel.toml")),
            (None, &[("HOME", "")], None),
        ];
        for (explicit, vars, expected) in cases {
            let got = config_path(explicit.map(Path::new), &env(vars));
            match (got, expected) {
                (Ok(got), Some(expected)) => {
                    assert_eq!(got, Path::new(expected), "{explicit:?} {vars:?}")
                }
                (Err(e), None) => assert_eq!(
                    e.to_string(),
                    "cannot locate the config file: none of DAVSYNC_CONFIG, XDG_CONFIG_HOME \
                     and HOME is set; use -c FILE"
                ),
                (got, expected) => {
                    panic!("{explicit:?} {vars:?}: got {got:?}, expected {expected:?}")
                }
            }
        }
    }

    #[test]
    fn quickstart_fixture() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/config/quickstart.toml");
        let config = match load(&path, &env(&[("DAVSYNC_DEMO", "/tmp/demo")])) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(config.status_path, Path::new("/tmp/demo/status"));
        assert_eq!(config.storages.len(), 2);
        assert_eq!(config.storages["laptop"], vdir("/tmp/demo/laptop", ".ics"));
        assert_eq!(config.storages["backup"], vdir("/tmp/demo/backup", ".ics"));
        let pair = &config.pairs["demo"];
        assert_eq!((pair.a.as_str(), pair.b.as_str()), ("laptop", "backup"));
        assert_eq!(pair.collections, CollectionsSpec::FromA);
        assert_eq!(pair.conflict_resolution, ConflictResolution::Report);

        let unset = match load(&path, &env(&[])) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            unset,
            format!(
                "{}:9: status_path: environment variable \"DAVSYNC_DEMO\" is not set",
                path.display()
            )
        );
    }

    #[test]
    fn key_quoting() {
        assert_eq!(join_key("", "status_path"), "status_path");
        assert_eq!(join_key("pair", "a-b_c"), "pair.a-b_c");
        assert_eq!(join_key("storage", "a.b"), "storage.\"a.b\"");
        assert_eq!(
            join_key("storage", "q\"\\\n"),
            "storage.\"q\\\"\\\\\\u000A\""
        );
    }

    /// Two vdir storages `a` (lines 1-5) and `b` (lines 7-11), each with `extra_a`/`extra_b`
    /// as its fifth line, and pair `p` (line 13) with `pair` appended from line 16 on.
    fn read_only_pair(extra_a: &str, extra_b: &str, pair: &str) -> String {
        format!(
            "[storage.a]\ntype = \"vdir\"\npath = \"/x/a\"\nfileext = \".ics\"\n{extra_a}\n\n\
             [storage.b]\ntype = \"vdir\"\npath = \"/x/b\"\nfileext = \".ics\"\n{extra_b}\n\n\
             [pair.p]\na = \"a\"\nb = \"b\"\n{pair}"
        )
    }

    #[test]
    fn common_storage_keys() {
        let config = parse_ok(
            &caldav(
                "read_only = true\nitem_types = [\"vtodo\"]\nstart_date = \"-30d\"\n\
                 end_date = 2027-06-30\n",
            ),
            &home_env(),
        );
        let storage = &config.storages["s"];
        assert!(storage.read_only);
        assert_eq!(
            storage.filter,
            ItemFilter {
                item_types: vec!["VTODO".into()],
                start: Some("-30d".parse().unwrap_or_else(|e| panic!("{e}"))),
                end: Some("2027-06-30".parse().unwrap_or_else(|e| panic!("{e}"))),
                limit: None,
            }
        );
        let vdir = parse_ok(
            "[storage.s]\ntype = \"vdir\"\npath = \"/x\"\nfileext = \".ics\"\n\
             item_types = [\"VEVENT\"]\nstart_date = 2026-01-01\nend_date = \"2026-01-01\"\n",
            &home_env(),
        );
        assert!(!vdir.storages["s"].read_only);
        assert_eq!(
            vdir.storages["s"].filter.item_types,
            vec!["VEVENT".to_string()]
        );
    }

    #[test]
    fn two_google_accounts_are_two_places_unless_they_share_a_token_file() {
        let google = |name: &str, token_file: &str| {
            format!(
                "[storage.{name}]\ntype = \"google_calendar\"\nclient_id = \"id\"\n\
                 client_secret = \"s\"\ntoken_file = \"{token_file}\"\n"
            )
        };
        let pair = "[pair.p]\na = \"x\"\nb = \"y\"\n";
        let two = format!("{}{}{pair}", google("x", "/t/x"), google("y", "/t/y"));
        assert_eq!(parse_ok(&two, &home_env()).pairs.len(), 1);
        let shared = format!("{}{}{pair}", google("x", "/t/x"), google("y", "/t/x"));
        assert_eq!(
            parse_err(&shared, &home_env()),
            format!(
                "{FILE}:13: pair.p.b: storages \"x\" and \"y\" are the same account (token \
                 file /t/x); a pair needs two separate places"
            )
        );
    }

    #[test]
    fn webcal_is_read_only_without_saying_so() {
        let feed = "[storage.s]\ntype = \"webcal\"\nurl = \"webcal://example.com/h.ics\"\n";
        let config = parse_ok(feed, &home_env());
        assert!(config.storages["s"].read_only);
        let config = parse_ok(&format!("{feed}read_only = true\n"), &home_env());
        assert!(config.storages["s"].read_only);
        assert_eq!(
            parse_err(&format!("{feed}read_only = false\n"), &home_env()),
            format!(
                "{FILE}:4: storage.s.read_only: this storage type can only be read; \
                 drop read_only = false"
            )
        );
    }

    #[test]
    fn common_storage_key_errors() {
        let vcf = "[storage.s]\ntype = \"vdir\"\npath = \"/x\"\nfileext = \".vcf\"\n";
        let cases: &[(&str, String, &str)] = &[
            (
                "read_only not a bool",
                caldav("read_only = \"yes\"\n"),
                "4: storage.s.read_only: expected true or false, found a string",
            ),
            (
                "item_types on a .vcf vdir",
                format!("{vcf}item_types = [\"VEVENT\"]\n"),
                "5: storage.s.item_types: only calendar storages have item types; this one \
                 holds contacts",
            ),
            (
                "start_date on carddav",
                carddav("start_date = \"-30d\"\n"),
                "4: storage.s.start_date: only calendar storages have start and end dates; \
                 this one holds contacts",
            ),
            (
                "invalid date",
                caldav("start_date = \"yesterday\"\n"),
                "4: storage.s.start_date: invalid date \"yesterday\": expected a date such as \
                 \"2026-01-31\" or a relative one such as \"-30d\", \"+2w\", \"-6m\" or \"+1y\"",
            ),
            (
                "date and time",
                caldav("end_date = 2026-01-01T10:00:00\n"),
                "4: storage.s.end_date: expected a date such as 2026-01-31 or a relative one \
                 such as \"-30d\", found a datetime",
            ),
            (
                "end before start",
                caldav("start_date = 2026-02-01\nend_date = \"2026-01-31\"\n"),
                "5: storage.s.end_date: 2026-01-31 is before start_date 2026-02-01: no item \
                 would be in the window",
            ),
        ];
        for (name, text, expected) in cases {
            let got = parse_err(text, &home_env());
            let expected = format!("{FILE}:{expected}");
            assert_eq!(got, expected, "case {name}");
        }
    }

    #[test]
    fn vdir_hooks() {
        let base = "[storage.s]\ntype = \"vdir\"\npath = \"/x\"\nfileext = \".ics\"\n";
        let config = parse_ok(
            &format!("{base}post_hook = [\"git\", \"add\"]\npre_deletion_hook = [\"trash\"]\n"),
            &home_env(),
        );
        let StorageKind::Vdir(vdir) = &config.storages["s"].kind else {
            panic!("not a vdir: {:?}", config.storages["s"]);
        };
        assert_eq!(vdir.post_hook, vec!["git".to_string(), "add".to_string()]);
        assert_eq!(vdir.pre_deletion_hook, vec!["trash".to_string()]);
        assert_eq!(
            parse_err(&format!("{base}post_hook = []\n"), &home_env()),
            format!(
                "{FILE}:5: storage.s.post_hook: the command must not be empty (expected \
                 [\"program\", \"arg\", ...])"
            )
        );
        assert_eq!(
            parse_err(&format!("{base}pre_deletion_hook = [\"\"]\n"), &home_env()),
            format!("{FILE}:5: storage.s.pre_deletion_hook[0]: the program name must not be empty")
        );
        assert_eq!(
            parse_err(&format!("{base}post_hook = \"git add\"\n"), &home_env()),
            format!("{FILE}:5: storage.s.post_hook: expected an array of strings, found a string")
        );
    }

    #[test]
    fn pair_modes() {
        let mode = |extra_a: &str, extra_b: &str, pair: &str| {
            parse_ok(&read_only_pair(extra_a, extra_b, pair), &home_env()).pairs["p"].mode
        };
        assert_eq!(mode("", "", ""), SyncMode::TwoWay);
        assert_eq!(mode("", "", "mode = \"two-way\"\n"), SyncMode::TwoWay);
        assert_eq!(mode("", "", "mode = \"a-to-b\"\n"), SyncMode::AToB);
        assert_eq!(mode("", "", "mode = \"b-to-a\"\n"), SyncMode::BToA);
        // A read-only side without `mode` is the source.
        assert_eq!(mode("read_only = true", "", ""), SyncMode::AToB);
        assert_eq!(mode("", "read_only = true", ""), SyncMode::BToA);
        assert_eq!(
            mode("read_only = true", "", "mode = \"a-to-b\"\n"),
            SyncMode::AToB
        );
        assert_eq!(
            mode("", "read_only = true", "mode = \"b-to-a\"\n"),
            SyncMode::BToA
        );
    }

    #[test]
    fn pair_mode_errors() {
        let ro = "read_only = true";
        let cases: &[(&str, String, &str)] = &[
            (
                "unknown mode",
                read_only_pair("", "", "mode = \"revert\"\n"),
                "16: pair.p.mode: unknown mode \"revert\" (expected \"two-way\", \"a-to-b\" or \
                 \"b-to-a\")",
            ),
            (
                "two-way with read-only a",
                read_only_pair(ro, "", "mode = \"two-way\"\n"),
                "16: pair.p.mode: mode = \"two-way\" would write into storage \"a\", which is \
                 read_only; use mode = \"a-to-b\" (or leave mode out)",
            ),
            (
                "two-way with read-only b",
                read_only_pair("", ro, "mode = \"two-way\"\n"),
                "16: pair.p.mode: mode = \"two-way\" would write into storage \"b\", which is \
                 read_only; use mode = \"b-to-a\" (or leave mode out)",
            ),
            (
                "a-to-b into read-only b",
                read_only_pair("", ro, "mode = \"a-to-b\"\n"),
                "16: pair.p.mode: mode = \"a-to-b\" would write into storage \"b\", which is \
                 read_only; use mode = \"b-to-a\" (or leave mode out)",
            ),
            (
                "b-to-a into read-only a",
                read_only_pair(ro, "", "mode = \"b-to-a\"\n"),
                "16: pair.p.mode: mode = \"b-to-a\" would write into storage \"a\", which is \
                 read_only; use mode = \"a-to-b\" (or leave mode out)",
            ),
            (
                "both read-only, no mode",
                read_only_pair(ro, ro, ""),
                "13: pair.p: storages \"a\" and \"b\" are both read_only: nothing can be \
                 synced; make one of them writable",
            ),
            (
                "both read-only with a mode",
                read_only_pair(ro, ro, "mode = \"a-to-b\"\n"),
                "16: pair.p.mode: storages \"a\" and \"b\" are both read_only: nothing can be \
                 synced; make one of them writable",
            ),
        ];
        for (name, text, expected) in cases {
            let got = parse_err(text, &home_env());
            let expected = format!("{FILE}:{expected}");
            assert_eq!(got, expected, "case {name}");
        }
    }

    #[test]
    fn pair_post_sync() {
        let config = parse_ok(
            &with_storages(
                "[pair.p]\na = \"laptop\"\nb = \"backup\"\npost_sync = [\"notify-send\", \"done\"]\n",
            ),
            &home_env(),
        );
        assert_eq!(
            config.pairs["p"].post_sync,
            vec!["notify-send".to_string(), "done".to_string()]
        );
        assert_eq!(
            parse_err(
                &with_storages("[pair.p]\na = \"laptop\"\nb = \"backup\"\npost_sync = []\n"),
                &home_env()
            ),
            format!(
                "{FILE}:14: pair.p.post_sync: the command must not be empty (expected \
                 [\"program\", \"arg\", ...])"
            )
        );
    }
}
