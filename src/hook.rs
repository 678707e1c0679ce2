//! The user's hook commands: a vdir's `post_hook` and `pre_deletion_hook`, a pair's `post_sync`.
//!
//! A hook is a program and its arguments, run without a shell, with stdin from `/dev/null`.
//! Its output is never shown (the library never prints): stdout is discarded, and the first
//! line of its stderr is kept for the message when the hook fails. A failing hook is a
//! [`HookFailure`] the caller reports; it never stops a sync.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use thiserror::Error;

use crate::sync::CollectionReport;

/// At most this much of a hook's stderr is kept; the rest is read and dropped, so a chatty
/// hook never blocks on a full pipe.
const STDERR_KEPT: u64 = 64 * 1024;

/// A hook that did not succeed: which one, on what, and how it failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key} {command:?}{}: {how}", .target.as_ref().map(|t| format!(" on {t}")).unwrap_or_default())]
pub struct HookFailure {
    /// The config key that names the hook (`post_hook`, `pre_deletion_hook`, `post_sync`).
    pub key: &'static str,
    /// The command as configured, joined with spaces.
    pub command: String,
    /// The path the hook was run on, if any.
    pub target: Option<String>,
    /// How it failed: the exit status and the first line of stderr, the signal, or why it could
    /// not start.
    pub how: String,
}

/// Why a hook failed, for [`HookFailure::how`].
enum Failed {
    Start(io::Error),
    Status(std::process::ExitStatus, String),
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failed::Start(e) => write!(f, "could not start: {e}"),
            Failed::Status(status, stderr) => {
                match (status.code(), status.signal()) {
                    (Some(code), _) => write!(f, "exited with status {code}")?,
                    (None, Some(signal)) => write!(f, "killed by signal {signal}")?,
                    (None, None) => write!(f, "ended with {status}")?,
                }
                match stderr.is_empty() {
                    true => Ok(()),
                    false => write!(f, ": {stderr}"),
                }
            }
        }
    }
}

/// Runs `command` (program first) with `target` appended as its last argument, if given, and
/// `env` added to its environment; waits for it.
///
/// `key` names the hook in the failure. An empty command does nothing.
pub fn run(
    key: &'static str,
    command: &[String],
    target: Option<&OsStr>,
    env: &[(&str, String)],
) -> Result<(), HookFailure> {
    let Some((program, args)) = command.split_first() else {
        return Ok(());
    };
    run_command(program, args, target, env).map_err(|failed| HookFailure {
        key,
        command: command.join(" "),
        target: target.map(|t| t.to_string_lossy().into_owned()),
        how: failed.to_string(),
    })
}

fn run_command(
    program: &str,
    args: &[String],
    target: Option<&OsStr>,
    env: &[(&str, String)],
) -> Result<(), Failed> {
    let mut child = Command::new(program)
        .args(args)
        .args(target)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Failed::Start)?;
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        // A read error only costs the message its detail; the exit status still counts.
        let _ = (&mut pipe).take(STDERR_KEPT).read_to_end(&mut stderr);
        let _ = io::copy(&mut pipe, &mut io::sink());
    }
    let status = child.wait().map_err(Failed::Start)?;
    if status.success() {
        return Ok(());
    }
    let first_line = String::from_utf8_lossy(&stderr)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned();
    Err(Failed::Status(status, first_line))
}

/// What a pair's `post_sync` command is told, in environment variables, about the run that
/// just synced the pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairSummary {
    /// The pair's name.
    pub pair: String,
    /// Collections synced (or refused) in this run.
    pub collections: u64,
    /// Items created on either side.
    pub created: u64,
    /// Items overwritten on either side.
    pub updated: u64,
    /// Items deleted on either side.
    pub deleted: u64,
    /// Conflicts left open.
    pub conflicts: u64,
    /// Items that could not be synced, failed hooks and refused collections.
    pub errors: u64,
    /// Whether every collection is in sync.
    pub clean: bool,
}

impl PairSummary {
    /// A summary of nothing synced yet for `pair`.
    pub fn new(pair: &str) -> PairSummary {
        PairSummary {
            pair: pair.to_owned(),
            clean: true,
            ..PairSummary::default()
        }
    }

