//! Our Groth16 prover (CPU engine; GPU engine when an adapter exists) against
//! `ark_groth16::Groth16::prove` on the same circuit, key and witness.
//!
//! Sizes: `CVM_PROVE_BENCH_OPS` = comma-separated ops per proof (default
//! "2,8": about 2^14 and 2^16 constraints; add 32 for about 2^18).
//!
//! Device run: `CVM_PROVE_BENCH_BATCH=1000` (and optionally
//! `CVM_PROVE_BENCH_BATCH_K`, default 16) also proves a batch of that many
//! transfers once per engine (CPU, and when a GPU is present the GPU alone
//! and the GPU sharing MSMs with the CPU by measured speed) through
//! `ProvingSystem::prove_batch` and prints ops/s and the stage timings
//! (`CVM_PROVE_BENCH_OPS=` empty skips the criterion sizes).

use std::time::Duration;

use ark_bn254::Bn254;
use ark_groth16::Groth16;
use causality_vm::msm::{MsmEngine, SharePolicy};
use causality_vm::prove::circuit::ComplianceCircuit;
use causality_vm::prove::keys::{self, CircuitShape};
use causality_vm::prove::witness::SlotAssignment;
use causality_vm::prove::{nullifier_key_commitment, OpWitness, ProveStages, ProvingSystem};
use causality_vm::resource::{LifecycleState, OperationKind, ResourceRegister};
use causality_vm::{Backend, ContentId, DomainId};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn register(seed: u8, fungibility: &str, quantity: u64) -> ResourceRegister {
    ResourceRegister {
        id: ContentId([seed; 32]),
        logic: ContentId([1; 32]),
        domain: DomainId::new("bench"),
        fungibility_domain: fungibility.into(),
        quantity,
        metadata: Default::default(),
        contents: vec![seed],
        state: LifecycleState::Active,
        nullifier_key_commitment: nullifier_key_commitment(&[seed; 32]),
        controller: "bench".into(),
        version: 0,
    }
}

/// A full slot: two inputs, two outputs.
fn transfer(seed: u8) -> OpWitness {
    OpWitness {
        kind: OperationKind::Transfer,
        consumed: vec![
            (register(seed, "a", 5), [seed; 32]),
            (register(seed.wrapping_add(1), "b", 6), [seed.wrapping_add(1); 32]),
        ],
        created: vec![register(seed.wrapping_add(2), "a", 5), register(seed.wrapping_add(3), "b", 6)],
        updated: None,
    }
}

fn sizes() -> Vec<usize> {
    std::env::var("CVM_PROVE_BENCH_OPS")
        .unwrap_or_else(|_| "2,8".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn bench_prove(c: &mut Criterion) {
    causality_vm::tuning::Tuning::from_env()
        .and_then(causality_vm::tuning::Tuning::apply)
        .expect("CVM_* tuning variables");
    let mut group = c.benchmark_group("prove");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(20));
    let gpu = causality_vm::gpu::GpuContext::shared().ok().and_then(|_| MsmEngine::new(Backend::Gpu).ok());
    for k in sizes() {
        let shape = CircuitShape::of(k).expect("supported ops per proof");
        let constraints = shape.num_constraints;
        eprintln!("K = {k}: {constraints} constraints (2^{:.2})", (constraints as f64).log2());
        let pk = keys::setup(&shape).expect("setup");
        let slots: Vec<SlotAssignment> = (0..k).map(|i| transfer((i * 4) as u8).to_slot(i).expect("witness")).collect();
        let circuit = ComplianceCircuit::new(slots.clone());
        let id = |name: &str| BenchmarkId::new(name, format!("K{k}-{constraints}c"));

        group.bench_function(id("ark_groth16"), |b| {
            let mut rng = ark_std::rand::thread_rng();
            b.iter(|| Groth16::<Bn254>::create_random_proof_with_reduction(circuit.clone(), &pk, &mut rng).unwrap())
        });

        let mut engines = vec![("ours_cpu", MsmEngine::cpu())];
        if let Some(engine) = gpu.as_ref().map(|_| MsmEngine::new(Backend::Gpu).expect("gpu engine")) {
            engines.push(("ours_gpu", engine));
        }
        for (name, engine) in engines {
            let system = ProvingSystem::from_key(CircuitShape::of(k).unwrap(), pk.clone(), engine).expect("prepare");
            let mut stages = ProveStages::default();
            system.prove_slots(slots.clone(), k, &mut stages).expect("prove");
            eprintln!(
                "{name} K={k} stages (one proof, incl. self-verification): {}",
                serde_json::to_string(&stages).unwrap()
            );
            group.bench_function(id(name), |b| {
                b.iter(|| system.prove_slots(slots.clone(), k, &mut ProveStages::default()).unwrap())
            });
        }
    }
    group.finish();
}

/// One timed `prove_batch` of `CVM_PROVE_BENCH_BATCH` transfers per engine.
fn batch_throughput(_c: &mut Criterion) {
    causality_vm::tuning::Tuning::from_env()
        .and_then(causality_vm::tuning::Tuning::apply)
        .expect("CVM_* tuning variables");
    let Some(n) = std::env::var("CVM_PROVE_BENCH_BATCH").ok().and_then(|v| v.parse::<usize>().ok()) else {
        return;
    };
    let k = std::env::var("CVM_PROVE_BENCH_BATCH_K").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let shape = CircuitShape::of(k).expect("supported ops per proof");
    let setup_start = std::time::Instant::now();
    let pk = keys::setup(&shape).expect("setup");
    eprintln!(
        "batch: {n} transfers, K = {k} ({} constraints), setup {:.1} s",
        shape.num_constraints,
        setup_start.elapsed().as_secs_f64()
    );
    let ops: Vec<OpWitness> = (0..n).map(|i| transfer((i % 60 * 4) as u8)).collect();
    let mut engines = vec![("cpu", MsmEngine::cpu())];
    if let Ok(engine) = MsmEngine::new(Backend::Gpu) {
        // Numbers from a software adapter or a CPU fallback say nothing about a GPU.
        eprintln!("gpu engine adapter: {}", engine.device().unwrap_or_default());
        engines.push(("gpu", engine));
        // What `auto` does on a hardware GPU: each MSM where it finishes first.
        if let Ok(shared) = MsmEngine::new(Backend::Gpu) {
            engines.push(("gpu+cpu", shared.with_share_policy(SharePolicy::Measured)));
        }
    }
    for (name, engine) in engines {
        let system = ProvingSystem::from_key(CircuitShape::of(k).unwrap(), pk.clone(), engine).expect("prepare");
        let start = std::time::Instant::now();
        let (proofs, stages) = system.prove_batch_timed(&ops).expect("prove batch");
        let secs = start.elapsed().as_secs_f64();
        // Fast numbers from wrong proofs are worth nothing: check every one.
        let verified = proofs.iter().filter(|proof| system.verify(proof).is_ok()).count();
        eprintln!(
            "batch {name}: {} proofs in {secs:.2} s = {:.1} ops/s; {verified} verified; {} GPU fallbacks; stages {}",
            proofs.len(),
            n as f64 / secs,
            system.engine().gpu_fallbacks(),
            serde_json::to_string(&stages).unwrap()
        );
    }
}

criterion_group!(benches, bench_prove, batch_throughput);
criterion_main!(benches);
