//! Poseidon in WGSL: the hash pool's Poseidon requests on the GPU, one
//! sponge per invocation, the permutation's constants resident on the
//! device (uploaded once per hasher). Bit-identical to
//! `crypto::poseidon::hash` (tested against it and ark's sponge), on either
//! field path of `msm::gpu` instantiated for the scalar field.
//!
//! A flush is cut into segments whose inputs fit one storage binding, each
//! one upload, one readback, and one dispatch per pass of at most
//! `CHUNKS_PER_PASS` permutations per request (the sponges carried between
//! passes in a buffer).
//!
//! A GPU pool makes it on its first Poseidon flush of at least
//! `GPU_POSEIDON_MIN_REQUESTS` (on lavapipe it compiles in about 2 s on the
//! u64 path and 9 s on the u32 one, and its first dispatch takes as long
//! again, so a pool that never files Poseidon requests never pays that).

use std::sync::Arc;

use ark_bn254::Fr;

use crate::crypto::poseidon::permutation::{flat, flat_schedule};
use crate::crypto::poseidon::PoseidonBatch;
use crate::gpu::wgsl::{Binding, KernelModule, WgslStruct};
use crate::gpu::{GpuContext, GpuError};
use crate::msm::gpu::shaders::{fr_from_bytes, fr_words, scalar_field_source, FieldPath};

const POSEIDON_WGSL: &str = include_str!("gpu/poseidon.wgsl");
const WORKGROUP: u32 = 64;
const CONSTANTS: [(&str, u32); 1] = [("WORKGROUP_SIZE", WORKGROUP)];

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct PoseidonParams {
    count: u32,
    /// The pass's first chunk (two inputs, one permutation) of every job.
    first_chunk: u32,
    /// Chunks a pass absorbs at most.
    chunks: u32,
    pad: u32,
}

impl WgslStruct for PoseidonParams {
    const NAME: &'static str = "PoseidonParams";
    const FIELDS: &'static [&'static str] = &["count", "first_chunk", "chunks", "pad"];
    const HOST_SIZE: usize = size_of::<PoseidonParams>();
}

/// One request as the shader reads it: its inputs' first element and count.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct PoseidonJob {
    offset: u32,
    len: u32,
}

impl WgslStruct for PoseidonJob {
    const NAME: &'static str = "PoseidonJob";
    const FIELDS: &'static [&'static str] = &["offset", "len"];
    const HOST_SIZE: usize = size_of::<PoseidonJob>();
}

const PARAMS: Binding = Binding::uniform(0, "params", "PoseidonParams");
const TABLE: Binding = Binding::read(1, "table", "array<u32>");
const JOBS: Binding = Binding::read(2, "jobs", "array<PoseidonJob>");
const TAGS: Binding = Binding::read(3, "tags", "array<u32>");
const INPUTS: Binding = Binding::read(4, "inputs", "array<u32>");
const OUT: Binding = Binding::read_write(5, "out", "array<u32>");
/// Each unfinished job's sponge between passes (three elements).
const STATE: Binding = Binding::read_write(6, "state", "array<u32>");
const BINDINGS: [Binding; 7] = [PARAMS, TABLE, JOBS, TAGS, INPUTS, OUT, STATE];

/// Permutations an invocation makes in one pass: a request of more than
/// twice as many inputs takes several passes. Small enough for llvmpipe,
/// which silently leaves an invocation's loops after 65,535 iterations in
/// all (about six permutations on the 32-bit path); requests of up to 8
/// inputs (nearly all: keys, nullifiers) take one pass.
const CHUNKS_PER_PASS: u32 = 4;

/// One carried sponge: three elements of eight words.
const STATE_BYTES: u64 = 96;

/// The Poseidon module on `path`.
pub fn module(path: FieldPath) -> KernelModule<'static> {
    let mut code = scalar_field_source(path);
    code.push(POSEIDON_WGSL.into());
    KernelModule {
        label: "poseidon",
        constants: &CONSTANTS,
        structs: vec![PoseidonParams::declaration(), PoseidonJob::declaration()],
        bindings: &BINDINGS,
        code,
    }
}

