//! The CPU backend: single-chunk messages grouped by length and hashed in SIMD
//! lanes across rayon threads; multi-chunk messages through the blake3 crate.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::batch::{Job, PackedBatch, Run};
use super::consts::{BLOCK_LEN, CHUNK_LEN, IV};
use super::lanes::{Group, Kernel, MAX_LANES};

/// Fewest messages per rayon task: enough to amortise scheduling.
const TASK_MESSAGES: usize = 1024;

/// Runs averaging fewer requests than this are hashed job by job (regrouped
/// by length), since a run shorter than a lane group wastes lanes.
const MIN_AVERAGE_RUN: usize = 16;

/// Up to this many jobs are hashed one by one (see `hash_batch_into`).
const FEW_JOBS: usize = 8;

/// A digest slot the kernels write without it being initialised first.
pub(crate) type Slot = MaybeUninit<[u8; 32]>;

/// Messages per task for `total` messages: a few big contiguous tasks per
/// thread (load balance without per-message overhead).
fn task_messages(total: usize) -> usize {
    total.div_ceil(4 * rayon::current_num_threads()).max(TASK_MESSAGES)
}

/// Initialised slots seen as writable slots.
fn as_slots(out: &mut [[u8; 32]]) -> &mut [Slot] {
    // SAFETY: `MaybeUninit<T>` has `T`'s layout, and the kernels only ever
    // write whole, initialised digests through the returned slice.
    unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<Slot>(), out.len()) }
}

/// Hash messages `start..start + out.len()` of an equal-length run;
/// `lane(i)` gives message `i`'s start, key and mode flag.
fn hash_range<'k, F>(kernel: Kernel, len: usize, lane: &F, start: usize, out: &mut [Slot])
where
    F: Fn(usize) -> (*const u8, &'k [u32; 8], u32),
{
    let width = kernel.lanes();
    let end = start + out.len();
    for (g, out_group) in out.chunks_mut(width).enumerate() {
        let first = start + g * width;
        // Fetch the next group's messages while this one computes: across
        // page boundaries the hardware prefetcher loses the stream.
        for i in (first + width)..(first + 2 * width).min(end) {
            prefetch(lane(i).0, len);
        }
        let (ptr0, key0, flags0) = lane(first);
        let mut group = Group {
            msgs: [ptr0; MAX_LANES],
            keys: [key0; MAX_LANES],
            flags: [flags0; MAX_LANES],
            uniform: true,
            len,
            n: out_group.len(),
        };
        for l in 1..out_group.len() {
            let (ptr, key, flags) = lane(first + l);
            group.msgs[l] = ptr;
            group.keys[l] = key;
            group.flags[l] = flags;
            group.uniform &= std::ptr::eq(key, key0) && flags == flags0;
        }
        // SAFETY: the kernel was checked to be supported when the pool chose
        // it; every pointer addresses `len` bytes of a live buffer, and
        // `out_group` has room for `n` digests, all of which it writes.
        unsafe { kernel.hash_group(&group, out_group.as_mut_ptr().cast()) };
    }
}

/// Plain-hash consecutive `len`-byte messages of `data` (`len <=
/// CHUNK_LEN`, one per slot of `out`): the bulk path, where every lane
/// shares the IV and no flags, and the hardware prefetcher follows the one
/// sequential stream, so groups are built with no per-message lookups.
pub(crate) fn hash_contiguous(kernel: Kernel, data: &[u8], len: usize, out: &mut [Slot]) {
    debug_assert!(len <= CHUNK_LEN && data.len() == out.len() * len);
    let width = kernel.lanes();
    let mut group = Group {
        msgs: [data.as_ptr(); MAX_LANES],
        keys: [&IV; MAX_LANES],
        flags: [0; MAX_LANES],
        uniform: true,
        len,
        n: 0,
    };
    for (g, out_group) in out.chunks_mut(width).enumerate() {
        let first = data.as_ptr().wrapping_add(g * width * len);
        group.n = out_group.len();
        for (l, msg) in group.msgs.iter_mut().enumerate().take(width) {
            // Lanes past `n` repeat the group's first message.
            *msg = if l < group.n { first.wrapping_add(l * len) } else { first };
        }
        // SAFETY: the kernel was checked to be supported when the caller
        // chose it; message `g * width + l` lies within `data` for `l < n`,
        // and `out_group` has room for the `n` digests, all of which it writes.
        unsafe { kernel.hash_group(&group, out_group.as_mut_ptr().cast()) };
    }
}

/// Ask for the cache lines of a `len`-byte message.
#[inline(always)]
fn prefetch(ptr: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..len.max(1)).step_by(64) {
        // SAFETY: a prefetch is only a hint; it never faults, even on an
        // address outside the message.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.wrapping_add(offset) as *const i8)
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, len);
}

