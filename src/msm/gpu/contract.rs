//! The MSM kernels' side of the host–kernel contract (`crate::gpu::wgsl`):
//! every module's bindings, the structs the host writes, and the constants,
//! declared once here and emitted into each module's prelude.
//!
//! A slot number names one buffer role across all MSM modules (a test
//! checks it), so the dispatch graph (`graph.rs`) binds by these names.

use super::plan::{Plan, ACC_CHUNK, SCAN_GROUP, WORKGROUP};
use super::shaders::{curve_source, for_group, group_curve_source, CurveFormulas, FieldPath, Group, Stage};
use crate::gpu::wgsl::{Binding, KernelModule, WgslStruct};

/// The uniform every MSM stage reads; its WGSL declaration is emitted
/// from the `WgslStruct` impl below.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MsmParams {
    pub n: u32,
    pub base_offset: u32,
    pub window_bits: u32,
    pub windows: u32,
    pub buckets: u32,
    pub total_buckets: u32,
    pub scan_chunk: u32,
    pub scan_chunks: u32,
    pub list_len: u32,
    pub chunk: u32,
    pub seg_len: u32,
    pub segs: u32,
    pub pad: [u32; 4],
}

impl MsmParams {
    pub fn new(plan: &Plan, base_offset: u32) -> MsmParams {
        MsmParams {
            n: plan.n,
            base_offset,
            window_bits: plan.window_bits,
            windows: plan.windows,
            buckets: plan.buckets,
            total_buckets: plan.total_buckets,
            scan_chunk: plan.scan_chunk,
            scan_chunks: plan.scan_chunks,
            list_len: 0,
            chunk: ACC_CHUNK,
            seg_len: plan.seg_len,
            segs: plan.segs,
            pad: [0; 4],
        }
    }

    pub fn with_list_len(self, list_len: u32) -> MsmParams {
        MsmParams { list_len, ..self }
    }
}

pub const PARAMS: Binding = Binding::uniform(0, "params", "MsmParams");
// Digits and scan.
pub const SCALARS: Binding = Binding::read(1, "scalars", "array<u32>");
pub const COUNTS_ATOMIC: Binding = Binding::read_write(2, "counts", "array<atomic<u32>>");
pub const COUNTS: Binding = Binding::read(2, "counts", "array<u32>");
pub const OFFSETS: Binding = Binding::read(3, "offsets", "array<u32>");
pub const OFFSETS_OUT: Binding = Binding::read_write(3, "offsets", "array<u32>");
pub const ENTRIES_OUT: Binding = Binding::read_write(4, "entries", "array<u32>");
pub const BUCKET_OF_OUT: Binding = Binding::read_write(5, "bucket_of", "array<u32>");
pub const CHUNK_SUMS: Binding = Binding::read_write(6, "chunk_sums", "array<u32>");
// Accumulation.
pub const ENTRIES: Binding = Binding::read(4, "entries", "array<u32>");
pub const BUCKET_OF: Binding = Binding::read(5, "bucket_of", "array<u32>");
pub const BASES: Binding = Binding::read(7, "bases", "array<u32>");
pub const BUCKET_ACC_OUT: Binding = Binding::read_write(8, "bucket_acc", "array<u32>");
pub const CONT_IN: Binding = Binding::read(9, "cont_in", "array<u32>");
pub const CONT_BUCKET_IN: Binding = Binding::read(10, "cont_bucket_in", "array<u32>");
pub const CONT_OUT: Binding = Binding::read_write(11, "cont_out", "array<u32>");
pub const CONT_BUCKET_OUT: Binding = Binding::read_write(12, "cont_bucket_out", "array<u32>");
// Window segments.
pub const BUCKET_ACC: Binding = Binding::read(8, "bucket_acc", "array<u32>");
pub const SEG_OUT: Binding = Binding::read_write(13, "seg_out", "array<u32>");
pub const SEG_WINDOW: Binding = Binding::read_write(14, "seg_window", "array<u32>");

