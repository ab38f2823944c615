//! `execute_batches`: each batch proven while the next one executes. Every
//! run is compared with the same batches through `execute_batch` one after
//! the other on a second store: same results, same batch numbers, same state
//! roots, including when the next batch depends on the one still in flight
//! and when that one never commits.

use crate::batch_support;

use std::sync::Arc;

use batch_support::*;
use causality_vm::batch::{
    execute_batch, execute_batches, BatchExecutionResult, BatchJob, OpWitness, ProofSystem, TransactionContext,
};
use causality_vm::prove::ProveError;
use causality_vm::resource::{NewResource, Operation, ResourceUpdate, VerifyTarget};
use causality_vm::store::ProofRecord;
use causality_vm::{ExecutionError, ExecutionMode};

/// MAC "proofs" that take a while (so the next batch really executes while
/// they are made) and fail for any batch creating a register controlled by
/// "poison".
struct SlowProofs;

impl ProofSystem for SlowProofs {
    fn name(&self) -> String {
        MacProofs.name()
    }
    fn prove(&self, witnesses: &[OpWitness]) -> Result<ProofRecord, ProveError> {
        std::thread::sleep(std::time::Duration::from_millis(30));
        if witnesses.iter().flat_map(|w| &w.created).any(|r| r.controller == "poison") {
            return Err(ProveError::Synthesis("the circuit is unsatisfied (poisoned witness)".into()));
        }
        MacProofs.prove(witnesses)
    }
    fn verify(&self, record: &ProofRecord) -> Result<(), ProveError> {
        MacProofs.verify(record)
    }
}

fn proving() -> TransactionContext {
    TransactionContext::new(ExecutionMode::Standard).with_proof_system(Arc::new(SlowProofs))
}

/// What must agree between the two runs of one batch.
fn summary(outcome: &Result<BatchExecutionResult, ExecutionError>) -> String {
    match outcome {
        Err(e) => format!("batch error: {e}"),
        Ok(r) => {
            let ops: Vec<String> = r
                .results
                .iter()
                .map(|op| match op.error() {
                    Some(e) => format!("failed: {e}"),
                    None => format!("{:?}", op.status),
                })
                .collect();
            format!(
                "committed {} as {:?}, roots {:?} -> {:?}, ops {ops:?}",
                r.metadata.committed,
                r.metadata.batch_number,
                r.metadata.state_root_before,
                r.metadata.state_root_after
            )
        }
    }
}

/// Run `batches` sequentially on `sequential` and pipelined on `pipelined`
/// (two fresh fixtures), check they agree, and return the pipelined outcomes.
fn compare(
    sequential: &mut Fixture,
    pipelined: &mut Fixture,
    batches: &[(Vec<Operation>, TransactionContext)],
) -> Vec<Result<BatchExecutionResult, ExecutionError>> {
    compare_on(None, sequential, pipelined, batches)
}

/// [`compare`], the sequential run on `pools.0` and the pipelined one on
/// `pools.1` (both on the global pool without them).
fn compare_on(
    pools: Option<(&rayon::ThreadPool, &rayon::ThreadPool)>,
    sequential: &mut Fixture,
    pipelined: &mut Fixture,
    batches: &[(Vec<Operation>, TransactionContext)],
) -> Vec<Result<BatchExecutionResult, ExecutionError>> {
    let mut run_one_by_one = || -> Vec<_> {
        batches
            .iter()
            .map(|(ops, tx)| execute_batch(&mut sequential.store, &sequential.keys, ops, &sequential.ctx, tx))
            .collect()
    };
    let one_by_one = match pools {
        Some((one, _)) => one.install(run_one_by_one),
        None => run_one_by_one(),
    };
    let jobs: Vec<BatchJob> =
        batches.iter().map(|(ops, tx)| BatchJob::new(&pipelined.keys, ops, &pipelined.ctx, tx)).collect();
    let together = match pools {
        Some((_, many)) => many.install(|| execute_batches(&mut pipelined.store, &jobs)),
        None => execute_batches(&mut pipelined.store, &jobs),
    };
    assert_eq!(together.len(), batches.len());
    for (i, (a, b)) in one_by_one.iter().zip(&together).enumerate() {
        assert_eq!(summary(a), summary(b), "batch {i}");
    }
    assert_eq!(sequential.store.state_root(), pipelined.store.state_root());
    assert_eq!(sequential.store.head(), pipelined.store.head());
    together
}

