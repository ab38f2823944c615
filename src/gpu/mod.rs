//! wgpu device acquisition, limits, shader compilation and readback.
//!
//! One [`GpuContext`] is created per process and shared ([`GpuContext::shared`]);
//! subsystems build their pipelines on it once and keep them. When the device
//! is lost the shared context is dropped and the next call acquires a new one.

use std::sync::{Arc, Mutex};

use crate::backend::{Backend, ResolvedBackend};

/// Set to `1` (as CI does) to turn "no GPU adapter" into a test failure
/// instead of a skip, so GPU tests can never be skipped silently.
pub const REQUIRE_GPU_ENV: &str = "CVM_REQUIRE_GPU";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GpuError {
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

/// A device, its queue and the facts about the adapter behind them.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    lost: Arc<std::sync::atomic::AtomicBool>,
}

static SHARED: Mutex<Option<Arc<GpuContext>>> = Mutex::new(None);

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

fn compile_event(event: Compiling<'_>) {
    let observer = COMPILE_OBSERVER.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(observer) = observer {
        observer(event);
    }
}

impl GpuContext {
    /// The process-wide context, created on first use (and again after a loss).
    pub fn shared() -> Result<Arc<GpuContext>, GpuError> {
        let mut slot = SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(ctx) = slot.as_ref() {
            if !ctx.is_lost() {
                return Ok(ctx.clone());
            }
        }
        let ctx = Arc::new(GpuContext::new()?);
        *slot = Some(ctx.clone());
        Ok(ctx)
    }

    /// Acquire the best adapter wgpu offers and a device with its full limits
    /// and the optional features our kernels can use.
    pub fn new() -> Result<GpuContext, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let wanted = wgpu::Features::SHADER_INT64 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY;
        let features = adapter.features() & wanted;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("causality-vm"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::RequestDevice { adapter: info.name.clone(), reason: e.to_string() })?;
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            tracing::warn!(?reason, %message, "GPU device lost");
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        tracing::debug!(adapter = %info.name, backend = ?info.backend, device_type = ?info.device_type, "GPU device acquired");
        Ok(GpuContext { device, queue, info, limits, features, lost })
    }

    /// A one-line description: name, backend, device type.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.info.name, self.info.backend, self.info.device_type)
    }

    /// Whether the adapter is a CPU implementation (llvmpipe, lavapipe, WARP).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Compile WGSL, turning validation errors into [`GpuError::Shader`].
    pub fn compile(&self, label: &str, source: &str) -> Result<wgpu::ShaderModule, GpuError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        match pollster::block_on(scope.pop()) {
            Some(err) => Err(GpuError::Shader { label: label.to_string(), reason: err.to_string() }),
            None => Ok(module),
        }
    }

    /// A compute pipeline for `entry` in `module`, with its layout inferred.
    pub fn compute_pipeline(
        &self,
        label: &str,
        module: &wgpu::ShaderModule,
        entry: &str,
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        compile_event(Compiling::Started(label));
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let validated = pollster::block_on(scope.pop());
        compile_event(Compiling::Finished(label));
        match validated {
            Some(err) => Err(GpuError::Shader { label: label.to_string(), reason: err.to_string() }),
            None => Ok(pipeline),
        }
    }

    /// Copy `size` bytes of `source` (a COPY_SRC buffer) to the host.
    pub fn read_buffer(&self, label: &str, source: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, GpuError> {
        let readback_err = |reason: String| GpuError::Readback { label: label.to_string(), reason };
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        encoder.copy_buffer_to_buffer(source, 0, &staging, 0, size);
        self.queue.submit(Some(encoder.finish()));
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = tx.send(result);
        });
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| readback_err(e.to_string()))?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(readback_err(e.to_string())),
            Err(_) => return Err(readback_err("map callback never ran".into())),
        }
        if self.is_lost() {
            return Err(GpuError::DeviceLost(format!("while reading back {label}")));
        }
        let bytes = slice.get_mapped_range().map_err(|e| readback_err(e.to_string()))?.to_vec();
        staging.unmap();
        Ok(bytes)
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
        Backend::Auto => match GpuContext::shared() {
            // A software rasterizer (llvmpipe/lavapipe) runs on the same CPU
            // cores as our CPU backends, only slower: it is no accelerator.
            // `--backend gpu` still uses it, which is how the tests reach it.
            Ok(ctx) if ctx.is_software() => {
                cpu_fallback_notice(&format!("only a software GPU adapter exists ({})", ctx.describe()));
                Ok((ResolvedBackend::Cpu, None))
            }
            Ok(ctx) => Ok((ResolvedBackend::Gpu, Some(ctx))),
            Err(err) => {
                cpu_fallback_notice(&format!("no usable GPU ({err})"));
                Ok((ResolvedBackend::Cpu, None))
            }
        },
    }
}

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
