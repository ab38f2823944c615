//! Hashing many small messages: a single-threaded `blake3::hash` loop (the
//! baseline), a rayon `par_iter` of `blake3::hash`, the CPU pool (lane-batched
//! SIMD on rayon) and the GPU pool, side by side in one group per message size.
//!
//! `cpu_lanes` is the pool's CPU backend on messages already in memory
//! (`hash::hash_chunks_into`, nothing copied or allocated); `cpu_pool` also files every request
//! (copying its bytes into the pool) before the flush; `cpu_pool_bulk` files them all with one
//! `hash_fixed` call (one copy, one run) before the flush.
//!
//! Filter with e.g. `cargo bench --bench hash_pool -- 64B/`. The pool cases
//! include filing every request (the pool copies the bytes) and the flush.

use std::hint::black_box;
use std::time::Duration;

use causality_vm::gpu::GpuContext;
use causality_vm::hash::HashPool;
use causality_vm::Backend;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;

const MESSAGE_SIZES: [usize; 4] = [32, 64, 256, 1024];
const COUNTS_LOG2: [u32; 5] = [12, 14, 16, 18, 20];
/// lavapipe (a CPU "GPU") only gets the smaller batches.
const SOFTWARE_GPU_MAX_LOG2: u32 = 16;

fn messages(size: usize, count: usize) -> Vec<u8> {
    (0..size * count).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect()
}

fn pool_round(pool: &mut HashPool, data: &[u8], size: usize) -> [u8; 32] {
    let mut last = None;
    for message in data.chunks_exact(size) {
        last = Some(pool.hash(message));
    }
    pool.flush().expect("the pool never fails a flush");
    let digest = last.and_then(|h| pool.get(h)).unwrap_or_default();
    pool.clear();
    digest
}

fn pool_bulk_round(pool: &mut HashPool, data: &[u8], size: usize) -> [u8; 32] {
    let range = pool.hash_fixed(data, size).expect("whole messages");
    pool.flush().expect("the pool never fails a flush");
    let digest = pool.get_range(range).and_then(|d| d.last().copied()).unwrap_or_default();
    pool.clear();
    digest
}

fn bench_hash_pool(c: &mut Criterion) {
    causality_vm::tuning::Tuning::from_env()
        .and_then(causality_vm::tuning::Tuning::apply)
        .expect("CVM_* tuning variables");
    let gpu = GpuContext::shared().ok().and_then(|ctx| {
        let software = ctx.info.device_type == wgpu::DeviceType::Cpu;
        eprintln!("GPU adapter: {}", ctx.describe());
        HashPool::with_backend(Backend::Gpu).ok().map(|pool| (pool, software))
    });
    if gpu.is_none() {
        eprintln!("no GPU adapter: GPU cases skipped");
    }
    let mut gpu = gpu;
    let mut cpu = HashPool::with_backend(Backend::Cpu).expect("the CPU backend always exists");
    eprintln!(
        "CPU kernel: {} ({} lanes), {} rayon threads",
        cpu.kernel(),
        cpu.kernel().lanes(),
        rayon::current_num_threads()
    );

    for size in MESSAGE_SIZES {
        let mut group = c.benchmark_group(format!("hash_pool/{size}B"));
        group.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
        for log2 in COUNTS_LOG2 {
            let count = 1usize << log2;
            let data = messages(size, count);
            group.throughput(Throughput::Elements(count as u64));
            group.bench_with_input(BenchmarkId::new("blake3_loop", count), &data, |b, data| {
                b.iter(|| {
                    let mut acc = 0u8;
                    for m in data.chunks_exact(size) {
                        acc ^= blake3::hash(black_box(m)).as_bytes()[0];
                    }
                    acc
                })
            });
            group.bench_with_input(BenchmarkId::new("rayon_par_iter", count), &data, |b, data| {
                b.iter(|| {
                    data.par_chunks_exact(size).map(|m| *blake3::hash(black_box(m)).as_bytes()).collect::<Vec<_>>()
                })
            });
            let mut digests = vec![[0u8; 32]; count];
            group.bench_with_input(BenchmarkId::new("cpu_lanes", count), &data, |b, data| {
                b.iter(|| causality_vm::hash::hash_chunks_into(black_box(data), size, &mut digests))
            });
            group.bench_with_input(BenchmarkId::new("cpu_pool", count), &data, |b, data| {
                b.iter(|| pool_round(&mut cpu, black_box(data), size))
            });
            group.bench_with_input(BenchmarkId::new("cpu_pool_bulk", count), &data, |b, data| {
                b.iter(|| pool_bulk_round(&mut cpu, black_box(data), size))
            });
            if let Some((pool, software)) = gpu.as_mut() {
                if !*software || log2 <= SOFTWARE_GPU_MAX_LOG2 {
                    group.bench_with_input(BenchmarkId::new("gpu_pool", count), &data, |b, data| {
                        b.iter(|| pool_round(pool, black_box(data), size))
                    });
                }
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench_hash_pool);
criterion_main!(benches);