/// Poseidon on one device: its pipeline and its resident constants.
pub struct GpuPoseidon {
    ctx: Arc<GpuContext>,
    path: FieldPath,
    pipeline: Arc<wgpu::ComputePipeline>,
    table: wgpu::Buffer,
}

impl GpuPoseidon {
    /// On the fastest field path the device has.
    pub fn new(ctx: Arc<GpuContext>) -> Result<GpuPoseidon, GpuError> {
        GpuPoseidon::on_path(ctx.clone(), FieldPath::best_for(ctx.features))
    }

    /// On a chosen field path (to test both on one adapter).
    pub fn on_path(ctx: Arc<GpuContext>, path: FieldPath) -> Result<GpuPoseidon, GpuError> {
        if !path.supported_by(ctx.features) {
            return Err(GpuError::Shader {
                label: "poseidon".into(),
                reason: format!("the {path:?} field path needs SHADER_INT64, which {} lacks", ctx.describe()),
            });
        }
        let pipeline = ctx.pipeline("poseidon", &module(path).compose(), "poseidon")?;
        let table = ctx.buffer_init(
            "poseidon constants",
            bytemuck::cast_slice(&fr_words(&flat_schedule())),
            wgpu::BufferUsages::STORAGE,
        )?;
        Ok(GpuPoseidon { ctx, path, pipeline, table })
    }

    pub fn path(&self) -> FieldPath {
        self.path
    }

    fn binding_limit(&self) -> u64 {
        self.ctx.binding_limit().min(u32::MAX as u64)
    }

    /// Every request of `batch` into `out` (one slot per request, filing
    /// order). `fail_before_segment` (a test hook) fails as a lost device
    /// would before that segment. On an error `out` is partly written and
    /// the caller recomputes it.
    pub fn hash_into(
        &self,
        batch: &PoseidonBatch,
        out: &mut [Fr],
        fail_before_segment: Option<usize>,
    ) -> Result<(), GpuError> {
        self.hash_in_segments(batch, out, fail_before_segment, (self.binding_limit() / 32) as usize)
    }

    /// [`Self::hash_into`] in segments of at most `max_elements` inputs
    /// (and a third as many requests, whose sponges between passes take
    /// three elements each).
    fn hash_in_segments(
        &self,
        batch: &PoseidonBatch,
        out: &mut [Fr],
        fail_before_segment: Option<usize>,
        max_elements: usize,
    ) -> Result<(), GpuError> {
        assert_eq!(out.len(), batch.len(), "one output slot per Poseidon request");
        let requests: Vec<(Fr, std::ops::Range<usize>)> = batch.requests().collect();
        let mut first = 0;
        let mut segment = 0;
        while first < requests.len() {
            // As many requests as their inputs (and outputs) fit one binding.
            let start = requests[first].1.start;
            let mut end = first;
            // Each request's carried sponge is three elements.
            let most_requests = (max_elements / 3).max(1);
            while end < requests.len() && end - first < most_requests && requests[end].1.end - start <= max_elements {
                end += 1;
            }
            if end == first {
                return Err(GpuError::Dispatch {
                    label: "poseidon".into(),
                    reason: format!("a request of {} inputs is past the binding limit", requests[first].1.len()),
                });
            }
            if fail_before_segment == Some(segment) {
                return Err(GpuError::InjectedFault(format!("Poseidon segment {segment}")));
            }
            self.segment(&requests[first..end], batch.inputs(), &mut out[first..end])?;
            first = end;
            segment += 1;
        }
        Ok(())
    }

