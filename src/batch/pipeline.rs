//! Batches in a row, each one's proofs generated while the next executes.
//!
//! Batch n+1 executes against the store plus batch n's staged effects
//! ([`InFlight`]) while n's proofs are generated on another thread. Commits
//! stay in order: n+1 is staged (its state root computed) only after n has
//! committed. If n does not commit (its proofs failed, or the store refused
//! it), n+1 was executed against a state that never happened, so it is
//! executed again against the store as it is: no batch ever commits on top
//! of effects that were not committed.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use crate::capability::KeyRing;
use crate::context::ExecutionContext;
use crate::error::ExecutionError;
use crate::resource::{Operation, VerifyTarget};
use crate::store::RegisterStore;

use super::view::InFlight;
use super::{execute_only, prove, stage, BatchExecutionResult, PendingCommit, Proven, Staged, TransactionContext};

/// One batch of a pipelined run.
#[derive(Clone, Copy)]
pub struct BatchJob<'a> {
    pub keys: &'a KeyRing,
    pub ops: &'a [Operation],
    pub ctx: &'a ExecutionContext,
    pub tx: &'a TransactionContext,
}

type BatchOutcome = Result<BatchExecutionResult, ExecutionError>;

type ProverOutput<'a> = (Box<PendingCommit<'a>>, Result<Proven, ExecutionError>);

/// Where a staged batch's proofs are being made.
enum Prover<'scope, 'a> {
    Thread(ScopedJoinHandle<'scope, ProverOutput<'a>>),
    /// No thread could be started: proven on the calling thread instead.
    Done(ProverOutput<'a>),
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
            Prover::Done(output) => output,
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

/// Execute `jobs` in order, as [`super::execute_batch`] would one after the
/// other, but proving each batch while the next one executes. One result per
/// job, in order.
pub fn execute_batches(store: &mut RegisterStore, jobs: &[BatchJob]) -> Vec<BatchOutcome> {
    let mut outcomes = Vec::with_capacity(jobs.len());
    std::thread::scope(|scope| {
        let mut ahead: Option<Proving> = None;
        for job in jobs {
            if reads_uncommitted_log(job.ops, store.head()) {
                // A Verify of a stored proof names the batch still in flight
                // (or one after it, whose error message quotes the head).
                if let Some(proving) = ahead.take() {
                    outcomes.push(proving.finish(store));
                }
            }
            let inflight = ahead.as_ref().map(|p| &p.inflight);
            let early =
                catch_unwind(AssertUnwindSafe(|| execute_only(store, inflight, job.keys, job.ops, job.ctx, job.tx)));
            let mut executed = match early {
                Ok(executed) => executed,
                Err(panic) => {
                    // Run one by one, the batch in flight would have committed
                    // before this one started: commit it before the panic goes on.
                    if let Some(proving) = ahead.take() {
                        let _ = proving.finish(store);
                    }
                    resume_unwind(panic)
                }
            };
            if let Some(proving) = ahead.take() {
                let outcome = proving.finish(store);
                let committed = matches!(&outcome, Ok(result) if result.metadata.committed);
                outcomes.push(outcome);
                if !committed {
                    executed = execute_only(store, None, job.keys, job.ops, job.ctx, job.tx);
                }
            }
            match executed.and_then(|executed| stage(executed, store)) {
                Err(e) => outcomes.push(Err(e)),
                Ok(Staged::Done(result)) => outcomes.push(Ok(*result)),
                Ok(Staged::Commit(pending)) if !prove::proves(job.tx) => {
                    outcomes.push(pending.commit(store, None));
                }
                Ok(Staged::Commit(pending)) => ahead = Some(start_proving(scope, store, pending)),
            }
        }
        if let Some(proving) = ahead {
            outcomes.push(proving.finish(store));
        }
    });
    outcomes
}

fn start_proving<'scope, 'a: 'scope>(
    scope: &'scope Scope<'scope, '_>,
    store: &RegisterStore,
    pending: Box<PendingCommit<'a>>,
) -> Proving<'scope, 'a> {
    let inflight = InFlight::new(store.head() + 1, &pending.staged.delta);
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
            Prover::Done((pending, proven))
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
