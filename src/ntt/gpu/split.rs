//! One transform larger than a storage binding, spread over k = 2^c
//! bindings ("chunks") of m = n/k points each: chunk a holds points a·m to
//! (a + 1)·m − 1.
//!
//! After its first stage, a decimation-in-frequency transform is two
//! independent halves, each the n/2-point DIF with ω². So its first c
//! stages pair points of two chunks (`dif_cross`: one dispatch per pair,
//! both chunks bound), and what is left of each chunk is the whole DIF of
//! an m-point transform, run as one with the m-point plan's resident
//! tables. Bit-reversing each chunk then leaves its point l holding output
//! l·k + rev_c(a), and the readback interleaves the chunks. `to_coset`
//! stays in natural order instead: each chunk's inverse DIF and forward
//! DIT, then the DIT's last c stages across chunks (`dit_cross`).
//!
//! A cross stage's twiddle ω^e (e < n/2) is read as the product of two
//! tables of about √(n/2) points, ω^(e mod 2^t)·ω^(2^t·⌊e/2^t⌋): the table
//! of every ω^e holds n/2 points and would be past the limit itself.

use std::sync::Arc;

use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, Field};

use super::{dif_steps, dit_steps, groups, GpuNtt, Step, Table, Transform, WORKGROUP};
use crate::gpu::wgsl::{Binding, KernelModule, WgslStruct};
use crate::gpu::GpuError;
use crate::msm::gpu::shaders::{fr_from_bytes, fr_words, scalar_field_source, FieldPath};
use crate::ntt::{Ntt, NttError, NttOp};

const CROSS_WGSL: &str = include_str!("cross.wgsl");
pub(super) const ENTRIES: [&str; 2] = ["dif_cross", "dit_cross"];

/// What a cross dispatch reads: one stage between one pair of chunks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CrossParams {
    /// Points a chunk.
    pub m: u32,
    /// The low chunk's first butterfly within its stage block: (a·m) mod half.
    pub base: u32,
    /// The stage's twiddle stride: n / (2·half).
    pub stride: u32,
    /// Exponent bits read from the first twiddle table.
    pub low_bits: u32,
}

impl WgslStruct for CrossParams {
    const NAME: &'static str = "CrossParams";
    const FIELDS: &'static [&'static str] = &["m", "base", "stride", "low_bits"];
    const HOST_SIZE: usize = size_of::<CrossParams>();
}

pub const PARAMS: Binding = Binding::uniform(0, "params", "CrossParams");
pub const LOW: Binding = Binding::read_write(1, "low", "array<u32>");
pub const HIGH: Binding = Binding::read_write(2, "high", "array<u32>");
pub const TWIDDLES: Binding = Binding::read(3, "twiddles", "array<u32>");
pub(super) const BINDINGS: [Binding; 4] = [PARAMS, LOW, HIGH, TWIDDLES];
const CONSTANTS: [(&str, u32); 1] = [("WORKGROUP_SIZE", WORKGROUP)];

/// The cross-chunk butterflies on `path`.
pub fn module(path: FieldPath) -> KernelModule<'static> {
    let mut code = scalar_field_source(path);
    code.push(CROSS_WGSL.into());
    KernelModule {
        label: "ntt cross",
        constants: &CONSTANTS,
        structs: vec![CrossParams::declaration()],
        bindings: &BINDINGS,
        code,
    }
}

/// Exponent bits of the first twiddle table for n points (n ≥ 4): half of
/// log2(n/2), rounded up, so both tables hold about √(n/2) points.
fn low_bits(n: usize) -> u32 {
    (n.trailing_zeros() - 1).div_ceil(2)
}

/// The two twiddle tables of a split `plan` (ω^−1's powers if `inverse`):
/// ω^i for i < 2^t, then ω^(2^t·j) for j < n/2^(t+1).
pub(super) fn twiddle_tables(plan: &Ntt, inverse: bool) -> Vec<Fr> {
    let roots = if inverse { &plan.inverse_roots } else { &plan.roots };
    let step = 1 << low_bits(plan.len());
    roots[..step].iter().chain(roots.iter().step_by(step)).copied().collect()
}

/// The fewest chunks, a power of two, that keep each within `limit` bytes
/// and at least two points; `None` when no such split exists.
fn chunk_count(n: usize, limit: u64) -> Option<usize> {
    (1..n.trailing_zeros()).map(|c| 1usize << c).find(|k| (n / k * 32) as u64 <= limit)
}

