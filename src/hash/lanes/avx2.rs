//! Eight lanes with AVX2 (byte shuffles for the 16- and 8-bit rotations).

use std::arch::x86_64::*;

use super::{Group, Lanes, MAX_LANES};

#[derive(Clone, Copy)]
pub(crate) struct Avx2(__m256i);

#[inline(always)]
unsafe fn shuffle_mask(rot16: bool) -> __m256i {
    if rot16 {
        _mm256_setr_epi8(
            2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
        )
    } else {
        _mm256_setr_epi8(
            1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, 1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
        )
    }
}

/// Transpose eight rows of eight u32 (the standard unpack/permute network).
#[inline(always)]
unsafe fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256(u0, u4, 0x20),
        _mm256_permute2x128_si256(u1, u5, 0x20),
        _mm256_permute2x128_si256(u2, u6, 0x20),
        _mm256_permute2x128_si256(u3, u7, 0x20),
        _mm256_permute2x128_si256(u0, u4, 0x31),
        _mm256_permute2x128_si256(u1, u5, 0x31),
        _mm256_permute2x128_si256(u2, u6, 0x31),
        _mm256_permute2x128_si256(u3, u7, 0x31),
    ]
}

// SAFETY: only reached through `hash_group`, compiled with avx2 and called
// after runtime detection.
unsafe impl Lanes for Avx2 {
    const W: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        Avx2(_mm256_set1_epi32(x as i32))
    }
    #[inline(always)]
    unsafe fn load(src: *const u32) -> Self {
        Avx2(_mm256_loadu_si256(src as *const __m256i))
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u32) {
        _mm256_storeu_si256(dst as *mut __m256i, self.0)
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        Avx2(_mm256_add_epi32(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn xor(self, other: Self) -> Self {
        Avx2(_mm256_xor_si256(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn ror16(self) -> Self {
        Avx2(_mm256_shuffle_epi8(self.0, shuffle_mask(true)))
    }
    #[inline(always)]
    unsafe fn ror12(self) -> Self {
        Avx2(_mm256_or_si256(_mm256_srli_epi32(self.0, 12), _mm256_slli_epi32(self.0, 20)))
    }
    #[inline(always)]
    unsafe fn ror8(self) -> Self {
        Avx2(_mm256_shuffle_epi8(self.0, shuffle_mask(false)))
    }
    #[inline(always)]
    unsafe fn ror7(self) -> Self {
        Avx2(_mm256_or_si256(_mm256_srli_epi32(self.0, 7), _mm256_slli_epi32(self.0, 25)))
    }
    #[inline(always)]
    unsafe fn load_block(blocks: &[*const u8; MAX_LANES]) -> [Self; 16] {
        let mut m = [Avx2(_mm256_setzero_si256()); 16];
        for half in 0..2 {
            let mut rows = [_mm256_setzero_si256(); 8];
            for (lane, row) in rows.iter_mut().enumerate() {
                *row = _mm256_loadu_si256(blocks[lane].add(32 * half) as *const __m256i);
            }
            for (i, column) in transpose8(rows).into_iter().enumerate() {
                m[8 * half + i] = Avx2(column);
            }
        }
        m
    }
    #[inline(always)]
    unsafe fn store_digests(cv: &[Self; 8], out: *mut [u8; 32], n: usize) {
        let rows = transpose8([cv[0].0, cv[1].0, cv[2].0, cv[3].0, cv[4].0, cv[5].0, cv[6].0, cv[7].0]);
        for (lane, row) in rows.iter().enumerate().take(n) {
            _mm256_storeu_si256(out.add(lane) as *mut __m256i, *row);
        }
    }
}

/// # Safety
/// The processor must have AVX2; otherwise as [`super::hash_group`].
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn hash_group(group: &Group<'_>, out: *mut [u8; 32]) {
    super::hash_group::<Avx2>(group, out)
}
