//! Every WGSL field and curve operation against ark-ff / ark-ec, on both
//! field paths the adapter supports, on random and edge-case inputs.

use std::sync::Arc;

use ark_bn254::{Fq, G1Affine, G1Projective};
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup};
use ark_ff::{AdditiveGroup, BigInt, Field, PrimeField, UniformRand, Zero};
use causality_vm::gpu::{test_context, GpuContext};
use causality_vm::msm::gpu::convert::{fq_to_words, xyzz_from_words, xyzz_words};
use causality_vm::msm::gpu::shaders::{bigint_words, CurveFormulas};
use causality_vm::msm::gpu::testing::{curve_op, field_op, CurveOp, FieldOp};
use causality_vm::msm::gpu::FieldPath;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn paths(ctx: &Arc<GpuContext>) -> Vec<FieldPath> {
    [FieldPath::U32, FieldPath::U64].into_iter().filter(|p| p.supported_by(ctx.features)).collect()
}

/// Edge values (0, 1, 2, p-1, p-2, R mod p, R^2 mod p, (p-1)/2, 2^255 mod p
/// style large values) followed by random elements.
fn operands(rng: &mut ChaCha20Rng, random: usize) -> Vec<Fq> {
    let mut v = vec![
        Fq::ZERO,
        Fq::ONE,
        Fq::from(2u64),
        -Fq::ONE,
        -Fq::from(2u64),
        Fq::from_bigint(Fq::R).unwrap_or_default(),
        Fq::from_bigint(Fq::R2).unwrap_or_default(),
        Fq::from_bigint(Fq::MODULUS_MINUS_ONE_DIV_TWO).unwrap_or_default(),
        Fq::from(u64::MAX),
        Fq::new_unchecked(BigInt([1, 0, 0, 0])),
        Fq::new_unchecked(BigInt([u64::MAX, 0, 0, 0])),
    ];
    v.extend((0..random).map(|_| Fq::rand(rng)));
    v
}

fn words(v: &[Fq]) -> Vec<[u32; 8]> {
    v.iter().map(fq_to_words).collect()
}

/// All ordered pairs of edge values plus random pairs.
fn pairs(rng: &mut ChaCha20Rng) -> (Vec<Fq>, Vec<Fq>) {
    let base = operands(rng, 0);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for x in &base {
        for y in &base {
            a.push(*x);
            b.push(*y);
        }
    }
    a.extend((0..200).map(|_| Fq::rand(rng)));
    b.extend((0..200).map(|_| Fq::rand(rng)));
    (a, b)
}

fn check_binary(op: FieldOp, expected: impl Fn(Fq, Fq) -> Fq) {
    let Some(ctx) = test_context() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(op as u64);
    let (a, b) = pairs(&mut rng);
    for path in paths(&ctx) {
        let got = field_op(&ctx, path, op, &words(&a), &words(&b)).expect("field kernel runs");
        for i in 0..a.len() {
            assert_eq!(got[i], fq_to_words(&expected(a[i], b[i])), "{op:?} {path:?} on {} and {}", a[i], b[i]);
        }
    }
}

fn check_unary(op: FieldOp, input: impl Fn(&Fq) -> [u32; 8], expected: impl Fn(&Fq) -> [u32; 8]) {
    let Some(ctx) = test_context() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(100 + op as u64);
    let a = operands(&mut rng, 200);
    let lhs: Vec<[u32; 8]> = a.iter().map(&input).collect();
    for path in paths(&ctx) {
        let got = field_op(&ctx, path, op, &lhs, &lhs).expect("field kernel runs");
        for (i, x) in a.iter().enumerate() {
            assert_eq!(got[i], expected(x), "{op:?} {path:?} on {x}");
        }
    }
}

#[test]
fn add_matches_ark_ff() {
    check_binary(FieldOp::Add, |a, b| a + b);
}

#[test]
fn sub_matches_ark_ff() {
    check_binary(FieldOp::Sub, |a, b| a - b);
}

#[test]
fn mul_matches_ark_ff() {
    check_binary(FieldOp::Mul, |a, b| a * b);
}

#[test]
fn square_matches_ark_ff() {
    check_unary(FieldOp::Square, fq_to_words, |a| fq_to_words(&a.square()));
}

#[test]
fn double_and_negate_match_ark_ff() {
    check_unary(FieldOp::Double, fq_to_words, |a| fq_to_words(&a.double()));
    check_unary(FieldOp::Neg, fq_to_words, |a| fq_to_words(&-*a));
}

