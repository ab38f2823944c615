//! The batched affine addition on eight lanes of AVX-512 IFMA, for G1 (Fq)
//! and G2 (Fq2): addition k goes to lane k % 8, so the lanes are eight
//! independent Montgomery-trick chains sharing one scalar inversion of
//! their totals. Same contract and bit-identical results as the scalar
//! `AffineBatch` loop (outputs canonical).

use std::arch::x86_64::*;

use ark_bn254::{Fq, Fq2};
use ark_ec::short_weierstrass::{Affine, SWCurveConfig};
use ark_ff::Field;

use super::ifma_fq2::{invert_lanes2, Fq2x8};
use crate::crypto::ifma::{invert_lanes, Fq8, Lanes};

/// Whether this CPU runs the IFMA path (detected once; `MsmTuning::scalar_only`
/// turns it off).
pub fn available() -> bool {
    crate::crypto::ifma::supported() && !crate::msm::MsmTuning::current().scalar_only
}

/// A base field the vector batch handles: its elements are made of
/// `PARTS` Fq parts, gathered one `Fq8` per part.
pub trait LaneField: Field {
    type Vector: LaneVector;
    /// The addresses of this element's parts' limbs.
    fn part_addresses(&self) -> [*const u64; 2];
}

impl LaneField for Fq {
    type Vector = Fq8;
    fn part_addresses(&self) -> [*const u64; 2] {
        [self.0 .0.as_ptr(); 2]
    }
}

impl LaneField for Fq2 {
    type Vector = Fq2x8;
    fn part_addresses(&self) -> [*const u64; 2] {
        [self.c0.0 .0.as_ptr(), self.c1.0 .0.as_ptr()]
    }
}

/// Eight elements of a [`LaneField`]: the operations of the batch, with
/// `Fq8`'s lazy bounds (at most 2q per part between products, canonical out).
///
/// # Safety
/// Every method needs avx512f and avx512ifma.
pub trait LaneVector: Copy {
    const PARTS: usize;
    unsafe fn one() -> Self;
    unsafe fn from_parts(part: impl FnMut(usize) -> Fq8) -> Self;
    unsafe fn part(&self, index: usize) -> Fq8;
    unsafe fn mul(&self, b: &Self) -> Self;
    unsafe fn square(&self) -> Self;
    unsafe fn sub_lazy(&self, b: &Self) -> Self;
    /// ±self − b per lane, for canonical self and b.
    unsafe fn neg_if_sub_lazy(&self, negate: __mmask8, b: &Self) -> Self;
    unsafe fn sub2_canonical(&self, b: &Self, c: &Self) -> Self;
    unsafe fn sub_canonical(&self, b: &Self) -> Self;
    unsafe fn invert(&self) -> Self;
}

