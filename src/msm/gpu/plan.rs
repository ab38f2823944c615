//! Sizing: window width, batch size under the adapter's limits, scan and
//! reduction geometry, and 2D dispatch shapes.

use super::group::Group;

/// Items each accumulation thread sums (the segmented-reduction slice).
pub const ACC_CHUNK: u32 = 32;
/// Threads per workgroup in every MSM kernel but the scan's single group.
pub const WORKGROUP: u32 = 64;
/// Threads of the one workgroup that scans the chunk sums.
pub const SCAN_GROUP: u32 = 256;
/// Most chunk sums the one-workgroup scan handles (16 per thread).
const MAX_SCAN_CHUNKS: u32 = SCAN_GROUP * 16;
/// Aim for about this many threads when summing window segments.
const SEGMENT_THREADS: u32 = 8192;
/// The most points one batch may hold, whatever the adapter allows.
pub const MAX_BATCH_POINTS: u64 = 1 << 24;

/// Window width for a batch of `n` points: wide enough that bucket work
/// (2^c per window) stays below the point work (n per window).
pub fn window_bits_for(n: usize) -> u32 {
    let log = usize::BITS - n.max(1).leading_zeros() - 1;
    log.saturating_sub(3).clamp(2, 16)
}

/// The geometry of one batch of an MSM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Plan {
    pub n: u32,
    pub window_bits: u32,
    pub windows: u32,
    pub buckets: u32,
    pub total_buckets: u32,
    pub scan_chunk: u32,
    pub scan_chunks: u32,
    /// Upper bound on (point, window) entries: n * windows.
    pub max_entries: u32,
    pub seg_len: u32,
    pub segs: u32,
}

impl Plan {
    pub fn new(n: u32, window_bits: u32) -> Plan {
        // Scalars are below 2^254; signed digits need windows * c >= 255 bits.
        let windows = 255u32.div_ceil(window_bits);
        let buckets = 1u32 << (window_bits - 1);
        let total_buckets = windows * buckets;
        let scan_chunk = total_buckets.div_ceil(MAX_SCAN_CHUNKS).max(1);
        let scan_chunks = total_buckets.div_ceil(scan_chunk);
        let seg_len = (total_buckets / SEGMENT_THREADS).clamp(1, buckets);
        let segs = buckets.div_ceil(seg_len);
        Plan {
            n,
            window_bits,
            windows,
            buckets,
            total_buckets,
            scan_chunk,
            scan_chunks,
            max_entries: n.saturating_mul(windows),
            seg_len,
            segs,
        }
    }

    pub fn segment_count(&self) -> u32 {
        self.windows * self.segs
    }

    /// Input lengths of the successive levels of a segmented reduction over
    /// `len` items: each level leaves one continuation per slice.
    pub fn levels(len: u32) -> Vec<u32> {
        let mut out = vec![len.max(1)];
        let mut cur = len.max(1);
        while cur > ACC_CHUNK {
            cur = cur.div_ceil(ACC_CHUNK);
            out.push(cur);
        }
        out
    }

    /// Continuation slots the two ping-pong buffers need (odd and even levels).
    pub fn cont_capacity(&self) -> (u32, u32) {
        let mut odd = 1;
        let mut even = 1;
        for list in [self.max_entries.max(1), self.segment_count()] {
            for (level, len) in Plan::levels(list).iter().enumerate() {
                let outputs = len.div_ceil(ACC_CHUNK);
                if level.is_multiple_of(2) {
                    odd = odd.max(outputs);
                } else {
                    even = even.max(outputs);
                }
            }
        }
        (odd, even)
    }

    /// The largest buffer this plan binds over `group`, in bytes (bases excluded).
    #[cfg(test)]
    pub fn largest_binding(&self, group: Group) -> u64 {
        let (odd, _) = self.cont_capacity();
        let point_bytes = group.point_bytes();
        [
            self.n as u64 * 32,
            self.max_entries as u64 * 4,
            self.total_buckets as u64 * point_bytes,
            odd as u64 * point_bytes,
            self.segment_count() as u64 * point_bytes,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
}

/// The most points of `group` one batch may hold with `window_bits` under a
/// binding limit of `limit` bytes (every per-point buffer must fit).
pub fn max_batch(limit: u64, window_bits: u32, group: Group) -> usize {
    let plan = Plan::new(1, window_bits);
    let windows = plan.windows as u64;
    let base_bytes = group.base_bytes();
    let per_point = [base_bytes, 32, 4 * windows, (windows * group.point_bytes()).div_ceil(ACC_CHUNK as u64)]
        .into_iter()
        .max()
        .unwrap_or(base_bytes);
    let by_limit = limit / per_point;
    // Kernels index words with u32: 2^24 points keep every index below 2^31,
    // and entries keep bit 31 free for the sign.
    by_limit.min(MAX_BATCH_POINTS).min((u32::MAX / 2) as u64 / windows) as usize
}

/// Workgroup counts (x, y) covering `threads` threads of `group` each, with
/// x kept within `max_per_dim`.
pub fn dispatch_shape(threads: u32, group: u32, max_per_dim: u32) -> (u32, u32) {
    let groups = threads.div_ceil(group).max(1);
    let x = groups.min(max_per_dim.max(1));
    (x, groups.div_ceil(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_signed_scalars() {
        for c in 2..=16 {
            let plan = Plan::new(100, c);
            assert!(plan.windows * c >= 255);
            assert!((plan.windows - 1) * c < 255);
            assert_eq!(plan.buckets, 1 << (c - 1));
            assert!(plan.scan_chunks <= MAX_SCAN_CHUNKS);
            assert!(plan.scan_chunk * plan.scan_chunks >= plan.total_buckets);
            assert!(plan.seg_len * plan.segs >= plan.buckets);
        }
    }

    #[test]
    fn levels_shrink_to_one_slice() {
        assert_eq!(Plan::levels(1), vec![1]);
        assert_eq!(Plan::levels(32), vec![32]);
        assert_eq!(Plan::levels(33), vec![33, 2]);
        assert_eq!(Plan::levels(32 * 32 + 1), vec![1025, 33, 2]);
    }

    #[test]
    fn dispatch_shape_respects_the_per_dimension_limit() {
        assert_eq!(dispatch_shape(1, 64, 65535), (1, 1));
        assert_eq!(dispatch_shape(65, 64, 65535), (2, 1));
        let (x, y) = dispatch_shape(u32::MAX, 64, 65535);
        assert!(x <= 65535 && y <= 65535 && x as u64 * y as u64 * 64 >= u32::MAX as u64);
    }

    #[test]
    fn batches_fit_the_binding_limit() {
        let limit = 128 << 20;
        for group in [Group::G1, Group::G2] {
            for c in [2, 8, 16] {
                let n = max_batch(limit, c, group);
                let largest = Plan::new(n as u32, c).largest_binding(group);
                assert!(largest <= limit.max(Plan::new(1, c).largest_binding(group)), "{group:?} c = {c}");
                assert!(n as u64 * group.base_bytes() <= limit, "{group:?} c = {c}");
            }
        }
    }
}
