//! Each operation kind, each lifecycle edge the executor enforces, and the
//! transaction policies.

use crate::batch_support;

use std::collections::BTreeMap;

use batch_support::*;
use causality_vm::batch::{OpStatus, TransactionContext};
use causality_vm::hash::HashPool;
use causality_vm::resource::{LifecycleState, Operation, ResourceUpdate, VerifyTarget};
use causality_vm::{ExecutionError, ExecutionMode};

fn state_change(to: LifecycleState) -> ResourceUpdate {
    ResourceUpdate { state: Some(to), ..Default::default() }
}

fn expect_err(result: &causality_vm::batch::BatchExecutionResult, index: usize) -> &ExecutionError {
    result.results[index].error().unwrap_or_else(|| panic!("op {index} should fail: {:#?}", result.results[index]))
}

/// The state root equals the bucketed tree recomputed from scratch over
/// BLAKE3(state_encoding) of the live registers (see docs/ARCHITECTURE.md).
fn assert_root_matches_registers(f: &Fixture) {
    let commitments: BTreeMap<_, [u8; 32]> =
        f.store.registers().map(|r| (r.id, *blake3::hash(&r.state_encoding()).as_bytes())).collect();
    let expected = causality_vm::store::reference_root(&commitments, &mut HashPool::new()).unwrap();
    assert_eq!(f.store.state_root(), expected);
}

#[test]
fn create_then_read() {
    let mut f = Fixture::new();
    let empty_root = f.store.state_root();
    let r = f.resource("gold", 100, 1);
    let id = f.create_all(std::slice::from_ref(&r))[0];
    let stored = f.store.get(&id).expect("created").clone();
    assert_eq!(stored.state, LifecycleState::Active);
    assert_eq!(stored.version, 0);
    assert_eq!(stored.quantity, 100);
    assert_ne!(f.store.state_root(), empty_root);
    assert_root_matches_registers(&f);

    let root = f.store.state_root();
    let result = f.standard(&[Operation::Read { id }]);
    assert_eq!(result.results[0].outcome().unwrap().read.as_ref(), Some(&stored));
    assert_eq!(f.store.state_root(), root, "a read changes nothing");
    assert_eq!(f.store.get(&id), Some(&stored));
}

#[test]
fn transfer_consumes_creates_and_conserves() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 100, 1);
    let id = f.create_all(&[r])[0];
    let a = f.resource("gold", 60, 2);
    let b = f.resource("gold", 40, 3);
    let result = f.standard(&[transfer(vec![input(id, 1)], vec![a.clone(), b.clone()])]);
    let outcome = result.results[0].outcome().expect("transfer succeeds");
    assert_eq!(outcome.created, vec![id_of(&a), id_of(&b)]);
    assert_eq!(outcome.consumed, vec![id]);
    assert!(f.store.get(&id).is_none());
    assert_eq!(f.store.consumed_in(&id), Some(2));
    assert_eq!(f.store.nullifier_count(), 1);
    assert_eq!(f.store.nullifier_batch(&outcome.nullifiers[0]), Some(2));
    let total: u64 = f.store.registers().map(|r| r.quantity).sum();
    assert_eq!(total, 100);
    assert_root_matches_registers(&f);
}

#[test]
fn transfer_must_conserve_per_fungibility_domain() {
    let mut f = Fixture::new();
    let g = f.resource("gold", 10, 1);
    let s = f.resource("silver", 5, 1);
    let ids = f.create_all(&[g, s]);
    let out = f.resource("gold", 15, 2);
    let root = f.store.state_root();
    let result = f.standard(&[transfer(vec![input(ids[0], 1), input(ids[1], 1)], vec![out])]);
    let err = expect_err(&result, 0);
    assert!(matches!(err, ExecutionError::InvalidResourceState { .. }), "{err}");
    assert!(err.to_string().contains("not conserved"), "{err}");
    assert_eq!(f.store.state_root(), root);
    let more = f.resource("gold", 11, 2);
    let result = f.standard(&[transfer(vec![input(ids[0], 1)], vec![more])]);
    assert!(expect_err(&result, 0).to_string().contains("inputs hold 10, outputs 11"));
}