    fn segment(
        &self,
        requests: &[(Fr, std::ops::Range<usize>)],
        inputs: &[Fr],
        out: &mut [Fr],
    ) -> Result<(), GpuError> {
        let ctx = &self.ctx;
        let start = requests[0].1.start;
        let end = requests.last().expect("a segment has requests").1.end;
        let jobs: Vec<PoseidonJob> = requests
            .iter()
            .map(|(_, range)| PoseidonJob { offset: (range.start - start) as u32, len: range.len() as u32 })
            .collect();
        let storage = |label: &str, contents: &[u8], usage: wgpu::BufferUsages| ctx.buffer_init(label, contents, usage);
        let read = wgpu::BufferUsages::STORAGE;
        let jobs_bytes = bytemuck::cast_slice(&jobs);
        let longest = requests.iter().map(|(_, range)| range.len().div_ceil(2).max(1)).max().unwrap_or(1) as u32;
        let passes = longest.div_ceil(CHUNKS_PER_PASS);
        let jobs = storage("poseidon jobs", jobs_bytes, read)?;
        let tags =
            storage("poseidon tags", bytemuck::cast_slice(&fr_words(requests.iter().map(|(tag, _)| tag))), read)?;
        // A binding may not be empty: requests without inputs still bind one element.
        let mut input_words = fr_words(&inputs[start..end]);
        if input_words.is_empty() {
            input_words = vec![0; 8];
        }
        let inputs = storage("poseidon inputs", bytemuck::cast_slice(&input_words), read)?;
        let bytes = (requests.len() * 32) as u64;
        let output = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("poseidon out"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        // Sponges carried between passes (unused, but bound, in one pass).
        let state = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("poseidon state"),
            size: if passes > 1 { requests.len() as u64 * STATE_BYTES } else { STATE_BYTES },
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let groups = (requests.len() as u32).div_ceil(WORKGROUP);
        let max_dim = ctx.limits.max_compute_workgroups_per_dimension.max(1);
        let x = groups.min(max_dim);
        let mut encoder =
            ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("poseidon") });
        for pass_number in 0..passes {
            let params = PoseidonParams {
                count: requests.len() as u32,
                first_chunk: pass_number * CHUNKS_PER_PASS,
                chunks: CHUNKS_PER_PASS,
                pad: 0,
            };
            let params = storage("poseidon params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM)?;
            let entries = [
                wgpu::BindGroupEntry { binding: PARAMS.slot, resource: params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: TABLE.slot, resource: self.table.as_entire_binding() },
                wgpu::BindGroupEntry { binding: JOBS.slot, resource: jobs.as_entire_binding() },
                wgpu::BindGroupEntry { binding: TAGS.slot, resource: tags.as_entire_binding() },
                wgpu::BindGroupEntry { binding: INPUTS.slot, resource: inputs.as_entire_binding() },
                wgpu::BindGroupEntry { binding: OUT.slot, resource: output.as_entire_binding() },
                wgpu::BindGroupEntry { binding: STATE.slot, resource: state.as_entire_binding() },
            ];
            let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("poseidon"),
                layout: &self.pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            // A pass of its own for each: the next reads the sponges this one wrote.
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("poseidon"), timestamp_writes: None });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, groups.div_ceil(x), 1);
        }
        ctx.queue.submit(Some(encoder.finish()));
        if ctx.is_lost() {
            return Err(GpuError::DeviceLost("during a Poseidon flush".into()));
        }
        let back = ctx.read_buffer("poseidon out", &output, bytes)?;
        for (value, back) in out.iter_mut().zip(fr_from_bytes(&back)) {
            *value = back;
        }
        Ok(())
    }
}

