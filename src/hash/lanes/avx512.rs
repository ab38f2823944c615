//! Sixteen lanes with AVX-512F (native 32-bit rotations; in-lane unpacks and
//! 128-bit lane shuffles for the transposes).
// The AVX-512 intrinsics are stable from Rust 1.89; the crate's declared
// rust-version predates that.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::{Group, Lanes, MAX_LANES};

#[derive(Clone, Copy)]
pub(crate) struct Avx512(__m512i);

/// Four rows `a, b, c, d` interleaved within each 128-bit lane: output `j`
/// holds, in lane `k`, word `4k + j` of `a`, `b`, `c` and `d` (the first two
/// levels of a transpose, all in-lane).
#[inline(always)]
unsafe fn interleave4([a, b, c, d]: [__m512i; 4]) -> [__m512i; 4] {
    let (ab_lo, ab_hi) = (_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    let (cd_lo, cd_hi) = (_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    [
        _mm512_unpacklo_epi64(ab_lo, cd_lo),
        _mm512_unpackhi_epi64(ab_lo, cd_lo),
        _mm512_unpacklo_epi64(ab_hi, cd_hi),
        _mm512_unpackhi_epi64(ab_hi, cd_hi),
    ]
}

/// Transpose a 16x16 u32 matrix: row `l` (lane `l`'s block) becomes column
/// `l` (word `w` of every lane in row `w`). Two levels of in-lane unpacks
/// gather four rows' words per 128-bit lane, then two levels of 128-bit lane
/// shuffles assemble the columns (half the cross-lane work of a permute
/// network).
#[inline(always)]
unsafe fn transpose16(r: &mut [__m512i; 16]) {
    // After the unpacks, `q[4 * g + j]` holds, in its 128-bit lane `k`,
    // word `4k + j` of rows `4g..4g + 4`.
    let mut q = [_mm512_setzero_si512(); 16];
    for g in 0..4 {
        let rows = [r[4 * g], r[4 * g + 1], r[4 * g + 2], r[4 * g + 3]];
        q[4 * g..4 * g + 4].copy_from_slice(&interleave4(rows));
    }
    const EVEN: i32 = 0b10_00_10_00;
    const ODD: i32 = 0b11_01_11_01;
    for j in 0..4 {
        let (a, e, i, m) = (q[j], q[4 + j], q[8 + j], q[12 + j]);
        let (s0, s1) = (_mm512_shuffle_i32x4::<EVEN>(a, e), _mm512_shuffle_i32x4::<ODD>(a, e));
        let (s2, s3) = (_mm512_shuffle_i32x4::<EVEN>(i, m), _mm512_shuffle_i32x4::<ODD>(i, m));
        r[j] = _mm512_shuffle_i32x4::<EVEN>(s0, s2);
        r[4 + j] = _mm512_shuffle_i32x4::<EVEN>(s1, s3);
        r[8 + j] = _mm512_shuffle_i32x4::<ODD>(s0, s2);
        r[12 + j] = _mm512_shuffle_i32x4::<ODD>(s1, s3);
    }
}

// SAFETY: only reached through `hash_group`, compiled with avx512f and called
// after runtime detection.
unsafe impl Lanes for Avx512 {
    const W: usize = 16;
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        Avx512(_mm512_set1_epi32(x as i32))
    }
    #[inline(always)]
    unsafe fn load(src: *const u32) -> Self {
        Avx512(_mm512_loadu_si512(src as *const _))
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u32) {
        _mm512_storeu_si512(dst as *mut _, self.0)
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        Avx512(_mm512_add_epi32(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn xor(self, other: Self) -> Self {
        Avx512(_mm512_xor_si512(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn ror16(self) -> Self {
        Avx512(_mm512_ror_epi32::<16>(self.0))
    }
    #[inline(always)]
    unsafe fn ror12(self) -> Self {
        Avx512(_mm512_ror_epi32::<12>(self.0))
    }
    #[inline(always)]
    unsafe fn ror8(self) -> Self {
        Avx512(_mm512_ror_epi32::<8>(self.0))
    }
    #[inline(always)]
    unsafe fn ror7(self) -> Self {
        Avx512(_mm512_ror_epi32::<7>(self.0))
    }
    #[inline(always)]
    unsafe fn load_block(blocks: &[*const u8; MAX_LANES]) -> [Self; 16] {
        let mut rows = [_mm512_setzero_si512(); 16];
        for (lane, row) in rows.iter_mut().enumerate() {
            *row = _mm512_loadu_si512(blocks[lane] as *const _);
        }
        transpose16(&mut rows);
        let mut m = [Avx512(_mm512_setzero_si512()); 16];
        for (word, row) in m.iter_mut().zip(rows) {
            *word = Avx512(row);
        }
        m
    }
    #[inline(always)]
    unsafe fn store_digests(cv: &[Self; 8], out: *mut [u8; 32], n: usize) {
        // The transpose's unpacks leave, in 128-bit lane `k` of `q[j]` and
        // `q[4 + j]`, words 0..4 and 4..8 of lane `4k + j`'s digest; one
        // two-source permute per pair of digests joins the halves.
        let low = interleave4([cv[0].0, cv[1].0, cv[2].0, cv[3].0]);
        let high = interleave4([cv[4].0, cv[5].0, cv[6].0, cv[7].0]);
        let q = [low[0], low[1], low[2], low[3], high[0], high[1], high[2], high[3]];
        // 64-bit element indices: lanes 0 and 1 (low), then lanes 2 and 3.
        let lanes01 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
        let lanes23 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
        for j in 0..4 {
            let (lo, hi) = (q[j], q[4 + j]);
            let d01 = _mm512_permutex2var_epi64(lo, lanes01, hi);
            let d23 = _mm512_permutex2var_epi64(lo, lanes23, hi);
            for (k, half) in [
                (0, _mm512_castsi512_si256(d01)),
                (1, _mm512_extracti64x4_epi64::<1>(d01)),
                (2, _mm512_castsi512_si256(d23)),
                (3, _mm512_extracti64x4_epi64::<1>(d23)),
            ] {
                let lane = 4 * k + j;
                if lane < n {
                    _mm256_storeu_si256(out.add(lane) as *mut __m256i, half);
                }
            }
        }
    }
}

/// # Safety
/// The processor must have AVX-512F; otherwise as [`super::hash_group`].
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn hash_group(group: &Group<'_>, out: *mut [u8; 32]) {
    super::hash_group::<Avx512>(group, out)
}
