//! Translating a vdirsyncer 0.21 config into a davsync config (`davsync import-vdirsyncer`).
//!
//! Pure: the text of a vdirsyncer config in, the text of a davsync config and the list of
//! what could not be carried over out. vdirsyncer's format is INI (Python's `RawConfigParser`:
//! sections `[general]`, `[pair NAME]`, `[storage NAME]`, `key = value` or `key: value`,
//! `#`/`;` comment lines, indented continuation lines) whose every value is JSON. Every option
//! without a davsync equivalent becomes a comment naming it in the output (and a
//! [`Translation::warnings`] entry); what cannot be read at all is an [`ImportError`] naming
//! the line.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value as Json;

/// What the translation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// The davsync config (TOML).
    pub text: String,
    /// One line per option that was dropped or changed meaning, prefixed with the line of the
    /// vdirsyncer config it comes from (`line 12: ...`).
    pub warnings: Vec<String>,
}

/// A vdirsyncer config this module cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    /// 1-based line of the vdirsyncer config.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

fn error(line: usize, message: impl Into<String>) -> ImportError {
    ImportError {
        line,
        message: message.into(),
    }
}

/// One `key = value` of a section, its value already parsed as JSON.
#[derive(Debug)]
struct Entry {
    key: String,
    value: Json,
    line: usize,
}

/// One `[...]` section.
#[derive(Debug)]
struct Section {
    kind: SectionKind,
    name: String,
    line: usize,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SectionKind {
    General,
    Pair,
    Storage,
}

impl Section {
    fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// A section as read, before its values are parsed: kind, name, line, (key, raw value, line).
type RawSection = (SectionKind, String, usize, Vec<(String, String, usize)>);

/// Splits the INI text into sections and parses each value as JSON.
fn parse_ini(text: &str) -> Result<Vec<Section>, ImportError> {
    // (key, raw value, line) per section, values joined with their continuation lines.
    let mut sections: Vec<RawSection> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            match sections.last_mut().and_then(|s| s.3.last_mut()) {
                Some(entry) => {
                    entry.1.push('\n');
                    entry.1.push_str(trimmed);
                    continue;
                }
                None => return Err(error(line, "indented line outside of any option")),
            }
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            let header = header
                .strip_suffix(']')
                .ok_or_else(|| error(line, format!("section header without \"]\": {trimmed}")))?
                .trim();
            let (kind, name) = match header.split_once(char::is_whitespace) {
                None if header == "general" => (SectionKind::General, String::new()),
                Some(("pair", name)) => (SectionKind::Pair, name.trim().to_owned()),
                Some(("storage", name)) => (SectionKind::Storage, name.trim().to_owned()),
                _ => {
                    return Err(error(
                        line,
                        format!(
                            "unknown section [{header}] (expected [general], [pair NAME] or \
                             [storage NAME])"
                        ),
                    ));
                }
            };
            if kind != SectionKind::General
                && (name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(error(
                    line,
                    format!("invalid name {name:?}: only letters, digits and \"_\" are allowed"),
                ));
            }
            if sections
                .iter()
                .any(|s| s.0 != SectionKind::General && s.1 == name)
                && kind != SectionKind::General
            {
                return Err(error(line, format!("the name {name:?} is used twice")));
            }
            if kind == SectionKind::General && sections.iter().any(|s| s.0 == kind) {
                return Err(error(line, "[general] appears twice"));
            }
            sections.push((kind, name, line, Vec::new()));
            continue;
        }
        let split = trimmed
            .find(['=', ':'])
            .ok_or_else(|| error(line, format!("expected \"key = value\", found {trimmed:?}")))?;
        let key = trimmed[..split].trim().to_lowercase();
        let value = trimmed[split + 1..].trim().to_owned();
        if key.is_empty() {
            return Err(error(
                line,
                format!("missing key before the value in {trimmed:?}"),
            ));
        }
        let section = sections
            .last_mut()
            .ok_or_else(|| error(line, "option before the first section header"))?;
        if section.3.iter().any(|(k, _, _)| *k == key) {
            return Err(error(line, format!("option {key:?} is set twice")));
        }
        section.3.push((key, value, line));
    }
    sections
        .into_iter()
        .map(|(kind, name, line, raw_entries)| {
            let entries = raw_entries
                .into_iter()
                .map(|(key, raw, line)| {
                    let value = serde_json::from_str(&raw).map_err(|e| {
                        error(
                            line,
                            format!(
                                "option {key:?}: the value is not JSON ({e}); strings need \
                                 double quotes"
                            ),
                        )
                    })?;
                    Ok(Entry { key, value, line })
                })
                .collect::<Result<_, ImportError>>()?;
            Ok(Section {
                kind,
                name,
                line,
                entries,
            })
        })
        .collect()
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The JSON value on one line, as vdirsyncer's config would show it.
fn show(value: &Json) -> String {
    value.to_string()
}

/// The output of one section: its lines, and the warnings for it.
struct Out<'a> {
    text: &'a mut String,
    warnings: &'a mut Vec<String>,
    /// `storage NAME` or `pair NAME`, for warnings.
    context: String,
}

