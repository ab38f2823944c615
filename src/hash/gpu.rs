//! The GPU backend: BLAKE3 in WGSL, one invocation per single-chunk message,
//! and whole Merkle trees in one submission.
//!
//! Messages longer than one chunk (1,024 bytes) are handed to the CPU (the
//! blake3 crate's tree hashing), which runs them while the GPU works on the
//! rest. Inputs go up as three buffers (message words, a job table, the key
//! table) and the digests come back as one buffer per segment; a flush is cut
//! into segments that fit the adapter's binding and buffer size limits, and
//! each segment is submitted as soon as it is recorded, so the uploads of the
//! next overlap the compute of the previous one.

use std::num::NonZeroU64;
use std::sync::{Arc, OnceLock};

use ark_bn254::Fr;

use rayon::prelude::*;

use super::batch::{Job, PackedBatch};
use super::consts::CHUNK_LEN;
use super::device::{HashDevice, RunOptions};
use super::poseidon_gpu::GpuPoseidon;
use crate::crypto::poseidon::PoseidonBatch;
use crate::gpu::wgsl::{Binding, KernelModule, WgslStruct};
use crate::gpu::{GpuContext, GpuError};

/// Threads per workgroup, emitted into the shaders as `WORKGROUP_SIZE`.
const WORKGROUP: u32 = 64;
const CORE_WGSL: &str = include_str!("gpu/blake3_core.wgsl");
const HASH_WGSL: &str = include_str!("gpu/blake3_hash.wgsl");
const MERKLE_WGSL: &str = include_str!("gpu/blake3_merkle.wgsl");

const WORDS: Binding = Binding::read(0, "words", "array<u32>");
const JOBS: Binding = Binding::read(1, "jobs", "array<Job>");
const KEYS: Binding = Binding::read(2, "keys", "array<u32>");
const DIGESTS: Binding = Binding::read_write(3, "digests", "array<u32>");
const HASH_BINDINGS: [Binding; 4] = [WORDS, JOBS, KEYS, DIGESTS];
const NODES: Binding = Binding::read_write(0, "nodes", "array<u32>");
const LEVEL: Binding = Binding::uniform(1, "level", "Level");
const MERKLE_BINDINGS: [Binding; 2] = [NODES, LEVEL];
const CONSTANTS: [(&str, u32); 1] = [("WORKGROUP_SIZE", WORKGROUP)];

/// One job as the shader reads it (`Job`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GpuJob {
    /// Start of the message in `words` (messages start on word boundaries).
    offset: u32,
    len: u32,
    /// Index of the 8-word key in `keys` (the IV for plain hashing).
    key: u32,
    /// 0, KEYED_HASH or DERIVE_KEY_MATERIAL.
    flags: u32,
}

impl WgslStruct for GpuJob {
    const NAME: &'static str = "Job";
    const FIELDS: &'static [&'static str] = &["offset", "len", "key", "flags"];
    const HOST_SIZE: usize = size_of::<GpuJob>();
}

/// One Merkle level as the shader reads it (`Level`): its first node, its
/// node count, the first node of the next level.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GpuLevel {
    src: u32,
    count: u32,
    dst: u32,
    unused: u32,
}

impl WgslStruct for GpuLevel {
    const NAME: &'static str = "Level";
    const FIELDS: &'static [&'static str] = &["src", "count", "dst", "unused"];
    const HOST_SIZE: usize = size_of::<GpuLevel>();
}

/// The hash module: one invocation per single-chunk message.
fn hash_module() -> KernelModule<'static> {
    KernelModule {
        label: "blake3_hash",
        constants: &CONSTANTS,
        structs: vec![GpuJob::declaration()],
        bindings: &HASH_BINDINGS,
        code: vec![CORE_WGSL.into(), HASH_WGSL.into()],
    }
}

/// The Merkle module: one dispatch per tree level.
fn merkle_module() -> KernelModule<'static> {
    KernelModule {
        label: "blake3_merkle",
        constants: &CONSTANTS,
        structs: vec![GpuLevel::declaration()],
        bindings: &MERKLE_BINDINGS,
        code: vec![CORE_WGSL.into(), MERKLE_WGSL.into()],
    }
}