fn error_of(outcome: &Result<BatchExecutionResult, ExecutionError>, op: usize) -> String {
    outcome.as_ref().expect("batch ran").results[op].error().expect("the operation failed").to_string()
}

fn named(mut r: NewResource, controller: &str) -> NewResource {
    r.controller = controller.into();
    r
}

fn plain() -> TransactionContext {
    TransactionContext::new(ExecutionMode::Standard)
}

/// Proven batches build on the batch in flight while it is proven; unproven
/// ones while it is staged.
#[test]
fn batches_that_build_on_the_batch_in_flight_match_sequential_runs() {
    build_on_the_batch_in_flight(proving);
    build_on_the_batch_in_flight(plain);
}

fn build_on_the_batch_in_flight(standard: fn() -> TransactionContext) {
    let (mut seq, mut pipe) = (Fixture::new(), Fixture::new());
    let r0 = seq.resource("gold", 10, 1);
    let r1 = seq.resource("gold", 10, 2);
    let r2 = seq.resource("gold", 10, 3);
    let stolen = seq.resource("gold", 10, 9);
    let extra = seq.resource("silver", 4, 4);
    let r3 = seq.resource("gold", 10, 5);
    let (id0, id1, id2) = (id_of(&r0), id_of(&r1), id_of(&r2));
    let renamed = ResourceUpdate { controller: Some("renamed".into()), ..Default::default() };
    let batches = vec![
        (vec![Operation::Create { resource: r0 }], standard()),
        // Spends what batch 1 (in flight) created.
        (vec![transfer(vec![input(id0, 1)], vec![r1])], standard()),
        (vec![transfer(vec![input(id1, 2)], vec![r2])], standard()),
        // Spends r1 again, which batch 3 (in flight) consumed.
        (vec![transfer(vec![input(id1, 2)], vec![stolen])], standard()),
        // A simulation behind batch 3: its would-be root includes batch 3.
        (vec![Operation::Create { resource: extra.clone() }], TransactionContext::new(ExecutionMode::Simulation)),
        (vec![update(id2, renamed), Operation::Create { resource: extra }], standard()),
        // Needs batch 6's update (in flight) to pass the version it sees.
        (vec![transfer(vec![input(id2, 3)], vec![r3])], standard()),
        // No proof system: commits at once, behind the proving batch 6.
        (vec![Operation::Read { id: id2 }], TransactionContext::new(ExecutionMode::Standard)),
    ];
    let outcomes = compare(&mut seq, &mut pipe, &batches);
    let committed: Vec<Option<u64>> = outcomes.iter().map(|o| o.as_ref().unwrap().metadata.batch_number).collect();
    assert_eq!(committed, [Some(1), Some(2), Some(3), None, None, Some(4), Some(5), None]);
    assert!(error_of(&outcomes[3], 0).contains("consumed in batch 3"), "{}", error_of(&outcomes[3], 0));
    assert!(error_of(&outcomes[7], 0).contains("consumed in batch 5"), "{}", error_of(&outcomes[7], 0));
    let last = pipe.store.batch(5).expect("log").expect("batch 5");
    assert_eq!(last.proof.map(|p| p.system), (standard().proof_system.is_some()).then(|| "test-mac".to_string()));
}

