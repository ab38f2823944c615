//! Window size and work split, from a cost model in units of one batched
//! affine addition: a task adds its share of the points into 2^(c-1)
//! buckets, then reduces the buckets (~3 units each, in batched additions
//! too: `reduce`). Tasks are (window, chunk of points) pairs spread
//! over the pool's threads. Only some windows need splitting: with 9 full
//! windows on 2 threads, splitting one of them evens the threads' loads
//! without paying the extra bucket reductions on every window.

use super::bucket::{accumulates_affinely, replicas};
use super::digits::Windows;

/// One bucket's share of the final reduction, in batched-addition units
/// (measured: 0.19 µs a G1 bucket against 0.061 µs an addition, 0.49 against
/// 0.168 in G2).
const REDUCE_COST: f64 = 3.0;
/// Largest window: 2^15 buckets of G2 points (4 MiB) already exceed L2.
const MAX_C: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub windows: Windows,
    /// Number of point chunks of each split window (each chunk has its own buckets).
    pub chunks: usize,
    /// Windows 0..split are split into `chunks` chunks; the others run whole.
    pub split: u32,
}

/// One unit of parallel work: points `chunk`/`of` of window `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    pub window: u32,
    pub chunk: usize,
    pub of: usize,
}

impl Plan {
    /// Every task, whole windows first and the cheap top window last, so
    /// that work stealing ends with the small tasks.
    pub fn tasks(&self) -> Vec<Task> {
        let top = self.windows.count - 1;
        let whole = (self.split..top).map(|window| Task { window, chunk: 0, of: 1 });
        let split = (0..self.split.min(top))
            .flat_map(|window| (0..self.chunks).map(move |chunk| Task { window, chunk, of: self.chunks }));
        let last_chunks = if self.split > top { self.chunks } else { 1 };
        let last = (0..last_chunks).map(|chunk| Task { window: top, chunk, of: last_chunks });
        whole.chain(split).chain(last).collect()
    }
}

/// Choose the plan minimising the estimated makespan for `points` GLV
/// points with scalar magnitudes up to `max` on `threads` threads.
/// `forced_c` overrides the window size (tuning and tests).
pub fn plan(points: usize, max: &[u64; 3], threads: usize, forced_c: Option<u32>) -> Plan {
    let threads = threads.max(1);
    let candidates: Vec<u32> = match forced_c {
        Some(c) => vec![c.clamp(2, MAX_C)],
        None => (2..=MAX_C).collect(),
    };
    let mut best: Option<(f64, Plan)> = None;
    for c in candidates {
        let windows = Windows::for_max(c, max);
        let window_count = windows.count as usize;
        // Splitting points only helps when windows alone cannot occupy the threads.
        let max_chunks = threads.div_ceil(window_count).max(1) * 2;
        for chunks in 1..=max_chunks {
            if chunks > 1 && points / chunks < 1024 {
                break;
            }
            let splits = if chunks == 1 { 0..=0 } else { 1..=windows.count };
            for split in splits {
                let candidate = Plan { windows, chunks, split };
                let cost = makespan(&task_costs(&candidate, max, points), threads);
                if best.is_none_or(|(b, _)| cost < b) {
                    best = Some((cost, candidate));
                }
            }
        }
    }
    // `candidates` is never empty.
    best.map(|(_, p)| p).unwrap_or(Plan { windows: Windows::for_max(2, max), chunks: 1, split: 0 })
}

fn task_costs(plan: &Plan, max: &[u64; 3], points: usize) -> Vec<f64> {
    let windows = plan.windows;
    // The top window holds small digits only: cheap to reduce, its buckets
    // replicated so that batches stay full (folding the copies costs an
    // addition a slot), projective where even the copies are too few.
    let top_buckets = windows.top_digit_max(max) as usize;
    plan.tasks()
        .iter()
        .map(|task| {
            let share = points as f64 / task.of as f64;
            let cost = if task.window + 1 == windows.count {
                let replicas = replicas(top_buckets, points / task.of);
                let add = if accumulates_affinely(top_buckets * replicas) { 1.0 } else { 2.0 };
                let fold = ((replicas - 1) * top_buckets) as f64;
                share * add + fold + REDUCE_COST * top_buckets as f64
            } else {
                share + REDUCE_COST * windows.buckets() as f64
            };
            // Chunk results are combined serially: a little overhead per task.
            cost + 8.0
        })
        .collect()
}

/// Greedy longest-task-first schedule, the way work stealing ends up.
fn makespan(costs: &[f64], threads: usize) -> f64 {
    let mut sorted = costs.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut loads = vec![0.0f64; threads];
    for cost in sorted {
        if let Some(least) = loads.iter_mut().min_by(|a, b| a.total_cmp(b)) {
            *least += cost;
        }
    }
    loads.into_iter().fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_grow_with_size_and_cover_the_threads() {
        let max = [u64::MAX, u64::MAX >> 1, 0];
        let small = plan(2 * 64, &max, 2, None);
        let large = plan(2 << 20, &max, 2, None);
        assert!(small.windows.c < large.windows.c);
        assert!(large.windows.c >= 13);
        let wide = plan(2 << 20, &max, 64, None);
        assert!(wide.tasks().len() >= 32);
        assert_eq!(plan(1000, &max, 2, Some(7)).windows.c, 7);
        assert!(plan(2, &[1, 0, 0], 2, None).windows.count >= 1);
    }

    #[test]
    fn tasks_cover_every_window_chunk_once() {
        let max = [u64::MAX, u64::MAX >> 1, 0];
        for threads in [1, 2, 3, 8, 64] {
            for points in [2, 5000, 2 << 16, 2 << 20] {
                let p = plan(points, &max, threads, None);
                let tasks = p.tasks();
                for window in 0..p.windows.count {
                    let mine: Vec<&Task> = tasks.iter().filter(|t| t.window == window).collect();
                    assert!(!mine.is_empty());
                    assert!(mine.iter().all(|t| t.of == mine.len()));
                    let mut chunks: Vec<usize> = mine.iter().map(|t| t.chunk).collect();
                    chunks.sort();
                    assert_eq!(chunks, (0..mine.len()).collect::<Vec<_>>(), "{p:?}");
                }
            }
        }
        // 10 windows of 13 bits on 3 threads: splitting a few of them evens the loads.
        let odd = plan(2 << 16, &max, 3, Some(13));
        assert_eq!(odd.windows.count, 10);
        assert!(odd.tasks().len() > 10, "{odd:?}");
    }
}
