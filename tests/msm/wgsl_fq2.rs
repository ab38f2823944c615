//! Every WGSL Fq2 operation (G2's coordinate field) against ark-ff, on both
//! field paths the adapter supports, on edge and random inputs.

use ark_bn254::{Fq, Fq2};
use ark_ff::{AdditiveGroup, Field, UniformRand};
use causality_vm::gpu::test_context;
use causality_vm::msm::gpu::convert::fq_to_words;
use causality_vm::msm::gpu::testing::{fq2_op, Fq2Op};
use causality_vm::msm::gpu::FieldPath;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn words(v: &Fq2) -> [u32; 16] {
    let mut w = [0u32; 16];
    w[..8].copy_from_slice(&fq_to_words(&v.c0));
    w[8..].copy_from_slice(&fq_to_words(&v.c1));
    w
}

/// Pairs of edge values (components 0, 1, p − 1, 2 and a random one, in
/// every combination) and random pairs.
fn pairs(rng: &mut ChaCha20Rng) -> (Vec<Fq2>, Vec<Fq2>) {
    let parts = [Fq::ZERO, Fq::ONE, -Fq::ONE, Fq::from(2u64), Fq::rand(rng)];
    let edges: Vec<Fq2> = parts.iter().flat_map(|a| parts.iter().map(move |b| Fq2::new(*a, *b))).collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, x) in edges.iter().enumerate() {
        a.push(*x);
        b.push(edges[(i * 7 + 3) % edges.len()]);
    }
    a.extend((0..100).map(|_| Fq2::rand(rng)));
    b.extend((0..100).map(|_| Fq2::rand(rng)));
    (a, b)
}

#[test]
fn every_fq2_op_matches_ark_ff() {
    let Some(ctx) = test_context() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let (a, b) = pairs(&mut rng);
    let (lhs, rhs): (Vec<[u32; 16]>, Vec<[u32; 16]>) = (a.iter().map(words).collect(), b.iter().map(words).collect());
    type Expected = fn(Fq2, Fq2) -> Fq2;
    let ops: [(Fq2Op, Expected); 7] = [
        (Fq2Op::Add, |a, b| a + b),
        (Fq2Op::Sub, |a, b| a - b),
        (Fq2Op::Mul, |a, b| a * b),
        (Fq2Op::Square, |a, _| a.square()),
        (Fq2Op::Neg, |a, _| -a),
        (Fq2Op::Double, |a, _| a.double()),
        (Fq2Op::Inverse, |a, _| a.inverse().unwrap_or(Fq2::ZERO)),
    ];
    for path in [FieldPath::U32, FieldPath::U64].into_iter().filter(|p| p.supported_by(ctx.features)) {
        for (op, expected) in ops {
            let got = fq2_op(&ctx, path, op, &lhs, &rhs).expect("the Fq2 kernel runs");
            for i in 0..a.len() {
                assert_eq!(got[i], words(&expected(a[i], b[i])), "{op:?} {path:?} on {} and {}", a[i], b[i]);
            }
        }
    }
}
