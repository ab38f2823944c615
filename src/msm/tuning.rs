//! The MSM kernels' process-wide knobs, set by the embedding program (the
//! `cvm` binary maps `CVM_MSM_SCALAR` and `CVM_MSM_TRACE` to them through
//! [`crate::tuning`]); the kernels never read the environment.

use std::sync::atomic::{AtomicBool, Ordering};

static SCALAR_ONLY: AtomicBool = AtomicBool::new(false);
static TRACE_DISPATCHES: AtomicBool = AtomicBool::new(false);

/// How the MSM kernels run, for comparing them on one machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsmTuning {
    /// Keep the CPU bucket additions on the scalar path even where AVX-512
    /// IFMA exists (the results are bit-identical).
    pub scalar_only: bool,
    /// Submit and time each GPU dispatch on its own, printing it on stderr.
    pub trace_dispatches: bool,
}

impl MsmTuning {
    /// Apply to every MSM from now on.
    pub fn apply(self) {
        SCALAR_ONLY.store(self.scalar_only, Ordering::Relaxed);
        TRACE_DISPATCHES.store(self.trace_dispatches, Ordering::Relaxed);
    }

    /// The tuning in force.
    pub fn current() -> MsmTuning {
        MsmTuning {
            scalar_only: SCALAR_ONLY.load(Ordering::Relaxed),
            trace_dispatches: TRACE_DISPATCHES.load(Ordering::Relaxed),
        }
    }
}