impl LaneVector for Fq8 {
    const PARTS: usize = 1;
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn one() -> Self {
        Fq8::one()
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn from_parts(mut part: impl FnMut(usize) -> Fq8) -> Self {
        part(0)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn part(&self, _index: usize) -> Fq8 {
        *self
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    unsafe fn mul(&self, b: &Self) -> Self {
        Fq8::mul(self, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    unsafe fn square(&self) -> Self {
        Fq8::mul(self, self)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub_lazy(&self, b: &Self) -> Self {
        Fq8::sub_lazy(self, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn neg_if_sub_lazy(&self, negate: __mmask8, b: &Self) -> Self {
        Fq8::raw_sub_lazy(&self.neg_if_raw(negate), b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub2_canonical(&self, b: &Self, c: &Self) -> Self {
        Fq8::sub2_canonical(self, b, c)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub_canonical(&self, b: &Self) -> Self {
        Fq8::sub_canonical(self, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn invert(&self) -> Self {
        invert_lanes(self)
    }
}

impl LaneVector for Fq2x8 {
    const PARTS: usize = 2;
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn one() -> Self {
        Fq2x8::one()
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn from_parts(mut part: impl FnMut(usize) -> Fq8) -> Self {
        Fq2x8 { c0: part(0), c1: part(1) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn part(&self, index: usize) -> Fq8 {
        [self.c0, self.c1][index]
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    unsafe fn mul(&self, b: &Self) -> Self {
        Fq2x8::mul(self, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    unsafe fn square(&self) -> Self {
        Fq2x8::square(self)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub_lazy(&self, b: &Self) -> Self {
        Fq2x8::sub_lazy(self, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn neg_if_sub_lazy(&self, negate: __mmask8, b: &Self) -> Self {
        Fq2x8::neg_if_sub_lazy(self, negate, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub2_canonical(&self, b: &Self, c: &Self) -> Self {
        Fq2x8::sub2_canonical(self, b, c)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub_canonical(&self, b: &Self) -> Self {
        Fq2x8::sub_canonical(self, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn invert(&self) -> Self {
        invert_lanes2(self)
    }
}

/// `buckets[indices[k]] += ±points[k]` for all k, under `AffineBatch`'s contract
/// (distinct buckets, finite, x-coordinates differ from their points').
/// `prefix` is scratch kept between calls.
///
/// # Safety
/// The CPU must support avx512f and avx512ifma, and every index must be in bounds.
#[target_feature(enable = "avx512f,avx512ifma")]
pub unsafe fn apply<P: SWCurveConfig<BaseField: LaneField>>(
    indices: &[u32],
    points: &[(&Affine<P>, bool)],
    buckets: &mut [Affine<P>],
    prefix: &mut Vec<Lanes>,
) {
    type V<P> = <<P as ark_ec::CurveConfig>::BaseField as LaneField>::Vector;
    let n = indices.len();
    if n == 0 {
        return;
    }
    let parts = V::<P>::PARTS;
    let stride = std::mem::size_of::<Affine<P>>() as i64;
    // Byte offsets of the coordinates' parts' limb arrays inside an Affine.
    let sample = &buckets[0];
    let base_of = |a: &Affine<P>| a as *const Affine<P> as i64;
    let offsets = |c: &P::BaseField| c.part_addresses().map(|at| at as i64 - base_of(sample));
    let (x_at, y_at) = (offsets(&sample.x), offsets(&sample.y));
    let bucket_base = buckets.as_mut_ptr() as *mut i64;
    // Points may live in different allocations (the bases and their
    // endomorphism images): the gathers address them as byte offsets from
    // the first point. Hardware gathers take plain addresses; under Rust's
    // strict-provenance model these reads are not derived from their own
    // allocation, which is sound on the hardware but not something Miri checks.
    let point_base = points[0].0 as *const Affine<P> as *const i64;

    // Per group of 8: byte offsets of each lane's bucket (from `bucket_base`)
    // and point (from `point_base`), and the negation mask. Lanes past the
    // end repeat the group's first addition and are never written back.
    let lanes_of = |group: usize| {
        let mut bucket_off = [0i64; 8];
        let mut point_off = [0i64; 8];
        let mut negate = 0u8;
        for lane in 0..8 {
            let k = if group * 8 + lane < n { group * 8 + lane } else { group * 8 };
            bucket_off[lane] = indices[k] as i64 * stride;
            point_off[lane] = base_of(points[k].0).wrapping_sub(point_base as i64);
            negate |= (points[k].1 as u8) << lane;
        }
        let live = (n - group * 8).min(8);
        let mask = if live == 8 { 0xff } else { (1u8 << live) - 1 };
        // SAFETY: unaligned loads of two 64-byte stack arrays.
        unsafe {
            (
                _mm512_loadu_si512(bucket_off.as_ptr().cast()),
                _mm512_loadu_si512(point_off.as_ptr().cast()),
                negate,
                mask,
            )
        }
    };
    // SAFETY (both gathers): every lane's offset + `at` + 8*w addresses limb w of
    // a coordinate part of a live `Affine` (a bucket in `buckets`, or a point
    // borrowed by the batch); the point offsets are wrapping differences from
    // one point because the points may live in different slices.
    let gather = |base: *const i64, offsets: __m512i, at: [i64; 2]| -> V<P> {
        unsafe {
            V::<P>::from_parts(|part| {
                Fq8::from_words(std::array::from_fn(|w| {
                    let at = _mm512_add_epi64(offsets, _mm512_set1_epi64(at[part] + 8 * w as i64));
                    _mm512_i64gather_epi64::<1>(at, base)
                }))
            })
        }
    };

    // Forward pass: prefix[g] = per-lane product of the denominators of groups before g.
    let groups = n.div_ceil(8);
    prefix.clear();
    let mut acc = V::<P>::one();
    for group in 0..groups {
        let (bucket_off, point_off, _, _) = lanes_of(group);
        let px = gather(point_base, point_off, x_at);
        let bx = gather(bucket_base, bucket_off, x_at);
        prefix.extend((0..parts).map(|part| acc.part(part).store()));
        acc = acc.mul(&px.sub_lazy(&bx));
    }
    let mut inverse = acc.invert();

    // Backward pass, as in the scalar loop but eight additions at a time.
    for group in (0..groups).rev() {
        let (bucket_off, point_off, negate, mask) = lanes_of(group);
        let px = gather(point_base, point_off, x_at);
        let py = gather(point_base, point_off, y_at);
        let bx = gather(bucket_base, bucket_off, x_at);
        let by = gather(bucket_base, bucket_off, y_at);
        let dx = px.sub_lazy(&bx);
        let saved = V::<P>::from_parts(|part| Fq8::load(&prefix[group * parts + part]));
        let dx_inverse = inverse.mul(&saved);
        inverse = inverse.mul(&dx);
        let slope = py.neg_if_sub_lazy(negate, &by).mul(&dx_inverse);
        let x3 = slope.square().sub2_canonical(&bx, &px);
        let y3 = slope.mul(&bx.sub_lazy(&x3)).sub_canonical(&by);
        for (at, value) in [(x_at, x3), (y_at, y3)] {
            for (part, part_at) in at.iter().enumerate().take(parts) {
                for (w, word) in value.part(part).to_words().into_iter().enumerate() {
                    let offsets = _mm512_add_epi64(bucket_off, _mm512_set1_epi64(part_at + 8 * w as i64));
                    // SAFETY: live lanes address limb w of a coordinate part of
                    // distinct buckets (the batch contract); dead lanes are masked off.
                    unsafe { _mm512_mask_i64scatter_epi64::<1>(bucket_base, mask, offsets, word) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msm::cpu::batch_affine::AffineBatch;
    use crate::msm::cpu::field::FastSub;
    use ark_ec::short_weierstrass::Projective;
    use ark_ec::CurveGroup;
    use ark_ff::UniformRand;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    fn has_ifma() -> bool {
        let ok = std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512ifma");
        if !ok {
            eprintln!("SKIPPED: this CPU lacks AVX-512 IFMA; the vector batch path is untested here");
        }
        ok
    }

    fn bit_identical_to_scalar<P: SWCurveConfig<BaseField: LaneField + FastSub>>(seed: u64) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let random_points = |rng: &mut rand_chacha::ChaCha20Rng, count: usize| -> Vec<Affine<P>> {
            let projective: Vec<Projective<P>> = (0..count).map(|_| Projective::<P>::rand(rng)).collect();
            Projective::normalize_batch(&projective)
        };
        for size in [1usize, 2, 7, 8, 9, 15, 16, 17, 1000, 1024] {
            let bucket_count = size + 37;
            let buckets = random_points(&mut rng, bucket_count);
            let adds = random_points(&mut rng, size);
            let mut order: Vec<u32> = (0..bucket_count as u32).collect();
            order.shuffle(&mut rng);
            let negate: Vec<bool> = (0..size).map(|_| rng.gen()).collect();
            let mut batch = AffineBatch::<P>::with_capacity(size);
            let mut scalar_batch = AffineBatch::<P>::with_capacity(size);
            for k in 0..size {
                batch.push(order[k], &adds[k], negate[k]);
                scalar_batch.push(order[k], &adds[k], negate[k]);
            }
            let mut scalar = buckets.clone();
            scalar_batch.apply_scalar(&mut scalar);
            let mut vector = buckets.clone();
            let (indices, points) = batch.pending();
            let mut prefix = Vec::new();
            // SAFETY: the caller checked the features; indices are < bucket_count.
            unsafe { apply(indices, points, &mut vector, &mut prefix) };
            assert_eq!(vector, scalar, "batch of {size}");
            // Bit-identical limbs, not only equal points.
            for (v, s) in vector.iter().zip(&scalar) {
                // SAFETY: each part address points at a part's four limbs.
                let limbs = |a: &Affine<P>| {
                    [a.x, a.y]
                        .iter()
                        .flat_map(|c| c.part_addresses().map(|p| unsafe { std::slice::from_raw_parts(p, 4).to_vec() }))
                        .collect::<Vec<Vec<u64>>>()
                };
                assert_eq!(limbs(v), limbs(s));
            }
            // And the untouched buckets really are untouched; the touched ones are sums.
            for k in 0..size {
                let b = order[k] as usize;
                let p = if negate[k] { -adds[k] } else { adds[k] };
                assert_eq!(vector[b], (buckets[b] + p).into_affine());
            }
            for &b in &order[size..] {
                assert_eq!(vector[b as usize], buckets[b as usize]);
            }
        }
    }

    #[test]
    fn ifma_batch_is_bit_identical_to_scalar_in_g1() {
        if has_ifma() {
            bit_identical_to_scalar::<ark_bn254::g1::Config>(31);
        }
    }

    #[test]
    fn ifma_batch_is_bit_identical_to_scalar_in_g2() {
        if has_ifma() {
            bit_identical_to_scalar::<ark_bn254::g2::Config>(32);
        }
    }
}
