//! Four lanes with SSE4.1 (byte shuffles for the 16- and 8-bit rotations).

use std::arch::x86_64::*;

use super::{Group, Lanes, MAX_LANES};

#[derive(Clone, Copy)]
pub(crate) struct Sse41(__m128i);

// SAFETY: only reached through `hash_group`, compiled with sse4.1 and called
// after runtime detection.
unsafe impl Lanes for Sse41 {
    const W: usize = 4;
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        Sse41(_mm_set1_epi32(x as i32))
    }
    #[inline(always)]
    unsafe fn load(src: *const u32) -> Self {
        Sse41(_mm_loadu_si128(src as *const __m128i))
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u32) {
        _mm_storeu_si128(dst as *mut __m128i, self.0)
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        Sse41(_mm_add_epi32(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn xor(self, other: Self) -> Self {
        Sse41(_mm_xor_si128(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn ror16(self) -> Self {
        Sse41(_mm_shuffle_epi8(self.0, _mm_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13)))
    }
    #[inline(always)]
    unsafe fn ror12(self) -> Self {
        Sse41(_mm_or_si128(_mm_srli_epi32(self.0, 12), _mm_slli_epi32(self.0, 20)))
    }
    #[inline(always)]
    unsafe fn ror8(self) -> Self {
        Sse41(_mm_shuffle_epi8(self.0, _mm_setr_epi8(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12)))
    }
    #[inline(always)]
    unsafe fn ror7(self) -> Self {
        Sse41(_mm_or_si128(_mm_srli_epi32(self.0, 7), _mm_slli_epi32(self.0, 25)))
    }
    #[inline(always)]
    unsafe fn load_block(blocks: &[*const u8; MAX_LANES]) -> [Self; 16] {
        let mut m = [Sse41(_mm_setzero_si128()); 16];
        for quarter in 0..4 {
            let row = |lane: usize| _mm_loadu_si128(blocks[lane].add(16 * quarter) as *const __m128i);
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            let t0 = _mm_unpacklo_epi32(r0, r1);
            let t1 = _mm_unpackhi_epi32(r0, r1);
            let t2 = _mm_unpacklo_epi32(r2, r3);
            let t3 = _mm_unpackhi_epi32(r2, r3);
            m[4 * quarter] = Sse41(_mm_unpacklo_epi64(t0, t2));
            m[4 * quarter + 1] = Sse41(_mm_unpackhi_epi64(t0, t2));
            m[4 * quarter + 2] = Sse41(_mm_unpacklo_epi64(t1, t3));
            m[4 * quarter + 3] = Sse41(_mm_unpackhi_epi64(t1, t3));
        }
        m
    }
}

/// # Safety
/// The processor must have SSE4.1; otherwise as [`super::hash_group`].
#[target_feature(enable = "sse4.1")]
pub(crate) unsafe fn hash_group(group: &Group<'_>, out: *mut [u8; 32]) {
    super::hash_group::<Sse41>(group, out)
}
