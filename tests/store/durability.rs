//! The store survives reopening, with and without checkpoints, and its
//! records round-trip; damaged records are errors, not panics.

use crate::batch_support;

use batch_support::*;
use std::path::Path;

use causality_vm::resource::{Operation, ResourceUpdate};
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

/// Leak `f`'s store (a crash: no close-time checkpoint) and copy the files
/// of its directory that `keep` selects into a fresh one. redb's file lock
/// belongs to the leaked handle, so reopening goes through the copy.
fn leak_and_copy(f: &mut Fixture, dir: &Path, keep: impl Fn(&str) -> bool) -> tempfile::TempDir {
    let store = std::mem::replace(&mut f.store, RegisterStore::open(f.dir.path().join("after-crash")).unwrap());
    std::mem::forget(store);
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_file() && keep(&name) {
            std::fs::copy(entry.path(), copy.path().join(&name)).unwrap();
        }
    }
    copy
}

fn log_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("store.log"))
        .collect();
    names.sort();
    names
}

#[test]
fn reopen_without_a_clean_close_and_after_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::new();
    // A checkpoint after every batch, in the background: a crash leaves the
    // tables, segments being folded and the log, whatever point it hit.
    f.store =
        RegisterStore::open_with(dir.path(), StoreOptions { checkpoint_bytes: 1, checkpoint_batches: 1 }).unwrap();
    f.accept = f.store.put_content(&accept_program().encode()).unwrap();
    populate(&mut f);
    let before = snapshot(&f.store);
    let copy = leak_and_copy(&mut f, dir.path(), |_| true);
    let reopened = RegisterStore::open(copy.path()).unwrap();
    assert_eq!(snapshot(&reopened), before);
}

/// A chain of batches over several background checkpoints (one every two
/// batches): registers created and consumed within one checkpoint, created
/// in one and updated or consumed in a later one. Records stay readable
/// exactly once throughout, and after a final checkpoint the tables alone
/// (no log) reopen to the same state.
#[test]
fn background_checkpoints_fold_every_batch_and_keep_records_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Fixture::new();
    f.store = RegisterStore::open_with(dir.path(), StoreOptions { checkpoint_bytes: 1 << 30, checkpoint_batches: 2 })
        .unwrap();
    f.accept = f.store.put_content(&accept_program().encode()).unwrap();
    let first = f.resource("gold", 64, 0);
    let mut tip = f.create_all(&[first])[0];
    for k in 1..=11u64 {
        let next = f.resource("gold", 64, k);
        let kept = f.resource("silver", 1, 100 + k);
        let mut ops = vec![transfer(vec![input(tip, k - 1)], vec![next.clone()])];
        ops.push(Operation::Create { resource: kept.clone() });
        let result = f.standard(&ops);
        assert_eq!(result.success_count, 2, "{:#?}", result.results);
        tip = id_of(&next);
        if k % 3 == 0 {
            let changes = ResourceUpdate { controller: Some(format!("owner-{k}").into()), ..Default::default() };
            assert_eq!(f.standard(&[update(id_of(&kept), changes)]).success_count, 1);
        }
        let head = f.store.head();
        let numbers: Vec<u64> = f.store.history(100).unwrap().iter().map(|r| r.number).collect();
        assert_eq!(numbers, (1..=head).rev().collect::<Vec<_>>(), "after batch {head}");
        for n in 1..=head {
            assert_eq!(f.store.batch(n).unwrap().map(|r| r.number), Some(n));
        }
    }
    f.store.checkpoint().unwrap();
    assert_eq!(log_files(dir.path()), ["store.log"], "folded segments are deleted");
    assert_eq!(std::fs::metadata(RegisterStore::log_in(dir.path())).unwrap().len(), 0);
    let before = snapshot(&f.store);
    let history = f.store.history(100).unwrap();
    let copy = leak_and_copy(&mut f, dir.path(), |name| name == "store.redb");
    let reopened = RegisterStore::open(copy.path()).unwrap();
    assert_eq!(snapshot(&reopened), before);
    assert_eq!(reopened.history(100).unwrap(), history);
}