    /// Adds one collection's report.
    pub fn add(&mut self, report: &CollectionReport) {
        self.collections += 1;
        self.created += report.created;
        self.updated += report.updated;
        self.deleted += report.deleted;
        self.conflicts += report.conflicts.len() as u64;
        self.errors += report.errors.len() as u64 + u64::from(report.refused.is_some());
        self.clean &= report.is_clean();
    }

    /// The environment `post_sync` gets: `DAVSYNC_PAIR`, `DAVSYNC_COLLECTIONS`,
    /// `DAVSYNC_CREATED`, `DAVSYNC_UPDATED`, `DAVSYNC_DELETED`, `DAVSYNC_CONFLICTS`,
    /// `DAVSYNC_ERRORS`, and `DAVSYNC_CLEAN` (`1` when everything is in sync, else `0`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DAVSYNC_PAIR", self.pair.clone()),
            ("DAVSYNC_COLLECTIONS", self.collections.to_string()),
            ("DAVSYNC_CREATED", self.created.to_string()),
            ("DAVSYNC_UPDATED", self.updated.to_string()),
            ("DAVSYNC_DELETED", self.deleted.to_string()),
            ("DAVSYNC_CONFLICTS", self.conflicts.to_string()),
            ("DAVSYNC_ERRORS", self.errors.to_string()),
            ("DAVSYNC_CLEAN", u8::from(self.clean).to_string()),
        ]
    }
}

/// Runs a pair's `post_sync` command with the summary in its environment.
pub fn post_sync(command: &[String], summary: &PairSummary) -> Result<(), HookFailure> {
    run("post_sync", command, None, &summary.env())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        ["sh", "-c", script, "hook"].map(String::from).to_vec()
    }

    #[test]
    fn failures_name_the_hook_the_target_and_how() {
        let target = Some(OsStr::new("/cal/x.ics"));
        assert_eq!(run("post_hook", &sh("exit 0"), target, &[]), Ok(()));
        let failure = run(
            "post_hook",
            &sh("echo ignored; printf '\\n  first line\\nsecond\\n' >&2; exit 3"),
            target,
            &[],
        )
        .unwrap_err();
        assert_eq!(
            failure.to_string(),
            "post_hook \"sh -c echo ignored; printf '\\\\n  first line\\\\nsecond\\\\n' >&2; \
             exit 3 hook\" on /cal/x.ics: exited with status 3: first line"
        );
        let killed = run("pre_deletion_hook", &sh("kill -9 $$"), target, &[]).unwrap_err();
        assert_eq!(killed.how, "killed by signal 9");
        let missing = run(
            "post_sync",
            &["/nonexistent/davsync-hook".to_owned()],
            None,
            &[],
        )
        .unwrap_err();
        assert!(
            missing.to_string().starts_with(
                "post_sync \"/nonexistent/davsync-hook\": could not start: No such file"
            ),
            "{missing}"
        );
    }

    #[test]
    fn the_target_is_the_last_argument_and_env_is_passed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let script = format!(
            "printf '%s|%s\\n' \"$DAVSYNC_PAIR\" \"$1\" > {}",
            log.display()
        );
        run(
            "post_hook",
            &sh(&script),
            Some(OsStr::new("/a b/x.ics")),
            &[("DAVSYNC_PAIR", "p".into())],
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "p|/a b/x.ics\n");
    }

    #[test]
    fn summaries_add_up_collections() {
        let mut summary = PairSummary::new("cal");
        summary.add(&CollectionReport {
            created: 2,
            deleted: 1,
            ..CollectionReport::default()
        });
        assert!(summary.clean);
        summary.add(&CollectionReport {
            updated: 3,
            refused: Some("no".into()),
            ..CollectionReport::default()
        });
        let env = summary.env();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(get("DAVSYNC_COLLECTIONS"), "2");
        assert_eq!(get("DAVSYNC_CREATED"), "2");
        assert_eq!(get("DAVSYNC_UPDATED"), "3");
        assert_eq!(get("DAVSYNC_DELETED"), "1");
        assert_eq!(get("DAVSYNC_ERRORS"), "1");
        assert_eq!(get("DAVSYNC_CLEAN"), "0");
    }
}
