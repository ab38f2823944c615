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

/// Copy a store's files as a crash would leave them: the handle is leaked
/// (no close-time checkpoint), then `damage` is applied to the log copy.
fn crashed_copy(f: &mut Fixture, damage: impl FnOnce(&mut Vec<u8>)) -> tempfile::TempDir {
    let store = std::mem::replace(&mut f.store, RegisterStore::open(f.dir.path().join("after-crash")).unwrap());
    std::mem::forget(store);
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(RegisterStore::file_in(f.dir.path()), RegisterStore::file_in(copy.path())).unwrap();
    let mut log = std::fs::read(RegisterStore::log_in(f.dir.path())).unwrap();
    damage(&mut log);
    std::fs::write(RegisterStore::log_in(copy.path()), &log).unwrap();
    copy
}

#[test]
fn a_torn_last_log_frame_leaves_the_previous_batch() {
    for cut in [1usize, 8, 40, 41, 100] {
        let mut f = Fixture::new();
        populate(&mut f);
        let previous = f.store.batch(2).unwrap().unwrap();
        let full = std::fs::read(RegisterStore::log_in(f.dir.path())).unwrap();
        // Batch 3's frame, torn `cut` bytes short of its end (or garbage appended).
        let copy = crashed_copy(&mut f, |log| log.truncate(log.len() - cut));
        let reopened = RegisterStore::open(copy.path()).expect("a torn tail is not an error");
        assert_eq!((reopened.head(), reopened.state_root()), (2, previous.state_root_after), "cut {cut}");
        assert!(reopened.batch(3).unwrap().is_none());
        drop(reopened);
        let len = std::fs::metadata(RegisterStore::log_in(copy.path())).unwrap().len();
        assert!(len < full.len() as u64 - cut as u64, "the torn frame was cut off the file");
    }
}

#[test]
fn garbage_after_the_last_frame_is_discarded_and_a_flipped_byte_drops_that_batch() {
    let mut f = Fixture::new();
    populate(&mut f);
    let before = snapshot(&f.store);
    let copy = crashed_copy(&mut f, |log| log.extend_from_slice(&[0xAB; 77]));
    let reopened = RegisterStore::open(copy.path()).unwrap();
    assert_eq!(snapshot(&reopened), before);
    drop(reopened);

    let mut f = Fixture::new();
    populate(&mut f);
    let previous = f.store.batch(2).unwrap().unwrap();
    let copy = crashed_copy(&mut f, |log| {
        let last = log.len() - 1;
        log[last] ^= 1;
    });
    let reopened = RegisterStore::open(copy.path()).unwrap();
    assert_eq!((reopened.head(), reopened.state_root()), (2, previous.state_root_after));
}

#[test]
fn records_round_trip_and_damage_is_an_error() {
    let mut f = Fixture::new();
    let r = f.resource("gold", 10, 1);
    let delta = BatchDelta {
        upserts: vec![std::sync::Arc::new(r.clone().into_register(id_of(&r)))],
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
