//! Batches in a row, each one's tail overlapped with the next one's execution.
//!
//! Batch n+1 executes against the store plus batch n's effects
//! ([`InFlight`]) while, on another thread, n is staged (its state root
//! computed) and appended to the batch log, or, where it is proven, its
//! proofs are generated; all of that only reads the store. Once n+1 has
//! executed, n is applied in memory (or, proven, appended and applied), and
//! only then is n+1 staged. If n does not commit (its proofs failed, or the
//! store refused it), n+1 was executed against a state that never happened,
//! so it is executed again against the store as it is: no batch ever
//! commits on top of effects that were not committed.
//!
//! One core executes while the other stages: run one by one, a batch kept
//! the two cores about 58% busy.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use crate::capability::KeyRing;
use crate::context::ExecutionContext;
use crate::error::ExecutionError;
use crate::resource::{Operation, VerifyTarget};
use crate::store::RegisterStore;

use super::view::InFlight;
use super::{
    execute_only, prove, stage, AppendedCommit, BatchExecutionResult, Content, Executed, PendingCommit, Proven, Staged,
    TransactionContext,
};

/// One batch of a pipelined run.
#[derive(Clone, Copy)]
pub struct BatchJob<'a> {
    pub keys: &'a KeyRing,
    pub ops: &'a [Operation],
    pub ctx: &'a ExecutionContext,
    pub tx: &'a TransactionContext,
    /// The logic programs the batch brings (stored when it commits).
    pub programs: &'a [Content],
}

impl<'a> BatchJob<'a> {
    pub fn new(keys: &'a KeyRing, ops: &'a [Operation], ctx: &'a ExecutionContext, tx: &'a TransactionContext) -> Self {
        BatchJob { keys, ops, ctx, tx, programs: &[] }
    }

    pub fn with_programs(self, programs: &'a [Content]) -> Self {
        BatchJob { programs, ..self }
    }
}

type BatchOutcome = Result<BatchExecutionResult, ExecutionError>;

type ProverOutput<'a> = (Box<PendingCommit<'a>>, Result<Proven, ExecutionError>);

/// Where a staged batch's proofs are being made.
enum Prover<'scope, 'a> {
    Thread(ScopedJoinHandle<'scope, ProverOutput<'a>>),
    /// No thread could be started: proven on the calling thread instead
    /// (boxed: rare, and as large as the proofs' timings).
    Done(Box<ProverOutput<'a>>),
}

/// A staged batch whose proofs are being generated on another thread.
struct Proving<'scope, 'a> {
    inflight: InFlight,
    prover: Prover<'scope, 'a>,
}

impl Proving<'_, '_> {
    /// Wait for the proofs, then commit.
    fn finish(self, store: &mut RegisterStore) -> BatchOutcome {
        let (pending, proven) = match self.prover {
            Prover::Done(output) => *output,
            Prover::Thread(handle) => handle.join().map_err(|_| ExecutionError::ProofGenerationError {
                stage: "prove".into(),
                reason: format!(
                    "the prover thread of batch {} panicked; the batch was not committed",
                    self.inflight.number()
                ),
            })?,
        };
        pending.commit(store, proven?)
    }
}

/// The batch ahead of the one executing: it commits once that one has
/// executed.
enum Ahead<'scope, 'a> {
    Proving(Box<Proving<'scope, 'a>>),
    /// Executed, to commit without proofs: staged and appended to the log
    /// beside the next batch's execution, applied in memory after it.
    Unstaged {
        inflight: InFlight,
        executed: Box<Executed<'a>>,
    },
}

impl<'a> Ahead<'_, 'a> {
    /// Commit it now, with nothing beside.
    fn finish(self, store: &mut RegisterStore) -> BatchOutcome {
        match self {
            Ahead::Proving(proving) => proving.finish(store),
            Ahead::Unstaged { executed, .. } => stage_and_append(*executed, store)?.commit(store),
        }
    }