/// Consecutive single-chunk jobs sharing one upload.
struct Segment {
    first_byte: usize,
    end_byte: usize,
    jobs: Vec<GpuJob>,
    /// Each job's index in the batch.
    slots: Vec<usize>,
}

/// The compiled pipelines on one device.
pub struct GpuHasher {
    ctx: Arc<GpuContext>,
    hash: Arc<wgpu::ComputePipeline>,
    merkle: Arc<wgpu::ComputePipeline>,
    /// Made on the first Poseidon flush: a pool that never files one never
    /// compiles it (seconds on a software adapter).
    poseidon: OnceLock<Result<GpuPoseidon, GpuError>>,
}

impl GpuHasher {
    /// The hasher on the shared context (its pipelines come from the
    /// context's cache: compiled once per device, again after a loss).
    pub fn shared() -> Result<Arc<GpuHasher>, GpuError> {
        Ok(Arc::new(GpuHasher::new(GpuContext::shared()?)?))
    }

    /// Both pipelines on `ctx`.
    pub fn new(ctx: Arc<GpuContext>) -> Result<GpuHasher, GpuError> {
        let hash = ctx.pipeline("blake3_hash", &hash_module().compose(), "hash_many")?;
        let merkle = ctx.pipeline("blake3_merkle", &merkle_module().compose(), "merkle_level")?;
        Ok(GpuHasher { ctx, hash, merkle, poseidon: OnceLock::new() })
    }

    /// The most bytes one binding may hold (and one word index can address).
    fn binding_limit(&self) -> u64 {
        self.ctx.binding_limit().min(u32::MAX as u64)
    }

    /// Workgroup grid for `invocations` threads within 65,535 (or the
    /// adapter's limit) per dimension.
    fn grid(&self, invocations: usize) -> (u32, u32) {
        let groups = (invocations as u64).div_ceil(WORKGROUP as u64).max(1);
        let max_dim = self.ctx.limits.max_compute_workgroups_per_dimension.max(1) as u64;
        let x = groups.min(max_dim);
        (x as u32, groups.div_ceil(x) as u32)
    }

    fn check_alive(&self, during: &str) -> Result<(), GpuError> {
        if self.ctx.is_lost() {
            return Err(GpuError::DeviceLost(during.to_string()));
        }
        Ok(())
    }

    /// Cut the batch's single-chunk jobs into segments within the limits;
    /// returns them and the multi-chunk jobs with their indices.
    fn plan(&self, batch: &PackedBatch, options: &RunOptions) -> (Vec<Segment>, Vec<(usize, Job)>) {
        let limit = self.binding_limit() as usize;
        // Digests (32 bytes a job) are the largest per-job buffer.
        let max_jobs = (limit / 32).min(options.max_segment_jobs.unwrap_or(usize::MAX)).max(1);
        let mut segments: Vec<Segment> = Vec::new();
        let mut long = Vec::new();
        for (i, job) in batch.jobs().enumerate() {
            if job.len > CHUNK_LEN {
                long.push((i, job));
                continue;
            }
            let end = (job.offset + job.len).next_multiple_of(4);
            let fits = segments.last().is_some_and(|s| s.jobs.len() < max_jobs && end - s.first_byte <= limit);
            if !fits {
                segments.push(Segment { first_byte: job.offset, end_byte: end, jobs: Vec::new(), slots: Vec::new() });
            }
            let segment = segments.last_mut().expect("a segment was just ensured");
            segment.end_byte = end;
            segment.jobs.push(GpuJob {
                offset: ((job.offset - segment.first_byte) / 4) as u32,
                len: job.len as u32,
                key: job.key,
                flags: job.flags,
            });
            segment.slots.push(i);
        }
        (segments, long)
    }

