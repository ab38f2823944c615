//! How mimalloc, the allocator of the `cvm` binary and of the benches and
//! load examples that measure it, treats memory: [`configure`] at start.
//!
//! A batch allocates buffers of megabytes (the hash pool's inputs and
//! digests, the state tree's levels, the delta's encoding) and frees them
//! when it ends. By default mimalloc hands freed pages back to the kernel
//! after a second (`MADV_DONTNEED`), so the next batches touch fresh pages
//! that the kernel must zero first: about a tenth of a batch stream's CPU
//! time went to `clear_page_erms`. Kept, the same pages serve every later
//! batch; the peak memory of a 10-batch stream did not change (626 MB
//! against 632 MB), since each batch needs about what the one before did.
//!
//! And mimalloc asks for transparent huge pages, which cost far more than
//! they give on the virtual machines these builds run on: they are turned
//! off before `main` (see `small_pages_only`).

/// Keep freed memory ([`keep_freed_memory`]), before anything large is
/// allocated. Small pages need no call: they are chosen before `main`
/// ([`SMALL_PAGES_BEFORE_MAIN`]).
pub fn configure() {
    keep_freed_memory();
}

/// mimalloc's `mi_option_purge_delay` (the same place in its option list in
/// versions 2 and 3).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keep memory freed by earlier batches for later ones instead of returning
/// it to the kernel, unless `MIMALLOC_PURGE_DELAY` is set (the user's choice
/// wins). Harmless where mimalloc is not the global allocator.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: setting an option is a plain store; mimalloc reads it on its
    // next purge decision.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

/// Back this process's memory with ordinary 4 KiB pages instead of
/// transparent huge pages, unless `MIMALLOC_ALLOW_THP` is set (the user's
/// choice wins). On the virtual machines these builds run on, a freed 2 MiB
/// page is soon handed back to the host, and the next process (or the next
/// large buffer) to get it waits while the host backs it again; small pages
/// come from the kernel's recently freed ones. `cvm groth16 prove` of a
/// 2^16 circuit took 1.2–1.6 s a few seconds after another process ran,
/// against 0.6–0.7 s on small pages; a fresh server's 64 MB hash job
/// 480–644 ms against 283–344 ms. Huge pages gained nothing measurable in
/// the batch bench (docs/PERFORMANCE.md).
///
/// It runs before `main` ([`SMALL_PAGES_BEFORE_MAIN`]): `main` would be too
/// late for the first arena, since the runtime's first allocation, before
/// `main`, makes mimalloc reserve it (advised for huge pages) and write its
/// bookkeeping there, a 2 MiB page fault that cost up to 47 ms of one
/// process's start.
#[cfg(target_os = "linux")]
fn small_pages_only() {
    // `getenv`, not `std::env`: before `main`, nothing may allocate.
    // SAFETY: a NUL-terminated name; the result is only compared to null.
    if !unsafe { libc::getenv(c"MIMALLOC_ALLOW_THP".as_ptr()) }.is_null() {
        return;
    }
    // SAFETY: a process flag; no memory is touched. Where the kernel lacks
    // it the call fails and nothing changes.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// [`small_pages_only`] among the process's constructors, which run
/// before the runtime starts `main` (and allocates for the first time).
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static SMALL_PAGES_BEFORE_MAIN: extern "C" fn() = {
    extern "C" fn before_main() {
        small_pages_only();
    }
    before_main
};

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_is_the_option_set_and_becomes_never() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: plain reads of an option.
        let default = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        assert_eq!(default, 1000, "option {} is not mimalloc 3's purge delay (default 1000 ms)", super::PURGE_DELAY);
        super::keep_freed_memory();
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        assert_eq!(delay, -1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn small_pages_only_turns_huge_pages_off_for_the_process() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            return;
        }
        super::small_pages_only();
        assert_eq!(thp_enabled(), "0");
    }

    /// `THP_enabled` of this process (in the status of every kernel since 5.0).
    #[cfg(target_os = "linux")]
    #[allow(dead_code)] // benches include this file and build no #[test]s
    fn thp_enabled() -> String {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status.lines().find(|l| l.starts_with("THP_enabled:")).expect("no THP_enabled line");
        line.split_whitespace().nth(1).unwrap_or_default().to_string()
    }

    /// In a process of its own (this test binary again, running only this
    /// test), where nothing calls `small_pages_only`: the flag was set
    /// before `main`.
    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_off_before_main() {
        const CHILD: &str = "CVM_ALLOCATOR_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            assert_eq!(thp_enabled(), "0", "the constructor did not run");
            return;
        }
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            return;
        }
        use std::os::unix::process::CommandExt;
        let name = "allocator::tests::huge_pages_are_off_before_main";
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command.args(["--exact", name, "--test-threads=1"]).env(CHILD, "1");
        // The flag is inherited across exec: the child starts with it off,
        // as a process started by anything else would.
        // SAFETY: prctl is async-signal-safe and touches no memory.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
                Ok(())
            });
        }
        let child = command.output().unwrap();
        let out = String::from_utf8_lossy(&child.stdout);
        assert!(child.status.success() && out.contains("1 passed"), "{out}{}", String::from_utf8_lossy(&child.stderr));
    }
}