#[test]
fn a_batch_whose_proofs_fail_commits_nothing_and_the_next_runs_without_it() {
    let (mut seq, mut pipe) = (Fixture::new(), Fixture::new());
    let r0 = seq.resource("gold", 10, 1);
    let poisoned = named(seq.resource("gold", 10, 2), "poison");
    let after = seq.resource("gold", 10, 3);
    let (id0, id_poisoned) = (id_of(&r0), id_of(&poisoned));
    let batches = vec![
        (vec![Operation::Create { resource: r0 }], proving()),
        (vec![transfer(vec![input(id0, 1)], vec![poisoned])], proving()),
        // Executed first on top of batch 2 (in flight), where it succeeds;
        // batch 2 never commits, so it runs again and finds nothing to spend.
        (vec![transfer(vec![input(id_poisoned, 2)], vec![after.clone()])], proving()),
        // r0 was never spent: spending it now works.
        (vec![transfer(vec![input(id0, 1)], vec![after])], proving()),
    ];
    let outcomes = compare(&mut seq, &mut pipe, &batches);
    match &outcomes[1] {
        Err(ExecutionError::ProofGenerationError { reason, .. }) => assert!(reason.contains("poisoned"), "{reason}"),
        other => panic!("expected a proof failure, got {}", summary(other)),
    }
    assert!(error_of(&outcomes[2], 0).contains("not found"), "{}", error_of(&outcomes[2], 0));
    assert_eq!(outcomes[3].as_ref().unwrap().metadata.batch_number, Some(2));
    assert!(pipe.store.get(&id_poisoned).is_none());
    assert_eq!(pipe.store.nullifier_count(), 1);
}

#[test]
fn verifying_the_batch_in_flight_waits_for_its_commit() {
    let (mut seq, mut pipe) = (Fixture::new(), Fixture::new());
    let r0 = seq.resource("gold", 10, 1);
    let r1 = seq.resource("gold", 10, 2);
    let verify = |batch| Operation::Verify { target: VerifyTarget::BatchProof { batch } };
    let batches = vec![
        (vec![Operation::Create { resource: r0 }], proving()),
        (vec![verify(1)], proving()),
        (vec![verify(3)], proving()),
        (vec![Operation::Create { resource: r1 }], proving()),
        // Batch 1 is long committed: this one runs beside batch 4's proofs.
        (vec![verify(1)], proving()),
    ];
    let outcomes = compare(&mut seq, &mut pipe, &batches);
    assert!(outcomes[1].as_ref().unwrap().results[0].succeeded(), "{}", summary(&outcomes[1]));
    assert!(error_of(&outcomes[2], 0).contains("batch 3"), "{}", error_of(&outcomes[2], 0));
    assert!(outcomes[4].as_ref().unwrap().results[0].succeeded(), "{}", summary(&outcomes[4]));
}

#[test]
fn no_batches_and_unproven_batches() {
    let mut f = Fixture::new();
    assert!(execute_batches(&mut f.store, &[]).is_empty());
    let (mut seq, mut pipe) = (Fixture::new(), Fixture::new());
    let r0 = seq.resource("gold", 10, 1);
    let r1 = seq.resource("gold", 10, 2);
    let id0 = id_of(&r0);
    let plain = || TransactionContext::new(ExecutionMode::Standard);
    let batches = vec![
        (vec![Operation::Create { resource: r0 }], plain()),
        (vec![transfer(vec![input(id0, 1)], vec![r1])], plain()),
    ];
    let outcomes = compare(&mut seq, &mut pipe, &batches);
    assert!(outcomes.iter().all(|o| o.as_ref().unwrap().metadata.committed));
}

/// A prover that panics on the batch creating a "poison" register.
struct PanickingProofs;

impl ProofSystem for PanickingProofs {
    fn name(&self) -> String {
        MacProofs.name()
    }
    fn prove(&self, witnesses: &[OpWitness]) -> Result<ProofRecord, ProveError> {
        if witnesses.iter().flat_map(|w| &w.created).any(|r| r.controller == "poison") {
            panic!("prover bug (test)");
        }
        MacProofs.prove(witnesses)
    }
    fn verify(&self, record: &ProofRecord) -> Result<(), ProveError> {
        MacProofs.verify(record)
    }
}

