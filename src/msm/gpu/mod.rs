//! GPU MSM backend: BN254 field and curve arithmetic and a bucket-method
//! multi-scalar multiplication in WGSL.
//!
//! One batch runs entirely on the device: signed-digit windows and a CSR
//! transpose of (point, window) pairs by bucket (`msm_digits`, `msm_scan`), a
//! balanced segmented reduction that sums every bucket (`msm_accumulate`), and
//! the per-window weighted bucket sums (`msm_reduce`, then `msm_accumulate`
//! again). Only the window sums are read back; the host combines windows and
//! batches. Inputs larger than the adapter's binding limit are split into
//! batches, and uploaded bases stay resident in device buffers.
//!
//! G1 and G2 share the graph and the stage code: G2's point stages are
//! G1's renamed over Fq2 (`shaders::over_fq2`), with points twice the words,
//! and its curve code the stepped formulas (`shaders::CurveFormulas`) over
//! Fq2. G2's pipelines are compiled on its first MSM.

pub(crate) mod contract;
pub mod convert;
pub(crate) mod graph;
mod group;
mod kernels;
pub(crate) mod plan;
pub mod shaders;
pub mod testing;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use ark_bn254::{g1, g2, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::short_weierstrass::{Affine, Projective};
use ark_ff::{AdditiveGroup, Zero};
use rayon::prelude::*;

use super::device::{DeviceBases, MsmDevice, RunOptions};
use crate::gpu::{GpuContext, GpuError};
use contract::MsmParams;
use convert::{fr_to_words, push_affine, xyzz_from_words, DeviceCurve};
use graph::Buf;
use kernels::{record, Kernels, Step};
use plan::{max_batch, window_bits_for, Plan};
pub use shaders::{FieldPath, Group};

/// Optional overrides, mainly so tests can reach multi-batch and
/// narrow-window paths at small sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuning {
    /// Window width in bits (2..=16); chosen from the batch size when `None`.
    pub window_bits: Option<u32>,
    /// Most points per batch (and per resident base buffer).
    pub max_batch: Option<usize>,
    /// Field implementation; the fastest the adapter supports when `None`.
    pub field: Option<FieldPath>,
}

/// Bases of `P` (G1 unless named) resident on the device, split into
/// buffers within the binding limit.
pub struct GpuBases<P: DeviceCurve = g1::Config> {
    chunks: Vec<BaseChunk>,
    len: usize,
    group: PhantomData<P>,
}

struct BaseChunk {
    buffer: wgpu::Buffer,
    start: usize,
    len: usize,
}

impl<P: DeviceCurve> GpuBases<P> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// How many device buffers hold the bases.
    pub fn buffer_count(&self) -> usize {
        self.chunks.len()
    }
}

/// Device buffers for batches of up to `plan.n` points, kept between MSMs.
struct Workspace {
    plan: Plan,
    scalars: wgpu::Buffer,
    counts: wgpu::Buffer,
    offsets: wgpu::Buffer,
    chunk_sums: wgpu::Buffer,
    entries: wgpu::Buffer,
    bucket_of: wgpu::Buffer,
    bucket_acc: wgpu::Buffer,
    conts: [(wgpu::Buffer, wgpu::Buffer); 2],
    segments: wgpu::Buffer,
    segment_window: wgpu::Buffer,
    window_acc: wgpu::Buffer,
}

/// One group's pipelines and its workspace (sized for its points).
struct Lane {
    kernels: Kernels,
    workspace: Mutex<Option<Workspace>>,
}

pub struct GpuMsm {
    ctx: Arc<GpuContext>,
    path: FieldPath,
    tuning: Tuning,
    g1: Lane,
    /// Compiled on the first G2 MSM: its pipelines cost as much as G1's.
    g2: Mutex<Option<Arc<Lane>>>,
}

