//! The execute → hash → prove → commit pipeline.
//!
//! 1. **Execute**: every operation runs against the store seen through the
//!    batch's overlay (effects of earlier successful operations). Ids,
//!    nullifiers and commitments are hash requests filed in the pool; an
//!    operation's effects enter the overlay only when it succeeds.
//! 2. **Flush**: the pool hashes everything at once; digest-dependent checks
//!    run ([`flush`]). If one fails, its operation is marked failed and the
//!    batch is executed again without it (later operations may have depended
//!    on it), until a pass has no new failure.
//! 3. **Prove** (Standard and ProofGeneration with a [`ProofSystem`]): the
//!    witnesses become proofs, checked against the verifying key, stored in
//!    the batch record as opaque bytes. A failure is a ProofGenerationError
//!    and nothing is committed.
//! 4. **Commit** (Standard, ProofGeneration, Debug): the store stages the
//!    delta (commitments and the new state root through the pool) and appends
//!    it durably in one transaction. Simulation stops after staging;
//!    Verification after the flush checks.

mod env;
pub mod file;
mod flush;
mod ops;
mod overlay;
mod prove;
mod result;
mod transaction;

pub use prove::{OpWitness, ProofSystem, ProveStages};
pub use result::{BatchExecutionResult, BatchMetadata, ChangeSet, LogicTrace, OpOutcome, OpStatus, OperationResult};
pub use transaction::{CommitPolicy, FailurePolicy, TransactionContext};

use std::collections::BTreeMap;
use std::time::Instant;

use crate::capability::KeyRing;
use crate::context::{ExecutionContext, ExecutionMode};
use crate::error::ExecutionError;
use crate::resource::{Operation, ResourceRegister};
use crate::store::{BatchDelta, BatchRecord, RegisterStore, StageTimings};

use env::{hash_failed, Env, OpEffects};

/// One operation's fate in a pass.
enum Record {
    Executed(OpEffects),
    Failed(ExecutionError, OpEffects),
    Skipped,
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros().min(u64::MAX as u128) as u64
}

/// Execute `ops` under `ctx` and, in the modes that write, commit them to
/// `store` as one batch. Errors are failures of the batch as a whole (the
/// store could not commit); each operation's own failure is in its result.
pub fn execute_batch(
    store: &mut RegisterStore,
    keys: &KeyRing,
    ops: &[Operation],
    ctx: &ExecutionContext,
    tx: &TransactionContext,
) -> Result<BatchExecutionResult, ExecutionError> {
    let mut timings = StageTimings::default();
    let mut env = Env::new(store, keys, ctx, tx);
    let mut prefailed: BTreeMap<usize, ExecutionError> = BTreeMap::new();
    let mut reruns = 0;
    let records = loop {
        let started = Instant::now();
        let records = run_pass(&mut env, ops, &prefailed);
        timings.execute_us += micros(started);

        let started = Instant::now();
        env.overlay.resolve(env.store, &mut env.pool).map_err(hash_failed)?;
        env.pool.flush().map_err(hash_failed)?;
        let executed: Vec<(usize, &OpEffects)> = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Record::Executed(fx) => Some((i, fx)),
                _ => None,
            })
            .collect();
        let failures = flush::check(&executed, &env.pool, env.store, tx.on_failure)?;
        timings.hash_us += micros(started);
        if failures.is_empty() {
            break records;
        }
        prefailed.extend(failures);
        reruns += 1;
        env.reset();
    };
    finish(env, ops, records, timings, reruns)
}

/// Execute every operation once, in order.
fn run_pass(env: &mut Env, ops: &[Operation], prefailed: &BTreeMap<usize, ExecutionError>) -> Vec<Record> {
    let mut records = Vec::with_capacity(ops.len());
    let mut stopped = false;
    for (index, op) in ops.iter().enumerate() {
        if let Some(progress) = &env.tx.progress {
            if index % 256 == 0 {
                progress(index);
            }
        }
        if stopped {
            records.push(Record::Skipped);
            continue;
        }
        let mut fx = OpEffects::default();
        let outcome = match prefailed.get(&index) {
            Some(e) => Err(e.clone()),
            None => ops::execute(env, op, &mut fx),
        };
        match outcome {
            Ok(()) => {
                apply(env, index, &mut fx);
                records.push(Record::Executed(fx));
            }
            Err(e) => {
                stopped = env.tx.on_failure == FailurePolicy::FailFast;
                records.push(Record::Failed(e, fx));
            }
        }
    }
    records
}

/// Make a successful operation's effects visible to the rest of the batch.
fn apply(env: &mut Env, index: usize, fx: &mut OpEffects) {
    for c in &fx.consumes {
        env.overlay.consume(c.register.id, index);
    }
    for (_, after) in &fx.updates {
        env.overlay.put(after.clone());
    }
    if prove::gathers_witnesses(env.tx) {
        fx.created_copies = fx.new_registers.clone();
    }
    for (handle, register) in fx.creates.iter().zip(fx.new_registers.drain(..)) {
        env.overlay.create(*handle, register);
    }
}

