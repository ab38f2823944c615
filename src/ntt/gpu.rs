//! The NTT in WGSL: the same transforms as the CPU plan (the same stages,
//! twiddle tables and order conventions), one dispatch per radix-2 stage in
//! one compute pass, on either field path of `msm::gpu` (16-bit limbs in u32
//! everywhere, 32-bit limbs with u64 products where the adapter has
//! SHADER_INT64) instantiated for the scalar field.
//!
//! Twiddle and coset tables stay resident across calls (the most recent
//! [`RESIDENT_TABLES`]), so a prover's repeated quotients upload only their
//! values. One transform larger than a storage binding is spread over
//! several ([`split`]). Not yet: fused stages in workgroup memory.

mod split;

use std::sync::{Arc, Mutex};

use ark_bn254::Fr;
use ark_ff::Field;

use super::{cpu, Ntt, NttError, NttOp};
use crate::gpu::wgsl::{Binding, KernelModule, WgslStruct};
use crate::gpu::{GpuContext, GpuError};
use crate::msm::gpu::shaders::{fr_from_bytes, fr_words, scalar_field_source, FieldPath};

const NTT_WGSL: &str = include_str!("ntt.wgsl");
const WORKGROUP: u32 = 64;
/// WebGPU's guaranteed limit on workgroups per dimension.
const MAX_GROUPS_X: u32 = 65_535;

/// What every NTT entry point reads (one per dispatch).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct NttParams {
    pub n: u32,
    pub log_n: u32,
    /// The stage's half-size (butterflies pair i and i + half).
    pub half: u32,
    /// The stage's twiddle stride: n / (2·half).
    pub stride: u32,
    /// `scale`: index the table by the bit-reversed position.
    pub reversed: u32,
    /// `scale`: every element by table[0].
    pub constant: u32,
    /// Transforms in the buffer, n elements each.
    pub count: u32,
    pub pad: u32,
}

impl WgslStruct for NttParams {
    const NAME: &'static str = "NttParams";
    const FIELDS: &'static [&'static str] = &["n", "log_n", "half", "stride", "reversed", "constant", "count", "pad"];
    const HOST_SIZE: usize = size_of::<NttParams>();
}

pub const PARAMS: Binding = Binding::uniform(0, "params", "NttParams");
pub const VALUES: Binding = Binding::read_write(1, "values", "array<u32>");
pub const TABLE: Binding = Binding::read(2, "table", "array<u32>");
const BINDINGS: [Binding; 3] = [PARAMS, VALUES, TABLE];
const CONSTANTS: [(&str, u32); 1] = [("WORKGROUP_SIZE", WORKGROUP)];

/// The NTT module on `path`.
pub fn module(path: FieldPath) -> KernelModule<'static> {
    let mut code = scalar_field_source(path);
    code.push(NTT_WGSL.into());
    KernelModule {
        label: "ntt",
        constants: &CONSTANTS,
        structs: vec![NttParams::declaration()],
        bindings: &BINDINGS,
        code,
    }
}

/// A table the transforms of one size read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    /// ω^k, k < n/2.
    Roots,
    /// ω^−k, k < n/2.
    InverseRoots,
    /// One constant (1/n).
    Constant(Fr),
    /// first·ratio^k, k < n: a coset's factors.
    Powers { first: Fr, ratio: Fr },
    /// ω^e for e < n/2 (or ω^−e), as the product of two small tables for a
    /// transform split over several bindings ([`split::twiddle_tables`]).
    Twiddles { inverse: bool },
}

impl Table {
    fn label(&self) -> &'static str {
        match self {
            Table::Roots => "ntt roots",
            Table::InverseRoots => "ntt inverse roots",
            Table::Constant(_) => "ntt constant",
            Table::Powers { .. } => "ntt coset powers",
            Table::Twiddles { .. } => "ntt split twiddles",
        }
    }
}

/// Tables kept on the device, the most recently used last: enough for a
/// prover's sizes and shifts (each size has its roots both ways and a
/// coset's factors or two), evicting the oldest past it.
const RESIDENT_TABLES: usize = 12;