#[test]
fn inverse_matches_ark_ff() {
    // Zero has no inverse; the kernel maps it to zero like a^(p-2) does.
    check_unary(FieldOp::Inverse, fq_to_words, |a| fq_to_words(&a.inverse().unwrap_or(Fq::ZERO)));
}

#[test]
fn montgomery_conversions_match_ark_ff() {
    // to: canonical integer -> Montgomery words; from: the reverse.
    check_unary(FieldOp::ToMontgomery, |a| bigint_words(&a.into_bigint()), fq_to_words);
    check_unary(FieldOp::FromMontgomery, fq_to_words, |a| bigint_words(&a.into_bigint()));
}

fn random_point(rng: &mut ChaCha20Rng) -> G1Projective {
    // A random multiple of the generator, with a non-trivial Z.
    let p = G1Projective::generator() * ark_bn254::Fr::rand(rng);
    let z = Fq::rand(rng);
    G1Projective::new_unchecked(p.x * z.square(), p.y * z.square() * z, p.z * z)
}

fn affine_slot(p: &G1Affine) -> [u32; 32] {
    let mut slot = [0u32; 32];
    if let Some((x, y)) = p.xy() {
        slot[..8].copy_from_slice(&fq_to_words(&x));
        slot[8..16].copy_from_slice(&fq_to_words(&y));
    }
    slot
}

fn run_curve(op: CurveOp, lhs: &[G1Projective], rhs: &[[u32; 32]]) -> Option<Vec<Vec<G1Projective>>> {
    let ctx = test_context()?;
    let lhs_words: Vec<[u32; 32]> = lhs.iter().map(xyzz_words).collect();
    Some(
        paths(&ctx)
            .into_iter()
            .flat_map(|path| CurveFormulas::ALL.map(|formulas| (path, formulas)))
            .map(|(path, formulas)| {
                curve_op(&ctx, path, formulas, op, &lhs_words, rhs)
                    .expect("curve kernel runs")
                    .iter()
                    .map(|w| xyzz_from_words(w).expect("a valid XYZZ point"))
                    .collect()
            })
            .collect(),
    )
}

/// Pairs covering infinity on either side, equal points, opposite points and
/// random points.
fn point_pairs(rng: &mut ChaCha20Rng) -> (Vec<G1Projective>, Vec<G1Projective>) {
    let p = random_point(rng);
    let q = random_point(rng);
    let zero = G1Projective::zero();
    let mut a = vec![zero, p, zero, p, p, p, -q];
    let mut b = vec![zero, zero, q, p, -p, p.into_affine().into_group(), q];
    for _ in 0..40 {
        a.push(random_point(rng));
        b.push(random_point(rng));
    }
    (a, b)
}

#[test]
fn xyzz_addition_matches_arkworks() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (a, b) = point_pairs(&mut rng);
    let rhs: Vec<[u32; 32]> = b.iter().map(xyzz_words).collect();
    let Some(results) = run_curve(CurveOp::Add, &a, &rhs) else { return };
    for got in results {
        for i in 0..a.len() {
            assert_eq!(got[i], a[i] + b[i], "pair {i}");
        }
    }
}

#[test]
fn mixed_addition_matches_arkworks() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let (a, b) = point_pairs(&mut rng);
    let rhs: Vec<[u32; 32]> = b.iter().map(|q| affine_slot(&q.into_affine())).collect();
    let Some(results) = run_curve(CurveOp::AddAffine, &a, &rhs) else { return };
    for got in results {
        for i in 0..a.len() {
            assert_eq!(got[i], a[i] + b[i], "pair {i}");
        }
    }
}

#[test]
fn doubling_matches_arkworks() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let (a, b) = point_pairs(&mut rng);
    let rhs: Vec<[u32; 32]> = b.iter().map(|q| affine_slot(&q.into_affine())).collect();
    let Some(doubled) = run_curve(CurveOp::Double, &a, &rhs) else { return };
    let Some(doubled_affine) = run_curve(CurveOp::DoubleAffine, &a, &rhs) else { return };
    for (got, got_affine) in doubled.iter().zip(&doubled_affine) {
        for i in 0..a.len() {
            assert_eq!(got[i], a[i].double(), "xyzz {i}");
            assert_eq!(got_affine[i], b[i].double(), "affine {i}");
        }
    }
}
