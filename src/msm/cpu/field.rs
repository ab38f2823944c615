//! Base-field operations tuned for the batched addition: branch-free
//! subtraction (arkworks' `Sub` branches on a comparison of the operands,
//! which mispredicts about half the time on random data), an Fq Montgomery
//! multiplication the compiler inlines into the addition loop (arkworks'
//! stays an out-of-line call there, passing operands through the stack),
//! Fq2 products and squares built on it, and branch-free conditional negation.

use ark_bn254::{Fq, Fq2, FqConfig};
#[cfg(target_arch = "x86_64")]
use ark_ec::short_weierstrass::{Affine, SWCurveConfig};
use ark_ff::{AdditiveGroup, BigInt, Field, MontConfig, PrimeField};

#[cfg(target_arch = "x86_64")]
use crate::crypto::ifma::Lanes;
use crate::crypto::inverse::FastInverse;

pub trait FastSub: Field + VectorField + FastInverse {
    fn sub_fast(&self, other: &Self) -> Self;
    fn square_fast(&self) -> Self;
    fn mul_fast(&self, other: &Self) -> Self;
    /// `-self` when `negate`, else `self`, without a data-dependent branch.
    fn neg_if(&self, negate: bool) -> Self;
}

/// The fields whose batches also run on IFMA lanes (both of ours, on x86-64).
#[cfg(target_arch = "x86_64")]
pub trait VectorField: super::ifma::LaneField {}
#[cfg(target_arch = "x86_64")]
impl<F: super::ifma::LaneField> VectorField for F {}
#[cfg(not(target_arch = "x86_64"))]
pub trait VectorField {}
#[cfg(not(target_arch = "x86_64"))]
impl<F> VectorField for F {}

/// Montgomery multiplication a·b·2^-256 mod q (CIOS, one reduction step per
/// limb of b). BN254's q < 2^254 leaves two spare top bits, so the running
/// sum never exceeds 4 limbs and one conditional subtraction ends it.
#[inline(always)]
fn mont_mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    const Q: [u64; 4] = Fq::MODULUS.0;
    const INV: u64 = <FqConfig as MontConfig<4>>::INV;
    let mut t = [0u64; 4];
    for &bi in b {
        let wide = t[0] as u128 + a[0] as u128 * bi as u128;
        let low = wide as u64;
        let mut carry_mul = (wide >> 64) as u64;
        let m = low.wrapping_mul(INV);
        let mut carry_red = ((low as u128 + m as u128 * Q[0] as u128) >> 64) as u64;
        for j in 1..4 {
            let wide = t[j] as u128 + a[j] as u128 * bi as u128 + carry_mul as u128;
            carry_mul = (wide >> 64) as u64;
            let wide = (wide as u64) as u128 + m as u128 * Q[j] as u128 + carry_red as u128;
            carry_red = (wide >> 64) as u64;
            t[j - 1] = wide as u64;
        }
        t[3] = carry_mul + carry_red;
    }
    reduce_once(t)
}

/// a + b mod q, branch-free (a + b < 2q < 2^256: no carry out of the top limb).
#[inline(always)]
fn add_mod(a: &Fq, b: &Fq) -> Fq {
    let (a, b) = (&a.0 .0, &b.0 .0);
    let mut sum = [0u64; 4];
    let mut carry = 0u64;
    for i in 0..4 {
        let (s1, c1) = a[i].overflowing_add(b[i]);
        let (s2, c2) = s1.overflowing_add(carry);
        sum[i] = s2;
        carry = (c1 | c2) as u64;
    }
    Fq::new_unchecked(BigInt::new(reduce_once(sum)))
}

/// t - q when t >= q (t < 2q), branch-free.
#[inline(always)]
fn reduce_once(t: [u64; 4]) -> [u64; 4] {
    let modulus = Fq::MODULUS.0;
    let mut reduced = [0u64; 4];
    let mut borrow = 0u64;
    for i in 0..4 {
        let (d1, b1) = t[i].overflowing_sub(modulus[i]);
        let (d2, b2) = d1.overflowing_sub(borrow);
        reduced[i] = d2;
        borrow = (b1 | b2) as u64;
    }
    // borrow = 1: t < q, keep t.
    let keep = 0u64.wrapping_sub(borrow);
    let mut out = [0u64; 4];
    for i in 0..4 {
        out[i] = (t[i] & keep) | (reduced[i] & !keep);
    }
    out
}

/// Apply a whole `AffineBatch` (same contract) on the IFMA lanes when this
/// CPU has them; `false` leaves it to the scalar loop.
#[cfg(target_arch = "x86_64")]
pub fn apply_on_lanes<P: SWCurveConfig<BaseField: super::ifma::LaneField>>(
    indices: &[u32],
    points: &[(&Affine<P>, bool)],
    buckets: &mut [Affine<P>],
    lanes: &mut Vec<Lanes>,
) -> bool {
    if !super::ifma::available() {
        return false;
    }
    assert!(indices.iter().all(|&i| (i as usize) < buckets.len()), "bucket index out of range");
    // SAFETY: `available` checked avx512f and avx512ifma; indices checked above.
    unsafe { super::ifma::apply(indices, points, buckets, lanes) };
    true
}