    /// Digest every job of `batch` into `out` (request order).
    fn run_hash_batch(&self, batch: &PackedBatch, out: &mut [[u8; 32]], options: &RunOptions) -> Result<(), GpuError> {
        let (segments, long) = self.plan(batch, options);
        let device = &self.ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom_scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let keys = self.ctx.buffer_init(
            "blake3 keys",
            bytemuck::cast_slice(batch.keys.as_flattened()),
            wgpu::BufferUsages::STORAGE,
        )?;
        let mut results = Vec::with_capacity(segments.len());
        for (s, segment) in segments.iter().enumerate() {
            if options.fail_before_step == Some(s) {
                return Err(GpuError::InjectedFault(format!("hash segment {s} of {}", segments.len())));
            }
            results.push(self.submit_segment(batch, segment, &keys)?);
        }
        let oom = pollster::block_on(oom_scope.pop());
        let validation = pollster::block_on(scope.pop());
        if let Some(err) = validation.or(oom) {
            return Err(GpuError::Dispatch { label: "blake3 hash_many".into(), reason: err.to_string() });
        }
        // The CPU takes the multi-chunk messages while the GPU runs.
        let long_digests: Vec<(usize, [u8; 32])> =
            long.par_iter().map(|(i, job)| (*i, batch.crate_digest(job))).collect();
        for (segment, digests) in segments.iter().zip(&results) {
            let bytes = self.ctx.read_buffer("blake3 digests", digests, (segment.jobs.len() * 32) as u64)?;
            for (&slot, digest) in segment.slots.iter().zip(bytes.chunks_exact(32)) {
                out[slot].copy_from_slice(digest);
            }
        }
        self.check_alive("hashing a batch")?;
        for (i, digest) in long_digests {
            out[i] = digest;
        }
        Ok(())
    }

    /// Upload one segment, record its dispatch and submit it; returns the
    /// buffer its digests will be in.
    fn submit_segment(
        &self,
        batch: &PackedBatch,
        segment: &Segment,
        keys: &wgpu::Buffer,
    ) -> Result<wgpu::Buffer, GpuError> {
        let device = &self.ctx.device;
        let message_bytes = &batch.bytes[segment.first_byte..segment.end_byte];
        // A binding may not be empty: all-empty messages still get one word.
        let words = if message_bytes.is_empty() { &[0u8; 4][..] } else { message_bytes };
        let words = self.ctx.buffer_init("blake3 message words", words, wgpu::BufferUsages::STORAGE)?;
        let jobs =
            self.ctx.buffer_init("blake3 jobs", bytemuck::cast_slice(&segment.jobs), wgpu::BufferUsages::STORAGE)?;
        let digests = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("blake3 digests"),
            size: (segment.jobs.len() * 32) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("blake3 hash_many"),
            layout: &self.hash.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry { binding: WORDS.slot, resource: words.as_entire_binding() },
                wgpu::BindGroupEntry { binding: JOBS.slot, resource: jobs.as_entire_binding() },
                wgpu::BindGroupEntry { binding: KEYS.slot, resource: keys.as_entire_binding() },
                wgpu::BindGroupEntry { binding: DIGESTS.slot, resource: digests.as_entire_binding() },
            ],
        });
        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("blake3 hash_many") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("blake3 hash_many"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.hash);
            pass.set_bind_group(0, &bind_group, &[]);
            let (x, y) = self.grid(segment.jobs.len());
            pass.dispatch_workgroups(x, y, 1);
        }
        self.ctx.queue.submit(Some(encoder.finish()));
        Ok(digests)
    }

    /// The Merkle root of `leaves` (same rules as the CPU), every level on
    /// the GPU in one submission with a single 32-byte readback.
    fn run_merkle_root(&self, leaves: &[[u8; 32]], options: &RunOptions) -> Result<[u8; 32], GpuError> {
        match leaves.len() {
            0 => return Ok(*blake3::hash(&[]).as_bytes()),
            1 => return Ok(leaves[0]),
            _ => {}
        }
        let mut levels = Vec::new();
        let (mut src, mut count, mut total) = (0usize, leaves.len(), leaves.len());
        while count > 1 {
            let next = count.div_ceil(2);
            levels.push(GpuLevel { src: src as u32, count: count as u32, dst: total as u32, unused: 0 });
            src = total;
            total += next;
            count = next;
        }
        let node_bytes = (total * 32) as u64;
        if node_bytes > self.binding_limit() {
            return Err(GpuError::Dispatch {
                label: "blake3 merkle".into(),
                reason: format!(
                    "{} leaves need {node_bytes} bytes of nodes, over the adapter's binding limit of {}",
                    leaves.len(),
                    self.binding_limit()
                ),
            });
        }
        let device = &self.ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let nodes = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("merkle nodes"),
            size: node_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.ctx.queue.write_buffer(&nodes, 0, leaves.as_flattened());
        // One uniform slot per level, each at an aligned offset.
        let stride = (self.ctx.limits.min_uniform_buffer_offset_alignment as usize).max(size_of::<GpuLevel>());
        let mut uniforms = vec![0u8; stride * levels.len()];
        for (slot, level) in uniforms.chunks_exact_mut(stride).zip(&levels) {
            slot[..size_of::<GpuLevel>()].copy_from_slice(bytemuck::bytes_of(level));
        }
        let uniforms = self.ctx.buffer_init("merkle levels", &uniforms, wgpu::BufferUsages::UNIFORM)?;
        let layout = self.merkle.get_bind_group_layout(0);
        let bind_groups: Vec<wgpu::BindGroup> = (0..levels.len())
            .map(|l| {
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("merkle level"),
                    layout: &layout,
                    entries: &[
                        wgpu::BindGroupEntry { binding: NODES.slot, resource: nodes.as_entire_binding() },
                        wgpu::BindGroupEntry {
                            binding: LEVEL.slot,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &uniforms,
                                offset: (l * stride) as u64,
                                size: NonZeroU64::new(size_of::<GpuLevel>() as u64),
                            }),
                        },
                    ],
                })
            })
            .collect();
        let root = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("merkle root"),
            size: 32,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("merkle") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("merkle levels"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.merkle);
            // Each dispatch is its own usage scope, so wgpu orders the levels.
            for (level, bind_group) in levels.iter().zip(&bind_groups) {
                pass.set_bind_group(0, bind_group, &[]);
                let (x, y) = self.grid(level.count.div_ceil(2) as usize);
                pass.dispatch_workgroups(x, y, 1);
            }
        }
        encoder.copy_buffer_to_buffer(&nodes, ((total - 1) * 32) as u64, &root, 0, 32);
        if options.fail_before_step.is_some() {
            return Err(GpuError::InjectedFault("merkle submission".into()));
        }
        self.ctx.queue.submit(Some(encoder.finish()));
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Dispatch { label: "blake3 merkle".into(), reason: err.to_string() });
        }
        let bytes = self.ctx.read_buffer("merkle root", &root, 32)?;
        self.check_alive("computing a Merkle root")?;
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&bytes);
        Ok(digest)
    }
}