fn finish(
    env: Env,
    ops: &[Operation],
    records: Vec<Record>,
    timings: StageTimings,
    reruns: usize,
) -> Result<BatchExecutionResult, ExecutionError> {
    let tx = env.tx;
    let ctx = env.ctx;
    let mode = tx.mode;
    let mut results = Vec::with_capacity(records.len());
    let mut witnesses = Vec::new();
    let mut nullifiers = Vec::new();
    let mut counts = (0u64, 0u64, 0u64);
    for (index, (record, op)) in records.into_iter().zip(ops).enumerate() {
        let kind = op.kind();
        let (status, instructions, traces) = match record {
            Record::Skipped => (OpStatus::Skipped, 0, Vec::new()),
            Record::Failed(e, fx) => (OpStatus::Failed(e), fx.instructions, fx.traces),
            Record::Executed(fx) => {
                let (spent, created) = flush::claims(&fx, &env.pool)?;
                counts.0 += created.len() as u64;
                counts.1 += fx.updates.len() as u64;
                counts.2 += spent.len() as u64;
                if prove::gathers_witnesses(tx) {
                    witnesses.push(witness(kind, &fx, &created));
                }
                let outcome = OpOutcome {
                    created,
                    consumed: fx.consumes.iter().map(|c| c.register.id).collect(),
                    nullifiers: spent.clone(),
                    updated: fx.updates.iter().map(|(_, a)| (a.id, a.version)).collect(),
                    read: fx.read,
                    verified: fx.verified,
                };
                nullifiers.extend(spent);
                (OpStatus::Succeeded(Box::new(outcome)), fx.instructions, fx.traces)
            }
        };
        results.push(OperationResult { index, kind, status, instructions, traces });
    }
    let success_count = results.iter().filter(|r| r.succeeded()).count();
    let any_failed = success_count < results.len();
    let rolled_back = any_failed && tx.commit == CommitPolicy::AllOrNothing;

    let Env { store, mut pool, overlay, .. } = env;
    let (upserts, removed) = overlay.into_changes();
    let delta = BatchDelta { upserts, removed, nullifiers };
    let mut metadata = BatchMetadata {
        trace_id: ctx.trace_id.clone(),
        mode,
        on_failure: tx.on_failure,
        commit_policy: tx.commit,
        ops_count: ops.len(),
        batch_number: None,
        committed: false,
        rolled_back,
        state_root_before: store.state_root(),
        state_root_after: None,
        would_change: None,
        witnesses: Vec::new(),
        timings,
        prove_stages: None,
        reruns,
    };
    let wants_commit = mode.writes_store() && success_count > 0 && !rolled_back;
    if wants_commit || (mode == ExecutionMode::Simulation && !rolled_back) {
        let started = Instant::now();
        let staged = store.stage(delta, &mut pool)?;
        metadata.timings.hash_us += micros(started);
        metadata.state_root_after = Some(staged.root_after);
        if !wants_commit {
            metadata.would_change = Some(ChangeSet::from(&staged.delta));
        } else {
            let proof = match &tx.proof_system {
                Some(system) if prove::proves(tx) => {
                    let started = Instant::now();
                    let (proof, stages) = prove::prove_and_check(system.as_ref(), &witnesses)?;
                    metadata.timings.prove_us = micros(started);
                    metadata.prove_stages = stages;
                    Some(proof)
                }
                _ => None,
            };
            let started = Instant::now();
            let record = BatchRecord {
                trace_id: ctx.trace_id.clone(),
                domain: ctx.domain_id.to_string(),
                mode: format!("{mode:?}"),
                timestamp: ctx.timestamp,
                ops_count: ops.len() as u64,
                success_count: success_count as u64,
                created: counts.0,
                updated: counts.1,
                consumed: counts.2,
                timings: metadata.timings,
                proof,
                ..Default::default()
            };
            let committed = store.commit(staged, record)?;
            metadata.timings.commit_us = micros(started);
            metadata.batch_number = Some(committed.number);
            metadata.committed = true;
        }
    }
    if mode == ExecutionMode::ProofGeneration {
        metadata.witnesses = witnesses;
    }
    Ok(BatchExecutionResult { results, success_count, metadata })
}

fn witness(kind: crate::resource::OperationKind, fx: &OpEffects, ids: &[crate::resource::ResourceId]) -> OpWitness {
    OpWitness {
        kind,
        consumed: fx.consumes.iter().map(|c| (c.register.clone(), c.nullifier_key)).collect(),
        created: fx.created_copies.iter().zip(ids).map(|(r, id)| ResourceRegister { id: *id, ..r.clone() }).collect(),
        updated: fx.updates.first().cloned(),
    }
}