    /// Execute `job` against the store and this batch's effects while this
    /// batch is staged (or proven) on another thread; then commit this
    /// batch. Returns its outcome and `job`'s execution, or the panic of
    /// `job`'s execution, which comes after this batch has committed (or failed).
    fn finish_beside(
        self,
        store: &mut RegisterStore,
        job: &BatchJob<'a>,
    ) -> (BatchOutcome, std::thread::Result<Result<Executed<'a>, ExecutionError>>) {
        let execute = |store: &RegisterStore, inflight: &InFlight| {
            catch_unwind(AssertUnwindSafe(|| execute_only(store, Some(inflight), job)))
        };
        match self {
            Ahead::Proving(proving) => {
                let executed = execute(store, &proving.inflight);
                (proving.finish(store), executed)
            }
            Ahead::Unstaged { inflight, executed } => {
                let number = inflight.number();
                let shared: &RegisterStore = store;
                // The batch stays reachable from here if no thread can be started.
                let slot = Mutex::new(Some(executed));
                let (staged, next) = std::thread::scope(|scope| {
                    let stager = std::thread::Builder::new().name("cvm-stage".into());
                    match stager.spawn_scoped(scope, || stage_and_append(*take(&slot), shared)) {
                        Ok(stager) => {
                            let next = execute(shared, &inflight);
                            (stager.join(), next)
                        }
                        Err(err) => {
                            tracing::warn!(%err, "no staging thread: staging, then executing the next batch");
                            (Ok(stage_and_append(*take(&slot), shared)), execute(shared, &inflight))
                        }
                    }
                });
                let outcome = match staged {
                    Ok(Ok(tail)) => tail.commit(store),
                    Ok(Err(e)) => Err(e),
                    // Before its append (after it, the panic is handed over with the batch).
                    Err(_) => Err(ExecutionError::StateCommitmentError {
                        reason: format!("staging batch {number} panicked; the batch was not committed"),
                    }),
                };
                (outcome, next)
            }
        }
    }
}

/// Execute `jobs` in order, as [`super::execute_batch`] would one after the
/// other, but staging or proving each batch while the next one executes.
/// One result per job, in order.
pub fn execute_batches(store: &mut RegisterStore, jobs: &[BatchJob]) -> Vec<BatchOutcome> {
    let mut outcomes = Vec::with_capacity(jobs.len());
    std::thread::scope(|scope| {
        let mut ahead: Option<Ahead> = None;
        for job in jobs {
            if reads_uncommitted_log(job.ops, store.head()) {
                // A Verify of a stored proof names the batch still in flight
                // (or one after it, whose error message quotes the head).
                if let Some(ahead) = ahead.take() {
                    outcomes.push(ahead.finish(store));
                }
            }
            let executed = match ahead.take() {
                None => execute_only(store, None, job),
                Some(ahead) => {
                    let (outcome, executed) = ahead.finish_beside(store, job);
                    let committed = matches!(&outcome, Ok(result) if result.metadata.committed);
                    outcomes.push(outcome);
                    // Run one by one, the batch ahead would have committed
                    // (or failed) before this one started: it has, now the
                    // panic goes on.
                    let executed = executed.unwrap_or_else(|panic| resume_unwind(panic));
                    match committed {
                        true => executed,
                        false => execute_only(store, None, job),
                    }
                }
            };
            match executed {
                Err(e) => outcomes.push(Err(e)),
                Ok(executed) if executed.wants_commit() && !prove::proves(job.tx) => {
                    let inflight = InFlight::of(store.head() + 1, &executed);
                    ahead = Some(Ahead::Unstaged { inflight, executed: Box::new(executed) });
                }
                // Nothing to commit, or proofs to make.
                Ok(executed) => match stage(executed, store) {
                    Err(e) => outcomes.push(Err(e)),
                    Ok(Staged::Done(result)) => outcomes.push(Ok(*result)),
                    Ok(Staged::Commit(pending)) => {
                        ahead = Some(Ahead::Proving(Box::new(start_proving(scope, store, pending))));
                    }
                },
            }
        }
        if let Some(ahead) = ahead {
            outcomes.push(ahead.finish(store));
        }
    });
    outcomes
}

/// What staging a batch that commits without proofs left to do.
enum Tail<'a> {
    /// Nothing to commit after all: the result.
    Done(Box<BatchExecutionResult>),
    /// Appended to the log: apply it.
    Appended(Box<AppendedCommit<'a>>),
}

