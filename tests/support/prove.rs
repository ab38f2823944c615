//! Registers and operations for the proving tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use causality_vm::prove::nullifier_key_commitment;
use causality_vm::prove::OpWitness;
use causality_vm::resource::{LifecycleState, OperationKind, ResourceRegister};
use causality_vm::{ContentId, DomainId};

pub fn nk(seed: u8) -> [u8; 32] {
    [seed; 32]
}

/// An Active register at version 0 whose key is `nk(key_seed)`.
pub fn register(seed: u8, fungibility: &str, quantity: u64, key_seed: u8) -> ResourceRegister {
    ResourceRegister {
        id: ContentId([seed; 32]),
        logic: ContentId([0xAB; 32]),
        domain: DomainId::new("test-domain"),
        fungibility_domain: fungibility.into(),
        quantity,
        metadata: BTreeMap::from([("name".to_string(), format!("r{seed}"))]),
        contents: vec![seed, 1, 2, 3],
        state: LifecycleState::Active,
        nullifier_key_commitment: nullifier_key_commitment(&nk(key_seed)),
        controller: "alice".into(),
        version: 0,
    }
}

pub fn create(seed: u8) -> OpWitness {
    OpWitness {
        kind: OperationKind::Create,
        consumed: vec![],
        created: vec![register(seed, "gold", 10, seed)],
        updated: None,
    }
}

pub fn delete(seed: u8) -> OpWitness {
    OpWitness {
        kind: OperationKind::Delete,
        consumed: vec![(register(seed, "gold", 5, seed), nk(seed))],
        created: vec![],
        updated: None,
    }
}

/// Two inputs (gold 7 + silver 3) to two outputs (gold 7, silver 3).
pub fn transfer(seed: u8) -> OpWitness {
    OpWitness {
        kind: OperationKind::Transfer,
        consumed: vec![(register(seed, "gold", 7, seed), nk(seed)), (register(seed + 1, "silver", 3, seed), nk(seed))],
        created: vec![register(seed + 2, "silver", 3, 99), register(seed + 3, "gold", 7, 98)],
        updated: None,
    }
}

/// One gold input split into two gold outputs.
pub fn split(seed: u8) -> OpWitness {
    OpWitness {
        kind: OperationKind::Transfer,
        consumed: vec![(register(seed, "gold", 10, seed), nk(seed))],
        created: vec![register(seed + 2, "gold", 4, 99), register(seed + 3, "gold", 6, 98)],
        updated: None,
    }
}

pub fn update(seed: u8) -> OpWitness {
    let before = register(seed, "gold", 5, seed);
    let mut after = before.clone();
    after.version += 1;
    after.contents = vec![9, 9];
    after.controller = "bob".into();
    after.state = LifecycleState::Locked;
    OpWitness { kind: OperationKind::Update, consumed: vec![], created: vec![], updated: Some((before, after)) }
}

pub fn read() -> OpWitness {
    OpWitness { kind: OperationKind::Read, consumed: vec![], created: vec![], updated: None }
}

pub fn all_kinds() -> Vec<OpWitness> {
    vec![create(1), delete(2), transfer(10), split(20), update(30), read()]
}
