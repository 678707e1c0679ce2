//! The configuration file: where it is, what it says, and whether it makes sense.
//!
//! The file is TOML:
//!
//! ```toml
//! status_path = "~/.local/share/davsync"   # optional
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
//! [pair.calendars]
//! a = "laptop"
//! b = "backup"
//! collections = "from a"          # "from a" | "from b" | "all" | ["work", { name = "home", a = "personal", b = "home" }]
//! conflict_resolution = "a wins"  # "a wins" | "b wins" | { cmd = ["prog", "arg"] }
//! ```
//!
//! [`parse`] walks the span-carrying TOML tree ([`toml::de::DeTable`]) by hand instead of
//! deriving serde structs, so that every error — a syntax error, an unknown key, a wrong type, a
//! missing key, a pair naming a missing storage — can name the file, the 1-based line and the
//! dotted key it is about (see [`ConfigError`]). Nothing here prints; the process environment is
//! read only through [`Env`], so tests can use a fake one.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Storage types that a config may use.
const SUPPORTED_STORAGE_TYPES: &[&str] = &["vdir"];

/// Storage types that are planned but not implemented yet; they get a friendlier error.
const PLANNED_STORAGE_TYPES: &[&str] = &["caldav", "carddav", "singlefile", "webcal"];

/// Keys accepted at the top level of the file.
pub const TOP_LEVEL_KEYS: &[&str] = &["status_path", "storage", "pair"];

/// Keys accepted in a `[storage.<name>]` table of type `vdir`.
pub const VDIR_KEYS: &[&str] = &["type", "path", "fileext"];

/// Keys accepted in a `[pair.<name>]` table.
pub const PAIR_KEYS: &[&str] = &["a", "b", "collections", "conflict_resolution"];

/// A parsed and validated configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file the configuration was read from (as given to [`load`] or [`parse`]).
    pub path: PathBuf,
    /// Directory holding the status databases (one per pair), expanded, absolute and
    /// lexically normalized.
    pub status_path: PathBuf,
    /// Storages by name (`[storage.<name>]`).
    pub storages: BTreeMap<String, StorageConfig>,
    /// Pairs by name (`[pair.<name>]`); every pair names two defined storages.
    pub pairs: BTreeMap<String, PairConfig>,
}

/// One `[storage.<name>]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// `type = "vdir"`: a directory of collections, one file per item.
    Vdir {
        /// The directory: `~` and `$VAR`/`${VAR}` expanded, relative paths resolved against the
        /// config file's directory, lexically normalized (no `.`/`..` components).
        path: PathBuf,
        /// Extension of item files, including the leading dot (`".ics"`, `".vcf"`).
        fileext: String,
    },
    /// `type = "caldav"` or `type = "carddav"`: collections on a WebDAV server.
    Dav(DavConfig),
}

/// Which protocol a DAV storage speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DavKind {
    /// CalDAV (RFC 4791): calendars, `.ics` items.
    CalDav,
    /// CardDAV (RFC 6352): address books, `.vcf` items.
    CardDav,
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

/// HTTP authentication scheme of a DAV storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthScheme {
    /// HTTP Basic (the default when a username is given).
    #[default]
    Basic,
    /// HTTP Digest.
    Digest,
    /// `Authorization: Bearer <token>`; the token comes from `password`.
    Bearer,
}

/// How the server's TLS certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsVerify {
    /// `verify = true` or absent: the system's trusted roots.
    #[default]
    System,
    /// `verify = false`: no check at all (warned about on every run).
    Off,
    /// `verify = "path/ca.pem"`: this CA bundle (PEM) instead of the system roots.
    CaFile(PathBuf),
}

