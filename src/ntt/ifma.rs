//! Eight NTT butterflies at once on AVX-512 IFMA lanes (the field code of
//! `crypto::ifma`, shared with the MSM and Poseidon): arkworks' Fr values are
//! already in the lanes' Montgomery form (R = 2^256), so moving eight of
//! them in and out is a transpose of their 64-bit words, and every value
//! written back is canonical, bit-identical to the scalar butterflies.

use std::arch::x86_64::*;

use ark_bn254::Fr;

use crate::crypto::ifma::{supported, Fr8};

/// Decimation-in-frequency butterflies (a, b) → (a + b, (a − b)·w) on
/// lo[j], hi[j], w = roots[(first + j)·stride], for j below the largest
/// multiple of eight; returns how many were done (the caller does the rest).
pub fn dif(lo: &mut [Fr], hi: &mut [Fr], roots: &[Fr], first: usize, stride: usize) -> usize {
    butterflies::<true>(lo, hi, roots, first, stride)
}

/// Decimation-in-time butterflies (a, b) → (a + w·b, a − w·b), as [`dif`].
pub fn dit(lo: &mut [Fr], hi: &mut [Fr], roots: &[Fr], first: usize, stride: usize) -> usize {
    butterflies::<false>(lo, hi, roots, first, stride)
}

fn butterflies<const DIF: bool>(lo: &mut [Fr], hi: &mut [Fr], roots: &[Fr], first: usize, stride: usize) -> usize {
    if !supported() {
        return 0;
    }
    let done = lo.len().min(hi.len()) / 8 * 8;
    check_roots(roots, first, stride, done);
    // SAFETY: the CPU has the features (checked above); every index read or
    // written is below `done` in lo and hi, and roots' below its length (checked).
    unsafe { run::<DIF>(lo, hi, roots, first, stride, done) };
    done
}

/// The twiddle gathers read roots[(first + j)·stride] for j < done.
fn check_roots(roots: &[Fr], first: usize, stride: usize, done: usize) {
    if done > 0 {
        assert!((first + done - 1) * stride < roots.len(), "twiddle index past the roots table");
    }
}

#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn run<const DIF: bool>(lo: &mut [Fr], hi: &mut [Fr], roots: &[Fr], first: usize, stride: usize, done: usize) {
    for j in (0..done).step_by(8) {
        let a = load(lo.as_ptr().add(j));
        let b = load(hi.as_ptr().add(j));
        let w = twiddles(roots, first + j, stride);
        let (x, y) = if DIF {
            (a.add_canonical(&b), a.sub_canonical(&b).mul(&w).canonical())
        } else {
            let t = b.mul(&w).canonical();
            (a.add_canonical(&t), a.sub_canonical(&t))
        };
        store(lo.as_mut_ptr().add(j), x);
        store(hi.as_mut_ptr().add(j), y);
    }
}

/// Word k of elements 0..3 then 4..7 of a pair of loads, and back: the
/// 2×2 block transpose used both ways (it is its own inverse).
const PAIR_LO: [i64; 8] = [0, 4, 8, 12, 1, 5, 9, 13];
const PAIR_HI: [i64; 8] = [2, 6, 10, 14, 3, 7, 11, 15];
const HALF_LO: [i64; 8] = [0, 1, 2, 3, 8, 9, 10, 11];
const HALF_HI: [i64; 8] = [4, 5, 6, 7, 12, 13, 14, 15];

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn index(i: [i64; 8]) -> __m512i {
    _mm512_loadu_si512(i.as_ptr().cast())
}

/// Eight consecutive Fr (4 words each) as lanes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load(at: *const Fr) -> Fr8 {
    let p = at.cast::<i64>();
    let z: [__m512i; 4] = std::array::from_fn(|i| _mm512_loadu_si512(p.add(8 * i).cast()));
    let (pair_lo, pair_hi) = (index(PAIR_LO), index(PAIR_HI));
    // u[0]: words 0, 1 of elements 0..3; u[1]: words 2, 3 of 0..3; u[2], u[3]: the same of 4..7.
    let u = [
        _mm512_permutex2var_epi64(z[0], pair_lo, z[1]),
        _mm512_permutex2var_epi64(z[0], pair_hi, z[1]),
        _mm512_permutex2var_epi64(z[2], pair_lo, z[3]),
        _mm512_permutex2var_epi64(z[2], pair_hi, z[3]),
    ];
    let (half_lo, half_hi) = (index(HALF_LO), index(HALF_HI));
    Fr8::from_words([
        _mm512_permutex2var_epi64(u[0], half_lo, u[2]),
        _mm512_permutex2var_epi64(u[0], half_hi, u[2]),
        _mm512_permutex2var_epi64(u[1], half_lo, u[3]),
        _mm512_permutex2var_epi64(u[1], half_hi, u[3]),
    ])
}

