//! Progress bars on a terminal for the long phases of a sync (fetching, applying), drawn with
//! `indicatif` from the library's [`Progress::Count`] reports, and the decision when to draw
//! them.

use std::time::{Duration, Instant};

use davsync::sync::Phase;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A phase shorter than this gets no bar: a bar flashing by says nothing.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// Environment variable, for tests only: milliseconds a phase runs before its bar shows,
/// instead of [`SHOW_AFTER`], so that a test sees a bar without a phase that lasts.
const TEST_SHOW_AFTER: &str = "DAVSYNC_TEST_PROGRESS_AFTER_MS";

/// Whether to draw progress bars: only when stderr is a terminal, never with `-q`, with
/// `--json` (the output is for a program), nor while log lines go to stderr (`-vv` and more),
/// which a bar would be drawn over.
pub(super) fn show_progress(stderr_is_tty: bool, quiet: bool, json: bool, logging: bool) -> bool {
    stderr_is_tty && !quiet && !json && !logging
}

/// The bar of the phase under way, drawn once the phase has lasted [`SHOW_AFTER`].
pub(super) struct Bars {
    enabled: bool,
    show_after: Duration,
    /// The phase under way, since when, and its bar once shown.
    current: Option<(Phase, Instant, Option<ProgressBar>)>,
}

impl Bars {
    /// Bars drawn on stderr when `enabled` (see [`show_progress`]).
    pub(super) fn new(enabled: bool) -> Bars {
        let show_after = std::env::var(TEST_SHOW_AFTER)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(SHOW_AFTER, Duration::from_millis);
        Bars {
            enabled,
            show_after,
            current: None,
        }
    }

    /// `phase` of collection `name` got to `done` of `total`.
    pub(super) fn count(&mut self, name: &str, phase: Phase, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        if self.current.as_ref().is_none_or(|(p, ..)| *p != phase) {
            self.finish();
            self.current = Some((phase, Instant::now(), None));
        }
        if done >= total {
            self.finish();
            return;
        }
        let Some((_, started, bar)) = &mut self.current else {
            return;
        };
        let bar = match bar {
            Some(bar) => bar,
            None if started.elapsed() >= self.show_after => {
                bar.insert(new_bar(name, phase, done, total))
            }
            None => return,
        };
        bar.set_length(total);
        bar.set_position(done);
    }

    /// Runs `print` with the bar hidden, so that lines printed meanwhile stay whole.
    pub(super) fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match &self.current {
            Some((_, _, Some(bar))) => bar.suspend(print),
            _ => print(),
        }
    }

    /// Ends the phase under way, clearing its bar.
    pub(super) fn finish(&mut self) {
        if let Some((_, _, Some(bar))) = self.current.take() {
            bar.finish_and_clear();
        }
    }
}

/// A bar for a phase already at `done` of `total`: its rate and time left count from now.
fn new_bar(name: &str, phase: Phase, done: u64, total: u64) -> ProgressBar {
    // Drawn only once set up: a first frame without prefix or with the steps done before
    // the bar as its rate would flash by.
    let bar = ProgressBar::hidden();
    bar.set_length(total);
    // The template is fixed and valid; a failure would only leave the default style.
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} ({rate}, {eta} left)")
    {
        bar.set_style(
            style
                .with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0}/s", state.per_sec());
                    },
                )
                .progress_chars("=> "),
        );
    }
    let doing = match phase {
        Phase::Fetching => "fetching",
        Phase::Applying => "applying",
    };
    bar.set_prefix(format!("{name}: {doing}"));
    bar.set_position(done);
    bar.reset_eta();
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_only_on_a_terminal_without_q_json_or_log_lines() {
        // (stderr is a terminal, -q, --json, -vv) -> bars
        let table = [
            ((true, false, false, false), true),
            ((false, false, false, false), false),
            ((true, true, false, false), false),
            ((true, false, true, false), false),
            ((true, false, false, true), false),
            ((false, true, true, true), false),
        ];
        for ((tty, quiet, json, logging), expected) in table {
            assert_eq!(
                show_progress(tty, quiet, json, logging),
                expected,
                "tty {tty}, quiet {quiet}, json {json}, logging {logging}"
            );
        }
    }
}