#[test]
fn double_spend_is_refused_across_and_within_batches() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let id = f.create_all(&[r])[0];
    let a = f.resource("gold", 10, 2);
    let b = f.resource("gold", 10, 3);
    // Within one batch: the second spend fails.
    let result = f.standard(&[transfer(vec![input(id, 1)], vec![a]), transfer(vec![input(id, 1)], vec![b.clone()])]);
    assert!(result.results[0].succeeded());
    let err = expect_err(&result, 1);
    assert!(matches!(err, ExecutionError::InvalidResourceState { state: LifecycleState::Consumed, .. }), "{err}");
    // Across batches.
    let result = f.standard(&[transfer(vec![input(id, 1)], vec![b.clone()])]);
    assert!(expect_err(&result, 0).to_string().contains("consumed in batch 2"));
    // The same input twice in one transfer.
    let c = f.resource("gold", 7, 4);
    let cid = f.create_all(&[c])[0];
    let d = f.resource("gold", 14, 4);
    let result = f.standard(&[transfer(vec![input(cid, 4), input(cid, 4)], vec![d])]);
    assert!(expect_err(&result, 0).to_string().contains("named twice"));
    assert_eq!(f.store.nullifier_count(), 1);
}

#[test]
fn wrong_nullifier_key_fails_its_operation_at_once_and_leaves_the_rest() {
    let mut f = Fixture::new();
    let r1 = f.resource("gold", 10, 1);
    let r2 = f.resource("gold", 10, 2);
    let ids = f.create_all(&[r1, r2]);
    let a = f.resource("gold", 10, 3);
    let b = f.resource("gold", 10, 4);
    let result = f.standard(&[
        transfer(vec![input(ids[0], 99)], vec![a.clone()]),
        transfer(vec![input(ids[1], 2)], vec![b.clone()]),
    ]);
    let err = expect_err(&result, 0);
    assert!(matches!(err, ExecutionError::StateCommitmentError { .. }), "{err}");
    assert!(err.to_string().contains("does not open its commitment"), "{err}");
    assert!(result.results[1].succeeded());
    assert_eq!(result.metadata.reruns, 0, "checked as the input is consumed: nothing to run again");
    assert!(f.store.get(&ids[0]).is_some(), "the failed transfer consumed nothing");
    assert!(f.store.get(&id_of(&a)).is_none(), "and created nothing");
    assert!(f.store.get(&id_of(&b)).is_some());
    assert_root_matches_registers(&f);
}

#[test]
fn failure_at_the_flush_reexecutes_dependants() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let id = f.create_all(&[r])[0];
    let mid = f.resource("gold", 10, 2);
    let end = f.resource("gold", 10, 3);
    // Op 0 uses a wrong key, op 1 spends op 0's output: once op 0 fails, op 1 has nothing to spend.
    let result = f
        .standard(&[transfer(vec![input(id, 7)], vec![mid.clone()]), transfer(vec![input(id_of(&mid), 2)], vec![end])]);
    assert!(matches!(expect_err(&result, 0), ExecutionError::StateCommitmentError { .. }));
    assert!(matches!(expect_err(&result, 1), ExecutionError::ResourceNotFound { .. }), "{:?}", result.results[1]);
    assert_eq!(result.success_count, 0);
    assert!(!result.metadata.committed);
    assert_eq!(f.store.head(), 1);
}

#[test]
fn created_resources_are_usable_later_in_the_same_batch() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let out = f.resource("gold", 10, 2);
    let result = f.standard(&[
        Operation::Create { resource: r.clone() },
        transfer(vec![input(id_of(&r), 1)], vec![out.clone()]),
        Operation::Read { id: id_of(&out) },
    ]);
    assert_eq!(result.success_count, 3, "{:#?}", result.results);
    assert!(f.store.get(&id_of(&r)).is_none());
    assert_eq!(f.store.consumed_in(&id_of(&r)), Some(1));
    assert!(f.store.get(&id_of(&out)).is_some());
    assert_root_matches_registers(&f);
}