/// One dispatch of a transform; tables by their index in the transform's.
#[derive(Clone, Copy)]
enum Step {
    Dif { roots: usize, half: u32 },
    Dit { roots: usize, half: u32 },
    BitReverse,
    Scale { table: usize, reversed: bool, constant: bool },
}

impl Step {
    fn entry(&self) -> &'static str {
        match self {
            Step::Dif { .. } => "dif_stage",
            Step::Dit { .. } => "dit_stage",
            Step::BitReverse => "bit_reverse",
            Step::Scale { .. } => "scale",
        }
    }

    /// Invocations: one per butterfly or one per element, of every transform.
    fn invocations(&self, n: u32, count: u32) -> u32 {
        match self {
            Step::Dif { .. } | Step::Dit { .. } => n / 2 * count,
            Step::BitReverse | Step::Scale { .. } => n * count,
        }
    }
}

/// NTTs on one device, their pipelines compiled once (per device, in the
/// context's cache).
pub struct GpuNtt {
    ctx: Arc<GpuContext>,
    path: FieldPath,
    max_groups_x: u32,
    /// A lower storage binding limit than the adapter's (tests of splitting).
    binding_limit: Option<u64>,
    /// Twiddle and coset tables by size, resident across calls.
    tables: Mutex<Vec<ResidentTable>>,
}

/// A table on the device, by the size it is for and what it holds.
type ResidentTable = ((usize, Table), Arc<wgpu::Buffer>);

impl GpuNtt {
    /// On the fastest field path the device has.
    pub fn new(ctx: Arc<GpuContext>) -> Result<GpuNtt, GpuError> {
        let path = FieldPath::best_for(ctx.features);
        GpuNtt::on_path(ctx, path)
    }

    /// On a chosen field path (to test both on one adapter).
    pub fn on_path(ctx: Arc<GpuContext>, path: FieldPath) -> Result<GpuNtt, GpuError> {
        if !path.supported_by(ctx.features) {
            return Err(GpuError::Shader {
                label: "ntt".into(),
                reason: format!("the {path:?} field path needs SHADER_INT64, which {} lacks", ctx.describe()),
            });
        }
        let ntt = GpuNtt { ctx, path, max_groups_x: MAX_GROUPS_X, binding_limit: None, tables: Mutex::default() };
        for entry in ["dif_stage", "dit_stage", "bit_reverse", "scale"] {
            ntt.pipeline(entry)?;
        }
        for entry in split::ENTRIES {
            ntt.cross_pipeline(entry)?;
        }
        Ok(ntt)
    }

    pub fn path(&self) -> FieldPath {
        self.path
    }

    /// The adapter it runs on.
    pub fn describe(&self) -> String {
        self.ctx.describe()
    }

    #[cfg(test)]
    fn with_max_groups_x(mut self, groups: u32) -> GpuNtt {
        self.max_groups_x = groups;
        self
    }

    #[cfg(test)]
    pub(crate) fn with_binding_limit(&self, bytes: u64) -> GpuNtt {
        GpuNtt {
            ctx: self.ctx.clone(),
            path: self.path,
            max_groups_x: self.max_groups_x,
            binding_limit: Some(bytes),
            tables: Mutex::default(),
        }
    }

