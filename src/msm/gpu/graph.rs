//! The dispatch graph of one MSM batch: which kernel runs over which
//! buffers with how many threads, a pure function of the batch's [`Plan`]
//! tested without a device. The encoder (`kernels::record`) only maps its
//! buffer names onto a workspace's buffers.
//!
//! Digits, then the three-pass offset scan, then the scatter; then the
//! bucket accumulation, one level per [`Plan::levels`] of the entry list,
//! ping-ponging continuations between two buffer pairs; then the window
//! segments and their own levels of accumulation into the window sums.

use super::contract::*;
use super::plan::{Plan, ACC_CHUNK, WORKGROUP};
#[cfg(test)]
use super::shaders::Stage;
use crate::gpu::wgsl::Binding;

/// An MSM entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    CountDigits,
    ScanChunkSums,
    ScanChunkPrefix,
    ScanOffsets,
    ScatterDigits,
    AccumulateBases,
    AccumulatePoints,
    WindowSegments,
}

impl Kernel {
    #[cfg(test)]
    pub const ALL: [Kernel; 8] = [
        Kernel::CountDigits,
        Kernel::ScanChunkSums,
        Kernel::ScanChunkPrefix,
        Kernel::ScanOffsets,
        Kernel::ScatterDigits,
        Kernel::AccumulateBases,
        Kernel::AccumulatePoints,
        Kernel::WindowSegments,
    ];

    /// Its entry point's name in WGSL.
    #[cfg(test)]
    pub fn entry(self) -> &'static str {
        match self {
            Kernel::CountDigits => "count_digits",
            Kernel::ScanChunkSums => "scan_chunk_sums",
            Kernel::ScanChunkPrefix => "scan_chunk_prefix",
            Kernel::ScanOffsets => "scan_offsets",
            Kernel::ScatterDigits => "scatter_digits",
            Kernel::AccumulateBases => "accumulate_bases",
            Kernel::AccumulatePoints => "accumulate_points",
            Kernel::WindowSegments => "window_segments",
        }
    }

    /// The module that holds it.
    #[cfg(test)]
    pub fn stage(self) -> Stage {
        match self {
            Kernel::CountDigits | Kernel::ScatterDigits => Stage::Digits,
            Kernel::ScanChunkSums | Kernel::ScanChunkPrefix | Kernel::ScanOffsets => Stage::Scan,
            Kernel::AccumulateBases | Kernel::AccumulatePoints => Stage::Accumulate,
            Kernel::WindowSegments => Stage::Reduce,
        }
    }
}

/// A buffer of the batch, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Buf {
    /// The batch's parameters with this `list_len` (0: none).
    Params {
        list_len: u32,
    },
    Scalars,
    Counts,
    Offsets,
    ChunkSums,
    Entries,
    BucketOf,
    /// The resident bases (the caller's buffer).
    Bases,
    BucketAcc,
    /// Continuation points and their buckets, ping-pong pair 0 or 1.
    Cont(u8),
    ContBucket(u8),
    Segments,
    SegmentWindow,
    WindowAcc,
}

/// One dispatch of the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispatch {
    pub kernel: Kernel,
    /// Exactly the bindings its entry point uses.
    pub bindings: Vec<(Binding, Buf)>,
    /// Workgroups when `group` is zero, threads otherwise.
    pub threads: u32,
    pub group: u32,
}

const FIXED: Buf = Buf::Params { list_len: 0 };

