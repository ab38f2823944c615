//! Number-theoretic transforms over BN254's scalar field: the FFTs of the
//! Groth16 quotient. A [`Ntt`] is a plan for one power-of-two size (its
//! roots of unity computed once); [`cpu`] holds the kernels, `gpu` the
//! same transforms in WGSL (`gpu::GpuNtt`, tested against this plan), and
//! [`NttEngine`] picks between them for the prover, with the backend
//! layer's fallback to the CPU.
//!
//! - `forward`/`inverse`: natural order in and out, the same results as
//!   ark-poly's `Radix2EvaluationDomain::fft_in_place`/`ifft_in_place`.
//! - `coset_forward`/`coset_inverse`: the same on the coset g·⟨ω⟩.
//! - `to_coset`: evaluations on ⟨ω⟩ re-evaluated on g·⟨ω⟩ (an inverse and a
//!   forward transform with the shift between). The inverse runs
//!   decimation-in-frequency (natural in, bit-reversed out) and the forward
//!   decimation-in-time (bit-reversed in, natural out), so the pair needs
//!   no bit-reversal permutation, and the 1/n and gⁱ factors are one pass.

pub mod cpu;
mod engine;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(not(feature = "gpu"))]
#[path = "gpu_absent.rs"]
pub mod gpu;
#[cfg(target_arch = "x86_64")]
mod ifma;
/// No vector lanes off x86-64: every butterfly runs one by one.
#[cfg(not(target_arch = "x86_64"))]
mod ifma {
    use ark_bn254::Fr;

    pub fn dif(_: &mut [Fr], _: &mut [Fr], _: &[Fr], _: usize, _: usize) -> usize {
        0
    }

    pub fn dit(_: &mut [Fr], _: &mut [Fr], _: &[Fr], _: usize, _: usize) -> usize {
        0
    }
}

pub use engine::NttEngine;

static TRACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Time every GPU NTT's phases (host conversion, upload, each dispatch,
/// readback) on their own, printing them on stderr: for finding where a
/// device's time goes. Set through [`crate::tuning::Tuning`].
pub fn set_trace(on: bool) {
    TRACE.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn trace() -> bool {
    TRACE.load(std::sync::atomic::Ordering::Relaxed)
}

use ark_bn254::Fr;
use ark_ff::{FftField, Field, Zero};

/// BN254's scalar field has 2^28-th roots of unity.
pub const MAX_LOG_SIZE: u32 = Fr::TWO_ADICITY;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NttError {
    #[error("an NTT of {0} points: the size must be a power of two from 1 to 2^{MAX_LOG_SIZE}")]
    Size(usize),
    #[error("a coset shift of zero: a coset g·⟨ω⟩ needs g ≠ 0")]
    ZeroShift,
    #[error("an NTT plan for {plan} points was given {values} values")]
    Length { plan: usize, values: usize },
    #[error("NTT on the GPU: {0}")]
    Device(crate::backend::DeviceError),
}

/// One transform of a plan's size, as the engines that run many take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NttOp {
    Forward,
    Inverse,
    CosetForward(Fr),
    CosetInverse(Fr),
    ToCoset(Fr),
}

/// A plan for transforms of one size: the size's roots of unity and their
/// inverses (n/2 of each), computed once.
pub struct Ntt {
    log_n: u32,
    roots: Vec<Fr>,
    inverse_roots: Vec<Fr>,
    n_inverse: Fr,
}

impl Ntt {
    pub fn new(n: usize) -> Result<Ntt, NttError> {
        // One point is a transform too (the identity): a key's domain can be that small.
        if n == 0 || !n.is_power_of_two() || n.trailing_zeros() > MAX_LOG_SIZE {
            return Err(NttError::Size(n));
        }
        let omega = Fr::get_root_of_unity(n as u64).ok_or(NttError::Size(n))?;
        let inverse = omega.inverse().expect("a root of unity is not zero");
        Ok(Ntt {
            log_n: n.trailing_zeros(),
            roots: cpu::powers(Fr::ONE, omega, n / 2),
            inverse_roots: cpu::powers(Fr::ONE, inverse, n / 2),
            n_inverse: Fr::from(n as u64).inverse().expect("n is below the modulus"),
        })
    }

