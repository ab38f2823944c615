//! Backend selection shared by the hash pool and the MSM engine, and what
//! every backend shares: its errors and the fault plan tests arm.
//!
//! `Auto` uses a GPU when a usable adapter exists and otherwise warns and uses
//! the CPU; `Gpu` fails with a clear error when there is none, never silently
//! running on the CPU.

use std::fmt;
use std::str::FromStr;

/// The environment variable that picks a backend when none is given explicitly.
pub const BACKEND_ENV: &str = "CVM_BACKEND";

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Auto,
    Cpu,
    Gpu,
}

/// What actually runs once `Auto` has been resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResolvedBackend {
    Cpu,
    Gpu,
}

impl Backend {
    /// The backend named by `CVM_BACKEND`, or `Auto` when it is unset.
    pub fn from_env() -> Result<Self, ParseBackendError> {
        match std::env::var(BACKEND_ENV) {
            Ok(value) if !value.trim().is_empty() => value.parse(),
            _ => Ok(Backend::Auto),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
        })
    }
}

impl fmt::Display for ResolvedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResolvedBackend::Cpu => "cpu",
            ResolvedBackend::Gpu => "gpu",
        })
    }
}

/// What went wrong on an accelerator, whichever backend runs it (today
/// wgpu, where it is also called `gpu::GpuError`). Callers see these only
/// when they asked for a device outright; a failure mid-run is recomputed on
/// the CPU (see [`FaultPlan`] and each engine's fallback accounting).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("no GPU adapter available: {0}")]
    NoAdapter(String),
    #[error("the GPU adapter {adapter} refused to create a device: {reason}")]
    RequestDevice { adapter: String, reason: String },
    #[error("shader {label} failed to compile: {reason}")]
    Shader { label: String, reason: String },
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    #[error("GPU dispatch {label} failed: {reason}")]
    Dispatch { label: String, reason: String },
    #[error("reading back GPU buffer {label} failed: {reason}")]
    Readback { label: String, reason: String },
    #[error("GPU fault injected for testing at {0}")]
    InjectedFault(String),
}

/// A test's plan of device failures, the same for every kernel: the next
/// `runs` device runs of one pool or engine fail as a lost device would,
/// each before its step `at_step` (a hash flush's segment, an MSM's
/// dispatch; 0 is before any work). The pool or engine then recomputes the
/// run on the CPU and counts it. Armed through the `test-support` hooks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    pub runs: u32,
    pub at_step: usize,
}

impl FaultPlan {
    /// One failing run, before step `at_step`.
    pub fn once_at(at_step: usize) -> FaultPlan {
        FaultPlan { runs: 1, at_step }
    }

    /// Consume one run of the plan: `Some(step)` if this run must fail
    /// before `step`.
    pub fn take(&mut self) -> Option<usize> {
        if self.runs == 0 {
            return None;
        }
        self.runs -= 1;
        Some(self.at_step)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown backend {given:?}: expected one of auto, cpu, gpu")]
pub struct ParseBackendError {
    pub given: String,
}

impl FromStr for Backend {
    type Err = ParseBackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "cpu" => Ok(Backend::Cpu),
            "gpu" => Ok(Backend::Gpu),
            _ => Err(ParseBackendError { given: s.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_case_insensitively() {
        assert_eq!("GPU".parse::<Backend>(), Ok(Backend::Gpu));
        assert_eq!(" cpu ".parse::<Backend>(), Ok(Backend::Cpu));
        assert_eq!("auto".parse::<Backend>(), Ok(Backend::Auto));
        assert!("cuda".parse::<Backend>().is_err());
    }
}
