//! The MSM kernels' process-wide knobs, set by the embedding program (the
//! `cvm` binary maps `CVM_MSM_SCALAR`, `CVM_MSM_TRACE`, `CVM_MSM_FIELD` and
//! `CVM_MSM_FORMULAS` to them through [`crate::tuning`]); the kernels never
//! read the environment.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

static SCALAR_ONLY: AtomicBool = AtomicBool::new(false);
static TRACE_DISPATCHES: AtomicBool = AtomicBool::new(false);
static GPU_FIELD: AtomicU8 = AtomicU8::new(0);
static GPU_FORMULAS: AtomicU8 = AtomicU8::new(0);

/// The base-field code GPU MSM pipelines are compiled with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpuField {
    /// The 64-bit-integer path where the adapter has it, else the 32-bit one.
    #[default]
    Best,
    U32,
    U64,
}

/// The curve-formula code GPU MSM pipelines are compiled with: one
/// straight-line text per routine, or step programs run by one loop (fewer
/// inlined field products, so much faster to compile). Which runs faster
/// depends on the GPU's compiler, hence the knob.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpuFormulas {
    /// Straight for G1, stepped for G2 (whose straight kernels take lavapipe
    /// about 16 minutes to compile).
    #[default]
    PerGroup,
    Straight,
    Stepped,
}

/// How the MSM kernels run, for comparing them on one machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsmTuning {
    /// Keep the CPU bucket additions on the scalar path even where AVX-512
    /// IFMA exists (the results are bit-identical).
    pub scalar_only: bool,
    /// Submit and time each GPU dispatch on its own, printing it on stderr.
    pub trace_dispatches: bool,
    /// The GPU field path of engines created from now on.
    pub gpu_field: GpuField,
    /// The GPU curve formulas of pipelines compiled from now on.
    pub gpu_formulas: GpuFormulas,
}

impl MsmTuning {
    /// Apply to every MSM from now on.
    pub fn apply(self) {
        SCALAR_ONLY.store(self.scalar_only, Ordering::Relaxed);
        TRACE_DISPATCHES.store(self.trace_dispatches, Ordering::Relaxed);
        GPU_FIELD.store(self.gpu_field as u8, Ordering::Relaxed);
        GPU_FORMULAS.store(self.gpu_formulas as u8, Ordering::Relaxed);
    }

    /// The tuning in force.
    pub fn current() -> MsmTuning {
        let gpu_field = match GPU_FIELD.load(Ordering::Relaxed) {
            1 => GpuField::U32,
            2 => GpuField::U64,
            _ => GpuField::Best,
        };
        let gpu_formulas = match GPU_FORMULAS.load(Ordering::Relaxed) {
            1 => GpuFormulas::Straight,
            2 => GpuFormulas::Stepped,
            _ => GpuFormulas::PerGroup,
        };
        MsmTuning {
            scalar_only: SCALAR_ONLY.load(Ordering::Relaxed),
            trace_dispatches: TRACE_DISPATCHES.load(Ordering::Relaxed),
            gpu_field,
            gpu_formulas,
        }
    }
}

impl FromStr for GpuField {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "best" | "" => Ok(GpuField::Best),
            "u32" => Ok(GpuField::U32),
            "u64" => Ok(GpuField::U64),
            other => Err(format!("unknown GPU field path {other:?} (expected u32, u64 or best)")),
        }
    }
}

impl FromStr for GpuFormulas {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "per-group" | "" => Ok(GpuFormulas::PerGroup),
            "straight" => Ok(GpuFormulas::Straight),
            "stepped" => Ok(GpuFormulas::Stepped),
            other => Err(format!("unknown GPU curve formulas {other:?} (expected straight, stepped or per-group)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_names_are_refused() {
        assert_eq!("U64".parse::<GpuField>(), Ok(GpuField::U64));
        assert_eq!("stepped".parse::<GpuFormulas>(), Ok(GpuFormulas::Stepped));
        assert!("u16".parse::<GpuField>().unwrap_err().contains("u16"));
        assert!("curvy".parse::<GpuFormulas>().unwrap_err().contains("curvy"));
    }
}
