//! The execute → hash → prove → commit pipeline.
//!
//! 1. **Execute**: every operation runs against the store seen through the
//!    batch's overlay (effects of earlier successful operations). Ids,
//!    nullifiers and commitments are hash requests filed in the pool; an
//!    operation's effects enter the overlay only when it succeeds.
//! 2. **Flush**: the pool hashes everything at once; digest-dependent checks
//!    run ([`flush`]). If one fails, its operation and the later ones that
//!    touched what it changed are marked failed, and the batch is executed
//!    again without them ([`rerun`]): once.
//! 3. **Prove** (Standard and ProofGeneration with a [`ProofSystem`]): the
//!    witnesses become proofs, checked against the verifying key, stored in
//!    the batch record as opaque bytes. A failure is a ProofGenerationError
//!    and nothing is committed.
//! 4. **Commit** (Standard, ProofGeneration, Debug): the store stages the
//!    delta (commitments and the new state root through the pool) and appends
//!    it durably in one transaction. Simulation stops after staging;
//!    Verification after the flush checks.

mod ahead;
mod env;
pub mod file;
mod flush;
mod ops;
mod outcomes;
mod overlay;
mod pipeline;
mod prove;
mod rerun;
mod result;
mod transaction;
mod view;

pub use crate::prove::{OpWitness, ProofSystem, ProveStages};
pub use pipeline::{execute_batches, BatchJob};
pub use result::{
    BatchExecutionResult, BatchMetadata, ChangeSet, LogicTrace, OpOutcome, OpStatus, OperationResult, StageBackends,
};
pub use transaction::{CommitPolicy, FailurePolicy, TransactionContext, MAX_BATCH_TRACED_STEPS, MAX_LOGIC_FILINGS};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::capability::KeyRing;
use crate::context::{ExecutionContext, ExecutionMode};
use crate::error::ExecutionError;
use crate::resource::{Operation, ResourceRegister};
use crate::store::{Appended, BatchDelta, BatchRecord, ProofRecord, RegisterStore, StageTimings, StagedBatch};

use env::{hash_failed, Env, OpEffects};

/// Content a batch brings (its logic programs): visible to its operations
/// and stored when it commits, never before.
pub type Content = (crate::ContentId, Arc<Vec<u8>>);
use outcomes::Outcomes;
use view::InFlight;

/// One operation's fate in a pass.
enum Record {
    Executed(OpEffects),
    /// The error boxed: failures are rare, and every record moves a few
    /// times on the merge's serial path (the error would add 72 bytes to each).
    Failed(Box<ExecutionError>, OpEffects),
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
    let executed = execute_only(store, None, &BatchJob::new(keys, ops, ctx, tx))?;
    match stage(executed, store)? {
        Staged::Done(result) => Ok(*result),
        Staged::Commit(pending) => {
            let proof = pending.prove()?;
            pending.commit(store, proof)
        }
    }
}

/// Stages 1 and 2: execute against the store (and the in-flight batch ahead
/// of this one, if any) and flush the hash pool until every check passes.
fn execute_only<'a>(
    store: &RegisterStore,
    inflight: Option<&InFlight>,
    job: &BatchJob<'a>,
) -> Result<Executed<'a>, ExecutionError> {
    let BatchJob { keys, ops, ctx, tx, programs } = *job;
    check_time(store, inflight, ctx, tx)?;
    file::check_environment(&ctx.environment).map_err(|reason| ExecutionError::DomainAccessError {
        domain: ctx.domain_id.to_string(),
        reason: format!("the context's environment: {reason}"),
    })?;
    let mut timings = StageTimings::default();
    let mut env = Env::new(store, inflight, keys, ctx, tx, ops, programs);
    let mut prefailed: BTreeMap<usize, ExecutionError> = BTreeMap::new();
    let mut reruns = 0;
    let mut in_order = false;
    let (records, claimed, ran_ahead) = loop {
        let started = Instant::now();
        let (records, ahead) = match run_pass(&mut env, ops, &prefailed, in_order) {
            // The filing limit passed in a pass that may have run operations
            // ahead: decided by the in-order pass (an operation ahead may
            // have seen the store where in order it would have seen a
            // register the batch created, and filed otherwise).
            Err(_) if !in_order => {
                in_order = true;
                env.reset();
                continue;
            }
            passed => passed?,
        };
        timings.execute_us += micros(started);
        let ran_ahead = ahead.as_ref().map_or(0, |ahead| ahead.iter().filter(|a| **a).count());

        let started = Instant::now();
        env.resolve_pending().map_err(hash_failed)?;
        env.pool.flush().map_err(hash_failed)?;
        let executed: Vec<(usize, &OpEffects)> = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Record::Executed(fx) => Some((i, fx)),
                _ => None,
            })
            .collect();
        let (failures, claimed) =
            flush::check(&executed, &env.effects, &env.pool, env.view(), &env.overlay, tx.on_failure)?;
        timings.hash_us += micros(started);
        if failures.is_empty() {
            break (records, claimed, ran_ahead);
        }
        if ahead.is_some_and(|ahead| ahead::diverged(ops, &failures, &ahead)) {
            // Not a rerun: the same pass again, as the in-order execution has it.
            in_order = true;
            env.reset();
            continue;
        }
        let dependents = rerun::dependents(ops, &failures, &prefailed);
        prefailed.extend(failures);
        prefailed.extend(dependents);
        reruns += 1;
        env.reset();
    };
    let passes = Passes { timings, reruns, ran_ahead };
    conclude(env, ops, records, claimed, passes, programs)
}