#[test]
fn a_prover_thread_that_panics_fails_its_batch_only() {
    let mut f = Fixture::new();
    let r0 = f.resource("gold", 10, 1);
    let poisoned = named(f.resource("gold", 10, 2), "poison");
    let after = f.resource("gold", 10, 3);
    let (id0, id_poisoned) = (id_of(&r0), id_of(&poisoned));
    let tx = TransactionContext::new(ExecutionMode::Standard).with_proof_system(Arc::new(PanickingProofs));
    let batches = [
        vec![Operation::Create { resource: r0 }],
        vec![transfer(vec![input(id0, 1)], vec![poisoned])],
        vec![transfer(vec![input(id_poisoned, 2)], vec![after.clone()])],
        vec![transfer(vec![input(id0, 1)], vec![after])],
    ];
    let jobs: Vec<BatchJob> = batches.iter().map(|ops| BatchJob::new(&f.keys, ops, &f.ctx, &tx)).collect();
    let outcomes = execute_batches(&mut f.store, &jobs);
    match &outcomes[1] {
        Err(ExecutionError::ProofGenerationError { reason, .. }) => assert!(reason.contains("panicked"), "{reason}"),
        other => panic!("expected a proof failure, got {}", summary(other)),
    }
    assert!(error_of(&outcomes[2], 0).contains("not found"), "{}", error_of(&outcomes[2], 0));
    assert_eq!(outcomes[3].as_ref().unwrap().metadata.batch_number, Some(2));
    assert_eq!(f.store.head(), 2);
}

#[test]
fn a_panic_while_the_next_batch_executes_still_commits_the_batch_in_flight() {
    for standard in [proving, plain] {
        let mut f = Fixture::new();
        let (r0, r1) = (f.resource("gold", 10, 1), f.resource("gold", 10, 2));
        let panicking = standard().with_progress(Arc::new(|_| panic!("progress callback bug (test)")));
        let batches = [
            (vec![Operation::Create { resource: r0.clone() }], standard()),
            (vec![Operation::Create { resource: r1.clone() }], panicking),
        ];
        let jobs: Vec<BatchJob> = batches.iter().map(|(ops, tx)| BatchJob::new(&f.keys, ops, &f.ctx, tx)).collect();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute_batches(&mut f.store, &jobs)));
        assert!(caught.is_err(), "the panic reaches the caller");
        assert_eq!(f.store.head(), 1, "batch 1 was in flight when batch 2 panicked: it committed");
        assert!(f.store.get(&id_of(&r0)).is_some());
        assert!(f.store.get(&id_of(&r1)).is_none());
    }
}

#[test]
fn every_mode_and_policy_behind_a_batch_in_flight_matches_sequential_runs() {
    every_mode_and_policy(true);
    every_mode_and_policy(false);
}

/// With `proven`, each batch that writes is proven while the next executes;
/// without, it is staged.
fn every_mode_and_policy(proven: bool) {
    let (mut seq, mut pipe) = (Fixture::new(), Fixture::new());
    let made: Vec<NewResource> = (1..=6).map(|i| seq.resource("gold", 10, i)).collect();
    let ids: Vec<_> = made.iter().map(id_of).collect();
    let next = seq.resource("gold", 10, 20);
    let mode = |m| match proven {
        true => TransactionContext::new(m).with_proof_system(Arc::new(SlowProofs)),
        false => TransactionContext::new(m),
    };
    let proving = || mode(ExecutionMode::Standard);
    let spend = |i: usize| transfer(vec![input(ids[i], i as u64 + 1)], vec![named(next.clone(), &format!("to-{i}"))]);
    let missing = Operation::Read { id: id_of(&next) };
    let batches = vec![
        (made.iter().map(|r| Operation::Create { resource: r.clone() }).collect(), proving()),
        // Each of these runs while the batch before it (if it commits) is in flight.
        (vec![spend(0)], mode(ExecutionMode::ProofGeneration)),
        (vec![spend(1), missing.clone(), spend(2)], proving().fail_fast()),
        (vec![spend(3), missing.clone()], proving().all_or_nothing()),
        (vec![spend(3)], mode(ExecutionMode::Debug)),
        (vec![spend(4)], mode(ExecutionMode::Verification)),
        (vec![spend(4), spend(5)], proving()),
    ];
    let outcomes = compare(&mut seq, &mut pipe, &batches);
    let committed: Vec<bool> = outcomes.iter().map(|o| o.as_ref().unwrap().metadata.committed).collect();
    assert_eq!(committed, [true, true, true, false, true, false, true]);
    assert!(!outcomes[1].as_ref().unwrap().metadata.witnesses.is_empty(), "ProofGeneration returns its witnesses");
}

