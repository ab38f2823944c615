//! Backend selection shared by the hash pool and the MSM engine, and what
//! every backend shares: its errors and the fault plan tests arm.
//!
//! `Auto` uses a GPU when a usable adapter exists and otherwise warns and uses
//! the CPU; `Gpu` fails with a clear error when there is none, never silently
//! running on the CPU.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

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

/// A device that can tell it is gone (a driver reset, `Device::destroy`,
/// or an allocation failure that retired it): the slot replaces such a
/// device rather than sending it more work.
pub trait LossAware: Send + Sync {
    fn is_lost(&self) -> bool;
}

/// The backend layer's one fallback policy, shared by the hash pool, the MSM
/// engine and the NTT engine: each holds its device in a slot, runs work
/// on `current()`, and on a device error calls [`DeviceSlot::fell_back`]
/// before recomputing the work on the CPU. The slot counts the fallback,
/// logs it once, and replaces a lost device by a fresh one from `acquire`
/// (or by the CPU when none comes back). It also holds the test fault plan,
/// so every kernel fails the same way when a test arms it.
pub struct DeviceSlot<D: ?Sized> {
    /// What runs on the device, for logs ("MSM", "NTT", "hash pool").
    kernel: &'static str,
    device: RwLock<Option<Arc<D>>>,
    acquire: fn() -> Result<Arc<D>, DeviceError>,
    fallbacks: AtomicU64,
    faults: Mutex<FaultPlan>,
}

impl<D: ?Sized + LossAware> DeviceSlot<D> {
    /// A slot holding `device` (`None`: the CPU); `acquire` makes a fresh
    /// device after a loss.
    pub fn new(kernel: &'static str, device: Option<Arc<D>>, acquire: fn() -> Result<Arc<D>, DeviceError>) -> Self {
        DeviceSlot {
            kernel,
            device: RwLock::new(device),
            acquire,
            fallbacks: AtomicU64::new(0),
            faults: Mutex::new(FaultPlan::default()),
        }
    }

    /// The device work goes to now; `None` is the CPU.
    pub fn current(&self) -> Option<Arc<D>> {
        self.device.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Where work runs now.
    pub fn backend(&self) -> ResolvedBackend {
        match self.device.read().unwrap_or_else(|poisoned| poisoned.into_inner()).is_some() {
            true => ResolvedBackend::Gpu,
            false => ResolvedBackend::Cpu,
        }
    }

    /// Device runs that failed and were recomputed on the CPU.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Count `earlier` fallbacks of another holder of the same work.
    pub fn add_fallbacks(&self, earlier: u64) {
        self.fallbacks.fetch_add(earlier, Ordering::Relaxed);
    }

    /// Arm the test fault plan; false (nothing armed) without a device.
    pub fn arm(&self, plan: FaultPlan) -> bool {
        if self.current().is_none() {
            return false;
        }
        *self.faults.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = plan;
        true
    }

    /// The step before which the next device run must fail, if the plan
    /// says so (consumes one run of the plan).
    pub fn next_fault(&self) -> Option<usize> {
        self.faults.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }

    /// The policy, after `failed` returned `err` on `work` items that the
    /// caller now recomputes on the CPU: count, log, and replace the device
    /// if it is lost.
    pub fn fell_back(&self, err: &DeviceError, failed: &Arc<D>, work: usize) {
        tracing::warn!(%err, work, kernel = self.kernel, "GPU {} failed; recomputing it on the CPU", self.kernel);
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.replace_if_lost(failed);
    }

    /// Replace `seen` by a fresh device if it is lost and still the slot's
    /// (another thread may have replaced it already); the CPU when no
    /// fresh device comes.
    pub fn replace_if_lost(&self, seen: &Arc<D>) {
        if !seen.is_lost() {
            return;
        }
        let mut guard = self.device.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.as_ref().is_some_and(|current| Arc::ptr_eq(current, seen)) {
            *guard = (self.acquire)()
                .inspect_err(|err| {
                    tracing::warn!(%err, kernel = self.kernel, "GPU lost and not recovered: {} work continues on the CPU", self.kernel)
                })
                .ok();
        }
    }

    /// A slot for another holder of the same backend (a sibling hash pool):
    /// the same device and acquisition, with no fallbacks counted and no
    /// faults armed.
    pub fn sibling(&self) -> Self {
        DeviceSlot::new(self.kernel, self.current(), self.acquire)
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