impl GpuMsm {
    /// Compile the MSM pipelines for the fastest field path the adapter has.
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        GpuMsm::with_tuning(ctx, Tuning::default())
    }

    pub fn with_tuning(ctx: Arc<GpuContext>, tuning: Tuning) -> Result<Self, GpuError> {
        let path = tuning.field.unwrap_or_else(|| FieldPath::chosen_for(ctx.features));
        if !path.supported_by(ctx.features) {
            return Err(GpuError::Shader {
                label: "msm".into(),
                reason: format!("field path {path:?} needs SHADER_INT64, which {} lacks", ctx.describe()),
            });
        }
        if let Some(bits) = tuning.window_bits {
            if !(2..=16).contains(&bits) {
                return Err(GpuError::Dispatch {
                    label: "msm".into(),
                    reason: format!("window width {bits} outside 2..=16"),
                });
            }
        }
        let kernels = Kernels::compile(&ctx, path, Group::G1)?;
        let g1 = Lane { kernels, workspace: Mutex::new(None) };
        Ok(GpuMsm { ctx, path, tuning, g1, g2: Mutex::new(None) })
    }

    /// G2's lane, compiling its pipelines on first use.
    fn g2_lane(&self) -> Result<Arc<Lane>, GpuError> {
        let mut g2 = self.g2.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(lane) = g2.as_ref() {
            return Ok(lane.clone());
        }
        let kernels = Kernels::compile(&self.ctx, self.path, Group::G2)?;
        let lane = Arc::new(Lane { kernels, workspace: Mutex::new(None) });
        *g2 = Some(lane.clone());
        Ok(lane)
    }

    /// Compile G2's pipelines now rather than on the first G2 MSM.
    pub fn prepare_g2(&self) -> Result<(), GpuError> {
        self.g2_lane().map(|_| ())
    }

    pub fn field_path(&self) -> FieldPath {
        self.path
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    fn binding_limit(&self) -> u64 {
        self.ctx.binding_limit()
    }

    fn base_chunk_len(&self, group: Group) -> usize {
        let by_limit = (self.binding_limit() / group.base_bytes()).min(plan::MAX_BATCH_POINTS) as usize;
        self.tuning.max_batch.unwrap_or(usize::MAX).min(by_limit).max(1)
    }

    /// Upload `bases` (G1 or G2) once; they stay on the device for `msm_resident`.
    pub fn upload<P: DeviceCurve>(&self, bases: &[Affine<P>]) -> Result<GpuBases<P>, GpuError> {
        let chunk_len = self.base_chunk_len(P::GROUP);
        let scope = self.ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let chunks: Vec<BaseChunk> = bases
            .chunks(chunk_len)
            .enumerate()
            .map(|(i, part)| {
                let words: Vec<u32> = part
                    .par_iter()
                    .fold(Vec::new, |mut out, p| {
                        push_affine(&mut out, p);
                        out
                    })
                    .flatten()
                    .collect();
                debug_assert_eq!(words.len() as u64 * 4, part.len() as u64 * P::GROUP.base_bytes());
                let buffer =
                    self.ctx.buffer_init("msm bases", bytemuck::cast_slice(&words), wgpu::BufferUsages::STORAGE)?;
                Ok(BaseChunk { buffer, start: i * chunk_len, len: part.len() })
            })
            .collect::<Result<_, GpuError>>()?;
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Dispatch { label: "msm bases upload".into(), reason: err.to_string() });
        }
        Ok(GpuBases { chunks, len: bases.len(), group: PhantomData })
    }

    /// sum_i scalars[i] * bases[i] (G1 or G2), uploading the bases for this call only.
    pub fn msm<P: DeviceCurve>(&self, bases: &[Affine<P>], scalars: &[Fr]) -> Result<Projective<P>, GpuError> {
        if bases.len() != scalars.len() {
            return Err(GpuError::Dispatch {
                label: "msm".into(),
                reason: format!("{} bases but {} scalars", bases.len(), scalars.len()),
            });
        }
        if scalars.is_empty() {
            return Ok(Projective::zero());
        }
        let set = self.upload(bases)?;
        self.msm_resident(&set, scalars)
    }

    /// [`GpuMsm::msm_resident`] as the engine runs it (with its fault plan).
    pub fn msm_resident<P: DeviceCurve>(&self, set: &GpuBases<P>, scalars: &[Fr]) -> Result<Projective<P>, GpuError> {
        self.msm_resident_with(set, scalars, &RunOptions::default())
    }

    /// sum_i scalars[i] * set[i] for the first `scalars.len()` resident bases.
    fn msm_resident_with<P: DeviceCurve>(
        &self,
        set: &GpuBases<P>,
        scalars: &[Fr],
        run: &RunOptions,
    ) -> Result<Projective<P>, GpuError> {
        if scalars.len() > set.len {
            return Err(GpuError::Dispatch {
                label: "msm".into(),
                reason: format!("{} scalars but only {} resident bases", scalars.len(), set.len),
            });
        }
        if scalars.is_empty() {
            return Ok(Projective::zero());
        }
        let group = P::GROUP;
        let g2_lane;
        let lane = match group {
            Group::G1 => &self.g1,
            Group::G2 => {
                g2_lane = self.g2_lane()?;
                &*g2_lane
            }
        };
        let chunk_len = self.base_chunk_len(group);
        let window_bits = self.tuning.window_bits.unwrap_or_else(|| window_bits_for(scalars.len().min(chunk_len)));
        let batch = chunk_len.min(max_batch(self.binding_limit(), window_bits, group)).max(1);
        let capacity = batch.min(scalars.len());

        let mut guard = lane.workspace.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let reusable =
            guard.as_ref().is_some_and(|ws| ws.plan.window_bits == window_bits && ws.plan.n as usize >= capacity);
        if !reusable {
            *guard = None;
            *guard = Some(self.workspace_for(Plan::new(capacity as u32, window_bits), group)?);
        }
        let Some(ws) = guard.as_ref() else {
            return Err(GpuError::Dispatch { label: "msm".into(), reason: "no workspace".into() });
        };

        let mut total = Projective::<P>::zero();
        let mut fail_before_step = run.fail_before_step;
        for chunk in &set.chunks {
            let end = (chunk.start + chunk.len).min(scalars.len());
            let mut start = chunk.start;
            while start < end {
                let stop = (start + batch).min(end);
                let offset = (start - chunk.start) as u32;
                let batch_scalars = &scalars[start..stop];
                total +=
                    self.run_batch::<P>(lane, ws, &chunk.buffer, offset, batch_scalars, fail_before_step.take())?;
                start = stop;
            }
        }
        Ok(total)
    }

    fn workspace_for(&self, plan: Plan, group: Group) -> Result<Workspace, GpuError> {
        let point_bytes = group.point_bytes();
        let scope = self.ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = |label: &str, bytes: u64| {
            self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(16).next_multiple_of(4),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        };
        let (odd, even) = plan.cont_capacity();
        let entries = plan.max_entries.max(1) as u64;
        let ws = Workspace {
            plan,
            scalars: buffer("msm scalars", plan.n as u64 * 32),
            counts: buffer("msm bucket counts", plan.total_buckets as u64 * 4),
            offsets: buffer("msm bucket offsets", plan.total_buckets as u64 * 4),
            chunk_sums: buffer("msm scan chunks", plan.scan_chunks as u64 * 4),
            entries: buffer("msm entries", entries * 4),
            bucket_of: buffer("msm entry buckets", entries * 4),
            bucket_acc: buffer("msm buckets", plan.total_buckets as u64 * point_bytes),
            conts: [
                (
                    buffer("msm continuations a", odd as u64 * point_bytes),
                    buffer("msm continuation buckets a", odd as u64 * 4),
                ),
                (
                    buffer("msm continuations b", even as u64 * point_bytes),
                    buffer("msm continuation buckets b", even as u64 * 4),
                ),
            ],
            segments: buffer("msm window segments", plan.segment_count() as u64 * point_bytes),
            segment_window: buffer("msm segment windows", plan.segment_count() as u64 * 4),
            window_acc: buffer("msm window sums", plan.windows as u64 * point_bytes),
        };
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Dispatch { label: "msm workspace".into(), reason: err.to_string() });
        }
        Ok(ws)
    }

    /// One batch on the device; returns its full MSM.
    fn run_batch<P: DeviceCurve>(
        &self,
        lane: &Lane,
        ws: &Workspace,
        bases: &wgpu::Buffer,
        base_offset: u32,
        scalars: &[Fr],
        fail_before_step: Option<usize>,
    ) -> Result<Projective<P>, GpuError> {
        let ctx = &self.ctx;
        let point_bytes = P::GROUP.point_bytes();
        let plan = Plan::new(scalars.len() as u32, ws.plan.window_bits);
        let trace = crate::msm::MsmTuning::current().trace_dispatches;
        let started = std::time::Instant::now();
        let words: Vec<u32> = scalars.par_iter().flat_map_iter(fr_to_words).collect();
        ctx.queue.write_buffer(&ws.scalars, 0, bytemuck::cast_slice(&words));
        if trace {
            eprintln!("msm host: {} scalars converted and queued in {:?}", scalars.len(), started.elapsed());
        }

        let graph = graph::dispatches(&plan);
        let params = MsmParams::new(&plan, base_offset);
        let mut uniforms: HashMap<u32, wgpu::Buffer> = HashMap::new();
        for (_, buf) in graph.iter().flat_map(|d| &d.bindings) {
            if let Buf::Params { list_len } = *buf {
                if let std::collections::hash_map::Entry::Vacant(slot) = uniforms.entry(list_len) {
                    slot.insert(params.with_list_len(list_len).uniform(ctx)?);
                }
            }
        }
        let buffer = |buf: Buf| -> &wgpu::Buffer {
            match buf {
                Buf::Params { list_len } => &uniforms[&list_len],
                Buf::Scalars => &ws.scalars,
                Buf::Counts => &ws.counts,
                Buf::Offsets => &ws.offsets,
                Buf::ChunkSums => &ws.chunk_sums,
                Buf::Entries => &ws.entries,
                Buf::BucketOf => &ws.bucket_of,
                Buf::Bases => bases,
                Buf::BucketAcc => &ws.bucket_acc,
                Buf::Cont(i) => &ws.conts[i as usize].0,
                Buf::ContBucket(i) => &ws.conts[i as usize].1,
                Buf::Segments => &ws.segments,
                Buf::SegmentWindow => &ws.segment_window,
                Buf::WindowAcc => &ws.window_acc,
            }
        };
        let steps: Vec<Step<'_>> = graph
            .iter()
            .map(|d| Step {
                pipeline: lane.kernels.pipeline(d.kernel),
                bindings: d.bindings.iter().map(|(binding, buf)| (binding.slot, buffer(*buf))).collect(),
                threads: d.threads,
                group: d.group,
            })
            .collect();
        // A test's fault: only the dispatches before its step run.
        let steps = &steps[..fail_before_step.map_or(steps.len(), |k| k.min(steps.len()))];

        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut encoder =
            ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("msm batch") });
        for buffer in [&ws.counts, &ws.bucket_of, &ws.bucket_acc, &ws.window_acc] {
            encoder.clear_buffer(buffer, 0, None);
        }
        if trace {
            // Submit and wait for each dispatch on its own, timing it.
            ctx.queue.submit(Some(encoder.finish()));
            for (i, step) in steps.iter().enumerate() {
                let started = std::time::Instant::now();
                let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
                record(ctx, &mut encoder, std::slice::from_ref(step));
                ctx.queue.submit(Some(encoder.finish()));
                let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
                eprintln!("msm step {i} ({} threads): {:?}", step.threads, started.elapsed());
            }
        } else {
            record(ctx, &mut encoder, steps);
            ctx.queue.submit(Some(encoder.finish()));
        }
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Dispatch { label: "msm batch".into(), reason: err.to_string() });
        }
        if let Some(step) = fail_before_step {
            let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
            return Err(GpuError::InjectedFault(format!("msm before dispatch {step} of {}", graph.len())));
        }

        let started = std::time::Instant::now();
        let bytes = ctx.read_buffer("msm window sums", &ws.window_acc, plan.windows as u64 * point_bytes)?;
        if trace {
            eprintln!("msm host: window sums read back in {:?} (after the dispatches)", started.elapsed());
        }
        let words: Vec<u32> = bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let mut total = Projective::<P>::zero();
        for (w, window) in words.chunks_exact(point_bytes as usize / 4).enumerate().rev() {
            for _ in 0..plan.window_bits {
                total.double_in_place();
            }
            total += xyzz_from_words::<P>(window).map_err(|e| GpuError::Readback {
                label: "msm window sums".into(),
                reason: format!("{} window {w}: {e}", P::GROUP.name()),
            })?;
        }
        Ok(total)
    }
}