/// What the passes over a batch took.
struct Passes {
    timings: StageTimings,
    reruns: usize,
    ran_ahead: usize,
}

/// A batch's timestamp must not be before the last committed batch's (or
/// the in-flight one's ahead of it), nor further from the clock than the
/// transaction allows.
fn check_time(
    store: &RegisterStore,
    inflight: Option<&InFlight>,
    ctx: &ExecutionContext,
    tx: &TransactionContext,
) -> Result<(), ExecutionError> {
    let (floor, batch) = match inflight {
        Some(ahead) if ahead.timestamp() >= store.head_timestamp() => (ahead.timestamp(), ahead.number()),
        _ => (store.head_timestamp(), store.head()),
    };
    if ctx.timestamp < floor {
        return Err(ExecutionError::StateCommitmentError {
            reason: format!(
                "the batch's timestamp {} is before batch {batch}'s ({floor}): committed timestamps never go back, \
                 so a batch cannot be dated before one already committed",
                ctx.timestamp
            ),
        });
    }
    if let Some(refusal) = tx.max_clock_skew.and_then(|skew| file::clock_skew_refusal(ctx.timestamp, file::now(), skew))
    {
        return Err(ExecutionError::StateCommitmentError {
            reason: format!("{refusal} (use \"timestamp\": \"now\", or --max-clock-skew)"),
        });
    }
    Ok(())
}

/// Execute every operation once, with the outcome of executing them in
/// order: those the plan allows run ahead on the rayon pool ([`ahead`]) and
/// are merged as the loop reaches them; the others run here. Also which
/// operations ran ahead, if any did.
fn run_pass(
    env: &mut Env,
    ops: &[Operation],
    prefailed: &BTreeMap<usize, ExecutionError>,
    in_order: bool,
) -> Result<(Vec<Record>, Option<Vec<bool>>), ExecutionError> {
    let plan = if in_order { None } else { ahead::plan(ops, prefailed) };
    match plan {
        None => Ok((merge_pass(env, ops, prefailed, None)?, None)),
        Some(mut plan) => {
            let seed = env.seed();
            let records =
                ahead::run(&seed, ops, &mut plan, |ran, plan| merge_pass(env, ops, prefailed, Some((ran, plan))))?;
            Ok((records, Some(plan.ahead)))
        }
    }
}

/// The pass's loop, in batch order: each operation run ahead is merged
/// (`plan[index]` cleared if it has to run in order after all), every other
/// one executes here. An error fails the batch: its logic programs filed
/// more than [`TransactionContext::max_logic_filings`] (found where in order they would
/// have, whichever operations ran ahead).
fn merge_pass(
    env: &mut Env,
    ops: &[Operation],
    prefailed: &BTreeMap<usize, ExecutionError>,
    mut ahead: Option<(&mut ahead::RanAhead, &mut Vec<bool>)>,
) -> Result<Vec<Record>, ExecutionError> {
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
            if let Some((_, plan)) = &mut ahead {
                plan[index] = false;
            }
            continue;
        }
        env.new_registers.clear();
        if let Some((ran, plan)) = &mut ahead {
            if plan[index] {
                match ran.merge(index, env) {
                    Some(mut record) => {
                        let (Record::Executed(fx) | Record::Failed(_, fx)) = &record else {
                            unreachable!("an operation run ahead is executed or failed")
                        };
                        if !env.count_filings(fx) {
                            return Err(env.logic_limit_error(index));
                        }
                        match &mut record {
                            Record::Executed(fx) => apply_with(env, index, fx, |id| ran.contested(id)),
                            _ => stopped = env.tx.on_failure == FailurePolicy::FailFast,
                        }
                        records.push(record);
                        continue;
                    }
                    // Not run ahead after all: it runs here, in order.
                    None => plan[index] = false,
                }
            }
        }
        let mut fx = OpEffects::default();
        let mark = env.effects.mark();
        let outcome = match prefailed.get(&index) {
            Some(e) => Err(e.clone()),
            None => ops::execute(env, op, &mut fx),
        };
        if env.logic_over_allowance {
            return Err(env.logic_limit_error(index));
        }
        match outcome {
            Ok(()) => {
                (fx.consumes, fx.creates) = env.effects.since(mark);
                apply(env, index, &mut fx);
                records.push(Record::Executed(fx));
            }
            Err(e) => {
                env.effects.undo(mark);
                env.new_registers.clear();
                stopped = env.tx.on_failure == FailurePolicy::FailFast;
                records.push(Record::Failed(Box::new(e), fx));
            }
        }
    }
    Ok(records)
}

