//! Every ExecutionError variant, reached through a batch.

use crate::batch_support;

use std::sync::Arc;

use batch_support::*;
use causality_vm::batch::{OpWitness, ProofSystem, TransactionContext};
use causality_vm::capability::{CapabilityToken, Caveat, Right};
use causality_vm::prove::ProveError;
use causality_vm::resource::{Operation, OperationKind, VerifyTarget};
use causality_vm::store::ProofRecord;
use causality_vm::vm::{memory, Instruction, Program, Reg};
use causality_vm::{DomainId, ExecutionError, ExecutionMode};

fn first_error(f: &mut Fixture, ops: &[Operation], tx: &TransactionContext) -> ExecutionError {
    let head = f.store.head();
    let root = f.store.state_root();
    let res = f.run(ops, tx);
    assert_eq!((f.store.head(), f.store.state_root()), (head, root), "a failed batch wrote");
    res.results.iter().find_map(|r| r.error().cloned()).expect("an operation fails")
}

fn standard() -> TransactionContext {
    TransactionContext::new(ExecutionMode::Standard)
}

fn create_with_program(f: &mut Fixture, program_bytes: &[u8], tx: &TransactionContext) -> ExecutionError {
    let logic = f.store.put_content(program_bytes).unwrap();
    let r = f.resource_with_logic(logic, "gold", 1, 1);
    first_error(f, &[Operation::Create { resource: r }], tx)
}

#[test]
fn insufficient_capabilities() {
    let mut f = Fixture::new();
    f.ctx.capability_token = f.ctx.capability_token.attenuate(Caveat::Rights(vec![Right::Read])).unwrap();
    let r = f.resource("gold", 1, 1);
    let err = first_error(&mut f, &[Operation::Create { resource: r }], &standard());
    assert!(matches!(err, ExecutionError::InsufficientCapabilities { .. }), "{err}");
}

#[test]
fn over_the_max_quantity_is_insufficient() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 100, 1);
    let id = f.create_all(&[r])[0];
    f.ctx.capability_token = f.ctx.capability_token.attenuate(Caveat::MaxQuantity(50)).unwrap();
    let out = f.resource("gold", 100, 2);
    let err = first_error(&mut f, &[transfer(vec![input(id, 1)], vec![out])], &standard());
    assert!(matches!(err, ExecutionError::InsufficientCapabilities { .. }), "{err}");
}

#[test]
fn memory_access_violation() {
    let mut f = Fixture::new();
    let r0 = Reg::new(0).unwrap();
    // Reading another resource's fields without the Read right.
    let p = Program::new(vec![Instruction::Load { rd: r0, addr: memory::OTHERS_BASE }, Instruction::Accept], vec![])
        .unwrap();
    let logic = f.store.put_content(&p.encode()).unwrap();
    let r = f.resource("gold", 10, 1);
    let id = f.create_all(&[r])[0];
    // The output's logic reads the transfer's input (another resource).
    let readable = f.resource_with_logic(logic, "gold", 5, 2);
    let rest = f.resource("gold", 5, 2);
    let allowed = f.standard(&[transfer(vec![input(id, 1)], vec![readable, rest])]);
    assert!(allowed.results[0].succeeded(), "with the Read right the others are readable: {:?}", allowed.results[0]);
    let r = f.resource("gold", 10, 3);
    let id = f.create_all(&[r])[0];
    f.ctx.capability_token =
        f.ctx.capability_token.attenuate(Caveat::Rights(vec![Right::Transfer, Right::Write])).unwrap();
    let out = f.resource_with_logic(logic, "gold", 10, 2);
    let err = first_error(&mut f, &[transfer(vec![input(id, 3)], vec![out])], &standard());
    assert!(matches!(err, ExecutionError::MemoryAccessViolation { .. }), "{err}");
}

#[test]
fn invalid_instruction() {
    let mut f = Fixture::new();
    let err = create_with_program(&mut f, b"not a program at all", &standard());
    assert!(matches!(err, ExecutionError::InvalidInstruction { .. }), "{err}");
}

#[test]
fn resource_not_found_for_registers_and_programs() {
    let mut f = Fixture::new();
    let missing = id_of(&f.resource("gold", 1, 1));
    let err = first_error(&mut f, &[Operation::Read { id: missing }], &standard());
    assert!(matches!(err, ExecutionError::ResourceNotFound { .. }), "{err}");
    let r = f.resource_with_logic(causality_vm::ContentId::of_encoding(b"never stored"), "gold", 1, 1);
    let err = first_error(&mut f, &[Operation::Create { resource: r }], &standard());
    assert!(err.to_string().contains("logic program"), "{err}");
    let err = first_error(&mut f, &[Operation::Verify { target: VerifyTarget::BatchProof { batch: 9 } }], &standard());
    assert!(matches!(err, ExecutionError::ResourceNotFound { .. }), "{err}");
}

#[test]
fn invalid_resource_state_from_a_rejecting_program() {
    let mut f = Fixture::new();
    let p = Program::new(vec![Instruction::Reject { reason: Reg::new(0).unwrap(), code: 7 }], vec![]).unwrap();
    let err = create_with_program(&mut f, &p.encode(), &standard());
    assert!(matches!(err, ExecutionError::InvalidResourceState { .. }), "{err}");
}