/// A `[storage.<name>]` table of type `caldav` or `carddav`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavConfig {
    /// CalDAV or CardDAV.
    pub kind: DavKind,
    /// A service root, a home set, or one collection (`http://` or `https://`).
    pub url: String,
    /// User name for authentication.
    pub username: Option<String>,
    /// Password (or bearer token).
    pub password: Option<Secret>,
    /// Authentication scheme.
    pub auth: AuthScheme,
    /// TLS certificate checking.
    pub verify: TlsVerify,
    /// `fingerprint = "sha256:AB:CD:..."`: pin the server certificate's SHA-256 fingerprint
    /// (lower-case hex without separators here).
    pub fingerprint: Option<String>,
    /// Client certificate and key (one PEM file).
    pub client_cert: Option<PathBuf>,
    /// Only these component types (`VEVENT`, `VTODO`, `VJOURNAL`) are synced; empty: all.
    pub item_types: Vec<String>,
    /// Timeout of one request.
    pub timeout: std::time::Duration,
    /// `User-Agent` header; default `davsync/<version>`.
    pub user_agent: Option<String>,
    /// Hrefs per multiget request (default 50).
    pub batch_size: usize,
    /// Requests in flight at once (default 4).
    pub concurrency: usize,
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
                return Err(self.at(
                    name.span(),
                    &join_key(key, name.get_ref()),
                    format!("unknown key (expected one of: {list})"),
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

        let mut storages = BTreeMap::new();
        if let Some(value) = root.get("storage") {
            for (name, value) in self.table(value, "storage")?.iter() {
                let key = join_key("storage", name.get_ref());
                self.check_name(name, &key, "storage")?;
                let storage = self.parse_storage(value, &key)?;
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

    fn parse_storage(&self, value: &Value<'_>, key: &str) -> Result<StorageConfig, ConfigError> {
        let table = self.table(value, key)?;
        let type_key = join_key(key, "type");
        let type_value = self.required(value, table, key, "type")?;
        let storage_type = self.string(type_value, &type_key)?;
        let supported = SUPPORTED_STORAGE_TYPES.join(", ");
        match storage_type {
            "vdir" => {
                self.check_keys(table, key, VDIR_KEYS)?;
                let path_key = join_key(key, "path");
                let path = self.path_value(self.required(value, table, key, "path")?, &path_key)?;
                let fileext_key = join_key(key, "fileext");
                let fileext_value = self.required(value, table, key, "fileext")?;
                let fileext = self.string(fileext_value, &fileext_key)?;
                if !fileext.starts_with('.') || fileext.contains('/') {
                    return Err(self.at(
                        fileext_value.span(),
                        &fileext_key,
                        format!(
                            "invalid file extension {fileext:?}: it must start with '.' and \
                             contain no '/' (e.g. \".ics\", \".vcf\")"
                        ),
                    ));
                }
                Ok(StorageConfig::Vdir {
                    path,
                    fileext: fileext.to_string(),
                })
            }
            planned if PLANNED_STORAGE_TYPES.contains(&planned) => Err(self.at(
                type_value.span(),
                &type_key,
                format!("storage type {planned:?} is not supported yet (supported: {supported})"),
            )),
            other => Err(self.at(
                type_value.span(),
                &type_key,
                format!("unknown storage type {other:?} (supported: {supported})"),
            )),
        }
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
        Ok(PairConfig {
            name: name.to_string(),
            a: a.to_string(),
            b: b.to_string(),
            collections,
            conflict_resolution,
        })
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
        match (storages.get(a), storages.get(b)) {
            (
                Some(StorageConfig::Vdir { path: path_a, .. }),
                Some(StorageConfig::Vdir { path: path_b, .. }),
            ) => {
                let message = if path_a == path_b {
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
                };
                Err(self.at(
                    span,
                    key,
                    format!("{message}; a pair needs two separate places"),
                ))
            }
            _ => Ok(()),
        }
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
            DeValue::Table(table) => {
                self.check_keys(table, key, &["cmd"])?;
                let cmd_key = join_key(key, "cmd");
                let cmd_value = self.required(value, table, key, "cmd")?;
                let items = cmd_value
                    .get_ref()
                    .as_array()
                    .ok_or_else(|| self.wrong_type(cmd_value, &cmd_key, "an array of strings"))?;
                let mut cmd = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    cmd.push(
                        self.string(item, &format!("{cmd_key}[{index}]"))?
                            .to_string(),
                    );
                }
                match cmd.first() {
                    None => Err(self.at(
                        cmd_value.span(),
                        &cmd_key,
                        "the command must not be empty (expected [\"program\", \"arg\", ...])",
                    )),
                    Some(program) if program.is_empty() => Err(self.at(
                        items[0].span(),
                        &format!("{cmd_key}[0]"),
                        "the program name must not be empty",
                    )),
                    Some(_) => Ok(ConflictResolution::Command(cmd)),
                }
            }
            _ => Err(self.wrong_type(value, key, EXPECTED)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn vdir(path: &str, fileext: &str) -> StorageConfig {
        StorageConfig::Vdir {
            path: PathBuf::from(path),
            fileext: fileext.to_string(),
        }
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
                "2: status: unknown key (expected one of: status_path, storage, pair)",
            ),
            (
                "unknown storage key",
                "[storage.s]\ntype = \"vdir\"\npath = \"/x\"\nfileext = \".ics\"\npth = \"/y\"\n"
                    .to_string(),
                "5: storage.s.pth: unknown key (expected one of: type, path, fileext)",
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
                "planned storage type",
                "[storage.s]\ntype = \"caldav\"\nurl = \"https://x\"\n".to_string(),
                "2: storage.s.type: storage type \"caldav\" is not supported yet (supported: vdir)",
            ),
            (
                "unknown storage type",
                "[storage.s]\ntype = \"ftp\"\n".to_string(),
                "2: storage.s.type: unknown storage type \"ftp\" (supported: vdir)",
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
                 conflict_resolution)",
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
            StorageConfig::Vdir {
                path: dir.path().join("cal"),
                fileext: ".ics".into(),
            }
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
}
