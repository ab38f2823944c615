//! Sixteen lanes with AVX-512F (native 32-bit rotations, two-source permutes
//! for the transpose).
// The AVX-512 intrinsics are stable from Rust 1.89; the crate's declared
// rust-version predates that.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::{Group, Lanes, MAX_LANES};

#[derive(Clone, Copy)]
pub(crate) struct Avx512(__m512i);

/// Permute indices for the transpose step at distance `d`: row `i` keeps its
/// columns without bit `d` and takes row `i + d`'s, and vice versa, which
/// swaps bit `d` of the row index with bit `d` of the column index.
const fn swap_indices(d: usize, high: bool) -> [i32; 16] {
    let mut idx = [0i32; 16];
    let mut c = 0;
    while c < 16 {
        idx[c] = match (c & d == 0, high) {
            (true, false) => c as i32,
            (false, false) => (16 + c - d) as i32,
            (true, true) => (c + d) as i32,
            (false, true) => (16 + c) as i32,
        };
        c += 1;
    }
    idx
}

const SWAP: [[[i32; 16]; 2]; 4] = [
    [swap_indices(8, false), swap_indices(8, true)],
    [swap_indices(4, false), swap_indices(4, true)],
    [swap_indices(2, false), swap_indices(2, true)],
    [swap_indices(1, false), swap_indices(1, true)],
];

/// Transpose the first `rows` rows of a 16x16 u32 matrix (rows past `rows`
/// are don't-care inputs and outputs).
#[inline(always)]
unsafe fn transpose16(r: &mut [__m512i; 16]) {
    for (level, d) in [8usize, 4, 2, 1].into_iter().enumerate() {
        let lo = _mm512_loadu_si512(SWAP[level][0].as_ptr() as *const _);
        let hi = _mm512_loadu_si512(SWAP[level][1].as_ptr() as *const _);
        for i in 0..16 {
            if i & d == 0 {
                let (a, b) = (r[i], r[i + d]);
                r[i] = _mm512_permutex2var_epi32(a, lo, b);
                r[i + d] = _mm512_permutex2var_epi32(a, hi, b);
            }
        }
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
        rows.map(Avx512)
    }
    #[inline(always)]
    unsafe fn store_digests(cv: &[Self; 8], out: *mut [u8; 32], n: usize) {
        let mut rows = [_mm512_setzero_si512(); 16];
        for (row, word) in rows.iter_mut().zip(cv) {
            *row = word.0;
        }
        transpose16(&mut rows);
        // Row `lane` now holds that lane's eight digest words in its low half.
        for (lane, row) in rows.iter().enumerate().take(n) {
            _mm256_storeu_si256(out.add(lane) as *mut __m256i, _mm512_castsi512_si256(*row));
        }
    }
}

/// # Safety
/// The processor must have AVX-512F; otherwise as [`super::hash_group`].
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn hash_group(group: &Group<'_>, out: *mut [u8; 32]) {
    super::hash_group::<Avx512>(group, out)
}