const _: () = assert!(flat::LEN == 498 && flat::CARRIED == 330 && flat::SPARSE == 45);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::poseidon::{hash, reference_hash, HashDomain};
    use crate::gpu::wgsl::checked::check;
    use ark_ff::{AdditiveGroup, Field, UniformRand};
    use rand::SeedableRng;

    #[test]
    fn the_module_validates_on_both_paths_with_the_host_structs() {
        for path in [FieldPath::U32, FieldPath::U64] {
            let checked = check(&module(path));
            assert_eq!(checked.struct_size("PoseidonParams"), PoseidonParams::HOST_SIZE, "{path:?}");
            assert_eq!(checked.struct_size("PoseidonJob"), PoseidonJob::HOST_SIZE, "{path:?}");
            let all: std::collections::BTreeSet<u32> = BINDINGS.iter().map(|b| b.slot).collect();
            assert_eq!(checked.used_slots("poseidon"), all, "{path:?}");
        }
    }

    /// Arity 0 to 16 (no input, part of a rate, whole rates, several
    /// permutations: register commitments take 11, logic programs up to
    /// 16), every domain, random and edge inputs (0, 1, p − 1),
    /// more requests than a workgroup: equal to `poseidon::hash` and ark's
    /// sponge; and split into one request per segment.
    #[test]
    fn gpu_poseidon_equals_the_native_hash() {
        let Some(ctx) = crate::gpu::test_context() else { return };
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(23);
        let mut batch = PoseidonBatch::default();
        let mut expected = Vec::new();
        let edges = [Fr::ZERO, Fr::ONE, -Fr::ONE];
        let domains = [HashDomain::Commitment, HashDomain::NullifierKey, HashDomain::Nullifier, HashDomain::Logic];
        for i in 0..85usize {
            let arity = i % 17;
            let domain = domains[i % 4];
            let inputs: Vec<Fr> =
                (0..arity).map(|k| if i % 5 == 0 { edges[k % 3] } else { Fr::rand(&mut rng) }).collect();
            batch.push(domain, &inputs);
            let native = hash(domain, &inputs);
            assert_eq!(native, reference_hash(domain, &inputs));
            expected.push(native);
        }
        let mut paths = vec![FieldPath::U32];
        if FieldPath::U64.supported_by(ctx.features) {
            paths.push(FieldPath::U64);
        }
        for path in paths {
            let gpu = GpuPoseidon::on_path(ctx.clone(), path).unwrap();
            let mut out = vec![Fr::ZERO; batch.len()];
            gpu.hash_into(&batch, &mut out, None).unwrap();
            let wrong: Vec<usize> = (0..out.len()).filter(|&i| out[i] != expected[i]).collect();
            assert!(wrong.is_empty(), "{path:?}: requests {wrong:?} differ");
        }
        // Segments of at most 17 inputs: every request of up to 16 alone or
        // with a few others, so the 85 requests take dozens of dispatches.
        let gpu = GpuPoseidon::new(ctx.clone()).unwrap();
        let mut out = vec![Fr::ZERO; batch.len()];
        gpu.hash_in_segments(&batch, &mut out, None, 17).unwrap();
        assert_eq!(out, expected, "in segments of 17 inputs");
        let mut one = PoseidonBatch::default();
        one.push(HashDomain::Nullifier, &[]);
        let mut out = [Fr::ZERO];
        GpuPoseidon::new(ctx.clone()).unwrap().hash_into(&one, &mut out, None).unwrap();
        assert_eq!(out[0], hash(HashDomain::Nullifier, &[]));
        let gpu = GpuPoseidon::new(ctx).unwrap();
        assert!(matches!(
            gpu.hash_into(&batch, &mut vec![Fr::ZERO; batch.len()], Some(0)),
            Err(GpuError::InjectedFault(_))
        ));
    }
    /// Batch sizes around the workgroup (64) and the smallest ones, on
    /// both field paths, with zero, one and p − 1 inputs in every lane.
    #[test]
    fn gpu_poseidon_sizes_around_the_workgroup_match() {
        let Some(ctx) = crate::gpu::test_context() else { return };
        let mut paths = vec![FieldPath::U32];
        if FieldPath::U64.supported_by(ctx.features) {
            paths.push(FieldPath::U64);
        }
        let edges = [Fr::ZERO, Fr::ONE, -Fr::ONE];
        for path in paths {
            let gpu = GpuPoseidon::on_path(ctx.clone(), path).unwrap();
            for n in [0usize, 1, 2, 3, 63, 64, 65] {
                let mut batch = PoseidonBatch::default();
                let mut expected = Vec::new();
                for i in 0..n {
                    let inputs = [edges[i % 3], edges[(i / 3) % 3]];
                    batch.push(HashDomain::Nullifier, &inputs[..1 + i % 2]);
                    expected.push(hash(HashDomain::Nullifier, &inputs[..1 + i % 2]));
                }
                let mut out = vec![Fr::ZERO; n];
                gpu.hash_into(&batch, &mut out, None).unwrap();
                assert_eq!(out, expected, "{n} requests on {path:?}");
            }
        }
    }
}