/// Canonical lanes back to eight consecutive Fr.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store(at: *mut Fr, value: Fr8) {
    let w = value.to_words();
    let (half_lo, half_hi) = (index(HALF_LO), index(HALF_HI));
    let u = [
        _mm512_permutex2var_epi64(w[0], half_lo, w[1]),
        _mm512_permutex2var_epi64(w[2], half_lo, w[3]),
        _mm512_permutex2var_epi64(w[0], half_hi, w[1]),
        _mm512_permutex2var_epi64(w[2], half_hi, w[3]),
    ];
    let (pair_lo, pair_hi) = (index(PAIR_LO), index(PAIR_HI));
    let z = [
        _mm512_permutex2var_epi64(u[0], pair_lo, u[1]),
        _mm512_permutex2var_epi64(u[0], pair_hi, u[1]),
        _mm512_permutex2var_epi64(u[2], pair_lo, u[3]),
        _mm512_permutex2var_epi64(u[2], pair_hi, u[3]),
    ];
    let p = at.cast::<i64>();
    for (i, zi) in z.iter().enumerate() {
        _mm512_storeu_si512(p.add(8 * i).cast(), *zi);
    }
}

/// roots[(from + i)·stride] for i in 0..8, as lanes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn twiddles(roots: &[Fr], from: usize, stride: usize) -> Fr8 {
    if stride == 1 {
        return load(roots.as_ptr().add(from));
    }
    let base = roots.as_ptr().cast::<i64>();
    let step = (4 * stride) as i64;
    let first = (4 * from * stride) as i64;
    let offsets = _mm512_add_epi64(
        _mm512_set1_epi64(first),
        _mm512_mullo_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi64(step)),
    );
    Fr8::from_words(std::array::from_fn(|k| {
        _mm512_i64gather_epi64::<8>(_mm512_add_epi64(offsets, _mm512_set1_epi64(k as i64)), base)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{Field, PrimeField, UniformRand, Zero};
    use rand::SeedableRng;

    fn scalar(lo: &mut [Fr], hi: &mut [Fr], roots: &[Fr], first: usize, stride: usize, dif: bool) {
        for (j, (a, b)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
            let w = roots[(first + j) * stride];
            let (u, v) = (*a, *b);
            (*a, *b) = if dif { (u + v, (u - v) * w) } else { (u + v * w, u - v * w) };
        }
    }

    /// Both kinds, strides 1 and 3, edge values (0, 1, p − 1) among random
    /// ones, lengths with a scalar tail: equal to the scalar butterflies.
    #[test]
    fn the_lanes_match_the_scalar_butterflies() {
        if !supported() {
            eprintln!("no AVX-512 IFMA here: the lanes are not exercised");
            return;
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(19);
        let roots: Vec<Fr> = (0..200).map(|_| Fr::rand(&mut rng)).collect();
        for dif in [true, false] {
            for (len, first, stride) in [(8, 0, 1), (21, 5, 3), (64, 100, 1), (16, 2, 7)] {
                let mut lo: Vec<Fr> = (0..len).map(|_| Fr::rand(&mut rng)).collect();
                let mut hi: Vec<Fr> = (0..len).map(|_| Fr::rand(&mut rng)).collect();
                lo[0] = Fr::zero();
                hi[1] = Fr::ONE;
                lo[2] = -Fr::ONE;
                hi[2] = -Fr::ONE;
                hi[3] = Fr::zero();
                let (mut lo_ref, mut hi_ref) = (lo.clone(), hi.clone());
                scalar(&mut lo_ref, &mut hi_ref, &roots, first, stride, dif);
                let done = match dif {
                    true => super::dif(&mut lo, &mut hi, &roots, first, stride),
                    false => dit(&mut lo, &mut hi, &roots, first, stride),
                };
                assert_eq!(done, len / 8 * 8);
                assert_eq!(&lo[..done], &lo_ref[..done], "lo, dif {dif}, len {len}");
                assert_eq!(&hi[..done], &hi_ref[..done], "hi, dif {dif}, len {len}");
                // The lanes' output is canonical: arkworks' equality compares limbs.
                assert!(lo[..done].iter().chain(&hi[..done]).all(|x| x.0 < Fr::MODULUS));
            }
        }
    }
}