#[test]
fn creating_an_existing_id_fails() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    f.create_all(std::slice::from_ref(&r));
    let result = f.standard(&[Operation::Create { resource: r.clone() }]);
    assert!(expect_err(&result, 0).to_string().contains("already exists"));
    let s = f.resource("gold", 1, 1);
    let result = f.standard(&[Operation::Create { resource: s.clone() }, Operation::Create { resource: s }]);
    assert!(result.results[0].succeeded());
    assert!(expect_err(&result, 1).to_string().contains("created earlier in this batch"));
    // Created, consumed, created again in one batch: the message says it was consumed.
    let t = f.resource("gold", 1, 2);
    let id = id_of(&t);
    let result = f.standard(&[
        Operation::Create { resource: t.clone() },
        Operation::Delete { input: input(id, 2) },
        Operation::Create { resource: t },
    ]);
    let err = expect_err(&result, 2).to_string();
    assert!(err.contains("is Consumed") && err.contains("consumed by operation 1"), "{err}");
}

#[test]
fn update_bumps_version_and_changes_fields() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let id = f.create_all(&[r])[0];
    let changes = ResourceUpdate {
        metadata: Some(BTreeMap::from([("name".to_string(), "bar".to_string())])),
        contents: Some(vec![1, 2, 3]),
        controller: Some("alice".into()),
        state: None,
    };
    let result = f.standard(&[update(id, changes)]);
    assert_eq!(result.results[0].outcome().unwrap().updated, vec![(id, 1)]);
    let reg = f.store.get(&id).unwrap();
    assert_eq!((reg.version, reg.contents.as_slice(), reg.controller.as_str()), (1, &[1u8, 2, 3][..], "alice"));
    assert_eq!(reg.metadata["name"], "bar");
    // An empty update still bumps the version.
    f.standard(&[update(id, ResourceUpdate::default())]);
    assert_eq!(f.store.get(&id).unwrap().version, 2);
    assert_root_matches_registers(&f);
}

#[test]
fn lifecycle_edges_are_enforced() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let id = f.create_all(&[r])[0];
    let state = |f: &Fixture| f.store.get(&id).unwrap().state;
    // Active -> Locked; fields of a Locked resource cannot change.
    assert!(f.standard(&[update(id, state_change(LifecycleState::Locked))]).results[0].succeeded());
    assert_eq!(state(&f), LifecycleState::Locked);
    let res = f.standard(&[update(id, ResourceUpdate { controller: Some("x".into()), ..Default::default() })]);
    assert!(expect_err(&res, 0).to_string().contains("only an Active resource"));
    // Locked -> Frozen is not in the table.
    let res = f.standard(&[update(id, state_change(LifecycleState::Frozen))]);
    assert!(matches!(expect_err(&res, 0), ExecutionError::InvalidResourceState { state: LifecycleState::Locked, .. }));
    // Locked -> Active -> Frozen; a Frozen resource cannot be consumed.
    assert!(f.standard(&[update(id, state_change(LifecycleState::Active))]).results[0].succeeded());
    assert!(f.standard(&[update(id, state_change(LifecycleState::Frozen))]).results[0].succeeded());
    let out = f.resource("gold", 10, 2);
    let res = f.standard(&[transfer(vec![input(id, 1)], vec![out])]);
    assert!(expect_err(&res, 0).to_string().contains("cannot be consumed"));
    let res = f.standard(&[Operation::Delete { input: input(id, 1) }]);
    assert!(expect_err(&res, 0).to_string().contains("cannot be consumed"));
    // An update never consumes.
    let res = f.standard(&[update(id, state_change(LifecycleState::Consumed))]);
    assert!(expect_err(&res, 0).to_string().contains("cannot consume"));
    // Frozen -> Archived, and Archived is terminal.
    assert!(f.standard(&[update(id, state_change(LifecycleState::Archived))]).results[0].succeeded());
    for to in LifecycleState::ALL {
        let res = f.standard(&[update(id, state_change(to))]);
        assert!(res.results[0].error().is_some(), "Archived -> {to:?} must fail");
    }
    assert_eq!(f.store.get(&id).unwrap().version, 4);
}