    fn pipeline(&self, entry: &str) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        self.ctx.pipeline("ntt", &module(self.path).compose(), entry)
    }

    /// [`Ntt::forward`] on the device.
    pub fn forward(&self, plan: &Ntt, values: &mut [Fr]) -> Result<(), NttError> {
        self.apply(plan, NttOp::Forward, &mut [values], None)
    }

    /// [`Ntt::inverse`] on the device.
    pub fn inverse(&self, plan: &Ntt, values: &mut [Fr]) -> Result<(), NttError> {
        self.apply(plan, NttOp::Inverse, &mut [values], None)
    }

    /// [`Ntt::coset_forward`] on the device.
    pub fn coset_forward(&self, plan: &Ntt, values: &mut [Fr], g: Fr) -> Result<(), NttError> {
        self.apply(plan, NttOp::CosetForward(g), &mut [values], None)
    }

    /// [`Ntt::coset_inverse`] on the device.
    pub fn coset_inverse(&self, plan: &Ntt, values: &mut [Fr], g: Fr) -> Result<(), NttError> {
        self.apply(plan, NttOp::CosetInverse(g), &mut [values], None)
    }

    /// [`Ntt::to_coset`] on the device.
    pub fn to_coset(&self, plan: &Ntt, values: &mut [Fr], g: Fr) -> Result<(), NttError> {
        self.apply(plan, NttOp::ToCoset(g), &mut [values], None)
    }

    fn binding_limit(&self) -> u64 {
        let adapter = self.ctx.binding_limit();
        self.binding_limit.map_or(adapter, |limit| limit.min(adapter))
    }

    /// `op` on every slice of `batch` (each the plan's length), as one
    /// upload, one compute pass and one readback per group of transforms
    /// that fits a storage binding; a transform larger than one binding
    /// runs alone, spread over several ([`split`]). The slices are written
    /// only once their group has been read back whole. `fail_before_step`
    /// (a test hook) fails the first group before that dispatch (past the
    /// last: before its readback) as a lost device would; over split
    /// transforms it counts the dispatches of every one in order.
    pub fn apply(
        &self,
        plan: &Ntt,
        op: NttOp,
        batch: &mut [&mut [Fr]],
        fail_before_step: Option<usize>,
    ) -> Result<(), NttError> {
        self.apply_counted(plan, op, batch, fail_before_step, &mut 0)
    }

    /// [`Self::apply`], counting in `done` the leading slices already
    /// written when it fails: what a caller must not transform again.
    pub fn apply_counted(
        &self,
        plan: &Ntt,
        op: NttOp,
        batch: &mut [&mut [Fr]],
        fail_before_step: Option<usize>,
        done: &mut usize,
    ) -> Result<(), NttError> {
        for values in batch.iter() {
            plan.check_op(op, values)?;
        }
        let n = plan.len();
        if n == 1 || batch.is_empty() {
            // Every transform of one point is the identity up to its
            // factors, which are all one (1/1, g⁰): nothing to run.
            return Ok(());
        }
        let per_group = (self.binding_limit() / (n as u64 * 32)) as usize;
        let mut fail = fail_before_step;
        if per_group == 0 {
            let last = batch.len() - 1;
            for (index, values) in batch.iter_mut().enumerate() {
                self.apply_split(plan, op, values, &mut fail, index == last)?;
                *done += 1;
            }
            return Ok(());
        }
        for group in batch.chunks_mut(per_group) {
            self.transform(group, |t| t.run(&steps(t, plan, op)?, fail.take()))?;
            *done += group.len();
        }
        Ok(())
    }

    /// `table` for `plan`'s size: the resident one, or uploaded now and kept.
    fn resident_table(&self, plan: &Ntt, table: Table) -> Result<Arc<wgpu::Buffer>, GpuError> {
        let key = (plan.len(), table);
        let mut resident = self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(at) = resident.iter().position(|(k, _)| *k == key) {
            let entry = resident.remove(at);
            let buffer = entry.1.clone();
            resident.push(entry);
            return Ok(buffer);
        }
        let buffer = Arc::new(self.upload_table(plan, table)?);
        if resident.len() >= RESIDENT_TABLES {
            resident.remove(0);
        }
        resident.push((key, buffer.clone()));
        Ok(buffer)
    }

    /// `table` for `plan`'s size, uploaded now.
    fn upload_table(&self, plan: &Ntt, table: Table) -> Result<wgpu::Buffer, GpuError> {
        let elements: std::borrow::Cow<'_, [Fr]> = match table {
            Table::Roots => (&plan.roots[..]).into(),
            Table::InverseRoots => (&plan.inverse_roots[..]).into(),
            Table::Constant(value) => vec![value].into(),
            Table::Powers { first, ratio } => cpu::powers(first, ratio, plan.len()).into(),
            Table::Twiddles { inverse } => split::twiddle_tables(plan, inverse).into(),
        };
        let words = fr_words(elements.iter());
        self.ctx.buffer_init(table.label(), bytemuck::cast_slice(&words), wgpu::BufferUsages::STORAGE)
    }

    #[cfg(test)]
    fn resident_tables(&self) -> usize {
        self.tables.lock().map(|t| t.len()).unwrap_or(0)
    }

    /// Upload `group`, let `record` run its steps, read the values back.
    fn transform(
        &self,
        group: &mut [&mut [Fr]],
        record: impl FnOnce(&Transform<'_>) -> Result<(), GpuError>,
    ) -> Result<(), NttError> {
        let n = group[0].len();
        let bytes = (n * group.len() * 32) as u64;
        let mut phases = Phases::start(n, group.len());
        let words = fr_words(group.iter().flat_map(|values| values.iter()));
        phases.mark("to words");
        let buffer = self
            .ctx
            .buffer_init(
                "ntt values",
                bytemuck::cast_slice(&words),
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            )
            .map_err(NttError::Device)?;
        phases.mark("upload");
        let t = Transform {
            ntt: self,
            values: &buffer,
            n: n as u32,
            count: group.len() as u32,
            tables: Default::default(),
        };
        record(&t).map_err(NttError::Device)?;
        phases.mark_after_wait(&self.ctx, "dispatches");
        if self.ctx.is_lost() {
            return Err(NttError::Device(GpuError::DeviceLost("during an NTT".into())));
        }
        let back = self.ctx.read_buffer("ntt values", &buffer, bytes).map_err(NttError::Device)?;
        phases.mark("readback");
        let elements = group.iter_mut().flat_map(|values| values.iter_mut());
        for (value, back) in elements.zip(fr_from_bytes(&back)) {
            *value = back;
        }
        phases.mark("from words");
        Ok(())
    }
}

