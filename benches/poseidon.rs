//! Poseidon, many hashes at once: the single-threaded `poseidon::hash` loop
//! (the baseline) against the same requests filed into a hash pool and
//! resolved at its flush, on the IFMA lane kernel and on the scalar kernel
//! (one sponge at a time, still across rayon threads), and on a GPU pool
//! where a hardware adapter exists (software adapters such as lavapipe are
//! skipped: a million hashes there says nothing about GPUs), in one group.
//!
//! `CVM_POSEIDON_BENCH_COUNT` sets the number of hashes (default 2^20, the
//! issue's million); the inputs are one field element (a nullifier-key
//! opening) and two (a nullifier), in two groups.

use std::hint::black_box;
use std::time::Duration;

use ark_bn254::Fr;
use ark_std::UniformRand;
use causality_vm::backend::Backend;
use causality_vm::crypto::poseidon::{hash, HashDomain, PoseidonKernel};
use causality_vm::gpu::GpuContext;
use causality_vm::hash::HashPool;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;

fn count() -> usize {
    std::env::var("CVM_POSEIDON_BENCH_COUNT").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20)
}

/// File every request, flush, and read them all back (as the executor does).
fn pool_round(pool: &mut HashPool, domain: HashDomain, inputs: &[Fr], arity: usize) -> Fr {
    let handles: Vec<_> = inputs.chunks_exact(arity).map(|x| pool.poseidon(domain, x).expect("room")).collect();
    pool.flush().expect("the pool never fails a flush");
    let last = handles.last().and_then(|&h| pool.poseidon_value(h)).unwrap_or_default();
    pool.clear();
    last
}

/// Every digest of one round, for comparing backends.
fn all_digests(pool: &mut HashPool, domain: HashDomain, inputs: &[Fr], arity: usize) -> Vec<Fr> {
    let handles: Vec<_> = inputs.chunks_exact(arity).map(|x| pool.poseidon(domain, x).expect("room")).collect();
    pool.flush().expect("the pool never fails a flush");
    let digests = handles.iter().map(|&h| pool.poseidon_value(h).expect("resolved")).collect();
    pool.clear();
    digests
}

fn bench_poseidon(c: &mut Criterion) {
    let n = count();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    eprintln!(
        "{} rayon threads; IFMA kernel supported: {}; AVX2 kernel supported: {}",
        rayon::current_num_threads(),
        PoseidonKernel::Ifma.is_supported(),
        PoseidonKernel::Avx2.is_supported()
    );
    let mut gpu = GpuContext::shared().ok().and_then(|ctx| {
        eprintln!("GPU adapter: {}", ctx.describe());
        let software = ctx.info.device_type == wgpu::DeviceType::Cpu;
        if software {
            eprintln!("software adapter: the GPU pool case is skipped");
        }
        (!software).then(|| HashPool::with_backend(Backend::Gpu).ok()).flatten()
    });
    for (arity, domain) in [(1, HashDomain::NullifierKey), (2, HashDomain::Nullifier)] {
        let inputs: Vec<Fr> = (0..n * arity).map(|_| Fr::rand(&mut rng)).collect();
        let mut group = c.benchmark_group(format!("poseidon/arity{arity}"));
        group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("hash_loop", n), &inputs, |b, inputs| {
            b.iter(|| inputs.chunks_exact(arity).fold(Fr::from(0u64), |acc, x| acc + hash(domain, black_box(x))))
        });
        for kernel in PoseidonKernel::ALL {
            let Ok(mut pool) = HashPool::new().with_poseidon_kernel(kernel) else {
                eprintln!("the {kernel} kernel is not supported here: skipped");
                continue;
            };
            group.bench_with_input(BenchmarkId::new(format!("pool_{kernel}"), n), &inputs, |b, inputs| {
                b.iter(|| pool_round(&mut pool, domain, black_box(inputs), arity))
            });
        }
        if let Some(pool) = gpu.as_mut() {
            group.bench_with_input(BenchmarkId::new("pool_gpu", n), &inputs, |b, inputs| {
                b.iter(|| pool_round(pool, domain, black_box(inputs), arity))
            });
            let same =
                all_digests(pool, domain, &inputs, arity) == all_digests(&mut HashPool::new(), domain, &inputs, arity);
            eprintln!(
                "GPU pool: {} Poseidon hashes on the device, {} fallbacks, all digests equal to the CPU's: {same}",
                pool.gpu_poseidon_hashed(),
                pool.gpu_fallbacks()
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench_poseidon);
criterion_main!(benches);
