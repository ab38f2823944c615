//! The compliance circuit's rules at the constraint level (no keys needed).

use crate::prove_support;

use ark_bn254::Fr;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use causality_vm::prove::circuit::ComplianceCircuit;
use causality_vm::prove::witness::{to_slots, SlotAssignment, EMPTY_SLOT_CODE, PUBLIC_PER_SLOT};
use causality_vm::prove::{OpWitness, ProveError};
use causality_vm::resource::{LifecycleState, OperationKind};
use prove_support::*;

fn satisfied(circuit: ComplianceCircuit) -> bool {
    let cs = ConstraintSystem::<Fr>::new_ref();
    circuit.generate_constraints(cs.clone()).expect("synthesis");
    cs.finalize();
    cs.is_satisfied().expect("satisfaction check")
}

fn slot(op: &OpWitness) -> SlotAssignment {
    op.to_slot(0).expect("valid witness")
}

/// The circuit with `slot` and the public inputs of `honest`.
fn with_public_of(honest: &SlotAssignment, slot: SlotAssignment) -> ComplianceCircuit {
    ComplianceCircuit { slots: vec![slot], public: honest.public_inputs().to_vec() }
}

#[test]
fn every_kind_and_padding_is_satisfied() {
    for op in all_kinds() {
        assert!(satisfied(ComplianceCircuit::new(vec![slot(&op)])), "{:?}", op.kind);
    }
    assert!(satisfied(ComplianceCircuit::empty(2)));
    let two = vec![slot(&transfer(1)), SlotAssignment::default()];
    assert!(satisfied(ComplianceCircuit::new(two)));
}

/// Every private value of every kind, changed by one, breaks the circuit
/// while the public inputs stay those of the honest witness.
#[test]
fn flipping_any_witness_value_fails() {
    let one = Fr::from(1u64);
    for op in [transfer(10), update(30), create(1), delete(2)] {
        let honest = slot(&op);
        let mut cases: Vec<(String, SlotAssignment)> = Vec::new();
        for i in 0..2 {
            let Some(input) = honest.inputs[i] else { continue };
            macro_rules! flip_in {
                ($($field:ident),*) => {$(
                    let mut s = honest;
                    let f = &mut s.inputs[i].as_mut().unwrap().fields;
                    f.$field += one;
                    cases.push((format!("input {i} {}", stringify!($field)), s));
                )*};
            }
            flip_in!(id, logic, domain, fungibility_domain, metadata, contents, nk_commitment, controller);
            let mut s = honest;
            s.inputs[i].as_mut().unwrap().fields.quantity ^= 1;
            cases.push((format!("input {i} quantity"), s));
            let mut s = honest;
            s.inputs[i].as_mut().unwrap().fields.version ^= 1;
            cases.push((format!("input {i} version"), s));
            let mut s = honest;
            s.inputs[i].as_mut().unwrap().fields.state ^= 1;
            cases.push((format!("input {i} state"), s));
            if !honest.is_update() {
                let mut s = honest;
                s.inputs[i].as_mut().unwrap().nullifier_key = input.nullifier_key + one;
                cases.push((format!("input {i} nullifier key"), s));
            }
        }
        for j in 0..2 {
            if honest.outputs[j].is_none() {
                continue;
            }
            macro_rules! flip_out {
                ($($field:ident),*) => {$(
                    let mut s = honest;
                    let f = s.outputs[j].as_mut().unwrap();
                    f.$field += one;
                    cases.push((format!("output {j} {}", stringify!($field)), s));
                )*};
            }
            flip_out!(id, logic, domain, fungibility_domain, metadata, contents, nk_commitment, controller);
            let mut s = honest;
            s.outputs[j].as_mut().unwrap().quantity ^= 1;
            cases.push((format!("output {j} quantity"), s));
            let mut s = honest;
            s.outputs[j].as_mut().unwrap().version ^= 1;
            cases.push((format!("output {j} version"), s));
        }
        let mut s = honest;
        s.kind_code = (s.kind_code + 1) % (EMPTY_SLOT_CODE + 1);
        cases.push(("kind".into(), s));
        for (what, tampered) in cases {
            assert!(!satisfied(with_public_of(&honest, tampered)), "{:?}: flipping {what} went unnoticed", op.kind);
        }
    }
}

