//! The engine's share policy on a real device (lavapipe in CI): `gpu`
//! sends every MSM to the device; `Measured` measures the device, then the
//! CPU on a small MSM, then sends each MSM where it finishes first (on
//! lavapipe, a CPU driver, that is the CPU), every answer equal to
//! arkworks' and every placement reported.

use ark_bn254::{Fr, G1Affine, G1Projective};
use ark_ec::{CurveGroup, PrimeGroup, VariableBaseMSM};
use ark_ff::UniformRand;
use causality_vm::backend::{Backend, FaultPlan};
use causality_vm::gpu::test_context;
use causality_vm::msm::{MsmEngine, MsmPlacement, SharePolicy};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn inputs(n: usize) -> (Vec<G1Affine>, Vec<Fr>) {
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    let g = G1Projective::generator();
    let points: Vec<G1Projective> = (0..n).map(|_| g * Fr::rand(&mut rng)).collect();
    (G1Projective::normalize_batch(&points), (0..n).map(|_| Fr::rand(&mut rng)).collect())
}

#[test]
fn measured_sharing_moves_msms_to_the_faster_cpu_and_reports_each_placement() {
    if test_context().is_none() {
        return;
    }
    let (bases, scalars) = inputs(96);
    let expected = G1Projective::msm_unchecked(&bases, &scalars).into_affine();

    let only = MsmEngine::new(Backend::Gpu).expect("GPU engine");
    assert_eq!(only.share_policy(), SharePolicy::DeviceOnly, "--backend gpu means the GPU");
    let set = only.upload_g1(bases.clone()).expect("upload");
    for _ in 0..3 {
        let (sum, placement) = only.msm_g1_resident_placed(&set, &scalars).expect("msm");
        assert_eq!((sum.into_affine(), placement), (expected, MsmPlacement::Device));
    }

    // The same device and upload (lavapipe builds pipelines slowly), the
    // measurements fresh.
    let shared = only.with_share_policy(SharePolicy::Measured);
    let placements: Vec<MsmPlacement> = (0..5)
        .map(|_| {
            let (sum, placement) = shared.msm_g1_resident_placed(&set, &scalars).expect("msm");
            assert_eq!(sum.into_affine(), expected, "{placement:?}");
            placement
        })
        .collect();
    // The device twice (its first run of a size pays for pipelines and
    // workspace and is not counted), then the CPU to measure it, then the
    // CPU because lavapipe is far slower than the CPU engine at 96 points.
    assert_eq!(placements[..2], [MsmPlacement::Device; 2], "{placements:?}");
    assert!(placements[2..].iter().all(|&p| p == MsmPlacement::CpuByChoice), "{placements:?}");
    // The plain MSM shares the group's figures.
    let (sum, placement) = shared.msm_g1_placed(&bases, &scalars).expect("plain");
    assert_eq!((sum.into_affine(), placement), (expected, MsmPlacement::CpuByChoice));

    // A failed device run is reported as such (and counted).
    let fresh = shared.with_share_policy(SharePolicy::Measured);
    assert!(fresh.inject_faults(FaultPlan::once_at(0)));
    let (sum, placement) = fresh.msm_g1_resident_placed(&set, &scalars).expect("recomputed");
    assert_eq!((sum.into_affine(), placement), (expected, MsmPlacement::CpuAfterFailure));
    assert_eq!(fresh.gpu_fallbacks(), 1);
    // The failed run left no figure: the device is measured again.
    let (_, placement) = fresh.msm_g1_resident_placed(&set, &scalars).expect("msm");
    assert_eq!(placement, MsmPlacement::Device);
}

#[test]
fn an_engine_without_a_device_reports_the_cpu() {
    let engine = MsmEngine::cpu().with_share_policy(SharePolicy::Measured);
    let (bases, scalars) = inputs(8);
    let (_, placement) = engine.msm_g1_placed(&bases, &scalars).expect("msm");
    assert_eq!(placement, MsmPlacement::Cpu);
}