impl Tail<'_> {
    /// Apply it in memory (or hand back the result).
    fn commit(self, store: &mut RegisterStore) -> BatchOutcome {
        match self {
            Tail::Done(result) => Ok(*result),
            Tail::Appended(appended) => appended.apply(store),
        }
    }
}

/// Stage a batch that commits without proofs and append it to the log.
fn stage_and_append<'a>(executed: Executed<'a>, store: &RegisterStore) -> Result<Tail<'a>, ExecutionError> {
    Ok(match stage(executed, store)? {
        Staged::Done(result) => Tail::Done(result),
        Staged::Commit(pending) => Tail::Appended(Box::new(pending.append(store, None)?)),
    })
}

fn start_proving<'scope, 'a: 'scope>(
    scope: &'scope Scope<'scope, '_>,
    store: &RegisterStore,
    pending: Box<PendingCommit<'a>>,
) -> Proving<'scope, 'a> {
    let inflight = InFlight::new(
        store.head() + 1,
        &pending.staged.delta,
        pending.executed.programs,
        pending.executed.ctx.timestamp,
    );
    // The batch stays reachable from here if no thread can be started.
    let slot = Arc::new(Mutex::new(Some(pending)));
    let for_thread = Arc::clone(&slot);
    let spawned = std::thread::Builder::new().name("cvm-prover".into()).spawn_scoped(scope, move || {
        let pending = take(&for_thread);
        let proven = pending.prove();
        (pending, proven)
    });
    let prover = match spawned {
        Ok(handle) => Prover::Thread(handle),
        Err(err) => {
            tracing::warn!(%err, "no prover thread: proving on the calling thread");
            let pending = take(&slot);
            let proven = pending.prove();
            Prover::Done(Box::new((pending, proven)))
        }
    };
    Proving { inflight, prover }
}

fn take<T>(slot: &Mutex<Option<T>>) -> T {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take().expect("the staged batch is taken once")
}