impl GpuNtt {
    pub(super) fn cross_pipeline(&self, entry: &str) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        self.ctx.pipeline("ntt cross", &module(self.path).compose(), entry)
    }

    /// `op` on one transform too large for a storage binding (see the
    /// module comment). `values` is written only once every chunk has been
    /// read back. The test hook `fail` counts the dispatches of every pass
    /// in order; past the last, it fails the readback of the batch's `last`
    /// transform, and is otherwise left counting into the next transform.
    pub(super) fn apply_split(
        &self,
        plan: &Ntt,
        op: NttOp,
        values: &mut [Fr],
        fail: &mut Option<usize>,
        last: bool,
    ) -> Result<(), NttError> {
        let n = plan.len();
        let limit = self.binding_limit();
        let k = chunk_count(n, limit).ok_or_else(|| {
            NttError::Device(GpuError::Dispatch {
                label: "ntt".into(),
                reason: format!(
                    "{n} points cannot be split into chunks of two or more points within this adapter's storage \
                     binding limit of {limit} bytes"
                ),
            })
        })?;
        let m = n / k;
        let sub = plan.every(k);
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let chunks = values
            .chunks(m)
            .map(|chunk| self.ctx.buffer_init("ntt chunk", bytemuck::cast_slice(&fr_words(chunk)), usage))
            .collect::<Result<Vec<_>, _>>()
            .map_err(NttError::Device)?;
        let mut split = Split { ntt: self, plan, sub: &sub, chunks: &chunks, fail: *fail, recorded: 0 };
        let interleaved = split.record(op).map_err(NttError::Device)?;
        *fail = fail.and_then(|step| step.checked_sub(split.recorded));
        if last && fail.is_some() {
            return Err(NttError::Device(GpuError::InjectedFault("NTT readback".into())));
        }
        if self.ctx.is_lost() {
            return Err(NttError::Device(GpuError::DeviceLost("during an NTT".into())));
        }
        let mut out = vec![Fr::ZERO; n];
        for (a, chunk) in chunks.iter().enumerate() {
            let back = self.ctx.read_buffer("ntt chunk", chunk, (m * 32) as u64).map_err(NttError::Device)?;
            let reversed = reverse(a, k);
            for (l, value) in fr_from_bytes(&back).enumerate() {
                out[if interleaved { l * k + reversed } else { a * m + l }] = value;
            }
        }
        values.copy_from_slice(&out);
        Ok(())
    }
}

/// `a`'s log2(k) low bits reversed.
fn reverse(a: usize, k: usize) -> usize {
    match k.trailing_zeros() {
        0 => 0,
        bits => a.reverse_bits() >> (usize::BITS - bits),
    }
}

/// One split transform's chunks on the device, and its passes as recorded.
struct Split<'a> {
    ntt: &'a GpuNtt,
    plan: &'a Ntt,
    /// The chunks' plan (m points).
    sub: &'a Ntt,
    chunks: &'a [wgpu::Buffer],
    /// The test hook's dispatch, counted over every pass.
    fail: Option<usize>,
    /// Dispatches recorded so far.
    recorded: usize,
}