#[test]
fn a_locked_resource_can_be_consumed() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let id = f.create_all(&[r])[0];
    f.standard(&[update(id, state_change(LifecycleState::Locked))]);
    let res = f.standard(&[Operation::Delete { input: input(id, 1) }]);
    assert!(res.results[0].succeeded(), "{:?}", res.results[0]);
}

#[test]
fn delete_consumes_with_the_right_key_only() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let id = f.create_all(&[r])[0];
    let res = f.standard(&[Operation::Delete { input: input(id, 2) }]);
    assert!(matches!(expect_err(&res, 0), ExecutionError::StateCommitmentError { .. }));
    assert!(f.store.get(&id).is_some());
    let res = f.standard(&[Operation::Delete { input: input(id, 1) }]);
    assert_eq!(res.results[0].outcome().unwrap().consumed, vec![id]);
    assert!(f.store.get(&id).is_none());
    assert_eq!(f.store.nullifier_count(), 1);
    let res = f.standard(&[Operation::Read { id }]);
    assert!(matches!(
        expect_err(&res, 0),
        ExecutionError::InvalidResourceState { state: LifecycleState::Consumed, .. }
    ));
}

#[test]
fn verify_a_stated_commitment() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let id = f.create_all(&[r])[0];
    let commitment = *blake3::hash(&f.store.get(&id).unwrap().state_encoding()).as_bytes();
    let ok = f.standard(&[Operation::Verify { target: VerifyTarget::Commitment { id, commitment } }]);
    assert!(ok.results[0].outcome().unwrap().verified.is_some());
    let mut wrong = commitment;
    wrong[0] ^= 1;
    let res = f.standard(&[Operation::Verify { target: VerifyTarget::Commitment { id, commitment: wrong } }]);
    let err = expect_err(&res, 0);
    assert!(matches!(err, ExecutionError::StateCommitmentError { .. }));
    assert!(err.to_string().contains("not the stated"), "{err}");
}

#[test]
fn fail_fast_stops_and_skips_the_rest() {
    let mut f = Fixture::new();
    let a = f.resource("gold", 1, 1);
    let b = f.resource("gold", 2, 1);
    let missing = id_of(&f.resource("gold", 3, 1));
    let ops = [
        Operation::Create { resource: a.clone() },
        Operation::Read { id: missing },
        Operation::Create { resource: b.clone() },
    ];
    let res = f.run(&ops, &TransactionContext::new(ExecutionMode::Standard).fail_fast());
    assert!(res.results[0].succeeded());
    assert!(matches!(expect_err(&res, 1), ExecutionError::ResourceNotFound { .. }));
    assert_eq!(res.results[2].status, OpStatus::Skipped);
    assert!(res.metadata.committed, "commit-partial keeps op 0");
    assert!(f.store.get(&id_of(&a)).is_some());
    assert!(f.store.get(&id_of(&b)).is_none());
}

#[test]
fn all_or_nothing_rolls_back_without_a_trace() {
    let mut f = Fixture::new();
    let seed = f.resource("gold", 5, 1);
    f.create_all(&[seed]);
    let (root, head) = (f.store.state_root(), f.store.head());
    let history = f.store.history(10).unwrap();
    let a = f.resource("gold", 1, 1);
    let missing = id_of(&f.resource("gold", 3, 1));
    let ops = [Operation::Create { resource: a.clone() }, Operation::Read { id: missing }];
    let res = f.run(&ops, &TransactionContext::new(ExecutionMode::Standard).all_or_nothing());
    assert_eq!(res.success_count, 1);
    assert!(res.metadata.rolled_back && !res.metadata.committed);
    assert_eq!((f.store.state_root(), f.store.head()), (root, head));
    assert!(f.store.get(&id_of(&a)).is_none());
    assert_eq!(f.store.history(10).unwrap(), history);
    f.reopen();
    assert_eq!((f.store.state_root(), f.store.head()), (root, head));
    assert!(f.store.get(&id_of(&a)).is_none());
}

