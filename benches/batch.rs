//! A 10,000-transfer batch executed and committed (Standard mode, no proofs),
//! reported as transfers per second. Each transfer consumes one input and
//! creates two outputs (one nullifier, one register removed, two added).
//! Side by side: the same batch in Simulation mode (everything but the
//! durable commit) as the baseline that shows what the commit costs.
//!
//! Checkpoints are part of the cost: the store folds its log into redb
//! every 32 MiB (about seven batches; on a checkpoint thread, beside the
//! batches), and when a ledger is retired (every ~20 batches, to keep the
//! store between 10k and 200k live registers) the time to close it, which
//! folds the rest, is added to the measured time.
//!
//! The allocator is mimalloc, as in the `cvm` binary; with glibc's the
//! committed case ran at 120k/s against 134k/s (docs/perf/batch.md). Freed
//! memory is kept for the next batches, as in the binary
//! (`causality_vm::allocator`).
//!
//! `standard_commit_stream` feeds 10 such batches to one `execute_batches`
//! call, the way a high-volume user runs them: each batch executes while the
//! one before it is staged and appended on another thread.
//!
//! `standard_commit_chained` is the worst case for running a batch's
//! operations side by side: 10,000 transfers in one chain, each spending
//! the output of the one before it (issue 21's conflict baseline).
//!
//! `execute_only_*` time the execute stage alone (Simulation mode) on a
//! rayon pool of 1 thread (every operation in order) and of 2 (independent
//! operations run ahead, `batch::ahead`), on the main batch and the chain.
//!
//! Owners: in the main cases an output's nullifier key follows from its
//! quantity, so keys repeat across a batch (an owner spending many
//! resources), and each distinct key costs one Poseidon opening (~12 µs).
//! `standard_commit_fresh_keys` gives every output its own key: the worst
//! case, one Poseidon opening per transfer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use causality_vm::batch::{execute_batch, execute_batches, BatchJob, TransactionContext};
use causality_vm::capability::{CapabilityToken, KeyRing, RootKey};
use causality_vm::resource::{nullifier_key_commitment, ConsumedInput, NewResource, Operation, ResourceId};
use causality_vm::store::{RegisterStore, StoreOptions};
use causality_vm::vm::{Instruction, Program};
use causality_vm::{ContentId, DomainId, ExecutionContext, ExecutionMode};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// What the `cvm` binary uses (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How the `cvm` binary keeps freed memory for later batches.
#[path = "../src/bin/cvm/allocator.rs"]
mod allocator;

const BATCH: usize = 10_000;
/// Batches per iteration of the stream case (the first executes and the
/// last is staged with nothing beside: 5 ran about 5% slower than 10).
const STREAM: usize = 10;
/// Start over with a fresh store once it holds this many registers, so the
/// figure is for a store of 10k to this many live registers.
const MAX_LIVE: usize = 200_000;

/// A resource the next batch spends: (id, nullifier key, quantity).
type Spendable = (ResourceId, [u8; 32], u64);

struct Ledger {
    dir: tempfile::TempDir,
    store: RegisterStore,
    keys: KeyRing,
    ctx: ExecutionContext,
    logic: ContentId,
    frontier: Vec<Spendable>,
    nonce: u64,
    /// Every output gets its own nullifier key (else the key follows from the quantity).
    fresh_keys: bool,
    /// Poseidon commitments of the keys made so far (quantities, and so
    /// keys, repeat): building the next batch stays cheap and out of profiles.
    commitments: std::collections::HashMap<u64, [u8; 32]>,
}