impl Split<'_> {
    /// Record and submit `op`'s passes; whether the chunks hold the
    /// output interleaved (bit-reversed per chunk) rather than in order.
    fn record(&mut self, op: NttOp) -> Result<bool, GpuError> {
        let (k, m) = (self.chunks.len(), self.sub.len());
        let (sub, n_inverse) = (self.sub, self.plan.n_inverse);
        match op {
            NttOp::Forward | NttOp::CosetForward(_) => {
                if let NttOp::CosetForward(g) = op {
                    for a in 0..k {
                        let powers = Table::Powers { first: g.pow([(a * m) as u64]), ratio: g };
                        self.local(a, |t| Ok(vec![scale(t.table_once(sub, powers)?, false)]))?;
                    }
                }
                self.cross(false, false)?;
                for a in 0..k {
                    self.local(a, |t| super::steps(t, sub, NttOp::Forward))?;
                }
                Ok(true)
            }
            NttOp::Inverse | NttOp::CosetInverse(_) => {
                self.cross(false, true)?;
                for a in 0..k {
                    self.local(a, |t| {
                        let mut steps = dif_steps(t.table(sub, Table::InverseRoots)?, m);
                        steps.push(Step::BitReverse);
                        // Chunk a's point l is output l·k + rev(a): its factor n⁻¹·g^−(l·k + rev(a)).
                        steps.push(match op {
                            NttOp::CosetInverse(g) => {
                                let g_inverse = g.inverse().expect("checked before the upload");
                                let first = n_inverse * g_inverse.pow([reverse(a, k) as u64]);
                                let ratio = g_inverse.pow([k as u64]);
                                scale(t.table_once(sub, Table::Powers { first, ratio })?, false)
                            }
                            _ => Step::Scale {
                                table: t.table(sub, Table::Constant(n_inverse))?,
                                reversed: false,
                                constant: true,
                            },
                        });
                        Ok(steps)
                    })?;
                }
                Ok(true)
            }
            NttOp::ToCoset(g) => {
                self.cross(false, true)?;
                for a in 0..k {
                    self.local(a, |t| {
                        let mut steps = dif_steps(t.table(sub, Table::InverseRoots)?, m);
                        // Point l of chunk a holds coefficient rev(l)·k + rev(a) here.
                        let first = n_inverse * g.pow([reverse(a, k) as u64]);
                        let powers = Table::Powers { first, ratio: g.pow([k as u64]) };
                        steps.push(scale(t.table_once(sub, powers)?, true));
                        steps.extend(dit_steps(t.table(sub, Table::Roots)?, m));
                        Ok(steps)
                    })?;
                }
                self.cross(true, false)?;
                Ok(false)
            }
        }
    }

    /// Which of `steps` dispatches of the next pass the test hook fails
    /// before, if any; counts them as recorded.
    fn fail_within(&mut self, steps: usize) -> Option<usize> {
        let at = self.fail.and_then(|step| step.checked_sub(self.recorded)).filter(|&at| at < steps);
        self.recorded += steps;
        at
    }

    /// Chunk a's steps, as `build` lists them with its tables, in one pass.
    fn local(
        &mut self,
        a: usize,
        build: impl FnOnce(&Transform<'_>) -> Result<Vec<Step>, GpuError>,
    ) -> Result<(), GpuError> {
        let t = Transform {
            ntt: self.ntt,
            values: &self.chunks[a],
            n: self.sub.len() as u32,
            count: 1,
            tables: Default::default(),
        };
        let steps = build(&t)?;
        let fail = self.fail_within(steps.len());
        t.run(&steps, fail)
    }

    /// The stages across chunks in one pass: a DIF's first c (half-sizes
    /// n/2 down to m) or a DIT's last c (m up to n/2), one dispatch per
    /// pair of chunks a stage.
    fn cross(&mut self, dit: bool, inverse: bool) -> Result<(), GpuError> {
        let ctx = &self.ntt.ctx;
        let (n, k, m) = (self.plan.len(), self.chunks.len(), self.sub.len());
        let twiddles = self.ntt.resident_table(self.plan, Table::Twiddles { inverse })?;
        let pipeline = self.ntt.cross_pipeline(if dit { "dit_cross" } else { "dif_cross" })?;
        let mut halves: Vec<usize> = (0..k.trailing_zeros()).map(|s| m << s).collect();
        if !dit {
            halves.reverse();
        }
        let mut bind_groups = Vec::new();
        for half in halves {
            let span = half / m;
            for a in (0..k).filter(|a| (a / span) % 2 == 0) {
                let params = CrossParams {
                    m: m as u32,
                    base: ((a * m) % half) as u32,
                    stride: (n / (2 * half)) as u32,
                    low_bits: low_bits(n),
                };
                let uniform =
                    ctx.buffer_init("ntt cross params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM)?;
                let entries = [
                    wgpu::BindGroupEntry { binding: PARAMS.slot, resource: uniform.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: LOW.slot, resource: self.chunks[a].as_entire_binding() },
                    wgpu::BindGroupEntry { binding: HIGH.slot, resource: self.chunks[a + span].as_entire_binding() },
                    wgpu::BindGroupEntry { binding: TWIDDLES.slot, resource: twiddles.as_entire_binding() },
                ];
                bind_groups.push(ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("ntt cross"),
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &entries,
                }));
            }
        }
        if let Some(at) = self.fail_within(bind_groups.len()) {
            return Err(GpuError::InjectedFault(format!("NTT cross-chunk dispatch {at}")));
        }
        let (x, y) = groups(m as u32, self.ntt.max_groups_x);
        let mut encoder =
            ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ntt cross") });
        {
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("ntt cross"), timestamp_writes: None });
            pass.set_pipeline(&pipeline);
            for bind_group in &bind_groups {
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(x, y, 1);
            }
        }
        ctx.queue.submit(Some(encoder.finish()));
        Ok(())
    }
}