#[test]
fn simulation_and_verification_write_nothing() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let id = f.create_all(&[r])[0];
    let out = f.resource("gold", 10, 2);
    let ops = [transfer(vec![input(id, 1)], vec![out.clone()])];
    let (root, head) = (f.store.state_root(), f.store.head());
    for mode in [ExecutionMode::Simulation, ExecutionMode::Verification] {
        let res = f.run(&ops, &TransactionContext::new(mode));
        assert_eq!(res.success_count, 1);
        assert!(!res.metadata.committed);
        assert_eq!((f.store.state_root(), f.store.head()), (root, head), "{mode:?} wrote");
        assert!(f.store.get(&id).is_some());
    }
    let sim = f.run(&ops, &TransactionContext::new(ExecutionMode::Simulation));
    let change = sim.metadata.would_change.clone().expect("simulation reports changes");
    assert_eq!(change.removed, vec![id]);
    assert_eq!(change.upserts.len(), 1);
    f.reopen();
    assert_eq!(f.store.state_root(), root);
    let real = f.standard(&ops);
    assert_eq!(real.metadata.state_root_after, sim.metadata.state_root_after, "simulation predicts the root");
    assert_eq!(Some(f.store.state_root()), sim.metadata.state_root_after);
}

#[test]
fn debug_mode_records_traces_and_proof_generation_records_witnesses() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let res = f.run(&[Operation::Create { resource: r.clone() }], &TransactionContext::new(ExecutionMode::Debug));
    assert_eq!(res.results[0].traces.len(), 1);
    assert_eq!(res.results[0].traces[0].trace.steps.len(), 1);
    assert!(res.metadata.committed);
    let out = f.resource("gold", 10, 2);
    let res = f.run(
        &[transfer(vec![input(id_of(&r), 1)], vec![out.clone()])],
        &TransactionContext::new(ExecutionMode::ProofGeneration),
    );
    let w = &res.metadata.witnesses[0];
    assert_eq!(w.consumed[0].0.id, id_of(&r));
    assert_eq!(w.consumed[0].1, nullifier_key(1));
    assert_eq!(w.created[0].id, id_of(&out));
    assert!(res.metadata.committed);
}

