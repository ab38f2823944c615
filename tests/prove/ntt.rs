//! The NTT conformance suite, run against every backend of the prover's NTT
//! engine (the CPU plan, and the GPU where there is one, lavapipe in CI)
//! through its public API, each answer compared with ark-poly's
//! `Radix2EvaluationDomain` directly: forward, inverse, coset forward and
//! inverse, and the quotient's re-evaluation on a coset; every size from 1 to
//! 2^18 on the CPU and to 2^15 on the GPU, edge values, and batches of
//! several transforms in one call.

use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, Field, UniformRand};
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use causality_vm::ntt::{Ntt, NttEngine, NttOp};
use causality_vm::{Backend, ResolvedBackend};
use rand::SeedableRng;

/// Every engine this machine has, with the largest size it is checked at
/// (lavapipe runs the device kernels on the CPU, slowly).
fn engines() -> Vec<(NttEngine, u32)> {
    let mut engines = vec![(NttEngine::cpu(), 18)];
    if causality_vm::gpu::test_context().is_some() {
        engines.push((NttEngine::new(Backend::Gpu).expect("a GPU NTT engine"), 15));
    }
    engines
}

/// What ark-poly gives for `op` on `input`.
fn ark_poly(op: NttOp, input: &[Fr]) -> Vec<Fr> {
    let domain = Radix2EvaluationDomain::<Fr>::new(input.len()).unwrap();
    match op {
        NttOp::Forward => domain.fft(input),
        NttOp::Inverse => domain.ifft(input),
        NttOp::CosetForward(g) => domain.get_coset(g).unwrap().fft(input),
        NttOp::CosetInverse(g) => domain.get_coset(g).unwrap().ifft(input),
        NttOp::ToCoset(g) => domain.get_coset(g).unwrap().fft(&domain.ifft(input)),
    }
}

fn ops() -> [NttOp; 5] {
    let g = Fr::from(7u64);
    [NttOp::Forward, NttOp::Inverse, NttOp::CosetForward(g), NttOp::CosetInverse(g), NttOp::ToCoset(-g)]
}

#[test]
fn every_backend_matches_ark_poly_on_every_op_and_size() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2412);
    for (engine, max_log) in engines() {
        let backend = engine.backend();
        eprintln!("NTT conformance on {backend:?} up to 2^{max_log}");
        for log in 0..=max_log {
            let n = 1usize << log;
            let plan = Ntt::new(n).unwrap();
            // Random values, then zeros but a last one, then p − 1 everywhere.
            let mut one_hot = vec![Fr::ZERO; n];
            one_hot[n - 1] = Fr::ONE;
            let inputs = [(0..n).map(|_| Fr::rand(&mut rng)).collect::<Vec<_>>(), one_hot, vec![-Fr::ONE; n]];
            for op in ops() {
                // The three inputs as one batch: one call, three transforms.
                let mut values = inputs.clone();
                let mut batch: Vec<&mut [Fr]> = values.iter_mut().map(|v| &mut v[..]).collect();
                let ran = engine.apply(&plan, op, &mut batch).unwrap();
                assert_eq!(ran, backend, "{op:?}, n = {n}: ran where the engine is");
                for (got, input) in values.iter().zip(&inputs) {
                    assert_eq!(got, &ark_poly(op, input), "{op:?}, n = {n}, {backend:?}");
                }
            }
        }
    }
}

#[test]
fn every_backend_refuses_bad_calls_the_same_way() {
    for (engine, _) in engines() {
        let backend = engine.backend();
        let plan = Ntt::new(8).unwrap();
        let mut short = [Fr::ONE; 4];
        assert!(engine.apply(&plan, NttOp::Forward, &mut [&mut short[..]]).is_err(), "{backend:?}: length");
        let mut values = vec![Fr::ONE; 8];
        for op in [NttOp::CosetForward(Fr::ZERO), NttOp::CosetInverse(Fr::ZERO), NttOp::ToCoset(Fr::ZERO)] {
            assert!(engine.apply(&plan, op, &mut [&mut values[..]]).is_err(), "{backend:?}: {op:?} by zero");
        }
        assert_eq!(values, vec![Fr::ONE; 8], "{backend:?}: a refused call writes nothing");
        // A batch with one bad slice is refused whole, before any work.
        let (mut good, mut bad) = (vec![Fr::from(3u64); 8], vec![Fr::ONE; 2]);
        assert!(engine.apply(&plan, NttOp::Forward, &mut [&mut good[..], &mut bad[..]]).is_err(), "{backend:?}");
        assert_eq!(good, vec![Fr::from(3u64); 8], "{backend:?}: the good slice is untouched");
    }
    assert_eq!(NttEngine::cpu().backend(), ResolvedBackend::Cpu);
}