/// The dispatches of `op`, its tables (resident on the device) listed in `t`.
fn steps(t: &Transform<'_>, plan: &Ntt, op: NttOp) -> Result<Vec<Step>, GpuError> {
    let n = plan.len();
    let mut steps = Vec::new();
    match op {
        NttOp::Forward => {
            steps.extend(dif_steps(t.table(plan, Table::Roots)?, n));
            steps.push(Step::BitReverse);
        }
        NttOp::Inverse => {
            steps.extend(dif_steps(t.table(plan, Table::InverseRoots)?, n));
            steps.push(Step::BitReverse);
            steps.push(Step::Scale {
                table: t.table(plan, Table::Constant(plan.n_inverse))?,
                reversed: false,
                constant: true,
            });
        }
        NttOp::CosetForward(g) => {
            let powers = t.table(plan, Table::Powers { first: Fr::ONE, ratio: g })?;
            steps.push(Step::Scale { table: powers, reversed: false, constant: false });
            steps.extend(dif_steps(t.table(plan, Table::Roots)?, n));
            steps.push(Step::BitReverse);
        }
        NttOp::CosetInverse(g) => {
            let g_inverse = g.inverse().expect("checked before the upload");
            steps.extend(dif_steps(t.table(plan, Table::InverseRoots)?, n));
            steps.push(Step::BitReverse);
            let powers = t.table(plan, Table::Powers { first: plan.n_inverse, ratio: g_inverse })?;
            steps.push(Step::Scale { table: powers, reversed: false, constant: false });
        }
        // The inverse by decimation in frequency, the 1/n and gⁱ factors in
        // bit-reversed order, the forward by decimation in time: no
        // bit-reversal pass.
        NttOp::ToCoset(g) => {
            steps.extend(dif_steps(t.table(plan, Table::InverseRoots)?, n));
            let powers = t.table(plan, Table::Powers { first: plan.n_inverse, ratio: g })?;
            steps.push(Step::Scale { table: powers, reversed: true, constant: false });
            steps.extend(dit_steps(t.table(plan, Table::Roots)?, n));
        }
    }
    Ok(steps)
}

