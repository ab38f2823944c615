//! Window size and work split, from a cost model in units of one batched
//! affine addition: a task adds its share of the points into 2^(c-1)
//! buckets, then reduces the buckets (~5 units each: a mixed and a full
//! projective addition). Tasks are (window, chunk of points) pairs spread
//! over the pool's threads.

use super::digits::Windows;

/// One bucket's share of the final reduction, in batched-addition units.
const REDUCE_COST: f64 = 5.0;
/// Largest window: 2^15 buckets of G2 points (4 MiB) already exceed L2.
const MAX_C: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub windows: Windows,
    /// Number of point chunks per window (each chunk has its own buckets).
    pub chunks: usize,
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
            let cost = makespan(&task_costs(windows, max, points, chunks), threads);
            if best.is_none_or(|(b, _)| cost < b) {
                best = Some((cost, Plan { windows, chunks }));
            }
        }
    }
    // `candidates` is never empty.
    best.map(|(_, p)| p).unwrap_or(Plan { windows: Windows::for_max(2, max), chunks: 1 })
}

fn task_costs(windows: Windows, max: &[u64; 3], points: usize, chunks: usize) -> Vec<f64> {
    let per_chunk = points as f64 / chunks as f64;
    let full = per_chunk + REDUCE_COST * windows.buckets() as f64;
    // The top window holds small digits only: cheap to reduce, but with few
    // buckets its points collide and fall back to projective additions.
    let top_buckets = windows.top_digit_max(max) as f64;
    let top_add = if top_buckets < 64.0 { 2.0 } else { 1.0 };
    let top = per_chunk * top_add + REDUCE_COST * top_buckets;
    let mut costs = Vec::with_capacity(windows.count as usize * chunks);
    for w in 0..windows.count {
        let cost = if w + 1 == windows.count { top } else { full };
        // Chunk results are combined serially: a little overhead per task.
        costs.extend(std::iter::repeat_n(cost + 8.0, chunks));
    }
    costs
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
        assert!(wide.windows.count as usize * wide.chunks >= 32);
        assert_eq!(plan(1000, &max, 2, Some(7)).windows.c, 7);
        assert!(plan(2, &[1, 0, 0], 2, None).windows.count >= 1);
    }
}