/// Hash an equal-length run, in parallel when it is big enough.
fn hash_run<'k, F>(kernel: Kernel, len: usize, lane: &F, out: &mut [Slot])
where
    F: Fn(usize) -> (*const u8, &'k [u32; 8], u32) + Sync,
{
    let task = task_messages(out.len());
    if out.len() <= task {
        hash_range(kernel, len, lane, 0, out);
    } else {
        out.par_chunks_mut(task).enumerate().for_each(|(t, chunk)| hash_range(kernel, len, lane, t * task, chunk));
    }
}

/// Digest every job of `batch` into `out` (request order).
pub(crate) fn hash_batch(kernel: Kernel, batch: &PackedBatch, out: &mut [[u8; 32]]) {
    hash_batch_into(kernel, batch, as_slots(out));
}

/// Digest every job of `batch` into `out` (request order), writing every slot.
pub(crate) fn hash_batch_into(kernel: Kernel, batch: &PackedBatch, out: &mut [Slot]) {
    assert_eq!(out.len(), batch.len(), "one output slot per job");
    // A handful of requests (a batch's lookup of ids filed just before, once
    // per operation of a chain): one by one with the crate, without the lane
    // kernels' tables, sorting and threads, which cost more than the hashing.
    if batch.len() <= FEW_JOBS {
        for (slot, job) in out.iter_mut().zip(batch.jobs()) {
            slot.write(batch.crate_digest(&job));
        }
        return;
    }
    if batch.runs.len() * MIN_AVERAGE_RUN <= batch.len() {
        hash_runs(kernel, batch, out);
        return;
    }
    let jobs: Vec<Job> = batch.jobs().collect();
    if let Some(len) = batch.common_len().filter(|len| *len <= CHUNK_LEN) {
        let (bytes, keys) = (&batch.bytes, &batch.keys);
        let lane = |i: usize| {
            let job = &jobs[i];
            (bytes.as_ptr().wrapping_add(job.offset), &keys[job.key as usize], job.flags)
        };
        hash_run(kernel, len, &lane, out);
        return;
    }
    out.fill(MaybeUninit::new([0u8; 32]));
    // SAFETY: every slot was just initialised.
    let out = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<[u8; 32]>(), out.len()) };
    hash_mixed(kernel, batch, &jobs, out);
}

/// Long runs (bulk filings, or many requests of one length and mode in a
/// row): each run's digests are a contiguous slice of `out`, so runs are cut
/// into big tasks and hashed in place, with no sorting and no job table.
fn hash_runs(kernel: Kernel, batch: &PackedBatch, out: &mut [Slot]) {
    let task = task_messages(batch.len());
    let mut tasks: Vec<(&Run, usize, &mut [Slot])> = Vec::new();
    let mut rest = out;
    for run in &batch.runs {
        let (mut run_out, tail) = std::mem::take(&mut rest).split_at_mut(run.count);
        rest = tail;
        let mut first = 0;
        while !run_out.is_empty() {
            let size = run_out.len().min(task);
            let (chunk, tail) = std::mem::take(&mut run_out).split_at_mut(size);
            tasks.push((run, first, chunk));
            first += size;
            run_out = tail;
        }
    }
    let (bytes, keys) = (&batch.bytes, &batch.keys);
    let hash_task = |(run, first, chunk): (&Run, usize, &mut [Slot])| {
        if run.len > CHUNK_LEN {
            for (i, slot) in chunk.iter_mut().enumerate() {
                slot.write(batch.crate_digest(&run.job(first + i)));
            }
            return;
        }
        let (base, stride, key) = (bytes.as_ptr().wrapping_add(run.offset), run.stride(), &keys[run.key as usize]);
        let lane = |i: usize| (base.wrapping_add(i * stride), key, run.flags);
        hash_range(kernel, run.len, &lane, first, chunk);
    };
    if tasks.len() == 1 {
        tasks.into_iter().for_each(hash_task);
    } else {
        tasks.into_par_iter().for_each(hash_task);
    }
}