/// The stages of a decimation-in-frequency pass: half-sizes n/2 down to 1.
fn dif_steps(roots: usize, n: usize) -> Vec<Step> {
    (0..n.trailing_zeros()).rev().map(|k| Step::Dif { roots, half: 1 << k }).collect()
}

/// The stages of a decimation-in-time pass: half-sizes 1 up to n/2.
fn dit_steps(roots: usize, n: usize) -> Vec<Step> {
    (0..n.trailing_zeros()).map(|k| Step::Dit { roots, half: 1 << k }).collect()
}

/// A group of transforms' values on the device, their tables, and what
/// records their dispatches.
struct Transform<'a> {
    ntt: &'a GpuNtt,
    values: &'a wgpu::Buffer,
    n: u32,
    count: u32,
    tables: std::cell::RefCell<Vec<Arc<wgpu::Buffer>>>,
}

impl Transform<'_> {
    /// `table` of `plan`'s size, resident on the device (uploaded on its
    /// first use); its index for [`Step`]s.
    fn table(&self, plan: &Ntt, table: Table) -> Result<usize, GpuError> {
        let buffer = self.ntt.resident_table(plan, table)?;
        Ok(self.keep(buffer))
    }

    /// `table` of `plan`'s size, uploaded for this transform alone (a
    /// split transform's per-chunk factors, which no later call reuses).
    fn table_once(&self, plan: &Ntt, table: Table) -> Result<usize, GpuError> {
        let buffer = Arc::new(self.ntt.upload_table(plan, table)?);
        Ok(self.keep(buffer))
    }

    fn keep(&self, buffer: Arc<wgpu::Buffer>) -> usize {
        let mut tables = self.tables.borrow_mut();
        tables.push(buffer);
        tables.len() - 1
    }

    /// Record every step into one compute pass and submit it.
    fn run(&self, steps: &[Step], fail_before_step: Option<usize>) -> Result<(), GpuError> {
        let ctx = &self.ntt.ctx;
        let tables = self.tables.borrow();
        let mut prepared = Vec::with_capacity(steps.len());
        for (index, step) in steps.iter().enumerate() {
            if fail_before_step == Some(index) {
                return Err(GpuError::InjectedFault(format!("NTT dispatch {index} ({})", step.entry())));
            }
            let pipeline = self.ntt.pipeline(step.entry())?;
            let (half, table, reversed, constant) = match *step {
                Step::Dif { roots, half } | Step::Dit { roots, half } => (half, Some(&tables[roots]), false, false),
                Step::BitReverse => (1, None, false, false),
                Step::Scale { table, reversed, constant } => (1, Some(&tables[table]), reversed, constant),
            };
            let params = NttParams {
                n: self.n,
                log_n: self.n.trailing_zeros(),
                half,
                stride: self.n / (2 * half),
                reversed: reversed as u32,
                constant: constant as u32,
                count: self.count,
                ..Default::default()
            };
            let uniform = ctx.buffer_init("ntt params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM)?;
            let mut entries = vec![
                wgpu::BindGroupEntry { binding: PARAMS.slot, resource: uniform.as_entire_binding() },
                wgpu::BindGroupEntry { binding: VALUES.slot, resource: self.values.as_entire_binding() },
            ];
            if let Some(table) = table {
                entries.push(wgpu::BindGroupEntry { binding: TABLE.slot, resource: table.as_entire_binding() });
            }
            let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(step.entry()),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            prepared.push((pipeline, bind_group, self.groups(step.invocations(self.n, self.count))));
        }
        if fail_before_step.is_some_and(|step| step >= steps.len()) {
            return Err(GpuError::InjectedFault("NTT readback".into()));
        }
        // One compute pass for them all; when tracing, one each, submitted,
        // waited for and timed on its own.
        let trace = super::trace();
        let passes = if trace { prepared.chunks(1).collect() } else { vec![&prepared[..]] };
        for (index, pass_steps) in passes.into_iter().enumerate() {
            let started = std::time::Instant::now();
            let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ntt") });
            {
                let mut pass = encoder
                    .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("ntt"), timestamp_writes: None });
                for (pipeline, bind_group, (x, y)) in pass_steps {
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, bind_group, &[]);
                    pass.dispatch_workgroups(*x, *y, 1);
                }
            }
            ctx.queue.submit(Some(encoder.finish()));
            if trace {
                let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
                let (x, y) = pass_steps[0].2;
                eprintln!("ntt step {index} ({}, {x}x{y} groups): {:?}", steps[index].entry(), started.elapsed());
            }
        }
        Ok(())
    }

    /// Workgroups for `invocations`, folded into y past the x limit (the
    /// kernels index x + y·(groups in x)·WORKGROUP and skip the overshoot).
    fn groups(&self, invocations: u32) -> (u32, u32) {
        groups(invocations, self.ntt.max_groups_x)
    }
}