/// Checkpoint boundaries placed by hand: a register created before one
/// checkpoint, then updated and consumed before the next, loses its row; one
/// created and consumed between two checkpoints never gets one. The tables
/// alone reopen to the same state.
#[test]
fn a_checkpoint_removes_exactly_the_rows_of_consumed_registers() {
    let mut f = Fixture::new();
    let (a, b) = (f.resource("gold", 5, 1), f.resource("gold", 7, 2));
    let ids = f.create_all(&[a, b]);
    f.store.checkpoint().unwrap();
    let changes = ResourceUpdate { controller: Some("owner-9".into()), ..Default::default() };
    assert_eq!(f.standard(&[update(ids[0], changes)]).success_count, 1);
    let c = f.resource("gold", 12, 3);
    let d = f.resource("gold", 12, 4);
    assert_eq!(f.standard(&[transfer(vec![input(ids[0], 1), input(ids[1], 2)], vec![c.clone()])]).success_count, 1);
    assert_eq!(f.standard(&[transfer(vec![input(id_of(&c), 3)], vec![d])]).success_count, 1);
    f.store.checkpoint().unwrap();
    let before = snapshot(&f.store);
    assert_eq!(before.2.len(), 1);
    let dir = f.dir.path().to_path_buf();
    let copy = leak_and_copy(&mut f, &dir, |name| name == "store.redb");
    let reopened = RegisterStore::open(copy.path()).unwrap();
    assert_eq!(snapshot(&reopened), before);
    assert_eq!((reopened.consumed_in(&ids[0]), reopened.consumed_in(&id_of(&c))), (Some(3), Some(4)));
}

/// A crash after the log was rotated but before its checkpoint committed:
/// the segment is replayed on open, then folded.
#[test]
fn a_segment_left_by_a_cut_short_checkpoint_is_replayed_then_folded() {
    let mut f = Fixture::new();
    populate(&mut f);
    let before = snapshot(&f.store);
    let dir = f.dir.path().to_path_buf();
    let copy = leak_and_copy(&mut f, &dir, |name| name != "store.log");
    std::fs::copy(RegisterStore::log_in(&dir), copy.path().join("store.log.1")).unwrap();
    let mut reopened = RegisterStore::open(copy.path()).unwrap();
    assert_eq!(snapshot(&reopened), before);
    assert_eq!(reopened.history(10).unwrap().len(), 3);
    reopened.checkpoint().unwrap();
    assert_eq!(log_files(copy.path()), ["store.log"]);
    drop(reopened);
    let tables_only = tempfile::tempdir().unwrap();
    std::fs::copy(RegisterStore::file_in(copy.path()), RegisterStore::file_in(tables_only.path())).unwrap();
    assert_eq!(snapshot(&RegisterStore::open(tables_only.path()).unwrap()), before);
}

/// A crash after a checkpoint committed but before its segment was deleted:
/// the segment's batches are skipped on open and the segment goes at the
/// next checkpoint.
#[test]
fn a_segment_the_tables_already_hold_is_skipped() {
    let mut f = Fixture::new();
    populate(&mut f);
    let log = std::fs::read(RegisterStore::log_in(f.dir.path())).unwrap();
    f.store.checkpoint().unwrap();
    let before = snapshot(&f.store);
    let dir = f.dir.path().to_path_buf();
    let copy = leak_and_copy(&mut f, &dir, |_| true);
    std::fs::write(copy.path().join("store.log.1"), &log).unwrap();
    let reopened = RegisterStore::open(copy.path()).unwrap();
    assert_eq!(snapshot(&reopened), before);
    assert_eq!(reopened.history(10).unwrap().len(), 3);
    drop(reopened);
    assert_eq!(log_files(copy.path()), ["store.log"]);
}

