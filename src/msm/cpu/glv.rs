//! The GLV split: k = k1 + k2 * lambda (mod r) with |k1|, |k2| around 2^127,
//! so an MSM over n 254-bit scalars becomes one over 2n half-size scalars
//! against the bases and their images under the endomorphism phi.
//!
//! arkworks' `GLVConfig::scalar_decomposition` goes through heap big integers;
//! this is the same Babai rounding in fixed-width integers: beta_i is
//! round(k * g_i / 2^256) with g_i = round(2^256 * |n| / r) precomputed once.

use ark_bn254::Fr;
use ark_ec::scalar_mul::glv::GLVConfig;
use ark_ec::short_weierstrass::Affine;
use ark_ff::{BigInteger, PrimeField};

use super::wide::{self, U256};

/// A signed integer of at most 191 bits: magnitude in three limbs and a sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SignedHalf {
    pub magnitude: [u64; 3],
    pub negative: bool,
}

impl SignedHalf {
    #[cfg(test)]
    pub fn bits(&self) -> u32 {
        for i in (0..3).rev() {
            if self.magnitude[i] != 0 {
                return 64 * i as u32 + 64 - self.magnitude[i].leading_zeros();
            }
        }
        0
    }

    /// The value as a field element.
    #[cfg(test)]
    pub fn to_field(self) -> Fr {
        let mut limbs = [0u64; 4];
        limbs[..3].copy_from_slice(&self.magnitude);
        let value = Fr::from_bigint(ark_ff::BigInt::new(limbs)).unwrap_or_default();
        if self.negative {
            -value
        } else {
            value
        }
    }

    /// `None` when the magnitude does not fit three limbs (cannot happen for a
    /// reduced lattice basis; the caller then falls back to no split).
    fn from_twos_complement(value: &U256) -> Option<Self> {
        let negative = wide::is_negative(value);
        let magnitude = if negative { wide::neg(value) } else { *value };
        if magnitude[3] != 0 {
            return None;
        }
        Some(SignedHalf { magnitude: [magnitude[0], magnitude[1], magnitude[2]], negative })
    }
}

/// Precomputed constants for one curve's decomposition.
#[derive(Clone, Debug)]
pub struct GlvSplitter {
    /// Lattice basis rows (n11, n12), (n21, n22) as two's-complement integers.
    n11: U256,
    n12: U256,
    n21: U256,
    n22: U256,
    /// round(2^256 * |n22| / r) and round(2^256 * |n12| / r).
    g1: U256,
    g2: U256,
    /// Signs of beta1 = k * n22 / r and beta2 = -k * n12 / r.
    beta1_negative: bool,
    beta2_negative: bool,
}

fn signed(entry: &(bool, ark_ff::BigInt<4>)) -> (bool, U256) {
    // arkworks' convention: `true` is a positive coefficient.
    (!entry.0, entry.1 .0)
}

fn to_twos(negative: bool, magnitude: &U256) -> U256 {
    if negative {
        wide::neg(magnitude)
    } else {
        *magnitude
    }
}

impl GlvSplitter {
    pub fn new<P: GLVConfig<ScalarField = Fr>>() -> Self {
        let coeffs = P::SCALAR_DECOMP_COEFFS;
        let [(s11, m11), (s12, m12), (s21, m21), (s22, m22)] = coeffs.map(|c| signed(&c));
        let modulus = Fr::MODULUS.0;
        GlvSplitter {
            n11: to_twos(s11, &m11),
            n12: to_twos(s12, &m12),
            n21: to_twos(s21, &m21),
            n22: to_twos(s22, &m22),
            g1: wide::scaled_quotient(&m22, &modulus),
            g2: wide::scaled_quotient(&m12, &modulus),
            beta1_negative: s22,
            beta2_negative: !s12,
        }
    }

