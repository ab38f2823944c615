//! The CPU MSM engine against arkworks' `VariableBaseMSM::msm` and a naive
//! sum, on fresh random inputs and the edge cases batch-affine and GLV
//! must survive: repeated bases, P/-P pairs, infinity, 0/1/p-1 scalars,
//! equal and skewed scalars, all window sizes.

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::short_weierstrass::{Affine, Projective};
use ark_ec::{AffineRepr, VariableBaseMSM};
use ark_ff::{One, UniformRand, Zero};
use causality_vm::msm::cpu::{CpuMsm, MsmCurve};
use causality_vm::msm::{MsmEngine, MsmError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::msm_support;

use msm_support::random_points;

const SIZES: &[usize] = &[0, 1, 2, 3, 31, 32, 33, 63, 64, 65, 255, 256, 257, 1000];

fn rng() -> ChaCha20Rng {
    // Fresh inputs every run; the seed is printed so a failure can be replayed.
    let seed = std::env::var("CVM_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    eprintln!("CVM_TEST_SEED={seed}");
    ChaCha20Rng::seed_from_u64(seed)
}

fn naive<P: MsmCurve>(bases: &[Affine<P>], scalars: &[Fr]) -> Projective<P> {
    bases.iter().zip(scalars).map(|(b, s)| *b * s).sum()
}

fn arkworks<P: MsmCurve>(bases: &[Affine<P>], scalars: &[Fr]) -> Projective<P> {
    Projective::<P>::msm(bases, scalars).expect("equal lengths")
}

#[derive(Clone, Copy, Debug)]
enum Scalars {
    Random,
    Zero,
    One,
    MinusOne,
    AllEqual,
    Skewed,
}

const ALL_SCALARS: [Scalars; 6] =
    [Scalars::Random, Scalars::Zero, Scalars::One, Scalars::MinusOne, Scalars::AllEqual, Scalars::Skewed];

fn scalars(rng: &mut ChaCha20Rng, kind: Scalars, n: usize) -> Vec<Fr> {
    let shared = Fr::rand(rng);
    (0..n)
        .map(|_| match kind {
            Scalars::Random => Fr::rand(rng),
            Scalars::Zero => Fr::zero(),
            Scalars::One => Fr::one(),
            Scalars::MinusOne => -Fr::one(),
            Scalars::AllEqual => shared,
            // Most scalars tiny (many land in the same few buckets), a few full-size.
            Scalars::Skewed => {
                if rng.gen_bool(0.9) {
                    Fr::from(rng.gen_range(0u64..16))
                } else {
                    Fr::rand(rng)
                }
            }
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Bases {
    Random,
    Repeated,
    PlusMinus,
    WithInfinity,
}

const ALL_BASES: [Bases; 4] = [Bases::Random, Bases::Repeated, Bases::PlusMinus, Bases::WithInfinity];

fn bases<P: MsmCurve>(rng: &mut ChaCha20Rng, kind: Bases, n: usize) -> Vec<Affine<P>> {
    let mut points = random_points::<P>(rng, n);
    match kind {
        Bases::Random => {}
        Bases::Repeated => {
            // A handful of distinct points repeated many times.
            let few = random_points::<P>(rng, 3);
            for (i, p) in points.iter_mut().enumerate() {
                *p = few[i % 3];
            }
        }
        Bases::PlusMinus => {
            for i in (1..n).step_by(2) {
                points[i] = -points[i - 1];
            }
        }
        Bases::WithInfinity => {
            for p in points.iter_mut().step_by(3) {
                *p = Affine::<P>::zero();
            }
        }
    }
    points
}

fn check_all_cases<P: MsmCurve>(engine: &CpuMsm, sizes: &[usize], with_naive_up_to: usize) {
    let mut rng = rng();
    for &n in sizes {
        for b in ALL_BASES {
            for s in ALL_SCALARS {
                let points = bases::<P>(&mut rng, b, n);
                let ks = scalars(&mut rng, s, n);
                let ours = engine.msm(&points, &ks);
                let expected = arkworks(&points, &ks);
                assert_eq!(ours, expected, "n={n} bases={b:?} scalars={s:?} vs arkworks");
                if n <= with_naive_up_to {
                    assert_eq!(ours, naive(&points, &ks), "n={n} bases={b:?} scalars={s:?} vs naive");
                }
            }
        }
    }
}

#[test]
fn g1_matches_arkworks_and_naive_on_edge_sizes() {
    check_all_cases::<ark_bn254::g1::Config>(&CpuMsm::new(), SIZES, 257);
}

#[test]
fn g2_matches_arkworks_and_naive_on_edge_sizes() {
    check_all_cases::<ark_bn254::g2::Config>(&CpuMsm::new(), &[0, 1, 2, 3, 31, 32, 33, 64, 257], 33);
}

#[test]
fn g1_every_window_size_and_thread_count() {
    let mut rng = rng();
    let n = 700;
    for threads in [1, 3] {
        for c in 2..=16 {
            let engine = CpuMsm::with_threads(threads).with_window_bits(c);
            for (b, s) in [(Bases::Random, Scalars::Random), (Bases::Repeated, Scalars::Skewed)] {
                let points = bases::<ark_bn254::g1::Config>(&mut rng, b, n);
                let ks = scalars(&mut rng, s, n);
                assert_eq!(engine.msm_g1(&points, &ks), arkworks(&points, &ks), "c={c} threads={threads} {b:?} {s:?}");
            }
        }
    }
}

#[test]
fn g1_large_random_and_repeated() {
    let mut rng = rng();
    let n = 1 << 16;
    let engine = CpuMsm::new();
    let points = random_points::<ark_bn254::g1::Config>(&mut rng, n);
    let ks = scalars(&mut rng, Scalars::Random, n);
    let expected = arkworks(&points, &ks);
    assert_eq!(engine.msm_g1(&points, &ks), expected);
    // Determinism: same inputs, same point, also with another thread count.
    assert_eq!(engine.msm_g1(&points, &ks), expected);
    assert_eq!(CpuMsm::with_threads(5).msm_g1(&points, &ks), expected);
    // One point 2^16 times with skewed scalars: the collision paths at scale.
    let same = vec![points[7]; n];
    let skewed = scalars(&mut rng, Scalars::Skewed, n);
    assert_eq!(engine.msm_g1(&same, &skewed), points[7] * skewed.iter().sum::<Fr>());
}

#[test]
fn g2_medium_random() {
    let mut rng = rng();
    let n = 3000;
    let points = random_points::<ark_bn254::g2::Config>(&mut rng, n);
    let ks = scalars(&mut rng, Scalars::Random, n);
    assert_eq!(CpuMsm::new().msm_g2(&points, &ks), arkworks(&points, &ks));
}

#[test]
fn prepared_bases_match_and_accept_shorter_scalars() {
    let mut rng = rng();
    let engine = CpuMsm::new();
    let points = random_points::<ark_bn254::g1::Config>(&mut rng, 600);
    let prepared = engine.prepare(points.clone());
    assert_eq!(prepared.len(), 600);
    for n in [0, 1, 33, 600] {
        let ks = scalars(&mut rng, Scalars::Random, n);
        assert_eq!(engine.msm_prepared(&prepared, &ks), arkworks(&points[..n], &ks), "n={n}");
    }
}

#[test]
fn engine_front_end_uses_the_cpu_backend() {
    let mut rng = rng();
    let engine = MsmEngine::cpu();
    let g1: Vec<G1Affine> = random_points::<ark_bn254::g1::Config>(&mut rng, 100);
    let g2: Vec<G2Affine> = random_points::<ark_bn254::g2::Config>(&mut rng, 20);
    let ks = scalars(&mut rng, Scalars::Random, 100);
    let r1: G1Projective = engine.msm_g1(&g1, &ks).expect("valid input");
    assert_eq!(r1, arkworks(&g1, &ks));
    let r2: G2Projective = engine.msm_g2(&g2, &ks[..20]).expect("valid input");
    assert_eq!(r2, arkworks(&g2, &ks[..20]));
    assert!(engine.msm_g1(&[], &[]).expect("empty is fine").is_zero());
    assert!(engine.msm_g1(&g1, &ks[..5]).is_err());
}

#[test]
fn resident_g2_bases_are_validated_once_and_reused() {
    let mut rng = rng();
    let engine = MsmEngine::cpu();
    let g2: Vec<G2Affine> = random_points::<ark_bn254::g2::Config>(&mut rng, 40);
    let resident = engine.upload_g2(g2.clone()).expect("valid bases");
    assert_eq!(resident.len(), 40);
    for n in [0, 1, 3, 33, 40] {
        let ks = scalars(&mut rng, Scalars::Random, n);
        assert_eq!(engine.msm_g2_resident(&resident, &ks).unwrap(), arkworks(&g2[..n], &ks), "n={n}");
    }
    let too_many = scalars(&mut rng, Scalars::Random, 41);
    assert!(matches!(
        engine.msm_g2_resident(&resident, &too_many),
        Err(MsmError::LengthMismatch { bases: 40, scalars: 41 })
    ));
    // An off-curve base is refused at upload, before any work.
    let mut bad = g2.clone();
    bad[7].x.c0 += ark_bn254::Fq::from(1u64);
    assert!(matches!(engine.upload_g2(bad), Err(MsmError::InvalidBase { index: 7, .. })));
}
