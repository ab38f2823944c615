//! The GPU's G2 MSM (G1's kernels over Fq2) against arkworks on lavapipe:
//! the G1 suite's edge cases at small sizes, resident bases, batch splits,
//! and the engine's fallback. One `GpuMsm` per field path for the whole
//! file, since lavapipe compiles G2's pipelines slowly.

use std::sync::{Arc, OnceLock};

use ark_bn254::{Fr, G2Affine, G2Projective};
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup, VariableBaseMSM};
use ark_ff::{UniformRand, Zero};
use causality_vm::backend::{Backend, FaultPlan, ResolvedBackend};
use causality_vm::gpu::test_context;
use causality_vm::msm::gpu::{FieldPath, GpuMsm, Tuning};
use causality_vm::msm::{MsmEngine, MsmError};
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

/// The 32-bit field path too (lavapipe's best is the 64-bit one), made
/// once: its G2 pipelines take lavapipe minutes to build.
fn both_paths() -> Vec<Arc<GpuMsm>> {
    static NARROW: OnceLock<Option<Arc<GpuMsm>>> = OnceLock::new();
    let Some(best) = gpu() else { return Vec::new() };
    let narrow = NARROW.get_or_init(|| {
        (best.field_path() != FieldPath::U32).then(|| {
            let tuning = Tuning { field: Some(FieldPath::U32), ..Tuning::default() };
            let gpu = GpuMsm::with_tuning(best.context().clone(), tuning).expect("32-bit pipelines");
            gpu.prepare_g2().expect("32-bit G2 pipelines");
            Arc::new(gpu)
        })
    });
    std::iter::once(best).chain(narrow.clone()).collect()
}

#[test]
fn g2_small_sizes_and_edge_scalars_match_arkworks() {
    for gpu in both_paths() {
        small_sizes_and_edge_scalars(&gpu);
    }
}

fn small_sizes_and_edge_scalars(gpu: &GpuMsm) {
    let path = gpu.field_path();
    let mut r = rng(21);
    let minus_one = -Fr::from(1u64);
    // 63, 64, 65: the kernels' workgroup size (64) plus and minus one. (The
    // 32-bit path's pipelines take lavapipe minutes to build, once; each
    // MSM after the first takes milliseconds.)
    for n in [0, 1, 2, 3, 63, 64, 65] {
        let bases = random_bases(&mut r, n);
        let mut scalars = random_scalars(&mut r, n);
        if n >= 3 {
            scalars[0] = Fr::zero();
            scalars[1] = minus_one;
            scalars[2] = Fr::from(1u64);
        }
        let got = gpu.msm(&bases, &scalars).expect("G2 MSM");
        assert_eq!(got.into_affine(), reference(&bases, &scalars), "{path:?}, n = {n}");
    }
}

#[test]
fn g2_resident_bases_batch_splits_and_infinity_match_arkworks() {
    for gpu in both_paths() {
        resident_bases_batch_splits_and_infinity(&gpu);
    }
}

fn resident_bases_batch_splits_and_infinity(gpu: &Arc<GpuMsm>) {
    let mut r = rng(22);
    let mut bases = random_bases(&mut r, 40);
    let mut scalars = random_scalars(&mut r, 40);
    bases[5] = G2Affine::zero();
    // Equal points in one bucket (the doubling case of the additions) and
    // opposite ones (their sum is infinity).
    bases[7] = bases[6];
    bases[8] = -bases[6];
    scalars[7] = scalars[6];
    scalars[8] = scalars[6];
    let expected = reference(&bases, &scalars);

    let set = gpu.upload(&bases).expect("upload");
    assert_eq!(gpu.msm_resident(&set, &scalars).expect("resident").into_affine(), expected);
    let prefix = gpu.msm_resident(&set, &scalars[..17]).expect("a prefix of the set");
    assert_eq!(prefix.into_affine(), reference(&bases[..17], &scalars[..17]));

    // Base buffers and batches of 16 points, a 3-bit window: the same
    // pipelines (from the context's cache), more passes.
    let tuning = Tuning { window_bits: Some(3), max_batch: Some(16), field: Some(gpu.field_path()) };
    let split = GpuMsm::with_tuning(gpu.context().clone(), tuning).expect("pipelines");
    let set = split.upload(&bases).expect("upload");
    assert_eq!(set.buffer_count(), 3);
    assert_eq!(split.msm_resident(&set, &scalars).expect("split").into_affine(), expected);
}

/// The engine sends G2 MSMs to its device (an injected fault is only ever
/// consumed there) and recomputes a failed one on the CPU, counted, plain
/// and resident, wherever in the run the device fails.
#[test]
fn engine_g2_msms_run_on_the_device_and_faults_are_recomputed_on_the_cpu() {
    if gpu().is_none() {
        return;
    }
    let engine = MsmEngine::new(Backend::Gpu).expect("GPU engine");
    let mut r = rng(23);
    let bases = random_bases(&mut r, 24);
    let scalars = random_scalars(&mut r, 24);
    let expected = reference(&bases, &scalars);

    assert_eq!(engine.msm_g2(&bases, &scalars).expect("plain").into_affine(), expected);
    let set = engine.upload_g2(bases.clone()).expect("upload");
    assert_eq!(engine.msm_g2_resident(&set, &scalars).expect("resident").into_affine(), expected);
    assert_eq!(engine.gpu_fallbacks(), 0, "both ran on the device");

    assert!(engine.inject_faults(FaultPlan::once_at(usize::MAX)));
    assert_eq!(engine.msm_g2(&bases, &scalars).expect("CPU recompute").into_affine(), expected);
    assert_eq!(engine.gpu_fallbacks(), 1, "the plain MSM's recompute is counted");
    for (k, at_step) in [0, 3, usize::MAX].into_iter().enumerate() {
        assert!(engine.inject_faults(FaultPlan::once_at(at_step)));
        let got = engine.msm_g2_resident(&set, &scalars).expect("CPU recompute");
        assert_eq!(got.into_affine(), expected, "fault before dispatch {at_step}");
        assert_eq!(engine.gpu_fallbacks(), 2 + k as u64, "fault before dispatch {at_step}");
    }
    assert_eq!(engine.msm_g2_resident(&set, &scalars).unwrap().into_affine(), expected, "the next run is clean");
    assert_eq!(engine.gpu_fallbacks(), 4);
    assert_eq!(engine.backend(), ResolvedBackend::Gpu, "an injected fault is not a lost device");

    // Bad bases never reach the device.
    let mut bad = bases.clone();
    bad[7] = G2Affine::new_unchecked(bad[7].x, bad[7].x);
    assert!(matches!(engine.msm_g2(&bad, &scalars), Err(MsmError::InvalidBase { index: 7, .. })));
    assert!(matches!(engine.upload_g2(bad), Err(MsmError::InvalidBase { index: 7, .. })));
    assert!(matches!(
        engine.msm_g2_resident(&set, &random_scalars(&mut r, 25)),
        Err(MsmError::LengthMismatch { bases: 24, scalars: 25 })
    ));
}