/// Make a successful operation's effects visible to the rest of the batch.
fn apply(env: &mut Env, index: usize, fx: &mut OpEffects) {
    apply_with(env, index, fx, |_| true)
}

/// [`apply`], with the consumed ids that no later operation can look up
/// (`findable` false) only recorded, not indexed: the map insert was a
/// fifth of the serial merge of operations run ahead.
fn apply_with(
    env: &mut Env,
    index: usize,
    fx: &mut OpEffects,
    findable: impl Fn(&crate::resource::ResourceId) -> bool,
) {
    for c in &env.effects.consumes[fx.consumes.clone()] {
        match findable(&c.register.id) {
            true => env.overlay.consume(c.register.id, index),
            false => env.overlay.consume_unseen(c.register.id),
        }
    }
    for (_, after) in &fx.updates {
        env.overlay.put(Arc::clone(after));
    }
    if prove::gathers_witnesses(env.tx) {
        fx.extras().created_copies = env.new_registers.clone();
    }
    for (handle, register) in env.effects.creates[fx.creates.clone()].iter().zip(env.new_registers.drain(..)) {
        env.overlay.create(*handle, register);
    }
}

/// A batch that has executed and passed its flush checks.
struct Executed<'a> {
    ctx: &'a ExecutionContext,
    tx: &'a TransactionContext,
    ops_count: usize,
    /// Built into the results last (while a commit's log append runs).
    outcomes: Outcomes<'a>,
    success_count: usize,
    metadata: BatchMetadata,
    witnesses: Vec<OpWitness>,
    delta: BatchDelta,
    /// Created, updated and consumed registers.
    counts: (u64, u64, u64),
    pool: crate::hash::HashPool,
    /// Stored when the batch commits.
    programs: &'a [Content],
}

fn conclude<'a>(
    env: Env<'_, 'a>,
    ops: &'a [Operation],
    records: Vec<Record>,
    claimed: flush::Claimed,
    passes: Passes,
    programs: &'a [Content],
) -> Result<Executed<'a>, ExecutionError> {
    let Passes { timings, reruns, ran_ahead } = passes;
    let tx = env.tx;
    let ctx = env.ctx;
    let mode = tx.mode;
    // Every executed operation passed the flush checks, which claimed their
    // nullifiers and created ids in this order.
    let flush::Claimed { nullifiers, ids: created } = claimed;
    let Env { pool, overlay, effects, .. } = env;
    let consumes = effects.consumes;
    let mut witnesses = Vec::new();
    let mut counts = (0u64, 0u64, 0u64);
    for (record, op) in records.iter().zip(ops) {
        if let Record::Executed(fx) = record {
            counts.0 += fx.creates.len() as u64;
            counts.1 += fx.updates.len() as u64;
            counts.2 += fx.consumes.len() as u64;
            if prove::gathers_witnesses(tx) {
                let consumed = &consumes[fx.consumes.clone()];
                witnesses.push(witness(op.kind(), fx, consumed, &created[fx.creates.clone()]));
            }
        }
    }
    let outcomes = Outcomes { ops, records, consumes, nullifiers: nullifiers.clone(), created };
    let success_count = outcomes.success_count();
    let any_failed = success_count < ops.len();
    let rolled_back = any_failed && tx.commit == CommitPolicy::AllOrNothing;

    let (upserts, removed) = overlay.into_changes();
    let metadata = BatchMetadata {
        trace_id: ctx.trace_id.clone(),
        mode,
        on_failure: tx.on_failure,
        commit_policy: tx.commit,
        ops_count: ops.len(),
        batch_number: None,
        committed: false,
        rolled_back,
        // Set when the batch is staged: a batch behind an in-flight one is
        // executed before its predecessor commits.
        state_root_before: [0; 32],
        state_root_after: None,
        would_change: None,
        witnesses: Vec::new(),
        timings,
        prove_stages: None,
        reruns,
        backends: StageBackends {
            execute: Some(crate::ResolvedBackend::Cpu),
            execute_threads: rayon::current_num_threads(),
            ran_ahead,
            hash: Some(pool.backend()),
            prove: None,
            quotient: None,
            hash_fallbacks: pool.gpu_fallbacks() as u64,
            hashed_on_gpu: pool.gpu_hashed(),
            poseidon_on_gpu: pool.gpu_poseidon_hashed(),
            poseidon_on_cpu: pool.cpu_poseidon_hashed(),
        },
    };
    Ok(Executed {
        ctx,
        tx,
        ops_count: ops.len(),
        outcomes,
        success_count,
        metadata,
        witnesses,
        delta: BatchDelta { upserts, removed, nullifiers },
        counts,
        pool,
        programs,
    })
}

