//! Progress on long work (setup, key loading, GPU kernel compilation,
//! proving, long batches, large files), drawn on stderr only when it is a
//! terminal and the command is not `--quiet` or `--json`. Every bar joins
//! one [`MultiProgress`], so a kernel compiling while the keys load shows
//! as a second line rather than two bars overwriting each other.

use std::io::IsTerminal;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use causality_vm::gpu::{self, Compiling};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

use crate::Globals;

/// Whether progress may be drawn at all.
pub fn shown(globals: &Globals) -> bool {
    !globals.quiet && !globals.json && std::io::stderr().is_terminal()
}

/// A spinner with `message` and the time elapsed, ticking on its own until
/// dropped or finished (None when progress is not shown).
pub fn spinner(globals: &Globals, message: impl Into<String>) -> Option<ProgressBar> {
    shown(globals).then(|| ticking(message.into()))
}

fn ticking(message: String) -> ProgressBar {
    let bar = BARS.add(ProgressBar::new_spinner());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
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
    let bar = BARS.add(ProgressBar::new(len));
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_message(message.to_string());
    Some(bar)
}

/// Shows a spinner while the GPU driver compiles each kernel: on a software
/// adapter the first run spends minutes there and would otherwise look hung.
pub fn watch_gpu_compilation(globals: &Globals) {
    if !shown(globals) {
        return;
    }
    let state: Mutex<(Option<ProgressBar>, usize)> = Mutex::new((None, 0));
    gpu::observe_compilation(Some(Arc::new(move |event: Compiling<'_>| {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        let (current, compiled) = &mut *state;
        match event {
            Compiling::Started(label) => {
                *current = Some(ticking(format!("compiling GPU kernel {label} ({compiled} compiled)")));
            }
            Compiling::Finished(_) => {
                *compiled += 1;
                if let Some(bar) = current.take() {
                    bar.finish_and_clear();
                }
            }
        }
    })));
}
