//! The kernels' process-wide knobs in one struct, and the one place the
//! library maps environment variables to them: an embedding program calls
//! [`Tuning::from_env`] (the `cvm` binary, the benches and the examples do)
//! or builds a [`Tuning`] itself; the kernels never read the environment.

use crate::crypto::poseidon::PoseidonKernel;
use crate::hash::Kernel;
use crate::msm::{GpuField, GpuFormulas, MsmTuning};

/// Names a CPU hash kernel (portable, sse4.1, avx2, avx512) to use instead
/// of the measured fastest.
pub const HASH_KERNEL_ENV: &str = "CVM_HASH_KERNEL";
/// `1` keeps the CPU MSM off its AVX-512 IFMA path (switches: [`switch`]).
pub const MSM_SCALAR_ENV: &str = "CVM_MSM_SCALAR";
/// `1` times every GPU MSM dispatch on its own.
pub const MSM_TRACE_ENV: &str = "CVM_MSM_TRACE";
/// `1` times every GPU NTT's phases and dispatches on their own.
pub const NTT_TRACE_ENV: &str = "CVM_NTT_TRACE";
/// `u32` or `u64`: the GPU MSM's field path instead of the fastest the
/// adapter has (for comparing them on one GPU).
pub const MSM_FIELD_ENV: &str = "CVM_MSM_FIELD";
/// `straight` or `stepped`: the GPU MSM's curve formulas for both groups
/// instead of straight for G1 and stepped for G2.
pub const MSM_FORMULAS_ENV: &str = "CVM_MSM_FORMULAS";
/// Names the CPU Poseidon kernel (avx512-ifma, avx2, scalar) instead of the fastest.
pub const POSEIDON_KERNEL_ENV: &str = "CVM_POSEIDON_KERNEL";
/// `1`: the scalar Poseidon kernel (the same as `CVM_POSEIDON_KERNEL=scalar`).
pub const POSEIDON_SCALAR_ENV: &str = "CVM_POSEIDON_SCALAR";

/// An on/off variable's value: `1`, `true`, `yes` or `on`; `0`, `false`,
/// `no`, `off`, empty or unset. Anything else is an error, so `=0` never
/// turns a switch on.
pub fn switch(name: &str, value: Option<&str>) -> Result<bool, String> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "0" | "false" | "no" | "off") => Ok(false),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some(other) => Err(format!("{name}={other:?}: expected 1 or 0 (true/false, yes/no, on/off)")),
    }
}

/// How the kernels run; the default is what a user gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuning {
    /// The CPU hash kernel; `None` measures the fastest on first use.
    pub hash_kernel: Option<Kernel>,
    pub msm: MsmTuning,
    /// Time GPU NTTs phase by phase ([`crate::ntt::set_trace`]).
    pub ntt_trace: bool,
    /// The CPU Poseidon kernel; `None` is the fastest the processor runs.
    pub poseidon_kernel: Option<PoseidonKernel>,
}

impl Tuning {
    /// The tuning the environment variables above ask for.
    pub fn from_env() -> Result<Tuning, String> {
        let set = |name: &str| match std::env::var_os(name) {
            None => Ok(false),
            Some(value) => switch(name, Some(value.to_str().ok_or_else(|| format!("{name}: not Unicode text"))?)),
        };
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
        let named = match std::env::var(POSEIDON_KERNEL_ENV) {
            Ok(name) if !name.trim().is_empty() => {
                Some(name.parse::<PoseidonKernel>().map_err(|e| format!("{POSEIDON_KERNEL_ENV}: {e}"))?)
            }
            _ => None,
        };
        let poseidon_kernel = match (set(POSEIDON_SCALAR_ENV)?, named) {
            (true, Some(other)) if other != PoseidonKernel::Scalar => {
                return Err(format!(
                    "{POSEIDON_SCALAR_ENV} asks for the scalar kernel, {POSEIDON_KERNEL_ENV} for {other}"
                ))
            }
            (true, _) => Some(PoseidonKernel::Scalar),
            (false, named) => named,
        };
        Ok(Tuning {
            poseidon_kernel,
            hash_kernel,
            msm: MsmTuning {
                scalar_only: set(MSM_SCALAR_ENV)?,
                trace_dispatches: set(MSM_TRACE_ENV)?,
                gpu_field,
                gpu_formulas,
            },
            ntt_trace: set(NTT_TRACE_ENV)?,
        })
    }

    /// Apply process-wide, before the first pool or MSM.
    pub fn apply(self) -> Result<(), String> {
        if let Some(kernel) = self.hash_kernel {
            Kernel::prefer(kernel).map_err(|e| format!("{HASH_KERNEL_ENV}={kernel}: {e}"))?;
        }
        self.msm.apply();
        crate::ntt::set_trace(self.ntt_trace);
        PoseidonKernel::prefer(self.poseidon_kernel).map_err(|e| format!("{POSEIDON_KERNEL_ENV}: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::switch;

    #[test]
    fn switches_read_on_and_off_and_refuse_anything_else() {
        for on in ["1", "true", "YES", " on "] {
            assert_eq!(switch("X", Some(on)), Ok(true), "{on}");
        }
        for off in [None, Some(""), Some("0"), Some("false"), Some("No"), Some("off")] {
            assert_eq!(switch("X", off), Ok(false), "{off:?}");
        }
        let err = switch("CVM_MSM_SCALAR", Some("2")).unwrap_err();
        assert!(err.contains("CVM_MSM_SCALAR") && err.contains("expected 1 or 0"), "{err}");
    }
}
