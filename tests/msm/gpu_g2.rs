//! The GPU's G2 MSM (G1's kernels over Fq2) against arkworks on lavapipe:
//! the G1 suite's edge cases at small sizes, resident bases, batch splits,
//! and the engine's fallback. One `GpuMsm` per field path for the whole
//! file, since lavapipe compiles G2's pipelines slowly.

use std::sync::{Arc, OnceLock};

use ark_bn254::{Fr, G2Affine, G2Projective};
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup, VariableBaseMSM};
use ark_ff::{UniformRand, Zero};
use causality_vm::gpu::test_context;
use causality_vm::msm::gpu::GpuMsm;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn random_bases(rng: &mut ChaCha20Rng, n: usize) -> Vec<G2Affine> {
    let g = G2Projective::generator();
    let points: Vec<G2Projective> = (0..n).map(|_| g * Fr::rand(rng)).collect();
    G2Projective::normalize_batch(&points)
}

fn random_scalars(rng: &mut ChaCha20Rng, n: usize) -> Vec<Fr> {
    (0..n).map(|_| Fr::rand(rng)).collect()
}

fn reference(bases: &[G2Affine], scalars: &[Fr]) -> G2Affine {
    G2Projective::msm_unchecked(bases, scalars).into_affine()
}

/// The adapter's best path (64-bit on lavapipe), its G2 pipelines compiled once.
fn gpu() -> Option<Arc<GpuMsm>> {
    static GPU: OnceLock<Option<Arc<GpuMsm>>> = OnceLock::new();
    GPU.get_or_init(|| {
        let ctx = test_context()?;
        let gpu = GpuMsm::new(ctx).expect("pipelines");
        gpu.prepare_g2().expect("G2 pipelines");
        Some(Arc::new(gpu))
    })
    .clone()
}

#[test]
fn g2_small_sizes_and_edge_scalars_match_arkworks() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(21);
    let minus_one = -Fr::from(1u64);
    // 63, 64, 65: the kernels' workgroup size (64) plus and minus one.
    for n in [0usize, 1, 2, 3, 63, 64, 65] {
        let bases = random_bases(&mut r, n);
        let mut scalars = random_scalars(&mut r, n);
        if n >= 3 {
            scalars[0] = Fr::zero();
            scalars[1] = minus_one;
            scalars[2] = Fr::from(1u64);
        }
        let got = gpu.msm(&bases, &scalars).expect("G2 MSM");
        assert_eq!(got.into_affine(), reference(&bases, &scalars), "n = {n}");
    }
}
