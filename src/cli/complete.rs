//! Shell completion: the shell scripts in `packaging/completions/` (written by `generate`) call
//! `COMPLETE=<shell> davsync -- <words>`, answered here by clap_complete's engine, so that what
//! is offered always matches the binary: no hidden command, and pair, `PAIR/COLLECTION` and
//! storage names read from the config the command line would use.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::{Bash, CompleteEnv, EnvCompleter, Fish, Zsh};
use davsync::config::{self, CollectionsSpec, Config, ProcessEnv, StorageKind};
use davsync::status::StatusDb;

use super::{Cli, status_db_path};

/// The environment variable that turns a run into a completion request.
const VAR: &str = "COMPLETE";

/// Answers a completion request and exits when `COMPLETE` is set; returns otherwise.
pub fn answer_if_asked() {
    CompleteEnv::with_factory(visible_command)
        .var(VAR)
        // The scripts call `davsync` from PATH, not the path this binary was started by.
        .completer("davsync")
        .complete();
}

/// The command line as completion sees it: without the hidden commands. Marking them hidden is
/// not enough: clap's engine still offers one once the start of its name is typed.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    let mut visible = clap::Command::new(full.get_name().to_owned())
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(version) = full.get_version() {
        visible = visible.version(version.to_owned());
    }
    visible
}

/// The completion script of each shell, as file name and content: what a package installs.
pub fn scripts() -> Result<Vec<(&'static str, Vec<u8>)>, std::io::Error> {
    let shells: [(&str, &dyn EnvCompleter); 3] = [
        ("davsync.bash", &Bash),
        ("_davsync", &Zsh),
        ("davsync.fish", &Fish),
    ];
    let mut scripts = Vec::new();
    for (file, shell) in shells {
        let mut script = Vec::new();
        shell.write_registration(VAR, "davsync", "davsync", "davsync", &mut script)?;
        if file == "_davsync" {
            // Installed in $fpath, the file is autoloaded as the function `_davsync` on the
            // first Tab; without this the first Tab would only register the completer.
            script.extend_from_slice(
                b"if [[ \"${funcstack[1]}\" == _davsync ]]; then\n    \
                  _clap_dynamic_completer_davsync \"$@\"\nfi\n",
            );
        }
        scripts.push((file, script));
    }
    Ok(scripts)
}

/// Completes `PAIR` arguments: the pairs of the config.
pub fn pairs() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| match load() {
        Some(config) => pair_candidates(&config, current),
        None => Vec::new(),
    })
}

/// Completes `PAIR[/COLLECTION]` arguments: the pairs, and after `PAIR/` the collections the
/// config lists or the pair's status database knows from earlier syncs.
pub fn pairs_and_collections() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let Some(config) = load() else {
            return Vec::new();
        };
        let typed = current.to_string_lossy();
        let Some((pair, _)) = typed.split_once('/') else {
            return pair_candidates(&config, current);
        };
        let Some(pair) = config.pairs.get(pair) else {
            return Vec::new();
        };
        let mut names: Vec<String> = match &pair.collections {
            CollectionsSpec::Explicit(list) => list.iter().map(|c| c.name.clone()).collect(),
            CollectionsSpec::Root => Vec::new(),
            CollectionsSpec::FromA | CollectionsSpec::FromB | CollectionsSpec::All => {
                let path = status_db_path(&config, &pair.name);
                match path.try_exists() {
                    Ok(true) => StatusDb::collection_names(&path).unwrap_or_default(),
                    _ => Vec::new(),
                }
            }
        };
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|c| format!("{}/{c}", pair.name))
            .filter(|name| name.starts_with(typed.as_ref()))
            .map(CompletionCandidate::new)
            .collect()
    })
}

/// Completes `STORAGE[/COLLECTION]` arguments: the storages of the config.
pub fn storages() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| storage_candidates(current, |_| true))
}

/// Completes the storage of `davsync auth`: the Google storages of the config.
pub fn google_storages() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        storage_candidates(current, |kind| matches!(kind, StorageKind::Google(_)))
    })
}

fn pair_candidates(config: &Config, current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    config
        .pairs
        .values()
        .filter(|p| p.name.starts_with(typed.as_ref()))
        .map(|p| CompletionCandidate::new(&p.name).help(Some(format!("{} ↔ {}", p.a, p.b).into())))
        .collect()
}

fn storage_candidates(
    current: &OsStr,
    wanted: impl Fn(&StorageKind) -> bool,
) -> Vec<CompletionCandidate> {
    let Some(config) = load() else {
        return Vec::new();
    };
    let typed = current.to_string_lossy();
    config
        .storages
        .iter()
        .filter(|(name, storage)| name.starts_with(typed.as_ref()) && wanted(&storage.kind))
        .map(|(name, _)| CompletionCandidate::new(name))
        .collect()
}

/// The config the command being completed would read: its `-c`/`--config`, else
/// `$DAVSYNC_CONFIG` or the default. None when there is none or it does not load: nothing is
/// offered then, and no error is printed into the user's command line.
fn load() -> Option<Config> {
    let explicit = config_argument(std::env::args_os());
    let path = config::config_path(explicit.as_deref(), &ProcessEnv).ok()?;
    config::load(&path, &ProcessEnv).ok()
}

/// The value of `-c PATH`, `-cPATH`, `--config PATH` or `--config=PATH` among the words being
/// completed (those after `--`; the last one wins, as when parsing).
fn config_argument(args: impl IntoIterator<Item = OsString>) -> Option<PathBuf> {
    let words: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .skip_while(|a| a != "--")
        .skip(1)
        .collect();
    let mut found = None;
    let mut iter = words.iter();
    while let Some(word) = iter.next() {
        if word == "-c" || word == "--config" {
            found = iter.next().cloned().or(found);
        } else if let Some(path) = word.strip_prefix("--config=") {
            found = Some(path.to_owned());
        } else if let Some(path) = word.strip_prefix("-c").filter(|p| !p.is_empty()) {
            found = Some(path.to_owned());
        }
    }
    found.map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn config_argument_in_each_spelling() {
        let cases: [(&[&str], Option<&str>); 6] = [
            (&["davsync", "--", "davsync", "sync", ""], None),
            (
                &["davsync", "--", "davsync", "-c", "a.toml", "sync", ""],
                Some("a.toml"),
            ),
            (
                &["davsync", "--", "davsync", "sync", "--config", "b.toml", ""],
                Some("b.toml"),
            ),
            (
                &["davsync", "--", "davsync", "--config=c.toml", "status", ""],
                Some("c.toml"),
            ),
            (
                &["davsync", "--", "davsync", "-cd.toml", "-c", "e.toml", ""],
                Some("e.toml"),
            ),
            // Before `--` are the completer's own arguments, not the command line's.
            (
                &["davsync", "-c", "x.toml", "--", "davsync", "sync", ""],
                None,
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(
                config_argument(words(args)),
                expected.map(PathBuf::from),
                "{args:?}"
            );
        }
    }
}
