//! The store survives reopening, with and without checkpoints, and its
//! records round-trip; damaged records are errors, not panics.

mod batch_support;

use batch_support::*;
use causality_vm::resource::Operation;
use causality_vm::store::{BatchDelta, BatchRecord, ProofRecord, RegisterStore, StoreOptions};

/// Commit a few batches (creates, transfers, a delete) and return the ids touched.
fn populate(f: &mut Fixture) {
    let a = f.resource("gold", 10, 1);
    let b = f.resource("gold", 20, 2);
    let ids = f.create_all(&[a, b]);
    let c = f.resource("gold", 10, 3);
    f.standard(&[transfer(vec![input(ids[0], 1)], vec![c])]);
    f.standard(&[Operation::Delete { input: input(ids[1], 2) }]);
}

fn snapshot(store: &RegisterStore) -> (u64, [u8; 32], Vec<causality_vm::resource::ResourceRegister>, usize) {
    (store.head(), store.state_root(), store.registers().cloned().collect(), store.nullifier_count())
}

#[test]
fn reopen_replays_the_delta_log() {
    let mut f = Fixture::new();
    populate(&mut f);
    let before = snapshot(&f.store);
    let history = f.store.history(10).unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].number, 3, "newest first");
    assert_eq!(history[0].state_root_after, before.1);
    assert_eq!(history[1].state_root_after, history[0].state_root_before);
    f.reopen();
    assert_eq!(snapshot(&f.store), before);
    assert_eq!(f.store.history(10).unwrap(), history);
}

#[test]
fn reopen_without_a_clean_close_and_after_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::new();
    // Checkpoint after every batch: reopening loads the tables, not deltas.
    f.store =
        RegisterStore::open_with(dir.path(), StoreOptions { checkpoint_bytes: 1, checkpoint_batches: 1 }).unwrap();
    f.accept = f.store.put_content(&accept_program().encode()).unwrap();
    populate(&mut f);
    let before = snapshot(&f.store);
    // Simulate a crash: leak the handle so no close-time checkpoint runs.
    let store = std::mem::replace(&mut f.store, RegisterStore::open(f.dir.path()).unwrap());
    std::mem::forget(store);
    // redb's file lock belongs to the leaked handle's process: reopen works in-process
    // only after the handle is gone, so compare through a fresh copy of the file.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(RegisterStore::file_in(dir.path()), RegisterStore::file_in(copy.path())).unwrap();
    let reopened = RegisterStore::open(copy.path()).unwrap();
    assert_eq!(snapshot(&reopened), before);
}

#[test]
fn records_round_trip_and_damage_is_an_error() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let delta = BatchDelta {
        upserts: vec![r.clone().into_register(id_of(&r))],
        removed: vec![id_of(&r)],
        nullifiers: vec![[7; 32]],
    };
    let bytes = delta.encode();
    assert_eq!(BatchDelta::decode(&bytes).unwrap(), delta);
    for cut in [0, 1, 9, bytes.len() / 2, bytes.len() - 1] {
        let err = BatchDelta::decode(&bytes[..cut]).unwrap_err().to_string();
        assert!(err.contains("corrupt batch delta"), "{err}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(BatchDelta::decode(&extra).unwrap_err().to_string().contains("trailing"));

    let record = BatchRecord {
        number: 4,
        trace_id: "t".into(),
        proof: Some(ProofRecord { system: "s".into(), proof: vec![1, 2], public_inputs: vec![3] }),
        ..Default::default()
    };
    assert_eq!(BatchRecord::decode(&record.encode()).unwrap(), record);
    assert!(BatchRecord::decode(&record.encode()[..20]).is_err());
}
