//! The kernels' process-wide knobs in one struct, and the one place the
//! library maps environment variables to them: an embedding program calls
//! [`Tuning::from_env`] (the `cvm` binary, the benches and the examples do)
//! or builds a [`Tuning`] itself; the kernels never read the environment.

use crate::hash::Kernel;
use crate::msm::{GpuField, GpuFormulas, MsmTuning};

/// Names a CPU hash kernel (portable, sse4.1, avx2, avx512) to use instead
/// of the measured fastest.
pub const HASH_KERNEL_ENV: &str = "CVM_HASH_KERNEL";
/// Set (to anything) to keep the CPU MSM off its AVX-512 IFMA path.
pub const MSM_SCALAR_ENV: &str = "CVM_MSM_SCALAR";
/// Set (to anything) to time every GPU MSM dispatch on its own.
pub const MSM_TRACE_ENV: &str = "CVM_MSM_TRACE";
/// Set (to anything) to time every GPU NTT's phases and dispatches on their own.
pub const NTT_TRACE_ENV: &str = "CVM_NTT_TRACE";
/// `u32` or `u64`: the GPU MSM's field path instead of the fastest the
/// adapter has (for comparing them on one GPU).
pub const MSM_FIELD_ENV: &str = "CVM_MSM_FIELD";
/// `straight` or `stepped`: the GPU MSM's curve formulas for both groups
/// instead of straight for G1 and stepped for G2.
pub const MSM_FORMULAS_ENV: &str = "CVM_MSM_FORMULAS";

/// How the kernels run; the default is what a user gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuning {
    /// The CPU hash kernel; `None` measures the fastest on first use.
    pub hash_kernel: Option<Kernel>,
    pub msm: MsmTuning,
    /// Time GPU NTTs phase by phase ([`crate::ntt::set_trace`]).
    pub ntt_trace: bool,
}

impl Tuning {
    /// The tuning the environment variables above ask for.
    pub fn from_env() -> Result<Tuning, String> {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        let hash_kernel = match std::env::var(HASH_KERNEL_ENV) {
            Ok(name) if !name.trim().is_empty() => {
                Some(name.parse::<Kernel>().map_err(|e| format!("{HASH_KERNEL_ENV}: {e}"))?)
            }
            _ => None,
        };
        let gpu_field = match std::env::var(MSM_FIELD_ENV) {
            Ok(name) => name.parse::<GpuField>().map_err(|e| format!("{MSM_FIELD_ENV}: {e}"))?,
            Err(_) => GpuField::Best,
        };
        let gpu_formulas = match std::env::var(MSM_FORMULAS_ENV) {
            Ok(name) => name.parse::<GpuFormulas>().map_err(|e| format!("{MSM_FORMULAS_ENV}: {e}"))?,
            Err(_) => GpuFormulas::PerGroup,
        };
        Ok(Tuning {
            hash_kernel,
            msm: MsmTuning {
                scalar_only: set(MSM_SCALAR_ENV),
                trace_dispatches: set(MSM_TRACE_ENV),
                gpu_field,
                gpu_formulas,
            },
            ntt_trace: set(NTT_TRACE_ENV),
        })
    }

    /// Apply process-wide, before the first pool or MSM.
    pub fn apply(self) -> Result<(), String> {
        if let Some(kernel) = self.hash_kernel {
            Kernel::prefer(kernel).map_err(|e| format!("{HASH_KERNEL_ENV}={kernel}: {e}"))?;
        }
        self.msm.apply();
        crate::ntt::set_trace(self.ntt_trace);
        Ok(())
    }
}
