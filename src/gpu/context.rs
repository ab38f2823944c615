//! The wgpu device: acquiring the best adapter, compiling shaders with their
//! validation errors, reading buffers back, noticing a lost device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{compile_event, Compiling, GpuError};

/// Compiled modules by source digest, and their pipelines by entry point.
#[derive(Default)]
struct PipelineCache {
    modules: HashMap<[u8; 32], wgpu::ShaderModule>,
    pipelines: HashMap<([u8; 32], String), Arc<wgpu::ComputePipeline>>,
}

static SHARED: Mutex<Option<Arc<GpuContext>>> = Mutex::new(None);

/// A device, its queue and the facts about the adapter behind them.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    lost: Arc<std::sync::atomic::AtomicBool>,
    /// Every kernel's pipelines on this device, compiled once: compiling is
    /// slow (seconds per module on CPU drivers), and a lost device takes its
    /// cache with it.
    pipelines: Mutex<PipelineCache>,
}

/// The backends our kernels run on. OpenGL is left out: its compute support
/// is partial, and wgpu's GL backend serialises every call on one context,
/// so the prover's concurrent MSMs deadlock or panic in it.
const COMPUTE_BACKENDS: wgpu::Backends = wgpu::Backends::PRIMARY;

/// The adapter wgpu ranks best for compute (high performance first), among
/// the compute backends (`WGPU_BACKEND` narrows them further).
fn best_adapter() -> Result<wgpu::Adapter, GpuError> {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let asked = descriptor.backends;
    descriptor.backends &= COMPUTE_BACKENDS;
    if asked.is_empty() {
        return Err(GpuError::NoAdapter("WGPU_BACKEND names no backend this build knows".into()));
    }
    if descriptor.backends.is_empty() {
        return Err(GpuError::NoAdapter(format!(
            "the backends asked for ({asked:?}, from WGPU_BACKEND) include none our kernels run on (Vulkan, Metal, \
             DX12)"
        )));
    }
    let instance = wgpu::Instance::new(descriptor);
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
        apply_limit_buckets: false,
    }))
    .map_err(|e| GpuError::NoAdapter(e.to_string()))
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// What an error outside every error scope does (wgpu's default handler
/// panics). Once the device is lost every call errs, and the caller's next
/// check of `is_lost` (or its readback) turns that into a DeviceLost error
/// the backend layer recomputes on the CPU: no panic for that. Running out
/// of memory (or an internal driver failure) where no scope checks for it
/// leaves invalid buffers behind, so the device is retired as if lost: its
/// work is recomputed on the CPU and the next use acquires a fresh device,
/// instead of a panic in whatever job allocated last. A validation error
/// is a bug in a kernel, and still panics.
fn on_uncaptured(lost: &std::sync::atomic::AtomicBool, error: wgpu::Error) {
    use std::sync::atomic::Ordering::SeqCst;
    if lost.load(SeqCst) {
        tracing::debug!(%error, "GPU error after the device was lost or retired");
        return;
    }
    match error {
        wgpu::Error::OutOfMemory { .. } | wgpu::Error::Internal { .. } => {
            tracing::warn!(%error, "GPU error outside a checked allocation: the device is retired and its work recomputed on the CPU");
            lost.store(true, SeqCst);
        }
        wgpu::Error::Validation { .. } => panic!("uncaptured wgpu error: {error}"),
    }
}