#[test]
fn domain_access_error_for_an_unknown_domain() {
    let mut f = Fixture::new();
    f.keys = causality_vm::capability::KeyRing::new();
    let r = f.resource("gold", 1, 1);
    let err = first_error(&mut f, &[Operation::Create { resource: r }], &standard());
    assert!(matches!(err, ExecutionError::DomainAccessError { .. }), "{err}");
}

#[test]
fn timeout() {
    let mut f = Fixture::new();
    let p = Program::new(vec![Instruction::Jmp { target: 0 }], vec![]).unwrap();
    let err = create_with_program(&mut f, &p.encode(), &standard().with_budget(100));
    assert!(matches!(err, ExecutionError::Timeout { budget: 100, .. }), "{err}");
}

#[test]
fn state_commitment_error() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 1, 1);
    let id = f.create_all(&[r])[0];
    let err = first_error(&mut f, &[Operation::Delete { input: input(id, 5) }], &standard());
    assert!(matches!(err, ExecutionError::StateCommitmentError { .. }), "{err}");
}

#[test]
fn cross_domain_error_without_a_grant() {
    let mut f = Fixture::new();
    f.keys.insert(DomainId::new("other"), causality_vm::capability::RootKey([9; 32]));
    let mut r = f.resource("gold", 1, 1);
    r.domain = DomainId::new("other");
    let err = first_error(&mut f, &[Operation::Create { resource: r.clone() }], &standard());
    assert!(matches!(err, ExecutionError::CrossDomainError { .. }), "{err}");
    // With an explicit grant rooted in the target domain it works.
    let grant = CapabilityToken::mint(&causality_vm::capability::RootKey([9; 32]), DomainId::new("other"), [2; 16])
        .attenuate(Caveat::Domains(vec![DomainId::new(DOMAIN)]))
        .unwrap();
    f.ctx.cross_domain_grants.push(grant);
    let res = f.standard(&[Operation::Create { resource: r }]);
    assert!(res.results[0].succeeded(), "{:?}", res.results[0]);
}

struct FailingProver;

impl ProofSystem for FailingProver {
    fn name(&self) -> String {
        "failing".into()
    }
    fn prove(&self, _: &[OpWitness]) -> Result<ProofRecord, ProveError> {
        Err(ProveError::Synthesis("the circuit is unsatisfied".into()))
    }
    fn verify(&self, _: &ProofRecord) -> Result<(), ProveError> {
        Err(ProveError::Rejected("never verifies".into()))
    }
}

#[test]
fn proof_generation_error_for_batches_without_or_with_bad_proofs() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 1, 1);
    f.create_all(&[r]);
    let verify = |batch| Operation::Verify { target: VerifyTarget::BatchProof { batch } };
    // Batch 1 was committed without a proof.
    let err = first_error(&mut f, &[verify(1)], &standard());
    assert!(matches!(err, ExecutionError::ProofGenerationError { .. }), "{err}");
    assert!(err.to_string().contains("has no proof"), "{err}");

    // Batch 2 is proven; it verifies with the system and not without it.
    let s = f.resource("gold", 2, 1);
    let tx = TransactionContext::new(ExecutionMode::ProofGeneration).with_proof_system(Arc::new(MacProofs));
    let res = f.run(&[Operation::Create { resource: s }], &tx);
    assert_eq!(res.metadata.batch_number, Some(2));
    assert!(f.store.batch(2).unwrap().unwrap().proof.is_some());
    let ok = f.run(&[verify(2)], &standard().with_proof_system(Arc::new(MacProofs)));
    assert!(ok.results[0].succeeded(), "{:?}", ok.results[0]);
    let err = first_error(&mut f, &[verify(2)], &standard());
    assert!(err.to_string().contains("no proof system is configured"), "{err}");
    let err = first_error(&mut f, &[verify(2)], &standard().with_proof_system(Arc::new(FailingProver)));
    assert!(err.to_string().contains("does not verify"), "{err}");

    // A prover failure fails the whole batch and commits nothing.
    let t = f.resource("gold", 3, 1);
    let tx = TransactionContext::new(ExecutionMode::ProofGeneration).with_proof_system(Arc::new(FailingProver));
    let head = f.store.head();
    let err =
        causality_vm::batch::execute_batch(&mut f.store, &f.keys, &[Operation::Create { resource: t }], &f.ctx, &tx)
            .unwrap_err();
    assert!(matches!(err, ExecutionError::ProofGenerationError { .. }), "{err}");
    assert_eq!(f.store.head(), head);
}

#[test]
fn every_variant_is_covered() {
    // Keeps this file honest: one test above per variant of the spec.
    let kinds = [
        "InsufficientCapabilities",
        "MemoryAccessViolation",
        "InvalidInstruction",
        "ResourceNotFound",
        "InvalidResourceState",
        "DomainAccessError",
        "Timeout",
        "ProofGenerationError",
        "StateCommitmentError",
        "CrossDomainError",
    ];
    let source = include_str!("errors.rs");
    for k in kinds {
        assert!(source.contains(&format!("ExecutionError::{k} {{")), "no test reaches {k}");
    }
    let _ = OperationKind::ALL;
}
