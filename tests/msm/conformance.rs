//! One conformance suite for the MSM engine, run against every backend: the
//! CPU on each of its paths (IFMA lanes where the processor has them, and
//! the scalar path) and the GPU (lavapipe in CI, small sizes). The reference
//! is arkworks' MSM, and a naive double-and-add for the smallest sizes. One
//! set of edge cases, one seed policy (`CVM_TEST_SEED` replays a run).

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup, VariableBaseMSM};
use ark_ff::{Field, One, UniformRand, Zero};
use causality_vm::msm::{MsmEngine, MsmTuning};
use causality_vm::{Backend, ResolvedBackend};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::seed;

/// Scalars that stress digit recoding: zero, one, r - 1, one repeated
/// value, small values, single high bits, random.
fn scalar_sets(rng: &mut ChaCha8Rng, n: usize) -> Vec<(&'static str, Vec<Fr>)> {
    let minus_one = -Fr::one();
    let repeated = Fr::rand(rng);
    vec![
        ("random", (0..n).map(|_| Fr::rand(rng)).collect()),
        ("zero", vec![Fr::zero(); n]),
        ("one", vec![Fr::one(); n]),
        ("r-1", vec![minus_one; n]),
        ("repeated", vec![repeated; n]),
        ("small", (0..n).map(|_| Fr::from(rng.gen_range(0u64..16))).collect()),
        ("high bit", (0..n).map(|i| Fr::from(2u64).pow([250 + (i as u64 % 4)])).collect()),
    ]
}

/// Bases with structure: random, one point repeated, P and -P pairs, and
/// the point at infinity mixed in.
fn g1_base_sets(rng: &mut ChaCha8Rng, n: usize) -> Vec<(&'static str, Vec<G1Affine>)> {
    let random: Vec<G1Affine> = (0..n).map(|_| (G1Projective::generator() * Fr::rand(rng)).into_affine()).collect();
    let repeated = vec![random.first().copied().unwrap_or_default(); n];
    let pairs: Vec<G1Affine> = (0..n).map(|i| if i % 2 == 0 { random[i] } else { -random[i - 1] }).collect();
    let with_infinity: Vec<G1Affine> =
        random.iter().enumerate().map(|(i, p)| if i % 3 == 1 { G1Affine::zero() } else { *p }).collect();
    vec![("random", random), ("repeated", repeated), ("±pairs", pairs), ("infinity", with_infinity)]
}

fn naive_g1(bases: &[G1Affine], scalars: &[Fr]) -> G1Projective {
    bases.iter().zip(scalars).map(|(b, s)| b.into_group() * s).sum()
}

/// Every G1 case through plain and resident MSMs, against arkworks.
fn conform_g1(name: &str, engine: &MsmEngine, sizes: &[usize], rng: &mut ChaCha8Rng) {
    for &n in sizes {
        for (bases_kind, bases) in g1_base_sets(rng, n) {
            let resident = engine.upload_g1(bases.clone()).expect("valid bases upload");
            for (scalars_kind, scalars) in scalar_sets(rng, n) {
                let want = G1Projective::msm(&bases, &scalars).unwrap();
                if n <= 8 {
                    assert_eq!(want, naive_g1(&bases, &scalars), "arkworks itself, n={n}");
                }
                let what = format!("{name}: G1 n={n}, {bases_kind} bases, {scalars_kind} scalars");
                assert_eq!(engine.msm_g1(&bases, &scalars).unwrap(), want, "{what}");
                assert_eq!(engine.msm_g1_resident(&resident, &scalars).unwrap(), want, "{what}, resident");
            }
            if n > 1 {
                // Fewer scalars than resident bases use a prefix of them.
                let scalars: Vec<Fr> = (0..n / 2).map(|_| Fr::rand(rng)).collect();
                let want = G1Projective::msm(&bases[..n / 2], &scalars).unwrap();
                assert_eq!(engine.msm_g1_resident(&resident, &scalars).unwrap(), want, "{name}: G1 prefix n={n}");
            }
        }
    }
    // Bad input is refused the same way on every backend.
    let bases = vec![G1Affine::generator(); 3];
    assert!(engine.msm_g1(&bases, &[Fr::one(); 2]).is_err(), "{name}: length mismatch");
    let resident = engine.upload_g1(bases).unwrap();
    assert!(engine.msm_g1_resident(&resident, &[Fr::one(); 4]).is_err(), "{name}: more scalars than bases");
}

fn conform_g2(name: &str, engine: &MsmEngine, sizes: &[usize], rng: &mut ChaCha8Rng) {
    for &n in sizes {
        let bases: Vec<G2Affine> = (0..n).map(|_| (G2Projective::generator() * Fr::rand(rng)).into_affine()).collect();
        let resident = engine.upload_g2(bases.clone()).unwrap();
        for (kind, scalars) in scalar_sets(rng, n) {
            let want = G2Projective::msm(&bases, &scalars).unwrap();
            assert_eq!(engine.msm_g2(&bases, &scalars).unwrap(), want, "{name}: G2 n={n} {kind}");
            assert_eq!(engine.msm_g2_resident(&resident, &scalars).unwrap(), want, "{name}: G2 resident n={n} {kind}");
        }
    }
}

#[test]
fn the_cpu_engine_conforms_on_every_path() {
    seed::require_cpu_features();
    let (mut rng, _seed) = seed::rng("the_cpu_engine_conforms_on_every_path");
    let engine = MsmEngine::cpu();
    assert_eq!(engine.backend(), ResolvedBackend::Cpu);
    let sizes = [0, 1, 2, 3, 7, 8, 9, 16, 31, 33, 100, 257, 1000];
    // The IFMA lanes where the processor has them (else this is the scalar
    // path again), then the scalar path. The switch is process-wide; other
    // tests running meanwhile get bit-identical results either way.
    for scalar_only in [false, true] {
        MsmTuning { scalar_only, ..MsmTuning::current() }.apply();
        let name = if scalar_only { "cpu scalar" } else { "cpu default" };
        conform_g1(name, &engine, &sizes, &mut rng);
        // G2's batches take the lanes too (since 2026-12-03).
        conform_g2(name, &engine, &[0, 1, 2, 3, 9, 33, 100], &mut rng);
    }
    MsmTuning { scalar_only: false, ..MsmTuning::current() }.apply();
}

#[test]
fn the_gpu_engine_conforms() {
    if causality_vm::gpu::test_context().is_none() {
        return;
    }
    let (mut rng, _seed) = seed::rng("the_gpu_engine_conforms");
    let engine = MsmEngine::new(Backend::Gpu).expect("an adapter exists, so the GPU engine must build");
    assert_eq!(engine.backend(), ResolvedBackend::Gpu);
    // Small sizes: lavapipe runs the kernels on the CPU (compiling them is
    // most of this test's time, shared with the other GPU tests here).
    conform_g1("gpu", &engine, &[0, 1, 2, 3, 8, 33, 257], &mut rng);
    assert_eq!(engine.gpu_fallbacks(), 0, "the GPU did the work");
    conform_g2("gpu engine", &engine, &[0, 1, 3], &mut rng);
}
