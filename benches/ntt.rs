//! NTTs over BN254's scalar field: ours (`causality_vm::ntt`, the plan made
//! once, as the provers keep it) against ark-poly's `Radix2EvaluationDomain`
//! on the same inputs and threads, per size (BenchmarkId = log2 size).
//!
//! Cases: `forward` (coefficients to evaluations, natural order both ways),
//! `inverse`, and `to_coset` (evaluations on the domain re-evaluated on a
//! coset, the quotient's step: ark-poly's `ifft` then the coset's `fft`).
//! Sizes: CVM_NTT_BENCH_LOGS="16,20" (the default).

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

criterion_group!(benches, ntt);
criterion_main!(benches);
