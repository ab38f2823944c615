//! Random MSM inputs, shared by tests/msm/cpu.rs, benches/msm.rs and
//! examples/msm_compare.rs (the last two include this file by path).
#![allow(dead_code)]

use ark_bn254::Fr;
use ark_ec::short_weierstrass::{Affine, Projective};
use ark_ec::CurveGroup;
use ark_ff::UniformRand;
use causality_vm::msm::cpu::MsmCurve;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// `n` points: consecutive multiples from a random start and step (cheap to
/// make, still arbitrary points).
pub fn random_points<P: MsmCurve>(rng: &mut ChaCha20Rng, n: usize) -> Vec<Affine<P>> {
    let mut p = Projective::<P>::rand(rng);
    let step = Projective::<P>::rand(rng);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(p);
        p += step;
    }
    Projective::normalize_batch(&out)
}

/// `n` random points and scalars from `seed`.
pub fn random_inputs<P: MsmCurve>(seed: u64, n: usize) -> (Vec<Affine<P>>, Vec<Fr>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let points = random_points::<P>(&mut rng, n);
    let scalars = (0..n).map(|_| Fr::rand(&mut rng)).collect();
    (points, scalars)
}
