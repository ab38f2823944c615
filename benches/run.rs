//! What a `cvm run` of a small batch with proofs costs on an existing data
//! dir, split into loading the keys, executing, proving and committing, at
//! `CVM_RUN_BENCH_OPS` ops per proof (default "4,16"); and checking a
//! stored batch's proofs the way `--mode verification` does (the verifying
//! key alone). Keys are set up once per size, outside the measurements.
//!
//! Criterion measures each part; before that, one run per size prints the
//! split and the share key loading takes (the goal: under 10%).

use std::sync::Arc;
use std::time::{Duration, Instant};

use causality_vm::batch::{execute_batch, TransactionContext};
use causality_vm::capability::{CapabilityToken, KeyRing, RootKey};
use causality_vm::prove::{nullifier_key_commitment, ProvingSystem, StoredKeys};
use causality_vm::resource::{NewResource, Operation};
use causality_vm::store::RegisterStore;
use causality_vm::vm::{Instruction, Program};
use causality_vm::{Backend, ContentId, DomainId, ExecutionContext, ExecutionMode};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// As the `cvm` binary allocates (src/allocator.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How the `cvm` binary keeps freed memory for later batches.
#[path = "../src/bin/cvm/allocator.rs"]
mod allocator;

fn sizes() -> Vec<usize> {
    std::env::var("CVM_RUN_BENCH_OPS")
        .unwrap_or_else(|_| "4,16".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// A data dir with keys for `k` ops per proof.
fn data_dir(k: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    ProvingSystem::load_or_setup(dir.path(), k, Backend::Cpu, |_| {}).expect("setup");
    dir
}

/// A fresh store in `data`, a key ring and a context, and a 2-op batch
/// (two creates) that differs per `n`.
struct Run {
    keys: KeyRing,
    ctx: ExecutionContext,
    accept: ContentId,
}

impl Run {
    fn new(store: &RegisterStore) -> Run {
        let accept = store.put_content(&Program::new(vec![Instruction::Accept], Vec::new()).unwrap().encode()).unwrap();
        let root = RootKey([5; 32]);
        let mut keys = KeyRing::new();
        keys.insert(DomainId::new("bench"), root.clone());
        let ctx = ExecutionContext {
            domain_id: DomainId::new("bench"),
            trace_id: "bench".into(),
            capability_token: CapabilityToken::mint(&root, DomainId::new("bench"), [0; 16]),
            timestamp: 1,
            environment: Default::default(),
            cross_domain_grants: Vec::new(),
        };
        Run { keys, ctx, accept }
    }

    fn ops(&self, n: u64) -> Vec<Operation> {
        (0..2u64)
            .map(|i| {
                let resource = NewResource {
                    logic: self.accept,
                    domain: DomainId::new("bench"),
                    fungibility_domain: "gold".into(),
                    quantity: 1,
                    metadata: Default::default(),
                    contents: Vec::new(),
                    nullifier_key_commitment: nullifier_key_commitment(&[7; 32]),
                    controller: "bench".into(),
                    nonce: *blake3::hash(&[n.to_le_bytes(), i.to_le_bytes()].concat()).as_bytes(),
                };
                Operation::Create { resource }
            })
            .collect()
    }
}

fn load(data: &std::path::Path, k: usize) -> ProvingSystem {
    ProvingSystem::load_or_setup(data, k, Backend::Cpu, |notice| panic!("keys exist: {notice}")).expect("keys load")
}

/// One run, timed in parts, and the stored batch checked with the verifying key.
fn split(k: usize) {
    let data = data_dir(k);
    let started = Instant::now();
    let system = Arc::new(load(data.path(), k));
    let load_time = started.elapsed();
    let store_dir = tempfile::tempdir().unwrap();
    let mut store = RegisterStore::open(store_dir.path()).unwrap();
    let run = Run::new(&store);
    let tx = TransactionContext::new(ExecutionMode::Standard).with_proof_system(system);
    let started = Instant::now();
    let result = execute_batch(&mut store, &run.keys, &run.ops(0), &run.ctx, &tx).expect("batch");
    let total_batch = started.elapsed();
    let t = &result.metadata.timings;
    let us = |n: u64| Duration::from_micros(n);
    let record = store.batch(1).unwrap().unwrap().proof.unwrap();
    let started = Instant::now();
    StoredKeys::new(data.path()).verify_record(&record).expect("verifies");
    let verify = started.elapsed();
    let total = load_time + total_batch;
    println!(
        "run k={k}: load {load_time:?} ({:.1}% of {total:?}), execute {:?}, hash {:?}, prove {:?}, commit {:?}; \
         verification of the stored batch {verify:?}",
        100.0 * load_time.as_secs_f64() / total.as_secs_f64(),
        us(t.execute_us),
        us(t.hash_us),
        us(t.prove_us),
        us(t.commit_us),
    );
}

fn bench(c: &mut Criterion) {
    causality_vm::tuning::Tuning::from_env()
        .and_then(causality_vm::tuning::Tuning::apply)
        .expect("CVM_* tuning variables");
    allocator::configure();
    for k in sizes() {
        split(k);
    }
    let mut group = c.benchmark_group("run_2_ops");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for k in sizes() {
        let data = data_dir(k);
        group.bench_function(BenchmarkId::new("load_keys", k), |b| b.iter(|| load(data.path(), k)));
        let system = Arc::new(load(data.path(), k));
        let store_dir = tempfile::tempdir().unwrap();
        let mut store = RegisterStore::open(store_dir.path()).unwrap();
        let run = Run::new(&store);
        let tx = TransactionContext::new(ExecutionMode::Standard).with_proof_system(system);
        let mut n = 0;
        group.bench_function(BenchmarkId::new("execute_prove_commit", k), |b| {
            b.iter(|| {
                n += 1;
                execute_batch(&mut store, &run.keys, &run.ops(n), &run.ctx, &tx).expect("batch")
            })
        });
        let record = store.batch(1).unwrap().unwrap().proof.unwrap();
        group.bench_function(BenchmarkId::new("verify_stored_batch", k), |b| {
            b.iter(|| StoredKeys::new(data.path()).verify_record(&record).expect("verifies"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