impl Out<'_> {
    fn key(&mut self, key: &str, value: impl AsRef<str>) {
        let _ = writeln!(self.text, "{key} = {}", value.as_ref());
    }

    /// A comment in the output naming the vdirsyncer option, and a warning.
    fn dropped(&mut self, entry: &Entry, why: &str) {
        let _ = writeln!(
            self.text,
            "# vdirsyncer: {} = {}\n#   {why}",
            entry.key,
            show(&entry.value)
        );
        self.warnings.push(format!(
            "line {}: {}: {} not carried over: {why}",
            entry.line, self.context, entry.key
        ));
    }

    /// A comment explaining a translation that changed form but keeps the meaning.
    fn note(&mut self, why: &str) {
        let _ = writeln!(self.text, "# {why}");
    }
}

fn string(entry: &Entry) -> Result<&str, ImportError> {
    entry.value.as_str().ok_or_else(|| {
        error(
            entry.line,
            format!("option {:?}: expected a string", entry.key),
        )
    })
}

fn string_list(entry: &Entry) -> Result<Vec<String>, ImportError> {
    entry
        .value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| {
            error(
                entry.line,
                format!("option {:?}: expected a list of strings", entry.key),
            )
        })
}

fn boolean(entry: &Entry) -> Result<bool, ImportError> {
    entry.value.as_bool().ok_or_else(|| {
        error(
            entry.line,
            format!("option {:?}: expected true or false", entry.key),
        )
    })
}

/// Shell-quotes one argument; a leading `~/` stays unquoted so the shell expands it.
fn shell_word(arg: &str) -> String {
    let single = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    if arg == "~" {
        "~".to_owned()
    } else if let Some(rest) = arg.strip_prefix("~/") {
        format!("~/{}", single(rest))
    } else {
        single(arg)
    }
}

/// A vdirsyncer `fetch` value as a davsync `{ cmd = [...] }`, or why it cannot be one.
fn fetch_command(entry: &Entry) -> Result<Result<String, String>, ImportError> {
    let parts = string_list(entry)?;
    let Some((strategy, args)) = parts.split_first() else {
        return Err(error(
            entry.line,
            format!("option {:?}: empty list", entry.key),
        ));
    };
    match strategy.as_str() {
        "command" if !args.is_empty() => {
            // vdirsyncer expands `~` in every argument; davsync runs the command as written,
            // so such a command goes through sh, which expands it.
            if args.iter().any(|a| a == "~" || a.starts_with("~/")) {
                let line: Vec<String> = args.iter().map(|a| shell_word(a)).collect();
                let script = vec!["sh".to_owned(), "-c".to_owned(), line.join(" ")];
                Ok(Ok(format!("{{ cmd = {} }}", quote_list(&script))))
            } else {
                Ok(Ok(format!("{{ cmd = {} }}", quote_list(args))))
            }
        }
        "shell" if args.len() == 1 => {
            let script = vec!["sh".to_owned(), "-c".to_owned(), args[0].clone()];
            Ok(Ok(format!("{{ cmd = {} }}", quote_list(&script))))
        }
        "prompt" => Ok(Err(
            "davsync never prompts; use { cmd = [...] } (e.g. a password manager) or { env = \"VAR\" }"
                .to_owned(),
        )),
        other => Err(error(
            entry.line,
            format!(
                "option {:?}: unknown fetch strategy {other:?} (expected \"command\", \"shell\" \
                 or \"prompt\" with their arguments)",
                entry.key
            ),
        )),
    }
}