/// Mixed lengths: counting-sort the single-chunk jobs by length, hash each
/// length run in lanes, hash multi-chunk jobs with the crate, and put every
/// digest back in request order.
fn hash_mixed(kernel: Kernel, batch: &PackedBatch, jobs: &[Job], out: &mut [[u8; 32]]) {
    let mut counts = vec![0usize; CHUNK_LEN + 2];
    for job in jobs {
        counts[job.len.min(CHUNK_LEN + 1)] += 1;
    }
    let mut starts = vec![0usize; CHUNK_LEN + 2];
    let mut total = 0;
    for (start, count) in starts.iter_mut().zip(&counts) {
        *start = total;
        total += count;
    }
    let short_total = starts[CHUNK_LEN + 1];
    let mut order = vec![0u32; batch.len()];
    let mut sorted: Vec<Job> = vec![Job { offset: 0, len: 0, key: 0, flags: 0 }; batch.len()];
    let mut next = starts.clone();
    for (i, job) in jobs.iter().enumerate() {
        let bucket = job.len.min(CHUNK_LEN + 1);
        order[next[bucket]] = i as u32;
        sorted[next[bucket]] = *job;
        next[bucket] += 1;
    }

    let mut sorted_out = vec![[0u8; 32]; batch.len()];
    let (short_out, long_out) = sorted_out.split_at_mut(short_total);
    // One task list over every length run, so small runs share the threads.
    let mut tasks: Vec<(usize, &mut [Slot])> = Vec::new();
    let mut rest = as_slots(short_out);
    let mut at = 0;
    for &count in counts.iter().take(CHUNK_LEN + 1) {
        let (mut run, tail) = rest.split_at_mut(count);
        rest = tail;
        while !run.is_empty() {
            let (task, tail) = run.split_at_mut(run.len().min(TASK_MESSAGES));
            let size = task.len();
            tasks.push((at, task));
            at += size;
            run = tail;
        }
    }
    let (bytes, keys) = (&batch.bytes, &batch.keys);
    let sorted_jobs = &sorted;
    tasks.into_par_iter().for_each(|(start, task)| {
        let lane = |i: usize| {
            let job = &sorted_jobs[i];
            (bytes.as_ptr().wrapping_add(job.offset), &keys[job.key as usize], job.flags)
        };
        // Every job of a task has the same length (tasks never span runs).
        let len = sorted_jobs[start].len;
        let lane_from = |i: usize| lane(start + i);
        hash_range(kernel, len, &lane_from, 0, task);
    });
    long_out.par_iter_mut().zip(&sorted[short_total..]).for_each(|(slot, job)| *slot = batch.crate_digest(job));
    for (digest, &i) in sorted_out.iter().zip(&order) {
        out[i as usize] = *digest;
    }
}

/// [`hash_fixed_into`] into initialised slots.
pub(crate) fn hash_fixed(kernel: Kernel, data: &[u8], len: usize, out: &mut [[u8; 32]]) {
    hash_fixed_into(kernel, data, len, as_slots(out));
}

/// Digest consecutive `len`-byte plain-hash messages of any length (`len > 0`,
/// `data.len() == out.len() * len`) into uninitialised slots, writing all.
pub(crate) fn hash_fixed_into(kernel: Kernel, data: &[u8], len: usize, out: &mut [Slot]) {
    assert!(len > 0 && data.len() == out.len() * len, "whole messages of len bytes");
    if len <= CHUNK_LEN {
        let task = task_messages(out.len());
        out.par_chunks_mut(task)
            .enumerate()
            .for_each(|(t, chunk)| hash_contiguous(kernel, &data[t * task * len..][..chunk.len() * len], len, chunk));
    } else {
        out.par_iter_mut().zip(data.par_chunks_exact(len)).for_each(|(o, m)| {
            o.write(*blake3::hash(m).as_bytes());
        });
    }
}

/// Digest `blocks.len() / 64` whole 64-byte messages (plain hashing), e.g. one
/// Merkle level: pairs of adjacent nodes are exactly one block each.
pub(crate) fn hash_blocks(kernel: Kernel, blocks: &[u8], out: &mut [Slot]) {
    hash_fixed_into(kernel, blocks, BLOCK_LEN, out);
}

/// The Merkle root: parents are BLAKE3(left || right), an odd last node is
/// promoted, one leaf is the root, no leaves give BLAKE3("").
pub(crate) fn merkle_root(kernel: Kernel, leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.is_empty() {
        return *blake3::hash(&[]).as_bytes();
    }
    let mut level: std::borrow::Cow<[[u8; 32]]> = leaves.into();
    while level.len() > 1 {
        let pairs = level.len() / 2;
        let mut next: Vec<[u8; 32]> = Vec::with_capacity(pairs + level.len() % 2);
        hash_blocks(kernel, level[..2 * pairs].as_flattened(), &mut next.spare_capacity_mut()[..pairs]);
        // SAFETY: `hash_blocks` wrote all `pairs` digests.
        unsafe { next.set_len(pairs) };
        if level.len() % 2 == 1 {
            next.push(level[level.len() - 1]);
        }
        level = next.into();
    }
    level[0]
}