#[test]
fn changing_any_public_input_fails() {
    let honest = slot(&transfer(10));
    for i in 0..PUBLIC_PER_SLOT {
        let mut public = honest.public_inputs().to_vec();
        public[i] += Fr::from(1u64);
        assert!(!satisfied(ComplianceCircuit { slots: vec![honest], public }), "public input {i}");
    }
}

#[test]
fn padding_slots_prove_nothing() {
    for i in 0..PUBLIC_PER_SLOT {
        let mut public = SlotAssignment::default().public_inputs().to_vec();
        public[i] = Fr::from(7u64);
        assert!(!satisfied(ComplianceCircuit { slots: vec![SlotAssignment::default()], public }), "{i}");
    }
    // A Read cannot publish a commitment either.
    let mut public = slot(&read()).public_inputs().to_vec();
    public[3] = Fr::from(7u64);
    assert!(!satisfied(ComplianceCircuit { slots: vec![slot(&read())], public }));
}

/// Rule breaks that get past the native checks (slots built by hand, public
/// inputs consistent with them) are still caught by the constraints.
#[test]
fn circuit_enforces_rules_on_its_own() {
    let bad = |what: &str, s: SlotAssignment| {
        assert!(!satisfied(ComplianceCircuit::new(vec![s])), "{what} accepted");
    };
    let honest = slot(&split(20));
    let mut s = honest;
    s.outputs[0].as_mut().unwrap().quantity += 1;
    bad("transfer creating value", s);

    let honest = slot(&transfer(10));
    let mut s = honest;
    // Swap output domains: totals still match but not per domain.
    let (a, b) = (s.outputs[0].unwrap().fungibility_domain, s.outputs[1].unwrap().fungibility_domain);
    s.outputs[0].as_mut().unwrap().fungibility_domain = b;
    s.outputs[1].as_mut().unwrap().fungibility_domain = a;
    bad("transfer mixing fungibility domains", s);

    let honest = slot(&update(30));
    for field in ["id", "quantity", "nk", "version+2", "state", "state code"] {
        let mut s = honest;
        let after = s.outputs[0].as_mut().unwrap();
        match field {
            "id" => after.id += Fr::from(1u64),
            "quantity" => after.quantity += 1,
            "nk" => after.nk_commitment += Fr::from(1u64),
            "version+2" => after.version += 1,
            "state code" => {
                // Same step value 8·from + to with out-of-range codes: Locked -> Active as (2, 1) vs (1, 9).
                s.inputs[0].as_mut().unwrap().fields.state = LifecycleState::Locked.code() - 1;
                s.outputs[0].as_mut().unwrap().state = LifecycleState::Active.code() + 8;
            }
            _ => {
                // Locked -> Initial is not a lifecycle step.
                s.inputs[0].as_mut().unwrap().fields.state = LifecycleState::Locked.code();
                s.outputs[0].as_mut().unwrap().state = LifecycleState::Initial.code();
            }
        }
        bad(&format!("update changing {field}"), s);
    }

    let mut s = slot(&create(1));
    s.outputs[0].as_mut().unwrap().version = 3;
    bad("create at version 3", s);
    let mut s = slot(&create(1));
    s.outputs[0].as_mut().unwrap().state = LifecycleState::Frozen.code();
    bad("create in state Frozen", s);
    let mut s = slot(&create(1));
    s.outputs[1] = s.outputs[0];
    bad("create with two outputs", s);

    let mut s = slot(&delete(2));
    s.inputs[0].as_mut().unwrap().fields.state = LifecycleState::Consumed.code();
    bad("delete of a consumed resource", s);
    let mut s = slot(&delete(2));
    s.inputs[0].as_mut().unwrap().nullifier_key += Fr::from(1u64);
    bad("delete with the wrong nullifier key", s);
}