    /// Split `k` into (k1, k2) with k1 + k2 * lambda == k (mod r).
    pub fn split(&self, k: &Fr) -> (SignedHalf, SignedHalf) {
        let kb = k.into_bigint();
        let kl = kb.0;
        let beta1 = to_twos(self.beta1_negative, &wide::round_high(&wide::mul_wide(&kl, &self.g1)));
        let beta2 = to_twos(self.beta2_negative, &wide::round_high(&wide::mul_wide(&kl, &self.g2)));
        // (b1, b2) = (beta1, beta2) * N is a lattice vector: b1 + b2 * lambda == 0 (mod r).
        let b1 = wide::add(&wide::mul_low(&beta1, &self.n11), &wide::mul_low(&beta2, &self.n21));
        let b2 = wide::add(&wide::mul_low(&beta1, &self.n12), &wide::mul_low(&beta2, &self.n22));
        let k1 = wide::sub(&kl, &b1);
        let k2 = wide::neg(&b2);
        match (SignedHalf::from_twos_complement(&k1), SignedHalf::from_twos_complement(&k2)) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                // Unreachable for BN254's reduced basis; stay correct anyway.
                debug_assert!(false, "GLV halves out of range for {kb}");
                let full = SignedHalf { magnitude: [kl[0], kl[1], kl[2]], negative: false };
                debug_assert!(kb.num_bits() <= 192);
                (full, SignedHalf::default())
            }
        }
    }
}

/// phi(P) = lambda * P, computed cheaply through the curve's endomorphism.
pub fn endomorphism<P: GLVConfig>(p: &Affine<P>) -> Affine<P> {
    P::endomorphism_affine(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::{AffineRepr, CurveGroup};
    use ark_ff::{Field, One, UniformRand, Zero};
    use rand::SeedableRng;

    fn check<P: GLVConfig<ScalarField = Fr>>(k: Fr) {
        let splitter = GlvSplitter::new::<P>();
        let (k1, k2) = splitter.split(&k);
        assert_eq!(k1.to_field() + k2.to_field() * P::LAMBDA, k, "k1 + k2*lambda != k");
        assert!(k1.bits() <= 128 && k2.bits() <= 128, "halves too large: {} {}", k1.bits(), k2.bits());
    }

    fn edge_scalars() -> Vec<Fr> {
        let mut v = vec![Fr::zero(), Fr::one(), -Fr::one(), Fr::from(2u64), -Fr::from(2u64)];
        v.push(Fr::from(u64::MAX));
        v.push(Fr::from(u128::MAX));
        v.push(ark_bn254::g1::Config::LAMBDA);
        v.push(ark_bn254::g2::Config::LAMBDA);
        v.push(-ark_bn254::g1::Config::LAMBDA);
        v.push(Fr::from(2u64).pow([253]));
        v
    }

    #[test]
    fn g1_split_recombines_and_is_small() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for k in edge_scalars().into_iter().chain((0..2000).map(|_| Fr::rand(&mut rng))) {
            check::<ark_bn254::g1::Config>(k);
        }
    }

    #[test]
    fn g2_split_recombines_and_is_small() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        for k in edge_scalars().into_iter().chain((0..2000).map(|_| Fr::rand(&mut rng))) {
            check::<ark_bn254::g2::Config>(k);
        }
    }

    #[test]
    fn endomorphism_is_multiplication_by_lambda() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let p = ark_bn254::G1Projective::rand(&mut rng).into_affine();
        assert_eq!(endomorphism(&p), (p * ark_bn254::g1::Config::LAMBDA).into_affine());
        let q = ark_bn254::G2Projective::rand(&mut rng).into_affine();
        assert_eq!(endomorphism(&q), (q * ark_bn254::g2::Config::LAMBDA).into_affine());
        assert!(endomorphism(&ark_bn254::G1Affine::zero()).is_zero());
    }

    #[test]
    fn split_matches_arkworks_decomposition_sizes() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let splitter = GlvSplitter::new::<ark_bn254::g1::Config>();
        for _ in 0..50 {
            let k = Fr::rand(&mut rng);
            let ((s1, a1), (s2, a2)) = ark_bn254::g1::Config::scalar_decomposition(k);
            let (k1, k2) = splitter.split(&k);
            let ours = k1.bits().max(k2.bits());
            let theirs = a1.into_bigint().num_bits().max(a2.into_bigint().num_bits());
            assert!(ours <= theirs + 1, "ours {ours} theirs {theirs} ({s1} {s2})");
        }
    }
}