/// Whether a batch verifies the stored proof of a batch past `head` (it then
/// waits for the batch ahead of it to commit); older batches are in the log.
fn reads_uncommitted_log(ops: &[Operation], head: u64) -> bool {
    ops.iter().any(|op| matches!(op, Operation::Verify { target: VerifyTarget::BatchProof { batch } } if *batch > head))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::capability::{CapabilityToken, RootKey};
    use crate::content_id::ContentId;
    use crate::context::{DomainId, ExecutionMode};
    use crate::resource::{nullifier_key_commitment, ConsumedInput, NewResource, ResourceId};
    use crate::vm::{Instruction, Program};

    fn resource(logic: ContentId, nonce: u8) -> NewResource {
        NewResource {
            logic,
            domain: DomainId::new("d"),
            fungibility_domain: "coin".into(),
            quantity: 5,
            metadata: BTreeMap::new(),
            contents: Vec::new(),
            nullifier_key_commitment: nullifier_key_commitment(&[nonce; 32]),
            controller: "c".into(),
            nonce: [nonce; 32],
        }
    }

    /// Three batches: create `a`, spend it into `b`, create `c`; the first
    /// is staged beside the second's execution.
    struct Scenario {
        _dir: tempfile::TempDir,
        store: RegisterStore,
        keys: KeyRing,
        ctx: ExecutionContext,
        batches: [Vec<Operation>; 3],
        ids: [ResourceId; 3],
    }

    fn scenario() -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let store = RegisterStore::open(dir.path()).unwrap();
        let logic = store.put_content(&Program::new(vec![Instruction::Accept], vec![]).unwrap().encode()).unwrap();
        let root = RootKey([5; 32]);
        let mut keys = KeyRing::new();
        keys.insert(DomainId::new("d"), root.clone());
        let ctx = ExecutionContext {
            domain_id: DomainId::new("d"),
            trace_id: "t".into(),
            capability_token: CapabilityToken::mint(&root, DomainId::new("d"), [0; 16]),
            timestamp: 1,
            environment: BTreeMap::new(),
            cross_domain_grants: Vec::new(),
        };
        let (a, b, c) = (resource(logic, 1), resource(logic, 2), resource(logic, 3));
        let ids = [&a, &b, &c].map(|r| ContentId::of_encoding(&r.id_encoding()));
        let batches = [
            vec![Operation::Create { resource: a }],
            vec![Operation::Transfer {
                inputs: vec![ConsumedInput { id: ids[0], nullifier_key: [1; 32] }],
                outputs: vec![b],
            }],
            vec![Operation::Create { resource: c }],
        ];
        Scenario { _dir: dir, store, keys, ctx, batches, ids }
    }

    impl Scenario {
        fn run(&mut self) -> Vec<BatchOutcome> {
            let tx = TransactionContext::new(ExecutionMode::Standard);
            self.run_with(&tx, &tx)
        }

        /// The first batch with `first`, the others with `rest`.
        fn run_with(&mut self, first: &TransactionContext, rest: &TransactionContext) -> Vec<BatchOutcome> {
            let jobs: Vec<BatchJob> = self
                .batches
                .iter()
                .enumerate()
                .map(|(i, ops)| BatchJob::new(&self.keys, ops, &self.ctx, if i == 0 { first } else { rest }))
                .collect();
            execute_batches(&mut self.store, &jobs)
        }

        /// The first batch failed with `error`: nothing of it or of the
        /// second (executed again without it) committed; the third did.
        fn check_first_failed(&self, outcomes: &[BatchOutcome], error: &str) {
            let failed = outcomes[0].as_ref().map(|_| ()).unwrap_err().to_string();
            assert!(failed.contains(error), "{failed}");
            let second = outcomes[1].as_ref().unwrap();
            assert!(!second.metadata.committed);
            let reason = second.results[0].error().unwrap().to_string();
            assert!(reason.contains("not found"), "executed again without batch 1: {reason}");
            assert_eq!(outcomes[2].as_ref().unwrap().metadata.batch_number, Some(1));
            assert_eq!(self.store.head(), 1);
            let [a, b, c] = self.ids;
            assert!(self.store.get(&a).is_none() && self.store.get(&b).is_none() && self.store.get(&c).is_some());
        }
    }

    /// Run the scenario with a failure injected into the store first.
    fn first_fails(inject: impl FnOnce(&mut RegisterStore), error: &str) {
        let mut s = scenario();
        inject(&mut s.store);
        let outcomes = s.run();
        s.check_first_failed(&outcomes, error);
    }

    /// The store refuses the batch appended beside the next one's
    /// execution: it commits nothing, and the next batch, which spent its
    /// output, is executed again without it.
    #[test]
    fn a_staged_batch_the_store_refuses_commits_nothing_and_the_next_runs_without_it() {
        first_fails(RegisterStore::fail_next_append, "injected append failure");
    }

    /// Staging panics on its thread: that batch fails (nothing was
    /// appended), and the next is executed again without it.
    #[test]
    fn a_staging_thread_that_panics_fails_its_batch_only() {
        first_fails(|store| store.panic_next_stage(), "staging batch 1 panicked; the batch was not committed");
    }

    /// A batch told to stop before its commit (a cancelled service job),
    /// even while it is staged beside the next one's execution, commits
    /// nothing; the next is executed again without it. Asked at the commit
    /// boundary only: a batch without proofs has no other.
    #[test]
    fn a_batch_stopped_before_its_commit_commits_nothing_and_the_next_runs_without_it() {
        let mut s = scenario();
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut first = TransactionContext::new(ExecutionMode::Standard);
        let seen = asked.clone();
        first.stop = Some(Arc::new(move |boundary: &str| {
            seen.lock().unwrap().push(boundary.to_string());
            true
        }));
        let outcomes = s.run_with(&first, &TransactionContext::new(ExecutionMode::Standard));
        s.check_first_failed(&outcomes, "stopped before its commit (cancelled): nothing of the batch is committed");
        assert_eq!(*asked.lock().unwrap(), ["commit"]);
    }

    /// Without failures, the three batches commit in order.
    #[test]
    fn the_scenario_commits_every_batch_when_nothing_fails() {
        let mut s = scenario();
        let outcomes = s.run();
        let numbers: Vec<Option<u64>> = outcomes.iter().map(|o| o.as_ref().unwrap().metadata.batch_number).collect();
        assert_eq!(numbers, [Some(1), Some(2), Some(3)]);
        let [a, b, c] = s.ids;
        assert!(s.store.get(&a).is_none() && s.store.get(&b).is_some() && s.store.get(&c).is_some());
    }
}
