//! NTTs over BN254's scalar field: ours (`causality_vm::ntt`, the plan made
//! once, as the provers keep it) against ark-poly's `Radix2EvaluationDomain`
//! on the same inputs and threads, per size (BenchmarkId = log2 size).
//!
//! Cases: `forward` (coefficients to evaluations, natural order both ways),
//! `inverse`, and `to_coset` (evaluations on the domain re-evaluated on a
//! coset, the quotient's step: ark-poly's `ifft` then the coset's `fft`).
//! Sizes: CVM_NTT_BENCH_LOGS="16,20" (the default).
//!
//! `libsnark_quotient`: the compliance prover's whole quotient (A, B, C
//! evaluated, moved to the coset, divided, interpolated back) on our NTT
//! engine (CPU) against ark-groth16's `witness_map_from_matrices`, which it
//! replaced, on the circuit's matrices for K operations per proof
//! (CVM_QUOTIENT_BENCH_K="8,32").

use ark_bn254::Fr;
use ark_ff::UniformRand;
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use causality_vm::ntt::Ntt;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::SeedableRng;

fn logs() -> Vec<u32> {
    std::env::var("CVM_NTT_BENCH_LOGS")
        .unwrap_or_else(|_| "16,20".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn ntt(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    for log in logs() {
        let n = 1usize << log;
        let input: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
        let plan = Ntt::new(n).unwrap();
        let domain = Radix2EvaluationDomain::<Fr>::new(n).unwrap();
        let g = Fr::from(7u64);
        let coset = domain.get_coset(g).unwrap();
        let mut group = c.benchmark_group("ntt");
        group.sample_size(10);
        let mut values = input.clone();
        group.bench_with_input(BenchmarkId::new("forward/ours", log), &log, |b, _| {
            b.iter(|| plan.forward(&mut values).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("forward/ark_poly", log), &log, |b, _| {
            b.iter(|| domain.fft_in_place(&mut values))
        });
        group.bench_with_input(BenchmarkId::new("inverse/ours", log), &log, |b, _| {
            b.iter(|| plan.inverse(&mut values).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("inverse/ark_poly", log), &log, |b, _| {
            b.iter(|| domain.ifft_in_place(&mut values))
        });
        group.bench_with_input(BenchmarkId::new("to_coset/ours", log), &log, |b, _| {
            b.iter(|| plan.to_coset(&mut values, g).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("to_coset/ark_poly", log), &log, |b, _| {
            b.iter(|| {
                domain.ifft_in_place(&mut values);
                coset.fft_in_place(&mut values);
            })
        });
        group.finish();
    }
}

fn libsnark_quotient(c: &mut Criterion) {
    use ark_groth16::r1cs_to_qap::{LibsnarkReduction, R1CSToQAP};
    use ark_poly::GeneralEvaluationDomain;
    use causality_vm::ntt::NttEngine;
    use causality_vm::prove::keys::CircuitShape;

    let ks: Vec<usize> = std::env::var("CVM_QUOTIENT_BENCH_K")
        .unwrap_or_else(|_| "8,32".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    let engine = NttEngine::cpu();
    let mut group = c.benchmark_group("libsnark_quotient");
    group.sample_size(10);
    for k in ks {
        let shape = CircuitShape::of(k).expect("a supported K");
        let plan = Ntt::new(shape.domain_size().unwrap()).unwrap();
        let full: Vec<Fr> =
            (0..shape.num_instance_variables + shape.num_witness_variables).map(|_| Fr::rand(&mut rng)).collect();
        group.bench_with_input(BenchmarkId::new("ours", k), &k, |b, _| {
            b.iter(|| causality_vm::prove::prover::libsnark_quotient(&engine, &plan, &shape, &full).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("ark_groth16", k), &k, |b, _| {
            b.iter(|| {
                LibsnarkReduction::witness_map_from_matrices::<Fr, GeneralEvaluationDomain<Fr>>(
                    &shape.matrices,
                    shape.num_instance_variables,
                    shape.num_constraints,
                    &full,
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ntt, libsnark_quotient);
criterion_main!(benches);
