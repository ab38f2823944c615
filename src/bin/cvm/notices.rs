//! Notices said once per user, not once per command: a marker in the user's
//! cache directory (`$XDG_CACHE_HOME/causality-vm`, else `~/.cache/…`)
//! remembers that one was said. Best effort: without a cache directory the
//! notice is said each time.

use std::path::PathBuf;

const FALLBACK: &str = "cpu-fallback-noticed";

fn cache_dir() -> Option<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(xdg).join("causality-vm"));
    }
    std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|home| PathBuf::from(home).join(".cache/causality-vm"))
}

/// Whether `--backend auto` falling back to the CPU was already said (then
/// it is logged at info level only: `RUST_LOG=info` shows it).
pub fn fallback_noticed_before() -> bool {
    cache_dir().is_some_and(|dir| dir.join(FALLBACK).exists())
}

pub fn remember_fallback_notice() {
    if let Some(dir) = cache_dir() {
        let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(FALLBACK), b""));
    }
}