/// Destroy the lost or retired device in `slot`, so what it still holds
/// (resident bases, tables) is freed before a fresh device is made on the
/// same adapter: a device retired for running out of memory would
/// otherwise keep that memory while anything holds its context.
fn retire(slot: &mut Option<Arc<GpuContext>>) {
    if let Some(old) = slot.take() {
        old.device.destroy();
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
        retire(&mut slot);
        let ctx = Arc::new(GpuContext::new()?);
        *slot = Some(ctx.clone());
        Ok(ctx)
    }

    /// The process-wide context when the best adapter is a hardware one;
    /// otherwise the software adapter's description, and no device is made
    /// on it (making one costs a CPU driver's start-up for nothing).
    pub fn shared_hardware() -> Result<Result<Arc<GpuContext>, String>, GpuError> {
        let mut slot = SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(ctx) = slot.as_ref().filter(|ctx| !ctx.is_lost()) {
            return Ok(if ctx.is_software() { Err(ctx.describe()) } else { Ok(ctx.clone()) });
        }
        retire(&mut slot);
        let adapter = best_adapter()?;
        let info = adapter.get_info();
        if info.device_type == wgpu::DeviceType::Cpu {
            return Ok(Err(describe(&info)));
        }
        let ctx = Arc::new(GpuContext::on(adapter)?);
        *slot = Some(ctx.clone());
        Ok(Ok(ctx))
    }

    /// Acquire the best adapter wgpu offers and a device with its full limits
    /// and the optional features our kernels can use.
    pub fn new() -> Result<GpuContext, GpuError> {
        GpuContext::on(best_adapter()?)
    }

    fn on(adapter: wgpu::Adapter) -> Result<GpuContext, GpuError> {
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
        let flag = lost.clone();
        device.on_uncaptured_error(Arc::new(move |error| on_uncaptured(&flag, error)));
        tracing::debug!(adapter = %info.name, backend = ?info.backend, device_type = ?info.device_type, "GPU device acquired");
        Ok(GpuContext { device, queue, info, limits, features, lost, pipelines: Mutex::new(PipelineCache::default()) })
    }

    /// A one-line description: name, backend, device type.
    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    /// Whether the adapter is a CPU implementation (llvmpipe, lavapipe, WARP).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The most bytes one storage binding can hold on this device (its
    /// binding limit, or its buffer size limit when that is smaller).
    pub fn binding_limit(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// Whether the device was lost, or retired after an error no scope
    /// checked (see `on_uncaptured`).
    pub fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A buffer holding `contents`: wgpu's `create_buffer_init`, except that
    /// a device lost before or during the upload is a [`GpuError::DeviceLost`]
    /// instead of a panic (wgpu's helper panics when the mapping fails).
    pub fn buffer_init(
        &self,
        label: &str,
        contents: &[u8],
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer, GpuError> {
        let lost = || GpuError::DeviceLost(format!("creating the buffer '{label}'"));
        if self.is_lost() {
            return Err(lost());
        }
        if contents.is_empty() {
            let descriptor = wgpu::BufferDescriptor { label: Some(label), size: 0, usage, mapped_at_creation: false };
            return Ok(self.device.create_buffer(&descriptor));
        }
        // Mapped at creation, the size must be a nonzero multiple of 4.
        let align = wgpu::COPY_BUFFER_ALIGNMENT;
        let size = (contents.len() as u64).div_ceil(align) * align;
        let descriptor = wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: true };
        let buffer = self.device.create_buffer(&descriptor);
        let mut view = buffer.get_mapped_range_mut(..).map_err(|e| match self.is_lost() {
            true => lost(),
            false => GpuError::Readback { label: label.to_string(), reason: format!("mapping the new buffer: {e}") },
        })?;
        view.slice(..contents.len()).copy_from_slice(contents);
        drop(view);
        buffer.unmap();
        Ok(buffer)
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

    /// The pipeline for `entry` in the WGSL `source`, compiled on first
    /// request and shared by every caller after (the one pipeline cache of
    /// the hash, MSM and test kernels).
    pub fn pipeline(&self, label: &str, source: &str, entry: &str) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        let digest = *blake3::hash(source.as_bytes()).as_bytes();
        let key = (digest, entry.to_string());
        // Held while compiling: two threads asking for one pipeline compile it once.
        let mut cache = self.pipelines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(pipeline) = cache.pipelines.get(&key) {
            return Ok(pipeline.clone());
        }
        let module = match cache.modules.entry(digest) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => new.insert(self.compile(label, source)?),
        };
        let pipeline = Arc::new(self.compute_pipeline(&format!("{label}::{entry}"), module, entry)?);
        cache.pipelines.insert(key, pipeline.clone());
        Ok(pipeline)
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::on_uncaptured;

    fn source(what: &str) -> wgpu::ErrorSource {
        Box::new(std::io::Error::other(what.to_string()))
    }

    #[test]
    fn running_out_of_memory_unchecked_retires_the_device_instead_of_panicking() {
        let lost = AtomicBool::new(false);
        on_uncaptured(&lost, wgpu::Error::OutOfMemory { source: source("no memory") });
        assert!(lost.load(Ordering::SeqCst), "out of memory retires the device");
        // The invalid buffers it left make later calls fail: logged, not a panic.
        on_uncaptured(&lost, wgpu::Error::Validation { source: source("invalid buffer"), description: "x".into() });

        let lost = AtomicBool::new(false);
        on_uncaptured(&lost, wgpu::Error::Internal { source: source("driver"), description: "x".into() });
        assert!(lost.load(Ordering::SeqCst), "an internal failure retires the device");
    }

    #[test]
    #[should_panic(expected = "uncaptured wgpu error")]
    fn a_validation_error_on_a_live_device_is_a_kernel_bug_and_panics() {
        let lost = AtomicBool::new(false);
        on_uncaptured(&lost, wgpu::Error::Validation { source: source("bad binding"), description: "x".into() });
    }
}
