//! wgpu device acquisition, limits, shader compilation and readback.
//!
//! One [`GpuContext`] is created per process and shared ([`GpuContext::shared`]);
//! subsystems build their pipelines on it once and keep them. When the device
//! is lost the shared context is dropped and the next call acquires a new one.

use std::sync::{Arc, Mutex};

use crate::backend::{Backend, ResolvedBackend};

#[cfg(feature = "gpu")]
mod context;
#[cfg(not(feature = "gpu"))]
#[path = "absent.rs"]
mod context;

pub use context::GpuContext;

#[cfg(feature = "gpu")]
pub(crate) mod wgsl;

/// Set to `1` (as CI does) to turn "no GPU adapter" into a test failure
/// instead of a skip, so GPU tests can never be skipped silently.
pub const REQUIRE_GPU_ENV: &str = "CVM_REQUIRE_GPU";

/// The wgpu backend's errors are the backend layer's [`DeviceError`](crate::backend::DeviceError)
/// (nothing wgpu-specific crosses into the kernels' callers).
pub use crate::backend::DeviceError as GpuError;

/// What [`GpuContext::compute_pipeline`] tells the compile observer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compiling<'a> {
    /// The driver starts compiling the pipeline with this label (seconds on
    /// a software adapter, milliseconds on a card with a warm shader cache).
    Started(&'a str),
    Finished(&'a str),
}

type CompileObserver = Arc<dyn Fn(Compiling<'_>) + Send + Sync>;

static COMPILE_OBSERVER: Mutex<Option<CompileObserver>> = Mutex::new(None);

/// Calls `observer` around every pipeline compilation in this process, so a
/// front end can show that a first GPU run is compiling kernels; `None`
/// removes it. Compilation happens wherever a subsystem first needs its
/// kernels, so one observer here sees all of them.
pub fn observe_compilation(observer: Option<CompileObserver>) {
    *COMPILE_OBSERVER.lock().unwrap_or_else(|p| p.into_inner()) = observer;
}

#[cfg_attr(not(feature = "gpu"), allow(dead_code))]
fn compile_event(event: Compiling<'_>) {
    let observer = COMPILE_OBSERVER.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(observer) = observer {
        observer(event);
    }
}

/// Whether `Auto` falling back to the CPU is said as a warning (the
/// default) or only logged at info level (a caller that already told the
/// user once, say in an earlier run). Said at most once a process either way.
static FALLBACK_WARNS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
static FALLBACK_SAID: std::sync::Once = std::sync::Once::new();

/// See [`FALLBACK_WARNS`].
pub fn quiet_cpu_fallback_notice() {
    FALLBACK_WARNS.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// Whether this process fell back from `Auto` to the CPU.
pub fn cpu_fallback_said() -> bool {
    FALLBACK_SAID.is_completed()
}

/// Say once that `Auto` uses the CPU, and why.
fn cpu_fallback_notice(why: &str) {
    FALLBACK_SAID.call_once(|| match FALLBACK_WARNS.load(std::sync::atomic::Ordering::Relaxed) {
        true => tracing::warn!("{why}: using the CPU backend"),
        false => tracing::info!("{why}: using the CPU backend"),
    });
}

/// Resolve a requested backend: `Gpu` needs an adapter (any adapter, software
/// ones included), `Auto` uses a hardware adapter and otherwise falls back to
/// the CPU, saying so once.
pub fn resolve(backend: Backend) -> Result<(ResolvedBackend, Option<Arc<GpuContext>>), GpuError> {
    match backend {
        Backend::Cpu => Ok((ResolvedBackend::Cpu, None)),
        Backend::Gpu => GpuContext::shared().map(|ctx| (ResolvedBackend::Gpu, Some(ctx))),
        Backend::Auto => match GpuContext::shared_hardware() {
            // A software rasterizer (llvmpipe/lavapipe) runs on the same CPU
            // cores as our CPU backends, only slower: it is no accelerator.
            // `--backend gpu` still uses it, which is how the tests reach it.
            Ok(Err(software)) => {
                cpu_fallback_notice(&format!("only a software GPU adapter exists ({software})"));
                Ok((ResolvedBackend::Cpu, None))
            }
            Ok(Ok(ctx)) => Ok((ResolvedBackend::Gpu, Some(ctx))),
            Err(err) => {
                cpu_fallback_notice(&format!("no usable GPU ({err})"));
                Ok((ResolvedBackend::Cpu, None))
            }
        },
    }
}

#[cfg(any(test, feature = "test-support"))]
/// For GPU tests: the shared context, or `None` with a printed reason when no
/// adapter exists. Panics instead when `CVM_REQUIRE_GPU=1`.
pub fn test_context() -> Option<Arc<GpuContext>> {
    match GpuContext::shared() {
        Ok(ctx) => Some(ctx),
        Err(err) => {
            if std::env::var(REQUIRE_GPU_ENV).as_deref() == Ok("1") {
                panic!("{REQUIRE_GPU_ENV}=1 but no GPU is usable: {err}");
            }
            eprintln!("skipping GPU test: {err}");
            None
        }
    }
}