fn nk(n: u64) -> [u8; 32] {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

impl Ledger {
    fn new(fresh_keys: bool) -> Ledger {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = StoreOptions { checkpoint_bytes: 32 << 20, ..Default::default() };
        let store = RegisterStore::open_with(dir.path(), options).expect("store");
        let logic = store.put_content(&Program::new(vec![Instruction::Accept], vec![]).unwrap().encode()).unwrap();
        let domain = DomainId::new("bench");
        let root = RootKey([5; 32]);
        let mut keys = KeyRing::new();
        keys.insert(domain.clone(), root.clone());
        let ctx = ExecutionContext {
            domain_id: domain.clone(),
            trace_id: "bench".into(),
            capability_token: CapabilityToken::mint(&root, domain, [0; 16]),
            timestamp: 1,
            environment: BTreeMap::new(),
            cross_domain_grants: Vec::new(),
        };
        let mut ledger = Ledger {
            dir,
            store,
            keys,
            ctx,
            logic,
            frontier: Vec::new(),
            nonce: 0,
            fresh_keys,
            commitments: Default::default(),
        };
        let mut ids = Vec::with_capacity(BATCH);
        let genesis: Vec<Operation> = (0..BATCH)
            .map(|_| {
                let (resource, key) = ledger.output(1 << 40);
                ids.push((ContentId::of_encoding(&resource.id_encoding()), key, 1 << 40));
                Operation::Create { resource }
            })
            .collect();
        let tx = TransactionContext::new(ExecutionMode::Standard);
        let res = execute_batch(&mut ledger.store, &ledger.keys, &genesis, &ledger.ctx, &tx).expect("genesis");
        assert_eq!(res.success_count, BATCH, "{:?}", res.results.iter().find_map(|r| r.error()));
        ledger.frontier = ids;
        ledger
    }

    /// An output and its nullifier key: `nk(quantity)` (quantities stay
    /// small and distinct enough for the bench), or a key of its own.
    fn output(&mut self, quantity: u64) -> (NewResource, [u8; 32]) {
        self.nonce += 1;
        let (key, commitment) = if self.fresh_keys {
            let key = nk(self.nonce | 1 << 63);
            (key, nullifier_key_commitment(&key))
        } else {
            let commitment =
                *self.commitments.entry(quantity).or_insert_with(|| nullifier_key_commitment(&nk(quantity)));
            (nk(quantity), commitment)
        };
        let resource = NewResource {
            logic: self.logic,
            domain: self.ctx.domain_id.clone(),
            fungibility_domain: "coin".into(),
            quantity,
            metadata: BTreeMap::new(),
            contents: Vec::new(),
            nullifier_key_commitment: commitment,
            controller: "bench".into(),
            nonce: *blake3::hash(&self.nonce.to_le_bytes()).as_bytes(),
        };
        (resource, key)
    }

    /// 10,000 transfers, each splitting one frontier resource in two, and
    /// the frontier after them (the first output of each).
    fn next_batch(&mut self) -> (Vec<Operation>, Vec<Spendable>) {
        let frontier = std::mem::take(&mut self.frontier);
        let mut ops = Vec::with_capacity(BATCH);
        let mut next = Vec::with_capacity(BATCH);
        for (id, key, quantity) in frontier {
            let half = quantity / 2;
            let (a, key_a) = self.output(half);
            let (b, _) = self.output(quantity - half);
            next.push((ContentId::of_encoding(&a.id_encoding()), key_a, half));
            ops.push(Operation::Transfer {
                inputs: vec![ConsumedInput { id, nullifier_key: key }],
                outputs: vec![a, b],
            });
        }
        (ops, next)
    }

    /// 10,000 transfers in one chain from the first frontier resource, each
    /// spending the whole of the output the one before it made; the
    /// chain's end takes that resource's place in the frontier.
    fn next_chain(&mut self) -> (Vec<Operation>, Vec<Spendable>) {
        let mut next = self.frontier.clone();
        let (mut id, mut key, quantity) = next[0];
        let mut ops = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            let (output, output_key) = self.output(quantity);
            let output_id = ContentId::of_encoding(&output.id_encoding());
            ops.push(Operation::Transfer {
                inputs: vec![ConsumedInput { id, nullifier_key: key }],
                outputs: vec![output],
            });
            (id, key) = (output_id, output_key);
        }
        next[0] = (id, key, quantity);
        (ops, next)
    }

    fn next_shaped(&mut self, shape: Shape) -> (Vec<Operation>, Vec<Spendable>) {
        match shape {
            Shape::Split => self.next_batch(),
            Shape::Chain => self.next_chain(),
        }
    }

    /// Whether the ledger should be retired: the store is past its size, or
    /// the frontier cannot be split again.
    fn spent(&self, batches: usize) -> bool {
        self.store.len() + batches * BATCH > MAX_LIVE + BATCH || self.frontier.iter().any(|f| f.2 < 1 << batches)
    }
}

/// Retire the ledger if it is spent (adding the time its close takes to
/// `total`) and start a fresh one.
fn renew(ledger: &mut Option<Ledger>, batches: usize, fresh_keys: bool, total: &mut Duration) {
    if ledger.as_ref().is_some_and(|l| !l.spent(batches)) {
        return;
    }
    if let Some(retired) = ledger.take() {
        // Closing folds the log's last batches into redb: their cost.
        let started = Instant::now();
        retired.store.close().expect("close");
        *total += started.elapsed();
        drop(retired.dir);
    }
    *ledger = Some(Ledger::new(fresh_keys));
}

/// The shape of a measured batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// 10,000 independent transfers, each splitting its input in two.
    Split,
    /// One chain of 10,000 transfers.
    Chain,
}

fn run(ledger: &mut Option<Ledger>, mode: ExecutionMode, fresh_keys: bool, iters: u64) -> Duration {
    run_shaped(ledger, mode, fresh_keys, Shape::Split, iters)
}