/// Batches with enough independent operations to run ahead, each executed
/// on a 4-thread pool while the batch before it is in flight (proven or
/// staged): the operations run ahead find the in-flight batch's registers,
/// conflicts with it run in order, and everything ends as one by one on a
/// 1-thread pool (every operation in order).
#[test]
fn operations_run_ahead_behind_a_batch_in_flight_match_in_order_runs() {
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    let four = rayon::ThreadPoolBuilder::new().num_threads(4).build().expect("pool");
    for proven in [true, false] {
        let (mut seq, mut pipe) = (Fixture::new(), Fixture::new());
        let made: Vec<NewResource> = (0..12).map(|i| seq.resource("gold", 10, i)).collect();
        let outs: Vec<NewResource> = (0..12).map(|i| seq.resource("gold", 10, 20 + i)).collect();
        let last: Vec<NewResource> = (0..12).map(|i| seq.resource("gold", 10, 40 + i)).collect();
        let (made_ids, out_ids): (Vec<_>, Vec<_>) =
            (made.iter().map(id_of).collect(), outs.iter().map(id_of).collect());
        let mode = |m| match proven {
            true => TransactionContext::new(m).with_proof_system(Arc::new(SlowProofs)),
            false => TransactionContext::new(m),
        };
        let spend = |id, owner: u64, to: &NewResource| transfer(vec![input(id, owner)], vec![to.clone()]);
        let renamed = ResourceUpdate { controller: Some("renamed".into()), ..Default::default() };
        // Batch 1: eight spends of batch 0's registers (in flight), a double
        // spend and a read.
        let mut second: Vec<Operation> = (0..8).map(|i| spend(made_ids[i], i as u64, &outs[i])).collect();
        second.push(spend(made_ids[0], 0, &named(outs[8].clone(), "twice")));
        second.push(Operation::Read { id: made_ids[10] });
        // Batch 2: spends of batch 1's outputs (in flight) and batch 0's, an update, a read.
        let mut third: Vec<Operation> = (0..6).map(|i| spend(out_ids[i], 20 + i as u64, &last[i])).collect();
        third.extend([spend(made_ids[8], 8, &last[8]), spend(made_ids[9], 9, &last[9])]);
        third.extend([update(made_ids[10], renamed), Operation::Read { id: made_ids[11] }]);
        // Batch 3 fails as a whole (a spend of what batch 1 consumed); batch 4 commits the rest.
        let mut fourth: Vec<Operation> = (6..8).map(|i| spend(out_ids[i], 20 + i as u64, &last[i])).collect();
        fourth.extend([spend(made_ids[11], 11, &last[11]), Operation::Read { id: made_ids[10] }]);
        let mut failing = fourth.clone();
        failing.push(spend(made_ids[1], 1, &last[10]));
        let batches = vec![
            (made.iter().map(|r| Operation::Create { resource: r.clone() }).collect(), mode(ExecutionMode::Standard)),
            (second, mode(ExecutionMode::Standard)),
            (third, mode(ExecutionMode::Standard)),
            (failing, mode(ExecutionMode::Standard).all_or_nothing()),
            (fourth, mode(ExecutionMode::Standard)),
        ];
        let outcomes = compare_on(Some((&one, &four)), &mut seq, &mut pipe, &batches);
        let committed: Vec<bool> = outcomes.iter().map(|o| o.as_ref().unwrap().metadata.committed).collect();
        assert_eq!(committed, [true, true, true, false, true], "proven: {proven}");
        let ahead: Vec<usize> = outcomes.iter().map(|o| o.as_ref().unwrap().metadata.backends.ran_ahead).collect();
        // Every operation but the double spend of batch 1 and the spend of
        // what batch 1 consumed in batch 3: those find their input consumed
        // and run in order. Batch 2's spends of batch 1's outputs (still in
        // flight) run ahead too.
        assert_eq!(ahead, [12, 9, 10, 4, 4], "operations run ahead (proven: {proven})");
        assert!(error_of(&outcomes[1], 8).contains("consumed"), "{}", error_of(&outcomes[1], 8));
    }
}