#[test]
fn quantities_are_range_checked() {
    // 2^64 cannot be expressed: a u64 witness is bit-decomposed, so the
    // largest quantity works and conservation holds at the top of the range.
    let mut op = split(20);
    op.consumed[0].0.quantity = u64::MAX;
    op.created[0].quantity = u64::MAX - 1;
    op.created[1].quantity = 1;
    assert!(satisfied(ComplianceCircuit::new(vec![slot(&op)])));
}

/// The slots of many witnesses (every key opening in one hash pool) equal
/// each witness's own, and a wrong key is named by its operation number.
#[test]
fn slots_of_many_witnesses_equal_each_ones_and_name_a_wrong_key() {
    let ops = vec![create(1), transfer(10), delete(2), split(20), update(30)];
    let one_by_one: Vec<SlotAssignment> = ops.iter().enumerate().map(|(i, op)| op.to_slot(5 + i).unwrap()).collect();
    assert_eq!(to_slots(&ops, 5).unwrap(), one_by_one);
    assert!(to_slots(&[], 0).unwrap().is_empty());
    let mut wrong = ops.clone();
    wrong[3].consumed[0].1 = nk(77);
    match to_slots(&wrong, 5) {
        Err(ProveError::InvalidWitness { what, reason }) => {
            assert!(what.contains("operation 8"), "{what}");
            assert!(reason.contains("nullifier_key_commitment"), "{reason}");
        }
        other => panic!("expected InvalidWitness for operation 8, got {other:?}"),
    }
}

#[test]
fn native_checks_give_clear_errors() {
    let expect = |op: OpWitness, needle: &str| match op.to_slot(3) {
        Err(ProveError::InvalidWitness { what, reason }) => {
            assert!(what.contains("operation 3"), "{what}");
            assert!(reason.contains(needle), "{reason} should mention {needle}");
        }
        other => panic!("expected InvalidWitness mentioning {needle}, got {other:?}"),
    };
    let mut op = transfer(10);
    op.created[0].quantity += 1;
    expect(op, "not conserved");
    let mut op = delete(2);
    op.consumed[0].1 = nk(77);
    expect(op, "nullifier_key_commitment");
    let mut op = update(30);
    op.updated.as_mut().unwrap().1.quantity = 1;
    expect(op, "quantity");
    let mut op = update(30);
    op.updated.as_mut().unwrap().1.version = 5;
    expect(op, "version");
    let mut op = create(1);
    op.created[0].version = 2;
    expect(op, "version 0");
    let mut op = transfer(10);
    op.consumed.push(op.consumed[0].clone());
    expect(op, "consumed resources");
    let op = OpWitness { kind: OperationKind::Update, consumed: vec![], created: vec![], updated: None };
    expect(op, "missing");
}

#[test]
fn circuit_shape_is_deterministic_and_sized_by_k() {
    use causality_vm::prove::keys::CircuitShape;
    let one = CircuitShape::of(1).unwrap();
    let again = CircuitShape::of(1).unwrap();
    let two = CircuitShape::of(2).unwrap();
    assert_eq!(one.digest, again.digest);
    assert_ne!(one.digest, two.digest);
    assert_eq!(one.num_public_inputs(), PUBLIC_PER_SLOT);
    assert_eq!(two.num_public_inputs(), 2 * PUBLIC_PER_SLOT);
    // Slots are independent: constraints grow linearly with K.
    assert_eq!(two.num_constraints, 2 * one.num_constraints);
    assert!(matches!(CircuitShape::of(0), Err(ProveError::UnsupportedSize { given: 0 })));
    assert!(matches!(CircuitShape::of(3), Err(ProveError::UnsupportedSize { given: 3 })));
}
