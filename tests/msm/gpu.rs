//! The GPU MSM against arkworks, a naive sum and the CPU engine, on lavapipe
//! in CI (small sizes: it is a CPU driver).

use std::sync::Arc;

use ark_bn254::{Fr, G1Affine, G1Projective};
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup, VariableBaseMSM};
use ark_ff::{PrimeField, UniformRand, Zero};
use causality_vm::backend::{Backend, FaultPlan, ResolvedBackend};
use causality_vm::gpu::{test_context, GpuContext};
use causality_vm::msm::gpu::{FieldPath, GpuMsm, Tuning};
use causality_vm::msm::{MsmEngine, MsmError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn random_bases(rng: &mut ChaCha20Rng, n: usize) -> Vec<G1Affine> {
    let g = G1Projective::generator();
    let points: Vec<G1Projective> = (0..n).map(|_| g * Fr::rand(rng)).collect();
    G1Projective::normalize_batch(&points)
}

fn random_scalars(rng: &mut ChaCha20Rng, n: usize) -> Vec<Fr> {
    (0..n).map(|_| Fr::rand(rng)).collect()
}

fn reference(bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
    G1Projective::msm_unchecked(bases, scalars)
}

fn naive(bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
    bases.iter().zip(scalars).map(|(b, s)| *b * s).sum()
}

/// The engine with the adapter's best field path (64-bit on lavapipe).
fn best(ctx: &Arc<GpuContext>) -> GpuMsm {
    GpuMsm::new(ctx.clone()).expect("pipelines")
}

fn check_all(label: &str, bases: &[G1Affine], scalars: &[Fr]) {
    let Some(ctx) = test_context() else { return };
    let expected = reference(bases, scalars);
    let gpu = best(&ctx);
    let got = gpu.msm(bases, scalars).expect("GPU MSM runs");
    assert_eq!(got.into_affine(), expected.into_affine(), "{label}: {:?} path, n = {}", gpu.field_path(), bases.len());
}

#[test]
fn the_32_bit_field_path_msm_matches_arkworks() {
    // lavapipe takes over a minute to compile this path's kernels; it still
    // runs in CI, since adapters without 64-bit integers depend on it.
    // Every adapter can run this path; the other tests use the best one.
    let Some(ctx) = test_context() else { return };
    let gpu = GpuMsm::with_tuning(ctx, Tuning { field: Some(FieldPath::U32), ..Tuning::default() }).expect("pipelines");
    assert_eq!(gpu.field_path(), FieldPath::U32);
    let mut r = rng(12);
    // The 64-bit path's edge cases (each MSM on this path takes lavapipe
    // seconds, so they share MSMs): sizes 1, 2, 3 and the workgroup size
    // (64) plus and minus one; zero, 1 and p - 1 scalars; and at 65 points
    // infinity among the bases, a point repeated with the same digits (a
    // bucket doubling) and its negation; opposite points cancelling after.
    for n in [0usize, 1, 2, 3, 63, 64, 65] {
        let mut bases = random_bases(&mut r, n);
        let mut scalars = random_scalars(&mut r, n);
        if n > 2 {
            scalars[0] = Fr::zero();
            scalars[1] = -Fr::from(1u64);
            scalars[2] = Fr::from(1u64);
        }
        if n == 65 {
            let p = bases[10];
            bases[11..16].copy_from_slice(&[p, p, -p, G1Affine::zero(), G1Affine::zero()]);
            (scalars[11], scalars[12]) = (scalars[10], scalars[10]);
        }
        assert_eq!(gpu.msm(&bases, &scalars).expect("GPU MSM"), reference(&bases, &scalars), "n = {n}");
    }
    let p = random_bases(&mut r, 1)[0];
    let cancelling = gpu.msm(&[p, -p], &[Fr::from(5u64), Fr::from(5u64)]).expect("GPU MSM");
    assert_eq!(cancelling, G1Projective::zero(), "opposite points cancel");
}

#[test]
fn small_sizes_match_arkworks() {
    // 63, 64, 65: the kernels' workgroup size (64) plus and minus one.
    let mut r = rng(1);
    for n in [0usize, 1, 2, 3, 31, 32, 33, 63, 64, 65] {
        let bases = random_bases(&mut r, n);
        let scalars = random_scalars(&mut r, n);
        check_all("random", &bases, &scalars);
    }
}

#[test]
fn a_thousand_points_match_arkworks_and_a_naive_sum() {
    let Some(ctx) = test_context() else { return };
    let mut r = rng(2);
    let bases = random_bases(&mut r, 1000);
    let scalars = random_scalars(&mut r, 1000);
    let expected = naive(&bases, &scalars);
    assert_eq!(reference(&bases, &scalars), expected);
    let gpu = GpuMsm::new(ctx).expect("pipelines");
    assert_eq!(gpu.msm(&bases, &scalars).expect("GPU MSM"), expected);
}

#[test]
fn edge_scalars_match_arkworks() {
    let mut r = rng(3);
    let n = 40;
    let bases = random_bases(&mut r, n);
    let minus_one = -Fr::from(1u64);
    let cases: Vec<(&str, Vec<Fr>)> = vec![
        ("zeros", vec![Fr::zero(); n]),
        ("ones", vec![Fr::from(1u64); n]),
        ("p - 1", vec![minus_one; n]),
        ("all equal", vec![Fr::rand(&mut r); n]),
        (
            "skewed",
            (0..n)
                .map(|i| if i.is_multiple_of(10) { Fr::rand(&mut r) } else { Fr::from(r.gen_range(0u64..4)) })
                .collect(),
        ),
        ("mixed edges", (0..n).map(|i| [Fr::zero(), Fr::from(1u64), minus_one, Fr::from(2u64)][i % 4]).collect()),
        (
            "around (p - 1) / 2",
            (0..n)
                .map(|i| Fr::from_bigint(Fr::MODULUS_MINUS_ONE_DIV_TWO).unwrap_or_default() + Fr::from(i as u64))
                .collect(),
        ),
    ];
    for (label, scalars) in cases {
        check_all(label, &bases, &scalars);
    }
}

#[test]
fn repeated_bases_and_infinity_match_arkworks() {
    let mut r = rng(4);
    let mut bases = random_bases(&mut r, 8);
    let p = bases[0];
    bases.extend([p, p, -p, G1Affine::zero(), G1Affine::zero(), p]);
    let mut scalars = random_scalars(&mut r, bases.len());
    scalars[9] = scalars[0]; // p + p with the same digit: bucket doubling
    scalars[10] = scalars[0]; // and its negation cancelling
    check_all("repeats and infinity", &bases, &scalars);
    // Only opposite points: the sum is the point at infinity.
    check_all("cancelling", &[p, -p], &[Fr::from(5u64), Fr::from(5u64)]);
}

#[test]
fn every_window_width_and_batch_split_matches() {
    let Some(ctx) = test_context() else { return };
    let mut r = rng(5);
    let n = 70;
    let bases = random_bases(&mut r, n);
    let scalars = random_scalars(&mut r, n);
    let expected = reference(&bases, &scalars).into_affine();
    for (window_bits, max_batch) in [(2, None), (3, Some(16)), (5, Some(33)), (8, None), (13, Some(64)), (16, None)] {
        let gpu = GpuMsm::with_tuning(ctx.clone(), Tuning { window_bits: Some(window_bits), max_batch, field: None })
            .expect("pipelines");
        let got = gpu.msm(&bases, &scalars).expect("GPU MSM");
        assert_eq!(got.into_affine(), expected, "c = {window_bits}, batch {max_batch:?}");
    }
}

#[test]
fn one_huge_bucket_is_reduced_over_several_levels() {
    // 2,000 equal scalars put every point of each window in one bucket: the
    // segmented reduction needs three levels (2000 -> 63 -> 2).
    let Some(ctx) = test_context() else { return };
    let mut r = rng(6);
    let bases = random_bases(&mut r, 2000);
    let scalars = vec![Fr::from(3u64); 2000];
    let gpu = GpuMsm::with_tuning(ctx, Tuning { window_bits: Some(2), ..Tuning::default() }).expect("pipelines");
    assert_eq!(gpu.msm(&bases, &scalars).expect("GPU MSM"), reference(&bases, &scalars));
}

#[test]
fn resident_bases_are_reused_and_split() {
    let Some(ctx) = test_context() else { return };
    let mut r = rng(7);
    let bases = random_bases(&mut r, 50);
    let gpu = GpuMsm::with_tuning(ctx, Tuning { max_batch: Some(20), ..Tuning::default() }).expect("pipelines");
    let set = gpu.upload(&bases).expect("upload");
    assert_eq!(set.len(), 50);
    assert_eq!(set.buffer_count(), 3);
    for m in [50, 50, 21, 20, 1, 0] {
        let scalars = random_scalars(&mut r, m);
        let got = gpu.msm_resident(&set, &scalars).expect("resident MSM");
        assert_eq!(got, reference(&bases[..m], &scalars), "m = {m}");
    }
    assert!(gpu.msm_resident(&set, &random_scalars(&mut r, 51)).is_err());
}

#[test]
fn results_are_deterministic_across_runs() {
    let Some(ctx) = test_context() else { return };
    let mut r = rng(8);
    let bases = random_bases(&mut r, 300);
    let scalars: Vec<Fr> =
        (0..300usize).map(|i| if i.is_multiple_of(2) { Fr::from(7u64) } else { Fr::rand(&mut r) }).collect();
    let gpu = GpuMsm::new(ctx).expect("pipelines");
    let first = gpu.msm(&bases, &scalars).expect("GPU MSM").into_affine();
    for _ in 0..3 {
        assert_eq!(gpu.msm(&bases, &scalars).expect("GPU MSM").into_affine(), first);
    }
    assert_eq!(MsmEngine::cpu().msm_g1(&bases, &scalars).expect("CPU MSM").into_affine(), first);
}

#[test]
fn engine_gpu_backend_matches_the_cpu_engine() {
    let Some(ctx) = test_context() else {
        return;
    };
    let engine = MsmEngine::new(Backend::Gpu).expect("a GPU engine where an adapter exists");
    assert_eq!(engine.backend(), ResolvedBackend::Gpu);
    let auto = MsmEngine::new(Backend::Auto).expect("auto never fails");
    let expected = if ctx.is_software() { ResolvedBackend::Cpu } else { ResolvedBackend::Gpu };
    assert_eq!(auto.backend(), expected, "auto takes hardware adapters only");
    let cpu = MsmEngine::cpu();
    let mut r = rng(9);
    for n in [0usize, 1, 33, 200] {
        let bases = random_bases(&mut r, n);
        let scalars = random_scalars(&mut r, n);
        let expected = cpu.msm_g1(&bases, &scalars).expect("CPU MSM");
        assert_eq!(engine.msm_g1(&bases, &scalars).expect("GPU MSM"), expected, "n = {n}");
        let set = engine.upload_g1(bases.clone()).expect("upload");
        assert_eq!(engine.msm_g1_resident(&set, &scalars).expect("resident"), expected, "resident n = {n}");
    }
}

#[test]
fn a_device_fault_mid_msm_is_recomputed_on_the_cpu() {
    if test_context().is_none() {
        return;
    }
    let engine = MsmEngine::new(Backend::Gpu).expect("GPU engine");
    let mut r = rng(10);
    let bases = random_bases(&mut r, 64);
    let scalars = random_scalars(&mut r, 64);
    let expected = reference(&bases, &scalars);

    // The engine recomputes on the CPU, for plain and resident MSMs...
    let before = engine.gpu_fallbacks();
    assert!(engine.inject_faults(FaultPlan { runs: 1, at_step: usize::MAX }));
    assert_eq!(engine.msm_g1(&bases, &scalars).expect("CPU recompute"), expected);
    let set = engine.upload_g1(bases.clone()).expect("upload");
    assert!(engine.inject_faults(FaultPlan { runs: 1, at_step: usize::MAX }));
    assert_eq!(engine.msm_g1_resident(&set, &scalars).expect("CPU recompute"), expected);
    assert_eq!(engine.gpu_fallbacks() - before, 2, "each recompute is counted");
    assert_eq!(engine.msm_g1_resident(&set, &scalars).unwrap(), expected, "the next run is clean");
    assert_eq!(engine.gpu_fallbacks() - before, 2);

    // ...wherever in the run the device fails: before any dispatch, after
    // some, after all (the same fault plan the hash pool takes).
    for at_step in [0, 1, 2, 5, usize::MAX] {
        let before = engine.gpu_fallbacks();
        assert!(engine.inject_faults(FaultPlan::once_at(at_step)));
        assert_eq!(engine.msm_g1_resident(&set, &scalars).unwrap(), expected, "fault before dispatch {at_step}");
        assert_eq!(engine.gpu_fallbacks() - before, 1, "fault before dispatch {at_step}");
    }
    assert_eq!(engine.backend(), ResolvedBackend::Gpu, "an injected fault is not a lost device");
    assert!(engine.device().is_some());
}

/// Bases uploaded to a lost device (another kernel on the same context
/// met the loss first) are kept on the CPU, not refused: the engine takes
/// a fresh device, and the MSMs on the set give the reference result.
#[test]
fn bases_uploaded_to_a_lost_device_are_kept_and_the_device_replaced() {
    if test_context().is_none() {
        return;
    }
    let ctx = Arc::new(GpuContext::new().expect("an adapter exists"));
    let engine = MsmEngine::on_context(ctx.clone()).expect("an engine on the context");
    ctx.device.destroy();
    let _ = ctx.device.poll(wgpu::PollType::Poll);
    assert!(ctx.is_lost());
    let mut r = rng(12);
    let bases = random_bases(&mut r, 40);
    let scalars = random_scalars(&mut r, 40);
    let set = engine.upload_g1(bases.clone()).expect("kept, not refused");
    assert_eq!(engine.msm_g1_resident(&set, &scalars).unwrap(), reference(&bases, &scalars));
}

#[test]
fn invalid_bases_are_rejected_before_any_work() {
    if test_context().is_none() {
        return;
    }
    let engine = MsmEngine::new(Backend::Gpu).expect("GPU engine");
    let mut r = rng(11);
    let mut bases = random_bases(&mut r, 5);
    bases[3] = G1Affine::new_unchecked(bases[3].x, bases[3].x);
    let scalars = random_scalars(&mut r, 5);
    assert!(matches!(engine.msm_g1(&bases, &scalars), Err(MsmError::InvalidBase { index: 3, .. })));
    assert!(matches!(engine.upload_g1(bases), Err(MsmError::InvalidBase { index: 3, .. })));
    assert!(matches!(
        engine.msm_g1(&random_bases(&mut r, 2), &scalars),
        Err(MsmError::LengthMismatch { bases: 2, scalars: 5 })
    ));
}