/// `datetime.now() - timedelta(days=365)` and its common variants as `"-365d"`.
fn python_date(expr: &str) -> Option<String> {
    let compact: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let compact = compact.strip_prefix("datetime.").unwrap_or(&compact);
    let rest = ["now()", "today()", "date.today()", "utcnow()"]
        .iter()
        .find_map(|start| compact.strip_prefix(start))?;
    if rest.is_empty() {
        return Some("+0d".to_owned());
    }
    let (sign, rest) = match rest.as_bytes()[0] {
        b'+' => ('+', &rest[1..]),
        b'-' => ('-', &rest[1..]),
        _ => return None,
    };
    let inner = rest
        .strip_prefix("timedelta(")
        .or_else(|| rest.strip_prefix("datetime.timedelta("))?
        .strip_suffix(')')?;
    let (unit, amount) = match inner.split_once('=') {
        Some(("days", n)) => ('d', n),
        Some(("weeks", n)) => ('w', n),
        None => ('d', inner),
        _ => return None,
    };
    let amount: u32 = amount.parse().ok()?;
    Some(format!("{sign}{amount}{unit}"))
}

/// Where vdirsyncer looks for its config, in its order: `$VDIRSYNCER_CONFIG` (alone when
/// set), else `~/.vdirsyncer/config`, then `$XDG_CONFIG_HOME/vdirsyncer/config` (default
/// `~/.config/vdirsyncer/config`). vdirsyncer takes the first that exists; whether they exist
/// is not checked here.
pub fn config_candidates(env: &dyn crate::config::Env) -> Vec<std::path::PathBuf> {
    let var = |name: &str| env.var(name).filter(|v| !v.is_empty());
    if let Some(path) = var("VDIRSYNCER_CONFIG") {
        return vec![path.into()];
    }
    let mut out = Vec::new();
    let home = var("HOME").map(std::path::PathBuf::from);
    if let Some(home) = &home {
        out.push(home.join(".vdirsyncer").join("config"));
    }
    match var("XDG_CONFIG_HOME") {
        Some(dir) => out.push(Path::new(&dir).join("vdirsyncer").join("config")),
        None => {
            if let Some(home) = &home {
                out.push(home.join(".config").join("vdirsyncer").join("config"));
            }
        }
    }
    out
}

const VDIRSYNCER_STORAGE_TYPES: &str = "filesystem, singlefile, caldav, carddav, http, \
                                        google_calendar, google_contacts";

/// Translates the text of a vdirsyncer config into a davsync config.
///
/// `config_dir` is the directory of the vdirsyncer config: vdirsyncer resolves a relative
/// `status_path` against it. Without it, a relative `status_path` is kept as written (davsync
/// resolves it against the directory of its own config).
pub fn translate(text: &str, config_dir: Option<&Path>) -> Result<Translation, ImportError> {
    let sections = parse_ini(text)?;
    let mut out = String::new();
    let mut warnings = Vec::new();
    out.push_str(
        "# davsync config written by `davsync import-vdirsyncer` from a vdirsyncer config.\n\
         # Options without an equivalent are kept as comments starting with \"vdirsyncer:\".\n\n",
    );

    let general = sections
        .iter()
        .find(|s| s.kind == SectionKind::General)
        .ok_or_else(|| {
            error(
                1,
                "no [general] section (vdirsyncer requires one with status_path)",
            )
        })?;
    let mut status_path = None;
    {
        let mut o = Out {
            text: &mut out,
            warnings: &mut warnings,
            context: "general".to_owned(),
        };
        for entry in &general.entries {
            match entry.key.as_str() {
                "status_path" => {
                    let path = string(entry)?;
                    let resolved = match config_dir {
                        Some(dir) if !path.starts_with('~') && Path::new(path).is_relative() => {
                            dir.join(path).display().to_string()
                        }
                        _ => path.to_owned(),
                    };
                    status_path = Some(resolved);
                }
                _ => o.dropped(entry, "unknown to vdirsyncer 0.21 and to davsync"),
            }
        }
        let path = status_path.ok_or_else(|| {
            error(
                general.line,
                "[general] has no status_path (vdirsyncer requires it)",
            )
        })?;
        o.note(
            "davsync keeps its own status (<pair>.db) beside vdirsyncer's files; the first sync \
             adopts identical items without writing them.",
        );
        o.key("status_path", quote(&path));
    }

    let storage_types: Vec<(&str, String)> = sections
        .iter()
        .filter(|s| s.kind == SectionKind::Storage)
        .map(|s| {
            let kind = s
                .get("type")
                .ok_or_else(|| error(s.line, format!("storage {:?} has no type", s.name)))?;
            Ok((s.name.as_str(), string(kind)?.to_owned()))
        })
        .collect::<Result<_, ImportError>>()?;

    for section in sections.iter().filter(|s| s.kind == SectionKind::Storage) {
        out.push('\n');
        let _ = writeln!(out, "[storage.{}]", section.name);
        let mut o = Out {
            text: &mut out,
            warnings: &mut warnings,
            context: format!("storage {}", section.name),
        };
        storage(section, &mut o)?;
    }
    for section in sections.iter().filter(|s| s.kind == SectionKind::Pair) {
        out.push('\n');
        let _ = writeln!(out, "[pair.{}]", section.name);
        let mut o = Out {
            text: &mut out,
            warnings: &mut warnings,
            context: format!("pair {}", section.name),
        };
        pair(section, &storage_types, &mut o)?;
    }
    Ok(Translation {
        text: out,
        warnings,
    })
}