fn run_shaped(
    ledger: &mut Option<Ledger>,
    mode: ExecutionMode,
    fresh_keys: bool,
    shape: Shape,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        renew(ledger, 1, fresh_keys, &mut total);
        let l = ledger.as_mut().expect("ledger");
        let before = l.frontier.clone();
        let (ops, next) = l.next_shaped(shape);
        let tx = TransactionContext::new(mode);
        let cpu = cpu_ticks();
        let started = Instant::now();
        let res = execute_batch(&mut l.store, &l.keys, &ops, &l.ctx, &tx).expect("batch");
        total += started.elapsed();
        if std::env::var_os("CVM_BENCH_STAGES").is_some() {
            let t = res.metadata.timings;
            eprintln!(
                "{mode:?} cpu={}ms live={} total={:?} execute={}us hash={}us commit={}us",
                (cpu_ticks() - cpu) * 10,
                l.store.len(),
                started.elapsed(),
                t.execute_us,
                t.hash_us,
                t.commit_us
            );
        }
        assert_eq!(res.success_count, BATCH, "{:?}", res.results.iter().find_map(|r| r.error()));
        // Simulation changes nothing: the same inputs next time.
        l.frontier = if mode == ExecutionMode::Standard { next } else { before };
    }
    total
}

/// The execute stage alone (`timings.execute_us`: the operations' passes,
/// not the flush, checks or staging) of the Simulation case, on a rayon pool
/// of `threads`: 1 executes every operation in order, more run the
/// independent ones ahead (issue 21).
fn run_execute_only(ledger: &mut Option<Ledger>, shape: Shape, threads: usize, iters: u64) -> Duration {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("rayon pool");
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut unused = Duration::ZERO;
        renew(ledger, 1, false, &mut unused);
        let l = ledger.as_mut().expect("ledger");
        let before = l.frontier.clone();
        let (ops, _) = l.next_shaped(shape);
        let tx = TransactionContext::new(ExecutionMode::Simulation);
        let res = pool.install(|| execute_batch(&mut l.store, &l.keys, &ops, &l.ctx, &tx)).expect("batch");
        assert_eq!(res.success_count, BATCH, "{:?}", res.results.iter().find_map(|r| r.error()));
        total += Duration::from_micros(res.metadata.timings.execute_us);
        // Simulation changes nothing: the same inputs next time.
        l.frontier = before;
    }
    total
}

/// `STREAM` batches of 10,000 transfers per iteration through
/// `execute_batches`, each executing while the one before it is staged.
fn run_stream(ledger: &mut Option<Ledger>, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        renew(ledger, STREAM, false, &mut total);
        let l = ledger.as_mut().expect("ledger");
        let batches: Vec<Vec<Operation>> = (0..STREAM)
            .map(|_| {
                let (ops, next) = l.next_batch();
                l.frontier = next;
                ops
            })
            .collect();
        let tx = TransactionContext::new(ExecutionMode::Standard);
        let jobs: Vec<BatchJob> = batches.iter().map(|ops| BatchJob::new(&l.keys, ops, &l.ctx, &tx)).collect();
        let started = Instant::now();
        let outcomes = execute_batches(&mut l.store, &jobs);
        total += started.elapsed();
        for outcome in outcomes {
            let res = outcome.expect("batch");
            assert!(res.metadata.committed && res.success_count == BATCH);
        }
    }
    total
}

/// The process's user + system CPU time so far, in 10 ms ticks (Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
}

fn bench_batch(c: &mut Criterion) {
    causality_vm::tuning::Tuning::from_env()
        .and_then(causality_vm::tuning::Tuning::apply)
        .expect("CVM_* tuning variables");
    allocator::configure();
    let mut group = c.benchmark_group("batch_10k_transfers");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut ledger = None;
    group.bench_function(BenchmarkId::new("standard_commit", BATCH), |b| {
        b.iter_custom(|iters| run(&mut ledger, ExecutionMode::Standard, false, iters))
    });
    let mut ledger = None;
    group.bench_function(BenchmarkId::new("simulation_no_commit", BATCH), |b| {
        b.iter_custom(|iters| run(&mut ledger, ExecutionMode::Simulation, false, iters))
    });
    let mut ledger = None;
    group.bench_function(BenchmarkId::new("standard_commit_fresh_keys", BATCH), |b| {
        b.iter_custom(|iters| run(&mut ledger, ExecutionMode::Standard, true, iters))
    });
    let mut ledger = None;
    group.bench_function(BenchmarkId::new("standard_commit_chained", BATCH), |b| {
        b.iter_custom(|iters| run_shaped(&mut ledger, ExecutionMode::Standard, false, Shape::Chain, iters))
    });
    for (shape, name) in [(Shape::Split, "execute_only"), (Shape::Chain, "execute_only_chained")] {
        for threads in [1, 2] {
            let mut ledger = None;
            group.bench_function(BenchmarkId::new(format!("{name}_{threads}_threads"), BATCH), |b| {
                b.iter_custom(|iters| run_execute_only(&mut ledger, shape, threads, iters))
            });
        }
    }
    group.throughput(Throughput::Elements((STREAM * BATCH) as u64));
    let mut ledger = None;
    group.bench_function(BenchmarkId::new("standard_commit_stream", BATCH), |b| {
        b.iter_custom(|iters| run_stream(&mut ledger, iters))
    });
    group.finish();
}

criterion_group!(benches, bench_batch);
criterion_main!(benches);
