//! The kernels' process-wide knobs in one struct, and the one place the
//! library maps environment variables to them: an embedding program calls
//! [`Tuning::from_env`] (the `cvm` binary, the benches and the examples do)
//! or builds a [`Tuning`] itself; the kernels never read the environment.

use crate::hash::Kernel;
use crate::msm::MsmTuning;

/// Names a CPU hash kernel (portable, sse4.1, avx2, avx512) to use instead
/// of the measured fastest.
pub const HASH_KERNEL_ENV: &str = "CVM_HASH_KERNEL";
/// Set (to anything) to keep the CPU MSM off its AVX-512 IFMA path.
pub const MSM_SCALAR_ENV: &str = "CVM_MSM_SCALAR";
/// Set (to anything) to time every GPU MSM dispatch on its own.
pub const MSM_TRACE_ENV: &str = "CVM_MSM_TRACE";

/// How the kernels run; the default is what a user gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuning {
    /// The CPU hash kernel; `None` measures the fastest on first use.
    pub hash_kernel: Option<Kernel>,
    pub msm: MsmTuning,
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
        Ok(Tuning {
            hash_kernel,
            msm: MsmTuning { scalar_only: set(MSM_SCALAR_ENV), trace_dispatches: set(MSM_TRACE_ENV) },
        })
    }

    /// Apply process-wide, before the first pool or MSM.
    pub fn apply(self) -> Result<(), String> {
        if let Some(kernel) = self.hash_kernel {
            Kernel::prefer(kernel).map_err(|e| format!("{HASH_KERNEL_ENV}={kernel}: {e}"))?;
        }
        self.msm.apply();
        Ok(())
    }
}