fn storage(section: &Section, o: &mut Out<'_>) -> Result<(), ImportError> {
    let type_entry = section.get("type").expect("checked by translate");
    let vtype = string(type_entry)?;
    let (dtype, keys): (&str, &[&str]) = match vtype {
        "filesystem" => (
            "vdir",
            &[
                "path",
                "fileext",
                "encoding",
                "post_hook",
                "pre_deletion_hook",
                "fileignoreext",
            ],
        ),
        "singlefile" => ("singlefile", &["path", "encoding"]),
        "caldav" | "carddav" | "http" => (
            match vtype {
                "http" => "webcal",
                other => other,
            },
            &[
                "url",
                "username",
                "password",
                "verify",
                "auth",
                "useragent",
                "verify_fingerprint",
                "auth_cert",
            ],
        ),
        "google_calendar" | "google_contacts" => {
            (vtype, &["token_file", "client_id", "client_secret"])
        }
        other => {
            return Err(error(
                type_entry.line,
                format!(
                    "storage {:?}: type {other:?} has no davsync equivalent (known: \
                     {VDIRSYNCER_STORAGE_TYPES})",
                    section.name
                ),
            ));
        }
    };
    o.key("type", quote(dtype));
    let calendar = matches!(vtype, "caldav" | "google_calendar");
    let mut start_end = Vec::new();
    for entry in &section.entries {
        let key = entry.key.as_str();
        if key == "type" || key == "instance_name" {
            continue;
        }
        let (base, fetched) = match key.strip_suffix(".fetch") {
            Some(base) => (base, true),
            None => (key, false),
        };
        let known = keys.contains(&base)
            || ["read_only", "no_delete"].contains(&base)
            || (calendar && ["start_date", "end_date", "item_types"].contains(&base))
            || (vtype == "carddav" && base == "use_vcard_4")
            || (vtype == "http" && base == "filter_hook");
        if !known {
            o.dropped(
                entry,
                &format!("not an option of vdirsyncer's {vtype} storage"),
            );
            continue;
        }
        if fetched {
            if ["password", "client_secret"].contains(&base) {
                match fetch_command(entry)? {
                    Ok(cmd) => o.key(base, cmd),
                    Err(why) => o.dropped(entry, &why),
                }
            } else {
                o.dropped(
                    entry,
                    &format!("davsync looks up only password and client_secret; write {base} in the config"),
                );
            }
            continue;
        }
        match base {
            "path" => {
                let path = string(entry)?;
                if vtype == "singlefile" && path.matches("%s").count() != 1 {
                    o.note("vdirsyncer's singlefile path without one %s is the one collection");
                }
                o.key("path", quote(path));
            }
            "fileext" => o.key("fileext", quote(string(entry)?)),
            "encoding" => {
                let enc = string(entry)?;
                if enc.eq_ignore_ascii_case("utf-8") || enc.eq_ignore_ascii_case("utf8") {
                    o.note("encoding \"utf-8\": davsync reads and writes items as they are");
                } else {
                    o.dropped(
                        entry,
                        "davsync keeps items' bytes as they are and expects UTF-8",
                    );
                }
            }
            "post_hook" | "pre_deletion_hook" => match &entry.value {
                Json::Null => {}
                Json::String(prog) => o.key(base, quote_list(std::slice::from_ref(prog))),
                _ => {
                    return Err(error(
                        entry.line,
                        format!("option {key:?}: expected a string"),
                    ));
                }
            },
            "fileignoreext" => {
                if string(entry)? != ".tmp" {
                    o.dropped(
                        entry,
                        "davsync only reads files ending in fileext and ignores every other file",
                    );
                }
            }
            "url" => o.key("url", quote(string(entry)?)),
            "username" => o.key("username", quote(string(entry)?)),
            "password" => {
                o.note(
                    "the password was in the vdirsyncer config as text; consider { cmd = [...] }",
                );
                o.key("password", quote(string(entry)?));
            }
            "verify" => match &entry.value {
                Json::Bool(b) => o.key("verify", b.to_string()),
                Json::String(path) => o.key("verify", quote(path)),
                Json::Null => {}
                _ => {
                    return Err(error(
                        entry.line,
                        "option \"verify\": expected true, false or a path",
                    ));
                }
            },
            "auth" => match &entry.value {
                Json::Null => {}
                Json::String(a) if a == "basic" || a == "digest" => o.key("auth", quote(a)),
                _ => o.dropped(
                    entry,
                    "davsync knows \"basic\" (default), \"digest\" and \"bearer\"",
                ),
            },
            "useragent" => o.key("user_agent", quote(string(entry)?)),
            "verify_fingerprint" => {
                let hex: String = string(entry)?.chars().filter(|c| *c != ':').collect();
                if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    o.key("fingerprint", quote(&format!("sha256:{hex}")));
                } else {
                    o.dropped(
                        entry,
                        "davsync pins SHA-256 fingerprints only (64 hex digits)",
                    );
                }
            }
            "auth_cert" => match &entry.value {
                Json::String(path) => {
                    o.note("client_cert must hold the certificate and its key in one PEM file");
                    o.key("client_cert", quote(path));
                }
                _ => o.dropped(
                    entry,
                    "davsync takes one PEM file holding certificate and key: concatenate them \
                     and set client_cert",
                ),
            },
            "read_only" => {
                let ro = boolean(entry)?;
                if vtype == "http" {
                    // webcal is read-only without saying so; vdirsyncer refuses false too.
                } else if ro {
                    o.key("read_only", "true");
                }
            }
            "no_delete" => {
                if boolean(entry)? {
                    o.dropped(
                        entry,
                        "davsync has no no_delete (vdirsyncer copies the item back on a later \
                         sync anyway); use read_only = true with a one-way pair, or a \
                         pre_deletion_hook on a vdir to keep backups",
                    );
                }
            }
            "start_date" | "end_date" => start_end.push(entry),
            "item_types" => {
                let types = string_list(entry)?;
                if !types.is_empty() {
                    o.key("item_types", quote_list(&types));
                }
            }
            "use_vcard_4" => {
                if boolean(entry)? {
                    o.dropped(
                        entry,
                        "davsync asks for the server's own format and keeps it as it is",
                    );
                }
            }
            "filter_hook" => o.dropped(
                entry,
                "davsync has no filter hook for feeds; item_types, start_date and end_date \
                 filter a storage",
            ),
            "token_file" => o.dropped(
                entry,
                "vdirsyncer's token file is not davsync's; after importing, run `davsync auth \
                 STORAGE` once (tokens go to <status_path>/<storage>.token)",
            ),
            "client_id" => o.key("client_id", quote(string(entry)?)),
            "client_secret" => o.key("client_secret", quote(string(entry)?)),
            _ => unreachable!("every known key has an arm"),
        }
    }
    for entry in start_end {
        match &entry.value {
            Json::Null => {}
            Json::String(expr) => match python_date(expr) {
                Some(bound) => {
                    o.note(&format!(
                        "vdirsyncer: {} = {}",
                        entry.key,
                        show(&entry.value)
                    ));
                    o.key(&entry.key, quote(&bound));
                }
                None => o.dropped(
                    entry,
                    "a Python expression davsync cannot translate; write a date (\"2026-01-31\") \
                     or a day relative to the run (\"-30d\", \"+1y\")",
                ),
            },
            _ => {
                return Err(error(
                    entry.line,
                    format!("option {:?}: expected a string", entry.key),
                ));
            }
        }
    }
    if vtype.starts_with("google_") {
        o.note(&format!(
            "authorize once before the first sync: davsync auth {}",
            o.context.trim_start_matches("storage ")
        ));
    }
    Ok(())
}

