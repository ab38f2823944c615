//! Base-field operations tuned for the batched addition: branch-free
//! subtraction (arkworks' `Sub` branches on a comparison of the operands,
//! which mispredicts about half the time on random data) and the faster of
//! squaring and self-multiplication per field.

use ark_bn254::{Fq, Fq2};
use ark_ff::{BigInt, Field, PrimeField};

pub trait FastSub: Field {
    fn sub_fast(&self, other: &Self) -> Self;
    fn square_fast(&self) -> Self;
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
        *self * self
    }
}

impl FastSub for Fq2 {
    #[inline(always)]
    fn sub_fast(&self, other: &Self) -> Self {
        Fq2::new(self.c0.sub_fast(&other.c0), self.c1.sub_fast(&other.c1))
    }

    /// Complex squaring: two Fq multiplications instead of three.
    #[inline(always)]
    fn square_fast(&self) -> Self {
        self.square()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{One, UniformRand, Zero};
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
