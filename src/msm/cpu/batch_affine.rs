//! Many independent affine additions sharing one field inversion
//! (Montgomery's trick): each addition costs about 5 multiplications and a
//! squaring instead of the ~11 of a mixed projective addition.

use ark_ec::short_weierstrass::{Affine, SWCurveConfig};
use ark_ff::{AdditiveGroup, Field, Zero};

use super::field::FastSub;
use crate::crypto::inverse::FastInverse;

/// Pending `bucket[index] += ±point` additions. The caller guarantees that no
/// bucket appears twice and that every bucket is finite with an x-coordinate
/// different from its point's (so no doubling, no cancellation, no division by zero).
/// Points are borrowed, not copied, and negated only where their y is used.
pub struct AffineBatch<'a, P: SWCurveConfig<BaseField: FastSub>> {
    indices: Vec<u32>,
    points: Vec<(&'a Affine<P>, bool)>,
    prefix: Vec<P::BaseField>,
    /// The vector path's prefix products (on IFMA CPUs only).
    #[cfg(target_arch = "x86_64")]
    lanes: Vec<crate::crypto::ifma::Lanes>,
}

impl<'a, P: SWCurveConfig<BaseField: FastSub>> AffineBatch<'a, P> {
    pub fn with_capacity(capacity: usize) -> Self {
        AffineBatch {
            indices: Vec::with_capacity(capacity),
            points: Vec::with_capacity(capacity),
            prefix: Vec::with_capacity(capacity),
            #[cfg(target_arch = "x86_64")]
            lanes: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Queue `bucket += point`, or `bucket -= point` when `negate`.
    pub fn push(&mut self, bucket: u32, point: &'a Affine<P>, negate: bool) {
        self.indices.push(bucket);
        self.points.push((point, negate));
    }

    /// Apply every pending addition to `buckets` and empty the batch.
    pub fn apply(&mut self, buckets: &mut [Affine<P>]) {
        if self.indices.is_empty() {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if super::field::apply_on_lanes::<P>(&self.indices, &self.points, buckets, &mut self.lanes) {
            self.indices.clear();
            self.points.clear();
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("bmi2") && std::arch::is_x86_feature_detected!("adx") {
            // SAFETY: the CPU supports the features `apply_bmi2` is compiled for.
            unsafe { self.apply_bmi2(buckets) };
            return;
        }
        self.apply_inner(buckets);
    }

    /// The same loop compiled with `mulx`: the Montgomery products no longer
    /// pin rdx:rax, which frees registers (the release build targets baseline x86-64).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "bmi2,adx")]
    unsafe fn apply_bmi2(&mut self, buckets: &mut [Affine<P>]) {
        self.apply_inner(buckets);
    }

    #[inline(always)]
    fn apply_inner(&mut self, buckets: &mut [Affine<P>]) {
        // Forward pass: prefix[k] = product of the denominators before k.
        self.prefix.clear();
        let mut acc = P::BaseField::ONE;
        for (&index, (point, _)) in self.indices.iter().zip(&self.points) {
            let dx = point.x.sub_fast(&buckets[index as usize].x);
            self.prefix.push(acc);
            acc = acc.mul_fast(&dx);
        }
        let mut inverse = acc.fast_inverse().unwrap_or(P::BaseField::ZERO);
        debug_assert!(!inverse.is_zero(), "batch-affine denominator was zero");
        // Backward pass: peel one denominator off the running inverse per step.
        for k in (0..self.indices.len()).rev() {
            let (point, negate) = self.points[k];
            let bucket = &mut buckets[self.indices[k] as usize];
            // Recomputing the denominator is cheaper than storing and reloading it.
            let dx = point.x.sub_fast(&bucket.x);
            let dx_inverse = inverse.mul_fast(&self.prefix[k]);
            inverse = inverse.mul_fast(&dx);
            let slope = point.y.neg_if(negate).sub_fast(&bucket.y).mul_fast(&dx_inverse);
            let x3 = slope.square_fast().sub_fast(&bucket.x).sub_fast(&point.x);
            let y3 = slope.mul_fast(&bucket.x.sub_fast(&x3)).sub_fast(&bucket.y);
            *bucket = Affine::new_unchecked(x3, y3);
        }
        self.indices.clear();
        self.points.clear();
    }

    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// The pending additions (tests compare the vector path against the scalar one).
    #[cfg(all(test, target_arch = "x86_64"))]
    pub(crate) fn pending(&self) -> (&[u32], &[(&'a Affine<P>, bool)]) {
        (&self.indices, &self.points)
    }

    /// `apply` forced onto the scalar loop.
    #[cfg(all(test, target_arch = "x86_64"))]
    pub(crate) fn apply_scalar(&mut self, buckets: &mut [Affine<P>]) {
        self.apply_inner(buckets);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::{G1Affine, G1Projective, G2Affine, G2Projective};
    use ark_ec::CurveGroup;
    use ark_ff::UniformRand;
    use rand::SeedableRng;

    #[test]
    fn batch_matches_projective_additions() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let mut buckets: Vec<G1Affine> = (0..40).map(|_| G1Projective::rand(&mut rng).into_affine()).collect();
        let adds: Vec<G1Affine> = (0..30).map(|_| G1Projective::rand(&mut rng).into_affine()).collect();
        let expected: Vec<G1Affine> =
            buckets.iter().zip(&adds).map(|(b, p)| (*b + *p).into_affine()).chain(buckets[30..].to_vec()).collect();
        let mut batch = AffineBatch::with_capacity(30);
        for (i, p) in adds.iter().enumerate().rev() {
            batch.push(i as u32, p, false);
        }
        batch.apply(&mut buckets);
        assert!(batch.is_empty());
        assert_eq!(buckets, expected);
    }

    #[test]
    fn batch_works_over_the_quadratic_extension() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
        let mut buckets: Vec<G2Affine> = (0..5).map(|_| G2Projective::rand(&mut rng).into_affine()).collect();
        let p = G2Projective::rand(&mut rng).into_affine();
        let expected: Vec<G2Affine> =
            buckets.iter().enumerate().map(|(i, b)| if i % 2 == 0 { *b + p } else { *b - p }.into_affine()).collect();
        let mut batch = AffineBatch::with_capacity(5);
        for i in 0..5 {
            batch.push(i, &p, i % 2 == 1);
        }
        batch.apply(&mut buckets);
        assert_eq!(buckets, expected);
    }
}
