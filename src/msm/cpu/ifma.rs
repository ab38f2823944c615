//! The G1 batched affine addition on eight lanes of AVX-512 IFMA: addition k
//! goes to lane k % 8, so the lanes are eight independent Montgomery-trick
//! chains sharing one scalar inversion of their totals. Same contract and
//! bit-identical results as the scalar `AffineBatch` loop (outputs canonical).

use ark_bn254::Fq;
use ark_ec::short_weierstrass::{Affine, SWCurveConfig};

use super::ifma_field::Lanes;

/// Whether this CPU runs the IFMA path (detected once; `MsmTuning::scalar_only`
/// turns it off).
pub fn available() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let supported = *SUPPORTED.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512ifma")
    });
    supported && !crate::msm::MsmTuning::current().scalar_only
}

/// `buckets[indices[k]] += ±points[k]` for all k, under `AffineBatch`'s contract
/// (distinct buckets, finite, x-coordinates differ from their points').
/// `prefix` is scratch kept between calls.
///
/// # Safety
/// The CPU must support avx512f and avx512ifma, and every index must be in bounds.
#[target_feature(enable = "avx512f,avx512ifma")]
pub unsafe fn apply<P: SWCurveConfig<BaseField = Fq>>(
    indices: &[u32],
    points: &[(&Affine<P>, bool)],
    buckets: &mut [Affine<P>],
    prefix: &mut Vec<Lanes>,
) {
    use super::ifma_field::{invert_lanes, Fq8};
    use std::arch::x86_64::*;

    let n = indices.len();
    if n == 0 {
        return;
    }
    let stride = std::mem::size_of::<Affine<P>>() as i64;
    // Byte offsets of the coordinates' limb arrays inside an Affine.
    let sample = &buckets[0];
    let base_of = |a: &Affine<P>| a as *const Affine<P> as i64;
    let (x_at, y_at) =
        (sample.x.0 .0.as_ptr() as i64 - base_of(sample), sample.y.0 .0.as_ptr() as i64 - base_of(sample));
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
    // a coordinate of a live `Affine` (a bucket in `buckets`, or a point borrowed
    // by the batch); the point offsets are wrapping differences from one point
    // because the points may live in different slices.
    let gather = |base: *const i64, offsets: __m512i, at: i64| -> Fq8 {
        Fq8::from_words(std::array::from_fn(|w| unsafe {
            _mm512_i64gather_epi64::<1>(_mm512_add_epi64(offsets, _mm512_set1_epi64(at + 8 * w as i64)), base)
        }))
    };

    // Forward pass: prefix[g] = per-lane product of the denominators of groups before g.
    let groups = n.div_ceil(8);
    prefix.clear();
    let mut acc = Fq8::one();
    for group in 0..groups {
        let (bucket_off, point_off, _, _) = lanes_of(group);
        let px = gather(point_base, point_off, x_at);
        let bx = gather(bucket_base, bucket_off, x_at);
        prefix.push(acc.store());
        acc = acc.mul(&px.sub_lazy(&bx));
    }
    let mut inverse = invert_lanes(&acc);

    // Backward pass, as in the scalar loop but eight additions at a time.
    for group in (0..groups).rev() {
        let (bucket_off, point_off, negate, mask) = lanes_of(group);
        let px = gather(point_base, point_off, x_at);
        let py = gather(point_base, point_off, y_at);
        let bx = gather(bucket_base, bucket_off, x_at);
        let by = gather(bucket_base, bucket_off, y_at);
        let dx = px.sub_lazy(&bx);
        let dx_inverse = inverse.mul(&Fq8::load(&prefix[group]));
        inverse = inverse.mul(&dx);
        let dy = Fq8::raw_sub_lazy(&py.neg_if_raw(negate), &by);
        let slope = dy.mul(&dx_inverse);
        let x3 = slope.mul(&slope).sub2_canonical(&bx, &px);
        let y3 = slope.mul(&bx.sub_lazy(&x3)).sub_canonical(&by);
        for (at, value) in [(x_at, x3), (y_at, y3)] {
            for (w, word) in value.to_words().into_iter().enumerate() {
                let offsets = _mm512_add_epi64(bucket_off, _mm512_set1_epi64(at + 8 * w as i64));
                // SAFETY: live lanes address limb w of a coordinate of distinct
                // buckets (the batch contract); dead lanes are masked off.
                unsafe { _mm512_mask_i64scatter_epi64::<1>(bucket_base, mask, offsets, word) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msm::cpu::batch_affine::AffineBatch;
    use ark_bn254::{G1Affine, G1Projective};
    use ark_ec::CurveGroup;
    use ark_ff::UniformRand;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    #[test]
    fn ifma_batch_is_bit_identical_to_scalar() {
        if !(std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512ifma")) {
            eprintln!("SKIPPED: this CPU lacks AVX-512 IFMA; the vector batch path is untested here");
            return;
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(31);
        let random_points = |rng: &mut rand_chacha::ChaCha20Rng, count: usize| -> Vec<G1Affine> {
            let projective: Vec<G1Projective> = (0..count).map(|_| G1Projective::rand(rng)).collect();
            G1Projective::normalize_batch(&projective)
        };
        for size in [1usize, 2, 7, 8, 9, 15, 16, 17, 1000, 1024] {
            let bucket_count = size + 37;
            let buckets = random_points(&mut rng, bucket_count);
            let adds = random_points(&mut rng, size);
            let mut order: Vec<u32> = (0..bucket_count as u32).collect();
            order.shuffle(&mut rng);
            let negate: Vec<bool> = (0..size).map(|_| rng.gen()).collect();
            let mut batch = AffineBatch::<ark_bn254::g1::Config>::with_capacity(size);
            let mut scalar_batch = AffineBatch::<ark_bn254::g1::Config>::with_capacity(size);
            for k in 0..size {
                batch.push(order[k], &adds[k], negate[k]);
                scalar_batch.push(order[k], &adds[k], negate[k]);
            }
            let mut scalar = buckets.clone();
            scalar_batch.apply_scalar(&mut scalar);
            let mut vector = buckets.clone();
            let (indices, points) = batch.pending();
            let mut prefix = Vec::new();
            // SAFETY: features checked above; indices are < bucket_count.
            unsafe { apply(indices, points, &mut vector, &mut prefix) };
            assert_eq!(vector, scalar, "batch of {size}");
            // Bit-identical limbs, not only equal points.
            for (v, s) in vector.iter().zip(&scalar) {
                assert_eq!((v.x.0, v.y.0), (s.x.0, s.y.0));
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
}