    /// The plan for n/k points (k a power of two, n/k at least one): every
    /// k-th of this plan's roots, since ω_(n/k) = ω_n^k; no power is computed.
    #[cfg(any(feature = "gpu", test))]
    pub(crate) fn every(&self, k: usize) -> Ntt {
        debug_assert!(k.is_power_of_two() && k <= self.len());
        let m = self.len() / k;
        let strided = |roots: &[Fr]| roots.iter().step_by(k).take(m / 2).copied().collect();
        Ntt {
            log_n: m.trailing_zeros(),
            roots: strided(&self.roots),
            inverse_roots: strided(&self.inverse_roots),
            n_inverse: self.n_inverse * Fr::from(k as u64),
        }
    }

    pub fn len(&self) -> usize {
        1 << self.log_n
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    fn check(&self, values: &[Fr]) -> Result<(), NttError> {
        match values.len() == self.len() {
            true => Ok(()),
            false => Err(NttError::Length { plan: self.len(), values: values.len() }),
        }
    }

    /// Coefficients to evaluations at ω⁰ … ωⁿ⁻¹, in place.
    pub fn forward(&self, values: &mut [Fr]) -> Result<(), NttError> {
        self.check(values)?;
        cpu::dif(values, &self.roots);
        cpu::bit_reverse(values);
        Ok(())
    }

    /// Evaluations at ω⁰ … ωⁿ⁻¹ to coefficients, in place.
    pub fn inverse(&self, values: &mut [Fr]) -> Result<(), NttError> {
        self.check(values)?;
        cpu::dif(values, &self.inverse_roots);
        cpu::bit_reverse(values);
        cpu::scale(values, self.n_inverse);
        Ok(())
    }

    /// Coefficients to evaluations at g·ω⁰ … g·ωⁿ⁻¹.
    pub fn coset_forward(&self, values: &mut [Fr], g: Fr) -> Result<(), NttError> {
        self.check_op(NttOp::CosetForward(g), values)?;
        cpu::scale_by_powers(values, Fr::ONE, g);
        self.forward(values)
    }

    /// Evaluations at g·ω⁰ … g·ωⁿ⁻¹ to coefficients.
    pub fn coset_inverse(&self, values: &mut [Fr], g: Fr) -> Result<(), NttError> {
        self.check_op(NttOp::CosetInverse(g), values)?;
        self.inverse(values)?;
        cpu::scale_by_powers(values, Fr::ONE, g.inverse().ok_or(NttError::ZeroShift)?);
        Ok(())
    }

    /// Refuse what no backend can run: a length other than the plan's, or a
    /// coset shift of zero.
    fn check_op(&self, op: NttOp, values: &[Fr]) -> Result<(), NttError> {
        self.check(values)?;
        match op {
            NttOp::CosetForward(g) | NttOp::CosetInverse(g) | NttOp::ToCoset(g) if g.is_zero() => {
                Err(NttError::ZeroShift)
            }
            _ => Ok(()),
        }
    }

    /// `op` on `values`.
    pub fn apply(&self, op: NttOp, values: &mut [Fr]) -> Result<(), NttError> {
        match op {
            NttOp::Forward => self.forward(values),
            NttOp::Inverse => self.inverse(values),
            NttOp::CosetForward(g) => self.coset_forward(values, g),
            NttOp::CosetInverse(g) => self.coset_inverse(values, g),
            NttOp::ToCoset(g) => self.to_coset(values, g),
        }
    }

    /// Evaluations on ⟨ω⟩ to evaluations on g·⟨ω⟩ of the same polynomial.
    pub fn to_coset(&self, values: &mut [Fr], g: Fr) -> Result<(), NttError> {
        self.check_op(NttOp::ToCoset(g), values)?;
        cpu::dif(values, &self.inverse_roots);
        cpu::scale_by_powers_bit_reversed(values, self.n_inverse, g);
        cpu::dit(values, &self.roots);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strided_plan_is_the_smaller_plan() {
        let plan = Ntt::new(1 << 10).unwrap();
        for log_k in 0..=10 {
            let (strided, fresh) = (plan.every(1 << log_k), Ntt::new(1 << (10 - log_k)).unwrap());
            assert_eq!(strided.log_n, fresh.log_n, "k = 2^{log_k}");
            assert_eq!(strided.roots, fresh.roots, "k = 2^{log_k}");
            assert_eq!(strided.inverse_roots, fresh.inverse_roots, "k = 2^{log_k}");
            assert_eq!(strided.n_inverse, fresh.n_inverse, "k = 2^{log_k}");
        }
    }
    use ark_ff::{AdditiveGroup, UniformRand};
    use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
    use rand::SeedableRng;

    fn random(n: usize, seed: u64) -> Vec<Fr> {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        (0..n).map(|_| Fr::rand(&mut rng)).collect()
    }

    /// Every transform against ark-poly, on every size from 1 to 2^12 and on
    /// edge values (zero, one, p − 1).
    #[test]
    fn transforms_match_ark_poly() {
        for log in 0..=12u32 {
            let n = 1usize << log;
            let plan = Ntt::new(n).unwrap();
            let domain = Radix2EvaluationDomain::<Fr>::new(n).unwrap();
            let mut inputs = vec![random(n, log as u64), vec![Fr::ZERO; n], vec![-Fr::ONE; n]];
            inputs[1][n - 1] = Fr::ONE;
            let g = Fr::from(7u64);
            for input in inputs {
                let mut ours = input.clone();
                plan.forward(&mut ours).unwrap();
                assert_eq!(ours, domain.fft(&input), "forward, n = {n}");
                let mut ours = input.clone();
                plan.inverse(&mut ours).unwrap();
                assert_eq!(ours, domain.ifft(&input), "inverse, n = {n}");
                let coset = domain.get_coset(g).unwrap();
                let mut ours = input.clone();
                plan.coset_forward(&mut ours, g).unwrap();
                assert_eq!(ours, coset.fft(&input), "coset forward, n = {n}");
                let mut ours = input.clone();
                plan.coset_inverse(&mut ours, g).unwrap();
                assert_eq!(ours, coset.ifft(&input), "coset inverse, n = {n}");
                let mut ours = input.clone();
                plan.to_coset(&mut ours, g).unwrap();
                assert_eq!(ours, coset.fft(&domain.ifft(&input)), "to coset, n = {n}");
            }
        }
    }

    /// Sizes past one cache block (2^12), where the whole-data passes run.
    #[test]
    fn large_transforms_match_ark_poly() {
        for log in 13..=15u32 {
            let n = 1usize << log;
            let plan = Ntt::new(n).unwrap();
            let domain = Radix2EvaluationDomain::<Fr>::new(n).unwrap();
            let input = random(n, 100 + log as u64);
            let g = Fr::from(5u64);
            let mut ours = input.clone();
            plan.forward(&mut ours).unwrap();
            assert_eq!(ours, domain.fft(&input), "forward, n = {n}");
            plan.inverse(&mut ours).unwrap();
            assert_eq!(ours, input, "inverse, n = {n}");
            plan.to_coset(&mut ours, g).unwrap();
            assert_eq!(ours, domain.get_coset(g).unwrap().fft(&domain.ifft(&input)), "to coset, n = {n}");
        }
    }

    #[test]
    fn bad_sizes_and_lengths_are_refused() {
        for n in [0, 3, 6, 1 << 29] {
            assert_eq!(Ntt::new(n).err(), Some(NttError::Size(n)));
        }
        for op in [NttOp::CosetForward(Fr::ZERO), NttOp::CosetInverse(Fr::ZERO), NttOp::ToCoset(Fr::ZERO)] {
            assert_eq!(Ntt::new(8).unwrap().apply(op, &mut [Fr::ONE; 8]), Err(NttError::ZeroShift), "{op:?}");
        }
        let plan = Ntt::new(8).unwrap();
        assert_eq!(plan.forward(&mut [Fr::ONE; 4]), Err(NttError::Length { plan: 8, values: 4 }));
    }
}
