//! MSM benchmarks: arkworks' `VariableBaseMSM::msm`, our CPU engine and the
//! GPU engine side by side, per group and size (BenchmarkId = log2 size).
//!
//! Sizes: CVM_BENCH_LOGS="16,20" picks exact log sizes; otherwise even logs
//! from CVM_BENCH_MIN_LOG (10) to CVM_BENCH_MAX_LOG (20; G2 stops at
//! CVM_BENCH_G2_MAX_LOG, 18). The GPU engine runs only when an adapter
//! exists and its MSM matches arkworks; on a CPU adapter (lavapipe) only up
//! to 2^12.
//!
//! The CPU engine is timed through `CpuMsm`, like arkworks without input
//! validation: `MsmEngine` also checks every base's subgroup membership,
//! which for G2 costs more than the MSM itself.

use ark_bn254::{Fr, G1Affine};
use ark_ec::short_weierstrass::Affine;
use ark_ec::VariableBaseMSM;
use causality_vm::backend::Backend;
use causality_vm::msm::cpu::{CpuMsm, MsmCurve};
use causality_vm::msm::MsmEngine;
#[path = "../tests/support/msm.rs"]
mod msm_support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn log_sizes(max_default: u32) -> Vec<u32> {
    if let Ok(list) = std::env::var("CVM_BENCH_LOGS") {
        return list.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    }
    let min = env_u32("CVM_BENCH_MIN_LOG", 10);
    let max = env_u32("CVM_BENCH_MAX_LOG", 20).min(max_default);
    (min..=max).step_by(2).collect()
}

fn inputs<P: MsmCurve>(n: usize) -> (Vec<Affine<P>>, Vec<Fr>) {
    msm_support::random_inputs(n as u64, n)
}

/// The GPU engine and its largest benched log size, if the GPU MSM works here.
fn gpu_engine() -> Option<(MsmEngine, u32)> {
    let ctx = causality_vm::gpu::GpuContext::shared().ok()?;
    let max_log = if ctx.info.device_type == wgpu::DeviceType::Cpu { 12 } else { 20 };
    let gpu = causality_vm::msm::gpu::GpuMsm::new(ctx.clone()).ok()?;
    let (bases, scalars): (Vec<G1Affine>, Vec<Fr>) = inputs(300);
    let expected = ark_bn254::G1Projective::msm(&bases, &scalars).ok()?;
    match gpu.msm(&bases, &scalars) {
        Ok(got) if got == expected => {}
        Ok(_) => {
            eprintln!("GPU MSM disagrees with arkworks on {}: not benchmarked", ctx.describe());
            return None;
        }
        Err(err) => {
            eprintln!("GPU MSM unavailable ({err}): not benchmarked");
            return None;
        }
    }
    let engine = MsmEngine::new(Backend::Gpu).ok()?;
    Some((engine, max_log))
}

fn bench_g1(c: &mut Criterion) {
    causality_vm::tuning::Tuning::from_env()
        .and_then(causality_vm::tuning::Tuning::apply)
        .expect("CVM_* tuning variables");
    let cpu = CpuMsm::new();
    let gpu = gpu_engine();
    let mut group = c.benchmark_group("msm_g1");
    group.sample_size(10);
    for log in log_sizes(20) {
        let (bases, scalars) = inputs::<ark_bn254::g1::Config>(1 << log);
        group.bench_with_input(BenchmarkId::new("arkworks", log), &log, |b, _| {
            b.iter(|| ark_bn254::G1Projective::msm(&bases, &scalars))
        });
        group.bench_with_input(BenchmarkId::new("cvm_cpu", log), &log, |b, _| b.iter(|| cpu.msm_g1(&bases, &scalars)));
        if let Some((engine, max_log)) = &gpu {
            if log <= *max_log {
                group.bench_with_input(BenchmarkId::new("cvm_gpu", log), &log, |b, _| {
                    b.iter(|| engine.msm_g1(&bases, &scalars))
                });
            }
        }
    }
    group.finish();
}

fn bench_g2(c: &mut Criterion) {
    causality_vm::tuning::Tuning::from_env()
        .and_then(causality_vm::tuning::Tuning::apply)
        .expect("CVM_* tuning variables");
    let cpu = CpuMsm::new();
    let mut group = c.benchmark_group("msm_g2");
    group.sample_size(10);
    let g2_max = env_u32("CVM_BENCH_G2_MAX_LOG", 18);
    for log in log_sizes(20).into_iter().filter(|&l| l <= g2_max) {
        let (bases, scalars) = inputs::<ark_bn254::g2::Config>(1 << log);
        group.bench_with_input(BenchmarkId::new("arkworks", log), &log, |b, _| {
            b.iter(|| ark_bn254::G2Projective::msm(&bases, &scalars))
        });
        group.bench_with_input(BenchmarkId::new("cvm_cpu", log), &log, |b, _| b.iter(|| cpu.msm_g2(&bases, &scalars)));
    }
    group.finish();
}

criterion_group!(benches, bench_g1, bench_g2);
criterion_main!(benches);