const DIGITS: [Binding; 6] = [PARAMS, SCALARS, COUNTS_ATOMIC, OFFSETS, ENTRIES_OUT, BUCKET_OF_OUT];
const SCAN: [Binding; 4] = [PARAMS, COUNTS, OFFSETS_OUT, CHUNK_SUMS];
const ACCUMULATE: [Binding; 9] =
    [PARAMS, ENTRIES, BUCKET_OF, BASES, BUCKET_ACC_OUT, CONT_IN, CONT_BUCKET_IN, CONT_OUT, CONT_BUCKET_OUT];
const REDUCE: [Binding; 4] = [PARAMS, BUCKET_ACC, SEG_OUT, SEG_WINDOW];

const CONSTANTS: [(&str, u32); 3] =
    [("WORKGROUP_SIZE", WORKGROUP), ("SCAN_GROUP", SCAN_GROUP), ("FE_WORDS", Group::G1.fe_words())];
const CONSTANTS_G2: [(&str, u32); 3] =
    [("WORKGROUP_SIZE", WORKGROUP), ("SCAN_GROUP", SCAN_GROUP), ("FE_WORDS", Group::G2.fe_words())];

impl WgslStruct for MsmParams {
    const NAME: &'static str = "MsmParams";
    const FIELDS: &'static [&'static str] = &[
        "n",
        "base_offset",
        "window_bits",
        "windows",
        "buckets",
        "total_buckets",
        "scan_chunk",
        "scan_chunks",
        "list_len",
        "chunk",
        "seg_len",
        "segs",
        "pad0",
        "pad1",
        "pad2",
        "pad3",
    ];
    const HOST_SIZE: usize = size_of::<MsmParams>();
}

/// The bindings of one MSM stage module.
pub fn stage_bindings(stage: Stage) -> &'static [Binding] {
    match stage {
        Stage::Digits => &DIGITS,
        Stage::Scan => &SCAN,
        Stage::Accumulate => &ACCUMULATE,
        Stage::Reduce => &REDUCE,
    }
}

/// The module of one MSM stage on `path` over `group` (the digit and scan
/// stages never touch points, so theirs is the same for both groups).
pub fn stage_module(path: FieldPath, stage: Stage, group: Group) -> KernelModule<'static> {
    let group = match stage {
        Stage::Digits | Stage::Scan => Group::G1,
        Stage::Accumulate | Stage::Reduce => group,
    };
    let mut code = group_curve_source(path, group);
    code.push(for_group(group, super::shaders::MSM_COMMON));
    code.push(for_group(group, stage.source()));
    KernelModule {
        label: stage.label(),
        constants: match group {
            Group::G1 => &CONSTANTS,
            Group::G2 => &CONSTANTS_G2,
        },
        structs: vec![MsmParams::declaration()],
        bindings: stage_bindings(stage),
        code,
    }
}

/// What the field and curve test kernels read (`OpParams`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OpParams {
    pub op: u32,
    pub count: u32,
    pub pad0: u32,
    pub pad1: u32,
}

impl WgslStruct for OpParams {
    const NAME: &'static str = "OpParams";
    const FIELDS: &'static [&'static str] = &["op", "count", "pad0", "pad1"];
    const HOST_SIZE: usize = size_of::<OpParams>();
}

pub const OP_PARAMS: Binding = Binding::uniform(0, "params", "OpParams");
pub const LHS: Binding = Binding::read(1, "lhs", "array<u32>");
pub const RHS: Binding = Binding::read(2, "rhs", "array<u32>");
pub const OUT: Binding = Binding::read_write(3, "out", "array<u32>");
pub const TEST_OPS: [Binding; 4] = [OP_PARAMS, LHS, RHS, OUT];

/// The elementwise field and curve test kernels on `path`, the curve ops
/// (G1's) from `formulas`.
pub fn test_ops_module(path: FieldPath, formulas: CurveFormulas) -> KernelModule<'static> {
    let mut code = curve_source(path, formulas);
    code.push(super::shaders::TEST_OPS.into());
    KernelModule {
        label: "bn254_test_ops",
        constants: &CONSTANTS,
        structs: vec![OpParams::declaration()],
        bindings: &TEST_OPS,
        code,
    }
}