impl Executed<'_> {
    /// Whether this batch writes the store (it then needs staging and, where
    /// a proof system is set, proofs).
    fn wants_commit(&self) -> bool {
        self.tx.mode.writes_store() && self.success_count > 0 && !self.metadata.rolled_back
    }

    fn into_result(mut self) -> BatchExecutionResult {
        let results = std::mem::take(&mut self.outcomes).build();
        self.finish(results)
    }

    fn finish(self, results: Vec<OperationResult>) -> BatchExecutionResult {
        let mut metadata = self.metadata;
        if self.tx.mode == ExecutionMode::ProofGeneration {
            metadata.witnesses = self.witnesses;
        }
        BatchExecutionResult { results, success_count: self.success_count, metadata }
    }
}

/// What staging left to do.
enum Staged<'a> {
    /// Nothing to commit (or a simulation's would-be changes): the result.
    Done(Box<BatchExecutionResult>),
    /// Staged against the committed state; proofs (if any) then commit.
    Commit(Box<PendingCommit<'a>>),
}

/// A staged batch between its flush and its commit.
struct PendingCommit<'a> {
    executed: Executed<'a>,
    staged: StagedBatch,
}

/// Stage 3a: the state root after the batch, computed through the pool.
fn stage<'a>(mut executed: Executed<'a>, store: &RegisterStore) -> Result<Staged<'a>, ExecutionError> {
    executed.metadata.state_root_before = store.state_root();
    let wants_commit = executed.wants_commit();
    let simulating = executed.tx.mode == ExecutionMode::Simulation && !executed.metadata.rolled_back;
    if !wants_commit && !simulating {
        return Ok(Staged::Done(Box::new(executed.into_result())));
    }
    let started = Instant::now();
    let delta = std::mem::take(&mut executed.delta);
    let staged = store.stage(delta, &mut executed.pool, wants_commit)?;
    executed.metadata.timings.hash_us += micros(started);
    executed.metadata.backends.hash_fallbacks = executed.pool.gpu_fallbacks() as u64;
    executed.metadata.backends.hashed_on_gpu = executed.pool.gpu_hashed();
    executed.metadata.backends.poseidon_on_gpu = executed.pool.gpu_poseidon_hashed();
    executed.metadata.backends.poseidon_on_cpu = executed.pool.cpu_poseidon_hashed();
    executed.metadata.state_root_after = Some(staged.root_after);
    if !wants_commit {
        executed.metadata.would_change = Some(ChangeSet::from(&staged.delta));
        return Ok(Staged::Done(Box::new(executed.into_result())));
    }
    Ok(Staged::Commit(Box::new(PendingCommit { executed, staged })))
}

/// A batch's proofs and the time the prove stage took.
type Proven = Option<(ProofRecord, Option<ProveStages>, u64)>;

impl<'a> PendingCommit<'a> {
    /// Stage 3b: proofs of the batch, checked against the verifying key
    /// (none when the batch has no proof system or its mode does not prove).
    /// Needs nothing of the store, so it may run on another thread.
    fn prove(&self) -> Result<Proven, ExecutionError> {
        let tx = self.executed.tx;
        match &tx.proof_system {
            Some(system) if prove::proves(tx) => {
                tx.stopped_before("proofs")?;
                let started = Instant::now();
                let (proof, stages) = prove::prove_and_check(system.as_ref(), &self.executed.witnesses)?;
                Ok(Some((proof, stages, micros(started))))
            }
            _ => Ok(None),
        }
    }