impl HashDevice for GpuHasher {
    fn describe(&self) -> String {
        self.ctx.describe()
    }

    fn hash_batch(&self, batch: &PackedBatch, out: &mut [[u8; 32]], run: &RunOptions) -> Result<(), GpuError> {
        self.run_hash_batch(batch, out, run)
    }

    fn poseidon(&self, batch: &PoseidonBatch, out: &mut [Fr], run: &RunOptions) -> Result<(), GpuError> {
        let kernel = self.poseidon.get_or_init(|| GpuPoseidon::new(self.ctx.clone()));
        kernel.as_ref().map_err(Clone::clone)?.hash_into(batch, out, run.fail_before_step)
    }

    fn merkle_root(&self, leaves: &[[u8; 32]], run: &RunOptions) -> Result<[u8; 32], GpuError> {
        self.run_merkle_root(leaves, run)
    }
}

impl crate::backend::LossAware for GpuHasher {
    fn is_lost(&self) -> bool {
        self.ctx.is_lost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::wgsl::checked::check;

    /// Both modules validate with naga, their structs are the host's size,
    /// and each entry point uses exactly the bindings the host binds.
    #[test]
    fn the_kernels_keep_the_host_contract() {
        let hash = check(&hash_module());
        assert_eq!(hash.struct_size("Job"), GpuJob::HOST_SIZE);
        assert_eq!(hash.used_slots("hash_many"), HASH_BINDINGS.iter().map(|b| b.slot).collect());
        let merkle = check(&merkle_module());
        assert_eq!(merkle.struct_size("Level"), GpuLevel::HOST_SIZE);
        assert_eq!(merkle.used_slots("merkle_level"), MERKLE_BINDINGS.iter().map(|b| b.slot).collect());
    }
}