/// Every dispatch of one batch, in order.
pub fn dispatches(plan: &Plan) -> Vec<Dispatch> {
    let d = |kernel, bindings: Vec<(Binding, Buf)>, threads, group| Dispatch { kernel, bindings, threads, group };
    let mut out = vec![
        d(
            Kernel::CountDigits,
            vec![(PARAMS, FIXED), (SCALARS, Buf::Scalars), (COUNTS_ATOMIC, Buf::Counts)],
            plan.n,
            WORKGROUP,
        ),
        d(
            Kernel::ScanChunkSums,
            vec![(PARAMS, FIXED), (COUNTS, Buf::Counts), (CHUNK_SUMS, Buf::ChunkSums)],
            plan.scan_chunks,
            WORKGROUP,
        ),
        // One workgroup scans every chunk sum.
        d(Kernel::ScanChunkPrefix, vec![(PARAMS, FIXED), (CHUNK_SUMS, Buf::ChunkSums)], 1, 0),
        d(
            Kernel::ScanOffsets,
            vec![(PARAMS, FIXED), (COUNTS, Buf::Counts), (OFFSETS_OUT, Buf::Offsets), (CHUNK_SUMS, Buf::ChunkSums)],
            plan.scan_chunks,
            WORKGROUP,
        ),
        d(
            Kernel::ScatterDigits,
            vec![
                (PARAMS, FIXED),
                (SCALARS, Buf::Scalars),
                (COUNTS_ATOMIC, Buf::Counts),
                (OFFSETS, Buf::Offsets),
                (ENTRIES_OUT, Buf::Entries),
                (BUCKET_OF_OUT, Buf::BucketOf),
            ],
            plan.n,
            WORKGROUP,
        ),
    ];
    let pair = |level: usize| ((level % 2) as u8, Buf::Cont((level % 2) as u8), Buf::ContBucket((level % 2) as u8));
    for (level, len) in Plan::levels(plan.max_entries).into_iter().enumerate() {
        let params = (PARAMS, Buf::Params { list_len: len });
        let (_, cont, cont_bucket) = pair(level);
        let outputs = [(CONT_OUT, cont), (CONT_BUCKET_OUT, cont_bucket)];
        let threads = len.div_ceil(ACC_CHUNK);
        if level == 0 {
            let mut bindings = vec![
                params,
                (ENTRIES, Buf::Entries),
                (BUCKET_OF, Buf::BucketOf),
                (BASES, Buf::Bases),
                (BUCKET_ACC_OUT, Buf::BucketAcc),
            ];
            bindings.extend(outputs);
            out.push(d(Kernel::AccumulateBases, bindings, threads, WORKGROUP));
        } else {
            let (_, cont_in, bucket_in) = pair(level - 1);
            let mut bindings =
                vec![params, (BUCKET_ACC_OUT, Buf::BucketAcc), (CONT_IN, cont_in), (CONT_BUCKET_IN, bucket_in)];
            bindings.extend(outputs);
            out.push(d(Kernel::AccumulatePoints, bindings, threads, WORKGROUP));
        }
    }
    out.push(d(
        Kernel::WindowSegments,
        vec![(PARAMS, FIXED), (BUCKET_ACC, Buf::BucketAcc), (SEG_OUT, Buf::Segments), (SEG_WINDOW, Buf::SegmentWindow)],
        plan.segment_count(),
        WORKGROUP,
    ));
    for (level, len) in Plan::levels(plan.segment_count()).into_iter().enumerate() {
        let (_, cont, cont_bucket) = pair(level);
        let (input, input_bucket) = match level {
            0 => (Buf::Segments, Buf::SegmentWindow),
            _ => {
                let (_, c, b) = pair(level - 1);
                (c, b)
            }
        };
        out.push(d(
            Kernel::AccumulatePoints,
            vec![
                (PARAMS, Buf::Params { list_len: len }),
                (BUCKET_ACC_OUT, Buf::WindowAcc),
                (CONT_IN, input),
                (CONT_BUCKET_IN, input_bucket),
                (CONT_OUT, cont),
                (CONT_BUCKET_OUT, cont_bucket),
            ],
            len.div_ceil(ACC_CHUNK),
            WORKGROUP,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans() -> Vec<Plan> {
        let mut plans = vec![Plan::new(1, 2), Plan::new(5, 3), Plan::new(1000, 8), Plan::new(1 << 16, 13)];
        plans.push(Plan::new(1 << 20, 16));
        plans
    }

    fn writes(binding: &Binding) -> bool {
        binding.access == crate::gpu::wgsl::Access::ReadWrite
    }

    #[test]
    fn accumulation_levels_chain_their_continuations() {
        for plan in plans() {
            let graph = dispatches(&plan);
            let entry_levels = Plan::levels(plan.max_entries).len();
            let segment_levels = Plan::levels(plan.segment_count()).len();
            assert_eq!(graph.len(), 5 + entry_levels + 1 + segment_levels, "{plan:?}");
            let kinds: Vec<Kernel> = graph.iter().map(|d| d.kernel).collect();
            assert_eq!(&kinds[..6], &Kernel::ALL[..6], "{plan:?}");
            // Each accumulation level reads what the level before it wrote.
            let mut written = None;
            for d in &graph[5..] {
                let find = |b: Binding| d.bindings.iter().find(|(x, _)| *x == b).map(|(_, buf)| *buf);
                match d.kernel {
                    Kernel::AccumulateBases => assert_eq!(find(BASES), Some(Buf::Bases)),
                    Kernel::AccumulatePoints => {
                        if let Some(previous) = written {
                            assert_eq!(find(CONT_IN), Some(previous), "{plan:?}");
                        }
                    }
                    Kernel::WindowSegments => {
                        written = Some(Buf::Segments);
                        continue;
                    }
                    other => panic!("{other:?} after the scatter"),
                }
                written = find(CONT_OUT);
                assert_ne!(find(CONT_IN), find(CONT_OUT), "a level never reads and writes one buffer");
            }
            let last = graph.last().unwrap();
            assert!(last.bindings.contains(&(BUCKET_ACC_OUT, Buf::WindowAcc)), "{plan:?}: the window sums come last");
        }
    }

    /// wgpu refuses a buffer bound twice in one dispatch when either use
    /// writes it; no slot is bound twice.
    #[test]
    fn no_dispatch_aliases_a_written_buffer() {
        for plan in plans() {
            for d in dispatches(&plan) {
                for (i, (a, x)) in d.bindings.iter().enumerate() {
                    for (b, y) in &d.bindings[i + 1..] {
                        assert_ne!(a.slot, b.slot, "{:?}", d.kernel);
                        assert!(!(x == y && (writes(a) || writes(b))), "{:?} binds {x:?} twice", d.kernel);
                    }
                }
            }
        }
    }

    #[test]
    fn every_thread_count_covers_its_list() {
        for plan in plans() {
            for d in dispatches(&plan) {
                assert!(d.threads >= 1, "{:?}", d.kernel);
                if let Some((_, Buf::Params { list_len })) = d.bindings.iter().find(|(b, _)| *b == PARAMS) {
                    if *list_len > 0 {
                        assert_eq!(d.threads, list_len.div_ceil(ACC_CHUNK));
                    }
                }
            }
        }
    }
}