/// The elementwise Fq2 test kernel (the same bindings as the field/curve ones).
pub fn test_fq2_module(path: FieldPath) -> KernelModule<'static> {
    let mut code = super::shaders::fq2_source(path);
    code.push(super::shaders::TEST_FQ2.into());
    KernelModule {
        label: "bn254_test_fq2",
        constants: &CONSTANTS,
        structs: vec![OpParams::declaration()],
        bindings: &TEST_OPS,
        code,
    }
}

/// The elementwise field/curve test kernels' WGSL.
pub fn test_ops_source(path: FieldPath, formulas: CurveFormulas) -> String {
    test_ops_module(path, formulas).compose()
}

/// The WGSL of one MSM stage over `group`.
pub fn stage_source(path: FieldPath, stage: Stage, group: Group) -> String {
    stage_module(path, stage, group).compose()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::gpu::wgsl::checked::{check, Checked};
    use crate::msm::gpu::graph::{dispatches, Kernel};
    use crate::msm::gpu::plan::Plan;

    const STAGES: [Stage; 4] = [Stage::Digits, Stage::Scan, Stage::Accumulate, Stage::Reduce];

    /// Every module on both field paths validates with naga, and the
    /// structs the host writes have the host's size.
    #[test]
    fn every_module_validates_with_the_host_structs() {
        for path in [FieldPath::U32, FieldPath::U64] {
            for (stage, group) in STAGES.into_iter().flat_map(|stage| [(stage, Group::G1), (stage, Group::G2)]) {
                let checked = check(&stage_module(path, stage, group));
                assert_eq!(checked.struct_size("MsmParams"), MsmParams::HOST_SIZE, "{path:?} {stage:?} {group:?}");
            }
            for formulas in CurveFormulas::ALL {
                let ops = check(&test_ops_module(path, formulas));
                assert_eq!(ops.struct_size("OpParams"), OpParams::HOST_SIZE);
                for entry in ["field_op", "curve_op"] {
                    assert_eq!(ops.used_slots(entry), TEST_OPS.iter().map(|b| b.slot).collect(), "{entry}");
                }
            }
            let fq2 = check(&test_fq2_module(path));
            assert_eq!(fq2.struct_size("OpParams"), OpParams::HOST_SIZE);
            assert_eq!(fq2.used_slots("fq2_op"), TEST_OPS.iter().map(|b| b.slot).collect());
        }
    }

    /// A slot names one buffer role in every MSM module.
    #[test]
    fn a_slot_means_one_name_in_every_module() {
        let mut names: BTreeMap<u32, BTreeSet<&str>> = BTreeMap::new();
        for stage in STAGES {
            for b in stage_bindings(stage) {
                names.entry(b.slot).or_default().insert(b.name);
            }
        }
        for (slot, names) in names {
            assert_eq!(names.len(), 1, "slot {slot} is {names:?}");
        }
    }

    /// Each dispatch of the graph binds exactly the slots its entry point
    /// uses (the layout wgpu infers from the shader), for plans from one
    /// point to a million.
    #[test]
    fn the_dispatch_graph_binds_what_each_entry_point_uses() {
        for group in [Group::G1, Group::G2] {
            let modules: BTreeMap<&str, Checked> =
                STAGES.iter().map(|s| (s.label(), check(&stage_module(FieldPath::U32, *s, group)))).collect();
            for plan in [Plan::new(1, 2), Plan::new(100, 4), Plan::new(5000, 9), Plan::new(1 << 20, 16)] {
                let graph = dispatches(&plan);
                for kernel in Kernel::ALL {
                    assert!(graph.iter().any(|d| d.kernel == kernel), "{plan:?}: {kernel:?} never runs");
                }
                for d in graph {
                    let used = modules[d.kernel.stage().label()].used_slots(d.kernel.entry());
                    let bound: BTreeSet<u32> = d.bindings.iter().map(|(b, _)| b.slot).collect();
                    assert_eq!(bound, used, "{:?} in {plan:?}", d.kernel);
                    let declared = stage_bindings(d.kernel.stage());
                    for (b, _) in &d.bindings {
                        assert!(
                            declared.contains(b),
                            "{:?} binds {} as its module does not declare it",
                            d.kernel,
                            b.name
                        );
                    }
                }
            }
        }
    }
}
