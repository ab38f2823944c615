//! Progress on long work (setup, key loading, proving, long batches, large
//! files), drawn on stderr only when it is a terminal and the command is not
//! `--quiet` or `--json`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::Globals;

/// Whether progress may be drawn at all.
pub fn shown(globals: &Globals) -> bool {
    !globals.quiet && !globals.json && std::io::stderr().is_terminal()
}

/// A spinner with `message` and the time elapsed, ticking on its own until
/// dropped or finished (None when progress is not shown).
pub fn spinner(globals: &Globals, message: impl Into<String>) -> Option<ProgressBar> {
    if !shown(globals) {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

/// A bar of `len` steps of what `unit` names ("proofs", "bytes").
pub fn bar(globals: &Globals, len: u64, message: &str, bytes: bool) -> Option<ProgressBar> {
    if !shown(globals) {
        return None;
    }
    let template = match bytes {
        true => "{spinner} {msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
        false => "{spinner} {msg} [{bar:40}] {pos}/{len} {elapsed}",
    };
    let bar = ProgressBar::new(len);
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_message(message.to_string());
    Some(bar)
}