impl MsmDevice for GpuMsm {
    fn describe(&self) -> String {
        self.ctx.describe()
    }

    fn upload_g1(&self, bases: &[G1Affine]) -> Result<DeviceBases, GpuError> {
        Ok(Arc::new(self.upload(bases)?))
    }

    fn msm_g1_resident(&self, set: &DeviceBases, scalars: &[Fr], run: &RunOptions) -> Result<G1Projective, GpuError> {
        self.msm_resident_with(own_bases::<g1::Config>(set)?, scalars, run)
    }

    fn upload_g2(&self, bases: &[G2Affine]) -> Result<DeviceBases, GpuError> {
        Ok(Arc::new(self.upload(bases)?))
    }

    fn msm_g2_resident(&self, set: &DeviceBases, scalars: &[Fr], run: &RunOptions) -> Result<G2Projective, GpuError> {
        self.msm_resident_with(own_bases::<g2::Config>(set)?, scalars, run)
    }
}

impl crate::backend::LossAware for GpuMsm {
    fn is_lost(&self) -> bool {
        self.ctx.is_lost()
    }
}

/// A set this device uploaded for `P`'s MSMs.
fn own_bases<P: DeviceCurve>(set: &DeviceBases) -> Result<&GpuBases<P>, GpuError> {
    set.downcast_ref::<GpuBases<P>>().ok_or_else(|| GpuError::Dispatch {
        label: "msm".into(),
        reason: format!("not {} bases uploaded to this device", P::GROUP.name()),
    })
}