fn pair(
    section: &Section,
    storage_types: &[(&str, String)],
    o: &mut Out<'_>,
) -> Result<(), ImportError> {
    for side in ["a", "b"] {
        let entry = section.get(side).ok_or_else(|| {
            error(
                section.line,
                format!("pair {:?} has no {side}", section.name),
            )
        })?;
        let name = string(entry)?;
        if !storage_types.iter().any(|(n, _)| *n == name) {
            return Err(error(
                entry.line,
                format!("pair {:?}: no storage named {name:?}", section.name),
            ));
        }
        o.key(side, quote(name));
    }
    for entry in &section.entries {
        match entry.key.as_str() {
            "a" | "b" => {}
            "collections" => collections(entry, o)?,
            "conflict_resolution" => match &entry.value {
                Json::Null => {}
                Json::String(s) if s == "a wins" || s == "b wins" => {
                    o.key("conflict_resolution", quote(s))
                }
                Json::Array(_) => o.dropped(
                    entry,
                    "vdirsyncer runs `prog args A B` and wants both files equal afterwards; \
                     davsync's { cmd = [...] } gets three files (a's, b's, the last synced) and \
                     wants the merge in the first. Write such a command and set \
                     conflict_resolution = { cmd = [...] }; until then conflicts are reported",
                ),
                _ => {
                    return Err(error(
                        entry.line,
                        "option \"conflict_resolution\": expected \"a wins\", \"b wins\" or \
                         [\"command\", ...]",
                    ));
                }
            },
            "metadata" => {
                let keys = string_list(entry)?;
                let known: Vec<String> = keys
                    .iter()
                    .filter(|k| {
                        ["displayname", "color", "description", "order"].contains(&k.as_str())
                    })
                    .cloned()
                    .collect();
                if known.len() != keys.len() {
                    o.dropped(
                        entry,
                        "davsync syncs displayname, color, description and order; the others are left out",
                    );
                }
                if !known.is_empty() {
                    o.note("vdirsyncer syncs these only in `vdirsyncer metasync`; davsync on every sync");
                    o.key("metadata", quote_list(&known));
                }
            }
            "partial_sync" => {
                let value = string(entry)?;
                match value {
                    "revert" => o.note(
                        "vdirsyncer: partial_sync = \"revert\": davsync's pair with a read-only \
                         side is one-way from it and undoes changes on the other side in one run \
                         (vdirsyncer takes two)",
                    ),
                    "ignore" | "error" => o.dropped(
                        entry,
                        "davsync has no equivalent: a pair with a read-only side is one-way from \
                         it, so changes made on the other side are overwritten and items only \
                         there are DELETED (as with \"revert\"); check with `davsync sync \
                         --dry-run` first",
                    ),
                    other => {
                        return Err(error(
                            entry.line,
                            format!(
                                "option \"partial_sync\": unknown value {other:?} (expected \
                                 \"revert\", \"ignore\" or \"error\")"
                            ),
                        ));
                    }
                }
            }
            "implicit" => o.note(&format!(
                "vdirsyncer: implicit = {}: davsync creates a missing collection anyway",
                show(&entry.value)
            )),
            _ => o.dropped(entry, "not a pair option of vdirsyncer 0.21 nor of davsync"),
        }
    }
    Ok(())
}

