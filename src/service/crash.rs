//! Crash points and injected faults, for the tests: in a debug build, the environment
//! variable `CVM_TEST_CRASH_AT=POINT[:N]` makes the server abort (no
//! cleanup, as a SIGKILL leaves it) the N-th time (the first by default) it
//! reaches POINT. Release builds compile the points to nothing.
//!
//! Points: `accepted` (a group of accepts is durable, no caller told yet),
//! `ended` (a group of job ends is durable, no watcher told yet),
//! `batch-started` (a batch job's start is durable, nothing executed),
//! `batch-committed` (a pipeline's batches are committed in the store,
//! their jobs' ends not yet written), and `stage:NAME` (a running job
//! begins stage NAME: `prove`, `hash`, `msm`, `load keys`, `execute`).
//!
//! Faults: `CVM_TEST_FAIL_AT=FAULT:N` makes the first N tries of each job
//! fail at FAULT. `end-write`: writing the job's end to the job store (as a
//! full disk fails a result's file). `panic`: the first N stages any job
//! begins panic (as a bug in a kernel would). `uncertain-commit`: the first
//! N batch pipelines' commits are taken as uncertain (as when a failed
//! append could not be cut back off the log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const VARIABLE: &str = "CVM_TEST_CRASH_AT";
pub const FAULT_VARIABLE: &str = "CVM_TEST_FAIL_AT";

/// How many tries of each job fail at `fault` (0 in release builds and
/// without the variable).
pub fn injected(fault: &str) -> u64 {
    if !cfg!(debug_assertions) {
        return 0;
    }
    static AT: OnceLock<Option<(String, u64)>> = OnceLock::new();
    match AT.get_or_init(|| parse(&std::env::var(FAULT_VARIABLE).ok()?)) {
        Some((at, n)) if at == fault => *n,
        _ => 0,
    }
}

/// Whether the `uncertain-commit` fault takes this pipeline's commit (the
/// first N of the process): the server then acts as if the store could not
/// tell whether its batches committed (they did).
pub fn uncertain_commit() -> bool {
    static SEEN: AtomicU64 = AtomicU64::new(0);
    injected("uncertain-commit") > SEEN.fetch_add(1, Ordering::SeqCst)
}

/// Panic at stage `name` if the `panic` fault still has tries to fail.
pub fn panic_point(name: &str) {
    static PANICKED: AtomicU64 = AtomicU64::new(0);
    if injected("panic") > PANICKED.fetch_add(1, Ordering::SeqCst) {
        panic!("injected at stage {name} ({FAULT_VARIABLE})");
    }
}

pub fn point(name: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    static AT: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static REACHED: AtomicU64 = AtomicU64::new(0);
    let Some((at, nth)) = AT.get_or_init(|| parse(&std::env::var(VARIABLE).ok()?)) else { return };
    if at == name && REACHED.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        eprintln!("cvm serve: crash point {name} reached ({VARIABLE}): aborting");
        std::process::abort();
    }
}

fn parse(value: &str) -> Option<(String, u64)> {
    match value.rsplit_once(':') {
        Some((name, n)) if n.parse::<u64>().is_ok() => Some((name.to_string(), n.parse().ok()?)),
        _ => Some((value.to_string(), 1)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn points_name_a_place_and_a_count() {
        assert_eq!(super::parse("accepted"), Some(("accepted".into(), 1)));
        assert_eq!(super::parse("batch-committed:3"), Some(("batch-committed".into(), 3)));
        assert_eq!(super::parse("stage:prove"), Some(("stage:prove".into(), 1)));
        assert_eq!(super::parse("stage:prove:2"), Some(("stage:prove".into(), 2)));
    }
}