    /// Stage 4: append the batch and its proofs durably, then apply it.
    fn commit(self, store: &mut RegisterStore, proven: Proven) -> Result<BatchExecutionResult, ExecutionError> {
        self.append(store, proven)?.apply(store)
    }

    /// Stage 4a: append the batch and its proofs to the log, building the
    /// results beside (the store as read is unchanged until it is applied).
    fn append(self, store: &RegisterStore, proven: Proven) -> Result<AppendedCommit<'a>, ExecutionError> {
        self.executed.tx.stopped_before("commit")?;
        let PendingCommit { mut executed, mut staged } = self;
        let (proof, stages, prove_us) = match proven {
            Some((proof, stages, us)) => (Some(proof), stages, us),
            None => (None, None, 0),
        };
        executed.metadata.timings.prove_us = prove_us;
        executed.metadata.prove_stages = stages;
        if proof.is_some() {
            // Where the MSMs ran (the GPU only when all of them did), else
            // where the proof system sends them.
            let msms = stages.and_then(|s| s.msm_backend());
            executed.metadata.backends.prove =
                msms.or_else(|| executed.tx.proof_system.as_ref().and_then(|s| s.backend()));
            executed.metadata.backends.quotient = stages.and_then(|s| s.quotient_backend());
        }
        let (ctx, counts) = (executed.ctx, executed.counts);
        let record = BatchRecord {
            trace_id: ctx.trace_id.clone(),
            domain: ctx.domain_id.to_string(),
            mode: format!("{:?}", executed.tx.mode),
            timestamp: ctx.timestamp,
            ops_count: executed.ops_count as u64,
            success_count: executed.success_count as u64,
            created: counts.0,
            updated: counts.1,
            consumed: counts.2,
            timings: executed.metadata.timings,
            proof,
            request_id: executed.tx.request_id.clone(),
            ..Default::default()
        };
        // The programs first: a batch in the log never names content the
        // store lacks. (Stored content no batch uses is harmless.)
        for (id, bytes) in executed.programs {
            let stored = store.put_content(bytes)?;
            debug_assert_eq!(stored, *id);
        }
        let outcomes = std::mem::take(&mut executed.outcomes);
        let (appended, results) = store.append_while(&mut staged, record, || outcomes.build());
        let appended = match (appended, results) {
            (Ok(appended), results) => AppendedCommit { executed, staged, appended, results },
            // Nothing was written: the panic goes on now.
            (Err(_), Err(panic)) => std::panic::resume_unwind(panic),
            (Err(e), Ok(_)) => return Err(e.into()),
        };
        Ok(appended)
    }
}

/// A batch appended to the log with its results built: it commits once
/// applied in memory.
struct AppendedCommit<'a> {
    executed: Executed<'a>,
    staged: StagedBatch,
    appended: Appended,
    /// Or the panic that building them raised (it goes on once the batch is applied).
    results: std::thread::Result<Vec<OperationResult>>,
}

impl AppendedCommit<'_> {
    /// Stage 4b: apply the batch in memory.
    fn apply(self, store: &mut RegisterStore) -> Result<BatchExecutionResult, ExecutionError> {
        let AppendedCommit { mut executed, staged, appended, results } = self;
        let committed = store.apply(staged, appended);
        let results = results.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        executed.metadata.timings.commit_us = committed.timings.commit_us;
        executed.metadata.batch_number = Some(committed.number);
        executed.metadata.committed = true;
        Ok(executed.finish(results))
    }
}

fn witness(
    kind: crate::resource::OperationKind,
    fx: &OpEffects,
    consumed: &[env::Consumption],
    ids: &[crate::resource::ResourceId],
) -> OpWitness {
    OpWitness {
        kind,
        consumed: consumed.iter().map(|c| (ResourceRegister::clone(&c.register), c.nullifier_key)).collect(),
        created: fx
            .extras
            .as_ref()
            .map_or(&[][..], |extras| &extras.created_copies)
            .iter()
            .zip(ids)
            .map(|(r, id)| ResourceRegister { id: *id, ..ResourceRegister::clone(r) })
            .collect(),
        updated: fx.updates.first().map(|(b, a)| (ResourceRegister::clone(b), ResourceRegister::clone(a))),
    }
}