#[test]
fn a_damaged_segment_is_an_error_naming_it() {
    let mut f = Fixture::new();
    populate(&mut f);
    let dir = f.dir.path().to_path_buf();
    let copy = leak_and_copy(&mut f, &dir, |name| name != "store.log");
    let mut log = std::fs::read(RegisterStore::log_in(&dir)).unwrap();
    // A byte of the first frame's payload (past its 64-byte leading seal).
    log[80] ^= 1;
    std::fs::write(copy.path().join("store.log.1"), &log).unwrap();
    let err = RegisterStore::open(copy.path()).err().expect("a damaged segment does not open").to_string();
    assert!(err.contains("store.log.1") && err.contains("damaged at byte 0"), "{err}");
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

/// The log's length after the first two batches of `populate` (where the
/// third batch's frame starts), and the second batch's record.
fn populate_noting_the_third_frame(f: &mut Fixture) -> (usize, BatchRecord) {
    let a = f.resource("gold", 10, 1);
    let b = f.resource("gold", 20, 2);
    let ids = f.create_all(&[a, b]);
    let c = f.resource("gold", 10, 3);
    f.standard(&[transfer(vec![input(ids[0], 1)], vec![c])]);
    let third = std::fs::metadata(RegisterStore::log_in(f.dir.path())).unwrap().len() as usize;
    let previous = f.store.batch(2).unwrap().unwrap();
    f.standard(&[Operation::Delete { input: input(ids[1], 2) }]);
    (third, previous)
}

/// A crash mid-append leaves the new frame without its leading seal
/// (written last), its payload in part: the store reopens at the previous
/// batch and the unfinished frame is cut off. With the payload and its
/// trailing seal whole (the crash came after the first sync), the batch is
/// read from the trailing seal.
#[test]
fn an_unfinished_last_frame_leaves_the_previous_batch() {
    let mut f = Fixture::new();
    let (third, _) = populate_noting_the_third_frame(&mut f);
    let before = snapshot(&f.store);
    let copy = crashed_copy(&mut f, |log| log[third..third + 64].fill(0));
    assert_eq!(snapshot(&RegisterStore::open(copy.path()).unwrap()), before);
    for cut in [1usize, 8, 40, 64, 100] {
        let mut f = Fixture::new();
        let (third, previous) = populate_noting_the_third_frame(&mut f);
        let copy = crashed_copy(&mut f, |log| {
            log[third..third + 64].fill(0);
            log.truncate(log.len() - cut);
        });
        let reopened = RegisterStore::open(copy.path()).expect("an unfinished frame is not an error");
        assert_eq!((reopened.head(), reopened.state_root()), (2, previous.state_root_after), "cut {cut}");
        assert!(reopened.batch(3).unwrap().is_none());
        drop(reopened);
        let len = std::fs::metadata(RegisterStore::log_in(copy.path())).unwrap().len();
        assert!(len <= third as u64, "the unfinished frame was cut off the file");
    }
}

/// Bytes after the last frame that no commit wrote are cut off; a flipped
/// byte in a sealed frame is damage, never a dropped batch; a flipped byte
/// in a seal is read past.
#[test]
fn garbage_after_the_last_frame_is_discarded_and_damage_in_it_is_an_error() {
    let mut f = Fixture::new();
    populate(&mut f);
    let before = snapshot(&f.store);
    let copy = crashed_copy(&mut f, |log| log.extend_from_slice(&[0xAB; 77]));
    let reopened = RegisterStore::open(copy.path()).unwrap();
    assert_eq!(snapshot(&reopened), before);
    drop(reopened);

    let mut f = Fixture::new();
    let (third, _) = populate_noting_the_third_frame(&mut f);
    let before = snapshot(&f.store);
    let copy = crashed_copy(&mut f, |log| log[third + 100] ^= 1);
    let flipped = std::fs::read(RegisterStore::log_in(copy.path())).unwrap();
    let err = RegisterStore::open(copy.path()).err().expect("damage is an error").to_string();
    assert!(err.contains(&format!("damaged at byte {third}")) && err.contains("batch 3"), "{err}");
    assert_eq!(std::fs::read(RegisterStore::log_in(copy.path())).unwrap(), flipped, "nothing was cut");

    let mut f = Fixture::new();
    populate(&mut f);
    let copy = crashed_copy(&mut f, |log| {
        let last = log.len() - 1;
        log[last] ^= 1;
    });
    assert_eq!(snapshot(&RegisterStore::open(copy.path()).unwrap()), before);
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
