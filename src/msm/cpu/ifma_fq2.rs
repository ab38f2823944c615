//! Eight Fq2 elements at once (G2's base field, u² = −1), as two `Fq8`
//! (the c0 and the c1 parts) of `crypto::ifma`, with the same lazy bounds:
//! products take parts of at most 2q and return parts of at most 2q, so the
//! Karatsuba sums and differences are reduced back below 2q before they
//! feed a product.

use std::arch::x86_64::*;

use ark_bn254::Fq2;

use crate::crypto::ifma::{invert_eight, Fq8, Lanes};

#[derive(Clone, Copy)]
pub struct Fq2x8 {
    pub c0: Fq8,
    pub c1: Fq8,
}

impl Fq2x8 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn one() -> Fq2x8 {
        Fq2x8 { c0: Fq8::one(), c1: Fq8::splat_limbs([0; 5]) }
    }

    /// Karatsuba: three Fq products, parts at most 2q in and out.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn mul(&self, b: &Fq2x8) -> Fq2x8 {
        let v0 = self.c0.mul(&b.c0);
        let v1 = self.c1.mul(&b.c1);
        let cross = self.c0.add_lazy(&self.c1).mul(&b.c0.add_lazy(&b.c1));
        Fq2x8 { c0: v0.sub_reduced(&v1), c1: cross.sub2_lazy(&v0, &v1) }
    }

    /// Complex squaring: (a0 + a1)(a0 − a1) and 2·a0·a1, two Fq products.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub fn square(&self) -> Fq2x8 {
        let c0 = self.c0.add_lazy(&self.c1).mul(&self.c0.sub_reduced(&self.c1));
        let product = self.c0.mul(&self.c1);
        Fq2x8 { c0, c1: product.add_lazy(&product) }
    }

    /// Part by part, as `Fq8::sub_lazy`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn sub_lazy(&self, b: &Fq2x8) -> Fq2x8 {
        Fq2x8 { c0: self.c0.sub_lazy(&b.c0), c1: self.c1.sub_lazy(&b.c1) }
    }

    /// ±self − b per lane (self and b canonical), at most 2q per part.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn neg_if_sub_lazy(&self, negate: __mmask8, b: &Fq2x8) -> Fq2x8 {
        Fq2x8 {
            c0: Fq8::raw_sub_lazy(&self.c0.neg_if_raw(negate), &b.c0),
            c1: Fq8::raw_sub_lazy(&self.c1.neg_if_raw(negate), &b.c1),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn sub2_canonical(&self, b: &Fq2x8, c: &Fq2x8) -> Fq2x8 {
        Fq2x8 { c0: self.c0.sub2_canonical(&b.c0, &c.c0), c1: self.c1.sub2_canonical(&b.c1, &c.c1) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn sub_canonical(&self, b: &Fq2x8) -> Fq2x8 {
        Fq2x8 { c0: self.c0.sub_canonical(&b.c0), c1: self.c1.sub_canonical(&b.c1) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn canonical(&self) -> Fq2x8 {
        Fq2x8 { c0: self.c0.canonical(), c1: self.c1.canonical() }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn store(&self) -> [Lanes; 2] {
        [self.c0.store(), self.c1.store()]
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn load(lanes: &[Lanes; 2]) -> Fq2x8 {
        Fq2x8 { c0: Fq8::load(&lanes[0]), c1: Fq8::load(&lanes[1]) }
    }

    /// Eight scalar elements (each part any < 2^256 limbs).
    pub fn from_fq2(values: &[Fq2; 8]) -> [Lanes; 2] {
        [Fq8::from_scalars(&values.map(|v| v.c0)), Fq8::from_scalars(&values.map(|v| v.c1))]
    }

    /// Scalar elements from lanes holding canonical parts.
    pub fn to_fq2(lanes: &[Lanes; 2]) -> [Fq2; 8] {
        let (c0, c1) = (Fq8::to_scalars(&lanes[0]), Fq8::to_scalars(&lanes[1]));
        std::array::from_fn(|lane| Fq2::new(c0[lane], c1[lane]))
    }
}

/// Invert eight non-zero lane values with one scalar Fq2 inversion.
#[target_feature(enable = "avx512f")]
pub fn invert_lanes2(values: &Fq2x8) -> Fq2x8 {
    let scalars = Fq2x8::to_fq2(&values.canonical().store());
    Fq2x8::load(&Fq2x8::from_fq2(&invert_eight(&scalars)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::Fq;
    use ark_ff::{AdditiveGroup, Field, UniformRand, Zero};
    use rand::SeedableRng;

    fn has_ifma() -> bool {
        let ok = std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512ifma");
        if !ok {
            eprintln!("SKIPPED: this CPU lacks AVX-512 IFMA; the vector Fq2 path is untested here");
        }
        ok
    }

    fn values() -> Vec<Fq2> {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(22);
        let edges = [Fq::ZERO, Fq::ONE, -Fq::ONE, Fq::from(2u64), -Fq::from(2u64)];
        let mut v: Vec<Fq2> = edges.iter().flat_map(|a| edges.iter().map(|b| Fq2::new(*a, *b))).collect();
        v.extend((0..200).map(|_| Fq2::rand(&mut rng)));
        v
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn check_ops(x: &[Fq2; 8], y: &[Fq2; 8], z: &[Fq2; 8]) {
        let load = |v: &[Fq2; 8]| Fq2x8::load(&Fq2x8::from_fq2(v));
        let (a, b, c) = (load(x), load(y), load(z));
        let back = |v: Fq2x8| Fq2x8::to_fq2(&v.canonical().store());
        let exact = |v: Fq2x8| Fq2x8::to_fq2(&v.store());
        let each = |f: &dyn Fn(usize) -> Fq2| -> [Fq2; 8] { std::array::from_fn(f) };
        assert_eq!(back(a.mul(&b)), each(&|l| x[l] * y[l]));
        assert_eq!(back(a.square()), each(&|l| x[l].square()));
        // Lazy inputs (parts up to 2q) chained through products, as the batch does.
        let dx = a.sub_lazy(&b);
        assert_eq!(back(dx), each(&|l| x[l] - y[l]));
        let dz = a.sub_lazy(&c);
        assert_eq!(back(dx.mul(&dz)), each(&|l| (x[l] - y[l]) * (x[l] - z[l])));
        assert_eq!(back(dx.square()), each(&|l| (x[l] - y[l]).square()));
        assert_eq!(
            back(dx.mul(&dz).mul(&dx.square())),
            each(&|l| (x[l] - y[l]).square() * (x[l] - y[l]) * (x[l] - z[l]))
        );
        let lazy = dx.square();
        assert_eq!(exact(lazy.sub2_canonical(&b, &c)), each(&|l| (x[l] - y[l]).square() - y[l] - z[l]));
        assert_eq!(exact(lazy.sub_canonical(&c)), each(&|l| (x[l] - y[l]).square() - z[l]));
        for negate in [0u8, 0xff, 0b0110_1001] {
            let d = a.neg_if_sub_lazy(negate, &b);
            let expected = each(&|l| if negate >> l & 1 == 1 { -x[l] - y[l] } else { x[l] - y[l] });
            assert_eq!(back(d), expected);
            assert_eq!(back(d.mul(&d)), expected.map(|e| e.square()));
            assert_eq!(back(d.square()), expected.map(|e| e.square()));
        }
        assert_eq!(back(a.mul(&Fq2x8::one())), *x);
        assert_eq!(exact(a.canonical()), *x);
    }

    #[test]
    fn vector_fq2_ops_match_arkworks_in_every_lane() {
        if !has_ifma() {
            return;
        }
        let v = values();
        for start in 0..v.len() {
            let x: [Fq2; 8] = std::array::from_fn(|l| v[(start + l) % v.len()]);
            let y: [Fq2; 8] = std::array::from_fn(|l| v[(start * 7 + l * 3) % v.len()]);
            let z: [Fq2; 8] = std::array::from_fn(|l| v[(start * 5 + l * 11 + 1) % v.len()]);
            // SAFETY: has_ifma() checked the features.
            unsafe { check_ops(&x, &y, &z) }
        }
    }

    #[test]
    fn lane_inversion() {
        if !has_ifma() {
            return;
        }
        let v = values();
        for start in 0..v.len() {
            let x: [Fq2; 8] = std::array::from_fn(|l| v[(start + l) % v.len()]);
            if x.iter().any(|e| e.is_zero()) {
                continue;
            }
            // SAFETY: has_ifma() checked the features.
            let inverse =
                unsafe { Fq2x8::to_fq2(&invert_lanes2(&Fq2x8::load(&Fq2x8::from_fq2(&x))).canonical().store()) };
            assert_eq!(inverse, x.map(|e| e.inverse().unwrap()));
        }
    }
}