fn collections(entry: &Entry, o: &mut Out<'_>) -> Result<(), ImportError> {
    let items = match &entry.value {
        Json::Null => return Ok(()),
        Json::Array(items) => items,
        _ => {
            return Err(error(
                entry.line,
                "option \"collections\": expected null or a list",
            ));
        }
    };
    let mut from_a = false;
    let mut from_b = false;
    let mut explicit = Vec::new();
    let mut unmapped = Vec::new();
    for item in items {
        match item {
            Json::String(s) if s == "from a" => from_a = true,
            Json::String(s) if s == "from b" => from_b = true,
            Json::String(name) => explicit.push(quote(name)),
            Json::Array(triple) => match triple.as_slice() {
                [Json::String(name), Json::String(a), Json::String(b)] => {
                    if a == name && b == name {
                        explicit.push(quote(name));
                    } else {
                        explicit.push(format!(
                            "{{ name = {}, a = {}, b = {} }}",
                            quote(name),
                            quote(a),
                            quote(b)
                        ));
                    }
                }
                [Json::String(_), _, _] => unmapped.push(show(item)),
                _ => {
                    return Err(error(
                        entry.line,
                        format!(
                            "option \"collections\": {} is not [\"name\", \"on a\", \"on b\"]",
                            show(item)
                        ),
                    ));
                }
            },
            _ => {
                return Err(error(
                    entry.line,
                    format!("option \"collections\": unexpected {}", show(item)),
                ));
            }
        }
    }
    let spec = match (from_a, from_b) {
        (true, true) => Some("\"all\""),
        (true, false) => Some("\"from a\""),
        (false, true) => Some("\"from b\""),
        (false, false) => None,
    };
    let mut left_out = Vec::new();
    match spec {
        Some(spec) => {
            o.key("collections", spec);
            if !explicit.is_empty() {
                left_out.push(format!(
                    "davsync cannot mix {spec} with named collections ({})",
                    explicit.join(", ")
                ));
            }
        }
        None if !explicit.is_empty() => o.key("collections", format!("[{}]", explicit.join(", "))),
        None => {}
    }
    if !unmapped.is_empty() {
        left_out.push(format!(
            "a null side (the storage's own path) has no davsync equivalent ({})",
            unmapped.join(", ")
        ));
    }
    if !left_out.is_empty() {
        o.dropped(entry, &format!("left out: {}", left_out.join("; ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Translation {
        translate(text, None).expect("translates")
    }

    #[test]
    fn python_dates() {
        assert_eq!(
            python_date("datetime.now() - timedelta(days=365)").as_deref(),
            Some("-365d")
        );
        assert_eq!(
            python_date("datetime.now()+timedelta(days=30)").as_deref(),
            Some("+30d")
        );
        assert_eq!(
            python_date("datetime.now() + timedelta(weeks=2)").as_deref(),
            Some("+2w")
        );
        assert_eq!(python_date("datetime.now()").as_deref(), Some("+0d"));
        assert_eq!(python_date("datetime(2020, 1, 1)"), None);
        assert_eq!(python_date("datetime.now() - timedelta(hours=3)"), None);
    }

    #[test]
    fn broken_lines_are_named() {
        let err = translate(
            "[general]\nstatus_path = \"s\"\n\n[storage x]\nthis is broken\n",
            None,
        )
        .expect_err("broken");
        assert_eq!(err.line, 5);
        let err = translate("[general]\nstatus_path = s/\n", None).expect_err("not json");
        assert_eq!(err.line, 2);
        assert!(err.message.contains("not JSON"), "{err}");
        let err = translate(
            "[general]\nstatus_path = \"s\"\n[storage m]\ntype = \"memory\"\n",
            None,
        )
        .expect_err("memory");
        assert_eq!(err.line, 4);
    }

    #[test]
    fn continuation_lines_join_values() {
        let t = ok(
            "[general]\nstatus_path = \"s\"\n[storage a]\ntype = \"filesystem\"\npath = \"x\"\n\
                    fileext = \".ics\"\n[storage b]\ntype = \"filesystem\"\npath = \"y\"\nfileext = \".ics\"\n\
                    [pair p]\na = \"a\"\nb = \"b\"\ncollections = [\n  \"from a\",\n  \"from b\"]\n",
        );
        assert!(t.text.contains("collections = \"all\""), "{}", t.text);
        assert!(t.warnings.is_empty());
    }

    #[test]
    fn relative_status_path_follows_the_config() {
        let t = translate(
            "[general]\nstatus_path = \"status/\"\n",
            Some(Path::new("/home/u/.vdirsyncer")),
        )
        .expect("ok");
        assert!(
            t.text
                .contains("status_path = \"/home/u/.vdirsyncer/status/\""),
            "{}",
            t.text
        );
    }

    #[test]
    fn tilde_in_commands_goes_through_sh() {
        let entry = Entry {
            key: "password.fetch".into(),
            value: serde_json::json!(["command", "cat", "~/my secret"]),
            line: 1,
        };
        assert_eq!(
            fetch_command(&entry).expect("ok").expect("cmd"),
            r#"{ cmd = ["sh", "-c", "'cat' ~/'my secret'"] }"#
        );
    }
}