/// With a GPU hash backend (lavapipe in CI), a batch's filings, flushes and
/// the state tree's staging run on the GPU, and every result (ids,
/// nullifiers, roots) is the CPU run's, bit for bit.
#[test]
fn batch_hashing_follows_the_gpu_backend() {
    use causality_vm::hash::HashBackend;
    use causality_vm::{Backend, ResolvedBackend};
    if causality_vm::gpu::test_context().is_none() {
        return;
    }
    let gpu = HashBackend::select(Backend::Gpu).expect("an adapter exists, so the GPU backend must build");
    assert_eq!(gpu.resolved(), ResolvedBackend::Gpu);
    let on_cpu = TransactionContext::new(ExecutionMode::Standard);
    let on_gpu = TransactionContext::new(ExecutionMode::Standard).with_hashing(gpu);
    let (mut cpu_run, mut gpu_run) = (Fixture::new(), Fixture::new());
    // Logic filing a BLAKE3 and a Poseidon request each run, both asserted.
    let hashing = hashing_logic(*blake3::hash(b"abc").as_bytes(), 0).encode();
    let logic = cpu_run.store.put_content(&hashing).expect("program");
    assert_eq!(gpu_run.store.put_content(&hashing).expect("program"), logic);
    let batches = |f: &mut Fixture, step: usize, ids: &[causality_vm::resource::ResourceId]| -> Vec<Operation> {
        match step {
            // Six, then 64 more with keys of their own, whose logic files
            // 64 Poseidon requests as they are created (and again as the
            // next batch spends them).
            0 => (0..6 + 64)
                .map(|i| match i < 6 {
                    true => Operation::Create { resource: f.resource("gold", 10 + i, i) },
                    false => Operation::Create { resource: f.resource_with_logic(logic, "gold", 10 + i, i) },
                })
                .collect(),
            1 => {
                let four = f.resource("gold", 4, 7);
                let mut ops = vec![
                    transfer(vec![input(ids[0], 0)], vec![four.clone(), f.resource("gold", 6, 8)]),
                    // Spends what the transfer above created: a lookup's flush mid-pass.
                    transfer(vec![input(id_of(&four), 7)], vec![f.resource("gold", 4, 200)]),
                    transfer(vec![input(ids[1], 1), input(ids[2], 2)], vec![f.resource("gold", 23, 9)]),
                    Operation::Delete { input: input(ids[3], 3) },
                    // Fails: consumed just above; its filings must not change anything.
                    Operation::Delete { input: input(ids[3], 3) },
                ];
                // 64 distinct nullifier keys opened in one flush: enough
                // for the GPU pool to run their Poseidon hashes on the device.
                for chunk in (6..70u64).collect::<Vec<_>>().chunks(4) {
                    let inputs = chunk.iter().map(|&i| input(ids[i as usize], i)).collect();
                    let total = chunk.iter().map(|i| 10 + i).sum();
                    ops.push(transfer(inputs, vec![f.resource("gold", total, 100 + chunk[0])]));
                }
                ops
            }
            _ => unreachable!(),
        }
    };
    let mut ids = Vec::new();
    for step in 0..2 {
        let cpu_ops = batches(&mut cpu_run, step, &ids);
        let gpu_ops = batches(&mut gpu_run, step, &ids);
        assert_eq!(cpu_ops, gpu_ops);
        let expected = cpu_run.run(&cpu_ops, &on_cpu);
        let got = gpu_run.run(&gpu_ops, &on_gpu);
        assert_eq!(expected.metadata.backends.hash, Some(ResolvedBackend::Cpu));
        assert_eq!(got.metadata.backends.hash, Some(ResolvedBackend::Gpu), "step {step}");
        assert_eq!(got.metadata.backends.hash_fallbacks, 0, "step {step}: the GPU did the work");
        assert!(got.metadata.backends.hashed_on_gpu > 0, "step {step}: nothing was hashed on the GPU");
        assert_eq!(expected.metadata.backends.hashed_on_gpu, 0);
        if step == 0 {
            assert!(got.metadata.backends.poseidon_on_gpu >= 64, "step 0: the logic's Poseidon ran on the GPU");
            assert_eq!(got.success_count, 70, "every logic assertion held: {:?}", got.results);
        }
        if step == 1 {
            assert!(got.metadata.backends.poseidon_on_gpu >= 128, "step 1: the key openings and logic ran on the GPU");
            assert!(got.results[1].outcome().is_some(), "the chained transfer: {:?}", got.results[1]);
        }
        assert_eq!(expected.metadata.backends.poseidon_on_gpu, 0);
        // Every Poseidon request is counted on the side that resolved it.
        assert_eq!(
            got.metadata.backends.poseidon_on_gpu + got.metadata.backends.poseidon_on_cpu,
            expected.metadata.backends.poseidon_on_cpu,
            "step {step}"
        );
        assert!(expected.metadata.backends.poseidon_on_cpu >= 64, "step {step}");
        assert_eq!(
            serde_json::to_value(&got.results).unwrap(),
            serde_json::to_value(&expected.results).unwrap(),
            "step {step}"
        );
        assert_eq!(got.metadata.state_root_after, expected.metadata.state_root_after, "step {step}");
        assert_eq!(gpu_run.store.state_root(), cpu_run.store.state_root(), "step {step}");
        if step == 0 {
            ids = cpu_ops
                .iter()
                .map(|op| match op {
                    Operation::Create { resource } => id_of(resource),
                    _ => unreachable!(),
                })
                .collect();
        }
    }
}