/// Workgroups for `invocations`, at most `max_x` in x and the rest folded into y.
fn groups(invocations: u32, max_x: u32) -> (u32, u32) {
    let groups = invocations.div_ceil(WORKGROUP);
    let x = groups.min(max_x);
    (x, groups.div_ceil(x))
}

/// The phases of one transform group, timed and printed when tracing
/// ([`super::trace`]); nothing otherwise.
struct Phases {
    on: bool,
    label: String,
    last: std::time::Instant,
}

impl Phases {
    fn start(n: usize, count: usize) -> Phases {
        Phases {
            on: super::trace(),
            label: format!("ntt 2^{} x {count}", n.trailing_zeros()),
            last: std::time::Instant::now(),
        }
    }

    fn mark(&mut self, phase: &str) {
        if self.on {
            eprintln!("{}: {phase} {:?}", self.label, self.last.elapsed());
            self.last = std::time::Instant::now();
        }
    }

    /// Mark `phase` once the device has finished its queued work.
    fn mark_after_wait(&mut self, ctx: &GpuContext, phase: &str) {
        if self.on {
            let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
        }
        self.mark(phase);
    }
}

impl crate::backend::LossAware for GpuNtt {
    fn is_lost(&self) -> bool {
        self.ctx.is_lost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::wgsl::checked::check;
    use ark_ff::{AdditiveGroup, UniformRand};
    use rand::SeedableRng;

    #[test]
    fn the_module_validates_on_both_paths_with_the_host_struct() {
        for path in [FieldPath::U32, FieldPath::U64] {
            let checked = check(&module(path));
            assert_eq!(checked.struct_size("NttParams"), NttParams::HOST_SIZE, "{path:?}");
            let all: std::collections::BTreeSet<u32> = BINDINGS.iter().map(|b| b.slot).collect();
            for entry in ["dif_stage", "dit_stage", "scale"] {
                assert_eq!(checked.used_slots(entry), all, "{path:?} {entry}");
            }
            // The host binds no table for the bit reversal.
            assert_eq!(checked.used_slots("bit_reverse"), [PARAMS.slot, VALUES.slot].into(), "{path:?}");
            // The cross-chunk butterflies of a split transform use all four of theirs.
            let cross = check(&split::module(path));
            assert_eq!(cross.struct_size("CrossParams"), split::CrossParams::HOST_SIZE, "{path:?}");
            for entry in split::ENTRIES {
                assert_eq!(
                    cross.used_slots(entry),
                    split::BINDINGS.iter().map(|b| b.slot).collect(),
                    "{path:?} {entry}"
                );
            }
        }
    }

    fn engines() -> Vec<GpuNtt> {
        let Some(ctx) = crate::gpu::test_context() else { return Vec::new() };
        let mut out = vec![GpuNtt::on_path(ctx.clone(), FieldPath::U32).expect("the u32 path runs everywhere")];
        match GpuNtt::on_path(ctx.clone(), FieldPath::U64) {
            Ok(ntt) => out.push(ntt),
            Err(e) => eprintln!("SKIPPED: the u64 field path on {}: {e}", ctx.describe()),
        }
        out
    }

    /// Every transform on the device against the CPU plan (itself tested
    /// against ark-poly), for sizes 1 to 2^9 (one workgroup of butterflies
    /// is 2^7 points: sizes below, at and past it) and edge values.
    #[test]
    fn gpu_transforms_equal_the_cpu_plan() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(19);
        for ntt in engines() {
            let path = ntt.path();
            // A two-workgroup x limit folds every larger dispatch into y.
            for ntt in [ntt, GpuNtt::on_path(crate::gpu::test_context().unwrap(), path).unwrap().with_max_groups_x(2)] {
                for log in 0..=9u32 {
                    let n = 1usize << log;
                    let plan = Ntt::new(n).unwrap();
                    let mut edge = vec![-Fr::ONE; n];
                    edge[0] = Fr::ZERO;
                    let g = Fr::from(7u64);
                    for input in [(0..n).map(|_| Fr::rand(&mut rng)).collect::<Vec<_>>(), edge] {
                        let (mut cpu, mut gpu) = (input.clone(), input.clone());
                        plan.forward(&mut cpu).unwrap();
                        ntt.forward(&plan, &mut gpu).unwrap();
                        assert_eq!(gpu, cpu, "forward, n = {n}, {path:?}");
                        let (mut cpu, mut gpu) = (input.clone(), input.clone());
                        plan.inverse(&mut cpu).unwrap();
                        ntt.inverse(&plan, &mut gpu).unwrap();
                        assert_eq!(gpu, cpu, "inverse, n = {n}, {path:?}");
                        let (mut cpu, mut gpu) = (input.clone(), input.clone());
                        plan.coset_forward(&mut cpu, g).unwrap();
                        ntt.coset_forward(&plan, &mut gpu, g).unwrap();
                        assert_eq!(gpu, cpu, "coset forward, n = {n}, {path:?}");
                        let (mut cpu, mut gpu) = (input.clone(), input.clone());
                        plan.coset_inverse(&mut cpu, g).unwrap();
                        ntt.coset_inverse(&plan, &mut gpu, g).unwrap();
                        assert_eq!(gpu, cpu, "coset inverse, n = {n}, {path:?}");
                        let (mut cpu, mut gpu) = (input.clone(), input);
                        plan.to_coset(&mut cpu, g).unwrap();
                        ntt.to_coset(&plan, &mut gpu, g).unwrap();
                        assert_eq!(gpu, cpu, "to coset, n = {n}, {path:?}");
                    }
                }
            }
        }
    }