impl FastSub for Fq {
    #[inline(always)]
    fn sub_fast(&self, other: &Self) -> Self {
        let (a, b) = (&self.0 .0, &other.0 .0);
        let mut out = [0u64; 4];
        let mut borrow = 0u64;
        for i in 0..4 {
            let (d1, b1) = a[i].overflowing_sub(b[i]);
            let (d2, b2) = d1.overflowing_sub(borrow);
            out[i] = d2;
            borrow = (b1 | b2) as u64;
        }
        // Add the modulus back exactly when the subtraction wrapped.
        let mask = 0u64.wrapping_sub(borrow);
        let modulus = Fq::MODULUS.0;
        let mut carry = 0u64;
        for i in 0..4 {
            let (s1, c1) = out[i].overflowing_add(modulus[i] & mask);
            let (s2, c2) = s1.overflowing_add(carry);
            out[i] = s2;
            carry = (c1 | c2) as u64;
        }
        Fq::new_unchecked(BigInt::new(out))
    }

    /// arkworks' dedicated Fq squaring measured slower than its multiplication.
    #[inline(always)]
    fn square_fast(&self) -> Self {
        self.mul_fast(self)
    }

    #[inline(always)]
    fn mul_fast(&self, other: &Self) -> Self {
        Fq::new_unchecked(BigInt::new(mont_mul(&self.0 .0, &other.0 .0)))
    }

    #[inline(always)]
    fn neg_if(&self, negate: bool) -> Self {
        // 0 - y is q - y for y != 0 and 0 for y = 0: canonical either way.
        let negated = Fq::ZERO.sub_fast(self);
        let mask = 0u64.wrapping_sub(negate as u64);
        let (a, b) = (&self.0 .0, &negated.0 .0);
        let mut out = [0u64; 4];
        for i in 0..4 {
            out[i] = (a[i] & !mask) | (b[i] & mask);
        }
        Fq::new_unchecked(BigInt::new(out))
    }
}

impl FastSub for Fq2 {
    #[inline(always)]
    fn sub_fast(&self, other: &Self) -> Self {
        Fq2::new(self.c0.sub_fast(&other.c0), self.c1.sub_fast(&other.c1))
    }

    /// Complex squaring (u² = -1): (a0 + a1)(a0 - a1) and 2·a0·a1, two products.
    #[inline(always)]
    fn square_fast(&self) -> Self {
        let (a0, a1) = (&self.c0, &self.c1);
        let c0 = add_mod(a0, a1).mul_fast(&a0.sub_fast(a1));
        let product = a0.mul_fast(a1);
        Fq2::new(c0, add_mod(&product, &product))
    }

    /// Karatsuba over u² = -1: three Fq products.
    #[inline(always)]
    fn mul_fast(&self, other: &Self) -> Self {
        let (a0, a1, b0, b1) = (&self.c0, &self.c1, &other.c0, &other.c1);
        let v0 = a0.mul_fast(b0);
        let v1 = a1.mul_fast(b1);
        let cross = add_mod(a0, a1).mul_fast(&add_mod(b0, b1));
        Fq2::new(v0.sub_fast(&v1), cross.sub_fast(&v0).sub_fast(&v1))
    }

    #[inline(always)]
    fn neg_if(&self, negate: bool) -> Self {
        Fq2::new(self.c0.neg_if(negate), self.c1.neg_if(negate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{One, UniformRand, Zero};

    #[test]
    fn montgomery_product_and_negation_match_arkworks() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        let mut values = vec![Fq::zero(), Fq::one(), -Fq::one(), Fq::from(2u64), -Fq::from(2u64)];
        values.extend((0..200).map(|_| Fq::rand(&mut rng)));
        for a in &values {
            for b in values.iter().take(40) {
                assert_eq!(a.mul_fast(b), *a * b);
            }
            assert_eq!(a.square_fast(), a.square());
            assert_eq!(a.neg_if(true), -*a);
            assert_eq!(a.neg_if(false), *a);
        }
        for a in &values {
            for b in values.iter().take(40) {
                assert_eq!(add_mod(a, b), *a + b);
                let (x, y) = (Fq2::new(*a, *b), Fq2::new(*b, -*a));
                assert_eq!(x.mul_fast(&y), x * y);
                assert_eq!(x.mul_fast(&x), x * x);
                assert_eq!(x.square_fast(), x.square());
            }
        }
        for _ in 0..100 {
            let (x, y) = (Fq2::rand(&mut rng), Fq2::rand(&mut rng));
            assert_eq!(x.mul_fast(&y), x * y);
            assert_eq!(x.square_fast(), x.square());
            assert_eq!(x.neg_if(true), -x);
            assert_eq!(x.neg_if(false), x);
        }
    }
    use rand::SeedableRng;

    #[test]
    fn matches_field_subtraction() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let edges = [Fq::zero(), Fq::one(), -Fq::one(), Fq::from(2u64)];
        for a in edges {
            for b in edges {
                assert_eq!(a.sub_fast(&b), a - b);
            }
        }
        for _ in 0..1000 {
            let (a, b) = (Fq::rand(&mut rng), Fq::rand(&mut rng));
            assert_eq!(a.sub_fast(&b), a - b);
            let (x, y) = (Fq2::rand(&mut rng), Fq2::rand(&mut rng));
            assert_eq!(x.sub_fast(&y), x - y);
            assert_eq!(a.square_fast(), a.square());
            assert_eq!(x.square_fast(), x.square());
        }
    }
}