/// A scaling step by a table indexed by position (bit-reversed if `reversed`).
fn scale(table: usize, reversed: bool) -> Step {
    Step::Scale { table, reversed, constant: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::UniformRand;
    use rand::SeedableRng;

    #[test]
    fn twiddle_tables_multiply_to_every_root() {
        for log in 2..=9u32 {
            let plan = Ntt::new(1 << log).unwrap();
            for inverse in [false, true] {
                let table = twiddle_tables(&plan, inverse);
                let roots = if inverse { &plan.inverse_roots } else { &plan.roots };
                let t = low_bits(plan.len());
                for (e, root) in roots.iter().enumerate() {
                    let at = (1 << t) + (e >> t);
                    assert_eq!(table[e & ((1 << t) - 1)] * table[at], *root, "n = 2^{log}, e = {e}");
                }
                assert_eq!(table.len(), (1 << t) + roots.len() / (1 << t));
            }
        }
        assert_eq!(chunk_count(1 << 10, 1 << 20), Some(2), "fits, but split when asked");
        assert_eq!(chunk_count(1 << 10, 64 * 32), Some(16));
        assert_eq!(chunk_count(1 << 10, 63 * 32), Some(32));
        assert_eq!(chunk_count(1 << 10, 32), None, "chunks of one point");
        assert_eq!(chunk_count(2, 1 << 20), None);
    }

    /// Every op on transforms spread over 2 to 32 chunks (chunks of 2 to
    /// 256 points) equals the CPU plan, random and edge values, both paths.
    #[test]
    fn split_transforms_equal_the_cpu_plan() {
        let Some(ctx) = crate::gpu::test_context() else { return };
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(24);
        let g = Fr::from(7u64);
        for path in [FieldPath::U32, FieldPath::U64] {
            let Ok(ntt) = GpuNtt::on_path(ctx.clone(), path) else {
                eprintln!("SKIPPED: the {path:?} field path on {}", ctx.describe());
                continue;
            };
            // (log n, points a chunk)
            for (log, m) in [(2u32, 2usize), (3, 2), (6, 8), (9, 256), (9, 16), (6, 2)] {
                let n = 1usize << log;
                let plan = Ntt::new(n).unwrap();
                let split = ntt.with_binding_limit((m * 32) as u64);
                let mut edge = vec![-Fr::ONE; n];
                edge[0] = Fr::ZERO;
                for input in [(0..n).map(|_| Fr::rand(&mut rng)).collect::<Vec<_>>(), edge] {
                    for op in [
                        NttOp::Forward,
                        NttOp::Inverse,
                        NttOp::CosetForward(g),
                        NttOp::CosetInverse(g),
                        NttOp::ToCoset(g),
                    ] {
                        let (mut cpu, mut gpu) = (input.clone(), input.clone());
                        plan.apply(op, &mut cpu).unwrap();
                        split.apply(&plan, op, &mut [&mut gpu], None).unwrap();
                        assert_eq!(gpu, cpu, "{op:?}, n = 2^{log} in chunks of {m}, {path:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_fault_in_any_pass_leaves_the_values_untouched() {
        let Some(ctx) = crate::gpu::test_context() else { return };
        let ntt = GpuNtt::new(ctx).unwrap().with_binding_limit(4 * 32);
        let plan = Ntt::new(16).unwrap();
        let input: Vec<Fr> = (0..16u64).map(Fr::from).collect();
        // ToCoset over 4 chunks: 4 cross dispatches, 4 local passes, 4 cross dispatches.
        for at in [0usize, 3, 4, 9, 30, usize::MAX] {
            let mut values = input.clone();
            let err = ntt.apply(&plan, NttOp::ToCoset(Fr::from(3u64)), &mut [&mut values], Some(at)).unwrap_err();
            assert!(matches!(err, NttError::Device(GpuError::InjectedFault(_))), "{at}: {err}");
            assert_eq!(values, input, "fault before step {at}");
        }
    }
}