    /// Tables are uploaded once per size and shift and reused, within the
    /// bound; results stay the CPU plan's after an eviction.
    #[test]
    fn tables_stay_resident_within_their_bound() {
        let Some(ctx) = crate::gpu::test_context() else { return };
        let ntt = GpuNtt::new(ctx).unwrap();
        let plan = Ntt::new(16).unwrap();
        let input: Vec<Fr> = (0..16u64).map(Fr::from).collect();
        for _ in 0..2 {
            ntt.to_coset(&plan, &mut input.clone(), Fr::from(3u64)).unwrap();
        }
        assert_eq!(ntt.resident_tables(), 3, "inverse roots, the coset's factors, roots");
        for shift in 0..RESIDENT_TABLES as u64 {
            ntt.coset_forward(&plan, &mut input.clone(), Fr::from(5 + shift)).unwrap();
        }
        assert_eq!(ntt.resident_tables(), RESIDENT_TABLES);
        let (mut cpu, mut gpu) = (input.clone(), input);
        plan.to_coset(&mut cpu, Fr::from(3u64)).unwrap();
        ntt.to_coset(&plan, &mut gpu, Fr::from(3u64)).unwrap();
        assert_eq!(gpu, cpu, "after its tables were evicted and uploaded again");
    }

    #[test]
    fn bad_lengths_and_shifts_are_refused_on_the_device_too() {
        for ntt in engines() {
            let plan = Ntt::new(8).unwrap();
            assert_eq!(ntt.forward(&plan, &mut [Fr::ONE; 4]), Err(NttError::Length { plan: 8, values: 4 }));
            assert_eq!(ntt.coset_inverse(&plan, &mut [Fr::ONE; 8], Fr::ZERO), Err(NttError::ZeroShift));
        }
    }
}
