//! The progress bar of `gavel produce`: bytes read (against the file's size
//! when it is known), lines and rate; drawn on stderr only when stderr is a
//! terminal, so logs and tests see nothing but the per-line errors.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Lines between bar updates: per line the hot path only adds two numbers.
const EVERY: u64 = 1024;

const WITH_TOTAL: &str =
    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}";
const WITHOUT_TOTAL: &str = "{spinner} [{elapsed_precise}] {bytes} read ({bytes_per_sec}) {msg}";

pub struct Progress {
    bar: ProgressBar,
    lines: u64,
    bytes: u64,
}

impl Progress {
    /// A bar on stderr when it is a terminal, else hidden. `total`: the input's
    /// size in bytes when known (a file; not stdin).
    pub fn for_stderr(total: Option<u64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let (bar, template) = match total {
            Some(total) => (ProgressBar::new(total), WITH_TOTAL),
            None => (ProgressBar::no_length(), WITHOUT_TOTAL),
        };
        // A template typo is our bug, not the user's problem: fall back to the default look.
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Self::with_bar(bar)
    }

    /// Counts without drawing.
    pub fn hidden() -> Self {
        Self::with_bar(ProgressBar::hidden())
    }

    fn with_bar(bar: ProgressBar) -> Self {
        Self {
            bar,
            lines: 0,
            bytes: 0,
        }
    }

    /// One line of `len` bytes read (plus its newline).
    pub fn line(&mut self, len: usize) {
        self.lines += 1;
        self.bytes += len as u64 + 1;
        if self.lines.is_multiple_of(EVERY) {
            self.update();
        }
    }

    fn update(&self) {
        self.bar.set_position(self.bytes);
        self.bar.set_message(format!("{} lines", self.lines));
    }

    /// Prints a message above the bar (plainly to stderr when there is none).
    pub fn report(&self, text: &str) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    /// Bytes the bar shows.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Brings the bar to the final count and clears it: the caller prints the summary.
    pub fn finish(&self) {
        self.update();
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_moves_every_1024_lines_and_shows_everything_at_the_end() {
        let mut progress = Progress::hidden();
        for _ in 0..2500 {
            progress.line(9);
        }
        assert_eq!(progress.position(), 2048 * 10);
        progress.finish();
        assert_eq!(progress.position(), 2500 * 10);
    }
}
