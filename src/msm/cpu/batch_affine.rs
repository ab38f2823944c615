//! Many independent affine additions sharing one field inversion
//! (Montgomery's trick): each addition costs about 5 multiplications and a
//! squaring instead of the ~11 of a mixed projective addition.

use ark_ec::short_weierstrass::{Affine, SWCurveConfig};
use ark_ff::{AdditiveGroup, Field, Zero};

use super::field::FastSub;

/// Pending `bucket[index] += point` additions. The caller guarantees that no
/// bucket appears twice and that every bucket is finite with an x-coordinate
/// different from its point's (so no doubling, no cancellation, no division by zero).
pub struct AffineBatch<P: SWCurveConfig<BaseField: FastSub>> {
    indices: Vec<u32>,
    points: Vec<Affine<P>>,
    prefix: Vec<P::BaseField>,
    dx: Vec<P::BaseField>,
}

impl<P: SWCurveConfig<BaseField: FastSub>> AffineBatch<P> {
    pub fn with_capacity(capacity: usize) -> Self {
        AffineBatch {
            indices: Vec::with_capacity(capacity),
            points: Vec::with_capacity(capacity),
            prefix: Vec::with_capacity(capacity),
            dx: Vec::with_capacity(capacity),
        }
    }

    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    pub fn push(&mut self, bucket: u32, point: Affine<P>) {
        self.indices.push(bucket);
        self.points.push(point);
    }

    /// Apply every pending addition to `buckets` and empty the batch.
    pub fn apply(&mut self, buckets: &mut [Affine<P>]) {
        if self.indices.is_empty() {
            return;
        }
        // Forward pass: prefix[k] = product of the denominators before k.
        self.prefix.clear();
        self.dx.clear();
        let mut acc = P::BaseField::ONE;
        for (&index, point) in self.indices.iter().zip(&self.points) {
            let dx = point.x.sub_fast(&buckets[index as usize].x);
            self.prefix.push(acc);
            self.dx.push(dx);
            acc = acc.mul_fast(&dx);
        }
        let mut inverse = acc.inverse().unwrap_or(P::BaseField::ZERO);
        debug_assert!(!inverse.is_zero(), "batch-affine denominator was zero");
        // Backward pass: peel one denominator off the running inverse per step.
        for k in (0..self.indices.len()).rev() {
            let point = &self.points[k];
            let bucket = &mut buckets[self.indices[k] as usize];
            let dx_inverse = inverse.mul_fast(&self.prefix[k]);
            inverse = inverse.mul_fast(&self.dx[k]);
            let slope = point.y.sub_fast(&bucket.y).mul_fast(&dx_inverse);
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
            batch.push(i as u32, *p);
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
        let expected: Vec<G2Affine> = buckets.iter().map(|b| (*b + p).into_affine()).collect();
        let mut batch = AffineBatch::with_capacity(5);
        for i in 0..5 {
            batch.push(i, p);
        }
        batch.apply(&mut buckets);
        assert_eq!(buckets, expected);
    }
}
